//! Renewing a leaf certificate the way `kubeadm certs renew` does, without
//! kubeadm: a new private key, the old certificate's identity, the local CA's
//! signature.
//!
//! What is copied from the old certificate: the subject (byte for byte, so CN
//! and every O — which Kubernetes reads as user and groups — are unchanged),
//! the subjectAltNames in order (DNS, IP, and e-mail/URI if present), key
//! usage, extended key usage in order, and whether basicConstraints
//! (`CA:FALSE`) was present. What is new: an RSA 2048 key, a random 126-bit
//! serial, the validity, and the authority key identifier (the CA's subject key
//! identifier, as Go's x509 writes it).
//!
//! Where this differs from kubeadm (none of which changes a kubeadm-made
//! certificate's meaning):
//! - kubeadm rebuilds key usage as `digitalSignature, keyEncipherment`; remedy
//!   copies whatever the old certificate had, which for kubeadm's certificates
//!   is the same thing.
//! - kubeadm generates the key type set in `ClusterConfiguration.
//!   encryptionAlgorithm` (RSA-2048 unless changed); remedy always makes
//!   RSA 2048 and writes it as PKCS#1 (`RSA PRIVATE KEY`), like kubeadm does
//!   for RSA.
//! - Extensions other than those above (certificate policies, say) are not
//!   copied; kubeadm drops them too, as it rebuilds from CN, O, SANs and usages.
//! - The renewed certificate carries a subject key identifier (of its new
//!   key) whenever the old one had basicConstraints; Go's x509 writes one only
//!   for CAs. Nothing in Kubernetes reads a leaf's subject key identifier.
//! - `not_after` is not capped at the CA's expiry, so the certificate may
//!   outlive its CA; check [`Ca::info`]`().not_after`. An already expired CA
//!   is refused.
//!
//! Validity follows what current kubeadm releases write: `not_before = now -
//! 5 min` ([`BACKDATE_SECS`], kubeadm's `CertificateBackdate`, so a peer whose
//! clock is a little behind still accepts the certificate) and `not_after =
//! now + validity` ([`KUBEADM_LEAF_VALIDITY_SECS`] = 365 days by default).
//!
//! Every renewal checks its own output before returning it: subject, SANs and
//! extended key usage equal to the old ones, issuer equal to the CA's subject, signature valid
//! under the CA's key, and the new key matching the new certificate.

use super::inspect::{
    cert_der_from_pem, cert_info, ext_key_usage_oids, key_matches, load_key_pair, parse_der,
    subject_alt_names,
};
use super::{CertInfo, PkiError};
use base64::Engine as _;
use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RsaKeySize, SanType, SerialNumber, PKCS_RSA_SHA256,
};
use std::fmt;
use x509_parser::asn1_rs::Tag;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::x509::X509Name;

/// kubeadm's `CertificateValidityPeriod` default: one year of 365 days.
pub const KUBEADM_LEAF_VALIDITY_SECS: i64 = 365 * 24 * 60 * 60;

/// kubeadm's `CertificateBackdate`: not_before is this far before "now".
pub const BACKDATE_SECS: i64 = 5 * 60;

/// A CA that can sign renewed leaves: `ca.crt` + `ca.key` (or the etcd or
/// front-proxy pair). Only the certificate is kept as PEM; the key lives in the
/// signer and is never printed (see the `Debug` impl).
pub struct Ca {
    cert_pem: Vec<u8>,
    cert_der: Vec<u8>,
    info: CertInfo,
    /// Whether the CA has a subject key identifier. Go's x509 writes an
    /// authority key identifier into a leaf only then, and so does remedy.
    has_key_id: bool,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// Load a CA from its certificate and its private key (RSA as kubeadm
    /// writes it — PKCS#1 `RSA PRIVATE KEY` — or PKCS#8 `PRIVATE KEY`; EC keys
    /// work too). Refuses a certificate that is not a CA, and a key that is
    /// not the certificate's.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Ca, PkiError> {
        let cert_der = cert_der_from_pem(cert_pem)?;
        let cert = parse_der(&cert_der)?;
        let info = cert_info(&cert)?;
        let subject = cert.subject().to_string();
        if !cert.is_ca() {
            return Err(PkiError::NotACa { subject });
        }
        let key = load_key_pair(key_pem)?;
        if !key_matches(&key, &cert) {
            return Err(PkiError::CaKeyMismatch { subject });
        }
        let key_id = cert
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            });
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(cert.subject(), &subject)?;
        params.key_identifier_method = match &key_id {
            Some(id) => KeyIdMethod::PreSpecified(id.clone()),
            None => KeyIdMethod::Sha256,
        };
        let issuer = Issuer::new(params, key);
        Ok(Ca {
            cert_pem: cert_pem.to_vec(),
            has_key_id: key_id.is_some(),
            cert_der,
            info,
            issuer,
        })
    }

    /// The CA certificate as it was given.
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }

    /// What the CA certificate says (its own expiry in particular).
    pub fn info(&self) -> &CertInfo {
        &self.info
    }
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("subject_cn", &self.info.subject_cn)
            .field("not_after", &self.info.not_after)
            .field("key", &"[elided]")
            .finish()
    }
}

/// A renewed certificate and its new key, both PEM, ready to be written over
/// the old files (`.crt` and `.key`) or embedded in a kubeconfig.
pub struct Renewed {
    pub cert_pem: Vec<u8>,
    /// PKCS#1 `-----BEGIN RSA PRIVATE KEY-----`, RSA 2048, freshly generated.
    pub key_pem: Vec<u8>,
    pub info: CertInfo,
}

impl fmt::Debug for Renewed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renewed")
            .field("info", &self.info)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// Renew `old_cert_pem` with `ca`: what `kubeadm certs renew <name>` does for
/// one certificate. `now_unix` is the renewal time (injected so tests and
/// dry runs are deterministic); `validity_secs` is usually
/// [`KUBEADM_LEAF_VALIDITY_SECS`].
///
/// Refuses a CA certificate, a certificate issued by another CA (by name, or
/// by a CA with the same name but another key), and an expired CA.
pub fn renew_leaf(
    old_cert_pem: &[u8],
    ca: &Ca,
    now_unix: i64,
    validity_secs: i64,
) -> Result<Renewed, PkiError> {
    if validity_secs <= 0 {
        return Err(PkiError::BadValidity(validity_secs));
    }
    let old_der = cert_der_from_pem(old_cert_pem)?;
    let old = parse_der(&old_der)?;
    let subject = old.subject().to_string();
    if old.is_ca() {
        return Err(PkiError::IsCa { subject });
    }
    let ca_cert = parse_der(&ca.cert_der)?;
    check_issued_by(&old, &ca_cert, &subject)?;
    if ca.info.not_after <= now_unix {
        return Err(PkiError::CaExpired {
            subject: ca_cert.subject().to_string(),
            not_after: ca.info.not_after,
        });
    }

    let params = leaf_params(&old, &subject, now_unix, validity_secs, ca.has_key_id)?;
    let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
        .map_err(|e| PkiError::Sign(format!("generating an RSA 2048 key: {e}")))?;
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(|e| PkiError::Sign(e.to_string()))?;
    let new_der = cert.der().to_vec();
    let new = parse_der(&new_der)?;
    check_renewal(&old, &new, &ca_cert, &key)?;

    Ok(Renewed {
        cert_pem: pem_encode("CERTIFICATE", &new_der),
        key_pem: pem_encode("RSA PRIVATE KEY", &pkcs1_from_pkcs8(key.serialized_der())?),
        info: cert_info(&new)?,
    })
}

/// Same issuer name (byte for byte, or equal as text — openssl compares names
/// canonically, so a PrintableString/UTF8String difference still chains), and
/// a signature the CA's key verifies.
fn check_issued_by(
    cert: &X509Certificate<'_>,
    ca: &X509Certificate<'_>,
    subject: &str,
) -> Result<(), PkiError> {
    let (issuer, ca_subject) = (cert.issuer(), ca.subject());
    let same_name = issuer.as_raw() == ca_subject.as_raw()
        || issuer
            .to_string()
            .eq_ignore_ascii_case(&ca_subject.to_string());
    if !same_name {
        return Err(PkiError::WrongCa {
            subject: subject.to_string(),
            cert_issuer: issuer.to_string(),
            ca_subject: ca_subject.to_string(),
        });
    }
    cert.verify_signature(Some(ca.public_key()))
        .map_err(|_| PkiError::NotSignedByCa {
            subject: subject.to_string(),
            ca_subject: ca_subject.to_string(),
        })
}

/// The parameters of the renewed certificate. rcgen's defaults (a validity
/// from 1975 to 4096, no usages, a serial derived from the key) are all
/// overridden: each field is set from the old certificate or from kubeadm's
/// rules.
fn leaf_params(
    old: &X509Certificate<'_>,
    subject: &str,
    now_unix: i64,
    validity_secs: i64,
    has_key_id: bool,
) -> Result<CertificateParams, PkiError> {
    let unsupported = |reason: String| PkiError::Unsupported {
        subject: subject.to_string(),
        reason,
    };
    let info = cert_info(old)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(old.subject(), subject)?;
    params.subject_alt_names = subject_alt_names(old)?
        .iter()
        .map(|name| san(name).ok_or_else(|| unsupported(format!("subjectAltName {name:?}"))))
        .collect::<Result<_, _>>()?;
    params.key_usages = info
        .key_usage
        .iter()
        .map(|name| key_usage(name).ok_or_else(|| unsupported(format!("key usage {name}"))))
        .collect::<Result<_, _>>()?;
    params.extended_key_usages = ext_key_usage_oids(old)?
        .into_iter()
        .map(ext_key_usage)
        .collect();
    params.is_ca = match old.basic_constraints() {
        Ok(Some(_)) => IsCa::ExplicitNoCa,
        Ok(None) => IsCa::NoCa,
        Err(e) => return Err(PkiError::BadCertificate(format!("basicConstraints: {e}"))),
    };
    params.use_authority_key_identifier_extension = has_key_id;
    params.not_before = unix_time(now_unix - BACKDATE_SECS)?;
    params.not_after = unix_time(now_unix.saturating_add(validity_secs))?;
    params.serial_number = Some(random_serial()?);
    Ok(params)
}

/// The renewal did what it claims: anything else is a bug in remedy (or in
/// rcgen's encoding), and a certificate that would break the cluster must not
/// be handed out to be written.
fn check_renewal(
    old: &X509Certificate<'_>,
    new: &X509Certificate<'_>,
    ca: &X509Certificate<'_>,
    key: &KeyPair,
) -> Result<(), PkiError> {
    let fail = |what: &str| Err(PkiError::Internal(format!("renewed certificate: {what}")));
    if new.subject().as_raw() != old.subject().as_raw() {
        return fail("subject differs from the old certificate's");
    }
    if subject_alt_names(new)? != subject_alt_names(old)? {
        return fail("subjectAltNames differ from the old certificate's");
    }
    if ext_key_usage_oids(new)? != ext_key_usage_oids(old)? {
        return fail("extended key usage differs from the old certificate's");
    }
    if new.issuer().as_raw() != ca.subject().as_raw() {
        return fail("issuer is not the CA's subject");
    }
    if new.verify_signature(Some(ca.public_key())).is_err() {
        return fail("signature does not verify with the CA's key");
    }
    if !key_matches(key, new) {
        return fail("new key does not match the new certificate");
    }
    Ok(())
}

/// rcgen's view of an X.509 name, attribute by attribute and string type by
/// string type, so that rcgen re-encodes it identically. rcgen keeps one value
/// per attribute type, so a name with two O's (or a multi-valued RDN) cannot
/// be copied and is refused rather than silently losing a group.
fn distinguished_name(name: &X509Name<'_>, subject: &str) -> Result<DistinguishedName, PkiError> {
    let unsupported = |reason: String| PkiError::Unsupported {
        subject: subject.to_string(),
        reason,
    };
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let [attr] = rdn.iter().collect::<Vec<_>>()[..] else {
            return Err(unsupported("a multi-valued RDN in its name".into()));
        };
        let oid: Vec<u64> = attr
            .attr_type()
            .iter()
            .ok_or_else(|| unsupported("a name attribute with an oversized OID".into()))?
            .collect();
        let ty = DnType::from_oid(&oid);
        if dn.get(&ty).is_some() {
            return Err(unsupported(format!(
                "more than one {} in its name (rcgen keeps one value per attribute)",
                attr.attr_type().to_id_string()
            )));
        }
        let value = attr.attr_value();
        let text = || {
            std::str::from_utf8(value.data)
                .map_err(|_| unsupported("a name attribute that is not valid text".into()))
        };
        let bad_string =
            |e: rcgen::Error| unsupported(format!("a name attribute rcgen rejects: {e}"));
        let value = match value.header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text()?.to_string()),
            Tag::PrintableString => {
                DnValue::PrintableString(PrintableString::try_from(text()?).map_err(bad_string)?)
            }
            Tag::Ia5String => DnValue::Ia5String(Ia5String::try_from(text()?).map_err(bad_string)?),
            Tag::T61String => {
                DnValue::TeletexString(TeletexString::try_from(text()?).map_err(bad_string)?)
            }
            Tag::BmpString => DnValue::BmpString(
                BmpString::from_utf16be(value.data.to_vec()).map_err(bad_string)?,
            ),
            Tag::UniversalString => DnValue::UniversalString(
                UniversalString::from_utf32be(value.data.to_vec()).map_err(bad_string)?,
            ),
            tag => return Err(unsupported(format!("a name attribute of ASN.1 type {tag}"))),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

fn san(name: &GeneralName<'_>) -> Option<SanType> {
    Some(match name {
        GeneralName::DNSName(dns) => SanType::DnsName(Ia5String::try_from(*dns).ok()?),
        GeneralName::IPAddress(bytes) => SanType::IpAddress(super::inspect::ip_from_bytes(bytes)?),
        GeneralName::RFC822Name(mail) => SanType::Rfc822Name(Ia5String::try_from(*mail).ok()?),
        GeneralName::URI(uri) => SanType::URI(Ia5String::try_from(*uri).ok()?),
        _ => return None,
    })
}

/// From the names [`CertInfo::key_usage`] uses.
fn key_usage(name: &str) -> Option<KeyUsagePurpose> {
    Some(match name {
        "digitalSignature" => KeyUsagePurpose::DigitalSignature,
        "nonRepudiation" => KeyUsagePurpose::ContentCommitment,
        "keyEncipherment" => KeyUsagePurpose::KeyEncipherment,
        "dataEncipherment" => KeyUsagePurpose::DataEncipherment,
        "keyAgreement" => KeyUsagePurpose::KeyAgreement,
        "keyCertSign" => KeyUsagePurpose::KeyCertSign,
        "cRLSign" => KeyUsagePurpose::CrlSign,
        "encipherOnly" => KeyUsagePurpose::EncipherOnly,
        "decipherOnly" => KeyUsagePurpose::DecipherOnly,
        _ => return None,
    })
}

fn ext_key_usage(oid: Vec<u64>) -> ExtendedKeyUsagePurpose {
    const KP: [u64; 8] = [1, 3, 6, 1, 5, 5, 7, 3];
    match oid.as_slice() {
        [2, 5, 29, 37, 0] => ExtendedKeyUsagePurpose::Any,
        [kp @ .., 1] if kp == KP => ExtendedKeyUsagePurpose::ServerAuth,
        [kp @ .., 2] if kp == KP => ExtendedKeyUsagePurpose::ClientAuth,
        [kp @ .., 3] if kp == KP => ExtendedKeyUsagePurpose::CodeSigning,
        [kp @ .., 4] if kp == KP => ExtendedKeyUsagePurpose::EmailProtection,
        [kp @ .., 8] if kp == KP => ExtendedKeyUsagePurpose::TimeStamping,
        [kp @ .., 9] if kp == KP => ExtendedKeyUsagePurpose::OcspSigning,
        _ => ExtendedKeyUsagePurpose::Other(oid),
    }
}

fn unix_time(secs: i64) -> Result<time::OffsetDateTime, PkiError> {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| PkiError::Sign(format!("time {secs} is out of range: {e}")))
}

/// 16 random bytes with the top bit clear (a DER INTEGER must be positive)
/// and the next one set (so it is never zero and always 16 bytes long).
/// kubeadm uses a random 63-bit serial; longer is allowed (RFC 5280: up to 20
/// octets) and makes collisions with the old serial practically impossible.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| PkiError::Sign("the system random generator failed".into()))?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo. aws-lc exports
/// only PKCS#8, but kubeadm writes leaf keys as PKCS#1, and tools that check
/// key files (and operators) expect `RSA PRIVATE KEY`.
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Result<Vec<u8>, PkiError> {
    const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
    let bad = |why: String| PkiError::Internal(format!("new key's PKCS#8 encoding: {why}"));
    let (_, info) = x509_parser::der_parser::parse_der(pkcs8).map_err(|e| bad(e.to_string()))?;
    // PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, OCTET STRING, ... }
    let fields = info.as_sequence().map_err(|e| bad(e.to_string()))?;
    let [_, algorithm, key, ..] = fields.as_slice() else {
        return Err(bad("too few fields".into()));
    };
    let algorithm = algorithm
        .as_sequence()
        .ok()
        .and_then(|a| a.first())
        .and_then(|oid| oid.as_oid().ok())
        .map(|oid| oid.to_id_string());
    if algorithm.as_deref() != Some(RSA_ENCRYPTION) {
        return Err(bad(format!("algorithm {algorithm:?} is not rsaEncryption")));
    }
    Ok(key.as_slice().map_err(|e| bad(e.to_string()))?.to_vec())
}

/// PEM as openssl and Go write it: 64 base64 characters a line, LF endings.
fn pem_encode(label: &str, der: &[u8]) -> Vec<u8> {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n").into_bytes();
    for line in body.as_bytes().chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(format!("-----END {label}-----\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_cert_pem;
    use remedy_testkit::openssl::{openssl, openssl_verify, Lab, Pair};

    fn now() -> i64 {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        i64::try_from(since.as_secs()).unwrap()
    }

    fn ca(lab: &Lab) -> Ca {
        Ca::from_pem(&lab.ca.cert_pem, &lab.ca.key_pem).unwrap()
    }

    /// openssl's view of one aspect of a certificate file.
    fn show(lab: &Lab, file: &str, what: &[&str]) -> String {
        let mut args = vec!["x509", "-noout", "-in"];
        let path = lab.path(file);
        args.push(&path);
        args.extend(what);
        openssl(&args)
    }

    #[test]
    fn renewal_matches_kubeadm_and_openssl_agrees() {
        let lab = Lab::new();
        let old = lab.etcd_peer();
        let now = now();
        let renewed =
            renew_leaf(&old.cert_pem, &ca(&lab), now, KUBEADM_LEAF_VALIDITY_SECS).unwrap();
        lab.write("new.crt", &renewed.cert_pem);
        lab.write("new.key", &renewed.key_pem);

        let (ok, out) = openssl_verify(&lab.path(&lab.ca.cert_file), &lab.path("new.crt"));
        assert!(ok, "{out}");

        // Identity and usages copied, as openssl prints them.
        for what in [
            &["-subject"][..],
            &["-issuer"],
            &["-ext", "subjectAltName"],
            // One at a time: the extensions' order is not part of the contract.
            &["-ext", "keyUsage"],
            &["-ext", "extendedKeyUsage"],
            &["-ext", "basicConstraints"],
        ] {
            assert_eq!(
                show(&lab, "new.crt", what),
                show(&lab, &old.cert_file, what),
                "{what:?}"
            );
        }
        assert_ne!(
            show(&lab, "new.crt", &["-serial"]),
            show(&lab, &old.cert_file, &["-serial"])
        );
        let aki = show(&lab, "new.crt", &["-ext", "authorityKeyIdentifier"]);
        let ski = show(&lab, &lab.ca.cert_file, &["-ext", "subjectKeyIdentifier"]);
        let id = |s: &str| s.lines().nth(1).unwrap().trim().to_string();
        assert_eq!(id(&aki), id(&ski));
        assert!(show(&lab, "new.crt", &["-text"])
            .contains("Signature Algorithm: sha256WithRSAEncryption"));

        // A new PKCS#1 RSA 2048 key that matches the new certificate only.
        let key = String::from_utf8(renewed.key_pem.clone()).unwrap();
        assert!(
            key.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"),
            "{key}"
        );
        let text = openssl(&["rsa", "-noout", "-text", "-in", &lab.path("new.key")]);
        assert!(text.lines().next().unwrap().contains("2048 bit"), "{text}");
        let new_pub = openssl(&["rsa", "-pubout", "-in", &lab.path("new.key")]);
        assert_eq!(new_pub, show(&lab, "new.crt", &["-pubkey"]));
        let old_pub = openssl(&["rsa", "-pubout", "-in", &lab.path(&old.key_file)]);
        assert_ne!(new_pub, old_pub);

        // Validity as kubeadm sets it, and as openssl reads it.
        let info = parse_cert_pem(&renewed.cert_pem).unwrap();
        assert_eq!(info, renewed.info);
        assert!((info.not_after - (now + 365 * 86_400)).abs() <= 60);
        assert_eq!(info.not_before, now - BACKDATE_SECS);
        let end = show(&lab, "new.crt", &["-enddate", "-dateopt", "iso_8601"]);
        let t = time::OffsetDateTime::from_unix_timestamp(info.not_after).unwrap();
        assert!(end.contains(&format!(
            "{}-{:02}-{:02}",
            t.year(),
            u8::from(t.month()),
            t.day()
        )));
        assert_eq!(info.subject_cn, "cp1");
        assert_eq!(info.subject_orgs, vec!["system:masters"]);
    }

    #[test]
    fn renews_a_client_cert_with_a_pkcs8_ca_key() {
        let lab = Lab::new();
        let old = lab.admin();
        let pkcs8 = openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &lab.path(&lab.ca.key_file),
        ]);
        let ca = Ca::from_pem(&lab.ca.cert_pem, pkcs8.as_bytes()).unwrap();
        let renewed = renew_leaf(&old.cert_pem, &ca, now(), 3600).unwrap();
        let new = lab.write("admin-new.crt", &renewed.cert_pem);
        let (ok, out) = openssl_verify(&lab.path(&lab.ca.cert_file), &new);
        assert!(ok, "{out}");
        assert_eq!(renewed.info.subject_orgs, vec!["kubeadm:cluster-admins"]);
        assert_eq!(renewed.info.ext_key_usage, vec!["clientAuth"]);
        assert!(renewed.info.dns_sans.is_empty() && renewed.info.ip_sans.is_empty());
    }

    #[test]
    fn refuses_to_renew_a_ca() {
        let lab = Lab::new();
        let err = renew_leaf(&lab.ca.cert_pem, &ca(&lab), now(), 3600).unwrap_err();
        assert!(matches!(err, PkiError::IsCa { .. }), "{err}");
    }

    #[test]
    fn refuses_the_wrong_ca() {
        let lab = Lab::new();
        let leaf = lab.etcd_peer();

        // Another name: etcd's CA for an API-server-CA certificate.
        let etcd = lab.new_ca("etcd-ca", "etcd-ca");
        let etcd = Ca::from_pem(&etcd.cert_pem, &etcd.key_pem).unwrap();
        let err = renew_leaf(&leaf.cert_pem, &etcd, now(), 3600).unwrap_err();
        assert!(matches!(err, PkiError::WrongCa { .. }), "{err}");
        assert!(err.to_string().contains("etcd-ca"), "{err}");

        // The same name, another key: a CA that was regenerated.
        let impostor: Pair = lab.new_ca("other-ca", "kubernetes");
        let impostor = Ca::from_pem(&impostor.cert_pem, &impostor.key_pem).unwrap();
        let err = renew_leaf(&leaf.cert_pem, &impostor, now(), 3600).unwrap_err();
        assert!(matches!(err, PkiError::NotSignedByCa { .. }), "{err}");
    }

    #[test]
    fn a_ca_must_be_a_ca_with_its_own_key() {
        let lab = Lab::new();
        let leaf = lab.etcd_peer();
        let err = Ca::from_pem(&leaf.cert_pem, &leaf.key_pem).unwrap_err();
        assert!(matches!(err, PkiError::NotACa { .. }), "{err}");
        let err = Ca::from_pem(&lab.ca.cert_pem, &leaf.key_pem).unwrap_err();
        assert!(matches!(err, PkiError::CaKeyMismatch { .. }), "{err}");
        // The key stays out of debug output.
        let ca = ca(&lab);
        assert!(!format!("{ca:?}").contains("PRIVATE"));
        let renewed = renew_leaf(&leaf.cert_pem, &ca, now(), 3600).unwrap();
        assert!(!format!("{renewed:?}").contains("PRIVATE"));
    }

    #[test]
    fn refuses_an_expired_ca_and_a_bad_validity() {
        let lab = Lab::new();
        let leaf = lab.etcd_peer();
        let ca = ca(&lab);
        let err = renew_leaf(&leaf.cert_pem, &ca, ca.info().not_after, 3600).unwrap_err();
        assert!(matches!(err, PkiError::CaExpired { .. }), "{err}");
        let err = renew_leaf(&leaf.cert_pem, &ca, now(), 0).unwrap_err();
        assert!(matches!(err, PkiError::BadValidity(0)), "{err}");
    }

    #[test]
    fn a_subject_with_two_organisations_is_refused_not_truncated() {
        let lab = Lab::new();
        let leaf = lab.leaf(
            "two-orgs",
            "/O=system:masters/O=kubeadm:cluster-admins/CN=someone",
            "extendedKeyUsage = clientAuth\n",
            &lab.ca,
        );
        let err = renew_leaf(&leaf.cert_pem, &ca(&lab), now(), 3600).unwrap_err();
        assert!(matches!(err, PkiError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn pem_lines_are_64_characters() {
        let pem = String::from_utf8(pem_encode("X", &[7u8; 100])).unwrap();
        let lines: Vec<_> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN X-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last(), Some(&"-----END X-----"));
    }
}
