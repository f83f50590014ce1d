//! A kubeadm-layout PKI for the lab's masters, made with the `openssl` CLI.
//!
//! remedy checks and renews certificates with its own code; the lab builds its
//! certificates with an independent implementation (OpenSSL 3.0's command line
//! tools, as shipped by Debian 12) so that tests compare remedy against
//! something it did not write itself.
//!
//! Layout written for one master, as `kubeadm init`/`join` would:
//!
//! ```text
//! <kube_dir>/admin.conf, super-admin.conf, controller-manager.conf,
//!            scheduler.conf, kubelet.conf                       (0600)
//! <kube_dir>/pki/ca.{crt,key} front-proxy-ca.{crt,key} sa.{key,pub}
//! <kube_dir>/pki/etcd/ca.{crt,key}                    (shared by all masters)
//! <kube_dir>/pki/apiserver.{crt,key} apiserver-kubelet-client.{crt,key}
//!            front-proxy-client.{crt,key} apiserver-etcd-client.{crt,key}
//! <kube_dir>/pki/etcd/{server,peer,healthcheck-client}.{crt,key}
//! ```
//!
//! Keys are RSA 2048 in PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`, mode 0600),
//! certificates PEM (0644), all signed with SHA-256 and random serials. The
//! three CAs and the service-account key pair are made once by
//! [`Cas::create`] (or picked up again by [`Cas::open`]) and copied byte for
//! byte to every master; leaves are made per master by [`write_node`] /
//! [`write_nodes`] with a validity chosen to the second (possibly already
//! expired), and can be remade by [`reissue_leaves`].
//!
//! Certificates are signed with `openssl ca`, not `openssl x509 -req`: in
//! OpenSSL 3.0 only `ca` takes exact `-startdate`/`-enddate`, which expired
//! and soon-to-expire practice certificates need. Each signing gets its own
//! throwaway `index.txt` and config, so signings can run side by side.
//!
//! Speed: RSA key generation is nearly all the cost (OpenSSL 3.0 spends about
//! 0.2 s of CPU per 2048-bit key; a master has 12 leaf keys, the CA set 4), so
//! every key/certificate is an independent job on a pool of one thread per
//! core, each thread driving its own `openssl` children. [`write_nodes`] puts
//! all masters' keys in one pool; a CA set can be reused for any number of
//! masters and labs.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

/// Files of a CA set, relative to [`Cas::dir`] and to `<kube_dir>/pki`.
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

/// kubeadm's CA lifetime (10 years).
const CA_VALIDITY_SECS: i64 = 10 * 365 * 24 * 3600;
/// Start validity a little in the past, as kubeadm does, so a certificate is
/// usable at once even if clocks disagree by a few minutes.
const BACKDATE_SECS: i64 = 5 * 60;
/// An already-expired leaf still needs notBefore < notAfter; give it an hour.
const MIN_LIFETIME_SECS: i64 = 3600;
/// First IP of kubeadm's default service CIDR (10.96.0.0/12): the `kubernetes`
/// service's ClusterIP, which in-cluster clients dial.
const SERVICE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1));
/// kubeadm's cluster name in kubeconfigs.
const CLUSTER_NAME: &str = "kubernetes";

const KEY_MODE: u32 = 0o600;
const CERT_MODE: u32 = 0o644;

/// Why making or reading the PKI failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The `openssl` program is not installed (or not on `PATH`).
    #[error(
        "the `openssl` command was not found on PATH; install the `openssl` package \
         (Debian/Ubuntu: `apt-get install openssl`)"
    )]
    OpensslMissing,
    /// An `openssl` command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Openssl {
        /// The command line, for reproducing by hand.
        command: String,
        /// How it ended (exit code or signal).
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// [`Cas::open`] found a CA set without one of [`CA_FILES`].
    #[error("incomplete CA set: {} is missing", path.display())]
    MissingCaFile {
        /// The missing file.
        path: PathBuf,
    },
    /// A node name, server URL or validity that cannot be turned into a
    /// certificate or kubeconfig.
    #[error("invalid input: {0}")]
    Invalid(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A master for which leaves are issued: its identity in certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Node name (lowercase RFC 1123 DNS name): CN of etcd's certificates,
    /// a DNS SAN of the API server's and etcd's, and `system:node:<name>`.
    pub name: String,
    /// The node's address (kubeadm's advertise address), an IP SAN.
    pub ip: IpAddr,
    /// More IP SANs for the API server certificate only, e.g. the
    /// load-balancer VIP (kubeadm's `certSANs`).
    pub extra_sans: Vec<IpAddr>,
}

/// A leaf credential of one master: a certificate and its key, either as a
/// `.crt`/`.key` pair under `pki/` or embedded in a kubeconfig.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Leaf {
    /// `pki/apiserver`: the API server's serving certificate.
    ApiServer,
    /// `pki/apiserver-kubelet-client`: the API server towards kubelets.
    ApiServerKubeletClient,
    /// `pki/front-proxy-client`: the aggregator's client (front-proxy CA).
    FrontProxyClient,
    /// `pki/apiserver-etcd-client`: the API server towards etcd (etcd CA).
    ApiServerEtcdClient,
    /// `pki/etcd/server`: etcd's serving certificate.
    EtcdServer,
    /// `pki/etcd/peer`: etcd member to member.
    EtcdPeer,
    /// `pki/etcd/healthcheck-client`: the etcd liveness probe's client.
    EtcdHealthcheckClient,
    /// `admin.conf`: kubernetes-admin, group kubeadm:cluster-admins.
    AdminConf,
    /// `super-admin.conf`: kubernetes-super-admin, group system:masters.
    SuperAdminConf,
    /// `controller-manager.conf`: system:kube-controller-manager.
    ControllerManagerConf,
    /// `scheduler.conf`: system:kube-scheduler.
    SchedulerConf,
    /// `kubelet.conf`: system:node:<name>, group system:nodes.
    KubeletConf,
}

/// Which CA signs a leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CaKind {
    Kubernetes,
    FrontProxy,
    Etcd,
}

impl CaKind {
    const ALL: [CaKind; 3] = [CaKind::Kubernetes, CaKind::FrontProxy, CaKind::Etcd];

    /// Path relative to the pki dir, without extension.
    fn stem(self) -> &'static str {
        match self {
            CaKind::Kubernetes => "ca",
            CaKind::FrontProxy => "front-proxy-ca",
            CaKind::Etcd => "etcd/ca",
        }
    }

    /// kubeadm's CA common names.
    fn common_name(self) -> &'static str {
        match self {
            CaKind::Kubernetes => "kubernetes",
            CaKind::FrontProxy => "front-proxy-ca",
            CaKind::Etcd => "etcd-ca",
        }
    }
}

const SERVER: &str = "serverAuth";
const CLIENT: &str = "clientAuth";
const SERVER_CLIENT: &str = "serverAuth,clientAuth";

/// Everything that goes into one leaf certificate.
struct LeafSpec {
    signer: CaKind,
    organization: Option<&'static str>,
    common_name: String,
    extended_key_usage: &'static str,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

/// Where a leaf ends up.
enum Output {
    /// `<kube_dir>/pki/<stem>.{crt,key}`
    Pair(&'static str),
    /// `<kube_dir>/<file>`, user named after the certificate's CN.
    Kubeconfig(&'static str),
}

impl Leaf {
    /// Every leaf of a master, in the order [`write_node`] issues them.
    pub const ALL: [Leaf; 12] = [
        Leaf::ApiServer,
        Leaf::ApiServerKubeletClient,
        Leaf::FrontProxyClient,
        Leaf::ApiServerEtcdClient,
        Leaf::EtcdServer,
        Leaf::EtcdPeer,
        Leaf::EtcdHealthcheckClient,
        Leaf::AdminConf,
        Leaf::SuperAdminConf,
        Leaf::ControllerManagerConf,
        Leaf::SchedulerConf,
        Leaf::KubeletConf,
    ];

    /// The files this leaf is written to, relative to the kube dir, e.g.
    /// `["pki/apiserver.crt", "pki/apiserver.key"]` or `["admin.conf"]`.
    pub fn files(self) -> &'static [&'static str] {
        match self {
            Leaf::ApiServer => &["pki/apiserver.crt", "pki/apiserver.key"],
            Leaf::ApiServerKubeletClient => &[
                "pki/apiserver-kubelet-client.crt",
                "pki/apiserver-kubelet-client.key",
            ],
            Leaf::FrontProxyClient => &["pki/front-proxy-client.crt", "pki/front-proxy-client.key"],
            Leaf::ApiServerEtcdClient => &[
                "pki/apiserver-etcd-client.crt",
                "pki/apiserver-etcd-client.key",
            ],
            Leaf::EtcdServer => &["pki/etcd/server.crt", "pki/etcd/server.key"],
            Leaf::EtcdPeer => &["pki/etcd/peer.crt", "pki/etcd/peer.key"],
            Leaf::EtcdHealthcheckClient => &[
                "pki/etcd/healthcheck-client.crt",
                "pki/etcd/healthcheck-client.key",
            ],
            Leaf::AdminConf => &["admin.conf"],
            Leaf::SuperAdminConf => &["super-admin.conf"],
            Leaf::ControllerManagerConf => &["controller-manager.conf"],
            Leaf::SchedulerConf => &["scheduler.conf"],
            Leaf::KubeletConf => &["kubelet.conf"],
        }
    }

    fn output(self) -> Output {
        match self {
            Leaf::ApiServer => Output::Pair("apiserver"),
            Leaf::ApiServerKubeletClient => Output::Pair("apiserver-kubelet-client"),
            Leaf::FrontProxyClient => Output::Pair("front-proxy-client"),
            Leaf::ApiServerEtcdClient => Output::Pair("apiserver-etcd-client"),
            Leaf::EtcdServer => Output::Pair("etcd/server"),
            Leaf::EtcdPeer => Output::Pair("etcd/peer"),
            Leaf::EtcdHealthcheckClient => Output::Pair("etcd/healthcheck-client"),
            Leaf::AdminConf => Output::Kubeconfig("admin.conf"),
            Leaf::SuperAdminConf => Output::Kubeconfig("super-admin.conf"),
            Leaf::ControllerManagerConf => Output::Kubeconfig("controller-manager.conf"),
            Leaf::SchedulerConf => Output::Kubeconfig("scheduler.conf"),
            Leaf::KubeletConf => Output::Kubeconfig("kubelet.conf"),
        }
    }

    /// Subjects, usages and SANs as kubeadm sets them.
    fn spec(self, node: &Node) -> LeafSpec {
        let client = |signer, organization, common_name: &str| LeafSpec {
            signer,
            organization,
            common_name: common_name.to_string(),
            extended_key_usage: CLIENT,
            dns: Vec::new(),
            ips: Vec::new(),
        };
        // etcd serves and peers on the node address and on loopback.
        let etcd_serving = || LeafSpec {
            signer: CaKind::Etcd,
            organization: None,
            common_name: node.name.clone(),
            extended_key_usage: SERVER_CLIENT,
            dns: vec![node.name.clone(), "localhost".to_string()],
            ips: dedup(vec![
                node.ip,
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]),
        };
        match self {
            Leaf::ApiServer => {
                let mut ips = vec![SERVICE_IP, node.ip, IpAddr::V4(Ipv4Addr::LOCALHOST)];
                ips.extend(&node.extra_sans);
                LeafSpec {
                    signer: CaKind::Kubernetes,
                    organization: None,
                    common_name: "kube-apiserver".to_string(),
                    extended_key_usage: SERVER,
                    dns: vec![
                        "kubernetes".to_string(),
                        "kubernetes.default".to_string(),
                        "kubernetes.default.svc".to_string(),
                        "kubernetes.default.svc.cluster.local".to_string(),
                        node.name.clone(),
                    ],
                    ips: dedup(ips),
                }
            }
            Leaf::ApiServerKubeletClient => client(
                CaKind::Kubernetes,
                Some("kubeadm:cluster-admins"),
                "kube-apiserver-kubelet-client",
            ),
            Leaf::FrontProxyClient => client(CaKind::FrontProxy, None, "front-proxy-client"),
            Leaf::ApiServerEtcdClient => client(CaKind::Etcd, None, "kube-apiserver-etcd-client"),
            Leaf::EtcdServer | Leaf::EtcdPeer => etcd_serving(),
            Leaf::EtcdHealthcheckClient => {
                client(CaKind::Etcd, None, "kube-etcd-healthcheck-client")
            }
            Leaf::AdminConf => client(
                CaKind::Kubernetes,
                Some("kubeadm:cluster-admins"),
                "kubernetes-admin",
            ),
            Leaf::SuperAdminConf => client(
                CaKind::Kubernetes,
                Some("system:masters"),
                "kubernetes-super-admin",
            ),
            Leaf::ControllerManagerConf => {
                client(CaKind::Kubernetes, None, "system:kube-controller-manager")
            }
            Leaf::SchedulerConf => client(CaKind::Kubernetes, None, "system:kube-scheduler"),
            Leaf::KubeletConf => client(
                CaKind::Kubernetes,
                Some("system:nodes"),
                &format!("system:node:{}", node.name),
            ),
        }
    }
}

fn dedup(ips: Vec<IpAddr>) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::with_capacity(ips.len());
    for ip in ips {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// The cluster-wide CA set: `ca`, `front-proxy-ca`, `etcd/ca` (certificate
/// and key each) and the service-account key pair `sa.key`/`sa.pub`, in a
/// directory laid out like `<kube_dir>/pki` (see [`CA_FILES`]).
///
/// Make it once with [`Cas::create`] and pass it to [`write_node`] for every
/// master; a later process can pick it up again with [`Cas::open`].
#[derive(Clone, Debug)]
pub struct Cas {
    dir: PathBuf,
}

impl Cas {
    /// Generate a new CA set in `dir` (created if needed; existing CA files
    /// are replaced). The CAs are valid from five minutes ago for 10 years.
    ///
    /// `dir` may be a master's `<kube_dir>/pki`: [`write_node`] then leaves
    /// the CA files in place instead of copying them onto themselves.
    pub fn create(dir: &Path) -> Result<Cas, PkiError> {
        let dir = &absolute(dir)?;
        fs::create_dir_all(dir.join("etcd")).map_err(io_err(dir))?;
        let now = now_unix()?;
        let not_before = asn1_time(now - BACKDATE_SECS)?;
        let not_after = asn1_time(now + CA_VALIDITY_SECS)?;
        // Four independent key generations: run them side by side.
        // None: the service-account key pair.
        let jobs: Vec<Option<CaKind>> = CaKind::ALL.into_iter().map(Some).chain([None]).collect();
        let scratch = Scratch::new()?;
        run_parallel(&jobs, |index, job| {
            let work = scratch.job_dir(index)?;
            match job {
                Some(ca) => create_ca(*ca, dir, &work, &not_before, &not_after),
                None => create_service_account_keys(dir, &work),
            }
        })?;
        Ok(Cas {
            dir: dir.to_path_buf(),
        })
    }

    /// Use the CA set already in `dir`, e.g. one made by an earlier
    /// [`Cas::create`]. Fails if any of [`CA_FILES`] is missing.
    pub fn open(dir: &Path) -> Result<Cas, PkiError> {
        let dir = &absolute(dir)?;
        for file in CA_FILES {
            let path = dir.join(file);
            if !path.is_file() {
                return Err(PkiError::MissingCaFile { path });
            }
        }
        Ok(Cas {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory holding the CA set (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn cert(&self, ca: CaKind) -> PathBuf {
        self.dir.join(format!("{}.crt", ca.stem()))
    }

    fn key(&self, ca: CaKind) -> PathBuf {
        self.dir.join(format!("{}.key", ca.stem()))
    }
}

/// One master's files, for [`write_nodes`]: where they go, whose they are,
/// and the API server URL its kubeconfigs point at.
#[derive(Clone, Copy, Debug)]
pub struct NodeFiles<'a> {
    /// The master's kube dir (`/etc/kubernetes` on a real one); the PKI goes
    /// to its `pki/` subdirectory, the kubeconfigs into it.
    pub kube_dir: &'a Path,
    /// Identity of the master in its certificates.
    pub node: &'a Node,
    /// `server:` of its kubeconfigs, e.g. `https://10.0.0.100:6443` (the load
    /// balancer, kubeadm's controlPlaneEndpoint).
    pub server_url: &'a str,
}

/// Write one master's files: copy the CA set to `<kube_dir>/pki`, then issue
/// every [`Leaf`] with a fresh key, valid until `expiry_secs` seconds from
/// now (negative: already expired). Kubeconfigs point at `server_url`.
/// For several masters prefer [`write_nodes`], which keeps every core busy
/// across masters.
pub fn write_node(
    cas: &Cas,
    kube_dir: &Path,
    node: &Node,
    server_url: &str,
    expiry_secs: i64,
) -> Result<(), PkiError> {
    let target = NodeFiles {
        kube_dir,
        node,
        server_url,
    };
    write_nodes(cas, &[target], expiry_secs)
}

/// [`write_node`] for several masters at once: all their keys are generated
/// in one pool, so no core idles while the last key of one master is made.
pub fn write_nodes(cas: &Cas, targets: &[NodeFiles<'_>], expiry_secs: i64) -> Result<(), PkiError> {
    for target in targets {
        validate(target.node, target.server_url)?;
    }
    for target in targets {
        let pki = target.kube_dir.join("pki");
        fs::create_dir_all(pki.join("etcd")).map_err(io_err(&pki))?;
        for file in CA_FILES {
            let from = cas.dir.join(file);
            let to = pki.join(file);
            // Cas::create may have been pointed at this very pki dir; no
            // need to copy a file onto itself.
            if same_file(&from, &to) {
                continue;
            }
            let data = fs::read(&from).map_err(io_err(&from))?;
            let mode = if file.ends_with(".key") {
                KEY_MODE
            } else {
                CERT_MODE
            };
            install(&to, &data, mode)?;
        }
    }
    issue(cas, targets, expiry_secs, &Leaf::ALL)
}

/// Remake the given leaves of a master with fresh keys and serials, the same
/// subjects and SANs, valid until `expiry_secs` seconds from now (negative:
/// already expired) — e.g. to make the API server certificate expired for a
/// practice scenario. Other files are left alone. `server_url` is only used
/// for kubeconfig leaves.
pub fn reissue_leaves(
    cas: &Cas,
    kube_dir: &Path,
    node: &Node,
    server_url: &str,
    expiry_secs: i64,
    leaves: &[Leaf],
) -> Result<(), PkiError> {
    validate(node, server_url)?;
    let pki = kube_dir.join("pki");
    fs::create_dir_all(pki.join("etcd")).map_err(io_err(&pki))?;
    let target = NodeFiles {
        kube_dir,
        node,
        server_url,
    };
    issue(cas, &[target], expiry_secs, leaves)
}

/// `openssl` runs in a scratch directory, so the CA paths it is given must
/// not be relative to ours.
fn absolute(dir: &Path) -> Result<PathBuf, PkiError> {
    std::path::absolute(dir).map_err(io_err(dir))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Reject names and URLs that would corrupt an openssl `-subj`, its config
/// file or the kubeconfig YAML, before any work is done.
fn validate(node: &Node, server_url: &str) -> Result<(), PkiError> {
    let name = &node.name;
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.']);
    if !name_ok {
        return Err(PkiError::Invalid(format!(
            "node name {name:?} is not a lowercase RFC 1123 DNS name"
        )));
    }
    // Written unquoted into YAML like kubeadm does, so keep to URL characters
    // that cannot start a comment or a mapping.
    let url_ok = server_url.starts_with("https://")
        && server_url.len() > "https://".len()
        && !server_url.ends_with(':')
        && server_url
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:/[]%".contains(&b));
    if !url_ok {
        return Err(PkiError::Invalid(format!(
            "server URL {server_url:?} is not a plain https:// URL"
        )));
    }
    Ok(())
}

/// Issue `leaves` for one master, in parallel.
fn issue(
    cas: &Cas,
    targets: &[NodeFiles<'_>],
    expiry_secs: i64,
    leaves: &[Leaf],
) -> Result<(), PkiError> {
    let now = now_unix()?;
    let not_after = now
        .checked_add(expiry_secs)
        .ok_or_else(|| PkiError::Invalid(format!("expiry {expiry_secs}s is out of range")))?;
    let not_before = (now - BACKDATE_SECS).min(not_after - MIN_LIFETIME_SECS);
    let validity = Validity {
        not_before: asn1_time(not_before)?,
        not_after: asn1_time(not_after)?,
    };
    let ca_crt = cas.cert(CaKind::Kubernetes);
    let ca_pem = read(&ca_crt)?;
    let jobs: Vec<(&NodeFiles<'_>, Leaf)> = targets
        .iter()
        .flat_map(|target| leaves.iter().map(move |leaf| (target, *leaf)))
        .collect();
    let scratch = Scratch::new()?;
    run_parallel(&jobs, |index, (target, leaf)| {
        let work = scratch.job_dir(index)?;
        let spec = leaf.spec(target.node);
        let (key, cert) = sign_leaf(cas, &spec, &work, &validity)?;
        match leaf.output() {
            Output::Pair(stem) => {
                let pki = target.kube_dir.join("pki");
                install(&pki.join(format!("{stem}.key")), &key, KEY_MODE)?;
                install(&pki.join(format!("{stem}.crt")), &cert, CERT_MODE)
            }
            Output::Kubeconfig(file) => {
                let user = &spec.common_name;
                let yaml = kubeconfig(&ca_pem, target.server_url, user, &cert, &key);
                install(&target.kube_dir.join(file), yaml.as_bytes(), KEY_MODE)
            }
        }
    })
}

/// notBefore/notAfter in the `YYYYMMDDHHMMSSZ` form `openssl ca` takes.
struct Validity {
    not_before: String,
    not_after: String,
}

/// A kubeconfig laid out exactly like kubeadm's (same keys, same order).
fn kubeconfig(ca_pem: &[u8], server: &str, user: &str, cert: &[u8], key: &[u8]) -> String {
    let ca = base64(ca_pem);
    let cert = base64(cert);
    let key = base64(key);
    let context = format!("{user}@{CLUSTER_NAME}");
    format!(
        "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {server}
  name: {CLUSTER_NAME}
contexts:
- context:
    cluster: {CLUSTER_NAME}
    user: {user}
  name: {context}
current-context: {context}
kind: Config
preferences: {{}}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
"
    )
}

/// The `openssl ca` configuration: a throwaway database in the job's own
/// directory (so parallel jobs never share `index.txt`), a policy that takes
/// the request's subject as given, and the certificate's extensions.
/// (`serial` is never read because of `-rand_serial`, but OpenSSL 3.0 refuses
/// a CA section without it.)
fn openssl_config(extensions: &str) -> String {
    format!(
        "[ ca ]
default_ca = lab_ca

[ lab_ca ]
database = index.txt
serial = serial.txt
new_certs_dir = .
default_md = sha256
policy = lab_policy
unique_subject = no
email_in_dn = no
copy_extensions = none

[ lab_policy ]
organizationName = optional
commonName = supplied

[ req ]
distinguished_name = req_dn

[ req_dn ]

[ exts ]
{extensions}"
    )
}

/// `subjectAltName` entries as config lines, and the reference to them.
fn san_section(dns: &[String], ips: &[IpAddr]) -> (String, String) {
    if dns.is_empty() && ips.is_empty() {
        return (String::new(), String::new());
    }
    let mut section = String::from("\n[ alt ]\n");
    for (i, name) in dns.iter().enumerate() {
        section.push_str(&format!("DNS.{} = {name}\n", i + 1));
    }
    for (i, ip) in ips.iter().enumerate() {
        section.push_str(&format!("IP.{} = {ip}\n", i + 1));
    }
    ("subjectAltName = @alt\n".to_string(), section)
}

fn subject(organization: Option<&str>, common_name: &str) -> String {
    // kubeadm (Go) puts O before CN; -preserveDN keeps this order.
    match organization {
        Some(o) => format!("/O={o}/CN={common_name}"),
        None => format!("/CN={common_name}"),
    }
}

/// Make one self-signed CA and install it into `dir`.
fn create_ca(
    ca: CaKind,
    dir: &Path,
    work: &Path,
    not_before: &str,
    not_after: &str,
) -> Result<(), PkiError> {
    // kubeadm's CAs also carry their CN as a DNS SAN.
    let extensions = format!(
        "basicConstraints = critical,CA:TRUE
keyUsage = critical,digitalSignature,keyEncipherment,keyCertSign,cRLSign
subjectKeyIdentifier = hash
subjectAltName = DNS:{}
",
        ca.common_name()
    );
    genrsa(work, "ca.key")?;
    write_config(work, &extensions)?;
    req(work, "ca.key", &subject(None, ca.common_name()), "ca.csr")?;
    run(Command::new("openssl")
        .current_dir(work)
        .args([
            "ca",
            "-config",
            "openssl.cnf",
            "-batch",
            "-notext",
            "-rand_serial",
        ])
        .args([
            "-md",
            "sha256",
            "-preserveDN",
            "-selfsign",
            "-keyfile",
            "ca.key",
        ])
        .args(["-startdate", not_before, "-enddate", not_after])
        .args(["-extensions", "exts", "-in", "ca.csr", "-out", "ca.crt"]))?;
    let key = read(&work.join("ca.key"))?;
    let cert = read(&work.join("ca.crt"))?;
    install(&dir.join(format!("{}.key", ca.stem())), &key, KEY_MODE)?;
    install(&dir.join(format!("{}.crt", ca.stem())), &cert, CERT_MODE)
}

/// The service-account signing key pair: PKCS#1 private, SPKI public, as
/// kubeadm writes them.
fn create_service_account_keys(dir: &Path, work: &Path) -> Result<(), PkiError> {
    genrsa(work, "sa.key")?;
    run(Command::new("openssl")
        .current_dir(work)
        .args(["rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub"]))?;
    let key = read(&work.join("sa.key"))?;
    let public = read(&work.join("sa.pub"))?;
    install(&dir.join("sa.key"), &key, KEY_MODE)?;
    install(&dir.join("sa.pub"), &public, CERT_MODE)
}

/// Make a key and a certificate for `spec` in `work`; returns (key, cert) PEM.
fn sign_leaf(
    cas: &Cas,
    spec: &LeafSpec,
    work: &Path,
    validity: &Validity,
) -> Result<(Vec<u8>, Vec<u8>), PkiError> {
    let (san_line, san_section) = san_section(&spec.dns, &spec.ips);
    let extensions = format!(
        "basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = {}
authorityKeyIdentifier = keyid:always
{san_line}{san_section}",
        spec.extended_key_usage
    );
    genrsa(work, "leaf.key")?;
    write_config(work, &extensions)?;
    req(
        work,
        "leaf.key",
        &subject(spec.organization, &spec.common_name),
        "leaf.csr",
    )?;
    // `openssl x509 -req` in 3.0 only knows -days; `openssl ca` takes exact
    // start and end dates, including ones in the past.
    let ca_cert = cas.cert(spec.signer);
    let ca_key = cas.key(spec.signer);
    run(Command::new("openssl")
        .current_dir(work)
        .args([
            "ca",
            "-config",
            "openssl.cnf",
            "-batch",
            "-notext",
            "-rand_serial",
        ])
        .args(["-md", "sha256", "-preserveDN"])
        .arg("-cert")
        .arg(&ca_cert)
        .arg("-keyfile")
        .arg(&ca_key)
        .args(["-startdate", &validity.not_before])
        .args(["-enddate", &validity.not_after])
        .args(["-extensions", "exts", "-in", "leaf.csr", "-out", "leaf.crt"]))?;
    Ok((read(&work.join("leaf.key"))?, read(&work.join("leaf.crt"))?))
}

fn genrsa(work: &Path, out: &str) -> Result<(), PkiError> {
    // -traditional: PKCS#1 ("BEGIN RSA PRIVATE KEY"), as kubeadm writes keys.
    run(Command::new("openssl").current_dir(work).args([
        "genrsa",
        "-traditional",
        "-out",
        out,
        "2048",
    ]))
}

fn req(work: &Path, key: &str, subject: &str, out: &str) -> Result<(), PkiError> {
    run(Command::new("openssl")
        .current_dir(work)
        .args(["req", "-new", "-config", "openssl.cnf", "-key", key])
        .args(["-subj", subject, "-out", out]))
}

fn write_config(work: &Path, extensions: &str) -> Result<(), PkiError> {
    let config = work.join("openssl.cnf");
    fs::write(&config, openssl_config(extensions)).map_err(io_err(&config))?;
    let index = work.join("index.txt");
    fs::write(&index, "").map_err(io_err(&index))
}

fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(io_err(path))
}

/// Run a command to completion; a failure carries its command line and stderr.
fn run(command: &mut Command) -> Result<(), PkiError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => PkiError::OpensslMissing,
            _ => PkiError::Io {
                path: PathBuf::from(command.get_program()),
                source,
            },
        })?;
    if output.status.success() {
        return Ok(());
    }
    let words: Vec<&OsStr> = std::iter::once(command.get_program())
        .chain(command.get_args())
        .collect();
    Err(PkiError::Openssl {
        command: words
            .iter()
            .map(|w| w.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" "),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

/// Replace `dest` atomically (temporary file in the same directory, then
/// rename), so a reader never sees a half-written key or certificate, and
/// with exactly `mode` whatever the umask.
fn install(dest: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = dest
        .file_name()
        .ok_or_else(|| PkiError::Invalid(format!("{} has no file name", dest.display())))?;
    let tmp = dest.with_file_name(format!(
        ".{}.tmp.{}.{}",
        name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let write = || -> io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(data)
    };
    if let Err(source) = write() {
        let _ = fs::remove_file(&tmp);
        return Err(PkiError::Io { path: tmp, source });
    }
    fs::rename(&tmp, dest).map_err(|source| {
        let _ = fs::remove_file(&tmp);
        PkiError::Io {
            path: dest.to_path_buf(),
            source,
        }
    })
}

/// A private (0700) temporary directory, removed on drop, holding one
/// subdirectory per job: keys are generated there before being installed.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Result<Scratch, PkiError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let dir = base.join(format!(
                "remedy-lab-pki.{}.{}.{nanos}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Scratch { dir }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(PkiError::Io { path: dir, source }),
            }
        }
    }

    fn job_dir(&self, index: usize) -> Result<PathBuf, PkiError> {
        let dir = self.dir.join(format!("job{index}"));
        fs::create_dir(&dir).map_err(io_err(&dir))?;
        Ok(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Run `work` on every job with one worker thread per core (each drives its
/// own `openssl` child, and key generation is CPU-bound). Stops handing out
/// jobs after the first failure and returns that failure.
fn run_parallel<T: Sync>(
    jobs: &[T],
    work: impl Fn(usize, &T) -> Result<(), PkiError> + Sync,
) -> Result<(), PkiError> {
    let workers = thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(jobs.len());
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<PkiError>> = Mutex::new(None);
    thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(index) else { break };
                    if let Err(e) = work(index, job) {
                        failed.store(true, Ordering::Relaxed);
                        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                        slot.get_or_insert(e);
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn now_unix() -> Result<i64, PkiError> {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| PkiError::Invalid("the system clock is before 1970".to_string()))?;
    i64::try_from(since_epoch.as_secs())
        .map_err(|_| PkiError::Invalid("the system clock is out of range".to_string()))
}

/// Unix time as `YYYYMMDDHHMMSSZ` (UTC), the form `openssl ca -startdate`
/// takes; openssl encodes it as UTCTime up to 2049 as RFC 5280 requires.
fn asn1_time(unix: i64) -> Result<String, PkiError> {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(1950..=9999).contains(&year) {
        return Err(PkiError::Invalid(format!(
            "certificate time {unix} (year {year}) is outside 1950..9999"
        )));
    }
    Ok(format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    ))
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`), to avoid a date crate.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Standard base64 with padding and no line breaks, as kubeconfigs embed
/// certificates and keys.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        let sextet = |shift: u32| char::from(ALPHABET[(n >> shift & 63) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    //! Every check goes through the openssl CLI, never through this module's
    //! own parsing, so the PKI is judged by an independent reader.

    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::process::Output as ProcessOutput;
    use std::time::Instant;

    const URL: &str = "https://10.0.0.100:6443";
    const YEAR: i64 = 365 * 86_400;
    /// Slack for "about now" comparisons: the run itself takes seconds.
    const SLACK: i64 = 120;

    fn node(name: &str, ip: &str, extra: &[&str]) -> Node {
        Node {
            name: name.to_string(),
            ip: ip.parse().unwrap(),
            extra_sans: extra.iter().map(|ip| ip.parse().unwrap()).collect(),
        }
    }

    fn openssl(args: &[&OsStr], stdin: &[u8]) -> ProcessOutput {
        let mut child = Command::new("openssl")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("openssl is installed");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Run openssl, insist on success, return stdout.
    fn ok(args: &[&dyn AsRef<OsStr>]) -> String {
        String::from_utf8(ok_stdin(args, b"")).unwrap()
    }

    fn ok_stdin(args: &[&dyn AsRef<OsStr>], stdin: &[u8]) -> Vec<u8> {
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_ref()).collect();
        let out = openssl(&args, stdin);
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// What `openssl x509` says about a certificate (one process per
    /// certificate: the checks spawn hundreds of commands otherwise).
    struct Cert {
        subject: String,
        serial: String,
        not_before: i64,
        not_after: i64,
        /// Extension name ("Key Usage") to "critical, " if so, then the
        /// value lines joined with ", ".
        extensions: BTreeMap<String, String>,
        public_key: String,
    }

    impl Cert {
        fn ext(&self, name: &str) -> &str {
            self.extensions.get(name).map_or("", String::as_str)
        }

        fn sans(&self) -> (BTreeSet<String>, BTreeSet<IpAddr>) {
            let mut dns = BTreeSet::new();
            let mut ips = BTreeSet::new();
            let text = self.ext("Subject Alternative Name");
            for entry in text.split(", ").filter(|e| !e.is_empty()) {
                if let Some(name) = entry.strip_prefix("DNS:") {
                    dns.insert(name.to_string());
                } else if let Some(ip) = entry.strip_prefix("IP Address:") {
                    ips.insert(ip.parse().unwrap());
                } else {
                    panic!("unexpected SAN {entry:?}");
                }
            }
            (dns, ips)
        }
    }

    fn inspect(cert: &Path) -> Cert {
        let out = ok(&[
            &"x509",
            &"-in",
            &cert,
            &"-noout",
            &"-subject",
            &"-serial",
            &"-startdate",
            &"-enddate",
            &"-dateopt",
            &"iso_8601",
            &"-ext",
            &"basicConstraints,keyUsage,extendedKeyUsage,subjectAltName",
            &"-pubkey",
        ]);
        let mut fields = BTreeMap::new();
        let mut extensions: BTreeMap<String, String> = BTreeMap::new();
        let mut current: Option<String> = None;
        let mut public_key = String::new();
        for line in out.lines() {
            if !public_key.is_empty() || line.starts_with("-----BEGIN PUBLIC KEY") {
                public_key.push_str(line);
                public_key.push('\n');
            } else if let Some(value) = line.strip_prefix("    ") {
                let name = current.as_ref().expect("extension value after a header");
                let text = extensions.get_mut(name).unwrap();
                if !text.is_empty() {
                    text.push_str(", ");
                }
                text.push_str(value.trim());
            } else if let Some(header) = line.strip_prefix("X509v3 ") {
                let (name, flags) = header.split_once(':').unwrap();
                let critical = flags.trim() == "critical";
                let start = if critical { "critical" } else { "" };
                extensions.insert(name.to_string(), start.to_string());
                current = Some(name.to_string());
            } else {
                let (name, value) = line.split_once('=').unwrap();
                fields.insert(name.to_string(), value.to_string());
            }
        }
        Cert {
            subject: fields.remove("subject").unwrap(),
            serial: fields.remove("serial").unwrap(),
            not_before: parse_iso(&fields["notBefore"]),
            not_after: parse_iso(&fields["notAfter"]),
            extensions,
            public_key,
        }
    }

    /// Inverse of civil_from_days, written separately so the test does not
    /// trust the code under test: "2026-01-01 01:00:00Z" to Unix time.
    fn parse_iso(text: &str) -> i64 {
        let (date, time) = text.trim_end_matches('Z').split_once(' ').unwrap();
        let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
        let t: Vec<i64> = time.split(':').map(|x| x.parse().unwrap()).collect();
        let (y, m) = if d[1] <= 2 {
            (d[0] - 1, d[1] + 9)
        } else {
            (d[0], d[1] - 3)
        };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * m + 2) / 5 + d[2] - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2]
    }

    fn assert_near(actual: i64, expected: i64, what: &str) {
        assert!(
            (actual - expected).abs() <= SLACK,
            "{what}: {actual} is not within {SLACK}s of {expected}"
        );
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn verify(ca: &Path, cert: &Path) -> ProcessOutput {
        openssl(
            &[
                OsStr::new("verify"),
                OsStr::new("-CAfile"),
                ca.as_os_str(),
                cert.as_os_str(),
            ],
            b"",
        )
    }

    fn assert_verifies(ca: &Path, cert: &Path) {
        let out = verify(ca, cert);
        assert!(
            out.status.success(),
            "{} against {}: {}{}",
            cert.display(),
            ca.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The key is PKCS#1 RSA 2048 and belongs to the certificate.
    fn assert_key_matches(key: &Path, cert: &Cert) {
        let pem = fs::read_to_string(key).unwrap();
        assert!(
            pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
            "{} is not PKCS#1",
            key.display()
        );
        let out = ok(&[&"rsa", &"-in", &key, &"-pubout", &"-text"]);
        assert!(
            out.starts_with("Private-Key: (2048 bit, 2 primes)"),
            "{out}"
        );
        let public = &out[out.find("-----BEGIN PUBLIC KEY").unwrap()..];
        assert_eq!(
            public,
            cert.public_key,
            "{} does not match {}",
            key.display(),
            cert.subject
        );
    }

    /// A kubeconfig's value for `key` (first occurrence), kubeadm layout.
    fn yaml_value<'a>(yaml: &'a str, key: &str) -> &'a str {
        yaml.lines()
            .find_map(|line| line.trim_start().strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key} in\n{yaml}"))
    }

    fn base64_decode(text: &str) -> Vec<u8> {
        ok_stdin(&[&"base64", &"-d", &"-A"], text.as_bytes())
    }

    const SERVER: &str = "TLS Web Server Authentication";
    const CLIENT: &str = "TLS Web Client Authentication";
    const SERVER_CLIENT: &str = "TLS Web Server Authentication, TLS Web Client Authentication";
    const LEAF_KEY_USAGE: &str = "critical, Digital Signature, Key Encipherment";

    /// Check one master's files: chains, subjects, usages, SANs, keys, modes,
    /// kubeconfigs, and a notAfter `expiry` seconds from `now`. Returns the
    /// serials of its leaf certificates.
    fn check_node(kube: &Path, node: &Node, now: i64, expiry: i64) -> Vec<String> {
        let pki = kube.join("pki");
        for ca in CaKind::ALL {
            let path = pki.join(format!("{}.crt", ca.stem()));
            let key = pki.join(format!("{}.key", ca.stem()));
            let cert = inspect(&path);
            assert_verifies(&path, &path);
            assert_key_matches(&key, &cert);
            assert_eq!(mode(&path), 0o644);
            assert_eq!(mode(&key), 0o600);
            assert_eq!(cert.subject, format!("CN = {}", ca.common_name()));
            assert_eq!(cert.ext("Basic Constraints"), "critical, CA:TRUE");
            assert_eq!(
                cert.ext("Key Usage"),
                "critical, Digital Signature, Key Encipherment, Certificate Sign, CRL Sign"
            );
            assert_near(cert.not_after, now + CA_VALIDITY_SECS, "CA notAfter");
        }
        assert_eq!(mode(&pki.join("sa.key")), 0o600);
        assert_eq!(mode(&pki.join("sa.pub")), 0o644);
        assert!(fs::read_to_string(pki.join("sa.key"))
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        assert_eq!(
            ok(&[&"rsa", &"-in", &pki.join("sa.key"), &"-pubout"]),
            fs::read_to_string(pki.join("sa.pub")).unwrap()
        );

        let ca = pki.join("ca.crt");
        let etcd_ca = pki.join("etcd/ca.crt");
        let front_ca = pki.join("front-proxy-ca.crt");
        let etcd_cn = format!("CN = {}", node.name);
        let pairs: [(&str, &Path, &str, &str); 7] = [
            ("apiserver", &ca, "CN = kube-apiserver", SERVER),
            (
                "apiserver-kubelet-client",
                &ca,
                "O = kubeadm:cluster-admins, CN = kube-apiserver-kubelet-client",
                CLIENT,
            ),
            (
                "front-proxy-client",
                &front_ca,
                "CN = front-proxy-client",
                CLIENT,
            ),
            (
                "apiserver-etcd-client",
                &etcd_ca,
                "CN = kube-apiserver-etcd-client",
                CLIENT,
            ),
            ("etcd/server", &etcd_ca, &etcd_cn, SERVER_CLIENT),
            ("etcd/peer", &etcd_ca, &etcd_cn, SERVER_CLIENT),
            (
                "etcd/healthcheck-client",
                &etcd_ca,
                "CN = kube-etcd-healthcheck-client",
                CLIENT,
            ),
        ];
        let mut serials = Vec::new();
        for (stem, signer, subject, usage) in pairs {
            let path = pki.join(format!("{stem}.crt"));
            let key = pki.join(format!("{stem}.key"));
            let cert = inspect(&path);
            assert_verifies(signer, &path);
            // The wrong CA must not do: the chains are really separate.
            let other = if signer == ca.as_path() {
                &etcd_ca
            } else {
                &ca
            };
            assert!(
                !verify(other, &path).status.success(),
                "{stem} verifies against {other:?}"
            );
            assert_key_matches(&key, &cert);
            assert_eq!(mode(&path), 0o644, "{stem}.crt");
            assert_eq!(mode(&key), 0o600, "{stem}.key");
            assert_eq!(cert.subject, subject, "{stem}");
            assert_eq!(cert.ext("Extended Key Usage"), usage, "{stem}");
            assert_eq!(
                cert.ext("Basic Constraints"),
                "critical, CA:FALSE",
                "{stem}"
            );
            assert_eq!(cert.ext("Key Usage"), LEAF_KEY_USAGE, "{stem}");
            assert_near(cert.not_after, now + expiry, stem);
            assert_near(cert.not_before, now - BACKDATE_SECS, stem);
            let (dns, ips) = cert.sans();
            let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
            let addrs = |list: &[&str]| list.iter().map(|s| s.parse().unwrap()).collect();
            match stem {
                "apiserver" => {
                    let mut expected: BTreeSet<IpAddr> = addrs(&["10.96.0.1", "127.0.0.1"]);
                    expected.insert(node.ip);
                    expected.extend(&node.extra_sans);
                    assert_eq!(ips, expected);
                    assert_eq!(
                        dns,
                        names(&[
                            "kubernetes",
                            "kubernetes.default",
                            "kubernetes.default.svc",
                            "kubernetes.default.svc.cluster.local",
                            &node.name,
                        ])
                    );
                }
                "etcd/server" | "etcd/peer" => {
                    let mut expected: BTreeSet<IpAddr> = addrs(&["127.0.0.1", "::1"]);
                    expected.insert(node.ip);
                    assert_eq!(ips, expected, "{stem}");
                    assert_eq!(dns, names(&[&node.name, "localhost"]), "{stem}");
                }
                _ => assert!(dns.is_empty() && ips.is_empty(), "{stem} has SANs"),
            }
            serials.push(cert.serial);
        }

        let ca_pem = fs::read(&ca).unwrap();
        let kubelet = format!("O = system:nodes, CN = system:node:{}", node.name);
        let confs = [
            (
                "admin.conf",
                "O = kubeadm:cluster-admins, CN = kubernetes-admin",
            ),
            (
                "super-admin.conf",
                "O = system:masters, CN = kubernetes-super-admin",
            ),
            (
                "controller-manager.conf",
                "CN = system:kube-controller-manager",
            ),
            ("scheduler.conf", "CN = system:kube-scheduler"),
            ("kubelet.conf", &kubelet),
        ];
        let scratch = tempfile::tempdir().unwrap();
        for (file, subject) in confs {
            let conf = kube.join(file);
            assert_eq!(mode(&conf), 0o600, "{file}");
            let yaml = fs::read_to_string(&conf).unwrap();
            let user = subject.rsplit_once("CN = ").unwrap().1;
            assert!(yaml.starts_with("apiVersion: v1\n"), "{file}");
            assert!(yaml.contains("\nkind: Config\n"), "{file}");
            assert_eq!(yaml_value(&yaml, "server"), URL);
            assert_eq!(yaml_value(&yaml, "cluster"), "kubernetes");
            assert_eq!(yaml_value(&yaml, "user"), user);
            assert_eq!(yaml_value(&yaml, "- name"), user);
            assert_eq!(
                yaml_value(&yaml, "current-context"),
                format!("{user}@kubernetes")
            );
            let ca_data = base64_decode(yaml_value(&yaml, "certificate-authority-data"));
            assert_eq!(ca_data, ca_pem, "{file}");
            let path = scratch.path().join(format!("{file}.crt"));
            let key = scratch.path().join(format!("{file}.key"));
            fs::write(
                &path,
                base64_decode(yaml_value(&yaml, "client-certificate-data")),
            )
            .unwrap();
            fs::write(&key, base64_decode(yaml_value(&yaml, "client-key-data"))).unwrap();
            let cert = inspect(&path);
            assert_verifies(&ca, &path);
            assert_key_matches(&key, &cert);
            assert_eq!(cert.subject, subject, "{file}");
            assert_eq!(cert.ext("Extended Key Usage"), CLIENT, "{file}");
            assert_eq!(
                cert.ext("Basic Constraints"),
                "critical, CA:FALSE",
                "{file}"
            );
            assert_eq!(cert.ext("Key Usage"), LEAF_KEY_USAGE, "{file}");
            assert_eq!(cert.ext("Subject Alternative Name"), "", "{file}");
            assert_near(cert.not_after, now + expiry, file);
            serials.push(cert.serial);
        }
        serials
    }

    #[test]
    fn two_masters_share_cas_and_pass_openssl_checks() {
        let tmp = tempfile::tempdir().unwrap();
        let m1 = tmp.path().join("m1");
        let m2 = tmp.path().join("m2");
        let n1 = node("master-1", "10.0.0.11", &["10.0.0.100", "fd00::100"]);
        let n2 = node("master-2", "10.0.0.12", &[]);
        let now = now_unix().unwrap();

        let started = Instant::now();
        // The CA set lives in master-1's own pki dir, as after `kubeadm init`.
        Cas::create(&m1.join("pki")).unwrap();
        let after_cas = started.elapsed();
        // A later process can pick the set up again.
        let cas = Cas::open(&m1.join("pki")).unwrap();
        let targets = [(&m1, &n1), (&m2, &n2)].map(|(kube_dir, node)| NodeFiles {
            kube_dir,
            node,
            server_url: URL,
        });
        write_nodes(&cas, &targets, YEAR).unwrap();
        eprintln!(
            "CAs: {after_cas:?}; CAs + 2 masters: {:?}",
            started.elapsed()
        );

        let mut serials = check_node(&m1, &n1, now, YEAR);
        serials.extend(check_node(&m2, &n2, now, YEAR));
        assert_eq!(serials.len(), 2 * Leaf::ALL.len());

        for file in CA_FILES {
            assert_eq!(
                fs::read(m1.join("pki").join(file)).unwrap(),
                fs::read(m2.join("pki").join(file)).unwrap(),
                "{file} differs between masters"
            );
        }
        let unique: BTreeSet<_> = serials.iter().collect();
        assert_eq!(unique.len(), serials.len(), "repeated serials: {serials:?}");

        // Only scratch-free results: no temporaries left next to the files.
        for dir in [&m1, &m2, &m1.join("pki"), &m1.join("pki/etcd")] {
            for entry in fs::read_dir(dir).unwrap() {
                let name = entry.unwrap().file_name();
                assert!(
                    !name.to_string_lossy().starts_with('.'),
                    "left over {name:?}"
                );
            }
        }
    }

    #[test]
    fn leaves_can_expire_to_the_second_including_in_the_past() {
        let tmp = tempfile::tempdir().unwrap();
        // A relative CA dir must work although openssl runs elsewhere.
        let cwd = std::env::current_dir().unwrap();
        let up = "../".repeat(cwd.components().count() - 1);
        let relative = Path::new(&up).join(tmp.path().strip_prefix("/").unwrap());
        let cas = Cas::create(&relative.join("cas")).unwrap();
        assert!(cas.dir().is_absolute());
        let kube = tmp.path().join("kube");
        let n = node("master-1", "192.168.56.11", &[]);
        let now = now_unix().unwrap();
        // `openssl x509 -checkend N` succeeds if the certificate is still
        // valid N seconds from now.
        let valid_in = |cert: &Path, secs: i64| {
            let secs = secs.to_string();
            let args = ["x509", "-noout", "-checkend", &secs, "-in"].map(OsStr::new);
            let args: Vec<&OsStr> = args.into_iter().chain([cert.as_os_str()]).collect();
            openssl(&args, b"").status.success()
        };

        reissue_leaves(&cas, &kube, &n, URL, -3600, &[Leaf::ApiServer]).unwrap();
        let path = kube.join("pki/apiserver.crt");
        let expired = inspect(&path);
        assert!(!valid_in(&path, 0), "checkend 0 says it is still valid");
        assert_near(expired.not_after, now - 3600, "notAfter");
        assert!(expired.not_before < expired.not_after);
        let out = verify(&cas.dir().join("ca.crt"), &path);
        assert!(!out.status.success());
        let report = String::from_utf8_lossy(&[out.stdout, out.stderr].concat()).into_owned();
        assert!(report.contains("certificate has expired"), "{report}");

        let both = [Leaf::ApiServer, Leaf::EtcdServer];
        reissue_leaves(&cas, &kube, &n, URL, 86_400, &both).unwrap();
        for (stem, ca) in [("apiserver", "ca.crt"), ("etcd/server", "etcd/ca.crt")] {
            let path = kube.join(format!("pki/{stem}.crt"));
            let cert = inspect(&path);
            assert_near(cert.not_after, now + 86_400, stem);
            assert_near(cert.not_before, now - BACKDATE_SECS, stem);
            assert!(valid_in(&path, 86_400 - SLACK), "{stem} expires too early");
            assert!(!valid_in(&path, 86_400 + SLACK), "{stem} outlives a day");
            assert_key_matches(&kube.join(format!("pki/{stem}.key")), &cert);
            assert_verifies(&cas.dir().join(ca), &path);
        }
        // Same identity, new certificate.
        let renewed = inspect(&path);
        assert_eq!(renewed.subject, expired.subject);
        assert_eq!(renewed.sans(), expired.sans());
        assert_ne!(renewed.serial, expired.serial);
        assert_ne!(renewed.public_key, expired.public_key);
        // Only what was asked for was written.
        let mut written: Vec<String> = fs::read_dir(kube.join("pki"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        written.sort();
        assert_eq!(written, ["apiserver.crt", "apiserver.key", "etcd"]);
    }

    #[test]
    fn bad_input_and_missing_pieces_give_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Cas::open(tmp.path()).unwrap_err();
        assert!(matches!(&err, PkiError::MissingCaFile { path } if path.ends_with("ca.crt")));
        // Validation happens before any file or openssl is touched, so a
        // CA set that does not exist is fine here.
        let cas = Cas {
            dir: tmp.path().join("nowhere"),
        };
        let kube = tmp.path().join("kube");
        for name in ["", "Master-1", "a/b", "-a", "a b", "x=y"] {
            let err = write_node(&cas, &kube, &node(name, "10.0.0.1", &[]), URL, YEAR).unwrap_err();
            assert!(matches!(err, PkiError::Invalid(_)), "{name:?}: {err}");
        }
        for url in [
            "http://x:6443",
            "https://",
            "https://a b",
            "https://x#y",
            "https://x:",
        ] {
            let err = write_node(&cas, &kube, &node("m", "10.0.0.1", &[]), url, YEAR).unwrap_err();
            assert!(matches!(err, PkiError::Invalid(_)), "{url:?}: {err}");
        }
        assert!(!kube.exists());
        let err = reissue_leaves(&cas, &kube, &node("m", "10.0.0.1", &[]), URL, i64::MAX, &[])
            .unwrap_err();
        assert!(matches!(err, PkiError::Invalid(_)), "{err}");

        let err = run(&mut Command::new("/nonexistent/openssl")).unwrap_err();
        assert!(
            err.to_string().contains("install the `openssl` package"),
            "{err}"
        );
        let err = run(Command::new("openssl").args(["genrsa", "-nosuchflag"])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("openssl genrsa -nosuchflag"), "{text}");
        assert!(text.contains("nosuchflag"), "{text}");
    }

    #[test]
    fn asn1_time_is_utc_calendar_time() {
        assert_eq!(asn1_time(0).unwrap(), "19700101000000Z");
        assert_eq!(asn1_time(951_782_400).unwrap(), "20000229000000Z");
        assert_eq!(asn1_time(1_767_225_599).unwrap(), "20251231235959Z");
        assert_eq!(asn1_time(4_107_542_400).unwrap(), "21000301000000Z");
        assert_eq!(asn1_time(-1).unwrap(), "19691231235959Z");
        assert!(asn1_time(-700_000_000).is_err());
        for t in [0, 951_782_400, 1_767_225_599, 4_107_542_400, -1] {
            let s = asn1_time(t).unwrap();
            let iso = format!(
                "{}-{}-{} {}:{}:{}Z",
                &s[0..4],
                &s[4..6],
                &s[6..8],
                &s[8..10],
                &s[10..12],
                &s[12..14]
            );
            assert_eq!(parse_iso(&iso), t);
        }
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64(&bytes)), bytes);
    }
}
