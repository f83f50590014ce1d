//! The hosts remedy reaches, as a connector sees them: name, address, port,
//! login user, SSH settings, and the groups and vars the inventory gave them.
//! The inventory (in `remedy-engine`) parses them; connectors and transports
//! read them. Also the `*`/`?` name globs shared by the inventory's host
//! patterns.

use serde::Serialize;
use serde_json::{Map, Value};

/// How remedy reaches a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// This machine, without SSH.
    Local,
    /// OpenSSH server at `address:port`.
    Ssh,
}

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    /// Which of address, port and user the inventory set; where it did not,
    /// `~/.ssh/config` may.
    pub explicit: Explicit,
    pub ssh: HostSsh,
    pub transport: TransportKind,
    pub groups: Vec<String>,
    /// Merged: defaults < inventory `vars` < group vars (in order) < host vars.
    pub vars: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Explicit {
    pub address: bool,
    pub port: bool,
    pub user: bool,
}

/// Per-host SSH settings (host keys win over the inventory's `ssh:` block).
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostSsh {
    pub identity_file: Option<String>,
    /// `[user@]host[:port]`, comma-separated for a chain; an inventory host
    /// name is reached with its inventory settings.
    pub proxy_jump: Option<String>,
    /// Run commands through `sudo -n` (for a non-root login user).
    #[serde(rename = "become")]
    pub become_: bool,
}

/// Inventory-wide SSH settings.
#[derive(Debug, Clone, Serialize)]
pub struct SshSettings {
    /// known_hosts file to verify host keys against (default `~/.ssh/known_hosts`).
    pub known_hosts: Option<String>,
    /// OpenSSH client configuration to read (`ssh -F`): a path, or `none`;
    /// `None`: what `ssh` reads by default (`~/.ssh/config`, `/etc/ssh/ssh_config`).
    pub config: Option<String>,
    pub connect_timeout_secs: u64,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            known_hosts: None,
            config: None,
            connect_timeout_secs: 10,
        }
    }
}

impl Host {
    /// A string var, for paths and such.
    pub fn var(&self, name: &str) -> Option<String> {
        match self.vars.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// What `host` is in Rhai.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "groups": self.groups,
            "vars": self.vars,
        })
    }
}

/// The hosts a connector may be asked for, with the inventory-wide SSH
/// settings: what [`crate::ssh::SshConnector`] is built from (the inventory).
pub trait Roster {
    fn hosts(&self) -> &[Host];
    fn ssh_settings(&self) -> &SshSettings;
}

/// `*` and `?` wildcards, nothing else.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("master-*", "master-12"));
        assert!(glob_match("m?ster-1", "master-1"));
        assert!(!glob_match("master-?", "master-12"));
    }
}
