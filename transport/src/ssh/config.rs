//! The parts of OpenSSH's client configuration (`~/.ssh/config`) remedy
//! honours where the inventory is silent: `HostName`, `User`, `Port`,
//! `IdentityFile`, `ProxyJump`. As in OpenSSH, the first value obtained for a
//! keyword wins, `Host` lines take several patterns with `*`, `?` and `!`
//! negation, and `IdentityFile` accumulates. `Match` blocks are skipped, and
//! `Include` is not followed (both are reported by [`SshConfig::skipped`]).

use crate::host::glob_match;
use remedy_jumphost::expand_home;
use std::path::Path;

/// Settings for one host name, after applying every matching block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<String>,
    pub proxy_jump: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SshConfig {
    blocks: Vec<Block>,
    /// Lines remedy did not act on (`Match`, `Include`), for `--verbose` output.
    pub skipped: Vec<String>,
}

#[derive(Debug, Clone)]
struct Block {
    patterns: Vec<String>,
    /// `None` for a `Match` block, which remedy does not evaluate.
    active: bool,
    settings: Vec<(String, String)>,
}

impl SshConfig {
    /// `~/.ssh/config`, or an empty configuration when there is none.
    pub fn load_default() -> SshConfig {
        let Some(home) = std::env::var_os("HOME") else {
            return SshConfig::default();
        };
        SshConfig::load(&Path::new(&home).join(".ssh/config"))
    }

    pub fn load(path: &Path) -> SshConfig {
        std::fs::read_to_string(path)
            .map(|t| SshConfig::parse(&t))
            .unwrap_or_default()
    }

    pub fn parse(text: &str) -> SshConfig {
        // Lines before any Host line apply to every host.
        let mut cfg = SshConfig {
            blocks: vec![Block {
                patterns: vec!["*".into()],
                active: true,
                settings: Vec::new(),
            }],
            skipped: Vec::new(),
        };
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = match line.split_once(|c: char| c.is_whitespace() || c == '=') {
                Some((k, v)) => (
                    k.to_ascii_lowercase(),
                    v.trim_start_matches(|c: char| c.is_whitespace() || c == '=')
                        .trim(),
                ),
                None => (line.to_ascii_lowercase(), ""),
            };
            let value = value.trim_matches('"').to_string();
            match key.as_str() {
                "host" => cfg.blocks.push(Block {
                    patterns: value.split_whitespace().map(str::to_string).collect(),
                    active: true,
                    settings: Vec::new(),
                }),
                "match" => {
                    cfg.skipped.push(raw.to_string());
                    cfg.blocks.push(Block {
                        patterns: Vec::new(),
                        active: false,
                        settings: Vec::new(),
                    });
                }
                "include" => cfg.skipped.push(raw.to_string()),
                _ => {
                    if let Some(b) = cfg.blocks.last_mut() {
                        b.settings.push((key, value));
                    }
                }
            }
        }
        cfg
    }

    /// What applies to `host` (the name as given, before `HostName`).
    pub fn for_host(&self, host: &str) -> HostConfig {
        let mut out = HostConfig::default();
        for block in self
            .blocks
            .iter()
            .filter(|b| b.active && matches(&b.patterns, host))
        {
            for (key, value) in &block.settings {
                match key.as_str() {
                    "hostname" if out.hostname.is_none() => {
                        out.hostname = Some(value.replace("%h", host))
                    }
                    "user" if out.user.is_none() => out.user = Some(value.clone()),
                    "port" if out.port.is_none() => out.port = value.parse().ok(),
                    "identityfile" => out
                        .identity_files
                        .push(expand_home(value).display().to_string()),
                    "proxyjump" if out.proxy_jump.is_none() => out.proxy_jump = Some(value.clone()),
                    _ => {}
                }
            }
        }
        // `ProxyJump none` disables a jump set by a broader block.
        if out
            .proxy_jump
            .as_deref()
            .is_some_and(|p| p.eq_ignore_ascii_case("none"))
        {
            out.proxy_jump = None;
        }
        out
    }
}

/// OpenSSH pattern lists: any positive match, and no negated match.
fn matches(patterns: &[String], host: &str) -> bool {
    let mut positive = false;
    for p in patterns {
        if let Some(neg) = p.strip_prefix('!') {
            if glob_match(neg, host) {
                return false;
            }
        } else if glob_match(p, host) {
            positive = true;
        }
    }
    positive
}

/// One hop of a `ProxyJump` value: `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jump {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// `a,b@c:2222` → hops in order (the first is connected to first).
pub fn parse_proxy_jump(value: &str) -> Result<Vec<Jump>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|hop| {
            let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
            let (user, rest) = match hop.rsplit_once('@') {
                Some((u, r)) => (Some(u.to_string()), r),
                None => (None, hop),
            };
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
                    let port = p
                        .parse::<u16>()
                        .map_err(|_| format!("ProxyJump `{value}`: `{p}` is not a port"))?;
                    (
                        h.trim_start_matches('[').trim_end_matches(']').to_string(),
                        Some(port),
                    )
                }
                _ => (rest.to_string(), None),
            };
            if host.is_empty() {
                return Err(format!("ProxyJump `{value}` has an empty host"));
            }
            Ok(Jump { user, host, port })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "\
User fallback
Host bastion
  HostName 10.0.0.5
  User jump
  Port 2200
Host master-* !master-9
  ProxyJump bastion
  IdentityFile ~/.ssh/masters
Host *
  User ignored-because-first-wins
  IdentityFile ~/.ssh/id_ed25519
Match host foo
  User never
";

    #[test]
    fn first_value_wins_and_identity_files_accumulate() {
        let cfg = SshConfig::parse(CONFIG);
        let m1 = cfg.for_host("master-1");
        assert_eq!(m1.user.as_deref(), Some("fallback"));
        assert_eq!(m1.proxy_jump.as_deref(), Some("bastion"));
        assert_eq!(m1.identity_files.len(), 2);
        assert!(m1.identity_files[0].ends_with("/.ssh/masters"));
        assert_eq!(cfg.for_host("master-9").proxy_jump, None, "negated pattern");
        let b = cfg.for_host("bastion");
        assert_eq!(
            (b.hostname.as_deref(), b.port),
            (Some("10.0.0.5"), Some(2200))
        );
        assert_eq!(cfg.skipped, vec!["Match host foo".to_string()]);
    }

    #[test]
    fn proxy_jump_chains() {
        assert_eq!(
            parse_proxy_jump("a, root@b:2222").unwrap(),
            vec![
                Jump {
                    user: None,
                    host: "a".into(),
                    port: None
                },
                Jump {
                    user: Some("root".into()),
                    host: "b".into(),
                    port: Some(2222)
                }
            ]
        );
        assert!(parse_proxy_jump("a:notaport").is_err());
    }
}
