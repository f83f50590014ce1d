//! `ChatConfig`: the chat section of remedy's config — who is who in chat,
//! where notices go, and references to the secrets that sign callbacks.
//! Checking it reports every problem at once; resolving its secrets is a
//! separate step, since it needs the environment the server will run in.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::delivery::Callback;
use crate::secret::{is_reference, resolve_secret};
use crate::serve::ServeSecrets;

/// The chat section of remedy's config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChatConfig {
    /// Chat identity -> remedy user: "slack:U024BE7LH" -> "alice",
    /// "mattermost:8x7k…" -> "bob", "webhook:carol" -> "carol".
    pub users: BTreeMap<String, String>,
    /// Reference (`env:`/`file:`) to Slack's signing secret.
    pub slack_signing_secret: Option<String>,
    /// Reference to the token put into Mattermost buttons and checked on callback.
    pub mattermost_token: Option<String>,
    /// Reference to the secret of the inbound generic webhook.
    pub webhook_secret: Option<String>,
    /// Where `remedy serve` is reachable from the chat server, e.g.
    /// "https://remedy.example.net:8443" (Mattermost buttons call it).
    pub public_url: Option<String>,
    pub notify: Vec<NotifierConfig>,
}

/// One place notices are sent to.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum NotifierConfig {
    /// A Slack incoming webhook.
    Slack { url: String },
    /// A Mattermost incoming webhook.
    Mattermost { url: String },
    /// A Microsoft Teams incoming webhook (Office 365 connector card).
    Teams { url: String },
    /// Any HTTP endpoint: the notice as JSON, signed like the inbound webhook
    /// when `secret` (a reference) is set.
    Webhook { url: String, secret: Option<String> },
    /// A shell command (`sh -c`), the notice as JSON on stdin and
    /// REMEDY_EVENT, REMEDY_RUN, REMEDY_REQUEST in its environment.
    Command { command: String },
}

/// The chat identity prefixes `users` keys may have.
const CHANNELS: [&str; 3] = ["slack", "mattermost", "webhook"];

impl ChatConfig {
    /// Every problem in the config that can be seen without the environment
    /// (secrets are checked for shape, not resolved). Empty means fine.
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (chat_user, user) in &self.users {
            let known = chat_user
                .split_once(':')
                .is_some_and(|(channel, id)| CHANNELS.contains(&channel) && !id.is_empty());
            if !known {
                problems.push(format!(
                    "chat.users: `{chat_user}` should be `slack:USER_ID`, `mattermost:USER_ID` or `webhook:NAME`"
                ));
            }
            if user.trim().is_empty() {
                problems.push(format!(
                    "chat.users: `{chat_user}` maps to an empty remedy user"
                ));
            }
        }
        let secrets = [
            ("slack_signing_secret", &self.slack_signing_secret),
            ("mattermost_token", &self.mattermost_token),
            ("webhook_secret", &self.webhook_secret),
        ];
        for (field, value) in secrets {
            if let Some(v) = value {
                if !is_reference(v) {
                    problems.push(format!(
                        "chat.{field}: give the secret by reference (`env:NAME` or `file:PATH`), not its value"
                    ));
                }
            }
        }
        if let Some(url) = &self.public_url {
            if let Err(e) = check_http_url(url) {
                problems.push(format!("chat.public_url: {e}"));
            }
        }
        for (i, n) in self.notify.iter().enumerate() {
            let at = format!("chat.notify[{i}] ({})", n.kind());
            match n {
                NotifierConfig::Slack { url }
                | NotifierConfig::Mattermost { url }
                | NotifierConfig::Teams { url } => {
                    if let Err(e) = check_http_url(url) {
                        problems.push(format!("{at}: {e}"));
                    }
                }
                NotifierConfig::Webhook { url, secret } => {
                    if let Err(e) = check_http_url(url) {
                        problems.push(format!("{at}: {e}"));
                    }
                    if secret.as_deref().is_some_and(|s| !is_reference(s)) {
                        problems.push(format!(
                            "{at}: give the secret by reference (`env:NAME` or `file:PATH`), not its value"
                        ));
                    }
                }
                NotifierConfig::Command { command } => {
                    if command.trim().is_empty() {
                        problems.push(format!("{at}: the command is empty"));
                    }
                }
            }
            let mattermost_buttons = matches!(n, NotifierConfig::Mattermost { .. })
                && (self.public_url.is_none() || self.mattermost_token.is_none());
            if mattermost_buttons {
                problems.push(format!(
                    "{at}: approval requests will have no buttons: set chat.public_url and chat.mattermost_token"
                ));
            }
        }
        problems
    }

    /// Resolves the inbound secrets for `remedy serve`; every unresolvable one
    /// is reported.
    pub fn serve_secrets(&self) -> Result<ServeSecrets, Vec<String>> {
        let mut problems = Vec::new();
        let mut resolve = |field: &str, value: &Option<String>| {
            value.as_deref().and_then(|v| {
                resolve_secret(v)
                    .map_err(|e| problems.push(format!("chat.{field}: {e}")))
                    .ok()
            })
        };
        let secrets = ServeSecrets {
            slack_signing_secret: resolve("slack_signing_secret", &self.slack_signing_secret),
            mattermost_token: resolve("mattermost_token", &self.mattermost_token),
            webhook_secret: resolve("webhook_secret", &self.webhook_secret),
        };
        if problems.is_empty() {
            Ok(secrets)
        } else {
            Err(problems)
        }
    }

    /// Where Mattermost buttons call back to, if `public_url` is set (the token
    /// resolved, if configured).
    pub fn callback(&self) -> Result<Option<Callback>, String> {
        let Some(public_url) = &self.public_url else {
            return Ok(None);
        };
        let mattermost_token = match &self.mattermost_token {
            Some(r) => Some(resolve_secret(r).map_err(|e| format!("chat.mattermost_token: {e}"))?),
            None => None,
        };
        Ok(Some(Callback {
            public_url: public_url.clone(),
            mattermost_token,
        }))
    }
}

impl NotifierConfig {
    /// The notifier's type name, as written in config.
    pub fn kind(&self) -> &'static str {
        match self {
            NotifierConfig::Slack { .. } => "slack",
            NotifierConfig::Mattermost { .. } => "mattermost",
            NotifierConfig::Teams { .. } => "teams",
            NotifierConfig::Webhook { .. } => "webhook",
            NotifierConfig::Command { .. } => "command",
        }
    }

    /// A name for reports that does not leak secrets: webhook URLs carry their
    /// token in the path, so only scheme and host are shown; a command shows its
    /// program only.
    pub fn label(&self) -> String {
        let target = match self {
            NotifierConfig::Slack { url }
            | NotifierConfig::Mattermost { url }
            | NotifierConfig::Teams { url }
            | NotifierConfig::Webhook { url, .. } => elide_path(url),
            NotifierConfig::Command { command } => {
                command.split_whitespace().next().unwrap_or("").to_string()
            }
        };
        format!("{} {target}", self.kind())
    }
}

fn elide_path(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}/…", u.scheme())
        }
        Err(_) => "(invalid URL)".to_string(),
    }
}

pub(crate) fn check_http_url(url: &str) -> Result<reqwest::Url, String> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| format!("`{}` is not a URL: {e}", elide_path(url)))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "`{}` should be an http:// or https:// URL with a host",
            elide_path(url)
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<ChatConfig, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn notifiers_parse_by_type() {
        let c = parse(
            r#"{"users": {"slack:U1": "alice"},
                "slack_signing_secret": "env:SLACK_SIGNING_SECRET",
                "notify": [
                  {"type": "slack", "url": "https://hooks.slack.com/services/T/B/x"},
                  {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "file:/etc/remedy/hook"},
                  {"type": "command", "command": "logger -t remedy"}
                ]}"#,
        )
        .unwrap();
        assert_eq!(c.notify.len(), 3);
        assert_eq!(c.notify[0].label(), "slack https://hooks.slack.com/…");
        assert_eq!(c.notify[1].label(), "webhook http://127.0.0.1:9/…");
        assert_eq!(c.notify[2].label(), "command logger");
        assert!(c.check().is_empty(), "{:?}", c.check());
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        assert!(parse(r#"{"notify": [{"type": "irc", "url": "x"}]}"#).is_err());
        assert!(parse(r#"{"notify": [{"type": "slack", "url": "x", "chanel": "y"}]}"#).is_err());
        assert!(parse(r#"{"public_ur": "x"}"#).is_err());
    }

    #[test]
    fn check_reports_every_problem() {
        let c = parse(
            r#"{"users": {"U1": "alice", "slack:U2": ""},
                "webhook_secret": "hunter2",
                "public_url": "remedy.example.net",
                "notify": [{"type": "teams", "url": "ftp://x/y"},
                           {"type": "mattermost", "url": "https://mm.example.net/hooks/abc"}]}"#,
        )
        .unwrap();
        let problems = c.check();
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems.iter().all(|p| !p.contains("hunter2")));
        assert!(problems.iter().any(|p| p.contains("no buttons")));
    }

    #[test]
    fn serve_secrets_reports_unresolvable_references() {
        let c = ChatConfig {
            slack_signing_secret: Some("env:REMEDY_CHATOPS_TEST_UNSET_A".into()),
            webhook_secret: Some("env:REMEDY_CHATOPS_TEST_UNSET_B".into()),
            ..ChatConfig::default()
        };
        let problems = c.serve_secrets().unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        let none = ChatConfig::default().serve_secrets().unwrap();
        assert!(none.slack_signing_secret.is_none());
    }
}
