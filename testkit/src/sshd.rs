//! A real OpenSSH server for tests: its own address, host key, client key and
//! config in a temp dir; stopped (with its session processes) when dropped,
//! even when the test fails. [`TestSshd::start_with_sudo_user`] runs it in a
//! mount namespace of its own where one more (unprivileged, passwordless-sudo)
//! user exists: the machine's own /etc is never changed.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestSshd {
    pub dir: tempfile::TempDir,
    pub addr: Ipv4Addr,
    pub port: u16,
    child: Child,
}

/// A uid (and gid) that neither /etc/passwd nor /etc/group uses.
fn free_uid() -> u32 {
    let used: Vec<u32> = ["/etc/passwd", "/etc/group"]
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter_map(|l| l.split(':').nth(2).and_then(|n| n.parse().ok()))
        .collect();
    (61000..65000)
        .find(|u| !used.contains(u))
        .expect("a free uid in 61000..65000")
}

/// A port on `addr` that nothing listens on right now.
fn free_port(addr: Ipv4Addr) -> u16 {
    TcpListener::bind((addr, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen (openssh-client) is needed: run scripts/setup");
    assert!(ok.success());
}

impl TestSshd {
    /// Start sshd on `addr` (a free port is picked); `extra` is appended to its config.
    pub fn start(addr: Ipv4Addr, extra: &str) -> TestSshd {
        let s = TestSshd::spawn(addr, free_port(addr), extra, |_, sshd| sshd);
        s.wait_until_listening()
    }

    /// Like [`TestSshd::start`], but sshd (and so every session it opens)
    /// runs in a private mount namespace whose /etc/passwd, /etc/shadow,
    /// /etc/group and /etc/sudoers.d are copies in the temp dir holding one
    /// more login user, `user`, with `NOPASSWD:ALL` sudo. The user exists only
    /// for this server's sessions, and goes away with it — even when the test
    /// process is killed, as nothing outside the namespace was changed.
    pub fn start_with_sudo_user(addr: Ipv4Addr, extra: &str, user: &str) -> TestSshd {
        let s = TestSshd::spawn(addr, free_port(addr), extra, |d, sshd| {
            let etc = d.join("etc");
            std::fs::create_dir_all(etc.join("sudoers.d")).unwrap();
            let uid = free_uid();
            for (file, line) in [
                (
                    "passwd",
                    format!("{user}:x:{uid}:{uid}::/nonexistent:/bin/sh"),
                ),
                // '*': no password, but not a locked account (sshd refuses locked ones).
                ("shadow", format!("{user}:*:19000:0:99999:7:::")),
                ("group", format!("{user}:x:{uid}:")),
            ] {
                let host = std::fs::read_to_string(Path::new("/etc").join(file)).unwrap();
                let mut text: String = host
                    .lines()
                    .filter(|l| l.split(':').next() != Some(user))
                    .map(|l| format!("{l}\n"))
                    .collect();
                text.push_str(&format!("{line}\n"));
                std::fs::write(etc.join(file), text).unwrap();
            }
            let sudoers = etc.join("sudoers.d").join("test-sudo-user");
            std::fs::write(&sudoers, format!("{user} ALL=(ALL) NOPASSWD:ALL\n")).unwrap();
            std::fs::set_permissions(&sudoers, std::fs::Permissions::from_mode(0o440)).unwrap();
            let binds: String = ["passwd", "shadow", "group", "sudoers.d"]
                .iter()
                .map(|f| format!("mount --bind {} /etc/{f} && ", etc.join(f).display()))
                .collect();
            let mut cmd = Command::new("unshare");
            cmd.args(["-m", "--propagation", "private", "sh", "-c"])
                .arg(format!("{binds}exec \"$0\" \"$@\""))
                .arg(sshd.get_program())
                .args(sshd.get_args());
            cmd
        });
        s.wait_until_listening()
    }

    /// Start sshd inside network namespace `netns` (made by the test) on
    /// `addr:port`; ready once it says it listens.
    pub fn start_in_netns(netns: &str, addr: Ipv4Addr, port: u16, extra: &str) -> TestSshd {
        // `ip netns exec` execs sshd itself: the child is sshd.
        let s = TestSshd::spawn(addr, port, extra, |_, sshd| {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", netns])
                .arg(sshd.get_program())
                .args(sshd.get_args());
            cmd
        });
        s.wait_until("it says it listens", |s| {
            s.log().contains("Server listening on")
        })
    }

    /// Start `sshd` (a command `wrap` may put inside another) on `addr:port`.
    fn spawn(
        addr: Ipv4Addr,
        port: u16,
        extra: &str,
        wrap: impl FnOnce(&Path, Command) -> Command,
    ) -> TestSshd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let config = format!(
            "ListenAddress {addr}:{port}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\nPubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nUseDNS no\nAllowTcpForwarding yes\nAllowStreamLocalForwarding yes\nMaxStartups 200:30:400\nMaxSessions 64\nSubsystem sftp internal-sftp\n{extra}\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let mut sshd = Command::new("/usr/sbin/sshd");
        sshd.args(["-D", "-e", "-f"]).arg(d.join("sshd_config"));
        let child = wrap(d, sshd)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("/usr/sbin/sshd (openssh-server) is needed: run scripts/setup");
        TestSshd {
            dir,
            addr,
            port,
            child,
        }
    }

    fn wait_until_listening(self) -> TestSshd {
        let addr = SocketAddr::from((self.addr, self.port));
        self.wait_until("it accepts connections", |_| {
            TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok()
        })
    }

    /// Until `ready`; fails at once if sshd exits. Generous: a loaded 2-core
    /// machine can take seconds to start it.
    fn wait_until(mut self, what: &str, ready: impl Fn(&TestSshd) -> bool) -> TestSshd {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(&self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("sshd exited ({status}) before {what}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd: not within 60 s: {what}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
        self
    }

    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_key")
    }

    /// The known_hosts line for this server.
    pub fn known_hosts_line(&self) -> String {
        let public = std::fs::read_to_string(self.dir.path().join("host_key.pub")).unwrap();
        let mut parts = public.split_whitespace();
        format!(
            "[{}]:{} {} {}\n",
            self.addr,
            self.port,
            parts.next().unwrap(),
            parts.next().unwrap()
        )
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// Kill the per-connection processes (a dropped connection, as seen by clients).
    pub fn kill_sessions(&self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for TestSshd {
    fn drop(&mut self) {
        self.kill_sessions();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
