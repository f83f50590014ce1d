//! `shell`: run a command. Guards (`creates`, `unless`) are checked while
//! planning, so a dry-run can say whether the command would run; `read_only`
//! commands run while planning too, so their output is known in a dry-run.

use super::{result, tail, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_transport::Output;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shell {
    cmd: String,
    creates: Option<String>,
    unless: Option<String>,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    modifies: Vec<String>,
    #[serde(default)]
    ok_codes: Vec<String>,
}

impl Shell {
    fn ok(&self, out: &Output) -> bool {
        match out.status {
            None => false,
            Some(code) if self.ok_codes.is_empty() => code == 0,
            Some(code) => self.ok_codes.iter().any(|c| c.trim() == code.to_string()),
        }
    }

    fn outcome(&self, out: Output, changed: bool) -> Result<Value, ActionError> {
        if !self.ok(&out) {
            let status = out
                .status
                .map(|s| format!("exited {s}"))
                .unwrap_or_else(|| "was killed (no exit status)".into());
            let detail = tail(if out.stderr.trim().is_empty() {
                &out.stdout
            } else {
                &out.stderr
            });
            return Err(ActionError::Failed {
                message: format!(
                    "`{}` {status}{}",
                    self.cmd,
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!(":\n{detail}")
                    }
                ),
                hint: None,
            });
        }
        Ok(result(
            changed,
            json!({ "rc": out.status, "stdout": out.stdout, "stderr": out.stderr, "ran": true }),
        ))
    }

    fn skipped(why: String) -> Plan {
        Plan::noop(
            why,
            result(
                false,
                json!({ "rc": 0, "stdout": "", "stderr": "", "ran": false }),
            ),
        )
    }
}

#[async_trait]
impl Action for Shell {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        if let Some(path) = &self.creates {
            if ctx.transport.stat(path).await?.is_some() {
                return Ok(Self::skipped(format!("skip `{}`: {path} exists", self.cmd)));
            }
        }
        if let Some(guard) = &self.unless {
            let out = ctx.transport.probe(guard, ctx.command_timeout).await?;
            if out.success() {
                return Ok(Self::skipped(format!(
                    "skip `{}`: `{guard}` succeeded",
                    self.cmd
                )));
            }
        }
        if self.read_only {
            let out = ctx.transport.probe(&self.cmd, ctx.command_timeout).await?;
            let value = self.outcome(out, false)?;
            return Ok(Plan::noop(format!("ran read-only `{}`", self.cmd), value));
        }
        Ok(Plan {
            summary: format!("run `{}`", self.cmd),
            changes: vec![Change::Command {
                cmd: self.cmd.clone(),
            }],
            modifies: self.modifies.clone(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let out = ctx.transport.exec(&self.cmd, ctx.command_timeout).await?;
        self.outcome(out, true)
    }
}
