//! A real 3-member etcd cluster for one test, with kubeadm-style TLS.
//!
//! Each test gets its own loopback addresses (`127.0.<140+slot>.1..3`), free
//! ports, a CA and certificates made with the `openssl` CLI in a tempdir
//! (server/peer certificates with IP SANs, a PKCS#1 client key like
//! kubeadm's healthcheck-client), and processes that are killed by PID when
//! the fixture drops, panicking test or not. On a panic the members' log
//! tails are printed. The members run the lab's etcd 3.6 (built by
//! scripts/setup, see remedy-lab's `binaries`) unless a test asks for
//! Debian's 3.4 ([`Etcd::Debian34`]) to check an older member;
//! `REMEDY_TEST_ETCD` / `REMEDY_TEST_ETCDCTL` / `REMEDY_TEST_ETCDUTL` choose
//! other binaries.

#![allow(dead_code)] // each test uses a different part of the fixture

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use remedy_etcd::{connect, Member, TcpDialer, Tls};
use remedy_testkit::openssl::openssl_in;

pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which etcd the members run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Etcd {
    /// The lab's etcd 3.6, or `$REMEDY_TEST_ETCD`.
    Lab,
    /// Debian's etcd 3.4 (`/usr/bin/etcd`, package etcd-server), deliberately
    /// older than what Kubernetes 1.31+ documents.
    Debian34,
}

/// `$var`, else the lab's build of `command` (checked against its checksum).
fn binary(var: &str, command: &str) -> String {
    if let Ok(path) = std::env::var(var) {
        return path;
    }
    let bins = remedy_lab::binaries::Binaries::verified().unwrap_or_else(|e| panic!("{e}"));
    let path = bins.path(command).expect("an etcd command");
    path.display().to_string()
}

pub struct EtcdProc {
    pub name: String,
    pub ip: Ipv4Addr,
    pub client_port: u16,
    pub peer_port: u16,
    child: Option<Child>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub members: Vec<EtcdProc>,
    pub tls: Tls,
}

impl Cluster {
    /// Starts 3 members and waits until each answers a health check.
    /// `slot` must differ between tests that run at the same time.
    pub async fn start(slot: u8, quota_backend_bytes: Option<u64>) -> Cluster {
        Cluster::start_with(slot, quota_backend_bytes, Etcd::Lab).await
    }

    /// [`Cluster::start`] with the members running `etcd`.
    pub async fn start_with(slot: u8, quota_backend_bytes: Option<u64>, etcd: Etcd) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let ips: Vec<Ipv4Addr> = (1..=3)
            .map(|i| Ipv4Addr::new(127, 0, 140 + slot, i))
            .collect();
        let tls = make_pki(dir.path(), &ips);
        let members: Vec<EtcdProc> = ips
            .iter()
            .enumerate()
            .map(|(i, ip)| EtcdProc {
                name: format!("etcd-{}", i + 1),
                ip: *ip,
                client_port: free_port(*ip),
                peer_port: free_port(*ip),
                child: None,
            })
            .collect();
        let mut cluster = Cluster { dir, members, tls };
        let initial_cluster = cluster
            .members
            .iter()
            .map(|m| format!("{}=https://{}:{}", m.name, m.ip, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        for i in 0..cluster.members.len() {
            let child = cluster.spawn(i, &initial_cluster, slot, quota_backend_bytes, etcd);
            cluster.members[i].child = Some(child);
        }
        cluster.wait_healthy().await;
        cluster
    }

    fn spawn(
        &self,
        i: usize,
        initial_cluster: &str,
        slot: u8,
        quota: Option<u64>,
        etcd: Etcd,
    ) -> Child {
        let m = &self.members[i];
        let d = self.dir.path();
        let cert = d.join(format!("{}.crt", m.name));
        let key = d.join(format!("{}.key", m.name));
        let ca = d.join("ca.crt");
        let log = fs::File::create(d.join(format!("{}.log", m.name))).expect("log file");
        let client_url = format!("https://{}:{}", m.ip, m.client_port);
        let peer_url = format!("https://{}:{}", m.ip, m.peer_port);
        let program = match etcd {
            Etcd::Lab => binary("REMEDY_TEST_ETCD", "etcd"),
            Etcd::Debian34 => "/usr/bin/etcd".to_string(),
        };
        let mut cmd = Command::new(program);
        cmd.arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(d.join(format!("{}.data", m.name)))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args([
                "--initial-cluster-token",
                &format!("remedy-etcd-test-{slot}"),
            ])
            // Tests run side by side on 2 cores: a longer election timeout keeps
            // a busy machine from deposing the leader mid-test.
            .args(["--election-timeout", "2000"])
            .arg("--client-cert-auth")
            .arg("--trusted-ca-file")
            .arg(&ca)
            .arg("--cert-file")
            .arg(&cert)
            .arg("--key-file")
            .arg(&key)
            .arg("--peer-client-cert-auth")
            .arg("--peer-trusted-ca-file")
            .arg(&ca)
            .arg("--peer-cert-file")
            .arg(&cert)
            .arg("--peer-key-file")
            .arg(&key)
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log);
        if let Some(quota) = quota {
            cmd.arg(format!("--quota-backend-bytes={quota}"));
        }
        // etcd 3.4 refuses to start on architectures other than amd64 (and
        // 3.5 on a few) unless told which one it is running on.
        match std::env::consts::ARCH {
            "x86_64" => {}
            "aarch64" => {
                cmd.env("ETCD_UNSUPPORTED_ARCH", "arm64");
            }
            other => {
                cmd.env("ETCD_UNSUPPORTED_ARCH", other);
            }
        }
        cmd.spawn()
            .expect("etcd is installed (scripts/setup installs both)")
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for i in 0..self.members.len() {
            loop {
                let last_error = match self.try_connect(i, Duration::from_secs(2)).await {
                    Ok(member) => match member.health().await {
                        Ok(_) => break,
                        Err(e) => e.to_string(),
                    },
                    Err(e) => e.to_string(),
                };
                if Instant::now() > deadline {
                    panic!(
                        "{} never became healthy: {last_error}",
                        self.members[i].name
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    pub fn endpoint(&self, i: usize) -> String {
        let m = &self.members[i];
        format!("https://{}:{}", m.ip, m.client_port)
    }

    pub fn client_addr(&self, i: usize) -> SocketAddr {
        let m = &self.members[i];
        SocketAddr::from((m.ip, m.client_port))
    }

    async fn try_connect(
        &self,
        i: usize,
        timeout: Duration,
    ) -> Result<Member, remedy_etcd::EtcdError> {
        connect(
            &self.members[i].name,
            &self.endpoint(i),
            Some(&self.tls),
            Arc::new(TcpDialer),
            timeout,
        )
        .await
    }

    pub async fn connect(&self, i: usize) -> Member {
        self.try_connect(i, OP_TIMEOUT).await.expect("connect")
    }

    pub async fn connect_all(&self) -> Vec<Member> {
        let mut out = Vec::new();
        for i in 0..self.members.len() {
            out.push(self.connect(i).await);
        }
        out
    }

    /// Kills one member (SIGKILL, by PID) and reaps it.
    pub fn stop(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs etcdctl against member `i` (or none, for offline commands).
    pub fn etcdctl(&self, member: Option<usize>, args: &[&str]) -> Output {
        let d = self.dir.path();
        let mut cmd = Command::new(binary("REMEDY_TEST_ETCDCTL", "etcdctl"));
        // etcdctl refuses --endpoints when ETCDCTL_ENDPOINTS is set.
        cmd.env_remove("ETCDCTL_ENDPOINTS").env("ETCDCTL_API", "3");
        if let Some(i) = member {
            cmd.arg(format!("--endpoints={}", self.endpoint(i)))
                .arg(format!("--cacert={}", d.join("ca.crt").display()))
                .arg(format!("--cert={}", d.join("client.crt").display()))
                .arg(format!("--key={}", d.join("client.key").display()));
        }
        cmd.args(args).output().expect("etcdctl is installed")
    }

    /// Runs etcdutl (offline commands: snapshot status, defrag of a stopped
    /// member's data directory).
    pub fn etcdutl(&self, args: &[&str]) -> Output {
        Command::new(binary("REMEDY_TEST_ETCDUTL", "etcdutl"))
            .args(args)
            .output()
            .expect("etcdutl is built (scripts/setup)")
    }

    fn log_tail(&self, name: &str) -> String {
        let text =
            fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.stop(i);
        }
        if std::thread::panicking() {
            for m in &self.members {
                eprintln!("--- {} log tail ---\n{}", m.name, self.log_tail(&m.name));
            }
        }
    }
}

/// A port nobody listens on at `ip` right now.
fn free_port(ip: Ipv4Addr) -> u16 {
    TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .expect("bind a loopback address")
        .port()
}

/// Signs `<name>.csr` with the CA into `<name>.crt`, with these v3 extensions.
fn sign(dir: &Path, name: &str, extensions: &str) {
    let ext = dir.join(format!("{name}.ext"));
    fs::write(&ext, extensions).expect("write extensions");
    openssl_in(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            &format!("0x{:x}", rand_serial(name)),
            "-days",
            "1",
            "-sha256",
            "-extfile",
            ext.to_str().expect("utf-8 path"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

fn rand_serial(name: &str) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(name.as_bytes());
    h.finish() >> 1
}

/// CA, one server+peer certificate per member (IP SAN), and a client
/// certificate whose key is PKCS#1, as kubeadm writes `healthcheck-client.key`.
fn make_pki(dir: &Path, ips: &[Ipv4Addr]) -> Tls {
    openssl_in(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "1",
            "-subj",
            "/CN=etcd-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
        ],
    );
    for (i, ip) in ips.iter().enumerate() {
        let name = format!("etcd-{}", i + 1);
        openssl_in(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        // kubeadm's etcd/server and etcd/peer: both usages, the node's IP and localhost.
        sign(
            dir,
            &name,
            &format!(
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:{name},DNS:localhost,IP:{ip},IP:127.0.0.1\n"
            ),
        );
    }
    openssl_in(
        dir,
        &["genrsa", "-traditional", "-out", "client.key", "2048"],
    );
    openssl_in(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/O=system:masters/CN=kube-etcd-healthcheck-client",
        ],
    );
    sign(
        dir,
        "client",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
    );
    let read = |name: &str| fs::read(dir.join(name)).expect("read PKI file");
    let key_pem = read("client.key");
    assert!(
        String::from_utf8_lossy(&key_pem).starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "the client key must be PKCS#1, like kubeadm's"
    );
    Tls {
        ca_pem: read("ca.crt"),
        cert_pem: read("client.crt"),
        key_pem,
    }
}
