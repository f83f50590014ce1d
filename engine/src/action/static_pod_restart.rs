//! `static_pod.restart`: restart control-plane components the way kubeadm
//! operators do — move the manifest out of the manifests directory to where
//! `remedy_manifest::Parking` says (never to another file inside it: the
//! kubelet starts every non-hidden file there), wait until the container is
//! gone, move it back, wait until it runs again as a *different* container,
//! then until its own health endpoint on this node answers (never through
//! the load balancer).
//!
//! Containers are seen with `crictl` when the host has it (every lab master
//! has the lab's), else through the lab's kubelet stand-in's records
//! (`/var/lib/kubelet/pods/<pod>.json`). A health
//! check by endpoint alone cannot tell a restart happened: the old container
//! may still answer.

use super::{result, Action, ActionError, Secs, StepCtx};
use crate::plan::{Change, Plan};
use async_trait::async_trait;
use remedy_manifest::{health_url, Parking, Unplaced};
use remedy_transport::Transport;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::time::Duration;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticPodRestart {
    pods: Vec<String>,
    timeout: Option<Secs>,
    #[serde(default)]
    health: Map<String, Value>,
}

/// One pod, as found on the host.
struct Pod {
    name: String,
    manifest: String,
    staging: String,
    /// The manifest is in staging and not in place: a restart was interrupted.
    stranded: bool,
    health: Option<String>,
    container: Option<String>,
}

fn quote(s: &str) -> String {
    remedy_transport::shell::quote(s)
}

/// The running container of `pod`, if any.
pub(super) async fn container(
    t: &dyn Transport,
    pod: &str,
    timeout: Duration,
) -> Result<Option<String>, ActionError> {
    let state = format!("/var/lib/kubelet/pods/{pod}.json");
    let cmd = format!(
        "if command -v crictl >/dev/null 2>&1; then echo crictl; crictl ps --name {} --state running -q 2>/dev/null | head -n1; elif [ -f {st} ]; then echo lab; cat {st}; else echo none; fi",
        quote(&format!("^{pod}$")),
        st = quote(&state)
    );
    let out = t.probe(&cmd, timeout).await?;
    let mut lines = out.stdout.splitn(2, '\n');
    let rest = lines.nth(1).unwrap_or("").trim();
    Ok(match out.stdout.lines().next().unwrap_or("") {
        "crictl" => (!rest.is_empty()).then(|| rest.to_string()),
        "lab" => serde_json::from_str::<Value>(rest)
            .ok()
            .filter(|v| v["state"] == "running")
            .and_then(|v| v["container_id"].as_str().map(str::to_string)),
        _ => None,
    })
}

/// Where `host`'s manifests are and where a restart parks them (host
/// vars `manifests_dir`, `staging_dir`).
pub(super) fn parking(host: &crate::inventory::Host) -> Result<Parking, ActionError> {
    let var = |name, default: &str| host.var(name).unwrap_or_else(|| default.into());
    Ok(Parking::new(
        var("manifests_dir", "/etc/kubernetes/manifests"),
        var("staging_dir", "/var/lib/remedy/staging"),
    )?)
}

pub(super) async fn healthy(t: &dyn Transport, url: &str) -> Result<bool, ActionError> {
    let out = t
        .probe(
            &format!(
                "curl -sk --max-time 5 -o /dev/null -w '%{{http_code}}' -- {}",
                quote(url)
            ),
            Duration::from_secs(15),
        )
        .await?;
    Ok(out.stdout.trim() == "200")
}

/// A health URL goes to curl as an argument: only http(s) URLs, so neither
/// a runbook's value nor a manifest's flag can become one of curl's options
/// (`-K file`, `-o file`).
fn checked_health_url(
    pod: &str,
    url: Option<String>,
    host: &str,
) -> Result<Option<String>, ActionError> {
    match url {
        Some(u) if !(u.starts_with("https://") || u.starts_with("http://")) => {
            Err(ActionError::precondition(
                format!("{pod} on {host}: health URL {u:?} is not an http:// or https:// URL"),
                format!("give health: {{ {pod}: \"https://…\" }} (or \"none\" to skip the check), or fix the manifest's flag it came from; nothing was changed"),
            ))
        }
        other => Ok(other),
    }
}

pub(super) fn short(id: &Option<String>) -> String {
    id.as_deref()
        .map(|s| s.chars().take(12).collect())
        .unwrap_or_else(|| "none".into())
}

impl StaticPodRestart {
    fn limit(&self) -> Duration {
        Duration::from_secs(self.timeout.map_or(120, |s| s.0).max(1))
    }

    async fn inspect(&self, ctx: &StepCtx<'_>) -> Result<Vec<Pod>, ActionError> {
        let parking = parking(ctx.host)?;
        let t = ctx.transport;
        let mut pods = Vec::new();
        for name in &self.pods {
            let (manifest, staging) = (parking.manifest(name), parking.staging(name));
            let stranded = parking.stranded(
                name,
                t.stat(&manifest).await?.is_some(),
                t.stat(&staging).await?.is_some(),
                &ctx.host.name,
            )?;
            let path = if stranded { &staging } else { &manifest };
            let text = String::from_utf8_lossy(&t.read_file(path).await?).into_owned();
            // The kubelet cannot start a pod from it: a restart would only
            // wait out its timeout for a container that never comes.
            remedy_manifest::check_pod(&text).map_err(|e| {
                ActionError::precondition(
                    format!("{path} on {}: {e}", ctx.host.name),
                    format!("fix {path} by hand first (a run that changed it kept a copy under its backup directory), then run again; nothing was changed"),
                )
            })?;
            let given = self.health.get(name).and_then(Value::as_str);
            pods.push(Pod {
                name: name.clone(),
                health: checked_health_url(name, health_url(name, &text, given), &ctx.host.name)?,
                container: container(t, name, ctx.command_timeout).await?,
                manifest,
                staging,
                stranded,
            });
        }
        Ok(pods)
    }

    /// Poll every second (on the injected clock) until `until` holds; the
    /// last container seen, and whether it held in time.
    async fn wait(
        &self,
        ctx: &StepCtx<'_>,
        pod: &Pod,
        until: &Until<'_>,
    ) -> Result<(bool, Option<String>), ActionError> {
        let start = ctx.clock.now();
        let what = match until {
            Until::Gone => format!("{} to stop", pod.name),
            Until::NewContainer(_) => format!("{} to run again", pod.name),
            Until::Healthy(url) => format!("{} to be healthy ({url})", pod.name),
        };
        loop {
            let (held, seen) = match until {
                Until::Gone => {
                    let c = container(ctx.transport, &pod.name, ctx.command_timeout).await?;
                    (c.is_none(), c)
                }
                Until::NewContainer(old) => {
                    let c = container(ctx.transport, &pod.name, ctx.command_timeout).await?;
                    (c.is_some() && c.as_ref() != old.as_ref(), c)
                }
                Until::Healthy(url) => (healthy(ctx.transport, url).await?, None),
            };
            let waited = ctx.clock.now().duration_since(start).unwrap_or_default();
            if held || waited >= self.limit() {
                return Ok((held, seen));
            }
            (ctx.progress)(&what, waited.as_secs());
            ctx.clock.sleep(Duration::from_secs(1)).await;
        }
    }

    async fn restart(&self, ctx: &StepCtx<'_>, pod: &Pod) -> Result<Value, ActionError> {
        let t = ctx.transport;
        let limit = remedy_dsl::param::format_duration(self.limit().as_secs() as i64);
        let old = if pod.stranded {
            None
        } else {
            pod.container.clone()
        };
        if !pod.stranded {
            if let Some((dir, _)) = pod.staging.rsplit_once('/') {
                t.mkdir_p(dir).await?;
            }
            t.rename(&pod.manifest, &pod.staging).await?;
            let gone = self.wait(ctx, pod, &Until::Gone).await;
            if !matches!(gone, Ok((true, _))) {
                // Put it back before failing: never leave a manifest out.
                t.rename(&pod.staging, &pod.manifest).await?;
                gone?;
                return Err(ActionError::Failed {
                    message: format!("{} did not stop within {limit} after its manifest was moved out (the manifest is back in place)", pod.name),
                    hint: Some("is the kubelet running on this host? (systemctl status kubelet)".into()),
                });
            }
        }
        t.rename(&pod.staging, &pod.manifest).await?;
        let (started, new) = self.wait(ctx, pod, &Until::NewContainer(&old)).await?;
        if !started {
            return Err(ActionError::Failed {
                message: format!("{} did not run again as a new container within {limit} (before: {}, now: {}); its manifest is in place", pod.name, short(&old), short(&new)),
                hint: Some(format!("look at the component's log on the host: crictl logs $(crictl ps -a -q --name {} | head -1)", pod.name)),
            });
        }
        if let Some(url) = &pod.health {
            let (ok, _) = self.wait(ctx, pod, &Until::Healthy(url)).await?;
            if !ok {
                return Err(ActionError::Failed {
                    message: format!(
                        "{} runs again (container {}) but {url} did not answer 200 within {limit}",
                        pod.name,
                        short(&new)
                    ),
                    hint: Some(format!("check it on the host: curl -sk {url}")),
                });
            }
        }
        Ok(json!({ "old": old, "new": new }))
    }
}

impl From<Unplaced> for ActionError {
    fn from(e: Unplaced) -> ActionError {
        ActionError::precondition(e.message, e.hint)
    }
}

/// What a restart waits for.
enum Until<'a> {
    Gone,
    /// Running, and not this container.
    NewContainer(&'a Option<String>),
    Healthy(&'a str),
}

#[async_trait]
impl Action for StaticPodRestart {
    async fn plan(&self, ctx: &StepCtx<'_>) -> Result<Plan, ActionError> {
        if self.pods.is_empty() {
            return Err(ActionError::BadArguments {
                action: "static_pod.restart",
                message: "`pods` is empty".into(),
            });
        }
        let pods = self.inspect(ctx).await?;
        let changes = pods
            .iter()
            .map(|p| Change::Restart {
                pod: p.name.clone(),
                detail: format!(
                    "{}container {} → a new one, then {}",
                    if p.stranded {
                        "manifest found in staging (an interrupted restart): put back; "
                    } else {
                        "manifest out to staging and back; "
                    },
                    short(&p.container),
                    p.health
                        .as_deref()
                        .map(|u| format!("{u} answers 200"))
                        .unwrap_or_else(|| "no health check".into())
                ),
            })
            .collect();
        Ok(Plan {
            summary: format!("restart {}", self.pods.join(", ")),
            changes,
            modifies: pods
                .iter()
                .flat_map(|p| [p.manifest.clone(), p.staging.clone()])
                .collect(),
            result: None,
        })
    }

    async fn apply(&self, ctx: &StepCtx<'_>, _plan: &Plan) -> Result<Value, ActionError> {
        let pods = self.inspect(ctx).await?;
        let mut containers = Map::new();
        let mut restarted = Vec::new();
        for pod in &pods {
            let c = self.restart(ctx, pod).await?;
            containers.insert(pod.name.clone(), c);
            restarted.push(pod.name.clone());
        }
        Ok(result(
            true,
            json!({ "restarted": restarted, "containers": containers }),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_health_url_that_is_not_http_is_refused_before_it_reaches_curl() {
        let err = checked_health_url("etcd", Some("-K/etc/shadow".into()), "master-2").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("etcd on master-2"), "{text}");
        assert!(
            text.contains("\"-K/etc/shadow\" is not an http:// or https:// URL"),
            "{text}"
        );
        assert_eq!(
            checked_health_url("etcd", Some("http://127.0.0.1:2381/health".into()), "m").unwrap(),
            Some("http://127.0.0.1:2381/health".into())
        );
        assert_eq!(checked_health_url("etcd", None, "m").unwrap(), None);
    }
}
