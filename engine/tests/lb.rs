//! The `haproxy.*` actions through the executor, against real HAProxy
//! processes: masters and LBs are `transport: local` hosts, the LBs' admin
//! sockets are real. Drains that wait for a connection and time out cleanly,
//! the last UP server kept, the dry-run's transitions on every LB, rollback
//! restoring state and weight exactly (and journaling it), and a failure on
//! the second LB undoing the first.

use remedy_clock::SystemClock;
use remedy_dsl::{compile, Source};
use remedy_engine::event::{EventKind, MemorySink};
use remedy_engine::plan::Change;
use remedy_engine::report::{HostStatus, RunReport, RunStatus, StepStatus};
use remedy_engine::{bind, Executor, Inventory, Request, RunOptions};
use remedy_haproxy::{AdminState, RuntimeApi, ServerState};
use remedy_testkit::haproxy::{TestHaproxy, Upstream};
use remedy_transport::{Local, LocalConnector, StreamTarget};
use std::net::Ipv4Addr;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

const BE: &str = "k8s";

/// Three masters (m1..m3, each an upstream that keeps connections open)
/// behind `n` HAProxies with the same backend.
struct Fleet {
    lbs: Vec<TestHaproxy>,
    _upstreams: Vec<Upstream>,
    local: Local,
    dir: tempfile::TempDir,
}

impl Fleet {
    async fn start(test: u8, n: usize) -> Fleet {
        let addr = Ipv4Addr::new(127, 0, 121, test);
        let mut upstreams = Vec::new();
        for _ in 0..3 {
            upstreams.push(Upstream::start(addr).await);
        }
        let servers: Vec<(&str, std::net::SocketAddr, u32)> = ["m1", "m2", "m3"]
            .iter()
            .zip(&upstreams)
            .map(|(name, u)| (*name, u.addr, 1))
            .collect();
        let lbs: Vec<TestHaproxy> = (0..n).map(|_| TestHaproxy::start(addr, &servers)).collect();
        let fleet = Fleet {
            lbs,
            _upstreams: upstreams,
            local: Local::new("lb"),
            dir: tempfile::tempdir().unwrap(),
        };
        for i in 0..n {
            fleet.settle(i, |s| s.is_up()).await;
        }
        fleet
    }

    fn api(&self, lb: usize) -> RuntimeApi<'_> {
        RuntimeApi::new(&self.local, StreamTarget::Unix(self.lbs[lb].admin_path()))
            .with_poll_interval(Duration::from_millis(50))
    }

    async fn server(&self, lb: usize, name: &str) -> ServerState {
        self.api(lb).server(BE, name).await.unwrap()
    }

    /// Until every server on LB `lb` satisfies `ok`.
    async fn settle(&self, lb: usize, ok: impl Fn(&ServerState) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let servers = self.api(lb).servers(BE).await.unwrap();
            if servers.iter().all(&ok) {
                return;
            }
            assert!(Instant::now() < deadline, "not settled: {servers:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A client connected through LB `lb`'s frontend, and the server it is on.
    async fn client(&self, lb: usize) -> (tokio::net::TcpStream, String) {
        let client = tokio::net::TcpStream::connect(self.lbs[lb].frontend)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let servers = self.api(lb).servers(BE).await.unwrap();
            if let Some(s) = servers.iter().find(|s| s.scur == 1) {
                return (client, s.server.clone());
            }
            assert!(Instant::now() < deadline, "no session: {servers:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn inventory(&self, lb_sockets: &[String]) -> Inventory {
        let mut text = String::from("hosts:\n");
        for m in ["m1", "m2", "m3"] {
            text.push_str(&format!(
                "  {m}: {{ transport: local, groups: [masters], vars: {{ backup_dir: {} }} }}\n",
                self.dir.path().join("backups").display()
            ));
        }
        for (i, sock) in lb_sockets.iter().enumerate() {
            text.push_str(&format!(
                "  lb-{}: {{ transport: local, groups: [lbs], vars: {{ haproxy_socket: {sock}, haproxy_backend: {BE} }} }}\n",
                i + 1
            ));
        }
        Inventory::parse(Source::new("inv.yaml", text)).unwrap()
    }

    async fn run(
        &self,
        runbook: &str,
        limit: &str,
        params: &[(&str, &str)],
        dry_run: bool,
        sink: &MemorySink,
    ) -> RunReport {
        let sockets: Vec<String> = self.lbs.iter().map(|h| h.admin_path()).collect();
        self.run_on(&sockets, runbook, limit, params, dry_run, sink)
            .await
    }

    async fn run_on(
        &self,
        sockets: &[String],
        runbook: &str,
        limit: &str,
        params: &[(&str, &str)],
        dry_run: bool,
        sink: &MemorySink,
    ) -> RunReport {
        let rb = compile(Source::new("rb.yaml", runbook)).unwrap_or_else(|d| panic!("{d}"));
        let inv = self.inventory(sockets);
        let req = Request {
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            limit: Some(limit.to_string()),
            ..Request::default()
        };
        let run = bind(&rb, &inv, &req).unwrap_or_else(|d| panic!("{d}"));
        let cancel = AtomicBool::new(false);
        Executor {
            runbook: &rb,
            run: &run,
            connector: &LocalConnector,
            sink,
            clock: &SystemClock,
            cancel: &cancel,
            options: RunOptions {
                local_backup_dir: self.dir.path().join("jump").display().to_string(),
                ..RunOptions::new(dry_run)
            },
        }
        .execute()
        .await
    }
}

const DRAIN: &str = r#"
runbook: drain
summary: drain a master on every LB
targets: masters
params:
  timeout: { type: duration, default: 10s }
  cut: { type: bool, default: false }
  min_up: { type: int, default: 1 }
steps:
  - id: drain
    action: haproxy.drain
    with:
      timeout: "${params.timeout}"
      shutdown_sessions: "${params.cut}"
      min_up: "${params.min_up}"
"#;

fn result<'a>(r: &'a RunReport, id: &str) -> &'a serde_json::Value {
    r.hosts[0]
        .steps
        .iter()
        .find(|s| s.id == id)
        .and_then(|s| s.result.as_ref())
        .unwrap_or_else(|| panic!("no result for {id}: {r:#?}"))
}

fn brief(s: &ServerState) -> (AdminState, u32) {
    (s.admin, s.weight)
}

#[tokio::test]
async fn a_drain_waits_for_an_open_connection_and_a_timeout_puts_the_server_back() {
    let f = Fleet::start(1, 1).await;
    let sink = MemorySink::default();

    // The client leaves after a second: the drain waits for it.
    let (client, server) = f.client(0).await;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        drop(client);
    });
    let started = Instant::now();
    let r = f.run(DRAIN, &server, &[], false, &sink).await;
    assert_eq!(r.status, RunStatus::Ok, "{r:#?}");
    assert!(started.elapsed() >= Duration::from_millis(1200));
    let v = result(&r, "drain");
    assert_eq!(v["changed"], true);
    assert!(v["waited_secs"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(v["sessions_cut"], 0);
    assert_eq!(v["prior"][0]["admin"], "ready");
    let now = f.server(0, &server).await;
    assert_eq!((now.admin, now.scur), (AdminState::Drain, 0));
    assert!(sink.events().iter().any(|e| matches!(
        &e.kind,
        EventKind::Waiting { what, .. } if what.contains("to have no sessions (1 now)")
    )));
    f.api(0)
        .set_state(BE, &server, AdminState::Ready)
        .await
        .unwrap();
    f.settle(0, |s| s.is_up()).await;

    // A client that stays: the drain times out, and the server is put back.
    let (mut client, server) = f.client(0).await;
    let started = Instant::now();
    let r = f
        .run(DRAIN, &server, &[("timeout", "1s")], false, &sink)
        .await;
    assert_eq!(r.status, RunStatus::Failed);
    assert!(started.elapsed() < Duration::from_secs(8));
    let err = r.hosts[0].error.clone().unwrap_or_default();
    assert!(
        err.contains(&format!(
            "server {server} in backend k8s on lb-1: zero sessions not reached within 1s"
        )) && err.contains("the server was put back as it was on lb-1"),
        "{err}"
    );
    assert_eq!(
        r.hosts[0].hint.as_deref(),
        Some("wait longer (timeout), or let the drain cut them (shutdown_sessions: true)")
    );
    let now = f.server(0, &server).await;
    assert_eq!((now.admin, now.scur), (AdminState::Ready, 1));

    // Told to cut them: the session is cut, the drain succeeds.
    let r = f
        .run(
            DRAIN,
            &server,
            &[("timeout", "1s"), ("cut", "true")],
            false,
            &sink,
        )
        .await;
    assert_eq!(r.status, RunStatus::Ok, "{r:#?}");
    assert_eq!(result(&r, "drain")["sessions_cut"], 1);
    let mut buf = [0u8; 8];
    use tokio::io::AsyncReadExt;
    let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
        .await
        .expect("the connection was cut");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn draining_the_last_up_server_is_refused_before_anything_changes() {
    let f = Fleet::start(2, 1).await;
    for s in ["m2", "m3"] {
        f.api(0).set_state(BE, s, AdminState::Maint).await.unwrap();
    }
    let sink = MemorySink::default();
    let r = f.run(DRAIN, "m1", &[], false, &sink).await;
    assert_eq!(r.status, RunStatus::Failed);
    let err = r.hosts[0].error.clone().unwrap_or_default();
    assert!(
        err.contains("refusing to drain m1 in backend k8s on lb-1: 0 other server(s) would take traffic, fewer than min_up 1; up: none; not up: m2 (MAINT), m3 (MAINT)"),
        "{err}"
    );
    assert!(
        !sink
            .events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::StepIntent { .. })),
        "refused while planning"
    );
    assert_eq!(f.server(0, "m1").await.admin, AdminState::Ready);

    // min_up counts the others: with m2 back, one other is enough, two are not.
    f.api(0)
        .set_state(BE, "m2", AdminState::Ready)
        .await
        .unwrap();
    f.settle(0, |s| s.server != "m2" || s.is_up()).await;
    let r = f
        .run(
            DRAIN,
            "m1",
            &[("min_up", "2")],
            false,
            &MemorySink::default(),
        )
        .await;
    assert_eq!(r.status, RunStatus::Failed);
    let r = f.run(DRAIN, "m1", &[], false, &MemorySink::default()).await;
    assert_eq!(r.status, RunStatus::Ok, "{r:#?}");
}

#[tokio::test]
async fn a_dry_run_shows_the_transition_on_every_lb_and_changes_nothing() {
    let f = Fleet::start(3, 2).await;
    f.api(1).set_weight(BE, "m2", 5).await.unwrap();
    let runbook = r#"
runbook: look
summary: stat, then drain
targets: masters
steps:
  - id: stat
    action: haproxy.stat
  - id: check
    action: assert
    with: { that: "steps.stat.up == 3 && steps.stat.server.len() == 2" }
  - id: drain
    action: haproxy.drain
"#;
    let r = f
        .run(runbook, "m2", &[], true, &MemorySink::default())
        .await;
    assert_eq!(r.hosts[0].status, HostStatus::WouldChange, "{r:#?}");
    let stat = result(&r, "stat");
    assert_eq!(stat["servers"].as_array().unwrap().len(), 6);
    assert_eq!(stat["server"][1]["weight"], 5);
    assert_eq!(stat["server"][1]["lb"], "lb-2");
    assert_eq!(stat["server"][0]["status"], "UP");
    let drain = &r.hosts[0].steps[2];
    assert_eq!(drain.status, StepStatus::WouldChange);
    let changes: Vec<String> = drain
        .plan
        .as_ref()
        .unwrap()
        .changes
        .iter()
        .map(|c| match c {
            Change::Server {
                lb,
                backend,
                server,
                from,
                to,
                ..
            } => format!("{lb}: {backend}/{server} {from} → {to}"),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        changes,
        [
            "lb-1: k8s/m2 ready (UP, weight 1, 0 sessions) → drain, wait up to 2m for 0 sessions (else fail and put it back)",
            "lb-2: k8s/m2 ready (UP, weight 5, 0 sessions) → drain, wait up to 2m for 0 sessions (else fail and put it back)",
        ]
    );
    // The same transition as values, for `-o json` (issue 19, item 3).
    let json = serde_json::to_value(&drain.plan.as_ref().unwrap().changes[1]).unwrap();
    assert_eq!(
        (&json["before"], &json["after"]),
        (
            &serde_json::json!({ "admin": "ready", "status": "UP", "weight": 5, "sessions": 0 }),
            &serde_json::json!({ "admin": "drain", "sessions": 0 })
        ),
        "{json}"
    );
    for lb in 0..2 {
        assert_eq!(f.server(lb, "m2").await.admin, AdminState::Ready);
    }
}

#[tokio::test]
async fn rollback_restores_state_and_weight_exactly_and_journals_it() {
    let f = Fleet::start(4, 2).await;
    // Before the run: m1 drained with weight 7 on both LBs.
    for lb in 0..2 {
        f.api(lb).set_weight(BE, "m1", 7).await.unwrap();
        f.api(lb)
            .set_state(BE, "m1", AdminState::Drain)
            .await
            .unwrap();
    }
    let runbook = r#"
runbook: churn
summary: weight, ready, drain, then a failure
targets: masters
on_failure: rollback
steps:
  - id: weight
    action: haproxy.weight
    with: { weight: 3 }
  - id: ready
    action: haproxy.ready
    with: { timeout: 10s }
  - id: drain
    action: haproxy.drain
  - id: broken
    action: shell
    with: { cmd: "exit 3" }
"#;
    let sink = MemorySink::default();
    let r = f.run(runbook, "m1", &[], false, &sink).await;
    assert_eq!(r.hosts[0].status, HostStatus::RolledBack, "{r:#?}");
    for lb in 0..2 {
        assert_eq!(
            brief(&f.server(lb, "m1").await),
            (AdminState::Drain, 7),
            "lb-{}",
            lb + 1
        );
    }
    let statuses: Vec<StepStatus> = r.hosts[0].steps.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        [
            StepStatus::RolledBack,
            StepStatus::RolledBack,
            StepStatus::RolledBack,
            StepStatus::Failed
        ]
    );
    // The journal says what was put back, newest first.
    let rolled: Vec<(String, Vec<String>)> = sink
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::StepRolledBack { restored } => {
                Some((e.step.clone().unwrap_or_default(), restored.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        rolled,
        [
            (
                "drain".to_string(),
                vec![
                    "lb-2: k8s/m1 back to ready, weight 3".to_string(),
                    "lb-1: k8s/m1 back to ready, weight 3".to_string()
                ]
            ),
            (
                "ready".to_string(),
                vec![
                    "lb-2: k8s/m1 back to drain, weight 3".to_string(),
                    "lb-1: k8s/m1 back to drain, weight 3".to_string()
                ]
            ),
            (
                "weight".to_string(),
                vec![
                    "lb-2: k8s/m1 back to drain, weight 7".to_string(),
                    "lb-1: k8s/m1 back to drain, weight 7".to_string()
                ]
            ),
        ]
    );
    assert!(
        !sink
            .events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::RollbackFailed { .. })),
        "every LB change was undone"
    );
}

#[tokio::test]
async fn a_failure_on_the_second_lb_undoes_the_first() {
    let f = Fleet::start(5, 2).await;
    // A client that stays, through lb-2 only: lb-1 drains at once, lb-2 never.
    let (_client, server) = f.client(1).await;
    let r = f
        .run(
            DRAIN,
            &server,
            &[("timeout", "1s")],
            false,
            &MemorySink::default(),
        )
        .await;
    assert_eq!(r.status, RunStatus::Failed, "{r:#?}");
    let err = r.hosts[0].error.clone().unwrap_or_default();
    assert!(
        err.contains(&format!(
            "server {server} in backend k8s on lb-2: zero sessions not reached"
        )) && err.contains("the server was put back as it was on lb-1, lb-2"),
        "{err}"
    );
    for lb in 0..2 {
        assert_eq!(
            brief(&f.server(lb, &server).await),
            (AdminState::Ready, 1),
            "lb-{}",
            lb + 1
        );
    }

    // An LB that cannot be reached fails the plan: nothing changes on the other.
    let sockets = vec![
        f.lbs[0].admin_path(),
        f.dir.path().join("gone.sock").display().to_string(),
    ];
    let r = f
        .run_on(&sockets, DRAIN, "m1", &[], false, &MemorySink::default())
        .await;
    assert_eq!(r.status, RunStatus::Failed);
    let err = r.hosts[0].error.clone().unwrap_or_default();
    assert!(
        err.contains("no HAProxy admin socket at") && err.contains("on lb-2"),
        "{err}"
    );
    assert_eq!(f.server(0, "m1").await.admin, AdminState::Ready);

    // An unknown server is named with the ones HAProxy knows.
    let r = f
        .run(
            r#"
runbook: unknown
summary: a server HAProxy does not have
targets: masters
steps:
  - id: ready
    action: haproxy.ready
    with: { server: master-9 }
"#,
            "m1",
            &[],
            false,
            &MemorySink::default(),
        )
        .await;
    let err = r.hosts[0].error.clone().unwrap_or_default();
    assert!(
        err.contains(
            "no server master-9 in backend k8s on lb-1: the names HAProxy knows are m1, m2, m3"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_rollback_cut_off_by_a_crash_puts_the_lbs_back_when_resumed() {
    use remedy_engine::resume::{DoneStep, HostResume, ResumeState};
    let f = Fleet::start(6, 2).await;
    // What the journal of the dead run says: m1's drain finished (prior:
    // ready, weight 1 on both LBs), then its rollback started and the
    // process died. The LBs still have m1 drained.
    let sink = MemorySink::default();
    let r = f.run(DRAIN, "m1", &[], false, &sink).await;
    assert_eq!(r.status, RunStatus::Ok, "{r:#?}");
    let drained = result(&r, "drain").clone();
    for lb in 0..2 {
        assert_eq!(f.server(lb, "m1").await.admin, AdminState::Drain);
    }
    let mut host = HostResume {
        rolling_back: true,
        ..HostResume::default()
    };
    host.done.insert(
        "drain".into(),
        DoneStep {
            status: StepStatus::Changed,
            result: drained,
        },
    );
    let mut state = ResumeState::default();
    state.hosts.insert("m1".into(), host);

    let rb = compile(Source::new("rb.yaml", DRAIN)).unwrap();
    let sockets: Vec<String> = f.lbs.iter().map(|h| h.admin_path()).collect();
    let inv = f.inventory(&sockets);
    let req = Request {
        limit: Some("m1".into()),
        ..Request::default()
    };
    let run = bind(&rb, &inv, &req).unwrap();
    let cancel = AtomicBool::new(false);
    let resumed_sink = MemorySink::default();
    let r = Executor {
        runbook: &rb,
        run: &run,
        connector: &LocalConnector,
        sink: &resumed_sink,
        clock: &SystemClock,
        cancel: &cancel,
        options: RunOptions {
            resume: Some(state),
            ..RunOptions::new(false)
        },
    }
    .execute()
    .await;
    assert_eq!(r.hosts[0].status, HostStatus::RolledBack, "{r:#?}");
    for lb in 0..2 {
        assert_eq!(brief(&f.server(lb, "m1").await), (AdminState::Ready, 1));
    }
    assert!(resumed_sink.events().iter().any(|e| matches!(
        &e.kind,
        EventKind::StepRolledBack { restored } if restored.len() == 2
    )));
}

/// Issue 13 (4): a plan checks the rollout as a whole. Draining every master
/// one at a time is fine for the first two, but by the third the earlier
/// batches have left the other two drained: its plan is refused, so the run
/// never starts. A rollout that puts each master back before the next
/// (drain, then ready) plans fine, and two masters drained in the same batch
/// count against each other.
#[tokio::test]
async fn issue_13_a_rollout_that_would_drain_the_last_server_is_refused_at_plan_time() {
    let f = Fleet::start(7, 2).await;
    let sink = MemorySink::default();
    let r = f.run(DRAIN, "masters", &[], true, &sink).await;
    let statuses: Vec<HostStatus> = r.hosts.iter().map(|h| h.status).collect();
    assert_eq!(
        statuses,
        [
            HostStatus::WouldChange,
            HostStatus::WouldChange,
            HostStatus::Failed
        ],
        "{r:#?}"
    );
    assert_eq!(r.status, RunStatus::Failed);
    let m3 = &r.hosts[2];
    let error = m3.steps[0].error.as_deref().unwrap_or_default();
    assert_eq!(
        error,
        "refusing to drain m3 in backend k8s on lb-1: 0 other server(s) would take traffic, fewer than min_up 1; up: none; not up: m1 (drained by m1, earlier in this run), m2 (drained by m2, earlier in this run) — by the time the rollout reaches m3"
    );
    assert!(
        m3.hint.as_deref().unwrap_or_default().contains("--limit"),
        "{m3:#?}"
    );
    assert!(r.summary.contains("1 failed"), "{}", r.summary);
    for lb in 0..2 {
        for m in ["m1", "m2", "m3"] {
            assert_eq!(
                f.server(lb, m).await.admin,
                AdminState::Ready,
                "a plan changes nothing"
            );
        }
    }

    let restart = r#"
runbook: restart
summary: drain, then ready again
targets: masters
steps:
  - id: drain
    action: haproxy.drain
  - id: ready
    action: haproxy.ready
    with: { timeout: 10s }
"#;
    let r = f.run(restart, "masters", &[], true, &sink).await;
    assert_eq!(r.status, RunStatus::Ok, "{r:#?}");

    let two_at_once = DRAIN.replace(
        "targets: masters",
        "targets: masters\nstrategy: { serial: 2 }",
    );
    let r = f
        .run(&two_at_once, "m1,m2", &[("min_up", "2")], true, &sink)
        .await;
    let failed: Vec<&str> = (r.hosts.iter())
        .filter(|h| h.status == HostStatus::Failed)
        .map(|h| h.host.as_str())
        .collect();
    assert_eq!(failed, ["m1", "m2"], "{r:#?}");
    assert!(
        r.hosts[0].steps[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("m2 (drained by m2, in the same batch)"),
        "{r:#?}"
    );
}
