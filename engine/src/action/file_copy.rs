//! `file.copy`: copy a file on the host — e.g. a renewed admin.conf to where
//! people and tools use it. The destination is declared, so the engine backs
//! it up (or records it absent) first; the plan is a diff of the destination.

use super::{result, Action, ActionError, StepCtx};
use crate::backup::sha256_hex;
use crate::plan::{unified_diff, Change, Plan};
use async_trait::async_trait;
use remedy_transport::WriteAttrs;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileCopy {
    from: String,
    to: String,
    mode: Option<String>,
    /// What `from` must hash to: a copy changed since it was recorded (a
    /// backup) is refused rather than spread.
    sha256: Option<String>,
}

impl FileCopy {
    async fn read(
        &self,
        ctx: &StepCtx<'_>,
    ) -> Result<(Vec<u8>, u32, Option<Vec<u8>>), ActionError> {
        let t = ctx.transport;
        let Some(src) = t.stat(&self.from).await? else {
            return Err(ActionError::precondition(
                format!("{} does not exist on {}", self.from, ctx.host.name),
                "check the path",
            ));
        };
        let mode = match self.mode.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|v| *v <= 0o7777)
                .ok_or_else(|| ActionError::BadArguments {
                    action: "file.copy",
                    message: format!("mode `{m}` is not an octal mode like \"0600\""),
                })?,
            None => src.mode,
        };
        let current = match t.stat(&self.to).await? {
            Some(_) => Some(t.read_file(&self.to).await?),
            None => None,
        };
        let bytes = t.read_file(&self.from).await?;
        if let Some(expected) = self.sha256.as_deref().filter(|s| !s.is_empty()) {
            let found = sha256_hex(&bytes);
            if !found.eq_ignore_ascii_case(expected) {
                return Err(ActionError::precondition(
                    format!(
                        "{} on {} has sha256 {found}, not the recorded {expected}: it changed after it was recorded",
                        self.from, ctx.host.name
                    ),
                    "nothing was changed; pick another copy (remedy backup list --path …) or compare the file by hand",
                ));
            }
        }
        Ok((bytes, mode, current))
    }
}

#[async_trait]
impl Action for FileCopy {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        let (bytes, _, current) = self.read(ctx).await?;
        let fields = json!({ "to": self.to, "sha256": sha256_hex(&bytes) });
        if current.as_deref() == Some(&bytes[..]) {
            return Ok(Plan::noop(
                format!("{} already has {}'s content", self.to, self.from),
                result(false, fields),
            ));
        }
        let old = current
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        Ok(Plan {
            summary: format!("copy {} to {}", self.from, self.to),
            changes: vec![Change::File {
                path: self.to.clone(),
                diff: unified_diff(&self.to, &old, &String::from_utf8_lossy(&bytes)),
                created: current.is_none(),
                before_sha256: current.as_deref().map(crate::backup::sha256_hex),
                after_sha256: crate::backup::sha256_hex(&bytes),
            }],
            modifies: vec![self.to.clone()],
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let (bytes, mode, _) = self.read(ctx).await?;
        if let Some((dir, _)) = self.to.rsplit_once('/') {
            if !dir.is_empty() {
                ctx.transport.mkdir_p(dir).await?;
            }
        }
        ctx.transport
            .write_file_atomic(
                &self.to,
                &bytes,
                WriteAttrs {
                    mode: Some(mode),
                    owner: None,
                },
            )
            .await?;
        Ok(result(
            true,
            json!({ "to": self.to, "sha256": sha256_hex(&bytes) }),
        ))
    }
}
