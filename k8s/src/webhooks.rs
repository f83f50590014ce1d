//! Admission webhooks: every validating and mutating webhook with its
//! failure policy and backend, and whether that backend can answer — a
//! service with no ready endpoints, a URL that does not answer, or the API
//! server itself reporting that calling it fails. A webhook with
//! `failurePolicy: Fail` whose backend is gone blocks every write it
//! matches, and sometimes the writes that would bring its backend back: the
//! deadlock `webhook-deadlock-break` undoes.

use crate::client::Kube;
use crate::error::KubeError;
use crate::object::{resource_version, ObjectRef};
use async_trait::async_trait;
use serde::Serialize;
use serde_json::{json, Value};

/// The API group and version of webhook configurations.
pub const API_VERSION: &str = "admissionregistration.k8s.io/v1";

/// The two kinds of webhook configuration.
pub const KINDS: [&str; 2] = [
    "ValidatingWebhookConfiguration",
    "MutatingWebhookConfiguration",
];

/// The label on probe objects, so they can be found and cleaned up.
pub const PROBE_LABEL: &str = "remedy.dev/probe";

/// A webhook's in-cluster service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    pub port: i64,
    pub path: String,
}

/// One webhook of one configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Webhook {
    /// The configuration holding it.
    pub config: ObjectRef,
    /// The configuration's resourceVersion when it was read.
    pub resource_version: String,
    /// Its index in the configuration's `webhooks` (what a JSON patch names).
    pub index: usize,
    pub name: String,
    /// `Fail` (the default in admissionregistration/v1) or `Ignore`.
    pub failure_policy: String,
    pub service: Option<ServiceRef>,
    pub url: Option<String>,
    pub timeout_seconds: i64,
    /// The rules, one line each: `CREATE,UPDATE */*/*`.
    pub rules: Vec<String>,
}

impl Webhook {
    /// Where it calls: `service ns/name:443/path` or the URL.
    pub fn backend(&self) -> String {
        match (&self.service, &self.url) {
            (Some(s), _) => format!("service {}/{}:{}{}", s.namespace, s.name, s.port, s.path),
            (None, Some(u)) => u.clone(),
            (None, None) => "no backend".into(),
        }
    }
}

/// Every webhook of every validating and mutating configuration.
pub async fn list(kube: &Kube) -> Result<Vec<Webhook>, KubeError> {
    let mut out = Vec::new();
    for kind in KINDS {
        for config in kube.list(API_VERSION, kind, None, None).await? {
            out.extend(of_config(&config));
        }
    }
    Ok(out)
}

/// The webhooks of one configuration object.
pub fn of_config(config: &Value) -> Vec<Webhook> {
    let Ok(r) = ObjectRef::of(config) else {
        return Vec::new();
    };
    let rv = resource_version(config).unwrap_or_default();
    config["webhooks"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, w)| {
            let cc = &w["clientConfig"];
            let service = cc
                .get("service")
                .filter(|s| s.is_object())
                .map(|s| ServiceRef {
                    namespace: s["namespace"].as_str().unwrap_or_default().to_string(),
                    name: s["name"].as_str().unwrap_or_default().to_string(),
                    port: s["port"].as_i64().unwrap_or(443),
                    path: s["path"].as_str().unwrap_or_default().to_string(),
                });
            let rules = w["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    let list = |k: &str| {
                        r[k].as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(Value::as_str)
                                    .collect::<Vec<_>>()
                                    .join(",")
                            })
                            .unwrap_or_else(|| "*".into())
                    };
                    format!(
                        "{} {}/{}/{}",
                        list("operations"),
                        list("apiGroups"),
                        list("apiVersions"),
                        list("resources")
                    )
                })
                .collect();
            Webhook {
                config: r.clone(),
                resource_version: rv.clone(),
                index,
                name: w["name"].as_str().unwrap_or_default().to_string(),
                failure_policy: w["failurePolicy"].as_str().unwrap_or("Fail").to_string(),
                service,
                url: cc["url"].as_str().map(str::to_string),
                timeout_seconds: w["timeoutSeconds"].as_i64().unwrap_or(10),
                rules,
            }
        })
        .collect()
}

/// Ready endpoints behind a service (from its EndpointSlices), or `None`
/// when the service does not exist.
pub async fn ready_endpoints(kube: &Kube, s: &ServiceRef) -> Result<Option<usize>, KubeError> {
    let svc = ObjectRef {
        api_version: "v1".into(),
        kind: "Service".into(),
        namespace: Some(s.namespace.clone()),
        name: s.name.clone(),
    };
    if kube.get(&svc).await?.is_none() {
        return Ok(None);
    }
    let slices = kube
        .list(
            "discovery.k8s.io/v1",
            "EndpointSlice",
            Some(&s.namespace),
            Some(&format!("kubernetes.io/service-name={}", s.name)),
        )
        .await?;
    Ok(Some(
        slices
            .iter()
            .flat_map(|sl| sl["endpoints"].as_array().cloned().unwrap_or_default())
            .filter(|e| e["conditions"]["ready"].as_bool() != Some(false))
            .count(),
    ))
}

/// The names in "failed calling webhook \"NAME\"" of an API error.
pub fn failing_in_error(message: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = message;
    while let Some(i) = rest.find("failed calling webhook \"") {
        let after = &rest[i + "failed calling webhook \"".len()..];
        let Some(end) = after.find('"') else { break };
        let name = after[..end].to_string();
        if !out.contains(&name) {
            out.push(name);
        }
        rest = &after[end..];
    }
    out
}

/// A labelled ConfigMap in `namespace`: what a probe write creates.
pub fn probe_object(namespace: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": { PROBE_LABEL: "true" },
        },
        "data": { "written-by": "remedy" },
    })
}

/// Asks, from where the API server runs, whether a webhook URL answers.
#[async_trait]
pub trait UrlProbe: Send + Sync {
    /// `Ok(true)`: something answered (any HTTP status).
    async fn answers(&self, url: &str) -> Result<bool, String>;
}

/// A webhook that can block writes, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub webhook: Webhook,
    pub reasons: Vec<String>,
}

/// What [`find_broken`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Survey {
    /// Every webhook seen.
    pub webhooks: Vec<Webhook>,
    /// The `failurePolicy: Fail` ones whose backend cannot answer.
    pub broken: Vec<Finding>,
    /// Whether a dry-run write of a probe ConfigMap went through, and the
    /// server's error when it did not.
    pub probe_error: Option<String>,
}

/// Every webhook with `failurePolicy: Fail` whose service has no ready
/// endpoints (or is missing), whose URL does not answer, or that the API
/// server reports failing when a probe ConfigMap is written (dry run) in
/// `probe_namespace`. Reads only.
pub async fn find_broken(
    kube: &Kube,
    probe_namespace: &str,
    urls: &dyn UrlProbe,
) -> Result<Survey, KubeError> {
    let webhooks = list(kube).await?;
    let probe = probe_object(probe_namespace, "remedy-probe-dry-run");
    let probe_error = match kube.create(&probe, true).await {
        Ok(_) => None,
        Err(KubeError::Api { message, .. }) => Some(message),
        Err(e) => return Err(e),
    };
    let reported = probe_error
        .as_deref()
        .map(failing_in_error)
        .unwrap_or_default();
    let mut broken = Vec::new();
    for w in webhooks.iter().filter(|w| w.failure_policy == "Fail") {
        let mut reasons = Vec::new();
        if let Some(s) = &w.service {
            match ready_endpoints(kube, s).await? {
                None => reasons.push(format!(
                    "its service {}/{} does not exist",
                    s.namespace, s.name
                )),
                Some(0) => reasons.push(format!(
                    "its service {}/{} has no ready endpoints",
                    s.namespace, s.name
                )),
                Some(_) => {}
            }
        }
        if let Some(u) = &w.url {
            match urls.answers(u).await {
                Ok(true) => {}
                Ok(false) => reasons.push(format!("its URL {u} does not answer")),
                Err(e) => reasons.push(format!("its URL {u} could not be checked: {e}")),
            }
        }
        if reported.contains(&w.name) {
            reasons.push("the API server fails calling it on a probe write".into());
        }
        if !reasons.is_empty() {
            broken.push(Finding {
                webhook: w.clone(),
                reasons,
            });
        }
    }
    Ok(Survey {
        webhooks,
        broken,
        probe_error,
    })
}

/// The JSON patch setting `failurePolicy: Ignore` on the given webhooks of
/// one configuration.
pub fn ignore_patch(indexes: &[usize]) -> Value {
    Value::Array(
        indexes
            .iter()
            .map(|i| json!({ "op": "replace", "path": format!("/webhooks/{i}/failurePolicy"), "value": "Ignore" }))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_are_read_from_their_configuration() {
        let config = json!({
            "apiVersion": API_VERSION, "kind": "ValidatingWebhookConfiguration",
            "metadata": { "name": "lab-deadlock", "resourceVersion": "42" },
            "webhooks": [
                { "name": "a.example", "clientConfig": { "service": { "namespace": "ns", "name": "svc" } },
                  "rules": [{ "operations": ["CREATE", "UPDATE"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"] }] },
                { "name": "b.example", "failurePolicy": "Ignore", "clientConfig": { "url": "https://x:8443/v" }, "timeoutSeconds": 3 }
            ]
        });
        let hooks = of_config(&config);
        assert_eq!(hooks.len(), 2);
        assert_eq!(hooks[0].failure_policy, "Fail");
        assert_eq!(hooks[0].backend(), "service ns/svc:443");
        assert_eq!(hooks[0].rules, vec!["CREATE,UPDATE */*/*/*"]);
        assert_eq!(hooks[1].backend(), "https://x:8443/v");
        assert_eq!((hooks[1].index, hooks[1].timeout_seconds), (1, 3));
        assert_eq!(hooks[1].resource_version, "42");
        assert_eq!(
            ignore_patch(&[1]),
            json!([{ "op": "replace", "path": "/webhooks/1/failurePolicy", "value": "Ignore" }])
        );
    }

    #[test]
    fn failing_webhooks_are_named_from_the_servers_error() {
        let msg = r#"Internal error occurred: failed calling webhook "deny.lab.remedy.dev": failed to call webhook: Post "https://webhook.lab-webhook.svc:443/validate?timeout=10s": service "webhook" not found"#;
        assert_eq!(failing_in_error(msg), vec!["deny.lab.remedy.dev"]);
        assert!(failing_in_error("forbidden").is_empty());
    }
}
