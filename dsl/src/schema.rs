//! The runbook language as a JSON Schema (draft-07), for editors (the YAML
//! language server validates and completes with it) and other tools.
//!
//! It is built from what the compiler checks against — the action catalogue
//! (every action, its arguments, their kinds and whether they are required),
//! the keys the compiler allows, the param types and the `on_failure` words —
//! so a new action or argument is in the schema without touching this file.
//! The schema checks structure only: references between steps, Rhai and
//! `${}` contents are the compiler's (`remedy validate`). Where the compiler
//! is stricter than JSON Schema can say (a default among its `enum` values,
//! a quorum the approvers can meet), the schema lets it pass.

use crate::action::{ActionKind, ArgKind, ArgSpec};
use crate::compile::{
    APPROVAL_KEYS, APPROVAL_SCOPES, PARAM_KEYS, STEP_KEYS, STRATEGY_KEYS, TOP_KEYS,
};
use crate::param::ParamType;
use crate::runbook::OnFailure;
use serde_json::{json, Map, Value};

/// The `$schema` every remedy schema declares: the draft the YAML language
/// server and most validators support best.
pub const DRAFT: &str = "http://json-schema.org/draft-07/schema#";

/// `30s`, `5m`, `1h30m`, `500ms`, `7d`, `2w`, or a number of seconds — what
/// [`crate::param::parse_duration`] reads.
const DURATION_PATTERN: &str = r"^\s*([0-9]+|([0-9]+(ms|s|m|h|d|w))+)\s*$";
/// `512`, `64KiB`, `2G`, `1.5GB` — what [`crate::param::parse_bytes`] reads.
const BYTES_PATTERN: &str =
    r"^\s*[0-9.]+\s*(B|K|KB|k|kB|M|MB|G|GB|T|TB|Ki|KiB|Mi|MiB|Gi|GiB|Ti|TiB)?\s*$";
/// A string that is exactly one `${...}`: how a non-string argument is
/// computed from params or earlier steps.
const SINGLE_EXPR_PATTERN: &str = r"^\$\{[\s\S]*\}$";
/// A name Rhai can read as `steps.<id>` or `params.<name>`.
const IDENTIFIER_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";

/// A duration: seconds, or text such as `30s`.
pub fn duration(doc: &str) -> Value {
    json!({
        "description": doc,
        "anyOf": [
            { "type": "integer", "minimum": 0 },
            { "type": "string", "pattern": DURATION_PATTERN },
        ],
    })
}

/// The `approval:` block, as a runbook, an inventory and the site config
/// write it.
pub fn approval() -> Value {
    let properties = keyed(APPROVAL_KEYS, |key| match key {
        "quorum" => json!({
            "description": "how many distinct approvers must agree (default 1)",
            "type": "integer", "minimum": 1,
        }),
        "approvers" => json!({
            "description": "who may approve: users (`alice`) or groups of the site config (`group:sre`)",
            "type": "array", "minItems": 1, "items": { "type": "string" },
        }),
        "forbid_requester" => json!({
            "description": "the person who starts the run may not approve it (default true)",
            "type": "boolean",
        }),
        "ttl" => duration("how long a request waits for approval (default 30m)"),
        "scope" => json!({
            "description": "what one approval covers: the whole run (default), one host, or one step",
            "enum": APPROVAL_SCOPES,
        }),
        "auto_approve" => json!({
            "description": "a Rhai expression over `plan` that approves without a person, e.g. `plan.max_changing_per_batch <= 1`",
            "type": "string",
        }),
        _ => unreachable!("approval key {key} has no schema"),
    });
    json!({
        "description": "who must agree before a run changes anything: `none`, or a policy",
        "oneOf": [
            { "const": "none" },
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["approvers"],
                "properties": properties,
            },
        ],
    })
}

/// The JSON Schema of a runbook.
pub fn runbook() -> Value {
    let properties = keyed(TOP_KEYS, |key| match key {
        "runbook" => json!({
            "description": "the runbook's name: lowercase letters, digits and `-`, e.g. cert-renew",
            "type": "string", "pattern": "^[a-z0-9-]+$",
        }),
        "summary" => json!({
            "description": "one line that tells an on-call engineer what this runbook does",
            "type": "string",
        }),
        "description" => {
            json!({ "description": "more about it, shown by `remedy show`", "type": "string" })
        }
        "params" => json!({
            "description": "the runbook's parameters: name → type (shorthand `name: int`) or a spec",
            "type": "object",
            "propertyNames": { "pattern": IDENTIFIER_PATTERN },
            "additionalProperties": { "$ref": "#/definitions/param" },
        }),
        "targets" => json!({
            "description": "an inventory group or host pattern, e.g. masters or 'master-*,!master-3'",
            "type": "string",
        }),
        "strategy" => strategy(),
        "approval" => json!({ "$ref": "#/definitions/approval" }),
        "steps" => json!({
            "description": "what is done on each target host, in order",
            "type": "array", "minItems": 1,
            "items": { "$ref": "#/definitions/step" },
        }),
        "on_failure" => on_failure(
            "what happens to a host whose step fails (default rollback)",
            &OnFailure::NAMES[..3],
        ),
        "run_once" => json!({
            "description": "run the steps on the first target only, e.g. for cluster-wide actions (default false)",
            "type": "boolean",
        }),
        _ => unreachable!("top-level key {key} has no schema"),
    });
    json!({
        "$schema": DRAFT,
        "title": "remedy runbook",
        "description": "A remedy runbook (`remedy show NAME` explains one; `remedy validate FILE` checks what this schema cannot: references, Rhai, `${}`).",
        "type": "object",
        "additionalProperties": false,
        "required": ["runbook", "summary", "targets", "steps"],
        "properties": properties,
        "definitions": {
            "param": param(),
            "approval": approval(),
            "step": step(),
        },
    })
}

fn strategy() -> Value {
    let properties = keyed(STRATEGY_KEYS, |key| match key {
        "serial" => json!({
            "description": "hosts per batch: a count (`1`) or a share of the targets (`\"30%\"`)",
            "anyOf": [
                { "type": "integer", "minimum": 1 },
                { "type": "string", "pattern": r"^\s*0*([1-9][0-9]?|100)\s*%$" },
            ],
        }),
        "parallel" => json!({ "description": "all targets in one batch", "type": "boolean" }),
        "max_failed" => json!({
            "description": "failed hosts tolerated before later batches stop starting (default 0)",
            "type": "integer", "minimum": 0,
        }),
        _ => unreachable!("strategy key {key} has no schema"),
    });
    json!({
        "description": "how hosts are rolled through: `serial` (one at a time, the default), `parallel`, or a mapping",
        "oneOf": [
            { "enum": ["serial", "parallel"] },
            {
                "type": "object",
                "additionalProperties": false,
                "properties": properties,
                "not": { "required": ["serial", "parallel"] },
            },
        ],
    })
}

/// `names`: the runbook's own `on_failure` cannot be `handled` (a step's only).
fn on_failure(doc: &str, names: &[&str]) -> Value {
    json!({ "description": doc, "enum": names })
}

/// A param: a type name, or `{type, default, enum, required, doc}` with the
/// default (and `enum` values) of the declared type.
fn param() -> Value {
    let properties = keyed(PARAM_KEYS, |key| match key {
        "type" => json!({ "description": "the value's type", "enum": ParamType::NAMES }),
        "default" => {
            json!({ "description": "the value when none is given (then the param is optional)" })
        }
        "enum" => json!({ "description": "the only values allowed", "type": "array" }),
        "required" => json!({
            "description": "whether a value must be given (default: true unless there is a default)",
            "type": "boolean",
        }),
        "doc" => {
            json!({ "description": "what the param means, shown by `remedy show`", "type": ["string", "number", "boolean"] })
        }
        _ => unreachable!("param key {key} has no schema"),
    });
    let by_type: Vec<Value> = ParamType::NAMES
        .iter()
        .map(|&name| {
            let ty = ParamType::from_name(name).expect("a name from ParamType::NAMES");
            let value = param_value(ty);
            json!({
                "if": { "properties": { "type": { "const": name } }, "required": ["type"] },
                "then": {
                    "properties": {
                        "default": value,
                        "enum": { "items": value },
                    },
                },
            })
        })
        .collect();
    json!({
        "oneOf": [
            { "description": "shorthand: the type alone; the param is then required", "enum": ParamType::NAMES },
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["type"],
                "properties": properties,
                "allOf": by_type,
                "not": {
                    "description": "a required param with a default",
                    "required": ["required", "default"],
                    "properties": { "required": { "const": true } },
                },
            },
        ],
    })
}

/// A value of a param type, as a default or in `enum` (what
/// [`ParamType::check_json`] accepts).
fn param_value(ty: ParamType) -> Value {
    match ty {
        ParamType::Int => json!({ "type": "integer" }),
        ParamType::String | ParamType::Secret => json!({ "type": "string" }),
        ParamType::Bool => json!({ "type": "boolean" }),
        ParamType::Duration => json!({
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": DURATION_PATTERN },
            ],
        }),
        ParamType::Bytes => json!({
            "anyOf": [
                { "type": "integer" },
                { "type": "string", "pattern": BYTES_PATTERN },
            ],
        }),
        ParamType::List => json!({ "type": "array", "items": { "type": "string" } }),
    }
}

fn step() -> Value {
    let expr = |doc: &str| rhai_expression(doc);
    let properties = keyed(STEP_KEYS, |key| {
        match key {
        "id" => json!({
            "description": "unique within the runbook; later steps read its result as `steps.<id>`",
            "type": "string", "pattern": IDENTIFIER_PATTERN,
        }),
        "name" => json!({ "description": "what the step does, in words", "type": ["string", "number", "boolean"] }),
        "action" => action_names(),
        "script" => json!({
            "description": "a Rhai script (short for `action: script`); a returned map is the step's result",
            "type": ["string", "number", "boolean"],
        }),
        "with" => json!({ "description": "the action's arguments (`remedy show ACTION`)", "type": "object" }),
        "when" => expr("run the step only when this Rhai expression (over params, host, steps) is true"),
        "until" => expr("repeat the step (up to `retries` more times) until this Rhai expression over `result` is true"),
        "retries" => json!({
            "description": "extra attempts when `until` is false or the step fails (default 0)",
            "type": "integer", "minimum": 0, "maximum": u32::MAX,
        }),
        "backoff" => duration("time between attempts (default 5s)"),
        "timeout" => json!({
            "description": "give up on one attempt after this long",
            "anyOf": [
                { "type": "integer", "minimum": 1 },
                { "type": "string", "pattern": DURATION_PATTERN },
            ],
        }),
        "assert" => expr("fail the host unless this Rhai expression over `result` is true"),
        "on_failure" => on_failure(
            "what happens to the host when this step fails (default: the runbook's); `handled`: a later step reads its `failed` and takes another way, and the host is not failed by it",
            &OnFailure::NAMES,
        ),
        _ => unreachable!("step key {key} has no schema"),
    }
    });
    let per_action: Vec<Value> = ActionKind::ALL
        .iter()
        .filter(|k| **k != ActionKind::Script)
        .map(|&kind| {
            let mut then = json!({ "properties": { "with": with(kind) } });
            if kind.args().iter().any(|a| a.required) {
                then["required"] = json!(["with"]);
            }
            json!({
                "if": { "properties": { "action": { "const": kind.name() } }, "required": ["action"] },
                "then": then,
            })
        })
        .collect();
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["id"],
        "properties": properties,
        "oneOf": [
            { "description": "a step names its action", "required": ["action"] },
            { "description": "or is a script", "required": ["script"] },
        ],
        "dependencies": {
            "until": ["retries"],
            "script": { "not": { "description": "a script reads params, host and steps itself", "required": ["with"] } },
        },
        "allOf": per_action,
    })
}

/// `action:` — every action's name, with its summary for editors that show
/// enum descriptions.
fn action_names() -> Value {
    let kinds = ActionKind::ALL;
    json!({
        "description": "what the step does (`remedy list --actions`)",
        "enum": kinds.iter().map(|k| k.name()).collect::<Vec<_>>(),
        "enumDescriptions": kinds.iter().map(|k| k.summary()).collect::<Vec<_>>(),
        "markdownEnumDescriptions": kinds.iter().map(|k| k.summary()).collect::<Vec<_>>(),
    })
}

/// The `with:` of one action: its arguments, no others, the required ones
/// present.
fn with(kind: ActionKind) -> Value {
    let args = kind.args();
    let properties: Map<String, Value> = args
        .iter()
        .map(|a| (a.name.to_string(), argument(a)))
        .collect();
    let required: Vec<&str> = args.iter().filter(|a| a.required).map(|a| a.name).collect();
    let mut schema = json!({
        "description": format!("the arguments of {kind}: {}", kind.summary()),
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
    });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    schema
}

/// One argument: the YAML an [`ArgKind`] accepts (see `arg_value` in the
/// compiler).
fn argument(spec: &ArgSpec) -> Value {
    let scalar = json!(["string", "number", "boolean"]);
    let computed = json!({ "type": "string", "pattern": SINGLE_EXPR_PATTERN });
    let mut schema = match spec.kind {
        // The compiler refuses `mode: 0644` (YAML reads a number) in any action.
        ArgKind::Str if spec.name == "mode" => json!({ "type": "string" }),
        ArgKind::Str | ArgKind::Command => json!({ "type": scalar }),
        ArgKind::Int => json!({ "anyOf": [{ "type": "integer" }, computed] }),
        ArgKind::Bool => json!({ "anyOf": [{ "type": "boolean" }, computed] }),
        ArgKind::Duration => json!({
            "anyOf": [
                { "type": "integer", "minimum": 0 },
                { "type": "string", "pattern": DURATION_PATTERN },
                { "type": "string", "pattern": r"\$\{" },
            ],
        }),
        ArgKind::StrList => json!({
            "anyOf": [{ "type": "array", "items": { "type": scalar } }, computed],
        }),
        ArgKind::StrMap => json!({
            "anyOf": [
                { "type": "object", "additionalProperties": { "type": scalar } },
                { "type": "array", "items": { "type": scalar } },
                computed,
            ],
        }),
        ArgKind::Expr(_) => return rhai_expression(spec.doc),
        ArgKind::Script => json!({ "type": scalar }),
        ArgKind::Value => json!({}),
    };
    schema["description"] = json!(spec.doc);
    schema
}

/// A Rhai expression: written as it is, never inside `${}`.
fn rhai_expression(doc: &str) -> Value {
    json!({
        "description": doc,
        "type": ["string", "number", "boolean"],
        "not": {
            "description": "`${...}` inside an expression: it is Rhai already",
            "type": "string", "pattern": r"\$\{",
        },
    })
}

/// A `properties` object with one entry per key the compiler allows, in its
/// order, so the schema cannot leave one out or invent one.
pub fn keyed(keys: &[&str], schema_of: impl Fn(&str) -> Value) -> Map<String, Value> {
    keys.iter().map(|k| (k.to_string(), schema_of(k))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_and_argument_is_in_the_schema() {
        let schema = runbook();
        let step = &schema["definitions"]["step"];
        let names = step["properties"]["action"]["enum"].as_array().unwrap();
        assert_eq!(names.len(), ActionKind::ALL.len());
        for kind in ActionKind::ALL
            .into_iter()
            .filter(|k| *k != ActionKind::Script)
        {
            let rule = step["allOf"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["if"]["properties"]["action"]["const"] == kind.name())
                .unwrap_or_else(|| panic!("no rule for {kind}"));
            let with = &rule["then"]["properties"]["with"];
            for a in kind.args() {
                assert!(
                    with["properties"].get(a.name).is_some(),
                    "{kind} {}",
                    a.name
                );
            }
            let required: Vec<&str> = kind
                .args()
                .iter()
                .filter(|a| a.required)
                .map(|a| a.name)
                .collect();
            assert_eq!(
                with.get("required").cloned().unwrap_or(json!([])),
                json!(required)
            );
        }
    }
}
