//! Reading a manifest without editing it: a container flag's value, and
//! where a control-plane component answers health checks on its node (from
//! its flags and kubeadm's defaults).

use crate::parse::{find_container, parse, Text};
use crate::EditError;

/// The value of `--name=value` in the pod's first container (`command`,
/// then `args`; the last occurrence, as the component itself reads it).
/// `None` when the flag is absent or the text is not a pod manifest.
pub fn flag_value(manifest: &str, name: &str) -> Option<String> {
    let prefix = format!("--{name}=");
    first_container_args(manifest)?
        .into_iter()
        .rev()
        .find_map(|item| item.strip_prefix(&prefix).map(str::to_string))
}

/// Whether the pod's first container is given `--name` at all, with a value
/// (`--name=v`) or without (`--name`): what a log line naming an unknown
/// flag is checked against before remedy removes it.
pub fn has_flag(manifest: &str, name: &str) -> bool {
    let bare = format!("--{}", name.trim_start_matches('-'));
    first_container_args(manifest).is_some_and(|args| {
        args.iter()
            .any(|a| *a == bare || a.strip_prefix(&bare).is_some_and(|r| r.starts_with('=')))
    })
}

/// The first container's `command` then `args` items, in order.
fn first_container_args(manifest: &str) -> Option<Vec<String>> {
    let text = Text::new(manifest);
    let root = parse(&text).ok()?;
    let (_, containers) = root.get("spec")?.1.get("containers")?;
    let container = containers.items().first()?;
    Some(
        ["command", "args"]
            .iter()
            .filter_map(|k| container.get(k))
            .flat_map(|(_, list)| list.items())
            .filter_map(|item| item.str())
            .map(str::to_string)
            .collect(),
    )
}

/// Whether `manifest` is a pod manifest the kubelet could start: one valid
/// YAML document with a `spec.containers` list of mappings. The error says
/// what is wrong and where (line and column), as an edit's would.
pub fn check_pod(manifest: &str) -> Result<(), EditError> {
    let text = Text::new(manifest);
    let root = parse(&text)?;
    match find_container(&text, &root, None) {
        // Anchors only stop a textual edit; the kubelet reads them fine.
        Ok(_) | Err(EditError::Anchors { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Where a component answers health checks on its node, from its manifest's
/// flags and the kubeadm defaults.
pub fn default_health_url(pod: &str, manifest: &str) -> Option<String> {
    let local = |bind: Option<String>| match bind.as_deref() {
        None | Some("0.0.0.0") | Some("::") | Some("") => "127.0.0.1".to_string(),
        Some(addr) => addr.to_string(),
    };
    match pod {
        "kube-apiserver" => {
            let port = flag_value(manifest, "secure-port").unwrap_or_else(|| "6443".into());
            Some(format!(
                "https://{}:{port}/readyz",
                local(flag_value(manifest, "bind-address"))
            ))
        }
        "kube-controller-manager" | "kube-scheduler" => {
            let default = if pod == "kube-scheduler" {
                "10259"
            } else {
                "10257"
            };
            let port = flag_value(manifest, "secure-port").unwrap_or_else(|| default.into());
            Some(format!(
                "https://{}:{port}/healthz",
                local(flag_value(manifest, "bind-address"))
            ))
        }
        "etcd" => flag_value(manifest, "listen-metrics-urls").and_then(|u| {
            u.split(',')
                .next()
                .map(|u| format!("{}/health", u.trim_end_matches('/')))
        }),
        _ => None,
    }
}

/// Whether `dir` is the manifests directory or inside it: the kubelet starts
/// every non-hidden file it finds there, so no copy of a manifest (a backup,
/// a parked manifest) may be kept at such a place.
pub fn under_manifests_dir(dir: &str, manifests_dir: &str) -> bool {
    let norm = |p: &str| format!("{}/", p.trim_end_matches('/'));
    norm(dir).starts_with(&norm(manifests_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_urls_follow_the_manifest_flags() {
        let lab = "spec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --bind-address=127.0.0.11\n    - --secure-port=6443\n";
        assert_eq!(
            default_health_url("kube-apiserver", lab).unwrap(),
            "https://127.0.0.11:6443/readyz"
        );
        let kubeadm = "spec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --advertise-address=10.0.0.11\n";
        assert_eq!(
            default_health_url("kube-apiserver", kubeadm).unwrap(),
            "https://127.0.0.1:6443/readyz"
        );
        let sched = "spec:\n  containers:\n  - command:\n    - kube-scheduler\n    - --bind-address=127.0.0.1\n";
        assert_eq!(
            default_health_url("kube-scheduler", sched).unwrap(),
            "https://127.0.0.1:10259/healthz"
        );
        let etcd = "spec:\n  containers:\n  - command:\n    - etcd\n    - --listen-metrics-urls=http://127.0.0.1:2381\n";
        assert_eq!(
            default_health_url("etcd", etcd).unwrap(),
            "http://127.0.0.1:2381/health"
        );
        assert_eq!(default_health_url("my-sidecar", etcd), None);
    }

    #[test]
    fn has_flag_matches_the_whole_flag_name_with_or_without_a_value() {
        let m = "spec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --bogus-flag=1\n    - --v\n  - name: other\n    command: [--other]\n";
        assert!(has_flag(m, "--bogus-flag"));
        assert!(has_flag(m, "bogus-flag"));
        assert!(has_flag(m, "--v"));
        assert!(!has_flag(m, "--bogus"), "a prefix is another flag");
        assert!(!has_flag(m, "--other"), "only the first container");
        assert!(!has_flag("not: [a pod", "--v"));
    }

    #[test]
    fn flag_values_come_from_the_first_container_and_the_last_occurrence() {
        let m = "spec:\n  containers:\n  - command:\n    - etcd\n    - --quota-backend-bytes=1\n    args:\n    - --quota-backend-bytes=2\n  - name: other\n    command: [--data-dir=/x]\n";
        assert_eq!(flag_value(m, "quota-backend-bytes").as_deref(), Some("2"));
        assert_eq!(flag_value(m, "quota-backend"), None);
        assert_eq!(flag_value(m, "data-dir"), None);
        assert_eq!(flag_value("not: [a pod", "x"), None);
    }

    #[test]
    fn a_manifest_the_kubelet_cannot_read_is_refused_with_its_place() {
        let ok =
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - command:\n    - kube-scheduler\n";
        assert_eq!(check_pod(ok), Ok(()));
        let err = check_pod("apiVersion: v1\nkind: Pod\nspec:\n  containers: [\n").unwrap_err();
        assert!(
            matches!(err, EditError::InvalidYaml { line: 5, .. }),
            "{err:?}"
        );
        assert!(matches!(
            check_pod("kind: Pod\nspec: {}\n"),
            Err(EditError::NotAPod(_))
        ));
    }

    #[test]
    fn the_manifests_directory_and_below_are_off_limits() {
        let m = "/etc/kubernetes/manifests";
        assert!(under_manifests_dir(m, m));
        assert!(under_manifests_dir("/etc/kubernetes/manifests/", m));
        assert!(under_manifests_dir(
            "/etc/kubernetes/manifests/.old",
            "/etc/kubernetes/manifests/"
        ));
        assert!(!under_manifests_dir("/etc/kubernetes/manifests-old", m));
        assert!(!under_manifests_dir("/var/lib/remedy/staging", m));
    }
}
