//! The HTTP stack under a [`crate::Kube`]: TLS (rustls, the cluster CA as the
//! only root, the certificate checked against the server's address or
//! `tls-server-name`) over a byte stream from a [`StreamOpener`] — an SSH
//! direct-tcpip channel to a master in production, a TCP connection for a
//! local kubeconfig — then hyper, then kube-rs's client.
//!
//! Two guards sit in front of every request: a read-only client refuses any
//! write before it is sent (a server-side dry run is a read), and a bearer
//! token, when that is the identity, is added here so it never travels
//! outside TLS.
//!
//! The TLS configuration names its crypto provider (aws-lc-rs) itself, so it
//! works whatever default the process installed.

use crate::access::{Access, Identity};
use crate::error::{chain, tls_hint, KubeError};
use http::{HeaderValue, Request, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use remedy_transport::{AsyncStream, StreamOpener, StreamTarget};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Why a connection could not be made, carried through hyper inside an
/// `io::Error` and found again in the error's source chain.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    #[error("{0}")]
    Stream(String),
    #[error("{0}")]
    Tls(String),
    #[error("no TLS session within {0:?}")]
    Timeout(Duration),
}

/// A write refused by a read-only client, found again like [`DialError`].
#[derive(Debug, thiserror::Error)]
#[error("{method} {path} on a read-only client")]
pub(crate) struct Refused {
    pub method: String,
    pub path: String,
}

/// The rustls configuration for `access`: its CA as the only trust root,
/// its client certificate when it has one.
pub(crate) fn tls_config(access: &Access) -> Result<Arc<rustls::ClientConfig>, KubeError> {
    let bad = |message: String| KubeError::Kubeconfig {
        source_name: access.source_name.clone(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(&access.ca_pem) {
        let cert = cert.map_err(|e| bad(format!("its CA is not PEM: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("its CA is not a usable certificate: {e}")))?;
        found += 1;
    }
    if found == 0 {
        return Err(bad("its CA holds no certificate".into()));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("TLS setup: {e}")))?
        .with_root_certificates(roots);
    let mut config = match &access.identity {
        Identity::ClientCert { cert_pem, key_pem } => {
            let certs = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("its client certificate is not PEM: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem)
                .map_err(|e| bad(format!("its client key is not a PEM private key: {e}")))?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                bad(format!(
                    "its client certificate and key do not go together: {e}"
                ))
            })?
        }
        Identity::Token(_) | Identity::Anonymous => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TLS stream as hyper wants it.
pub(crate) struct TlsConn(TokioIo<tokio_rustls::client::TlsStream<Box<dyn AsyncStream>>>);

impl Connection for TlsConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Dials the one API server of `access` through `opener` and speaks TLS,
/// whatever URI hyper asks for (it is always our own server).
#[derive(Clone)]
pub(crate) struct Dial {
    opener: Arc<dyn StreamOpener>,
    target: StreamTarget,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

impl Dial {
    pub(crate) fn new(
        access: &Access,
        opener: Arc<dyn StreamOpener>,
        timeout: Duration,
    ) -> Result<Dial, KubeError> {
        let (host, port) = access.host_port()?;
        let name = access
            .tls_server_name
            .clone()
            .unwrap_or_else(|| host.clone());
        let server_name =
            ServerName::try_from(name.clone()).map_err(|e| KubeError::Kubeconfig {
                source_name: access.source_name.clone(),
                message: format!("`{name}` cannot be checked against a certificate: {e}"),
            })?;
        Ok(Dial {
            opener,
            target: StreamTarget::Tcp(host, port),
            server_name,
            tls: tls_config(access)?,
            timeout,
        })
    }

    async fn dial(self) -> std::io::Result<TlsConn> {
        let stream = match tokio::time::timeout(self.timeout, self.opener.open(&self.target)).await
        {
            Err(_) => return Err(std::io::Error::other(DialError::Timeout(self.timeout))),
            Ok(Err(e)) => return Err(std::io::Error::other(DialError::Stream(e.to_string()))),
            Ok(Ok(s)) => s,
        };
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        let handshake = connector.connect(self.server_name.clone(), stream);
        match tokio::time::timeout(self.timeout, handshake).await {
            Err(_) => Err(std::io::Error::other(DialError::Timeout(self.timeout))),
            Ok(Err(e)) => Err(std::io::Error::other(DialError::Tls(chain(&e)))),
            Ok(Ok(tls)) => Ok(TlsConn(TokioIo::new(tls))),
        }
    }
}

impl tower::Service<Uri> for Dial {
    type Response = TlsConn;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<TlsConn>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        Box::pin(self.clone().dial())
    }
}

/// Adds the bearer token and refuses writes on a read-only client.
#[derive(Clone)]
pub(crate) struct Guard<S> {
    inner: S,
    token: Option<HeaderValue>,
    read_only: bool,
}

/// A request that changes nothing: a read, or a server-side dry run.
pub(crate) fn is_read(req: &Request<kube::client::Body>) -> bool {
    let method = req.method();
    method == http::Method::GET
        || method == http::Method::HEAD
        || req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "dryRun=All"))
}

impl<S> tower::Service<Request<kube::client::Body>> for Guard<S>
where
    S: tower::Service<Request<kube::client::Body>>,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, tower::BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<kube::client::Body>) -> Self::Future {
        if self.read_only && !is_read(&req) {
            let refused = Refused {
                method: req.method().to_string(),
                path: req.uri().path().to_string(),
            };
            return Box::pin(async move { Err(refused.into()) });
        }
        if let Some(t) = &self.token {
            req.headers_mut()
                .insert(http::header::AUTHORIZATION, t.clone());
        }
        let fut = self.inner.call(req);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
}

/// The kube-rs client for `access` over streams from `opener`.
pub(crate) fn client(
    access: &Access,
    opener: Arc<dyn StreamOpener>,
    timeout: Duration,
    read_only: bool,
) -> Result<kube::Client, KubeError> {
    use kube::client::ConfigExt;
    let dial = Dial::new(access, opener, timeout)?;
    let uri: Uri = access.server.parse().map_err(|e| KubeError::Kubeconfig {
        source_name: access.source_name.clone(),
        message: format!("server `{}` is not a URL: {e}", access.server),
    })?;
    let token = match &access.identity {
        Identity::Token(t) => Some({
            let mut v = HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| {
                KubeError::Kubeconfig {
                    source_name: access.source_name.clone(),
                    message: "its token has characters a header cannot carry".into(),
                }
            })?;
            v.set_sensitive(true);
            v
        }),
        _ => None,
    };
    let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build::<_, kube::client::Body>(dial);
    let guarded = Guard {
        inner: http,
        token,
        read_only,
    };
    let config = kube::Config::new(uri);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .service(guarded);
    Ok(kube::Client::new(service, "default"))
}

/// A `KubeError` for a failed send, from whatever hyper and kube-rs wrapped
/// around our own errors.
pub(crate) fn send_error(server: &str, what: &str, e: &kube::Error) -> KubeError {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(mut err) = cur {
        // An `io::Error`'s `source()` skips the error it wraps: look inside.
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            err = inner;
        }
        if let Some(r) = err.downcast_ref::<Refused>() {
            return KubeError::ReadOnly {
                method: r.method.clone(),
                path: r.path.clone(),
            };
        }
        if let Some(d) = err.downcast_ref::<DialError>() {
            return match d {
                DialError::Stream(detail) => KubeError::Connect {
                    server: server.to_string(),
                    detail: detail.clone(),
                },
                DialError::Tls(detail) => KubeError::Tls {
                    server: server.to_string(),
                    detail: detail.clone(),
                    hint: tls_hint(detail),
                },
                DialError::Timeout(t) => KubeError::Timeout {
                    server: server.to_string(),
                    what: format!("{what} (connecting)"),
                    timeout: *t,
                },
            };
        }
        cur = err.source();
    }
    KubeError::Connect {
        server: server.to_string(),
        detail: chain(e),
    }
}
