//! The inventory: which hosts exist, how to reach them, their groups and
//! variables, and host patterns (`masters`, `master-*`, `a,b`, `!c`, `&etcd`).
//!
//! Parsed (`parse.rs`) from the same spanned YAML as runbooks, so a mistake
//! in an inventory is reported with `file:line:col` too.

mod parse;
pub mod schema;

use remedy_dsl::diagnostic::did_you_mean;
use remedy_dsl::Source;
pub use remedy_transport::host::{
    glob_match, Explicit, Host, HostSsh, Roster, SshSettings, TransportKind,
};
use serde_json::{Map, Value};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Inventory {
    pub source: Arc<Source>,
    pub ssh: SshSettings,
    pub hosts: Vec<Host>,
    /// Group names, declared under `groups:` or only named by hosts.
    pub groups: Vec<String>,
    /// `approval:` here replaces the runbook's policy for this inventory
    /// (`approval: none` for a lab or staging; a stricter block for production).
    pub approval: Option<remedy_dsl::Approval>,
}

/// kubeadm's layout, so the same runbooks serve kubeadm clusters without vars.
pub fn default_vars() -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in [
        ("kube_dir", "/etc/kubernetes"),
        ("backup_dir", "/var/lib/remedy/backups"),
        ("staging_dir", "/var/lib/remedy/staging"),
    ] {
        m.insert(k.into(), Value::String(v.into()));
    }
    m
}

/// Vars derived from others unless set: `manifests_dir`, `pki_dir`.
pub(crate) fn derive_vars(vars: &mut Map<String, Value>) {
    let kube = vars
        .get("kube_dir")
        .and_then(Value::as_str)
        .unwrap_or("/etc/kubernetes")
        .to_string();
    vars.entry("manifests_dir")
        .or_insert_with(|| Value::String(format!("{kube}/manifests")));
    vars.entry("pki_dir")
        .or_insert_with(|| Value::String(format!("{kube}/pki")));
}

impl Inventory {
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Hosts matching a pattern, in inventory order. Terms are separated by
    /// commas; each is `all`, a group, a host, or a glob over host names;
    /// `!term` removes, `&term` keeps only hosts also in term.
    pub fn select(&self, pattern: &str) -> Result<Vec<&Host>, String> {
        let mut selected: Vec<bool> = vec![false; self.hosts.len()];
        let mut any_positive = false;
        for raw in pattern.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (op, term) = match raw.as_bytes()[0] {
                b'!' => ('!', &raw[1..]),
                b'&' => ('&', &raw[1..]),
                _ => ('+', raw),
            };
            let matches: Vec<bool> = self
                .hosts
                .iter()
                .map(|h| self.term_matches(term, h))
                .collect();
            if !matches.iter().any(|m| *m) {
                let candidates = self
                    .hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .chain(self.groups.iter().map(String::as_str))
                    .chain(["all"]);
                let hint = did_you_mean(term, candidates)
                    .map(|h| format!("; {h}"))
                    .unwrap_or_default();
                return Err(format!(
                    "no host or group `{term}` in inventory {}{hint} (groups: {}; hosts: {})",
                    self.source.name,
                    if self.groups.is_empty() {
                        "none".into()
                    } else {
                        self.groups.join(", ")
                    },
                    self.hosts
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            for (sel, m) in selected.iter_mut().zip(matches) {
                match op {
                    '+' => *sel |= m,
                    '!' => *sel &= !m,
                    _ => *sel &= m,
                }
            }
            any_positive |= op == '+';
        }
        if !any_positive {
            return Err(format!("host pattern `{pattern}` selects nothing: it only removes or intersects; start with a group or host"));
        }
        Ok(self
            .hosts
            .iter()
            .zip(selected)
            .filter(|(_, s)| *s)
            .map(|(h, _)| h)
            .collect())
    }

    fn term_matches(&self, term: &str, host: &Host) -> bool {
        term == "all"
            || host.name == term
            || host.groups.iter().any(|g| g == term)
            || (term.contains(['*', '?']) && glob_match(term, &host.name))
    }
}

impl Roster for Inventory {
    fn hosts(&self) -> &[Host] {
        &self.hosts
    }
    fn ssh_settings(&self) -> &SshSettings {
        &self.ssh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INV: &str = "vars: { kube_dir: /k }\ngroups:\n  masters: { vars: { role: cp } }\nhosts:\n  master-1: { address: 10.0.0.11, groups: [masters, etcd] }\n  master-2: { address: 10.0.0.12, groups: [masters], vars: { kube_dir: /k2 } }\n  lb-1: { groups: [lbs] }\n";

    fn inv() -> Inventory {
        Inventory::parse(Source::new("inv.yaml", INV)).unwrap()
    }

    fn names(hosts: Vec<&Host>) -> Vec<&str> {
        hosts.into_iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn patterns() {
        let i = inv();
        assert_eq!(
            names(i.select("masters").unwrap()),
            ["master-1", "master-2"]
        );
        assert_eq!(names(i.select("master-*,!master-2").unwrap()), ["master-1"]);
        assert_eq!(names(i.select("all,&etcd").unwrap()), ["master-1"]);
        assert_eq!(
            names(i.select("lb-1,master-2").unwrap()),
            ["master-2", "lb-1"]
        );
        let e = i.select("mastrs").unwrap_err();
        assert!(e.contains("did you mean `masters`?"), "{e}");
    }

    #[test]
    fn vars_merge_in_order() {
        let i = inv();
        let m2 = i.host("master-2").unwrap();
        assert_eq!(m2.var("kube_dir").unwrap(), "/k2");
        assert_eq!(m2.var("manifests_dir").unwrap(), "/k2/manifests");
        assert_eq!(m2.var("role").unwrap(), "cp");
        assert_eq!(i.host("lb-1").unwrap().var("role"), None);
        assert_eq!(i.host("lb-1").unwrap().address, "lb-1");
    }

    #[test]
    fn ssh_config_is_a_path_next_to_the_inventory_or_none() {
        let config = |value: &str| {
            let text = format!("ssh: {{ config: {value} }}\nhosts:\n  m: {{}}\n");
            Inventory::parse(Source::new("site/inv.yaml", text))
                .unwrap()
                .ssh
                .config
        };
        assert_eq!(config("ssh_config").as_deref(), Some("site/ssh_config"));
        assert_eq!(config("/etc/jump.conf").as_deref(), Some("/etc/jump.conf"));
        assert_eq!(config("none").as_deref(), Some("none"));
    }
}
