//! `remedy inventory discover`: an inventory from what the API knows — the
//! control-plane Nodes (InternalIP) as `masters`, the etcd static pods'
//! `--advertise-client-urls` as `etcd`, the load balancers left for the
//! user with a comment, and SSH defaults from `~/.ssh/config`. Dry by
//! default (prints the YAML); `--write FILE` writes it, never over a file.

use super::flags::{KubeArgs, Overlay};
use super::{Exit, Global};
use clap::Subcommand;
use remedy_k8s::nodes::{self, ControlPlaneNode, EtcdMember};
use remedy_k8s::{Access, Kube};
use remedy_transport::ssh::config::{Ask, ConfigFile, Resolver};
use remedy_transport::Local;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Write an inventory from a kubeconfig (--kubeconfig or KUBECONFIG): masters
    /// from the control-plane Nodes, etcd from the etcd static pods, SSH defaults
    /// from ~/.ssh/config; load balancers are left for you. Prints it unless --write.
    #[command(after_help = "\
Examples:
  remedy inventory discover --kubeconfig admin.conf
  remedy inventory discover --kubeconfig admin.conf --write inventory.yaml")]
    Discover {
        /// Write it to FILE (refused when FILE exists) instead of printing it.
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
        #[command(flatten)]
        kube: KubeArgs,
    },
}

impl Overlay for InventoryCommand {
    fn overlay(&self, g: &mut Global) {
        let InventoryCommand::Discover { kube, .. } = self;
        kube.overlay(g);
    }
}

pub fn inventory(g: &Global, cmd: &InventoryCommand) -> i32 {
    let InventoryCommand::Discover { write, .. } = cmd;
    if let Some(path) = write.as_ref().filter(|p| p.exists()) {
        eprintln!(
            "error: {} exists; remedy inventory discover never overwrites a file: pick another name, or move it away first",
            path.display()
        );
        return Exit::Invalid.into();
    }
    let Some(kubeconfig) = first_kubeconfig(g) else {
        eprintln!("error: remedy inventory discover reads the cluster through a kubeconfig: give --kubeconfig FILE (or set KUBECONFIG); e.g. a master's /etc/kubernetes/admin.conf copied to the jump host");
        return Exit::Invalid.into();
    };
    let access = match Access::from_file(&kubeconfig, g.context.as_deref()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Invalid.into();
        }
    };
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
    let text = match rt.block_on(discover(&access)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
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

/// `--kubeconfig`/`KUBECONFIG`'s first file.
fn first_kubeconfig(g: &Global) -> Option<PathBuf> {
    g.kubeconfig
        .as_ref()
        .and_then(|p| std::env::split_paths(p).find(|p| !p.as_os_str().is_empty()))
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

async fn discover(access: &Access) -> Result<String, String> {
    let kube = Kube::connect(
        access,
        Arc::new(Local::new("the jump host")),
        remedy_k8s::DEFAULT_TIMEOUT,
        true,
    )
    .map_err(|e| e.to_string())?;
    let masters = nodes::control_plane_nodes(&kube)
        .await
        .map_err(|e| e.to_string())?;
    if masters.is_empty() {
        return Err(format!(
            "the API server {} lists no Node labelled {}: remedy cannot tell the masters; write the inventory by hand",
            kube.server(),
            nodes::CONTROL_PLANE_LABEL
        ));
    }
    let etcd = nodes::etcd_members(&kube)
        .await
        .map_err(|e| e.to_string())?;
    let ssh = ssh_defaults(&masters).await;
    Ok(render(
        &access.source_name,
        kube.server(),
        &masters,
        &etcd,
        &ssh,
    ))
}

/// `user` and `port` as `~/.ssh/config` gives them for the first master.
async fn ssh_defaults(masters: &[ControlPlaneNode]) -> Result<(String, u16), String> {
    let m = &masters[0];
    let ask = Ask {
        name: m.name.clone(),
        hostname: m.internal_ip.clone(),
        port: None,
        user: None,
    };
    let r = Resolver::new(ConfigFile::Default).resolve(&ask).await?;
    Ok((r.user, r.port))
}

fn render(
    source: &str,
    server: &str,
    masters: &[ControlPlaneNode],
    etcd: &[EtcdMember],
    ssh: &Result<(String, u16), String>,
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
        Ok((user, port)) => {
            let _ = writeln!(out, "ssh:");
            let _ = writeln!(
                out,
                "  # from ~/.ssh/config for {} (remedy reads it again when it connects)",
                masters[0].name
            );
            let _ = writeln!(out, "  user: {}", yaml_scalar(user));
            let _ = writeln!(out, "  port: {port}");
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
            &Ok(("root".into(), 22)),
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
