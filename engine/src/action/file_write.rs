//! `file.write`: replace a whole file atomically. The plan is a unified diff;
//! an unchanged file is a no-op.

use super::{result, Action, ActionError, StepCtx};
use crate::backup::sha256_hex;
use crate::plan::{unified_diff, Change, Plan};
use async_trait::async_trait;
use remedy_transport::WriteAttrs;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWrite {
    path: String,
    content: String,
    mode: Option<String>,
}

impl FileWrite {
    fn mode(&self) -> Result<Option<u32>, ActionError> {
        self.mode
            .as_deref()
            .map(|m| {
                u32::from_str_radix(m.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|v| *v <= 0o7777)
                    .ok_or_else(|| ActionError::BadArguments {
                        action: "file.write",
                        message: format!("mode `{m}` is not an octal mode like \"0644\""),
                    })
            })
            .transpose()
    }
}

#[async_trait]
impl Action for FileWrite {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let want_mode = self.mode()?;
        let (current, current_mode) = match ctx.transport.stat(&self.path).await? {
            Some(s) if s.is_dir => {
                return Err(ActionError::precondition(
                    format!("{} is a directory", self.path),
                    "give the path of a file",
                ))
            }
            Some(s) => (
                Some(ctx.transport.read_file(&self.path).await?),
                Some(s.mode),
            ),
            None => (None, None),
        };
        let new_sha = sha256_hex(self.content.as_bytes());
        let previous = current.as_deref().map(sha256_hex).unwrap_or_default();
        let same_content = current.as_deref() == Some(self.content.as_bytes());
        let mode_change = match (current_mode, want_mode) {
            (Some(have), Some(want)) if have != want => Some((have, want)),
            _ => None,
        };
        if same_content && mode_change.is_none() {
            return Ok(Plan::noop(
                format!("{} already as wanted", self.path),
                result(
                    false,
                    json!({ "path": self.path, "sha256": new_sha, "previous_sha256": previous }),
                ),
            ));
        }
        let mut changes = Vec::new();
        if !same_content {
            let old = current
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            changes.push(Change::File {
                path: self.path.clone(),
                diff: unified_diff(&self.path, &old, &self.content),
                created: current.is_none(),
                before_sha256: current.as_deref().map(sha256_hex),
                after_sha256: sha256_hex(self.content.as_bytes()),
            });
        }
        if let Some((have, want)) = mode_change {
            changes.push(Change::Mode {
                path: self.path.clone(),
                from: format!("{have:04o}"),
                to: format!("{want:04o}"),
            });
        }
        Ok(Plan {
            summary: format!(
                "{} {}",
                if current.is_some() {
                    "rewrite"
                } else {
                    "create"
                },
                self.path
            ),
            changes,
            modifies: vec![self.path.clone()],
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let previous = match ctx.transport.stat(&self.path).await? {
            Some(_) => sha256_hex(&ctx.transport.read_file(&self.path).await?),
            None => String::new(),
        };
        // Rewritten whole even for a mode-only change: one atomic path for both.
        ctx.transport
            .write_file_atomic(
                &self.path,
                self.content.as_bytes(),
                WriteAttrs {
                    mode: self.mode()?,
                    owner: None,
                },
            )
            .await?;
        Ok(result(
            true,
            json!({ "path": self.path, "sha256": sha256_hex(self.content.as_bytes()), "previous_sha256": previous }),
        ))
    }
}
