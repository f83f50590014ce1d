//! `remedy lab break`'s faults on a real lab: each one makes the real
//! component show the symptom it is named after (the API server's own
//! `unknown flag` and missing-file errors, etcd members that cannot start).
//!
//! A test target without libtest's harness (`harness = false`): the lab runs
//! its kubelet stand-ins and `crictl` as `<remedy> lab kubelet|crictl …`, and
//! this executable, given as that binary, answers those two itself — so the
//! test needs nothing of the `remedy` binary and stays inside `remedy-lab`.

use remedy_lab::faults::{self, BOGUS_APISERVER_FLAG, MISSING_CERT_PATH};
use remedy_lab::lab::{self, UpOptions};
use remedy_lab::pod_state::PodRecord;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["lab", "kubelet", "--node", node, "--lab-dir", dir] => {
            let cfg = remedy_lab::kubelet::KubeletConfig::standard(node, dir);
            std::process::exit(match remedy_lab::kubelet::run(cfg) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("kubelet stand-in: {e}");
                    1
                }
            });
        }
        ["lab", "crictl", ..] => std::process::exit(remedy_lab::crictl::main(&args[2..])),
        _ => {}
    }
    // libtest's listing: nothing to list.
    if args.iter().any(|a| a == "--list") {
        return;
    }
    faults_show_the_real_components_symptoms();
    println!("test faults_show_the_real_components_symptoms ... ok");
}

/// A lab that is stopped when dropped, even when the test fails.
struct Lab {
    dir: tempfile::TempDir,
    base: Ipv4Addr,
}

impl Drop for Lab {
    fn drop(&mut self) {
        lab::stop(self.dir.path());
    }
}

impl Lab {
    fn up() -> Lab {
        // 127.R.160.10, R from this process: beside other labs and test runs.
        let base = Ipv4Addr::new(127, (20 + std::process::id() % 200) as u8, 160, 10);
        let lab = Lab {
            dir: tempfile::tempdir().unwrap(),
            base,
        };
        let opts = UpOptions {
            dir: lab.dir.path().to_path_buf(),
            masters: 3,
            base,
            cert_expiry_secs: 365 * 86400,
            etcd_quota_bytes: None,
            lbs: 1,
            remedy_exe: std::env::current_exe().unwrap(),
            ops_etcd: false,
        };
        lab::up(&opts, &mut |_| {}).unwrap_or_else(|e| panic!("lab up: {e}"));
        lab
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn addr(&self, i: u8) -> String {
        let [a, b, c, d] = self.base.octets();
        format!("{a}.{b}.{c}.{}", d + i)
    }
    fn host(&self, host: &str) -> PathBuf {
        self.path().join("hosts").join(host)
    }
    fn manifest(&self, host: &str, pod: &str) -> PathBuf {
        self.host(host)
            .join("etc-kubernetes/manifests")
            .join(format!("{pod}.yaml"))
    }
    fn pod(&self, host: &str, pod: &str) -> Option<PodRecord> {
        let p = self
            .host(host)
            .join("var-lib-kubelet/pods")
            .join(format!("{pod}.json"));
        serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()
    }
    /// What the pod's containers wrote, newest first (as the lab's crictl
    /// would show them, read straight from the host's log directory).
    fn logs(&self, host: &str, pod: &str) -> String {
        let Some(record) = self.pod(host, pod) else {
            return String::new();
        };
        record
            .containers
            .iter()
            .filter_map(|c| {
                let inside = c.log_path.strip_prefix("/var/log/pods/")?;
                std::fs::read_to_string(self.host(host).join("var-log-pods").join(inside)).ok()
            })
            .collect()
    }
    fn break_it(&self, fault: &str, host: Option<&str>) -> Result<String, String> {
        faults::break_lab(self.path(), fault, host).map_err(|e| e.to_string())
    }
    fn etcdctl(&self, member: u8, args: &[&str]) -> Result<String, String> {
        let pki = self.host("master-1").join("etc-kubernetes/pki/etcd");
        let out = Command::new(self.path().join("bin/etcdctl"))
            .env_remove("ETCDCTL_ENDPOINTS")
            .arg(format!("--endpoints=https://{}:2379", self.addr(member)))
            .arg(format!("--cacert={}", pki.join("ca.crt").display()))
            .arg(format!(
                "--cert={}",
                pki.join("healthcheck-client.crt").display()
            ))
            .arg(format!(
                "--key={}",
                pki.join("healthcheck-client.key").display()
            ))
            .args(["--dial-timeout=3s", "--command-timeout=5s"])
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }
    fn ready(&self, i: u8) -> bool {
        Command::new("curl")
            .args(["-sk", "--max-time", "3"])
            .arg(format!("https://{}:6443/readyz", self.addr(i)))
            .output()
            .is_ok_and(|o| o.stdout == b"ok")
    }
}

/// Until `check` holds; generous, for a loaded 2-core machine.
fn eventually(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "not within {secs}s: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The pod exited with an error and was started again.
fn crash_loops(record: Option<PodRecord>) -> bool {
    record.is_some_and(|r| {
        r.restarts > 0
            && r.containers
                .iter()
                .any(|c| c.exit_code.is_some_and(|code| code != 0))
    })
}

fn faults_show_the_real_components_symptoms() {
    let lab = Lab::up();

    // apiserver-bad-flag: the real API server refuses the flag and crash-loops.
    let good = std::fs::read_to_string(lab.manifest("master-2", "kube-apiserver")).unwrap();
    let said = lab
        .break_it("apiserver-bad-flag", Some("master-2"))
        .unwrap();
    assert!(said.contains(BOGUS_APISERVER_FLAG), "{said}");
    let again = lab.break_it("apiserver-bad-flag", Some("master-2"));
    assert!(
        again.as_ref().is_err_and(|e| e.contains("already broken")),
        "{again:?}"
    );
    eventually("master-2's API server says `unknown flag`", 90, || {
        lab.logs("master-2", "kube-apiserver")
            .contains("Error: unknown flag: --lab-bogus-flag")
    });
    eventually("master-2's API server crash-loops", 90, || {
        crash_loops(lab.pod("master-2", "kube-apiserver"))
    });
    assert!(!lab.ready(2));
    std::fs::write(lab.manifest("master-2", "kube-apiserver"), &good).unwrap();
    eventually("master-2's API server is ready again", 120, || lab.ready(2));

    // apiserver-bad-cert-path: its serving certificate is missing.
    let good = std::fs::read_to_string(lab.manifest("master-1", "kube-apiserver")).unwrap();
    let said = lab
        .break_it("apiserver-bad-cert-path", Some("master-1"))
        .unwrap();
    assert!(said.contains(MISSING_CERT_PATH), "{said}");
    let broken = std::fs::read_to_string(lab.manifest("master-1", "kube-apiserver")).unwrap();
    assert!(
        broken.contains(&format!("    - --tls-cert-file={MISSING_CERT_PATH}\n")),
        "{broken}"
    );
    eventually(
        "master-1's API server cannot open its certificate",
        90,
        || {
            let logs = lab.logs("master-1", "kube-apiserver");
            logs.contains(MISSING_CERT_PATH) && logs.contains("no such file or directory")
        },
    );
    eventually("master-1's API server crash-loops", 90, || {
        crash_loops(lab.pod("master-1", "kube-apiserver"))
    });
    std::fs::write(lab.manifest("master-1", "kube-apiserver"), &good).unwrap();
    eventually("master-1's API server is ready again", 120, || lab.ready(1));

    // etcd-quorum-lost: refused while there is no snapshot to restore from,
    // and nothing is touched.
    let refused = lab.break_it("etcd-quorum-lost", None).unwrap_err();
    let snapshots = faults::snapshots_dir(lab.path());
    assert!(
        refused.contains(&snapshots.display().to_string()) && refused.contains("etcd-snapshot"),
        "{refused}"
    );
    assert!(!faults::destroyed_dir(lab.path()).exists());
    lab.etcdctl(1, &["put", "/lab/before-the-loss", "kept"])
        .unwrap();
    std::fs::create_dir_all(&snapshots).unwrap();
    let snapshot = snapshots.join("etcd.db");
    lab.etcdctl(1, &["snapshot", "save", snapshot.to_str().unwrap()])
        .unwrap();

    let said = lab.break_it("etcd-quorum-lost", None).unwrap();
    assert!(
        said.contains("master-3") && said.contains("master-2") && !said.contains("master-1 "),
        "{said}"
    );
    assert!(said.contains(&snapshot.display().to_string()), "{said}");
    // The members' data is in the lab's `destroyed` place, not deleted.
    for host in ["master-2", "master-3"] {
        let kept: Vec<_> = std::fs::read_dir(faults::destroyed_dir(lab.path()))
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{host}-"))
            })
            .collect();
        assert_eq!(kept.len(), 1, "{host}");
        assert!(kept[0].path().join("member/snap/db").is_file(), "{host}");
    }
    assert!(lab
        .host("master-1")
        .join("var-lib-etcd/member/snap/db")
        .is_file());
    for host in ["master-2", "master-3"] {
        let left = std::fs::read_to_string(lab.host(host).join("var-lib-etcd/member")).unwrap();
        assert_eq!(left, faults::DESTROYED_MARKER, "{host}");
    }
    // The two members cannot start again, and the one left has no quorum.
    for host in ["master-2", "master-3"] {
        eventually(&format!("{host}'s etcd crash-loops"), 120, || {
            crash_loops(lab.pod(host, "etcd"))
        });
    }
    // The first restart counts as crash-looping as soon as the killed
    // container's exit is recorded, before the new one has written why it
    // fails (CI read the logs in between): wait for the reason.
    eventually("master-3's etcd says why it fails", 60, || {
        lab.logs("master-3", "etcd").contains("not a directory")
    });
    eventually("master-1's etcd has no leader", 60, || {
        lab.etcdctl(1, &["endpoint", "health"]).is_err()
    });
}
