//! Setting and removing container flags.

use super::*;

#[test]
fn set_new_flag_appends_one_line_after_last_command_item() {
    let out = edit(
        APISERVER,
        None,
        &[set_flag("--max-requests-inflight", "800")],
    )
    .unwrap();
    let expected = replaced(
            APISERVER,
            "    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n",
            "    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n    - --max-requests-inflight=800\n",
        );
    assert_eq!(out, expected);
    assert_eq!(
        hunk(APISERVER, &out),
        (vec![], vec!["    - --max-requests-inflight=800"])
    );
}

#[test]
fn set_existing_flag_changes_exactly_one_line() {
    let out = edit(
        APISERVER,
        Some("kube-apiserver"),
        &[set_flag(
            "--etcd-servers",
            "https://10.0.0.21:2379,https://10.0.0.22:2379",
        )],
    )
    .unwrap();
    let expected = replaced(
        APISERVER,
        "    - --etcd-servers=https://127.0.0.1:2379\n",
        "    - --etcd-servers=https://10.0.0.21:2379,https://10.0.0.22:2379\n",
    );
    assert_eq!(out, expected);
    assert_eq!(
        hunk(APISERVER, &out),
        (
            vec!["    - --etcd-servers=https://127.0.0.1:2379"],
            vec!["    - --etcd-servers=https://10.0.0.21:2379,https://10.0.0.22:2379"]
        )
    );
}

#[test]
fn set_bare_flag_gives_it_a_value_and_keeps_its_comment() {
    let src = replaced(
        APISERVER,
        "    - --allow-privileged=true\n",
        "    - --allow-privileged   # needed for CNI\n",
    );
    let out = edit(&src, None, &[set_flag("--allow-privileged", "false")]).unwrap();
    let expected = replaced(
        &src,
        "    - --allow-privileged   # needed for CNI\n",
        "    - --allow-privileged=false   # needed for CNI\n",
    );
    assert_eq!(out, expected);
}

#[test]
fn flag_prefix_of_another_flag_is_not_matched() {
    // `--etcd` must not be taken for `--etcd-servers=...`.
    let out = edit(APISERVER, None, &[set_flag("--etcd", "x")]).unwrap();
    let (removed, added) = hunk(APISERVER, &out);
    assert!(removed.is_empty());
    assert_eq!(added, vec!["    - --etcd=x"]);
    assert_eq!(
        edit(APISERVER, None, &[remove_flag("--etcd")]).unwrap(),
        APISERVER
    );
}

#[test]
fn remove_flag_deletes_its_line() {
    let out = edit(
        APISERVER,
        None,
        &[remove_flag("--enable-bootstrap-token-auth")],
    )
    .unwrap();
    let expected = replaced(APISERVER, "    - --enable-bootstrap-token-auth=true\n", "");
    assert_eq!(out, expected);
}

#[test]
fn removing_the_only_arg_removes_args() {
    let out = edit(
        TWO_CONTAINERS,
        Some("sidecar"),
        &[remove_flag("--interval"), remove_flag("--verbose")],
    )
    .unwrap();
    let expected = replaced(
        TWO_CONTAINERS,
        "    args:\n      - --interval=30s\n      - --verbose\n",
        "",
    );
    assert_eq!(out, expected);
    // An emptied `command` is refused instead.
    let src = replaced(TWO_CONTAINERS, "      - /bin/main\n", "");
    assert_eq!(
        edit(&src, Some("main"), &[remove_flag("--port")]),
        Err(EditError::WouldEmptyList {
            flag: "--port".into(),
            list: "command".into(),
            container: "main".into(),
        })
    );
}

#[test]
fn remove_absent_flag_is_a_no_op() {
    let out = edit(APISERVER, None, &[remove_flag("--audit-log-path")]).unwrap();
    assert_eq!(out, APISERVER);
}

#[test]
fn remove_every_occurrence_of_a_repeated_flag() {
    let src = replaced(
        APISERVER,
        "    - --secure-port=6443\n",
        "    - --secure-port=6443\n    - --service-account-issuer=https://old.example\n",
    );
    let out = edit(&src, None, &[remove_flag("--service-account-issuer")]).unwrap();
    let expected = replaced(
        APISERVER,
        "    - --service-account-issuer=https://kubernetes.default.svc.cluster.local\n",
        "",
    );
    assert_eq!(out, expected);
}

#[test]
fn set_repeated_flag_is_refused_with_its_lines() {
    let src = replaced(
        APISERVER,
        "    - --secure-port=6443\n",
        "    - --secure-port=6443\n    - --service-account-issuer=https://old.example\n",
    );
    let err = edit(&src, None, &[set_flag("--service-account-issuer", "x")]).unwrap_err();
    assert_eq!(
        err,
        EditError::DuplicateFlag {
            name: "--service-account-issuer".into(),
            container: "kube-apiserver".into(),
            lines: vec![29, 30],
        }
    );
    assert!(err.to_string().contains("lines 29, 30"), "{err}");
}

#[test]
fn edits_are_idempotent() {
    let ops = [
        set_flag("--max-requests-inflight", "800"),
        set_flag("--etcd-servers", "https://10.0.0.21:2379"),
        remove_flag("--enable-bootstrap-token-auth"),
        set_resource("limits.memory", "2Gi"),
        set_resource("requests.cpu", "500m"),
        remove_resource("requests.memory"),
    ];
    let once = edit(APISERVER, None, &ops).unwrap();
    assert_ne!(once, APISERVER);
    let twice = edit(&once, None, &ops).unwrap();
    assert_eq!(twice, once);

    let once = edit(CONTROLLER_MANAGER, None, &ops).unwrap();
    assert_eq!(edit(&once, None, &ops).unwrap(), once);
}

#[test]
fn setting_the_current_value_returns_the_input_unchanged() {
    let ops = [
        set_flag("--secure-port", "6443"),
        set_resource("requests.cpu", "250m"),
    ];
    assert_eq!(edit(APISERVER, None, &ops).unwrap(), APISERVER);
}
