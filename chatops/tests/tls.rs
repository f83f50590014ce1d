//! The HTTP clients' TLS has one crypto provider: aws-lc-rs, which remedy
//! carries anyway (russh, the Kubernetes client, rcgen). reqwest is built
//! without its own (ring), so the remedy binary holds one provider, not two
//! (issue 17: ~0.3 MB of a release binary that has to fit in 20 MB), and
//! `http_client` installs the process default reqwest then asks for.
//!
//! Its own test binary: nothing here installs a provider before
//! `http_client`, as in a process that never went through remedy's `main`.

use std::process::Command;

#[test]
fn http_client_builds_without_a_provider_installed_first() {
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    let client = remedy_chatops::http_client().build();
    assert!(client.is_ok(), "{:?}", client.err());
    let provider = rustls::crypto::CryptoProvider::get_default().expect("a default provider");
    // aws-lc-rs's, by what it offers: its suites are those of a fresh one.
    let aws = rustls::crypto::aws_lc_rs::default_provider();
    let names = |p: &rustls::crypto::CryptoProvider| {
        p.cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(provider), names(&aws));
}

#[test]
fn the_remedy_binary_links_no_second_crypto_provider() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--locked",
            "--edges",
            "normal",
            "--package",
            "remedy",
            "--invert",
            "ring",
            "--manifest-path",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"),
        ])
        .output()
        .expect("run cargo tree");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.trim().is_empty(),
        "ring is back in the remedy binary (a dependency's default TLS \
         feature; pick its aws-lc-rs or no-provider feature instead):\n{stdout}"
    );
}
