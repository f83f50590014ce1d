//! Stand-ins for kube-apiserver, kube-controller-manager and kube-scheduler,
//! run by the kubelet stand-in as `remedy lab pod <component> <flags…>`.
//!
//! What they mimic, as a runbook can observe it:
//! - they take the component's real flags (the lab's manifests pass kubeadm's)
//!   and ignore the hundreds they do not use;
//! - they serve HTTPS (TLS 1.2 and 1.3) on `--bind-address`:`--secure-port`;
//!   the API server with `--tls-cert-file`/`--tls-private-key-file` (PKCS#1
//!   keys as kubeadm writes them, PKCS#8 and SEC1 too), the other two with a
//!   self-signed certificate made in memory, as the real ones do without one;
//! - `/healthz`, `/livez` answer `ok`; the API server's `/readyz` answers `ok`
//!   only while one of `--etcd-servers` reports `{"health":"true"}` on
//!   `/health` over mutual TLS (`--etcd-cafile`, `--etcd-certfile`,
//!   `--etcd-keyfile`), otherwise 500 `[-]etcd failed: <reason>`;
//!   `/version` says v1.33.0;
//! - the serving certificate is read once, at start: a renewed certificate is
//!   served only after a restart (which is what kubeadm's documentation asks
//!   for after `kubeadm certs renew`; note that the real API server also
//!   reloads `--tls-cert-file` when the file changes, this one does not);
//! - SIGTERM stops them; a port already in use is a clear error.
//!
//! Where they differ: there is no API. Every other path is 404 (the real server
//! answers 403 to anonymous requests), nothing is authenticated, `/healthz` and
//! `/livez` do not look at etcd, connections are HTTP/1.1 only and closed after
//! one response. The controller-manager and scheduler do nothing but answer
//! their health endpoints.
//!
//! Faults for rehearsals are files in `$REMEDY_LAB_FAULTS_DIR` (default
//! `/var/lib/kubelet/lab-faults`): `<component>-unready` makes the readiness
//! (for the controller-manager and scheduler: every health) endpoint fail while
//! it exists; `<component>-crash` makes the component exit with an error at
//! start, so the kubelet crash-loops it.

use crate::kubelet::{log, sha256_hex};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use rustls::{StreamOwned, SupportedProtocolVersion};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The components this module stands in for (what `command[0]` says).
pub const COMPONENTS: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

const DEFAULT_FAULTS_DIR: &str = "/var/lib/kubelet/lab-faults";
/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// A client that sends nothing (a TCP health check) must not hold a thread.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// The API server's etcd check: per-request timeout, and how long a verdict
/// is reused so a burst of probes does not become a burst of etcd requests.
const ETCD_TIMEOUT: Duration = Duration::from_secs(2);
const ETCD_VERDICT_TTL: Duration = Duration::from_secs(1);
/// Request heads larger than this are refused (real clients send < 1 KiB).
const MAX_HEAD: usize = 16 * 1024;
const VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12, &rustls::version::TLS13];

/// Why a stand-in could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum StandinError {
    /// No component named.
    #[error("usage: remedy lab pod <{}> [flags…]", COMPONENTS.join("|"))]
    Usage,
    /// A component the lab has no stand-in for.
    #[error("no stand-in for {0:?}: the lab has {list}", list = COMPONENTS.join(", "))]
    UnknownComponent(String),
    /// A flag the stand-in needs is absent.
    #[error("{component}: {flag} is required{why}")]
    MissingFlag {
        component: &'static str,
        flag: &'static str,
        why: &'static str,
    },
    /// A flag's value cannot be used.
    #[error("bad value {value:?} for {flag}: {reason}")]
    BadFlag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    /// A certificate or key file cannot be read or holds nothing usable.
    #[error("cannot load the {what} from {}: {reason}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// rustls refused the certificates or keys (e.g. a key that does not
    /// match its certificate).
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The in-memory self-signed certificate could not be made.
    #[error("cannot make a self-signed serving certificate: {0}")]
    SelfSigned(#[from] rcgen::Error),
    /// The listening address is taken or not ours.
    #[error("cannot listen on {addr}: {source} (is another copy of this component, or another lab, running there? `remedy lab status` shows what the lab runs)")]
    Bind { addr: SocketAddr, source: io::Error },
    /// The listener broke.
    #[error("listening on {addr} failed: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    /// A rehearsal fault file asked for a crash.
    #[error("lab fault {}: crashing on purpose (remove the file to let it start)", path.display())]
    CrashFault { path: PathBuf },
    /// SIGTERM/SIGINT handlers could not be installed.
    #[error("cannot install the SIGTERM/SIGINT handler: {0}")]
    Signals(io::Error),
}

/// Run one component until SIGTERM/SIGINT. `argv[0]` is the component's
/// name, the rest its flags.
pub fn run_pod(argv: Vec<String>) -> Result<(), StandinError> {
    let (name, flags) = argv.split_first().ok_or(StandinError::Usage)?;
    let component = COMPONENTS
        .iter()
        .copied()
        .find(|c| c == name)
        .ok_or_else(|| StandinError::UnknownComponent(name.clone()))?;
    let faults = Faults::from_env(component);
    faults.crash_if_asked()?;
    let stop = crate::kubelet::terminate_on_signals().map_err(StandinError::Signals)?;
    let flags = Flags(flags);
    if component == "kube-apiserver" {
        let server = ApiServer::from_flags(&flags, faults)?;
        let listener = bind(server.listen)?;
        server.serve(listener, stop)
    } else {
        let server = Component::from_flags(component, &flags, faults)?;
        let listener = bind(server.listen)?;
        server.serve(listener, stop)
    }
}

/// A component's command line, read the way its flag library reads it:
/// `--name=value` or `--name value`, the last occurrence winning.
struct Flags<'a>(&'a [String]);

impl Flags<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        let mut found = None;
        let mut args = self.0.iter().peekable();
        while let Some(arg) = args.next() {
            let Some(rest) = arg.strip_prefix("--").and_then(|a| a.strip_prefix(name)) else {
                continue;
            };
            if let Some(value) = rest.strip_prefix('=') {
                found = Some(value);
            } else if rest.is_empty() {
                found = args.next_if(|v| !v.starts_with("--")).map(String::as_str);
            }
        }
        found
    }

    fn path(&self, name: &str) -> Option<PathBuf> {
        self.get(name).map(PathBuf::from)
    }

    /// `--bind-address` and `--secure-port` as one address.
    fn listen(&self, default_port: u16) -> Result<SocketAddr, StandinError> {
        let ip = match self.get("bind-address") {
            None | Some("") => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(v) => v.parse().map_err(|e| StandinError::BadFlag {
                flag: "--bind-address",
                value: v.into(),
                reason: format!("{e}"),
            })?,
        };
        let port = match self.get("secure-port") {
            None => default_port,
            Some(v) => v.parse().map_err(|e| StandinError::BadFlag {
                flag: "--secure-port",
                value: v.into(),
                reason: format!("{e}"),
            })?,
        };
        Ok(SocketAddr::new(ip, port))
    }
}

/// The rehearsal fault files of one component.
struct Faults {
    dir: PathBuf,
    component: &'static str,
}

impl Faults {
    fn from_env(component: &'static str) -> Faults {
        let dir = std::env::var_os("REMEDY_LAB_FAULTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_FAULTS_DIR));
        Faults { dir, component }
    }

    fn path(&self, fault: &str) -> PathBuf {
        self.dir.join(format!("{}-{fault}", self.component))
    }

    fn present(&self, fault: &str) -> bool {
        self.path(fault).exists()
    }

    fn crash_if_asked(&self) -> Result<(), StandinError> {
        if self.present("crash") {
            return Err(StandinError::CrashFault {
                path: self.path("crash"),
            });
        }
        Ok(())
    }
}

// ---- kube-apiserver ----

/// The API-server stand-in, configured and with its certificate loaded.
struct ApiServer {
    listen: SocketAddr,
    tls: Arc<ServerConfig>,
    cert_file: PathBuf,
    cert_sha256: String,
    etcd: EtcdCheck,
    faults: Faults,
}

impl ApiServer {
    fn from_flags(flags: &Flags, faults: Faults) -> Result<ApiServer, StandinError> {
        let required = |flag: &'static str, why: &'static str| {
            flags.path(&flag[2..]).ok_or(StandinError::MissingFlag {
                component: "kube-apiserver",
                flag,
                why,
            })
        };
        let cert_file = required("--tls-cert-file", " (the stand-in does not self-sign)")?;
        let key_file = required("--tls-private-key-file", "")?;
        let chain = load_certs(&cert_file, "serving certificate")?;
        let cert_sha256 = sha256_hex(&chain[0]);
        let key = load_key(&key_file, "serving key")?;
        Ok(ApiServer {
            listen: flags.listen(crate::layout::API_PORT)?,
            tls: server_config(chain, key)?,
            cert_file,
            cert_sha256,
            etcd: EtcdCheck::from_flags(flags)?,
            faults,
        })
    }

    fn serve(self, listener: TcpListener, stop: &AtomicBool) -> Result<(), StandinError> {
        let addr = local_addr(&listener, self.listen);
        log(
            "kube-apiserver",
            &format!(
                "serving https://{addr} with {} (sha256 {}); etcd {}",
                self.cert_file.display(),
                self.cert_sha256,
                self.etcd.urls()
            ),
        );
        let tls = self.tls.clone();
        let this = Arc::new(self);
        serve(
            "kube-apiserver",
            listener,
            tls,
            stop,
            Arc::new(move |req: &Request| this.route(req)),
        )
    }

    fn route(&self, req: &Request) -> Response {
        match req.path.as_str() {
            "/healthz" | "/livez" => Response::ok(),
            "/readyz" => {
                if self.faults.present("unready") {
                    return Response::text(500, "[-]lab fault: unready\nreadyz check failed\n");
                }
                match self.etcd.verdict() {
                    Ok(()) if req.verbose() => {
                        Response::text(200, "[+]ping ok\n[+]etcd ok\nreadyz check passed\n")
                    }
                    Ok(()) => Response::ok(),
                    Err(reason) => Response::text(
                        500,
                        &format!("[-]etcd failed: {reason}\nreadyz check failed\n"),
                    ),
                }
            }
            "/version" => Response {
                status: 200,
                content_type: "application/json",
                body: serde_json::json!({
                    "major": "1",
                    "minor": "33",
                    "gitVersion": "v1.33.0-remedy-lab",
                    "platform": "linux/amd64",
                })
                .to_string(),
            },
            _ => Response::text(404, "404 page not found\n"),
        }
    }
}

/// The API server's view of etcd: its servers, how to reach them, and the
/// last verdict.
struct EtcdCheck {
    servers: Vec<EtcdServer>,
    tls: Option<Arc<ClientConfig>>,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

struct EtcdServer {
    url: String,
    https: bool,
    host: String,
    port: u16,
}

impl EtcdServer {
    fn parse(url: &str) -> Result<EtcdServer, String> {
        let (https, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err("expected an https:// or http:// URL".into());
        };
        let authority = rest.split('/').next().unwrap_or_default();
        // [v6]:port, host:port or host.
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in the address")?;
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        let port = match port {
            Some(p) => p.parse().map_err(|e| format!("port {p:?}: {e}"))?,
            None => crate::layout::ETCD_CLIENT_PORT,
        };
        Ok(EtcdServer {
            url: url.to_string(),
            https,
            host: host.to_string(),
            port,
        })
    }
}

impl EtcdCheck {
    fn from_flags(flags: &Flags) -> Result<EtcdCheck, StandinError> {
        let list = flags.get("etcd-servers").ok_or(StandinError::MissingFlag {
            component: "kube-apiserver",
            flag: "--etcd-servers",
            why: "",
        })?;
        let servers = list
            .split(',')
            .filter(|u| !u.trim().is_empty())
            .map(|u| EtcdServer::parse(u.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| StandinError::BadFlag {
                flag: "--etcd-servers",
                value: list.into(),
                reason,
            })?;
        if servers.is_empty() {
            return Err(StandinError::BadFlag {
                flag: "--etcd-servers",
                value: list.into(),
                reason: "no server".into(),
            });
        }
        // Like the real server, unreadable etcd credentials are fatal at
        // start, not a readiness failure later.
        let tls = match flags.path("etcd-cafile") {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for cert in load_certs(&ca, "etcd CA certificate")? {
                    roots.add(cert)?;
                }
                let builder = ClientConfig::builder_with_provider(provider())
                    .with_protocol_versions(VERSIONS)?
                    .with_root_certificates(roots);
                let mut config = match (flags.path("etcd-certfile"), flags.path("etcd-keyfile")) {
                    (Some(cert), Some(key)) => builder.with_client_auth_cert(
                        load_certs(&cert, "etcd client certificate")?,
                        load_key(&key, "etcd client key")?,
                    )?,
                    (None, None) => builder.with_no_client_auth(),
                    (Some(_), None) | (None, Some(_)) => {
                        return Err(StandinError::MissingFlag {
                            component: "kube-apiserver",
                            flag: "--etcd-certfile and --etcd-keyfile",
                            why: " together",
                        })
                    }
                };
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(Arc::new(config))
            }
            None if servers.iter().any(|s| s.https) => {
                return Err(StandinError::MissingFlag {
                    component: "kube-apiserver",
                    flag: "--etcd-cafile",
                    why: " for https etcd servers",
                })
            }
            None => None,
        };
        Ok(EtcdCheck {
            servers,
            tls,
            last: Mutex::new(None),
        })
    }

    fn urls(&self) -> String {
        let urls: Vec<&str> = self.servers.iter().map(|s| s.url.as_str()).collect();
        urls.join(",")
    }

    /// Ok when one server is healthy; else the reasons. Probes are
    /// serialized by the lock, so concurrent probes share one answer.
    fn verdict(&self) -> Result<(), String> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, verdict)) = last.as_ref() {
            if at.elapsed() < ETCD_VERDICT_TTL {
                return verdict.clone();
            }
        }
        let mut reasons = Vec::new();
        let mut verdict = Err(String::new());
        for server in &self.servers {
            match self.probe(server) {
                Ok(()) => {
                    verdict = Ok(());
                    break;
                }
                Err(e) => reasons.push(format!("{}: {e}", server.url)),
            }
        }
        if verdict.is_err() {
            verdict = Err(reasons.join("; "));
        }
        *last = Some((Instant::now(), verdict.clone()));
        verdict
    }

    fn probe(&self, server: &EtcdServer) -> Result<(), String> {
        let addr = (server.host.as_str(), server.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", server.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", server.host))?;
        let sock = TcpStream::connect_timeout(&addr, ETCD_TIMEOUT)
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        // Bounds each read and write; a server that trickles bytes could take
        // longer, which the lab's etcd does not do.
        sock.set_read_timeout(Some(ETCD_TIMEOUT))
            .and_then(|()| sock.set_write_timeout(Some(ETCD_TIMEOUT)))
            .map_err(|e| e.to_string())?;
        let host_header = match addr {
            SocketAddr::V6(_) if server.host.contains(':') => {
                format!("[{}]:{}", server.host, server.port)
            }
            _ => format!("{}:{}", server.host, server.port),
        };
        let (status, body) = if server.https {
            let tls = self.tls.clone().ok_or("no --etcd-cafile")?;
            let name = ServerName::try_from(server.host.clone())
                .map_err(|e| format!("bad server name {:?}: {e}", server.host))?;
            let conn = ClientConnection::new(tls, name).map_err(|e| e.to_string())?;
            http_get(StreamOwned::new(conn, sock), &host_header, "/health")
        } else {
            http_get(sock, &host_header, "/health")
        }
        .map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("/health answered {status}: {}", body.trim()));
        }
        // The JSON object, wherever it sits (a chunked body wraps it in sizes).
        let json = match (body.find('{'), body.rfind('}')) {
            (Some(a), Some(b)) if a < b => &body[a..=b],
            _ => body.as_str(),
        };
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| format!("/health answered {:?}: {e}", body.trim()))?;
        if value["health"] == "true" {
            Ok(())
        } else {
            Err(format!("unhealthy: {}", json.trim()))
        }
    }
}

/// One GET with `Connection: close`; the status and the body, read to the end.
fn http_get<S: Read + Write>(mut s: S, host: &str, path: &str) -> io::Result<(u16, String)> {
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: kube-apiserver/v1.33.0 (remedy-lab)\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )?;
    s.flush()?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A peer that closes without a TLS close_notify: keep what came.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !raw.is_empty() => break,
            Err(e) => return Err(e),
        }
        if raw.len() > 1024 * 1024 {
            return Err(io::Error::other("response larger than 1 MiB"));
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::other(format!("not an HTTP response: {:?}", head.lines().next()))
        })?;
    Ok((status, body.to_string()))
}

// ---- kube-controller-manager, kube-scheduler ----

/// The controller-manager or scheduler stand-in: health endpoints only.
struct Component {
    name: &'static str,
    listen: SocketAddr,
    tls: Arc<ServerConfig>,
    faults: Faults,
}

impl Component {
    fn from_flags(
        name: &'static str,
        flags: &Flags,
        faults: Faults,
    ) -> Result<Component, StandinError> {
        let default_port = if name == "kube-scheduler" {
            crate::layout::SCHEDULER_PORT
        } else {
            crate::layout::CONTROLLER_MANAGER_PORT
        };
        let listen = flags.listen(default_port)?;
        // The real components, given no --tls-cert-file, make a self-signed
        // certificate for their address and localhost.
        let mut names = vec!["localhost".to_string()];
        if !listen.ip().is_unspecified() {
            names.push(listen.ip().to_string());
        }
        let self_signed = rcgen::generate_simple_self_signed(names)?;
        let key = PrivateKeyDer::Pkcs8(self_signed.signing_key.serialize_der().into());
        let chain = vec![self_signed.cert.der().clone()];
        Ok(Component {
            name,
            listen,
            tls: server_config(chain, key)?,
            faults,
        })
    }

    fn serve(self, listener: TcpListener, stop: &AtomicBool) -> Result<(), StandinError> {
        let addr = local_addr(&listener, self.listen);
        log(
            self.name,
            &format!("serving https://{addr} with a self-signed certificate"),
        );
        let tls = self.tls.clone();
        let name = self.name;
        let this = Arc::new(self);
        serve(
            name,
            listener,
            tls,
            stop,
            Arc::new(move |req: &Request| this.route(req)),
        )
    }

    fn route(&self, req: &Request) -> Response {
        match req.path.as_str() {
            path @ ("/healthz" | "/livez" | "/readyz") => {
                if self.faults.present("unready") {
                    let check = path.trim_start_matches('/');
                    Response::text(
                        500,
                        &format!("[-]lab fault: unready\n{check} check failed\n"),
                    )
                } else {
                    Response::ok()
                }
            }
            _ => Response::text(404, "404 page not found\n"),
        }
    }
}

// ---- HTTPS serving, shared by all three ----

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Named explicitly: with both ring and aws-lc-rs in a build, rustls has no
    // process default and would panic.
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS 1.2/1.3 server configuration without client authentication.
fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, StandinError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, StandinError> {
    let pem_error = |reason: String| StandinError::Pem {
        what,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no CERTIFICATE block in it".into()));
    }
    Ok(certs)
}

fn load_key(path: &Path, what: &'static str) -> Result<PrivateKeyDer<'static>, StandinError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| StandinError::Pem {
        what,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn bind(addr: SocketAddr) -> Result<TcpListener, StandinError> {
    TcpListener::bind(addr).map_err(|source| StandinError::Bind { addr, source })
}

fn local_addr(listener: &TcpListener, fallback: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(fallback)
}

/// What the stand-ins look at in a request.
struct Request {
    method: String,
    path: String,
    query: String,
}

impl Request {
    /// `?verbose` asks the health endpoints to list their checks.
    fn verbose(&self) -> bool {
        self.query
            .split('&')
            .any(|q| q == "verbose" || q.starts_with("verbose="))
    }
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn ok() -> Response {
        Response::text(200, "ok")
    }

    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
        }
    }

    fn to_bytes(&self, with_body: bool) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Internal Server Error",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nX-Content-Type-Options: nosniff\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if with_body {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

type Route = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Accept TLS connections until `stop` is set, one thread per connection,
/// one request per connection.
fn serve(
    name: &'static str,
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    stop: &AtomicBool,
    route: Route,
) -> Result<(), StandinError> {
    let addr = local_addr(&listener, SocketAddr::from(([0, 0, 0, 0], 0)));
    // Non-blocking accept, polled, so a stop request is seen promptly.
    listener
        .set_nonblocking(true)
        .map_err(|source| StandinError::Listen { addr, source })?;
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((sock, _)) => {
                let tls = tls.clone();
                let route = route.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("{name}-conn"))
                    .spawn(move || {
                        // Failed handshakes and silent clients (TCP health
                        // checks, port scans) are normal: nothing to report.
                        let _ = answer(sock, tls, &route);
                    });
                if let Err(e) = spawned {
                    log(name, &format!("cannot start a connection thread: {e}"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Out of file descriptors and the like pass; keep serving.
            Err(e) => {
                log(name, &format!("accept on {addr} failed: {e}"));
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
    log(name, "stopping");
    Ok(())
}

fn answer(sock: TcpStream, tls: Arc<ServerConfig>, route: &Route) -> io::Result<()> {
    sock.set_nonblocking(false)?;
    sock.set_read_timeout(Some(CONNECTION_TIMEOUT))?;
    sock.set_write_timeout(Some(CONNECTION_TIMEOUT))?;
    let conn = ServerConnection::new(tls).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(conn, sock);
    let head = read_head(&mut stream)?;
    let (response, with_body) = match parse_request(&head) {
        Some(req) if req.method == "GET" => (route(&req), true),
        Some(req) if req.method == "HEAD" => (route(&req), false),
        Some(_) => (Response::text(405, "method not allowed\n"), true),
        None => (Response::text(400, "bad request\n"), true),
    };
    stream.write_all(&response.to_bytes(with_body))?;
    stream.conn.send_close_notify();
    stream.flush()
}

/// The request line and headers, up to the blank line.
fn read_head<R: Read>(r: &mut R) -> io::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.truncate(end);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        match r.read(&mut chunk) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn parse_request(head: &str) -> Option<Request> {
    let mut parts = head.lines().next()?.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?;
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Some(Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::thread::JoinHandle;

    /// A PKI made with the openssl CLI (an implementation we did not write):
    /// a CA, a serving certificate for 127.0.0.1 with a PKCS#1 key as kubeadm
    /// writes them, and a client certificate.
    struct Pki {
        dir: tempfile::TempDir,
    }

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    impl Pki {
        fn new() -> Pki {
            let dir = tempfile::tempdir().expect("tempdir");
            let d = dir.path();
            openssl(
                d,
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
                    "/CN=lab-test-ca",
                ],
            );
            for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
                openssl(
                    d,
                    &[
                        "req",
                        "-new",
                        "-newkey",
                        "rsa:2048",
                        "-nodes",
                        "-keyout",
                        &format!("{name}.p8.key"),
                        "-out",
                        &format!("{name}.csr"),
                        "-subj",
                        &format!("/CN={name}"),
                    ],
                );
                std::fs::write(
                    d.join(format!("{name}.ext")),
                    format!("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage={usage}\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"),
                )
                .expect("ext file");
                openssl(
                    d,
                    &[
                        "x509",
                        "-req",
                        "-in",
                        &format!("{name}.csr"),
                        "-CA",
                        "ca.crt",
                        "-CAkey",
                        "ca.key",
                        "-CAcreateserial",
                        "-days",
                        "1",
                        "-extfile",
                        &format!("{name}.ext"),
                        "-out",
                        &format!("{name}.crt"),
                    ],
                );
                // kubeadm's key format: PKCS#1 "RSA PRIVATE KEY".
                openssl(
                    d,
                    &[
                        "rsa",
                        "-in",
                        &format!("{name}.p8.key"),
                        "-traditional",
                        "-out",
                        &format!("{name}.key"),
                    ],
                );
            }
            let key = std::fs::read_to_string(d.join("server.key")).expect("key");
            assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----"), "{key}");
            Pki { dir }
        }

        fn path(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }
    }

    /// A server on its own thread; stopped and joined on drop.
    struct Running {
        addr: SocketAddr,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<Result<(), StandinError>>>,
    }

    impl Running {
        fn start(
            run: impl FnOnce(TcpListener, &AtomicBool) -> Result<(), StandinError> + Send + 'static,
        ) -> Running {
            // Port 0: the kernel picks a free port, so parallel tests never collide.
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            let thread = std::thread::spawn(move || run(listener, &flag));
            Running {
                addr,
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for Running {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn no_faults(component: &'static str) -> Faults {
        Faults {
            dir: PathBuf::from("/nonexistent/lab-faults"),
            component,
        }
    }

    /// GET over TLS trusting `ca`; the status, body and the served leaf.
    fn get(addr: SocketAddr, ca: Option<&str>, path: &str) -> (u16, String, Vec<u8>) {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .expect("versions");
        let config = match ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in load_certs(Path::new(ca), "ca").expect("ca") {
                    roots.add(c).expect("root");
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider())))
                .with_no_client_auth(),
        };
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let name = ServerName::try_from("127.0.0.1").expect("name");
        let conn = ClientConnection::new(Arc::new(config), name).expect("client");
        let mut stream = StreamOwned::new(conn, sock);
        let (status, body) = http_get(&mut stream, &addr.to_string(), path).expect("GET");
        let leaf = stream
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .expect("a served certificate");
        (status, body, leaf)
    }

    /// For the self-signed components: any certificate will do.
    #[derive(Debug)]
    struct AcceptAnything(Arc<rustls::crypto::CryptoProvider>);

    impl rustls::client::danger::ServerCertVerifier for AcceptAnything {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// A fake etcd: /health over TLS that insists on a client certificate
    /// from the CA, as etcd does with --client-cert-auth.
    fn fake_etcd(pki: &Pki) -> Running {
        let mut roots = RootCertStore::empty();
        for c in load_certs(Path::new(&pki.path("ca.crt")), "ca").expect("ca") {
            roots.add(c).expect("root");
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .expect("verifier");
        let chain = load_certs(Path::new(&pki.path("server.crt")), "cert").expect("cert");
        let key = load_key(Path::new(&pki.path("server.key")), "key").expect("key");
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .expect("versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .expect("config");
        let tls = Arc::new(config);
        Running::start(move |listener, stop| {
            let route: Route = Arc::new(|req: &Request| match req.path.as_str() {
                "/health" => Response {
                    status: 200,
                    content_type: "application/json",
                    body: r#"{"health":"true","reason":""}"#.into(),
                },
                _ => Response::text(404, "404 page not found\n"),
            });
            serve("fake-etcd", listener, tls, stop, route)
        })
    }

    fn closed_port() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    }

    fn apiserver_flags(pki: &Pki, etcd: SocketAddr) -> Vec<String> {
        vec![
            "--advertise-address=127.0.0.1".into(),
            "--allow-privileged=true".into(),
            "--bind-address".into(),
            "127.0.0.1".into(),
            format!("--etcd-servers=https://{etcd}"),
            format!("--etcd-cafile={}", pki.path("ca.crt")),
            format!("--etcd-certfile={}", pki.path("client.crt")),
            format!("--etcd-keyfile={}", pki.path("client.key")),
            format!("--tls-cert-file={}", pki.path("server.crt")),
            format!("--tls-private-key-file={}", pki.path("server.key")),
            "--service-cluster-ip-range=10.96.0.0/12".into(),
        ]
    }

    fn wait_for_status(addr: SocketAddr, ca: &str, path: &str, want: u16) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, body, _) = get(addr, Some(ca), path);
            if status == want {
                return body;
            }
            assert!(Instant::now() < deadline, "{path}: {status} {body}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    #[test]
    fn apiserver_serves_its_certificate_and_follows_etcd() {
        let pki = Pki::new();
        let ca = pki.path("ca.crt");
        let etcd_addr = closed_port();
        let flags = apiserver_flags(&pki, etcd_addr);
        let server =
            ApiServer::from_flags(&Flags(&flags), no_faults("kube-apiserver")).expect("configured");
        let api = Running::start(move |l, stop| server.serve(l, stop));

        let (status, body, leaf) = get(api.addr, Some(&ca), "/healthz");
        assert_eq!((status, body.as_str()), (200, "ok"));
        // The served certificate is the file's, byte for byte.
        let file_cert = load_certs(Path::new(&pki.path("server.crt")), "cert").expect("cert");
        assert_eq!(leaf, file_cert[0].to_vec());
        let (status, body, _) = get(api.addr, Some(&ca), "/version");
        assert_eq!(status, 200);
        assert!(
            body.contains(r#""gitVersion":"v1.33.0-remedy-lab""#),
            "{body}"
        );
        assert_eq!(get(api.addr, Some(&ca), "/api/v1/pods").0, 404);

        let (status, body, _) = get(api.addr, Some(&ca), "/readyz");
        assert_eq!(status, 500, "{body}");
        assert!(body.starts_with("[-]etcd failed: "), "{body}");
        assert!(body.contains(&etcd_addr.to_string()), "{body}");

        // An etcd (demanding client certificates) on that very port.
        let etcd = fake_etcd(&pki);
        let flags = apiserver_flags(&pki, etcd.addr);
        let server =
            ApiServer::from_flags(&Flags(&flags), no_faults("kube-apiserver")).expect("configured");
        let api = Running::start(move |l, stop| server.serve(l, stop));
        assert_eq!(wait_for_status(api.addr, &ca, "/readyz", 200), "ok");
        drop(etcd);
        let body = wait_for_status(api.addr, &ca, "/readyz", 500);
        assert!(body.contains("etcd failed"), "{body}");
    }

    #[test]
    fn the_served_certificate_is_checked_independently_by_openssl() {
        let pki = Pki::new();
        let flags = apiserver_flags(&pki, closed_port());
        let server =
            ApiServer::from_flags(&Flags(&flags), no_faults("kube-apiserver")).expect("configured");
        let api = Running::start(move |l, stop| server.serve(l, stop));
        for version in ["-tls1_2", "-tls1_3"] {
            let out = Command::new("openssl")
                .args(["s_client", "-connect", &api.addr.to_string(), version])
                .args(["-CAfile", &pki.path("ca.crt"), "-verify_return_error"])
                .args(["-alpn", "http/1.1"])
                .stdin(std::process::Stdio::null())
                .output()
                .expect("openssl s_client");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{version}: {stdout}");
            let pem_start = stdout.find("-----BEGIN CERTIFICATE-----").expect("cert");
            let pem_end = stdout.find("-----END CERTIFICATE-----").expect("cert end");
            let served = &stdout[pem_start..pem_end];
            let file = std::fs::read_to_string(pki.path("server.crt")).expect("cert");
            assert!(
                file.contains(served.trim_end()),
                "{version}: another certificate was served"
            );
            assert!(stdout.contains("Verify return code: 0 (ok)"), "{stdout}");
            assert!(stdout.contains("ALPN protocol: http/1.1"), "{stdout}");
        }
    }

    #[test]
    fn fault_files_make_it_unready_or_crash() {
        let pki = Pki::new();
        let faults_dir = tempfile::tempdir().expect("tempdir");
        let faults = || Faults {
            dir: faults_dir.path().to_path_buf(),
            component: "kube-apiserver",
        };
        let etcd = fake_etcd(&pki);
        let flags = apiserver_flags(&pki, etcd.addr);
        let server = ApiServer::from_flags(&Flags(&flags), faults()).expect("configured");
        let api = Running::start(move |l, stop| server.serve(l, stop));
        let ca = pki.path("ca.crt");
        assert_eq!(wait_for_status(api.addr, &ca, "/readyz", 200), "ok");
        std::fs::write(faults_dir.path().join("kube-apiserver-unready"), "").expect("fault");
        let body = wait_for_status(api.addr, &ca, "/readyz", 500);
        assert!(body.starts_with("[-]lab fault: unready"), "{body}");
        assert_eq!(get(api.addr, Some(&ca), "/livez").0, 200);

        assert!(faults().crash_if_asked().is_ok());
        std::fs::write(faults_dir.path().join("kube-apiserver-crash"), "").expect("fault");
        let err = faults().crash_if_asked().expect_err("crash fault");
        assert!(err.to_string().contains("kube-apiserver-crash"), "{err}");
    }

    #[test]
    fn components_self_sign_and_answer_health() {
        for (name, fault_prefix) in [
            ("kube-controller-manager", "kube-controller-manager"),
            ("kube-scheduler", "kube-scheduler"),
        ] {
            let faults_dir = tempfile::tempdir().expect("tempdir");
            let flags: Vec<String> = vec![
                "--bind-address=127.0.0.1".into(),
                "--kubeconfig=/etc/kubernetes/scheduler.conf".into(),
                "--leader-elect=true".into(),
            ];
            let faults = Faults {
                dir: faults_dir.path().to_path_buf(),
                component: name,
            };
            let component =
                Component::from_flags(name, &Flags(&flags), faults).expect("configured");
            let default_port = component.listen.port();
            assert!(default_port == 10257 || default_port == 10259);
            let running = Running::start(move |l, stop| component.serve(l, stop));
            for path in ["/healthz", "/livez", "/readyz"] {
                let (status, body, _) = get(running.addr, None, path);
                assert_eq!((status, body.as_str()), (200, "ok"), "{name} {path}");
            }
            std::fs::write(
                faults_dir.path().join(format!("{fault_prefix}-unready")),
                "",
            )
            .expect("fault");
            let (status, body, _) = get(running.addr, None, "/healthz");
            assert_eq!(status, 500, "{name}: {body}");
            assert!(body.contains("healthz check failed"), "{body}");
        }
    }

    #[test]
    fn flags_read_like_pflag() {
        let list: Vec<String> = vec![
            "--secure-port".into(),
            "7443".into(),
            "--bind-address=127.0.0.9".into(),
            "--unknown-flag".into(),
            "--secure-port=8443".into(),
            "--etcd-servers-overrides=/events#https://x".into(),
            "--etcd-servers=https://[::1]:2379,https://127.0.0.11".into(),
        ];
        let flags = Flags(&list);
        assert_eq!(
            flags.listen(6443).expect("addr"),
            "127.0.0.9:8443".parse().expect("addr")
        );
        assert_eq!(
            flags.get("etcd-servers"),
            Some("https://[::1]:2379,https://127.0.0.11")
        );
        let v6 = EtcdServer::parse("https://[::1]:2379").expect("v6");
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 2379));
        let plain = EtcdServer::parse("https://127.0.0.11").expect("default port");
        assert_eq!(plain.port, 2379);
        assert!(EtcdServer::parse("unix:///run/etcd.sock").is_err());
        assert!(Flags(&["--secure-port=x".to_string()]).listen(1).is_err());
    }

    #[test]
    fn a_taken_port_names_the_address_and_the_way_out() {
        let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = bind(addr).expect_err("in use");
        let msg = err.to_string();
        assert!(
            msg.contains(&addr.to_string()) && msg.contains("remedy lab status"),
            "{msg}"
        );
    }

    #[test]
    fn run_pod_rejects_unknown_components_and_missing_flags() {
        assert!(matches!(run_pod(vec![]), Err(StandinError::Usage)));
        assert!(matches!(
            run_pod(vec!["coredns".into()]),
            Err(StandinError::UnknownComponent(_))
        ));
        let err = ApiServer::from_flags(&Flags(&[]), no_faults("kube-apiserver"))
            .err()
            .expect("no cert flag");
        assert!(err.to_string().contains("--tls-cert-file"), "{err}");
    }

    /// A child process, killed on drop if the test did not wait for it.
    struct ChildGuard(std::process::Child);

    impl Drop for ChildGuard {
        fn drop(&mut self) {
            if let Ok(None) = self.0.try_wait() {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
    }

    fn wait_exit(child: &mut std::process::Child, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn on_path(name: &str) -> Option<PathBuf> {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }

    #[test]
    fn the_labs_pki_and_a_real_etcd_make_it_ready() {
        // The project's setup installs etcd; without it there is nothing to
        // talk to, and the fake etcd above covers the protocol.
        let Some(etcd_exe) = on_path("etcd") else {
            eprintln!("skipped: no etcd binary on PATH");
            return;
        };
        // The certificates `remedy lab up` makes (kubeadm's layout and key
        // format), for a master at 127.0.0.1.
        let kube = tempfile::tempdir().expect("tempdir");
        let pki = |rel: &str| kube.path().join("pki").join(rel).display().to_string();
        let cas = crate::pki::Cas::create(&kube.path().join("pki")).expect("CAs");
        let node = crate::pki::Node {
            name: "master-1".into(),
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            extra_sans: vec![],
        };
        crate::pki::write_node(&cas, kube.path(), &node, "https://127.0.0.1:6443", 3600)
            .expect("leaves");

        let (client, peer) = (closed_port(), closed_port());
        let log_path = kube.path().join("etcd.log");
        let log = std::fs::File::create(&log_path).expect("log");
        let etcd = ChildGuard(
            Command::new(etcd_exe)
                .arg("--name=master-1")
                .arg(format!("--data-dir={}", kube.path().join("etcd").display()))
                .arg(format!("--listen-client-urls=https://{client}"))
                .arg(format!("--advertise-client-urls=https://{client}"))
                .arg(format!("--listen-peer-urls=http://{peer}"))
                .arg(format!("--initial-advertise-peer-urls=http://{peer}"))
                .arg(format!("--initial-cluster=master-1=http://{peer}"))
                .arg(format!("--cert-file={}", pki("etcd/server.crt")))
                .arg(format!("--key-file={}", pki("etcd/server.key")))
                .arg(format!("--trusted-ca-file={}", pki("etcd/ca.crt")))
                .arg("--client-cert-auth=true")
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("etcd starts"),
        );
        // As the lab's manifest passes them (manifests::apiserver).
        let flags = vec![
            "--bind-address=127.0.0.1".to_string(),
            format!("--etcd-cafile={}", pki("etcd/ca.crt")),
            format!("--etcd-certfile={}", pki("apiserver-etcd-client.crt")),
            format!("--etcd-keyfile={}", pki("apiserver-etcd-client.key")),
            format!("--etcd-servers=https://{client}"),
            format!("--tls-cert-file={}", pki("apiserver.crt")),
            format!("--tls-private-key-file={}", pki("apiserver.key")),
        ];
        let server =
            ApiServer::from_flags(&Flags(&flags), no_faults("kube-apiserver")).expect("configured");
        let api = Running::start(move |l, stop| server.serve(l, stop));
        let ca = pki("ca.crt");
        let ready = std::panic::catch_unwind(|| wait_for_status(api.addr, &ca, "/readyz", 200));
        if ready.is_err() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!("never ready; etcd log:\n{log}");
        }
        // Verified against the cluster CA, and the file's certificate.
        let (_, _, leaf) = get(api.addr, Some(&ca), "/livez");
        let file = load_certs(Path::new(&pki("apiserver.crt")), "cert").expect("cert");
        assert_eq!(leaf, file[0].to_vec());
        drop(etcd);
        let body = wait_for_status(api.addr, &ca, "/readyz", 500);
        assert!(body.contains("etcd failed"), "{body}");
    }

    /// Not a test by itself: the body of the child process that
    /// `sigterm_stops_a_standin_process` starts by running this test binary
    /// again, so the real signal handler of [`run_pod`] is exercised.
    #[test]
    fn standin_child_process() {
        let Ok(argv) = std::env::var("REMEDY_LAB_STANDIN_CHILD") else {
            return;
        };
        let argv: Vec<String> = serde_json::from_str(&argv).expect("argv as JSON");
        match run_pod(argv) {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("{e}");
                std::process::exit(1)
            }
        }
    }

    fn standin_process(argv: &[String], faults: &Path) -> Command {
        let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
        cmd.args([
            "--exact",
            "standin::tests::standin_child_process",
            "--nocapture",
        ])
        .env(
            "REMEDY_LAB_STANDIN_CHILD",
            serde_json::json!(argv).to_string(),
        )
        .env("REMEDY_LAB_FAULTS_DIR", faults)
        .stdin(std::process::Stdio::null());
        cmd
    }

    #[test]
    fn sigterm_stops_a_standin_process() {
        let faults = tempfile::tempdir().expect("tempdir");
        let addr = closed_port();
        let argv = vec![
            "kube-scheduler".to_string(),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={}", addr.port()),
        ];
        let mut child = ChildGuard(
            standin_process(&argv, faults.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn"),
        );
        assert!(crate::process::wait_for_port(addr, Duration::from_secs(10)));
        assert_eq!(get(addr, None, "/healthz").0, 200);
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(child.0.id() as libc::pid_t, libc::SIGTERM);
        }
        let status = wait_exit(&mut child.0, Duration::from_secs(5));
        assert!(status.success(), "{status}");

        // The crash fault: exits with an error naming the fault file.
        std::fs::write(faults.path().join("kube-scheduler-crash"), "").expect("fault");
        let out = standin_process(&argv, faults.path()).output().expect("run");
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("kube-scheduler-crash"), "{stderr}");
    }
}
