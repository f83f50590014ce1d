//! `remedy daemon` and `remedy schedule`: a seconds-resolution schedule
//! fires real runs into the journal, the kill switch stops new ones (with a
//! journal event each time), and bad schedules are refused before anything
//! starts; `--metrics-listen` serves what happened as Prometheus metrics.
//! One local-transport host per test, its own REMEDY_HOME.

use remedy_testkit::http::{get, metric};
use remedy_testkit::poll::eventually;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(cron: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("m1/kubernetes")).unwrap();
        std::fs::create_dir_all(p.join("home")).unwrap();
        std::fs::write(
            p.join("inventory.yaml"),
            format!(
                "hosts:\n  m1:\n    transport: local\n    groups: [masters]\n    vars: {{ kube_dir: {}, backup_dir: {}, staging_dir: {} }}\n",
                p.join("m1/kubernetes").display(),
                p.join("m1/backups").display(),
                p.join("m1/staging").display()
            ),
        )
        .unwrap();
        std::fs::write(
            p.join("stamp.yaml"),
            "runbook: stamp\nsummary: write a stamp\ntargets: masters\nsteps:\n  - id: stamp\n    action: file.write\n    with: { path: \"${host.vars.kube_dir}/stamp\", content: \"scheduled\\n\" }\n",
        )
        .unwrap();
        std::fs::write(
            p.join("config.yaml"),
            format!(
                "daemon:\n  timezone: Europe/Berlin\n  kill_switch: {}\n  schedules:\n    - name: stamp-often\n      cron: \"{cron}\"\n      runbook: {}\n      inventory: {}\n",
                p.join("STOP").display(),
                p.join("stamp.yaml").display(),
                p.join("inventory.yaml").display()
            ),
        )
        .unwrap();
        Site { dir }
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_remedy"));
        c.args(args)
            .arg("--config")
            .arg(self.dir.path().join("config.yaml"))
            .env("NO_COLOR", "1")
            .env("REMEDY_HOME", self.dir.path().join("home"))
            .env_remove("REMEDY_CONFIG")
            .stdin(Stdio::null());
        c
    }
    fn remedy(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    /// `remedy ARGS`' stdout; the test fails when the command does.
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
    fn schedule_events(&self) -> Vec<serde_json::Value> {
        self.ok(&["audit", "export"])
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["run_id"] == "schedule:stamp-often")
            .collect()
    }
    /// Firings skipped for `reason` so far.
    fn skipped(&self, reason: &str) -> usize {
        self.schedule_events()
            .iter()
            .filter(|e| {
                e["kind"] == "schedule_skipped"
                    && e["payload"]["reason"]
                        .as_str()
                        .unwrap_or("")
                        .contains(reason)
            })
            .count()
    }
    /// Runs in the journal, as `remedy runs` lists them.
    fn runs(&self) -> usize {
        let out = self.ok(&["runs", "-o", "json", "--last", "1000"]);
        serde_json::from_str::<Vec<serde_json::Value>>(&out)
            .unwrap_or_else(|e| panic!("`remedy runs -o json`: {e}: {out}"))
            .len()
    }
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_daemon_fires_a_seconds_schedule_and_honours_the_kill_switch() {
    let site = Site::new("*/2 * * * * *");
    let _daemon = Daemon(site.cmd(&["daemon"]).stderr(Stdio::null()).spawn().unwrap());
    eventually(
        "a scheduled run finished ok",
        Duration::from_secs(60),
        || {
            site.schedule_events()
                .iter()
                .any(|e| e["kind"] == "schedule_fired" && e["payload"]["outcome"] == "ok")
        },
    );
    let fired = site
        .schedule_events()
        .into_iter()
        .find(|e| e["kind"] == "schedule_fired")
        .unwrap();
    let run = fired["payload"]["run_id"].as_str().unwrap().to_string();
    let show = site.ok(&["audit", "show", &run]);
    assert!(show.contains("status    ok"), "{show}");
    assert_eq!(
        std::fs::read_to_string(site.dir.path().join("m1/kubernetes/stamp")).unwrap(),
        "scheduled\n"
    );

    // The kill switch: every firing is skipped, with the reason journaled.
    std::fs::write(site.dir.path().join("STOP"), "maintenance freeze\n").unwrap();
    eventually(
        "a firing skipped by the kill switch",
        Duration::from_secs(60),
        || site.skipped("kill switch") > 0,
    );
    // Two more firings come and are skipped: no run starts meanwhile.
    let (runs, skips) = (site.runs(), site.skipped("kill switch"));
    eventually(
        "two more firings skipped by the kill switch",
        Duration::from_secs(60),
        || site.skipped("kill switch") >= skips + 2,
    );
    assert_eq!(
        site.runs(),
        runs,
        "a run started while the kill switch was on"
    );
    let list = site.ok(&["schedule", "list"]);
    assert!(
        list.contains("KILL SWITCH ON") && list.contains("stamp-often"),
        "{list}"
    );
    // Removing it lets the schedule fire again.
    std::fs::remove_file(site.dir.path().join("STOP")).unwrap();
    eventually(
        "a run after the kill switch is off",
        Duration::from_secs(60),
        || site.runs() > runs,
    );
    site.ok(&["audit", "verify"]);
}

#[test]
fn schedule_next_lists_firings_in_the_schedules_time_zone() {
    let site = Site::new("0 30 3 * * *");
    let out = site.remedy(&["schedule", "next", "--count", "3", "-o", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v.len(), 3);
    for f in &v {
        let local = f["local"].as_str().unwrap();
        assert!(local.contains(" 03:30:00 CE"), "{local}");
    }
    let t: Vec<&str> = v.iter().map(|f| f["at"].as_str().unwrap()).collect();
    assert!(t[0] < t[1] && t[1] < t[2], "{t:?}");
}

#[test]
fn a_bad_schedule_is_refused_before_anything_starts() {
    let site = Site::new("61 * * * *");
    let out = site.remedy(&["daemon"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("schedule `stamp-often`") && err.contains("cron `61 * * * *`"),
        "{err}"
    );
}

#[test]
fn a_firing_outside_the_maintenance_window_is_skipped_and_journaled() {
    let site = Site::new("*/2 * * * * *");
    // A one-hour window twelve hours from now (Europe/Berlin, the schedule's zone).
    let cfg = std::fs::read_to_string(site.dir.path().join("config.yaml")).unwrap();
    let hour = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        + 12)
        % 24;
    std::fs::write(
        site.dir.path().join("config.yaml"),
        format!(
            "{cfg}      window: \"{hour:02}:00-{:02}:00\"\n",
            (hour + 1) % 24
        ),
    )
    .unwrap();
    let _daemon = Daemon(site.cmd(&["daemon"]).stderr(Stdio::null()).spawn().unwrap());
    eventually(
        "a firing skipped outside the window",
        Duration::from_secs(60),
        || site.skipped("outside the maintenance window") > 0,
    );
    assert_eq!(site.runs(), 0, "nothing ran outside the window");
    assert!(
        !site.dir.path().join("m1/kubernetes/stamp").exists(),
        "the runbook's file was written outside the window"
    );
}

fn free_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[test]
fn the_daemons_metrics_follow_skipped_and_scheduled_runs_and_its_log_is_json() {
    let site = Site::new("*/2 * * * * *");
    let stop = site.dir.path().join("STOP");
    std::fs::write(&stop, "freeze\n").unwrap();
    let addr = free_address();
    let log = site.dir.path().join("daemon.log");
    let _daemon = Daemon(
        site.cmd(&["daemon", "--metrics-listen", &addr, "--log-format", "json"])
            .env("RUST_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let metrics = || match get(&addr, "/metrics") {
        Some((200, body)) => body,
        other => panic!("GET /metrics on the daemon: {other:?}"),
    };
    eventually(
        "the daemon answers /healthz",
        Duration::from_secs(20),
        || get(&addr, "/healthz").is_some(),
    );
    let (status, health) = get(&addr, "/healthz").unwrap();
    assert_eq!(status, 200, "{health}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["schedules"], 1);
    assert_eq!(health["kill_switch"], true);

    // While the kill switch is on: skips are counted, nothing ran.
    let skipped = r#"remedy_schedule_skipped_total{schedule="stamp-often",reason="kill_switch"}"#;
    eventually("a skip in /metrics", Duration::from_secs(60), || {
        metric(&metrics(), skipped).is_some_and(|n| n >= 1.0)
    });
    let before = metrics();
    assert!(
        before.contains("# TYPE remedy_runs_total counter"),
        "{before}"
    );
    assert!(before.contains("remedy_approvals_pending 0"), "{before}");
    assert!(
        !before.contains("remedy_schedule_last_success_timestamp_seconds{"),
        "{before}"
    );
    let ok_runs = r#"remedy_runs_total{runbook="stamp",outcome="ok"}"#;
    assert_eq!(metric(&before, ok_runs), None, "{before}");

    // A scheduled run: the run, its duration and the schedule's success.
    std::fs::remove_file(&stop).unwrap();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last_ok = r#"remedy_schedule_last_success_timestamp_seconds{schedule="stamp-often"}"#;
    eventually(
        "a scheduled run in /metrics",
        Duration::from_secs(60),
        || metric(&metrics(), last_ok).is_some(),
    );
    let after = metrics();
    assert!(metric(&after, last_ok).unwrap() >= started - 1.0, "{after}");
    assert!(metric(&after, ok_runs).unwrap() >= 1.0, "{after}");
    assert!(
        metric(
            &after,
            r#"remedy_run_duration_seconds_count{runbook="stamp"}"#
        )
        .unwrap()
            >= 1.0,
        "{after}"
    );
    assert!(
        metric(
            &after,
            r#"remedy_schedule_firings_total{schedule="stamp-often",result="ok"}"#
        )
        .unwrap()
            >= 1.0,
        "{after}"
    );

    // Every log line is one JSON object with a level and a message.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["message"]
                .as_str()
                .unwrap()
                .contains("skipped: kill switch")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "INFO" && l["schedule"] == "stamp-often"),
        "{text}"
    );
}

#[test]
fn a_busy_metrics_address_stops_the_daemon_before_it_schedules() {
    let site = Site::new("*/2 * * * * *");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = site.remedy(&["daemon", "--metrics-listen", &addr]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("--metrics-listen {addr}: cannot listen")),
        "{err}"
    );
    assert!(site.schedule_events().is_empty(), "it scheduled: {err}");
}
