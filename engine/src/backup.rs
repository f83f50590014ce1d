//! Backups are the engine's job, not each action's: before `apply`, every path
//! a plan declares is copied on the host to
//! `<backup_dir>/<run-id>/<step>/<path>` with its sha256, mode and owner — or
//! recorded as absent — and rollback puts back exactly that prior state.
//!
//! The backup directory is never inside the manifests directory: the kubelet
//! would start every file it finds there.

use remedy_transport::{TResult, Transport, TransportError, WriteAttrs};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a path was before a step changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub path: String,
    /// False when the path did not exist: rollback removes it.
    pub existed: bool,
    pub sha256: Option<String>,
    /// Where the copy is, on the same host.
    pub location: Option<String>,
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
    pub size: Option<u64>,
    /// On the jump host (remedy's own machine) rather than the target host.
    #[serde(default)]
    pub local: bool,
    /// A Kubernetes object rather than a file (`object_backup`): which one,
    /// and its resourceVersion when the backup was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<crate::object_backup::ObjectBackup>,
    /// An etcd key rather than a file (`etcd_backup`): which one, and its
    /// mod revision when the backup was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd_key: Option<crate::etcd_backup::EtcdKeyBackup>,
}

/// A backup an earlier run took, as the journal recorded it: what an action
/// that restores "the last good copy" (`apiserver.diagnose`) chooses from.
/// The CLI reads them from the journal into [`crate::RunOptions`]; the engine
/// itself never reads the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownBackup {
    /// The `backup_taken` event's id in the journal (`remedy backup show ID`).
    pub id: i64,
    pub run_id: String,
    pub host: String,
    pub step: String,
    pub time_ms: i64,
    pub record: BackupRecord,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("backup directory {dir} is inside the manifests directory {manifests}: the kubelet would start the copies as pods")]
    InsideManifests { dir: String, manifests: String },
    #[error("backup directory `{0}` must be an absolute path")]
    Relative(String),
    #[error("{path} is a directory; declare the files to back up one by one")]
    Directory { path: String },
    #[error("backup of {path} at {location} does not match its recorded sha256 (recorded {expected}, found {found}): it was changed after it was taken; restore by hand from the newest good copy")]
    Corrupt {
        path: String,
        location: String,
        expected: String,
        found: String,
    },
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Refuse a backup directory the kubelet would read.
impl BackupRecord {
    /// The record of `bytes` kept at `loc` on the jump host for `path`
    /// (an object or an etcd key says which in its own field).
    pub fn on_jump_host(path: String, loc: String, bytes: &[u8]) -> BackupRecord {
        BackupRecord {
            path,
            existed: true,
            sha256: Some(sha256_hex(bytes)),
            location: Some(loc),
            mode: None,
            owner: None,
            size: Some(bytes.len() as u64),
            local: true,
            object: None,
            etcd_key: None,
        }
    }

    /// Whether `backups` already hold a jump-host copy of `path` (a step
    /// retried or resumed keeps its first backup: the state before it).
    pub fn kept_among(backups: &[BackupRecord], path: &str) -> bool {
        backups.iter().any(|b| b.local && b.path == path)
    }
}

/// Write `bytes` to `loc` in the jump host's backup store (its directory
/// made): readable by its owner only, since an object or an etcd value may
/// hold secrets.
pub async fn keep_on_jump_host(loc: &str, bytes: &[u8]) -> TResult<()> {
    let local = remedy_transport::Local::new("the jump host");
    if let Some((parent, _)) = loc.rsplit_once('/') {
        local.mkdir_p(parent).await?;
    }
    local
        .write_file_atomic(
            loc,
            bytes,
            remedy_transport::WriteAttrs {
                mode: Some(0o600),
                owner: None,
            },
        )
        .await
}

pub fn check_location(backup_dir: &str, manifests_dir: &str) -> Result<(), BackupError> {
    if !backup_dir.starts_with('/') {
        return Err(BackupError::Relative(backup_dir.to_string()));
    }
    if remedy_manifest::under_manifests_dir(backup_dir, manifests_dir) {
        return Err(BackupError::InsideManifests {
            dir: backup_dir.to_string(),
            manifests: manifests_dir.to_string(),
        });
    }
    Ok(())
}

/// Where the copy of `path` goes for this run and step.
pub fn location(backup_dir: &str, run_id: &str, step: &str, path: &str) -> String {
    format!(
        "{}/{run_id}/{step}/{}",
        backup_dir.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// Record `path`'s current state and copy it under `backup_dir`.
pub async fn take(
    t: &dyn Transport,
    backup_dir: &str,
    run_id: &str,
    step: &str,
    path: &str,
) -> Result<BackupRecord, BackupError> {
    let Some(stat) = t.stat(path).await? else {
        return Ok(BackupRecord {
            path: path.into(),
            existed: false,
            sha256: None,
            location: None,
            mode: None,
            owner: None,
            size: None,
            local: false,
            object: None,
            etcd_key: None,
        });
    };
    if stat.is_dir {
        return Err(BackupError::Directory { path: path.into() });
    }
    let bytes = t.read_file(path).await?;
    let loc = location(backup_dir, run_id, step, path);
    if let Some(parent) = loc.rsplit_once('/').map(|(p, _)| p) {
        t.mkdir_p(parent).await?;
    }
    // The copy is readable by root only: it may be a private key.
    t.write_file_atomic(
        &loc,
        &bytes,
        WriteAttrs {
            mode: Some(0o600),
            owner: None,
        },
    )
    .await?;
    Ok(BackupRecord {
        path: path.into(),
        existed: true,
        sha256: Some(sha256_hex(&bytes)),
        location: Some(loc),
        mode: Some(stat.mode),
        owner: Some((stat.uid, stat.gid)),
        size: Some(bytes.len() as u64),
        local: false,
        object: None,
        etcd_key: None,
    })
}

/// Whether the path is no longer what the backup recorded (content or
/// existence). `resume` asks this of a step cut off after its intent: a
/// re-plan that finds nothing to do cannot tell "already applied" from
/// "never needed", the backup can.
pub async fn differs(t: &dyn Transport, record: &BackupRecord) -> TResult<bool> {
    match (t.stat(&record.path).await?, record.existed) {
        (None, existed) => Ok(existed),
        (Some(_), false) => Ok(true),
        (Some(_), true) => {
            let bytes = t.read_file(&record.path).await?;
            Ok(Some(sha256_hex(&bytes)) != record.sha256)
        }
    }
}

/// Whether the path is no longer exactly what the backup recorded: content,
/// existence, or (for a file that existed) its mode or owner. Rollback
/// leaves a path that is already back alone.
pub async fn differs_with_attrs(t: &dyn Transport, record: &BackupRecord) -> TResult<bool> {
    let Some(stat) = t.stat(&record.path).await? else {
        return Ok(record.existed);
    };
    let attrs = record.mode.is_some_and(|m| m != stat.mode)
        || record.owner.is_some_and(|o| o != (stat.uid, stat.gid));
    Ok(attrs || differs(t, record).await?)
}

/// Put `record.path` back exactly as it was: same bytes, mode and owner, or
/// absent. The copy is checked against its sha256 first.
pub async fn restore(t: &dyn Transport, record: &BackupRecord) -> Result<(), BackupError> {
    if !record.existed {
        t.remove(&record.path).await?;
        return Ok(());
    }
    let (Some(loc), Some(expected)) = (&record.location, &record.sha256) else {
        return Ok(());
    };
    let bytes = t.read_file(loc).await?;
    let found = sha256_hex(&bytes);
    if &found != expected {
        return Err(BackupError::Corrupt {
            path: record.path.clone(),
            location: loc.clone(),
            expected: expected.clone(),
            found,
        });
    }
    ensure_parent(t, &record.path).await?;
    t.write_file_atomic(
        &record.path,
        &bytes,
        WriteAttrs {
            mode: record.mode,
            owner: record.owner,
        },
    )
    .await?;
    Ok(())
}

async fn ensure_parent(t: &dyn Transport, path: &str) -> TResult<()> {
    if let Some((parent, _)) = path.rsplit_once('/') {
        if !parent.is_empty() && t.stat(parent).await?.is_none() {
            t.mkdir_p(parent).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use remedy_transport::Local;

    #[test]
    fn refuses_manifests_dir() {
        assert!(check_location(
            "/etc/kubernetes/manifests/backup",
            "/etc/kubernetes/manifests"
        )
        .is_err());
        assert!(check_location("/etc/kubernetes/manifests", "/etc/kubernetes/manifests/").is_err());
        assert!(check_location(
            "/etc/kubernetes/manifests-backup",
            "/etc/kubernetes/manifests"
        )
        .is_ok());
        assert!(check_location("relative", "/m").is_err());
    }

    #[tokio::test]
    async fn take_and_restore_round_trip_and_detect_corruption() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let file = format!("{root}/etc/f.conf");
        std::fs::create_dir_all(format!("{root}/etc")).unwrap();
        std::fs::write(&file, b"original\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let t = Local::new("h");
        let rec = take(&t, &format!("{root}/backups"), "run1", "edit", &file)
            .await
            .unwrap();
        assert_eq!(
            rec.sha256.as_deref(),
            Some(sha256_hex(b"original\n").as_str())
        );
        std::fs::write(&file, b"changed").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o777)).unwrap();
        restore(&t, &rec).await.unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"original\n");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o640
        );
        std::fs::write(rec.location.as_ref().unwrap(), b"tampered").unwrap();
        assert!(matches!(
            restore(&t, &rec).await,
            Err(BackupError::Corrupt { .. })
        ));
        let absent = take(
            &t,
            &format!("{root}/backups"),
            "run1",
            "edit",
            &format!("{root}/new"),
        )
        .await
        .unwrap();
        std::fs::write(format!("{root}/new"), b"x").unwrap();
        restore(&t, &absent).await.unwrap();
        assert!(!std::path::Path::new(&format!("{root}/new")).exists());
    }
}
