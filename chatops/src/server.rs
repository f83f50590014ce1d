//! The HTTP server loop behind `remedy serve`: accepts connections on a
//! listener and serves the callback router over HTTP/1.1, within limits that
//! keep careless or hostile clients from holding the server (issue 14, item 8).
//!
//! - **Header read timeout**: a connection must send a complete request head
//!   within `header_read_timeout` of starting one — also while idle between
//!   keep-alive requests — or it is closed. Without it, half-open connections
//!   stayed open as long as the client liked.
//! - **Body read timeout and size**: the body must arrive within
//!   `body_read_timeout` (else 408) and be at most `max_body_bytes` (else 413);
//!   chat callbacks are a few KiB.
//! - **Connection cap**: at most `max_connections` are served at once; one
//!   more is answered `503` with `Retry-After` and closed at once, so excess
//!   connections neither queue unseen nor cost a task.
//!
//! The router's handlers (in `serve.rs`) do not see any of this.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// How much a client may take of the server. The defaults suit chat
/// callbacks: small requests from a few senders, answered in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Time to send a complete request head (request line and headers),
    /// counted from the first byte of a request or from the end of the last
    /// response on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// Time to send the whole request body once the head is read.
    pub body_read_timeout: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            max_connections: 512,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_body_bytes: 256 * 1024,
        }
    }
}

/// What a connection past the cap is told before it is closed.
fn busy_response() -> Vec<u8> {
    let body =
        r#"{"ok":false,"error":"remedy serve has too many open connections; retry in a second"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serve `router` on `listener` within `limits` until `shutdown` completes;
/// then stop accepting, let requests in flight finish (bounded by the read
/// timeouts), and return.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()>,
) {
    let router = router.layer(axum::middleware::from_fn(move |req, next| {
        read_body(limits, req, next)
    }));
    let busy = busy_response();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                // Out of file descriptors and the like: the listener is
                // fine, so wait a little rather than spin or stop serving.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            // Never blocks the loop: the answer fits in a fresh socket's
            // send buffer, and a client that does not read it loses nothing.
            let _ = stream.try_write(&busy);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = http.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = stop.wait_for(|stopping| *stopping) => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        });
    }
    let _ = stop_tx.send(true);
    // Every connection holds a permit until it is closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

/// Read the whole body within the limits, then hand the request on with it.
async fn read_body(limits: ServeLimits, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let read = axum::body::to_bytes(body, limits.max_body_bytes);
    let bytes = match tokio::time::timeout(limits.body_read_timeout, read).await {
        Err(_) => {
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {:?}",
                    limits.body_read_timeout
                ),
            )
        }
        Ok(Err(_)) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the request body is larger than {} bytes (chat callbacks are a few KiB) or was cut off",
                    limits.max_body_bytes
                ),
            )
        }
        Ok(Ok(bytes)) => bytes,
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn refuse(status: StatusCode, error: String) -> Response {
    (status, Json(json!({"ok": false, "error": error}))).into_response()
}
