//! `file.edit`: change flags and resource values of a container in a
//! static-pod manifest, by splicing text (see `manifest_edit`), so the plan's
//! diff shows only the lines that change. With `check`, it only says
//! whether the edit would change the file (`would_change`): a runbook drains
//! a master before an edit the kubelet restarts the component for.

use super::{result, Action, ActionError, StepCtx};
use crate::backup::sha256_hex;
use crate::plan::{unified_diff, Change, Plan};
use async_trait::async_trait;
use remedy_manifest::{edit, EditOp};
use remedy_transport::WriteAttrs;
use serde::Deserialize;
use serde_json::{json, Map, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEdit {
    path: String,
    container: Option<String>,
    #[serde(default)]
    set_flags: Pairs,
    #[serde(default)]
    remove_flags: Vec<String>,
    #[serde(default)]
    add_to_flags: Pairs,
    #[serde(default)]
    set_resources: Pairs,
    #[serde(default)]
    remove_resources: Vec<String>,
    #[serde(default)]
    check: bool,
}

/// Name → value pairs, written as a mapping or as a list of `name=value`
/// strings (what a runbook can compute from a list param).
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Pairs {
    #[default]
    None,
    Map(Map<String, Value>),
    List(Vec<String>),
}

impl Pairs {
    fn pairs(&self, what: &str) -> Result<Vec<(String, String)>, ActionError> {
        match self {
            Pairs::None => Ok(Vec::new()),
            Pairs::Map(m) => Ok(m.iter().map(|(k, v)| (k.clone(), text(v))).collect()),
            Pairs::List(items) => items
                .iter()
                .map(|item| match item.split_once('=') {
                    Some((k, v)) => Ok((k.to_string(), v.to_string())),
                    None => Err(ActionError::BadArguments {
                        action: "file.edit",
                        message: format!("`{item}` in {what} has no value: write NAME=VALUE (e.g. --profiling=false, limits.memory=2Gi)"),
                    }),
                })
                .collect(),
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `max-requests-inflight` and `--max-requests-inflight` both mean the flag.
fn flag_name(name: &str) -> String {
    format!("--{}", name.trim_start_matches('-'))
}

/// The comma-separated `current` list with every item of `add` it lacks
/// appended, in order: `--disable-admission-plugins=A` plus `B,A` is `A,B`.
fn with_items(current: Option<&str>, add: &str) -> String {
    let mut items: Vec<&str> = current
        .unwrap_or("")
        .split(',')
        .filter(|i| !i.is_empty())
        .collect();
    for item in add.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if !items.contains(&item) {
            items.push(item);
        }
    }
    items.join(",")
}

impl FileEdit {
    /// The edits, with `add_to_flags` made into the flag's whole new value
    /// from `manifest` (the text being edited).
    fn ops(&self, manifest: &str) -> Result<Vec<EditOp>, ActionError> {
        let mut ops = Vec::new();
        ops.extend(
            self.set_flags
                .pairs("set_flags")?
                .into_iter()
                .map(|(k, v)| EditOp::SetFlag {
                    name: flag_name(&k),
                    value: v,
                }),
        );
        ops.extend(
            self.remove_flags
                .iter()
                .map(|k| EditOp::RemoveFlag { name: flag_name(k) }),
        );
        let added = self.add_to_flags.pairs("add_to_flags")?;
        if !added.is_empty() && self.container.is_some() {
            return Err(ActionError::BadArguments {
                action: "file.edit",
                message:
                    "add_to_flags reads the pod's first container's flags: leave `container` out"
                        .into(),
            });
        }
        ops.extend(added.into_iter().map(|(k, v)| {
            let name = flag_name(&k);
            let current = remedy_manifest::flag_value(manifest, name.trim_start_matches('-'));
            EditOp::SetFlag {
                value: with_items(current.as_deref(), &v),
                name,
            }
        }));
        ops.extend(
            self.set_resources
                .pairs("set_resources")?
                .into_iter()
                .map(|(k, v)| EditOp::SetResource { key: k, value: v }),
        );
        ops.extend(
            self.remove_resources
                .iter()
                .map(|k| EditOp::RemoveResource { key: k.clone() }),
        );
        Ok(ops)
    }

    async fn edited(&self, ctx: &StepCtx<'_>) -> Result<(String, String), ActionError> {
        if ctx.transport.stat(&self.path).await?.is_none() {
            return Err(ActionError::precondition(
                format!("manifest {} does not exist on {}", self.path, ctx.host.name),
                "check the path (and `manifests_dir` in the inventory); if a manifest was moved out for a restart, put it back first",
            ));
        }
        let bytes = ctx.transport.read_file(&self.path).await?;
        let old = String::from_utf8(bytes).map_err(|_| {
            ActionError::precondition(
                format!("{} is not UTF-8 text", self.path),
                "only YAML manifests can be edited",
            )
        })?;
        let new = edit(&old, self.container.as_deref(), &self.ops(&old)?).map_err(|e| {
            ActionError::Precondition {
                message: format!("cannot edit {}: {e}", self.path),
                hint: Some("inspect the manifest; nothing was changed".into()),
            }
        })?;
        Ok((old, new))
    }
}

#[async_trait]
impl Action for FileEdit {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        if self.ops("")?.is_empty() {
            return Err(ActionError::BadArguments {
                action: "file.edit",
                message:
                    "nothing to do: give set_flags, remove_flags, add_to_flags, set_resources or remove_resources"
                        .into(),
            });
        }
        let (old, new) = self.edited(ctx).await?;
        let mut fields = json!({ "path": self.path, "sha256": sha256_hex(new.as_bytes()), "previous_sha256": sha256_hex(old.as_bytes()), "would_change": old != new });
        if self.check {
            // Only a question: the answer is the result, and nothing is applied.
            return Ok(Plan::noop(
                match old == new {
                    true => format!("{} already as wanted", self.path),
                    false => format!("the edit would change {}", self.path),
                },
                result(false, fields),
            ));
        }
        fields["would_change"] = json!(false);
        if old == new {
            return Ok(Plan::noop(
                format!("{} already as wanted", self.path),
                result(false, fields),
            ));
        }
        Ok(Plan {
            summary: format!("edit {}", self.path),
            changes: vec![Change::File {
                path: self.path.clone(),
                diff: unified_diff(&self.path, &old, &new),
                created: false,
                before_sha256: Some(sha256_hex(old.as_bytes())),
                after_sha256: sha256_hex(new.as_bytes()),
            }],
            modifies: vec![self.path.clone()],
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let (old, new) = self.edited(ctx).await?;
        if old != new {
            ctx.transport
                .write_file_atomic(&self.path, new.as_bytes(), WriteAttrs::default())
                .await?;
        }
        Ok(result(
            old != new,
            json!({ "path": self.path, "sha256": sha256_hex(new.as_bytes()), "previous_sha256": sha256_hex(old.as_bytes()), "would_change": false }),
        ))
    }
}
