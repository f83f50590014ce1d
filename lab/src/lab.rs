//! `remedy lab up | status | down | break`: building, inspecting, stopping and
//! breaking a practice control plane.
//!
//! Per master: an sshd in its own mount and UTS namespace (its own hostname,
//! `/etc/kubernetes`, `/var/lib/etcd`, `/var/lib/kubelet`, `/var/lib/remedy`,
//! `/var/log/pods` and an empty `/root`), joined by a kubelet stand-in that
//! starts the static pods from the manifests — a real etcd, and stand-ins for
//! the API server, controller-manager and scheduler. An lb host (sshd at the
//! VIP) and a real HAProxy balancing the masters' :6443 complete it.
//! Every process started is recorded (`process`), so `down` works even after
//! a crashed `up`.

use crate::layout::{Layout, HOST_MOUNTS, MASKED_FILES, SSH_PORT};
use crate::pki::{self, Cas, Leaf, Node, NodeFiles, PkiError};
use crate::process::{self, Recorded, Stopped};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Faults `remedy lab break` can inject.
pub const FAULTS: &[(&str, &str)] = &[
    ("cert-expired", "re-issue the host's leaf certificates (and kubeconfigs) as expired an hour ago; the running API server keeps serving the old one until restarted"),
    ("etcd-member-down", "put a flag etcd rejects into the host's etcd manifest: the member crash-loops until the manifest is fixed"),
    ("lb-backend-down", "put the host's server in HAProxy's backend into maintenance"),
    ("etcd-nospace", "write the same few keys over and over until etcd refuses writes with NOSPACE, as when compaction stopped (the lab must be up with a small --etcd-quota, e.g. 16MiB)"),
    ("manifest-stranded", "move kube-scheduler.yaml out of the manifests directory into /var/lib/remedy/staging, as a restart interrupted half-way would"),
];

/// Debian packages the lab needs, for the one message a user sees if any is missing.
const APT: &str = "apt-get install -y --no-install-recommends openssh-server openssh-client etcd-server haproxy openssl curl util-linux (or run scripts/setup)";

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
    Pki(#[from] PkiError),
    #[error("{what} did not come up within {secs}s; look at {log}\n  the lab was stopped again")]
    NotReady {
        what: String,
        secs: u64,
        log: String,
    },
    #[error("unknown fault `{0}`; known: {known}", known = fault_names())]
    UnknownFault(String),
    #[error("unknown lab host `{name}`; this lab has {known}")]
    UnknownHost { name: String, known: String },
    #[error("{0}")]
    Fault(String),
}

fn fault_names() -> String {
    FAULTS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn dir_flag(dir: &str) -> String {
    if Path::new(dir) == crate::layout::default_dir() {
        String::new()
    } else {
        format!(" --dir {dir}")
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
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
    /// The `remedy` binary (runs the kubelet and API-server stand-ins).
    pub remedy_exe: PathBuf,
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
        "etcd",
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

fn run_quiet(cmd: &mut Command, what: &str) -> Result<(), LabError> {
    let out = cmd.output().map_err(io(what))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(LabError::Fault(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn keygen(path: &Path, comment: &str) -> Result<(), LabError> {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    run_quiet(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
        "ssh-keygen",
    )
}

fn sshd_config(layout: &Layout, host: &str, addr: Ipv4Addr) -> String {
    let h = layout.host_dir(host);
    format!(
        "# remedy lab: sshd for {host}\nListenAddress {addr}:{SSH_PORT}\nHostKey {hk}\nPidFile {h}/sshd.pid\nAuthorizedKeysFile {ak}\nPubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nUseDNS no\nAllowTcpForwarding yes\nAllowStreamLocalForwarding yes\nStreamLocalBindUnlink yes\nMaxStartups 200:30:400\nMaxSessions 64\nSubsystem sftp internal-sftp\n",
        hk = h.join("ssh_host_ed25519_key").display(),
        h = h.display(),
        ak = layout.ssh_dir().join("authorized_keys").display(),
    )
}

/// Start `host`'s sshd in a new mount + UTS namespace with its own tree bound
/// over the real paths. The recorded PID is sshd's (unshare and sh exec).
fn start_sshd(
    layout: &Layout,
    host: &str,
    addr: Ipv4Addr,
    mounts: &[(&str, &str)],
) -> Result<Recorded, LabError> {
    let h = layout.host_dir(host);
    let mut script = format!("hostname {host}");
    for (target, name) in mounts {
        let src = h.join(name);
        fs::create_dir_all(&src).map_err(io(format!("create {}", src.display())))?;
        fs::create_dir_all(target).map_err(io(format!("create mount point {target}")))?;
        script.push_str(&format!(" && mount --bind '{}' '{target}'", src.display()));
    }
    let empty = h.join("empty");
    fs::write(&empty, "").map_err(io(format!("create {}", empty.display())))?;
    for file in MASKED_FILES.iter().filter(|f| Path::new(f).exists()) {
        script.push_str(&format!(" && mount --bind '{}' '{file}'", empty.display()));
    }
    script.push_str(&format!(
        " && exec /usr/sbin/sshd -D -e -f '{}'",
        h.join("sshd_config").display()
    ));
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "-u", "--propagation", "private", "sh", "-c", &script]);
    let log = layout.logs().join(host).join("sshd.log");
    let rec = process::spawn(&layout.dir, &format!("{host}-sshd"), cmd, &log)
        .map_err(io(format!("start sshd for {host}")))?;
    // Our sshd must be the one answering: alive, and greeting with an SSH
    // banner (something else listening there would accept TCP too).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(rec.alive() && speaks_ssh(SocketAddr::from((addr, SSH_PORT)))) {
        if !rec.alive() || Instant::now() > deadline {
            let why = if rec.alive() {
                ""
            } else {
                " (it exited: is something else using that address?)"
            };
            return Err(LabError::NotReady {
                what: format!("sshd of {host} on {addr}:{SSH_PORT}{why}"),
                secs: 10,
                log: log.display().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Once more after it settled: a bind failure makes sshd exit right away.
    std::thread::sleep(Duration::from_millis(100));
    if !rec.alive() {
        return Err(LabError::NotReady { what: format!("sshd of {host} on {addr}:{SSH_PORT} (it exited: is something else using that address?)"), secs: 10, log: log.display().to_string() });
    }
    Ok(rec)
}

/// Something at `addr` greets with an SSH identification line.
fn speaks_ssh(addr: SocketAddr) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).is_ok() && &buf == b"SSH-"
}

/// LB `i`'s HAProxy: every master behind `lb_addr(i):6443`, an admin socket.
fn haproxy_config(layout: &Layout, i: usize) -> String {
    let mut servers = String::new();
    for i in 1..=layout.masters {
        servers.push_str(&format!(
            "  server master-{i} {}:6443 check\n",
            layout.master_addr(i)
        ));
    }
    format!(
        "# remedy lab: the load balancer in front of the masters' API servers\nglobal\n  stats socket {sock} mode 600 level admin\n  stats timeout 30s\n\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 10m\n  timeout server 10m\n  default-server inter 1s fall 2 rise 2\n\nfrontend kube-apiserver\n  bind {vip}:6443\n  default_backend kube-apiserver\n\nbackend kube-apiserver\n  option tcp-check\n  balance roundrobin\n{servers}",
        sock = layout.lb_socket(i).display(),
        vip = layout.lb_addr(i),
    )
}

fn inventory(layout: &Layout) -> String {
    let mut hosts = String::new();
    for (i, name) in layout.master_names().iter().enumerate() {
        let addr = layout.master_addr(i + 1);
        hosts.push_str(&format!("  {name}: {{ address: {addr}, port: {SSH_PORT}, groups: [masters, etcd], vars: {{ node_ip: {addr} }} }}\n"));
    }
    // Masters need no haproxy_server: HAProxy's servers carry their names.
    for (i, name) in layout.lb_names().iter().enumerate() {
        hosts.push_str(&format!(
            "  {name}: {{ address: {addr}, port: {SSH_PORT}, groups: [lbs], vars: {{ haproxy_socket: {sock}, haproxy_backend: kube-apiserver }} }}\n",
            addr = layout.lb_addr(i + 1),
            sock = layout.lb_socket(i + 1).display()
        ));
    }
    format!(
        "# Written by `remedy lab up`: the lab's masters and load balancer.\n# Use it with `--inventory lab` (the default lab) or `--inventory {inv}`.\n# A practice cluster: runs need no approval here (production inventories say who approves).\napproval: none\nssh:\n  user: root\n  identity_file: {key}\n  known_hosts: {kh}\n  connect_timeout: 10s\nvars:\n  lab_dir: {dir}\n  vip: \"{vip}\"\nhosts:\n{hosts}",
        inv = layout.inventory().display(),
        key = layout.client_key().display(),
        kh = layout.known_hosts().display(),
        dir = layout.dir.display(),
        vip = layout.vip(),
    )
}

/// Wait until `url` answers 200 (`curl -k`: the lab's CA is not the system's).
fn wait_https_ok(url: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let ok = Command::new("curl")
            .args([
                "-sk",
                "--max-time",
                "2",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                url,
            ])
            .output()
            .map(|o| o.stdout == b"200")
            .unwrap_or(false);
        if ok {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

/// Build and start a lab. `progress` gets one line per stage.
pub fn up(opts: &UpOptions, progress: &mut dyn FnMut(&str)) -> Result<LabState, LabError> {
    check_prerequisites()?;
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
    };
    // lab.json first: from here on `down` knows this is a lab.
    fs::write(
        layout.state_file(),
        serde_json::to_string_pretty(&state).unwrap_or_default(),
    )
    .map_err(io("write lab.json"))?;
    let result = start(&layout, opts, progress);
    if let Err(e) = result {
        stop(&layout.dir);
        return Err(e);
    }
    Ok(state)
}

fn start(
    layout: &Layout,
    opts: &UpOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<(), LabError> {
    keygen(&layout.client_key(), "remedy-lab")?;
    fs::copy(
        layout.client_key().with_extension("pub"),
        layout.ssh_dir().join("authorized_keys"),
    )
    .map_err(io("write authorized_keys"))?;

    progress(&format!(
        "making a kubeadm-layout PKI for {} masters with openssl",
        layout.masters
    ));
    let cas = Cas::create(&layout.cas_dir())?;
    let nodes: Vec<Node> = (1..=layout.masters)
        .map(|i| Node {
            name: format!("master-{i}"),
            ip: IpAddr::V4(layout.master_addr(i)),
            extra_sans: vec![IpAddr::V4(layout.vip())],
        })
        .collect();
    let kube_dirs: Vec<PathBuf> = layout
        .master_names()
        .iter()
        .map(|n| layout.kube_dir(n))
        .collect();
    let urls: Vec<String> = (1..=layout.masters)
        .map(|i| format!("https://{}:6443", layout.master_addr(i)))
        .collect();
    let targets: Vec<NodeFiles> = (0..layout.masters)
        .map(|i| NodeFiles {
            kube_dir: &kube_dirs[i],
            node: &nodes[i],
            server_url: &urls[i],
        })
        .collect();
    pki::write_nodes(&cas, &targets, opts.cert_expiry_secs)?;

    let mut known_hosts = String::new();
    let manifest_opts = crate::manifests::Options {
        etcd_quota_bytes: opts.etcd_quota_bytes,
    };
    let etcd = which("etcd").unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
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
        keygen(&h.join("ssh_host_ed25519_key"), name)?;
        fs::write(h.join("sshd_config"), sshd_config(layout, name, *addr))
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

    for (i, name) in layout.master_names().iter().enumerate() {
        let manifests = layout.kube_dir(name).join("manifests");
        fs::create_dir_all(&manifests).map_err(io("create the manifests directory"))?;
        for (file, text) in crate::manifests::for_master(layout, i + 1, &manifest_opts) {
            fs::write(manifests.join(file), text).map_err(io("write a manifest"))?;
        }
        progress(&format!(
            "starting {name}: sshd on {}:{SSH_PORT}, kubelet stand-in",
            layout.master_addr(i + 1)
        ));
        let sshd = start_sshd(layout, name, layout.master_addr(i + 1), HOST_MOUNTS)?;
        let mut kubelet = Command::new("nsenter");
        kubelet
            .args(["-t", &sshd.pid.to_string(), "-m", "-u", "--"])
            .arg(&opts.remedy_exe)
            .args(["lab", "kubelet", "--node", name, "--lab-dir"])
            .arg(&layout.dir)
            .arg("--etcd")
            .arg(&etcd);
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
        start_sshd(layout, name, addr, &[])?;
        let cfg = layout.host_dir(name).join("haproxy.cfg");
        fs::write(&cfg, haproxy_config(layout, i + 1)).map_err(io("write haproxy.cfg"))?;
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
    fs::write(layout.inventory(), inventory(layout)).map_err(io("write inventory.yaml"))?;

    if opts.cert_expiry_secs <= 0 {
        // Expired certificates: etcd members cannot reach each other, so
        // nothing becomes ready until they are renewed. Wait for the API
        // servers to listen, not to be ready.
        progress("certificates are already expired: etcd and the API servers will not be ready until they are renewed");
        for i in 1..=layout.masters {
            let addr = SocketAddr::from((layout.master_addr(i), 6443));
            if !process::wait_for_port(addr, Duration::from_secs(60)) {
                return Err(LabError::NotReady {
                    what: format!("the API server of master-{i} ({addr})"),
                    secs: 60,
                    log: layout
                        .host_dir(&format!("master-{i}"))
                        .join("var-log-pods")
                        .display()
                        .to_string(),
                });
            }
        }
        return Ok(());
    }
    progress("waiting for etcd and the API servers to be ready");
    let wait = Duration::from_secs(90);
    for (i, name) in layout.master_names().iter().enumerate() {
        let url = format!("https://{}:6443/readyz", layout.master_addr(i + 1));
        if !wait_https_ok(&url, wait) {
            return Err(LabError::NotReady {
                what: format!("the API server of {name} ({url})"),
                secs: wait.as_secs(),
                log: layout
                    .host_dir(name)
                    .join("var-log-pods")
                    .display()
                    .to_string(),
            });
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
    Ok(())
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

/// One line of `remedy lab status`.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

pub fn status(dir: &Path) -> Result<(LabState, Vec<Check>), LabError> {
    let state = LabState::load(dir)?;
    let layout = state.layout();
    let mut checks = Vec::new();
    for rec in process::recorded(dir) {
        checks.push(Check {
            what: format!("process {}", rec.name),
            ok: rec.alive(),
            detail: format!("pid {}", rec.pid),
        });
    }
    for (i, name) in layout.master_names().iter().enumerate() {
        let addr = layout.master_addr(i + 1);
        let ssh = process::wait_for_port(
            SocketAddr::from((addr, SSH_PORT)),
            Duration::from_millis(300),
        );
        checks.push(Check {
            what: format!("{name} sshd"),
            ok: ssh,
            detail: format!("{addr}:{SSH_PORT}"),
        });
        let url = format!("https://{addr}:6443/readyz");
        checks.push(Check {
            what: format!("{name} kube-apiserver /readyz"),
            ok: wait_https_ok(&url, Duration::from_millis(500)),
            detail: url,
        });
        let etcd =
            process::wait_for_port(SocketAddr::from((addr, 2379)), Duration::from_millis(300));
        checks.push(Check {
            what: format!("{name} etcd"),
            ok: etcd,
            detail: format!("{addr}:2379"),
        });
    }
    for (i, name) in layout.lb_names().iter().enumerate() {
        let url = format!("https://{}:6443/readyz", layout.lb_addr(i + 1));
        checks.push(Check {
            what: format!("{name} HAProxy frontend /readyz"),
            ok: wait_https_ok(&url, Duration::from_millis(500)),
            detail: url,
        });
    }
    Ok((state, checks))
}

/// Send one command to HAProxy's admin socket; its reply.
pub fn haproxy_command(socket: &Path, command: &str) -> Result<String, LabError> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).map_err(io(format!(
        "connect to HAProxy's admin socket {}",
        socket.display()
    )))?;
    s.write_all(format!("{command}\n").as_bytes())
        .map_err(io("write to HAProxy"))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(io("read from HAProxy"))?;
    Ok(reply)
}

/// Inject `fault` on `host` (a master name; default: the last master).
pub fn break_lab(dir: &Path, fault: &str, host: Option<&str>) -> Result<String, LabError> {
    let state = LabState::load(dir)?;
    let layout = state.layout();
    if !FAULTS.iter().any(|(n, _)| *n == fault) {
        return Err(LabError::UnknownFault(fault.to_string()));
    }
    let names = layout.master_names();
    let host = host
        .map(str::to_string)
        .unwrap_or_else(|| names.last().cloned().unwrap_or_default());
    let Some(index) = names.iter().position(|n| *n == host) else {
        return Err(LabError::UnknownHost {
            name: host,
            known: names.join(", "),
        });
    };
    let kube = layout.kube_dir(&host);
    match fault {
        "cert-expired" => {
            let cas = Cas::open(&layout.cas_dir())?;
            let node = Node {
                name: host.clone(),
                ip: IpAddr::V4(layout.master_addr(index + 1)),
                extra_sans: vec![IpAddr::V4(layout.vip())],
            };
            let url = format!("https://{}:6443", layout.master_addr(index + 1));
            pki::reissue_leaves(&cas, &kube, &node, &url, -3600, &Leaf::ALL)?;
            Ok(format!("{host}: every leaf certificate and kubeconfig now expired an hour ago (the running API server still serves the old certificate until it restarts)"))
        }
        "etcd-member-down" => {
            let path = kube.join("manifests/etcd.yaml");
            let text = fs::read_to_string(&path).map_err(io(format!("read {}", path.display())))?;
            if text.contains("--lab-fault=") {
                return Ok(format!("{host}: etcd is already broken"));
            }
            let broken = text.replacen(
                "    - etcd\n",
                "    - etcd\n    - --lab-fault=member-down\n",
                1,
            );
            fs::write(&path, broken).map_err(io(format!("write {}", path.display())))?;
            Ok(format!("{host}: etcd's manifest now has a flag etcd rejects (--lab-fault=member-down); the member crash-loops until it is removed"))
        }
        "lb-backend-down" => {
            for i in 1..=layout.lbs {
                let reply = haproxy_command(
                    &layout.lb_socket(i),
                    &format!("set server kube-apiserver/{host} state maint"),
                )?;
                if !reply.trim().is_empty() {
                    return Err(LabError::Fault(format!("HAProxy said: {}", reply.trim())));
                }
            }
            Ok(format!(
                "{host}: in maintenance in HAProxy's backend kube-apiserver on {}",
                layout.lb_names().join(", ")
            ))
        }
        "etcd-nospace" => {
            let Some(quota) = state.etcd_quota_bytes else {
                return Err(LabError::Fault(
                    "etcd runs with its default 2 GiB quota here; start the lab with a small one (`remedy lab up --etcd-quota 16MiB`) to rehearse NOSPACE".into(),
                ));
            };
            let etcdctl = which("etcdctl").ok_or_else(|| {
                LabError::Fault(format!("etcdctl is not installed: {APT} etcd-client"))
            })?;
            let pki = kube.join("pki");
            let endpoint = format!("https://{}:2379", layout.master_addr(index + 1));
            // 512 KiB values until etcd says the space is exceeded.
            let value = "x".repeat(512 * 1024);
            let limit = quota / (512 * 1024) * 4 + 64;
            for i in 0..limit {
                let mut child = std::process::Command::new(&etcdctl)
                    .env("ETCDCTL_API", "3")
                    .arg("--endpoints")
                    .arg(&endpoint)
                    .arg("--cacert")
                    .arg(pki.join("etcd/ca.crt"))
                    .arg("--cert")
                    .arg(pki.join("etcd/healthcheck-client.crt"))
                    .arg("--key")
                    .arg(pki.join("etcd/healthcheck-client.key"))
                    .arg("put")
                    // A few keys written over and over: history fills the
                    // quota, as when compaction stopped (what
                    // etcd-nospace-recover's compaction gives back).
                    .arg(format!("/lab/nospace/{}", i % 4))
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .map_err(io("run etcdctl".to_string()))?;
                if let Some(mut stdin) = child.stdin.take() {
                    use std::io::Write as _;
                    let _ = stdin.write_all(value.as_bytes());
                }
                let out = child
                    .wait_with_output()
                    .map_err(io("run etcdctl".to_string()))?;
                let err = String::from_utf8_lossy(&out.stderr);
                if err.contains("database space exceeded") {
                    return Ok(format!("{host}: etcd is full after {i} writes of 512 KiB: writes now fail with NOSPACE and the alarm is raised"));
                }
                if !out.status.success() {
                    return Err(LabError::Fault(format!(
                        "etcdctl put failed: {}",
                        err.trim()
                    )));
                }
            }
            Err(LabError::Fault(format!("etcd still accepts writes after {limit} writes of 512 KiB; is the quota {quota} bytes in force?")))
        }
        "manifest-stranded" => {
            let from = kube.join("manifests/kube-scheduler.yaml");
            let staging = layout.host_dir(&host).join("var-lib-remedy/staging");
            fs::create_dir_all(&staging).map_err(io("create the staging directory"))?;
            fs::rename(&from, staging.join("kube-scheduler.yaml"))
                .map_err(io(format!("move {}", from.display())))?;
            Ok(format!("{host}: kube-scheduler.yaml moved to /var/lib/remedy/staging (the scheduler stops within seconds)"))
        }
        _ => Err(LabError::UnknownFault(fault.to_string())),
    }
}

/// `-1h`, `1d`, `365d` → seconds (negative for the past).
pub fn parse_signed_duration(text: &str) -> Option<i64> {
    match text.strip_prefix('-') {
        Some(rest) => remedy_dsl::param::parse_duration(rest).map(|s| -s),
        None => remedy_dsl::param::parse_duration(text),
    }
}
