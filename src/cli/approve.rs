//! `remedy approvals`, `remedy approve`, `remedy deny` and `remedy serve`:
//! deciding on a waiting run from any shell, or from chat through signed
//! callbacks. Every vote is checked and counted by the journal (approver
//! list, requester rule, one vote each, quorum, expiry) and journaled.

use super::{config, journal, metrics, service_log, Exit, Global, Output};
use remedy_chatops::{CallbackError, Decider, Decision, ServeSecrets};
use remedy_journal::{Journal, RequestRecord};
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
    if g.output == Output::Json {
        match serde_json::to_string_pretty(&pending) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("error: {e}"),
        }
        return Exit::Ok;
    }
    if pending.is_empty() {
        println!("No approval requests pending.");
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
        .filter(|r| {
            let scope = &r.request.scope;
            let host_ok = host.is_none_or(|h| {
                scope == &format!("host:{h}") || scope.starts_with(&format!("step:{h}/"))
            });
            let step_ok = step.is_none_or(|s| scope.ends_with(&format!("/{s}")));
            host_ok && step_ok
        })
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
    let (_, who, actor) = match super::run::site(g) {
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

/// Chat decisions go through the same journal checks as `remedy approve`;
/// every callback is counted for /metrics and logged.
struct JournalDecider {
    journal: Arc<Journal>,
    callbacks: Arc<metrics::Callbacks>,
}

impl Decider for JournalDecider {
    fn decide(&self, d: Decision) -> Result<String, String> {
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
    let callbacks = Arc::new(metrics::Callbacks::default());
    let decider = JournalDecider {
        journal: Arc::clone(&j),
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
