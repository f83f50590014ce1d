//! The inventory: which hosts exist, how to reach them, their groups and
//! variables, and host patterns (`masters`, `master-*`, `a,b`, `!c`, `&etcd`).
//!
//! Parsed from the same spanned YAML as runbooks, so a mistake in an inventory
//! is reported with `file:line:col` too.

use remedy_dsl::diagnostic::did_you_mean;
use remedy_dsl::yaml::{self, Node, NodeKind};
use remedy_dsl::{Diagnostic, Diagnostics, Source};
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
fn derive_vars(vars: &mut Map<String, Value>) {
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

const TOP_KEYS: &[&str] = &["vars", "groups", "hosts", "ssh", "approval"];
const HOST_KEYS: &[&str] = &[
    "address",
    "port",
    "user",
    "transport",
    "groups",
    "vars",
    "identity_file",
    "proxy_jump",
    "become",
];
const SSH_KEYS: &[&str] = &[
    "user",
    "port",
    "identity_file",
    "known_hosts",
    "proxy_jump",
    "become",
    "connect_timeout",
];

/// `path` as written, or relative to the inventory file's directory.
fn resolve_path(source: &Source, path: &str) -> String {
    let path = remedy_jumphost::expand_home(path).display().to_string();
    if path.starts_with('/') {
        return path;
    }
    match std::path::Path::new(&source.name).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(&path).display().to_string(),
        _ => path,
    }
}

fn port_of(n: &Node) -> Option<u16> {
    match n.kind {
        NodeKind::Int(p) if (1..=65535).contains(&p) => Some(p as u16),
        _ => None,
    }
}

impl Inventory {
    pub fn parse(source: Arc<Source>) -> Result<Inventory, Diagnostics> {
        let root = yaml::parse(&source).map_err(Diagnostics)?;
        let mut diags = Diagnostics::default();
        let err = |d: &mut Diagnostics, n: &Node, msg: String, hint: Option<&str>| {
            let mut x = Diagnostic::at(&source, n.span, msg);
            x.hint = hint.map(str::to_string);
            d.push(x);
        };
        let Some(top) = root.as_map() else {
            err(
                &mut diags,
                &root,
                format!("an inventory must be a mapping, found {}", root.type_name()),
                Some("see examples/ for the layout: `hosts:`, `groups:`, `vars:`"),
            );
            return Err(diags);
        };
        for (k, _) in top {
            let name = k.as_str().unwrap_or("");
            if !TOP_KEYS.contains(&name) {
                let hint = did_you_mean(name, TOP_KEYS.iter().copied())
                    .unwrap_or_else(|| format!("allowed: {}", TOP_KEYS.join(", ")));
                err(
                    &mut diags,
                    k,
                    format!("unknown key `{name}` in the inventory"),
                    Some(&hint),
                );
            }
        }
        let approval = match root.get("approval") {
            None => None,
            Some(node) => match remedy_dsl::compile::approval(source.clone(), node) {
                Ok(a) => Some(a),
                Err(d) => {
                    diags.0.extend(d.0);
                    None
                }
            },
        };
        // Inventory-wide SSH settings, defaults for every host.
        let mut ssh = SshSettings::default();
        let mut ssh_user: Option<String> = None;
        let mut ssh_port: Option<u16> = None;
        let mut ssh_host = HostSsh::default();
        if let Some(block) = root.get("ssh") {
            match block.as_map() {
                None => err(
                    &mut diags,
                    block,
                    format!("`ssh` must be a mapping, found {}", block.type_name()),
                    Some("e.g. `ssh: { user: root, known_hosts: known_hosts }`"),
                ),
                Some(entries) => {
                    for (k, v) in entries {
                        let key = k.as_str().unwrap_or("");
                        match key {
                            "user" => ssh_user = v.scalar_text(),
                            "port" => match port_of(v) {
                                Some(p) => ssh_port = Some(p),
                                None => err(
                                    &mut diags,
                                    v,
                                    format!(
                                        "`ssh.port` must be 1–65535, found `{}`",
                                        v.scalar_text().unwrap_or_default()
                                    ),
                                    None,
                                ),
                            },
                            "identity_file" => {
                                ssh_host.identity_file =
                                    v.scalar_text().map(|p| resolve_path(&source, &p))
                            }
                            "known_hosts" => {
                                ssh.known_hosts = v.scalar_text().map(|p| resolve_path(&source, &p))
                            }
                            "proxy_jump" => ssh_host.proxy_jump = v.scalar_text(),
                            "become" => ssh_host.become_ = matches!(v.kind, NodeKind::Bool(true)),
                            "connect_timeout" => match v
                                .scalar_text()
                                .and_then(|t| remedy_dsl::param::parse_duration(&t))
                            {
                                Some(s) if s > 0 => ssh.connect_timeout_secs = s as u64,
                                _ => err(
                                    &mut diags,
                                    v,
                                    "`ssh.connect_timeout` must be a duration such as 10s".into(),
                                    None,
                                ),
                            },
                            _ => {
                                let hint = did_you_mean(key, SSH_KEYS.iter().copied())
                                    .unwrap_or_else(|| format!("allowed: {}", SSH_KEYS.join(", ")));
                                err(
                                    &mut diags,
                                    k,
                                    format!("unknown key `{key}` in `ssh`"),
                                    Some(&hint),
                                );
                            }
                        }
                    }
                }
            }
        }
        let login_user = std::env::var("USER").unwrap_or_else(|_| "root".into());
        let mut global = default_vars();
        if let Some(v) = root.get("vars") {
            merge_vars(&mut global, v, &source, &mut diags);
        }
        let mut group_vars: Vec<(String, Node)> = Vec::new();
        let mut groups: Vec<String> = Vec::new();
        if let Some(g) = root.get("groups") {
            match g.as_map() {
                Some(entries) => {
                    for (k, v) in entries {
                        let Some(name) = k.as_str() else { continue };
                        groups.push(name.to_string());
                        if let Some(vars) = v.get("vars") {
                            group_vars.push((name.to_string(), vars.clone()));
                        }
                        if let Some(m) = v.as_map() {
                            for (gk, _) in m {
                                if gk.as_str() != Some("vars") {
                                    err(&mut diags, gk, format!("unknown key `{}` in group `{name}`", gk.scalar_text().unwrap_or_default()), Some("a group has `vars:`; hosts name their groups under `hosts.<name>.groups`"));
                                }
                            }
                        } else if !matches!(v.kind, NodeKind::Null) {
                            err(
                                &mut diags,
                                v,
                                format!("group `{name}` must be a mapping"),
                                None,
                            );
                        }
                    }
                }
                None => err(
                    &mut diags,
                    g,
                    "`groups` must be a mapping of group name to `{ vars: … }`".into(),
                    None,
                ),
            }
        }
        let mut hosts = Vec::new();
        match root.get("hosts").map(|h| (h, h.as_map())) {
            None => err(
                &mut diags,
                &root,
                "the inventory has no `hosts:`".into(),
                Some("list at least one host, e.g. `hosts: { master-1: { address: 10.0.0.11 } }`"),
            ),
            Some((h, None)) => err(
                &mut diags,
                h,
                format!(
                    "`hosts` must be a mapping of host name to settings, found {}",
                    h.type_name()
                ),
                None,
            ),
            Some((_, Some(entries))) => {
                for (k, v) in entries {
                    let Some(name) = k.as_str() else {
                        err(&mut diags, k, "host names must be strings".into(), None);
                        continue;
                    };
                    let empty = Node {
                        kind: NodeKind::Map(Vec::new()),
                        span: v.span,
                        style: yaml::Style::Plain,
                    };
                    let v = if matches!(v.kind, NodeKind::Null) {
                        &empty
                    } else {
                        v
                    };
                    let Some(fields) = v.as_map() else {
                        err(
                            &mut diags,
                            v,
                            format!("host `{name}` must be a mapping, found {}", v.type_name()),
                            None,
                        );
                        continue;
                    };
                    for (fk, _) in fields {
                        let f = fk.as_str().unwrap_or("");
                        if !HOST_KEYS.contains(&f) {
                            let hint = did_you_mean(f, HOST_KEYS.iter().copied())
                                .unwrap_or_else(|| format!("allowed: {}", HOST_KEYS.join(", ")));
                            err(
                                &mut diags,
                                fk,
                                format!("unknown key `{f}` in host `{name}`"),
                                Some(&hint),
                            );
                        }
                    }
                    let text = |key: &str| v.get(key).and_then(|n| n.scalar_text());
                    let transport = match text("transport").as_deref() {
                        None | Some("ssh") => TransportKind::Ssh,
                        Some("local") => TransportKind::Local,
                        Some(other) => {
                            err(
                                &mut diags,
                                v.get("transport").unwrap_or(v),
                                format!("unknown transport `{other}` for host `{name}`"),
                                Some("use `ssh` (default) or `local`"),
                            );
                            TransportKind::Ssh
                        }
                    };
                    let port = match v.get("port").map(|n| (&n.kind, n)) {
                        None => ssh_port.unwrap_or(22),
                        Some((NodeKind::Int(p), _)) if (1..=65535).contains(p) => *p as u16,
                        Some((_, n)) => {
                            err(
                                &mut diags,
                                n,
                                format!(
                                    "port of host `{name}` must be 1–65535, found `{}`",
                                    n.scalar_text().unwrap_or_default()
                                ),
                                None,
                            );
                            22
                        }
                    };
                    let mut host_groups = Vec::new();
                    if let Some(g) = v.get("groups") {
                        match g.as_seq() {
                            Some(items) => {
                                host_groups.extend(items.iter().filter_map(|i| i.scalar_text()))
                            }
                            None => err(
                                &mut diags,
                                g,
                                format!("`groups` of host `{name}` must be a list"),
                                None,
                            ),
                        }
                    }
                    for g in &host_groups {
                        if !groups.contains(g) {
                            groups.push(g.clone());
                        }
                    }
                    let mut vars = global.clone();
                    for (g, gv) in &group_vars {
                        if host_groups.contains(g) {
                            merge_vars(&mut vars, gv, &source, &mut diags);
                        }
                    }
                    if let Some(hv) = v.get("vars") {
                        merge_vars(&mut vars, hv, &source, &mut diags);
                    }
                    derive_vars(&mut vars);
                    let default_address = if transport == TransportKind::Local {
                        "127.0.0.1"
                    } else {
                        name
                    };
                    let user = text("user").or_else(|| ssh_user.clone());
                    let explicit = Explicit {
                        address: v.get("address").is_some(),
                        port: v.get("port").is_some() || ssh_port.is_some(),
                        user: user.is_some(),
                    };
                    let host_ssh = HostSsh {
                        identity_file: text("identity_file")
                            .map(|p| resolve_path(&source, &p))
                            .or_else(|| ssh_host.identity_file.clone()),
                        proxy_jump: text("proxy_jump").or_else(|| ssh_host.proxy_jump.clone()),
                        become_: match v.get("become").map(|n| &n.kind) {
                            Some(NodeKind::Bool(b)) => *b,
                            _ => ssh_host.become_,
                        },
                    };
                    hosts.push(Host {
                        name: name.to_string(),
                        address: text("address").unwrap_or_else(|| default_address.to_string()),
                        port,
                        user: user.unwrap_or_else(|| login_user.clone()),
                        explicit,
                        ssh: host_ssh,
                        transport,
                        groups: host_groups,
                        vars,
                    });
                }
            }
        }
        diags.into_result(Inventory {
            source,
            ssh,
            hosts,
            groups,
            approval,
        })
    }

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

fn merge_vars(
    into: &mut Map<String, Value>,
    node: &Node,
    source: &Arc<Source>,
    diags: &mut Diagnostics,
) {
    match node.as_map() {
        Some(entries) => {
            for (k, v) in entries {
                if let Some(name) = k.scalar_text() {
                    into.insert(name, v.to_json());
                }
            }
        }
        None => diags.push(Diagnostic::at(
            source,
            node.span,
            format!("`vars` must be a mapping, found {}", node.type_name()),
        )),
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
}
