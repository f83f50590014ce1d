//! remedy's chat side of approvals (DESIGN.md §8, issue #6).
//!
//! Out: `notify_all` posts a `Notice` to every configured notifier — Slack and
//! Mattermost with Approve/Deny buttons, Teams, a signed generic webhook, a
//! shell command — with retries, and reports a `Delivery` for each.
//!
//! In: `router` is `remedy serve`'s HTTP side. It verifies each button
//! callback (Slack's signing secret, Mattermost's token, remedy's HMAC
//! header), refuses stale and replayed requests, maps the chat user to a remedy
//! user, and hands a `Decision` to the caller's `Decider`, which applies the
//! approval policy. This crate knows chat, not policy.
//!
//! The config it reads (`ChatConfig`), in YAML:
//!
//! ```yaml
//! users:
//!   "slack:U024BE7LH": alice
//!   "mattermost:8x7kq3m": bob
//!   "webhook:carol": carol
//! slack_signing_secret: env:REMEDY_SLACK_SIGNING_SECRET
//! mattermost_token: file:/etc/remedy/mattermost-token
//! webhook_secret: env:REMEDY_WEBHOOK_SECRET
//! public_url: https://jump-1.example.net:8443
//! notify:
//!   - { type: slack, url: "https://hooks.slack.com/services/…" }
//!   - { type: webhook, url: "https://pager.example.net/remedy", secret: "env:PAGER_SECRET" }
//!   - { type: command, command: "logger -t remedy" }
//! ```

mod config;
mod delivery;
mod mattermost;
mod notice;
mod secret;
mod serve;
mod server;
mod signature;
mod slack;
mod teams;

pub use config::{ChatConfig, NotifierConfig};
pub use delivery::{notify_all, notify_all_with, Callback, Delivery, Retry};
pub use notice::{Notice, NoticeKind};
pub use secret::{is_reference, resolve_secret};
pub use serve::{router, router_with_clock, CallbackError, Decider, Decision, ServeSecrets};
pub use server::{serve, ServeLimits};
pub use signature::{sign_slack, sign_webhook, Clock, TIMESTAMP_TOLERANCE_SECS};

/// A builder for this crate's HTTP clients (notifiers, chat replies). Their
/// TLS uses aws-lc-rs, the crypto provider remedy already carries for SSH and
/// the Kubernetes client: reqwest is built without one of its own (ring, ~0.3
/// MB of the release binary) and takes the process's default, which this
/// installs when none is yet. Without it `build()` would panic.
pub fn http_client() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
}
