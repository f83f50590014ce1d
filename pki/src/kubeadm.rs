//! kubeadm's PKI layout: which certificates exist, which CA signs each, which
//! kubeconfigs embed client certificates, and what `kubeadm certs renew all`
//! leaves alone — and why, so remedy can say so.

/// `Nov 23, 2027 05:00 UTC`, as kubeadm prints expiry.
pub fn expiry_date(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{} {:02}, {} {:02}:{:02} UTC",
            &format!("{:?}", t.month())[..3],
            t.day(),
            t.year(),
            t.hour(),
            t.minute()
        ),
        Err(_) => unix.to_string(),
    }
}

/// Client certificates that may talk to etcd, in the order to try them:
/// kubeadm's health-check client, else the API server's etcd client.
/// (certificate, key), relative to the PKI directory.
pub const ETCD_CLIENTS: &[(&str, &str)] = &[
    ("etcd/healthcheck-client.crt", "etcd/healthcheck-client.key"),
    ("apiserver-etcd-client.crt", "apiserver-etcd-client.key"),
];

/// etcd's CA certificate, relative to the PKI directory.
pub const ETCD_CA: &str = "etcd/ca.crt";

/// The three CAs: (name, certificate, key), relative to the PKI directory.
pub const CAS: &[(&str, &str, &str)] = &[
    ("ca", "ca.crt", "ca.key"),
    ("front-proxy-ca", "front-proxy-ca.crt", "front-proxy-ca.key"),
    ("etcd-ca", "etcd/ca.crt", "etcd/ca.key"),
];

/// Leaf certificates `kubeadm certs renew all` renews: (name, certificate,
/// key, signing CA name), relative to the PKI directory.
pub const LEAVES: &[(&str, &str, &str, &str)] = &[
    ("apiserver", "apiserver.crt", "apiserver.key", "ca"),
    (
        "apiserver-kubelet-client",
        "apiserver-kubelet-client.crt",
        "apiserver-kubelet-client.key",
        "ca",
    ),
    (
        "front-proxy-client",
        "front-proxy-client.crt",
        "front-proxy-client.key",
        "front-proxy-ca",
    ),
    (
        "apiserver-etcd-client",
        "apiserver-etcd-client.crt",
        "apiserver-etcd-client.key",
        "etcd-ca",
    ),
    (
        "etcd-server",
        "etcd/server.crt",
        "etcd/server.key",
        "etcd-ca",
    ),
    ("etcd-peer", "etcd/peer.crt", "etcd/peer.key", "etcd-ca"),
    (
        "etcd-healthcheck-client",
        "etcd/healthcheck-client.crt",
        "etcd/healthcheck-client.key",
        "etcd-ca",
    ),
];

/// Kubeconfigs whose embedded client certificate kubeadm renews (signed by `ca`).
pub const KUBECONFIGS: &[&str] = &[
    "admin.conf",
    "super-admin.conf",
    "controller-manager.conf",
    "scheduler.conf",
];

/// Checked but never renewed.
pub const KUBELET_CONF: &str = "kubelet.conf";

/// Kubeconfigs a control-plane pod loads when it starts (admin.conf and
/// super-admin.conf are for people, kubelet.conf for the kubelet).
pub const POD_KUBECONFIGS: &[&str] = &["controller-manager.conf", "scheduler.conf"];

/// What renewal leaves alone, and why.
pub const NOT_RENEWED: &[(&str, &str)] = &[
    (
        "ca, front-proxy-ca, etcd-ca",
        "CAs are never renewed by `kubeadm certs renew`; renewing a CA is a cluster-wide rotation",
    ),
    (
        "sa.key, sa.pub",
        "the service-account signing key pair is not a certificate and does not expire",
    ),
    (
        "kubelet.conf",
        "the kubelet rotates its own client certificate (/var/lib/kubelet/pki)",
    ),
];

/// The CA entry by name.
pub fn ca(name: &str) -> Option<(&'static str, &'static str, &'static str)> {
    CAS.iter().copied().find(|(n, _, _)| *n == name)
}
