//! `remedy check`: the quick, read-only diagnosis of a control plane from
//! the jump host — every master at once over SSH, etcd through its members,
//! every load balancer — as one list of [`Finding`]s (host, check, severity,
//! what was seen, the evidence, the command that fixes it).
//!
//! The checks are [`Collector`]s run concurrently, each within the time
//! budget: a collector that overruns (a master that does not answer) becomes
//! a critical finding, never a hang. A new kind of check (the API-side ones:
//! Nodes Ready, failing webhooks, APF rejections) is one more collector.
//! Nothing here changes a host: commands go through `Transport::probe`.

mod api;
mod classify;
mod etcd;
mod lb;
mod master;

pub use classify::{classify, Cause};

use async_trait::async_trait;
use remedy_transport::{Connector, Host};
use serde::Serialize;
use std::time::{Duration, Instant};

/// How bad a finding is; the order is the exit code's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Warn,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warn => "warn",
            Severity::Critical => "critical",
        }
    }
}

/// One thing `check` looked at, and what it saw.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    /// An inventory host, or `etcd` for the cluster as a whole.
    pub host: String,
    /// What was checked: `ssh`, `kubelet`, `pod/kube-apiserver`,
    /// `apiserver/readyz`, `etcd/health`, `lb/lb-1`, …
    pub check: String,
    pub severity: Severity,
    /// What was seen, in one line.
    pub message: String,
    /// The lines it was concluded from (a log line quoted, a failing
    /// readiness check, a certificate's expiry).
    pub evidence: Vec<String>,
    /// The command that fixes it, when there is one.
    pub fix: Option<String>,
}

impl Finding {
    pub fn new(
        host: impl Into<String>,
        check: impl Into<String>,
        severity: Severity,
        message: impl Into<String>,
    ) -> Finding {
        Finding {
            host: host.into(),
            check: check.into(),
            severity,
            message: message.into(),
            evidence: Vec::new(),
            fix: None,
        }
    }
    pub fn ok(
        host: impl Into<String>,
        check: impl Into<String>,
        message: impl Into<String>,
    ) -> Finding {
        Finding::new(host, check, Severity::Ok, message)
    }
    pub fn evidence(mut self, lines: impl IntoIterator<Item = String>) -> Finding {
        self.evidence.extend(lines);
        self
    }
    pub fn fix(mut self, fix: Option<String>) -> Finding {
        self.fix = fix;
        self
    }
}

/// What every collector is given.
pub struct CheckCtx<'a> {
    pub connector: &'a dyn Connector,
    /// The masters to diagnose (group `masters`, narrowed by `--limit`).
    pub masters: &'a [Host],
    /// Group `etcd`: every member, whatever `--limit` says (quorum is the
    /// cluster's).
    pub etcd: &'a [Host],
    /// Group `lbs`.
    pub lbs: &'a [Host],
    /// `-i PATH` as the fix commands should carry it ("" when the default).
    pub inventory_arg: String,
    /// The newest etcd snapshot the journal knows and the jump host still
    /// has, for the etcd-restore fix.
    pub etcd_snapshot: Option<String>,
    /// When everything must have answered.
    pub deadline: Instant,
}

impl CheckCtx<'_> {
    /// `remedy run RUNBOOK -i INV ARGS`: a fix as the user types it.
    pub fn run_fix(&self, runbook: &str, args: &str) -> Option<String> {
        let args = if args.is_empty() {
            String::new()
        } else {
            format!(" {args}")
        };
        Some(format!("remedy run {runbook}{}{args}", self.inventory_arg))
    }
    /// `remedy run etcd-restore`, from the newest snapshot the journal knows
    /// (without one, the runbook's default directory, where it says what
    /// is missing).
    pub fn restore_fix(&self) -> Option<String> {
        let args = self
            .etcd_snapshot
            .as_deref()
            .map(|p| format!("-p snapshot={}", remedy_transport::shell::word(p)))
            .unwrap_or_default();
        self.run_fix("etcd-restore", &args)
    }
    /// Time left before the deadline (at least a little, so a late call
    /// still fails by itself rather than panicking).
    pub fn left(&self) -> Duration {
        self.deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(50))
    }
}

/// One source of findings.
#[async_trait]
pub trait Collector: Send + Sync {
    /// What it covers, for the finding made when it runs out of time.
    fn name(&self) -> &'static str;
    async fn collect(&self, ctx: &CheckCtx<'_>) -> Vec<Finding>;
}

/// The collectors `remedy check` runs: the masters, etcd, the LBs, the API.
pub fn collectors() -> Vec<Box<dyn Collector>> {
    vec![
        Box::new(master::Masters),
        Box::new(etcd::Etcd),
        Box::new(lb::LoadBalancers),
        Box::new(api::Api),
    ]
}

/// Run every collector at once, each until the deadline; findings sorted
/// by host (inventory order), then check.
pub async fn run(ctx: &CheckCtx<'_>, collectors: &[Box<dyn Collector>]) -> Vec<Finding> {
    let runs = collectors.iter().map(|c| async move {
        // Collectors bound each host by the deadline themselves (one host
        // that hangs is its own finding); this is the backstop.
        let backstop = ctx.left() + Duration::from_millis(500);
        match tokio::time::timeout(backstop, c.collect(ctx)).await {
            Ok(found) => found,
            Err(_) => vec![Finding::new(
                "-",
                c.name(),
                Severity::Critical,
                format!("no answer within the time budget: {} not checked", c.name()),
            )],
        }
    });
    let mut all: Vec<Finding> = futures::future::join_all(runs)
        .await
        .into_iter()
        .flatten()
        .collect();
    across_collectors(ctx, &mut all);
    let order = |host: &str| {
        ctx.masters
            .iter()
            .chain(ctx.etcd)
            .chain(ctx.lbs)
            .position(|h| h.name == host)
            .unwrap_or(usize::MAX)
    };
    all.sort_by(|a, b| {
        (order(&a.host), &a.host, &a.check).cmp(&(order(&b.host), &b.host, &b.check))
    });
    all
}

/// Conclusions one collector cannot draw alone: an API server that fails
/// its etcd check while its master's etcd member is healthy again is stuck
/// (a real kubelet's liveness probe would restart it; nothing else will).
fn across_collectors(ctx: &CheckCtx<'_>, all: &mut [Finding]) {
    let etcd_ok: Vec<String> = all
        .iter()
        .filter(|f| f.check == "etcd/health" && f.severity == Severity::Ok)
        .map(|f| f.host.clone())
        .collect();
    let quorum_ok = !all.iter().any(|f| f.check == "etcd/quorum");
    for f in all.iter_mut() {
        let waits_for_etcd = f.fix.as_deref() == Some(ETCD_FIRST);
        if f.check.starts_with("apiserver/")
            && waits_for_etcd
            && quorum_ok
            && etcd_ok.contains(&f.host)
        {
            f.message
                .push_str(" (its etcd member is healthy: the API server is stuck)");
            f.fix = ctx.run_fix(
                "static-pod-restart",
                &format!("-l {} -p pods=kube-apiserver", f.host),
            );
        }
    }
}

/// The fix of an API server that cannot reach etcd.
pub(crate) const ETCD_FIRST: &str =
    "fix etcd first (see the etcd findings); do not restart the API server into a dead etcd";

/// The worst severity found (`Ok` for none).
pub fn worst(findings: &[Finding]) -> Severity {
    findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Ok)
}

/// `f` within the time left, or a message saying what timed out.
pub(crate) async fn within<T>(
    ctx: &CheckCtx<'_>,
    what: &str,
    f: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    let budget = ctx.left();
    tokio::time::timeout(budget, f)
        .await
        .map_err(|_| format!("{what}: no answer within {:.1}s", budget.as_secs_f64()))
}
