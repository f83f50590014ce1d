//! Executor semantics on real files through the `Local` transport: dry-run
//! writes nothing, backups match what was there, rollback restores byte for
//! byte, retries/backoff/timeouts/when/max_failed behave as documented.

use remedy_clock::ManualClock;
use remedy_dsl::{compile, Source};
use remedy_engine::event::{EventKind, EventSink, MemorySink};
use remedy_engine::report::{HostStatus, RunReport, RunStatus, StepStatus};
use remedy_engine::{bind, Executor, Inventory, Request, RunOptions};
use remedy_transport::LocalConnector;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

const MANIFEST: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=10.0.0.11
    - --max-requests-inflight=400
    image: registry.k8s.io/kube-apiserver:v1.33.0
    name: kube-apiserver
  hostNetwork: true
";

/// A throwaway "master": its own kube dir with a manifest, and a backup dir.
struct Lab {
    dir: tempfile::TempDir,
    hosts: Vec<String>,
}

impl Lab {
    fn new(hosts: &[&str]) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        for h in hosts {
            let m = dir.path().join(h).join("kubernetes/manifests");
            std::fs::create_dir_all(&m).unwrap();
            let f = m.join("kube-apiserver.yaml");
            std::fs::write(&f, MANIFEST).unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        Lab {
            dir,
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn root(&self, host: &str) -> PathBuf {
        self.dir.path().join(host)
    }

    fn manifest(&self, host: &str) -> PathBuf {
        self.root(host)
            .join("kubernetes/manifests/kube-apiserver.yaml")
    }

    fn inventory(&self) -> Inventory {
        let mut text = String::from("hosts:\n");
        for h in &self.hosts {
            let r = self.root(h);
            text.push_str(&format!(
                "  {h}:\n    transport: local\n    groups: [masters]\n    vars: {{ kube_dir: {k}, backup_dir: {b}, root: {r} }}\n",
                k = r.join("kubernetes").display(),
                b = r.join("backups").display(),
                r = r.display()
            ));
        }
        Inventory::parse(Source::new("inv.yaml", text)).unwrap()
    }

    /// sha256 of every file under the lab (the "whole tree" check).
    fn tree_hash(&self) -> BTreeMap<String, String> {
        fn walk(p: &Path, out: &mut BTreeMap<String, String>) {
            for e in std::fs::read_dir(p).unwrap().flatten() {
                let path = e.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    out.insert(
                        path.display().to_string(),
                        hex::encode(Sha256::digest(std::fs::read(&path).unwrap())),
                    );
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.dir.path(), &mut out);
        // An "unchanged" comparison of two empty trees would prove nothing.
        assert!(
            out.keys().any(|p| p.ends_with("kube-apiserver.yaml")),
            "the tree was not read: {out:?}"
        );
        out
    }

    async fn run_with(
        &self,
        runbook: &str,
        params: &[(&str, &str)],
        dry_run: bool,
        sink: &dyn EventSink,
        clock: &ManualClock,
    ) -> RunReport {
        let rb = compile(Source::new("rb.yaml", runbook)).unwrap_or_else(|d| panic!("{d}"));
        let inv = self.inventory();
        let req = Request {
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        };
        let run = bind(&rb, &inv, &req).unwrap_or_else(|d| panic!("{d}"));
        let cancel = AtomicBool::new(false);
        let exec = Executor {
            runbook: &rb,
            run: &run,
            connector: &LocalConnector,
            sink,
            clock,
            cancel: &cancel,
            options: RunOptions {
                local_backup_dir: self.dir.path().join("jump-backups").display().to_string(),
                ..RunOptions::new(dry_run)
            },
        };
        exec.execute().await
    }

    async fn run(&self, runbook: &str, params: &[(&str, &str)], dry_run: bool) -> RunReport {
        self.run_with(
            runbook,
            params,
            dry_run,
            &MemorySink::default(),
            &ManualClock::new(),
        )
        .await
    }
}

const EDIT_THEN_CHECK: &str = r#"
runbook: edit-then-check
summary: set a flag, then run a check that may fail
targets: masters
params:
  inflight: { type: string, default: "800" }
  check: { type: string, default: "true" }
steps:
  - id: edit
    action: file.edit
    with:
      path: "${host.vars.manifests_dir}/kube-apiserver.yaml"
      set_flags: { --max-requests-inflight: "${params.inflight}" }
  - id: note
    action: file.write
    with: { path: "${host.vars.root}/note.txt", content: "edited\n", mode: "0640" }
  - id: check
    action: shell
    with: { cmd: "${shell_raw(params.check)}" }
"#;

fn step<'a>(r: &'a RunReport, host: usize, id: &str) -> &'a remedy_engine::report::StepReport {
    r.hosts[host]
        .steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no step {id}"))
}

#[tokio::test]
async fn dry_run_shows_the_diff_and_changes_no_byte() {
    let lab = Lab::new(&["m1", "m2"]);
    let before = lab.tree_hash();
    let r = lab.run(EDIT_THEN_CHECK, &[], true).await;
    assert_eq!(lab.tree_hash(), before, "a dry-run changed files");
    assert!(
        !lab.root("m1").join("backups").exists(),
        "a dry-run took backups"
    );
    assert_eq!(r.status, RunStatus::Ok);
    assert_eq!(r.summary, "2 hosts: 2 to change");
    let edit = step(&r, 0, "edit");
    assert_eq!(edit.status, StepStatus::WouldChange);
    let plan = serde_json::to_value(edit.plan.as_ref().unwrap()).unwrap();
    let diff = plan["changes"][0]["diff"].as_str().unwrap();
    assert!(
        diff.contains("-    - --max-requests-inflight=400\n+    - --max-requests-inflight=800\n"),
        "{diff}"
    );
    assert_eq!(
        diff.lines()
            .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
            .count(),
        1
    );
    assert_eq!(
        step(&r, 0, "check").plan.as_ref().unwrap().changes.len(),
        1,
        "the command is shown"
    );
}

#[tokio::test]
async fn real_run_changes_the_file_and_keeps_a_matching_backup() {
    let lab = Lab::new(&["m1"]);
    let original = std::fs::read(lab.manifest("m1")).unwrap();
    let r = lab.run(EDIT_THEN_CHECK, &[], false).await;
    assert_eq!(r.status, RunStatus::Ok, "{r:#?}");
    assert_eq!(r.hosts[0].status, HostStatus::Changed);
    let now = std::fs::read_to_string(lab.manifest("m1")).unwrap();
    assert!(now.contains("- --max-requests-inflight=800\n") && !now.contains("=400"));
    assert_eq!(
        std::fs::metadata(lab.manifest("m1"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600,
        "mode kept"
    );
    let backup = &step(&r, 0, "edit").backups[0];
    let location = backup.location.as_ref().unwrap();
    assert!(location.starts_with(&lab.root("m1").join("backups").display().to_string()));
    assert!(
        location.contains(&r.run_id) && location.contains("/edit/"),
        "{location}"
    );
    let copy = std::fs::read(location).unwrap();
    assert_eq!(copy, original);
    assert_eq!(
        backup.sha256.as_deref().unwrap(),
        hex::encode(Sha256::digest(&original))
    );
    // The new file was absent before: recorded as such.
    assert!(!step(&r, 0, "note").backups[0].existed);
    assert_eq!(
        std::fs::metadata(lab.root("m1").join("note.txt"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o640
    );
}

#[tokio::test]
async fn a_failing_later_step_rolls_everything_back_byte_for_byte() {
    let lab = Lab::new(&["m1"]);
    let before = lab.tree_hash();
    let sink = MemorySink::default();
    let r = lab
        .run_with(
            EDIT_THEN_CHECK,
            &[("check", "echo broken >&2; exit 3")],
            false,
            &sink,
            &ManualClock::new(),
        )
        .await;
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.hosts[0].status, HostStatus::RolledBack);
    let failed = step(&r, 0, "check");
    assert_eq!(failed.status, StepStatus::Failed);
    assert!(
        failed.error.as_ref().unwrap().contains("exited 3:\nbroken"),
        "{:?}",
        failed.error
    );
    assert_eq!(step(&r, 0, "edit").status, StepStatus::RolledBack);
    // Everything outside the backup dir is exactly as before; note.txt is gone.
    let after: BTreeMap<_, _> = lab
        .tree_hash()
        .into_iter()
        .filter(|(p, _)| !p.contains("/backups/"))
        .collect();
    assert_eq!(after, before);
    assert_eq!(
        std::fs::metadata(lab.manifest("m1"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // Rollback went in reverse order: note before edit.
    let undone: Vec<String> = sink
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::StepRolledBack { .. }))
        .filter_map(|e| e.step)
        .collect();
    assert_eq!(undone, ["note", "edit"]);
}

#[tokio::test]
async fn on_failure_stop_keeps_the_change_and_continue_goes_on() {
    let lab = Lab::new(&["m1"]);
    let stop = EDIT_THEN_CHECK.replace(
        "summary: set a flag",
        "on_failure: stop\nsummary: set a flag",
    );
    let r = lab.run(&stop, &[("check", "false")], false).await;
    assert_eq!(r.hosts[0].status, HostStatus::Failed);
    assert!(
        std::fs::read_to_string(lab.manifest("m1"))
            .unwrap()
            .contains("=800"),
        "stop does not roll back"
    );

    let lab = Lab::new(&["m1"]);
    let cont = format!("{EDIT_THEN_CHECK}    on_failure: continue\n  - id: after\n    action: shell\n    when: steps.check.failed\n    with: {{ cmd: \"true\" }}\n");
    let r = lab.run(&cont, &[("check", "false")], false).await;
    assert_eq!(r.hosts[0].status, HostStatus::Failed);
    assert_eq!(
        step(&r, 0, "after").status,
        StepStatus::Changed,
        "the step after a `continue` failure ran"
    );
}

/// A first way that may fail (its plan fails on a missing file, its apply
/// on a failing command), and a second way taken only then.
const FALLBACK: &str = r#"
runbook: fallback
summary: try one way, take another when it fails
targets: masters
params:
  first: { type: string, default: "false" }
steps:
  - id: primary
    action: shell
    on_failure: handled
    with: { cmd: "${shell_raw(params.first)}" }
  - id: other
    when: steps.primary.failed == true
    action: file.edit
    with:
      path: "${host.vars.manifests_dir}/kube-apiserver.yaml"
      add_to_flags: { --disable-admission-plugins: "ValidatingAdmissionWebhook,MutatingAdmissionWebhook" }
"#;

#[tokio::test]
async fn a_handled_failure_takes_the_other_way_and_the_host_ends_by_it() {
    let lab = Lab::new(&["m1"]);
    let r = lab.run(FALLBACK, &[], false).await;
    assert_eq!(step(&r, 0, "primary").status, StepStatus::Failed);
    assert_eq!(step(&r, 0, "other").status, StepStatus::Changed);
    assert_eq!(
        r.hosts[0].status,
        HostStatus::Changed,
        "the failure was handled: {:?}",
        r.hosts[0].error
    );
    let text = std::fs::read_to_string(lab.manifest("m1")).unwrap();
    assert!(
        text.contains(
            "    - --max-requests-inflight=400\n    - --disable-admission-plugins=ValidatingAdmissionWebhook,MutatingAdmissionWebhook\n"
        ),
        "{text}"
    );

    // The first way works: the other is skipped.
    let lab = Lab::new(&["m1"]);
    let r = lab.run(FALLBACK, &[("first", "true")], false).await;
    assert_eq!(step(&r, 0, "other").status, StepStatus::Skipped);
    assert_eq!(r.hosts[0].status, HostStatus::Changed);
}

#[tokio::test]
async fn a_dry_run_goes_on_past_a_handled_plan_failure_and_shows_the_other_way() {
    let lab = Lab::new(&["m1"]);
    let before = lab.tree_hash();
    let rb = FALLBACK.replace(
        r#"action: shell
    on_failure: handled
    with: { cmd: "${shell_raw(params.first)}" }"#,
        r#"action: file.edit
    on_failure: handled
    with: { path: "${host.vars.manifests_dir}/missing.yaml", set_flags: { --v: "2" } }"#,
    );
    let r = lab.run(&rb, &[], true).await;
    assert_eq!(lab.tree_hash(), before, "a dry-run changed files");
    assert_eq!(step(&r, 0, "primary").status, StepStatus::Failed);
    let other = step(&r, 0, "other");
    assert_eq!(other.status, StepStatus::WouldChange);
    let plan = serde_json::to_value(other.plan.as_ref().unwrap()).unwrap();
    assert!(
        plan["changes"][0]["diff"]
            .as_str()
            .unwrap()
            .contains("+    - --disable-admission-plugins=ValidatingAdmissionWebhook,MutatingAdmissionWebhook"),
        "{plan}"
    );
    assert_eq!(r.hosts[0].status, HostStatus::WouldChange);

    // Without `handled`, the same plan failure stops the host.
    let r = lab
        .run(
            &rb.replace("on_failure: handled", "on_failure: continue"),
            &[],
            true,
        )
        .await;
    assert_eq!(r.hosts[0].status, HostStatus::Failed);
}

#[tokio::test]
async fn add_to_flags_keeps_the_items_a_list_flag_has() {
    let lab = Lab::new(&["m1"]);
    let path = lab.manifest("m1");
    let with_one = std::fs::read_to_string(&path).unwrap().replace(
        "    - --max-requests-inflight=400\n",
        "    - --max-requests-inflight=400\n    - --disable-admission-plugins=PodSecurity,MutatingAdmissionWebhook\n",
    );
    std::fs::write(&path, &with_one).unwrap();
    let r = lab.run(FALLBACK, &[], false).await;
    assert_eq!(r.hosts[0].status, HostStatus::Changed);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        with_one.replace(
            "PodSecurity,MutatingAdmissionWebhook\n",
            "PodSecurity,MutatingAdmissionWebhook,ValidatingAdmissionWebhook\n"
        ),
        "one line changes; the items it had stay, in their order"
    );
}

#[tokio::test]
async fn the_intent_is_recorded_before_the_change_and_a_refused_intent_changes_nothing() {
    struct RefuseIntent(MemorySink);
    impl EventSink for RefuseIntent {
        fn emit(&self, e: &remedy_engine::event::Event) -> Result<(), String> {
            if matches!(e.kind, EventKind::StepIntent { .. }) {
                return Err("journal disk full".into());
            }
            self.0.emit(e)
        }
    }
    let lab = Lab::new(&["m1"]);
    let sink = MemorySink::default();
    lab.run_with(EDIT_THEN_CHECK, &[], false, &sink, &ManualClock::new())
        .await;
    let kinds: Vec<&'static str> = sink
        .events()
        .iter()
        .filter(|e| e.step.as_deref() == Some("edit"))
        .map(|e| match e.kind {
            EventKind::StepPlanned { .. } => "planned",
            EventKind::BackupTaken { .. } => "backup",
            EventKind::StepIntent { .. } => "intent",
            EventKind::StepApplied { .. } => "applied",
            EventKind::StepDone { .. } => "done",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["planned", "backup", "intent", "applied", "done"]);

    let lab = Lab::new(&["m1"]);
    let r = lab
        .run_with(
            EDIT_THEN_CHECK,
            &[],
            false,
            &RefuseIntent(MemorySink::default()),
            &ManualClock::new(),
        )
        .await;
    assert_eq!(r.status, RunStatus::Failed);
    assert!(step(&r, 0, "edit")
        .error
        .as_ref()
        .unwrap()
        .contains("journal disk full"));
    assert_eq!(
        std::fs::read_to_string(lab.manifest("m1")).unwrap(),
        MANIFEST
    );
}

#[tokio::test]
async fn until_retries_with_backoff_and_gives_up_after_the_last_retry() {
    let lab = Lab::new(&["m1"]);
    let rb = r#"
runbook: flaky
summary: s
targets: masters
steps:
  - id: count
    action: shell
    with: { cmd: "echo x >> ${host.vars.root}/count; wc -l < ${host.vars.root}/count" }
    until: result.stdout.contains("3")
    retries: 4
    backoff: 7s
"#;
    let clock = ManualClock::new();
    let r = lab
        .run_with(rb, &[], false, &MemorySink::default(), &clock)
        .await;
    assert_eq!(r.status, RunStatus::Ok);
    assert_eq!(step(&r, 0, "count").attempts, 3);
    assert_eq!(clock.sleeps(), vec![std::time::Duration::from_secs(7); 2]);

    let lab = Lab::new(&["m1"]);
    let r = lab
        .run(&rb.replace("retries: 4", "retries: 1"), &[], false)
        .await;
    let s = step(&r, 0, "count");
    assert_eq!(s.status, StepStatus::Failed);
    assert!(
        s.error
            .as_ref()
            .unwrap()
            .contains("still false after 2 attempt(s)"),
        "{:?}",
        s.error
    );
}

/// Whether process `pid` still runs the command `comm` (gone, or a zombie, is not).
fn running(pid: u32, comm: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // "PID (COMM) STATE …"
        let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
        stat.contains(&format!("({comm})")) && state != Some(Some('Z'))
    })
}

#[tokio::test]
async fn a_step_over_its_timeout_fails_and_is_stopped() {
    let lab = Lab::new(&["m1"]);
    // The shell and a command it started both say who they are, then wait far
    // longer than any test: only being stopped ends them.
    let rb = "runbook: slow\nsummary: s\ntargets: masters\nsteps:\n  - id: slow\n    action: shell\n    timeout: 1s\n    with: { cmd: \"sleep 3600 & echo $! > ${host.vars.root}/child; echo $$ > ${host.vars.root}/shell; wait\" }\n";
    let r = lab.run(rb, &[], false).await;
    let s = step(&r, 0, "slow");
    assert_eq!(s.status, StepStatus::Failed);
    let err = s.error.as_ref().unwrap();
    assert!(
        err.contains("did not finish within") && err.contains("1s"),
        "{err}"
    );
    let pid = |f: &str| -> u32 {
        let text = std::fs::read_to_string(lab.root("m1").join(f)).unwrap();
        text.trim().parse().unwrap()
    };
    let (shell, child) = (pid("shell"), pid("child"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while running(shell, "sh") || running(child, "sleep") {
        assert!(
            std::time::Instant::now() < deadline,
            "the command still runs after its step timed out: shell {shell} {}, sleep {child} {}",
            running(shell, "sh"),
            running(child, "sleep")
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn max_failed_stops_the_rollout_before_the_next_batch() {
    let rb = "runbook: r\nsummary: s\ntargets: masters\nstrategy: { serial: 1, max_failed: MAX }\nsteps:\n  - id: touch\n    action: file.write\n    with: { path: \"${host.vars.root}/touched\", content: x }\n  - id: fail_on_m1\n    action: shell\n    with: { cmd: \"test ${host.name} != m1\" }\n";
    let lab = Lab::new(&["m1", "m2", "m3"]);
    let r = lab.run(&rb.replace("MAX", "0"), &[], false).await;
    let statuses: Vec<HostStatus> = r.hosts.iter().map(|h| h.status).collect();
    assert_eq!(
        statuses,
        [
            HostStatus::RolledBack,
            HostStatus::NotStarted,
            HostStatus::NotStarted
        ]
    );
    assert!(!lab.root("m2").join("touched").exists());
    assert_eq!(r.summary, "3 hosts: 1 failed, rolled back, 2 not started");

    let lab = Lab::new(&["m1", "m2", "m3"]);
    let r = lab.run(&rb.replace("MAX", "1"), &[], false).await;
    let statuses: Vec<HostStatus> = r.hosts.iter().map(|h| h.status).collect();
    assert_eq!(
        statuses,
        [
            HostStatus::RolledBack,
            HostStatus::Changed,
            HostStatus::Changed
        ]
    );
}

#[tokio::test]
async fn when_and_host_skip() {
    let lab = Lab::new(&["m1", "m2"]);
    let rb = r#"
runbook: r
summary: s
targets: masters
steps:
  - id: fresh
    when: host.name == "m1"
    action: host.skip
    with: { reason: "certificates valid" }
  - id: touch
    action: file.write
    with: { path: "${host.vars.root}/touched", content: x }
"#;
    let r = lab.run(rb, &[], false).await;
    assert_eq!(r.hosts[0].status, HostStatus::Skipped);
    assert_eq!(step(&r, 0, "touch").status, StepStatus::Skipped);
    assert!(!lab.root("m1").join("touched").exists());
    assert_eq!(
        step(&r, 1, "fresh").status,
        StepStatus::Skipped,
        "when false on m2"
    );
    assert!(lab.root("m2").join("touched").exists());
}

#[tokio::test]
async fn dry_run_marks_values_only_a_real_run_knows() {
    let lab = Lab::new(&["m1"]);
    let rb = r#"
runbook: r
summary: s
targets: masters
steps:
  - id: version
    action: shell
    with: { cmd: "echo 1.33" }
  - id: known
    action: shell
    with: { cmd: "echo 1.33", read_only: true }
  - id: use
    action: file.write
    with: { path: "${host.vars.root}/v", content: "${steps.version.stdout}" }
  - id: use_known
    action: file.write
    with: { path: "${host.vars.root}/k", content: "${steps.known.stdout}" }
"#;
    let r = lab.run(rb, &[], true).await;
    let deferred = step(&r, 0, "use");
    assert_eq!(deferred.status, StepStatus::Deferred);
    assert_eq!(
        deferred.summary,
        "planned when run: `content` unknown (set by step version)"
    );
    let known = step(&r, 0, "use_known");
    assert_eq!(known.status, StepStatus::WouldChange);
    let diff = serde_json::to_value(known.plan.as_ref().unwrap()).unwrap()["changes"][0]["diff"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(diff.contains("+1.33"), "{diff}");
}

#[tokio::test]
async fn moving_a_manifest_out_is_undone_by_rollback() {
    let lab = Lab::new(&["m1"]);
    let rb = r#"
runbook: r
summary: s
targets: masters
steps:
  - id: out
    action: file.move
    with: { from: "${host.vars.manifests_dir}/kube-apiserver.yaml", to: "${host.vars.root}/staging/kube-apiserver.yaml" }
  - id: boom
    action: shell
    with: { cmd: "exit 1" }
"#;
    let r = lab.run(rb, &[], false).await;
    assert_eq!(r.hosts[0].status, HostStatus::RolledBack);
    assert_eq!(
        std::fs::read_to_string(lab.manifest("m1")).unwrap(),
        MANIFEST
    );
    assert!(
        !lab.root("m1").join("staging/kube-apiserver.yaml").exists(),
        "no copy left behind"
    );
}

#[tokio::test]
async fn backups_inside_the_manifests_dir_are_refused_before_any_change() {
    let lab = Lab::new(&["m1"]);
    let rb = EDIT_THEN_CHECK;
    let inv_text = format!(
        "hosts:\n  m1:\n    transport: local\n    groups: [masters]\n    vars: {{ kube_dir: {k}, backup_dir: {k}/manifests/backup, root: {r} }}\n",
        k = lab.root("m1").join("kubernetes").display(),
        r = lab.root("m1").display()
    );
    let rb = compile(Source::new("rb.yaml", rb)).unwrap();
    let inv = Inventory::parse(Source::new("inv.yaml", inv_text)).unwrap();
    let run = bind(&rb, &inv, &Request::default()).unwrap();
    let cancel = AtomicBool::new(false);
    let clock = ManualClock::new();
    let exec = Executor {
        runbook: &rb,
        run: &run,
        connector: &LocalConnector,
        sink: &MemorySink::default(),
        clock: &clock,
        cancel: &cancel,
        options: RunOptions::new(false),
    };
    let r = exec.execute().await;
    let err = step(&r, 0, "edit").error.clone().unwrap();
    assert!(err.contains("inside the manifests directory"), "{err}");
    assert_eq!(
        std::fs::read_to_string(lab.manifest("m1")).unwrap(),
        MANIFEST
    );
    assert!(!lab.root("m1").join("kubernetes/manifests/backup").exists());
}

#[tokio::test]
async fn wait_until_polls_and_times_out_on_the_injected_clock() {
    let lab = Lab::new(&["m1"]);
    let rb = r#"
runbook: r
summary: s
targets: masters
steps:
  - id: ready
    action: wait.until
    with: { command: "cat ${host.vars.root}/state 2>/dev/null || echo starting", condition: 'result.stdout.contains("ready")', interval: 5s, timeout: 30s }
"#;
    let clock = ManualClock::new();
    let r = lab
        .run_with(rb, &[], false, &MemorySink::default(), &clock)
        .await;
    let s = step(&r, 0, "ready");
    assert_eq!(s.status, StepStatus::Failed);
    assert!(
        s.error
            .as_ref()
            .unwrap()
            .contains("still false after 30s (7 probes"),
        "{:?}",
        s.error
    );
    assert_eq!(clock.sleeps().len(), 6);

    std::fs::write(lab.root("m1").join("state"), "ready\n").unwrap();
    let r = lab.run(rb, &[], false).await;
    assert_eq!(r.status, RunStatus::Ok);
    assert_eq!(step(&r, 0, "ready").result.as_ref().unwrap()["attempts"], 1);
}

#[tokio::test]
async fn dry_run_knows_a_condition_that_never_reads_the_unknown_value() {
    let lab = Lab::new(&["m1"]);
    let rb = r#"
runbook: r
summary: s
targets: masters
params:
  health_cmd: { type: string, default: "" }
steps:
  - id: edit
    action: file.edit
    with: { path: "${host.vars.manifests_dir}/kube-apiserver.yaml", set_flags: { --v: "2" } }
  - id: healthy
    when: params.health_cmd != "" && steps.edit.changed
    action: wait.until
    with: { command: "${params.health_cmd}", condition: result.rc == 0 }
  - id: needs_it
    when: steps.edit.changed
    action: shell
    with: { cmd: "true" }
"#;
    let r = lab.run(rb, &[], true).await;
    let healthy = step(&r, 0, "healthy");
    assert_eq!(healthy.status, StepStatus::Skipped, "{healthy:?}");
    let needs = step(&r, 0, "needs_it");
    assert!(
        needs
            .summary
            .contains("is unknown (set by step edit); planned as if true"),
        "{}",
        needs.summary
    );
}

#[tokio::test]
async fn rollback_says_which_changes_it_could_not_undo() {
    let lab = Lab::new(&["m1"]);
    let rb = r#"
runbook: r
summary: s
targets: masters
steps:
  - id: undeclared
    action: shell
    with: { cmd: "touch ${host.vars.root}/made-by-shell" }
  - id: declared
    action: shell
    with: { cmd: "touch ${host.vars.root}/declared", modifies: ["${host.vars.root}/declared"] }
  - id: boom
    action: shell
    with: { cmd: "exit 1" }
"#;
    let r = lab.run(rb, &[], false).await;
    assert_eq!(r.hosts[0].status, HostStatus::RolledBack);
    assert_eq!(
        step(&r, 0, "undeclared").status,
        StepStatus::Changed,
        "not claimed as undone"
    );
    assert_eq!(step(&r, 0, "declared").status, StepStatus::RolledBack);
    assert!(
        !lab.root("m1").join("declared").exists(),
        "a declared path is restored (removed: it did not exist)"
    );
    assert!(lab.root("m1").join("made-by-shell").exists());
    let hint = r.hosts[0].hint.as_ref().unwrap();
    assert!(
        hint.contains("could not undo `undeclared` (shell)") && hint.contains("modifies"),
        "{hint}"
    );
}

#[tokio::test]
async fn file_write_mode_is_the_mode_the_file_ends_with() {
    let lab = Lab::new(&["m1"]);
    let path = lab.root("m1").join("conf");
    std::fs::write(&path, "same\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let rb = format!("runbook: r\nsummary: s\ntargets: masters\nsteps:\n  - id: w\n    action: file.write\n    with: {{ path: {}, content: \"same\\n\", mode: \"0600\" }}\n", path.display());
    let plan = lab.run(&rb, &[], true).await;
    let changes =
        serde_json::to_value(&step(&plan, 0, "w").plan.as_ref().unwrap().changes).unwrap();
    assert_eq!(
        changes,
        serde_json::json!([{ "kind": "mode", "path": path.display().to_string(), "from": "0644", "to": "0600" }])
    );
    let r = lab.run(&rb, &[], false).await;
    assert_eq!(r.hosts[0].status, HostStatus::Changed);
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let again = lab.run(&rb, &[], false).await;
    assert_eq!(again.hosts[0].status, HostStatus::Unchanged, "idempotent");
}

#[tokio::test]
async fn a_wait_is_not_a_change_and_skipped_steps_read_as_unit() {
    let lab = Lab::new(&["m1"]);
    std::fs::write(lab.root("m1").join("state"), "starting\n").unwrap();
    let rb = r#"
runbook: r
summary: s
targets: masters
steps:
  - id: never
    when: false
    action: shell
    with: { cmd: "true" }
  - id: flip
    action: shell
    with: { cmd: "echo ready > ${host.vars.root}/state", read_only: true }
  - id: ready
    action: wait.until
    with: { command: "cat ${host.vars.root}/state", condition: 'result.stdout.contains("ready")' }
  - id: after
    action: assert
    with: { that: steps.never.rc == () && !steps.ready.changed }
"#;
    let r = lab.run(rb, &[], false).await;
    assert_eq!(r.status, RunStatus::Ok, "{r:#?}");
    assert_eq!(r.hosts[0].status, HostStatus::Unchanged);
}

#[tokio::test]
async fn retries_also_cover_a_probe_that_fails_while_planning() {
    let lab = Lab::new(&["m1"]);
    let rb = r#"
runbook: r
summary: s
targets: masters
steps:
  - id: probe
    action: shell
    retries: 3
    backoff: 2s
    with: { cmd: "echo x >> ${host.vars.root}/n; test $(wc -l < ${host.vars.root}/n) -ge 3", read_only: true }
"#;
    let clock = ManualClock::new();
    let r = lab
        .run_with(rb, &[], false, &MemorySink::default(), &clock)
        .await;
    assert_eq!(r.status, RunStatus::Ok, "{r:#?}");
    assert_eq!(clock.sleeps().len(), 2);
}

#[tokio::test]
async fn a_number_interpolated_into_a_string_argument_is_its_text() {
    let lab = Lab::new(&["m1"]);
    let rb = "runbook: r\nsummary: s\ntargets: masters\nparams:\n  n: { type: int, default: 7 }\nsteps:\n  - id: w\n    action: file.write\n    with: { path: \"${host.vars.root}/n\", content: \"${params.n}\" }\n";
    let r = lab.run(rb, &[], false).await;
    assert_eq!(r.status, RunStatus::Ok, "{r:#?}");
    assert_eq!(
        std::fs::read_to_string(lab.root("m1").join("n")).unwrap(),
        "7"
    );
}

#[tokio::test]
async fn file_copy_backs_up_the_destination_and_rollback_restores_it() {
    let lab = Lab::new(&["m1"]);
    let root = lab.root("m1");
    std::fs::write(root.join("admin.conf"), "renewed\n").unwrap();
    std::fs::create_dir_all(root.join(".kube")).unwrap();
    std::fs::write(root.join(".kube/config"), "old\n").unwrap();
    let rb = format!(
        "runbook: r\nsummary: s\ntargets: masters\nparams:\n  fail: {{ type: bool, default: false }}\nsteps:\n  - id: copy\n    action: file.copy\n    with: {{ from: {r}/admin.conf, to: {r}/.kube/config, mode: \"0600\" }}\n  - id: after\n    when: params.fail\n    action: shell\n    with: {{ cmd: \"exit 1\" }}\n",
        r = root.display()
    );
    let plan = lab.run(&rb, &[], true).await;
    assert_eq!(step(&plan, 0, "copy").status, StepStatus::WouldChange);
    let r = lab.run(&rb, &[("fail", "true")], false).await;
    assert_eq!(r.hosts[0].status, HostStatus::RolledBack);
    assert_eq!(
        std::fs::read_to_string(root.join(".kube/config")).unwrap(),
        "old\n",
        "restored"
    );
    let r = lab.run(&rb, &[], false).await;
    assert_eq!(r.hosts[0].status, HostStatus::Changed);
    assert_eq!(
        std::fs::read_to_string(root.join(".kube/config")).unwrap(),
        "renewed\n"
    );
    assert_eq!(
        std::fs::metadata(root.join(".kube/config"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        lab.run(&rb, &[], false).await.hosts[0].status,
        HostStatus::Unchanged,
        "idempotent"
    );
}

/// Issue 15: `backup restore` copies a backup back with its recorded
/// sha256; a copy changed since then is refused while planning, and nothing
/// is written.
#[tokio::test]
async fn file_copy_refuses_a_source_whose_sha256_is_not_the_recorded_one() {
    let lab = Lab::new(&["m1"]);
    let root = lab.root("m1");
    std::fs::write(root.join("copy"), "good\n").unwrap();
    std::fs::write(root.join("live"), "broken\n").unwrap();
    let rb = |sha: &str| {
        format!(
            "runbook: r\nsummary: s\ntargets: masters\nsteps:\n  - id: restore\n    action: file.copy\n    with: {{ from: {r}/copy, to: {r}/live, sha256: \"{sha}\" }}\n",
            r = root.display()
        )
    };
    let good = remedy_engine::backup::sha256_hex(b"good\n");
    std::fs::write(root.join("copy"), "tampered\n").unwrap();
    let r = lab.run(&rb(&good), &[], false).await;
    assert_eq!(r.status, RunStatus::Failed, "{r:#?}");
    let refused = step(&r, 0, "restore");
    assert!(
        refused.plan.is_none(),
        "refused while planning: {refused:#?}"
    );
    let error = refused.error.clone().unwrap_or_default();
    assert!(
        error.contains("not the recorded") && error.contains(&good),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("live")).unwrap(),
        "broken\n"
    );
    std::fs::write(root.join("copy"), "good\n").unwrap();
    let r = lab.run(&rb(&good.to_uppercase()), &[], false).await;
    assert_eq!(r.hosts[0].status, HostStatus::Changed, "{r:#?}");
    assert_eq!(
        std::fs::read_to_string(root.join("live")).unwrap(),
        "good\n"
    );
}

#[tokio::test]
async fn file_fetch_backs_up_the_jump_host_copy_and_rollback_restores_it() {
    let lab = Lab::new(&["m1"]);
    let root = lab.root("m1");
    std::fs::write(root.join("admin.conf"), "renewed\n").unwrap();
    let jump = lab.dir.path().join("jump/.kube/config");
    std::fs::create_dir_all(jump.parent().unwrap()).unwrap();
    std::fs::write(&jump, "old\n").unwrap();
    let rb = format!(
        "runbook: r\nsummary: s\ntargets: masters\nparams:\n  fail: {{ type: bool, default: false }}\nsteps:\n  - id: fetch\n    action: file.fetch\n    with: {{ from: {r}/admin.conf, to: {j} }}\n  - id: after\n    when: params.fail\n    action: shell\n    with: {{ cmd: \"exit 1\" }}\n",
        r = root.display(),
        j = jump.display()
    );
    let r = lab.run(&rb, &[("fail", "true")], false).await;
    assert_eq!(r.hosts[0].status, HostStatus::RolledBack);
    let b = &step(&r, 0, "fetch").backups[0];
    assert!(
        b.local
            && b.location
                .as_ref()
                .unwrap()
                .starts_with(&lab.dir.path().join("jump-backups").display().to_string()),
        "{b:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&jump).unwrap(),
        "old\n",
        "the jump host's copy is restored"
    );
    let r = lab.run(&rb, &[], false).await;
    assert_eq!(r.hosts[0].status, HostStatus::Changed);
    assert_eq!(std::fs::read_to_string(&jump).unwrap(), "renewed\n");
    assert_eq!(
        std::fs::metadata(&jump).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
