//! `remedy approvals`, `remedy approve`, `remedy deny` and `remedy serve`:
//! deciding on a waiting run from any shell, or from chat through signed
//! callbacks. Every vote is checked and counted by the journal (approver
//! list, requester rule, one vote each, quorum, expiry) and journaled.

use super::{config, journal, metrics, service_log, Exit, Global, Output};
use remedy_chatops::{CallbackError, Decider, Decision, ServeSecrets};
use remedy_coordination::{Coordinator, RemoteVote};
use remedy_journal::{Journal, NewRequest, RequestRecord};
use std::sync::Arc;

fn open() -> Result<Arc<Journal>, Exit> {
    journal::open().map_err(|msg| {
        eprintln!("error: {msg}");
        Exit::Invalid
    })
}

fn age(ms: i64) -> String {
    let secs = ((journal::now_ms() - ms) / 1000).max(0);
    remedy_dsl::param::format_duration(secs)
}

pub fn approvals(g: &Global) -> Exit {
    let j = match open() {
        Ok(j) => j,
        Err(e) => return e,
    };
    let pending = match j.requests(None) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid;
        }
    };
    let elsewhere = match waiting_elsewhere(g, &pending) {
        Ok(e) => e,
        Err(exit) => return exit,
    };
    if g.output == Output::Json {
        let mut all: Vec<serde_json::Value> = pending
            .iter()
            .filter_map(|r| serde_json::to_value(r).ok())
            .collect();
        all.extend(elsewhere.iter().filter_map(|(jump_host, r)| {
            let mut v = serde_json::to_value(r).ok()?;
            v["status"] = "pending".into();
            v["waiting_on"] = jump_host.as_str().into();
            Some(v)
        }));
        match serde_json::to_string_pretty(&all) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
        return Exit::Ok;
    }
    for (jump_host, q) in &elsewhere {
        println!(
            "run {}  {}  requested by {} on {jump_host}, expires in {}; {} of {} must approve",
            q.run_id,
            q.scope,
            q.requester,
            remedy_dsl::param::format_duration(((q.expires_ms - journal::now_ms()) / 1000).max(0)),
            q.quorum,
            q.approvers.join(", ")
        );
        println!("  plan {}", &q.plan_hash[..12.min(q.plan_hash.len())]);
        println!("  approve: remedy approve {}", q.run_id);
        println!();
    }
    if pending.is_empty() {
        if elsewhere.is_empty() {
            println!("No approval requests pending.");
        }
        return Exit::Ok;
    }
    for r in &pending {
        let q = &r.request;
        println!(
            "run {}  {}  requested by {} {} ago, expires in {}",
            q.run_id,
            q.scope,
            q.requester,
            age(r.created_ms),
            remedy_dsl::param::format_duration(((q.expires_ms - journal::now_ms()) / 1000).max(0))
        );
        println!(
            "  approvals {} of {} (approvers: {}){}",
            r.approvals(),
            q.quorum,
            q.approvers.join(", "),
            if r.votes.is_empty() {
                String::new()
            } else {
                format!(
                    "; voted: {}",
                    r.votes
                        .iter()
                        .map(|v| v.user.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        println!("  plan {}", &q.plan_hash[..12.min(q.plan_hash.len())]);
        for d in r.notifications.as_array().into_iter().flatten() {
            if d["ok"].as_bool() == Some(false) {
                println!(
                    "  NOTIFICATION FAILED: {} after {} attempt(s): {} (approve from here instead)",
                    d["notifier"].as_str().unwrap_or("?"),
                    d["attempts"],
                    d["error"].as_str().unwrap_or("?")
                );
            }
        }
        for line in q.summary.lines().take(40) {
            println!("    {line}");
        }
        println!("  approve: remedy approve {}", q.run_id);
        println!();
    }
    Exit::Ok
}

/// Whether a request's scope is one `--host`/`--step` pick.
fn scope_matches(scope: &str, host: Option<&str>, step: Option<&str>) -> bool {
    let host_ok = host
        .is_none_or(|h| scope == format!("host:{h}") || scope.starts_with(&format!("step:{h}/")));
    let step_ok = step.is_none_or(|s| scope.ends_with(&format!("/{s}")));
    host_ok && step_ok
}

/// Requests other jump hosts published in the ops etcd (when coordinated),
/// with the jump host each waits on.
fn waiting_elsewhere(
    g: &Global,
    here: &[RequestRecord],
) -> Result<Vec<(String, NewRequest)>, Exit> {
    let cfg = config::load(g).map_err(|d| {
        eprint!("{}", d.render());
        Exit::Invalid
    })?;
    let Some(coordination) = &cfg.coordination else {
        return Ok(Vec::new());
    };
    let runtime = super::run::runtime()?;
    let published = runtime.block_on(async {
        Coordinator::connect(coordination)
            .await?
            .published_requests()
            .await
    });
    match published {
        Ok(list) => Ok(list
            .into_iter()
            .filter_map(|p| {
                Some((
                    p.jump_host,
                    serde_json::from_value::<NewRequest>(p.request).ok()?,
                ))
            })
            .filter(|(_, r)| here.iter().all(|h| h.request.request_id != r.request_id))
            .collect()),
        Err(e) => {
            eprintln!("warning: requests waiting on other jump hosts are not shown: {e}");
            Ok(Vec::new())
        }
    }
}

/// The one pending request of RUN that `--host`/`--step` pick.
fn pick(
    j: &Journal,
    run: &str,
    host: Option<&str>,
    step: Option<&str>,
) -> Result<RequestRecord, String> {
    let record = j.run(run).map_err(|e| e.to_string())?;
    let pending: Vec<RequestRecord> = j
        .requests(Some(&record.run_id))
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|r| r.status == "pending")
        .filter(|r| scope_matches(&r.request.scope, host, step))
        .collect();
    match pending.len() {
        1 => Ok(pending.into_iter().next().expect("one")),
        0 => Err(format!(
            "run {} has no pending approval request{}\n  = hint: `remedy approvals` lists what is waiting",
            record.run_id,
            match (host, step) {
                (None, None) => String::new(),
                _ => " matching --host/--step".into(),
            }
        )),
        _ => Err(format!(
            "run {} has {} pending requests ({}); choose one with --host and --step",
            record.run_id,
            pending.len(),
            pending
                .iter()
                .map(|r| r.request.scope.clone())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

pub fn decide(
    g: &Global,
    run: &str,
    host: Option<&str>,
    step: Option<&str>,
    approve: bool,
    comment: Option<&str>,
) -> Exit {
    let (config, who, actor) = match super::run::site(g) {
        Ok(x) => x,
        Err(exit) => return exit,
    };
    let j = match open() {
        Ok(j) => j,
        Err(e) => return e,
    };
    let req = match pick(&j, run, host, step) {
        Ok(r) => r,
        Err(msg) => {
            if let Some(coordination) = &config.coordination {
                let vote = Ballot {
                    user: who,
                    actor,
                    approve,
                    comment: comment.map(str::to_string),
                    channel: "cli".into(),
                };
                return decide_elsewhere(&j, coordination, run, host, step, vote, &msg);
            }
            eprintln!("error: {msg}");
            return Exit::Invalid;
        }
    };
    match j.vote_as(
        &req.request.request_id,
        &who,
        &actor,
        approve,
        comment,
        "cli",
    ) {
        Ok(r) => {
            let verb = if approve { "approved" } else { "denied" };
            match r.status.as_str() {
                "pending" => println!(
                    "{who} {verb} run {} ({}): {} of {} approvals so far",
                    r.request.run_id,
                    r.request.scope,
                    r.approvals(),
                    r.request.quorum
                ),
                status => println!(
                    "{who} {verb} run {} ({}): the request is now {status}",
                    r.request.run_id, r.request.scope
                ),
            }
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Denied
        }
    }
}

/// A vote before it is cast.
struct Ballot {
    user: String,
    actor: String,
    approve: bool,
    comment: Option<String>,
    channel: String,
}

/// `remedy approve|deny RUN` for a run waiting on another jump host: its
/// request found in the ops etcd (`local_miss` says why it is not here).
fn decide_elsewhere(
    j: &Journal,
    coordination: &remedy_coordination::Coordination,
    run: &str,
    host: Option<&str>,
    step: Option<&str>,
    ballot: Ballot,
    local_miss: &str,
) -> Exit {
    let runtime = match super::run::runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let decided = runtime.block_on(async {
        let c = Coordinator::connect(coordination).await.map_err(|e| e.to_string())?;
        let published = c.published_requests().await.map_err(|e| e.to_string())?;
        let matching: Vec<(String, NewRequest)> = published
            .into_iter()
            .filter_map(|p| Some((p.jump_host, serde_json::from_value::<NewRequest>(p.request).ok()?)))
            .filter(|(_, r)| r.run_id == run && scope_matches(&r.scope, host, step))
            .collect();
        let (jump_host, request) = match matching.as_slice() {
            [one] => one.clone(),
            [] => return Err(format!("{local_miss}\n  = not on this jump host, and no jump host published a request of run {run} in the ops etcd")),
            many => return Err(format!("run {run} has {} published requests ({}); choose one with --host and --step", many.len(), many.iter().map(|(_, r)| r.scope.as_str()).collect::<Vec<_>>().join(", "))),
        };
        vote_elsewhere(&c, j, &jump_host, &request, ballot).await
    });
    match decided {
        Ok(message) => {
            println!("{message}");
            Exit::Ok
        }
        Err(e) => {
            eprintln!("error: {e}");
            Exit::Denied
        }
    }
}

/// Casts `ballot` on a request waiting on `jump_host`, journals it here,
/// and waits (up to 15 s) for that run's answer.
async fn vote_elsewhere(
    c: &Coordinator,
    j: &Journal,
    jump_host: &str,
    request: &NewRequest,
    ballot: Ballot,
) -> Result<String, String> {
    let vote = RemoteVote {
        user: ballot.user.clone(),
        actor: ballot.actor.clone(),
        approve: ballot.approve,
        comment: ballot.comment.clone(),
        channel: ballot.channel.clone(),
        jump_host: c.config().jump_host.clone(),
        plan_hash: request.plan_hash.clone(),
    };
    let cast = c
        .cast_vote(&request.request_id, &vote)
        .await
        .map_err(|e| e.to_string())?;
    if !cast {
        return Err(format!(
            "{} already voted on run {} ({})",
            vote.user, request.run_id, request.scope
        ));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let result = loop {
        if let Some(r) = c
            .vote_result(&request.request_id, &vote.user)
            .await
            .map_err(|e| e.to_string())?
        {
            break Some(r);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let verb = if vote.approve { "approved" } else { "denied" };
    let said = match &result {
        Some(r) if r.counted => format!("{} {verb} run {} ({}) waiting on {jump_host}: {}", vote.user, request.run_id, request.scope, r.message),
        Some(r) => format!("{} {verb} run {} ({}) waiting on {jump_host}, NOT counted there: {}", vote.user, request.run_id, request.scope, r.message),
        None => format!("{} {verb} run {} ({}): the vote is in the ops etcd, but {jump_host} has not answered within 15 s (is the run still waiting?)", vote.user, request.run_id, request.scope),
    };
    let _ = j.append(&remedy_journal::NewEvent {
        run_id: request.run_id.clone(),
        time_ms: journal::now_ms(),
        actor: ballot.actor,
        host: None,
        step: None,
        kind: "remote_vote".into(),
        payload: serde_json::json!({ "request_id": request.request_id, "waiting_on": jump_host, "vote": vote, "result": result }),
    });
    match result {
        Some(r) if !r.counted => Err(said),
        _ => Ok(said),
    }
}

/// Chat decisions go through the same journal checks as `remedy approve`;
/// a request another jump host published in the ops etcd is voted there.
/// Chat decisions go through the same journal checks as `remedy approve`
/// (or, for a run waiting on another jump host, through the ops etcd);
/// every callback is counted for /metrics and logged.
struct JournalDecider {
    journal: Arc<Journal>,
    coordinator: Option<Coordinator>,
    callbacks: Arc<metrics::Callbacks>,
}

impl JournalDecider {
    /// `d` for a request of a run waiting on another jump host.
    fn decide_elsewhere(&self, c: &Coordinator, d: Decision) -> Result<String, String> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let published = c.published_requests().await.map_err(|e| e.to_string())?;
            let (jump_host, request) = published
                .into_iter()
                .filter_map(|p| {
                    Some((
                        p.jump_host,
                        serde_json::from_value::<NewRequest>(p.request).ok()?,
                    ))
                })
                .find(|(_, r)| r.request_id == d.request_id)
                .ok_or_else(|| {
                    format!(
                        "no approval request {} here or in the ops etcd",
                        d.request_id
                    )
                })?;
            let ballot = Ballot {
                actor: format!("{} ({})", d.user, d.chat_user),
                user: d.user,
                approve: d.approve,
                comment: d.comment,
                channel: d.channel,
            };
            vote_elsewhere(c, &self.journal, &jump_host, &request, ballot).await
        })
    }
}

impl Decider for JournalDecider {
    fn decide(&self, d: Decision) -> Result<String, String> {
        if let (Some(c), Err(_)) = (&self.coordinator, self.journal.request(&d.request_id)) {
            return self.decide_elsewhere(c, d);
        }
        let vote = self
            .journal
            .vote(
                &d.request_id,
                &d.user,
                d.approve,
                d.comment.as_deref(),
                &d.channel,
            )
            .map_err(|e| e.to_string())?;
        tracing::info!(
            "{} ({}, {}) {} request {} of run {}: now {}",
            d.user,
            d.chat_user,
            d.channel,
            if d.approve { "approved" } else { "denied" },
            d.request_id,
            vote.request.run_id,
            vote.status
        );
        Ok(match vote.status.as_str() {
            "pending" => format!(
                "Thanks {}: {} of {} approvals for run {}.",
                d.user,
                vote.approvals(),
                vote.request.quorum,
                vote.request.run_id
            ),
            s => format!("Run {} is now {s} ({}).", vote.request.run_id, d.user),
        })
    }

    fn first_time(&self, key: &str) -> bool {
        self.journal.first_time(key).unwrap_or(false)
    }

    fn observe(&self, channel: &'static str, outcome: Result<(), &CallbackError>) {
        match outcome {
            Ok(()) => self.callbacks.count(channel, "accepted"),
            Err(e) => {
                self.callbacks.count(channel, e.reason());
                tracing::warn!(
                    channel,
                    reason = e.reason(),
                    "{channel} callback refused: {e}"
                );
            }
        }
    }
}

pub fn serve(g: &Global, listen: &str, log: &service_log::LogArgs) -> Exit {
    service_log::init(log);
    let cfg = match config::load(g) {
        Ok(c) => c,
        Err(d) => {
            eprint!("{}", d.render());
            return Exit::Invalid;
        }
    };
    let resolve = |what: &str, r: &Option<String>| -> Result<Option<String>, Exit> {
        match r {
            None => Ok(None),
            Some(r) => remedy_chatops::resolve_secret(r).map(Some).map_err(|e| {
                eprintln!("error: chat.{what}: {e}");
                Exit::Invalid
            }),
        }
    };
    let secrets = match (
        resolve("slack_signing_secret", &cfg.chat.slack_signing_secret),
        resolve("mattermost_token", &cfg.chat.mattermost_token),
        resolve("webhook_secret", &cfg.chat.webhook_secret),
    ) {
        (Ok(s), Ok(m), Ok(w)) => ServeSecrets {
            slack_signing_secret: s,
            mattermost_token: m,
            webhook_secret: w,
        },
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    if secrets.slack_signing_secret.is_none()
        && secrets.mattermost_token.is_none()
        && secrets.webhook_secret.is_none()
    {
        eprintln!("error: no callback secret is configured, so no callback could be verified\n  = hint: set chat.slack_signing_secret, chat.mattermost_token or chat.webhook_secret (env:NAME or file:PATH) in the site config");
        return Exit::Invalid;
    }
    let j = match open() {
        Ok(j) => j,
        Err(e) => return e,
    };
    let runtime = match super::run::runtime() {
        Ok(r) => r,
        Err(exit) => return exit,
    };
    let coordinator = match &cfg.coordination {
        None => None,
        Some(c) => match runtime.block_on(Coordinator::connect(c)) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("warning: {e}\n  = votes for runs waiting on other jump hosts fail until `remedy serve` is restarted with the ops etcd up");
                None
            }
        },
    };
    let callbacks = Arc::new(metrics::Callbacks::default());
    let decider = JournalDecider {
        journal: Arc::clone(&j),
        coordinator,
        callbacks: Arc::clone(&callbacks),
    };
    let router = remedy_chatops::router(secrets, cfg.chat.users.clone(), Arc::new(decider))
        .merge(metrics::routes(j, Some(callbacks)));
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot listen on {listen}: {e}\n  = hint: pick a free ADDR:PORT with --listen");
                return Exit::Invalid;
            }
        };
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| listen.to_string());
        tracing::info!("remedy serve: listening on http://{addr} (POST /slack/actions, /mattermost/actions, /webhook; GET /healthz, /metrics)");
        let limits = remedy_chatops::ServeLimits::default();
        remedy_chatops::serve(listener, router, limits, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        Exit::Ok
    })
}
