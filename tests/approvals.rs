//! Approvals end to end: a real `remedy run` waits in one process while
//! others decide (`remedy approve`/`deny`, or chat callbacks through
//! `remedy serve`), notifications land on real HTTP receivers on loopback,
//! and the journal records every request and vote. One local-transport
//! "master" per test; each test has its own REMEDY_HOME.

use remedy_testkit::http::Receiver;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const MANIFEST: &str = include_str!("../examples/manifests/kube-apiserver.yaml");

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    /// One master, an inventory with `policy` as its `approval:` block, and a
    /// site config letting this OS user act `--as` alice, bob, carol.
    fn new(policy: &str, extra_config: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let kube = dir.path().join("m1/kubernetes");
        std::fs::create_dir_all(kube.join("manifests")).unwrap();
        std::fs::write(kube.join("manifests/kube-apiserver.yaml"), MANIFEST).unwrap();
        std::fs::write(
            dir.path().join("inventory.yaml"),
            format!(
                "approval:\n{policy}\nhosts:\n  m1:\n    transport: local\n    groups: [masters]\n    vars: {{ kube_dir: {}, backup_dir: {}, staging_dir: {} }}\n",
                kube.display(),
                dir.path().join("m1/backups").display(),
                dir.path().join("m1/staging").display(),
            ),
        )
        .unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::write(
            dir.path().join("home/config.yaml"),
            format!("allow_as: [{user}]\ngroups:\n  sre: [bob, carol]\n{extra_config}"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("edit.yaml"),
            "runbook: edit\nsummary: set a flag\ntargets: masters\nsteps:\n  - id: edit\n    action: file.edit\n    with:\n      path: \"${host.vars.manifests_dir}/kube-apiserver.yaml\"\n      set_flags: [\"--v=4\"]\n",
        )
        .unwrap();
        Site { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn manifest(&self) -> PathBuf {
        self.path("m1/kubernetes/manifests/kube-apiserver.yaml")
    }
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_remedy"));
        c.args(args)
            .env_remove("REMEDY_INVENTORY")
            .env_remove("REMEDY_CONFIG")
            .env("NO_COLOR", "1")
            .env("REMEDY_HOME", self.path("home"))
            .env("REMEDY_NOTIFY_RETRY_MS", "10")
            .stdin(Stdio::null());
        c
    }
    fn remedy(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }
    /// `remedy run edit --yes --as alice` in the background.
    fn start_run(&self) -> Child {
        let inv = self.path("inventory.yaml");
        let rb = self.path("edit.yaml");
        self.cmd(&[
            "run",
            rb.to_str().unwrap(),
            "-i",
            inv.to_str().unwrap(),
            "--yes",
            "--as",
            "alice",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    }
    /// The pending requests (`remedy approvals -o json`), waiting until
    /// there are `n`.
    fn pending(&self, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.approvals();
            if v.len() == n {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "never {n} pending request(s): {v:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    /// `remedy approvals -o json`; the test fails when the command does.
    fn approvals(&self) -> Vec<serde_json::Value> {
        let out = self.remedy(&["approvals", "-o", "json"]);
        assert!(
            out.status.success(),
            "remedy approvals: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
    fn vote(&self, who: &str, verb: &str, run: &str, extra: &[&str]) -> (String, String, i32) {
        let mut args = vec![verb, run, "--as", who];
        args.extend_from_slice(extra);
        let o = self.remedy(&args);
        (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
            o.status.code().unwrap_or(-1),
        )
    }
    fn kinds(&self, run: &str) -> Vec<String> {
        let o = self.remedy(&["audit", "show", run, "-o", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["kind"].as_str().unwrap(),
                    e["actor"].as_str().unwrap()
                )
            })
            .collect()
    }
}

fn finish(child: Child) -> (String, String, i32) {
    let out = wait_with_timeout(child, Duration::from_secs(60));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

fn wait_with_timeout(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the run did not end within {limit:?}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn untouched(site: &Site) {
    assert_eq!(std::fs::read_to_string(site.manifest()).unwrap(), MANIFEST);
}

#[test]
fn quorum_of_two_refuses_the_requester_and_continues_after_two_others_approve() {
    let hook = Receiver::start(0);
    let site = Site::new(
        "  approvers: [alice, group:sre]\n  quorum: 2\n  ttl: 5m",
        &format!(
            "chat:\n  notify:\n    - {{ type: slack, url: \"{}\" }}\n",
            hook.url
        ),
    );
    let child = site.start_run();
    let pending = site.pending(1);
    let run = pending[0]["run_id"].as_str().unwrap().to_string();
    let request = pending[0]["request_id"].as_str().unwrap().to_string();
    untouched(&site);

    // The Slack notification carries the plan, both buttons and the run id.
    let deadline = Instant::now() + Duration::from_secs(10);
    while hook.bodies().is_empty() {
        assert!(Instant::now() < deadline, "no notification arrived");
        std::thread::sleep(Duration::from_millis(100));
    }
    let body: serde_json::Value = serde_json::from_str(&hook.bodies()[0]).unwrap();
    let text = body.to_string();
    assert!(text.contains(&run) && text.contains("--v=4"), "{text}");
    let buttons: Vec<(&str, &str)> = body["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().unwrap().iter())
        .map(|e| {
            (
                e["action_id"].as_str().unwrap(),
                e["value"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        buttons,
        [("approve", request.as_str()), ("deny", request.as_str())]
    );

    let (_, err, code) = site.vote("alice", "approve", &run, &[]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("alice requested run") && err.contains("may not approve"),
        "{err}"
    );
    let (out, err, code) = site.vote(
        "bob",
        "approve",
        &run[..13],
        &["--comment", "diff looks right"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 of 2 approvals"), "{out}");
    untouched(&site);
    let (out, err, code) = site.vote("carol", "approve", &run, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("now approved"), "{out}");

    let (out, err, code) = finish(child);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(err.contains("approved by bob, carol"), "{err}");
    assert!(std::fs::read_to_string(site.manifest())
        .unwrap()
        .contains("- --v=4\n"));
    let kinds = site.kinds(&run);
    // Votes cast `--as` on a shared account name the OS user too (issue 13).
    let os = remedy_journal::os_user();
    let i = kinds
        .iter()
        .position(|k| k == &format!("approval_granted:carol (os user {os})"))
        .unwrap();
    let j = kinds
        .iter()
        .position(|k| k.starts_with("step_intent"))
        .unwrap();
    assert!(
        kinds.contains(&"approval_requested:alice".to_string())
            && kinds.contains(&format!("approval_vote:bob (os user {os})"))
            && i < j,
        "{kinds:?}"
    );
    // `audit show` says who approved (issue 14, item 9: it said approvals
    // were not enforced).
    let show = String::from_utf8_lossy(&site.remedy(&["audit", "show", &run]).stdout).into_owned();
    assert!(
        show.contains(&format!(
            "\n  approved  by bob (os user {os}), carol (os user {os})\n"
        )),
        "{show}"
    );
    // The decision was notified too.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !hook
        .bodies()
        .iter()
        .any(|b| b.contains("approved by bob, carol"))
    {
        assert!(Instant::now() < deadline, "{:?}", hook.bodies());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_unanswered_request_expires_and_the_run_ends_denied_with_nothing_applied() {
    let site = Site::new("  approvers: [bob]\n  ttl: 2s", "");
    let child = site.start_run();
    let (out, err, code) = finish(child);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(
        err.contains("expired") && err.contains("Nothing was changed"),
        "{err}"
    );
    untouched(&site);
    let runs: serde_json::Value =
        serde_json::from_slice(&site.remedy(&["runs", "-o", "json"]).stdout).unwrap();
    assert_eq!(runs[0]["status"], "denied");
    let run = runs[0]["run_id"].as_str().unwrap();
    assert!(site
        .kinds(run)
        .iter()
        .any(|k| k.starts_with("approval_expired")));
    assert!(!site.kinds(run).iter().any(|k| k.starts_with("step_intent")));
}

#[test]
fn a_deny_ends_the_run_with_its_reason() {
    let site = Site::new("  approvers: [bob]", "");
    let child = site.start_run();
    let run = site.pending(1)[0]["run_id"].as_str().unwrap().to_string();
    let (_, err, code) = site.vote("bob", "deny", &run, &["--reason", "wrong cluster"]);
    assert_eq!(code, 0, "{err}");
    let (out, err, code) = finish(child);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(err.contains("denied by bob: wrong cluster"), "{err}");
    untouched(&site);
    let show = String::from_utf8_lossy(&site.remedy(&["audit", "show", &run]).stdout).into_owned();
    let os = remedy_journal::os_user();
    assert!(
        show.contains(&format!(
            "\n  approved  no — denied by bob (os user {os}): wrong cluster\n"
        )),
        "{show}"
    );
}

#[test]
fn a_file_changed_between_approval_and_apply_forces_a_new_approval() {
    let site = Site::new("  approvers: [bob]", "");
    let child = site.start_run();
    let first = site.pending(1);
    let run = first[0]["run_id"].as_str().unwrap().to_string();
    // Someone edits the manifest on the master while the run waits.
    let drifted = MANIFEST.replace("--allow-privileged=true", "--allow-privileged=false");
    assert_ne!(drifted, MANIFEST);
    std::fs::write(site.manifest(), &drifted).unwrap();
    let (_, err, code) = site.vote("bob", "approve", &run, &[]);
    assert_eq!(code, 0, "{err}");
    // The plan is made again before applying: it differs, so a new request.
    let second = site.pending(1);
    assert_ne!(second[0]["request_id"], first[0]["request_id"]);
    assert_ne!(second[0]["plan_hash"], first[0]["plan_hash"]);
    assert_eq!(
        std::fs::read_to_string(site.manifest()).unwrap(),
        drifted,
        "nothing applied yet"
    );
    let (_, err, code) = site.vote("bob", "approve", &run, &[]);
    assert_eq!(code, 0, "{err}");
    let (out, err, code) = finish(child);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("The plan changed after it was approved"),
        "{err}"
    );
    let now = std::fs::read_to_string(site.manifest()).unwrap();
    assert!(
        now.contains("--allow-privileged=false") && now.contains("- --v=4\n"),
        "{now}"
    );
    assert!(site
        .kinds(&run)
        .iter()
        .any(|k| k.starts_with("approval_invalidated")));
}

#[test]
fn break_glass_skips_approval_is_journaled_notified_and_flagged_for_review() {
    let hook = Receiver::start(0);
    let site = Site::new(
        "  approvers: [bob]",
        &format!(
            "chat:\n  notify:\n    - {{ type: webhook, url: \"{}\" }}\n",
            hook.url
        ),
    );
    let inv = site.path("inventory.yaml");
    let rb = site.path("edit.yaml");
    let o = site.remedy(&[
        "run",
        rb.to_str().unwrap(),
        "-i",
        inv.to_str().unwrap(),
        "--yes",
        "--break-glass",
        "--reason",
        "API down, INC-4411",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("BREAK-GLASS"), "{err}");
    // The change itself was made, with no approval asked for.
    let now = std::fs::read_to_string(site.manifest()).unwrap();
    assert!(
        now.contains("    - --v=4\n") && now.replacen("    - --v=4\n", "", 1) == MANIFEST,
        "break-glass applied the edit, and only it:\n{now}"
    );
    assert!(site.approvals().is_empty());
    let list = String::from_utf8_lossy(&site.remedy(&["audit", "list"]).stdout).into_owned();
    assert!(list.contains("REVIEW"), "{list}");
    let runs: serde_json::Value =
        serde_json::from_slice(&site.remedy(&["runs", "-o", "json"]).stdout).unwrap();
    assert!(runs[0]["review"].as_str().unwrap().contains("INC-4411"));
    let run = runs[0]["run_id"].as_str().unwrap();
    let show = String::from_utf8_lossy(&site.remedy(&["audit", "show", run]).stdout).into_owned();
    assert!(
        show.contains("  approved  no — skipped by break-glass ("),
        "{show}"
    );
    assert!(
        show.contains("API down, INC-4411); marked for review\n"),
        "{show}"
    );
    let bodies = hook.bodies();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("break_glass") && b.contains("INC-4411")),
        "{bodies:?}"
    );
    // Issue 14 (5b): the run-finished notice carries the chain head, the
    // witness `audit verify --head` checks; `audit head` prints the same.
    let finished: serde_json::Value = bodies
        .iter()
        .filter_map(|b| serde_json::from_str::<serde_json::Value>(b).ok())
        .find(|b| b["kind"] == "run_finished")
        .unwrap_or_else(|| panic!("{bodies:?}"));
    let head = finished["chain_head"].as_str().unwrap().to_string();
    let printed = String::from_utf8_lossy(&site.remedy(&["audit", "head"]).stdout).into_owned();
    assert_eq!(printed.trim(), head);
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--head", &head];
        args.extend(extra);
        let o = site.remedy(&args);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    assert_eq!(verify(&[]).0, Some(0), "{}", verify(&[]).1);
    // The last event cut off and the head row set to match: only the
    // witness (and the run's record, now ahead of the chain) show it.
    let db = rusqlite::Connection::open(site.path("home/remedy.db")).unwrap();
    db.execute_batch(
        "DELETE FROM events WHERE id = (SELECT MAX(id) FROM events);
         UPDATE chain_head SET last_id = (SELECT MAX(id) FROM events), last_hash = (SELECT hash FROM events ORDER BY id DESC LIMIT 1);",
    )
    .unwrap();
    let (code, out) = verify(&[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.starts_with(&format!(
            "TAMPERED: the chain head {head} recorded outside this journal is not in it"
        )),
        "{out}"
    );
    // --break-glass without a reason is refused by the command line.
    let o = site.remedy(&[
        "run",
        rb.to_str().unwrap(),
        "-i",
        inv.to_str().unwrap(),
        "--yes",
        "--break-glass",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn a_failing_notifier_is_journaled_and_the_request_still_stands() {
    let site = Site::new(
        "  approvers: [bob]",
        "chat:\n  notify:\n    - { type: webhook, url: \"http://127.0.0.1:9/hook\" }\n",
    );
    let child = site.start_run();
    let run = site.pending(1)[0]["run_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = String::from_utf8_lossy(&site.remedy(&["approvals"]).stdout).into_owned();
        if text.contains("NOTIFICATION FAILED") {
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, err, code) = site.vote("bob", "approve", &run, &[]);
    assert_eq!(code, 0, "{err}");
    let (out, err, code) = finish(child);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(site
        .kinds(&run)
        .iter()
        .any(|k| k.starts_with("notification_failed")));
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_post(addr: &str, path: &str, headers: &[(&str, String)], body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp[9..12].parse().unwrap();
    (code, resp)
}

fn wait_port(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "remedy serve never listened on {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_slack_button_through_remedy_serve_approves_once_and_replays_are_refused() {
    let site = Site::new(
        "  approvers: [bob]",
        "chat:\n  users: { \"slack:U0BOB\": bob }\n  slack_signing_secret: env:TEST_SLACK_SECRET\n",
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let _server = Server(
        site.cmd(&["serve", "--listen", &addr])
            .env("TEST_SLACK_SECRET", "s3cr3t")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port(&addr);
    let (code, _) = {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(
            format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        (r[9..12].parse::<u16>().unwrap(), r)
    };
    assert_eq!(code, 200);
    let metrics = || match remedy_testkit::http::get(&addr, "/metrics") {
        Some((200, body)) => body,
        other => panic!("GET /metrics on remedy serve: {other:?}"),
    };
    let value = |text: &str, series: &str| remedy_testkit::http::metric(text, series);
    let refused = |reason: &str| {
        value(
            &metrics(),
            &format!(r#"remedy_callbacks_refused_total{{channel="slack",reason="{reason}"}}"#),
        )
    };
    let accepted = r#"remedy_callbacks_accepted_total{channel="slack"}"#;
    let before = metrics();
    assert_eq!(value(&before, accepted), Some(0.0), "{before}");
    assert_eq!(value(&before, "remedy_approvals_pending"), Some(0.0));

    let child = site.start_run();
    let pending = site.pending(1);
    let waiting = metrics();
    assert_eq!(value(&waiting, "remedy_approvals_pending"), Some(1.0));
    assert!(
        value(&waiting, "remedy_approvals_oldest_pending_age_seconds").is_some(),
        "{waiting}"
    );
    assert_eq!(
        value(&waiting, r#"remedy_runs_running{runbook="edit"}"#),
        Some(1.0),
        "{waiting}"
    );
    let request = pending[0]["request_id"].as_str().unwrap().to_string();
    let payload = serde_json::json!({
        "type": "block_actions",
        "user": { "id": "U0BOB", "username": "bob" },
        "actions": [{ "action_id": "approve", "value": request }],
    });
    let body = format!("payload={}", url_encode(&payload.to_string()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |ts: u64, secret: &str| remedy_sig(secret, &ts.to_string(), &body);
    let headers = |ts: u64, sig: String| {
        vec![
            (
                "content-type",
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("x-slack-request-timestamp", ts.to_string()),
            ("x-slack-signature", sig),
        ]
    };
    // A wrong signature and an expired timestamp are refused; nothing counted.
    let (code, _) = http_post(
        &addr,
        "/slack/actions",
        &headers(now, sign(now, "wrong")),
        &body,
    );
    assert_eq!(code, 401);
    assert_eq!(refused("bad_signature"), Some(1.0));
    let old = now - 600;
    let (code, _) = http_post(
        &addr,
        "/slack/actions",
        &headers(old, sign(old, "s3cr3t")),
        &body,
    );
    assert_eq!(code, 401);
    assert_eq!(refused("stale"), Some(1.0));
    assert_eq!(value(&metrics(), accepted), Some(0.0));
    assert_eq!(site.pending(1)[0]["votes"].as_array().unwrap().len(), 0);
    // The valid one is accepted once; the same delivery again is a replay.
    let (code, resp) = http_post(
        &addr,
        "/slack/actions",
        &headers(now, sign(now, "s3cr3t")),
        &body,
    );
    assert_eq!(code, 200, "{resp}");
    let (code, _) = http_post(
        &addr,
        "/slack/actions",
        &headers(now, sign(now, "s3cr3t")),
        &body,
    );
    assert_eq!(code, 409);
    assert_eq!(refused("replay"), Some(1.0));
    assert_eq!(value(&metrics(), accepted), Some(1.0));
    let (out, err, code) = finish(child);
    assert_eq!(code, 0, "{out}\n{err}");
    let done = metrics();
    assert_eq!(value(&done, "remedy_approvals_pending"), Some(0.0));
    assert_eq!(
        value(&done, r#"remedy_runs_total{runbook="edit",outcome="ok"}"#),
        Some(1.0),
        "{done}"
    );
    let run = pending[0]["run_id"].as_str().unwrap();
    assert!(site
        .kinds(run)
        .contains(&"approval_granted:bob".to_string()));
}

/// Slack's scheme: v0= hex(HMAC-SHA256(secret, "v0:" + ts + ":" + body)).
fn remedy_sig(secret: &str, ts: &str, body: &str) -> String {
    remedy_chatops::sign_slack(secret, ts, body.as_bytes())
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn step_scope_asks_before_each_changing_step_and_host_scope_once_per_host() {
    for (scope, expected) in [
        ("step", vec!["step:m1/a", "step:m1/b"]),
        ("host", vec!["host:m1"]),
    ] {
        let site = Site::new(&format!("  approvers: [bob]\n  scope: {scope}"), "");
        std::fs::write(
            site.path("edit.yaml"),
            "runbook: two\nsummary: two files\ntargets: masters\nsteps:\n  - id: a\n    action: file.write\n    with: { path: \"${host.vars.kube_dir}/a.txt\", content: \"a\\n\" }\n  - id: b\n    action: file.write\n    with: { path: \"${host.vars.kube_dir}/b.txt\", content: \"b\\n\" }\n",
        )
        .unwrap();
        let child = site.start_run();
        let mut seen = Vec::new();
        for (i, want) in expected.iter().enumerate() {
            let p = site.pending(1);
            let run = p[0]["run_id"].as_str().unwrap().to_string();
            assert_eq!(p[0]["scope"], *want, "{scope}: {p:?}");
            // Nothing of this request's step is applied before the vote.
            let b = site.path("m1/kubernetes/b.txt");
            assert!(!b.exists(), "{scope}: b written before approval {i}");
            let (_, err, code) = site.vote("bob", "approve", &run, &[]);
            assert_eq!(code, 0, "{err}");
            seen.push(p[0]["request_id"].as_str().unwrap().to_string());
            // Wait until this request is no longer pending.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let v = site.approvals();
                if !v.iter().any(|r| r["request_id"] == p[0]["request_id"]) {
                    break;
                }
                assert!(Instant::now() < deadline);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let (out, err, code) = finish(child);
        assert_eq!(code, 0, "{scope}: {out}\n{err}");
        assert_eq!(
            std::fs::read_to_string(site.path("m1/kubernetes/b.txt")).unwrap(),
            "b\n"
        );
        assert_eq!(seen.len(), expected.len());
    }
}
