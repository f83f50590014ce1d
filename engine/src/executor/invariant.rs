//! Static-pod manifests stranded in a host's staging directory — outside
//! the manifests directory, so the kubelet is not running them. Every plan
//! and run reports the ones it finds first (an earlier run, or a person,
//! left a control-plane component down), with the command that puts each
//! back; and every run ends by checking it left none.

use super::Executor;
use crate::event::EventKind;
use crate::inventory::Host;
use crate::report::{Finding, HostReport, HostStatus};
use remedy_manifest::{Parking, Placement};
use std::time::Duration;

/// The manifests in one host's staging directory, with where each is.
struct Staged {
    parking: Parking,
    /// File name, and whether a copy is in place too.
    files: Vec<(String, Placement)>,
}

impl Executor<'_> {
    /// Lists `host`'s staging directory (a missing one is empty).
    async fn staged(&self, host: &Host) -> Result<Staged, String> {
        let parking = Parking {
            manifests_dir: host
                .var("manifests_dir")
                .unwrap_or_else(|| "/etc/kubernetes/manifests".into()),
            staging_dir: host
                .var("staging_dir")
                .unwrap_or_else(|| "/var/lib/remedy/staging".into()),
        };
        let q = remedy_transport::shell::quote;
        let cmd = format!(
            "cd {} 2>/dev/null || exit 0; for f in *.yaml *.yml *.json; do [ -f \"$f\" ] || continue; if [ -e {}/\"$f\" ]; then echo \"both $f\"; else echo \"only $f\"; fi; done; exit 0",
            q(&parking.staging_dir),
            q(&parking.manifests_dir)
        );
        let t = self
            .connector
            .connect(host)
            .await
            .map_err(|e| e.to_string())?;
        let out = t
            .probe(&cmd, Duration::from_secs(30))
            .await
            .map_err(|e| e.to_string())?;
        if out.status != Some(0) {
            return Err(out.stderr);
        }
        let files = out
            .stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(state, f)| {
                let placement = match state {
                    "both" => Placement::Both,
                    _ => Placement::Stranded,
                };
                (f.to_string(), placement)
            })
            .collect();
        Ok(Staged { parking, files })
    }

    /// What is wrong on `host` and how to put it right: `remedy run
    /// static-pod-restart` for exactly this host and these pods (it moves a
    /// stranded manifest back and waits until the pod runs and is healthy),
    /// or the `mv`; for a manifest that is in both places, how to choose.
    fn stranded_finding(&self, host: &Host, staged: &Staged) -> Finding {
        let p = &staged.parking;
        let listed: Vec<String> = staged
            .files
            .iter()
            .map(|(f, placement)| match placement {
                Placement::Both => format!("{f} (a copy is in place too)"),
                _ => f.clone(),
            })
            .collect();
        let error = format!(
            "{}: static-pod manifest(s) left outside {}, in {}: {} — the kubelet is not running them",
            host.name,
            p.manifests_dir,
            p.staging_dir,
            listed.join(", ")
        );
        let only: Vec<&str> = staged
            .files
            .iter()
            .filter(|(_, placement)| *placement == Placement::Stranded)
            .map(|(f, _)| f.as_str())
            .collect();
        let mut hints = Vec::new();
        let pods: Vec<&str> = only
            .iter()
            .filter_map(|f| f.strip_suffix(".yaml"))
            .collect();
        if !pods.is_empty() {
            let inventory = self
                .options
                .inventory
                .as_deref()
                .map(|i| format!(" -i {}", remedy_transport::shell::word(i)))
                .unwrap_or_default();
            let params: Vec<String> = pods.iter().map(|p| format!("-p pods={p}")).collect();
            hints.push(format!(
                "put back and wait until healthy: `remedy run static-pod-restart{inventory} -l {} {}`",
                host.name,
                params.join(" ")
            ));
        }
        let by_hand: Vec<String> = staged
            .files
            .iter()
            .map(|(f, placement)| p.repair(f, *placement, &host.name))
            .collect();
        hints.push(format!("or by hand: {}", by_hand.join("; ")));
        Finding {
            host: host.name.clone(),
            error,
            hint: hints.join(" — "),
        }
    }

    /// Before anything else in a plan or run: the manifests stranded on
    /// every host of the run, each reported (and journaled). A host that
    /// cannot be reached is left to the run, which reports it.
    pub(super) async fn stranded_before(&self) -> Vec<Finding> {
        use futures::stream::StreamExt;
        let listed: Vec<Result<Staged, String>> =
            futures::stream::iter(self.run.hosts.iter().map(|h| self.staged(h)))
                .buffered(self.options.max_parallel.max(1))
                .collect()
                .await;
        let mut found = Vec::new();
        for (host, staged) in self.run.hosts.iter().zip(listed) {
            let Ok(staged) = staged else {
                continue;
            };
            if staged.files.is_empty() {
                continue;
            }
            let finding = self.stranded_finding(host, &staged);
            let _ = self.emit(
                Some(&host.name),
                None,
                EventKind::StrandedFound {
                    error: finding.error.clone(),
                    hint: finding.hint.clone(),
                },
            );
            found.push(finding);
        }
        found
    }

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
            let (error, hint) = match self.staged(host).await {
                Ok(staged) if staged.files.is_empty() => continue,
                Ok(staged) => {
                    let f = self.stranded_finding(host, &staged);
                    (f.error, f.hint)
                }
                Err(e) => (
                    format!(
                        "{}: could not check its staging directory for stranded static-pod manifests: {e}",
                        host.name
                    ),
                    format!(
                        "look on {} for manifests in {}",
                        host.name,
                        host.var("staging_dir")
                            .unwrap_or_else(|| "/var/lib/remedy/staging".into())
                    ),
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
