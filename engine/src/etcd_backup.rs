//! etcd keys in the backup store: before `etcd.delete_key` deletes a key,
//! the engine reads its value as etcd holds it (raw bytes — the API server
//! stores most objects as protobuf) and writes it under
//! `$REMEDY_HOME/backups/<run-id>/<step>/etcd/<key>` on the jump host (mode
//! 0600), with its sha256 and mod revision journaled. Rollback puts exactly
//! those bytes back, and only while the key is still absent: a key made
//! again since (by the API server) is never overwritten.
//!
//! The revision the plan saw is checked here too: a key changed after the
//! plan fails the step before anything is deleted.

use crate::backup::{sha256_hex, BackupRecord};
use remedy_etcd::Member;
use remedy_transport::{Local, Transport};
use serde::{Deserialize, Serialize};

/// Which key a backup holds, and its mod revision when it was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdKeyBackup {
    pub key: String,
    pub mod_revision: i64,
}

/// What a backup record of a key is called (its `path`).
pub fn record_path(key: &str) -> String {
    format!("etcd:{key}")
}

/// Where the copy of `key` goes for this run and step.
pub fn location(dir: &str, run_id: &str, step: &str, key: &str) -> String {
    format!(
        "{}/{run_id}/{step}/etcd/{}",
        dir.trim_end_matches('/'),
        key.trim_start_matches('/')
    )
}

/// Read `key` through `member` and keep its bytes under `dir`, after
/// checking it is still at the revision the plan saw.
pub async fn take(
    member: &Member,
    dir: &str,
    run_id: &str,
    step: &str,
    key: &str,
    planned: i64,
) -> Result<BackupRecord, String> {
    let (bytes, now) = match member.get_raw(key).await.map_err(|e| e.to_string())? {
        Some(found) => found,
        None => {
            return Err(format!(
            "{key} is gone since the plan (mod revision {planned} then), so nothing was deleted"
        ))
        }
    };
    if now != planned {
        return Err(format!(
            "{key} changed after the plan (mod revision {planned} when planned, {now} now), so nothing was deleted"
        ));
    }
    let loc = location(dir, run_id, step, key);
    crate::backup::keep_on_jump_host(&loc, &bytes)
        .await
        .map_err(|e| e.to_string())?;
    Ok(BackupRecord {
        etcd_key: Some(EtcdKeyBackup {
            key: key.to_string(),
            mod_revision: now,
        }),
        ..BackupRecord::on_jump_host(record_path(key), loc, &bytes)
    })
}

/// The bytes a backup holds, checked against its sha256.
async fn stored(record: &BackupRecord) -> Result<Vec<u8>, String> {
    let (Some(loc), Some(expected)) = (&record.location, &record.sha256) else {
        return Err(format!("the backup of {} has no copy", record.path));
    };
    let bytes = Local::new("the jump host")
        .read_file(loc)
        .await
        .map_err(|e| e.to_string())?;
    if &sha256_hex(&bytes) != expected {
        return Err(format!(
            "the backup of {} at {loc} does not match its recorded sha256: it was changed after it was taken",
            record.path
        ));
    }
    Ok(bytes)
}

/// Put the key's saved bytes back while it is absent. What was done, in
/// words.
pub async fn restore(member: &Member, record: &BackupRecord) -> Result<String, String> {
    let Some(meta) = &record.etcd_key else {
        return Ok(String::new());
    };
    let bytes = stored(record).await?;
    if member
        .create_raw(&meta.key, bytes.clone())
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(format!("put back {} ({} bytes)", meta.key, bytes.len()));
    }
    match member.get_raw(&meta.key).await.map_err(|e| e.to_string())? {
        Some((now, _)) if now == bytes => Ok(format!("{} already holds its saved value", meta.key)),
        _ => Err(format!(
            "{} exists again with another value (made again since the deletion), so it was not overwritten",
            meta.key
        )),
    }
}

/// Whether the key no longer holds what the backup recorded (resume asks
/// this of a step cut off after its intent).
pub async fn differs(member: &Member, record: &BackupRecord) -> Result<bool, String> {
    let Some(meta) = &record.etcd_key else {
        return Ok(false);
    };
    let bytes = stored(record).await?;
    let now = member.get_raw(&meta.key).await.map_err(|e| e.to_string())?;
    Ok(now.map(|(v, _)| v) != Some(bytes))
}

/// What to do by hand when restoring `record` failed.
pub fn by_hand(record: &BackupRecord) -> String {
    let key = record
        .etcd_key
        .as_ref()
        .map(|m| m.key.as_str())
        .unwrap_or(&record.path);
    format!(
        "put {key} back by hand: `etcdctl put {key} < {}` (sha256 {}…) from a master, or restore the snapshot the step took (etcd-restore)",
        record.location.as_deref().unwrap_or("?"),
        record
            .sha256
            .as_deref()
            .map(|s| &s[..s.len().min(12)])
            .unwrap_or("?")
    )
}
