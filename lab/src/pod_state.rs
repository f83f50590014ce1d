//! The kubelet stand-in's record of each static pod and its containers,
//! `/var/lib/kubelet/pods/<pod>.json` on a master: written by
//! [`crate::kubelet`], read by the lab's `crictl` ([`crate::crictl`]), by
//! `remedy lab status`, by remedy's `static_pod.restart` on a host without
//! crictl, and by tests. (The real kubelet keeps per-UID directories there and
//! asks the container runtime for the rest; this file is the stand-in's own.)

use serde::{Deserialize, Serialize};
use std::fs;
use std::path::Path;

/// How many containers of a pod are remembered (the running one and the ones
/// that exited before it), like the kubelet's container garbage collection
/// keeps a few dead containers per pod for `crictl ps -a` and `crictl logs`.
pub const KEPT_CONTAINERS: usize = 5;

/// One static pod as the kubelet stand-in runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodRecord {
    /// `metadata.name` of the manifest.
    pub name: String,
    /// The pod's UID: derived from its manifest's content, as the kubelet does
    /// for static pods, so a changed manifest is a new pod.
    #[serde(default)]
    pub uid: String,
    /// The running container, else the last one.
    pub container_id: Option<String>,
    /// The running container's process.
    pub pid: Option<u32>,
    /// When the running (or last) container started, seconds since the epoch.
    pub started_at: Option<f64>,
    pub manifest_sha256: String,
    /// The manifest file the pod comes from.
    pub manifest: String,
    /// Starts of this pod minus one.
    pub restarts: u32,
    /// `running`, `crashloop`, `pending`, `invalid` or `failed: <why>`.
    pub state: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Newest first: at most [`KEPT_CONTAINERS`].
    #[serde(default)]
    pub containers: Vec<ContainerRecord>,
}

/// One container (one start of a pod's process).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// 64 hex digits, like containerd's ids.
    pub id: String,
    /// 0 for the pod's first container, then 1, 2 … (crictl's ATTEMPT).
    pub attempt: u32,
    /// While it runs.
    pub pid: Option<u32>,
    pub started_at: f64,
    /// Set once it exited.
    pub finished_at: Option<f64>,
    /// Its exit code once exited; 128 + n when a signal n ended it, as the
    /// container runtimes report it.
    pub exit_code: Option<i32>,
    /// What it wrote (stdout and stderr), as the master sees the path.
    pub log_path: String,
}

impl ContainerRecord {
    pub fn running(&self) -> bool {
        self.finished_at.is_none()
    }
}

/// Every pod record in `dir`, by pod name; unreadable files are skipped.
pub fn load_all(dir: &Path) -> Vec<PodRecord> {
    let mut out: Vec<PodRecord> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| serde_json::from_str(&fs::read_to_string(p).ok()?).ok())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A static pod's UID from its manifest's SHA-256, in UUID form.
pub fn uid_from_sha(sha: &str) -> String {
    let h: String = sha.chars().chain("0".repeat(32).chars()).take(32).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_look_like_uuids_and_follow_the_manifest() {
        let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(uid_from_sha(sha), "ba7816bf-8f01-cfea-4141-40de5dae2223");
        assert_eq!(uid_from_sha("").len(), 36);
    }

    #[test]
    fn records_round_trip_and_old_files_still_load() {
        let dir = tempfile::tempdir().unwrap();
        // A record as the kubelet stand-in wrote it before containers were kept.
        fs::write(
            dir.path().join("etcd.json"),
            r#"{"name":"etcd","container_id":"ab","pid":1,"started_at":1.0,"manifest_sha256":"x","manifest":"/m","restarts":0,"state":"running","image":"i"}"#,
        )
        .unwrap();
        fs::write(dir.path().join("junk.json"), "{").unwrap();
        let all = load_all(dir.path());
        assert_eq!(all.len(), 1);
        assert!(all[0].containers.is_empty());
        let back: PodRecord =
            serde_json::from_str(&serde_json::to_string(&all[0]).unwrap()).unwrap();
        assert_eq!(back, all[0]);
    }
}
