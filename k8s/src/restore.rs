//! Putting an object back as a backup recorded it: re-create a deleted one
//! (without the fields the server sets), put the prior content back on a
//! changed one, delete one that did not exist before — then read it again
//! and check it is the backup, apart from server-set fields.

use crate::client::Kube;
use crate::error::KubeError;
use crate::object::{resource_version, without_server_fields, ObjectRef};
use serde_json::Value;

/// What restoring did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restored {
    /// It had been deleted: created again from the backup.
    Recreated,
    /// It had changed: its prior content was put back.
    Replaced,
    /// It did not exist before: deleted.
    Deleted,
    /// Already as the backup recorded it (absent, or the same content).
    Unchanged,
}

impl Restored {
    /// `re-created ConfigMap d/x`, for the journal.
    pub fn describe(self, r: &ObjectRef) -> String {
        match self {
            Restored::Recreated => format!("re-created {r}"),
            Restored::Replaced => format!("put back {r}"),
            Restored::Deleted => format!("deleted {r} (it did not exist before)"),
            Restored::Unchanged => format!("{r} was already as backed up"),
        }
    }
}

/// Whether two versions of an object are the same apart from server-set fields.
pub fn same_object(a: &Value, b: &Value) -> bool {
    without_server_fields(a) == without_server_fields(b)
}

/// How often a restore is tried again when the object changed between
/// reading it and writing it back (a controller updating its status).
const CONFLICT_ATTEMPTS: u32 = 5;

/// Put `r` back to `backup` (`None`: it did not exist), then check. A
/// conflict (the object changed between the read and the write, as when a
/// controller writes its status) is read again and retried: putting the
/// backup back is the point, whatever changed meanwhile.
pub async fn restore(
    kube: &Kube,
    r: &ObjectRef,
    backup: Option<&Value>,
) -> Result<Restored, KubeError> {
    let mut attempt = 1;
    loop {
        match restore_once(kube, r, backup).await {
            Err(e) if e.is_conflict() && attempt < CONFLICT_ATTEMPTS => attempt += 1,
            other => return other,
        }
    }
}

async fn restore_once(
    kube: &Kube,
    r: &ObjectRef,
    backup: Option<&Value>,
) -> Result<Restored, KubeError> {
    let current = kube.get(r).await?;
    let done = match (backup, &current) {
        (None, None) => return Ok(Restored::Unchanged),
        (None, Some(cur)) => {
            kube.delete(r, "Background", resource_version(cur).as_deref(), false)
                .await?;
            Restored::Deleted
        }
        (Some(b), None) => {
            kube.create(b, false).await?;
            Restored::Recreated
        }
        (Some(b), Some(cur)) if same_object(b, cur) => return Ok(Restored::Unchanged),
        (Some(b), Some(cur)) => {
            kube.replace(b, resource_version(cur).as_deref(), false)
                .await?;
            Restored::Replaced
        }
    };
    let after = kube.get(r).await?;
    let ok = match (backup, &after) {
        (None, None) => true,
        // Deletion with finalizers takes a while: it is on its way.
        (None, Some(a)) => a["metadata"]["deletionTimestamp"].is_string(),
        (Some(b), Some(a)) => same_object(b, a),
        (Some(_), None) => false,
    };
    if !ok {
        return Err(KubeError::Decode {
            server: kube.server().to_string(),
            what: format!("restoring {r}"),
            detail: "read back, it is not what the backup recorded (another client changed it at the same time?)".into(),
        });
    }
    Ok(done)
}
