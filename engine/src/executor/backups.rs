//! Backups are the engine's job, not each action's: before a step applies,
//! every path its plan declares is copied on the host (never into the
//! manifests directory), every jump-host path the action declares is
//! copied on the jump host, and every Kubernetes object its plan changes is
//! read and kept in the jump host's backup store; each copy is journaled
//! before anything changes.

use super::Executor;
use crate::action::{etcd, kube, Action, ActionError, StepCtx};
use crate::backup::{self, BackupRecord};
use crate::etcd_backup;
use crate::event::EventKind;
use crate::inventory::Host;
use crate::object_backup::{self, ObjectBackupError};
use crate::plan::{Change, Plan};
use remedy_transport::{Local, Transport};

/// Where backups of one side (the host, or the jump host) go.
struct Side<'a> {
    dir: &'a str,
    local: bool,
    /// The setting that chooses `dir`, for messages.
    setting: &'static str,
}

impl Executor<'_> {
    /// Whether any backed-up path or object differs from its backup now (a
    /// cut-off apply changed it).
    pub(super) async fn changed_since_backups(
        &self,
        ctx: &StepCtx<'_>,
        backups: &[BackupRecord],
    ) -> bool {
        let local = Local::new("the jump host");
        let mut client = None;
        for b in backups {
            let differs = if b.etcd_key.is_some() {
                match etcd::connect_all(ctx).await {
                    Ok(cluster) => match cluster.snapshot_source(None).await.map(|c| c.client()) {
                        Ok(Ok(member)) => etcd_backup::differs(member, b).await.unwrap_or(false),
                        _ => false,
                    },
                    Err(_) => false,
                }
            } else if b.object.is_some() {
                if client.is_none() {
                    client = kube::connect(ctx).await.ok();
                }
                match &client {
                    Some(k) => object_backup::differs(k, b).await.unwrap_or(false),
                    None => false,
                }
            } else {
                let side: &dyn Transport = if b.local { &local } else { ctx.transport };
                backup::differs(side, b).await.unwrap_or(false)
            };
            if differs {
                return true;
            }
        }
        false
    }

    /// Back up every object the plan changes, in the jump host's backup
    /// store, after checking each is still the version the plan saw.
    pub(super) async fn back_up_objects(
        &self,
        ctx: &StepCtx<'_>,
        step: &str,
        plan: &Plan,
        backups: &mut Vec<BackupRecord>,
    ) -> Result<(), ActionError> {
        let objects: Vec<_> = plan
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Object { object, .. } => {
                    object_backup::Planned::of(&plan.changes, object).map(|p| (object, p))
                }
                _ => None,
            })
            .filter(|(o, _)| !BackupRecord::kept_among(backups, &object_backup::record_path(o)))
            .collect();
        if objects.is_empty() {
            return Ok(());
        }
        let client = kube::connect(ctx).await?;
        let dir = &self.options.local_backup_dir;
        for (r, planned) in objects {
            let record = object_backup::take(&client, dir, &self.options.run_id, step, r, &planned)
                .await
                .map_err(|e| match e {
                    ObjectBackupError::Changed { .. } => ActionError::Failed {
                        message: e.to_string(),
                        hint: Some("run again: the new plan shows the object as it is now".into()),
                    },
                    e => ActionError::precondition(
                        format!("backup of {r} failed, so nothing was changed: {e}"),
                        format!(
                            "check the API server, and room under {dir} ($REMEDY_HOME/backups)"
                        ),
                    ),
                })?;
            self.journal_backup(&ctx.host.name, step, record, backups)?;
        }
        Ok(())
    }

    /// Journal a backup just taken and keep it for the step: a backup that
    /// is not on record fails the step before anything changes.
    fn journal_backup(
        &self,
        host: &str,
        step: &str,
        record: BackupRecord,
        backups: &mut Vec<BackupRecord>,
    ) -> Result<(), ActionError> {
        self.emit(
            Some(host),
            Some(step),
            EventKind::BackupTaken {
                backup: record.clone(),
            },
        )
        .map_err(|e| {
            ActionError::precondition(
                format!("could not record the backup of {}: {e}", record.path),
                "nothing was changed",
            )
        })?;
        backups.push(record);
        Ok(())
    }

    /// Back up every etcd key the plan deletes (raw bytes) in the jump
    /// host's backup store, after checking each is still at the revision
    /// the plan saw.
    pub(super) async fn back_up_etcd_keys(
        &self,
        ctx: &StepCtx<'_>,
        step: &str,
        plan: &Plan,
        backups: &mut Vec<BackupRecord>,
    ) -> Result<(), ActionError> {
        let keys: Vec<(&String, i64)> = plan
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::EtcdKey {
                    key, mod_revision, ..
                } => Some((key, *mod_revision)),
                _ => None,
            })
            .filter(|(k, _)| !BackupRecord::kept_among(backups, &etcd_backup::record_path(k)))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let cluster = etcd::connect_all(ctx).await?;
        let member = cluster.snapshot_source(None).await?.client()?;
        let dir = &self.options.local_backup_dir;
        for (key, planned) in keys {
            let record = etcd_backup::take(member, dir, &self.options.run_id, step, key, planned)
                .await
                .map_err(|e| {
                    ActionError::precondition(
                        format!("backup of etcd key {key} failed: {e}"),
                        format!("nothing was deleted; run again (the new plan reads the key as it is now), and check room under {dir} ($REMEDY_HOME/backups)"),
                    )
                })?;
            self.journal_backup(&ctx.host.name, step, record, backups)?;
        }
        Ok(())
    }

    /// Back up the jump-host paths an action declares, on the jump host.
    pub(super) async fn back_up_local(
        &self,
        action: &dyn Action,
        step: &str,
        backups: &mut Vec<BackupRecord>,
        host: &str,
    ) -> Result<(), ActionError> {
        let local = Local::new("the jump host");
        let side = Side {
            dir: &self.options.local_backup_dir,
            local: true,
            setting: "$REMEDY_HOME/backups",
        };
        self.take_backups(&local, &side, step, &action.modifies_local(), backups, host)
            .await
    }

    /// Back up every path the plan declares, on the host, under its
    /// `backup_dir` — which may not be inside its manifests directory.
    pub(super) async fn back_up(
        &self,
        t: &dyn Transport,
        host: &Host,
        step: &str,
        plan: &Plan,
        backups: &mut Vec<BackupRecord>,
    ) -> Result<(), ActionError> {
        if plan.modifies.is_empty() {
            return Ok(());
        }
        let dir = host
            .var("backup_dir")
            .unwrap_or_else(|| "/var/lib/remedy/backups".into());
        let manifests = host
            .var("manifests_dir")
            .unwrap_or_else(|| "/etc/kubernetes/manifests".into());
        backup::check_location(&dir, &manifests).map_err(|e| {
            ActionError::precondition(
                e.to_string(),
                "set the host var `backup_dir` to a directory outside the manifests directory",
            )
        })?;
        let side = Side {
            dir: &dir,
            local: false,
            setting: "host var `backup_dir`",
        };
        self.take_backups(t, &side, step, &plan.modifies, backups, &host.name)
            .await
    }

    /// Take (and journal) a backup of each path not yet backed up on this side
    /// in this step. A failure means nothing is changed.
    async fn take_backups(
        &self,
        t: &dyn Transport,
        side: &Side<'_>,
        step: &str,
        paths: &[String],
        backups: &mut Vec<BackupRecord>,
        host: &str,
    ) -> Result<(), ActionError> {
        let dir = side.dir;
        for path in paths {
            if backups
                .iter()
                .any(|b| b.local == side.local && &b.path == path)
            {
                continue;
            }
            let mut record = backup::take(t, dir, &self.options.run_id, step, path)
                .await
                .map_err(|e| {
                    ActionError::precondition(
                        format!(
                            "backup of {path}{} failed, so nothing was changed: {e}",
                            if side.local { " on the jump host" } else { "" }
                        ),
                        format!(
                            "make room or fix permissions under {dir} ({})",
                            side.setting
                        ),
                    )
                })?;
            record.local = side.local;
            self.journal_backup(host, step, record, backups)?;
        }
        Ok(())
    }
}
