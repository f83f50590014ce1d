//! The rollout as a whole. A dry-run plans every host against the state of
//! the load balancers now, but a real run changes the hosts batch after
//! batch: a drain that is allowed alone may be refused once earlier batches
//! have drained other servers and left them out (lb-drain does), or while
//! other hosts of the same batch are drained with it. After a dry-run has
//! planned every host, each drain is checked again against the state the
//! rollout would have reached by then; a host whose drain would be refused
//! fails its plan, so the run is refused before anything changes.

use super::Executor;
use crate::event::EventKind;
use crate::plan::{Change, DrainGuard};
use crate::report::{HostReport, HostStatus, StepReport, StepStatus};
use remedy_dsl::ActionKind;
use remedy_haproxy::DrainRefused;
use std::collections::BTreeMap;

/// One server a host's planned drain takes out of one LB.
struct Out<'r> {
    step: usize,
    lb: &'r str,
    backend: &'r str,
    server: &'r str,
    guard: &'r DrainGuard,
}

/// The servers each LB has out of rotation, by LB, each with who took it
/// out (e.g. `master-1, earlier in this run`).
type OutOfRotation = BTreeMap<String, BTreeMap<String, String>>;

/// What a host's plan does to the LBs: the drains it plans, and whether it
/// leaves them drained at its end (no `haproxy.ready` runs after them).
fn lb_effects(h: &HostReport) -> (Vec<Out<'_>>, bool) {
    let mut outs = Vec::new();
    let mut left_out = false;
    for (i, s) in h.steps.iter().enumerate() {
        let Some(kind) = ActionKind::from_name(&s.action) else {
            continue;
        };
        let planned = matches!(s.status, StepStatus::WouldChange | StepStatus::Unchanged);
        match kind {
            ActionKind::HaproxyDrain if s.status == StepStatus::WouldChange => {
                let changes = s.plan.iter().flat_map(|p| &p.changes);
                for c in changes {
                    if let Change::Server {
                        lb,
                        backend,
                        server,
                        guard: Some(guard),
                        ..
                    } = c
                    {
                        outs.push(Out {
                            step: i,
                            lb,
                            backend,
                            server,
                            guard,
                        });
                        left_out = true;
                    }
                }
            }
            ActionKind::HaproxyReady if planned => left_out = false,
            _ => {}
        }
    }
    (outs, left_out)
}

impl Executor<'_> {
    /// Check a dry-run's drains over the whole rollout (module doc); a host
    /// whose drain would be refused there fails, at that step.
    pub(super) fn check_rollout(&self, reports: &mut [HostReport]) {
        let sizes = self.runbook.strategy.batch_sizes(reports.len());
        // Out of rotation before the current batch, left so by earlier ones.
        let mut left: OutOfRotation = BTreeMap::new();
        let mut offset = 0;
        for size in sizes {
            let batch = offset..offset + size;
            offset += size;
            let mut during = left.clone();
            for h in &reports[batch.clone()] {
                for o in lb_effects(h).0 {
                    during.entry(o.lb.to_string()).or_default().insert(
                        o.server.to_string(),
                        format!("{}, in the same batch", h.host),
                    );
                }
            }
            let mut refused = Vec::new();
            for (index, h) in reports[batch.clone()].iter().enumerate() {
                for o in lb_effects(h).0 {
                    if let Some(e) = refusal(&o, during.get(o.lb)) {
                        refused.push((batch.start + index, o.step, e));
                        break;
                    }
                }
            }
            for (host, step, e) in refused {
                self.refuse(&mut reports[host], step, e);
            }
            for h in &reports[batch] {
                let (outs, left_out) = lb_effects(h);
                if left_out {
                    for o in outs {
                        left.entry(o.lb.to_string()).or_default().insert(
                            o.server.to_string(),
                            format!("{}, earlier in this run", h.host),
                        );
                    }
                }
            }
        }
    }

    fn refuse(&self, report: &mut HostReport, step: usize, refused: DrainRefused) {
        let s: &mut StepReport = &mut report.steps[step];
        let error = format!(
            "{refused} — by the time the rollout reaches {}",
            report.host
        );
        let hint = "the run takes other masters out before (or together with) this one: drain fewer (--limit), one batch at a time, put the others back first (lb-ready), or lower min_up if fewer servers are enough".to_string();
        let _ = self.emit(
            Some(&report.host),
            Some(&s.id),
            EventKind::StepFailed {
                error: error.clone(),
            },
        );
        s.status = StepStatus::Failed;
        s.error = Some(error.clone());
        s.hint = Some(hint.clone());
        report.error = Some(format!("step `{}` would fail: {error}", s.id));
        report.hint = Some(hint);
        report.status = HostStatus::Failed;
    }
}

/// The drain `o` would be refused on its LB with the servers `out` of
/// rotation (with who took each out): fewer than `min_up` others would
/// still take traffic.
fn refusal(o: &Out<'_>, out: Option<&BTreeMap<String, String>>) -> Option<DrainRefused> {
    let gone = |s: &String| out.and_then(|m| m.get(s));
    let others = o.guard.up.iter().filter(|s| s.as_str() != o.server);
    let (up, not_up): (Vec<&String>, Vec<&String>) = others.partition(|s| gone(s).is_none());
    if up.len() >= o.guard.min_up {
        return None;
    }
    Some(DrainRefused {
        host: o.lb.to_string(),
        backend: o.backend.to_string(),
        server: o.server.to_string(),
        min_up: o.guard.min_up,
        up: up.into_iter().cloned().collect(),
        not_up: not_up
            .into_iter()
            .map(|s| format!("{s} (drained by {})", gone(s).cloned().unwrap_or_default()))
            .collect(),
    })
}
