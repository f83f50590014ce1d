//! `remedy schema KIND`: JSON Schemas for editors and tools. Runbooks and
//! inventories come from their crates (built from the compiler's catalogue
//! and the inventory reader's keys); the site config's is here, beside its
//! reader (`config.rs`, `daemon.rs`).

use super::Exit;
use remedy_dsl::schema::{approval, duration, keyed, DRAFT};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SchemaKind {
    /// A runbook file.
    Runbook,
    /// An inventory file.
    Inventory,
    /// The site config ($REMEDY_HOME/config.yaml, --config).
    Config,
    /// What `remedy plan|run -o json` prints.
    OutputRun,
    /// What `remedy check -o json` prints.
    OutputCheck,
}

pub fn schema(kind: SchemaKind) -> Exit {
    let value = match kind {
        SchemaKind::Runbook => remedy_dsl::schema::runbook(),
        SchemaKind::Inventory => remedy_engine::inventory::schema::inventory(),
        SchemaKind::Config => config(),
        SchemaKind::OutputRun => remedy_engine::output_schema::run_report(),
        SchemaKind::OutputCheck => remedy_engine::output_schema::check_findings(),
    };
    // A `Value` always serializes.
    println!("{:#}", value);
    Exit::Ok
}

/// `env:NAME` or `file:PATH`: how a secret is named, never given.
const SECRET_REFERENCE: &str = "^(env|file):.+$";

/// The JSON Schema of the site config.
pub fn config() -> Value {
    let properties = keyed(super::config::KEYS, |key| match key {
        "groups" => json!({
            "description": "approver groups, named `group:NAME` in approval policies",
            "type": "object",
            "additionalProperties": { "type": "array", "items": { "type": "string" } },
        }),
        "allow_as" => json!({
            "description": "OS users that may act as someone else with --as NAME (shared accounts)",
            "type": "array", "items": { "type": "string" },
        }),
        "approval" => json!({ "$ref": "#/definitions/approval" }),
        "chat" => chat(),
        "daemon" => daemon(),
        "coordination" => coordination(),
        _ => unreachable!("site config key {key} has no schema"),
    });
    json!({
        "$schema": DRAFT,
        "title": "remedy site config",
        "description": "remedy's site config (examples/config.yaml): approver groups, allow_as, an approval policy for this jump host, chat, and the daemon's schedules.",
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
        "definitions": { "approval": approval() },
    })
}

/// `coordination:`: the ops etcd shared with other jump hosts.
fn coordination() -> Value {
    let etcd = keyed(super::config::ETCD_KEYS, |key| match key {
        "endpoints" => json!({
            "description": "the ops etcd's client URLs",
            "type": "array", "minItems": 1,
            "items": { "type": "string", "pattern": "^https://[^/]+:[0-9]+/?$" },
        }),
        "ca" | "cert" | "key" => json!({
            "description": format!("the TLS {key} file (relative: to the site config's directory)"),
            "type": "string", "minLength": 1,
        }),
        "prefix" => json!({
            "description": "where remedy's keys live in the ops etcd (default /remedy)",
            "type": "string", "pattern": "^/.*[^/]",
        }),
        _ => unreachable!("coordination.etcd key {key} has no schema"),
    });
    let properties = keyed(super::config::COORDINATION_KEYS, |key| match key {
        "etcd" => json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["endpoints", "ca", "cert", "key"],
            "properties": etcd,
        }),
        "jump_host" => json!({
            "description": "how other jump hosts see this one (default: the hostname)",
            "type": "string", "pattern": "^[^/]+$",
        }),
        "lease_ttl" => duration("how long a paused run keeps its locks, 5s to 1h (default 60s)"),
        _ => unreachable!("coordination key {key} has no schema"),
    });
    json!({
        "description": "several jump hosts: locks, schedules, approvals and the audit head shared through an ops etcd",
        "type": "object",
        "additionalProperties": false,
        "required": ["etcd"],
        "properties": properties,
    })
}

fn secret(doc: &str) -> Value {
    json!({ "description": format!("{doc}, by reference: env:NAME or file:PATH"), "type": "string", "pattern": SECRET_REFERENCE })
}

fn url(doc: &str) -> Value {
    json!({ "description": doc, "type": "string", "pattern": "^https?://" })
}

fn chat() -> Value {
    let notifier = |kind: &str, doc: &str, fields: Value, required: &[&str]| {
        let mut properties = json!({ "type": { "const": kind } });
        for (k, v) in fields.as_object().into_iter().flatten() {
            properties[k] = v.clone();
        }
        let mut required: Vec<&str> = required.to_vec();
        required.insert(0, "type");
        json!({
            "description": doc,
            "type": "object",
            "additionalProperties": false,
            "required": required,
            "properties": properties,
        })
    };
    let webhook_url = |doc: &str| json!({ "url": url(doc) });
    json!({
        "description": "chat approvals and notices (`remedy serve`)",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "users": {
                "description": "chat identity → remedy user, e.g. \"slack:U024BE7LH\": alice",
                "type": "object",
                "propertyNames": { "pattern": "^(slack|mattermost|webhook):.+$" },
                "additionalProperties": { "type": "string", "minLength": 1 },
            },
            "slack_signing_secret": secret("Slack's signing secret"),
            "mattermost_token": secret("the token put into Mattermost buttons"),
            "webhook_secret": secret("the secret of the inbound generic webhook"),
            "public_url": url("where `remedy serve` is reachable from the chat server"),
            "notify": {
                "description": "where notices are sent",
                "type": "array",
                "items": { "oneOf": [
                    notifier("slack", "a Slack incoming webhook", webhook_url("the webhook URL"), &["url"]),
                    notifier("mattermost", "a Mattermost incoming webhook", webhook_url("the webhook URL"), &["url"]),
                    notifier("teams", "a Microsoft Teams incoming webhook", webhook_url("the webhook URL"), &["url"]),
                    notifier("webhook", "any HTTP endpoint: the notice as JSON, signed when `secret` is set",
                        json!({ "url": url("the endpoint"), "secret": secret("the signing secret") }), &["url"]),
                    notifier("command", "a shell command: the notice as JSON on stdin",
                        json!({ "command": { "type": "string", "minLength": 1 } }), &["command"]),
                ] },
            },
        },
    })
}

fn daemon() -> Value {
    json!({
        "description": "`remedy daemon`: runbooks on cron schedules",
        "type": "object",
        "additionalProperties": false,
        "required": ["schedules"],
        "properties": {
            "timezone": { "description": "an IANA time zone for the schedules (default UTC)", "type": "string" },
            "kill_switch": { "description": "while this file exists, nothing fires", "type": "string" },
            "catch_up": { "description": "firings missed while the daemon was down: skip (default) or run_once", "enum": ["skip", "run_once"] },
            "schedules": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["name", "cron", "runbook", "inventory"],
                    "properties": {
                        "name": { "type": "string" },
                        "cron": { "description": "5 fields, or 6 with seconds first", "type": "string" },
                        "runbook": { "description": "a built-in runbook, a name in `dirs`, or a path", "type": "string" },
                        "inventory": { "type": "string" },
                        "params": { "description": "the runbook's params: name → value", "type": "object" },
                        "limit": { "description": "like --limit", "type": "string" },
                        "window": { "description": "HH:MM-HH:MM in the time zone: fire only inside it", "type": "string", "pattern": r"^\s*[0-9]{1,2}:[0-9]{2}\s*-\s*[0-9]{1,2}:[0-9]{2}\s*$" },
                        "dirs": { "description": "where to look for runbooks beyond the built-in ones", "type": "array", "items": { "type": "string" } },
                    },
                },
            },
        },
    })
}
