//! Restarting a static pod as kubeadm operators do it, as paths and rules:
//! the manifest is parked in a staging directory outside the manifests
//! directory (the kubelet starts every non-hidden file there, so never
//! another file inside it) and moved back. [`Parking`] names both places
//! and says where a pod's manifest is now — in place, or stranded in
//! staging by an interrupted restart; [`health_url`] is where the
//! component answers health checks on its node, unless the runbook says.

use crate::read::{default_health_url, under_manifests_dir};

/// Where a restart finds and parks manifests on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parking {
    pub manifests_dir: String,
    pub staging_dir: String,
}

/// The host is not in a state to restart from: what, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Unplaced {
    pub message: String,
    pub hint: String,
}

impl Parking {
    /// Refused when staging is inside the manifests directory.
    pub fn new(manifests_dir: String, staging_dir: String) -> Result<Parking, Unplaced> {
        if under_manifests_dir(&staging_dir, &manifests_dir) {
            return Err(Unplaced {
                message: format!("staging_dir {staging_dir} is inside the manifests directory {manifests_dir}: the kubelet would start the manifest from there"),
                hint: "set the host var `staging_dir` outside the manifests directory".into(),
            });
        }
        Ok(Parking {
            manifests_dir,
            staging_dir,
        })
    }

    /// Where the kubelet reads `pod`'s manifest.
    pub fn manifest(&self, pod: &str) -> String {
        format!("{}/{pod}.yaml", self.manifests_dir)
    }

    /// Where a restart parks it.
    pub fn staging(&self, pod: &str) -> String {
        format!("{}/{pod}.yaml", self.staging_dir)
    }

    /// Whether `pod`'s manifest is stranded in staging (an interrupted
    /// restart) rather than in place, given which of the two exist on
    /// `host`; refused when it is in both or in neither.
    pub fn stranded(
        &self,
        pod: &str,
        in_place: bool,
        staged: bool,
        host: &str,
    ) -> Result<bool, Unplaced> {
        let file = format!("{pod}.yaml");
        let placement = Placement::of(in_place, staged);
        let hint = self.repair(&file, placement, host);
        match placement {
            Placement::InPlace => Ok(false),
            Placement::Stranded => Ok(true),
            Placement::Both => Err(Unplaced {
                message: format!(
                    "{pod}: the manifest is both in {} and in {} on {host}",
                    self.manifests_dir, self.staging_dir
                ),
                hint,
            }),
            Placement::Missing => Err(Unplaced {
                message: format!("{pod}: no manifest {} on {host}", self.manifest(pod)),
                hint,
            }),
        }
    }

    /// How to put the manifest `file` (e.g. `kube-scheduler.yaml`) back by
    /// hand on `host`, for where it is now. Never a command that removes the
    /// only copy: a manifest only in staging is moved back, and of two
    /// copies either may go, once they are compared.
    pub fn repair(&self, file: &str, placement: Placement, host: &str) -> String {
        let (manifest, staged) = (
            format!("{}/{file}", self.manifests_dir),
            format!("{}/{file}", self.staging_dir),
        );
        match placement {
            Placement::InPlace => format!("nothing to put back: {manifest} is in place on {host}"),
            Placement::Stranded => format!("on {host}: mv {staged} {manifest}"),
            Placement::Both => format!(
                "on {host}, compare them first (diff {manifest} {staged}); then either keep the one in place (rm {staged}) or run the staged one (mv {staged} {manifest}) — a copy stays either way"
            ),
            Placement::Missing => format!(
                "check the pod name and the host var `manifests_dir`; the kubelet starts what is in {} (a run that changed {manifest} kept a copy under its backup directory)",
                self.manifests_dir
            ),
        }
    }
}

/// Where a pod's manifest is, from which of its two places hold it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// In the manifests directory only: the kubelet runs it.
    InPlace,
    /// In staging only: an interrupted restart left it there; the pod is
    /// not running.
    Stranded,
    /// In both: which one should run is a person's call.
    Both,
    /// In neither.
    Missing,
}

impl Placement {
    pub fn of(in_place: bool, staged: bool) -> Placement {
        match (in_place, staged) {
            (true, false) => Placement::InPlace,
            (false, true) => Placement::Stranded,
            (true, true) => Placement::Both,
            (false, false) => Placement::Missing,
        }
    }
}

/// Where `pod` answers health checks: `given` by the runbook (`none` for
/// no check), else from its manifest's flags and kubeadm's defaults.
pub fn health_url(pod: &str, manifest: &str, given: Option<&str>) -> Option<String> {
    match given {
        Some("none") => None,
        Some(url) => Some(url.to_string()),
        None => default_health_url(pod, manifest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parking_is_refused_inside_the_manifests_directory() {
        let m = "/etc/kubernetes/manifests".to_string();
        let err = Parking::new(m.clone(), format!("{m}/.parked")).unwrap_err();
        assert!(err.message.contains("inside the manifests directory"));
        let p = Parking::new(m, "/var/lib/remedy/staging/".trim_end_matches('/').into()).unwrap();
        assert_eq!(p.manifest("etcd"), "/etc/kubernetes/manifests/etcd.yaml");
        assert_eq!(p.staging("etcd"), "/var/lib/remedy/staging/etcd.yaml");
    }

    #[test]
    fn a_manifest_is_in_place_stranded_or_refused() {
        let p = Parking::new("/m".into(), "/s".into()).unwrap();
        assert_eq!(p.stranded("etcd", true, false, "master-1"), Ok(false));
        assert_eq!(p.stranded("etcd", false, true, "master-1"), Ok(true));
        let both = p.stranded("etcd", true, true, "master-1").unwrap_err();
        assert_eq!(
            both.message,
            "etcd: the manifest is both in /m and in /s on master-1"
        );
        assert_eq!(both.hint, "on master-1, compare them first (diff /m/etcd.yaml /s/etcd.yaml); then either keep the one in place (rm /s/etcd.yaml) or run the staged one (mv /s/etcd.yaml /m/etcd.yaml) — a copy stays either way");
        assert_eq!(
            p.repair("etcd.yaml", Placement::Stranded, "master-1"),
            "on master-1: mv /s/etcd.yaml /m/etcd.yaml"
        );
        let none = p.stranded("etcd", false, false, "master-1").unwrap_err();
        assert_eq!(none.message, "etcd: no manifest /m/etcd.yaml on master-1");
    }

    #[test]
    fn the_runbook_may_name_or_drop_the_health_check() {
        let m = "spec:\n  containers:\n  - command:\n    - kube-scheduler\n";
        assert_eq!(
            health_url("kube-scheduler", m, None).as_deref(),
            Some("https://127.0.0.1:10259/healthz")
        );
        assert_eq!(health_url("kube-scheduler", m, Some("none")), None);
        assert_eq!(
            health_url("kube-scheduler", m, Some("http://x/ok")).as_deref(),
            Some("http://x/ok")
        );
    }
}
