//! The binary on hostile and careless input files (issue 14, items 1–3): an
//! alias bomb, files with thousands of errors on one line, files too large,
//! and files that cannot be read at all — through `validate`, `--inventory`
//! and `--params-file`. Each run is bounded (2 GiB of address space, 60 s),
//! so a regression fails the test instead of taking the machine down.

use std::path::Path;
use std::process::{Command, Stdio};

/// `remedy ARGS` under a memory and time bound: (stdout, stderr, exit code).
fn remedy(args: &[&str]) -> (String, String, i32) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .args(["60", "sh", "-c", "ulimit -v 2097152; exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_remedy"))
        .args(args)
        .env_remove("REMEDY_INVENTORY")
        .env("NO_COLOR", "1")
        .env("REMEDY_HOME", home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// Nine levels of nine aliases: 9^10 values once expanded, in 306 bytes.
fn alias_bomb(first_line: &str) -> String {
    let mut text = format!("{first_line}a: &a [x,x,x,x,x,x,x,x,x]\n");
    for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
        let refs = vec![format!("*{prev}"); 9].join(",");
        text.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    text
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

const INVENTORY: &str = "hosts:\n  m1: { transport: local, groups: [masters] }\n";

#[test]
fn issue_14_an_alias_bomb_is_refused_at_its_line_in_runbooks_inventories_and_params_files() {
    let dir = tempfile::tempdir().unwrap();
    let runbook = write(dir.path(), "bomb.yaml", alias_bomb(""));
    let inventory = write(dir.path(), "inv.yaml", alias_bomb("hosts: {}\n"));
    let good_inventory = write(dir.path(), "good.yaml", INVENTORY);
    let refusal = "error: aliases would copy more than 100000 values into this document (this one alone copies 66430); refused so that a few lines cannot take all memory";

    let (_, err, code) = remedy(&["validate", &runbook]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(refusal), "{err}");
    assert!(err.contains(&format!("--> {runbook}:6:8")), "{err}");

    let (_, err, code) = remedy(&["validate", "-i", &inventory, "builtin:lb-drain"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("--> {inventory}:7:8")), "{err}");

    let (_, err, code) = remedy(&[
        "plan",
        "lb-drain",
        "-i",
        &good_inventory,
        "--params-file",
        &runbook,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(refusal) && err.contains(&format!("--> {runbook}:6:8")),
        "{err}"
    );
}

#[test]
fn issue_14_thousands_of_errors_on_one_long_line_print_50_in_windows() {
    let dir = tempfile::tempdir().unwrap();
    let steps: Vec<String> = (0..30_000)
        .map(|i| format!("{{id: s{i}, action: nope}}"))
        .collect();
    let text = format!(
        "runbook: x\nsummary: s\ntargets: m\nsteps: [{}]\n",
        steps.join(",")
    );
    assert!(text.len() > 700_000);
    let file = write(dir.path(), "many.yaml", text);
    let (_, err, code) = remedy(&["validate", &file]);
    assert_eq!(code, 2);
    assert_eq!(err.matches("error: unknown action `nope`").count(), 50);
    assert!(err.contains("… and 29950 more not shown"), "{err}");
    assert!(
        err.ends_with("30000 errors found; nothing was run.\n"),
        "{}",
        &err[err.len() - 200..]
    );
    // Each quoted line is a window of at most 160 characters (plus `…`s).
    let widest = err.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest < 200, "a line of {widest} characters");
    assert!(err.len() < 40_000, "{} bytes of errors", err.len());
}

#[test]
fn issue_14_a_file_over_4_mib_is_refused_without_reading_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let big = write(dir.path(), "big.yaml", "# padding\n".repeat(500_000));
    let (_, err, code) = remedy(&["validate", &big]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("error: runbook {big} is 5000000 bytes; remedy reads runbooks, inventories and params files of at most 4 MiB")),
        "{err}"
    );
    // A device that never ends is read only up to the limit.
    let good = write(dir.path(), "good.yaml", INVENTORY);
    let (_, err, code) = remedy(&[
        "plan",
        "lb-drain",
        "-i",
        &good,
        "--params-file",
        "/dev/zero",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("params file /dev/zero is more than 4194304 bytes"),
        "{err}"
    );
}

#[test]
fn issue_14_unreadable_files_say_what_is_wrong_and_where_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let latin1 = write(
        dir.path(),
        "latin1.yaml",
        b"runbook: x\nsummary: s\ntargets: m\nsteps:\n  - { id: a, action: shell, with: { cmd: \"caf\xe9\" } }\n",
    );
    let (out, err, code) = remedy(&["validate", &latin1]);
    assert_eq!(code, 2);
    assert!(
        out.contains(&format!("invalid {latin1} (1 error)")),
        "{out}"
    );
    assert_eq!(
        err,
        format!(
            "error: the file is not valid UTF-8: invalid byte 0xe9 at byte offset 85 (line 5, column 46)\n --> {latin1}:5:46\n  |\n5 |   - {{ id: a, action: shell, with: {{ cmd: \"caf\u{fffd}\" }} }}\n  |                                              ^\n  = hint: save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 FILE`); `xxd -s OFFSET -l 16 FILE` shows the bytes\n\n1 error found; nothing was run.\n"
        )
    );

    let missing = dir.path().join("nope.yaml").display().to_string();
    let (_, err, code) = remedy(&["validate", &missing]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        format!("error: runbook {missing} does not exist\n  = hint: check the path\n\n1 error found; nothing was run.\n")
    );

    let d = dir.path().display().to_string();
    let (_, err, code) = remedy(&["validate", &d]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(&format!("error: runbook {d} is a directory, not a file\n  = hint: name a .yaml file in it, or pass `--dir {d}` to use the runbooks it holds\n")),
        "{err}"
    );
    let (_, err, code) = remedy(&["plan", "lb-drain", "-i", &d]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(&format!(
            "error: inventory {d} is a directory, not a file\n"
        )),
        "{err}"
    );
    let (_, err, code) = remedy(&["run", &missing]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(&format!("error: runbook {missing} does not exist\n")),
        "{err}"
    );

    // The site config is read the same way; the daemon's commands said
    // "error: error: …" for it (issue 14, item 9).
    let (_, err, code) = remedy(&["schedule", "list", "--config", &latin1]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: the file is not valid UTF-8: invalid byte 0xe9"),
        "{err}"
    );
    let (_, err, code) = remedy(&["schedule", "list", "--config", &missing]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(&format!("error: site config {missing} does not exist\n")),
        "{err}"
    );

    let (out, _, code) = remedy(&["validate", "-o", "json", &latin1, &missing]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["errors"][0]["location"], format!("{latin1}:5:46"));
    assert_eq!(
        v[1]["errors"][0]["message"],
        format!("runbook {missing} does not exist")
    );
    assert_eq!(v[1]["errors"][0]["location"], missing);
}
