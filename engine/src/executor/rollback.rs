//! Rollback of one host: undo its applied steps in reverse — restore each
//! backup exactly (bytes, mode, owner, or absence; a Kubernetes object
//! through the API server), and put back what a step
//! recorded in its result when its change is not a file (an LB server) —
//! and say plainly what could not be undone.

use super::restore::{restore_step, Sides};
use super::Executor;
use crate::action::{etcd, kube, undo, undoes_from_result, ActionError};
use crate::backup::BackupRecord;
use crate::eval::Bindings;
use crate::event::EventKind;
use crate::inventory::Host;
use crate::report::{HostReport, HostStatus, StepReport, StepStatus};
use crate::{etcd_backup, object_backup};
use remedy_dsl::ActionKind;
use remedy_transport::{Local, Transport};

impl Executor<'_> {
    /// Undo this host's applied steps in reverse: restore every backup (prior
    /// bytes, mode, owner — or absence), and put back what a step recorded
    /// in its result when its change is not a file (an LB server's state).
    pub(super) async fn rollback(
        &self,
        host_entry: &Host,
        t: &dyn Transport,
        report: &mut HostReport,
        applied: &[(usize, Vec<BackupRecord>)],
        failed_step: &str,
        bindings: &Bindings,
    ) -> HostStatus {
        let host = host_entry.name.as_str();
        let _ = self.emit(
            Some(host),
            None,
            EventKind::RollbackStarted {
                reason: format!("step `{failed_step}` failed"),
            },
        );
        for (index, backups) in applied.iter().rev() {
            let step_id = report.steps[*index].id.clone();
            // Objects and etcd keys first (a step that changed a file too
            // changed it before), each through the API server or etcd
            // clients the step used.
            let mut objects_restored = Vec::new();
            let not_a_file = |b: &&BackupRecord| b.object.is_some() || b.etcd_key.is_some();
            for b in backups.iter().rev().filter(not_a_file) {
                match self
                    .restore_object(host_entry, t, &step_id, bindings, b)
                    .await
                {
                    Ok(line) => objects_restored.push(line),
                    Err(msg) => {
                        let msg = format!("rollback of step `{step_id}` failed: {msg}");
                        let _ = self.emit(
                            Some(host),
                            Some(&step_id),
                            EventKind::RollbackFailed { error: msg.clone() },
                        );
                        report.error = Some(format!(
                            "{}; then {msg}",
                            report.error.clone().unwrap_or_default()
                        ));
                        let by_hand = match b.etcd_key {
                            Some(_) => etcd_backup::by_hand(b),
                            None => object_backup::by_hand(b),
                        };
                        report.hint = Some(format!(
                            "{by_hand}; or, once the API server (or etcd) answers again, `remedy resume {}` retries the rollback",
                            self.options.run_id
                        ));
                        return HostStatus::RollbackFailed;
                    }
                }
            }
            let files: Vec<BackupRecord> =
                backups.iter().filter(|b| !not_a_file(b)).cloned().collect();
            let local = Local::new("the jump host");
            let sides = Sides {
                host: t,
                local: &local,
            };
            let mut restored = match restore_step(&files, sides).await {
                Ok(restored) => restored,
                Err(failed) => {
                    let msg = format!(
                        "rollback of step `{step_id}` failed restoring {}: {}",
                        failed.path, failed.error
                    );
                    let _ = self.emit(
                        Some(host),
                        Some(&step_id),
                        EventKind::RollbackFailed { error: msg.clone() },
                    );
                    report.error = Some(format!(
                        "{}; then {msg}",
                        report.error.clone().unwrap_or_default()
                    ));
                    report.hint = Some(format!(
                        "on {host}, by hand: {}; then check the host. Or, once {host} answers again, `remedy resume {}` retries the rollback",
                        failed.by_hand, self.options.run_id
                    ));
                    return HostStatus::RollbackFailed;
                }
            };
            restored.splice(0..0, objects_restored);
            if let Some(value) = report.steps[*index].result.clone().filter(|_| {
                ActionKind::from_name(&report.steps[*index].action).is_some_and(undoes_from_result)
            }) {
                let step = self.runbook.steps.iter().find(|s| s.id == step_id);
                let undone = match step {
                    Some(step) => {
                        let quiet = |_: &str, _: u64| {};
                        let ctx = self.ctx(
                            t,
                            host_entry,
                            step,
                            bindings,
                            &quiet,
                            self.options.command_timeout,
                        );
                        undo(&ctx, &value).await
                    }
                    None => Err(ActionError::failed(format!(
                        "step `{step_id}` is no longer in the runbook"
                    ))),
                };
                match undone {
                    Ok(lines) => restored.extend(lines),
                    Err(e) => {
                        let msg = format!("rollback of step `{step_id}` failed: {e}");
                        let _ = self.emit(
                            Some(host),
                            Some(&step_id),
                            EventKind::RollbackFailed { error: msg.clone() },
                        );
                        report.error = Some(format!(
                            "{}; then {msg}",
                            report.error.clone().unwrap_or_default()
                        ));
                        report.hint = Some(
                            "put the server back by hand on each LB as the message says, then check it with `remedy plan lb-ready`".into(),
                        );
                        return HostStatus::RollbackFailed;
                    }
                }
            }
            if report.steps[*index].status == StepStatus::Changed {
                report.steps[*index].status = StepStatus::RolledBack;
            }
            let _ = self.emit(
                Some(host),
                Some(&step_id),
                EventKind::StepRolledBack { restored },
            );
        }
        // Steps that changed the host without declaring paths (e.g. `shell`
        // without `modifies`) cannot be restored: say so rather than pretend.
        let not_undone: Vec<String> = report
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Changed && s.backups.is_empty())
            .map(|s| format!("`{}` ({})", s.id, s.action))
            .collect();
        for id in &not_undone {
            let _ = self.emit(
                Some(host),
                None,
                EventKind::RollbackFailed {
                    error: format!(
                        "step {id} changed the host without declared paths; remedy cannot undo it"
                    ),
                },
            );
        }
        if !not_undone.is_empty() {
            report.hint = Some(format!(
                "restored every backed-up file, but could not undo {}: it declared no paths (give `shell` a `modifies:` list); check the host by hand",
                not_undone.join(", ")
            ));
        }
        HostStatus::RolledBack
    }
}

impl Executor<'_> {
    /// Put one object back from the backup store, through the API server
    /// the step used.
    async fn restore_object(
        &self,
        host: &Host,
        t: &dyn Transport,
        step_id: &str,
        bindings: &Bindings,
        b: &BackupRecord,
    ) -> Result<String, String> {
        let step = self
            .runbook
            .steps
            .iter()
            .find(|s| s.id == step_id)
            .ok_or_else(|| format!("step `{step_id}` is no longer in the runbook"))?;
        let quiet = |_: &str, _: u64| {};
        let ctx = self.ctx(
            t,
            host,
            step,
            bindings,
            &quiet,
            self.options.command_timeout,
        );
        if b.etcd_key.is_some() {
            let cluster = etcd::connect_all(&ctx).await.map_err(|e| e.to_string())?;
            let source = cluster
                .snapshot_source(None)
                .await
                .map_err(|e| e.to_string())?;
            let member = source.client().map_err(|e| e.to_string())?;
            return etcd_backup::restore(member, b)
                .await
                .map_err(|e| format!("restoring {}: {e}", b.path));
        }
        let client = kube::connect(&ctx).await.map_err(|e| e.to_string())?;
        object_backup::restore(&client, b)
            .await
            .map_err(|e| format!("restoring {}: {e}", b.path))
    }
}

/// A finished step rollback must undo: it took backups, or its change is
/// restored from its result.
pub(super) fn needs_undo(r: &StepReport) -> bool {
    !r.backups.is_empty()
        || (r.status == StepStatus::Changed
            && r.result.is_some()
            && ActionKind::from_name(&r.action).is_some_and(undoes_from_result))
}
