//! `remedy lab status`: every process the lab started, and each master's
//! components as an operator would look at them — the kubelet stand-in's word
//! on the container (running, crash-looping with its last exit code and
//! restart count) and the component's own health endpoint, or why there is
//! no pod (its manifest is gone, or parked in staging) — then each load
//! balancer's frontend and each master's server on it (a server in MAINT or
//! DRAIN is not `ok`, though the frontend still answers).

use crate::hosts::answers_200;
use crate::lab::{LabError, LabState};
use crate::layout::{CONTROLLER_MANAGER_PORT, ETCD_METRICS_PORT, SCHEDULER_PORT, SSH_PORT};
use crate::pod_state::{self, PodRecord};
use crate::process;
use serde::Serialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// One line of `remedy lab status`.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

/// The static pods of a master and where each says it is healthy.
fn components(addr: Ipv4Addr) -> [(&'static str, String); 4] {
    [
        ("etcd", format!("http://{addr}:{ETCD_METRICS_PORT}/health")),
        ("kube-apiserver", format!("https://{addr}:6443/readyz")),
        (
            "kube-controller-manager",
            format!("https://{addr}:{CONTROLLER_MANAGER_PORT}/healthz"),
        ),
        (
            "kube-scheduler",
            format!("https://{addr}:{SCHEDULER_PORT}/healthz"),
        ),
    ]
}

/// What the kubelet stand-in says about a pod: state, restarts, last exit.
fn describe(pod: Option<&PodRecord>) -> (bool, String) {
    let Some(pod) = pod else {
        return (false, "no pod (no manifest?)".into());
    };
    let last_exit = pod
        .containers
        .iter()
        .find_map(|c| c.exit_code)
        .map(|c| format!(", last exit code {c}"))
        .unwrap_or_default();
    let id = pod
        .container_id
        .as_deref()
        .map(|id| format!(" container {}", &id[..12.min(id.len())]))
        .unwrap_or_default();
    let text = format!("{}{id}, {} restart(s){last_exit}", pod.state, pod.restarts);
    (pod.state == "running", text)
}

/// Why a master has no pod for `component`: where its manifest is.
fn no_pod(manifests: &Path, staging: &Path, component: &str) -> String {
    let file = format!("{component}.yaml");
    if manifests.join(&file).exists() {
        return format!("no pod yet: {file} is in the manifests directory");
    }
    if staging.join(&file).exists() {
        return format!("no pod: {file} is not in the manifests directory but in /var/lib/remedy/staging (a restart was interrupted; put it back)");
    }
    format!("no pod: {file} is not in the manifests directory")
}

/// A server's line of `show servers state`: ok when ready and running.
fn server_state(reply: &str, server: &str) -> (bool, String) {
    let Some(fields) = reply
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(3) == Some(&server))
    else {
        return (
            false,
            format!("no server {server} in backend kube-apiserver"),
        );
    };
    let op: u32 = fields.get(5).and_then(|v| v.parse().ok()).unwrap_or(0);
    let admin: u32 = fields.get(6).and_then(|v| v.parse().ok()).unwrap_or(0);
    // srv_admin_state: FMAINT 0x01, IMAINT 0x02, CMAINT 0x04, RMAINT 0x20,
    // HMAINT 0x40 are maintenance; FDRAIN 0x08, IDRAIN 0x10 drain.
    let text = if admin & 0x67 != 0 {
        "MAINT".to_string()
    } else if admin & 0x18 != 0 {
        "DRAIN".to_string()
    } else if op != 2 {
        format!("DOWN (operational state {op})")
    } else {
        "UP".to_string()
    };
    (text == "UP", text)
}

pub fn status(dir: &Path) -> Result<(LabState, Vec<Check>), LabError> {
    let state = LabState::load(dir)?;
    let layout = state.layout();
    let mut checks = Vec::new();
    for rec in process::recorded(dir) {
        checks.push(Check {
            what: format!("process {}", rec.name),
            ok: rec.alive(),
            detail: format!("pid {}", rec.pid),
        });
    }
    let quick = Duration::from_millis(800);
    for (i, name) in layout.master_names().iter().enumerate() {
        let addr = layout.master_addr(i + 1);
        checks.push(Check {
            what: format!("{name} sshd"),
            ok: process::wait_for_port(SocketAddr::from((addr, SSH_PORT)), quick),
            detail: format!("{addr}:{SSH_PORT}"),
        });
        let pods = pod_state::load_all(&layout.host_dir(name).join("var-lib-kubelet/pods"));
        let manifests = layout.kube_dir(name).join("manifests");
        let staging = layout.host_dir(name).join("var-lib-remedy/staging");
        for (component, url) in components(addr) {
            let (running, text) = match pods.iter().find(|p| p.name == component) {
                None => (false, no_pod(&manifests, &staging, component)),
                Some(pod) if !manifests.join(format!("{component}.yaml")).exists() => (
                    false,
                    format!(
                        "{} (last: {})",
                        no_pod(&manifests, &staging, component),
                        describe(Some(pod)).1
                    ),
                ),
                pod => describe(pod),
            };
            checks.push(Check {
                what: format!("{name} {component}"),
                ok: running,
                detail: text,
            });
            checks.push(Check {
                what: format!("{name} {component} health"),
                ok: answers_200(&url, quick),
                detail: url,
            });
        }
    }
    for (i, name) in layout.lb_names().iter().enumerate() {
        let url = format!("https://{}:6443/readyz", layout.lb_addr(i + 1));
        checks.push(Check {
            what: format!("{name} HAProxy frontend /readyz"),
            ok: answers_200(&url, quick),
            detail: url,
        });
        let reply = crate::faults::haproxy_command(
            &layout.lb_socket(i + 1),
            "show servers state kube-apiserver",
        );
        for master in layout.master_names() {
            let (ok, detail) = match &reply {
                Ok(r) => server_state(r, &master),
                Err(e) => (false, e.to_string()),
            };
            checks.push(Check {
                what: format!("{name} server {master}"),
                ok,
                detail,
            });
        }
    }
    Ok((state, checks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pod_state::ContainerRecord;

    #[test]
    fn a_crash_looping_pod_shows_its_exit_code_and_restarts() {
        let pod = PodRecord {
            name: "kube-apiserver".into(),
            uid: String::new(),
            container_id: Some("ab".repeat(32)),
            pid: None,
            started_at: Some(1.0),
            manifest_sha256: String::new(),
            manifest: String::new(),
            restarts: 3,
            state: "crashloop".into(),
            image: String::new(),
            message: None,
            containers: vec![ContainerRecord {
                id: "ab".repeat(32),
                attempt: 3,
                pid: None,
                started_at: 1.0,
                finished_at: Some(2.0),
                exit_code: Some(1),
                log_path: String::new(),
            }],
        };
        assert_eq!(
            describe(Some(&pod)),
            (
                false,
                "crashloop container abababababab, 3 restart(s), last exit code 1".into()
            )
        );
        assert!(!describe(None).0);
    }

    /// Issue 13, item 11: a backend in MAINT showed `ok` (the frontend
    /// still answered), and a pod whose manifest was gone said nothing of it.
    #[test]
    fn issue_13_a_server_in_maint_or_drain_is_not_ok_and_a_missing_manifest_is_named() {
        let reply = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state\n\
            3 kube-apiserver 1 master-1 127.0.0.11 2 0 1 1\n\
            3 kube-apiserver 2 master-2 127.0.0.12 0 1 1 1\n\
            3 kube-apiserver 3 master-3 127.0.0.13 2 8 1 1\n";
        assert_eq!(server_state(reply, "master-1"), (true, "UP".into()));
        assert_eq!(server_state(reply, "master-2"), (false, "MAINT".into()));
        assert_eq!(server_state(reply, "master-3"), (false, "DRAIN".into()));
        assert!(!server_state(reply, "master-4").0);
        let dir = tempfile::tempdir().unwrap();
        let (manifests, staging) = (dir.path().join("m"), dir.path().join("s"));
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::write(staging.join("kube-scheduler.yaml"), "x").unwrap();
        assert!(no_pod(&manifests, &staging, "kube-scheduler")
            .contains("in /var/lib/remedy/staging (a restart was interrupted"));
        assert_eq!(
            no_pod(&manifests, &staging, "etcd"),
            "no pod: etcd.yaml is not in the manifests directory"
        );
    }
}
