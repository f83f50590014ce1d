//! A real OpenSSH server for tests: its own address, host key, client key and
//! config in a temp dir; stopped (with its session processes) when dropped,
//! even when the test fails.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestSshd {
    pub dir: tempfile::TempDir,
    pub addr: Ipv4Addr,
    pub port: u16,
    child: Child,
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
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let port = TcpListener::bind((addr, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "ListenAddress {addr}:{port}\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\nPubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nUseDNS no\nAllowTcpForwarding yes\nAllowStreamLocalForwarding yes\nMaxStartups 200:30:400\nMaxSessions 64\nSubsystem sftp internal-sftp\n{extra}\n",
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("/usr/sbin/sshd (openssh-server) is needed: run scripts/setup");
        let s = TestSshd {
            dir,
            addr,
            port,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(
            &SocketAddr::from((addr, port)),
            Duration::from_millis(100),
        )
        .is_err()
        {
            assert!(Instant::now() < deadline, "sshd did not start: {}", s.log());
            std::thread::sleep(Duration::from_millis(30));
        }
        s
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
