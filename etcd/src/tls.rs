//! `Tls`: the PEM material a client needs to talk to a kubeadm etcd.
//!
//! The caller reads it from the master (`etcd/ca.crt` plus the
//! `healthcheck-client` or `apiserver-etcd-client` pair). Keys may be PKCS#1
//! (`RSA PRIVATE KEY`, as kubeadm writes them), PKCS#8 or SEC1.

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// CA to trust and the client certificate to present, all PEM.
#[derive(Clone)]
pub struct Tls {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for Tls {
    // The private key must never reach a log or the journal.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl Tls {
    /// The rustls configuration for one member. `server_name` is the
    /// endpoint's host: an IP address is checked against the certificate's IP
    /// SANs, a name against its DNS SANs. It is set explicitly because the
    /// stream comes from a dialer, so the name to verify cannot be inferred
    /// from where the bytes go (an SSH channel has no peer address of its own).
    pub(crate) fn client_config(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(server_name)
    }
}
