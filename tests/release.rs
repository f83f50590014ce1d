//! The shipped binary has no test hooks: a build with a release build's cfg
//! (`--profile release-check`: no debug assertions, as in `--release`, but
//! unoptimised so it builds quickly) ignores `REMEDY_CRASH_AFTER` and
//! `REMEDY_NOTIFY_RETRY_MS`, which the debug binary the other tests run obeys.
//! The binary is built once per `cargo test` by this test itself (incremental
//! after the first time).

use remedy_testkit::http::Receiver;
use remedy_testkit::poll::eventually;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// `remedy` built with `--profile release-check`.
fn release_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let out = Command::new(cargo)
            .args([
                "build",
                "--profile",
                "release-check",
                "--bin",
                "remedy",
                "--message-format",
                "json-render-diagnostics",
                "--manifest-path",
                concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"),
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run cargo");
        assert!(
            out.status.success(),
            "cargo build --profile release-check failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "remedy")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo named the remedy executable it built")
    })
}

/// One local "master" with a manifest, an inventory, a runbook that edits
/// the manifest, and a REMEDY_HOME (with `config` as its site config).
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(approval: &str, config: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("m1/kubernetes/manifests")).unwrap();
        std::fs::create_dir_all(p.join("home")).unwrap();
        std::fs::write(
            p.join("m1/kubernetes/manifests/kube-apiserver.yaml"),
            include_str!("../examples/manifests/kube-apiserver.yaml"),
        )
        .unwrap();
        std::fs::write(
            p.join("inventory.yaml"),
            format!(
                "{approval}hosts:\n  m1:\n    transport: local\n    groups: [masters]\n    vars: {{ kube_dir: {}, backup_dir: {}, staging_dir: {} }}\n",
                p.join("m1/kubernetes").display(),
                p.join("m1/backups").display(),
                p.join("m1/staging").display()
            ),
        )
        .unwrap();
        std::fs::write(
            p.join("edit.yaml"),
            "runbook: edit\nsummary: set a flag\ntargets: masters\nsteps:\n  - id: edit\n    action: file.edit\n    with:\n      path: \"${host.vars.manifests_dir}/kube-apiserver.yaml\"\n      set_flags: [\"--v=4\"]\n",
        )
        .unwrap();
        if !config.is_empty() {
            std::fs::write(p.join("home/config.yaml"), config).unwrap();
        }
        Site { dir }
    }

    fn cmd(&self, binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = Command::new(binary);
        c.args(args)
            .env_remove("REMEDY_INVENTORY")
            .env_remove("REMEDY_CONFIG")
            .env("NO_COLOR", "1")
            .env("REMEDY_HOME", self.dir.path().join("home"))
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        c
    }

    /// `remedy run edit --yes` (and `extra`) with `binary` and `env`.
    fn run(&self, binary: &Path, extra: &[&str], env: &[(&str, &str)]) -> Command {
        let inv = self.dir.path().join("inventory.yaml");
        let rb = self.dir.path().join("edit.yaml");
        let mut args = vec![
            "run",
            rb.to_str().unwrap(),
            "-i",
            inv.to_str().unwrap(),
            "--yes",
        ];
        args.extend_from_slice(extra);
        self.cmd(binary, &args, env)
    }

    fn edited(&self) -> bool {
        std::fs::read_to_string(
            self.dir
                .path()
                .join("m1/kubernetes/manifests/kube-apiserver.yaml"),
        )
        .unwrap()
        .contains("    - --v=4\n")
    }

    /// The newest run's status, as `remedy runs -o json` says.
    fn last_status(&self) -> String {
        let out = ok(self
            .cmd(release_binary(), &["runs", "-o", "json"], &[])
            .output()
            .unwrap());
        let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
        runs[0]["status"].as_str().unwrap_or_default().to_string()
    }
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_release_binary_ignores_the_crash_hook() {
    let crash = [("REMEDY_CRASH_AFTER", "run_started")];
    // The debug binary obeys it: killed right after the run started, nothing done.
    let site = Site::new("", "");
    let out = site
        .run(Path::new(env!("CARGO_BIN_EXE_remedy")), &[], &crash)
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    assert!(!site.edited());

    // The release build runs to the end.
    let site = Site::new("", "");
    ok(site.run(release_binary(), &[], &crash).output().unwrap());
    assert!(site.edited(), "the release build's run did its edit");
    assert_eq!(site.last_status(), "ok");
}

#[test]
fn a_release_binary_ignores_the_notification_retry_hook() {
    // A notifier whose first delivery fails: the request is retried after
    // the default delay (1 s). The hook asks for ten minutes instead.
    let hook = Receiver::start(1);
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    let site = Site::new(
        "approval:\n  approvers: [bob]\n",
        &format!(
            "allow_as: [{}]\nchat:\n  notify:\n    - {{ type: webhook, url: \"{}\" }}\n",
            user.trim(),
            hook.url
        ),
    );
    let child = site
        .run(
            release_binary(),
            &["--as", "alice"],
            &[("REMEDY_NOTIFY_RETRY_MS", "600000")],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(Some(child));
    eventually(
        "the failed notification was retried (after 1 s, not 10 min)",
        Duration::from_secs(60),
        || hook.received().len() >= 2,
    );
    let got = hook.received();
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(900),
        "retried after {gap:?}, before the default delay"
    );
    assert!(!site.edited(), "nothing applied before the approval");

    // Deny it, and the run ends denied.
    let runs = ok(site
        .cmd(release_binary(), &["approvals", "-o", "json"], &[])
        .output()
        .unwrap());
    let pending: serde_json::Value = serde_json::from_str(&runs).unwrap();
    let run = pending[0]["run_id"].as_str().unwrap().to_string();
    ok(site
        .cmd(
            release_binary(),
            &["deny", &run, "--as", "bob", "--reason", "test over"],
            &[],
        )
        .output()
        .unwrap());
    let out = child.0.take().unwrap().wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(!site.edited());
}

/// A background run that is killed if the test fails before it ends.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
