//! The client certificate in a kubeconfig (admin.conf, super-admin.conf,
//! controller-manager.conf, scheduler.conf, kubelet.conf): read it, and
//! replace it with a renewed one.
//!
//! kubeadm embeds the certificate and key as base64 of PEM in
//! `users[].user.client-certificate-data` / `client-key-data`; kubelet.conf
//! usually points at files instead (`client-certificate:
//! /var/lib/kubelet/pki/kubelet-client-current.pem`), which the kubelet rotates
//! itself — [`client_credential`] reports that, and [`replace_client_cert`]
//! refuses it. The user is the one the `current-context` names; without a
//! usable current context, the first user.
//!
//! Why text splicing: kubeadm rewrites the whole file from its parsed form,
//! which is fine for kubeadm but would make remedy's diff (which the operator
//! approves) show every reordered key and requoted value. Instead the file is
//! parsed with remedy's spanned YAML reader, the two base64 scalars are
//! located, and only their characters are replaced: every other byte —
//! comments, key order, quoting, line endings, the server URL, the CA data —
//! stays as it was. Values written over several lines, or as block scalars,
//! are refused rather than guessed at (kubeadm writes each on one line).
//! The result is parsed again and must yield exactly the new certificate and
//! key before it is returned.

use super::inspect::key_matches_cert;
use super::PkiError;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use remedy_dsl::yaml::{Node, Style};
use remedy_dsl::Source;
use std::fmt;
use std::ops::Range;

/// Where a kubeconfig's user gets its client certificate from.
#[derive(Clone, PartialEq)]
pub enum ClientCredential {
    /// `client-certificate-data` and `client-key-data`, decoded (PEM).
    Embedded { cert_pem: Vec<u8>, key_pem: Vec<u8> },
    /// `client-certificate` and/or `client-key`: paths on the host.
    Files {
        cert_path: Option<String>,
        key_path: Option<String>,
    },
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCredential::Embedded { cert_pem, .. } => f
                .debug_struct("Embedded")
                .field("cert_pem", &String::from_utf8_lossy(cert_pem))
                .field("key_pem", &"[elided]")
                .finish(),
            ClientCredential::Files {
                cert_path,
                key_path,
            } => f
                .debug_struct("Files")
                .field("cert_path", cert_path)
                .field("key_path", key_path)
                .finish(),
        }
    }
}

/// A certificate and its private key, both PEM.
pub type CertAndKeyPem = (Vec<u8>, Vec<u8>);

const CERT_DATA: &str = "client-certificate-data";
const KEY_DATA: &str = "client-key-data";
const CERT_FILE: &str = "client-certificate";
const KEY_FILE: &str = "client-key";

/// The client credential of the kubeconfig's user.
pub fn client_credential(text: &str) -> Result<ClientCredential, PkiError> {
    let root = parse(text)?;
    let (name, user) = entry(&root, "users", "user")?;
    match (user.get(CERT_DATA), user.get(KEY_DATA)) {
        (Some(cert), Some(key)) => Ok(ClientCredential::Embedded {
            cert_pem: decode(cert, CERT_DATA)?,
            key_pem: decode(key, KEY_DATA)?,
        }),
        (None, None) => {
            let path = |key| user.get(key).and_then(Node::as_str).map(str::to_string);
            let (cert_path, key_path) = (path(CERT_FILE), path(KEY_FILE));
            if cert_path.is_none() && key_path.is_none() {
                return Err(PkiError::Kubeconfig(format!(
                    "user `{name}` has no client certificate (token or exec authentication?); there is nothing to renew"
                )));
            }
            Ok(ClientCredential::Files {
                cert_path,
                key_path,
            })
        }
        _ => Err(PkiError::Kubeconfig(format!(
            "user `{name}` embeds only one of `{CERT_DATA}` and `{KEY_DATA}`; fix the file by hand"
        ))),
    }
}

/// The embedded client certificate and key (PEM), or `None` when the user
/// references files (as kubelet.conf does).
pub fn embedded_client_cert(text: &str) -> Result<Option<CertAndKeyPem>, PkiError> {
    Ok(match client_credential(text)? {
        ClientCredential::Embedded { cert_pem, key_pem } => Some((cert_pem, key_pem)),
        ClientCredential::Files { .. } => None,
    })
}

/// The CA certificate (PEM) the current cluster entry trusts, from
/// `certificate-authority-data`; `None` when it references a file.
pub fn embedded_ca_cert(text: &str) -> Result<Option<Vec<u8>>, PkiError> {
    let root = parse(text)?;
    let (_, cluster) = entry(&root, "clusters", "cluster")?;
    const CA_DATA: &str = "certificate-authority-data";
    cluster.get(CA_DATA).map(|n| decode(n, CA_DATA)).transpose()
}

/// `text` with the user's `client-certificate-data` and `client-key-data`
/// replaced by the base64 of `cert_pem` and `key_pem`; every other byte is
/// unchanged. Refuses a key that does not belong to the certificate, a user
/// that references files, and values written over several lines.
pub fn replace_client_cert(
    text: &str,
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<String, PkiError> {
    if !key_matches_cert(key_pem, cert_pem)? {
        return Err(PkiError::Kubeconfig(
            "the new key does not belong to the new certificate; refusing to write a kubeconfig that cannot authenticate".into(),
        ));
    }
    let root = parse(text)?;
    let (name, user) = entry(&root, "users", "user")?;
    let (Some(cert), Some(key)) = (user.get(CERT_DATA), user.get(KEY_DATA)) else {
        let file = user
            .get(CERT_FILE)
            .and_then(Node::as_str)
            .map(|p| format!(" (it references {p})"))
            .unwrap_or_default();
        return Err(PkiError::Kubeconfig(format!(
            "user `{name}` does not embed `{CERT_DATA}` and `{KEY_DATA}`{file}; renew the referenced files instead"
        )));
    };
    let mut splices = [
        (
            scalar_range(text, cert, CERT_DATA)?,
            STANDARD.encode(cert_pem),
        ),
        (scalar_range(text, key, KEY_DATA)?, STANDARD.encode(key_pem)),
    ];
    splices.sort_by_key(|(range, _)| range.start);
    let mut out = String::with_capacity(text.len() + 256);
    let mut done = 0;
    for (range, replacement) in &splices {
        if range.start < done {
            return Err(PkiError::Internal(format!(
                "`{CERT_DATA}` and `{KEY_DATA}` overlap"
            )));
        }
        out.push_str(&text[done..range.start]);
        out.push_str(replacement);
        done = range.end;
    }
    out.push_str(&text[done..]);

    match embedded_client_cert(&out) {
        Ok(Some((c, k))) if c == cert_pem && k == key_pem => Ok(out),
        other => Err(PkiError::Internal(format!(
            "the rewritten kubeconfig does not read back as the new certificate and key ({})",
            match other {
                Ok(_) => "different values".to_string(),
                Err(e) => e.to_string(),
            }
        ))),
    }
}

fn parse(text: &str) -> Result<Node, PkiError> {
    let source = Source::new("kubeconfig", text);
    remedy_dsl::yaml::parse(&source).map_err(|diags| {
        PkiError::KubeconfigYaml(
            diags
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        )
    })
}

/// The `users` (or `clusters`) entry the current context names, as its name
/// and its inner `user:` (or `cluster:`) mapping. Falls back to the first
/// entry when there is no current context — kubeadm's files have exactly one.
fn entry<'a>(root: &'a Node, list: &str, inner: &str) -> Result<(String, &'a Node), PkiError> {
    let entries = root.get(list).and_then(Node::as_seq).unwrap_or_default();
    let name_of = |n: &Node| n.get("name").and_then(Node::as_str).map(str::to_string);
    let wanted = root
        .get("current-context")
        .and_then(Node::as_str)
        .and_then(|current| {
            root.get("contexts")?
                .as_seq()?
                .iter()
                .find(|c| c.get("name").and_then(Node::as_str) == Some(current))
        })
        .and_then(|c| c.get("context")?.get(inner)?.as_str());
    let found = match wanted {
        Some(wanted) => entries
            .iter()
            .find(|e| name_of(e).as_deref() == Some(wanted))
            .ok_or_else(|| {
                PkiError::Kubeconfig(format!(
                    "the current context's {inner} `{wanted}` is not listed under `{list}`"
                ))
            })?,
        None => entries.first().ok_or_else(|| {
            PkiError::Kubeconfig(format!("no `{list}` entries; is this a kubeconfig?"))
        })?,
    };
    let body = found.get(inner).ok_or_else(|| {
        PkiError::Kubeconfig(format!(
            "`{list}` entry at line {} has no `{inner}:` mapping",
            found.span.line
        ))
    })?;
    Ok((name_of(found).unwrap_or_default(), body))
}

fn decode(node: &Node, field: &str) -> Result<Vec<u8>, PkiError> {
    let text = node.as_str().ok_or_else(|| {
        PkiError::Kubeconfig(format!(
            "`{field}` (line {}) is not a base64 string",
            node.span.line
        ))
    })?;
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(compact).map_err(|e| {
        PkiError::Kubeconfig(format!(
            "`{field}` (line {}) is not valid base64: {e}",
            node.span.line
        ))
    })
}

/// The byte range of a scalar's characters in `text`, inside the quotes if it
/// is quoted. Only one-line scalars whose text is exactly their value are
/// accepted, which is what makes replacing the range safe.
fn scalar_range(text: &str, node: &Node, field: &str) -> Result<Range<usize>, PkiError> {
    let layout = |why: &str| {
        PkiError::Kubeconfig(format!(
            "`{field}` (line {}) is {why}; remedy only rewrites a value written on one line — reformat it or edit by hand",
            node.span.line
        ))
    };
    let value = node.as_str().ok_or_else(|| layout("not a string"))?;
    if value.is_empty() || value.contains(char::is_whitespace) {
        return Err(layout("empty or spread over several lines"));
    }
    let line_start = line_offset(text, node.span.line).ok_or_else(|| layout("out of range"))?;
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = &text[line_start..line_end];
    let col = line
        .char_indices()
        .nth(node.span.col)
        .map(|(i, _)| i)
        .ok_or_else(|| layout("out of range"))?;
    let start = line_start + col;
    let (start, closing) = match node.style {
        Style::Plain => (start, None),
        Style::Quoted => (start + 1, line[col..].chars().next()),
        Style::Block => return Err(layout("a block scalar (`|` or `>`)")),
    };
    let end = start + value.len();
    if text.get(start..end) != Some(value) {
        return Err(layout("not written as its plain value"));
    }
    let rest = &text[end..line_end];
    let ends_cleanly = match closing {
        Some(quote) => rest.starts_with(quote),
        None => rest.trim().is_empty() || rest.trim_start().starts_with('#'),
    };
    if !ends_cleanly {
        return Err(layout("continued after its value"));
    }
    Ok(start..end)
}

/// Byte offset of the start of 1-based line `line`.
fn line_offset(text: &str, line: usize) -> Option<usize> {
    if line == 1 {
        return Some(0);
    }
    text.match_indices('\n')
        .nth(line.checked_sub(2)?)
        .map(|(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{renew_leaf, Ca, KUBEADM_LEAF_VALIDITY_SECS};
    use remedy_testkit::openssl::{openssl_verify, Lab};

    /// admin.conf as `kubeadm init` writes it (key order, `preferences: {}`).
    fn admin_conf(ca: &[u8], cert: &[u8], key: &[u8]) -> String {
        format!(
            "apiVersion: v1\n\
             clusters:\n\
             - cluster:\n    certificate-authority-data: {}\n    server: https://192.168.56.10:6443\n  name: kubernetes\n\
             contexts:\n\
             - context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\n\
             current-context: kubernetes-admin@kubernetes\n\
             kind: Config\n\
             preferences: {{}}\n\
             users:\n\
             - name: kubernetes-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            STANDARD.encode(ca),
            STANDARD.encode(cert),
            STANDARD.encode(key)
        )
    }

    const KUBELET_CONF: &str = "apiVersion: v1\n\
        clusters:\n\
        - cluster:\n    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==\n    server: https://192.168.56.10:6443\n  name: default-cluster\n\
        contexts:\n\
        - context:\n    cluster: default-cluster\n    namespace: default\n    user: default-auth\n  name: default-context\n\
        current-context: default-context\n\
        kind: Config\n\
        preferences: {}\n\
        users:\n\
        - name: default-auth\n  user:\n    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem\n    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem\n";

    fn now() -> i64 {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(since.as_secs()).unwrap()
    }

    #[test]
    fn replaces_the_client_cert_in_admin_conf_and_nothing_else() {
        let lab = Lab::new();
        let admin = lab.admin();
        let old = admin_conf(&lab.ca.cert_pem, &admin.cert_pem, &admin.key_pem);
        assert_eq!(
            embedded_client_cert(&old).unwrap(),
            Some((admin.cert_pem.clone(), admin.key_pem.clone()))
        );
        assert_eq!(
            embedded_ca_cert(&old).unwrap(),
            Some(lab.ca.cert_pem.clone())
        );

        let ca = Ca::from_pem(&lab.ca.cert_pem, &lab.ca.key_pem).unwrap();
        let renewed = renew_leaf(&admin.cert_pem, &ca, now(), KUBEADM_LEAF_VALIDITY_SECS).unwrap();
        let new = replace_client_cert(&old, &renewed.cert_pem, &renewed.key_pem).unwrap();

        // Only the two data lines changed, and only after their keys.
        let (old_lines, new_lines): (Vec<_>, Vec<_>) =
            (old.lines().collect(), new.lines().collect());
        assert_eq!(old_lines.len(), new_lines.len());
        let changed: Vec<_> = old_lines
            .iter()
            .zip(&new_lines)
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(changed.len(), 2, "{changed:?}");
        assert!(changed[0].1.starts_with("    client-certificate-data: "));
        assert!(changed[1].1.starts_with("    client-key-data: "));

        let (cert, key) = embedded_client_cert(&new).unwrap().unwrap();
        assert_eq!((&cert, &key), (&renewed.cert_pem, &renewed.key_pem));
        let cert_file = lab.write("admin-new.crt", &cert);
        let (ok, out) = openssl_verify(&lab.path(&lab.ca.cert_file), &cert_file);
        assert!(ok, "{out}");
        assert!(key_matches_cert(&key, &cert).unwrap());
    }

    #[test]
    fn kubelet_conf_referencing_files_has_no_embedded_cert() {
        assert_eq!(embedded_client_cert(KUBELET_CONF).unwrap(), None);
        let path = "/var/lib/kubelet/pki/kubelet-client-current.pem".to_string();
        assert_eq!(
            client_credential(KUBELET_CONF).unwrap(),
            ClientCredential::Files {
                cert_path: Some(path.clone()),
                key_path: Some(path),
            }
        );

        let lab = Lab::new();
        let admin = lab.admin();
        let err = replace_client_cert(KUBELET_CONF, &admin.cert_pem, &admin.key_pem).unwrap_err();
        assert!(
            err.to_string().contains("kubelet-client-current.pem"),
            "{err}"
        );
    }

    #[test]
    fn quoting_and_crlf_line_endings_are_kept() {
        let lab = Lab::new();
        let admin = lab.admin();
        let old = admin_conf(&lab.ca.cert_pem, &admin.cert_pem, &admin.key_pem);
        let cert_b64 = STANDARD.encode(&admin.cert_pem);
        let old = old
            .replace(&cert_b64, &format!("\"{cert_b64}\""))
            .replace('\n', "\r\n");

        let ca = Ca::from_pem(&lab.ca.cert_pem, &lab.ca.key_pem).unwrap();
        let renewed = renew_leaf(&admin.cert_pem, &ca, now(), KUBEADM_LEAF_VALIDITY_SECS).unwrap();
        let new = replace_client_cert(&old, &renewed.cert_pem, &renewed.key_pem).unwrap();
        let new_b64 = STANDARD.encode(&renewed.cert_pem);
        assert!(new.contains(&format!("    client-certificate-data: \"{new_b64}\"\r\n")));
        assert_eq!(new.matches("\r\n").count(), old.matches("\r\n").count());
        assert_eq!(new.matches('\n').count(), old.matches('\n').count());
    }

    #[test]
    fn the_current_context_picks_the_user() {
        let lab = Lab::new();
        let admin = lab.admin();
        let peer = lab.etcd_peer();
        let text = admin_conf(&lab.ca.cert_pem, &admin.cert_pem, &admin.key_pem).replace(
            "users:\n",
            &format!(
                "users:\n- name: other\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
                STANDARD.encode(&peer.cert_pem),
                STANDARD.encode(&peer.key_pem)
            ),
        );
        let (cert, _) = embedded_client_cert(&text).unwrap().unwrap();
        assert_eq!(cert, admin.cert_pem);
    }

    #[test]
    fn refuses_what_it_cannot_rewrite_safely() {
        let lab = Lab::new();
        let admin = lab.admin();
        let peer = lab.etcd_peer();
        let text = admin_conf(&lab.ca.cert_pem, &admin.cert_pem, &admin.key_pem);

        // A key that does not belong to the certificate.
        let err = replace_client_cert(&text, &admin.cert_pem, &peer.key_pem).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");

        // A value folded over two lines.
        let b64 = STANDARD.encode(&admin.cert_pem);
        let folded = text.replace(&b64, &format!("{}\n      {}", &b64[..40], &b64[40..]));
        assert_eq!(
            embedded_client_cert(&folded).unwrap().unwrap().0,
            admin.cert_pem
        );
        let err = replace_client_cert(&folded, &admin.cert_pem, &admin.key_pem).unwrap_err();
        assert!(err.to_string().contains("one line"), "{err}");

        // Not YAML, and YAML that is not a kubeconfig.
        assert!(matches!(
            embedded_client_cert("users: [\n"),
            Err(PkiError::KubeconfigYaml(_))
        ));
        assert!(matches!(
            embedded_client_cert("kind: Pod\n"),
            Err(PkiError::Kubeconfig(_))
        ));
    }
}
