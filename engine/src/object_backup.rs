//! Kubernetes objects in the backup store. Before a step changes an object
//! through the API, the engine reads the whole object and writes it, as
//! JSON, under `$REMEDY_HOME/backups/<run-id>/<step>/k8s/…` on the jump host
//! (mode 0600), with its sha256 and resourceVersion journaled — or records
//! that it did not exist. Rollback puts exactly that back: a deleted object
//! re-created without the fields the server sets, a changed one given its
//! prior content, a created one deleted.
//!
//! The version the plan saw is checked here too: an object that changed
//! after the plan fails the step before anything is changed.

use crate::backup::{sha256_hex, BackupRecord};
use crate::plan::Change;
use remedy_k8s::{content_sha256, resource_version, Kube, ObjectRef};
use remedy_transport::{Local, Transport};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which object a backup holds, and its version when it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectBackup {
    #[serde(flatten)]
    pub object: ObjectRef,
    /// `None` when it did not exist.
    pub resource_version: Option<String>,
    pub uid: Option<String>,
}

/// Why an object could not be backed up or restored.
#[derive(Debug, thiserror::Error)]
pub enum ObjectBackupError {
    #[error(transparent)]
    Kube(#[from] remedy_k8s::KubeError),
    #[error(transparent)]
    Transport(#[from] remedy_transport::TransportError),
    #[error("{object} changed after the plan (resourceVersion {planned} when planned, {now} now, and not only its status), so nothing was changed: plan again to see it as it is now")]
    Changed {
        object: String,
        planned: String,
        now: String,
    },
    #[error("the backup of {object} at {location} does not match its recorded sha256: it was changed after it was taken; restore by hand from the newest good copy")]
    Corrupt { object: String, location: String },
    #[error("the backup of {object} at {location} is not an object: {detail}")]
    Unreadable {
        object: String,
        location: String,
        detail: String,
    },
}

/// What the plan saw of an object, from its `Change::Object`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// `None`: it did not exist.
    pub resource_version: Option<String>,
    /// `None` when absent, or in a plan journaled before hashes were kept.
    pub content_sha256: Option<String>,
}

impl Planned {
    /// What the plan in `changes` saw of `r` (`None`: the plan does not change it).
    pub fn of(changes: &[Change], r: &ObjectRef) -> Option<Planned> {
        changes.iter().find_map(|c| match c {
            Change::Object {
                object,
                resource_version,
                content_sha256,
                ..
            } if object == r => Some(Planned {
                resource_version: resource_version.clone(),
                content_sha256: content_sha256.clone(),
            }),
            _ => None,
        })
    }

    /// `matches`, as the error that says what changed.
    pub fn check(&self, r: &ObjectRef, live: Option<&Value>) -> Result<(), ObjectBackupError> {
        if self.matches(live) {
            return Ok(());
        }
        Err(ObjectBackupError::Changed {
            object: r.display(),
            planned: self
                .resource_version
                .clone()
                .unwrap_or_else(|| "absent".into()),
            now: live
                .and_then(resource_version)
                .unwrap_or_else(|| "absent".into()),
        })
    }

    /// Whether `live` is still what the plan saw. A controller's status
    /// write moves the resourceVersion but not the content hash, so it is
    /// not a conflict; any other change is.
    pub fn matches(&self, live: Option<&Value>) -> bool {
        match (live, &self.resource_version) {
            (None, None) => true,
            (Some(l), Some(rv)) => match &self.content_sha256 {
                Some(hash) => content_sha256(l) == *hash,
                None => resource_version(l).as_deref() == Some(rv.as_str()),
            },
            _ => false,
        }
    }
}

/// What a backup record of an object is called (its `path`).
pub fn record_path(r: &ObjectRef) -> String {
    format!("k8s:{}/{}", r.api_version, r.display())
}

/// Where the copy of `r` goes for this run and step.
pub fn location(dir: &str, run_id: &str, step: &str, r: &ObjectRef) -> String {
    let group = r.api_version.replace('/', "_");
    format!(
        "{}/{run_id}/{step}/k8s/{group}/{}/{}/{}.json",
        dir.trim_end_matches('/'),
        r.kind,
        r.namespace.as_deref().unwrap_or("_cluster"),
        r.name
    )
}

/// Read `r` and keep it under `dir`, after checking it is still what the
/// plan saw.
pub async fn take(
    kube: &Kube,
    dir: &str,
    run_id: &str,
    step: &str,
    r: &ObjectRef,
    planned: &Planned,
) -> Result<BackupRecord, ObjectBackupError> {
    let live = kube.get(r).await?;
    planned.check(r, live.as_ref())?;
    let now = live.as_ref().and_then(resource_version);
    let meta = ObjectBackup {
        object: r.clone(),
        resource_version: now,
        uid: live
            .as_ref()
            .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_string)),
    };
    let Some(obj) = live else {
        return Ok(BackupRecord {
            path: record_path(r),
            existed: false,
            sha256: None,
            location: None,
            mode: None,
            owner: None,
            size: None,
            local: true,
            object: Some(meta),
            etcd_key: None,
        });
    };
    let bytes = serde_json::to_vec_pretty(&obj).unwrap_or_default();
    let loc = location(dir, run_id, step, r);
    crate::backup::keep_on_jump_host(&loc, &bytes).await?;
    Ok(BackupRecord {
        object: Some(meta),
        ..BackupRecord::on_jump_host(record_path(r), loc, &bytes)
    })
}

/// The object a backup holds (`None`: it did not exist), checked against
/// its sha256.
pub async fn stored(record: &BackupRecord) -> Result<Option<Value>, ObjectBackupError> {
    let name = record.path.clone();
    let (Some(loc), Some(expected)) = (&record.location, &record.sha256) else {
        return Ok(None);
    };
    let bytes = Local::new("the jump host").read_file(loc).await?;
    if &sha256_hex(&bytes) != expected {
        return Err(ObjectBackupError::Corrupt {
            object: name,
            location: loc.clone(),
        });
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ObjectBackupError::Unreadable {
            object: name,
            location: loc.clone(),
            detail: e.to_string(),
        })
}

/// Put the object back exactly as the backup recorded it. What was done,
/// in words.
pub async fn restore(kube: &Kube, record: &BackupRecord) -> Result<String, ObjectBackupError> {
    let Some(meta) = &record.object else {
        return Ok(String::new());
    };
    let prior = stored(record).await?;
    let done = remedy_k8s::restore::restore(kube, &meta.object, prior.as_ref()).await?;
    Ok(done.describe(&meta.object))
}

/// Whether the object is no longer what the backup recorded (resume asks
/// this of a step cut off after its intent).
pub async fn differs(kube: &Kube, record: &BackupRecord) -> Result<bool, ObjectBackupError> {
    let Some(meta) = &record.object else {
        return Ok(false);
    };
    let prior = stored(record).await?;
    let now = kube.get(&meta.object).await?;
    Ok(match (prior, now) {
        (None, None) => false,
        (Some(p), Some(n)) => !remedy_k8s::restore::same_object(&p, &n),
        _ => true,
    })
}

/// What to do by hand when restoring `record` failed.
pub fn by_hand(record: &BackupRecord) -> String {
    match (&record.location, &record.sha256) {
        (Some(loc), sha) => format!(
            "restore {} by hand: remove metadata.resourceVersion, uid, creationTimestamp and managedFields from {loc} (sha256 {}…), then `kubectl replace -f` it (or `kubectl create -f` if it is gone)",
            record.path,
            sha.as_deref().map(|s| &s[..s.len().min(12)]).unwrap_or("?")
        ),
        (None, _) => format!(
            "delete {} by hand: it did not exist before the run",
            record.path
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i64, rv: &str, observed: i64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "noisy", "namespace": "l", "uid": "u", "resourceVersion": rv },
            "spec": { "replicas": replicas },
            "status": { "observedGeneration": observed }
        })
    }

    #[test]
    fn a_status_write_after_the_plan_is_not_a_conflict_a_spec_change_is() {
        let planned_obj = deployment(2, "7", 1);
        let planned = Planned {
            resource_version: Some("7".into()),
            content_sha256: Some(content_sha256(&planned_obj)),
        };
        assert!(planned.matches(Some(&deployment(2, "8", 2))));
        assert!(!planned.matches(Some(&deployment(3, "8", 1))));
        assert!(!planned.matches(None));
        let r = ObjectRef::of(&planned_obj).unwrap();
        let err = planned.check(&r, Some(&deployment(3, "9", 1))).unwrap_err();
        assert_eq!(err.to_string(), "Deployment l/noisy changed after the plan (resourceVersion 7 when planned, 9 now, and not only its status), so nothing was changed: plan again to see it as it is now");

        // Absent when planned: only still absent matches.
        let absent = Planned {
            resource_version: None,
            content_sha256: None,
        };
        assert!(absent.matches(None));
        assert!(!absent.matches(Some(&planned_obj)));

        // A plan journaled before hashes were kept compares resourceVersions.
        let legacy = Planned {
            resource_version: Some("7".into()),
            content_sha256: None,
        };
        assert!(legacy.matches(Some(&planned_obj)));
        assert!(!legacy.matches(Some(&deployment(2, "8", 2))));
    }
}
