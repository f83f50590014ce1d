//! Approvals for a run: which policy applies, the plan hash an approval is
//! bound to, asking (a request in the journal plus notifications), waiting
//! for votes that arrive from other processes (`remedy approve`, `remedy
//! serve`), and the per-host / per-step gate the executor calls.

use super::config::SiteConfig;
use remedy_chatops::{Notice, NoticeKind, NotifierConfig, Retry};
use remedy_coordination::{RemoteVote, VoteResult};
use remedy_dsl::{Approval, ApprovalPolicy, ApprovalScope};
use remedy_engine::executor::ApprovalGate;
use remedy_engine::plan::Plan;
use remedy_engine::{Host, RunReport};
use remedy_journal::{Journal, NewRequest, RequestRecord};
use serde_json::{json, Value};
use sha2::Digest;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The policy in force and where it came from: the site config beats the
/// inventory, which beats the runbook.
pub fn effective(
    runbook: &remedy_dsl::Runbook,
    inventory: &remedy_engine::Inventory,
    config: &SiteConfig,
) -> (Approval, String) {
    if let Some(a) = &config.approval {
        let from = config
            .path
            .as_ref()
            .map(|p| format!("site config {}", p.display()))
            .unwrap_or_else(|| "site config".into());
        return (a.clone(), from);
    }
    if let Some(a) = &inventory.approval {
        return (a.clone(), format!("inventory {}", inventory.source.name));
    }
    (
        runbook.approval.clone(),
        format!("runbook {}", runbook.name),
    )
}

/// What an approval is bound to: per host, each step's changes and the
/// paths it modifies, in rollout order. Summaries are left out (they may
/// carry relative times); the changes carry files' diffs, certificate
/// serials and expiries, restart order and commands.
pub fn plan_hash(report: &RunReport) -> String {
    let hosts: Vec<Value> = report
        .hosts
        .iter()
        .map(|h| {
            json!({
                "host": h.host,
                "steps": h.steps.iter().filter(|s| s.plan.as_ref().is_some_and(|p| !p.is_noop())).map(|s| json!({
                    "step": s.id,
                    "action": s.action,
                    "changes": s.plan.as_ref().map(|p| &p.changes),
                    "modifies": s.plan.as_ref().map(|p| &p.modifies),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    step_hash(&json!({ "runbook": report.runbook, "hosts": hosts }))
}

pub fn step_hash(v: &Value) -> String {
    hex::encode(sha2::Sha256::digest(v.to_string().as_bytes()))
}

/// The plan as `auto_approve` sees it: `plan.hosts` (each `name`, `groups`,
/// `changes` count, `steps` that change), `plan.changing` (hosts that would
/// change), `plan.max_changing_per_batch`.
pub fn plan_value(report: &RunReport, hosts: &[Host], batch_sizes: &[usize]) -> Value {
    let changing: Vec<&str> = report
        .hosts
        .iter()
        .filter(|h| h.steps.iter().any(|s| s.changes_host()))
        .map(|h| h.host.as_str())
        .collect();
    let mut max_per_batch = 0;
    let mut offset = 0;
    for size in batch_sizes {
        let batch =
            &report.hosts[offset.min(report.hosts.len())..(offset + size).min(report.hosts.len())];
        offset += size;
        let n = batch
            .iter()
            .filter(|h| changing.contains(&h.host.as_str()))
            .count();
        max_per_batch = max_per_batch.max(n);
    }
    json!({
        "runbook": report.runbook,
        "changing": changing.len(),
        "max_changing_per_batch": max_per_batch,
        "hosts": report.hosts.iter().map(|h| {
            let groups = hosts.iter().find(|x| x.name == h.host).map(|x| x.groups.clone()).unwrap_or_default();
            let steps: Vec<&str> = h.steps.iter().filter(|s| s.changes_host()).map(|s| s.id.as_str()).collect();
            json!({ "name": h.host, "groups": groups, "changes": steps.len(), "steps": steps })
        }).collect::<Vec<_>>(),
    })
}

/// Evaluate `auto_approve` in the sandbox; an error is a refusal.
pub fn auto_approved(policy: &ApprovalPolicy, plan: &Value) -> Result<Option<String>, String> {
    let Some(rule) = &policy.auto_approve else {
        return Ok(None);
    };
    let engine = remedy_dsl::expr::sandbox();
    let mut scope = rhai::Scope::new();
    let dynamic = rhai::serde::to_dynamic(plan).map_err(|e| e.to_string())?;
    scope.push("plan", dynamic);
    match engine.eval_expression_with_scope::<bool>(&mut scope, rule) {
        Ok(true) => Ok(Some(rule.clone())),
        Ok(false) => Ok(None),
        Err(e) => Err(format!("`auto_approve: {rule}` failed: {e}")),
    }
}

/// Everything needed to ask for, and wait for, approvals of one run.
pub struct Asker {
    pub journal: Arc<Journal>,
    pub policy: ApprovalPolicy,
    pub approvers: Vec<String>,
    pub run_id: String,
    pub runbook: String,
    pub hosts: Vec<String>,
    pub requester: String,
    pub notifiers: Vec<NotifierConfig>,
    /// Where Mattermost buttons call back (`chat.public_url`).
    pub callback: Option<remedy_chatops::Callback>,
    pub retry: Retry,
    pub cancel: Arc<AtomicBool>,
    /// The ops etcd, when jump hosts are coordinated: requests are
    /// published there and votes from other jump hosts come back by a watch.
    pub coordinator: Option<remedy_coordination::Coordinator>,
}

impl std::fmt::Debug for Asker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Asker({})", self.run_id)
    }
}

impl Asker {
    pub fn notice(&self, kind: NoticeKind, title: String, summary: String) -> Notice {
        Notice {
            kind,
            run_id: self.run_id.clone(),
            request_id: None,
            runbook: self.runbook.clone(),
            requester: self.requester.clone(),
            hosts: self.hosts.clone(),
            title,
            summary,
            plan_hash: None,
            decision: None,
            chain_head: None,
        }
    }

    /// Send a notice to every notifier; failures are journaled (and kept on
    /// the request), never fatal.
    pub async fn notify(&self, notice: &Notice) {
        if self.notifiers.is_empty() {
            return;
        }
        let deliveries = remedy_chatops::notify_all_with(
            &self.notifiers,
            notice,
            self.retry,
            self.callback.as_ref(),
        )
        .await;
        for d in deliveries.iter().filter(|d| !d.ok) {
            super::progress::note(&format!(
                "warning: notification to {} failed after {} attempt(s): {}",
                d.notifier,
                d.attempts,
                d.error.as_deref().unwrap_or("?")
            ));
        }
        let value = serde_json::to_value(&deliveries).unwrap_or(Value::Null);
        let _ =
            self.journal
                .record_notifications(notice.request_id.as_deref(), &self.run_id, &value);
    }

    /// Ask for approval of `hash` in `scope`, notify, and wait for the
    /// decision. Ok when approved; Err(reason) when denied, expired or
    /// interrupted.
    pub async fn ask(&self, scope: &str, hash: &str, summary: &str) -> Result<(), String> {
        let request_id = uuid_like();
        let expires_ms = super::journal::now_ms() + self.policy.ttl_secs * 1000;
        let rec = self
            .journal
            .create_request(&NewRequest {
                request_id: request_id.clone(),
                run_id: self.run_id.clone(),
                scope: scope.to_string(),
                plan_hash: hash.to_string(),
                summary: summary.to_string(),
                requester: self.requester.clone(),
                approvers: self.approvers.clone(),
                quorum: self.policy.quorum,
                forbid_requester: self.policy.forbid_requester,
                expires_ms,
            })
            .map_err(|e| format!("cannot record the approval request: {e}"))?;
        let what = if scope == "run" {
            String::new()
        } else {
            format!(" ({scope})")
        };
        super::progress::note(&format!(
            "approval needed{what}: {} of {} must approve run {} (plan {}), within {}.\n  approve: remedy approve {}{}\n  deny:    remedy deny {} --reason TEXT",
            self.policy.quorum,
            self.approvers.join(", "),
            self.run_id,
            &hash[..12],
            remedy_dsl::param::format_duration(self.policy.ttl_secs),
            self.run_id,
            scope_flag(scope),
            self.run_id,
        ));
        let mut notice = self.notice(
            NoticeKind::ApprovalRequested,
            format!(
                "{} asks to run {} on {}{what}",
                self.requester,
                self.runbook,
                self.hosts.join(", ")
            ),
            summary.to_string(),
        );
        notice.request_id = Some(request_id.clone());
        notice.plan_hash = Some(hash.to_string());
        let mut remote = self.publish(&rec).await;
        let _withdraw = remote.as_ref().and_then(|_| {
            self.coordinator
                .clone()
                .map(|c| Withdraw(c, request_id.clone()))
        });
        self.notify(&notice).await;
        let started = Instant::now();
        let mut last_note = Instant::now();
        let mut rec = rec;
        loop {
            match rec.status.as_str() {
                "approved" => {
                    let by = voters(&rec, true);
                    super::progress::note(&format!("approved{what} by {by}"));
                    notice.kind = NoticeKind::ApprovalDecided;
                    notice.decision = Some(format!("approved by {by}"));
                    self.notify(&notice).await;
                    return Ok(());
                }
                "denied" => {
                    let reason = rec
                        .votes
                        .iter()
                        .find(|v| !v.approve)
                        .map(|v| {
                            format!(
                                "denied by {}: {}",
                                v.user,
                                v.comment.as_deref().unwrap_or("no reason given")
                            )
                        })
                        .unwrap_or_else(|| "denied".into());
                    notice.kind = NoticeKind::ApprovalDecided;
                    notice.decision = Some(reason.clone());
                    self.notify(&notice).await;
                    return Err(reason);
                }
                "expired" => {
                    let reason = format!(
                        "the approval request expired after {} with {} of {} approvals; nothing was applied",
                        remedy_dsl::param::format_duration(self.policy.ttl_secs),
                        rec.approvals(),
                        self.policy.quorum
                    );
                    notice.kind = NoticeKind::ApprovalDecided;
                    notice.decision = Some(reason.clone());
                    self.notify(&notice).await;
                    return Err(reason);
                }
                "superseded" => return Err("the request was superseded by a newer one".into()),
                _ => {}
            }
            if self.cancel.load(Ordering::SeqCst) {
                return Err("interrupted while waiting for approval".into());
            }
            if last_note.elapsed() >= Duration::from_secs(15) {
                last_note = Instant::now();
                super::progress::note(&format!(
                    "waiting for approval{what}: {} of {} ({}), {}s so far",
                    rec.approvals(),
                    self.policy.quorum,
                    voters(&rec, true),
                    started.elapsed().as_secs()
                ));
            }
            let vote = async {
                match remote.as_mut() {
                    Some(votes) => votes.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                vote = vote => match vote {
                    Some(vote) => self.count_remote(&rec, vote).await,
                    // The watch ended (the ops etcd went away): this jump
                    // host's own votes still decide.
                    None => remote = None,
                },
            }
            rec = self
                .journal
                .request(&request_id)
                .map_err(|e| format!("cannot read the approval request: {e}"))?;
        }
    }
}

impl Asker {
    /// Publishes the request in the ops etcd and watches its votes; None
    /// when not coordinated or when publishing failed (said: then only
    /// this jump host can decide it).
    async fn publish(
        &self,
        rec: &RequestRecord,
    ) -> Option<tokio::sync::mpsc::Receiver<RemoteVote>> {
        let c = self.coordinator.as_ref()?;
        let request = serde_json::to_value(&rec.request).unwrap_or(Value::Null);
        let ttl = (rec.request.expires_ms - super::journal::now_ms()) / 1000 + 60;
        let published = async {
            let revision = c
                .publish_request(&rec.request.request_id, request, ttl)
                .await?;
            c.watch_votes(&rec.request.request_id, revision).await
        };
        match published.await {
            Ok(votes) => Some(votes),
            Err(e) => {
                eprintln!("warning: the approval request was not published in the ops etcd, so only this jump host can decide it: {e}");
                None
            }
        }
    }

    /// A vote from another jump host, counted here by the journal's rules
    /// (the same as for a local vote) and answered in the ops etcd.
    async fn count_remote(&self, rec: &RequestRecord, vote: RemoteVote) {
        let request_id = &rec.request.request_id;
        let outcome = if vote.plan_hash != rec.request.plan_hash {
            Err(format!(
                "the vote was for plan {}, the request is for plan {}",
                short(&vote.plan_hash),
                short(&rec.request.plan_hash)
            ))
        } else {
            self.journal
                .vote_as(
                    request_id,
                    &vote.user,
                    &format!("{} on {}", vote.actor, vote.jump_host),
                    vote.approve,
                    vote.comment.as_deref(),
                    &format!("{} via {}", vote.channel, vote.jump_host),
                )
                .map(|r| {
                    format!(
                        "counted: {} of {} approvals, request {}",
                        r.approvals(),
                        r.request.quorum,
                        r.status
                    )
                })
                .map_err(|e| e.to_string())
        };
        let result = match outcome {
            Ok(message) => VoteResult {
                counted: true,
                message,
            },
            Err(message) => {
                eprintln!(
                    "warning: vote by {} from {} not counted: {message}",
                    vote.user, vote.jump_host
                );
                VoteResult {
                    counted: false,
                    message,
                }
            }
        };
        if let Some(c) = &self.coordinator {
            let _ = c.record_vote_result(request_id, &vote.user, &result).await;
        }
    }
}

/// Takes a published request off the ops etcd's list however the wait
/// ends (decided, expired, interrupted).
struct Withdraw(remedy_coordination::Coordinator, String);

impl Drop for Withdraw {
    fn drop(&mut self) {
        let (c, id) = (self.0.clone(), self.1.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = c.withdraw_request(&id).await;
            });
        }
    }
}

fn short(hash: &str) -> &str {
    &hash[..12.min(hash.len())]
}

fn scope_flag(scope: &str) -> String {
    if let Some(step) = scope.strip_prefix("step:") {
        let (host, step) = step.split_once('/').unwrap_or(("", step));
        format!(" --host {host} --step {step}")
    } else if let Some(host) = scope.strip_prefix("host:") {
        format!(" --host {host}")
    } else {
        String::new()
    }
}

fn voters(rec: &RequestRecord, approve: bool) -> String {
    let v: Vec<&str> = rec
        .votes
        .iter()
        .filter(|v| v.approve == approve)
        .map(|v| v.user.as_str())
        .collect();
    if v.is_empty() {
        "nobody yet".into()
    } else {
        v.join(", ")
    }
}

fn uuid_like() -> String {
    remedy_engine::RunOptions::new(false).run_id
}

/// Per-host and per-step approvals, asked by the executor right before a
/// change. Remembers which plan hash each scope approved, so the re-plan
/// after a wait passes at once when nothing drifted and asks again when it did.
#[derive(Debug)]
pub struct Gate {
    pub asker: Asker,
    pub scope: ApprovalScope,
    /// Host scope: a fresh preview of one host, hashed and summarised.
    pub preview_host: Box<dyn HostPreview>,
    approved: Mutex<HashMap<String, String>>,
}

/// Plans one host from scratch (read-only) for a host-scope approval.
#[async_trait::async_trait(?Send)]
pub trait HostPreview: Send + Sync + std::fmt::Debug {
    async fn preview(&self, host: &str) -> Result<(String, String), String>;
}

impl Gate {
    pub fn new(asker: Asker, scope: ApprovalScope, preview_host: Box<dyn HostPreview>) -> Gate {
        Gate {
            asker,
            scope,
            preview_host,
            approved: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait::async_trait(?Send)]
impl ApprovalGate for Gate {
    async fn approve(&self, host: &Host, step: &str, plan: &Plan) -> Result<bool, String> {
        let (scope, hash, summary) = match self.scope {
            ApprovalScope::Step => {
                let hash = step_hash(&json!({
                    "host": host.name, "step": step,
                    "changes": plan.changes, "modifies": plan.modifies,
                }));
                let mut summary = format!("{} › {}: {}", host.name, step, plan.summary);
                for c in &plan.changes {
                    if let remedy_engine::plan::Change::File { diff, .. } = c {
                        summary.push('\n');
                        summary.push_str(diff);
                    }
                }
                (format!("step:{}/{step}", host.name), hash, summary)
            }
            _ => {
                let scope = format!("host:{}", host.name);
                // Once approved, the rest of this host's steps go ahead.
                if self
                    .approved
                    .lock()
                    .map(|m| m.contains_key(&scope))
                    .unwrap_or(false)
                {
                    return Ok(false);
                }
                let (hash, summary) = self.preview_host.preview(&host.name).await?;
                (scope, hash, summary)
            }
        };
        let already = self
            .approved
            .lock()
            .map(|m| m.get(&scope) == Some(&hash))
            .unwrap_or(false);
        if already {
            return Ok(false);
        }
        self.asker.ask(&scope, &hash, &summary).await?;
        if matches!(self.scope, ApprovalScope::Host) {
            // Bound to the host's plan when asked: check it again now.
            let (now, _) = self.preview_host.preview(&host.name).await?;
            if now != hash {
                let _ = self.asker.journal.append(&remedy_journal::NewEvent {
                    run_id: self.asker.run_id.clone(),
                    time_ms: super::journal::now_ms(),
                    actor: "remedy".into(),
                    host: Some(host.name.clone()),
                    step: None,
                    kind: "approval_invalidated".into(),
                    payload: json!({ "scope": scope, "approved_hash": hash, "plan_hash": now, "reason": "the host's plan changed while waiting" }),
                });
                super::progress::note(&format!(
                    "{}: the plan changed while waiting for approval; asking again",
                    host.name
                ));
                return Ok(true);
            }
        }
        if let Ok(mut m) = self.approved.lock() {
            m.insert(scope, hash);
        }
        Ok(true)
    }
}
