//! `etcd.restore`: rebuild every etcd member from one snapshot on the jump
//! host — what is left when quorum is lost or the data is destroyed. Run
//! once (`run_once: true`) for the whole cluster (group `etcd`):
//!
//! 1. on every master, the kube-apiserver and etcd manifests go to the
//!    staging directory, and the containers must be gone;
//! 2. the snapshot is copied to each master (sha256 checked), each member's
//!    `<data-dir>/member` is moved aside to `member.before-restore-<time>`
//!    (never deleted), and `etcdutl snapshot restore` rebuilds it with the
//!    member's `--name`, `--initial-advertise-peer-urls` and the
//!    `--initial-cluster` of all members, read from their manifests;
//! 3. the etcd manifests go back on every master at once (a lone member
//!    cannot elect a leader), and every member must be healthy with a leader;
//! 4. the API server manifests go back, and each must answer its health
//!    endpoint on its own master.
//!
//! The plan says what is lost: the snapshot's revision (from the jump
//! host's `etcdutl snapshot status`, when there is one) against each
//! member's last revision (when it still answers).

use super::etcd::{connect_all, etcd_hosts};
use super::static_pod_restart::{container, healthy, parking};
use super::{result, Action, ActionError, Secs, StepCtx};
use crate::backup::sha256_hex;
use crate::inventory::Host;
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_manifest::{flag_value, health_url};
use remedy_transport::shell::quote;
use remedy_transport::{Transport, WriteAttrs};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdRestore {
    /// A snapshot file on the jump host, or a directory: its newest `*.db`.
    snapshot: String,
    /// etcdutl on the masters.
    etcdutl: Option<String>,
    /// etcdutl on the jump host, to read the snapshot's revision.
    local_etcdutl: Option<String>,
    /// Where the snapshot is copied on each master.
    upload_dir: Option<String>,
    /// A key the snapshot holds, read back after the restore.
    expect_key: Option<String>,
    timeout: Option<Secs>,
}

/// What every kubeadm cluster's etcd holds.
const DEFAULT_EXPECT_KEY: &str = "/registry/namespaces/kube-system";

/// One member, from its master's etcd manifest.
struct MemberPlan {
    host: Host,
    name: String,
    peer_url: String,
    data_dir: String,
    token: String,
}

fn flag_or(text: &str, name: &str, default: &str) -> String {
    flag_value(text, name).unwrap_or_else(|| default.to_string())
}

impl EtcdRestore {
    fn limit(&self) -> Duration {
        Duration::from_secs(self.timeout.map_or(300, |s| s.0).max(1))
    }

    /// The snapshot file: `snapshot` itself, or the newest `*.db` in it.
    fn snapshot_file(&self) -> Result<std::path::PathBuf, ActionError> {
        let given = std::path::Path::new(&self.snapshot);
        if !given.is_dir() {
            return Ok(given.to_path_buf());
        }
        let newest = std::fs::read_dir(given)
            .map_err(|e| ActionError::failed(format!("reading {}: {e}", self.snapshot)))?
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "db"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .max();
        newest.map(|(_, p)| p).ok_or_else(|| {
            ActionError::precondition(
                format!("no snapshot (*.db) in {} on the jump host", self.snapshot),
                "take one with `remedy run etcd-snapshot` while etcd is healthy, or pass the file with -p snapshot=PATH",
            )
        })
    }

    /// The snapshot's revision by the jump host's etcdutl, or why not.
    async fn snapshot_revision(&self, file: &std::path::Path) -> Result<i64, String> {
        let tool = self
            .local_etcdutl
            .clone()
            .unwrap_or_else(|| "etcdutl".into());
        let out = tokio::process::Command::new(&tool)
            .args(["snapshot", "status", "-w", "json"])
            .arg(file)
            .output()
            .await
            .map_err(|e| format!("no {tool} on the jump host ({e})"))?;
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|_| {
            format!(
                "{tool} snapshot status failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )
        })?;
        v["revision"]
            .as_i64()
            .ok_or_else(|| format!("{tool} printed no revision"))
    }

    /// Every member from its master's etcd manifest (in place or staged).
    async fn members(&self, ctx: &StepCtx<'_>) -> Result<Vec<MemberPlan>, ActionError> {
        let mut out = Vec::new();
        for host in etcd_hosts(ctx)? {
            let t = ctx.connect_peer(host).await?;
            let p = parking(host)?;
            let path = if t.stat(&p.manifest("etcd")).await?.is_some() {
                p.manifest("etcd")
            } else {
                p.staging("etcd")
            };
            let text = String::from_utf8_lossy(&t.read_file(&path).await.map_err(|e| {
                ActionError::precondition(
                    format!("cannot read etcd's manifest on {}: {e}", host.name),
                    "the restore reads each member's name and peer URL from it",
                )
            })?)
            .into_owned();
            let name = flag_value(&text, "name").ok_or_else(|| {
                ActionError::precondition(
                    format!("{path} on {} has no --name", host.name),
                    "is it an etcd manifest?",
                )
            })?;
            let peer_url = flag_value(&text, "initial-advertise-peer-urls").ok_or_else(|| {
                ActionError::precondition(
                    format!(
                        "{path} on {} has no --initial-advertise-peer-urls",
                        host.name
                    ),
                    "is it an etcd manifest?",
                )
            })?;
            out.push(MemberPlan {
                host: host.clone(),
                name,
                peer_url,
                data_dir: flag_or(&text, "data-dir", "/var/lib/etcd"),
                token: flag_or(&text, "initial-cluster-token", "etcd-cluster"),
            });
        }
        Ok(out)
    }

    fn initial_cluster(members: &[MemberPlan]) -> String {
        members
            .iter()
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn restore_cmd(&self, m: &MemberPlan, cluster: &str, snap: &str) -> String {
        format!(
            "{} snapshot restore {} --name {} --initial-cluster {} --initial-cluster-token {} --initial-advertise-peer-urls {} --data-dir {}",
            quote(self.etcdutl.as_deref().unwrap_or("etcdutl")),
            quote(snap),
            quote(&m.name),
            quote(cluster),
            quote(&m.token),
            quote(&m.peer_url),
            quote(&format!("{}/.remedy-restore", m.data_dir))
        )
    }

    fn upload_path(&self, sha: &str) -> String {
        format!(
            "{}/snapshot-{}.db",
            self.upload_dir
                .as_deref()
                .unwrap_or("/var/lib/remedy/etcd-restore")
                .trim_end_matches('/'),
            &sha[..sha.len().min(16)]
        )
    }

    /// What is lost: the snapshot's revision against the members' last.
    async fn loss(&self, ctx: &StepCtx<'_>, file: &std::path::Path) -> (String, Value) {
        let snap = self.snapshot_revision(file).await;
        let mut lines = Vec::new();
        let mut members = Vec::new();
        let mut newest: Option<i64> = None;
        if let Ok(cluster) = connect_all(ctx).await {
            for (c, s) in cluster.members.iter().zip(cluster.statuses().await) {
                match s {
                    Ok(s) => {
                        newest = newest.max(Some(s.revision));
                        lines.push(format!("{} at revision {}", c.name, s.revision));
                        members.push(json!({ "host": c.name, "revision": s.revision }));
                    }
                    Err(e) => {
                        lines.push(format!("{} does not answer", c.name));
                        members.push(json!({ "host": c.name, "error": e }));
                    }
                }
            }
        }
        let verdict = match (&snap, newest) {
            (Ok(r), Some(n)) if n > *r => format!(
                "the snapshot is at revision {r}; the newest member that answers is at {n}: up to {} revisions written after the snapshot are lost",
                n - r
            ),
            (Ok(r), Some(n)) => format!(
                "the snapshot is at revision {r}; no member that answers is newer ({n}): nothing they hold is lost"
            ),
            (Ok(r), None) => format!(
                "the snapshot is at revision {r}; no member answers, so what was written after it cannot be counted: it is lost"
            ),
            (Err(e), _) => format!(
                "the snapshot's revision is unknown ({e}); everything written after it was taken is lost"
            ),
        };
        (
            format!("{verdict} ({})", lines.join(", ")),
            json!({ "snapshot_revision": snap.ok(), "members": members }),
        )
    }

    /// Move `pod`'s manifest to staging on `t` (already there: nothing).
    async fn stage(t: &dyn Transport, host: &Host, pod: &str) -> Result<(), ActionError> {
        let p = parking(host)?;
        if t.stat(&p.manifest(pod)).await?.is_some() {
            if let Some((dir, _)) = p.staging(pod).rsplit_once('/') {
                t.mkdir_p(dir).await?;
            }
            t.rename(&p.manifest(pod), &p.staging(pod)).await?;
        }
        Ok(())
    }

    async fn unstage(t: &dyn Transport, host: &Host, pod: &str) -> Result<(), ActionError> {
        let p = parking(host)?;
        if t.stat(&p.staging(pod)).await?.is_some() {
            t.rename(&p.staging(pod), &p.manifest(pod)).await?;
        }
        Ok(())
    }

    /// Poll every second until `check` holds or the limit passes.
    async fn until<F, Fut>(
        &self,
        ctx: &StepCtx<'_>,
        what: &str,
        mut check: F,
    ) -> Result<(), ActionError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Result<(), String>, ActionError>>,
    {
        let start = ctx.clock.now();
        loop {
            let last = match check().await? {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            let waited = ctx.clock.now().duration_since(start).unwrap_or_default();
            if waited >= self.limit() {
                return Err(ActionError::Failed {
                    message: format!(
                        "{what}: not within {}s ({last})",
                        self.limit().as_secs()
                    ),
                    hint: Some("each master's old data is in <data-dir>/member.before-restore-*; manifests not back in place are listed as stranded with the command that puts them back".into()),
                });
            }
            (ctx.progress)(what, waited.as_secs());
            ctx.clock.sleep(Duration::from_secs(1)).await;
        }
    }
}

#[async_trait]
impl Action for EtcdRestore {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let file = self.snapshot_file()?;
        let info = remedy_etcd::verify_snapshot_file(&file).await?;
        let members = self.members(ctx).await?;
        let cluster = Self::initial_cluster(&members);
        let snap = self.upload_path(&info.sha256);
        let (loss, _) = self.loss(ctx, &file).await;
        let mut changes = vec![Change::Note {
            text: format!("data loss: {loss}"),
        }];
        for m in &members {
            let p = parking(&m.host)?;
            for pod in ["kube-apiserver", "etcd"] {
                changes.push(Change::Move {
                    from: format!("{}:{}", m.host.name, p.manifest(pod)),
                    to: format!("{}:{}", m.host.name, p.staging(pod)),
                });
            }
        }
        for m in &members {
            changes.push(Change::Command {
                cmd: format!(
                    "on {}: copy {} to {snap}; move {dd}/member to {dd}/member.before-restore-<time> (kept); {}; move the restored member into {dd}",
                    m.host.name,
                    file.display(),
                    self.restore_cmd(m, &cluster, &snap),
                    dd = m.data_dir
                ),
            });
        }
        changes.push(Change::Note {
            text: "then: etcd manifests back on every master at once, wait for a leader and every member healthy; then the API server manifests back, each answering its health endpoint".into(),
        });
        Ok(Plan {
            summary: format!(
                "restore etcd on {} member(s) from {} ({} bytes, sha256 {}); {loss}",
                members.len(),
                file.display(),
                info.bytes,
                &info.sha256[..12]
            ),
            changes,
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let file = self.snapshot_file()?;
        let info = remedy_etcd::verify_snapshot_file(&file).await?;
        let (_, loss) = self.loss(ctx, &file).await;
        let bytes = tokio::fs::read(&file)
            .await
            .map_err(|e| ActionError::failed(format!("reading {}: {e}", file.display())))?;
        let members = self.members(ctx).await?;
        let cluster = Self::initial_cluster(&members);
        let snap = self.upload_path(&info.sha256);
        let mut peers = Vec::new();
        for m in &members {
            peers.push(ctx.connect_peer(&m.host).await?);
        }
        // 1. Stop the API servers, then etcd, everywhere.
        for pod in ["kube-apiserver", "etcd"] {
            for (m, t) in members.iter().zip(&peers) {
                Self::stage(t.as_ref(), &m.host, pod).await?;
            }
        }
        for (m, t) in members.iter().zip(&peers) {
            for pod in ["kube-apiserver", "etcd"] {
                let what = format!("{pod} on {} to stop", m.host.name);
                self.until(ctx, &what, || async {
                    Ok(
                        match container(t.as_ref(), pod, ctx.command_timeout).await? {
                            None => Ok(()),
                            Some(c) => Err(format!("container {c} still runs")),
                        },
                    )
                })
                .await?;
            }
        }
        // 2. Copy the snapshot, move the old data aside, restore.
        let stamp = ctx
            .clock
            .now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut restored = Vec::new();
        for (m, t) in members.iter().zip(&peers) {
            let t = t.as_ref();
            if let Some((dir, _)) = snap.rsplit_once('/') {
                t.mkdir_p(dir).await?;
            }
            t.write_file_atomic(
                &snap,
                &bytes,
                WriteAttrs {
                    mode: Some(0o600),
                    owner: None,
                },
            )
            .await?;
            if sha256_hex(&t.read_file(&snap).await?) != info.sha256 {
                return Err(ActionError::failed(format!(
                    "the snapshot copied to {snap} on {} does not have its sha256 {}",
                    m.host.name, info.sha256
                )));
            }
            let (member, temp) = (
                format!("{}/member", m.data_dir),
                format!("{}/.remedy-restore", m.data_dir),
            );
            let mut aside = Vec::new();
            for (path, suffix) in [(&member, ""), (&temp, ".remedy-restore")] {
                if t.stat(path).await?.is_some() {
                    let to = format!("{}/member.before-restore-{stamp}{suffix}", m.data_dir);
                    t.rename(path, &to).await?;
                    aside.push(to);
                }
            }
            let cmd = format!(
                "{} && mv {} {} && rmdir {}",
                self.restore_cmd(m, &cluster, &snap),
                quote(&format!("{temp}/member")),
                quote(&member),
                quote(&temp)
            );
            let out = t.exec(&cmd, ctx.command_timeout).await?;
            if !out.success() {
                return Err(ActionError::Failed {
                    message: format!(
                        "etcdutl snapshot restore failed on {}: {}",
                        m.host.name,
                        super::tail(&format!("{}{}", out.stdout, out.stderr))
                    ),
                    hint: Some(format!(
                        "the old data is kept in {}; the manifests are in staging",
                        aside.join(", ")
                    )),
                });
            }
            restored.push(json!({
                "host": m.host.name,
                "name": m.name,
                "data_dir": m.data_dir,
                "moved_aside": aside,
            }));
        }
        // 3. etcd back everywhere at once; a leader and every member healthy.
        for (m, t) in members.iter().zip(&peers) {
            Self::unstage(t.as_ref(), &m.host, "etcd").await?;
        }
        self.until(
            ctx,
            "etcd to elect a leader with every member healthy",
            || async {
                let cluster = connect_all(ctx).await?;
                if let Err(e) = cluster.all_healthy().await {
                    return Ok(Err(e));
                }
                let leader = cluster
                    .statuses()
                    .await
                    .into_iter()
                    .flatten()
                    .any(|s| s.leader_id != 0);
                Ok(if leader {
                    Ok(())
                } else {
                    Err("no leader yet".into())
                })
            },
        )
        .await?;
        // The snapshot's data is there, not an empty new cluster.
        let key = self.expect_key.as_deref().unwrap_or(DEFAULT_EXPECT_KEY);
        let cluster = connect_all(ctx).await?;
        let Some(first) = cluster.members.first() else {
            return Err(ActionError::failed("no etcd member to read from"));
        };
        let member = first.client()?;
        if !member.key_exists(key).await? {
            return Err(ActionError::Failed {
                message: format!("etcd is back but has no {key}: the snapshot does not hold this cluster's data"),
                hint: Some("the API servers were left stopped (manifests in staging); the old data is in each <data-dir>/member.before-restore-*".into()),
            });
        }
        // 4. The API servers back, each healthy on its own master.
        for (m, t) in members.iter().zip(&peers) {
            Self::unstage(t.as_ref(), &m.host, "kube-apiserver").await?;
        }
        for (m, t) in members.iter().zip(&peers) {
            let p = parking(&m.host)?;
            let text = String::from_utf8_lossy(&t.read_file(&p.manifest("kube-apiserver")).await?)
                .into_owned();
            if let Some(url) = health_url("kube-apiserver", &text, None) {
                let what = format!("kube-apiserver on {} to be healthy ({url})", m.host.name);
                self.until(ctx, &what, || async {
                    Ok(if healthy(t.as_ref(), &url).await? {
                        Ok(())
                    } else {
                        Err(format!("{url} does not answer 200"))
                    })
                })
                .await?;
            }
        }
        let revision = connect_all(ctx)
            .await?
            .statuses()
            .await
            .into_iter()
            .flatten()
            .map(|s| s.revision)
            .max();
        Ok(result(
            true,
            json!({
                "snapshot": file.display().to_string(),
                "sha256": info.sha256,
                "snapshot_revision": loss["snapshot_revision"],
                "members_before": loss["members"],
                "members": restored,
                "revision": revision,
                "key_found": key,
            }),
        ))
    }
}
