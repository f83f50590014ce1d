//! `Kube`: a client bound to one API server, every call bounded by a
//! timeout, writes refused when it was opened read-only. Raw requests and
//! JSON in and out; objects (`object.rs`), health (`health.rs`), webhooks
//! and metrics build on these.

use crate::access::Access;
use crate::connect;
use crate::error::KubeError;
use http::{Method, Request};
use http_body_util::BodyExt;
use remedy_transport::StreamOpener;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one call may take unless the caller says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// The field manager remedy's writes are recorded under.
pub const FIELD_MANAGER: &str = "remedy";

/// What the API server calls a kind: its resource (plural) and whether its
/// objects live in a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    pub api_version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
}

impl Kind {
    /// The collection's path: `/api/v1/namespaces/ns/configmaps`.
    pub fn collection(&self, namespace: Option<&str>) -> String {
        let base = if self.api_version.contains('/') {
            format!("/apis/{}", self.api_version)
        } else {
            format!("/api/{}", self.api_version)
        };
        match namespace.filter(|_| self.namespaced) {
            Some(ns) => format!("{base}/namespaces/{ns}/{}", self.plural),
            None => format!("{base}/{}", self.plural),
        }
    }

    /// One object's path.
    pub fn object(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{name}", self.collection(namespace))
    }
}

/// A connection to one API server.
#[derive(Clone)]
pub struct Kube {
    client: kube::Client,
    server: String,
    timeout: Duration,
    read_only: bool,
    kinds: Arc<Mutex<HashMap<(String, String), Kind>>>,
}

impl std::fmt::Debug for Kube {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kube")
            .field("server", &self.server)
            .field("timeout", &self.timeout)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

/// How long to wait before sending a request refused with 429 again: the
/// server's `Retry-After` (seconds), at most 5 s; 1 s when it names none.
fn retry_after(headers: &http::HeaderMap) -> Duration {
    let secs = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    Duration::from_secs(secs.clamp(1, 5))
}

/// A raw answer: the HTTP status and the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: u16,
    pub body: String,
}

impl Kube {
    /// A client for `access.server`, dialled through `opener` (an SSH
    /// tunnel, or `remedy_transport::Local` for a local kubeconfig).
    /// Nothing is sent yet. `timeout` bounds each call, connecting included;
    /// a `read_only` client refuses every request but reads and server-side
    /// dry runs before it is sent.
    pub fn connect(
        access: &Access,
        opener: Arc<dyn StreamOpener>,
        timeout: Duration,
        read_only: bool,
    ) -> Result<Kube, KubeError> {
        Ok(Kube {
            client: connect::client(access, opener, timeout, read_only)?,
            server: access.server.clone(),
            timeout,
            read_only,
            kinds: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    /// The server's URL, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The same client with another per-call timeout (e.g. a long list).
    pub fn with_timeout(mut self, timeout: Duration) -> Kube {
        self.timeout = timeout;
        self
    }

    /// Send one request and read the whole answer, within the timeout.
    /// Any HTTP status is an `Ok` here; a 429 (too many requests) is sent
    /// again after the server's Retry-After while the timeout allows.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Answer, KubeError> {
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let (content_type, bytes) = match body {
            Some((content_type, bytes)) => (Some(content_type), bytes),
            None => (None, Vec::new()),
        };
        let deadline = tokio::time::Instant::now() + self.timeout;
        let call = async {
            loop {
                let mut req = Request::builder().method(method.clone()).uri(path);
                if let Some(ct) = content_type {
                    req = req.header(http::header::CONTENT_TYPE, ct);
                }
                req = req.header(http::header::ACCEPT, "application/json, */*");
                let req = req
                    .body(kube::client::Body::from(bytes.clone()))
                    .map_err(|e| KubeError::Decode {
                        server: self.server.clone(),
                        what: what.clone(),
                        detail: e.to_string(),
                    })?;
                let res = self
                    .client
                    .send(req)
                    .await
                    .map_err(|e| connect::send_error(&self.server, &what, &e))?;
                let code = res.status().as_u16();
                let retry_after = retry_after(res.headers());
                let bytes = res
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| KubeError::Connect {
                        server: self.server.clone(),
                        detail: format!("the answer to {what} broke off: {e}"),
                    })?
                    .to_bytes();
                if code == 429 && tokio::time::Instant::now() + retry_after < deadline {
                    // Refused before it was handled (inflight limits, API
                    // Priority and Fairness): an overloaded API server is
                    // what remedy may be there to fix, and kubeadm's
                    // admin.conf is not exempt since 1.29. Try again, as
                    // client-go does, while the call's timeout allows;
                    // then the 429 is the answer.
                    tokio::time::sleep(retry_after).await;
                    continue;
                }
                return Ok(Answer {
                    code,
                    body: String::from_utf8_lossy(&bytes).into_owned(),
                });
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r,
            Err(_) => Err(KubeError::Timeout {
                server: self.server.clone(),
                what,
                timeout: self.timeout,
            }),
        }
    }

    /// An error status as a `KubeError::Api`, with the server's own words.
    pub fn api_error(&self, what: &str, answer: &Answer) -> KubeError {
        let status: Option<Value> = serde_json::from_str(&answer.body).ok();
        let (reason, message) = match status.as_ref().filter(|v| v["kind"] == "Status") {
            Some(s) => (
                s["reason"].as_str().unwrap_or_default().to_string(),
                s["message"].as_str().unwrap_or_default().to_string(),
            ),
            None => (String::new(), answer.body.trim().to_string()),
        };
        KubeError::Api {
            server: self.server.clone(),
            what: what.to_string(),
            code: answer.code,
            reason,
            message,
        }
    }

    /// A request whose 2xx answer is JSON.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Value, KubeError> {
        let what = format!("{method} {}", path.split('?').next().unwrap_or(path));
        let answer = self.send(method, path, body).await?;
        if !(200..300).contains(&answer.code) {
            return Err(self.api_error(&what, &answer));
        }
        serde_json::from_str(&answer.body).map_err(|e| KubeError::Decode {
            server: self.server.clone(),
            what,
            detail: format!("not JSON: {e}"),
        })
    }

    /// GET, with 404 as `None`.
    pub async fn get_json(&self, path: &str) -> Result<Option<Value>, KubeError> {
        match self.json(Method::GET, path, None).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET a text endpoint (`/metrics`, `/version`); any 2xx is fine.
    pub async fn get_text(&self, path: &str) -> Result<String, KubeError> {
        let answer = self.send(Method::GET, path, None).await?;
        if !(200..300).contains(&answer.code) {
            return Err(self.api_error(&format!("GET {path}"), &answer));
        }
        Ok(answer.body)
    }

    /// The resource behind `api_version` + `kind`, from discovery (cached).
    pub async fn kind(&self, api_version: &str, kind: &str) -> Result<Kind, KubeError> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(k) = self.kinds.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(k);
        }
        let path = if api_version.contains('/') {
            format!("/apis/{api_version}")
        } else {
            format!("/api/{api_version}")
        };
        let unknown = || KubeError::UnknownKind {
            server: self.server.clone(),
            api_version: api_version.to_string(),
            kind: kind.to_string(),
        };
        let list = self.get_json(&path).await?.ok_or_else(unknown)?;
        let found = list["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["kind"] == kind && !r["name"].as_str().unwrap_or("/").contains('/'))
            .ok_or_else(unknown)?;
        let k = Kind {
            api_version: api_version.to_string(),
            kind: kind.to_string(),
            plural: found["name"].as_str().unwrap_or_default().to_string(),
            namespaced: found["namespaced"].as_bool().unwrap_or(false),
        };
        if let Ok(mut m) = self.kinds.lock() {
            m.insert(key, k.clone());
        }
        Ok(k)
    }
}
