//! Putting one step's backed-up paths back, in an order that never removes
//! the only copy of a file: first a file the step *moved* (found at a path
//! that did not exist before, holding exactly the bytes of a path that is
//! missing now — a static pod's manifest parked in staging) is moved back;
//! then every path that existed is restored from its copy; only then are
//! the paths that did not exist removed. When an operation fails, the
//! by-hand instructions for what is left are safe in every state the host
//! may be in (both files present, only the moved one, …), because nothing
//! is known about a host that stopped answering.

use crate::backup::{self, sha256_hex, BackupError, BackupRecord};
use remedy_transport::Transport;

/// Restoring one of a step's paths failed: which, why, and what is left to
/// do by hand (in order).
#[derive(Debug)]
pub(super) struct RestoreFailed {
    pub path: String,
    pub error: BackupError,
    /// Numbered by-hand instructions for what is left, safe in any state.
    pub by_hand: String,
}

/// The host's transport, and the jump host's for its local backups.
#[derive(Clone, Copy)]
pub(super) struct Sides<'t> {
    pub host: &'t dyn Transport,
    pub local: &'t dyn Transport,
}

impl<'t> Sides<'t> {
    fn of(&self, record: &BackupRecord) -> &'t dyn Transport {
        match record.local {
            true => self.local,
            false => self.host,
        }
    }
}

/// Paths that did not exist before the step and may now hold `existed`'s
/// bytes (it moved there): same file name and same side (host or jump
/// host), or the step's only such path when it backed up exactly two.
fn moved_candidates<'r>(existed: &BackupRecord, all: &'r [BackupRecord]) -> Vec<&'r BackupRecord> {
    let name = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let absent: Vec<&BackupRecord> = all
        .iter()
        .filter(|r| !r.existed && r.local == existed.local)
        .collect();
    let same_name: Vec<&BackupRecord> = absent
        .iter()
        .copied()
        .filter(|r| name(&r.path) == name(&existed.path))
        .collect();
    if !same_name.is_empty() || all.len() != 2 {
        return same_name;
    }
    absent
}

/// Put every path of one step back as its backups recorded.
pub(super) async fn restore_step(
    records: &[BackupRecord],
    sides: Sides<'_>,
) -> Result<Vec<String>, RestoreFailed> {
    let mut restored = Vec::new();
    let existed: Vec<&BackupRecord> = records.iter().filter(|r| r.existed).collect();
    let absent: Vec<&BackupRecord> = records.iter().filter(|r| !r.existed).collect();
    for (i, b) in existed.iter().enumerate() {
        let fail = |error| RestoreFailed {
            path: b.path.clone(),
            error,
            by_hand: by_hand(records, &existed[i..], &absent),
        };
        let t = sides.of(b);
        for a in moved_candidates(b, records) {
            if move_back(t, a, b).await.map_err(fail)? {
                restored.push(format!("{} (moved back from {})", b.path, a.path));
            }
        }
    }
    for (i, b) in existed.iter().enumerate() {
        let unchanged = !backup::differs_with_attrs(sides.of(b), b)
            .await
            .map_err(|e| RestoreFailed {
                path: b.path.clone(),
                error: e.into(),
                by_hand: by_hand(records, &existed[i..], &absent),
            })?;
        if unchanged {
            continue;
        }
        backup::restore(sides.of(b), b)
            .await
            .map_err(|error| RestoreFailed {
                path: b.path.clone(),
                error,
                by_hand: by_hand(records, &existed[i..], &absent),
            })?;
        restored.push(b.path.clone());
    }
    for (i, a) in absent.iter().enumerate() {
        let t = sides.of(a);
        let present = t.stat(&a.path).await.map_err(|e| RestoreFailed {
            path: a.path.clone(),
            error: e.into(),
            by_hand: by_hand(records, &[], &absent[i..]),
        })?;
        if present.is_none() {
            continue;
        }
        backup::restore(t, a).await.map_err(|error| RestoreFailed {
            path: a.path.clone(),
            error,
            by_hand: by_hand(records, &[], &absent[i..]),
        })?;
        restored.push(format!("{} (removed: it did not exist before)", a.path));
    }
    Ok(restored)
}

/// Move `from` (which did not exist before) back to `to` when `to` is
/// missing and `from` holds exactly `to`'s bytes from before. Whether it did.
async fn move_back(
    t: &dyn Transport,
    from: &BackupRecord,
    to: &BackupRecord,
) -> Result<bool, BackupError> {
    if t.stat(&to.path).await?.is_some() || t.stat(&from.path).await?.is_none() {
        return Ok(false);
    }
    let bytes = t.read_file(&from.path).await?;
    if Some(sha256_hex(&bytes)) != to.sha256 {
        return Ok(false);
    }
    t.rename(&from.path, &to.path).await?;
    Ok(true)
}

/// What is left, as numbered steps that are right whatever the host's
/// state: each path that existed is put back (moved back if it is missing
/// and the moved copy is there, else copied from its backup), and only
/// then are the paths that did not exist removed.
fn by_hand(all: &[BackupRecord], existed: &[&BackupRecord], absent: &[&BackupRecord]) -> String {
    let mut steps = Vec::new();
    for b in existed {
        let sha = b.sha256.as_deref().unwrap_or("?");
        let short = &sha[..sha.len().min(12)];
        let copy = match &b.location {
            Some(loc) => format!("copy {loc} to {} (sha256 {short}…)", b.path),
            None => format!("restore {} as it was before the run", b.path),
        };
        let moved: Vec<String> = moved_candidates(b, all)
            .iter()
            .map(|a| {
                format!(
                    "if {} is missing and {} exists with sha256 {short}…, move it back: mv {} {}",
                    b.path, a.path, a.path, b.path
                )
            })
            .collect();
        steps.push(match moved.is_empty() {
            true => copy,
            false => format!("{}; otherwise {copy}", moved.join("; ")),
        });
    }
    for a in absent {
        let keep: Vec<&str> = all
            .iter()
            .filter(|b| b.existed)
            .map(|b| b.path.as_str())
            .collect();
        steps.push(match keep.is_empty() {
            true => format!("remove {} (it did not exist before the run)", a.path),
            false => format!(
                "only once {} is back in place: remove {} (it did not exist before the run)",
                keep.join(" and "),
                a.path
            ),
        });
    }
    steps
        .iter()
        .enumerate()
        .map(|(n, s)| format!("{}) {s}", n + 1))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use remedy_transport::Local;

    fn record(path: &str, bytes: Option<&[u8]>, loc: Option<&str>) -> BackupRecord {
        BackupRecord {
            path: path.into(),
            existed: bytes.is_some(),
            sha256: bytes.map(sha256_hex),
            location: loc.map(str::to_string),
            mode: bytes.map(|_| 0o600),
            owner: None,
            size: bytes.map(|b| b.len() as u64),
            local: false,
            object: None,
            etcd_key: None,
        }
    }

    #[test]
    fn the_by_hand_steps_never_remove_the_moved_copy_first() {
        let m = "/etc/kubernetes/manifests/kube-apiserver.yaml";
        let s = "/var/lib/remedy/staging/kube-apiserver.yaml";
        let all = vec![
            record(m, Some(b"pod"), Some("/b/r/restart/m.yaml")),
            record(s, None, None),
        ];
        let existed: Vec<&BackupRecord> = all.iter().filter(|r| r.existed).collect();
        let absent: Vec<&BackupRecord> = all.iter().filter(|r| !r.existed).collect();
        let text = by_hand(&all, &existed, &absent);
        let sha = &sha256_hex(b"pod")[..12];
        assert_eq!(
            text,
            format!("1) if {m} is missing and {s} exists with sha256 {sha}…, move it back: mv {s} {m}; otherwise copy /b/r/restart/m.yaml to {m} (sha256 {sha}…); 2) only once {m} is back in place: remove {s} (it did not exist before the run)")
        );
        assert!(!text.starts_with("remove"), "{text}");
    }

    #[tokio::test]
    async fn a_parked_manifest_is_moved_back_before_anything_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let (m, s) = (
            format!("{root}/manifests/a.yaml"),
            format!("{root}/staging/a.yaml"),
        );
        std::fs::create_dir_all(format!("{root}/manifests")).unwrap();
        std::fs::create_dir_all(format!("{root}/staging")).unwrap();
        std::fs::write(&m, b"pod").unwrap();
        let t = Local::new("h");
        let records = vec![
            backup::take(&t, &format!("{root}/b"), "r", "restart", &m)
                .await
                .unwrap(),
            backup::take(&t, &format!("{root}/b"), "r", "restart", &s)
                .await
                .unwrap(),
        ];
        // Parked, and the backup copy gone: only a move can put it back.
        std::fs::rename(&m, &s).unwrap();
        std::fs::remove_file(records[0].location.as_ref().unwrap()).unwrap();
        let sides = Sides {
            host: &t,
            local: &t,
        };
        let done = restore_step(&records, sides).await.unwrap();
        assert_eq!(std::fs::read(&m).unwrap(), b"pod");
        assert!(!std::path::Path::new(&s).exists());
        assert_eq!(done, vec![format!("{m} (moved back from {s})")]);

        // Both present (a copy left in staging): the manifest stays, the
        // extra copy goes; restoring again changes nothing.
        std::fs::write(&s, b"pod").unwrap();
        restore_step(&records, sides).await.unwrap();
        assert_eq!(std::fs::read(&m).unwrap(), b"pod");
        assert!(!std::path::Path::new(&s).exists());
        assert!(restore_step(&records, sides).await.unwrap().is_empty());
    }
}
