//! `KubeError`: why talking to an API server failed, said so an operator
//! knows what to do next — which server, what was asked, and a hint.

use std::time::Duration;

/// Why a Kubernetes API call failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The kubeconfig (or the admin.conf read from a master) is unusable.
    #[error("{source_name}: {message}")]
    Kubeconfig {
        /// Where it came from (a path, or `master-1:/etc/kubernetes/admin.conf`).
        source_name: String,
        message: String,
    },
    /// No byte stream to the API server (the tunnel or the TCP connection).
    #[error("cannot connect to the API server {server}: {detail}")]
    Connect { server: String, detail: String },
    /// TLS failed: most often the server's certificate is not signed by the
    /// CA we trust, or does not name the address we asked for.
    #[error("TLS with the API server {server} failed: {detail}{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Tls {
        server: String,
        detail: String,
        hint: Option<String>,
    },
    /// The call did not finish in time: a hung or overloaded API server.
    #[error("the API server {server} did not answer {what} within {}s", timeout.as_secs_f64())]
    Timeout {
        server: String,
        what: String,
        timeout: Duration,
    },
    /// The server answered with an error status.
    #[error("the API server {server} refused {what}: {message} (HTTP {code}{})", if reason.is_empty() { String::new() } else { format!(", {reason}") })]
    Api {
        server: String,
        what: String,
        code: u16,
        reason: String,
        message: String,
    },
    /// A write reached a client opened read-only (planning): a bug in the
    /// caller, refused before anything was sent.
    #[error("{method} {path} refused: this client is read-only (planning); this is a bug in the action's plan, please report it")]
    ReadOnly { method: String, path: String },
    /// The API server knows no such kind.
    #[error("the API server {server} has no kind {kind} in {api_version}")]
    UnknownKind {
        server: String,
        api_version: String,
        kind: String,
    },
    /// The answer could not be understood.
    #[error("unexpected answer from the API server {server} to {what}: {detail}")]
    Decode {
        server: String,
        what: String,
        detail: String,
    },
}

impl KubeError {
    /// Worth trying again: the server may come back or calm down.
    pub fn retryable(&self) -> bool {
        match self {
            KubeError::Connect { .. } | KubeError::Timeout { .. } => true,
            KubeError::Api { code, .. } => matches!(code, 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// The object changed since it was read (HTTP 409 on a precondition).
    pub fn is_conflict(&self) -> bool {
        matches!(self, KubeError::Api { code: 409, .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, KubeError::Api { code: 404, .. })
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            KubeError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Every message in an error's source chain, joined: hyper and rustls nest
/// the useful part several levels down.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// What to do about a TLS failure, from rustls's words.
pub(crate) fn tls_hint(detail: &str) -> Option<String> {
    if detail.contains("UnknownIssuer") || detail.contains("BadSignature") {
        Some("the server's certificate is not signed by the CA this client trusts: is the kubeconfig for this cluster?".into())
    } else if detail.contains("NotValidForName") || detail.contains("not valid for name") {
        Some("the server's certificate does not name the address dialled: aim at an address in its SANs (the master's node IP), or set tls-server-name".into())
    } else if detail.contains("Expired") {
        Some("the server's certificate has expired: renew it (remedy run cert-renew)".into())
    } else {
        None
    }
}
