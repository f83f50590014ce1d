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

use super::{input, Exit, Global};
use remedy_chatops::ChatConfig;
use remedy_dsl::yaml::Node;
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
                        let span = chat_node(v, &problem).span;
                        diags.push(Diagnostic::at(&src, span, format!("`chat`: {problem}")));
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

/// The node a chat problem names (`chat.public_url: …`, `chat.notify[1]
/// (slack): …`, `chat.users: …`), or the whole `chat:` block.
fn chat_node<'a>(chat: &'a Node, problem: &str) -> &'a Node {
    let Some(rest) = problem.strip_prefix("chat.") else {
        return chat;
    };
    let key: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let Some(node) = chat.get(&key) else {
        return chat;
    };
    let index = rest[key.len()..]
        .strip_prefix('[')
        .and_then(|r| r.split(']').next())
        .and_then(|i| i.parse::<usize>().ok());
    match (index, node.as_seq()) {
        (Some(i), Some(items)) => items.get(i).unwrap_or(node),
        _ => node,
    }
}

/// The schedule a daemon problem names (`schedule `NAME`: …`).
fn schedule_named(message: &str) -> Option<&str> {
    message
        .split_once("schedule `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(name, _)| name)
}

/// `remedy config check`: the site config read as every command reads it
/// (keys, groups, allow_as, approval, chat), then what only the running
/// environment can tell: approver groups defined, chat secrets resolvable
/// here, and the daemon's schedules (cron, runbook, inventory). Every
/// problem at once, located; exit 2 if any.
pub fn check(g: &Global) -> Exit {
    let path = g
        .config
        .clone()
        .unwrap_or_else(|| remedy_journal::remedy_home().join("config.yaml"));
    if g.config.is_none() && !path.exists() {
        eprintln!(
            "error: no site config to check: none given with --config or REMEDY_CONFIG, and {} does not exist\n  = hint: pass --config PATH; examples/config.yaml is one to start from",
            path.display()
        );
        return Exit::Invalid;
    }
    let cfg = match load(g) {
        Ok(cfg) => cfg,
        Err(d) => {
            eprint!("{}", d.render());
            return Exit::Invalid;
        }
    };
    // It parsed, so it can be read again for the places of what follows.
    let located = input::read(&path, "site config")
        .ok()
        .and_then(|src| Some((remedy_dsl::yaml::parse(&src).ok()?, src)));
    let at = |keys: &[&str], index: Option<usize>, message: String| -> Diagnostic {
        let node = located.as_ref().and_then(|(root, src)| {
            let mut node = root;
            for k in keys {
                node = node.get(k)?;
            }
            if let Some(i) = index {
                node = node.as_seq()?.get(i)?;
            }
            Some((node.span, src))
        });
        match node {
            Some((span, src)) => Diagnostic::at(src, span, message),
            None => Diagnostic::new(message),
        }
    };
    let mut diags = Diagnostics::default();
    if let Some(Approval::Required(policy)) = &cfg.approval {
        if let Err(e) = cfg.expand(&policy.approvers) {
            diags.push(
                at(&["approval", "approvers"], None, e)
                    .with_hint("define the group under `groups:`, or name the approvers"),
            );
        }
    }
    let secrets = [
        ("slack_signing_secret", &cfg.chat.slack_signing_secret),
        ("mattermost_token", &cfg.chat.mattermost_token),
        ("webhook_secret", &cfg.chat.webhook_secret),
    ];
    let mut resolved = 0;
    for (field, reference) in secrets {
        if let Some(r) = reference {
            match remedy_chatops::resolve_secret(r) {
                Ok(_) => resolved += 1,
                Err(e) => diags.push(at(&["chat", field], None, format!("chat.{field}: {e}")).with_hint(
                    "set it in the environment `remedy serve` and `remedy daemon` run in (their systemd unit's EnvironmentFile), or point file: at a readable file",
                )),
            }
        }
    }
    for (i, n) in cfg.chat.notify.iter().enumerate() {
        if let remedy_chatops::NotifierConfig::Webhook {
            secret: Some(r), ..
        } = n
        {
            match remedy_chatops::resolve_secret(r) {
                Ok(_) => resolved += 1,
                Err(e) => diags.push(
                    at(
                        &["chat", "notify"],
                        Some(i),
                        format!("chat.notify[{i}] (webhook): {e}"),
                    )
                    .with_hint("set it where remedy runs, or point file: at a readable file"),
                ),
            }
        }
    }
    let mut schedules = None;
    if located
        .as_ref()
        .is_some_and(|(root, _)| root.get("daemon").is_some())
    {
        match super::daemon::load(g) {
            Ok(d) => schedules = Some(d.schedule_count()),
            Err(e) => {
                // One problem a line, each at its schedule when it names one.
                let prefix = format!("{}: ", path.display());
                for line in e.lines() {
                    if let Some(hint) = line.trim_start().strip_prefix("= hint: ") {
                        if let Some(last) = diags.0.last_mut() {
                            last.hint = Some(hint.to_string());
                        }
                        continue;
                    }
                    let message = line.strip_prefix(&prefix).unwrap_or(line).to_string();
                    let index = schedule_named(&message).and_then(|name| {
                        let (root, _) = located.as_ref()?;
                        root.get("daemon")?
                            .get("schedules")?
                            .as_seq()?
                            .iter()
                            .position(|s| s.get("name").and_then(Node::as_str) == Some(name))
                    });
                    diags.push(match index {
                        Some(i) => at(&["daemon", "schedules"], Some(i), message),
                        None => at(&["daemon"], None, message),
                    });
                }
            }
        }
    }
    if !diags.is_empty() {
        eprint!("{}", diags.render());
        return Exit::Invalid;
    }
    let mut parts = vec![
        format!("{} approver group(s)", cfg.groups.len()),
        format!("allow_as {}", cfg.allow_as.len()),
        match &cfg.approval {
            None => "approval: the runbooks' and inventories' own".to_string(),
            Some(Approval::None) => "approval: none".to_string(),
            Some(Approval::Required(p)) => format!(
                "approval: quorum {} of {}",
                p.quorum,
                p.approvers.join(", ")
            ),
        },
        format!(
            "chat: {} user(s), {} notifier(s), {resolved} secret(s) resolved",
            cfg.chat.users.len(),
            cfg.chat.notify.len()
        ),
    ];
    if let Some(n) = schedules {
        parts.push(format!("daemon: {n} schedule(s)"));
    }
    println!("ok  {}: {}", path.display(), parts.join("; "));
    Exit::Ok
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
