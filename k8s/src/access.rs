//! `Access`: what it takes to talk to one API server — its URL, the CA to
//! verify it with, and the credentials to present — read from a kubeconfig
//! (a local file, or a master's admin.conf read over SSH and kept in memory).
//!
//! Only what can be verified is accepted: `insecure-skip-tls-verify` is
//! refused, and so are exec and auth-provider plugins (they would run
//! programs on the jump host on a remote file's say-so).

use crate::error::KubeError;
use base64::Engine;
use kube::config::{AuthInfo, Kubeconfig};
use std::path::{Path, PathBuf};

/// How the client proves who it is.
#[derive(Clone)]
pub enum Identity {
    /// A client certificate and its key (PEM), as kubeadm's admin.conf has.
    ClientCert { cert_pem: Vec<u8>, key_pem: Vec<u8> },
    /// A bearer token (a service account's, say).
    Token(String),
    /// Nothing: only what anonymous users may see (`/livez`, `/readyz`).
    Anonymous,
}

/// One API server and how to reach it safely.
#[derive(Clone)]
pub struct Access {
    /// `https://host:port`, as the client dials it.
    pub server: String,
    /// The CA the server's certificate must chain to (PEM).
    pub ca_pem: Vec<u8>,
    pub identity: Identity,
    /// The name to verify the certificate against, when not the server's host.
    pub tls_server_name: Option<String>,
    /// Where this came from, for messages.
    pub source_name: String,
}

impl std::fmt::Debug for Access {
    // Keys and tokens must never reach a log or the journal.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let identity = match &self.identity {
            Identity::ClientCert { .. } => "client certificate",
            Identity::Token(_) => "bearer token",
            Identity::Anonymous => "anonymous",
        };
        f.debug_struct("Access")
            .field("server", &self.server)
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("identity", &identity)
            .field("tls_server_name", &self.tls_server_name)
            .field("source_name", &self.source_name)
            .finish()
    }
}

impl Access {
    /// Read a kubeconfig's `context` (default: its current context).
    /// `base_dir` resolves relative file references of a local kubeconfig;
    /// `None` (a file read from a remote host) refuses file references, since
    /// those files are on the other machine.
    pub fn from_kubeconfig(
        text: &str,
        source_name: &str,
        context: Option<&str>,
        base_dir: Option<&Path>,
    ) -> Result<Access, KubeError> {
        let bad = |message: String| KubeError::Kubeconfig {
            source_name: source_name.to_string(),
            message,
        };
        let config = Kubeconfig::from_yaml(text)
            .map_err(|e| bad(format!("not a kubeconfig: {}", crate::error::chain(&e))))?;
        let context_name = match context {
            Some(c) => c.to_string(),
            None => config
                .current_context
                .clone()
                .filter(|c| !c.is_empty())
                .or_else(|| (config.contexts.len() == 1).then(|| config.contexts[0].name.clone()))
                .ok_or_else(|| bad("it has no current-context; name one (--context)".into()))?,
        };
        let ctx = config
            .contexts
            .iter()
            .find(|c| c.name == context_name)
            .and_then(|c| c.context.clone())
            .ok_or_else(|| {
                let known: Vec<&str> = config.contexts.iter().map(|c| c.name.as_str()).collect();
                bad(format!(
                    "no context `{context_name}` (it has: {})",
                    known.join(", ")
                ))
            })?;
        let cluster = config
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .and_then(|c| c.cluster.clone())
            .ok_or_else(|| bad(format!("no cluster `{}`", ctx.cluster)))?;
        let server = cluster
            .server
            .clone()
            .ok_or_else(|| bad(format!("cluster `{}` has no server", ctx.cluster)))?;
        if !server.starts_with("https://") {
            return Err(bad(format!(
                "server `{server}` is not https://: remedy only talks to API servers it can verify"
            )));
        }
        if cluster.insecure_skip_tls_verify == Some(true) {
            return Err(bad(format!(
                "cluster `{}` sets insecure-skip-tls-verify: remedy verifies the API server's certificate; give it certificate-authority-data",
                ctx.cluster
            )));
        }
        let ca_pem = data_or_file(
            cluster.certificate_authority_data.as_deref(),
            cluster.certificate_authority.as_deref(),
            base_dir,
            "certificate-authority",
        )
        .map_err(bad)?
        .ok_or_else(|| {
            bad(format!(
                "cluster `{}` has no certificate-authority(-data): the API server could not be verified",
                ctx.cluster
            ))
        })?;
        let user = ctx.user.clone().unwrap_or_default();
        let auth = config
            .auth_infos
            .iter()
            .find(|a| a.name == user)
            .and_then(|a| a.auth_info.clone());
        let identity = match auth {
            None => Identity::Anonymous,
            Some(a) => identity(&a, base_dir).map_err(bad)?,
        };
        Ok(Access {
            server: server.trim_end_matches('/').to_string(),
            ca_pem,
            identity,
            tls_server_name: cluster.tls_server_name.clone(),
            source_name: source_name.to_string(),
        })
    }

    /// Read a local kubeconfig file.
    pub fn from_file(path: &Path, context: Option<&str>) -> Result<Access, KubeError> {
        let text = std::fs::read_to_string(path).map_err(|e| KubeError::Kubeconfig {
            source_name: path.display().to_string(),
            message: format!("cannot read it: {e}"),
        })?;
        Access::from_kubeconfig(
            &text,
            &path.display().to_string(),
            context,
            path.parent().or(Some(Path::new("."))),
        )
    }

    /// The same credentials aimed at another server of the same cluster
    /// (one master's own API server rather than the load balancer).
    pub fn with_server(mut self, server: &str) -> Access {
        self.server = server.trim_end_matches('/').to_string();
        self
    }

    /// Host and port of the server URL, as the dialler is asked for them.
    pub fn host_port(&self) -> Result<(String, u16), KubeError> {
        let uri: http::Uri = self.server.parse().map_err(|e| KubeError::Kubeconfig {
            source_name: self.source_name.clone(),
            message: format!("server `{}` is not a URL: {e}", self.server),
        })?;
        let host = uri
            .host()
            .ok_or_else(|| KubeError::Kubeconfig {
                source_name: self.source_name.clone(),
                message: format!("server `{}` has no host", self.server),
            })?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok((host, uri.port_u16().unwrap_or(443)))
    }
}

fn identity(a: &AuthInfo, base_dir: Option<&Path>) -> Result<Identity, String> {
    if a.exec.is_some() || a.auth_provider.is_some() {
        return Err("its user authenticates with an exec or auth-provider plugin, which remedy does not run; use a client certificate or a token".into());
    }
    let key_data = a
        .client_key_data
        .as_ref()
        .map(|s| secrecy_text(s).to_string());
    let cert = data_or_file(
        a.client_certificate_data.as_deref(),
        a.client_certificate.as_deref(),
        base_dir,
        "client-certificate",
    )?;
    let key = data_or_file(
        key_data.as_deref(),
        a.client_key.as_deref(),
        base_dir,
        "client-key",
    )?;
    match (cert, key) {
        (Some(cert_pem), Some(key_pem)) => return Ok(Identity::ClientCert { cert_pem, key_pem }),
        (Some(_), None) | (None, Some(_)) => return Err(
            "its user has a client certificate without its key (or a key without its certificate)"
                .into(),
        ),
        (None, None) => {}
    }
    if let Some(t) = &a.token {
        return Ok(Identity::Token(secrecy_text(t).trim().to_string()));
    }
    if let Some(f) = &a.token_file {
        let bytes = read_referenced(f, base_dir, "token-file")?;
        return Ok(Identity::Token(
            String::from_utf8_lossy(&bytes).trim().to_string(),
        ));
    }
    Ok(Identity::Anonymous)
}

fn secrecy_text(s: &secrecy::SecretString) -> &str {
    use secrecy::ExposeSecret;
    s.expose_secret()
}

/// Inline base64 data, else a referenced file, else nothing.
fn data_or_file(
    data: Option<&str>,
    file: Option<&str>,
    base_dir: Option<&Path>,
    what: &str,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(d) = data.filter(|d| !d.trim().is_empty()) {
        let cleaned: String = d.chars().filter(|c| !c.is_whitespace()).collect();
        return base64::engine::general_purpose::STANDARD
            .decode(cleaned)
            .map(Some)
            .map_err(|e| format!("{what}-data is not base64: {e}"));
    }
    match file.filter(|f| !f.is_empty()) {
        Some(f) => read_referenced(f, base_dir, what).map(Some),
        None => Ok(None),
    }
}

fn read_referenced(file: &str, base_dir: Option<&Path>, what: &str) -> Result<Vec<u8>, String> {
    let Some(base) = base_dir else {
        return Err(format!(
            "{what} refers to the file {file} on that host; remedy only uses data embedded in a remote kubeconfig ({what}-data)"
        ));
    };
    let path: PathBuf = if Path::new(file).is_absolute() {
        PathBuf::from(file)
    } else {
        base.join(file)
    };
    std::fs::read(&path).map_err(|e| format!("cannot read its {what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="; // "-----BEGIN CERTIFICATE-----\n"

    fn config(extra_cluster: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443/\n{extra_cluster}contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\ncurrent-context: ctx\nusers:\n- name: u\n  user:\n{user}"
        )
    }

    #[test]
    fn reads_embedded_data_and_refuses_what_cannot_be_verified() {
        let text = config(
            &format!("    certificate-authority-data: {CA}\n"),
            "    token: abc\n",
        );
        let a = Access::from_kubeconfig(&text, "test", None, None).unwrap();
        assert_eq!(a.server, "https://10.0.0.1:6443");
        assert_eq!(a.ca_pem, b"-----BEGIN CERTIFICATE-----\n");
        assert!(matches!(a.identity, Identity::Token(ref t) if t == "abc"));
        assert_eq!(a.host_port().unwrap(), ("10.0.0.1".to_string(), 6443));
        assert!(
            !format!("{a:?}").contains("abc"),
            "the token is never shown"
        );

        let insecure = config("    insecure-skip-tls-verify: true\n", "    token: abc\n");
        let e = Access::from_kubeconfig(&insecure, "test", None, None).unwrap_err();
        assert!(e.to_string().contains("insecure-skip-tls-verify"), "{e}");

        let no_ca = config("", "    token: abc\n");
        let e = Access::from_kubeconfig(&no_ca, "test", None, None).unwrap_err();
        assert!(e.to_string().contains("no certificate-authority"), "{e}");

        let file_ref = config(
            "    certificate-authority: /etc/kubernetes/pki/ca.crt\n",
            "    token: abc\n",
        );
        let e =
            Access::from_kubeconfig(&file_ref, "master-1:/etc/kubernetes/admin.conf", None, None)
                .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "master-1:/etc/kubernetes/admin.conf: certificate-authority refers to the file"
            ),
            "{e}"
        );

        let exec = config(
            &format!("    certificate-authority-data: {CA}\n"),
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n",
        );
        let e = Access::from_kubeconfig(&exec, "test", None, None).unwrap_err();
        assert!(e.to_string().contains("exec or auth-provider"), "{e}");

        let e = Access::from_kubeconfig(&text, "test", Some("other"), None).unwrap_err();
        assert_eq!(e.to_string(), "test: no context `other` (it has: ctx)");
    }
}
