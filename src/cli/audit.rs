//! Reading the journal: `remedy runs`, `remedy audit list|show|verify|export`
//! and `remedy lock list|break`. All work from any shell while a run is going
//! (SQLite in WAL mode lets readers in beside the writer).

use super::flags::{ActorArgs, OutputArg, Overlay};
use super::journal::{self, now_ms};
use super::{Exit, Global, Output};
use clap::{Subcommand, ValueEnum};
use remedy_coordination::{CoordinationError, Coordinator, LockEntry};
use remedy_journal::{Journal, RunFilter, RunRecord, StoredEvent};
use serde_json::{json, Value};
use std::io::Write;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Runs recorded in the journal, newest first, filtered.
    #[command(after_help = "\
Examples:
  remedy audit list --since 7d --status failed
  remedy audit list --host master-2 -o json")]
    List(ListArgs),
    /// One run's timeline: who ran and approved it, what changed (diffs), backups.
    #[command(after_help = "\
Examples:
  remedy audit show last
  remedy audit show 4d5e -o json")]
    Show {
        /// Run id (or a unique prefix or suffix of it, or `last`: the newest
        /// real, not dry-run, run).
        run: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Check the hash chain and the run records; exits 1 naming the first edited, deleted or reordered event.
    #[command(after_help = "\
Examples:
  remedy audit verify
  remedy audit verify --head 9f2c…   # a head kept elsewhere (remedy audit head)")]
    Verify {
        /// Only this run's events (the whole chain is still walked).
        run: Option<String>,
        /// A chain head kept elsewhere (`remedy audit head`, or the one a
        /// run-finished notification carried): it must still be in the journal,
        /// which catches events cut off the end.
        #[arg(long, value_name = "HASH")]
        head: Vec<String>,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Print the chain head (the last event's hash): keep it elsewhere and check
    /// it later with `remedy audit verify --head HASH`.
    #[command(after_help = "Example:\n  remedy audit head >> /var/backups/remedy-heads")]
    Head {
        #[command(flatten)]
        output: OutputArg,
    },
    /// Every event (or one run's) as JSON lines, for shipping to a SIEM.
    #[command(after_help = "\
Examples:
  remedy audit export > remedy-events.jsonl
  remedy audit export last")]
    Export {
        /// Only this run.
        run: Option<String>,
        #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
        format: ExportFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only runs started within this long (e.g. 2h, 7d).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only runs of this runbook.
    #[arg(long)]
    pub runbook: Option<String>,
    /// Only runs that targeted this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only runs with this status (running, ok, failed, interrupted, rollback_failed).
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many runs.
    #[arg(long, default_value_t = 50)]
    pub last: usize,
    #[command(flatten)]
    pub output: OutputArg,
}

#[derive(Debug, Subcommand)]
pub enum LockCommand {
    /// Locks held on targets (host@inventory), with their holder and whether it is stale.
    #[command(after_help = "Example:\n  remedy lock list -o json")]
    List {
        #[command(flatten)]
        output: OutputArg,
    },
    /// Remove a lock whose holder is gone (journaled). Prefer `remedy resume RUN`.
    #[command(
        after_help = "Example:\n  remedy lock break master-2 --reason 'run 4d5e died with its jump host'"
    )]
    Break {
        /// The target as `remedy lock list` shows it, or just the host name when unique.
        target: String,
        /// Why (recorded in the journal).
        #[arg(long)]
        reason: String,
        /// Break it even though its holder looks alive.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        actor: ActorArgs,
    },
}

impl Overlay for AuditCommand {
    fn overlay(&self, g: &mut Global) {
        match self {
            AuditCommand::List(ListArgs { output, .. })
            | AuditCommand::Show { output, .. }
            | AuditCommand::Verify { output, .. }
            | AuditCommand::Head { output } => output.overlay(g),
            AuditCommand::Export { .. } => {}
        }
    }
}

impl Overlay for LockCommand {
    fn overlay(&self, g: &mut Global) {
        match self {
            LockCommand::List { output } => output.overlay(g),
            LockCommand::Break { actor, .. } => actor.overlay(g),
        }
    }
}

pub(super) fn open() -> Result<Arc<Journal>, Exit> {
    journal::open().map_err(|msg| {
        eprintln!("error: {msg}");
        Exit::Invalid
    })
}

fn fail(e: impl std::fmt::Display) -> Exit {
    eprintln!("error: {e}");
    Exit::Invalid
}

pub(super) fn print_json(v: &impl serde::Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot render JSON: {e}"),
    }
}

pub(super) fn time(ms: i64) -> String {
    // UTC, to the second: what an SRE pastes into an incident timeline.
    match time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("@{ms}ms"),
    }
}

fn run_json(r: &RunRecord) -> Value {
    json!({
        "run_id": r.run_id,
        "runbook": r.runbook,
        "runbook_ref": r.runbook_ref,
        "status": r.effective_status(),
        "dry_run": r.dry_run,
        "actor": r.actor,
        "os_user": r.os_user,
        "jump_host": r.jump_host,
        "pid": r.pid,
        "inventory": r.inventory,
        "limit": r.limit,
        "hosts": r.hosts,
        "started": time(r.started_ms),
        "finished": r.finished_ms.map(time),
        "review": r.review,
    })
}

fn runs_table(runs: &[RunRecord]) {
    if runs.is_empty() {
        println!("No runs recorded.");
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<36}  {:<8}  {:<20}  {:<18}  {:<15}  {:<12}  HOSTS",
        "RUN", "REF", "STARTED", "RUNBOOK", "STATUS", "BY"
    );
    let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    for r in runs {
        let mut status = r.effective_status();
        if r.dry_run {
            status.push_str(" (dry)");
        }
        if r.review.is_some() {
            status.push_str(" REVIEW");
        }
        let _ = writeln!(
            out,
            "{:<36}  {:<8}  {:<20}  {:<18}  {:<15}  {:<12}  {}",
            r.run_id,
            short_ref(&r.run_id, &ids),
            time(r.started_ms),
            r.runbook,
            status,
            r.actor,
            r.hosts.join(",")
        );
    }
}

/// The shortest end of `id` (at least 8 characters) that no other listed id
/// ends with: what to type for `remedy resume`, `audit show` and the like.
/// A run id is a UUIDv7 — runs started close together share their first
/// characters (the time) but not their last (random).
fn short_ref<'a>(id: &'a str, ids: &[&str]) -> &'a str {
    (8..id.len())
        .map(|n| &id[id.len() - n..])
        .find(|end| !ids.iter().any(|o| *o != id && o.ends_with(end)))
        .unwrap_or(id)
}

pub fn runs(g: &Global, last: usize) -> Exit {
    list(
        g,
        &ListArgs {
            since: None,
            runbook: None,
            host: None,
            status: None,
            last,
            output: OutputArg { output: None },
        },
    )
}

/// `remedy runs last`: the newest real run (what `resume last` and `audit
/// show last` take), as one row of `remedy runs` or one JSON object.
pub fn last_run(g: &Global) -> Exit {
    let j = match open() {
        Ok(j) => j,
        Err(e) => return e,
    };
    let record = match j.run("last") {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if g.output == Output::Json {
        print_json(&run_json(&record));
    } else {
        runs_table(std::slice::from_ref(&record));
        println!("details: remedy audit show {}", record.run_id);
    }
    Exit::Ok
}

pub fn audit(g: &Global, cmd: &AuditCommand) -> Exit {
    match cmd {
        AuditCommand::List(args) => list(g, args),
        AuditCommand::Show { run, .. } => show(g, run),
        AuditCommand::Verify { run, head, .. } => verify(g, run.as_deref(), head),
        AuditCommand::Head { .. } => head(g),
        AuditCommand::Export { run, format: _ } => export(run.as_deref()),
    }
}

fn list(g: &Global, a: &ListArgs) -> Exit {
    let j = match open() {
        Ok(j) => j,
        Err(e) => return e,
    };
    let since_ms = match &a.since {
        None => None,
        Some(s) => match remedy_dsl::param::parse_duration(s) {
            Some(secs) => Some(now_ms() - secs * 1000),
            None => {
                return fail(format!(
                    "--since {s}: not a duration\n  = hint: e.g. --since 2h or --since 7d"
                ))
            }
        },
    };
    let filter = RunFilter {
        since_ms,
        runbook: a.runbook.clone(),
        host: a.host.clone(),
        status: a.status.clone(),
        limit: Some(a.last),
    };
    match j.runs(&filter) {
        Ok(runs) if g.output == Output::Json => {
            print_json(&runs.iter().map(run_json).collect::<Vec<_>>());
            Exit::Ok
        }
        Ok(runs) => {
            runs_table(&runs);
            Exit::Ok
        }
        Err(e) => fail(e),
    }
}

/// One line of a timeline, or None for events that only repeat others.
fn describe(e: &StoredEvent) -> Option<String> {
    let p = &e.payload;
    let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
    Some(match e.kind.as_str() {
        "run_started" => format!(
            "run started by {} on {}{}",
            e.actor,
            p["hosts"]
                .as_array()
                .map(|h| h
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_default(),
            match p["kubeconfig"]["path"].as_str() {
                Some(path) => format!(
                    ", the API through the kubeconfig {path} (from {}{})",
                    p["kubeconfig"]["from"].as_str().unwrap_or("?"),
                    p["kubeconfig"]["context"]
                        .as_str()
                        .map(|c| format!(", context {c}"))
                        .unwrap_or_default()
                ),
                None => String::new(),
            }
        ),
        "run_resumed" => format!("run resumed by {}", e.actor),
        // The run's record, chained; the header above shows it.
        "run_recorded" if p["migrated"] == true => {
            "record chained by the journal upgrade (as it read then)".into()
        }
        "run_recorded" => return None,
        "run_updated" => format!(
            "record updated: {}",
            p.as_object()
                .map(|m| m
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "))
                .unwrap_or_default()
        ),
        "locks_acquired" => format!("locks taken (fencing token {})", p["token"]),
        "lock_broken" => format!(
            "lock on {} broken by {}: {}",
            s("target"),
            e.actor,
            s("reason")
        ),
        "batch_started" => format!("batch {}", p["index"].as_u64().map(|i| i + 1).unwrap_or(0)),
        "host_started" => "started".into(),
        "step_skipped" => format!("skipped: {}", s("reason")),
        "step_planned" => {
            let plan = &p["plan"];
            let mut line = format!("planned: {}", plan["summary"].as_str().unwrap_or(""));
            if let Some(changes) = plan["changes"].as_array() {
                for c in changes {
                    if let Some(diff) = c["diff"].as_str() {
                        for l in diff.lines() {
                            line.push_str(&format!("\n        {l}"));
                        }
                    }
                }
            }
            line
        }
        "step_deferred" => "deferred (needs earlier results)".into(),
        "backup_taken" => {
            let b = &p["backup"];
            let version = b["object"]["resource_version"]
                .as_str()
                .map(|v| format!(", resourceVersion {v}"))
                .unwrap_or_default();
            match b["location"].as_str() {
                Some(loc) => format!(
                    "backup of {} → {} (sha256 {}{version})",
                    b["path"].as_str().unwrap_or(""),
                    loc,
                    b["sha256"].as_str().unwrap_or("")
                ),
                None => format!(
                    "backup of {}: did not exist (rollback removes it)",
                    b["path"].as_str().unwrap_or("")
                ),
            }
        }
        "step_intent" => format!("intent to apply (attempt {})", p["attempt"]),
        "step_applied" => format!(
            "applied: changed={}",
            p["result"]["changed"].as_bool().unwrap_or(false)
        ),
        "step_retry" => format!("retry after attempt {}: {}", p["attempt"], s("reason")),
        "step_verified" => "verified".into(),
        "step_done" => format!("done: {}", s("status")),
        "step_failed" => format!("FAILED: {}", s("error")),
        "rollback_started" => format!("rollback started: {}", s("reason")),
        "step_rolled_back" => format!("rolled back: restored {}", p["restored"]),
        "rollback_failed" => format!("ROLLBACK FAILED: {}", s("error")),
        "host_finished" => format!("finished: {}", s("status")),
        "stranded_found" => format!("found before the run: {} ({})", s("error"), s("hint")),
        "invariant_failed" => format!("INVARIANT FAILED: {} ({})", s("error"), s("hint")),
        "run_finished" => format!("run finished: {} — {}", s("status"), s("summary")),
        _ => format!("{} {}", e.kind, p),
    })
}

/// The `approved` line of `audit show`, from the run's approval events: who
/// approved, denied or skipped approval, or why nobody did.
fn approval_summary(events: &[StoredEvent]) -> String {
    let (mut requested, mut granted, mut expired) = (0, 0, 0);
    let mut approvers: Vec<&str> = Vec::new();
    let mut auto = None;
    let mut denied = None;
    for e in events {
        let approve = e.payload["approve"].as_bool() == Some(true);
        match e.kind.as_str() {
            "break_glass" => {
                return format!(
                    "no — skipped by break-glass ({}: {}); marked for review",
                    e.actor,
                    e.payload["reason"].as_str().unwrap_or("")
                )
            }
            "approval_requested" => requested += 1,
            "approval_vote" | "approval_granted" => {
                granted += usize::from(e.kind == "approval_granted");
                if approve && !approvers.contains(&e.actor.as_str()) {
                    approvers.push(&e.actor);
                }
            }
            "approval_auto" => auto = e.payload["rule"].as_str().or(Some("")),
            "approval_denied" => denied = Some(e),
            "approval_expired" => expired += 1,
            _ => {}
        }
    }
    let of_requests = if requested > 1 {
        format!(" ({granted} of {requested} requests approved)")
    } else {
        String::new()
    };
    if let Some(d) = denied {
        let why = d.payload["comment"].as_str().unwrap_or("");
        return format!("no — denied by {}: {why}{of_requests}", d.actor);
    }
    if expired > 0 {
        return format!("no — the request expired unanswered{of_requests}");
    }
    if granted > 0 {
        return format!("by {}{of_requests}", approvers.join(", "));
    }
    match (auto, requested) {
        (Some(rule), _) => format!("automatically, by the policy's rule `{rule}`"),
        (None, 0) => "not required (no approval was requested)".to_string(),
        (None, _) => "not yet (requested, not decided)".to_string(),
    }
}

fn show(g: &Global, run: &str) -> Exit {
    let j = match open() {
        Ok(j) => j,
        Err(e) => return e,
    };
    let record = match j.run(run) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let events = match j.events(&record.run_id) {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    if g.output == Output::Json {
        print_json(&json!({ "run": run_json(&record), "events": events }));
        return Exit::Ok;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "run {}", record.run_id);
    let _ = writeln!(
        out,
        "  runbook   {} ({}, sha256 {})",
        record.runbook,
        record.runbook_ref,
        &record.runbook_sha256[..12.min(record.runbook_sha256.len())]
    );
    let _ = writeln!(
        out,
        "  status    {}{}",
        record.effective_status(),
        if record.dry_run { " (dry-run)" } else { "" }
    );
    let _ = writeln!(
        out,
        "  by        {} from {} (pid {})",
        record.actor, record.jump_host, record.pid
    );
    let _ = writeln!(out, "  approved  {}", approval_summary(&events));
    if let Some(r) = &record.review {
        let _ = writeln!(out, "  REVIEW    {r}");
    }
    let _ = writeln!(out, "  inventory {}", record.inventory);
    let _ = writeln!(out, "  hosts     {}", record.hosts.join(", "));
    if !record.params.is_empty() {
        let params: Vec<String> = record
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(out, "  params    {}", params.join(" "));
    }
    let _ = writeln!(
        out,
        "  started   {}{}",
        time(record.started_ms),
        record
            .finished_ms
            .map(|f| format!(", finished {}", time(f)))
            .unwrap_or_default()
    );
    let _ = writeln!(out);
    for e in &events {
        let Some(line) = describe(e) else { continue };
        let at = match (&e.host, &e.step) {
            (Some(h), Some(s)) => format!("{h} › {s}"),
            (Some(h), None) => h.clone(),
            _ => "run".into(),
        };
        let clock = time(e.time_ms);
        let _ = writeln!(out, "{:>4} {} {at}: {line}", e.seq, &clock[11..19]);
    }
    Exit::Ok
}

fn head(g: &Global) -> Exit {
    let j = match open() {
        Ok(j) => j,
        Err(e) => return e,
    };
    match j.head() {
        Ok((id, hash)) => {
            if g.output == Output::Json {
                print_json(&json!({ "event_id": id, "hash": hash }));
            } else {
                println!("{hash}");
                eprintln!("(event {id}; check later with `remedy audit verify --head {hash}`)");
            }
            Exit::Ok
        }
        Err(e) => fail(e),
    }
}

/// `op` on the ops etcd when the site config coordinates jump hosts
/// (None when it does not); its outcome, connecting included.
fn in_ops_etcd<T, Fut>(
    g: &Global,
    op: impl FnOnce(Coordinator) -> Fut,
) -> Result<Option<Result<T, CoordinationError>>, Exit>
where
    Fut: std::future::Future<Output = Result<T, CoordinationError>>,
{
    let config = super::config::load(g).map_err(|d| {
        eprint!("{}", d.render());
        Exit::Invalid
    })?;
    let Some(coordination) = config.coordination else {
        return Ok(None);
    };
    let runtime = super::run::runtime()?;
    Ok(Some(runtime.block_on(async {
        op(Coordinator::connect(&coordination).await?).await
    })))
}

/// The head this jump host last published in the ops etcd (the audit
/// witness), if any. An unreachable ops etcd is said, and the journal is
/// checked without it.
fn published_head(g: &Global) -> Result<Option<String>, Exit> {
    match in_ops_etcd(g, |c| async move { c.published_head().await })? {
        Some(Ok(head)) => Ok(head.map(|h| h.hash)),
        Some(Err(e)) => {
            eprintln!("warning: not checked against the chain head published in the ops etcd: {e}");
            Ok(None)
        }
        None => Ok(None),
    }
}

fn verify(g: &Global, run: Option<&str>, heads: &[String]) -> Exit {
    let j = match open() {
        Ok(j) => j,
        Err(e) => return e,
    };
    let run_id = match run {
        Some(r) => match j.run(r) {
            Ok(rec) => Some(rec.run_id),
            Err(e) => return fail(e),
        },
        None => None,
    };
    let mut v = match j.verify(run_id.as_deref()) {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let given = heads.len();
    let published = match published_head(g) {
        Ok(p) => p,
        Err(exit) => return exit,
    };
    let heads: Vec<String> = heads.iter().cloned().chain(published.clone()).collect();
    for h in &heads {
        match j.witness(h) {
            Ok(None) => {}
            Ok(Some(problem)) => {
                v.ok = false;
                v.problems.insert(0, problem);
            }
            Err(e) => return fail(e),
        }
    }
    if g.output == Output::Json {
        print_json(&v);
    } else if v.ok {
        println!(
            "ok: {} event(s) checked, the hash chain and run records are intact{}{}",
            v.checked,
            match (given, &published) {
                (0, None) => String::new(),
                (0, Some(_)) => ", and it holds the head published in the ops etcd".into(),
                (n, None) => format!(", and it holds the {n} head(s) given"),
                (n, Some(_)) => format!(
                    ", and it holds the {n} head(s) given and the one published in the ops etcd"
                ),
            },
            run_id
                .as_deref()
                .map(|r| format!(" (run {r})"))
                .unwrap_or_default()
        );
    } else {
        // Each problem's sentence names its event (the journal writes it so).
        println!("TAMPERED: {}", v.problems[0].what);
        for p in &v.problems[1..] {
            println!("  also: {}", p.what);
        }
        println!("The journal {} was changed outside remedy; compare it with an exported copy (`remedy audit export`) before trusting it.", j.path().display());
    }
    if v.ok {
        Exit::Ok
    } else {
        Exit::StepFailed
    }
}

fn export(run: Option<&str>) -> Exit {
    let j = match open() {
        Ok(j) => j,
        Err(e) => return e,
    };
    let events = match run {
        Some(r) => match j.run(r).and_then(|rec| j.events(&rec.run_id)) {
            Ok(e) => e,
            Err(e) => return fail(e),
        },
        None => match j.all_events() {
            Ok(e) => e,
            Err(e) => return fail(e),
        },
    };
    let mut out = std::io::stdout().lock();
    for e in &events {
        match serde_json::to_string(e) {
            Ok(line) => {
                if writeln!(out, "{line}").is_err() {
                    return Exit::StepFailed;
                }
            }
            Err(e) => return fail(e),
        }
    }
    Exit::Ok
}

/// The ops etcd's locks when the site config coordinates jump hosts (None
/// when it does not). An unreachable ops etcd is an error: a list without
/// the other jump hosts' locks would say the hosts are free.
fn coordinated_locks(g: &Global) -> Result<Option<Vec<LockEntry>>, Exit> {
    in_ops_etcd(g, |c| async move { c.locks().await })?
        .transpose()
        .map_err(|e| {
            eprintln!("error: {e}");
            Exit::StepFailed
        })
}

pub fn lock(g: &Global, cmd: &LockCommand) -> Exit {
    let j = match open() {
        Ok(j) => j,
        Err(e) => return e,
    };
    let locks = match j.locks() {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    match cmd {
        LockCommand::List { .. } => {
            let coordinated = match coordinated_locks(g) {
                Ok(c) => c,
                Err(exit) => return exit,
            };
            if g.output == Output::Json {
                match &coordinated {
                    None => print_json(&locks),
                    Some(c) => print_json(&json!({ "local": locks, "ops_etcd": c })),
                }
            } else if locks.is_empty() {
                println!("No locks held.");
            } else {
                println!(
                    "{:<40}  {:<36}  {:<24}  {:<8}  STATE",
                    "TARGET", "RUN", "HOLDER", "TOKEN"
                );
                for l in &locks {
                    println!(
                        "{:<40}  {:<36}  {:<24}  {:<8}  {}",
                        l.target,
                        l.run_id,
                        format!("{}@{} pid {}", l.user, l.host, l.pid),
                        l.token,
                        match &l.stale_reason {
                            Some(r) if l.stale => format!("STALE: {r}"),
                            _ => "held".into(),
                        }
                    );
                }
            }
            if let (Some(c), Output::Text) = (&coordinated, g.output) {
                println!();
                if c.is_empty() {
                    println!("No locks in the ops etcd.");
                } else {
                    println!("Locks in the ops etcd (every jump host):");
                    println!(
                        "{:<24}  {:<36}  {:<32}  {:<8}  LEASE",
                        "HOST", "RUN", "HOLDER", "TOKEN"
                    );
                    for l in c {
                        println!(
                            "{:<24}  {:<36}  {:<32}  {:<8}  {}",
                            l.host,
                            l.holder.run_id,
                            format!(
                                "{}@{} pid {}",
                                l.holder.user, l.holder.jump_host, l.holder.pid
                            ),
                            l.revision,
                            l.lease_remaining_s
                                .map(|s| format!("{s}s left"))
                                .unwrap_or_else(|| "?".into())
                        );
                    }
                }
            }
            Exit::Ok
        }
        LockCommand::Break {
            target,
            reason,
            force,
            ..
        } => {
            let matching: Vec<&remedy_journal::LockRecord> = locks
                .iter()
                .filter(|l| {
                    l.target == *target || l.target.split('@').next() == Some(target.as_str())
                })
                .collect();
            let t = match matching.as_slice() {
                [one] => one,
                [] => {
                    return fail(format!(
                        "no lock on `{target}`\n  = hint: `remedy lock list` shows the locks held"
                    ))
                }
                many => {
                    return fail(format!(
                        "`{target}` matches {} locks: {}\n  = hint: give the whole target",
                        many.len(),
                        many.iter()
                            .map(|l| l.target.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            };
            if !t.stale {
                let msg = format!(
                    "the holder of {} looks alive (run {}, {}@{} pid {}); breaking it lets another run change these hosts at the same time",
                    t.target, t.run_id, t.user, t.host, t.pid
                );
                if !*force {
                    return fail(format!("{msg}\n  = hint: wait for it (`remedy runs`), or pass --force if you know it is gone"));
                }
                eprintln!("warning: {msg}");
            }
            // The same identity rule as runs and votes: --as only where allowed.
            let actor = match super::run::site(g) {
                Ok((_, _, actor)) => actor,
                Err(exit) => return exit,
            };
            match j.break_lock(&t.target, &actor, reason) {
                Ok(l) => {
                    println!(
                        "broke the lock on {} (held by run {}, {}@{} pid {}); journaled",
                        l.target, l.run_id, l.user, l.host, l.pid
                    );
                    Exit::Ok
                }
                Err(e) => fail(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::short_ref;

    #[test]
    fn a_run_is_shown_by_the_shortest_end_no_other_listed_run_shares() {
        let a = "019aee21-7c3e-7f00-8a11-3f9a1c2b4d5e";
        let b = "019aee21-7c3f-7f00-9b22-000011114d5e";
        let c = "019aee21-7c40-7f00-9b22-77771c2b4d5e";
        assert_eq!(short_ref(b, &[a, b]), "11114d5e");
        // a and c share their last 8 characters: each shows one more.
        assert_eq!(short_ref(a, &[a, b, c]), "a1c2b4d5e");
        assert_eq!(short_ref(c, &[a, b, c]), "71c2b4d5e");
        assert_eq!(short_ref(a, &[a]), "1c2b4d5e");
    }
}
