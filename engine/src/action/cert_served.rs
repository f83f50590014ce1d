//! `cert.served`: open TLS to an endpoint from the host itself (never through
//! a load balancer) and compare the served certificate with a file's, by
//! SHA-256 fingerprint — the proof that a renewed certificate is in use.
//! Uses the host's `openssl` CLI.

use super::{result, Action, ActionError, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_transport::shell::quote;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertServed {
    endpoint: String,
    expect: String,
}

impl CertServed {
    async fn fingerprints(&self, ctx: &StepCtx<'_>) -> Result<(String, String), ActionError> {
        served_fingerprints(ctx, &self.endpoint, &self.expect).await
    }
}

/// SHA-256 fingerprints of the certificate `endpoint` serves and of the one
/// in file `expect`, as seen from the host; `none` for either it cannot get.
pub(super) async fn served_fingerprints(
    ctx: &StepCtx<'_>,
    endpoint: &str,
    expect: &str,
) -> Result<(String, String), ActionError> {
    let endpoint = endpoint
        .trim_start_matches("https://")
        .trim_end_matches('/');
    let script = format!(
            "d=$(mktemp); if openssl s_client -connect {e} </dev/null 2>/dev/null | openssl x509 -outform DER -out \"$d\" 2>/dev/null; then s=$(sha256sum < \"$d\" | cut -c1-64); else s=none; fi; rm -f \"$d\"; if f=$(openssl x509 -in {f} -outform DER 2>/dev/null | sha256sum | cut -c1-64) && [ -s {f} ]; then :; else f=none; fi; echo \"$s $f\"",
            e = quote(endpoint),
            f = quote(expect)
        );
    let out = ctx.transport.probe(&script, ctx.command_timeout).await?;
    let mut parts = out.stdout.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(s), Some(f)) => Ok((s.to_string(), f.to_string())),
        _ => Err(ActionError::failed(format!(
            "could not compare certificates on {} (is openssl installed?): {}",
            ctx.host.name,
            out.stderr.trim()
        ))),
    }
}

#[async_trait]
impl Action for CertServed {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        // The file may be renewed by an earlier step: the check itself runs
        // when applied; the plan says what it sees now.
        let (served, file) = self.fingerprints(ctx).await?;
        let now = if served == "none" {
            "nothing answers there now".to_string()
        } else if served == file {
            "they match now".to_string()
        } else {
            "they differ now".to_string()
        };
        Ok(Plan {
            summary: format!("check that {} serves {}", self.endpoint, self.expect),
            changes: vec![Change::Note {
                text: format!("compared when run ({now})"),
            }],
            modifies: Vec::new(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let (served, file) = self.fingerprints(ctx).await?;
        if file == "none" {
            return Err(ActionError::failed(format!(
                "{} on {} is not a readable certificate",
                self.expect, ctx.host.name
            )));
        }
        if served != file {
            return Err(ActionError::Failed {
                message: format!("{} serves {} but {} is {}", self.endpoint, if served == "none" { "nothing (no TLS answer)".to_string() } else { format!("certificate {}…", &served[..16.min(served.len())]) }, self.expect, &file[..16.min(file.len())]),
                hint: Some("the component has not been restarted since its certificate changed, or listens elsewhere; restart it (static_pod.restart) and check again".into()),
            });
        }
        Ok(result(
            false,
            json!({ "served_sha256": served, "expected_sha256": file, "matches": true }),
        ))
    }
}
