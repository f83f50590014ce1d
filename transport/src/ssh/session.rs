//! One authenticated SSH connection to one host (russh), reused for every
//! command of a run: each command is a new channel on it (≈15 ms instead of
//! ≈150–250 ms for a new connection).
//!
//! Host keys are checked against known_hosts before anything else, with the
//! three outcomes people need told apart: known (go on), unknown (refuse,
//! unless `--accept-new-host-keys` records it), changed (always refuse, with
//! the fingerprint and the line to look at).

use super::proxy_command::{self, ProxyChild};
use russh::client::{self, AuthResult, Handle};
use russh::keys::agent::client::AgentClient;
use russh::keys::known_hosts::{known_host_keys_path, learn_known_hosts_path};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{kex, ChannelMsg, Preferred};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Settings that apply to every connection of a run.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub known_hosts: PathBuf,
    /// Record unknown host keys instead of refusing them (never changed ones).
    pub accept_new_host_keys: bool,
    pub connect_timeout: Duration,
    pub keepalive: Duration,
}

/// Where and as whom to log in, after inventory and `~/.ssh/config`.
#[derive(Debug, Clone)]
pub struct Target {
    /// The inventory name, for messages.
    pub name: String,
    pub hostname: String,
    pub port: u16,
    pub user: String,
    /// Tried in order, before the agent and the default keys.
    pub identity_files: Vec<String>,
    /// `IdentitiesOnly yes`: never ask ssh-agent.
    pub identities_only: bool,
    pub become_: bool,
}

/// How the connection to a [`Target`] is made.
pub enum Via {
    /// TCP to `hostname:port`.
    Direct,
    /// A direct-tcpip channel through a jump host's session.
    Jump(Arc<SshSession>),
    /// Over the stdin/stdout of this `ProxyCommand` (tokens expanded).
    Command(String),
}

#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("cannot connect to {target}: {message}")]
    Connect { target: String, message: String },
    /// The client configuration cannot be read, or asks for something remedy
    /// cannot do: refused, never worked around.
    #[error("{target}: {message}")]
    Config { target: String, message: String },
    #[error("{message}")]
    HostKey { message: String },
    #[error("authentication as {user} on {target} failed; tried: {tried}")]
    Auth {
        target: String,
        user: String,
        tried: String,
    },
    #[error("connection to {target} lost{during}")]
    Lost { target: String, during: String },
    #[error("`{cmd}` on {target} did not finish within {secs}s and was stopped")]
    Timeout {
        target: String,
        cmd: String,
        secs: u64,
    },
    #[error("{target} refused to run `{cmd}`")]
    Refused { target: String, cmd: String },
}

/// A finished command, with raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOutput {
    pub status: Option<i32>,
    pub signal: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug, Clone)]
enum KeyVerdict {
    Trusted,
    Learned { fingerprint: String },
    Unknown { fingerprint: String, key: String },
    Changed { fingerprint: String, line: usize },
    Unreadable(String),
}

/// The russh handler: it only checks the server's host key.
struct HostKeyCheck {
    hostname: String,
    port: u16,
    known_hosts: PathBuf,
    accept_new: bool,
    verdict: Arc<Mutex<Option<KeyVerdict>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = server_key.public_key();
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let verdict = match known_host_keys_path(&self.hostname, self.port, &self.known_hosts) {
            Err(e) => KeyVerdict::Unreadable(e.to_string()),
            Ok(entries) => {
                if entries.iter().any(|(_, k)| k.key_data() == key.key_data()) {
                    KeyVerdict::Trusted
                } else if let Some((line, _)) = entries
                    .iter()
                    .find(|(_, k)| k.algorithm() == key.algorithm())
                {
                    KeyVerdict::Changed {
                        fingerprint,
                        line: *line,
                    }
                } else if self.accept_new {
                    match learn_known_hosts_path(&self.hostname, self.port, &key, &self.known_hosts)
                    {
                        Ok(()) => KeyVerdict::Learned { fingerprint },
                        Err(e) => KeyVerdict::Unreadable(format!("cannot record the new key: {e}")),
                    }
                } else {
                    KeyVerdict::Unknown {
                        fingerprint,
                        key: key.algorithm().to_string(),
                    }
                }
            }
        };
        let ok = matches!(verdict, KeyVerdict::Trusted | KeyVerdict::Learned { .. });
        if let Ok(mut v) = self.verdict.lock() {
            *v = Some(verdict);
        }
        Ok(ok)
    }
}

pub struct SshSession {
    pub target: Target,
    handle: Handle<HostKeyCheck>,
    /// Keeps the jump host's connection alive as long as this one.
    _via: Option<Arc<SshSession>>,
    /// The ProxyCommand this connection runs over, killed with it.
    _proxy: Option<ProxyChild>,
    /// Set when the host key was recorded by --accept-new-host-keys.
    pub learned_key: Option<String>,
}

fn client_config(opts: &ConnectOptions) -> Arc<client::Config> {
    // curve25519 first: several times cheaper than the post-quantum hybrid
    // on every new connection. The ext-info and strict-kex markers must stay:
    // without them no rsa-sha2 signatures and no Terrapin protection.
    let kex_order = vec![
        kex::CURVE25519,
        kex::CURVE25519_PRE_RFC_8731,
        kex::MLKEM768X25519_SHA256,
        kex::DH_GEX_SHA256,
        kex::DH_G16_SHA512,
        kex::DH_G14_SHA256,
        kex::EXTENSION_SUPPORT_AS_CLIENT,
        kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
    ];
    Arc::new(client::Config {
        nodelay: true,
        keepalive_interval: Some(opts.keepalive),
        keepalive_max: 3,
        preferred: Preferred {
            kex: kex_order.into(),
            ..Preferred::default()
        },
        ..client::Config::default()
    })
}

fn default_keys() -> Vec<String> {
    let Some(home) = std::env::var_os("HOME") else {
        return Vec::new();
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|k| {
            PathBuf::from(&home)
                .join(".ssh")
                .join(k)
                .display()
                .to_string()
        })
        .collect()
}

impl SshSession {
    /// Connect to `target`: directly, through a jump host, or over a ProxyCommand.
    pub async fn connect(
        target: Target,
        opts: &ConnectOptions,
        via: Via,
    ) -> Result<SshSession, SshError> {
        let where_ = format!("{} ({}:{})", target.name, target.hostname, target.port);
        let connect_err = |message: String| SshError::Connect {
            target: where_.clone(),
            message,
        };
        let verdict = Arc::new(Mutex::new(None));
        let handler = HostKeyCheck {
            hostname: target.hostname.clone(),
            port: target.port,
            known_hosts: opts.known_hosts.clone(),
            accept_new: opts.accept_new_host_keys,
            verdict: verdict.clone(),
        };
        let config = client_config(opts);
        let mut proxy: Option<ProxyChild> = None;
        let mut jump: Option<Arc<SshSession>> = None;
        let handshake = async {
            match via {
                Via::Direct => {
                    let tcp = connect_tcp(&target.hostname, target.port)
                        .await
                        .map_err(|e| Err(connect_err(e.to_string())))?;
                    client::connect_stream(config, tcp, handler)
                        .await
                        .map_err(Ok)
                }
                Via::Jump(through) => {
                    let channel = through
                        .handle
                        .channel_open_direct_tcpip(
                            target.hostname.clone(),
                            target.port as u32,
                            "127.0.0.1",
                            0,
                        )
                        .await
                        .map_err(|e| {
                            Err(connect_err(format!(
                                "jump host {} could not reach it: {e}",
                                through.target.name
                            )))
                        })?;
                    jump = Some(through);
                    client::connect_stream(config, channel.into_stream(), handler)
                        .await
                        .map_err(Ok)
                }
                Via::Command(command) => {
                    let (stream, child) = proxy_command::spawn(&command).map_err(|e| {
                        Err(connect_err(format!(
                            "cannot start ProxyCommand `{command}`: {e}"
                        )))
                    })?;
                    proxy = Some(child);
                    client::connect_stream(config, stream, handler)
                        .await
                        .map_err(Ok)
                }
            }
        };
        // Err(Ok(e)): the SSH handshake failed; Err(Err(e)): already explained.
        let connected: Result<Handle<HostKeyCheck>, Result<russh::Error, SshError>> =
            match tokio::time::timeout(opts.connect_timeout, handshake).await {
                Ok(r) => r,
                Err(_) => Err(Err(connect_err(format!(
                    "no answer within {}s",
                    opts.connect_timeout.as_secs()
                )))),
            };
        let connected = match connected {
            Ok(handle) => Ok(handle),
            Err(Err(e)) => Err(e),
            Err(Ok(e)) => {
                let v = verdict.lock().ok().and_then(|v| v.clone());
                match (e, v) {
                    (russh::Error::UnknownKey, Some(v)) => Err(host_key_error(&target, opts, v)),
                    (e, _) => Err(connect_err(e.to_string())),
                }
            }
        };
        let connected = match (connected, proxy.as_mut()) {
            (Err(SshError::Connect { target, message }), Some(child)) => {
                let said = child.stderr().await;
                Err(SshError::Connect {
                    target,
                    message: if said.is_empty() {
                        format!("{message} (through its ProxyCommand, which printed nothing)")
                    } else {
                        format!("{message}; its ProxyCommand said: {said}")
                    },
                })
            }
            (other, _) => other,
        };
        let mut handle = connected?;
        let learned_key = match verdict.lock().ok().and_then(|v| v.clone()) {
            Some(KeyVerdict::Learned { fingerprint }) => Some(fingerprint),
            _ => None,
        };
        tokio::time::timeout(opts.connect_timeout, authenticate(&mut handle, &target))
            .await
            .map_err(|_| {
                connect_err(format!(
                    "authentication did not finish within {}s",
                    opts.connect_timeout.as_secs()
                ))
            })??;
        Ok(SshSession {
            target,
            handle,
            _via: jump,
            _proxy: proxy,
            learned_key,
        })
    }

    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Run a command (through `sudo -n` when the host says `become`), feeding
    /// `stdin` if given. A command whose exit status never arrives is an error.
    pub async fn run(
        &self,
        cmd: &str,
        stdin: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<RawOutput, SshError> {
        let full = if self.target.become_ {
            format!("sudo -n -- sh -c {}", crate::shell::quote(cmd))
        } else {
            cmd.to_string()
        };
        let target = self.target.name.clone();
        let lost = |during: &str| SshError::Lost {
            target: target.clone(),
            during: during.to_string(),
        };
        let work = async {
            let mut ch = self
                .handle
                .channel_open_session()
                .await
                .map_err(|e| lost(&format!(" (opening a channel: {e})")))?;
            ch.exec(true, full.as_bytes())
                .await
                .map_err(|_| lost(&format!(" while starting `{cmd}`")))?;
            if let Some(data) = stdin {
                ch.data(data)
                    .await
                    .map_err(|_| lost(&format!(" while sending data to `{cmd}`")))?;
            }
            ch.eof()
                .await
                .map_err(|_| lost(&format!(" while starting `{cmd}`")))?;
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            let (mut status, mut signal, mut closed) = (None, None, false);
            while let Some(msg) = ch.wait().await {
                match msg {
                    ChannelMsg::Data { data } => stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => stderr.extend_from_slice(&data),
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status as i32),
                    ChannelMsg::ExitSignal { signal_name, .. } => {
                        signal = Some(format!("{signal_name:?}"))
                    }
                    ChannelMsg::Failure => {
                        return Err(SshError::Refused {
                            target: target.clone(),
                            cmd: cmd.to_string(),
                        })
                    }
                    ChannelMsg::Close => closed = true,
                    _ => {}
                }
            }
            if status.is_none() && signal.is_none() {
                // The channel ended without an exit status: the connection
                // died under the command. Never report that as success.
                return Err(lost(&format!(
                    " while `{cmd}` was running; its outcome is unknown{}",
                    if closed {
                        " (closed without an exit status)"
                    } else {
                        ""
                    }
                )));
            }
            Ok(RawOutput {
                status: if signal.is_some() { None } else { status },
                signal,
                stdout,
                stderr,
            })
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(SshError::Timeout {
                target: self.target.name.clone(),
                cmd: cmd.to_string(),
                secs: timeout.as_secs(),
            }),
        }
    }

    /// A raw byte stream to `host:port` as seen from this host (direct-tcpip).
    pub async fn open_tcp(
        &self,
        host: &str,
        port: u16,
    ) -> Result<russh::ChannelStream<client::Msg>, SshError> {
        let ch = self
            .handle
            .channel_open_direct_tcpip(host.to_string(), port as u32, "127.0.0.1", 0)
            .await
            .map_err(|e| SshError::Connect {
                target: format!("{host}:{port} via {}", self.target.name),
                message: e.to_string(),
            })?;
        Ok(ch.into_stream())
    }

    /// A raw byte stream to a unix socket on this host (direct-streamlocal).
    pub async fn open_unix(
        &self,
        path: &str,
    ) -> Result<russh::ChannelStream<client::Msg>, SshError> {
        let ch = self
            .handle
            .channel_open_direct_streamlocal(path.to_string())
            .await
            .map_err(|e| SshError::Connect {
                target: format!("{path} on {}", self.target.name),
                message: e.to_string(),
            })?;
        Ok(ch.into_stream())
    }
}

fn host_key_error(target: &Target, opts: &ConnectOptions, verdict: KeyVerdict) -> SshError {
    let kh = opts.known_hosts.display();
    let entry = if target.port == 22 {
        target.hostname.clone()
    } else {
        format!("[{}]:{}", target.hostname, target.port)
    };
    let message = match verdict {
        KeyVerdict::Unknown { fingerprint, key } => format!(
            "host key of {} ({entry}) is not in {kh}: {key} key {fingerprint}.\n  Check this fingerprint with the host's owner (on the host: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), then run again with --accept-new-host-keys to record it",
            target.name
        ),
        KeyVerdict::Changed { fingerprint, line } => format!(
            "HOST KEY CHANGED for {} ({entry}): it now presents {fingerprint}, which differs from {kh} line {line}.\n  This may be a reinstalled host or a man-in-the-middle. remedy will not connect. If the change is expected, remove the old entry (ssh-keygen -R '{entry}' -f {kh}) and verify the new fingerprint",
            target.name
        ),
        KeyVerdict::Unreadable(e) => format!("cannot check the host key of {} against {kh}: {e}", target.name),
        KeyVerdict::Trusted | KeyVerdict::Learned { .. } => format!("{} refused the connection after the host key was accepted", target.name),
    };
    SshError::HostKey { message }
}

async fn authenticate(handle: &mut Handle<HostKeyCheck>, target: &Target) -> Result<(), SshError> {
    let user = target.user.as_str();
    let mut tried: Vec<String> = Vec::new();
    let passphrase = std::env::var("REMEDY_SSH_KEY_PASSPHRASE").ok();
    let explicit = target.identity_files.clone();
    let fail = |tried: Vec<String>| SshError::Auth {
        target: format!("{} ({}:{})", target.name, target.hostname, target.port),
        user: user.to_string(),
        tried: if tried.is_empty() {
            "nothing: no identity file, no ssh-agent (SSH_AUTH_SOCK), no ~/.ssh/id_* key".into()
        } else {
            tried.join("; ")
        },
    };
    let try_file = async |handle: &mut Handle<HostKeyCheck>,
                          path: &str,
                          is_explicit: bool,
                          tried: &mut Vec<String>|
           -> Result<bool, SshError> {
        let key = match russh::keys::load_secret_key(path, passphrase.as_deref()) {
            Ok(k) => k,
            Err(russh::keys::Error::KeyIsEncrypted) => {
                tried.push(format!("{path}: encrypted and no passphrase given (add it to ssh-agent with `ssh-add {path}`, or set REMEDY_SSH_KEY_PASSPHRASE)"));
                return Ok(false);
            }
            Err(russh::keys::Error::IO(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                if is_explicit {
                    tried.push(format!("{path}: no such file"));
                }
                return Ok(false);
            }
            Err(e) => {
                tried.push(format!("{path}: cannot load it ({e})"));
                return Ok(false);
            }
        };
        let hash = if key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .ok()
                .flatten()
                .flatten()
        } else {
            None
        };
        match handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await
        {
            Ok(AuthResult::Success) => Ok(true),
            Ok(AuthResult::Failure { .. }) => {
                tried.push(format!("{path}: refused by the server"));
                Ok(false)
            }
            Err(e) => Err(SshError::Lost {
                target: target.name.clone(),
                during: format!(" during authentication ({e})"),
            }),
        }
    };
    for path in &explicit {
        if try_file(handle, path, true, &mut tried).await? {
            return Ok(());
        }
    }
    let agent = if target.identities_only {
        None
    } else {
        AgentClient::connect_env().await.ok()
    };
    if let Some(mut agent) = agent {
        let ids = agent.request_identities().await.unwrap_or_default();
        if ids.is_empty() {
            tried.push("ssh-agent: no keys loaded".into());
        }
        for id in ids {
            let public = id.public_key().into_owned();
            let hash = if public.algorithm().is_rsa() {
                handle
                    .best_supported_rsa_hash()
                    .await
                    .ok()
                    .flatten()
                    .flatten()
            } else {
                None
            };
            let label = format!("ssh-agent key {}", public.fingerprint(HashAlg::Sha256));
            match handle
                .authenticate_publickey_with(user, public, hash, &mut agent)
                .await
            {
                Ok(AuthResult::Success) => return Ok(()),
                Ok(_) => tried.push(format!("{label}: refused by the server")),
                Err(e) => tried.push(format!("{label}: {e}")),
            }
        }
    }
    if explicit.is_empty() {
        for path in default_keys() {
            if try_file(handle, &path, false, &mut tried).await? {
                return Ok(());
            }
        }
    }
    Err(fail(tried))
}

/// The TCP connection an SSH session runs on, with Nagle's algorithm off.
/// `client::connect_stream` does not apply `Config::nodelay` (only russh's
/// own `connect` does); with Nagle on, each small request on an open
/// connection waited for the previous segment's delayed ACK, about 40 ms
/// per command (bench/steps.sh: 53.5 ms per step and host before, 25.8 ms
/// after, against 24.9 ms for OpenSSH's ControlPath loop).
async fn connect_tcp(host: &str, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_ssh_socket_has_nagle_off() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = super::connect_tcp("127.0.0.1", port).await.unwrap();
        assert!(
            tcp.nodelay().unwrap(),
            "TCP_NODELAY is off: every command waits for a delayed ACK"
        );
    }
}
