//! Human output of plans and results: per host, one line per step with its
//! status, diffs and commands indented under it, errors with their hints, and
//! the summary line.

use remedy_engine::plan::Change;
use remedy_engine::report::{HostReport, StepReport, StepStatus};
use remedy_engine::{HostStatus, RunReport};
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
    let p = Paint(color);
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
        host(&mut out, h, &p);
    }
    let summary = match r.status {
        remedy_engine::RunStatus::Ok => p.green(&r.summary),
        remedy_engine::RunStatus::Interrupted => p.yellow(&r.summary),
        _ => p.red(&r.summary),
    };
    let _ = writeln!(out, "\n{summary}");
    if !r.dry_run {
        let _ = writeln!(out, "{}", p.dim(&format!("run id {}", r.run_id)));
    }
    out
}

fn host(out: &mut String, h: &HostReport, p: &Paint) {
    let status = match h.status {
        HostStatus::Changed | HostStatus::WouldChange => p.yellow(h.status.name()),
        HostStatus::Unchanged | HostStatus::Skipped => p.green(h.status.name()),
        HostStatus::NotStarted | HostStatus::Interrupted => p.dim(h.status.name()),
        _ => p.red(h.status.name()),
    };
    let _ = writeln!(out, "\n{} {}", p.bold(&format!("{}:", h.host)), status);
    let id_w = h.steps.iter().map(|s| s.id.len()).max().unwrap_or(0);
    let act_w = h.steps.iter().map(|s| s.action.len()).max().unwrap_or(0);
    for s in &h.steps {
        step(out, s, p, id_w, act_w);
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

fn step(out: &mut String, s: &StepReport, p: &Paint, id_w: usize, act_w: usize) {
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
    for line in lines {
        let _ = writeln!(out, "{pad}{line}");
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
                } => {
                    let version = resource_version
                        .as_deref()
                        .map(|v| format!(" (resourceVersion {v})"))
                        .unwrap_or_default();
                    let _ = writeln!(out, "{pad}{op} {object}{version}");
                    diff_lines(out, diff);
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
