//! `remedy schema runbook|inventory|config` checked by an independent
//! validator (issue 19, item 5): check-jsonschema (Python's `jsonschema`,
//! with its own YAML parser, ruamel.yaml) must accept every built-in
//! runbook, every example file and every whole runbook, inventory and site
//! config in the docs, and reject the broken runbooks of the compiler's
//! error-message tests that a schema can see (wrong keys, types, names,
//! missing arguments) — and broken inventories and site configs.
//!
//! `scripts/setup` installs check-jsonschema into
//! `~/.cache/remedy-schema-venv`; `REMEDY_CHECK_JSONSCHEMA` names another.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The broken runbooks of `dsl/tests/error_messages.rs` that only the
/// compiler can see (references between steps, Rhai, `${}` contents,
/// rules across values), with why; every other one must fail the schema.
const ONLY_THE_COMPILER_SEES: &[(&str, &str)] = &[
    (
        "duplicate_step_id",
        "uniqueness of a field across list items",
    ),
    ("reference_to_later_step", "a reference between steps"),
    (
        "reference_to_unknown_step_suggests",
        "a reference between steps",
    ),
    ("rhai_syntax_error_in_when", "Rhai syntax"),
    ("undefined_variable_in_when", "Rhai variables"),
    (
        "interpolation_of_undeclared_param",
        "a reference to a param",
    ),
    (
        "unknown_result_field_suggests",
        "a reference to a step's result",
    ),
    (
        "result_outside_until_or_assert",
        "where `result` may be read in Rhai",
    ),
    ("unclosed_interpolation", "`${}` syntax inside a string"),
    ("default_not_in_enum", "a default among its own enum values"),
    (
        "quorum_that_cannot_be_met",
        "a count against a list's length",
    ),
    ("eval_is_not_allowed", "Rhai functions"),
    ("unknown_host_field_suggests", "Rhai: `host.<field>`"),
    (
        "probe_result_has_only_rc_stdout_stderr",
        "Rhai: `result.<field>`",
    ),
];

/// Broken inventories and site configs: (name, kind, YAML, the path the
/// validator must name).
const BROKEN_OTHERS: &[(&str, &str, &str, &str)] = &[
    (
        "inventory_without_hosts",
        "inventory",
        "vars: { kube_dir: /etc/kubernetes }\n",
        "$",
    ),
    (
        "inventory_port_out_of_range",
        "inventory",
        "hosts:\n  master-1: { address: 10.0.0.11, port: 70000 }\n",
        "$.hosts['master-1'].port",
    ),
    (
        "inventory_unknown_host_key",
        "inventory",
        "hosts:\n  master-1: { adress: 10.0.0.11 }\n",
        "$.hosts['master-1']",
    ),
    (
        "inventory_unknown_transport",
        "inventory",
        "hosts:\n  jump: { transport: telnet }\n",
        "$.hosts.jump.transport",
    ),
    (
        "inventory_approval_without_approvers",
        "inventory",
        "approval: { quorum: 1 }\nhosts: { m: {} }\n",
        "$.approval",
    ),
    (
        "config_secret_given_as_value",
        "config",
        "chat:\n  slack_signing_secret: 8f742231b10e8888abcd99yyyzzz85a5\n",
        "$.chat.slack_signing_secret",
    ),
    (
        "config_unknown_notifier",
        "config",
        "chat:\n  notify:\n    - { type: pager, url: \"https://x\" }\n",
        "$.chat.notify[0]",
    ),
    (
        "config_schedule_without_inventory",
        "config",
        "daemon:\n  schedules:\n    - { name: n, cron: \"0 4 * * *\", runbook: cert-renew }\n",
        "$.daemon.schedules[0]",
    ),
    (
        "config_unknown_key",
        "config",
        "grups: { sre: [alice] }\n",
        "$",
    ),
];

/// check-jsonschema: `$REMEDY_CHECK_JSONSCHEMA`, the venv `scripts/setup`
/// makes, or the PATH.
fn validator() -> PathBuf {
    if let Some(p) = std::env::var_os("REMEDY_CHECK_JSONSCHEMA") {
        return PathBuf::from(p);
    }
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/remedy-schema-venv/bin/check-jsonschema"));
    if let Some(v) = venv.filter(|v| v.is_file()) {
        return v;
    }
    let on_path = Command::new("check-jsonschema")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        on_path,
        "check-jsonschema, the independent JSON Schema validator these tests use, is not installed.\n\
         Install it with scripts/setup, or by hand:\n  \
         python3 -m venv ~/.cache/remedy-schema-venv && ~/.cache/remedy-schema-venv/bin/pip install check-jsonschema==0.39.0\n\
         (or set REMEDY_CHECK_JSONSCHEMA to its path)"
    );
    PathBuf::from("check-jsonschema")
}

/// `remedy schema KIND` written to DIR/KIND.json.
fn schema_file(dir: &Path, kind: &str) -> PathBuf {
    let out = Command::new(env!("CARGO_BIN_EXE_remedy"))
        .args(["schema", kind])
        .env_remove("REMEDY_INVENTORY")
        .env_remove("REMEDY_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "remedy schema {kind}: {out:?}");
    let path = dir.join(format!("{kind}.json"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

/// The validator's verdict on each file: the schema errors (path: message)
/// of the files it rejects; a file it accepts has none.
fn validate(schema: &Path, files: &[PathBuf]) -> Vec<(PathBuf, Vec<String>)> {
    let out = Command::new(validator())
        .args(["--output-format", "json", "--schemafile"])
        .arg(schema)
        .args(files)
        .stdin(Stdio::null())
        .output()
        .expect("check-jsonschema runs");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check-jsonschema's output is not JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let empty = Vec::new();
    let errors_of = |file: &Path| -> Vec<String> {
        let name = file.display().to_string();
        let entries = |key: &str| -> Vec<serde_json::Value> {
            report[key]
                .as_array()
                .unwrap_or(&empty)
                .iter()
                .filter(|e| e["filename"] == name.as_str())
                .cloned()
                .collect()
        };
        let schema_errors = entries("errors").into_iter().map(|e| {
            format!(
                "{}: {}",
                e["path"].as_str().unwrap_or("?"),
                e["message"].as_str().unwrap_or("?")
            )
        });
        let parse_errors = entries("parse_errors")
            .into_iter()
            .map(|e| format!("(YAML) {}", e["message"].as_str().unwrap_or("?")));
        schema_errors.chain(parse_errors).collect()
    };
    files.iter().map(|f| (f.clone(), errors_of(f))).collect()
}

#[track_caller]
fn assert_all_valid(schema: &Path, files: &[PathBuf]) {
    let rejected: Vec<String> = validate(schema, files)
        .into_iter()
        .filter(|(_, errors)| !errors.is_empty())
        .map(|(f, errors)| format!("{}:\n  {}", f.display(), errors.join("\n  ")))
        .collect();
    assert!(
        rejected.is_empty(),
        "check-jsonschema rejects what remedy accepts:\n{}",
        rejected.join("\n")
    );
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Whole files among the docs' ```yaml blocks, by kind (a runbook names
/// itself, an inventory has hosts, a site config its own top keys).
fn doc_examples(dir: &Path, kind: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for doc in ["README.md", "RUNBOOK.md", "ARCHITECTURE.md"] {
        let text = std::fs::read_to_string(Path::new(ROOT).join(doc)).unwrap();
        let blocks = text
            .split("```yaml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next());
        for (i, block) in blocks.enumerate() {
            let top = |key: &str| block.lines().any(|l| l.starts_with(&format!("{key}:")));
            let block_kind = if top("runbook") {
                "runbook"
            } else if top("hosts") {
                "inventory"
            } else if ["groups", "allow_as", "chat", "daemon"]
                .iter()
                .any(|k| top(k))
            {
                "config"
            } else {
                continue;
            };
            if block_kind == kind {
                let path = dir.join(format!("{doc}-{i}.yaml"));
                std::fs::write(&path, block).unwrap();
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn every_built_in_runbook_and_documented_runbook_validates() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), "runbook");
    let mut files = yaml_files("runbooks");
    assert!(files.len() >= 12, "{files:?}");
    let documented = doc_examples(dir.path(), "runbook");
    assert!(!documented.is_empty(), "no whole runbook in the docs");
    files.extend(documented);
    assert_all_valid(&schema, &files);
}

#[test]
fn the_example_inventories_and_site_configs_validate() {
    let dir = tempfile::tempdir().unwrap();
    let examples = yaml_files("examples");
    for kind in ["inventory", "config"] {
        let schema = schema_file(dir.path(), kind);
        let mut files: Vec<PathBuf> = examples
            .iter()
            .filter(|p| p.file_stem().is_some_and(|s| s == kind))
            .cloned()
            .collect();
        assert_eq!(files.len(), 1, "examples/{kind}.yaml");
        files.extend(doc_examples(dir.path(), kind));
        assert_all_valid(&schema, &files);
    }
}

/// The YAML of each `assert_renders` test in the compiler's error-message
/// tests: (test name, runbook).
fn compiler_error_examples() -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(Path::new(ROOT).join("dsl/tests/error_messages.rs")).unwrap();
    text.split("\n#[test]\nfn ")
        .skip(1)
        .filter_map(|t| {
            let name = t.split("()").next()?.to_string();
            let body = t.split_once("{\n    assert_renders(\n        r#\"")?.1;
            Some((name, body.split("\"#").next()?.to_string()))
        })
        .collect()
}

#[test]
fn the_schema_rejects_the_compilers_broken_runbooks_that_it_can_see() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), "runbook");
    let examples = compiler_error_examples();
    assert!(examples.len() >= 30, "found {}", examples.len());
    for (name, _) in ONLY_THE_COMPILER_SEES {
        assert!(
            examples.iter().any(|(n, _)| n == name),
            "{name} is no longer in dsl/tests/error_messages.rs"
        );
    }
    let mut files = Vec::new();
    for (name, yaml) in &examples {
        let path = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        files.push(path);
    }
    // Each is broken for remedy too.
    let out = Command::new(env!("CARGO_BIN_EXE_remedy"))
        .arg("validate")
        .args(&files)
        .env_remove("REMEDY_INVENTORY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let passed: Vec<String> = validate(&schema, &files)
        .into_iter()
        .filter(|(f, errors)| {
            let name = f.file_stem().unwrap().to_string_lossy();
            errors.is_empty() && !ONLY_THE_COMPILER_SEES.iter().any(|(n, _)| *n == name)
        })
        .map(|(f, _)| f.display().to_string())
        .collect();
    assert!(
        passed.is_empty(),
        "the schema accepts broken runbooks it could see (or add them to ONLY_THE_COMPILER_SEES, with why):\n{}",
        passed.join("\n")
    );
}

#[test]
fn the_schema_names_the_place_of_a_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let schema = schema_file(dir.path(), "runbook");
    let cases = [
        (
            "octal",
            "runbook: x\nsummary: s\ntargets: masters\nsteps:\n  - id: a\n    action: file.write\n    with: { path: /etc/x, content: y, mode: 0644 }\n",
            "$.steps[0].with.mode: 644 is not of type 'string'",
        ),
        (
            "missing_arg",
            "runbook: x\nsummary: s\ntargets: masters\nsteps:\n  - id: a\n    action: cert.served\n    with: { endpoint: \"127.0.0.1:6443\" }\n",
            "$.steps[0].with: 'expect' is a required property",
        ),
        (
            "expression_in_braces",
            "runbook: x\nsummary: s\ntargets: masters\nsteps:\n  - id: a\n    action: shell\n    when: ${params.x}\n    with: { cmd: \"true\" }\n",
            "$.steps[0].when",
        ),
    ];
    let files: Vec<PathBuf> = cases
        .iter()
        .map(|(name, yaml, _)| {
            let p = dir.path().join(format!("{name}.yaml"));
            std::fs::write(&p, yaml).unwrap();
            p
        })
        .collect();
    for ((file, errors), (_, _, expected)) in validate(&schema, &files).into_iter().zip(cases) {
        assert!(
            errors.iter().any(|e| e.starts_with(expected)),
            "{}: expected `{expected}…`, got {errors:?}",
            file.display()
        );
    }
}

#[test]
fn broken_inventories_and_site_configs_are_rejected_where_they_are_wrong() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["inventory", "config"] {
        let schema = schema_file(dir.path(), kind);
        let cases: Vec<_> = BROKEN_OTHERS.iter().filter(|c| c.1 == kind).collect();
        let files: Vec<PathBuf> = cases
            .iter()
            .map(|(name, _, yaml, _)| {
                let p = dir.path().join(format!("{name}.yaml"));
                std::fs::write(&p, yaml).unwrap();
                p
            })
            .collect();
        for ((file, errors), (_, _, _, at)) in validate(&schema, &files).into_iter().zip(cases) {
            assert!(
                errors.iter().any(|e| e.starts_with(&format!("{at}: "))),
                "{}: expected an error at {at}, got {errors:?}",
                file.display()
            );
        }
    }
}

/// A lab of this test's own (address block 170 of this process's range,
/// like tests/lab.rs's), stopped on drop even when the test fails.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn up(extra: &[&str]) -> Lab {
        let lab = Lab {
            dir: tempfile::tempdir().unwrap(),
        };
        let base = format!("127.{}.170.10", 20 + std::process::id() % 200);
        let mut args = vec!["lab", "up", "--dir", lab.dir(), "--base-address", &base];
        args.extend_from_slice(extra);
        let out = lab.remedy(&args);
        assert!(out.status.success(), "lab up: {out:?}");
        lab
    }
    fn dir(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
    fn inv(&self) -> String {
        self.dir.path().join("inventory.yaml").display().to_string()
    }
    fn remedy(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_remedy"))
            .args(args)
            .env("NO_COLOR", "1")
            .env("REMEDY_HOME", self.dir.path().join("remedy-home"))
            .env_remove("REMEDY_INVENTORY")
            .env_remove("REMEDY_CONFIG")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
    /// `remedy ARGS -o json`, exiting with one of `codes`: its JSON, also
    /// written to DIR/NAME.json.
    fn json(&self, name: &str, args: &[&str], codes: &[i32]) -> (PathBuf, serde_json::Value) {
        let inv = self.inv();
        let mut args = args.to_vec();
        args.extend(["-i", &inv, "-o", "json"]);
        let out = self.remedy(&args);
        assert!(
            out.status.code().is_some_and(|c| codes.contains(&c)),
            "remedy {args:?}: {out:?}"
        );
        let path = self.dir.path().join(format!("{name}.json"));
        std::fs::write(&path, &out.stdout).unwrap();
        let value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("remedy {args:?} printed no JSON ({e}): {out:?}"));
        (path, value)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.remedy(&["lab", "down", "--dir", self.dir()]);
    }
}

/// Every change of kind `kind` in a plan or run report.
fn changes_of<'a>(report: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    report["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|h| h["steps"].as_array().into_iter().flatten())
        .flat_map(|s| s["plan"]["changes"].as_array().into_iter().flatten())
        .filter(|c| c["kind"] == kind)
        .collect()
}

/// Issue 19, item 3: real `-o json` outputs from the lab — a cert-renew
/// plan and run, an LB drain plan, `remedy check` — against `remedy schema
/// output-run|output-check`, and the changes carry their values.
#[test]
fn real_json_outputs_from_the_lab_match_their_schemas_and_carry_values() {
    let lab = Lab::up(&["--cert-expiry", "1d"]);
    let schemas = tempfile::tempdir().unwrap();
    let run_schema = schema_file(schemas.path(), "output-run");
    let check_schema = schema_file(schemas.path(), "output-check");

    let (renew_plan, plan) = lab.json(
        "renew-plan",
        &["plan", "cert-renew", "-p", "method=native"],
        &[0],
    );
    let certs = changes_of(&plan, "certificate");
    assert_eq!(certs.len(), 3 * 11, "{plan:#}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for c in &certs {
        let not_after = c["before"]["not_after"].as_i64().unwrap();
        assert!(
            (now..now + 2 * 86_400).contains(&not_after),
            "expires within a day: {c}"
        );
        let (before, after) = (
            c["before"]["expires_on"].as_str().unwrap(),
            c["after"]["expires_on"].as_str().unwrap(),
        );
        assert!(after > before, "{c}");
        assert!(c["text"].as_str().unwrap().contains(" → new key, expires "));
    }

    let (drain_plan, plan) = lab.json("drain-plan", &["plan", "lb-drain", "-l", "master-1"], &[0]);
    let servers = changes_of(&plan, "server");
    assert_eq!(servers.len(), 1, "{plan:#}");
    assert_eq!(servers[0]["before"]["admin"], "ready", "{}", servers[0]);
    assert_eq!(servers[0]["before"]["status"], "UP", "{}", servers[0]);
    assert_eq!(servers[0]["after"]["admin"], "drain", "{}", servers[0]);
    assert_eq!(servers[0]["after"]["sessions"], 0, "{}", servers[0]);

    let (renew_run, run) = lab.json(
        "renew-run",
        &[
            "run",
            "cert-renew",
            "-p",
            "method=native",
            "-l",
            "master-1",
            "--yes",
        ],
        &[0],
    );
    assert_eq!(run["status"], "ok", "{run:#}");
    assert!(
        run["hosts"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["backups"].as_array().is_some_and(|b| !b.is_empty())),
        "a real run reports its backups: {run:#}"
    );
    assert_all_valid(&run_schema, &[renew_plan, drain_plan, renew_run]);

    let (check, findings) = lab.json("check", &["check"], &[0, 1, 2]);
    assert!(
        findings.as_array().is_some_and(|f| f.len() > 10),
        "{findings:#}"
    );
    assert_all_valid(&check_schema, &[check]);
}
