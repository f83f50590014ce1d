//! Human output of plans and results: per host, one line per step with its
//! status, diffs and commands indented under it, errors with their hints, and
//! the summary line; and, for a run on a terminal, the compact summary of it
//! (a few lines per host, the rest in `remedy audit show`).

use super::terminal;
use remedy_engine::plan::Change;
use remedy_engine::report::{HostReport, StepReport, StepStatus};
use remedy_engine::{HostStatus, RunReport};
use std::collections::HashMap;
use std::fmt::Write as _;

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn green(&self, t: &str) -> String {
        self.wrap("32", t)
    }
    fn yellow(&self, t: &str) -> String {
        self.wrap("33", t)
    }
    fn red(&self, t: &str) -> String {
        self.wrap("1;31", t)
    }
    fn dim(&self, t: &str) -> String {
        self.wrap("2", t)
    }
    fn bold(&self, t: &str) -> String {
        self.wrap("1", t)
    }
}

pub fn report(r: &RunReport, color: bool) -> String {
    report_with(r, color, false)
}

/// [`report`], with a step's multi-line summary (cert.check's expiry table)
/// that is the same as on an earlier host folded into one line naming that
/// host — for a person reading a terminal, not for scripts.
pub fn report_folded(r: &RunReport, color: bool) -> String {
    report_with(r, color, true)
}

/// The tables already printed: (step id, table) → the host it was printed for.
type Printed<'a> = HashMap<(&'a str, String), &'a str>;

fn report_with(r: &RunReport, color: bool, fold: bool) -> String {
    let p = Paint(color);
    let mut printed = fold.then(Printed::new);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {}{}",
        p.bold("runbook"),
        r.runbook,
        if r.dry_run {
            " (dry-run: nothing is changed)"
        } else {
            ""
        }
    );
    if let Some(k) = &r.kubeconfig {
        let _ = writeln!(
            out,
            "{} {k}: the API steps use it, not the masters' admin.conf",
            p.bold("kubeconfig")
        );
    }
    for f in &r.found {
        let _ = writeln!(
            out,
            "\n{} {}\n  hint: {}",
            p.red("warning:"),
            f.error,
            f.hint
        );
    }
    for h in &r.hosts {
        host(&mut out, h, &p, printed.as_mut());
    }
    let _ = writeln!(out, "\n{}", run_status(r, &p));
    if !r.dry_run {
        let _ = writeln!(out, "{}", p.dim(&format!("run id {}", r.run_id)));
    }
    out
}

fn host_status(h: &HostReport, p: &Paint) -> String {
    match h.status {
        HostStatus::Changed | HostStatus::WouldChange => p.yellow(h.status.name()),
        HostStatus::Unchanged | HostStatus::Skipped => p.green(h.status.name()),
        HostStatus::NotStarted | HostStatus::Interrupted => p.dim(h.status.name()),
        _ => p.red(h.status.name()),
    }
}

fn run_status(r: &RunReport, p: &Paint) -> String {
    match r.status {
        remedy_engine::RunStatus::Ok => p.green(&r.summary),
        remedy_engine::RunStatus::Interrupted => p.yellow(&r.summary),
        _ => p.red(&r.summary),
    }
}

/// A finished run for a person at a terminal `width` columns wide: per host
/// its outcome and backups, the steps that changed, failed or were undone
/// (a failure with its error and hint), each line cut to the width; then
/// the run's outcome and where the full report is (`remedy audit show`).
pub fn summary(r: &RunReport, color: bool, width: usize) -> String {
    let p = Paint(color);
    let mut out = String::new();
    for f in &r.found {
        let text = format!("{} {}\n  hint: {}\n", p.red("warning:"), f.error, f.hint);
        out.push_str(&terminal::wrap(&text, width));
    }
    for h in &r.hosts {
        let mut lines = Vec::new();
        let backups = h
            .steps
            .iter()
            .flat_map(|s| &s.backups)
            .filter(|b| b.location.is_some())
            .count();
        let backed_up = match backups {
            0 => String::new(),
            1 => " · 1 file backed up".to_string(),
            n => format!(" · {n} files backed up"),
        };
        lines.push(format!(
            "{} {}{backed_up}",
            p.bold(&format!("{}:", h.host)),
            host_status(h, &p)
        ));
        for (status, word) in [
            (StepStatus::Changed, "changed"),
            (StepStatus::Deferred, "later"),
            (StepStatus::RolledBack, "undone"),
        ] {
            let ids: Vec<&str> = h
                .steps
                .iter()
                .filter(|s| s.status == status)
                .map(|s| s.id.as_str())
                .collect();
            if !ids.is_empty() {
                lines.push(format!("  {word}: {}", ids.join(", ")));
            }
        }
        let failed = h.steps.iter().find(|s| s.status == StepStatus::Failed);
        let error = failed
            .and_then(|s| s.error.as_deref().map(|e| format!("{}: {e}", s.id)))
            .or_else(|| h.error.clone());
        // A step can fail without failing its host (`on_failure: handled`:
        // a later step took another way): that is no error of the run's.
        let handled = failed.is_some() && !h.status.is_failure();
        if let Some(e) = error {
            let first = e.lines().next().unwrap_or_default();
            lines.push(format!(
                "  {}",
                match handled {
                    true => p.yellow(&format!("handled: {first}")),
                    false => p.red(&format!("error: {first}")),
                }
            ));
        }
        let hint = failed.and_then(|s| s.hint.as_ref()).or(h.hint.as_ref());
        if let Some(hint) = hint.filter(|_| !handled) {
            lines.push(format!("  hint: {hint}"));
        }
        for line in lines {
            let _ = writeln!(out, "{}", terminal::truncate(&line, width));
        }
    }
    let _ = writeln!(out, "\n{}", run_status(r, &p));
    if !r.dry_run {
        let id = &r.run_id;
        let footer =
            format!("run id {id}\nevery step, diff and backup: remedy audit show {id} (or -v)\n");
        out.push_str(&p.dim(&terminal::wrap(&footer, width)));
    }
    out
}

fn host<'a>(out: &mut String, h: &'a HostReport, p: &Paint, mut printed: Option<&mut Printed<'a>>) {
    let _ = writeln!(
        out,
        "\n{} {}",
        p.bold(&format!("{}:", h.host)),
        host_status(h, p)
    );
    let id_w = h.steps.iter().map(|s| s.id.len()).max().unwrap_or(0);
    let act_w = h.steps.iter().map(|s| s.action.len()).max().unwrap_or(0);
    for s in &h.steps {
        step(out, &h.host, s, p, (id_w, act_w), printed.as_deref_mut());
    }
    if h.steps.is_empty() {
        if let Some(e) = &h.error {
            let _ = writeln!(out, "  {}", p.red(&format!("error: {e}")));
        }
    }
    // The failed step already shows its own hint; repeat only a host-level one.
    if let Some(hint) = h
        .hint
        .as_ref()
        .filter(|hint| !h.steps.iter().any(|s| s.hint.as_ref() == Some(*hint)))
    {
        let _ = writeln!(out, "  hint: {hint}");
    }
}

fn step<'a>(
    out: &mut String,
    host: &'a str,
    s: &'a StepReport,
    p: &Paint,
    (id_w, act_w): (usize, usize),
    printed: Option<&mut Printed<'a>>,
) {
    let tag = match s.status {
        StepStatus::Skipped => p.dim("[skip]   "),
        StepStatus::Unchanged => p.green("[ok]     "),
        StepStatus::Changed => p.yellow("[changed]"),
        StepStatus::WouldChange => p.yellow("[change] "),
        StepStatus::Deferred => p.yellow("[later]  "),
        StepStatus::Failed => p.red("[FAILED] "),
        StepStatus::RolledBack => p.yellow("[undone] "),
    };
    let pad = "            ";
    let mut lines = s.summary.lines();
    let _ = writeln!(
        out,
        "  {tag} {:id_w$}  {:act_w$}  {}",
        s.id,
        s.action,
        lines.next().unwrap_or("")
    );
    // A multi-line summary (e.g. cert.check's expiry table) goes under the step.
    let table: Vec<&str> = lines.collect();
    let first = printed.and_then(|printed| {
        let key = (s.id.as_str(), table.join("\n"));
        (!table.is_empty()).then(|| *printed.entry(key).or_insert(host))
    });
    match first {
        Some(first) if first != host => {
            let _ = writeln!(out, "{pad}{}", p.dim(&format!("(same as {first})")));
        }
        _ => {
            for line in table {
                let _ = writeln!(out, "{pad}{line}");
            }
        }
    }
    if matches!(
        s.status,
        StepStatus::WouldChange | StepStatus::Changed | StepStatus::RolledBack | StepStatus::Failed
    ) {
        for c in s.plan.iter().flat_map(|pl| pl.changes.iter()) {
            let diff_lines = |out: &mut String, diff: &str| {
                for line in diff.lines() {
                    let colored = if line.starts_with('+') && !line.starts_with("+++") {
                        p.green(line)
                    } else if line.starts_with('-') && !line.starts_with("---") {
                        p.red(line)
                    } else {
                        p.dim(line)
                    };
                    let _ = writeln!(out, "{pad}{colored}");
                }
            };
            match c {
                Change::File { diff, .. } => diff_lines(out, diff),
                Change::Object {
                    object,
                    op,
                    resource_version,
                    diff,
                    ..
                } => {
                    let version = resource_version
                        .as_deref()
                        .map(|v| format!(" (resourceVersion {v})"))
                        .unwrap_or_default();
                    let _ = writeln!(out, "{pad}{op} {object}{version}");
                    diff_lines(out, diff);
                }
                Change::EtcdKey {
                    key,
                    op,
                    mod_revision,
                    size,
                    sha256,
                } => {
                    let _ = writeln!(
                        out,
                        "{pad}{op} etcd key {key} ({size} bytes, mod revision {mod_revision}, sha256 {}…)",
                        &sha256[..sha256.len().min(12)]
                    );
                }
                Change::Command { cmd } => {
                    let _ = writeln!(out, "{pad}$ {cmd}");
                }
                Change::Move { from, to } => {
                    let _ = writeln!(out, "{pad}mv {from} {to}");
                }
                Change::Note { text } | Change::Certificate { text, .. } => {
                    let _ = writeln!(out, "{pad}{text}");
                }
                Change::Restart { pod, detail } => {
                    let _ = writeln!(out, "{pad}restart {pod}: {detail}");
                }
                Change::Mode { path, from, to } => {
                    let _ = writeln!(out, "{pad}chmod {to} {path} (was {from})");
                }
                Change::Server {
                    lb,
                    backend,
                    server,
                    from,
                    to,
                    ..
                } => {
                    let _ = writeln!(out, "{pad}{lb}: {backend}/{server} {from} → {to}");
                }
            }
        }
    }
    for b in &s.backups {
        let line = match (&b.location, &b.sha256) {
            (Some(loc), Some(sha)) => {
                let version = b
                    .object
                    .as_ref()
                    .and_then(|o| o.resource_version.as_deref())
                    .map(|v| format!(", resourceVersion {v}"))
                    .unwrap_or_default();
                format!("backup: {} → {loc} (sha256 {sha}{version})", b.path)
            }
            _ => format!("backup: {} did not exist (rollback removes it)", b.path),
        };
        let _ = writeln!(out, "{pad}{}", p.dim(&line));
    }
    if let Some(e) = &s.error {
        for (i, line) in e.lines().enumerate() {
            let _ = writeln!(
                out,
                "{pad}{}",
                p.red(&if i == 0 {
                    format!("error: {line}")
                } else {
                    line.to_string()
                })
            );
        }
    }
    if let Some(h) = &s.hint {
        let _ = writeln!(out, "{pad}hint: {h}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use remedy_engine::RunStatus;

    fn host(name: &str, status: HostStatus, steps: Vec<StepReport>) -> HostReport {
        HostReport {
            host: name.into(),
            status,
            steps,
            error: None,
            hint: None,
        }
    }

    fn run(hosts: Vec<HostReport>, status: RunStatus) -> RunReport {
        RunReport {
            run_id: "01a2-run".into(),
            runbook: "cert-renew".into(),
            dry_run: false,
            status,
            kubeconfig: None,
            found: Vec::new(),
            hosts,
            summary: "3 hosts: 1 changed, 1 failed, 1 not started".into(),
        }
    }

    fn expiry(table: &str) -> StepReport {
        StepReport::new(
            "expiry",
            "cert.check",
            StepStatus::Unchanged,
            format!("15 certificates\n{table}"),
        )
    }

    #[test]
    fn an_identical_table_is_folded_into_the_host_it_repeats() {
        let same = "CERTIFICATE  EXPIRES\nca           Dec 02, 2036";
        let report = run(
            vec![
                host("master-1", HostStatus::Unchanged, vec![expiry(same)]),
                host("master-2", HostStatus::Unchanged, vec![expiry(same)]),
                host(
                    "master-3",
                    HostStatus::Unchanged,
                    vec![expiry("CERTIFICATE  EXPIRES\nca           Dec 03, 2036")],
                ),
            ],
            RunStatus::Ok,
        );
        let folded = report_folded(&report, false);
        assert_eq!(folded.matches("CERTIFICATE").count(), 2, "{folded}");
        assert!(folded.contains("(same as master-1)"), "{folded}");
        assert!(folded.contains("Dec 03, 2036"), "{folded}");
        // For scripts, every table, as before.
        let plain = super::report(&report, false);
        assert_eq!(plain.matches("CERTIFICATE").count(), 3, "{plain}");
        assert!(!plain.contains("same as"), "{plain}");
    }

    #[test]
    fn a_handled_failure_in_the_summary_is_not_an_error_of_the_host() {
        let mut probe = StepReport::new("probe", "kube.get", StepStatus::Failed, "");
        probe.error = Some("the API server did not answer\nmore".into());
        probe.hint = Some("is it up?".into());
        let report = run(
            vec![host(
                "master-1",
                HostStatus::Changed,
                vec![
                    probe,
                    StepReport::new("fallback", "file.move", StepStatus::Changed, "moved"),
                ],
            )],
            RunStatus::Ok,
        );
        let text = summary(&report, false, 100);
        let lines: Vec<&str> = text.lines().take(3).collect();
        assert_eq!(
            lines,
            [
                "master-1: changed",
                "  changed: fallback",
                "  handled: probe: the API server did not answer",
            ],
            "{text}"
        );
    }

    #[test]
    fn the_summary_has_a_few_lines_per_host_and_the_failure_with_its_hint() {
        let mut failed = StepReport::new("restart", "static_pod.restart", StepStatus::Failed, "");
        failed.error = Some(format!(
            "kube-apiserver did not answer {}\nmore",
            "x".repeat(200)
        ));
        failed.hint = Some("see its log: remedy logs master-2 kube-apiserver".into());
        let report = run(
            vec![
                host(
                    "master-1",
                    HostStatus::Changed,
                    vec![
                        expiry("T"),
                        StepReport::new("renew", "cert.renew", StepStatus::Changed, "renew"),
                    ],
                ),
                host(
                    "master-2",
                    HostStatus::RolledBack,
                    vec![
                        StepReport::new("renew", "cert.renew", StepStatus::RolledBack, "renew"),
                        failed,
                    ],
                ),
                host("master-3", HostStatus::NotStarted, Vec::new()),
            ],
            RunStatus::Failed,
        );
        let text = summary(&report, false, 100);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.iter().all(|l| l.chars().count() <= 100), "{text}");
        assert_eq!(
            lines,
            [
                "master-1: changed",
                "  changed: renew",
                "master-2: failed, rolled back",
                "  undone: renew",
                &format!(
                    "  error: restart: kube-apiserver did not answer {}…",
                    "x".repeat(51)
                ),
                "  hint: see its log: remedy logs master-2 kube-apiserver",
                "master-3: not started",
                "",
                "3 hosts: 1 changed, 1 failed, 1 not started",
                "run id 01a2-run",
                "every step, diff and backup: remedy audit show 01a2-run (or -v)",
            ],
            "{text}"
        );
    }
}
