//! Several jump hosts coordinated through an ops etcd (issue 18). Each test
//! acts as two jump hosts — two REMEDY_HOMEs whose site configs name
//! different `jump_host`s — sharing one local-transport "master" and the
//! lab's ops etcd (`remedy_lab::ops_etcd`: three real etcd members with
//! their own kubeadm-made PKI, on addresses derived from the test process
//! and the test), stopped by a Drop guard whatever happens.

use remedy_lab::ops_etcd::{self, OpsEtcd};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The lab's ops etcd for one test, stopped (by its recorded PIDs) on drop.
struct Ops {
    lab: tempfile::TempDir,
    etcd: OpsEtcd,
}

impl Ops {
    /// `test` (0..10) keeps the tests of one process apart; the second
    /// octet keeps this process apart from other test runs and labs.
    fn start(test: u8) -> Ops {
        let base = Ipv4Addr::new(127, (20 + std::process::id() % 200) as u8, 170 + test, 10);
        let lab = tempfile::tempdir().unwrap();
        let bins = remedy_lab::binaries::Binaries::verified().unwrap_or_else(|e| panic!("{e}"));
        let started = ops_etcd::up(lab.path(), base, &bins, &mut |_| {});
        let etcd = match started {
            Ok(etcd) => etcd,
            Err(e) => {
                remedy_lab::lab::stop(lab.path());
                panic!("ops etcd: {e}");
            }
        };
        Ops { lab, etcd }
    }

    /// `etcdctl ARGS` against the ops etcd with the fragment's certificates.
    fn etcdctl(&self, args: &[&str]) -> Output {
        let bins = remedy_lab::binaries::Binaries::verified().unwrap();
        Command::new(bins.path("etcdctl").unwrap())
            .arg(format!("--endpoints={}", self.etcd.endpoints.join(",")))
            .arg(format!("--cacert={}", self.etcd.ca.display()))
            .arg(format!("--cert={}", self.etcd.cert.display()))
            .arg(format!("--key={}", self.etcd.key.display()))
            .arg("--command-timeout=3s")
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Ops {
    fn drop(&mut self) {
        remedy_lab::lab::stop(self.lab.path());
    }
}

/// `remedy lab up --ops-etcd`'s part: three members with their own PKI,
/// healthy, a `coordination.yaml` a site config takes as it is, and `lab
/// down` (`lab::stop`) stops them.
#[test]
fn the_lab_ops_etcd_is_three_healthy_members_and_a_config_fragment() {
    let ops = Ops::start(0);
    let health = ops.etcdctl(&["endpoint", "health", "--cluster"]);
    let text = String::from_utf8_lossy(&health.stdout).to_string()
        + String::from_utf8_lossy(&health.stderr).as_ref();
    assert!(health.status.success(), "{text}");
    assert_eq!(text.matches("is healthy").count(), 3, "{text}");
    // Its own CA: not a master's (the lab's masters have none here at all).
    assert!(ops.etcd.ca.starts_with(ops.lab.path().join("ops-etcd")));
    let fragment = std::fs::read_to_string(&ops.etcd.fragment).unwrap();
    assert!(fragment.starts_with("# remedy lab"), "{fragment}");
    // A site config made of the fragment is accepted.
    let home = tempfile::tempdir().unwrap();
    let out = remedy_in(
        home.path(),
        &[
            "approve",
            "no-such-run",
            "--config",
            ops.etcd.fragment.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-run"), "the config was refused: {err}");
    let stopped = remedy_lab::lab::stop(ops.lab.path());
    assert_eq!(stopped.len(), 3, "{stopped:?}");
    assert!(!ops.etcdctl(&["endpoint", "health"]).status.success());
}

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
