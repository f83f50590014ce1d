//! Whole documents: choosing the container, refusing what cannot be edited
//! safely, and keeping encodings, line endings and quoting intact.

use super::*;

#[test]
fn unknown_container_lists_the_containers_present() {
    let err = edit(TWO_CONTAINERS, Some("etcd"), &[set_flag("--x", "1")]).unwrap_err();
    assert_eq!(
        err,
        EditError::ContainerNotFound {
            name: "etcd".into(),
            present: vec!["main".into(), "sidecar".into()],
        }
    );
    assert_eq!(
        err.to_string(),
        "container `etcd` not found; containers in this manifest: `main`, `sidecar`"
    );
}

#[test]
fn second_container_selected_by_name_gets_the_edit_in_its_args() {
    let out = edit(
        TWO_CONTAINERS,
        Some("sidecar"),
        &[
            set_flag("--interval", "1m"),
            set_flag("--log-format", "json"),
            remove_flag("--verbose"),
        ],
    )
    .unwrap();
    let expected = replaced(
        TWO_CONTAINERS,
        "      - --interval=30s\n      - --verbose\n",
        "      - --interval=1m\n      - --log-format=json\n",
    );
    assert_eq!(out, expected);
    // Without a name, the first container is edited.
    let out = edit(TWO_CONTAINERS, None, &[set_flag("--port", "9090")]).unwrap();
    assert_eq!(out, replaced(TWO_CONTAINERS, "--port=8080", "--port=9090"));
}

#[test]
fn not_a_pod_manifest_is_refused() {
    let deployment = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template: {}\n";
    assert!(matches!(
        edit(deployment, None, &[set_flag("--x", "1")]),
        Err(EditError::NotAPod(m)) if m.contains("Deployment")
    ));
    let no_containers = "apiVersion: v1\nkind: Pod\nspec:\n  hostNetwork: true\n";
    assert_eq!(
        edit(no_containers, None, &[set_flag("--x", "1")]),
        Err(EditError::NotAPod(
            "there is no `spec.containers` list".into()
        ))
    );
    assert!(matches!(
        edit("- a\n- b\n", None, &[remove_flag("--x")]),
        Err(EditError::NotAPod(_))
    ));
    assert!(matches!(
        edit("", None, &[remove_flag("--x")]),
        Err(EditError::NotAPod(_))
    ));
}

#[test]
fn invalid_yaml_reports_its_line() {
    let broken = replaced(
        APISERVER,
        "    imagePullPolicy: IfNotPresent\n",
        "    imagePullPolicy: [IfNotPresent\n",
    );
    match edit(&broken, None, &[set_flag("--x", "1")]) {
        Err(EditError::InvalidYaml { line, .. }) => assert!(line >= 35, "line {line}"),
        other => panic!("expected InvalidYaml, got {other:?}"),
    }
}

#[test]
fn non_ascii_comments_survive_byte_identical() {
    let src = replaced(
        APISERVER,
        "  - command:\n",
        "  # Geändert von Jürgen — siehe Ticket №42 ✓\n  - command:\n    # Flags geprüft 🔍\n",
    );
    let out = edit(
        &src,
        None,
        &[
            set_flag("--secure-port", "6444"),
            set_flag("--max-requests-inflight", "800"),
            set_resource("limits.memory", "2Gi"),
        ],
    )
    .unwrap();
    let expected = replaced(
        &src,
        "    - --secure-port=6443\n",
        "    - --secure-port=6444\n",
    );
    let expected = replaced(
        &expected,
        "apiserver.key\n",
        "apiserver.key\n    - --max-requests-inflight=800\n",
    );
    let expected = replaced(
        &expected,
        "    resources:\n",
        "    resources:\n      limits:\n        memory: 2Gi\n",
    );
    assert_eq!(out, expected);
}

/// Found by fuzzing (fuzz/regressions/manifest/lone-cr-line-break.txt): the
/// flag was appended after `- x\r:`, outside the list, and only the
/// read-back check stopped it (as an internal error).
#[test]
fn a_lone_carriage_return_is_refused_with_its_line() {
    let src = "spec:\n containers:\n - command:\n   - x\r:\n";
    assert_eq!(
        edit(src, None, &[set_flag("--v", "4")]),
        Err(EditError::LoneCarriageReturn { line: 4 })
    );
    let msg = EditError::LoneCarriageReturn { line: 4 }.to_string();
    assert!(
        msg.starts_with("line 4 holds a carriage return (`\\r`) with no line feed"),
        "{msg}"
    );
}

#[test]
fn crlf_line_endings_are_kept() {
    let src = APISERVER.replace('\n', "\r\n");
    let out = edit(&src, None, &[set_flag("--max-requests-inflight", "800")]).unwrap();
    let expected = replaced(
        &src,
        "apiserver.key\r\n",
        "apiserver.key\r\n    - --max-requests-inflight=800\r\n",
    );
    assert_eq!(out, expected);
}

#[test]
fn file_without_final_newline_stays_without() {
    let src = TWO_CONTAINERS.trim_end();
    let out = edit(src, Some("sidecar"), &[set_flag("--log-format", "json")]).unwrap();
    assert_eq!(out, format!("{src}\n      - --log-format=json"));
}

#[test]
fn value_needing_quotes_is_quoted_and_reads_back() {
    let cases = [
        ("--cors-allowed-origins", "*"),
        ("--admission-control-config-file", "a: b"),
        ("--token-auth-file", "x #y"),
        ("--audit-log-path", ""),
        ("--oidc-username-prefix", "\"oidc\":"),
    ];
    for (name, value) in cases {
        let out = edit(APISERVER, None, &[set_flag(name, value)]).unwrap();
        let (_, added) = hunk(APISERVER, &out);
        assert_eq!(added.len(), 1);
        assert!(added[0].starts_with("    - \""), "{:?}", added[0]);
        assert_eq!(read_flag(&out, 0, name).as_deref(), Some(value));
        assert_eq!(edit(&out, None, &[set_flag(name, value)]).unwrap(), out);
    }
    let out = edit(
        APISERVER,
        None,
        &[set_flag("--oidc-username-prefix", "\"oidc\":")],
    )
    .unwrap();
    assert!(out.contains("    - \"--oidc-username-prefix=\\\"oidc\\\":\"\n"));

    // Resource values are quantities now (checked as Kubernetes parses
    // them), which never need quotes: `true` is refused, not quoted.
    assert!(matches!(
        edit(APISERVER, None, &[set_resource("limits.memory", "true")]),
        Err(EditError::BadValue { .. })
    ));
}

#[test]
fn flow_style_collections_are_refused_with_their_key() {
    let src =
        "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: c\n    command: [app, --a=1]\n";
    let err = edit(src, None, &[set_flag("--b", "2")]).unwrap_err();
    assert_eq!(
        err,
        EditError::FlowStyle {
            key: "spec.containers[c].command".into(),
            line: 6,
        }
    );
    assert!(err.to_string().contains("by hand"));
    // Removing a flag that is not there needs no edit, so is fine.
    assert_eq!(edit(src, None, &[remove_flag("--b")]).unwrap(), src);

    let src = replaced(
        CONTROLLER_MANAGER,
        "    resources: {}\n",
        "    resources: {limits: {cpu: 1}}\n",
    );
    let err = edit(&src, None, &[set_resource("limits.memory", "1Gi")]).unwrap_err();
    assert!(
        matches!(err, EditError::FlowStyle { line: 24, .. }),
        "{err:?}"
    );
}

#[test]
fn containers_using_anchors_or_aliases_are_refused() {
    let src = "\
apiVersion: v1
kind: Pod
spec:
  containers:
  - name: a
    args: &flags
    - --a=1
  - name: b
    args: *flags
";
    for name in ["a", "b"] {
        let err = edit(src, Some(name), &[set_flag("--b", "2")]).unwrap_err();
        assert!(
            matches!(&err, EditError::Anchors { container, line } if container == name && *line == if name == "a" { 6 } else { 9 }),
            "{err:?}"
        );
    }
}

#[test]
fn bad_inputs_are_refused() {
    assert_eq!(
        edit(APISERVER, None, &[set_resource("memory", "1Gi")]),
        Err(EditError::BadResourceKey("memory".into()))
    );
    assert_eq!(
        edit(APISERVER, None, &[set_resource("limit.memory", "1Gi")]),
        Err(EditError::BadResourceKey("limit.memory".into()))
    );
    assert!(matches!(
        edit(APISERVER, None, &[set_resource("limits.memory", "")]),
        Err(EditError::BadValue { .. })
    ));
    assert!(matches!(
        edit(APISERVER, None, &[set_flag("--x", "a\nb")]),
        Err(EditError::BadValue { .. })
    ));
    assert_eq!(
        edit(APISERVER, None, &[set_flag("--x=1", "2")]),
        Err(EditError::BadFlagName("--x=1".into()))
    );
    assert_eq!(
        edit(APISERVER, None, &[set_flag("max-requests-inflight", "2")]),
        Err(EditError::BadFlagName("max-requests-inflight".into()))
    );
}

#[test]
fn container_without_command_or_args() {
    let src = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: c\n    image: nginx\n";
    assert_eq!(
        edit(src, None, &[set_flag("--x", "1")]),
        Err(EditError::NoCommandList {
            container: "c".into(),
            flag: "--x".into(),
        })
    );
}
