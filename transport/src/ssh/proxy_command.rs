//! `ProxyCommand`: the SSH connection runs over a command's stdin and stdout
//! (`ssh -W %h:%p bastion`, `nc`, a cloud CLI), started exactly as OpenSSH
//! starts it — `$SHELL -c "exec COMMAND"` (`/bin/sh` without `$SHELL`),
//! tokens already expanded. Its stderr is kept (the tail of it) so that a
//! failed connection can say what the command said. The command is killed
//! when the connection is dropped.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, Join};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

/// The byte stream the SSH session speaks over.
pub type ProxyStream = Join<ChildStdout, ChildStdin>;

/// How much of the command's stderr is kept.
const STDERR_TAIL: usize = 8 * 1024;

/// A running proxy command.
pub struct ProxyChild {
    /// Killed on drop (`kill_on_drop`).
    _child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

/// Start `command` (tokens expanded) as OpenSSH would.
pub fn spawn(command: &str) -> std::io::Result<(ProxyStream, ProxyChild)> {
    let shell = std::env::var("SHELL")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    let mut child = Command::new(shell)
        .arg("-c")
        .arg(format!("exec {command}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let missing = || std::io::Error::other("the command's pipes were not set up");
    let stdin = child.stdin.take().ok_or_else(missing)?;
    let stdout = child.stdout.take().ok_or_else(missing)?;
    let stderr_pipe = child.stderr.take().ok_or_else(missing)?;
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let kept = stderr.clone();
    let reader = tokio::spawn(async move {
        let mut pipe = stderr_pipe;
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            if let Ok(mut k) = kept.lock() {
                k.extend_from_slice(&buf[..n]);
                let excess = k.len().saturating_sub(STDERR_TAIL);
                k.drain(..excess);
            }
        }
    });
    Ok((
        tokio::io::join(stdout, stdin),
        ProxyChild {
            _child: child,
            stderr,
            reader: Some(reader),
        },
    ))
}

impl ProxyChild {
    /// What the command wrote to stderr, once it has closed it (waiting a
    /// moment for that: it usually exits right after a failure).
    pub async fn stderr(&mut self) -> String {
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
        }
        let bytes = self.stderr.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn bytes_flow_through_the_command_and_its_stderr_is_kept() {
        let (mut stream, mut child) =
            spawn("sh -c 'echo starting >&2; head -c 5 | tr a-z A-Z'").unwrap();
        stream.write_all(b"hello").await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "HELLO");
        assert_eq!(child.stderr().await, "starting");
    }
}
