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
//! coordination:                # optional: several jump hosts, one ops etcd
//!   jump_host: bastion-eu-1    # default: the hostname
//!   lease_ttl: 60s
//!   etcd:
//!     endpoints: [https://10.9.0.1:2379, https://10.9.0.2:2379, https://10.9.0.3:2379]
//!     ca: /etc/remedy/ops-etcd/ca.crt        # relative paths: to this file's directory
//!     cert: /etc/remedy/ops-etcd/client.crt
//!     key: /etc/remedy/ops-etcd/client.key
//!     prefix: /remedy
//! ```

use super::{input, Exit, Global};
use remedy_chatops::ChatConfig;
use remedy_coordination::{Coordination, EtcdBackend, DEFAULT_LEASE_TTL, DEFAULT_PREFIX};
use remedy_dsl::yaml::Node;
use remedy_dsl::{Approval, Diagnostic, Diagnostics, Source};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, Default)]
pub struct SiteConfig {
    pub path: Option<PathBuf>,
    pub groups: BTreeMap<String, Vec<String>>,
    pub allow_as: Vec<String>,
    pub approval: Option<Approval>,
    pub chat: ChatConfig,
    /// The ops etcd shared with other jump hosts; None: this jump host alone.
    pub coordination: Option<Coordination>,
}

pub(super) const KEYS: &[&str] = &[
    "groups",
    "allow_as",
    "approval",
    "chat",
    "daemon",
    "coordination",
];
pub(super) const COORDINATION_KEYS: &[&str] = &["etcd", "jump_host", "lease_ttl"];
pub(super) const ETCD_KEYS: &[&str] = &["endpoints", "ca", "cert", "key", "prefix"];

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
            "coordination" => {
                let dir = path.parent().unwrap_or(Path::new("."));
                cfg.coordination = coordination(&src, v, dir, &mut diags);
            }
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

/// An unknown key in `block`, with the closest known one.
fn unknown_key(src: &Arc<Source>, k: &Node, block: &str, known: &[&str]) -> Diagnostic {
    let other = k.as_str().unwrap_or("");
    let hint = remedy_dsl::diagnostic::did_you_mean(other, known.iter().copied())
        .unwrap_or_else(|| format!("allowed: {}", known.join(", ")));
    Diagnostic::at(src, k.span, format!("unknown key `{other}` in `{block}`")).with_hint(hint)
}

/// The `coordination:` block; every problem in it is pushed to `diags`.
fn coordination(
    src: &Arc<Source>,
    v: &Node,
    dir: &Path,
    diags: &mut Diagnostics,
) -> Option<Coordination> {
    let hint = "e.g. `coordination: { etcd: { endpoints: [https://10.9.0.1:2379], ca: ca.crt, cert: client.crt, key: client.key } }` (`remedy lab up --ops-etcd` writes one)";
    let Some(map) = v.as_map() else {
        diags.push(Diagnostic::at(src, v.span, "`coordination` must be a mapping").with_hint(hint));
        return None;
    };
    let before = diags.0.len();
    let mut etcd = None;
    let mut jump_host = None;
    let mut lease_ttl = DEFAULT_LEASE_TTL;
    for (k, val) in map {
        match k.as_str().unwrap_or("") {
            "etcd" => etcd = etcd_backend(src, val, dir, diags),
            "jump_host" => match val.as_str().filter(|s| !s.trim().is_empty() && !s.contains('/')) {
                Some(name) => jump_host = Some(name.to_string()),
                None => diags.push(Diagnostic::at(
                    src,
                    val.span,
                    "`coordination.jump_host` must be a name without `/` (how other jump hosts see this one)",
                )),
            },
            "lease_ttl" => match val
                .scalar_text()
                .and_then(|t| remedy_dsl::param::parse_duration(&t))
                .filter(|s| (5..=3600).contains(s))
            {
                Some(secs) => lease_ttl = std::time::Duration::from_secs(secs as u64),
                None => diags.push(
                    Diagnostic::at(src, val.span, "`coordination.lease_ttl` must be a duration from 5s to 1h")
                        .with_hint("a run paused longer than this loses its locks; e.g. `lease_ttl: 60s`"),
                ),
            },
            _ => diags.push(unknown_key(src, k, "coordination", COORDINATION_KEYS)),
        }
    }
    if map.iter().all(|(k, _)| k.as_str() != Some("etcd")) {
        diags.push(
            Diagnostic::at(
                src,
                v.span,
                "`coordination` needs an `etcd:` block (the ops etcd)",
            )
            .with_hint(hint),
        );
    }
    if diags.0.len() > before {
        return None;
    }
    Some(Coordination {
        etcd: etcd?,
        jump_host: jump_host.unwrap_or_else(remedy_journal::hostname),
        lease_ttl,
    })
}

/// `coordination.etcd`: endpoints (https only: the ops etcd holds who may
/// change what), the TLS files (relative to the site config's directory,
/// and present), and the key prefix.
fn etcd_backend(
    src: &Arc<Source>,
    v: &Node,
    dir: &Path,
    diags: &mut Diagnostics,
) -> Option<EtcdBackend> {
    let Some(map) = v.as_map() else {
        diags.push(Diagnostic::at(
            src,
            v.span,
            "`coordination.etcd` must be a mapping with endpoints, ca, cert, key",
        ));
        return None;
    };
    let before = diags.0.len();
    let mut endpoints = Vec::new();
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut prefix = DEFAULT_PREFIX.to_string();
    for (k, val) in map {
        let key = k.as_str().unwrap_or("");
        match key {
            "endpoints" => match val.as_seq() {
                Some(items) if !items.is_empty() => {
                    for item in items {
                        match item.as_str().filter(|e| valid_endpoint(e)) {
                            Some(e) => endpoints.push(e.trim_end_matches('/').to_string()),
                            None => diags.push(
                                Diagnostic::at(src, item.span, "an ops etcd endpoint must be `https://HOST:PORT`")
                                    .with_hint("remedy talks to the ops etcd over TLS with a client certificate only"),
                            ),
                        }
                    }
                }
                _ => diags.push(Diagnostic::at(
                    src,
                    val.span,
                    "`coordination.etcd.endpoints` must be a non-empty list of `https://HOST:PORT` (every member)",
                )),
            },
            "ca" | "cert" | "key" => match val.as_str().filter(|s| !s.is_empty()) {
                Some(p) => {
                    let file = dir.join(p);
                    if file.is_file() {
                        files.insert(key.to_string(), file);
                    } else {
                        diags.push(
                            Diagnostic::at(src, val.span, format!("`coordination.etcd.{key}`: no file {}", file.display()))
                                .with_hint("a relative path is taken from the site config's directory"),
                        );
                    }
                }
                None => diags.push(Diagnostic::at(src, val.span, format!("`coordination.etcd.{key}` must be a file path (PEM)"))),
            },
            "prefix" => match val.as_str().filter(|p| p.starts_with('/') && p.trim_end_matches('/').len() > 1) {
                Some(p) => prefix = p.trim_end_matches('/').to_string(),
                None => diags.push(
                    Diagnostic::at(src, val.span, "`coordination.etcd.prefix` must be a key path such as `/remedy/team-a`")
                        .with_hint("every jump host that shares locks must use the same prefix"),
                ),
            },
            _ => diags.push(unknown_key(src, k, "coordination.etcd", ETCD_KEYS)),
        }
    }
    for needed in ["endpoints", "ca", "cert", "key"] {
        if map.iter().all(|(k, _)| k.as_str() != Some(needed)) {
            diags.push(Diagnostic::at(
                src,
                v.span,
                format!("`coordination.etcd` needs `{needed}`"),
            ));
        }
    }
    if diags.0.len() > before {
        return None;
    }
    Some(EtcdBackend {
        endpoints,
        ca: files.remove("ca")?,
        cert: files.remove("cert")?,
        key: files.remove("key")?,
        prefix,
    })
}

fn valid_endpoint(e: &str) -> bool {
    e.strip_prefix("https://")
        .and_then(|rest| rest.trim_end_matches('/').rsplit_once(':'))
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
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
