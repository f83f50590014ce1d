//! `remedy check`: the read-only diagnosis (`remedy_engine::check`) of every
//! master, etcd and the load balancers, printed as one findings table and
//! the commands that fix what it found, or as JSON. Exit 0 all ok, 1 with
//! warnings, 2 with a critical finding (2 also for invalid input).

use super::{request, Exit, Global, Output};
use remedy_engine::check::{self, CheckCtx, Finding, Severity};
use remedy_transport::ssh::SshConnector;
use std::time::{Duration, Instant};

/// `remedy check` answers within this, whatever a host does.
pub const BUDGET: Duration = Duration::from_secs(8);

pub fn check(g: &Global) -> i32 {
    let started = Instant::now();
    let inventory = match request::inventory(g) {
        Ok(i) => i,
        Err(d) => {
            eprint!("{}", d.render());
            return Exit::Invalid.into();
        }
    };
    let group = |name: &str| -> Vec<remedy_engine::Host> {
        inventory
            .select(name)
            .map(|h| h.into_iter().cloned().collect())
            .unwrap_or_default()
    };
    let mut masters = group("masters");
    if masters.is_empty() {
        masters = group("etcd");
    }
    if let Some(limit) = &g.limit {
        match inventory.select(limit) {
            Ok(allowed) => {
                let names: Vec<&str> = allowed.iter().map(|h| h.name.as_str()).collect();
                masters.retain(|h| names.contains(&h.name.as_str()));
            }
            Err(msg) => {
                eprintln!("error: --limit: {msg}");
                return Exit::Invalid.into();
            }
        }
    }
    if masters.is_empty() {
        eprintln!("error: no masters to check: the inventory has no hosts in group `masters` (or `etcd`){}", if g.limit.is_some() { " matching --limit" } else { "" });
        return Exit::Invalid.into();
    }
    let (etcd, lbs) = (group("etcd"), group("lbs"));
    let inventory_arg = match &g.inventory {
        Some(p) => format!(
            " -i {}",
            remedy_transport::shell::word(&p.display().to_string())
        ),
        None => String::new(),
    };
    let runtime = match super::run::runtime() {
        Ok(r) => r,
        Err(exit) => return exit.into(),
    };
    let connector = SshConnector::new(&inventory, g.accept_new_host_keys).verbose(g.verbose);
    let ctx = CheckCtx {
        connector: &connector,
        masters: &masters,
        etcd: &etcd,
        lbs: &lbs,
        inventory_arg,
        etcd_snapshot: newest_snapshot(),
        deadline: started + BUDGET,
    };
    let findings = runtime.block_on(check::run(&ctx, &check::collectors()));
    // Sessions still being set up with a host that hangs must not hold the
    // answer back.
    runtime.shutdown_timeout(Duration::from_millis(100));
    let worst = check::worst(&findings);
    if g.output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&findings).unwrap_or_default()
        );
    } else {
        print!("{}", render(&findings, started.elapsed()));
    }
    match worst {
        Severity::Ok => 0,
        Severity::Warn => 1,
        Severity::Critical => 2,
    }
}

/// The findings table, then each problem's fix.
fn render(findings: &[Finding], took: Duration) -> String {
    let w = |f: fn(&Finding) -> usize| findings.iter().map(f).max().unwrap_or(0);
    let (hw, cw) = (w(|f| f.host.len()).max(4), w(|f| f.check.len()).max(5));
    let mut out = format!(
        "{:hw$}  {:cw$}  {:8}  MESSAGE\n",
        "HOST", "CHECK", "SEVERITY"
    );
    for f in findings {
        out.push_str(&format!(
            "{:hw$}  {:cw$}  {:8}  {}\n",
            f.host,
            f.check,
            f.severity.as_str().to_uppercase(),
            f.message
        ));
        if f.severity != Severity::Ok {
            for e in f.evidence.iter().take(4) {
                out.push_str(&format!(
                    "{:hw$}  {:cw$}  {:8}    │ {}\n",
                    "",
                    "",
                    "",
                    shorten(e)
                ));
            }
        }
    }
    let problems: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.severity != Severity::Ok)
        .collect();
    let (crit, warn) = (
        problems
            .iter()
            .filter(|f| f.severity == Severity::Critical)
            .count(),
        problems
            .iter()
            .filter(|f| f.severity == Severity::Warn)
            .count(),
    );
    out.push('\n');
    if problems.is_empty() {
        out.push_str(&format!(
            "all {} checks ok ({:.1}s)\n",
            findings.len(),
            took.as_secs_f64()
        ));
        return out;
    }
    out.push_str(&format!(
        "{crit} critical, {warn} warning(s) in {} checks ({:.1}s)\n",
        findings.len(),
        took.as_secs_f64()
    ));
    let mut fixes: Vec<(&str, &str)> = Vec::new();
    for f in &problems {
        if let Some(fix) = &f.fix {
            if !fixes.iter().any(|(_, x)| *x == fix.as_str()) {
                fixes.push((f.host.as_str(), fix.as_str()));
            }
        }
    }
    // Runbooks first: what remedy can do; then what a person does by hand.
    fixes.sort_by_key(|(_, fix)| !fix.starts_with("remedy run"));
    if !fixes.is_empty() {
        out.push_str("\nto fix:\n");
        for (host, fix) in fixes {
            out.push_str(&format!("  {host:hw$}  {fix}\n"));
        }
    }
    out
}

/// A quoted log line, cut to fit a terminal.
fn shorten(line: &str) -> String {
    const MAX: usize = 160;
    if line.chars().count() <= MAX {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(MAX).collect::<String>())
    }
}

/// The newest snapshot an `etcd.snapshot` step saved (its result: a `.db`
/// path with the database's size) that is still on the jump host. Only an
/// existing journal is read: a check creates nothing.
fn newest_snapshot() -> Option<String> {
    let path = remedy_journal::default_path();
    if !path.is_file() {
        return None;
    }
    let journal = remedy_journal::Journal::open(&path).ok()?;
    let events = journal.events_of_kind("step_done").ok()?;
    events
        .iter()
        .rev()
        .filter_map(|e| {
            let r = &e.payload["result"];
            let file = r["path"].as_str()?;
            (file.ends_with(".db") && r.get("db_bytes").is_some()).then_some(file)
        })
        .find(|file| std::path::Path::new(file).is_file())
        .map(str::to_string)
}
