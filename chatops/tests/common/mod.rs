//! Shared test fixtures: a capturing HTTP receiver on loopback, and a server
//! for a router.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;

/// One request a receiver got.
#[derive(Debug, Clone)]
pub struct Captured {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Captured {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the receiver got JSON")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

#[derive(Clone)]
struct Script {
    captured: Arc<Mutex<Vec<Captured>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
}

async fn record(
    State(script): State<Script>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    script.captured.lock().unwrap().push(Captured {
        path: uri.path().to_string(),
        headers,
        body: body.to_vec(),
    });
    let status = script.statuses.lock().unwrap().pop_front().unwrap_or(200);
    (
        StatusCode::from_u16(status).unwrap(),
        format!("scripted {status}"),
    )
}

/// An HTTP server on 127.0.0.1 that records every request and answers with
/// the given statuses in turn, then 200.
pub struct Receiver {
    pub base: String,
    captured: Arc<Mutex<Vec<Captured>>>,
}

impl Receiver {
    pub async fn start(statuses: &[u16]) -> Receiver {
        let captured = Arc::new(Mutex::new(Vec::new()));
        let state = Script {
            captured: Arc::clone(&captured),
            statuses: Arc::new(Mutex::new(statuses.iter().copied().collect())),
        };
        let app = Router::new().fallback(record).with_state(state);
        Receiver {
            base: serve(app).await,
            captured,
        }
    }

    /// A URL on this receiver, with a secret-looking path like real webhook URLs.
    pub fn url(&self) -> String {
        format!("{}/services/T000/B000/secret-token", self.base)
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.captured.lock().unwrap().clone()
    }

    pub fn only(&self) -> Captured {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "expected one request, got {requests:#?}");
        requests[0].clone()
    }
}

/// Serves `app` on an ephemeral loopback port through `remedy serve`'s own
/// server loop (default limits); returns "http://127.0.0.1:PORT".
pub async fn serve(app: Router) -> String {
    serve_with(app, remedy_chatops::ServeLimits::default()).await
}

/// `serve` within the given limits.
pub async fn serve_with(app: Router, limits: remedy_chatops::ServeLimits) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(remedy_chatops::serve(
        listener,
        app,
        limits,
        std::future::pending(),
    ));
    format!("http://{addr}")
}

/// A loopback URL nothing listens on.
pub async fn refused_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}
