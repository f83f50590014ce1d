//! Reading certificates and private keys: what a certificate says
//! ([`CertInfo`]), how long it has left, and whether a key belongs to it.
//!
//! Fingerprints are SHA-256 in lowercase hex: `fingerprint_sha256` over the
//! certificate's DER (what `openssl x509 -fingerprint -sha256` prints, without
//! colons) and `public_key_sha256` over the DER SubjectPublicKeyInfo (so a
//! renewed certificate with a new key is told apart from a re-signed one).

use super::PkiError;
use rcgen::{KeyPair, PublicKeyData};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::oid::Oid;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem;
use x509_parser::x509::X509Name;

/// What a certificate says, in the terms an operator (and a runbook) uses.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct CertInfo {
    /// First CN of the subject; empty when there is none.
    pub subject_cn: String,
    /// Every O of the subject, in order (Kubernetes reads them as groups).
    pub subject_orgs: Vec<String>,
    /// First CN of the issuer; empty when there is none.
    pub issuer_cn: String,
    /// Serial number, lowercase hex, an even number of digits.
    pub serial_hex: String,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
    pub dns_sans: Vec<String>,
    pub ip_sans: Vec<IpAddr>,
    /// basicConstraints CA:TRUE.
    pub is_ca: bool,
    /// RFC 5280 names as openssl's config spells them: "digitalSignature",
    /// "keyEncipherment", "keyCertSign", …
    pub key_usage: Vec<String>,
    /// In certificate order: "serverAuth", "clientAuth", …, or a dotted OID.
    pub ext_key_usage: Vec<String>,
    /// SHA-256 of the DER SubjectPublicKeyInfo, lowercase hex.
    pub public_key_sha256: String,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub fingerprint_sha256: String,
}

/// Parse the first certificate of a PEM file (a bundle's later certificates,
/// such as an intermediate, are ignored — kubeadm puts the leaf first).
pub fn parse_cert_pem(pem: &[u8]) -> Result<CertInfo, PkiError> {
    let der = cert_der_from_pem(pem)?;
    cert_info(&parse_der(&der)?)
}

/// Whole days until `info` expires, rounded down; negative once expired
/// (one second past expiry is day -1, as the certificate is no longer usable).
pub fn days_left(info: &CertInfo, now_unix: i64) -> i64 {
    (info.not_after - now_unix).div_euclid(86_400)
}

/// Whether the private key in `key_pem` is the key of the first certificate in
/// `cert_pem`. Reads RSA (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`),
/// EC (SEC1 `EC PRIVATE KEY` or PKCS#8; P-256, P-384, P-521) and Ed25519.
pub fn key_matches_cert(key_pem: &[u8], cert_pem: &[u8]) -> Result<bool, PkiError> {
    let key = load_key_pair(key_pem)?;
    let der = cert_der_from_pem(cert_pem)?;
    Ok(key_matches(&key, &parse_der(&der)?))
}

/// Compare the raw public key: for RSA the PKCS#1 RSAPublicKey, for EC the
/// point, for Ed25519 the 32 bytes — which is what the certificate's
/// subjectPublicKey BIT STRING holds in each case.
pub(super) fn key_matches(key: &KeyPair, cert: &X509Certificate<'_>) -> bool {
    key.der_bytes() == cert.public_key().subject_public_key.data.as_ref()
}

/// The DER of the first `CERTIFICATE` block.
pub(super) fn cert_der_from_pem(pem: &[u8]) -> Result<Vec<u8>, PkiError> {
    first_pem_block(pem, &["CERTIFICATE"], "certificate").map(|p| p.contents)
}

/// Load a private key the way kubeadm (or openssl) writes it.
pub(super) fn load_key_pair(key_pem: &[u8]) -> Result<KeyPair, PkiError> {
    const LABELS: [&str; 4] = [
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
    ];
    let block = first_pem_block(key_pem, &LABELS, "private key")?;
    if block.label == "ENCRYPTED PRIVATE KEY" {
        return Err(PkiError::BadKey(
            "the key is encrypted with a passphrase; kubeadm's keys are not — decrypt it with `openssl pkey` first".into(),
        ));
    }
    KeyPair::try_from(block.contents.as_slice()).map_err(|e| {
        PkiError::BadKey(format!(
            "{e} (supported: RSA 2048-8192 bits, EC P-256/P-384/P-521, Ed25519)"
        ))
    })
}

/// The first PEM block whose label is one of `labels`; blocks of other kinds
/// before it (an `EC PARAMETERS` block, say) are skipped.
fn first_pem_block(pem: &[u8], labels: &[&str], what: &'static str) -> Result<Pem, PkiError> {
    for block in Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| PkiError::BadPem {
            what,
            reason: e.to_string(),
        })?;
        if labels.contains(&block.label.as_str()) {
            return Ok(block);
        }
    }
    Err(PkiError::NoPem {
        what,
        expected: labels.join("` or `-----BEGIN "),
    })
}

/// Parse DER, refusing trailing bytes: a certificate with junk after it was
/// not written by kubeadm or openssl, and silently ignoring it hides damage.
pub(super) fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(PkiError::BadCertificate(format!(
            "{} unexpected bytes after the certificate",
            rest.len()
        ))),
        Err(e) => Err(PkiError::BadCertificate(e.to_string())),
    }
}

pub(super) fn cert_info(cert: &X509Certificate<'_>) -> Result<CertInfo, PkiError> {
    let mut dns_sans = Vec::new();
    let mut ip_sans = Vec::new();
    for name in subject_alt_names(cert)? {
        match name {
            GeneralName::DNSName(dns) => dns_sans.push(dns.to_string()),
            GeneralName::IPAddress(bytes) => {
                ip_sans.push(ip_from_bytes(bytes).ok_or_else(|| {
                    PkiError::BadCertificate(format!("IP SAN of {} bytes", bytes.len()))
                })?)
            }
            // Reported nowhere in CertInfo, but renewal copies them (renew.rs).
            _ => {}
        }
    }
    let key_usage = match cert
        .key_usage()
        .map_err(|e| PkiError::BadCertificate(format!("keyUsage: {e}")))?
    {
        Some(ku) => {
            let ku = ku.value;
            [
                (ku.digital_signature(), "digitalSignature"),
                (ku.non_repudiation(), "nonRepudiation"),
                (ku.key_encipherment(), "keyEncipherment"),
                (ku.data_encipherment(), "dataEncipherment"),
                (ku.key_agreement(), "keyAgreement"),
                (ku.key_cert_sign(), "keyCertSign"),
                (ku.crl_sign(), "cRLSign"),
                (ku.encipher_only(), "encipherOnly"),
                (ku.decipher_only(), "decipherOnly"),
            ]
            .into_iter()
            .filter(|(set, _)| *set)
            .map(|(_, name)| name.to_string())
            .collect()
        }
        None => Vec::new(),
    };
    Ok(CertInfo {
        subject_cn: first_cn(cert.subject()),
        subject_orgs: cert
            .subject()
            .iter_organization()
            .map(|a| attr_text(a.as_str(), a.as_slice()))
            .collect(),
        issuer_cn: first_cn(cert.issuer()),
        serial_hex: serial_hex(cert.raw_serial()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        dns_sans,
        ip_sans,
        is_ca: cert.is_ca(),
        key_usage,
        ext_key_usage: ext_key_usage_oids(cert)?
            .iter()
            .map(|oid| eku_name(oid))
            .collect(),
        public_key_sha256: hex::encode(Sha256::digest(cert.public_key().raw)),
        fingerprint_sha256: hex::encode(Sha256::digest(cert.as_raw())),
    })
}

/// The subjectAltName entries, in certificate order.
pub(super) fn subject_alt_names<'a>(
    cert: &'a X509Certificate<'a>,
) -> Result<&'a [GeneralName<'a>], PkiError> {
    match cert.subject_alternative_name() {
        Ok(Some(san)) => Ok(&san.value.general_names),
        Ok(None) => Ok(&[]),
        Err(e) => Err(PkiError::BadCertificate(format!("subjectAltName: {e}"))),
    }
}

/// The extendedKeyUsage OIDs in certificate order. x509-parser's parsed form
/// is a set of flags, which loses the order, and a renewed certificate should
/// list them exactly as the old one did.
pub(super) fn ext_key_usage_oids(cert: &X509Certificate<'_>) -> Result<Vec<Vec<u64>>, PkiError> {
    let bad = |why: &str| PkiError::BadCertificate(format!("extendedKeyUsage: {why}"));
    let eku_oid = x509_parser::oid_registry::OID_X509_EXT_EXTENDED_KEY_USAGE;
    let Some(ext) = cert
        .get_extension_unique(&eku_oid)
        .map_err(|e| bad(&e.to_string()))?
    else {
        return Ok(Vec::new());
    };
    if let ParsedExtension::UnsupportedExtension { .. } = ext.parsed_extension() {
        return Err(bad("not understood"));
    }
    let (_, seq) =
        x509_parser::der_parser::parse_der(ext.value).map_err(|e| bad(&e.to_string()))?;
    let items = seq.as_sequence().map_err(|e| bad(&e.to_string()))?;
    items
        .iter()
        .map(|item| {
            let oid: &Oid<'_> = item.as_oid().map_err(|e| bad(&e.to_string()))?;
            oid.iter()
                .map(|arcs| arcs.collect())
                .ok_or_else(|| bad("OID arc too large"))
        })
        .collect()
}

/// openssl's config name for an extended key usage, or the dotted OID.
fn eku_name(oid: &[u64]) -> String {
    const KP: [u64; 8] = [1, 3, 6, 1, 5, 5, 7, 3];
    match oid {
        [2, 5, 29, 37, 0] => "anyExtendedKeyUsage".into(),
        [kp @ .., last] if kp == KP => match last {
            1 => "serverAuth".into(),
            2 => "clientAuth".into(),
            3 => "codeSigning".into(),
            4 => "emailProtection".into(),
            8 => "timeStamping".into(),
            9 => "OCSPSigning".into(),
            _ => dotted(oid),
        },
        _ => dotted(oid),
    }
}

fn dotted(oid: &[u64]) -> String {
    oid.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
}

pub(super) fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn first_cn(name: &X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .map(|a| attr_text(a.as_str(), a.as_slice()))
        .unwrap_or_default()
}

/// A DN value as text; string types x509-parser does not decode (BMPString…)
/// are shown lossily rather than failing the whole inspection.
fn attr_text(s: Result<&str, x509_parser::error::X509Error>, raw: &[u8]) -> String {
    match s {
        Ok(s) => s.to_string(),
        Err(_) => String::from_utf8_lossy(raw).into_owned(),
    }
}

/// Lowercase hex with the DER sign byte dropped, so a serial reads the same as
/// `openssl x509 -serial` prints it (modulo case).
fn serial_hex(raw: &[u8]) -> String {
    let trimmed = match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        _ => raw,
    };
    hex::encode(trimmed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use remedy_testkit::openssl::{openssl, Lab};

    #[test]
    fn parses_an_openssl_leaf_like_openssl_does() {
        let lab = Lab::new();
        let leaf = lab.etcd_peer();
        let info = parse_cert_pem(&leaf.cert_pem).unwrap();

        assert_eq!(info.subject_cn, "cp1");
        assert_eq!(info.subject_orgs, vec!["system:masters".to_string()]);
        assert_eq!(info.issuer_cn, "kubernetes");
        assert!(!info.is_ca);
        assert_eq!(info.dns_sans, vec!["cp1", "localhost"]);
        assert_eq!(
            info.ip_sans,
            vec![
                "192.168.56.10".parse::<IpAddr>().unwrap(),
                "127.0.0.1".parse().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(info.key_usage, vec!["digitalSignature", "keyEncipherment"]);
        assert_eq!(info.ext_key_usage, vec!["serverAuth", "clientAuth"]);

        // The same facts as openssl prints them.
        let path = lab.path(&leaf.cert_file);
        let end = openssl(&[
            "x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in", &path,
        ]);
        assert_eq!(end.trim(), format!("notAfter={}", iso_8601(info.not_after)));
        let start = openssl(&[
            "x509",
            "-noout",
            "-startdate",
            "-dateopt",
            "iso_8601",
            "-in",
            &path,
        ]);
        assert_eq!(
            start.trim(),
            format!("notBefore={}", iso_8601(info.not_before))
        );
        let san = openssl(&["x509", "-noout", "-ext", "subjectAltName", "-in", &path]);
        assert_eq!(
            san.lines().nth(1).unwrap().trim(),
            "DNS:cp1, DNS:localhost, IP Address:192.168.56.10, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"
        );
        let serial = openssl(&["x509", "-noout", "-serial", "-in", &path]);
        assert_eq!(
            serial.trim().trim_start_matches("serial=").to_lowercase(),
            info.serial_hex
        );
        let fp = openssl(&["x509", "-noout", "-fingerprint", "-sha256", "-in", &path]);
        let fp = fp.trim().rsplit('=').next().unwrap().replace(':', "");
        assert_eq!(fp.to_lowercase(), info.fingerprint_sha256);
        let subject = openssl(&[
            "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", &path,
        ]);
        assert_eq!(subject.trim(), "subject=CN=cp1,O=system:masters");
    }

    #[test]
    fn parses_a_ca() {
        let lab = Lab::new();
        let info = parse_cert_pem(&lab.ca.cert_pem).unwrap();
        assert!(info.is_ca);
        assert_eq!(info.subject_cn, "kubernetes");
        assert!(info.key_usage.contains(&"keyCertSign".to_string()));
        assert!(info.ext_key_usage.is_empty());
    }

    #[test]
    fn days_left_rounds_down_and_goes_negative() {
        let info = CertInfo {
            subject_cn: String::new(),
            subject_orgs: vec![],
            issuer_cn: String::new(),
            serial_hex: String::new(),
            not_before: 0,
            not_after: 10 * 86_400,
            dns_sans: vec![],
            ip_sans: vec![],
            is_ca: false,
            key_usage: vec![],
            ext_key_usage: vec![],
            public_key_sha256: String::new(),
            fingerprint_sha256: String::new(),
        };
        assert_eq!(days_left(&info, 0), 10);
        assert_eq!(days_left(&info, 1), 9);
        assert_eq!(days_left(&info, 10 * 86_400), 0);
        assert_eq!(days_left(&info, 10 * 86_400 + 1), -1);
        assert_eq!(days_left(&info, 12 * 86_400), -2);
    }

    #[test]
    fn keys_match_their_certificates_in_every_encoding() {
        let lab = Lab::new();
        let leaf = lab.etcd_peer();
        assert!(key_matches_cert(&leaf.key_pem, &leaf.cert_pem).unwrap());
        assert!(!key_matches_cert(&lab.ca.key_pem, &leaf.cert_pem).unwrap());
        assert!(
            String::from_utf8_lossy(&leaf.key_pem).starts_with("-----BEGIN RSA PRIVATE KEY-----")
        );

        let pkcs8 = openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &lab.path(&leaf.key_file),
        ]);
        assert!(pkcs8.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(key_matches_cert(pkcs8.as_bytes(), &leaf.cert_pem).unwrap());

        for (name, genkey) in [
            (
                "ec",
                &["ecparam", "-genkey", "-name", "prime256v1", "-noout"][..],
            ),
            ("ed", &["genpkey", "-algorithm", "ed25519"][..]),
        ] {
            let key_file = lab.path(&format!("{name}.key"));
            let cert_file = lab.path(&format!("{name}.crt"));
            let mut args = genkey.to_vec();
            args.extend(["-out", &key_file]);
            openssl(&args);
            openssl(&[
                "req", "-x509", "-new", "-key", &key_file, "-subj", "/CN=x", "-days", "1", "-out",
                &cert_file,
            ]);
            let key = std::fs::read(&key_file).unwrap();
            let cert = std::fs::read(&cert_file).unwrap();
            assert!(key_matches_cert(&key, &cert).unwrap(), "{name}");
            assert!(!key_matches_cert(&key, &leaf.cert_pem).unwrap(), "{name}");
        }
    }

    #[test]
    fn garbage_is_reported_not_panicked_on() {
        assert!(matches!(
            parse_cert_pem(b"hello"),
            Err(PkiError::NoPem { .. })
        ));
        assert!(matches!(
            parse_cert_pem(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
            Err(PkiError::BadPem { .. })
        ));
        assert!(matches!(
            parse_cert_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(PkiError::BadCertificate(_))
        ));
        let msg = key_matches_cert(b"", b"").unwrap_err().to_string();
        assert!(msg.contains("BEGIN RSA PRIVATE KEY"), "{msg}");
    }

    /// `YYYY-MM-DD HH:MM:SSZ`, as `openssl x509 -dateopt iso_8601` prints.
    fn iso_8601(unix: i64) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp(unix).unwrap();
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}
