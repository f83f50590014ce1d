//! Reading an inventory file, stage by stage: the top level, `approval`,
//! the `ssh` defaults, `vars`, `groups`, then each host. Every problem is
//! collected with its position; nothing is returned unless there are none.

use super::{default_vars, derive_vars, Inventory};
use remedy_dsl::diagnostic::did_you_mean;
use remedy_dsl::yaml::{self, Node, NodeKind};
use remedy_dsl::{Diagnostic, Diagnostics, Source};
use remedy_transport::host::{Explicit, Host, HostSsh, SshSettings, TransportKind};
use serde_json::{Map, Value};
use std::sync::Arc;

pub(super) const TOP_KEYS: &[&str] = &["vars", "groups", "hosts", "ssh", "approval"];
pub(super) const HOST_KEYS: &[&str] = &[
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
pub(super) const SSH_KEYS: &[&str] = &[
    "user",
    "port",
    "identity_file",
    "known_hosts",
    "config",
    "proxy_jump",
    "become",
    "connect_timeout",
];

/// The inventory's `ssh:` block: settings for the whole inventory, and
/// defaults for every host.
#[derive(Default)]
struct SshDefaults {
    settings: SshSettings,
    user: Option<String>,
    port: Option<u16>,
    host: HostSsh,
}

/// What every host's vars start from: the inventory's `vars`, then the vars
/// of each group it is in.
struct Scope {
    global: Map<String, Value>,
    group_vars: Vec<(String, Node)>,
    /// The user remedy runs as, for hosts without one.
    login_user: String,
}

struct Reader {
    source: Arc<Source>,
    diags: Diagnostics,
}

impl Inventory {
    pub fn parse(source: Arc<Source>) -> Result<Inventory, Diagnostics> {
        let root = yaml::parse(&source).map_err(Diagnostics)?;
        let mut r = Reader {
            source: source.clone(),
            diags: Diagnostics::default(),
        };
        let Some(top) = root.as_map() else {
            r.err(
                &root,
                format!("an inventory must be a mapping, found {}", root.type_name()),
                Some("see examples/ for the layout: `hosts:`, `groups:`, `vars:`"),
            );
            return Err(r.diags);
        };
        r.known_top_keys(top);
        let approval = r.approval(&root);
        let ssh = r.ssh_defaults(&root);
        let mut global = default_vars();
        if let Some(v) = root.get("vars") {
            r.merge_vars(&mut global, v);
        }
        let (mut groups, group_vars) = r.groups(&root);
        let scope = Scope {
            global,
            group_vars,
            login_user: std::env::var("USER").unwrap_or_else(|_| "root".into()),
        };
        let hosts = r.hosts(&root, &ssh, &scope, &mut groups);
        r.diags.into_result(Inventory {
            source,
            ssh: ssh.settings,
            hosts,
            groups,
            approval,
        })
    }
}

impl Reader {
    fn err(&mut self, n: &Node, msg: String, hint: Option<&str>) {
        let mut x = Diagnostic::at(&self.source, n.span, msg);
        x.hint = hint.map(str::to_string);
        self.diags.push(x);
    }

    /// An unknown key, with the nearest allowed one or the list.
    fn unknown_key(&mut self, k: &Node, name: &str, allowed: &[&str], msg: String) {
        let hint = did_you_mean(name, allowed.iter().copied())
            .unwrap_or_else(|| format!("allowed: {}", allowed.join(", ")));
        self.err(k, msg, Some(&hint));
    }

    fn known_top_keys(&mut self, top: &[(Node, Node)]) {
        for (k, _) in top {
            let name = k.as_str().unwrap_or("");
            if !TOP_KEYS.contains(&name) {
                self.unknown_key(
                    k,
                    name,
                    TOP_KEYS,
                    format!("unknown key `{name}` in the inventory"),
                );
            }
        }
    }

    fn approval(&mut self, root: &Node) -> Option<remedy_dsl::Approval> {
        let node = root.get("approval")?;
        match remedy_dsl::compile::approval(self.source.clone(), node) {
            Ok(a) => Some(a),
            Err(d) => {
                self.diags.0.extend(d.0);
                None
            }
        }
    }

    /// Inventory-wide SSH settings, defaults for every host.
    fn ssh_defaults(&mut self, root: &Node) -> SshDefaults {
        let mut ssh = SshDefaults::default();
        let Some(block) = root.get("ssh") else {
            return ssh;
        };
        let Some(entries) = block.as_map() else {
            self.err(
                block,
                format!("`ssh` must be a mapping, found {}", block.type_name()),
                Some("e.g. `ssh: { user: root, known_hosts: known_hosts }`"),
            );
            return ssh;
        };
        for (k, v) in entries {
            let key = k.as_str().unwrap_or("");
            match key {
                "user" => ssh.user = v.scalar_text(),
                "port" => match port_of(v) {
                    Some(p) => ssh.port = Some(p),
                    None => self.err(
                        v,
                        format!(
                            "`ssh.port` must be 1–65535, found `{}`",
                            v.scalar_text().unwrap_or_default()
                        ),
                        None,
                    ),
                },
                "identity_file" => ssh.host.identity_file = v.scalar_text().map(|p| self.path(&p)),
                "known_hosts" => ssh.settings.known_hosts = v.scalar_text().map(|p| self.path(&p)),
                // `none` (ssh -F none) is a word, not a file.
                "config" => {
                    ssh.settings.config = v.scalar_text().map(|p| {
                        if p.eq_ignore_ascii_case("none") {
                            p
                        } else {
                            self.path(&p)
                        }
                    })
                }
                "proxy_jump" => ssh.host.proxy_jump = v.scalar_text(),
                "become" => ssh.host.become_ = matches!(v.kind, NodeKind::Bool(true)),
                "connect_timeout" => match v
                    .scalar_text()
                    .and_then(|t| remedy_dsl::param::parse_duration(&t))
                {
                    Some(s) if s > 0 => ssh.settings.connect_timeout_secs = s as u64,
                    _ => self.err(
                        v,
                        "`ssh.connect_timeout` must be a duration such as 10s".into(),
                        None,
                    ),
                },
                _ => self.unknown_key(k, key, SSH_KEYS, format!("unknown key `{key}` in `ssh`")),
            }
        }
        ssh
    }

    /// Declared groups, and the vars of those that have some.
    fn groups(&mut self, root: &Node) -> (Vec<String>, Vec<(String, Node)>) {
        let mut groups = Vec::new();
        let mut group_vars = Vec::new();
        let Some(g) = root.get("groups") else {
            return (groups, group_vars);
        };
        let Some(entries) = g.as_map() else {
            self.err(
                g,
                "`groups` must be a mapping of group name to `{ vars: … }`".into(),
                None,
            );
            return (groups, group_vars);
        };
        for (k, v) in entries {
            let Some(name) = k.as_str() else { continue };
            groups.push(name.to_string());
            if let Some(vars) = v.get("vars") {
                group_vars.push((name.to_string(), vars.clone()));
            }
            if let Some(m) = v.as_map() {
                for (gk, _) in m {
                    if gk.as_str() != Some("vars") {
                        self.err(
                            gk,
                            format!(
                                "unknown key `{}` in group `{name}`",
                                gk.scalar_text().unwrap_or_default()
                            ),
                            Some("a group has `vars:`; hosts name their groups under `hosts.<name>.groups`"),
                        );
                    }
                }
            } else if !matches!(v.kind, NodeKind::Null) {
                self.err(v, format!("group `{name}` must be a mapping"), None);
            }
        }
        (groups, group_vars)
    }

    /// Every host under `hosts:`; groups only named by hosts are added to
    /// `groups`.
    fn hosts(
        &mut self,
        root: &Node,
        ssh: &SshDefaults,
        scope: &Scope,
        groups: &mut Vec<String>,
    ) -> Vec<Host> {
        let mut hosts = Vec::new();
        match root.get("hosts").map(|h| (h, h.as_map())) {
            None => self.err(
                root,
                "the inventory has no `hosts:`".into(),
                Some("list at least one host, e.g. `hosts: { master-1: { address: 10.0.0.11 } }`"),
            ),
            Some((h, None)) => self.err(
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
                        self.err(k, "host names must be strings".into(), None);
                        continue;
                    };
                    if let Some(host) = self.host(name, v, ssh, scope, groups) {
                        hosts.push(host);
                    }
                }
            }
        }
        hosts
    }

    /// One host: its keys checked, then transport, port, groups, vars
    /// (inventory < groups < host), address, user and SSH settings.
    fn host(
        &mut self,
        name: &str,
        v: &Node,
        ssh: &SshDefaults,
        scope: &Scope,
        groups: &mut Vec<String>,
    ) -> Option<Host> {
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
            self.err(
                v,
                format!("host `{name}` must be a mapping, found {}", v.type_name()),
                None,
            );
            return None;
        };
        for (fk, _) in fields {
            let f = fk.as_str().unwrap_or("");
            if !HOST_KEYS.contains(&f) {
                self.unknown_key(
                    fk,
                    f,
                    HOST_KEYS,
                    format!("unknown key `{f}` in host `{name}`"),
                );
            }
        }
        let text = |key: &str| v.get(key).and_then(|n| n.scalar_text());
        let transport = self.transport(name, v);
        let port = self.host_port(name, v, ssh);
        let host_groups = self.host_groups(name, v);
        for g in &host_groups {
            if !groups.contains(g) {
                groups.push(g.clone());
            }
        }
        let vars = self.host_vars(v, &host_groups, scope);
        let default_address = if transport == TransportKind::Local {
            "127.0.0.1"
        } else {
            name
        };
        let user = text("user").or_else(|| ssh.user.clone());
        let explicit = Explicit {
            address: v.get("address").is_some(),
            port: v.get("port").is_some() || ssh.port.is_some(),
            user: user.is_some(),
        };
        let host_ssh = HostSsh {
            identity_file: text("identity_file")
                .map(|p| self.path(&p))
                .or_else(|| ssh.host.identity_file.clone()),
            proxy_jump: text("proxy_jump").or_else(|| ssh.host.proxy_jump.clone()),
            become_: match v.get("become").map(|n| &n.kind) {
                Some(NodeKind::Bool(b)) => *b,
                _ => ssh.host.become_,
            },
        };
        Some(Host {
            name: name.to_string(),
            address: text("address").unwrap_or_else(|| default_address.to_string()),
            port,
            user: user.unwrap_or_else(|| scope.login_user.clone()),
            explicit,
            ssh: host_ssh,
            transport,
            groups: host_groups,
            vars,
        })
    }

    fn transport(&mut self, name: &str, v: &Node) -> TransportKind {
        match v.get("transport").and_then(|n| n.scalar_text()).as_deref() {
            None | Some("ssh") => TransportKind::Ssh,
            Some("local") => TransportKind::Local,
            Some(other) => {
                self.err(
                    v.get("transport").unwrap_or(v),
                    format!("unknown transport `{other}` for host `{name}`"),
                    Some("use `ssh` (default) or `local`"),
                );
                TransportKind::Ssh
            }
        }
    }

    fn host_port(&mut self, name: &str, v: &Node, ssh: &SshDefaults) -> u16 {
        match v.get("port").map(|n| (&n.kind, n)) {
            None => ssh.port.unwrap_or(22),
            Some((NodeKind::Int(p), _)) if (1..=65535).contains(p) => *p as u16,
            Some((_, n)) => {
                self.err(
                    n,
                    format!(
                        "port of host `{name}` must be 1–65535, found `{}`",
                        n.scalar_text().unwrap_or_default()
                    ),
                    None,
                );
                22
            }
        }
    }

    fn host_groups(&mut self, name: &str, v: &Node) -> Vec<String> {
        let Some(g) = v.get("groups") else {
            return Vec::new();
        };
        match g.as_seq() {
            Some(items) => items.iter().filter_map(|i| i.scalar_text()).collect(),
            None => {
                self.err(g, format!("`groups` of host `{name}` must be a list"), None);
                Vec::new()
            }
        }
    }

    /// Defaults < inventory `vars` < group vars (in order) < host vars, then
    /// the derived ones.
    fn host_vars(&mut self, v: &Node, host_groups: &[String], scope: &Scope) -> Map<String, Value> {
        let mut vars = scope.global.clone();
        for (g, gv) in &scope.group_vars {
            if host_groups.contains(g) {
                self.merge_vars(&mut vars, gv);
            }
        }
        if let Some(hv) = v.get("vars") {
            self.merge_vars(&mut vars, hv);
        }
        derive_vars(&mut vars);
        vars
    }

    fn merge_vars(&mut self, into: &mut Map<String, Value>, node: &Node) {
        match node.as_map() {
            Some(entries) => {
                for (k, v) in entries {
                    if let Some(name) = k.scalar_text() {
                        into.insert(name, v.to_json());
                    }
                }
            }
            None => self.diags.push(Diagnostic::at(
                &self.source,
                node.span,
                format!("`vars` must be a mapping, found {}", node.type_name()),
            )),
        }
    }

    /// `path` as written, or relative to the inventory file's directory.
    fn path(&self, path: &str) -> String {
        let path = remedy_jumphost::expand_home(path).display().to_string();
        if path.starts_with('/') {
            return path;
        }
        match std::path::Path::new(&self.source.name).parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(&path).display().to_string(),
            _ => path,
        }
    }
}

fn port_of(n: &Node) -> Option<u16> {
    match n.kind {
        NodeKind::Int(p) if (1..=65535).contains(&p) => Some(p as u16),
        _ => None,
    }
}
