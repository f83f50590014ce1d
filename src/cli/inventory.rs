//! `remedy inventory discover`: an inventory from what the API knows — the
//! control-plane Nodes (InternalIP) as `masters`, the etcd static pods'
//! `--advertise-client-urls` as `etcd`, the load balancers left for the
//! user with a comment, and the SSH block. Dry by default (prints the YAML);
//! `--write FILE` writes it, never over a file.
//!
//! The API is reached one of two ways: with a kubeconfig on the jump host
//! (`--kubeconfig`, `KUBECONFIG`), or through one master reached over SSH
//! (`--master`): its admin.conf is read over that connection and kept in
//! memory, and the API is reached through a direct-tcpip channel on it —
//! the way `kube.*` steps reach it. The SSH block then says how that master
//! was reached (user, port, key, known_hosts), so the inventory reaches the
//! other masters the same way.

use super::flags::{KubeArgs, KubeconfigFrom, Overlay, SshArgs};
use super::{Exit, Global};
use clap::{Args, Subcommand};
use remedy_k8s::nodes::{self, ControlPlaneNode, EtcdMember};
use remedy_k8s::{Access, Kube};
use remedy_transport::host::{Explicit, Host, HostSsh, Roster, SshSettings, TransportKind};
use remedy_transport::ssh::config::{parse_proxy_jump, Ask, ConfigFile, Proxy, Resolver};
use remedy_transport::ssh::SshConnector;
use remedy_transport::{Connector, Local, TransportError};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Write an inventory from the cluster's API: masters from the control-plane
    /// Nodes, etcd from the etcd static pods, the SSH block from how the master
    /// was reached (or ~/.ssh/config); load balancers are left for you. The API
    /// is reached through one master over SSH (--master; its admin.conf is read
    /// over SSH, never written here) or with a kubeconfig on this jump host
    /// (--kubeconfig, KUBECONFIG). Prints it unless --write.
    #[command(after_help = "\
Examples:
  remedy inventory discover --master root@10.0.0.11
  remedy inventory discover --master master-1        (a Host of ~/.ssh/config)
  remedy inventory discover --master admin@10.0.0.11:2222 --identity-file ~/.ssh/ops --become
  remedy inventory discover --kubeconfig admin.conf --write inventory.yaml")]
    Discover {
        /// Write it to FILE (refused when FILE exists) instead of printing it.
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
        #[command(flatten)]
        master: MasterArgs,
        #[command(flatten)]
        ssh: SshArgs,
        #[command(flatten)]
        kube: KubeArgs,
    },
}

/// `--master` and how to reach it: the settings an inventory's `ssh:` block
/// would give, since there is no inventory yet.
#[derive(Debug, Clone, Args)]
pub struct MasterArgs {
    /// Read the cluster through this master over SSH, with no kubeconfig on
    /// this jump host: its admin.conf is read over SSH (kept in memory) and
    /// the API reached through a tunnel on that connection. HOST may be a
    /// Host of ~/.ssh/config (its HostName, User, Port, IdentityFile,
    /// ProxyJump apply).
    #[arg(long, value_name = "[USER@]HOST[:PORT]", conflicts_with = "kubeconfig")]
    pub master: Option<String>,
    /// With --master: the private key to log in with (default: ~/.ssh/config's, then ssh-agent's).
    #[arg(long, value_name = "FILE", requires = "master")]
    pub identity_file: Option<String>,
    /// With --master: the known_hosts file its host key is checked in [default: ~/.ssh/known_hosts].
    #[arg(long, value_name = "FILE", requires = "master")]
    pub known_hosts: Option<String>,
    /// With --master: the OpenSSH client configuration to read, or `none` (`ssh -F`) [default: ~/.ssh/config].
    #[arg(long, value_name = "FILE", requires = "master")]
    pub ssh_config: Option<String>,
    /// With --master: run the commands on it through `sudo -n` (a login user that may not read admin.conf).
    #[arg(long = "become", requires = "master")]
    pub become_: bool,
    /// With --master: the directory that holds admin.conf on it [default: /etc/kubernetes].
    #[arg(long, value_name = "DIR", requires = "master")]
    pub kube_dir: Option<String>,
    /// With --master: the API server to reach from it, e.g. its own
    /// https://ADDRESS:6443 when the load balancer is down [default: the
    /// server its admin.conf names].
    #[arg(long, value_name = "URL", requires = "master")]
    pub api_server: Option<String>,
}

impl Overlay for InventoryCommand {
    fn overlay(&self, g: &mut Global) {
        let InventoryCommand::Discover { kube, ssh, .. } = self;
        kube.overlay(g);
        ssh.overlay(g);
    }
}

/// A failure, and what to do about it.
struct Failure {
    message: String,
    hint: Option<String>,
}

impl Failure {
    fn new(message: impl Into<String>, hint: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    fn print(&self) {
        eprintln!("error: {}", self.message);
        if let Some(h) = &self.hint {
            eprintln!("  = hint: {h}");
        }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure {
            message,
            hint: None,
        }
    }
}

pub fn inventory(g: &Global, cmd: &InventoryCommand) -> i32 {
    let InventoryCommand::Discover { write, master, .. } = cmd;
    if let Some(path) = write.as_ref().filter(|p| p.exists()) {
        eprintln!(
            "error: {} exists; remedy inventory discover never overwrites a file: pick another name, or move it away first",
            path.display()
        );
        return Exit::Invalid.into();
    }
    let kubeconfig = g.kubeconfig();
    if master.master.is_none() && kubeconfig.is_none() {
        eprintln!("error: remedy inventory discover reads the cluster through one master over SSH or a kubeconfig: give --master [USER@]HOST[:PORT] (its admin.conf is read over SSH), or --kubeconfig FILE (or set KUBECONFIG)");
        return Exit::Invalid.into();
    }
    remedy_k8s::install_crypto_provider();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::StepFailed.into();
        }
    };
    let discovered = match (&master.master, kubeconfig) {
        (Some(spec), unused) => {
            if let Some((path, KubeconfigFrom::Env)) = unused {
                eprintln!(
                    "note: KUBECONFIG ({}) is not used: --master reads the cluster through {spec}",
                    path.display()
                );
            }
            rt.block_on(through_master(g, master, spec))
        }
        (None, Some((path, from))) => {
            let access = match Access::from_file(&path, g.context.as_deref()) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("error: {e} (the kubeconfig from {from})");
                    return Exit::Invalid.into();
                }
            };
            rt.block_on(with_kubeconfig(&access, from))
        }
        (None, None) => unreachable!("checked above"),
    };
    let text = match discovered {
        Ok(t) => t,
        Err(f) => {
            f.print();
            return Exit::StepFailed.into();
        }
    };
    match write {
        None => {
            print!("{text}");
            Exit::Ok.into()
        }
        Some(path) => match write_new(path, &text) {
            Ok(()) => {
                eprintln!("wrote {}", path.display());
                Exit::Ok.into()
            }
            Err(e) => {
                eprintln!("error: {e}");
                Exit::Invalid.into()
            }
        },
    }
}

/// Create `path` (it must not exist: `create_new`, so a file that appeared
/// since the check is not overwritten either).
fn write_new(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            format!(
                "cannot create {}: {e} (it is never overwritten)",
                path.display()
            )
        })?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The masters and etcd members the API server lists.
async fn cluster(
    kube: &Kube,
    connect_hint: &str,
) -> Result<(Vec<ControlPlaneNode>, Vec<EtcdMember>), Failure> {
    let failed = |e: remedy_k8s::KubeError| Failure::new(e.to_string(), connect_hint);
    let masters = nodes::control_plane_nodes(kube).await.map_err(failed)?;
    if masters.is_empty() {
        return Err(format!(
            "the API server {} lists no Node labelled {}: remedy cannot tell the masters; write the inventory by hand",
            kube.server(),
            nodes::CONTROL_PLANE_LABEL
        )
        .into());
    }
    let etcd = nodes::etcd_members(kube).await.map_err(failed)?;
    Ok((masters, etcd))
}

/// With a kubeconfig on the jump host, over TCP from here.
async fn with_kubeconfig(access: &Access, from: KubeconfigFrom) -> Result<String, Failure> {
    let kube = Kube::connect(
        access,
        Arc::new(Local::new("the jump host")),
        remedy_k8s::DEFAULT_TIMEOUT,
        true,
    )
    .map_err(|e| Failure::from(e.to_string()))?;
    let hint = format!(
        "the kubeconfig {} (from {from}) names the API server {}; check that this jump host reaches it, or use --master [USER@]HOST[:PORT] to go through a master over SSH",
        access.source_name,
        kube.server()
    );
    let (masters, etcd) = cluster(&kube, &hint).await?;
    let ssh = ssh_defaults(&masters).await;
    Ok(render(
        &format!("{} (from {from})", access.source_name),
        kube.server(),
        &masters,
        &etcd,
        &ssh,
    ))
}

/// The one host `--master` names, with the SSH settings given beside it.
struct OneMaster {
    hosts: [Host; 1],
    ssh: SshSettings,
}

impl Roster for OneMaster {
    fn hosts(&self) -> &[Host] {
        &self.hosts
    }
    fn ssh_settings(&self) -> &SshSettings {
        &self.ssh
    }
}

impl OneMaster {
    fn new(m: &MasterArgs, spec: &str) -> Result<OneMaster, Failure> {
        let bad = |why: String| {
            Failure::new(
                format!("--master `{spec}`: {why}"),
                "give one master as [USER@]HOST[:PORT], e.g. root@10.0.0.11 or master-1 (a Host of ~/.ssh/config)",
            )
        };
        let mut hops = parse_proxy_jump(spec).map_err(bad)?;
        if hops.len() != 1 {
            return Err(bad("it names more than one host".into()));
        }
        let hop = hops.remove(0);
        let mut vars = remedy_engine::inventory::default_vars();
        if let Some(dir) = &m.kube_dir {
            vars.insert("kube_dir".into(), serde_json::Value::String(dir.clone()));
        }
        let host = Host {
            name: hop.host.clone(),
            address: hop.host.clone(),
            port: hop.port.unwrap_or(22),
            user: hop.user.clone().unwrap_or_default(),
            // The name is matched against ~/.ssh/config's Host patterns and,
            // as with `ssh NAME`, is its address unless HostName says otherwise.
            explicit: Explicit {
                address: false,
                port: hop.port.is_some(),
                user: hop.user.is_some(),
            },
            ssh: HostSsh {
                identity_file: m.identity_file.clone(),
                proxy_jump: None,
                become_: m.become_,
            },
            transport: TransportKind::Ssh,
            groups: vec!["masters".into()],
            vars,
        };
        Ok(OneMaster {
            hosts: [host],
            ssh: SshSettings {
                known_hosts: m.known_hosts.clone(),
                config: m.ssh_config.clone(),
                ..SshSettings::default()
            },
        })
    }
}

/// What to do when SSH to the master failed, by how it failed.
fn ssh_failure(e: &TransportError, spec: &str, user: &str) -> Failure {
    let hint = match e {
        TransportError::Unreachable { .. } | TransportError::ConnectionLost { .. } => format!(
            "check the master's address and SSH port (--master [USER@]HOST[:PORT]; `{spec}` was given); -v shows how remedy connects"
        ),
        TransportError::Auth { .. } => format!(
            "{user} was refused: log in as another user (--master USER@HOST), give the key (--identity-file FILE) or load it into ssh-agent"
        ),
        TransportError::HostKey { .. } => "the host key is checked in ~/.ssh/known_hosts, or the file --known-hosts names; --accept-new-host-keys records a key not yet known (never a changed one)".into(),
        TransportError::Config { .. } => "fix the SSH client configuration, or read another with --ssh-config FILE (or `none`)".into(),
        _ => "-v shows how remedy connects".into(),
    };
    Failure::new(format!("cannot log in to the master {spec}: {e}"), hint)
}

/// Through one master over SSH: its admin.conf read over the connection,
/// the API reached through a tunnel on it.
async fn through_master(g: &Global, m: &MasterArgs, spec: &str) -> Result<String, Failure> {
    let one = OneMaster::new(m, spec)?;
    let host = &one.hosts[0];
    let connector = SshConnector::new(&one, g.accept_new_host_keys).verbose(g.verbose);
    let (target, proxy) = connector.route_for_host(host).await.map_err(|e| {
        Failure::new(
            format!("--master {spec}: {e}"),
            "fix the SSH client configuration, or read another with --ssh-config FILE (or `none`)",
        )
    })?;
    let t = connector
        .connect(host)
        .await
        .map_err(|e| ssh_failure(&e, spec, &target.user))?;
    let path = remedy_engine::action::kube::admin_conf(host);
    let bytes = t.read_file(&path).await.map_err(|e| {
        let become_ = if m.become_ { "" } else { ", --become if it may only be read as root (sudo -n)" };
        Failure::new(
            format!("cannot read {path} on the master {spec} over SSH: {e}"),
            format!("remedy reads the master's admin kubeconfig there: give --kube-dir DIR if it is elsewhere{become_}; or copy a kubeconfig to this jump host and use --kubeconfig FILE"),
        )
    })?;
    let source = format!("{}:{path}", host.name);
    let mut access = Access::from_kubeconfig(
        &String::from_utf8_lossy(&bytes),
        &source,
        g.context.as_deref(),
        None,
    )
    .map_err(|e| Failure::from(e.to_string()))?;
    let named = access.server.clone();
    if let Some(url) = &m.api_server {
        access = access.with_server(url);
    }
    let opener = t
        .opener()
        .ok_or_else(|| Failure::from(format!("the connection to {spec} cannot open tunnels")))?;
    let kube = Kube::connect(&access, opener, remedy_k8s::DEFAULT_TIMEOUT, true)
        .map_err(|e| Failure::from(e.to_string()))?;
    let hint = match &m.api_server {
        Some(_) => format!("the API server was reached from {spec} through the SSH connection; check --api-server, or leave it out to use the server its admin.conf names ({named})"),
        None => format!("the API server was reached from {spec} through the SSH connection, at the server its admin.conf names ({named}); give --api-server https://ADDRESS:6443 to use that master's own API server instead"),
    };
    let (masters, etcd) = cluster(&kube, &hint).await?;
    let ssh = Ok(reached_as(m, spec, &target, &proxy));
    let mut text = render(&source, kube.server(), &masters, &etcd, &ssh);
    if let Some(dir) = &m.kube_dir {
        let _ = writeln!(text, "vars:\n  kube_dir: {}", yaml_scalar(dir));
    }
    Ok(text)
}

/// The SSH block, and comments above it.
struct SshBlock {
    comments: Vec<String>,
    settings: Vec<(&'static str, String)>,
}

/// How the master was reached, as the inventory's SSH block: every host of
/// the inventory is then reached the same way.
fn reached_as(
    m: &MasterArgs,
    spec: &str,
    target: &remedy_transport::ssh::Target,
    proxy: &Proxy,
) -> SshBlock {
    let mut comments = vec![format!(
        "how remedy reached {spec} (--master): every host is reached the same way"
    )];
    let mut settings = vec![
        ("user", target.user.clone()),
        ("port", target.port.to_string()),
    ];
    let key = m
        .identity_file
        .clone()
        .or_else(|| target.identity_files.first().cloned());
    if let Some(k) = key {
        settings.push(("identity_file", k));
    }
    if let Some(k) = &m.known_hosts {
        settings.push(("known_hosts", k.clone()));
    }
    if let Some(c) = &m.ssh_config {
        settings.push(("config", c.clone()));
    }
    match proxy {
        Proxy::Direct => {}
        Proxy::Jump(j) => settings.push(("proxy_jump", j.clone())),
        Proxy::Command(c) => comments.push(format!(
            "it was reached through ProxyCommand `{c}` from the SSH configuration: add a Host entry for the other masters"
        )),
    }
    if m.become_ {
        settings.push(("become", "true".into()));
    }
    SshBlock { comments, settings }
}

/// `user` and `port` as `~/.ssh/config` gives them for the first master.
async fn ssh_defaults(masters: &[ControlPlaneNode]) -> Result<SshBlock, String> {
    let m = &masters[0];
    let ask = Ask {
        name: m.name.clone(),
        hostname: m.internal_ip.clone(),
        port: None,
        user: None,
    };
    let r = Resolver::new(ConfigFile::Default).resolve(&ask).await?;
    Ok(SshBlock {
        comments: vec![format!(
            "from ~/.ssh/config for {} (remedy reads it again when it connects)",
            m.name
        )],
        settings: vec![("user", r.user), ("port", r.port.to_string())],
    })
}

fn render(
    source: &str,
    server: &str,
    masters: &[ControlPlaneNode],
    etcd: &[EtcdMember],
    ssh: &Result<SshBlock, String>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Written by `remedy inventory discover` from {source} ({server})."
    );
    let _ = writeln!(
        out,
        "# masters: the Nodes labelled {} (address and node_ip: their InternalIP).",
        nodes::CONTROL_PLANE_LABEL
    );
    // etcd: a master whose address an etcd pod advertises is in `etcd`;
    // other members are hosts of their own.
    let stacked = etcd.is_empty();
    if stacked {
        let _ = writeln!(out, "# etcd: no etcd static pods are visible through the API (no kubelet reports mirror pods),");
        let _ = writeln!(out, "#   so the masters are taken to run it, as kubeadm's stacked etcd does: check, and edit if not.");
    } else {
        let _ = writeln!(
            out,
            "# etcd: the etcd static pods' --advertise-client-urls."
        );
    }
    let _ = writeln!(out, "# lbs: the API cannot tell remedy your load balancers: add each HAProxy as a host in group lbs, e.g.");
    let _ = writeln!(out, "#   lb-1: {{ address: 10.0.0.10, groups: [lbs], vars: {{ haproxy_socket: /run/haproxy/admin.sock, haproxy_backend: kube-apiserver }} }}");
    match ssh {
        Ok(block) => {
            let _ = writeln!(out, "ssh:");
            for c in &block.comments {
                let _ = writeln!(out, "  # {c}");
            }
            for (k, v) in &block.settings {
                let v = if *k == "port" || *k == "become" {
                    v.clone()
                } else {
                    yaml_scalar(v)
                };
                let _ = writeln!(out, "  {k}: {v}");
            }
        }
        Err(e) => {
            let _ = writeln!(out, "# ssh: ~/.ssh/config could not be read ({e}); add user, identity_file, known_hosts here");
        }
    }
    let _ = writeln!(out, "hosts:");
    let mut members_placed = Vec::new();
    for m in masters {
        let ip = m.internal_ip.clone();
        let is_member = stacked
            || etcd
                .iter()
                .any(|e| e.node == m.name || (ip.is_some() && e.address() == ip));
        if is_member {
            members_placed.push(m.name.clone());
        }
        let groups = if is_member {
            "[masters, etcd]"
        } else {
            "[masters]"
        };
        match &ip {
            Some(ip) => {
                let _ = writeln!(
                    out,
                    "  {}: {{ address: {}, groups: {groups}, vars: {{ node_ip: {} }} }}",
                    yaml_scalar(&m.name),
                    yaml_scalar(ip),
                    yaml_scalar(ip)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  # {}: its Node reports no InternalIP; add its address by hand",
                    m.name
                );
            }
        }
    }
    for e in etcd {
        let on_master = masters
            .iter()
            .any(|m| m.name == e.node || (m.internal_ip.is_some() && m.internal_ip == e.address()));
        if on_master {
            continue;
        }
        match e.address() {
            Some(a) => {
                let _ = writeln!(
                    out,
                    "  {}: {{ address: {}, groups: [etcd] }}",
                    yaml_scalar(&e.node),
                    yaml_scalar(&a)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  # {}: its etcd advertises no client URL; add it by hand",
                    e.node
                );
            }
        }
    }
    out
}

/// A plain YAML scalar, quoted when it would not read back as this string.
fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && !s.chars().all(|c| c.is_ascii_digit() || c == '.')
        && !matches!(
            s,
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        );
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ip: &str) -> ControlPlaneNode {
        ControlPlaneNode {
            name: name.into(),
            internal_ip: Some(ip.into()),
            ready: Some(true),
            why_not_ready: None,
        }
    }

    #[test]
    fn members_on_masters_join_them_and_external_ones_are_hosts_of_their_own() {
        let masters = [node("m1", "10.0.0.11"), node("m2", "10.0.0.12")];
        let etcd = [
            EtcdMember {
                node: "m1".into(),
                client_urls: vec!["https://10.0.0.11:2379".into()],
            },
            EtcdMember {
                node: "e3".into(),
                client_urls: vec!["https://10.0.0.31:2379".into()],
            },
        ];
        let text = render(
            "kc",
            "https://vip:6443",
            &masters,
            &etcd,
            &Ok(SshBlock {
                comments: vec!["test".into()],
                settings: vec![("user", "root".into()), ("port", "22".into())],
            }),
        );
        assert!(text.contains("  m1: { address: \"10.0.0.11\", groups: [masters, etcd], vars: { node_ip: \"10.0.0.11\" } }\n"), "{text}");
        assert!(text.contains("  m2: { address: \"10.0.0.12\", groups: [masters], vars: { node_ip: \"10.0.0.12\" } }\n"), "{text}");
        assert!(
            text.contains("  e3: { address: \"10.0.0.31\", groups: [etcd] }\n"),
            "{text}"
        );
        assert!(
            text.contains("ssh:\n") && text.contains("  user: root\n  port: 22\n"),
            "{text}"
        );
    }
}
