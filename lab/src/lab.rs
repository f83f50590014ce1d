//! `remedy lab up | down`: building and stopping a practice control plane
//! (`status` and `break` live in their own modules).
//!
//! Per master: an sshd in its own mount and UTS namespace (its own hostname,
//! `/etc/kubernetes`, `/var/lib/etcd`, `/var/lib/kubelet`, `/var/lib/remedy`,
//! `/var/log/pods`, `/usr/local/bin` and an empty `/root`), whose files the
//! real kubeadm writes, joined by a kubelet stand-in that starts the static
//! pods from the manifests: the real etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler. An lb host (sshd at the VIP)
//! and a real HAProxy balancing the masters' :6443 complete it. Every process
//! started is recorded (`process`), so `down` works even after a crashed `up`.

use crate::binaries::{Binaries, BinariesError};
use crate::hosts::{self, wait_https_ok};
use crate::kubeadm::{self, ConfigOptions, KubeadmError};
use crate::layout::{Layout, HOST_MOUNTS, SSH_PORT};
use crate::process::{self, Recorded, Stopped};
use crate::redate::{self, RedateError};
use serde::{Deserialize, Serialize};
use std::fs;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Debian packages the lab needs, for the one message a user sees if any is missing.
const APT: &str = "apt-get install -y --no-install-recommends openssh-server openssh-client haproxy openssl curl util-linux (or run scripts/setup)";

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("the lab needs root: it starts sshd servers in their own mount namespaces (run as root, e.g. with sudo)")]
    NotRoot,
    #[error("missing on this machine: {}\n  install them: {APT}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("a lab is already up in {dir} ({alive} processes running); stop it with `remedy lab down{}`, or use another --dir and --base-address", dir_flag(dir))]
    AlreadyUp { dir: String, alive: usize },
    #[error("{0} exists and is not a lab directory (no lab.json); choose another --dir")]
    NotALabDir(String),
    #[error("no lab in {0} (no lab.json); start one with `remedy lab up`")]
    NoLab(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Binaries(#[from] BinariesError),
    #[error(transparent)]
    Kubeadm(#[from] KubeadmError),
    #[error(transparent)]
    Redate(#[from] RedateError),
    #[error("{what} did not come up within {secs}s; look at {log}\n  the lab was stopped again")]
    NotReady {
        what: String,
        secs: u64,
        log: String,
    },
    #[error("unknown fault `{0}`; known: {known}", known = crate::faults::fault_names())]
    UnknownFault(String),
    #[error("unknown lab host `{name}`; this lab has {known}")]
    UnknownHost { name: String, known: String },
    #[error("{0}")]
    Fault(String),
}

fn dir_flag(dir: &str) -> String {
    if Path::new(dir) == crate::layout::default_dir() {
        String::new()
    } else {
        format!(" --dir {dir}")
    }
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Io { what, source }
}

/// What `up` builds.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dir: PathBuf,
    pub masters: usize,
    pub base: Ipv4Addr,
    /// Leaf certificate lifetime from now, in seconds; negative = already expired.
    pub cert_expiry_secs: i64,
    pub etcd_quota_bytes: Option<u64>,
    /// Load balancers: lb-1 at the VIP, more on their own addresses.
    pub lbs: usize,
    /// The `remedy` binary (runs the kubelet stand-ins and the lab's crictl).
    pub remedy_exe: PathBuf,
    /// Also start an ops etcd for coordinating jump hosts ([`crate::ops_etcd`]).
    pub ops_etcd: bool,
}

/// Saved in `lab.json`: enough to find and stop the lab again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub dir: PathBuf,
    pub masters: usize,
    pub base: Ipv4Addr,
    pub cert_expiry_secs: i64,
    pub etcd_quota_bytes: Option<u64>,
    #[serde(default = "one")]
    pub lbs: usize,
    /// An ops etcd runs beside the lab (`<lab>/coordination.yaml`).
    #[serde(default)]
    pub ops_etcd: bool,
}

fn one() -> usize {
    1
}

impl LabState {
    pub fn layout(&self) -> Layout {
        Layout::new(&self.dir, self.masters, self.base).with_lbs(self.lbs)
    }

    pub fn load(dir: &Path) -> Result<LabState, LabError> {
        let text = fs::read_to_string(dir.join("lab.json"))
            .map_err(|_| LabError::NoLab(dir.display().to_string()))?;
        serde_json::from_str(&text)
            .map_err(|e| LabError::Fault(format!("{}/lab.json is unreadable: {e}", dir.display())))
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        return Path::new(tool).is_file().then(|| PathBuf::from(tool));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(tool))
            .find(|p| p.is_file())
    })
}

/// Root and every tool the lab runs, or one message listing what is missing.
pub fn check_prerequisites() -> Result<(), LabError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(LabError::NotRoot);
    }
    let missing: Vec<String> = [
        "/usr/sbin/sshd",
        "ssh-keygen",
        "haproxy",
        "openssl",
        "unshare",
        "nsenter",
        "curl",
    ]
    .iter()
    .filter(|t| which(t).is_none())
    .map(|t| t.to_string())
    .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(LabError::Missing(missing))
    }
}

/// Build and start a lab. `progress` gets one line per stage.
pub fn up(opts: &UpOptions, progress: &mut dyn FnMut(&str)) -> Result<LabState, LabError> {
    check_prerequisites()?;
    // Before anything is made: a missing or corrupt binary is never run.
    let bins = Binaries::verified()?;
    let layout = Layout::new(&opts.dir, opts.masters, opts.base).with_lbs(opts.lbs);
    let alive = process::recorded(&layout.dir)
        .iter()
        .filter(|r| r.alive())
        .count();
    if alive > 0 {
        return Err(LabError::AlreadyUp {
            dir: layout.dir.display().to_string(),
            alive,
        });
    }
    if layout.dir.exists() {
        let empty = fs::read_dir(&layout.dir)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty && !layout.state_file().exists() {
            return Err(LabError::NotALabDir(layout.dir.display().to_string()));
        }
        // A stopped lab: start afresh.
        fs::remove_dir_all(&layout.dir).map_err(io(format!("clear {}", layout.dir.display())))?;
    }
    fs::create_dir_all(layout.ssh_dir()).map_err(io("create the lab directory"))?;
    let state = LabState {
        dir: layout.dir.clone(),
        masters: opts.masters,
        base: opts.base,
        cert_expiry_secs: opts.cert_expiry_secs,
        etcd_quota_bytes: opts.etcd_quota_bytes,
        lbs: layout.lbs,
        ops_etcd: opts.ops_etcd,
    };
    // lab.json first: from here on `down` knows this is a lab.
    fs::write(
        layout.state_file(),
        serde_json::to_string_pretty(&state).unwrap_or_default(),
    )
    .map_err(io("write lab.json"))?;
    let result = start(&layout, opts, &bins, progress).and_then(|()| {
        if opts.ops_etcd {
            crate::ops_etcd::up(&layout.dir, opts.base, &bins, progress)?;
        }
        Ok(())
    });
    if let Err(e) = result {
        stop(&layout.dir);
        return Err(e);
    }
    Ok(state)
}

fn start(
    layout: &Layout,
    opts: &UpOptions,
    bins: &Binaries,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    let kubeadm = bins
        .path("kubeadm")
        .ok_or_else(|| LabError::Fault("no kubeadm among the lab's binaries".into()))?;
    let kubectl = bins
        .path("kubectl")
        .ok_or_else(|| LabError::Fault("no kubectl among the lab's binaries".into()))?;
    hosts::keygen(&layout.client_key(), "remedy-lab")?;
    fs::copy(
        layout.client_key().with_extension("pub"),
        layout.ssh_dir().join("authorized_keys"),
    )
    .map_err(io("write authorized_keys"))?;

    let mut known_hosts = String::new();
    let hosts: Vec<(String, Ipv4Addr)> = layout
        .master_names()
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, layout.master_addr(i + 1)))
        .chain(
            layout
                .lb_names()
                .into_iter()
                .enumerate()
                .map(|(i, n)| (n, layout.lb_addr(i + 1))),
        )
        .collect();
    for (name, addr) in &hosts {
        let h = layout.host_dir(name);
        fs::create_dir_all(&h).map_err(io(format!("create {}", h.display())))?;
        hosts::keygen(&h.join("ssh_host_ed25519_key"), name)?;
        fs::write(
            h.join("sshd_config"),
            hosts::sshd_config(layout, name, *addr),
        )
        .map_err(io("write sshd_config"))?;
        let public =
            fs::read_to_string(h.join("ssh_host_ed25519_key.pub")).map_err(io("read host key"))?;
        let mut parts = public.split_whitespace();
        known_hosts.push_str(&format!(
            "[{addr}]:{SSH_PORT} {} {}\n",
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("")
        ));
    }
    fs::write(layout.known_hosts(), &known_hosts).map_err(io("write known_hosts"))?;
    fs::create_dir_all("/run/sshd").map_err(io("create /run/sshd"))?;

    // The masters' hosts first: kubeadm runs inside each one's namespace.
    let version = crate::binaries::k8s_version();
    let config_opts = ConfigOptions {
        validity_secs: (opts.cert_expiry_secs > 0).then_some(opts.cert_expiry_secs),
        etcd_quota_bytes: opts.etcd_quota_bytes,
    };
    let mut sshd_pids = Vec::new();
    for (i, name) in layout.master_names().iter().enumerate() {
        let h = layout.host_dir(name);
        hosts::install_master_tools(&h.join("usr-local-bin"), bins, &opts.remedy_exe)?;
        fs::write(
            h.join("kubeadm.yaml"),
            kubeadm::config(layout, i + 1, version, &config_opts),
        )
        .map_err(io("write kubeadm.yaml"))?;
        progress(&format!(
            "starting {name}: sshd on {}:{SSH_PORT}",
            layout.master_addr(i + 1)
        ));
        sshd_pids
            .push(hosts::start_sshd(layout, name, layout.master_addr(i + 1), HOST_MOUNTS)?.pid);
    }
    progress(&format!(
        "kubeadm {version}: CAs on master-1, then certificates, kubeconfigs and static-pod manifests on {} masters",
        layout.masters
    ));
    let config_of = |name: &str| layout.host_dir(name).join("kubeadm.yaml");
    kubeadm::make_cas(layout, sshd_pids[0], &kubeadm, &config_of("master-1"))?;
    let results: Vec<Result<(), KubeadmError>> = std::thread::scope(|s| {
        let jobs: Vec<_> = sshd_pids
            .iter()
            .enumerate()
            .map(|(i, pid)| {
                let (kubeadm, config) = (&kubeadm, config_of(&format!("master-{}", i + 1)));
                s.spawn(move || kubeadm::write_master(layout, i + 1, *pid, kubeadm, &config))
            })
            .collect();
        jobs.into_iter()
            .map(|j| j.join().unwrap_or(Ok(())))
            .collect()
    });
    for r in results {
        r?;
    }
    if opts.cert_expiry_secs <= 0 {
        progress(
            "re-dating every leaf certificate with openssl to expire in the past (kubeadm cannot)",
        );
        for name in layout.master_names() {
            redate::redate_master(
                &layout.kube_dir(&name),
                &layout.cas_dir(),
                opts.cert_expiry_secs,
            )?;
        }
    }
    let admin = layout.dir.join("admin.conf");
    fs::copy(layout.kube_dir("master-1").join("admin.conf"), &admin)
        .map_err(io("copy admin.conf into the lab directory"))?;
    hosts::install_lab_tools(layout, bins)?;

    for (i, name) in layout.master_names().iter().enumerate() {
        progress(&format!("starting {name}'s kubelet stand-in"));
        let mut kubelet = hosts::nsenter(sshd_pids[i]);
        kubelet
            .arg(&opts.remedy_exe)
            .args(["lab", "kubelet", "--node", name, "--lab-dir"])
            .arg(&layout.dir);
        process::spawn(
            &layout.dir,
            &format!("{name}-kubelet"),
            kubelet,
            &layout.logs().join(name).join("kubelet.log"),
        )
        .map_err(io(format!("start the kubelet stand-in of {name}")))?;
    }
    for (i, name) in layout.lb_names().iter().enumerate() {
        let addr = layout.lb_addr(i + 1);
        progress(&format!(
            "starting {name}: sshd on {addr}:{SSH_PORT}, HAProxy on {addr}:6443"
        ));
        hosts::start_sshd(layout, name, addr, &[])?;
        let cfg = layout.host_dir(name).join("haproxy.cfg");
        fs::write(&cfg, hosts::haproxy_config(layout, i + 1)).map_err(io("write haproxy.cfg"))?;
        let mut haproxy = Command::new("haproxy");
        haproxy.arg("-db").arg("-f").arg(&cfg);
        process::spawn(
            &layout.dir,
            &format!("{name}-haproxy"),
            haproxy,
            &layout.logs().join(name).join("haproxy.log"),
        )
        .map_err(io(format!("start haproxy of {name}")))?;
    }
    fs::write(layout.inventory(), hosts::inventory(layout)).map_err(io("write inventory.yaml"))?;

    if opts.cert_expiry_secs <= 0 {
        // Expired certificates: etcd members cannot reach each other, so
        // nothing becomes ready until they are renewed. Wait until the
        // kubelets started every pod once.
        progress("certificates are already expired: etcd and the API servers will not be ready until they are renewed");
        for name in layout.master_names() {
            wait_started(layout, &name, Duration::from_secs(60))?;
        }
        return Ok(());
    }
    progress("waiting for etcd and the API servers to be ready");
    let wait = Duration::from_secs(180);
    for (i, name) in layout.master_names().iter().enumerate() {
        let url = format!("https://{}:6443/readyz", layout.master_addr(i + 1));
        if !wait_https_ok(&url, wait) {
            return Err(not_ready(layout, name, "kube-apiserver", &url, wait));
        }
    }
    for (i, name) in layout.lb_names().iter().enumerate() {
        let url = format!("https://{}:6443/readyz", layout.lb_addr(i + 1));
        if !wait_https_ok(&url, Duration::from_secs(30)) {
            return Err(LabError::NotReady {
                what: format!("the HAProxy frontend of {name} ({url})"),
                secs: 30,
                log: layout
                    .logs()
                    .join(name)
                    .join("haproxy.log")
                    .display()
                    .to_string(),
            });
        }
    }
    progress("the kubeadm:cluster-admins binding and the masters' Node objects");
    kubeadm::bootstrap(layout, &kubectl, &layout.kube_dir("master-1"))?;
    progress("waiting for the controller-managers and schedulers to be healthy");
    for (i, name) in layout.master_names().iter().enumerate() {
        let addr = layout.master_addr(i + 1);
        for (pod, port) in [
            (
                "kube-controller-manager",
                crate::layout::CONTROLLER_MANAGER_PORT,
            ),
            ("kube-scheduler", crate::layout::SCHEDULER_PORT),
        ] {
            let url = format!("https://{addr}:{port}/healthz");
            if !wait_https_ok(&url, Duration::from_secs(60)) {
                return Err(not_ready(layout, name, pod, &url, Duration::from_secs(60)));
            }
        }
    }
    Ok(())
}

/// A component that did not answer: where its logs are.
fn not_ready(layout: &Layout, host: &str, pod: &str, url: &str, waited: Duration) -> LabError {
    LabError::NotReady {
        what: format!("{pod} of {host} ({url})"),
        secs: waited.as_secs(),
        log: format!(
            "`crictl ps -a` and `crictl logs` on {host}, or {}",
            layout.host_dir(host).join("var-log-pods").display()
        ),
    }
}

/// Until the kubelet of `host` has started each of its pods at least once.
fn wait_started(layout: &Layout, host: &str, timeout: Duration) -> Result<(), LabError> {
    let dir = layout.host_dir(host).join("var-lib-kubelet/pods");
    let deadline = Instant::now() + timeout;
    loop {
        let pods = crate::pod_state::load_all(&dir);
        if pods.len() >= 4 && pods.iter().all(|p| !p.containers.is_empty()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(LabError::NotReady {
                what: format!("the static pods of {host}"),
                secs: timeout.as_secs(),
                log: layout
                    .logs()
                    .join(host)
                    .join("kubelet.log")
                    .display()
                    .to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Stop everything a lab started: kubelet stand-ins first (so they restart
/// nothing), then the rest; again until nothing recorded is alive.
pub fn stop(dir: &Path) -> Vec<(Recorded, Stopped)> {
    let mut all = Vec::new();
    for rec in process::recorded(dir)
        .into_iter()
        .filter(|r| r.name.ends_with("-kubelet"))
    {
        let outcome = process::stop(&rec, Duration::from_secs(15));
        let _ = fs::remove_file(process::pid_dir(dir).join(format!("{}.pid", rec.name)));
        all.push((rec, outcome));
    }
    for _ in 0..3 {
        let round = process::stop_all(dir, Duration::from_secs(5));
        if round.is_empty() {
            break;
        }
        all.extend(round);
    }
    all
}

/// `-1h`, `1d`, `365d` → seconds (negative for the past).
pub fn parse_signed_duration(text: &str) -> Option<i64> {
    match text.strip_prefix('-') {
        Some(rest) => remedy_dsl::param::parse_duration(rest).map(|s| -s),
        None => remedy_dsl::param::parse_duration(text),
    }
}
