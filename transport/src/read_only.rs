//! `ReadOnly<T>`: a transport that refuses every mutating call. `plan` only
//! ever gets this, which is what makes "a dry-run writes nothing" a property of
//! the types rather than of each action's care. The one exception is
//! `open_stream`, passed through so a plan can read state over a socket
//! (HAProxy's runtime API); its users refuse to send changes when
//! `is_read_only` is true.

use super::{
    AsyncStream, FileStat, Output, RawOutput, StreamTarget, TResult, Transport, TransportError,
    WriteAttrs,
};
use async_trait::async_trait;
use std::time::Duration;

pub struct ReadOnly<'a> {
    inner: Inner<'a>,
}

enum Inner<'a> {
    Borrowed(&'a dyn Transport),
    /// A transport opened just for planning (another host, e.g. an LB).
    Owned(Box<dyn Transport>),
}

impl<'a> ReadOnly<'a> {
    pub fn new(inner: &'a dyn Transport) -> ReadOnly<'a> {
        ReadOnly {
            inner: Inner::Borrowed(inner),
        }
    }

    /// Wrap a transport the caller does not keep.
    pub fn owned(inner: Box<dyn Transport>) -> ReadOnly<'static> {
        ReadOnly {
            inner: Inner::Owned(inner),
        }
    }

    fn inner(&self) -> &dyn Transport {
        match &self.inner {
            Inner::Borrowed(t) => *t,
            Inner::Owned(t) => t.as_ref(),
        }
    }

    fn refuse<T>(&self, op: &'static str, target: &str) -> TResult<T> {
        Err(TransportError::ReadOnly {
            host: self.inner().host().to_string(),
            op,
            target: target.to_string(),
        })
    }
}

#[async_trait]
impl Transport for ReadOnly<'_> {
    fn host(&self) -> &str {
        self.inner().host()
    }
    async fn exec(&self, cmd: &str, _timeout: Duration) -> TResult<Output> {
        self.refuse("exec", cmd)
    }
    async fn exec_raw(&self, cmd: &str, _timeout: Duration) -> TResult<RawOutput> {
        self.refuse("exec", cmd)
    }
    async fn probe(&self, cmd: &str, timeout: Duration) -> TResult<Output> {
        self.inner().probe(cmd, timeout).await
    }
    async fn read_file(&self, path: &str) -> TResult<Vec<u8>> {
        self.inner().read_file(path).await
    }
    async fn stat(&self, path: &str) -> TResult<Option<FileStat>> {
        self.inner().stat(path).await
    }
    async fn write_file_atomic(
        &self,
        path: &str,
        _bytes: &[u8],
        _attrs: WriteAttrs,
    ) -> TResult<()> {
        self.refuse("write", path)
    }
    async fn rename(&self, from: &str, _to: &str) -> TResult<()> {
        self.refuse("rename", from)
    }
    async fn mkdir_p(&self, path: &str) -> TResult<()> {
        self.refuse("mkdir -p", path)
    }
    async fn remove(&self, path: &str) -> TResult<()> {
        self.refuse("remove", path)
    }
    /// Passed through: a stream changes nothing until something is sent on
    /// it, and its user checks `is_read_only` before sending a change.
    async fn open_stream(&self, target: &StreamTarget) -> TResult<Box<dyn AsyncStream>> {
        self.inner().open_stream(target).await
    }
    fn is_read_only(&self) -> bool {
        true
    }
    fn opener(&self) -> Option<std::sync::Arc<dyn super::StreamOpener>> {
        self.inner().opener()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Local;

    #[tokio::test]
    async fn refuses_every_mutation_and_allows_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let p = path.to_str().unwrap();
        let local = Local::new("h");
        let ro = ReadOnly::new(&local);
        let t = Duration::from_secs(5);
        assert!(matches!(
            ro.exec("touch /tmp/x", t).await,
            Err(TransportError::ReadOnly { .. })
        ));
        assert!(ro
            .write_file_atomic(p, b"y", WriteAttrs::default())
            .await
            .is_err());
        assert!(ro.rename(p, "/tmp/elsewhere").await.is_err());
        assert!(ro.remove(p).await.is_err());
        assert!(ro.mkdir_p(&format!("{p}.d")).await.is_err());
        assert_eq!(ro.read_file(p).await.unwrap(), b"x");
        assert!(ro.stat(p).await.unwrap().is_some());
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        assert!(!dir.path().join("f.d").exists());
    }

    #[tokio::test]
    async fn passes_streams_through() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        let _listener = tokio::net::UnixListener::bind(&sock).unwrap();
        let local = Local::new("h");
        let ro = ReadOnly::new(&local);
        let target = crate::StreamTarget::Unix(sock.display().to_string());
        assert!(ro.open_stream(&target).await.is_ok());
        assert!(ro.is_read_only());
    }
}
