//! The invariant every run and resume ends with: no static-pod manifest is
//! left in a host's staging directory, outside the manifests directory where
//! the kubelet would run it.

use super::Executor;
use crate::event::EventKind;
use crate::report::{HostReport, HostStatus};
use std::time::Duration;

impl Executor<'_> {
    /// The invariant every run and resume ends with: no static-pod manifest
    /// is left in a host's staging directory (where `static_pod.restart`
    /// parks it), i.e. outside the manifests directory where the kubelet
    /// would run it. Returns one message per host that breaks it (or that
    /// could not be checked), each also journaled.
    pub(super) async fn check_no_stranded_manifests(&self, reports: &[HostReport]) -> Vec<String> {
        let mut problems = Vec::new();
        for host in &self.run.hosts {
            let touched = reports
                .iter()
                .any(|r| r.host == host.name && r.status != HostStatus::NotStarted);
            if !touched {
                continue;
            }
            let staging = host
                .var("staging_dir")
                .unwrap_or_else(|| "/var/lib/remedy/staging".into());
            let manifests = host
                .var("manifests_dir")
                .unwrap_or_else(|| "/etc/kubernetes/manifests".into());
            let q = remedy_transport::shell::quote;
            let cmd = format!(
                "cd {} 2>/dev/null || exit 0; for f in *.yaml *.yml *.json; do [ -f \"$f\" ] && echo \"$f\"; done; exit 0",
                q(&staging)
            );
            let listed = match self.connector.connect(host).await {
                Ok(t) => t
                    .probe(&cmd, Duration::from_secs(30))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|o| {
                        if o.status == Some(0) {
                            Ok(o.stdout)
                        } else {
                            Err(o.stderr)
                        }
                    }),
                Err(e) => Err(e.to_string()),
            };
            let (error, hint) = match listed {
                Ok(out) if out.trim().is_empty() => continue,
                Ok(out) => {
                    let files: Vec<&str> = out.lines().collect();
                    (
                        format!(
                            "{}: static-pod manifest(s) left outside {manifests}, in {staging}: {} — the kubelet is not running them",
                            host.name,
                            files.join(", ")
                        ),
                        format!(
                            "put each back: mv {staging}/{} {manifests}/ on {} (or run `remedy run static-pod-restart`, which moves a stranded manifest back and waits for the pod)",
                            files[0], host.name
                        ),
                    )
                }
                Err(e) => (
                    format!(
                        "{}: could not check {staging} for stranded static-pod manifests: {e}",
                        host.name
                    ),
                    format!("look on {} for manifests in {staging}", host.name),
                ),
            };
            let _ = self.emit(
                Some(&host.name),
                None,
                EventKind::InvariantFailed {
                    error: error.clone(),
                    hint: hint.clone(),
                },
            );
            problems.push(format!("{error} ({hint})"));
        }
        problems
    }
}
