//! How a member is reached: the `Dialer` seam and its plain-TCP implementation.
//!
//! In production remedy dials through an SSH direct-tcpip channel to the
//! member's address on its master; tests use `TcpDialer` or a proxy of their
//! own. TLS and HTTP/2 run on top of whatever stream a dialer returns, so a
//! dialer never sees plaintext gRPC.

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite};

/// A bidirectional byte stream to one member (a TCP socket, an SSH channel, …).
pub trait ByteStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> ByteStream for T {}

/// The stream a dialer hands back.
pub type BoxStream = Box<dyn ByteStream>;

/// Opens a byte stream to `host:port`, as seen from wherever the dialer runs.
///
/// Called once per connection: again after the stream breaks, so it must be
/// cheap to call repeatedly (reuse the SSH session, open a new channel).
#[async_trait]
pub trait Dialer: Send + Sync {
    async fn dial(&self, host: &str, port: u16) -> std::io::Result<BoxStream>;
}

/// Dials with a plain TCP connection from this machine.
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpDialer;

#[async_trait]
impl Dialer for TcpDialer {
    async fn dial(&self, host: &str, port: u16) -> std::io::Result<BoxStream> {
        let stream = tokio::net::TcpStream::connect((host, port)).await?;
        // gRPC sends many small frames; Nagle would add latency to each call.
        stream.set_nodelay(true)?;
        Ok(Box::new(stream))
    }
}
