//! The `remedy` binary end to end, on throwaway kubeadm-layout directories
//! reached through the `local` transport: what a user types, what they see,
//! the exit code, and the bytes on disk afterwards.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const MANIFEST: &str = include_str!("../examples/manifests/kube-apiserver.yaml");

/// Two local "masters", each with its own /etc/kubernetes-like tree.
struct Masters {
    dir: tempfile::TempDir,
}

impl Masters {
    fn new() -> Masters {
        let dir = tempfile::tempdir().unwrap();
        let mut inv = String::from("hosts:\n");
        // Each host's own staging directory: the default one,
        // /var/lib/remedy/staging, is this machine's, shared by every test
        // running at once (a manifest another test's restart parked there
        // would be found by this one's checks).
        for h in ["master-1", "master-2"] {
            let kube = dir.path().join(h).join("kubernetes");
            std::fs::create_dir_all(kube.join("manifests")).unwrap();
            std::fs::write(kube.join("manifests/kube-apiserver.yaml"), MANIFEST).unwrap();
            inv.push_str(&format!(
                "  {h}:\n    transport: local\n    groups: [masters]\n    vars: {{ kube_dir: {}, backup_dir: {}, staging_dir: {} }}\n",
                kube.display(),
                dir.path().join(h).join("backups").display(),
                dir.path().join(h).join("staging").display()
            ));
        }
        std::fs::write(dir.path().join("inventory.yaml"), inv).unwrap();
        Masters { dir }
    }
    fn inventory(&self) -> PathBuf {
        self.dir.path().join("inventory.yaml")
    }
    fn manifest(&self, host: &str) -> PathBuf {
        self.dir
            .path()
            .join(host)
            .join("kubernetes/manifests/kube-apiserver.yaml")
    }
    fn backups(&self, host: &str) -> PathBuf {
        self.dir.path().join(host).join("backups")
    }
}

fn sha(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn remedy(args: &[&str]) -> Output {
    remedy_with_env(args, &[])
}

/// This test process's REMEDY_HOME (journal, locks); a test that needs a
/// journal of its own passes REMEDY_HOME in `env`.
fn home() -> &'static Path {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    HOME.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

fn remedy_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_remedy"));
    cmd.args(args)
        .env_remove("REMEDY_INVENTORY")
        .env("NO_COLOR", "1")
        .env("REMEDY_HOME", home())
        // No inventory of the developer's found by default (~/.config/remedy).
        .env("XDG_CONFIG_HOME", home())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> (String, String, i32) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        o.status.code().unwrap_or(-1),
    )
}

#[test]
fn every_builtin_runbook_validates() {
    let files: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/runbooks"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    let mut args = vec!["validate"];
    args.extend(files.iter().map(String::as_str));
    let (out, err, code) = text(&remedy(&args));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("ok      ") && out.contains("manifest-edit"),
        "{out}"
    );
}

#[test]
fn an_invalid_runbook_exits_2_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(
        &f,
        "runbook: bad\nsummary: s\ntargets: masters\nsteps:\n  - id: a\n    action: file.edt\n",
    )
    .unwrap();
    let (out, err, code) = text(&remedy(&["validate", f.to_str().unwrap()]));
    assert_eq!(code, 2);
    assert!(out.contains("invalid"), "{out}");
    let expected = format!(
        "error: unknown action `file.edt`\n --> {}:6:13\n  |\n6 |     action: file.edt\n  |             ^^^^^^^^\n  = hint: did you mean `file.edit`?\n",
        f.display()
    );
    assert!(err.contains(&expected), "{err}");
}

#[test]
fn plan_shows_the_diff_per_host_and_changes_no_byte() {
    let m = Masters::new();
    let before = (sha(&m.manifest("master-1")), sha(&m.manifest("master-2")));
    let (out, err, code) = text(&remedy(&[
        "plan",
        "manifest-edit",
        "-i",
        m.inventory().to_str().unwrap(),
        "-p",
        "set=--max-requests-inflight=800",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        (sha(&m.manifest("master-1")), sha(&m.manifest("master-2"))),
        before
    );
    assert!(
        !m.backups("master-1").exists(),
        "a dry-run must not take backups"
    );
    assert!(
        out.contains("master-1: to change") && out.contains("master-2: to change"),
        "{out}"
    );
    assert!(out.contains("+    - --max-requests-inflight=800"), "{out}");
    assert!(out.contains("2 hosts: 2 to change"), "{out}");
    assert!(out.contains("Dry-run: nothing was changed."), "{out}");
    assert!(!out.contains('\x1b'), "NO_COLOR must mean no escape codes");
}

#[test]
fn run_changes_the_manifest_and_keeps_a_backup_with_the_recorded_sha256() {
    let m = Masters::new();
    let original = sha(&m.manifest("master-1"));
    let out = remedy(&[
        "run",
        "manifest-edit",
        "-i",
        m.inventory().to_str().unwrap(),
        "-p",
        "set=--max-requests-inflight=800",
        "-p",
        "restart=false",
        "--yes",
        "-o",
        "json",
    ]);
    let (stdout, stderr, code) = text(&out);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["status"], "ok");
    assert_eq!(report["summary"], "2 hosts: 2 changed");
    let manifest = std::fs::read_to_string(m.manifest("master-1")).unwrap();
    assert!(manifest.contains("    - --max-requests-inflight=800\n"));
    let edit = report["hosts"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "edit")
        .unwrap();
    let backup = &edit["backups"][0];
    assert_eq!(backup["sha256"], original.as_str());
    let location = PathBuf::from(backup["location"].as_str().unwrap());
    assert!(location.starts_with(m.backups("master-1")));
    assert_eq!(
        sha(&location),
        original,
        "the backup holds the original bytes"
    );
    assert!(
        stderr.contains("master-1 › edit: backed up"),
        "progress goes to stderr: {stderr}"
    );
}

#[test]
fn an_unhealthy_component_rolls_the_first_master_back_and_stops_before_the_second() {
    let m = Masters::new();
    let before = (
        std::fs::read(m.manifest("master-1")).unwrap(),
        std::fs::read(m.manifest("master-2")).unwrap(),
    );
    let (out, err, code) = text(&remedy(&[
        "run",
        "manifest-edit",
        "-i",
        m.inventory().to_str().unwrap(),
        "-p",
        "set=--max-requests-inflight=800",
        "-p",
        "timeout=2s",
        "--yes",
    ]));
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        std::fs::read(m.manifest("master-1")).unwrap(),
        before.0,
        "restored byte for byte"
    );
    assert_eq!(
        std::fs::read(m.manifest("master-2")).unwrap(),
        before.1,
        "never touched"
    );
    assert!(out.contains("master-1: failed, rolled back"), "{out}");
    assert!(out.contains("master-2: not started"), "{out}");
    assert!(
        out.contains("[undone]") && out.contains("[FAILED]"),
        "{out}"
    );
    assert!(
        out.contains("2 hosts: 1 failed, rolled back, 1 not started"),
        "{out}"
    );
    assert!(err.contains("master-1 › edit: restored"), "{err}");
}

#[test]
fn a_real_run_needs_confirmation_and_a_script_must_say_yes() {
    let m = Masters::new();
    let before = sha(&m.manifest("master-1"));
    let (_, err, code) = text(&remedy(&[
        "run",
        "manifest-edit",
        "-i",
        m.inventory().to_str().unwrap(),
        "-p",
        "set=--v=2",
    ]));
    assert_eq!(code, 3, "not confirmed is exit 3 (denied)");
    assert!(
        err.contains("refusing to change hosts without confirmation") && err.contains("--yes"),
        "{err}"
    );
    assert_eq!(sha(&m.manifest("master-1")), before);
}

#[test]
fn bad_params_and_unknown_hosts_exit_2_and_change_nothing() {
    let m = Masters::new();
    let inv = m.inventory();
    let inv = inv.to_str().unwrap();
    let before = sha(&m.manifest("master-1"));
    let (_, err, code) = text(&remedy(&[
        "run",
        "manifest-edit",
        "-i",
        inv,
        "-p",
        "timeout=soon",
        "-p",
        "set=--v=2",
        "--yes",
    ]));
    assert_eq!(code, 2);
    assert!(
        err.contains("error: --param timeout: `soon` is not a duration"),
        "{err}"
    );
    let (_, err, code) = text(&remedy(&[
        "run",
        "manifest-edit",
        "-i",
        inv,
        "-p",
        "set=--v=2",
        "--limit",
        "master-3",
        "--yes",
    ]));
    assert_eq!(code, 2);
    assert!(
        err.contains("no host or group `master-3`") && err.contains("did you mean `master-"),
        "{err}"
    );
    let (_, err, code) = text(&remedy(&["run", "manifest-edt", "-i", inv, "--yes"]));
    assert_eq!(code, 2);
    assert!(
        err.contains("no runbook named `manifest-edt`; did you mean `manifest-edit`?"),
        "{err}"
    );
    let (_, err, code) = text(&remedy(&["plan", "manifest-edit"]));
    assert_eq!(code, 2);
    assert!(err.contains("no inventory given"), "{err}");
    assert_eq!(sha(&m.manifest("master-1")), before);
}

#[test]
fn limit_narrows_the_run_to_one_master() {
    let m = Masters::new();
    let before = sha(&m.manifest("master-2"));
    let (out, err, code) = text(&remedy(&[
        "run",
        "manifest-edit",
        "-i",
        m.inventory().to_str().unwrap(),
        "-p",
        "unset=--allow-privileged",
        "-p",
        "restart=false",
        "--limit",
        "master-1",
        "--yes",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!std::fs::read_to_string(m.manifest("master-1"))
        .unwrap()
        .contains("--allow-privileged"));
    assert_eq!(sha(&m.manifest("master-2")), before);
    assert!(out.contains("1 host: 1 changed"), "{out}");
}

#[test]
fn list_and_show_teach_the_runbooks_and_actions() {
    let (out, _, code) = text(&remedy(&["list"]));
    assert_eq!(code, 0);
    for (name, summary) in [
        ("manifest-edit", "Set or remove flags"),
        ("static-pod-restart", "Restart control-plane static pods"),
    ] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(name) && l.contains(summary)),
            "{name} missing from:\n{out}"
        );
    }
    let (out, _, _) = text(&remedy(&["list", "--actions"]));
    for action in [
        "shell",
        "file.write",
        "file.edit",
        "file.move",
        "wait.until",
        "assert",
        "script",
        "host.skip",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(action)),
            "{action} missing from:\n{out}"
        );
    }
    let (out, _, _) = text(&remedy(&["show", "manifest-edit"]));
    assert!(
        out.contains("timeout          duration default 2m"),
        "{out}"
    );
    let (out, _, _) = text(&remedy(&["show", "file.edit"]));
    assert!(
        out.contains("set_flags") && out.contains("previous_sha256"),
        "{out}"
    );
    let (out, _, code) = text(&remedy(&["--help"]));
    assert_eq!(code, 0);
    assert!(
        out.contains("Exit codes:") && out.contains("5  rollback failed"),
        "{out}"
    );
    // Issue 13, item 11: every fault the lab knows is in `lab break --help`.
    let (out, _, code) = text(&remedy(&["lab", "break", "--help"]));
    assert_eq!(code, 0);
    // Issue 19, item 1: one line each, within 100 columns.
    for (fault, summary, _) in remedy_lab::faults::FAULTS {
        let line = out.lines().find(|l| l.trim_start().starts_with(fault));
        assert!(
            line.is_some_and(|l| l.contains(summary) && l.len() <= 100),
            "{fault}: {out}"
        );
    }
}

/// Issue 19, item 1: each command's --help shows the options it takes and
/// no other, with examples; options before the command's name (every option
/// was global once) still work.
#[test]
fn issue_19_help_shows_only_what_a_command_takes() {
    let options = |args: &[&str]| -> String {
        let (out, err, code) = text(&remedy(args));
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains("Example"), "{args:?} has no example: {out}");
        out
    };
    let approve = options(&["approve", "--help"]);
    for takes in ["--host", "--step", "--comment", "--as", "--config"] {
        assert!(approve.contains(takes), "{takes}: {approve}");
    }
    for not in [
        "--param",
        "--yes",
        "--parallel",
        "--inventory",
        "--limit",
        "--output",
        "-p,",
        "-y,",
        "-i,",
        "--kubeconfig",
    ] {
        assert!(
            !approve.contains(not),
            "approve --help shows {not}: {approve}"
        );
    }
    let down = options(&["lab", "down", "--help"]);
    for not in [
        "--param",
        "--yes",
        "--parallel",
        "--inventory",
        "--config",
        "--as",
    ] {
        assert!(!down.contains(not), "lab down --help shows {not}: {down}");
    }
    let run = options(&["run", "--help"]);
    for takes in [
        "--param",
        "--yes",
        "--parallel",
        "--inventory",
        "--limit",
        "--kubeconfig",
    ] {
        assert!(run.contains(takes), "{takes}: {run}");
    }
    assert!(!options(&["plan", "--help"]).contains("--yes"));
    // Every subcommand has an example (hidden ones aside).
    for cmd in [
        "run",
        "plan",
        "validate",
        "list",
        "exec",
        "show",
        "resume",
        "approvals",
        "approve",
        "deny",
        "serve",
        "daemon",
        "runs",
        "check",
        "logs",
        "completions",
        "man",
    ] {
        options(&[cmd, "--help"]);
    }
    for (group, subs) in [
        ("audit", &["list", "show", "verify", "head", "export"][..]),
        ("backup", &["list", "show", "restore"]),
        ("lock", &["list", "break"]),
        ("schedule", &["list", "next"]),
        ("lab", &["up", "status", "down", "break", "restart"]),
        ("inventory", &["discover"]),
        ("config", &["check"]),
    ] {
        for sub in subs {
            options(&[group, sub, "--help"]);
        }
    }
    // An option the command does not take is refused by name, exit 2.
    let (_, err, code) = text(&remedy(&["approve", "last", "--yes"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
    // Options before the command's name mean what they meant.
    let before = remedy(&["-o", "json", "list"]);
    let after = remedy(&["list", "-o", "json"]);
    assert_eq!(before.status.code(), Some(0));
    assert_eq!(before.stdout, after.stdout);
    assert!(String::from_utf8_lossy(&after.stdout).starts_with('['));
}

/// Issue 19, item 4: `remedy completions bash`, sourced in a real bash,
/// completes subcommands, runbook names, the inventory's hosts and groups
/// (as typed with -i, or the default inventory) and a runbook's params, by
/// calling remedy back the way bash's `complete -F` does.
#[test]
fn issue_19_bash_completes_runbooks_hosts_and_params() {
    let m = Masters::new();
    let script = r#"
set -u
source <("$REMEDY" completions bash)
complete -p remedy
comp() {
    COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMP_TYPE=9; COMPREPLY=()
    _clap_complete_remedy remedy "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    echo "$(IFS=' '; echo "${COMPREPLY[*]:-}")"
}
comp remedy run cert-
comp remedy plan cert-renew -i "$INV" -l master-
comp remedy exec -i "$INV" 'master-1,!m'
comp remedy run manifest-edit -p re
comp remedy appr
cd "$(dirname "$INV")" && comp remedy check -l mas
"#;
    let out = Command::new("bash")
        .args(["-c", script])
        .env("REMEDY", env!("CARGO_BIN_EXE_remedy"))
        .env("INV", m.inventory())
        .env_remove("REMEDY_INVENTORY")
        .env("XDG_CONFIG_HOME", home())
        .env("REMEDY_HOME", home())
        .output()
        .unwrap();
    let (out, err, code) = text(&out);
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].contains("-F _clap_complete_remedy remedy"),
        "{out}"
    );
    assert_eq!(
        &lines[1..],
        [
            "cert-renew",
            "master-1 master-2",
            "master-1,!masters master-1,!master-1 master-1,!master-2",
            "resources= restart=",
            "approvals approve",
            // No -i: ./inventory.yaml, as a run would find it.
            "masters master-1 master-2",
        ],
        "{err}"
    );
}

/// Issue 19, item 4: zsh and fish (not installed here) get the same answers
/// through their scripts' calls, with descriptions.
#[test]
fn issue_19_zsh_and_fish_scripts_call_remedy_for_the_same_answers() {
    let m = Masters::new();
    let inv = m.inventory();
    let bin = env!("CARGO_BIN_EXE_remedy");
    for shell in ["zsh", "fish"] {
        let (script, err, code) = text(&remedy(&["completions", shell]));
        assert_eq!(code, 0, "{err}");
        assert!(
            script.contains(&format!("REMEDY_COMPLETE=\"{shell}\""))
                || script.contains(&format!("REMEDY_COMPLETE={shell} {bin}")),
            "{script}"
        );
    }
    let ask = |shell: &str, index: &str, words: &[&str]| {
        let out = Command::new(bin)
            .arg("--")
            .args(words)
            .env("REMEDY_COMPLETE", shell)
            .env("_CLAP_COMPLETE_INDEX", index)
            .env_remove("REMEDY_INVENTORY")
            .env("XDG_CONFIG_HOME", home())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        ask("zsh", "2", &["remedy", "run", "cert-"]),
        "cert-renew:built-in runbook"
    );
    let inv = inv.to_str().unwrap();
    assert_eq!(
        ask(
            "fish",
            "0",
            &["remedy", "plan", "cert-renew", "-i", inv, "-l", "master-"]
        ),
        "master-1\thost\nmaster-2\thost\n"
    );
}

/// Issue 19, item 4: man pages, for the whole tool and each command.
#[test]
fn issue_19_man_pages_for_remedy_and_each_command() {
    let (out, err, code) = text(&remedy(&["man"]));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(".TH remedy 1"), "{out}");
    assert!(out.contains(r"remedy\-run(1)"), "{out}");
    // The hidden options before a command's name are not documented.
    assert!(!out.contains(r"\-\-inventory"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let (_, err, code) = text(&remedy(&["man", "--dir", dir.path().to_str().unwrap()]));
    assert_eq!(code, 0, "{err}");
    for page in [
        "remedy.1",
        "remedy-run.1",
        "remedy-lab-up.1",
        "remedy-audit-show.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_default();
        assert!(text.contains(".SH"), "{page}: {text}");
    }
}

/// Issue 19, item 6: `remedy config check` reports every problem of a site
/// config at once, each at its file:line, with what to do.
#[test]
fn issue_19_config_check_locates_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let inv = Masters::new();
    let check = |yaml: &str| {
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, yaml).unwrap();
        text(&remedy_with_env(
            &["config", "check", "--config", path.to_str().unwrap()],
            &[("REMEDY_TEST_SET_SECRET", "s3cret")],
        ))
    };
    let good = format!(
        "groups:\n  sre: [alice, bob]\napproval:\n  approvers: [group:sre]\n  quorum: 2\nchat:\n  webhook_secret: env:REMEDY_TEST_SET_SECRET\n  notify:\n    - {{ type: slack, url: \"https://hooks.example.net/x\" }}\ndaemon:\n  schedules:\n    - name: nightly\n      cron: \"0 3 * * *\"\n      runbook: cert-renew\n      inventory: {}\n",
        inv.inventory().display()
    );
    let (out, err, code) = check(&good);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("ok  ")
            && out.contains("1 secret(s) resolved")
            && out.contains("daemon: 1 schedule(s)"),
        "{out}"
    );
    // A notifier URL that is no URL: located at that notifier.
    let (_, err, code) = check(&good.replace("https://hooks.example.net/x", "hooks.example.net"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("config.yaml:9:") && err.contains("chat.notify[0]"),
        "{err}"
    );
    // What only this environment tells, all at once, each at its line.
    let bad = good
        .replace("[group:sre]", "[group:oncall]")
        .replace("env:REMEDY_TEST_SET_SECRET", "env:REMEDY_TEST_UNSET_SECRET")
        .replace("runbook: cert-renew", "runbook: cert-renw");
    let (_, err, code) = check(&bad);
    assert_eq!(code, 2, "{err}");
    for (says, line) in [
        ("approver group `oncall` is not defined", "config.yaml:4:"),
        ("REMEDY_TEST_UNSET_SECRET is not set", "config.yaml:7:"),
        (
            "schedule `nightly`: no runbook named `cert-renw`",
            "config.yaml:12:",
        ),
    ] {
        let at = err.find(says).unwrap_or_else(|| panic!("{says}: {err}"));
        assert!(
            err[at..].lines().nth(1).unwrap_or("").contains(line),
            "{says} at {line}: {err}"
        );
    }
    assert!(err.contains("3 errors found"), "{err}");
    // Nothing to check: said, with where it looked.
    let (_, err, code) = text(&remedy_with_env(
        &["config", "check"],
        &[("REMEDY_HOME", dir.path().join("none").to_str().unwrap())],
    ));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no site config to check") && err.contains("none/config.yaml"),
        "{err}"
    );
}

/// Issue 19, item 6: without -i the inventory is found in the usual places,
/// and remedy says which it used; with none, it lists where it looked.
#[test]
fn issue_19_the_default_inventory_is_found_and_named() {
    let m = Masters::new();
    let config_home = tempfile::tempdir().unwrap();
    let run_in = |cwd: &Path, env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_remedy"));
        cmd.args(["plan", "manifest-edit", "-p", "set=--v=3", "-l", "master-1"])
            .current_dir(cwd)
            .env_remove("REMEDY_INVENTORY")
            .env("XDG_CONFIG_HOME", config_home.path())
            .env("REMEDY_HOME", home())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        text(&cmd.output().unwrap())
    };
    // ./inventory.yaml
    let (out, err, code) = run_in(m.dir.path(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains(
            "remedy: inventory ./inventory.yaml (in the current directory; -i PATH to use another)"
        ),
        "{err}"
    );
    // ~/.config/remedy/inventory.yaml, from anywhere else.
    let elsewhere = tempfile::tempdir().unwrap();
    let (_, err, code) = run_in(elsewhere.path(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no inventory given")
            && err.contains("./inventory.yaml")
            && err.contains(&format!(
                "{}/remedy/inventory.yaml",
                config_home.path().display()
            ))
            && err.contains("/etc/remedy/inventory.yaml"),
        "{err}"
    );
    std::fs::create_dir_all(config_home.path().join("remedy")).unwrap();
    std::fs::copy(
        m.inventory(),
        config_home.path().join("remedy/inventory.yaml"),
    )
    .unwrap();
    let (out, err, code) = run_in(elsewhere.path(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("remedy/inventory.yaml (your default;"),
        "{err}"
    );
    // REMEDY_INVENTORY wins over the files.
    let (_, err, code) = run_in(
        m.dir.path(),
        &[("REMEDY_INVENTORY", m.inventory().to_str().unwrap())],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("(from REMEDY_INVENTORY;"), "{err}");
}

/// Issue 19, item 8: `remedy runs last` and `remedy audit show last` name
/// the newest real run.
#[test]
fn issue_19_runs_last_and_audit_show_last() {
    let m = Masters::new();
    let h = tempfile::tempdir().unwrap();
    let env = [("REMEDY_HOME", h.path().to_str().unwrap())];
    let inv = m.inventory();
    let inv = inv.to_str().unwrap();
    let (_, err, code) = text(&remedy_with_env(&["runs", "last"], &env));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("run"), "{err}");
    for limit in ["master-1", "master-2"] {
        let args = [
            "run",
            "manifest-edit",
            "-i",
            inv,
            "-l",
            limit,
            "-p",
            "set=--v=3",
            "-p",
            "restart=false",
            "--yes",
        ];
        let (_, err, code) = text(&remedy_with_env(&args, &env));
        assert_eq!(code, 0, "{err}");
    }
    // A dry run after them is not `last`.
    let (_, err, code) = text(&remedy_with_env(
        &["plan", "manifest-edit", "-i", inv, "-p", "set=--v=4"],
        &env,
    ));
    assert_eq!(code, 0, "{err}");
    let last: serde_json::Value =
        serde_json::from_slice(&remedy_with_env(&["runs", "last", "-o", "json"], &env).stdout)
            .unwrap();
    assert_eq!(last["hosts"], serde_json::json!(["master-2"]), "{last}");
    assert_eq!(last["dry_run"], false, "{last}");
    let id = last["run_id"].as_str().unwrap();
    let (out, _, code) = text(&remedy_with_env(&["runs", "last"], &env));
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.contains(&format!("details: remedy audit show {id}")),
        "{out}"
    );
    let (out, err, code) = text(&remedy_with_env(&["audit", "show", "last"], &env));
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with(&format!("run {id}")), "{out}");
}

/// Issue 13, item 11: `-i lab` with the lab in another `--dir` said only
/// "no lab is up".
#[test]
fn issue_13_inventory_lab_names_the_default_dir_and_how_to_use_another() {
    let h = tempfile::tempdir().unwrap();
    let (_, err, code) = text(&remedy_with_env(
        &["plan", "cert-renew", "-i", "lab"],
        &[("REMEDY_HOME", h.path().to_str().unwrap())],
    ));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!(
            "no lab is up in the default directory {}/lab",
            h.path().display()
        )) && err.contains("--inventory DIR/inventory.yaml"),
        "{err}"
    );
}

/// Issue 13, item 11: `remedy show … | head -1` and `remedy lab down |
/// head` panicked (exit 101, a backtrace) when the reader closed the pipe.
/// Here the reader is gone before remedy writes a byte. Each command runs
/// twice: as a shell starts it, and with SIGPIPE blocked, as some CI
/// runners and service managers start their children (signal masks are
/// inherited across exec). Blocked, `remedy show` used to exit 0 with its
/// output silently lost (CI stop 24).
#[test]
fn issue_13_a_closed_pipe_ends_show_and_lab_down_without_a_panic() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let lab_dir = tempfile::tempdir().unwrap();
    let lab = lab_dir.path().display().to_string();
    for (args, block_sigpipe) in [
        vec!["show", "cert-renew"],
        vec!["audit", "list"],
        vec!["lab", "down", "--dir", &lab],
    ]
    .into_iter()
    .flat_map(|a| [(a.clone(), false), (a, true)])
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_remedy"));
        if block_sigpipe {
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, libc::SIGPIPE);
                    libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                    Ok(())
                });
            }
        }
        // The pipe's read end is closed before remedy starts: with
        // `Stdio::piped()` and a drop after spawn, a fast child could write
        // into the still-open pipe first and exit 0 (a flaky failure, CI
        // stop 24).
        let stdout = {
            use std::os::fd::{FromRawFd, OwnedFd};
            let mut fds = [0; 2];
            // SAFETY: pipe2 fills two fresh descriptors we then own.
            assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
            // SAFETY: as above; each is owned exactly once.
            let (read, write) =
                unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
            drop(read);
            write
        };
        let out = cmd
            .args(&args)
            .env("REMEDY_HOME", home())
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("panicked"),
            "{args:?} (SIGPIPE blocked: {block_sigpipe}): {stderr}"
        );
        // Reading commands end as cat does (SIGPIPE); lab down finishes.
        let expected = if args[0] == "lab" {
            (Some(0), None)
        } else {
            (None, Some(SIGPIPE))
        };
        assert_eq!(
            (out.status.code(), out.status.signal()),
            expected,
            "{args:?} (SIGPIPE blocked: {block_sigpipe}): {stderr}"
        );
    }
}

const SIGPIPE: i32 = 13;

#[test]
fn a_secret_given_literally_is_refused_and_not_echoed() {
    let m = Masters::new();
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("secret.yaml");
    std::fs::write(
        &rb,
        "runbook: secret\nsummary: s\ntargets: masters\nparams:\n  token: { type: secret }\nsteps:\n  - id: use\n    action: shell\n    with: { cmd: \"true\" }\n",
    )
    .unwrap();
    let inv = m.inventory();
    let (out, err, code) = text(&remedy(&[
        "plan",
        rb.to_str().unwrap(),
        "-i",
        inv.to_str().unwrap(),
        "-p",
        "token=hunter2-XYZ",
    ]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("given as a literal value"), "{err}");
    assert!(err.contains("env:VARIABLE"), "{err}");
    assert!(
        !err.contains("hunter2") && !out.contains("hunter2"),
        "{out}{err}"
    );
    let secret_file = dir.path().join("token");
    std::fs::write(&secret_file, "from-file-XYZ\n").unwrap();
    let arg = format!("token=file:{}", secret_file.display());
    let (out, err, code) = text(&remedy(&[
        "plan",
        rb.to_str().unwrap(),
        "-i",
        inv.to_str().unwrap(),
        "-p",
        &arg,
    ]));
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn secret_params_never_appear_in_plans_results_or_json() {
    let m = Masters::new();
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("secret.yaml");
    std::fs::write(
        &rb,
        "runbook: secret\nsummary: s\ntargets: masters\nparams:\n  token: { type: secret }\nsteps:\n  - id: use\n    action: shell\n    with: { cmd: \"echo ${params.token} > /dev/null\" }\n",
    )
    .unwrap();
    let inv = m.inventory();
    for args in [
        vec![
            "plan",
            rb.to_str().unwrap(),
            "-i",
            inv.to_str().unwrap(),
            "-p",
            "token=env:REMEDY_TEST_TOKEN",
        ],
        vec![
            "plan",
            rb.to_str().unwrap(),
            "-i",
            inv.to_str().unwrap(),
            "-p",
            "token=env:REMEDY_TEST_TOKEN",
            "-o",
            "json",
        ],
        vec![
            "run",
            rb.to_str().unwrap(),
            "-i",
            inv.to_str().unwrap(),
            "-p",
            "token=env:REMEDY_TEST_TOKEN",
            "--yes",
        ],
    ] {
        let (out, err, code) = text(&remedy_with_env(
            &args,
            &[("REMEDY_TEST_TOKEN", "hunter2-XYZ")],
        ));
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            !out.contains("hunter2") && !err.contains("hunter2"),
            "secret leaked:\n{out}\n{err}"
        );
        assert!(out.contains("«secret:token»"), "{out}");
    }
}

/// Issue 14 (7): a secret transformed by Rhai — upper-cased, reversed,
/// sliced, concatenated, through a script and a later step — appears in no
/// output and nowhere in the journal; it is shown as derived.
#[test]
fn issue_14_values_derived_from_secrets_are_redacted_too() {
    let m = Masters::new();
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let rb = dir.path().join("derived.yaml");
    std::fs::write(
        &rb,
        r#"runbook: derived
summary: s
targets: masters
params:
  token: { type: secret }
steps:
  - id: mix
    script: |
      let r = "";
      for c in params.token.chars() { r = c.to_string() + r; }
      #{ up: params.token.to_upper(), rev: r, slice: params.token.sub_string(2, 6), joined: "Bearer " + params.token }
  - id: show
    action: shell
    with: { cmd: "echo ${steps.mix.up} ${steps.mix.rev} ${steps.mix.slice.to_lower()} ${steps.mix.joined}", read_only: true }
  - id: write
    action: file.write
    with: { path: "${host.vars.kube_dir}/token.txt", content: "${params.token.to_upper() + \"-suffix\"}\n" }
"#,
    )
    .unwrap();
    let inv = m.inventory();
    let (rb, inv) = (rb.to_str().unwrap(), inv.to_str().unwrap());
    let env = [
        ("REMEDY_TEST_TOKEN", "hunter2-xyz"),
        ("REMEDY_HOME", home.path().to_str().unwrap()),
    ];
    let token = ["-p", "token=env:REMEDY_TEST_TOKEN"];
    let leaks = [
        "hunter2",
        "HUNTER2",
        "zyx-2retnuh",
        "nter",
        "NTER2-XYZ-suffix",
    ];
    let mut seen = String::new();
    for extra in [
        &["plan"][..],
        &["plan", "-o", "json"][..],
        &["run", "--yes"][..],
        &["run", "--yes", "-o", "json"][..],
    ] {
        let mut args = vec![extra[0], rb, "-i", inv];
        args.extend(token);
        args.extend(&extra[1..]);
        let (out, err, code) = text(&remedy_with_env(&args, &env));
        assert_eq!(code, 0, "{out}{err}");
        seen.push_str(&out);
        seen.push_str(&err);
    }
    let (export, _, _) = text(&remedy_with_env(&["audit", "export"], &env));
    seen.push_str(&export);
    for leak in leaks {
        assert!(!seen.contains(leak), "{leak} leaked:\n{seen}");
    }
    assert!(seen.contains("«secret:token, derived»"), "{seen}");
    // The host got the real values.
    assert_eq!(
        std::fs::read_to_string(m.dir.path().join("master-1/kubernetes/token.txt")).unwrap(),
        "HUNTER2-XYZ-suffix\n"
    );
}

/// A runbook over both masters that writes one file per host, then edits the
/// manifest: two changing steps, so a run can be cut off between them.
fn two_step_runbook(dir: &Path, flag: &str) -> PathBuf {
    let rb = dir.join("two-step.yaml");
    std::fs::write(
        &rb,
        format!(
            "runbook: two-step\nsummary: s\ntargets: masters\nstrategy: {{ serial: 1 }}\nsteps:\n  - id: note\n    action: file.write\n    with: {{ path: \"${{host.vars.kube_dir}}/note.txt\", content: \"hello\\n\" }}\n  - id: edit\n    action: file.edit\n    with:\n      path: \"${{host.vars.manifests_dir}}/kube-apiserver.yaml\"\n      set_flags: [\"{flag}\"]\n"
        ),
    )
    .unwrap();
    rb
}

#[test]
fn the_journal_records_runs_and_audit_verify_names_the_first_tampered_event() {
    let m = Masters::new();
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_str().unwrap();
    let env = [("REMEDY_HOME", h)];
    let rb = two_step_runbook(m.dir.path(), "--v=3");
    let rb = rb.to_str().unwrap();
    let inv = m.inventory();
    let inv = inv.to_str().unwrap();
    let (out, err, code) = text(&remedy_with_env(&["run", rb, "-i", inv, "--yes"], &env));
    assert_eq!(code, 0, "{out}{err}");
    let (out, _, code) = text(&remedy_with_env(&["runs"], &env));
    assert_eq!(code, 0);
    assert!(out.contains("two-step") && out.contains(" ok "), "{out}");
    // The REF column is the end of the id to type; it names this run.
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert!(out.starts_with("RUN") && row[0].ends_with(row[1]), "{out}");
    let (show, _, code) = text(&remedy_with_env(&["audit", "show", row[1]], &env));
    assert!(code == 0 && show.contains(row[0]), "{show}");
    let (out, _, code) = text(&remedy_with_env(&["audit", "verify"], &env));
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: "), "{out}");
    // The timeline shows who, the diff and the backups.
    let runs: serde_json::Value =
        serde_json::from_str(&text(&remedy_with_env(&["runs", "-o", "json"], &env)).0).unwrap();
    let run = runs[0]["run_id"].as_str().unwrap().to_string();
    let (show, _, _) = text(&remedy_with_env(&["audit", "show", &run[..13]], &env));
    assert!(
        show.contains("+    - --v=3")
            && show.contains("backup of ")
            && show.contains("by        root"),
        "{show}"
    );
    // Export is one JSON object per line, in chain order.
    let (jsonl, _, _) = text(&remedy_with_env(
        &["audit", "export", "--format", "jsonl"],
        &env,
    ));
    let ids: Vec<i64> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert!(
        ids.len() > 10 && ids.windows(2).all(|w| w[1] == w[0] + 1),
        "{ids:?}"
    );

    let db = home.path().join("remedy.db");
    let tamper = |sql: &str| {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(sql).unwrap();
    };
    let verify = || {
        let (out, err, code) = text(&remedy_with_env(&["audit", "verify"], &env));
        assert_eq!(code, 1, "{out}{err}");
        out
    };
    let backup = |name: &str| {
        std::fs::copy(&db, home.path().join(name)).unwrap();
    };
    let restore = |name: &str| {
        std::fs::copy(home.path().join(name), &db).unwrap();
        let _ = std::fs::remove_file(home.path().join("remedy.db-wal"));
        let _ = std::fs::remove_file(home.path().join("remedy.db-shm"));
    };
    // Checkpoint so the copy holds everything, then keep a pristine copy.
    tamper("PRAGMA wal_checkpoint(TRUNCATE);");
    backup("pristine.db");

    // An edited event: someone else's name on it.
    tamper("UPDATE events SET actor = 'mallory' WHERE id = 7;");
    let out = verify();
    assert!(out.starts_with("TAMPERED: event 7 "), "{out}");
    assert!(out.contains("edited"), "{out}");
    // Issue 14, item 9: the event is described once, not twice.
    assert_eq!(
        out.lines().next().unwrap().matches("event 7 (run").count(),
        1,
        "{out}"
    );
    restore("pristine.db");
    assert_eq!(text(&remedy_with_env(&["audit", "verify"], &env)).2, 0);

    // A deleted event.
    tamper("DELETE FROM events WHERE id = 5;");
    let out = verify();
    assert!(
        out.starts_with("TAMPERED: event 6 ") && out.contains("event 5"),
        "{out}"
    );
    restore("pristine.db");

    // Two events swapped (reordered).
    tamper("UPDATE events SET id = -1 WHERE id = 8; UPDATE events SET id = 8 WHERE id = 9; UPDATE events SET id = 9 WHERE id = -1;");
    let out = verify();
    assert!(
        out.starts_with("TAMPERED: event 8 ") && out.contains("reordered"),
        "{out}"
    );
    restore("pristine.db");

    // The last events cut off: no row to describe, so no empty one either.
    tamper("DELETE FROM events WHERE id = (SELECT max(id) FROM events);");
    let out = verify();
    assert!(out.starts_with("TAMPERED: events after "), "{out}");
    assert!(out.contains("deleted") && !out.contains("seq 0"), "{out}");
}

#[test]
fn resume_finishes_a_killed_run_and_refuses_a_changed_runbook_unless_forced() {
    use std::os::unix::process::ExitStatusExt;
    let m = Masters::new();
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_str().unwrap();
    let env = [("REMEDY_HOME", h)];
    let rb_path = two_step_runbook(m.dir.path(), "--v=4");
    let rb = rb_path.to_str().unwrap();
    let inv = m.inventory();
    let inv = inv.to_str().unwrap();
    let before = sha(&m.manifest("master-2"));
    let out = remedy_with_env(
        &["run", rb, "-i", inv, "--yes"],
        &[
            ("REMEDY_HOME", h),
            ("REMEDY_CRASH_AFTER", "step_intent@master-2/edit"),
        ],
    );
    assert_eq!(out.status.signal(), Some(9));
    assert!(std::fs::read_to_string(m.manifest("master-1"))
        .unwrap()
        .contains("--v=4"));
    assert_eq!(
        sha(&m.manifest("master-2")),
        before,
        "killed before the edit"
    );

    let runs: serde_json::Value =
        serde_json::from_str(&text(&remedy_with_env(&["runs", "-o", "json"], &env)).0).unwrap();
    let run = runs[0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(runs[0]["status"], "interrupted");
    let (out, _, _) = text(&remedy_with_env(&["lock", "list"], &env));
    assert!(out.contains("master-1@") && out.contains("STALE"), "{out}");

    // Issue 14 (5a): the run's params edited in the journal: resume refuses,
    // naming the field, and changes nothing; audit verify names it too.
    let db = rusqlite::Connection::open(home.path().join("remedy.db")).unwrap();
    let params: String = db
        .query_row("SELECT params FROM runs WHERE run_id = ?1", [&run], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute(
        "UPDATE runs SET params = '[[\"set\",\"--anonymous-auth=true\"]]' WHERE run_id = ?1",
        [&run],
    )
    .unwrap();
    let (out, err, code) = text(&remedy_with_env(&["resume", &run, "--yes"], &env));
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("`params` was edited outside remedy") && err.contains("--anonymous-auth=true"),
        "{err}"
    );
    assert_eq!(sha(&m.manifest("master-2")), before);
    let (out, _, code) = text(&remedy_with_env(&["audit", "verify"], &env));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.starts_with(&format!("TAMPERED: run {run}: `params` was edited")),
        "{out}"
    );
    db.execute(
        "UPDATE runs SET params = ?2 WHERE run_id = ?1",
        [&run, &params],
    )
    .unwrap();

    // The runbook changed: refused, nothing done.
    std::fs::write(
        &rb_path,
        std::fs::read_to_string(&rb_path)
            .unwrap()
            .replace("hello", "bye"),
    )
    .unwrap();
    let (out, err, code) = text(&remedy_with_env(&["resume", &run, "--yes"], &env));
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("changed since run") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(sha(&m.manifest("master-2")), before);

    let (out, err, code) = text(&remedy_with_env(
        &["resume", &run, "--yes", "--force"],
        &env,
    ));
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("1 host(s) finished"), "{err}");
    assert!(std::fs::read_to_string(m.manifest("master-2"))
        .unwrap()
        .contains("--v=4"));
    // master-1 was finished before the kill: its note keeps the old content;
    // master-2's note step had completed too; only the edit ran again.
    assert_eq!(
        std::fs::read_to_string(m.dir.path().join("master-1/kubernetes/note.txt")).unwrap(),
        "hello\n"
    );
    let (out, _, code) = text(&remedy_with_env(&["audit", "verify"], &env));
    assert_eq!(code, 0, "{out}");
    let (out, _, _) = text(&remedy_with_env(&["lock", "list"], &env));
    assert!(out.contains("No locks held"), "{out}");
    // Nothing left to resume.
    let (_, err, code) = text(&remedy_with_env(&["resume", &run, "--yes"], &env));
    assert_eq!(code, 2);
    assert!(err.contains("nothing left to resume"), "{err}");
}

#[test]
fn resume_refuses_a_kubeconfig_its_api_steps_could_not_use_before_it_changes_anything() {
    use std::os::unix::process::ExitStatusExt;
    let m = Masters::new();
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_str().unwrap();
    let rb = m.dir.path().join("note-then-api.yaml");
    std::fs::write(
        &rb,
        "runbook: note-then-api\nsummary: s\ntargets: masters\nstrategy: { serial: 1 }\nsteps:\n  - id: note\n    action: file.write\n    with: { path: \"${host.vars.kube_dir}/note.txt\", content: \"hello\\n\" }\n  - id: health\n    action: api.health\n",
    )
    .unwrap();
    let (rb, inv) = (rb.to_str().unwrap(), m.inventory());
    let inv = inv.to_str().unwrap();
    let out = remedy_with_env(
        &["run", rb, "-i", inv, "--yes"],
        &[("REMEDY_HOME", h), ("REMEDY_CRASH_AFTER", "run_started")],
    );
    assert_eq!(out.status.signal(), Some(9));
    let runs: serde_json::Value = serde_json::from_str(
        &text(&remedy_with_env(
            &["runs", "-o", "json"],
            &[("REMEDY_HOME", h)],
        ))
        .0,
    )
    .unwrap();
    let run = runs[0]["run_id"].as_str().unwrap().to_string();
    let missing = home.path().join("no-such-kubeconfig");
    let (out, err, code) = text(&remedy_with_env(
        &["resume", &run, "--yes"],
        &[
            ("REMEDY_HOME", h),
            ("KUBECONFIG", missing.to_str().unwrap()),
        ],
    ));
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("the kubeconfig from KUBECONFIG") && err.contains("unset KUBECONFIG"),
        "{err}"
    );
    let note = m.dir.path().join("master-1/kubernetes/note.txt");
    assert!(!note.exists(), "resume changed master-1 before refusing");
}

#[test]
fn a_stale_lock_can_be_broken_and_the_break_is_journaled() {
    use std::os::unix::process::ExitStatusExt;
    let m = Masters::new();
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_str().unwrap();
    let env = [("REMEDY_HOME", h)];
    let rb = two_step_runbook(m.dir.path(), "--v=5");
    let rb = rb.to_str().unwrap();
    let inv = m.inventory();
    let inv = inv.to_str().unwrap();
    let out = remedy_with_env(
        &["run", rb, "-i", inv, "--yes"],
        &[("REMEDY_HOME", h), ("REMEDY_CRASH_AFTER", "run_started")],
    );
    assert_eq!(out.status.signal(), Some(9));
    let (_, err, code) = text(&remedy_with_env(&["run", rb, "-i", inv, "--yes"], &env));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("is locked by run") && err.contains("remedy lock break"),
        "{err}"
    );
    for host in ["master-1", "master-2"] {
        let (out, err, code) = text(&remedy_with_env(
            &[
                "lock",
                "break",
                host,
                "--reason",
                "crashed jump host, checked by hand",
            ],
            &env,
        ));
        assert_eq!(code, 0, "{out}{err}");
    }
    let before = sha(&m.manifest("master-1"));
    let (out, err, code) = text(&remedy_with_env(&["run", rb, "-i", inv, "--yes"], &env));
    assert_eq!(code, 0, "{out}{err}");
    // The run after the break did its work on both masters.
    assert_ne!(sha(&m.manifest("master-1")), before);
    for host in ["master-1", "master-2"] {
        let manifest = std::fs::read_to_string(m.manifest(host)).unwrap();
        assert!(manifest.contains("    - --v=5\n"), "{host}:\n{manifest}");
        assert_eq!(
            std::fs::read_to_string(m.dir.path().join(host).join("kubernetes/note.txt")).unwrap(),
            "hello\n",
            "{host}"
        );
    }
    let (export, _, _) = text(&remedy_with_env(&["audit", "export"], &env));
    assert_eq!(export.matches("\"lock_broken\"").count(), 2, "{export}");
    assert!(export.contains("checked by hand"));
}

#[test]
fn a_run_that_finds_a_manifest_left_in_staging_fails_loudly() {
    let m = Masters::new();
    let staging = m.dir.path().join("master-1/staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("kube-scheduler.yaml"), "kind: Pod\n").unwrap();
    let rb = two_step_runbook(m.dir.path(), "--v=6");
    let (out, err, code) = text(&remedy(&[
        "run",
        rb.to_str().unwrap(),
        "-i",
        m.inventory().to_str().unwrap(),
        "--yes",
    ]));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("static-pod manifest(s) left outside")
            && err.contains("kube-scheduler.yaml")
            && err.contains(" -l master-1 -p pods=kube-scheduler` — or by hand: on master-1: mv "),
        "{err}"
    );
    // Issue 13 (5): reported first, before anything runs.
    let warned = err.find("warning: master-1: static-pod manifest(s) left outside");
    assert!(
        warned.is_some_and(|w| w < err.find("batch 1").unwrap_or(0)),
        "{err}"
    );
}

/// Issue 14, item 9: a Rhai error at run time said "error: error: evaluating …".
#[test]
fn a_rhai_error_at_run_time_is_shown_once_with_its_place() {
    let m = Masters::new();
    let dir = tempfile::tempdir().unwrap();
    let rb = dir.path().join("div.yaml");
    std::fs::write(
        &rb,
        "runbook: div\nsummary: s\ntargets: masters\nsteps:\n  - id: probe\n    action: shell\n    with: { cmd: \"echo 12\", read_only: true }\n  - id: div\n    when: 10 / (steps.probe.stdout.len() - 3) > 1\n    action: shell\n    with: { cmd: \"true\" }\n",
    )
    .unwrap();
    let (out, err, code) = text(&remedy(&[
        "plan",
        rb.to_str().unwrap(),
        "-i",
        m.inventory().to_str().unwrap(),
        "-l",
        "master-1",
    ]));
    assert_eq!(code, 1, "{out}{err}");
    let expected = format!(
        "            error: evaluating `10 / (steps.probe.stdout.len() - 3) > 1`: Division by zero: 10 / 0\n             --> {}:9:11\n",
        rb.display()
    );
    assert!(out.contains(&expected), "{out}");
}

/// A tmpfs of a few MiB on a directory of its own, for a full disk under
/// REMEDY_HOME; unmounted when dropped, even when the test fails.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "remedy-test",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).output();
    }
}

/// Issue 14 (6): the disk under the journal fills up during a run. The
/// failing step, the rollback and the run's end are still recorded (the
/// journal's reserve is given up for them), the locks are released, stderr
/// says what happened; the next run refuses to start until there is room.
#[test]
fn issue_14_a_disk_filling_up_mid_run_still_records_the_rollback() {
    let m = Masters::new();
    let disk = SmallDisk::new("16m");
    let home = disk.path().to_str().unwrap();
    let env = [("REMEDY_HOME", home)];
    let rb = m.dir.path().join("fill.yaml");
    std::fs::write(
        &rb,
        format!(
            "runbook: fill\nsummary: s\ntargets: masters\non_failure: rollback\nsteps:\n  - id: note\n    action: file.write\n    with: {{ path: \"${{host.vars.kube_dir}}/note.txt\", content: \"hello\\n\" }}\n  - id: fill\n    action: shell\n    with: {{ cmd: \"dd if=/dev/zero of={home}/fill bs=64k 2>/dev/null; exit 1\" }}\n"
        ),
    )
    .unwrap();
    let (rb, inv) = (rb.to_str().unwrap(), m.inventory());
    let inv = inv.to_str().unwrap();
    let note = m.dir.path().join("master-1/kubernetes/note.txt");
    let run = ["run", rb, "-i", inv, "--limit", "master-1", "--yes"];
    let (out, err, code) = text(&remedy_with_env(&run, &env));
    assert_eq!(code, 1, "{out}{err}");
    assert!(!note.exists(), "rolled back on the host");
    assert!(out.contains("master-1: failed, rolled back"), "{out}");
    assert!(err.contains("filled up during this run"), "{err}");
    assert!(!err.contains("NOT RECORDED"), "{err}");
    let filled = std::fs::metadata(disk.path().join("fill")).unwrap().len();
    assert!(filled > 2 << 20, "dd filled the disk ({filled} bytes)");
    // Recorded: the failure, the rollback, the end; no lock left behind.
    let runs: serde_json::Value =
        serde_json::from_str(&text(&remedy_with_env(&["runs", "-o", "json"], &env)).0).unwrap();
    assert_eq!(runs[0]["status"], "failed", "{runs}");
    let id = runs[0]["run_id"].as_str().unwrap();
    let (show, err, _) = text(&remedy_with_env(&["audit", "show", id], &env));
    assert!(
        show.contains("fill: FAILED") && show.contains("note: rolled back: restored"),
        "{show}{err}"
    );
    let (locks, _, _) = text(&remedy_with_env(&["lock", "list"], &env));
    assert!(locks.contains("No locks held."), "{locks}");
    assert_eq!(text(&remedy_with_env(&["audit", "verify"], &env)).2, 0);
    // No room for the reserve now: the next run does not start.
    let (out, err, code) = text(&remedy_with_env(&run, &env));
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        (err.contains("cannot keep 8 MiB free beside the journal")
            || err.contains("KiB are free beside the journal"))
            && err.contains("Nothing was changed"),
        "{err}"
    );
    assert!(!note.exists());
    // With room again, it does.
    std::fs::remove_file(disk.path().join("fill")).unwrap();
    std::fs::write(
        rb,
        std::fs::read_to_string(rb).unwrap().replace(
            "; exit 1",
            "; rm -f -- '{home}/fill'".replace("{home}", home).as_str(),
        ),
    )
    .unwrap();
    let (out, err, code) = text(&remedy_with_env(&run, &env));
    assert_eq!(code, 0, "{out}{err}");
    assert!(note.exists());
}

/// Issue 14 (4): `remedy validate` accepts a param inserted as raw shell
/// text but warns where, in text and in JSON.
#[test]
fn issue_14_validate_warns_where_a_param_goes_into_a_command_as_shell_text() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("raw.yaml");
    std::fs::write(
        &f,
        "runbook: raw\nsummary: s\ntargets: masters\nparams:\n  x: { type: string }\nsteps:\n  - id: a\n    action: shell\n    with: { cmd: \"echo ${params.x} ${shell_raw(params.x)}\" }\n",
    )
    .unwrap();
    let (out, err, code) = text(&remedy(&["validate", f.to_str().unwrap()]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok      "), "{out}");
    assert!(
        err.starts_with("warning: `cmd` inserts params.x as raw shell text")
            && err.contains(":9:38"),
        "{err}"
    );
    let (out, _, _) = text(&remedy(&["validate", f.to_str().unwrap(), "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["ok"], true);
    assert!(v[0]["warnings"][0]["message"]
        .as_str()
        .unwrap()
        .contains("params.x"));
}

/// `remedy check` with nothing to check is invalid input (exit 2), said
/// before any connection: no master in the inventory, or none matching -l.
#[test]
fn check_without_masters_says_so_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.yaml");
    std::fs::write(
        &inv,
        "hosts:\n  lb-1: { address: 127.0.0.1, groups: [lbs] }\n  master-1: { address: 127.0.0.1, groups: [masters] }\n",
    )
    .unwrap();
    let inv = inv.to_str().unwrap();
    let (_, err, code) = text(&remedy(&["check", "-i", inv, "-l", "lb-1"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no masters to check") && err.contains("matching --limit"),
        "{err}"
    );
    let (_, err, code) = text(&remedy(&["check"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no inventory given"), "{err}");
}

/// Issue 15: `backup restore` acts on what the journal recorded, nothing
/// else: an unknown ID and a --limit or --param (which would redirect it)
/// are refused before anything runs.
#[test]
fn backup_restore_refuses_an_unknown_id_and_options_that_would_redirect_it() {
    let m = Masters::new();
    let home = tempfile::tempdir().unwrap();
    let env = [("REMEDY_HOME", home.path().to_str().unwrap())];
    let inv = m.inventory();
    let inv = inv.to_str().unwrap();
    let out = remedy_with_env(
        &[
            "run",
            "manifest-edit",
            "-i",
            inv,
            "-l",
            "master-1",
            "-p",
            "set=--v=3",
            "-p",
            "restart=false",
            "--yes",
        ],
        &env,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value =
        serde_json::from_slice(&remedy_with_env(&["backup", "list", "-o", "json"], &env).stdout)
            .unwrap();
    let id = listed[0]["id"].as_i64().unwrap().to_string();
    let edited = std::fs::read(m.manifest("master-1")).unwrap();
    for (args, says) in [
        (vec!["backup", "restore", "999999"], "no backup 999999"),
        (
            vec!["backup", "restore", &id, "-l", "master-2"],
            "takes no --limit",
        ),
        (
            vec!["backup", "restore", &id, "-p", "path=/etc/passwd"],
            "takes no --limit, --param",
        ),
    ] {
        let (_, stderr, code) = text(&remedy_with_env(&args, &env));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert_eq!(std::fs::read(m.manifest("master-1")).unwrap(), edited);
    // The same ID, as recorded, puts the original back.
    let (stdout, stderr, code) = text(&remedy_with_env(&["backup", "restore", &id, "--yes"], &env));
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(
        std::fs::read_to_string(m.manifest("master-1")).unwrap(),
        MANIFEST
    );
}

/// Issue 16 (leftovers, item 2): a KUBECONFIG in the environment switches a
/// run's API steps to it; the plan says so (header and JSON), and so does
/// the journal's run start, naming what named it (`KUBECONFIG` or
/// `--kubeconfig`). One that cannot be read fails before anything runs,
/// naming the variable; a runbook without API steps neither uses nor checks it.
#[test]
fn issue_16_a_kubeconfig_from_the_environment_is_named_in_the_plan_the_journal_and_json() {
    let m = Masters::new();
    let dir = m.dir.path();
    let own_home = dir.join("remedy-home");
    let kc = dir.join("kubeconfig.yaml");
    // Valid, for a server nothing answers on.
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\n    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==\ncontexts:\n- name: ctx\n  context: { cluster: c, user: u }\ncurrent-context: ctx\nusers:\n- name: u\n  user: { token: abc }\n",
    )
    .unwrap();
    let rb = dir.join("api.yaml");
    std::fs::write(
        &rb,
        "runbook: api\nsummary: read one object\ntargets: masters\nsteps:\n  - id: get\n    name: get\n    action: kube.get\n    timeout: 2s\n    with: { kind: ConfigMap, namespace: default, name: x }\n",
    )
    .unwrap();
    let inv = m.inventory();
    let (inv, rb, kc_s) = (
        inv.to_str().unwrap(),
        rb.to_str().unwrap(),
        kc.to_str().unwrap(),
    );
    let env = [
        ("KUBECONFIG", kc_s),
        ("REMEDY_HOME", own_home.to_str().unwrap()),
    ];

    let (out, err, _) = text(&remedy_with_env(&["plan", rb, "-i", inv], &env));
    assert!(
        out.contains(&format!(
            "kubeconfig {kc_s} (from KUBECONFIG): the API steps use it, not the masters' admin.conf\n"
        )),
        "{out}{err}"
    );
    let (out, err, _) = text(&remedy_with_env(
        &["plan", rb, "-i", inv, "-o", "json"],
        &env,
    ));
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    assert_eq!(
        v["kubeconfig"],
        serde_json::json!({ "path": kc_s, "from": "KUBECONFIG" })
    );
    let run = v["run_id"].as_str().unwrap();
    let (show, err, code) = text(&remedy_with_env(&["audit", "show", run], &env));
    assert_eq!(code, 0, "{show}{err}");
    let started = show
        .lines()
        .find(|l| l.contains("run: run started by"))
        .unwrap_or_else(|| panic!("no run start in:\n{show}"));
    assert!(
        started.ends_with(&format!(
            " on master-1, master-2, the API through the kubeconfig {kc_s} (from KUBECONFIG)"
        )),
        "{show}"
    );

    // --kubeconfig wins over KUBECONFIG, and says so.
    let (out, err, _) = text(&remedy_with_env(
        &[
            "plan",
            rb,
            "-i",
            inv,
            "--kubeconfig",
            kc_s,
            "--context",
            "ctx",
        ],
        &[("KUBECONFIG", "/nonexistent/kubeconfig")],
    ));
    assert!(
        out.contains(&format!(
            "kubeconfig {kc_s} (from --kubeconfig, context ctx): the API steps use it"
        )),
        "{out}{err}"
    );

    // One that cannot be read: refused before anything runs, naming the variable.
    let missing = dir.join("missing.yaml");
    let missing_s = missing.to_str().unwrap();
    let (out, err, code) = text(&remedy_with_env(
        &["plan", rb, "-i", inv],
        &[("KUBECONFIG", missing_s)],
    ));
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains(&format!(
            "error: the kubeconfig from KUBECONFIG ({missing_s}) cannot be used: {missing_s}: cannot read it"
        )) && err.contains("unset KUBECONFIG to reach the API through each master's admin.conf over SSH"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");

    // A runbook without API steps neither names nor reads it.
    let (out, err, code) = text(&remedy_with_env(
        &["plan", "manifest-edit", "-i", inv, "-p", "set=--v=3"],
        &[("KUBECONFIG", missing_s)],
    ));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("kubeconfig"), "{out}");
}
