//! The `Local` transport: this machine, as the user remedy runs as. Used for
//! hosts marked `transport: local` in the inventory and by the engine's tests.

use super::{
    AsyncStream, FileStat, Output, RawOutput, StreamFailure, StreamTarget, TResult, Transport,
    TransportError, WriteAttrs,
};
use async_trait::async_trait;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

#[derive(Debug, Clone)]
pub struct Local {
    host: String,
}

impl Local {
    pub fn new(host: impl Into<String>) -> Local {
        Local { host: host.into() }
    }

    fn io(&self, op: &'static str, path: &str, e: std::io::Error) -> TransportError {
        TransportError::Io {
            host: self.host.clone(),
            op,
            path: path.to_string(),
            message: e.to_string(),
        }
    }

    fn stream_error(&self, target: &StreamTarget, e: std::io::Error) -> TransportError {
        use std::io::ErrorKind;
        let mut failure = match e.kind() {
            ErrorKind::NotFound => StreamFailure::NotFound,
            ErrorKind::PermissionDenied => StreamFailure::PermissionDenied,
            ErrorKind::ConnectionRefused => StreamFailure::Refused,
            _ => StreamFailure::Other,
        };
        let mut message = e.to_string();
        // connect(2) on a path that is not a socket also says "refused".
        if let (StreamTarget::Unix(path), StreamFailure::Refused) = (target, failure) {
            if std::fs::metadata(path).is_ok_and(|m| !m.file_type().is_socket()) {
                failure = StreamFailure::NotASocket;
                message = "it is not a socket".into();
            }
        }
        TransportError::Stream {
            host: self.host.clone(),
            target: target.clone(),
            failure,
            message,
        }
    }

    async fn run(&self, cmd: &str, timeout: Duration) -> TResult<Output> {
        self.run_raw(cmd, timeout).await.map(Output::from)
    }

    async fn run_raw(&self, cmd: &str, timeout: Duration) -> TResult<RawOutput> {
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // Its own process group, so a command stopped at its timeout (or
            // abandoned with its step) ends with everything it started.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TransportError::Spawn {
                host: self.host.clone(),
                cmd: cmd.to_string(),
                message: e.to_string(),
            })?;
        let mut running = Running(child);
        let finished = tokio::time::timeout(timeout, running.output()).await;
        match finished {
            Err(_) => Err(TransportError::Timeout {
                host: self.host.clone(),
                cmd: cmd.to_string(),
                secs: timeout.as_secs(),
            }),
            Ok(Err(e)) => Err(self.io("wait for", cmd, e)),
            Ok(Ok(out)) => {
                use std::os::unix::process::ExitStatusExt;
                Ok(RawOutput {
                    status: out.status.code(),
                    signal: out.status.signal().map(|s| s.to_string()),
                    stdout: out.stdout,
                    stderr: out.stderr,
                })
            }
        }
    }
}

/// A command's shell, leader of its own process group. Dropped before the
/// shell was reaped — at a timeout, or when the caller gives up on the
/// command — it kills the whole group. A shell that ended by itself was
/// reaped, and what it left running was meant to run.
struct Running(tokio::process::Child);

impl Running {
    /// Stdout, stderr and the exit status, read together.
    async fn output(&mut self) -> std::io::Result<std::process::Output> {
        use tokio::io::AsyncReadExt;
        async fn all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> std::io::Result<Vec<u8>> {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut bytes).await?;
            }
            Ok(bytes)
        }
        let (stdout, stderr) = (self.0.stdout.take(), self.0.stderr.take());
        let (stdout, stderr, status) = tokio::join!(all(stdout), all(stderr), self.0.wait());
        Ok(std::process::Output {
            status: status?,
            stdout: stdout?,
            stderr: stderr?,
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // `id()` is `None` once the shell was reaped: its pid (the group's
        // id) may then belong to someone else, and is never signalled.
        if let Some(pgid) = self.0.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: kill(2) on the process group our unreaped child leads.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

#[async_trait]
impl Transport for Local {
    fn host(&self) -> &str {
        &self.host
    }

    async fn exec(&self, cmd: &str, timeout: Duration) -> TResult<Output> {
        self.run(cmd, timeout).await
    }

    async fn exec_raw(&self, cmd: &str, timeout: Duration) -> TResult<RawOutput> {
        self.run_raw(cmd, timeout).await
    }

    async fn probe(&self, cmd: &str, timeout: Duration) -> TResult<Output> {
        self.run(cmd, timeout).await
    }

    async fn read_file(&self, path: &str) -> TResult<Vec<u8>> {
        tokio::fs::read(path)
            .await
            .map_err(|e| self.io("read", path, e))
    }

    async fn stat(&self, path: &str) -> TResult<Option<FileStat>> {
        match tokio::fs::metadata(path).await {
            Ok(m) => Ok(Some(FileStat {
                mode: m.permissions().mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                size: m.len(),
                is_dir: m.is_dir(),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("stat", path, e)),
        }
    }

    async fn write_file_atomic(&self, path: &str, bytes: &[u8], attrs: WriteAttrs) -> TResult<()> {
        let target = Path::new(path);
        let dir = target
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("file");
        let existing = self.stat(path).await?;
        let mode = attrs.mode.or(existing.map(|s| s.mode)).unwrap_or(0o644);
        let owner = attrs.owner.or(existing.map(|s| (s.uid, s.gid)));
        // Hidden name: a kubelet ignores dot-files in the manifests directory.
        let tmp = dir.join(format!(".{name}.remedy-{}", uuid::Uuid::now_v7().simple()));
        let tmp_str = tmp.to_string_lossy().into_owned();
        let result = async {
            let mut f = tokio::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .await
                .map_err(|e| self.io("create", &tmp_str, e))?;
            f.write_all(bytes)
                .await
                .map_err(|e| self.io("write", &tmp_str, e))?;
            f.sync_all()
                .await
                .map_err(|e| self.io("fsync", &tmp_str, e))?;
            drop(f);
            tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
                .await
                .map_err(|e| self.io("chmod", &tmp_str, e))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))
                    .map_err(|e| self.io("chown", &tmp_str, e))?;
            }
            tokio::fs::rename(&tmp, target)
                .await
                .map_err(|e| self.io("rename", path, e))?;
            if let Ok(d) = tokio::fs::File::open(dir).await {
                let _ = d.sync_all().await;
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn rename(&self, from: &str, to: &str) -> TResult<()> {
        tokio::fs::rename(from, to)
            .await
            .map_err(|e| self.io("rename", &format!("{from} -> {to}"), e))
    }

    async fn mkdir_p(&self, path: &str) -> TResult<()> {
        tokio::fs::create_dir_all(path)
            .await
            .map_err(|e| self.io("mkdir -p", path, e))
    }

    async fn remove(&self, path: &str) -> TResult<()> {
        match tokio::fs::remove_file(path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.io("remove", path, e)),
            _ => Ok(()),
        }
    }

    fn opener(&self) -> Option<std::sync::Arc<dyn super::StreamOpener>> {
        Some(std::sync::Arc::new(Local::new(self.host.clone())))
    }

    async fn open_stream(&self, target: &StreamTarget) -> TResult<Box<dyn AsyncStream>> {
        let stream: Box<dyn AsyncStream> = match target {
            StreamTarget::Unix(path) => Box::new(
                tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| self.stream_error(target, e))?,
            ),
            StreamTarget::Tcp(host, port) => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(|e| self.stream_error(target, e))?;
                // Small request/response traffic (etcd's gRPC): no Nagle wait.
                tcp.set_nodelay(true)
                    .map_err(|e| self.stream_error(target, e))?;
                Box::new(tcp)
            }
        };
        Ok(stream)
    }
}

#[async_trait]
impl super::StreamOpener for Local {
    async fn open(&self, target: &StreamTarget) -> TResult<Box<dyn AsyncStream>> {
        self.open_stream(target).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn failure(r: TResult<Box<dyn AsyncStream>>) -> StreamFailure {
        match r {
            Err(TransportError::Stream { failure, .. }) => failure,
            Err(e) => panic!("not a stream error: {e}"),
            Ok(_) => panic!("connected"),
        }
    }

    #[tokio::test]
    async fn open_stream_connects_and_says_why_it_cannot() {
        let dir = tempfile::tempdir().unwrap();
        let t = Local::new("lb");
        let path = |name: &str| dir.path().join(name).display().to_string();

        let sock = path("live.sock");
        let listener = tokio::net::UnixListener::bind(&sock).unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            conn.write_all(b"hello").await.unwrap();
        });
        let mut stream = t
            .open_stream(&StreamTarget::Unix(sock.clone()))
            .await
            .unwrap();
        let mut got = String::new();
        stream.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "hello");

        let missing = StreamTarget::Unix(path("missing.sock"));
        let err = t.open_stream(&missing).await.err().unwrap().to_string();
        assert!(
            err.starts_with(&format!("cannot connect to {missing} on lb:")),
            "{err}"
        );
        assert_eq!(
            failure(t.open_stream(&missing).await),
            StreamFailure::NotFound
        );

        std::fs::write(path("plain"), b"").unwrap();
        let plain = StreamTarget::Unix(path("plain"));
        assert_eq!(
            failure(t.open_stream(&plain).await),
            StreamFailure::NotASocket
        );
        let err = t.open_stream(&plain).await.err().unwrap().to_string();
        assert!(err.ends_with(": it is not a socket"), "{err}");

        // A socket file nobody listens on, as a crashed daemon leaves behind.
        drop(std::os::unix::net::UnixListener::bind(path("stale.sock")).unwrap());
        assert_eq!(
            failure(t.open_stream(&StreamTarget::Unix(path("stale.sock"))).await),
            StreamFailure::Refused
        );

        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        assert_eq!(
            failure(
                t.open_stream(&StreamTarget::Tcp("127.0.0.1".into(), port))
                    .await
            ),
            StreamFailure::Refused
        );
    }
}
