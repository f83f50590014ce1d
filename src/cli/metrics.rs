//! `GET /metrics` of `remedy daemon` and `remedy serve`: the Prometheus text
//! exposition (format 0.0.4), written by hand — a dozen families do not need
//! a metrics library in the binary.
//!
//! Runs, approvals, notifications, schedules and locks are read from the
//! journal at each scrape, not counted in memory: runs are child processes
//! and other shells, and the journal already holds every one of them, so the
//! numbers survive restarts and agree with `remedy runs`. Only the callbacks
//! `remedy serve` answers are counted in its own memory ([`Callbacks`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use remedy_journal::{Journal, RunFilter};

/// Upper bounds of the run-duration histogram's buckets, in seconds: from a
/// quick file edit to a rolling certificate renewal of many masters.
const DURATION_BUCKETS: [f64; 10] = [
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// The channels `remedy serve` takes callbacks on.
const CHANNELS: [&str; 3] = ["slack", "mattermost", "webhook"];

/// Callbacks answered by this `remedy serve` process: by channel, and
/// `accepted` or the refusal's reason (`CallbackError::reason`).
#[derive(Default)]
pub struct Callbacks {
    counts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Callbacks {
    pub fn count(&self, channel: &'static str, result: &'static str) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((channel, result)).or_default() += 1;
        }
    }

    fn snapshot(&self) -> BTreeMap<(&'static str, &'static str), u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// One exposition being written: families with their HELP and TYPE, then
/// their samples.
#[derive(Default)]
struct Exposition {
    out: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let v = v
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{k}=\"{v}\"");
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Why a scheduled firing was skipped, as a label, from the reason the
/// daemon journaled (see `daemon::blocked` and `daemon::fire`).
fn skip_cause(reason: &str) -> &'static str {
    if reason.starts_with("kill switch") {
        "kill_switch"
    } else if reason.starts_with("outside the maintenance window") {
        "window"
    } else if reason.contains("locked") {
        "locked"
    } else if reason.starts_with("unhealthy") {
        "unhealthy"
    } else {
        "other"
    }
}

/// The exposition at `now_ms`, from the journal and (for `remedy serve`)
/// the callbacks this process answered.
pub fn render(
    j: &Journal,
    callbacks: Option<&Callbacks>,
    now_ms: i64,
) -> Result<String, remedy_journal::JournalError> {
    let mut x = Exposition::default();

    // Runs (not dry runs): finished ones by outcome, running ones, durations.
    let mut outcomes: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut running: BTreeMap<String, u64> = BTreeMap::new();
    let mut durations: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in j.runs(&RunFilter::default())? {
        if r.dry_run {
            continue;
        }
        let status = r.effective_status();
        if status == "running" {
            *running.entry(r.runbook).or_default() += 1;
            continue;
        }
        if let Some(end) = r.finished_ms {
            durations
                .entry(r.runbook.clone())
                .or_default()
                .push((end - r.started_ms).max(0) as f64 / 1000.0);
        }
        *outcomes.entry((r.runbook, status)).or_default() += 1;
    }
    x.family(
        "remedy_runs_total",
        "counter",
        "Runs recorded in the journal that ended, by runbook and outcome (ok, failed, interrupted, rollback_failed, denied, ...); dry runs are not counted.",
    );
    for ((runbook, outcome), n) in &outcomes {
        x.sample(
            "remedy_runs_total",
            &[("runbook", runbook), ("outcome", outcome)],
            *n as f64,
        );
    }
    x.family(
        "remedy_runs_running",
        "gauge",
        "Runs in progress (or waiting for approval), by runbook.",
    );
    for (runbook, n) in &running {
        x.sample("remedy_runs_running", &[("runbook", runbook)], *n as f64);
    }
    x.family(
        "remedy_run_duration_seconds",
        "histogram",
        "How long ended runs took, from start (including waiting for approval) to end, by runbook.",
    );
    for (runbook, secs) in &durations {
        let name = "remedy_run_duration_seconds_bucket";
        for le in DURATION_BUCKETS {
            let n = secs.iter().filter(|s| **s <= le).count();
            x.sample(
                name,
                &[("runbook", runbook), ("le", &le.to_string())],
                n as f64,
            );
        }
        let labels = [("runbook", runbook.as_str())];
        x.sample(
            name,
            &[("runbook", runbook), ("le", "+Inf")],
            secs.len() as f64,
        );
        x.sample(
            "remedy_run_duration_seconds_sum",
            &labels,
            secs.iter().sum(),
        );
        x.sample(
            "remedy_run_duration_seconds_count",
            &labels,
            secs.len() as f64,
        );
    }

    // Approvals waiting for a decision.
    let pending = j.requests(None)?;
    x.family(
        "remedy_approvals_pending",
        "gauge",
        "Approval requests waiting for a decision.",
    );
    x.sample("remedy_approvals_pending", &[], pending.len() as f64);
    x.family(
        "remedy_approvals_oldest_pending_age_seconds",
        "gauge",
        "Age of the oldest approval request still waiting (0 when none is).",
    );
    let oldest = pending.iter().map(|r| r.created_ms).min();
    x.sample(
        "remedy_approvals_oldest_pending_age_seconds",
        &[],
        oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0),
    );

    // Notifications that failed after their retries.
    let mut failed: BTreeMap<String, u64> = BTreeMap::new();
    for e in j.events_of_kind("notification_failed")? {
        let notifier = e.payload["delivery"]["notifier"]
            .as_str()
            .unwrap_or("unknown")
            .to_string();
        *failed.entry(notifier).or_default() += 1;
    }
    x.family(
        "remedy_notifications_failed_total",
        "counter",
        "Approval notifications that failed after all their attempts, by notifier.",
    );
    for (notifier, n) in &failed {
        x.sample(
            "remedy_notifications_failed_total",
            &[("notifier", notifier)],
            *n as f64,
        );
    }

    // Schedules: how firings ended, why they were skipped, the last success.
    let mut firings: BTreeMap<(String, &str), u64> = BTreeMap::new();
    let mut skipped: BTreeMap<(String, &str), u64> = BTreeMap::new();
    let mut last_ok: BTreeMap<String, i64> = BTreeMap::new();
    for kind in ["schedule_fired", "schedule_skipped", "schedule_missed"] {
        for e in j.events_of_kind(kind)? {
            let Some(name) = e.run_id.strip_prefix("schedule:") else {
                continue;
            };
            let result = match kind {
                "schedule_fired" if e.payload["outcome"] == "ok" => {
                    let t = last_ok.entry(name.to_string()).or_default();
                    *t = (*t).max(e.time_ms);
                    "ok"
                }
                "schedule_fired" => "failed",
                "schedule_missed" => "missed",
                _ => {
                    // Skipped before the run: `reason`; by the run's plan or lock: `outcome`.
                    let why = e.payload["reason"]
                        .as_str()
                        .or(e.payload["outcome"].as_str());
                    let cause = skip_cause(why.unwrap_or(""));
                    *skipped.entry((name.to_string(), cause)).or_default() += 1;
                    "skipped"
                }
            };
            *firings.entry((name.to_string(), result)).or_default() += 1;
        }
    }
    x.family(
        "remedy_schedule_firings_total",
        "counter",
        "Scheduled firings by schedule and result: ok, failed (the run did not end ok), skipped, missed (the daemon was down).",
    );
    for ((schedule, result), n) in &firings {
        x.sample(
            "remedy_schedule_firings_total",
            &[("schedule", schedule), ("result", result)],
            *n as f64,
        );
    }
    x.family(
        "remedy_schedule_skipped_total",
        "counter",
        "Scheduled firings not started, by schedule and reason: kill_switch, window, locked (a target was locked by another run: remedy does not queue behind a lock, the next firing tries again), unhealthy (the plan failed).",
    );
    for ((schedule, reason), n) in &skipped {
        x.sample(
            "remedy_schedule_skipped_total",
            &[("schedule", schedule), ("reason", reason)],
            *n as f64,
        );
    }
    x.family(
        "remedy_schedule_last_success_timestamp_seconds",
        "gauge",
        "When each schedule's last run ended ok (Unix time).",
    );
    for (schedule, t) in &last_ok {
        x.sample(
            "remedy_schedule_last_success_timestamp_seconds",
            &[("schedule", schedule)],
            *t as f64 / 1000.0,
        );
    }

    // Locks held now.
    let locks = j.locks()?;
    x.family(
        "remedy_locks_held",
        "gauge",
        "Target locks held now; stale=\"true\": the holder's lease expired or its process is gone (see `remedy lock list`).",
    );
    for stale in [false, true] {
        let n = locks.iter().filter(|l| l.stale == stale).count();
        x.sample(
            "remedy_locks_held",
            &[("stale", if stale { "true" } else { "false" })],
            n as f64,
        );
    }

    if let Some(callbacks) = callbacks {
        let counts = callbacks.snapshot();
        x.family(
            "remedy_callbacks_accepted_total",
            "counter",
            "Chat callbacks whose decision was recorded, by channel.",
        );
        for channel in CHANNELS {
            let n = counts.get(&(channel, "accepted")).copied().unwrap_or(0);
            x.sample(
                "remedy_callbacks_accepted_total",
                &[("channel", channel)],
                n as f64,
            );
        }
        x.family(
            "remedy_callbacks_refused_total",
            "counter",
            "Chat callbacks refused, by channel and reason: bad_signature, bad_token, stale, unsigned, replay, malformed, unknown_user, not_configured, refused (by the approval policy), internal.",
        );
        for ((channel, reason), n) in counts.iter().filter(|((_, r), _)| *r != "accepted") {
            x.sample(
                "remedy_callbacks_refused_total",
                &[("channel", channel), ("reason", reason)],
                *n as f64,
            );
        }
    }
    Ok(x.out)
}

/// `GET /metrics` on an axum router, reading `journal` at each scrape.
pub fn routes(journal: Arc<Journal>, callbacks: Option<Arc<Callbacks>>) -> axum::Router {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let journal = Arc::clone(&journal);
            let callbacks = callbacks.clone();
            async move {
                // The journal is SQLite: read it off the async threads.
                let text = tokio::task::spawn_blocking(move || {
                    render(&journal, callbacks.as_deref(), super::journal::now_ms())
                })
                .await;
                match text {
                    Ok(Ok(text)) => (
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                        text,
                    )
                        .into_response(),
                    Ok(Err(e)) => {
                        tracing::error!("/metrics: reading the journal: {e}");
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("cannot read the journal: {e}\n"),
                        )
                            .into_response()
                    }
                    Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
                }
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut x = Exposition::default();
        x.sample("m", &[("a", "x\"y\\z\nw")], 1.0);
        assert_eq!(x.out, "m{a=\"x\\\"y\\\\z\\nw\"} 1\n");
    }

    /// The example dashboard queries only families remedy exposes.
    #[test]
    fn the_grafana_dashboard_queries_only_exposed_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("journal.db")).unwrap();
        let text = render(&j, Some(&Callbacks::default()), 0).unwrap();
        let families: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../examples/grafana-dashboard.json")).unwrap();
        let mut queried = 0;
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap();
                for (at, _) in expr.match_indices("remedy_") {
                    let name: String = expr[at..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    let family = ["_bucket", "_sum", "_count"]
                        .iter()
                        .find_map(|s| name.strip_suffix(s))
                        .unwrap_or(&name);
                    assert!(
                        families.contains(&family),
                        "{}: `{name}` is not exposed (families: {families:?})",
                        panel["title"]
                    );
                    queried += 1;
                }
            }
        }
        assert!(queried >= 12, "{queried}");
    }

    #[test]
    fn skip_reasons_the_daemon_writes_are_classified() {
        assert_eq!(
            skip_cause("kill switch /etc/remedy/STOP exists"),
            "kill_switch"
        );
        assert_eq!(
            skip_cause("outside the maintenance window 02:00-05:00 (UTC)"),
            "window"
        );
        assert_eq!(
            skip_cause("target m1@/inv.yaml is locked by run r1 (a@b)"),
            "locked"
        );
        assert_eq!(skip_cause("a target is locked by another run"), "locked");
        assert_eq!(
            skip_cause("unhealthy: the plan failed on some hosts; nothing was changed"),
            "unhealthy"
        );
    }
}
