//! The lab's masters as the real kubeadm makes them: a kubeadm configuration
//! per master, then `kubeadm init phase certs|kubeconfig|control-plane|etcd`
//! run inside that master's mount namespace (so kubeadm writes its own
//! `/etc/kubernetes` exactly as on a real node), the CAs made once on
//! master-1 and copied to the others before their leaves are made; and, once
//! the API servers answer, the `kubeadm:cluster-admins` binding admin.conf
//! needs (as `kubeadm init` makes it) and a Node object per master.
//!
//! What the lab changes, and why — all masters share the machine's network
//! namespace, each on its own 127.x address:
//! - kubeadm refuses a loopback advertise address (it then looks for a global
//!   address on `lo`, and there is none), so kubeadm is given
//!   [`placeholder`] (192.0.2.101…, RFC 5737 documentation addresses that are
//!   never routed) and the lab rewrites it to the master's own address in the
//!   manifests and kubeconfigs kubeadm wrote. The certificates carry both.
//! - Flags kubeadm points at 127.0.0.1 or 0.0.0.0 would collide between the
//!   masters, so `extraArgs` move them to the master's address: etcd's
//!   `--listen-client-urls` and `--listen-metrics-urls`, the API server's
//!   `--bind-address` and `--etcd-servers`, the controller-manager's and
//!   scheduler's `--bind-address`.
//! - etcd starts as one 3-member cluster (`--initial-cluster` lists every
//!   master, `--initial-cluster-state=new`), where kubeadm would grow it one
//!   `kubeadm join` at a time; and with `--heartbeat-interval=250
//!   --election-timeout=2500` (etcd's defaults are 100/1000 ms), so leaders do
//!   not change while the 2-core machine is busy starting API servers.
//! - The API server runs with `--endpoint-reconciler-type=none`: it would
//!   otherwise try to publish its 127.x address in the `kubernetes` Endpoints,
//!   which the API refuses (loopback), every 10 s. No pod uses that Service.
//! - And with `--enable-aggregator-routing=true`: it calls webhooks (and
//!   aggregated APIs) at their Service's endpoints, not at the Service's
//!   name or ClusterIP. The lab has no cluster DNS and no kube-proxy, so the
//!   name would go to the machine's resolver and whatever answers there (a
//!   sandbox's intercepting proxy, whose certificate the error then names);
//!   routed by endpoints, a webhook without backends fails with the API
//!   server's real `no endpoints available for service` error.
//! - Certificates are valid for `--cert-expiry` (kubeadm's
//!   `certificateValidityPeriod`). Already-expired ones are made by re-dating
//!   kubeadm's with openssl ([`crate::redate`]).
//! - No `kubeadm-config` ConfigMap is uploaded: reading it, `kubeadm certs
//!   renew|check-expiration` would wait a minute for the kube-apiserver mirror
//!   pod that only a real kubelet creates. They fall back to kubeadm's default
//!   configuration (as on a cluster whose API is down), which here means the
//!   same paths and a renewal valid for a year, as on a cluster made a year
//!   ago.
//! - etcd's manifest names the release the lab built (`imageTag`), not
//!   kubeadm's default etcd image: it is what runs.
//! - No kubelet registers the masters: the lab creates their Node objects
//!   (control-plane label and taint, InternalIP = the master's address), and
//!   each master's kubelet stand-in posts its Node's Ready condition
//!   ([`crate::node_status`]).

use crate::layout::{Layout, API_PORT, ETCD_CLIENT_PORT, ETCD_METRICS_PORT, ETCD_PEER_PORT};
use std::fs;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// etcd's Raft timings in the lab (milliseconds); see the module doc.
pub const ETCD_HEARTBEAT_MS: u32 = 250;
pub const ETCD_ELECTION_MS: u32 = 2500;

/// The CA files kubeadm makes once per cluster, relative to `pki/`.
pub const CA_FILES: [&str; 8] = [
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
    "sa.key",
    "sa.pub",
];

/// Why kubeadm's part of `lab up` failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeadmError {
    #[error("{what} on {host} failed ({status}):\n{output}")]
    Failed {
        what: String,
        host: String,
        status: String,
        output: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KubeadmError + '_ {
    move |source| KubeadmError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The advertise address kubeadm is given for master `i` (1-based).
pub fn placeholder(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 100 + i.min(150) as u8)
}

/// What a master's kubeadm configuration depends on.
#[derive(Debug, Clone)]
pub struct ConfigOptions {
    /// Leaf lifetime in seconds (`certificateValidityPeriod`); None: kubeadm's default.
    pub validity_secs: Option<i64>,
    /// etcd `--quota-backend-bytes`.
    pub etcd_quota_bytes: Option<u64>,
}

/// `kubeadm.yaml` for master `i` (1-based): an InitConfiguration and a
/// ClusterConfiguration (kubeadm.k8s.io/v1beta4).
pub fn config(layout: &Layout, i: usize, version: &str, opts: &ConfigOptions) -> String {
    // The image a manifest names is the release the kubelet stand-in runs
    // (kubeadm v1.35.4 would name etcd 3.6.6-0; the lab builds 3.6.16).
    let etcd_tag = format!(
        "{}-0",
        crate::binaries::etcd_version().trim_start_matches('v')
    );
    let addr = layout.master_addr(i);
    let vip = layout.vip();
    let cluster: Vec<String> = (1..=layout.masters)
        .map(|j| {
            format!(
                "master-{j}=https://{}:{ETCD_PEER_PORT}",
                layout.master_addr(j)
            )
        })
        .collect();
    let arg = |name: &str, value: &str| format!("  - name: {name}\n    value: \"{value}\"\n");
    let mut etcd_args = [
        arg(
            "listen-client-urls",
            &format!("https://{addr}:{ETCD_CLIENT_PORT}"),
        ),
        arg(
            "listen-metrics-urls",
            &format!("http://{addr}:{ETCD_METRICS_PORT}"),
        ),
        arg("initial-cluster", &cluster.join(",")),
        arg("initial-cluster-state", "new"),
        arg("heartbeat-interval", &ETCD_HEARTBEAT_MS.to_string()),
        arg("election-timeout", &ETCD_ELECTION_MS.to_string()),
    ]
    .concat();
    if let Some(q) = opts.etcd_quota_bytes {
        etcd_args.push_str(&arg("quota-backend-bytes", &q.to_string()));
    }
    let indent =
        |text: &str, by: &str| -> String { text.lines().map(|l| format!("{by}{l}\n")).collect() };
    let validity = opts
        .validity_secs
        .map(|s| format!("certificateValidityPeriod: {s}s\n"))
        .unwrap_or_default();
    let bind = arg("bind-address", &addr.to_string());
    format!(
        "# remedy lab: master-{i}'s kubeadm configuration (see remedy-lab's kubeadm.rs for\n\
         # each deviation from a real node). advertiseAddress is a placeholder, rewritten\n\
         # to {addr} in what kubeadm writes: kubeadm refuses loopback addresses.\n\
         apiVersion: kubeadm.k8s.io/v1beta4\n\
         kind: InitConfiguration\n\
         localAPIEndpoint:\n  advertiseAddress: {ph}\n  bindPort: {API_PORT}\n\
         nodeRegistration:\n  name: master-{i}\n  criSocket: unix:///var/run/containerd/containerd.sock\n\
         ---\n\
         apiVersion: kubeadm.k8s.io/v1beta4\n\
         kind: ClusterConfiguration\n\
         kubernetesVersion: {version}\n\
         clusterName: kubernetes\n\
         controlPlaneEndpoint: \"{vip}:{API_PORT}\"\n\
         {validity}\
         apiServer:\n  certSANs: [\"{vip}\", \"{addr}\"]\n  extraArgs:\n{api}\
         controllerManager:\n  extraArgs:\n{bind_i}\
         scheduler:\n  extraArgs:\n{bind_i}\
         etcd:\n  local:\n    imageTag: \"{etcd_tag}\"\n    dataDir: /var/lib/etcd\n    serverCertSANs: [\"{addr}\"]\n    peerCertSANs: [\"{addr}\"]\n    extraArgs:\n{etcd}",
        ph = placeholder(i),
        api = indent(
            &[
                bind.clone(),
                arg(
                    "etcd-servers",
                    &format!("https://{addr}:{ETCD_CLIENT_PORT}"),
                ),
                arg("endpoint-reconciler-type", "none"),
                arg("enable-aggregator-routing", "true"),
            ]
            .concat(),
            "  "
        ),
        bind_i = indent(&bind, "  "),
        etcd = indent(&etcd_args, "    "),
    )
}

/// Run `kubeadm args…` inside the mount and UTS namespaces of `pid` (the
/// master's sshd), as a real node runs it.
pub fn run_in(host: &str, pid: u32, kubeadm: &Path, args: &[&str]) -> Result<String, KubeadmError> {
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &pid.to_string(), "-m", "-u", "--"])
        .arg(kubeadm)
        .args(args);
    run(host, cmd, args)
}

/// Run `kubeadm args…` in this machine's namespaces (for files kubeadm
/// writes where its configuration says, such as the ops etcd's PKI).
pub fn run_here(host: &str, kubeadm: &Path, args: &[&str]) -> Result<String, KubeadmError> {
    let mut cmd = Command::new(kubeadm);
    cmd.args(args);
    run(host, cmd, args)
}

/// kubeadm's output, or what failed on `host` with that output.
fn run(host: &str, mut cmd: Command, args: &[&str]) -> Result<String, KubeadmError> {
    // kubeadm copies proxy variables into the static pods' `env`.
    let out = crate::process::without_proxy(&mut cmd)
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(Path::new(cmd.get_program())))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(KubeadmError::Failed {
            what: format!("kubeadm {}", args.join(" ")),
            host: host.to_string(),
            status: out.status.to_string(),
            output: text.trim().to_string(),
        })
    }
}

/// Master `i`'s files as kubeadm writes them: PKI (reusing the CAs already
/// in its `pki/`), kubeconfigs, static-pod manifests; then the placeholder
/// address rewritten. `config` is the master's kubeadm.yaml (a path visible
/// inside its namespace).
pub fn write_master(
    layout: &Layout,
    i: usize,
    pid: u32,
    kubeadm: &Path,
    config: &Path,
) -> Result<(), KubeadmError> {
    let host = format!("master-{i}");
    let cfg = config.display().to_string();
    for phase in [
        "certs all",
        "kubeconfig all",
        "control-plane all",
        "etcd local",
    ] {
        let mut args = vec!["init", "phase"];
        args.extend(phase.split(' '));
        args.extend(["--config", &cfg]);
        run_in(&host, pid, kubeadm, &args)?;
    }
    rewrite_placeholder(
        &layout.kube_dir(&host),
        placeholder(i),
        layout.master_addr(i),
    )
}

/// Make the cluster's CAs and service-account keys on master 1 (kubeadm's
/// `certs ca|front-proxy-ca|etcd-ca|sa`) and copy them to `cas_dir` and to
/// every other master's `pki/`, so their leaves are signed by the same CAs.
pub fn make_cas(
    layout: &Layout,
    pid: u32,
    kubeadm: &Path,
    config: &Path,
) -> Result<(), KubeadmError> {
    let cfg = config.display().to_string();
    for phase in ["ca", "front-proxy-ca", "etcd-ca", "sa"] {
        run_in(
            "master-1",
            pid,
            kubeadm,
            &["init", "phase", "certs", phase, "--config", &cfg],
        )?;
    }
    let from = layout.kube_dir("master-1").join("pki");
    let mut targets = vec![layout.cas_dir()];
    targets
        .extend((2..=layout.masters).map(|j| layout.kube_dir(&format!("master-{j}")).join("pki")));
    for to in targets {
        for file in CA_FILES {
            let (src, dst) = (from.join(file), to.join(file));
            if let Some(dir) = dst.parent() {
                fs::create_dir_all(dir).map_err(io_err(dir))?;
            }
            fs::copy(&src, &dst).map_err(io_err(&dst))?;
        }
    }
    Ok(())
}

/// Replace `from` with `to` in the manifests and kubeconfigs under
/// `kube_dir`. The placeholder is a whole address, never a prefix of another
/// (three-digit last octet), so a plain replacement is exact.
fn rewrite_placeholder(kube_dir: &Path, from: Ipv4Addr, to: Ipv4Addr) -> Result<(), KubeadmError> {
    let mut files: Vec<PathBuf> = fs::read_dir(kube_dir.join("manifests"))
        .map_err(io_err(kube_dir))?
        .flatten()
        .map(|e| e.path())
        .collect();
    files.extend(
        fs::read_dir(kube_dir)
            .map_err(io_err(kube_dir))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf")),
    );
    let (from, to) = (from.to_string(), to.to_string());
    for file in files {
        let text = fs::read_to_string(&file).map_err(io_err(&file))?;
        if text.contains(&from) {
            fs::write(&file, text.replace(&from, &to)).map_err(io_err(&file))?;
        }
    }
    Ok(())
}

/// The Node objects of the masters (no kubelet registers them).
pub fn nodes_yaml(layout: &Layout) -> String {
    (1..=layout.masters)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Node\nmetadata:\n  name: master-{i}\n  labels:\n    kubernetes.io/hostname: master-{i}\n    kubernetes.io/os: linux\n    node-role.kubernetes.io/control-plane: \"\"\n    node.kubernetes.io/exclude-from-external-load-balancers: \"\"\n  annotations:\n    remedy.lab/registered-by: \"remedy lab up (the lab has no kubelet)\"\nspec:\n  taints:\n  - key: node-role.kubernetes.io/control-plane\n    effect: NoSchedule\nstatus:\n  addresses:\n  - type: InternalIP\n    address: \"{addr}\"\n  - type: Hostname\n    address: master-{i}\n",
                addr = layout.master_addr(i)
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// After the API servers answer, what `kubeadm init` would do next and
/// the kubelets would do: bind admin.conf's group `kubeadm:cluster-admins` to
/// `cluster-admin` (with super-admin.conf, as kubeadm does), and create the
/// masters' Node objects. `kubeconfigs` is master-1's kubeadm directory.
pub fn bootstrap(layout: &Layout, kubectl: &Path, kubeconfigs: &Path) -> Result<(), KubeadmError> {
    let super_admin = kubeconfigs.join("super-admin.conf");
    kubectl_run(
        kubectl,
        &super_admin,
        &[
            "create",
            "clusterrolebinding",
            "kubeadm:cluster-admins",
            "--clusterrole=cluster-admin",
            "--group=kubeadm:cluster-admins",
        ],
        None,
    )?;
    kubectl_run(
        kubectl,
        &kubeconfigs.join("admin.conf"),
        &["create", "-f", "-"],
        Some(&nodes_yaml(layout)),
    )
}

/// `kubectl --kubeconfig K args…` on this machine, `stdin` piped in.
pub(crate) fn kubectl_run(
    kubectl: &Path,
    kubeconfig: &Path,
    args: &[&str],
    stdin: Option<&str>,
) -> Result<(), KubeadmError> {
    let mut child = crate::process::without_proxy(&mut Command::new(kubectl))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io_err(kubectl))?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default().as_bytes())
            .map_err(io_err(kubectl))?;
    }
    let out = child.wait_with_output().map_err(io_err(kubectl))?;
    if out.status.success() {
        return Ok(());
    }
    Err(KubeadmError::Failed {
        what: format!(
            "kubectl --kubeconfig {} {}",
            kubeconfig.display(),
            args.join(" ")
        ),
        host: "this machine".into(),
        status: out.status.to_string(),
        output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_master_s_config_moves_every_listener_to_its_address() {
        let l = Layout::new("/tmp/lab", 3, Ipv4Addr::new(127, 0, 7, 10));
        let opts = ConfigOptions {
            validity_secs: Some(86_400),
            etcd_quota_bytes: Some(16 << 20),
        };
        let c = config(&l, 2, "v1.35.4", &opts);
        for expected in [
            "  advertiseAddress: 192.0.2.102\n",
            "  name: master-2\n",
            "kubernetesVersion: v1.35.4\n",
            "controlPlaneEndpoint: \"127.0.7.10:6443\"\n",
            "certificateValidityPeriod: 86400s\n",
            "  certSANs: [\"127.0.7.10\", \"127.0.7.12\"]\n",
            "    - name: etcd-servers\n      value: \"https://127.0.7.12:2379\"\n",
            "    - name: endpoint-reconciler-type\n      value: \"none\"\n",
            "    - name: enable-aggregator-routing\n      value: \"true\"\n",
            "controllerManager:\n  extraArgs:\n    - name: bind-address\n      value: \"127.0.7.12\"\n",
            "      - name: listen-client-urls\n        value: \"https://127.0.7.12:2379\"\n",
            "      - name: initial-cluster\n        value: \"master-1=https://127.0.7.11:2380,master-2=https://127.0.7.12:2380,master-3=https://127.0.7.13:2380\"\n",
            "      - name: quota-backend-bytes\n        value: \"16777216\"\n",
            "      - name: election-timeout\n        value: \"2500\"\n",
        ] {
            assert!(c.contains(expected), "{expected:?} not in:\n{c}");
        }
        let tag = format!(
            "    imageTag: \"{}-0\"\n",
            crate::binaries::etcd_version().trim_start_matches('v')
        );
        assert!(c.contains(&tag), "{tag:?} not in:\n{c}");
        let default = config(
            &l,
            1,
            "v1.35.4",
            &ConfigOptions {
                validity_secs: None,
                etcd_quota_bytes: None,
            },
        );
        assert!(!default.contains("certificateValidityPeriod") && !default.contains("quota"));
    }

    #[test]
    fn the_placeholder_is_rewritten_exactly() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("manifests")).unwrap();
        fs::write(
            dir.path().join("manifests/etcd.yaml"),
            "- --advertise-client-urls=https://192.0.2.101:2379\n- --name=master-1\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("scheduler.conf"),
            "server: https://192.0.2.101:6443\n",
        )
        .unwrap();
        fs::write(dir.path().join("notes.txt"), "192.0.2.101").unwrap();
        rewrite_placeholder(dir.path(), placeholder(1), Ipv4Addr::new(127, 0, 0, 11)).unwrap();
        let read = |f: &str| fs::read_to_string(dir.path().join(f)).unwrap();
        assert_eq!(
            read("manifests/etcd.yaml"),
            "- --advertise-client-urls=https://127.0.0.11:2379\n- --name=master-1\n"
        );
        assert_eq!(read("scheduler.conf"), "server: https://127.0.0.11:6443\n");
        assert_eq!(
            read("notes.txt"),
            "192.0.2.101",
            "only manifests and kubeconfigs"
        );
        assert!(
            nodes_yaml(&Layout::new("/l", 2, Ipv4Addr::new(127, 0, 0, 10)))
                .contains("  - type: InternalIP\n    address: \"127.0.0.12\"\n")
        );
    }
}
