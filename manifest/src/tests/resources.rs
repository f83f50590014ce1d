//! Setting and removing resource values.

use super::*;

#[test]
fn set_limit_when_only_requests_exist() {
    let out = edit(APISERVER, None, &[set_resource("limits.memory", "2Gi")]).unwrap();
    // `limits` sorts before `requests`, so it goes in front, as kubectl
    // and kubeadm order them.
    let expected = replaced(
        APISERVER,
        "    resources:\n      requests:\n",
        "    resources:\n      limits:\n        memory: 2Gi\n      requests:\n",
    );
    assert_eq!(out, expected);
    assert_eq!(
        read_resource(&out, "limits", "memory").as_deref(),
        Some("2Gi")
    );
    assert_eq!(
        read_resource(&out, "requests", "cpu").as_deref(),
        Some("250m")
    );
}

#[test]
fn new_first_key_goes_above_the_comment_of_the_old_first_key() {
    let src = replaced(
        APISERVER,
        "    resources:\n      requests:\n",
        "    resources:\n      # sized for 64 GiB nodes\n      requests:\n",
    );
    let out = edit(&src, None, &[set_resource("limits.memory", "2Gi")]).unwrap();
    let expected = replaced(
        &src,
        "    resources:\n",
        "    resources:\n      limits:\n        memory: 2Gi\n",
    );
    assert_eq!(out, expected);
}

#[test]
fn set_new_request_next_to_existing_one() {
    let out = edit(APISERVER, None, &[set_resource("requests.memory", "512Mi")]).unwrap();
    let expected = replaced(
        APISERVER,
        "        cpu: 250m\n",
        "        cpu: 250m\n        memory: 512Mi\n",
    );
    assert_eq!(out, expected);
}

#[test]
fn replace_existing_resource_value() {
    let out = edit(APISERVER, None, &[set_resource("requests.cpu", "1")]).unwrap();
    assert_eq!(
        out,
        replaced(APISERVER, "        cpu: 250m\n", "        cpu: 1\n")
    );
}

#[test]
fn set_resource_when_resources_is_an_empty_flow_mapping() {
    let out = edit(
        CONTROLLER_MANAGER,
        None,
        &[set_resource("limits.memory", "2Gi")],
    )
    .unwrap();
    let expected = replaced(
        CONTROLLER_MANAGER,
        "    resources: {}\n",
        "    resources:\n      limits:\n        memory: 2Gi\n",
    );
    assert_eq!(out, expected);
    assert_eq!(
        hunk(CONTROLLER_MANAGER, &out),
        (
            vec!["    resources: {}"],
            vec!["    resources:", "      limits:", "        memory: 2Gi"]
        )
    );
}

#[test]
fn comment_after_empty_flow_resources_is_kept() {
    let src = replaced(
        CONTROLLER_MANAGER,
        "    resources: {}\n",
        "    resources: {}   # kubeadm default\n",
    );
    let out = edit(&src, None, &[set_resource("requests.cpu", "200m")]).unwrap();
    let expected = replaced(
        &src,
        "    resources: {}   # kubeadm default\n",
        "    resources:   # kubeadm default\n      requests:\n        cpu: 200m\n",
    );
    assert_eq!(out, expected);
}

#[test]
fn set_resource_when_resources_is_absent() {
    let src = replaced(
        APISERVER,
        "    resources:\n      requests:\n        cpu: 250m\n",
        "",
    );
    let out = edit(&src, None, &[set_resource("requests.cpu", "250m")]).unwrap();
    assert_eq!(out, APISERVER);
}

#[test]
fn set_resource_follows_the_files_indentation_step() {
    let src = "\
apiVersion: v1
kind: Pod
spec:
    containers:
        -   name: app
            image: nginx
            livenessProbe:
                    tcpSocket:
                            port: 80
";
    let out = edit(src, None, &[set_resource("limits.cpu", "2")]).unwrap();
    // Keys not in alphabetical order: appended; step 8 taken from
    // `livenessProbe` → `tcpSocket`.
    let expected = format!(
            "{src}            resources:\n                    limits:\n                            cpu: 2\n"
        );
    assert_eq!(out, expected);
    assert_eq!(read_resource(&out, "limits", "cpu").as_deref(), Some("2"));
}

#[test]
fn remove_resource_value() {
    let src = edit(APISERVER, None, &[set_resource("requests.memory", "512Mi")]).unwrap();
    let out = edit(&src, None, &[remove_resource("requests.memory")]).unwrap();
    assert_eq!(out, APISERVER);
}

#[test]
fn remove_last_value_of_a_section_removes_the_section() {
    let src = edit(APISERVER, None, &[set_resource("limits.memory", "2Gi")]).unwrap();
    let out = edit(&src, None, &[remove_resource("limits.memory")]).unwrap();
    assert_eq!(out, APISERVER);
}

#[test]
fn remove_last_resource_leaves_empty_resources_mapping() {
    let out = edit(APISERVER, None, &[remove_resource("requests.cpu")]).unwrap();
    let expected = replaced(
        APISERVER,
        "    resources:\n      requests:\n        cpu: 250m\n",
        "    resources: {}\n",
    );
    assert_eq!(out, expected);
    // And back again.
    let back = edit(&out, None, &[set_resource("requests.cpu", "250m")]).unwrap();
    assert_eq!(back, APISERVER);
}

#[test]
fn remove_absent_resource_is_a_no_op() {
    for key in ["limits.memory", "requests.memory"] {
        assert_eq!(
            edit(APISERVER, None, &[remove_resource(key)]).unwrap(),
            APISERVER
        );
        assert_eq!(
            edit(CONTROLLER_MANAGER, None, &[remove_resource(key)]).unwrap(),
            CONTROLLER_MANAGER
        );
    }
}

#[test]
fn set_resource_with_null_section_and_null_value() {
    let src = replaced(
        CONTROLLER_MANAGER,
        "    resources: {}\n",
        "    resources:\n      limits:\n      requests:\n        cpu:   # set me\n",
    );
    let out = edit(
        &src,
        None,
        &[
            set_resource("limits.memory", "1Gi"),
            set_resource("requests.cpu", "200m"),
        ],
    )
    .unwrap();
    let expected = replaced(
            CONTROLLER_MANAGER,
            "    resources: {}\n",
            "    resources:\n      limits:\n        memory: 1Gi\n      requests:\n        cpu: 200m   # set me\n",
        );
    assert_eq!(out, expected);
}

/// Issue 14: `resources=limits.memory=$(…)` went into the manifest unchecked,
/// and the kubelet would have refused the pod. Quantities are checked as
/// Kubernetes parses them.
#[test]
fn issue_14_quantities_are_checked_as_kubernetes_parses_them() {
    for good in [
        "2Gi", "512Mi", "250m", "1", "1.5", ".5", "5.", "+1", "1e3", "1E-2", "100k", "2M", "3n",
        "4u", "1Ei",
    ] {
        assert!(
            edit(APISERVER, None, &[set_resource("limits.memory", good)]).is_ok(),
            "{good} is a quantity"
        );
    }
    for bad in [
        "$(hostname>/tmp/p)",
        "true",
        "2GB",
        "1.2.3",
        ".",
        "-1",
        "1e",
        "Gi",
        "2 Gi",
        "1Gi;x",
    ] {
        assert!(
            matches!(
                edit(APISERVER, None, &[set_resource("limits.memory", bad)]),
                Err(EditError::BadValue { .. })
            ),
            "{bad} is not a quantity"
        );
    }
}
