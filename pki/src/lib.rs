//! remedy-pki: native kubeadm certificate handling: read certificates, renew
//! leaves the way `kubeadm certs renew` does, and rewrite the client
//! certificate embedded in a kubeconfig.
//!
//! Everything here is pure — bytes in, bytes or structs out. remedy's actions
//! read `/etc/kubernetes/pki/*` and the kubeconfigs over SSH, call into this
//! crate, and write the results back themselves (after taking backups, which
//! kubeadm never does). It must not depend on the engine or on any transport. Keeping I/O out means the crypto can be tested against
//! an independent implementation (the `openssl` CLI) with no host at all.
//!
//! - [`inspect`]: [`parse_cert_pem`] into a [`CertInfo`], [`days_left`],
//!   [`key_matches_cert`].
//! - [`renew`]: [`Ca`] and [`renew_leaf`], which copies subject, SANs and
//!   usages from the old certificate, makes a new RSA 2048 key and signs with
//!   the local CA.
//! - [`expiration`]: what `kubeadm certs check-expiration` shows, and its
//!   table.
//! - [`layout`]: which files of a master a check or renewal reads
//!   ([`Layout`]), what the caller found there ([`Found`]), the report built
//!   from it.
//! - [`renewal`]: a master's renewal as data ([`Renewal`]: targets, notes,
//!   files changed) and, natively, the new contents of each file.
//! - [`kubeconfig`]: find and replace `client-certificate-data` /
//!   `client-key-data` by splicing text, so the rest of the file stays
//!   byte-identical.

pub mod expiration;
pub mod inspect;
pub mod kubeadm;
pub mod kubeconfig;
pub mod layout;
pub mod renew;
pub mod renewal;

pub use expiration::Expiration;
pub use inspect::{days_left, key_matches_cert, parse_cert_pem, CertInfo};
pub use kubeconfig::{
    client_credential, embedded_ca_cert, embedded_client_cert, replace_client_cert, CertAndKeyPem,
    ClientCredential,
};
pub use layout::{Found, Layout};
pub use renew::{renew_leaf, Ca, Renewed, BACKDATE_SECS, KUBEADM_LEAF_VALIDITY_SECS};
pub use renewal::{ExpiryChange, NewFile, Renewal, Target};

/// Why a certificate, key or kubeconfig could not be read, renewed or
/// rewritten. Nothing here is retryable: the inputs are wrong or unsupported,
/// and trying again with the same bytes gives the same answer.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// The input has no PEM block of the expected kind.
    #[error("no {what} found: expected a PEM block `-----BEGIN {expected}-----`; check that the right file was read")]
    NoPem {
        what: &'static str,
        expected: String,
    },
    /// A PEM block is there but its header or base64 body is damaged.
    #[error("{what} is not valid PEM ({reason}); the file may be truncated or edited by hand")]
    BadPem { what: &'static str, reason: String },
    /// The DER inside a `CERTIFICATE` block is not an X.509 certificate.
    #[error("certificate could not be parsed: {0}")]
    BadCertificate(String),
    /// The private key is encrypted, malformed or of an unsupported kind.
    #[error("private key could not be loaded: {0}")]
    BadKey(String),
    /// The certificate uses something a renewal could not copy faithfully.
    #[error("certificate `{subject}` cannot be renewed natively: {reason}; renew it with `kubeadm certs renew` or by hand")]
    Unsupported { subject: String, reason: String },
    /// `Ca::from_pem` was given a certificate without `CA:TRUE`.
    #[error("`{subject}` is not a CA certificate (no basicConstraints CA:TRUE); pass the CA (ca.crt, front-proxy-ca.crt or etcd/ca.crt), not a leaf")]
    NotACa { subject: String },
    /// The CA private key is not the key of the CA certificate.
    #[error("the CA key does not belong to CA certificate `{subject}`; check that ca.key and ca.crt come from the same directory")]
    CaKeyMismatch { subject: String },
    /// The CA certificate has expired, so nothing it signs would verify.
    #[error("CA `{subject}` expired at unix time {not_after}; a leaf it signs would not verify — the CA has to be rotated first, which remedy does not do")]
    CaExpired { subject: String, not_after: i64 },
    /// A CA certificate was handed to `renew_leaf`; kubeadm never renews CAs.
    #[error("`{subject}` is a CA certificate; kubeadm does not renew CAs and neither does remedy (rotating a CA needs every leaf re-issued and every kubeconfig updated)")]
    IsCa { subject: String },
    /// The certificate to renew was issued by a different CA.
    #[error("`{subject}` was issued by `{cert_issuer}`, not by CA `{ca_subject}`; use the matching CA (for example etcd/ca.crt for etcd certificates, front-proxy-ca.crt for front-proxy-client)")]
    WrongCa {
        subject: String,
        cert_issuer: String,
        ca_subject: String,
    },
    /// The issuer names match but the CA's key did not sign the certificate.
    #[error("`{subject}` names `{ca_subject}` as issuer, but its signature does not verify with that CA's key: the CA was replaced since the certificate was issued, or the certificate is not from this cluster")]
    NotSignedByCa { subject: String, ca_subject: String },
    /// A validity of zero or less was asked for.
    #[error("validity must be positive, got {0} seconds")]
    BadValidity(i64),
    /// rcgen or aws-lc refused to generate a key or sign.
    #[error("signing failed: {0}")]
    Sign(String),
    /// The kubeconfig is not YAML remedy can read.
    #[error("kubeconfig is not valid YAML: {0}")]
    KubeconfigYaml(String),
    /// The kubeconfig lacks what is needed, or uses a layout remedy will not edit.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// What is wrong, said of the file (or CA) it is about.
    #[error("{what}: {error}")]
    In { what: String, error: Box<PkiError> },
    /// A renewed certificate or rewritten kubeconfig failed its own check.
    /// This is a bug in remedy; nothing was returned for writing.
    #[error("internal check failed: {0}; nothing was changed — please report this")]
    Internal(String),
}
