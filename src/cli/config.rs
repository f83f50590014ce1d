//! The site config: `--config PATH`, `REMEDY_CONFIG`, or
//! `$REMEDY_HOME/config.yaml` when it exists. Who belongs to which approver
//! group, which OS users may act `--as` someone else, an approval policy
//! that overrides runbooks and inventories on this jump host, and the chat
//! side (identities, callback secrets, notifiers).
//!
//! ```yaml
//! groups:
//!   sre: [alice, bob, carol]
//! allow_as: [ops]              # OS users that may pass --as NAME
//! approval:                    # optional: replaces runbook and inventory policies
//!   approvers: [group:sre]
//!   quorum: 2
//! chat:
//!   users: { "slack:U024BE7LH": alice }
//!   slack_signing_secret: env:SLACK_SIGNING_SECRET
//!   notify:
//!     - { type: slack, url: "https://hooks.slack.com/services/…" }
//! ```

use super::{input, Global};
use remedy_chatops::ChatConfig;
use remedy_dsl::{Approval, Diagnostic, Diagnostics};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct SiteConfig {
    pub path: Option<PathBuf>,
    pub groups: BTreeMap<String, Vec<String>>,
    pub allow_as: Vec<String>,
    pub approval: Option<Approval>,
    pub chat: ChatConfig,
}

pub(super) const KEYS: &[&str] = &["groups", "allow_as", "approval", "chat", "daemon"];

pub fn load(g: &Global) -> Result<SiteConfig, Diagnostics> {
    let (path, required) = match &g.config {
        Some(p) => (p.clone(), true),
        None => (remedy_journal::remedy_home().join("config.yaml"), false),
    };
    if !required && !path.exists() {
        return Ok(SiteConfig::default());
    }
    let src = input::read(&path, "site config").map_err(|d| match d.source {
        None => d.with_hint("check --config / REMEDY_CONFIG"),
        Some(_) => d,
    })?;
    let root = remedy_dsl::yaml::parse(&src).map_err(Diagnostics)?;
    let mut diags = Diagnostics::default();
    let mut cfg = SiteConfig {
        path: Some(path.clone()),
        ..SiteConfig::default()
    };
    let Some(top) = root.as_map() else {
        return Err(Diagnostic::at(&src, root.span, "the site config must be a mapping").into());
    };
    for (k, v) in top {
        let key = k.as_str().unwrap_or("");
        match key {
            "groups" => match v.to_json() {
                serde_json::Value::Object(m) => {
                    for (name, members) in m {
                        match serde_json::from_value::<Vec<String>>(members) {
                            Ok(list) => {
                                cfg.groups.insert(name, list);
                            }
                            Err(_) => diags.push(Diagnostic::at(
                                &src,
                                v.span,
                                format!("group `{name}` must be a list of user names"),
                            )),
                        }
                    }
                }
                _ => diags.push(
                    Diagnostic::at(&src, v.span, "`groups` must be a mapping")
                        .with_hint("e.g. `groups: { sre: [alice, bob] }`"),
                ),
            },
            "allow_as" => match serde_json::from_value::<Vec<String>>(v.to_json()) {
                Ok(list) => cfg.allow_as = list,
                Err(_) => diags.push(Diagnostic::at(
                    &src,
                    v.span,
                    "`allow_as` must be a list of OS user names",
                )),
            },
            "approval" => match remedy_dsl::compile::approval(src.clone(), v) {
                Ok(a) => cfg.approval = Some(a),
                Err(d) => diags.0.extend(d.0),
            },
            "chat" => match serde_json::from_value::<ChatConfig>(v.to_json()) {
                Ok(c) => {
                    for problem in c.check() {
                        diags.push(Diagnostic::at(&src, v.span, format!("`chat`: {problem}")));
                    }
                    cfg.chat = c;
                }
                Err(e) => diags.push(
                    Diagnostic::at(&src, v.span, format!("`chat`: {e}"))
                        .with_hint("keys: users, slack_signing_secret, mattermost_token, webhook_secret, public_url, notify"),
                ),
            },
            // Read by `remedy daemon` / `remedy schedule`.
            "daemon" => {}
            other => {
                let hint = remedy_dsl::diagnostic::did_you_mean(other, KEYS.iter().copied())
                    .unwrap_or_else(|| format!("allowed: {}", KEYS.join(", ")));
                diags.push(
                    Diagnostic::at(&src, k.span, format!("unknown key `{other}` in the site config"))
                        .with_hint(hint),
                );
            }
        }
    }
    diags.into_result(cfg)
}

impl SiteConfig {
    /// Approver entries with `group:NAME` replaced by the group's members.
    pub fn expand(&self, approvers: &[String]) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        for a in approvers {
            match a.strip_prefix("group:") {
                Some(group) => match self.groups.get(group) {
                    Some(members) => out.extend(members.iter().cloned()),
                    None => {
                        return Err(format!(
                        "approver group `{group}` is not defined{}",
                        match &self.path {
                            Some(p) => format!(" in {}", p.display()),
                            None =>
                                " (no site config: create $REMEDY_HOME/config.yaml with `groups:`)"
                                    .into(),
                        }
                    ))
                    }
                },
                None => out.push(a.clone()),
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Who is acting: the OS user, or `--as NAME` when this OS user is in
    /// `allow_as`. Returns (identity, what the journal records as actor).
    pub fn identity(&self, as_name: Option<&str>) -> Result<(String, String), String> {
        let user = remedy_journal::os_user();
        match as_name {
            None => Ok((user.clone(), user)),
            Some(n) if n == user => Ok((user.clone(), user)),
            Some(n) if self.allow_as.contains(&user) => {
                Ok((n.to_string(), format!("{n} (os user {user})")))
            }
            Some(n) => Err(format!(
                "--as {n}: OS user {user} may not act as someone else\n  = hint: list {user} under `allow_as:` in the site config ({}) if this is a shared account",
                self.path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "$REMEDY_HOME/config.yaml".into())
            )),
        }
    }
}
