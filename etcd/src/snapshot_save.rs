//! Saving a member's snapshot as a new file in a directory on this machine,
//! as `etcdctl snapshot save` does but safer: streamed to `NAME.partial`
//! (mode 0600, never overwriting), checked as it arrives (etcd's appended
//! SHA-256, the announced size) and read back from disk after, renamed into
//! place only when both agree. A refused or failed snapshot leaves no file.
//! Each snapshot's name holds the member and the UTC time, so nothing is
//! ever overwritten.

use std::path::Path;

use crate::cluster::{ClusterMember, Progress};
use crate::error::MaintenanceError;
use crate::snapshot::verify_snapshot_file;

/// A snapshot saved and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSnapshot {
    pub path: String,
    /// The file's size: the database plus etcd's 32-byte digest.
    pub bytes: u64,
    pub db_bytes: u64,
    pub sha256: String,
}

/// `etcd-snapshot-master-1-20250102T030405Z.db`
pub fn snapshot_file_name(member: &str, at: time::OffsetDateTime) -> String {
    format!(
        "etcd-snapshot-{member}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.db",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

impl ClusterMember {
    /// Stream this member's snapshot into a new file under `dir` (created
    /// if needed), as the module doc says.
    pub async fn save_snapshot(
        &self,
        dir: &str,
        progress: Progress<'_>,
    ) -> Result<SavedSnapshot, MaintenanceError> {
        let member = self.client()?;
        let dir = dir.trim_end_matches('/');
        let io = |what: &str, e: std::io::Error| {
            MaintenanceError::refused(
                format!("{what}: {e}"),
                format!("make {dir} writable on the jump host, with room for the snapshot"),
            )
        };
        std::fs::create_dir_all(dir).map_err(|e| io(&format!("cannot create {dir}"), e))?;
        let name = snapshot_file_name(&self.name, time::OffsetDateTime::now_utc());
        let path = format!("{dir}/{name}");
        let partial = format!("{path}.partial");
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .await
            .map_err(|e| io(&format!("cannot create {partial}"), e))?;
        progress(&format!("snapshot of {} streaming to {path}", self.name), 0);
        let streamed = member.snapshot(&mut file).await;
        let synced = file.sync_all().await;
        drop(file);
        let discard = |e: MaintenanceError| {
            let _ = std::fs::remove_file(&partial);
            e
        };
        let info = match (streamed, synced) {
            (Ok(info), Ok(())) => info,
            (Err(e), _) => return Err(discard(e.into())),
            (_, Err(e)) => return Err(discard(io(&format!("cannot write {partial}"), e))),
        };
        // Read back what is on disk: the file, not the stream, is what a
        // restore will use.
        let on_disk = verify_snapshot_file(Path::new(&partial))
            .await
            .map_err(|e| discard(e.into()))?;
        if on_disk.sha256 != info.sha256 || on_disk.bytes != info.bytes {
            return Err(discard(MaintenanceError::failed(format!(
                "the snapshot file {partial} differs from what etcd sent ({} bytes, sha256 {} on disk; {} bytes, sha256 {} streamed)",
                on_disk.bytes, on_disk.sha256, info.bytes, info.sha256
            ))));
        }
        std::fs::rename(&partial, &path).map_err(|e| io(&format!("cannot rename {partial}"), e))?;
        Ok(SavedSnapshot {
            path,
            bytes: info.bytes,
            db_bytes: info.db_bytes,
            sha256: info.sha256,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::tests::unreached;

    #[test]
    fn names_hold_the_member_and_the_utc_time() {
        let at = time::OffsetDateTime::from_unix_timestamp(1_735_787_045).unwrap();
        assert_eq!(
            snapshot_file_name("master-1", at),
            "etcd-snapshot-master-1-20250102T030405Z.db"
        );
    }

    #[tokio::test]
    async fn an_unreachable_member_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("snapshots");
        let cluster = unreached(&["a"]);
        let err = cluster.members[0]
            .save_snapshot(target.to_str().unwrap(), &|_, _| {})
            .await
            .err()
            .unwrap();
        assert_eq!(err.to_string(), "not connected");
        assert!(!target.exists());
    }
}
