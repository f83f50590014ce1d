//! `/livez` and `/readyz?verbose`: the API server's own health checks, each
//! by name (`[+]etcd ok`, `[-]poststarthook/rbac/bootstrap-roles failed:
//! reason withheld`), parsed from the text it answers with.

use crate::client::Kube;
use crate::error::KubeError;
use http::Method;
use serde::Serialize;

/// One named check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// What the server said beyond ok/failed (often `reason withheld`).
    pub detail: String,
}

/// One health endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// `livez` or `readyz`.
    pub endpoint: String,
    /// HTTP status: 200 when every check passed.
    pub code: u16,
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Health {
    /// The checks that failed, by name.
    pub fn failed(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// Parse a verbose health answer's lines.
pub fn parse_checks(text: &str) -> Vec<Check> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (ok, rest) = if let Some(r) = line.strip_prefix("[+]") {
                (true, r)
            } else if let Some(r) = line.strip_prefix("[-]") {
                (false, r)
            } else {
                return None;
            };
            let (name, detail) = rest.split_once(' ').unwrap_or((rest, ""));
            let detail = detail
                .trim()
                .trim_start_matches("ok")
                .trim_start_matches("failed")
                .trim_start_matches(':')
                .trim();
            Some(Check {
                name: name.to_string(),
                ok,
                detail: detail.to_string(),
            })
        })
        .collect()
}

/// Ask `/<endpoint>?verbose` (`livez` or `readyz`). A server that answers
/// "not ready" is an `Ok` with `ok: false`; one that does not answer is an
/// error.
pub async fn health(kube: &Kube, endpoint: &str) -> Result<Health, KubeError> {
    let answer = kube
        .send(Method::GET, &format!("/{endpoint}?verbose"), None)
        .await?;
    let checks = parse_checks(&answer.body);
    if checks.is_empty() && answer.code != 200 {
        return Err(kube.api_error(&format!("GET /{endpoint}"), &answer));
    }
    Ok(Health {
        endpoint: endpoint.to_string(),
        code: answer.code,
        ok: answer.code == 200 && checks.iter().all(|c| c.ok),
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_answers_become_named_checks() {
        let text = "[+]ping ok\n[+]etcd ok\n[-]poststarthook/rbac/bootstrap-roles failed: reason withheld\n[+]shutdown ok\nreadyz check failed\n";
        let checks = parse_checks(text);
        assert_eq!(checks.len(), 4);
        assert_eq!(
            checks[2],
            Check {
                name: "poststarthook/rbac/bootstrap-roles".into(),
                ok: false,
                detail: "reason withheld".into()
            }
        );
        assert!(checks[1].ok && checks[1].name == "etcd" && checks[1].detail.is_empty());
    }
}
