//! `remedy lab status`: every process the lab started, and each master's
//! components as an operator would look at them — the kubelet stand-in's word
//! on the container (running, crash-looping with its last exit code and
//! restart count) and the component's own health endpoint — then each load
//! balancer's frontend.

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
        for (component, url) in components(addr) {
            let (running, text) = describe(pods.iter().find(|p| p.name == component));
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
}
