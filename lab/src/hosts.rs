//! The lab's hosts: each master and load balancer an OpenSSH server in its
//! own mount and UTS namespace (its own hostname and tree bound over the real
//! paths), the tools each master has on its PATH, HAProxy's configuration,
//! the inventory `lab up` writes, and the waits on what they serve.

use crate::binaries::Binaries;
use crate::lab::{io, LabError};
use crate::layout::{Layout, MASKED_FILES, SSH_PORT};
use crate::process::{self, Recorded};
use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

pub(crate) fn run_quiet(cmd: &mut Command, what: &str) -> Result<(), LabError> {
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

pub(crate) fn keygen(path: &Path, comment: &str) -> Result<(), LabError> {
    let _ = fs::remove_file(path);
    let _ = fs::remove_file(path.with_extension("pub"));
    run_quiet(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(path),
        "ssh-keygen",
    )
}

pub(crate) fn sshd_config(layout: &Layout, host: &str, addr: Ipv4Addr) -> String {
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
pub(crate) fn start_sshd(
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
pub(crate) fn haproxy_config(layout: &Layout, i: usize) -> String {
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

pub(crate) fn inventory(layout: &Layout) -> String {
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
pub(crate) fn wait_https_ok(url: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if answers_200(url, Duration::from_secs(2)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    false
}

/// `text` as one single-quoted shell word.
fn sh_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Write an executable shell wrapper at `path` that runs `target` with its
/// arguments (the process becomes `target`: `exec`).
fn wrapper(path: &Path, comment: &str, prelude: &str, target: &str) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt as _;
    let text = format!("#!/bin/sh\n# {comment}\n{prelude}exec {target} \"$@\"\n");
    fs::write(path, text).map_err(io(format!("write {}", path.display())))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .map_err(io(format!("chmod {}", path.display())))
}

/// A master's `/usr/local/bin`: the real binaries (wrappers that exec the
/// verified cache, so nothing written there can change the cache) and the
/// lab's `crictl`, which answers from the kubelet stand-in's records.
pub(crate) fn install_master_tools(
    dir: &Path,
    bins: &Binaries,
    remedy_exe: &Path,
) -> Result<(), LabError> {
    fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    for (name, path) in bins.all() {
        wrapper(
            &dir.join(name),
            &format!("remedy lab: the real {name}, built from source by scripts/lab-binaries"),
            "",
            &sh_quote(&path.display().to_string()),
        )?;
    }
    wrapper(
        &dir.join("crictl"),
        "remedy lab: a crictl stand-in reading the kubelet stand-in's records (ps, logs, inspect)",
        "",
        &format!("{} lab crictl", sh_quote(&remedy_exe.display().to_string())),
    )
}

/// `<lab>/bin`: kubectl (defaulting to the lab's admin.conf), etcdctl, etcdutl
/// and kubeadm for the machine the lab runs on.
pub(crate) fn install_lab_tools(layout: &Layout, bins: &Binaries) -> Result<(), LabError> {
    let dir = layout.dir.join("bin");
    fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
    for (name, path) in bins.all() {
        if !["kubectl", "kubeadm", "etcdctl", "etcdutl"].contains(&name) {
            continue;
        }
        let prelude = if name == "kubectl" {
            format!(
                "[ -n \"$KUBECONFIG\" ] || KUBECONFIG={}; export KUBECONFIG\n",
                sh_quote(&layout.dir.join("admin.conf").display().to_string())
            )
        } else {
            String::new()
        };
        wrapper(
            &dir.join(name),
            &format!("remedy lab: the real {name}"),
            &prelude,
            &sh_quote(&path.display().to_string()),
        )?;
    }
    Ok(())
}

/// Whether `url` answers 200 right now (one try, up to `timeout`).
pub(crate) fn answers_200(url: &str, timeout: Duration) -> bool {
    process::without_proxy(&mut Command::new("curl"))
        .args(["-sk", "--max-time"])
        .arg(format!("{:.1}", timeout.as_secs_f64().max(0.1)))
        .args(["-o", "/dev/null", "-w", "%{http_code}", url])
        .output()
        .map(|o| o.stdout == b"200")
        .unwrap_or(false)
}

/// A command that will run in the mount and UTS namespaces of `pid` (a
/// host's sshd): what that host's own processes see.
pub(crate) fn nsenter(pid: u32) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &pid.to_string(), "-m", "-u", "--"]);
    cmd
}
