//! Several jump hosts coordinated through an ops etcd (issue 18). Each test
//! acts as two jump hosts — two REMEDY_HOMEs whose site configs name
//! different `jump_host`s — sharing one local-transport "master" and the
//! lab's ops etcd (`remedy_lab::ops_etcd`: three real etcd members with
//! their own kubeadm-made PKI, on addresses derived from the test process
//! and the test), stopped by a Drop guard whatever happens.

use remedy_lab::ops_etcd::{self, OpsEtcd};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

const MANIFEST: &str = include_str!("../examples/manifests/kube-apiserver.yaml");

/// Two jump hosts, `jump-a` and `jump-b` (each its own REMEDY_HOME and site
/// config: the lab's fragment plus its name and a short lease), one
/// local-transport master `m1`, one ops etcd.
struct Site {
    ops: Ops,
    dir: tempfile::TempDir,
}

impl Site {
    fn new(test: u8, lease_ttl: &str) -> Site {
        let ops = Ops::start(test);
        let dir = tempfile::tempdir().unwrap();
        let kube = dir.path().join("m1/kubernetes");
        std::fs::create_dir_all(kube.join("manifests")).unwrap();
        std::fs::write(kube.join("manifests/kube-apiserver.yaml"), MANIFEST).unwrap();
        std::fs::write(
            dir.path().join("inventory.yaml"),
            format!(
                "hosts:\n  m1:\n    transport: local\n    groups: [masters]\n    vars: {{ kube_dir: {}, backup_dir: {}, staging_dir: {} }}\n",
                kube.display(),
                dir.path().join("m1/backups").display(),
                dir.path().join("m1/staging").display(),
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("edit.yaml"),
            "runbook: edit\nsummary: set a flag\nparams:\n  flag: { type: string }\ntargets: masters\nsteps:\n  - id: edit\n    action: file.edit\n    with:\n      path: \"${host.vars.manifests_dir}/kube-apiserver.yaml\"\n      set_flags: [\"${params.flag}\"]\n",
        )
        .unwrap();
        let fragment = std::fs::read_to_string(&ops.etcd.fragment).unwrap();
        for jump in ["jump-a", "jump-b"] {
            std::fs::create_dir_all(dir.path().join(jump)).unwrap();
            std::fs::write(
                dir.path().join(jump).join("config.yaml"),
                format!("{fragment}  jump_host: {jump}\n  lease_ttl: {lease_ttl}\n"),
            )
            .unwrap();
        }
        Site { ops, dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn manifest(&self) -> String {
        std::fs::read_to_string(self.path("m1/kubernetes/manifests/kube-apiserver.yaml")).unwrap()
    }

    /// `remedy ARGS` on jump host `jump`.
    fn cmd(&self, jump: &str, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_remedy"));
        c.args(args)
            .env_remove("REMEDY_INVENTORY")
            .env_remove("REMEDY_CONFIG")
            .env_remove("REMEDY_STOP_AFTER")
            .env("NO_COLOR", "1")
            .env("REMEDY_HOME", self.path(jump))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// `remedy run edit --yes -p flag=FLAG` on jump host `jump`.
    fn run(&self, jump: &str, flag: &str, extra: &[&str]) -> Command {
        let rb = self.path("edit.yaml");
        let inv = self.path("inventory.yaml");
        let param = format!("flag={flag}");
        let mut args = vec![
            "run",
            rb.to_str().unwrap(),
            "-i",
            inv.to_str().unwrap(),
            "--yes",
            "-p",
            &param,
        ];
        args.extend(extra);
        self.cmd(jump, &args)
    }

    /// A run on `jump` that stops itself (SIGSTOP) right after the event
    /// `after` (REMEDY_STOP_AFTER's syntax), once it has.
    fn stopped_run(&self, jump: &str, flag: &str, after: &str) -> Child {
        let child = Child(
            self.run(jump, flag, &[])
                .env("REMEDY_STOP_AFTER", after)
                .spawn()
                .unwrap(),
        );
        child.wait_stopped();
        child
    }

    /// The ops etcd's lock keys as etcdctl sees them.
    fn lock_keys(&self) -> String {
        let out = self
            .ops
            .etcdctl(&["get", "--prefix", "--keys-only", "/remedy/locks/"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// A child that is SIGKILLed (and reaped) when dropped, panicking test or not.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        // SAFETY: signalling a child we started and have not reaped.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

impl Child {
    fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    fn signal(&self, signal: i32) {
        // SAFETY: as in drop.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Waits until the process has stopped itself (REMEDY_STOP_AFTER).
    fn wait_stopped(&self) {
        let stat = format!("/proc/{}/stat", self.pid());
        remedy_testkit::poll::eventually("the run stopped itself", Duration::from_secs(60), || {
            std::fs::read_to_string(&stat)
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, rest)| rest.trim_start().starts_with('T'))
                })
                .unwrap_or(false)
        });
    }

    fn finish(mut self) -> (Option<i32>, String) {
        let mut err = String::new();
        use std::io::Read;
        if let Some(mut e) = self.0.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let status = self.0.wait().unwrap();
        (status.code(), err)
    }
}

fn output(c: &mut Command) -> (Option<i32>, String, String) {
    let o = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A run on jump-a holds m1; a run from jump-b is refused naming the run
/// and jump-a, and `remedy lock list` on jump-b shows the lock. Killed
/// (-9), jump-a's run leaves its lock until its lease ends: jump-b is still
/// refused right after the kill, and takes m1 over only once the lease has
/// expired.
#[test]
fn a_second_jump_host_is_refused_until_the_killed_holders_lease_expires() {
    let site = Site::new(1, "8s");
    let a = site.stopped_run("jump-a", "--v=4", "step_planned@m1/edit");
    let (code, _, err) = output(&mut site.run("jump-b", "--v=6", &[]));
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("m1 is locked by run"), "{err}");
    assert!(err.contains("@jump-a, pid"), "{err}");
    let (code, list, err) = output(&mut site.cmd("jump-b", &["lock", "list"]));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        list.contains("Locks in the ops etcd (every jump host):"),
        "{list}"
    );
    assert!(list.contains("@jump-a pid"), "{list}");
    let (_, json, _) = output(&mut site.cmd("jump-b", &["lock", "list", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let held = &v["ops_etcd"][0];
    assert_eq!(held["host"], "m1", "{v}");
    assert_eq!(held["jump_host"], "jump-a", "{v}");
    let a_run = held["run_id"].as_str().unwrap().to_string();

    a.signal(libc::SIGKILL);
    let killed = Instant::now();
    drop(a);
    let (code, _, err) = output(&mut site.run("jump-b", "--v=6", &[]));
    assert_eq!(code, Some(3), "refused while the lease lives: {err}");
    assert!(err.contains(&a_run), "{err}");
    // The lease runs out (8 s at most after the last renewal): then jump-b runs.
    let deadline = Instant::now() + Duration::from_secs(30);
    let took_over = loop {
        let (code, _, err) = output(&mut site.run("jump-b", "--v=6", &[]));
        if code == Some(0) {
            break killed.elapsed();
        }
        assert_eq!(code, Some(3), "{err}");
        assert!(Instant::now() < deadline, "never taken over: {err}");
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(site.manifest().contains("--v=6"));
    assert!(
        site.lock_keys().is_empty(),
        "jump-b's run released its lock: {}",
        site.lock_keys()
    );
    eprintln!("jump-b took over {took_over:?} after the kill (lease 8 s)");
}

/// Fencing: jump-a's run is paused (SIGSTOP) after planning for longer
/// than its lease; jump-b takes m1 and changes it; resumed (SIGCONT),
/// jump-a's next intent is refused by the ops etcd's lock revision, so its
/// write never happens.
#[test]
fn a_run_paused_past_its_lease_cannot_write_after_it_resumes() {
    let site = Site::new(2, "5s");
    let a = site.stopped_run("jump-a", "--v=4", "step_planned@m1/edit");
    assert!(
        site.lock_keys().contains("/remedy/locks/m1"),
        "{}",
        site.lock_keys()
    );
    remedy_testkit::poll::eventually("jump-a's lease expired", Duration::from_secs(30), || {
        site.lock_keys().is_empty()
    });
    // jump-b holds m1 while jump-a wakes up.
    let b = site.stopped_run("jump-b", "--v=6", "step_done@m1/edit");
    assert!(site.manifest().contains("--v=6"));
    a.signal(libc::SIGCONT);
    let (code, err) = a.finish();
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("no longer holds its lock on m1 in the ops etcd"),
        "{err}"
    );
    let manifest = site.manifest();
    assert!(
        manifest.contains("--v=6") && !manifest.contains("--v=4"),
        "{manifest}"
    );
    b.signal(libc::SIGCONT);
    let (code, err) = b.finish();
    assert_eq!(code, Some(0), "{err}");
}

/// Fail closed: with the ops etcd down a run refuses to change anything and
/// says why, planning still works, and break-glass runs on local locks,
/// journaled as such.
#[test]
fn with_the_ops_etcd_down_a_run_refuses_unless_break_glass() {
    let site = Site::new(3, "10s");
    let stopped = ops_etcd::stop(site.ops.lab.path());
    assert_eq!(stopped.len(), 3);
    let before = site.manifest();
    let started = Instant::now();
    let (code, _, err) = output(&mut site.run("jump-a", "--v=4", &[]));
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("the ops etcd (https://"), "{err}");
    assert!(err.contains("cannot be reached"), "{err}");
    assert!(
        err.contains("nothing was changed (`remedy plan` still works)"),
        "{err}"
    );
    assert!(err.contains("--break-glass --reason"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(site.manifest(), before);

    let rb = site.path("edit.yaml");
    let inv = site.path("inventory.yaml");
    let (code, out, err) = output(&mut site.cmd(
        "jump-a",
        &[
            "plan",
            rb.to_str().unwrap(),
            "-i",
            inv.to_str().unwrap(),
            "-p",
            "flag=--v=4",
        ],
    ));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("--v=4"), "{out}");

    let (code, _, err) = output(&mut site.run(
        "jump-a",
        "--v=4",
        &[
            "--break-glass",
            "--reason",
            "ops etcd down, API server crashlooping",
        ],
    ));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("BREAK-GLASS"), "{err}");
    assert!(site.manifest().contains("--v=4"));
    let (_, events, _) = output(&mut site.cmd("jump-a", &["audit", "export"]));
    let bypassed = events
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["kind"] == "coordination_bypassed")
        .unwrap_or_else(|| panic!("{events}"));
    assert_eq!(
        bypassed["payload"]["reason"],
        "ops etcd down, API server crashlooping"
    );
}

/// The audit witness: a run publishes jump-a's chain head; the journal's
/// tail cut off with its head row set to match passes a local check, and
/// `remedy audit verify` with the ops etcd finds the published head gone.
#[test]
fn a_journal_cut_back_is_caught_against_the_head_published_in_the_ops_etcd() {
    let site = Site::new(4, "10s");
    let (code, _, err) = output(&mut site.run("jump-a", "--v=4", &[]));
    assert_eq!(code, Some(0), "{err}");
    let published = site
        .ops
        .etcdctl(&["get", "--print-value-only", "/remedy/audit/jump-a"]);
    let published: serde_json::Value = serde_json::from_slice(&published.stdout).unwrap();
    let (_, head, _) = output(&mut site.cmd("jump-a", &["audit", "head"]));
    assert_eq!(published["hash"], head.trim());
    let (code, out, err) = output(&mut site.cmd("jump-a", &["audit", "verify"]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("and it holds the head published in the ops etcd"),
        "{out}"
    );

    let db = rusqlite::Connection::open(site.path("jump-a/remedy.db")).unwrap();
    db.execute_batch(
        "DELETE FROM events WHERE id = (SELECT MAX(id) FROM events);
         UPDATE chain_head SET last_id = (SELECT MAX(id) FROM events), last_hash = (SELECT hash FROM events ORDER BY id DESC LIMIT 1);",
    )
    .unwrap();
    let (code, out, err) = output(&mut site.cmd("jump-a", &["audit", "verify"]));
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains(&format!(
            "the chain head {} recorded outside this journal is not in it",
            head.trim()
        )),
        "{out}"
    );
}

/// Daemon leadership: two daemons (jump-a, jump-b) share a schedule firing
/// every 2 s. Each slot is run by one of them; the leader is killed (-9)
/// mid-way, the other takes over once its lease has ended, and over the
/// first 10 slots each ran exactly once.
#[test]
fn two_daemons_run_each_slot_exactly_once_across_a_leader_killed_mid_way() {
    let site = Site::new(5, "5s");
    std::fs::write(
        site.path("stamp.yaml"),
        "runbook: stamp\nsummary: write a stamp\ntargets: masters\nsteps:\n  - id: stamp\n    action: file.write\n    with: { path: \"${host.vars.kube_dir}/stamp\", content: \"scheduled\\n\" }\n",
    )
    .unwrap();
    for jump in ["jump-a", "jump-b"] {
        let config = site.path(jump).join("config.yaml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            format!(
                "{text}daemon:\n  schedules:\n    - name: stamp\n      cron: \"*/2 * * * * *\"\n      runbook: {}\n      inventory: {}\n",
                site.path("stamp.yaml").display(),
                site.path("inventory.yaml").display()
            ),
        )
        .unwrap();
    }
    let daemon = |jump: &str| {
        let mut c = site.cmd(jump, &["daemon"]);
        c.stdout(Stdio::null()).stderr(Stdio::null());
        Child(c.spawn().unwrap())
    };
    let mut daemons = vec![
        ("jump-a", Some(daemon("jump-a"))),
        ("jump-b", Some(daemon("jump-b"))),
    ];
    // Each slot's runs, from both journals: (slot, in whole seconds; jump host).
    let fired = || -> Vec<(i64, String)> {
        let mut all = Vec::new();
        for jump in ["jump-a", "jump-b"] {
            let (_, events, _) = output(&mut site.cmd(jump, &["audit", "export"]));
            all.extend(
                events
                    .lines()
                    .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                    .filter(|e| e["kind"] == "schedule_fired")
                    .filter_map(|e| e["payload"]["scheduled_ms"].as_i64())
                    .map(|ms| (ms / 1000, jump.to_string())),
            );
        }
        all.sort();
        all
    };
    remedy_testkit::poll::eventually("3 slots ran", Duration::from_secs(60), || {
        fired().len() >= 3
    });
    let leader = site
        .ops
        .etcdctl(&["get", "--print-value-only", "/remedy/daemon/leader"]);
    let leader = String::from_utf8_lossy(&leader.stdout).to_string();
    let (killed, _) = daemons
        .iter_mut()
        .find(|(jump, _)| leader.starts_with(jump))
        .unwrap_or_else(|| panic!("leader {leader:?}"));
    let killed = killed.to_string();
    for (jump, child) in daemons.iter_mut() {
        if *jump == killed {
            drop(child.take());
        }
    }
    remedy_testkit::poll::eventually("10 slots ran", Duration::from_secs(90), || {
        fired().len() >= 11
    });
    drop(daemons);
    // The slots as settled in the ops etcd: (slot in seconds, who claimed it).
    let claims = site
        .ops
        .etcdctl(&["get", "--prefix", "/remedy/schedules/stamp/"]);
    let claims: Vec<(i64, String)> = String::from_utf8_lossy(&claims.stdout)
        .lines()
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|kv| {
            let slot: i64 = kv[0].rsplit('/').next().unwrap().parse().unwrap();
            let claim: serde_json::Value = serde_json::from_str(kv[1]).unwrap();
            (
                slot / 1000,
                claim["jump_host"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let runs = fired();
    let first: Vec<&(i64, String)> = claims.iter().take(10).collect();
    for pair in first.windows(2) {
        assert_eq!(
            pair[1].0 - pair[0].0,
            2,
            "a slot was never settled: {claims:?}"
        );
    }
    let survivor = if killed == "jump-a" {
        "jump-b"
    } else {
        "jump-a"
    };
    assert!(first.iter().any(|(_, j)| *j == killed), "{claims:?}");
    assert!(first.iter().any(|(_, j)| j == survivor), "{claims:?}");
    // Each slot ran where it was claimed, and only there. The killed
    // daemon cannot journal the run it had started when it died (its
    // child run goes on): at most that one slot lacks its event.
    let mut unrecorded = 0;
    for (slot, claimed_by) in &first {
        let ran: Vec<&String> = runs
            .iter()
            .filter(|(s, _)| s == slot)
            .map(|(_, j)| j)
            .collect();
        match ran.as_slice() {
            [one] => assert_eq!(*one, claimed_by, "slot {slot}: {runs:?} {claims:?}"),
            [] if *claimed_by == killed => unrecorded += 1,
            other => panic!("slot {slot} ran {} times: {runs:?}", other.len()),
        }
    }
    assert!(unrecorded <= 1, "{runs:?} {claims:?}");
}

/// Approvals across jump hosts: a run on jump-a waits for bob's approval;
/// its request is published in the ops etcd; bob's chat vote reaches
/// `remedy serve` on jump-b, which votes there; jump-a's run learns it by
/// its watch, counts it in its own journal and goes on. `remedy approve`
/// on jump-b decides a second run the same way. Each jump host journals
/// what it did.
#[test]
fn a_chat_vote_sent_to_serve_on_one_jump_host_approves_a_run_waiting_on_another() {
    let site = Site::new(6, "30s");
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let append = |jump: &str, extra: &str| {
        let config = site.path(jump).join("config.yaml");
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(&config, format!("{text}{extra}")).unwrap();
    };
    append(
        "jump-a",
        "approval:\n  approvers: [bob]\n  quorum: 1\n  ttl: 5m\n",
    );
    append(
        "jump-b",
        &format!("allow_as: [{user}]\nchat:\n  users: {{ \"webhook:U-BOB\": bob }}\n  webhook_secret: env:TEST_HOOK_SECRET\n"),
    );
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let _serve = Child(
        site.cmd("jump-b", &["serve", "--listen", &addr])
            .env("TEST_HOOK_SECRET", "s3cr3t")
            .spawn()
            .unwrap(),
    );
    let mut run = Child(site.run("jump-a", "--v=4", &[]).spawn().unwrap());
    // The request, as jump-b finds it in the ops etcd.
    let request_id = || -> Option<String> {
        let out = site.ops.etcdctl(&[
            "get",
            "--prefix",
            "--print-value-only",
            "/remedy/approvals/",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["jump_host"] == "jump-a")
            .and_then(|v| v["request"]["request_id"].as_str().map(str::to_string))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while request_id().is_none() {
        if run.0.try_wait().is_ok_and(|s| s.is_some()) || Instant::now() > deadline {
            run.signal(libc::SIGKILL);
            let (_, err) =
                std::mem::replace(&mut run, Child(Command::new("true").spawn().unwrap())).finish();
            panic!("no request published; the run said: {err}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // jump-b sees it among its pending approvals.
    let (code, listed, err) = output(&mut site.cmd("jump-b", &["approvals"]));
    assert_eq!(code, Some(0), "{err}");
    assert!(listed.contains("on jump-a, expires in"), "{listed}");
    assert!(listed.contains("1 of bob must approve"), "{listed}");
    let body = serde_json::json!({ "user": "U-BOB", "action": "approve", "request": request_id().unwrap() })
        .to_string();
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let signature = remedy_chatops::sign_webhook("s3cr3t", &ts, body.as_bytes());
    remedy_testkit::poll::eventually("remedy serve listens", Duration::from_secs(20), || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    let answer = http_post(
        &addr,
        "/webhook",
        &[
            ("X-Remedy-Timestamp", &ts),
            ("X-Remedy-Signature", &signature),
        ],
        &body,
    );
    assert!(
        answer.contains("waiting on jump-a: counted: 1 of 1"),
        "{answer}"
    );
    let (code, err) = run.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("approved by bob"), "{err}");
    assert!(site.manifest().contains("--v=4"));
    // jump-a counted the vote as coming through jump-b; jump-b journaled it.
    let kinds = |jump: &str| -> Vec<serde_json::Value> {
        let (_, events, _) = output(&mut site.cmd(jump, &["audit", "export"]));
        events
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    assert!(
        kinds("jump-a").iter().any(|e| e["actor"]
            .as_str()
            .is_some_and(|a| a.ends_with("on jump-b"))),
        "{:?}",
        kinds("jump-a")
    );
    assert!(
        kinds("jump-b").iter().any(|e| e["kind"] == "remote_vote"),
        "{:?}",
        kinds("jump-b")
    );
    // Decided, the request is withdrawn from every jump host's list.
    remedy_testkit::poll::eventually("the request is withdrawn", Duration::from_secs(10), || {
        output(&mut site.cmd("jump-b", &["approvals"]))
            .1
            .contains("No approval requests pending.")
    });

    // `remedy approve` on jump-b, for a second run on jump-a.
    let run = Child(site.run("jump-a", "--v=6", &[]).spawn().unwrap());
    remedy_testkit::poll::eventually("a second request", Duration::from_secs(60), || {
        let (_, json, _) = output(&mut site.cmd("jump-a", &["approvals", "-o", "json"]));
        serde_json::from_str::<Vec<serde_json::Value>>(&json).is_ok_and(|v| !v.is_empty())
    });
    let (_, json, _) = output(&mut site.cmd("jump-a", &["approvals", "-o", "json"]));
    let v: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    let run_id = v[0]["run_id"].as_str().unwrap().to_string();
    let (code, out, err) = output(&mut site.cmd("jump-b", &["approve", &run_id, "--as", "bob"]));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("waiting on jump-a: counted"), "{out}");
    let (code, err) = run.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(site.manifest().contains("--v=6"));
}

/// One HTTP/1.1 POST; the whole answer.
fn http_post(addr: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: remedy\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
