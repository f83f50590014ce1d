//! Obtaining what the approval policy asks before anything changes, as
//! stages: break-glass (recorded, flagged for review, announced) → no policy
//! → the approvers → an auto-approve rule → asking people: for the whole
//! run (bound to the plan hash; the plan is made again after, and asked
//! again if it drifted), or a gate the executor calls per host or step.

use super::execute;
use super::session::Session;
use crate::cli::{approval, render, Exit};
use remedy_chatops::NoticeKind;
use remedy_dsl::{Approval, ApprovalPolicy, ApprovalScope};
use remedy_engine::backup::KnownBackup;
use remedy_engine::event::MemorySink;
use remedy_engine::executor::ApprovalGate;
use remedy_engine::redact::Redactor;
use remedy_engine::{BoundRun, RunOptions, RunReport, RunStatus};
use remedy_transport::ssh::SshConnector;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

impl Session<'_> {
    /// `Ok(None)`: nothing more to ask during the run; `Ok(Some(gate))`:
    /// per-host or per-step approvals, asked by the executor.
    pub(super) async fn consent(
        &self,
        preview: RunReport,
    ) -> Result<Option<Arc<dyn ApprovalGate>>, Exit> {
        let (policy, from) = approval::effective(
            &self.prepared.runbook,
            &self.prepared.inventory,
            self.who.config,
        );
        if let Some(reason) = self.who.break_glass {
            self.break_glass(reason, &from, &preview).await;
            return Ok(None);
        }
        let Approval::Required(policy) = policy else {
            return Ok(None);
        };
        let approvers = self.who.config.expand(&policy.approvers).map_err(|msg| {
            eprintln!("error: {msg} (approval policy from {from})");
            Exit::Invalid
        })?;
        if self.auto_approved(&policy, &from, &preview) {
            return Ok(None);
        }
        let asker = approval::Asker {
            policy: policy.clone(),
            approvers,
            notifiers: self.who.config.chat.notify.clone(),
            ..self.notifier()
        };
        match policy.scope {
            ApprovalScope::Run => self.approve_run(&asker, preview).await.map(|()| None),
            scope => Ok(Some(Arc::new(approval::Gate::new(
                asker,
                scope,
                Box::new(OneHost {
                    runbook: self.prepared.runbook.clone(),
                    bound: self.prepared.bound.clone(),
                    inventory: self.prepared.inventory.clone(),
                    accept_new_host_keys: self.g.accept_new_host_keys,
                    verbose: self.g.verbose,
                    redactor: self.redactor.clone(),
                    known_backups: self.known_backups.clone(),
                }),
            )))),
        }
    }

    /// Approval skipped with a reason: journaled, the run flagged for
    /// review, and the chat told.
    async fn break_glass(&self, reason: &str, from: &str, preview: &RunReport) {
        self.event(
            "break_glass",
            serde_json::json!({ "reason": reason, "policy_from": from, "plan_hash": approval::plan_hash(preview) }),
        );
        let _ = self.journal.set_review(
            &self.record.run_id,
            &format!("break-glass by {}: {reason}", self.record.actor),
        );
        eprintln!("BREAK-GLASS: approval skipped ({reason}); the run is marked for review");
        self.announce_break_glass(
            &format!("without approval: {reason}"),
            self.redactor.apply(&render::report(preview, false)),
        )
        .await;
    }

    /// Tells the chat that this run broke glass, and what it skipped
    /// (`what`: "without approval: REASON").
    pub(super) async fn announce_break_glass(&self, what: &str, detail: String) {
        if self.who.config.chat.notify.is_empty() {
            return;
        }
        let asker = self.notifier();
        let notice = asker.notice(
            NoticeKind::BreakGlass,
            format!(
                "BREAK-GLASS: {} runs {} on {} {what}",
                self.who.requester,
                self.prepared.runbook.name,
                self.record.hosts.join(", ")
            ),
            detail,
        );
        asker.notify(&notice).await;
    }

    /// The policy's `auto_approve` rule over the plan; a rule that cannot be
    /// evaluated asks people instead.
    fn auto_approved(&self, policy: &ApprovalPolicy, from: &str, preview: &RunReport) -> bool {
        let hosts = &self.prepared.bound.hosts;
        let plan = approval::plan_value(
            preview,
            hosts,
            &self.prepared.runbook.strategy.batch_sizes(hosts.len()),
        );
        match approval::auto_approved(policy, &plan) {
            Ok(Some(rule)) => {
                self.event(
                    "approval_auto",
                    serde_json::json!({ "rule": rule, "plan_hash": approval::plan_hash(preview), "policy_from": from }),
                );
                eprintln!("approved by the policy's auto_approve rule: {rule}");
                true
            }
            Ok(None) => false,
            Err(msg) => {
                eprintln!("warning: {msg}; asking people instead");
                false
            }
        }
    }

    /// A run-wide approval is for one plan: after it, plan again right
    /// before applying, and ask again while the plan keeps changing.
    async fn approve_run(
        &self,
        asker: &approval::Asker,
        mut preview: RunReport,
    ) -> Result<(), Exit> {
        loop {
            let hash = approval::plan_hash(&preview);
            let summary = self.redactor.apply(&render::report(&preview, false));
            if let Err(reason) = asker.ask("run", &hash, &summary).await {
                eprintln!("Not approved: {reason}. Nothing was changed.");
                return Err(Exit::Denied);
            }
            let fresh = execute(
                &self.prepared.runbook,
                &self.prepared.bound,
                self.connector,
                &MemorySink::default(),
                self.cancel.clone(),
                self.options(true),
            )
            .await;
            let now = approval::plan_hash(&fresh);
            if now == hash {
                return Ok(());
            }
            self.event(
                "approval_invalidated",
                serde_json::json!({ "approved_hash": hash, "plan_hash": now, "reason": "the plan changed between approval and apply" }),
            );
            eprintln!(
                "The plan changed after it was approved (plan {} → {}): asking again.",
                &hash[..12],
                &now[..12]
            );
            preview = fresh;
        }
    }

    /// An asker that only notifies (no approvers): run finished, break-glass.
    pub(super) fn notifier(&self) -> approval::Asker {
        approval::Asker {
            journal: self.journal.clone(),
            policy: ApprovalPolicy {
                quorum: 1,
                approvers: Vec::new(),
                forbid_requester: true,
                ttl_secs: 1800,
                scope: ApprovalScope::Run,
                auto_approve: None,
            },
            approvers: Vec::new(),
            run_id: self.record.run_id.clone(),
            runbook: self.prepared.runbook.name.clone(),
            hosts: self.record.hosts.clone(),
            requester: self.who.requester.to_string(),
            notifiers: self.who.config.chat.notify.clone(),
            callback: self.who.config.chat.callback().ok().flatten(),
            retry: notify_retry(),
            cancel: self.cancel.clone(),
            coordinator: self.coordinator.get().cloned(),
        }
    }
}

/// Notification retries. In debug builds (the tests') REMEDY_NOTIFY_RETRY_MS
/// shortens the backoff; a release binary ignores it (`tests/release.rs`).
fn notify_retry() -> remedy_chatops::Retry {
    #[cfg_attr(not(debug_assertions), allow(unused_mut))]
    let mut r = remedy_chatops::Retry::default();
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("REMEDY_NOTIFY_RETRY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        r.base_delay = std::time::Duration::from_millis(ms);
    }
    r
}

/// A read-only plan of one host, for a host-scope approval.
#[derive(Debug)]
struct OneHost {
    runbook: remedy_dsl::Runbook,
    bound: BoundRun,
    inventory: remedy_engine::Inventory,
    accept_new_host_keys: bool,
    verbose: bool,
    redactor: Redactor,
    known_backups: Vec<KnownBackup>,
}

#[async_trait::async_trait(?Send)]
impl approval::HostPreview for OneHost {
    async fn preview(&self, host: &str) -> Result<(String, String), String> {
        let mut bound = self.bound.clone();
        bound.hosts.retain(|h| h.name == host);
        let connector =
            SshConnector::new(&self.inventory, self.accept_new_host_keys).verbose(self.verbose);
        let report = execute(
            &self.runbook,
            &bound,
            &connector,
            &MemorySink::default(),
            Arc::new(AtomicBool::new(false)),
            RunOptions {
                known_backups: self.known_backups.clone(),
                ..RunOptions::new(true)
            },
        )
        .await;
        if report.status != RunStatus::Ok {
            return Err(format!(
                "planning {host} for its approval failed: {}",
                report.summary
            ));
        }
        Ok((
            approval::plan_hash(&report),
            self.redactor.apply(&render::report(&report, false)),
        ))
    }
}
