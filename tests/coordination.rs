//! Several jump hosts coordinated through an ops etcd (issue 18). Each test
//! acts as two jump hosts — two REMEDY_HOMEs whose site configs name
//! different `jump_host`s — sharing one local-transport "master" and the
//! lab's ops etcd (`remedy_lab::ops_etcd`: three real etcd members with
//! their own kubeadm-made PKI, on addresses derived from the test process
//! and the test), stopped by a Drop guard whatever happens.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A site config's errors in `coordination:` are located, all at once,
/// and nothing runs.
#[test]
fn a_bad_coordination_block_is_refused_with_every_problem_located() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.crt"), "x").unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "coordination:\n  lease_tll: 30s\n  etcd:\n    endpoints: [http://10.0.0.1:2379]\n    ca: ca.crt\n    cert: missing.crt\n    prefix: remedy\n",
    )
    .unwrap();
    let out = remedy_in(
        dir.path(),
        &["approve", "some-run", "--config", config.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for expected in [
        "unknown key `lease_tll` in `coordination`",
        "config.yaml:2:3",
        "did you mean `lease_ttl`",
        "an ops etcd endpoint must be `https://HOST:PORT`",
        "config.yaml:4:17",
        "`coordination.etcd.cert`: no file",
        "missing.crt",
        "`coordination.etcd.prefix` must be a key path",
        "`coordination.etcd` needs `key`",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // The relative CA was found next to the config: no error names it.
    assert!(!err.contains("ca.crt`"), "{err}");
}

/// `remedy ARGS` with REMEDY_HOME under `dir`.
fn remedy_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_remedy"))
        .args(args)
        .env_remove("REMEDY_INVENTORY")
        .env_remove("REMEDY_CONFIG")
        .env("NO_COLOR", "1")
        .env("REMEDY_HOME", dir.join("home"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}
