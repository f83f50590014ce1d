//! `file.fetch`: copy a file from the host to the jump host — e.g. a renewed
//! admin.conf to the operator's ~/.kube/config. The local destination is
//! declared through `modifies_local`, so the engine backs it up on the jump
//! host first and rollback restores it there.

use super::{result, Action, ActionError, StepCtx};
use crate::backup::sha256_hex;
use crate::plan::{unified_diff, Change, Plan};
use async_trait::async_trait;
use remedy_transport::{Local, Transport, WriteAttrs};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileFetch {
    from: String,
    to: String,
    mode: Option<String>,
}

impl FileFetch {
    fn mode(&self) -> Result<u32, ActionError> {
        match &self.mode {
            None => Ok(0o600),
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|v| *v <= 0o7777)
                .ok_or_else(|| ActionError::BadArguments {
                    action: "file.fetch",
                    message: format!("mode `{m}` is not an octal mode like \"0600\""),
                }),
        }
    }

    async fn read(&self, ctx: &StepCtx<'_>) -> Result<(Vec<u8>, Option<Vec<u8>>), ActionError> {
        if ctx.transport.stat(&self.from).await?.is_none() {
            return Err(ActionError::precondition(
                format!("{} does not exist on {}", self.from, ctx.host.name),
                "check the path",
            ));
        }
        let local = Local::new("the jump host");
        let current = match local.stat(&self.to).await? {
            Some(_) => Some(local.read_file(&self.to).await?),
            None => None,
        };
        Ok((ctx.transport.read_file(&self.from).await?, current))
    }
}

#[async_trait]
impl Action for FileFetch {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        self.mode()?;
        let (bytes, current) = self.read(ctx).await?;
        let fields = json!({ "to": self.to, "sha256": sha256_hex(&bytes) });
        if current.as_deref() == Some(&bytes[..]) {
            return Ok(Plan::noop(
                format!(
                    "{} on the jump host already has {}:{}",
                    self.to, ctx.host.name, self.from
                ),
                result(false, fields),
            ));
        }
        let old = current
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let shown = format!("(jump host) {}", self.to);
        Ok(Plan {
            summary: format!(
                "fetch {}:{} to {} on the jump host",
                ctx.host.name, self.from, self.to
            ),
            changes: vec![Change::File {
                path: shown.clone(),
                diff: unified_diff(&shown, &old, &String::from_utf8_lossy(&bytes)),
                created: current.is_none(),
                before_sha256: current.as_deref().map(crate::backup::sha256_hex),
                after_sha256: crate::backup::sha256_hex(&bytes),
            }],
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let (bytes, _) = self.read(ctx).await?;
        let local = Local::new("the jump host");
        if let Some((dir, _)) = self.to.rsplit_once('/') {
            if !dir.is_empty() {
                local.mkdir_p(dir).await?;
            }
        }
        local
            .write_file_atomic(
                &self.to,
                &bytes,
                WriteAttrs {
                    mode: Some(self.mode()?),
                    owner: None,
                },
            )
            .await?;
        Ok(result(
            true,
            json!({ "to": self.to, "sha256": sha256_hex(&bytes) }),
        ))
    }

    fn modifies_local(&self) -> Vec<String> {
        vec![self.to.clone()]
    }
}
