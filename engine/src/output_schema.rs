//! The JSON that `-o json` prints, as JSON Schemas (draft-07): a plan or a
//! run's result ([`RunReport`](crate::report::RunReport)) and `remedy
//! check`'s findings. Objects are closed (`additionalProperties: false`), so
//! a field added to the types without a word here fails the test that
//! validates real outputs from the lab against these (tests/schema.rs):
//! the shapes are a contract with scripts, and change only on purpose.
//! Enumerations are serialized from the types themselves.

use crate::check::Severity;
use crate::report::{HostStatus, RunStatus, StepStatus, ALL_HOST_STATUSES};
use remedy_dsl::schema::DRAFT;
use serde::Serialize;
use serde_json::{json, Value};

/// The names serde gives these values.
fn names<T: Serialize>(values: &[T]) -> Value {
    values
        .iter()
        .map(|v| serde_json::to_value(v).expect("a unit variant serializes"))
        .collect()
}

/// A closed object with every property required but those in `optional`.
fn object(properties: Value, optional: &[&str]) -> Value {
    let required: Vec<&String> = properties
        .as_object()
        .map(|p| {
            p.keys()
                .filter(|k| !optional.contains(&k.as_str()))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": required,
        "properties": properties,
    })
}

fn nullable(ty: &str) -> Value {
    json!({ "type": [ty, "null"] })
}

/// The shape of `remedy plan|run … -o json`.
pub fn run_report() -> Value {
    let run_statuses = [
        RunStatus::Ok,
        RunStatus::Failed,
        RunStatus::Interrupted,
        RunStatus::RollbackFailed,
    ];
    let step_statuses = [
        StepStatus::Skipped,
        StepStatus::Unchanged,
        StepStatus::Changed,
        StepStatus::WouldChange,
        StepStatus::Deferred,
        StepStatus::Failed,
        StepStatus::RolledBack,
    ];
    let mut report = object(
        json!({
            "run_id": { "type": "string" },
            "runbook": { "type": "string" },
            "dry_run": { "type": "boolean" },
            "status": { "enum": names(&run_statuses) },
            "kubeconfig": object(json!({
                "path": { "type": "string" },
                "context": { "type": "string" },
                "from": { "description": "what named it", "enum": ["--kubeconfig", "KUBECONFIG"] },
            }), &["context"]),
            "found": {
                "description": "found before the plan or run began: manifests stranded in staging",
                "type": "array",
                "items": object(json!({
                    "host": { "type": "string" },
                    "error": { "type": "string" },
                    "hint": { "type": "string" },
                }), &[]),
            },
            "hosts": { "type": "array", "items": { "$ref": "#/definitions/host" } },
            "summary": { "type": "string" },
        }),
        &["found", "kubeconfig"],
    );
    report["$schema"] = json!(DRAFT);
    report["title"] = json!("remedy plan/run result (-o json)");
    report["definitions"] = json!({
        "host": object(json!({
            "host": { "type": "string" },
            "status": { "enum": names::<HostStatus>(&ALL_HOST_STATUSES) },
            "steps": { "type": "array", "items": { "$ref": "#/definitions/step" } },
            "error": nullable("string"),
            "hint": nullable("string"),
        }), &[]),
        "step": object(json!({
            "id": { "type": "string" },
            "action": { "type": "string" },
            "status": { "enum": names(&step_statuses) },
            "summary": { "type": "string" },
            "plan": { "anyOf": [{ "type": "null" }, { "$ref": "#/definitions/plan" }] },
            "unknown": {
                "description": "dry-run: [argument, the step that sets it] for values only a real run knows",
                "type": "array",
                "items": { "type": "array", "items": { "type": "string" }, "minItems": 2, "maxItems": 2 },
            },
            "result": { "description": "the step's result (`remedy show ACTION` lists its fields)" },
            "backups": { "type": "array", "items": { "$ref": "#/definitions/backup" } },
            "error": nullable("string"),
            "hint": nullable("string"),
            "attempts": { "type": "integer", "minimum": 0 },
        }), &["unknown", "backups"]),
        "plan": object(json!({
            "summary": { "type": "string" },
            "changes": { "type": "array", "items": change() },
            "modifies": { "type": "array", "items": { "type": "string" } },
            "result": {},
        }), &[]),
        "backup": object(json!({
            "path": { "type": "string" },
            "existed": { "type": "boolean" },
            "sha256": nullable("string"),
            "location": nullable("string"),
            "mode": nullable("integer"),
            "owner": { "anyOf": [{ "type": "null" }, { "type": "array", "items": { "type": "integer" }, "minItems": 2, "maxItems": 2 }] },
            "size": nullable("integer"),
            "local": { "type": "boolean" },
            "object": object(json!({
                "api_version": { "type": "string" },
                "kind": { "type": "string" },
                "namespace": { "type": "string" },
                "name": { "type": "string" },
                "resource_version": nullable("string"),
                "uid": nullable("string"),
            }), &["namespace"]),
            "etcd_key": object(json!({
                "key": { "type": "string" },
                "mod_revision": { "type": "integer" },
            }), &[]),
        }), &["object", "etcd_key"]),
        "object_ref": object(json!({
            "api_version": { "type": "string" },
            "kind": { "type": "string" },
            "namespace": { "type": "string" },
            "name": { "type": "string" },
        }), &["namespace"]),
    });
    report
}

/// One plan change, by its `kind`: the words a plan shows and, where a
/// value changes, `before`/`after` as values.
fn change() -> Value {
    let kind = |name: &str, mut fields: Value, optional: &[&str]| {
        fields["kind"] = json!({ "const": name });
        object(fields, optional)
    };
    let text = json!({ "type": "string" });
    let server_values = object(
        json!({
            "admin": { "description": "HAProxy's admin state: ready, drain, maint", "type": "string" },
            "status": { "description": "HAProxy's status text: UP, DOWN, UP 1/2, MAINT…", "type": "string" },
            "weight": { "type": "integer", "minimum": 0 },
            "sessions": { "description": "current sessions", "type": "integer", "minimum": 0 },
        }),
        &["admin", "status", "weight", "sessions"],
    );
    let cert_values = object(
        json!({
            "serial": { "description": "lowercase hex (before only)", "type": "string" },
            "not_after": { "description": "end of validity, unix seconds (before only; after is known to the day)", "type": "integer" },
            "expires_on": { "description": "YYYY-MM-DD, UTC", "type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$" },
        }),
        &["serial", "not_after"],
    );
    json!({
        "oneOf": [
            kind("file", json!({
                "path": text, "diff": text, "created": { "type": "boolean" },
                "before_sha256": nullable("string"), "after_sha256": text,
            }), &[]),
            kind("command", json!({ "cmd": text }), &[]),
            kind("move", json!({ "from": text, "to": text }), &[]),
            kind("restart", json!({ "pod": text, "detail": text }), &[]),
            kind("mode", json!({ "path": text, "from": text, "to": text }), &[]),
            kind("server", json!({
                "lb": text, "backend": text, "server": text,
                "from": text, "to": text,
                "before": server_values, "after": server_values,
                "guard": object(json!({
                    "min_up": { "type": "integer", "minimum": 0 },
                    "up": { "type": "array", "items": text },
                }), &[]),
            }), &["guard"]),
            kind("object", json!({
                "object": { "$ref": "#/definitions/object_ref" },
                "op": text, "resource_version": nullable("string"),
                "content_sha256": nullable("string"), "diff": text,
            }), &["content_sha256"]),
            kind("etcd_key", json!({
                "key": text, "op": text, "mod_revision": { "type": "integer" },
                "size": { "type": "integer", "minimum": 0 }, "sha256": text,
            }), &[]),
            kind("certificate", json!({
                "file": text, "path": text, "text": text,
                "before": cert_values, "after": cert_values,
            }), &[]),
            kind("note", json!({ "text": text }), &[]),
        ],
    })
}

/// The shape of `remedy check -o json`.
pub fn check_findings() -> Value {
    json!({
        "$schema": DRAFT,
        "title": "remedy check findings (-o json)",
        "type": "array",
        "items": object(json!({
            "host": { "description": "an inventory host, `etcd` or `api`", "type": "string" },
            "check": { "type": "string" },
            "severity": { "enum": names(&[Severity::Ok, Severity::Warn, Severity::Critical]) },
            "message": { "type": "string" },
            "evidence": { "type": "array", "items": { "type": "string" } },
            "fix": nullable("string"),
        }), &[]),
    })
}
