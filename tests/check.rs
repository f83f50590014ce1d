//! `remedy check` against the real lab: every fault `remedy lab break` can
//! inject is named on the right host, with the right check, severity and
//! fix, within 10 s; where the fix is a runbook of this tree, running the
//! fix the finding names brings `check` back to all ok. A master that
//! accepts connections and never answers is a finding, not a hang. The
//! times are printed (`cargo test --test check -- --nocapture`) and recorded
//! in BENCHMARKS.md.

use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The lab's own address block, 127.R.161.x (R from this process), so it
/// runs beside the other lab tests and a lab that is up.
fn base() -> String {
    addr(0)
}

/// Master `i`'s address (0: the VIP).
fn addr(i: u8) -> String {
    format!("127.{}.161.{}", 20 + std::process::id() % 200, 10 + i)
}

struct Lab {
    dir: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.remedy(&["lab", "down", "--dir", self.dir_str()]);
    }
}

impl Lab {
    fn dir_str(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
    fn inv(&self) -> String {
        self.dir.path().join("inventory.yaml").display().to_string()
    }
    fn remedy(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_remedy"))
            .args(args)
            .env("NO_COLOR", "1")
            .env("REMEDY_HOME", self.dir.path().join("remedy-home"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let out = self.remedy(args);
        assert!(
            out.status.success(),
            "remedy {args:?}: exit {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn break_it(&self, fault: &str, host: &str) {
        self.ok(&[
            "lab",
            "break",
            fault,
            "--host",
            host,
            "--dir",
            self.dir_str(),
        ]);
    }
    /// One `remedy check -o json` on `inventory`: its findings, exit code
    /// and how long it took (never 10 s or more).
    fn check_with(&self, inventory: &str) -> (Vec<Value>, i32, Duration) {
        let started = Instant::now();
        let out = self.remedy(&["check", "-i", inventory, "-o", "json"]);
        let took = started.elapsed();
        let findings: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "check's JSON: {e}\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert!(took < Duration::from_secs(10), "check took {took:?}");
        (findings, out.status.code().unwrap_or(-1), took)
    }
    fn check(&self) -> (Vec<Value>, i32, Duration) {
        self.check_with(&self.inv())
    }
    /// Check until `want` is among the findings: that finding, and how long
    /// the one check that showed it took.
    fn diagnosed(&self, what: &str, want: impl Fn(&Value) -> bool) -> (Value, Duration) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (findings, code, took) = self.check();
            if let Some(f) = findings.iter().find(|f| want(f)) {
                let severity = f["severity"].as_str().unwrap_or("");
                let expected_code = if findings.iter().any(|f| f["severity"] == "critical") {
                    2
                } else {
                    1
                };
                assert_eq!(code, expected_code, "{severity}: {findings:#?}");
                return (f.clone(), took);
            }
            assert!(
                Instant::now() < deadline,
                "not diagnosed within 120 s: {what}\n{}",
                serde_json::to_string_pretty(&findings).unwrap()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    /// Check until everything is ok but what `allowed` accepts (exit 0 when
    /// nothing is allowed).
    fn all_ok(&self, what: &str, allowed: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let (findings, code, _) = self.check();
            let problems: Vec<&Value> = findings
                .iter()
                .filter(|f| f["severity"] != "ok" && !allowed(f))
                .collect();
            if problems.is_empty() && (code == 0 || findings.iter().any(&allowed)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not all ok within 180 s after {what}:\n{}",
                serde_json::to_string_pretty(&problems).unwrap()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    /// Run the fix a finding names, as printed (`remedy run …`), with --yes.
    fn run_fix(&self, finding: &Value) {
        let fix = finding["fix"].as_str().unwrap();
        let words: Vec<&str> = fix.split_whitespace().collect();
        assert_eq!(words[0], "remedy", "{fix}");
        let mut args = words[1..].to_vec();
        args.push("--yes");
        self.ok(&args);
    }
}

/// A master's kubelet stand-in stopped (SIGSTOP) until dropped (SIGCONT).
struct Frozen(i32);

impl Frozen {
    fn kubelet(lab: &Lab, host: &str) -> Frozen {
        let record =
            std::fs::read_to_string(lab.dir.path().join(format!("pids/{host}-kubelet.pid")))
                .unwrap();
        let pid: i32 = record.split_whitespace().next().unwrap().parse().unwrap();
        // SAFETY: a signal to the lab's own kubelet stand-in.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

impl Lab {
    /// Node `name`'s Ready condition set to Unknown through the API, as
    /// the node lifecycle controller writes it (tried again on a conflict
    /// with a heartbeat that was in flight).
    fn set_node_unknown(&self, name: &str) {
        let kubectl = self.dir.path().join("bin/kubectl");
        for _ in 0..5 {
            let out = Command::new(&kubectl)
                .args(["get", "node", name, "-o", "json"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let mut node: Value = serde_json::from_slice(&out.stdout).unwrap();
            for c in node["status"]["conditions"].as_array_mut().unwrap() {
                if c["type"] == "Ready" {
                    c["status"] = "Unknown".into();
                    c["reason"] = "NodeStatusUnknown".into();
                    c["message"] = "Kubelet stopped posting node status.".into();
                }
            }
            let mut child = Command::new(&kubectl)
                .args([
                    "replace",
                    "--raw",
                    &format!("/api/v1/nodes/{name}/status"),
                    "-f",
                    "-",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(node.to_string().as_bytes())
                .unwrap();
            if child.wait().unwrap().success() {
                return;
            }
        }
        panic!("could not set Node {name}'s Ready to Unknown");
    }
}

fn is(f: &Value, host: &str, check: &str, severity: &str) -> bool {
    f["host"] == host && f["check"] == check && f["severity"] == severity
}

fn fix_of(f: &Value) -> &str {
    f["fix"].as_str().unwrap_or("")
}

fn evidence(f: &Value) -> String {
    f["evidence"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// kubelet.conf's certificate is left to the kubelet, which rotates it on a
/// real master; the lab's stand-in does not, so after cert-expired it stays
/// a warning.
fn kubelet_conf(f: &Value) -> bool {
    f["check"] == "certificates/kubelet.conf" && f["severity"] == "warn"
}

/// Timings, printed as one table at the end.
struct Times(Vec<(String, Duration, Duration, Option<Duration>)>);

impl Times {
    fn add(
        &mut self,
        fault: &str,
        since_fault: Duration,
        one_check: Duration,
        to_ok: Option<Duration>,
    ) {
        self.0.push((fault.into(), since_fault, one_check, to_ok));
    }
}

impl Drop for Times {
    fn drop(&mut self) {
        println!("fault                     fault→diagnosed  one check  fault→all ok (fix)");
        for (fault, since, one, ok) in &self.0 {
            println!(
                "{fault:25} {:>14.1}s {:>9.1}s  {}",
                since.as_secs_f64(),
                one.as_secs_f64(),
                ok.map(|d| format!("{:.1}s", d.as_secs_f64()))
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
}

#[test]
fn every_lab_fault_is_diagnosed_within_10s_with_its_fix_and_the_fix_recovers_it() {
    let lab = Lab {
        dir: tempfile::tempdir().unwrap(),
    };
    lab.ok(&[
        "lab",
        "up",
        "--dir",
        lab.dir_str(),
        "--base-address",
        &base(),
        "--etcd-quota",
        "16MiB",
    ]);
    let inv = lab.inv();
    let mut times = Times(Vec::new());
    lab.all_ok("lab up", |_| false);

    // Every master's Node is Ready: the lab's kubelet stand-ins post it.
    let (findings, _, _) = lab.check();
    for i in 1..=3 {
        let m = format!("master-{i}");
        assert!(
            findings.iter().any(|f| is(f, &m, "node", "ok")),
            "{m}: {findings:#?}"
        );
    }
    // A kubelet that hangs: its heartbeats stop, and the node controller
    // marks its Node Ready=Unknown after its grace period (done here at
    // once, as the controller would). check names that master; once the
    // kubelet runs again, its Node is Ready and all is ok.
    let t0 = Instant::now();
    let frozen = Frozen::kubelet(&lab, "master-3");
    lab.set_node_unknown("master-3");
    let (f, took) = lab.diagnosed("a hung kubelet", |f| is(f, "master-3", "node", "critical"));
    assert!(
        fix_of(&f).contains("on master-3:") && fix_of(&f).contains("systemctl restart kubelet"),
        "{f:#}"
    );
    times.add("kubelet hung (Node Unknown)", t0.elapsed(), took, None);
    drop(frozen);
    lab.all_ok("the kubelet resumed", |_| false);
    let n = times.0.len() - 1;
    times.0[n].3 = Some(t0.elapsed());

    // A master that accepts connections and never answers: a finding, on
    // time, and the other masters are still checked.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let text = std::fs::read_to_string(&inv).unwrap();
    let m3 = text
        .lines()
        .find(|l| l.trim_start().starts_with("master-3:"))
        .unwrap();
    let hung = text.replace(
        m3,
        &m3.replace(&format!("address: {}", addr(3)), "address: 127.0.0.1")
            .replace("port: 2222", &format!("port: {port}")),
    );
    assert_ne!(hung, text);
    let hung_inv = lab.dir.path().join("hung.yaml");
    std::fs::write(&hung_inv, hung).unwrap();
    let (findings, code, took) = lab.check_with(hung_inv.to_str().unwrap());
    assert_eq!(code, 2);
    assert!(
        findings
            .iter()
            .any(|f| is(f, "master-3", "ssh", "critical")),
        "{findings:#?}"
    );
    assert!(findings
        .iter()
        .any(|f| is(f, "master-1", "pod/kube-apiserver", "ok")));
    times.add("master-3 never answers", took, took, None);
    drop(silent);

    // The API server's faults: the line the log says is quoted, and
    // apiserver-recover is the fix, run as printed. A bad flag: it removes
    // the flag the log names. A missing certificate path, with no backup of
    // the manifest: it sets the flag back to kubeadm's path for that file,
    // which exists.
    let api_faults = [
        (
            "apiserver-bad-flag",
            "master-2",
            "unknown flag: --lab-bogus-flag",
        ),
        (
            "apiserver-bad-cert-path",
            "master-1",
            "/etc/kubernetes/pki/lab-missing/apiserver.crt: no such file or directory",
        ),
    ];
    for (fault, host, line) in api_faults {
        let t0 = Instant::now();
        lab.break_it(fault, host);
        // Until the cause is named: while the kubelet replaces the pod,
        // its new container does not exist yet (critical, no cause).
        let (f, took) = lab.diagnosed(fault, |f| {
            is(f, host, "pod/kube-apiserver", "critical") && evidence(f).contains(line)
        });
        let diagnosed = t0.elapsed();
        assert_eq!(
            fix_of(&f),
            format!("remedy run apiserver-recover -i {inv} -l {host}")
        );
        lab.run_fix(&f);
        lab.all_ok(fault, |_| false);
        times.add(fault, diagnosed, took, Some(t0.elapsed()));
    }

    // The faults whose fix is a runbook here: run exactly what check says.
    type Expect = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
    );
    let cases: [Expect; 6] = [
        // (fault, host, finding's host, check, severity, fix after `remedy run`)
        (
            "etcd-member-down",
            "master-3",
            "master-3",
            "pod/etcd",
            "critical",
            "manifest-edit -i INV -l master-3 -p component=etcd -p unset=--lab-fault",
        ),
        (
            "lb-backend-down",
            "master-2",
            "master-2",
            "lb/lb-1",
            "warn",
            "lb-ready -i INV -l master-2",
        ),
        (
            "manifest-stranded",
            "master-1",
            "master-1",
            "staging",
            "critical",
            "static-pod-restart -i INV -l master-1 -p pods=kube-scheduler",
        ),
        (
            "cert-expired",
            "master-2",
            "master-2",
            "certificates",
            "critical",
            "cert-renew -i INV -l master-2",
        ),
        (
            "webhook-deadlock",
            "master-1",
            "api",
            "api/webhook/lab-deadlock",
            "critical",
            "webhook-deadlock-break -i INV",
        ),
        (
            "etcd-nospace",
            "master-1",
            "master-1",
            "etcd/health",
            "critical",
            "etcd-nospace-recover -i INV",
        ),
    ];
    for (fault, host, on, check, severity, fix) in cases {
        let t0 = Instant::now();
        lab.break_it(fault, host);
        let (f, took) = lab.diagnosed(fault, |f| is(f, on, check, severity));
        times.add(fault, t0.elapsed(), took, None);
        assert_eq!(
            fix_of(&f),
            format!("remedy run {}", fix.replace("INV", &inv)),
            "{fault}: {f:#}"
        );
        if fault == "cert-expired" {
            // What clients see: the API server reloads the expired file
            // and serves it (read from the master with openssl s_client).
            let (served, _) = lab.diagnosed("the served certificate", |f| {
                is(f, host, "certificates/served", "critical")
            });
            assert_eq!(fix_of(&served), fix_of(&f), "{served:#}");
        }
        lab.run_fix(&f);
        lab.all_ok(fault, kubelet_conf);
        let n = times.0.len() - 1;
        times.0[n].3 = Some(t0.elapsed());
    }

    // etcd-quorum-lost: the cluster's finding and each destroyed member's,
    // both with the fix that restores from the newest snapshot the journal
    // knows; running it as printed brings everything back.
    let snapshots = format!("{}/snapshots", lab.dir_str());
    lab.ok(&[
        "run",
        "etcd-snapshot",
        "-i",
        &inv,
        "-p",
        &format!("dir={snapshots}"),
        "--yes",
    ]);
    let snapshot = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .find(|p| p.ends_with(".db"))
        .expect("etcd-snapshot saved a .db");
    let restore = format!("remedy run etcd-restore -i {inv} -p snapshot={snapshot}");
    let t0 = Instant::now();
    lab.break_it("etcd-quorum-lost", "master-3");
    let (f, took) = lab.diagnosed("etcd-quorum-lost", |f| {
        is(f, "etcd", "etcd/quorum", "critical")
    });
    times.add("etcd-quorum-lost", t0.elapsed(), took, None);
    assert_eq!(fix_of(&f), restore);
    let (member, _) = lab.diagnosed("a destroyed member", |f| {
        is(f, "master-2", "pod/etcd", "critical")
    });
    assert!(
        member["message"]
            .as_str()
            .unwrap()
            .contains("data directory cannot be used"),
        "{member:#}"
    );
    assert_eq!(fix_of(&member), restore);
    assert!(Path::new(lab.dir_str()).join("destroyed").is_dir());
    lab.run_fix(&f);
    lab.all_ok("etcd-quorum-lost", kubelet_conf);
    let n = times.0.len() - 1;
    times.0[n].3 = Some(t0.elapsed());
}
