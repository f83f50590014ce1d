//! `remedy serve`'s HTTP side: the endpoints chat buttons call back to. Each
//! request is verified (signature or token, timestamp, replay), its chat user
//! mapped to a remedy user, and only then handed to the `Decider` — which owns
//! the approval policy and the durable replay store.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::signature::{
    sign_slack, sign_webhook, signature_matches, Clock, TIMESTAMP_TOLERANCE_SECS,
};
use crate::{mattermost, slack};

/// The inbound secrets, resolved (see `ChatConfig::serve_secrets`). An endpoint
/// whose secret is `None` refuses every request.
#[derive(Clone, Default)]
pub struct ServeSecrets {
    pub slack_signing_secret: Option<String>,
    pub mattermost_token: Option<String>,
    pub webhook_secret: Option<String>,
}

impl std::fmt::Debug for ServeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &Option<String>| if s.is_some() { "set" } else { "unset" };
        f.debug_struct("ServeSecrets")
            .field("slack_signing_secret", &set(&self.slack_signing_secret))
            .field("mattermost_token", &set(&self.mattermost_token))
            .field("webhook_secret", &set(&self.webhook_secret))
            .finish()
    }
}

/// What a verified callback asks for, after the chat user was mapped to a
/// remedy user.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub request_id: String,
    pub approve: bool,
    /// The remedy identity.
    pub user: String,
    /// The chat identity it was mapped from, e.g. "slack:U024BE7LH".
    pub chat_user: String,
    /// "slack", "mattermost" or "webhook".
    pub channel: String,
    pub comment: Option<String>,
}

/// The caller's side of a callback: policy and durable state. `decide` and
/// `first_time` are called from a blocking thread, so they may do file or
/// database I/O; `observe` is called on the server's runtime and must not block.
pub trait Decider: Send + Sync + 'static {
    /// Records the decision (the implementation checks policy: approver list,
    /// requester, quorum). Ok(message for the chat user) or Err(why refused).
    fn decide(&self, d: Decision) -> Result<String, String>;
    /// Replay protection shared across processes: true the first time `key` is
    /// seen (the implementation stores it durably).
    fn first_time(&self, key: &str) -> bool;
    /// Told how every callback ended: `Ok(())` when the decider accepted it,
    /// else why it was refused (for metrics and logs; the default ignores it).
    fn observe(&self, _channel: &'static str, _outcome: Result<(), &CallbackError>) {}
}

/// Why a callback was refused. Each message says what is wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The endpoint's secret is not configured on this server.
    #[error("{channel} callbacks are not enabled on this server: set chat.{setting} (an env: or file: reference) and restart `remedy serve`")]
    NotConfigured {
        channel: &'static str,
        setting: &'static str,
    },
    /// A header the scheme needs is missing.
    #[error("the request is not signed: the {header} header is missing")]
    Unsigned { header: &'static str },
    /// The signature does not match the body and timestamp.
    #[error("the signature does not match: the sender must sign with the same secret as chat.{setting}, over the exact body")]
    BadSignature { setting: &'static str },
    /// The Mattermost button carried a token other than the configured one.
    #[error("the button's token does not match chat.mattermost_token: post a new approval request (buttons made with an old token stay invalid)")]
    BadToken,
    /// The signed timestamp is too far from this server's clock.
    #[error("the request's timestamp is {age} s away from this server's clock (at most {TIMESTAMP_TOLERANCE_SECS} s allowed): check both clocks (NTP); old requests are not accepted, so they cannot be replayed")]
    Stale { age: i64 },
    /// The body or a header cannot be read.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The same request was received before.
    #[error("this request was already received and counted once; to decide again, click the button again (or send a newly signed request)")]
    Replay,
    /// The chat user is not in `chat.users`.
    #[error("chat user {chat_user} is not mapped to a remedy user: add \"{chat_user}\": <remedy user> under chat.users in remedy's config")]
    UnknownUser { chat_user: String },
    /// The decider refused (not an approver, the requester, request closed…).
    #[error("{0}")]
    Refused(String),
    /// The decider failed unexpectedly.
    #[error(
        "internal error while recording the decision: {0}; see remedy serve's output and retry"
    )]
    Internal(String),
}

impl CallbackError {
    /// A short stable name for the kind of refusal (a metrics label).
    pub fn reason(&self) -> &'static str {
        match self {
            CallbackError::NotConfigured { .. } => "not_configured",
            CallbackError::Unsigned { .. } => "unsigned",
            CallbackError::BadSignature { .. } => "bad_signature",
            CallbackError::BadToken => "bad_token",
            CallbackError::Stale { .. } => "stale",
            CallbackError::Malformed(_) => "malformed",
            CallbackError::Replay => "replay",
            CallbackError::UnknownUser { .. } => "unknown_user",
            CallbackError::Refused(_) => "refused",
            CallbackError::Internal(_) => "internal",
        }
    }

    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            CallbackError::NotConfigured { .. } => StatusCode::NOT_FOUND,
            CallbackError::Unsigned { .. }
            | CallbackError::BadSignature { .. }
            | CallbackError::BadToken
            | CallbackError::Stale { .. } => StatusCode::UNAUTHORIZED,
            CallbackError::Malformed(_) => StatusCode::BAD_REQUEST,
            CallbackError::Replay => StatusCode::CONFLICT,
            CallbackError::UnknownUser { .. } | CallbackError::Refused(_) => StatusCode::FORBIDDEN,
            CallbackError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

struct Shared {
    secrets: ServeSecrets,
    users: BTreeMap<String, String>,
    decider: Arc<dyn Decider>,
    clock: Clock,
    /// For Slack's response_url follow-ups; none if TLS could not be set up.
    http: Option<reqwest::Client>,
}

/// The callback endpoints, checking timestamps against the system clock.
pub fn router(
    secrets: ServeSecrets,
    users: BTreeMap<String, String>,
    decider: Arc<dyn Decider>,
) -> Router {
    router_with_clock(secrets, users, decider, Clock::system())
}

/// `router` with the clock timestamps are checked against given.
pub fn router_with_clock(
    secrets: ServeSecrets,
    users: BTreeMap<String, String>,
    decider: Arc<dyn Decider>,
    clock: Clock,
) -> Router {
    let shared = Arc::new(Shared {
        secrets,
        users,
        decider,
        clock,
        http: crate::http_client()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .ok(),
    });
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/slack/actions", post(slack_actions))
        .route("/mattermost/actions", post(mattermost_actions))
        .route("/webhook", post(webhook))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"ok": false, "error": "no such endpoint: remedy serve answers GET /healthz, GET /metrics, POST /slack/actions, POST /mattermost/actions and POST /webhook"})),
            )
        })
        .with_state(shared)
}

/// Which endpoint, for replies in the shape its sender displays.
#[derive(Clone, Copy)]
enum Channel {
    Slack,
    Mattermost,
    Webhook,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Slack => "slack",
            Channel::Mattermost => "mattermost",
            Channel::Webhook => "webhook",
        }
    }

    /// The status and body answering `outcome`, after the decider was told
    /// how the callback ended.
    fn reply(
        self,
        s: &Shared,
        outcome: Result<String, CallbackError>,
    ) -> (StatusCode, Json<serde_json::Value>) {
        s.decider.observe(self.name(), outcome.as_ref().map(|_| ()));
        let (status, ok, message) = match outcome {
            Ok(message) => (StatusCode::OK, true, message),
            Err(e) => (e.status(), false, e.to_string()),
        };
        let body = match self {
            Channel::Slack => {
                json!({"ok": ok, "text": message, "replace_original": false, "response_type": "ephemeral"})
            }
            Channel::Mattermost => json!({"ok": ok, "ephemeral_text": message}),
            Channel::Webhook => json!({"ok": ok, "message": message}),
        };
        (status, Json(body))
    }
}

/// A verified request, ready for the decider: the decision and the replay
/// keys — `check` must be new; `also` is recorded to widen the window.
struct Verified {
    decision: Decision,
    check: String,
    also: Option<String>,
}

async fn slack_actions(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut response_url = None;
    let outcome = async {
        let (click, check) = verify_slack(&s, &headers, &body)?;
        response_url = click.response_url;
        let decision = s.decision(
            Channel::Slack,
            &click.user_id,
            click.request_id,
            click.approve,
            None,
        )?;
        let also = None;
        decide(
            &s,
            Verified {
                decision,
                check,
                also,
            },
        )
        .await
    }
    .await;
    // A replay is a duplicate delivery: the user was answered the first time.
    let answer = !matches!(outcome, Err(CallbackError::Replay));
    let (status, Json(body)) = Channel::Slack.reply(&s, outcome);
    if let (Some(url), Some(client), true) = (response_url, s.http.clone(), answer) {
        let message = body.clone();
        // The payload is signed, so its response_url is Slack's own. Nothing
        // waits for this: Slack wants the HTTP answer within 3 s.
        tokio::spawn(async move {
            let _ = client.post(url).json(&message).send().await;
        });
    }
    (status, Json(body)).into_response()
}

/// A signed, fresh, well-formed Slack click and its replay key.
fn verify_slack(
    s: &Shared,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(slack::ButtonClick, String), CallbackError> {
    let secret = s
        .secrets
        .slack_signing_secret
        .as_deref()
        .ok_or(CallbackError::NotConfigured {
            channel: "slack",
            setting: "slack_signing_secret",
        })?;
    let ts = header(headers, "X-Slack-Request-Timestamp")?;
    let signature = header(headers, "X-Slack-Signature")?;
    if !signature_matches(&sign_slack(secret, ts, body), signature) {
        return Err(CallbackError::BadSignature {
            setting: "slack_signing_secret",
        });
    }
    check_fresh(s, ts)?;
    let click = slack::parse_click(body).map_err(CallbackError::Malformed)?;
    Ok((click, format!("slack:{}", signature.trim())))
}

async fn mattermost_actions(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let outcome = match verify_mattermost(&s, &body) {
        Ok(v) => decide(&s, v).await,
        Err(e) => Err(e),
    };
    Channel::Mattermost.reply(&s, outcome).into_response()
}

fn verify_mattermost(s: &Shared, body: &[u8]) -> Result<Verified, CallbackError> {
    let token = s
        .secrets
        .mattermost_token
        .as_deref()
        .ok_or(CallbackError::NotConfigured {
            channel: "mattermost",
            setting: "mattermost_token",
        })?;
    let click = mattermost::parse_click(body).map_err(CallbackError::Malformed)?;
    if !signature_matches(token, &click.token) {
        return Err(CallbackError::BadToken);
    }
    let action = if click.approve { "approve" } else { "deny" };
    // Mattermost signs nothing and sends no timestamp. A trigger id is unique
    // per click; without one, the same click is refused for at least
    // the tolerance window: the current window's key must be new, and the
    // next window's is recorded too.
    let (check, also) = match &click.trigger_id {
        Some(trigger) => (format!("mattermost:trigger:{trigger}"), None),
        None => {
            let window = s.clock.now().div_euclid(TIMESTAMP_TOLERANCE_SECS);
            let key = |w: i64| {
                format!(
                    "mattermost:{}:{}:{action}:{w}",
                    click.user_id, click.request_id
                )
            };
            (key(window), Some(key(window + 1)))
        }
    };
    Ok(Verified {
        decision: s.decision(
            Channel::Mattermost,
            &click.user_id,
            click.request_id,
            click.approve,
            None,
        )?,
        check,
        also,
    })
}

/// The generic webhook's body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookBody {
    user: String,
    action: String,
    request: String,
    #[serde(default)]
    comment: Option<String>,
}

async fn webhook(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let outcome = match verify_webhook(&s, &headers, &body) {
        Ok(v) => decide(&s, v).await,
        Err(e) => Err(e),
    };
    Channel::Webhook.reply(&s, outcome).into_response()
}

fn verify_webhook(s: &Shared, headers: &HeaderMap, body: &[u8]) -> Result<Verified, CallbackError> {
    let secret = s
        .secrets
        .webhook_secret
        .as_deref()
        .ok_or(CallbackError::NotConfigured {
            channel: "webhook",
            setting: "webhook_secret",
        })?;
    let ts = header(headers, "X-Remedy-Timestamp")?;
    let signature = header(headers, "X-Remedy-Signature")?;
    if !signature_matches(&sign_webhook(secret, ts, body), signature) {
        return Err(CallbackError::BadSignature {
            setting: "webhook_secret",
        });
    }
    check_fresh(s, ts)?;
    let b: WebhookBody = serde_json::from_slice(body).map_err(|e| {
        CallbackError::Malformed(format!(
            "expected JSON {{\"user\", \"action\": \"approve\"|\"deny\", \"request\", \"comment\"?}}: {e}"
        ))
    })?;
    let approve = match b.action.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return Err(CallbackError::Malformed(format!(
                "action `{other}` is neither `approve` nor `deny`"
            )))
        }
    };
    if b.user.trim().is_empty() || b.request.trim().is_empty() {
        return Err(CallbackError::Malformed(
            "`user` and `request` must not be empty".into(),
        ));
    }
    let comment = b.comment.filter(|c| !c.trim().is_empty());
    Ok(Verified {
        decision: s.decision(Channel::Webhook, &b.user, b.request, approve, comment)?,
        check: format!("webhook:{}", signature.trim()),
        also: None,
    })
}

impl Shared {
    fn decision(
        &self,
        channel: Channel,
        chat_id: &str,
        request_id: String,
        approve: bool,
        comment: Option<String>,
    ) -> Result<Decision, CallbackError> {
        let chat_user = format!("{}:{chat_id}", channel.name());
        let user =
            self.users
                .get(&chat_user)
                .cloned()
                .ok_or_else(|| CallbackError::UnknownUser {
                    chat_user: chat_user.clone(),
                })?;
        Ok(Decision {
            request_id,
            approve,
            user,
            chat_user,
            channel: channel.name().to_string(),
            comment,
        })
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, CallbackError> {
    let value = headers
        .get(name)
        .ok_or(CallbackError::Unsigned { header: name })?;
    value
        .to_str()
        .map_err(|_| CallbackError::Malformed(format!("the {name} header is not text")))
}

fn check_fresh(s: &Shared, ts: &str) -> Result<(), CallbackError> {
    let ts: i64 = ts
        .trim()
        .parse()
        .map_err(|_| CallbackError::Malformed("the timestamp header is not unix seconds".into()))?;
    let age = s.clock.now().saturating_sub(ts);
    if age.saturating_abs() > TIMESTAMP_TOLERANCE_SECS {
        return Err(CallbackError::Stale { age });
    }
    Ok(())
}

/// Replay check, then the decision, on a blocking thread: the decider may
/// write to a database.
async fn decide(s: &Shared, v: Verified) -> Result<String, CallbackError> {
    let decider = Arc::clone(&s.decider);
    tokio::task::spawn_blocking(move || {
        if !decider.first_time(&v.check) {
            return Err(CallbackError::Replay);
        }
        if let Some(also) = &v.also {
            decider.first_time(also);
        }
        decider.decide(v.decision).map_err(CallbackError::Refused)
    })
    .await
    .map_err(|e| CallbackError::Internal(e.to_string()))?
}
