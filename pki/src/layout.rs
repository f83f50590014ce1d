//! One master's PKI as files: [`Layout`] says which paths a check or a
//! renewal looks at (kubeadm's names under the PKI directory, and the
//! kubeconfigs), the caller reads them — over SSH in remedy — into
//! [`Found`], and [`Layout::expiration`] builds `check-expiration`'s report
//! from that. Bytes in; no I/O here.

use crate::expiration::Expiration;
use crate::kubeadm::{CAS, LEAVES};
use crate::{client_credential, parse_cert_pem, CertInfo, ClientCredential, PkiError};
use std::collections::{BTreeMap, BTreeSet};

/// Where the PKI directory and the kubeconfigs are on one master.
#[derive(Debug, Clone)]
pub struct Layout {
    pub pki_dir: String,
    pub kubeconfigs: Vec<String>,
}

/// What the caller found at a layout's paths: the bytes of certificates and
/// kubeconfigs, and which private keys exist (a check never reads a key).
#[derive(Debug, Default)]
pub struct Found {
    files: BTreeMap<String, Vec<u8>>,
    present: BTreeSet<String>,
}

impl Found {
    /// `path` was read.
    pub fn add(&mut self, path: &str, bytes: Vec<u8>) {
        self.files.insert(path.to_string(), bytes);
    }

    /// `path` exists (it was not read).
    pub fn mark_present(&mut self, path: &str) {
        self.present.insert(path.to_string());
    }

    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(Vec::as_slice)
    }

    pub fn exists(&self, path: &str) -> bool {
        self.files.contains_key(path) || self.present.contains(path)
    }

    /// The bytes of `path`, which a step before must have read.
    pub(crate) fn read(&self, path: &str) -> Result<&[u8], PkiError> {
        self.get(path)
            .ok_or_else(|| PkiError::Internal(format!("{path} was not read")))
    }
}

/// `error`, said of the file (or thing) `what`.
pub(crate) fn at(what: &str, error: PkiError) -> PkiError {
    PkiError::In {
        what: what.to_string(),
        error: Box::new(error),
    }
}

pub(crate) fn cert_at(pem: &[u8], path: &str) -> Result<CertInfo, PkiError> {
    parse_cert_pem(pem).map_err(|e| at(path, e))
}

/// The file name of a path: `admin.conf`.
pub(crate) fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

impl Layout {
    pub fn new(pki_dir: String, kubeconfigs: Vec<String>) -> Layout {
        Layout {
            pki_dir,
            kubeconfigs,
        }
    }

    /// A path under the PKI directory.
    pub fn path(&self, relative: &str) -> String {
        format!("{}/{relative}", self.pki_dir)
    }

    /// The files to read where they exist: the CA certificates, the leaf
    /// certificates, the kubeconfigs.
    pub fn contents(&self) -> Vec<String> {
        (CAS.iter().map(|(_, crt, _)| self.path(crt)))
            .chain(LEAVES.iter().map(|(_, crt, _, _)| self.path(crt)))
            .chain(self.kubeconfigs.iter().cloned())
            .collect()
    }

    /// The CA keys, whose presence decides what can be renewed here.
    pub fn keys(&self) -> Vec<String> {
        CAS.iter().map(|(_, _, key)| self.path(key)).collect()
    }

    /// CA keys a renewal needs that are absent (an externally managed CA).
    pub fn missing_ca_keys(&self, found: &Found) -> Vec<String> {
        CAS.iter()
            .filter(|(name, _, _)| LEAVES.iter().any(|l| l.3 == *name) || *name == "ca")
            .map(|(_, _, key)| self.path(key))
            .filter(|key| !found.exists(key))
            .collect()
    }

    /// What `kubeadm certs check-expiration` shows for what was found, as
    /// of `now`: CAs, then leaves, then kubeconfigs, each where it exists.
    pub fn expiration(&self, found: &Found, now: i64) -> Result<Expiration, PkiError> {
        let mut report = Expiration::new(now);
        for (name, crt, key) in CAS {
            let path = self.path(crt);
            if let Some(pem) = found.get(&path) {
                report.add_ca(
                    name,
                    &path,
                    &cert_at(pem, &path)?,
                    found.exists(&self.path(key)),
                );
            }
        }
        for (name, crt, _key, ca) in LEAVES {
            let path = self.path(crt);
            if let Some(pem) = found.get(&path) {
                report.add_leaf(name, &path, &cert_at(pem, &path)?, ca);
            }
        }
        for conf in &self.kubeconfigs {
            let Some(bytes) = found.get(conf) else {
                continue;
            };
            let name = base_name(conf);
            let text = String::from_utf8_lossy(bytes);
            match client_credential(&text).map_err(|e| at(conf, e))? {
                ClientCredential::Embedded { cert_pem, .. } => {
                    report.add_kubeconfig(name, conf, &cert_at(&cert_pem, conf)?)
                }
                ClientCredential::Files { cert_path, .. } => {
                    report.add_kubeconfig_files(name, conf, cert_path)
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kubeadm::{KUBECONFIGS, KUBELET_CONF};
    use base64::{engine::general_purpose::STANDARD, Engine};
    use remedy_testkit::openssl::Lab;

    /// A kubeconfig embedding `cert` and `key`, as kubeadm writes one.
    pub(crate) fn kubeconfig(cert: &[u8], key: &[u8]) -> Vec<u8> {
        format!(
            "apiVersion: v1\nclusters: []\ncontexts: []\nkind: Config\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            STANDARD.encode(cert),
            STANDARD.encode(key)
        )
        .into_bytes()
    }

    /// A layout under `/pki` with kubeadm's kubeconfigs under `/k`, and
    /// what a master with one CA (key present), apiserver, etcd-peer (its
    /// CA absent) and admin.conf holds.
    pub(crate) fn master(lab: &Lab) -> (Layout, Found) {
        let confs = (KUBECONFIGS.iter().chain([&KUBELET_CONF]))
            .map(|n| format!("/k/{n}"))
            .collect();
        let layout = Layout::new("/pki".into(), confs);
        let admin = lab.admin();
        let mut found = Found::default();
        found.add("/pki/ca.crt", lab.ca.cert_pem.clone());
        found.mark_present("/pki/ca.key");
        found.add("/pki/apiserver.crt", admin.cert_pem.clone());
        found.add("/pki/etcd/peer.crt", admin.cert_pem.clone());
        found.add("/k/admin.conf", kubeconfig(&admin.cert_pem, &admin.key_pem));
        (layout, found)
    }

    #[test]
    fn the_layout_lists_kubeadm_paths_and_the_missing_ca_keys() {
        let lab = Lab::new();
        let (layout, found) = master(&lab);
        assert_eq!(layout.contents().len(), 3 + 7 + 5);
        assert_eq!(layout.contents()[3], "/pki/apiserver.crt");
        assert_eq!(layout.keys()[2], "/pki/etcd/ca.key");
        assert_eq!(
            layout.missing_ca_keys(&found),
            ["/pki/front-proxy-ca.key", "/pki/etcd/ca.key"]
        );
    }

    #[test]
    fn the_report_covers_what_was_found_and_names_a_bad_file() {
        let lab = Lab::new();
        let (layout, mut found) = master(&lab);
        let now = parse_cert_pem(&lab.ca.cert_pem).unwrap().not_before;
        let report = layout.expiration(&found, now).unwrap();
        let names: Vec<&str> = report.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ca", "apiserver", "etcd-peer", "admin.conf"]);
        let renewable: Vec<bool> = report.entries.iter().map(|e| e.renewable).collect();
        assert_eq!(renewable, [false, true, false, true]);
        assert!(!report.external_ca(), "only CAs found count");

        found.add("/k/scheduler.conf", b"users: [".to_vec());
        let err = layout.expiration(&found, now).unwrap_err().to_string();
        assert!(
            err.starts_with("/k/scheduler.conf: kubeconfig is not valid YAML"),
            "{err}"
        );
        found.add("/pki/apiserver.crt", b"garbage".to_vec());
        let err = layout.expiration(&found, now).unwrap_err().to_string();
        assert!(
            err.starts_with("/pki/apiserver.crt: no certificate found"),
            "{err}"
        );
    }
}
