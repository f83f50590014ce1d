//! Every kind of diagnostic the compiler gives, with the rendered message
//! written out in full: a change to wording, position or hint shows up here.

use remedy_dsl::{compile, Source};

/// Compile and render all diagnostics (or "ok").
fn check(yaml: &str) -> String {
    match compile(Source::new("rb.yaml", yaml)) {
        Ok(_) => "ok".into(),
        Err(d) => d.render(),
    }
}

#[track_caller]
fn assert_renders(yaml: &str, expected: &str) {
    let actual = check(yaml);
    if actual != expected {
        println!("ACTUAL-BEGIN\n{actual}ACTUAL-END");
    }
    assert_eq!(actual, expected);
}

#[test]
fn malformed_yaml() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: shell
     with: { cmd: "true" }
"#,
        r#"error: invalid YAML: mapping values are not allowed in this context
 --> rb.yaml:7:10
  |
7 |      with: { cmd: "true" }
  |          ^
  = hint: check indentation and quoting near this point; a value containing `: ` or starting with `{`, `[`, `*` or `&` needs quotes

1 error found; nothing was run.
"#,
    );
}

#[test]
fn wrong_type_for_retries() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: shell
    retries: three
    with: { cmd: "true" }
"#,
        r#"error: `retries` must be a whole number, found a string
 --> rb.yaml:7:14
  |
7 |     retries: three
  |              ^^^^^

1 error found; nothing was run.
"#,
    );
}

#[test]
fn unknown_top_level_key_suggests() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
step:
  - id: a
    action: shell
"#,
        r#"error: missing `steps:`
 --> rb.yaml:1:1
  |
1 | runbook: x
  | ^
  = hint: a runbook needs at least one step

error: unknown key `step` in the runbook
 --> rb.yaml:4:1
  |
4 | step:
  | ^^^^
  = hint: did you mean `steps`?

2 errors found; nothing was run.
"#,
    );
}

#[test]
fn unknown_step_key_suggests() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: shell
    whn: params.x
    with: { cmd: "true" }
"#,
        r#"error: unknown key `whn` in a step
 --> rb.yaml:7:5
  |
7 |     whn: params.x
  |     ^^^
  = hint: did you mean `when`?

1 error found; nothing was run.
"#,
    );
}

#[test]
fn unknown_action_suggests() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: file.edt
"#,
        r#"error: unknown action `file.edt`
 --> rb.yaml:6:13
  |
6 |     action: file.edt
  |             ^^^^^^^^
  = hint: did you mean `file.edit`?

1 error found; nothing was run.
"#,
    );
}

#[test]
fn duplicate_step_id() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: shell
    with: { cmd: "true" }
  - id: a
    action: shell
    with: { cmd: "false" }
"#,
        r#"error: duplicate step id `a`
 --> rb.yaml:8:9
  |
8 |   - id: a
  |         ^
  = hint: `a` is already used at line 5; step ids must be unique

1 error found; nothing was run.
"#,
    );
}

#[test]
fn reference_to_later_step() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: first
    action: shell
    when: steps.second.rc == 0
    with: { cmd: "true" }
  - id: second
    action: shell
    with: { cmd: "true" }
"#,
        r#"error: `steps.second` is a later step (line 9): it has not run yet
 --> rb.yaml:7:17
  |
7 |     when: steps.second.rc == 0
  |                 ^^^^^^
  = hint: a step can only read the results of steps before it; use `result` in `until`/`assert` for this step's own result

1 error found; nothing was run.
"#,
    );
}

#[test]
fn reference_to_unknown_step_suggests() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: expiry
    action: shell
    with: { cmd: "true" }
  - id: renew
    action: shell
    when: steps.expiri.rc == 0
    with: { cmd: "true" }
"#,
        r#"error: unknown step `expiri`
  --> rb.yaml:10:17
   |
10 |     when: steps.expiri.rc == 0
   |                 ^^^^^^
   = hint: did you mean `expiry`?

1 error found; nothing was run.
"#,
    );
}

#[test]
fn rhai_syntax_error_in_when() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: shell
    when: params.x >
    with: { cmd: "true" }
params:
  x: { type: int, default: 1 }
"#,
        r#"error: in `when`: Rhai syntax error: Script is incomplete
 --> rb.yaml:7:21
  |
7 |     when: params.x >
  |                     ^

1 error found; nothing was run.
"#,
    );
}

#[test]
fn undefined_variable_in_when() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: shell
    when: threshold > 3
    with: { cmd: "true" }
"#,
        r#"error: in `when`: undefined variable `threshold`
 --> rb.yaml:7:11
  |
7 |     when: threshold > 3
  |           ^
  = hint: expressions here can read `params`, `host`, `steps`; declare a param to pass a value in

1 error found; nothing was run.
"#,
    );
}

#[test]
fn interpolation_of_undeclared_param() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
params:
  threshold_days: { type: int, default: 30 }
steps:
  - id: a
    action: shell
    with: { cmd: "echo ${params.threshold}" }
"#,
        r#"error: `params.threshold` is not a declared param
 --> rb.yaml:9:33
  |
9 |     with: { cmd: "echo ${params.threshold}" }
  |                                 ^^^^^^^^^
  = hint: did you mean `threshold_days`?

1 error found; nothing was run.
"#,
    );
}

#[test]
fn default_of_wrong_type() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
params:
  threshold_days: { type: int, default: thirty }
steps:
  - id: a
    action: shell
    with: { cmd: "true" }
"#,
        r#"error: default of param `threshold_days` has the wrong type: expected an int (e.g. 30), found a string
 --> rb.yaml:5:41
  |
5 |   threshold_days: { type: int, default: thirty }
  |                                         ^^^^^^

1 error found; nothing was run.
"#,
    );
}

#[test]
fn serial_zero_is_nonsense() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
strategy: { serial: 0 }
steps:
  - id: a
    action: shell
    with: { cmd: "true" }
"#,
        r#"error: `serial: 0` is not a batch size
 --> rb.yaml:4:21
  |
4 | strategy: { serial: 0 }
  |                     ^
  = hint: write a host count (`serial: 1`) or a share of the targets (`serial: "30%"`)

1 error found; nothing was run.
"#,
    );
}

#[test]
fn serial_percentage_over_100() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
strategy: { serial: "150%" }
steps:
  - id: a
    action: shell
    with: { cmd: "true" }
"#,
        r#"error: `serial: 150%` must be a percentage from 1% to 100%
 --> rb.yaml:4:21
  |
4 | strategy: { serial: "150%" }
  |                     ^^^^^^^
  = hint: write a host count (`serial: 1`) or a share of the targets (`serial: "30%"`)

1 error found; nothing was run.
"#,
    );
}

#[test]
fn step_without_action() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    with: { cmd: "true" }
"#,
        r#"error: step `a` has no `action`
 --> rb.yaml:5:5
  |
5 |   - id: a
  |     ^
  = hint: add e.g. `action: shell`; `remedy list --actions` shows them all

1 error found; nothing was run.
"#,
    );
}

#[test]
fn unknown_on_failure_suggests() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
on_failure: rollbak
steps:
  - id: a
    action: shell
    with: { cmd: "true" }
"#,
        r#"error: unknown `on_failure: rollbak`
 --> rb.yaml:4:13
  |
4 | on_failure: rollbak
  |             ^^^^^^^
  = hint: did you mean `rollback`?

1 error found; nothing was run.
"#,
    );
}

#[test]
fn handled_failures_need_a_step_that_reads_them() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
on_failure: handled
steps:
  - id: a
    action: shell
    on_failure: handled
    with: { cmd: "true" }
  - id: b
    action: shell
    with: { cmd: "true" }
"#,
        r#"error: `on_failure: handled` is for a single step
 --> rb.yaml:4:13
  |
4 | on_failure: handled
  |             ^^^^^^^
  = hint: a later step must read that step's `failed` and take another way; for the whole runbook use `continue`

error: step `a` has `on_failure: handled` but no later step reads `steps.a`
 --> rb.yaml:6:5
  |
6 |   - id: a
  |     ^
  = hint: add the other way, e.g. a step with `when: steps.a.failed == true`, or use `on_failure: continue`

2 errors found; nothing was run.
"#,
    );
}

#[test]
fn missing_name_summary_targets() {
    assert_renders(
        r#"steps:
  - id: a
    action: shell
    with: { cmd: "true" }
"#,
        r#"error: missing `runbook:` (the runbook's name)
 --> rb.yaml:1:1
  |
1 | steps:
  | ^
  = hint: add e.g. `runbook: cert-renew` at the top

error: missing `summary:`
 --> rb.yaml:1:1
  |
1 | steps:
  | ^
  = hint: one line that tells an on-call engineer what this runbook does

error: missing `targets:`
 --> rb.yaml:1:1
  |
1 | steps:
  | ^
  = hint: name an inventory group or host pattern, e.g. `targets: masters`

3 errors found; nothing was run.
"#,
    );
}

#[test]
fn unknown_param_type_suggests() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
params:
  days: { type: integer }
steps:
  - id: a
    action: shell
    with: { cmd: "true" }
"#,
        r#"error: unknown param type `integer`
 --> rb.yaml:5:17
  |
5 |   days: { type: integer }
  |                 ^^^^^^^
  = hint: did you mean `int`?

1 error found; nothing was run.
"#,
    );
}

#[test]
fn missing_required_argument() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: edit
    action: file.edit
    with: { set_flags: { --v: "2" } }
"#,
        r#"error: step `edit`: `file.edit` needs `path`
 --> rb.yaml:7:11
  |
7 |     with: { set_flags: { --v: "2" } }
  |           ^^
  = hint: `path`: the static-pod manifest

1 error found; nothing was run.
"#,
    );
}

#[test]
fn unknown_result_field_suggests() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: probe
    action: shell
    with: { cmd: "true" }
  - id: use
    action: shell
    when: steps.probe.stdot != ""
    with: { cmd: "true" }
"#,
        r#"error: step `probe` (`shell`) has no result `stdot`
  --> rb.yaml:10:23
   |
10 |     when: steps.probe.stdot != ""
   |                       ^^^^^
   = hint: did you mean `stdout`?

1 error found; nothing was run.
"#,
    );
}

#[test]
fn result_outside_until_or_assert() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: shell
    when: result.rc == 0
    with: { cmd: "true" }
"#,
        r#"error: in `when`: `result` is not defined here
 --> rb.yaml:7:11
  |
7 |     when: result.rc == 0
  |           ^
  = hint: `result` exists only in `until`, `assert` and `wait.until`'s `condition`; read an earlier step's result as `steps.<id>.<field>`

1 error found; nothing was run.
"#,
    );
}

#[test]
fn until_without_retries() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: shell
    until: result.rc == 0
    with: { cmd: "true" }
"#,
        r#"error: `until` without `retries`
 --> rb.yaml:7:12
  |
7 |     until: result.rc == 0
  |            ^^^^^^^^^^^^^^
  = hint: say how many more attempts are allowed, e.g. `retries: 5` with `backoff: 10s`

1 error found; nothing was run.
"#,
    );
}

#[test]
fn unclosed_interpolation() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: shell
    with: { cmd: "echo ${host.name" }
"#,
        r#"error: `${` is never closed with `}`
 --> rb.yaml:7:24
  |
7 |     with: { cmd: "echo ${host.name" }
  |                        ^^
  = hint: close it with `}`, or write `$${` for a literal `${`

1 error found; nothing was run.
"#,
    );
}

#[test]
fn step_id_with_dash() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: renew-certs
    action: shell
    with: { cmd: "true" }
"#,
        r#"error: step id `renew-certs` cannot be read as `steps.renew-certs` in Rhai
 --> rb.yaml:5:9
  |
5 |   - id: renew-certs
  |         ^^^^^^^^^^^
  = hint: use letters, digits and `_` (e.g. `renew_certs`)

1 error found; nothing was run.
"#,
    );
}

#[test]
fn unknown_argument_suggests() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: shell
    with: { cmd: "true", unles: "test -f /x" }
"#,
        r#"error: `shell` has no argument `unles`
 --> rb.yaml:7:26
  |
7 |     with: { cmd: "true", unles: "test -f /x" }
  |                          ^^^^^
  = hint: did you mean `unless`?

1 error found; nothing was run.
"#,
    );
}

#[test]
fn default_not_in_enum() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
params:
  method: { type: string, default: manual, enum: [auto, kubeadm, native] }
steps:
  - id: a
    action: shell
    with: { cmd: "true" }
"#,
        r#"error: default of param `method` is not one of its `enum` values
 --> rb.yaml:5:36
  |
5 |   method: { type: string, default: manual, enum: [auto, kubeadm, native] }
  |                                    ^^^^^^
  = hint: allowed: auto, kubeadm, native

1 error found; nothing was run.
"#,
    );
}

#[test]
fn duplicate_yaml_key() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: shell
    with: { cmd: "true" }
    with: { cmd: "false" }
"#,
        r#"error: duplicate key `with`
 --> rb.yaml:8:5
  |
8 |     with: { cmd: "false" }
  |     ^^^^
  = hint: `with` is already set at line 7

1 error found; nothing was run.
"#,
    );
}

#[test]
fn quorum_that_cannot_be_met() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
approval: { quorum: 3, approvers: [alice, bob] }
steps:
  - id: a
    action: shell
    with: { cmd: "true" }
"#,
        r#"error: `quorum: 3` can never be met by 2 listed approver(s)
 --> rb.yaml:4:21
  |
4 | approval: { quorum: 3, approvers: [alice, bob] }
  |                     ^

1 error found; nothing was run.
"#,
    );
}

#[test]
fn interpolation_inside_when() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
params:
  force: { type: bool, default: false }
steps:
  - id: a
    action: shell
    when: "${params.force}"
    with: { cmd: "true" }
"#,
        r#"error: `when` is already Rhai: `${...}` is not needed here
 --> rb.yaml:9:11
  |
9 |     when: "${params.force}"
  |           ^^^^^^^^^^^^^^^^^
  = hint: write the expression itself, e.g. `when: params.force`

1 error found; nothing was run.
"#,
    );
}

#[test]
fn eval_is_not_allowed() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    script: |
      let x = 1;
      eval("x + 1")
"#,
        r#"error: in `script`: Rhai syntax error: reserved keyword 'eval' is disabled
 --> rb.yaml:8:7
  |
8 |       eval("x + 1")
  |       ^

1 error found; nothing was run.
"#,
    );
}

#[test]
fn unknown_host_field_suggests() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: shell
    with: { cmd: "ping ${host.adress}" }
"#,
        r#"error: hosts have no field `adress`
 --> rb.yaml:7:31
  |
7 |     with: { cmd: "ping ${host.adress}" }
  |                               ^^^^^^
  = hint: did you mean `address`?

1 error found; nothing was run.
"#,
    );
}

#[test]
fn octal_mode_must_be_quoted() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: file.write
    with: { path: /etc/x, content: y, mode: 0644 }
"#,
        r#"error: `mode: 0644` is read by YAML as the number 644, not an octal mode
 --> rb.yaml:7:45
  |
7 |     with: { path: /etc/x, content: y, mode: 0644 }
  |                                             ^^^^
  = hint: quote it: `mode: "0644"`

1 error found; nothing was run.
"#,
    );
}

#[test]
fn several_errors_are_all_reported() {
    assert_renders(
        r#"runbook: Bad_Name
summary: s
targets: masters
strategy: { serial: abc }
steps:
  - id: a
    action: shel
  - id: b
    action: shell
    when: steps.c.rc == 0
    with: { cmd: "true" }
  - id: b
    action: shell
    with: { cmd: "true" }
"#,
        r#"error: runbook name `Bad_Name` is not valid
 --> rb.yaml:1:10
  |
1 | runbook: Bad_Name
  |          ^^^^^^^^
  = hint: use lowercase letters, digits and `-`, e.g. `cert-renew`

error: `serial: abc` is not a batch size
 --> rb.yaml:4:21
  |
4 | strategy: { serial: abc }
  |                     ^^^
  = hint: write a host count (`serial: 1`) or a share of the targets (`serial: "30%"`)

error: unknown action `shel`
 --> rb.yaml:7:13
  |
7 |     action: shel
  |             ^^^^
  = hint: did you mean `shell`?

error: unknown step `c`
  --> rb.yaml:10:17
   |
10 |     when: steps.c.rc == 0
   |                 ^
   = hint: name a step defined before this one

error: duplicate step id `b`
  --> rb.yaml:12:9
   |
12 |   - id: b
   |         ^
   = hint: `b` is already used at line 8; step ids must be unique

5 errors found; nothing was run.
"#,
    );
}

#[test]
fn probe_result_has_only_rc_stdout_stderr() {
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: ready
    action: wait.until
    with: { command: "true", condition: result.attempts > 1 }
"#,
        r#"error: a probe's `result` has no field `attempts`
 --> rb.yaml:7:48
  |
7 |     with: { command: "true", condition: result.attempts > 1 }
  |                                                ^^^^^^^^
  = hint: a probe's result has: rc, stdout, stderr

1 error found; nothing was run.
"#,
    );
}

/// Issue 14, item 2: one long line with many errors used to be quoted whole
/// once per error (345 MB of stderr for a 77 KB file). A long line is shown
/// as a window around the caret.
#[test]
fn issue_14_a_long_line_is_quoted_as_a_window_around_the_caret() {
    let steps: Vec<String> = (0..40)
        .map(|i| format!("{{id: s{i}, action: shell, with: {{cmd: \"true\"}}}}"))
        .collect();
    let yaml = format!(
        "runbook: x\nsummary: s\ntargets: masters\nsteps: [{}, {{id: z, action: nope}}]\n",
        steps.join(", ")
    );
    assert_renders(
        &yaml,
        r#"error: unknown action `nope`
 --> rb.yaml:4:1895
  |
4 | …: s37, action: shell, with: {cmd: "true"}}, {id: s38, action: shell, with: {cmd: "true"}}, {id: s39, action: shell, with: {cmd: "true"}}, {id: z, action: nope}]
  |                                                                                                                                                            ^^^^
  = hint: run `remedy list --actions` to see every action

1 error found; nothing was run.
"#,
    );
}

/// Issue 14, item 2: 7,700 errors used to be printed in full; after 50, a
/// count of the rest.
#[test]
fn issue_14_only_the_first_50_errors_are_shown() {
    let mut yaml = String::from(
        "runbook: x\nsummary: s\ntargets: masters\nsteps: [{id: a, action: shell, with: {cmd: \"true\"}}]\n",
    );
    for i in 0..60 {
        yaml.push_str(&format!("bogus{i}: 1\n"));
    }
    let out = check(&yaml);
    assert_eq!(out.matches("error: unknown key").count(), 50, "{out}");
    assert!(out.contains("bogus49") && !out.contains("bogus50"), "{out}");
    assert!(
        out.ends_with(
            "… and 10 more not shown: fix these first (`remedy validate -o json` lists every error)\n\n60 errors found; nothing was run.\n"
        ),
        "{out}"
    );
}

/// Issue 14, item 2: a message quoting a huge value is cut, saying how much.
#[test]
fn issue_14_a_message_quoting_a_huge_value_is_cut() {
    let action = "n".repeat(5000);
    let out = check(&format!(
        "runbook: x\nsummary: s\ntargets: masters\nsteps: [{{id: a, action: {action}}}]\n"
    ));
    let first = out.lines().next().unwrap();
    assert_eq!(
        first,
        format!(
            "error: unknown action `{}… (4017 more characters)",
            "n".repeat(984)
        )
    );
}

/// Issue 14 (4): raw shell text is explicit, only in commands, and a param
/// inserted that way is pointed out.
#[test]
fn issue_14_shell_raw_with_a_param_warns_and_is_refused_outside_commands() {
    let rb = compile(Source::new(
        "rb.yaml",
        r#"runbook: x
summary: s
targets: masters
params:
  x: { type: string }
steps:
  - id: a
    action: shell
    with: { cmd: "ls ${params.x} | ${shell_raw(params.x)}", unless: "${shell_raw(`test -e /etc`)}" }
"#,
    ))
    .unwrap();
    let warnings: String = rb.warnings.iter().map(|w| w.render_warning()).collect();
    assert_eq!(
        warnings,
        r#"warning: `cmd` inserts params.x as raw shell text: whoever gives that param can run any command on the host
 --> rb.yaml:9:38
  |
9 |     with: { cmd: "ls ${params.x} | ${shell_raw(params.x)}", unless: "${shell_raw(`test -e /etc`)}" }
  |                                      ^^^^^^^^^^^^^^^^^^^
  = hint: drop `shell_raw` to insert the value as one quoted word, or check the value with an `enum` or a `when`
"#
    );
    assert_renders(
        r#"runbook: x
summary: s
targets: masters
steps:
  - id: a
    action: file.write
    with: { path: "/tmp/${shell_raw('x')}", content: "" }
"#,
        r#"error: in `${...}`: `shell_raw(...)` is only for shell commands
 --> rb.yaml:7:27
  |
7 |     with: { path: "/tmp/${shell_raw('x')}", content: "" }
  |                           ^^^^^^^^^^^^^^
  = hint: it inserts shell text into `cmd`, `unless` or `command`; elsewhere a value is used as it is

1 error found; nothing was run.
"#,
    );
    assert!(!remedy_dsl::expr::calls_shell_raw("\"shell_raw(\" + x"));
    assert!(!remedy_dsl::expr::calls_shell_raw("my_shell_raw(x)"));
    assert!(remedy_dsl::expr::calls_shell_raw("a + shell_raw (x)"));
}
