//! A real HAProxy for tests: its own temp dir, a TCP frontend on a
//! loopback address the test picks, one backend `k8s` whose servers point at
//! small tokio listeners the test starts ([`Upstream`]), fast health checks,
//! and three runtime-API sockets (unix admin, unix `level user`, TCP admin).
//! Killed by PID when dropped, even when the test panics.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

pub struct TestHaproxy {
    pub dir: tempfile::TempDir,
    /// `level admin`, mode 600.
    pub admin_socket: PathBuf,
    /// `level user`: reads only.
    pub user_socket: PathBuf,
    /// `ipv4@ADDR:PORT level admin`.
    pub admin_tcp: (Ipv4Addr, u16),
    /// Where clients connect to reach the backend.
    pub frontend: SocketAddr,
    child: Child,
}

/// A free TCP port on `addr` (closed again: HAProxy binds it next).
pub fn free_port(addr: Ipv4Addr) -> u16 {
    TcpListener::bind((addr, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TestHaproxy {
    /// Start HAProxy on `addr` with backend `k8s` of `servers`
    /// (name, address, weight); returns once the admin socket answers.
    pub fn start(addr: Ipv4Addr, servers: &[(&str, SocketAddr, u32)]) -> TestHaproxy {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let admin_socket = d.join("admin.sock");
        let user_socket = d.join("user.sock");
        let admin_tcp = (addr, free_port(addr));
        let frontend = SocketAddr::from((addr, free_port(addr)));
        let mut config = format!(
            "global\n\
             \x20   stats socket {admin} mode 600 level admin\n\
             \x20   stats socket {user} mode 600 level user\n\
             \x20   stats socket ipv4@{addr}:{tcp_port} level admin\n\
             defaults\n\
             \x20   mode tcp\n\
             \x20   timeout connect 1s\n\
             \x20   timeout client 60s\n\
             \x20   timeout server 60s\n\
             \x20   timeout check 1s\n\
             frontend k8s\n\
             \x20   bind {frontend}\n\
             \x20   default_backend k8s\n\
             backend k8s\n\
             \x20   option tcp-check\n\
             \x20   default-server inter 200ms fall 2 rise 2\n",
            admin = admin_socket.display(),
            user = user_socket.display(),
            tcp_port = admin_tcp.1,
        );
        for (name, server, weight) in servers {
            config.push_str(&format!(
                "    server {name} {server} check weight {weight}\n"
            ));
        }
        std::fs::write(d.join("haproxy.cfg"), config).unwrap();
        let log = std::fs::File::create(d.join("haproxy.log")).unwrap();
        let child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(d.join("haproxy.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("haproxy is needed: run scripts/setup");
        let mut h = TestHaproxy {
            dir,
            admin_socket,
            user_socket,
            admin_tcp,
            frontend,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&h.admin_socket).is_err() {
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!("haproxy exited ({status}): {}", h.log());
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not start: {}",
                h.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        h
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    pub fn admin_path(&self) -> String {
        self.admin_socket.display().to_string()
    }
}

impl Drop for TestHaproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stand-in for a kube-apiserver: accepts connections and keeps each open
/// until the other side closes it. Stops when dropped.
pub struct Upstream {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub async fn start(addr: Ipv4Addr) -> Upstream {
        let listener = tokio::net::TcpListener::bind((addr, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        Upstream { addr, task }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address where nothing listens: a server HAProxy will see DOWN.
pub fn nothing_listens(addr: Ipv4Addr) -> SocketAddr {
    SocketAddr::from((addr, free_port(addr)))
}
