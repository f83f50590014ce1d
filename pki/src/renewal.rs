//! [`Renewal`]: what `kubeadm certs renew all` would do on one master, as
//! data — the leaves and the kubeconfigs embedding a client certificate that
//! exist there, what each expires now and will after, and the files that
//! change — and, for a native renewal, the new contents of each file
//! ([`Renewal::renew`]), a key always before its certificate.
//!
//! CAs, `sa.*` and kubelet.conf are never renewed ([`NOT_RENEWED`]); the
//! caller checks [`Layout::missing_ca_keys`] first and refuses an
//! externally managed CA.

use crate::kubeadm::{ca, expiry_date, LEAVES};
use crate::layout::{at, base_name, cert_at, Found, Layout};
use crate::{
    client_credential, embedded_client_cert, renew_leaf, replace_client_cert, Ca, ClientCredential,
    PkiError, KUBEADM_LEAF_VALIDITY_SECS,
};
use std::collections::HashMap;

pub use crate::kubeadm::NOT_RENEWED;

/// One thing to renew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A leaf certificate and its key, signed by the CA named `ca`.
    Leaf {
        name: String,
        crt: String,
        key: String,
        ca: String,
    },
    /// A kubeconfig embedding a client certificate (signed by `ca`).
    Kubeconfig { name: String, path: String },
}

/// The renewal of one master.
#[derive(Debug, Clone)]
pub struct Renewal {
    pub targets: Vec<Target>,
    /// One line per target: what it expires now, and after.
    pub notes: Vec<String>,
    /// Every file a renewal rewrites.
    pub modifies: Vec<String>,
}

/// A file's new contents.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub path: String,
    pub bytes: Vec<u8>,
    /// A private key: to be written mode 0600.
    pub private: bool,
}

impl Target {
    pub fn name(&self) -> &str {
        match self {
            Target::Leaf { name, .. } | Target::Kubeconfig { name, .. } => name,
        }
    }

    fn ca(&self) -> &str {
        match self {
            Target::Leaf { ca, .. } => ca,
            Target::Kubeconfig { .. } => "ca",
        }
    }
}

impl Layout {
    /// What a renewal as of `now` (unix seconds) would change, from what
    /// was found at [`Layout::contents`].
    pub fn renewal(&self, found: &Found, now: i64) -> Result<Renewal, PkiError> {
        // To the day: a plan is hashed for approval, and a new expiry to
        // the minute would make every plan differ from the one approved.
        let new_expiry = expiry_date(now + KUBEADM_LEAF_VALIDITY_SECS)
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" ");
        let mut r = Renewal {
            targets: Vec::new(),
            notes: Vec::new(),
            modifies: Vec::new(),
        };
        for (name, crt, key, ca) in LEAVES {
            let crt_path = self.path(crt);
            let Some(pem) = found.get(&crt_path) else {
                continue;
            };
            let info = cert_at(pem, &crt_path)?;
            r.notes.push(format!(
                "{crt}: serial {}…, expires {} → new key, expires {new_expiry}",
                &info.serial_hex[..info.serial_hex.len().min(12)],
                expiry_date(info.not_after)
            ));
            r.modifies.push(crt_path.clone());
            r.modifies.push(self.path(key));
            r.targets.push(Target::Leaf {
                name: name.to_string(),
                crt: crt_path,
                key: self.path(key),
                ca: ca.to_string(),
            });
        }
        for conf in &self.kubeconfigs {
            let Some(bytes) = found.get(conf) else {
                continue;
            };
            let credential = client_credential(&String::from_utf8_lossy(bytes));
            if let ClientCredential::Embedded { cert_pem, .. } =
                credential.map_err(|e| at(conf, e))?
            {
                let info = cert_at(&cert_pem, conf)?;
                let name = base_name(conf).to_string();
                r.notes.push(format!(
                    "{name}: client certificate {} expires {} → new key, expires {new_expiry}",
                    info.subject_cn,
                    expiry_date(info.not_after)
                ));
                r.modifies.push(conf.clone());
                r.targets.push(Target::Kubeconfig {
                    name,
                    path: conf.clone(),
                });
            }
        }
        Ok(r)
    }
}

impl Renewal {
    pub fn names(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.name().to_string()).collect()
    }

    /// The certificate and key of each CA the targets need, to read
    /// before [`Renewal::renew`].
    pub fn ca_files(&self, layout: &Layout) -> Vec<String> {
        let mut out = Vec::new();
        for t in &self.targets {
            if let Some((_, crt, key)) = ca(t.ca()) {
                for path in [layout.path(crt), layout.path(key)] {
                    if !out.contains(&path) {
                        out.push(path);
                    }
                }
            }
        }
        out
    }

    /// Renew natively: a new key for every target, signed by its CA for
    /// kubeadm's year, subject, SANs and usages copied. The files to write
    /// in order (each key before its certificate), and the names renewed.
    pub fn renew(
        &self,
        layout: &Layout,
        found: &Found,
        now: i64,
    ) -> Result<(Vec<NewFile>, Vec<String>), PkiError> {
        let mut cas: HashMap<&str, Ca> = HashMap::new();
        let (mut files, mut renewed) = (Vec::new(), Vec::new());
        for t in &self.targets {
            let ca_name = t.ca();
            if !cas.contains_key(ca_name) {
                let (_, crt, key) = ca(ca_name)
                    .ok_or_else(|| PkiError::Internal(format!("unknown CA {ca_name}")))?;
                let loaded = Ca::from_pem(
                    found.read(&layout.path(crt))?,
                    found.read(&layout.path(key))?,
                );
                cas.insert(
                    ca_name,
                    loaded.map_err(|e| at(&format!("CA {ca_name}"), e))?,
                );
            }
            let signer = &cas[ca_name];
            match t {
                Target::Leaf { crt, key, .. } => {
                    let new = renew_leaf(found.read(crt)?, signer, now, KUBEADM_LEAF_VALIDITY_SECS)
                        .map_err(|e| at(crt, e))?;
                    // The key first: a certificate must never be paired
                    // with a key it does not match for longer than a moment.
                    files.push(NewFile {
                        path: key.clone(),
                        bytes: new.key_pem,
                        private: true,
                    });
                    files.push(NewFile {
                        path: crt.clone(),
                        bytes: new.cert_pem,
                        private: false,
                    });
                }
                Target::Kubeconfig { path, .. } => {
                    let text = String::from_utf8_lossy(found.read(path)?).into_owned();
                    let Some((cert, _)) = embedded_client_cert(&text).map_err(|e| at(path, e))?
                    else {
                        continue;
                    };
                    let new = renew_leaf(&cert, signer, now, KUBEADM_LEAF_VALIDITY_SECS)
                        .map_err(|e| at(path, e))?;
                    let rewritten = replace_client_cert(&text, &new.cert_pem, &new.key_pem)
                        .map_err(|e| at(path, e))?;
                    files.push(NewFile {
                        path: path.clone(),
                        bytes: rewritten.into_bytes(),
                        private: false,
                    });
                }
            }
            renewed.push(t.name().to_string());
        }
        Ok((files, renewed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::tests::master;
    use crate::{key_matches_cert, parse_cert_pem};
    use remedy_testkit::openssl::{openssl_verify, Lab};

    #[test]
    fn the_plan_lists_what_exists_and_the_renewal_rewrites_it_keys_first() {
        let lab = Lab::new();
        let (layout, mut found) = master(&lab);
        let now = parse_cert_pem(&lab.ca.cert_pem).unwrap().not_before + 60;
        let r = layout.renewal(&found, now).unwrap();
        assert_eq!(r.names(), ["apiserver", "etcd-peer", "admin.conf"]);
        assert_eq!(
            r.modifies,
            [
                "/pki/apiserver.crt",
                "/pki/apiserver.key",
                "/pki/etcd/peer.crt",
                "/pki/etcd/peer.key",
                "/k/admin.conf"
            ]
        );
        assert!(
            r.notes[0].starts_with("apiserver.crt: serial "),
            "{:?}",
            r.notes
        );
        assert!(r.notes[2].starts_with("admin.conf: client certificate kubernetes-admin expires "));
        assert_eq!(
            r.ca_files(&layout),
            [
                "/pki/ca.crt",
                "/pki/ca.key",
                "/pki/etcd/ca.crt",
                "/pki/etcd/ca.key"
            ]
        );

        // Sign etcd-peer's renewal with the same test CA, under etcd's name.
        found.add("/pki/ca.key", lab.ca.key_pem.clone());
        found.add("/pki/etcd/ca.crt", lab.ca.cert_pem.clone());
        found.add("/pki/etcd/ca.key", lab.ca.key_pem.clone());
        let (files, renewed) = r.renew(&layout, &found, now).unwrap();
        assert_eq!(renewed, r.names());
        let order: Vec<(&str, bool)> = files.iter().map(|f| (f.path.as_str(), f.private)).collect();
        assert_eq!(
            order,
            [
                ("/pki/apiserver.key", true),
                ("/pki/apiserver.crt", false),
                ("/pki/etcd/peer.key", true),
                ("/pki/etcd/peer.crt", false),
                ("/k/admin.conf", false)
            ]
        );
        assert!(key_matches_cert(&files[0].bytes, &files[1].bytes).unwrap());
        let crt = lab.write("apiserver-new.crt", &files[1].bytes);
        let (ok, out) = openssl_verify(&lab.path(&lab.ca.cert_file), &crt);
        assert!(ok, "{out}");
        let conf = String::from_utf8(files[4].bytes.clone()).unwrap();
        let (cert, key) = embedded_client_cert(&conf).unwrap().unwrap();
        assert!(key_matches_cert(&key, &cert).unwrap());
        let old = String::from_utf8_lossy(found.get("/k/admin.conf").unwrap()).into_owned();
        assert_ne!(
            Some(cert),
            embedded_client_cert(&old).unwrap().map(|(c, _)| c)
        );
    }

    #[test]
    fn a_ca_that_was_not_read_or_is_wrong_renews_nothing() {
        let lab = Lab::new();
        let (layout, mut found) = master(&lab);
        let now = parse_cert_pem(&lab.ca.cert_pem).unwrap().not_before + 60;
        let r = layout.renewal(&found, now).unwrap();
        let err = r.renew(&layout, &found, now).unwrap_err();
        assert!(matches!(err, PkiError::Internal(_)), "{err}");
        found.add("/pki/ca.key", lab.admin().key_pem);
        let err = r.renew(&layout, &found, now).unwrap_err().to_string();
        assert!(
            err.starts_with("CA ca: the CA key does not belong"),
            "{err}"
        );
    }
}
