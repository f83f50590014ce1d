//! `etcd.snapshot`: stream a snapshot from one member to a new file on the
//! jump host, through the SSH tunnel, checking etcd's appended SHA-256 and
//! the announced size as it arrives and the written file again after; an
//! empty or truncated snapshot is refused and its partial file removed.
//! Each snapshot is a new file (member and time in its name), so nothing is
//! overwritten and rollback never deletes one.

use super::etcd::{connect_all, Conn};
use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdSnapshot {
    dir: String,
    member: Option<String>,
}

impl EtcdSnapshot {
    /// The member to stream from: the one named, else the first healthy one.
    async fn pick<'c>(&self, conns: &'c [Conn]) -> Result<&'c Conn, ActionError> {
        if let Some(name) = self.member.as_deref().filter(|m| !m.is_empty()) {
            let c = conns.iter().find(|c| c.name() == name).ok_or_else(|| {
                ActionError::precondition(
                    format!("no etcd member `{name}`"),
                    format!(
                        "members (group `etcd`): {}",
                        conns.iter().map(Conn::name).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            if let Err(e) = &c.member {
                return Err(ActionError::failed(format!("etcd member {name}: {e}")));
            }
            return Ok(c);
        }
        for c in conns {
            if let Ok(m) = &c.member {
                if m.health().await.is_ok() {
                    return Ok(c);
                }
            }
        }
        Err(ActionError::failed(format!(
            "no etcd member is healthy, so no snapshot can be taken ({})",
            conns
                .iter()
                .map(|c| match &c.member {
                    Ok(_) => format!("{}: unhealthy", c.name()),
                    Err(e) => format!("{}: {e}", c.name()),
                })
                .collect::<Vec<_>>()
                .join("; ")
        )))
    }
}

#[async_trait]
impl Action for EtcdSnapshot {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let conns = connect_all(ctx).await?;
        let c = self.pick(&conns).await?;
        let size = match &c.member {
            Ok(m) => m.status().await.map(|s| s.db_size).unwrap_or(0),
            Err(_) => 0,
        };
        Ok(Plan {
            summary: format!(
                "snapshot etcd from {} (db {}) to {}/ on the jump host",
                c.name(),
                remedy_etcd::human_bytes(size),
                self.dir.trim_end_matches('/')
            ),
            changes: vec![Change::Command {
                cmd: format!(
                    "stream a snapshot of {} to {}/etcd-snapshot-{}-<time>.db (sha256 checked)",
                    c.name(),
                    self.dir.trim_end_matches('/'),
                    c.name()
                ),
            }],
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let conns = connect_all(ctx).await?;
        let c = self.pick(&conns).await?;
        let member = c
            .member
            .as_ref()
            .map_err(|e| ActionError::failed(e.clone()))?;
        let dir = self.dir.trim_end_matches('/');
        let io = |what: &str, e: std::io::Error| {
            ActionError::precondition(
                format!("{what}: {e}"),
                format!("make {dir} writable on the jump host, with room for the snapshot"),
            )
        };
        std::fs::create_dir_all(dir).map_err(|e| io(&format!("cannot create {dir}"), e))?;
        let stamp = time::OffsetDateTime::now_utc();
        let name = format!(
            "etcd-snapshot-{}-{:04}{:02}{:02}T{:02}{:02}{:02}Z.db",
            c.name(),
            stamp.year(),
            u8::from(stamp.month()),
            stamp.day(),
            stamp.hour(),
            stamp.minute(),
            stamp.second()
        );
        let path = format!("{dir}/{name}");
        let partial = format!("{path}.partial");
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)
            .await
            .map_err(|e| io(&format!("cannot create {partial}"), e))?;
        (ctx.progress)(&format!("snapshot of {} streaming to {path}", c.name()), 0);
        let streamed = member.snapshot(&mut file).await;
        let synced = file.sync_all().await;
        drop(file);
        let info = match (streamed, synced) {
            (Ok(info), Ok(())) => info,
            (Err(e), _) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e.into());
            }
            (_, Err(e)) => {
                let _ = std::fs::remove_file(&partial);
                return Err(io(&format!("cannot write {partial}"), e));
            }
        };
        // Read back what is on disk: the file, not the stream, is what a
        // restore will use.
        let on_disk = match remedy_etcd::verify_snapshot_file(std::path::Path::new(&partial)).await
        {
            Ok(i) => i,
            Err(e) => {
                let _ = std::fs::remove_file(&partial);
                return Err(e.into());
            }
        };
        if on_disk.sha256 != info.sha256 || on_disk.bytes != info.bytes {
            let _ = std::fs::remove_file(&partial);
            return Err(ActionError::failed(format!(
                "the snapshot file {partial} differs from what etcd sent ({} bytes, sha256 {} on disk; {} bytes, sha256 {} streamed)",
                on_disk.bytes, on_disk.sha256, info.bytes, info.sha256
            )));
        }
        std::fs::rename(&partial, &path).map_err(|e| io(&format!("cannot rename {partial}"), e))?;
        Ok(result(
            true,
            json!({
                "path": path,
                "member": c.name(),
                "bytes": info.bytes,
                "db_bytes": info.db_bytes,
                "sha256": info.sha256,
            }),
        ))
    }
}
