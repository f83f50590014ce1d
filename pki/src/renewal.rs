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
    /// One per target: what its certificate expires now, and after.
    pub expiries: Vec<ExpiryChange>,
    /// Every file a renewal rewrites.
    pub modifies: Vec<String>,
}

/// One certificate's expiry before and after a renewal, as values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiryChange {
    /// The file as kubeadm names it: `apiserver.crt`, `admin.conf`.
    pub file: String,
    pub path: String,
    /// Set for a kubeconfig's client certificate: its subject CN.
    pub client_cn: Option<String>,
    /// The certificate now: serial (lowercase hex) and end of validity
    /// (unix seconds).
    pub serial: String,
    pub not_after: i64,
    /// The renewed certificate's end of validity, to the day (`2027-12-05`):
    /// a plan is hashed for approval, and an expiry to the minute would make
    /// every plan differ from the one approved.
    pub renewed_expires_on: String,
}

impl ExpiryChange {
    /// One line, as a plan shows it.
    pub fn note(&self) -> String {
        let now = expiry_date(self.not_after);
        let after = expiry_day_shown(&self.renewed_expires_on);
        match &self.client_cn {
            None => format!(
                "{}: serial {}…, expires {now} → new key, expires {after}",
                self.file,
                &self.serial[..self.serial.len().min(12)],
            ),
            Some(cn) => format!(
                "{}: client certificate {cn} expires {now} → new key, expires {after}",
                self.file
            ),
        }
    }
}

/// `2027-12-05` → `Dec 05, 2027`, as kubeadm prints a date.
fn expiry_day_shown(day: &str) -> String {
    day_start(day)
        .map(|unix| {
            expiry_date(unix)
                .split(' ')
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| day.to_string())
}

/// `YYYY-MM-DD` of a unix time, in UTC.
pub fn expiry_day(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => unix.to_string(),
    }
}

fn day_start(day: &str) -> Option<i64> {
    let mut parts = day.splitn(3, '-').map(|p| p.parse::<i32>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    let date = time::Date::from_calendar_date(y, month, u8::try_from(d).ok()?).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
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
        let renewed_expires_on = expiry_day(now + KUBEADM_LEAF_VALIDITY_SECS);
        let mut r = Renewal {
            targets: Vec::new(),
            expiries: Vec::new(),
            modifies: Vec::new(),
        };
        for (name, crt, key, ca) in LEAVES {
            let crt_path = self.path(crt);
            let Some(pem) = found.get(&crt_path) else {
                continue;
            };
            let info = cert_at(pem, &crt_path)?;
            r.expiries.push(ExpiryChange {
                file: crt.to_string(),
                path: crt_path.clone(),
                client_cn: None,
                serial: info.serial_hex.clone(),
                not_after: info.not_after,
                renewed_expires_on: renewed_expires_on.clone(),
            });
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
                r.expiries.push(ExpiryChange {
                    file: name.clone(),
                    path: conf.clone(),
                    client_cn: Some(info.subject_cn.clone()),
                    serial: info.serial_hex.clone(),
                    not_after: info.not_after,
                    renewed_expires_on: renewed_expires_on.clone(),
                });
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
        let notes: Vec<String> = r.expiries.iter().map(ExpiryChange::note).collect();
        assert!(notes[0].starts_with("apiserver.crt: serial "), "{notes:?}");
        assert!(notes[2].starts_with("admin.conf: client certificate kubernetes-admin expires "));
        // The same day in words and as a value.
        let day = &r.expiries[0].renewed_expires_on;
        let shown = expiry_date(now + KUBEADM_LEAF_VALIDITY_SECS);
        assert!(
            notes[0].ends_with(&format!(
                "new key, expires {}",
                shown.split(' ').take(3).collect::<Vec<_>>().join(" ")
            )),
            "{notes:?}"
        );
        assert_eq!(day, &expiry_day(now + KUBEADM_LEAF_VALIDITY_SECS));
        assert_eq!(
            r.expiries[0].not_after,
            parse_cert_pem(found.get("/pki/apiserver.crt").unwrap())
                .unwrap()
                .not_after
        );
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
