//! `remedy lab up --ops-etcd`: a separate 3-member etcd for coordinating
//! jump hosts (locks, the audit witness), as a team would run one beside
//! its clusters — never the cluster's own etcd, which remedy may be
//! repairing. Its own addresses (member *i* on `base + 60 + i`, client
//! :2379, peer :2380), its own CA and certificates (made by the real kubeadm,
//! as for the masters, but in the machine's namespaces: `<lab>/ops-etcd/`),
//! the lab's etcd 3.6 with the lab's Raft timings, every member recorded like
//! every lab process (so `lab down` stops it). It writes
//! `<lab>/coordination.yaml`, a site-config fragment with the top-level
//! `coordination:` key, for a jump host's site config to copy.

use crate::binaries::Binaries;
use crate::kubeadm::{self, placeholder, ETCD_ELECTION_MS, ETCD_HEARTBEAT_MS};
use crate::lab::{io, LabError};
use crate::layout::{ETCD_CLIENT_PORT, ETCD_PEER_PORT};
use crate::process::{self, Recorded, Stopped};
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Members of the ops etcd.
pub const MEMBERS: usize = 3;

/// Member `i` (1-based) listens on `base + OFFSET + i`.
pub const OFFSET: u8 = 60;

/// A running ops etcd: how a jump host reaches it.
#[derive(Debug, Clone)]
pub struct OpsEtcd {
    pub endpoints: Vec<String>,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `<lab>/coordination.yaml`.
    pub fragment: PathBuf,
}

/// The address of member `i` (1-based).
pub fn member_addr(base: Ipv4Addr, i: usize) -> Ipv4Addr {
    let [a, b, c, d] = base.octets();
    Ipv4Addr::new(a, b, c, d.saturating_add(OFFSET + i as u8))
}

fn name(i: usize) -> String {
    format!("ops-etcd-{i}")
}

/// kubeadm's configuration for member `i`: only what its etcd certificates
/// depend on. The advertise address is the lab's placeholder (kubeadm
/// refuses loopback ones); the member's own address is a SAN.
fn kubeadm_config(dir: &Path, base: Ipv4Addr, i: usize) -> String {
    let addr = member_addr(base, i);
    format!(
        "# remedy lab: the ops etcd's member {i}, for its certificates only\n\
         apiVersion: kubeadm.k8s.io/v1beta4\n\
         kind: InitConfiguration\n\
         localAPIEndpoint:\n  advertiseAddress: {ph}\n\
         nodeRegistration:\n  name: {name}\n  criSocket: unix:///var/run/containerd/containerd.sock\n\
         ---\n\
         apiVersion: kubeadm.k8s.io/v1beta4\n\
         kind: ClusterConfiguration\n\
         kubernetesVersion: {version}\n\
         certificatesDir: {pki}\n\
         etcd:\n  local:\n    serverCertSANs: [\"{addr}\"]\n    peerCertSANs: [\"{addr}\"]\n",
        ph = placeholder(i),
        name = name(i),
        version = crate::binaries::k8s_version(),
        pki = member_dir(dir, i).join("pki").display(),
    )
}

fn member_dir(dir: &Path, i: usize) -> PathBuf {
    dir.join(name(i))
}

/// Make the PKI, start the members, wait until all are healthy, write the
/// site-config fragment. `lab` is the lab directory; on failure the members
/// already started keep running until `stop` (or `lab down`).
pub fn up(
    lab: &Path,
    base: Ipv4Addr,
    bins: &Binaries,
    progress: &mut dyn FnMut(&str),
) -> Result<OpsEtcd, LabError> {
    let missing = |cmd: &str| LabError::Fault(format!("no {cmd} among the lab's binaries"));
    let kubeadm = bins.path("kubeadm").ok_or_else(|| missing("kubeadm"))?;
    let etcd = bins.path("etcd").ok_or_else(|| missing("etcd"))?;
    let etcdctl = bins.path("etcdctl").ok_or_else(|| missing("etcdctl"))?;
    let dir = lab.join("ops-etcd");
    progress(&format!(
        "ops etcd: a CA and certificates (kubeadm) in {}",
        dir.display()
    ));
    for i in 1..=MEMBERS {
        let m = member_dir(&dir, i);
        fs::create_dir_all(m.join("pki/etcd")).map_err(io(format!("create {}", m.display())))?;
        fs::write(m.join("kubeadm.yaml"), kubeadm_config(&dir, base, i))
            .map_err(io("write the ops etcd's kubeadm.yaml"))?;
    }
    let config = |i: usize| {
        member_dir(&dir, i)
            .join("kubeadm.yaml")
            .display()
            .to_string()
    };
    let phase = |i: usize, cert: &str| {
        kubeadm::run_here(
            &name(i),
            &kubeadm,
            &["init", "phase", "certs", cert, "--config", &config(i)],
        )
    };
    phase(1, "etcd-ca")?;
    let ca_dir = member_dir(&dir, 1).join("pki/etcd");
    for i in 1..=MEMBERS {
        if i > 1 {
            for file in ["ca.crt", "ca.key"] {
                let to = member_dir(&dir, i).join("pki/etcd").join(file);
                fs::copy(ca_dir.join(file), &to).map_err(io(format!("copy {}", to.display())))?;
            }
        }
        phase(i, "etcd-server")?;
        phase(i, "etcd-peer")?;
    }
    // The jump hosts' client certificate (CN kube-etcd-healthcheck-client:
    // any certificate of this CA may use the ops etcd).
    phase(1, "etcd-healthcheck-client")?;
    let ops = OpsEtcd {
        endpoints: (1..=MEMBERS)
            .map(|i| format!("https://{}:{ETCD_CLIENT_PORT}", member_addr(base, i)))
            .collect(),
        ca: ca_dir.join("ca.crt"),
        cert: ca_dir.join("healthcheck-client.crt"),
        key: ca_dir.join("healthcheck-client.key"),
        fragment: lab.join("coordination.yaml"),
    };

    let cluster: Vec<String> = (1..=MEMBERS)
        .map(|i| {
            format!(
                "{}=https://{}:{ETCD_PEER_PORT}",
                name(i),
                member_addr(base, i)
            )
        })
        .collect();
    for i in 1..=MEMBERS {
        let addr = member_addr(base, i);
        let pki = member_dir(&dir, i).join("pki/etcd");
        progress(&format!(
            "starting {} on {addr}:{ETCD_CLIENT_PORT}",
            name(i)
        ));
        let mut cmd = Command::new(&etcd);
        let client_url = format!("https://{addr}:{ETCD_CLIENT_PORT}");
        let peer_url = format!("https://{addr}:{ETCD_PEER_PORT}");
        cmd.arg(format!("--name={}", name(i)))
            .arg(format!(
                "--data-dir={}",
                member_dir(&dir, i).join("data").display()
            ))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={}", cluster.join(",")))
            .arg("--initial-cluster-state=new")
            .arg("--initial-cluster-token=remedy-ops-etcd")
            .arg(format!("--heartbeat-interval={ETCD_HEARTBEAT_MS}"))
            .arg(format!("--election-timeout={ETCD_ELECTION_MS}"))
            .arg("--client-cert-auth=true")
            .arg("--peer-client-cert-auth=true");
        for (flag, file) in [
            ("trusted-ca-file", "ca.crt"),
            ("cert-file", "server.crt"),
            ("key-file", "server.key"),
            ("peer-trusted-ca-file", "ca.crt"),
            ("peer-cert-file", "peer.crt"),
            ("peer-key-file", "peer.key"),
        ] {
            cmd.arg(format!("--{flag}={}", pki.join(file).display()));
        }
        let log = lab
            .join("logs")
            .join("ops-etcd")
            .join(format!("{}.log", name(i)));
        process::spawn(lab, &name(i), cmd, &log).map_err(io(format!("start {}", name(i))))?;
    }
    progress("waiting for the ops etcd to be healthy");
    wait_healthy(&ops, &etcdctl, lab, Duration::from_secs(60))?;
    fs::write(&ops.fragment, fragment(&ops)).map_err(io("write coordination.yaml"))?;
    Ok(ops)
}

/// Until every member answers `etcdctl endpoint health`.
fn wait_healthy(
    ops: &OpsEtcd,
    etcdctl: &Path,
    lab: &Path,
    timeout: Duration,
) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    loop {
        let healthy = crate::process::without_proxy(&mut Command::new(etcdctl))
            .arg(format!("--endpoints={}", ops.endpoints.join(",")))
            .arg(format!("--cacert={}", ops.ca.display()))
            .arg(format!("--cert={}", ops.cert.display()))
            .arg(format!("--key={}", ops.key.display()))
            .args(["--command-timeout=2s", "endpoint", "health"])
            .output()
            .is_ok_and(|o| o.status.success());
        if healthy {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::NotReady {
                what: format!("the ops etcd ({})", ops.endpoints.join(", ")),
                secs: timeout.as_secs(),
                log: lab.join("logs/ops-etcd").display().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `coordination.yaml`: the site-config fragment for a jump host.
pub fn fragment(ops: &OpsEtcd) -> String {
    format!(
        "# remedy lab: the ops etcd (`remedy lab up --ops-etcd`). Copy this into a\n\
         # jump host's site config ($REMEDY_HOME/config.yaml); give each jump host\n\
         # its own `jump_host:` name when they share a machine.\n\
         coordination:\n  etcd:\n    endpoints: [{}]\n    ca: {}\n    cert: {}\n    key: {}\n    prefix: /remedy\n",
        ops.endpoints.join(", "),
        ops.ca.display(),
        ops.cert.display(),
        ops.key.display(),
    )
}

/// Stop the ops etcd's members only (the rest of the lab keeps running):
/// how a test or a rehearsal makes the ops etcd unreachable.
pub fn stop(lab: &Path) -> Vec<(Recorded, Stopped)> {
    process::recorded(lab)
        .into_iter()
        .filter(|r| r.name.starts_with("ops-etcd-"))
        .map(|r| {
            let outcome = process::stop(&r, Duration::from_secs(5));
            let _ = fs::remove_file(process::pid_dir(lab).join(format!("{}.pid", r.name)));
            (r, outcome)
        })
        .collect()
}
