//! What `kubeadm certs check-expiration` shows, built from certificates the
//! caller read: each CA, leaf and kubeconfig client certificate with its
//! issuer, expiry, days left, whether its CA's key is present (else it is
//! "externally managed") and whether remedy could renew it — and the table
//! kubeadm operators know.

use crate::kubeadm::{expiry_date, KUBELET_CONF, POD_KUBECONFIGS};
use crate::{days_left, CertInfo};
use serde::Serialize;

/// Where a certificate lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Ca,
    Leaf,
    Kubeconfig,
}

/// One row: fields in the order remedy has always reported them.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub name: String,
    pub path: String,
    pub kind: Kind,
    pub cn: String,
    pub issuer: String,
    /// Leaves only: DNS then IP SANs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sans: Option<Vec<String>>,
    /// `None` for a kubeconfig that points at certificate files.
    pub not_after: Option<i64>,
    pub days_left: Option<i64>,
    pub ca_key_present: bool,
    pub renewable: bool,
    /// The CA that signs it (`ca`, `front-proxy-ca`, `etcd-ca`); empty for a CA.
    pub ca: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Entry {
    /// kubelet.conf: the kubelet rotates its client certificate itself
    /// (kubeadm's `rotateCertificates`); kubeadm and remedy never renew it.
    pub fn left_to_kubelet(&self) -> bool {
        self.kind == Kind::Kubeconfig && self.name == KUBELET_CONF
    }
}

/// The rows, added in the order they are read.
#[derive(Debug, Clone, Default)]
pub struct Expiration {
    pub entries: Vec<Entry>,
    now: i64,
}

impl Expiration {
    /// A report as of `now` (unix seconds).
    pub fn new(now: i64) -> Expiration {
        Expiration {
            entries: Vec::new(),
            now,
        }
    }

    /// Whether the key of CA `name` was found (CAs must be added first).
    pub fn ca_key_present(&self, name: &str) -> bool {
        self.entries
            .iter()
            .any(|c| c.kind == Kind::Ca && c.name == name && c.ca_key_present)
    }

    /// A CA whose key is absent is managed outside the cluster.
    pub fn external_ca(&self) -> bool {
        self.entries
            .iter()
            .any(|c| c.kind == Kind::Ca && !c.ca_key_present)
    }

    fn entry(&self, name: &str, path: &str, kind: Kind, info: &CertInfo) -> Entry {
        Entry {
            name: name.to_string(),
            path: path.to_string(),
            kind,
            cn: info.subject_cn.clone(),
            issuer: info.issuer_cn.clone(),
            sans: None,
            not_after: Some(info.not_after),
            days_left: Some(days_left(info, self.now)),
            ca_key_present: false,
            renewable: false,
            ca: String::new(),
            note: None,
        }
    }

    pub fn add_ca(&mut self, name: &str, path: &str, info: &CertInfo, key_present: bool) {
        let e = Entry {
            ca_key_present: key_present,
            ..self.entry(name, path, Kind::Ca, info)
        };
        self.entries.push(e);
    }

    /// A leaf signed by CA `ca`: renewable when that CA's key is present.
    pub fn add_leaf(&mut self, name: &str, path: &str, info: &CertInfo, ca: &str) {
        let present = self.ca_key_present(ca);
        let sans = info
            .dns_sans
            .iter()
            .cloned()
            .chain(info.ip_sans.iter().map(|i| i.to_string()))
            .collect();
        let e = Entry {
            sans: Some(sans),
            ca_key_present: present,
            renewable: present,
            ca: ca.to_string(),
            ..self.entry(name, path, Kind::Leaf, info)
        };
        self.entries.push(e);
    }

    /// A kubeconfig's embedded client certificate, signed by `ca`; kubeadm
    /// leaves kubelet.conf's to the kubelet.
    pub fn add_kubeconfig(&mut self, name: &str, path: &str, info: &CertInfo) {
        let present = self.ca_key_present("ca");
        let e = Entry {
            ca_key_present: present,
            renewable: name != KUBELET_CONF && present,
            ca: "ca".into(),
            ..self.entry(name, path, Kind::Kubeconfig, info)
        };
        self.entries.push(e);
    }

    /// A kubeconfig that points at certificate files (rotated by the kubelet).
    pub fn add_kubeconfig_files(&mut self, name: &str, path: &str, cert_path: Option<String>) {
        let e = Entry {
            name: name.to_string(),
            path: path.to_string(),
            kind: Kind::Kubeconfig,
            cn: String::new(),
            issuer: String::new(),
            sans: None,
            not_after: None,
            days_left: None,
            ca_key_present: self.ca_key_present("ca"),
            renewable: false,
            ca: "ca".into(),
            note: Some(format!(
                "uses {} (rotated by the kubelet)",
                cert_path.unwrap_or_default()
            )),
        };
        self.entries.push(e);
    }

    /// The fewest days left of any certificate a renewal renews — every
    /// leaf and kubeconfig but kubelet.conf (100 years when there is none).
    /// A renewal decided on kubelet.conf would never be done: it is not
    /// renewed, so the next check would want to renew again.
    pub fn min_days_left(&self) -> i64 {
        self.entries
            .iter()
            .filter(|c| c.kind != Kind::Ca && !c.left_to_kubelet())
            .filter_map(|c| c.days_left)
            .min()
            .unwrap_or(36_500)
    }

    /// Expired certificates, CAs included, kubelet.conf's not: it does not
    /// stop the control plane (and no renewal fixes it).
    pub fn expired(&self) -> usize {
        self.entries
            .iter()
            .filter(|c| !c.left_to_kubelet())
            .filter(|c| c.days_left.is_some_and(|d| d < 0))
            .count()
    }

    /// The files the control-plane pods load when they start: every leaf
    /// certificate, and the controller-manager's and scheduler's
    /// kubeconfigs. A pod started before one of them last changed still
    /// runs with the old certificate.
    pub fn loaded_by_pods(&self) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(|c| {
                c.kind == Kind::Leaf
                    || (c.kind == Kind::Kubeconfig && POD_KUBECONFIGS.contains(&c.name.as_str()))
            })
            .map(|c| c.path.as_str())
    }

    /// What a renewal leaves to the kubelet (kubelet.conf's client
    /// certificate): reported on its own.
    pub fn left_to_kubelet(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().filter(|c| c.left_to_kubelet())
    }

    /// The table kubeadm operators know.
    pub fn table(&self) -> String {
        let mut table = format!(
            "{:<26} {:<24} {:>9}  {:<15} {}",
            "CERTIFICATE", "EXPIRES", "RESIDUAL", "AUTHORITY", "EXTERNALLY MANAGED"
        );
        for c in &self.entries {
            let residual = match c.days_left {
                Some(d) if d < 0 => "expired".to_string(),
                Some(d) => format!("{d}d"),
                None => "-".into(),
            };
            let expires = c
                .not_after
                .map(expiry_date)
                .unwrap_or_else(|| c.note.clone().unwrap_or_else(|| "-".into()));
            table.push_str(&format!(
                "\n{:<26} {:<24} {:>9}  {:<15} {}",
                c.name,
                expires,
                residual,
                c.ca,
                if c.ca_key_present { "no" } else { "yes" }
            ));
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_cert_pem;
    use remedy_testkit::openssl::Lab;

    #[test]
    fn leaves_are_renewable_only_with_their_ca_key_and_the_table_says_so() {
        let lab = Lab::new();
        let ca = parse_cert_pem(&lab.ca.cert_pem).unwrap();
        let admin = parse_cert_pem(&lab.admin().cert_pem).unwrap();
        let now = admin.not_before;
        let mut report = Expiration::new(now);
        report.add_ca("ca", "/pki/ca.crt", &ca, true);
        report.add_ca("etcd-ca", "/pki/etcd/ca.crt", &ca, false);
        report.add_leaf("apiserver", "/pki/apiserver.crt", &admin, "ca");
        report.add_leaf("etcd-peer", "/pki/etcd/peer.crt", &admin, "etcd-ca");
        report.add_kubeconfig("kubelet.conf", "/k/kubelet.conf", &admin);
        report.add_kubeconfig_files("other.conf", "/k/other.conf", Some("/x.pem".into()));
        let renewable: Vec<bool> = report.entries.iter().map(|e| e.renewable).collect();
        assert_eq!(renewable, [false, false, true, false, false, false]);
        assert!(report.external_ca());
        assert_eq!(report.min_days_left(), 365);
        assert_eq!(report.expired(), 0);
        assert_eq!(
            report
                .left_to_kubelet()
                .map(|e| &e.name)
                .collect::<Vec<_>>(),
            ["kubelet.conf"]
        );
        assert_eq!(
            report.loaded_by_pods().collect::<Vec<_>>(),
            ["/pki/apiserver.crt", "/pki/etcd/peer.crt"]
        );
        let table = report.table();
        let row = |name: &str| table.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(row("etcd-peer").ends_with("etcd-ca         yes"), "{table}");
        assert!(row("apiserver").contains("365d"), "{table}");
        assert!(row("other.conf").contains("uses /x.pem"), "{table}");
        let json = serde_json::to_value(&report.entries[5]).unwrap();
        assert_eq!(json["not_after"], serde_json::Value::Null);
        assert!(json.get("sans").is_none());
    }

    /// Issue 13, defect 2: kubelet.conf, which no renewal renews, decided
    /// that a freshly renewed master needed renewing again.
    #[test]
    fn issue_13_kubelet_conf_neither_decides_a_renewal_nor_counts_as_expired() {
        let lab = Lab::new();
        let ca = parse_cert_pem(&lab.ca.cert_pem).unwrap();
        let admin = parse_cert_pem(&lab.admin().cert_pem).unwrap();
        let now = admin.not_before;
        let mut gone = admin.clone();
        gone.not_after = now - 3600;
        let mut report = Expiration::new(now);
        report.add_ca("ca", "/pki/ca.crt", &ca, true);
        report.add_leaf("apiserver", "/pki/apiserver.crt", &admin, "ca");
        report.add_kubeconfig("admin.conf", "/k/admin.conf", &admin);
        report.add_kubeconfig("kubelet.conf", "/k/kubelet.conf", &gone);
        assert_eq!(report.min_days_left(), 365);
        assert_eq!(report.expired(), 0);
        let left: Vec<_> = report.left_to_kubelet().collect();
        assert_eq!((left.len(), left[0].days_left), (1, Some(-1)));
        // Any other expired certificate still counts.
        report.add_kubeconfig("scheduler.conf", "/k/scheduler.conf", &gone);
        assert_eq!((report.min_days_left(), report.expired()), (-1, 1));
    }
}
