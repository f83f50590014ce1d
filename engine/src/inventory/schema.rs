//! The inventory as a JSON Schema (draft-07), for editors: built from the
//! keys the reader (`parse.rs`) allows, with the runbook language's
//! `approval:` and duration rules, so the two cannot drift apart.
//! Like the reader, it lets any host var through; the ones remedy reads are
//! described for completion.

use super::parse::{HOST_KEYS, SSH_KEYS, TOP_KEYS};
use remedy_dsl::schema::{approval, duration, keyed, DRAFT};
use serde_json::{json, Map, Value};

/// The vars remedy itself reads (RUNBOOK.md §3), with what they mean.
const KNOWN_VARS: &[(&str, &str)] = &[
    ("kube_dir", "kubeadm's directory (default /etc/kubernetes)"),
    ("manifests_dir", "the static-pod manifests (default <kube_dir>/manifests)"),
    ("pki_dir", "the PKI directory (default <kube_dir>/pki)"),
    ("backup_dir", "where backups are kept on the host (default /var/lib/remedy/backups; absolute, not inside manifests_dir)"),
    ("staging_dir", "where a restart parks a manifest (default /var/lib/remedy/staging)"),
    ("node_ip", "the master's address for etcd and the API server, when it is not the SSH address"),
    ("etcd_endpoint", "this master's etcd client URL (default https://<node_ip or address>:2379)"),
    ("api_server", "this master's API server URL (default https://<node_ip or address>:6443)"),
    ("haproxy_socket", "on an LB: the path of HAProxy's admin socket"),
    ("haproxy_admin", "on an LB: HOST:PORT of an admin socket on TCP, instead of haproxy_socket"),
    ("haproxy_backend", "on an LB: the backend that balances the API servers"),
    ("haproxy_server", "on a master: its server name in that backend (default: its inventory name)"),
];

/// The JSON Schema of an inventory file.
pub fn inventory() -> Value {
    let properties = keyed(TOP_KEYS, |key| match key {
        "vars" => vars("vars for every host (groups' and hosts' vars win)"),
        "groups" => json!({
            "description": "groups and their vars; a group also exists when a host names it",
            "type": "object",
            "additionalProperties": {
                "type": ["object", "null"],
                "additionalProperties": false,
                "properties": { "vars": vars("vars for the group's hosts") },
            },
        }),
        "hosts" => json!({
            "description": "every host: name → how to reach it, its groups and vars",
            "type": "object",
            "additionalProperties": { "$ref": "#/definitions/host" },
        }),
        "ssh" => ssh(),
        "approval" => json!({ "$ref": "#/definitions/approval" }),
        _ => unreachable!("inventory key {key} has no schema"),
    });
    json!({
        "$schema": DRAFT,
        "title": "remedy inventory",
        "description": "A remedy inventory (RUNBOOK.md §3): hosts, groups, vars and SSH settings.",
        "type": "object",
        "additionalProperties": false,
        "required": ["hosts"],
        "properties": properties,
        "definitions": { "host": host(), "approval": approval() },
    })
}

fn port() -> Value {
    json!({ "description": "1–65535 (default 22)", "type": "integer", "minimum": 1, "maximum": 65535 })
}

fn text(doc: &str) -> Value {
    json!({ "description": doc, "type": ["string", "number"] })
}

fn vars(doc: &str) -> Value {
    let known: Map<String, Value> = KNOWN_VARS
        .iter()
        .map(|(name, doc)| (name.to_string(), json!({ "description": doc })))
        .collect();
    json!({ "description": doc, "type": "object", "properties": known })
}

fn host() -> Value {
    let properties = keyed(HOST_KEYS, |key| match key {
        "address" => {
            text("where to connect (default: ~/.ssh/config's HostName, else the host's name)")
        }
        "port" => port(),
        "user" => text("login user (default: ssh.user, ~/.ssh/config, else your login name)"),
        "transport" => {
            json!({ "description": "ssh (default) or local (this machine, no SSH)", "enum": ["ssh", "local"] })
        }
        "groups" => {
            json!({ "description": "the groups the host is in", "type": "array", "items": { "type": ["string", "number"] } })
        }
        "vars" => vars("host vars (win over everything else)"),
        "identity_file" => text("key tried first (relative: to the inventory's directory)"),
        "proxy_jump" => text("jump host(s): [user@]host[:port], comma-separated"),
        "become" => {
            json!({ "description": "run every command through `sudo -n` (default false)", "type": "boolean" })
        }
        _ => unreachable!("host key {key} has no schema"),
    });
    json!({
        "type": ["object", "null"],
        "additionalProperties": false,
        "properties": properties,
    })
}

fn ssh() -> Value {
    let properties = keyed(SSH_KEYS, |key| match key {
        "user" => text("login user for every host"),
        "port" => port(),
        "identity_file" => text("key tried first for every host"),
        "known_hosts" => text("host keys (default ~/.ssh/known_hosts)"),
        "config" => text("OpenSSH client config to read (ssh -F); `none`: none"),
        "proxy_jump" => text("jump host(s) for every host"),
        "become" => {
            json!({ "description": "run every command through `sudo -n`", "type": "boolean" })
        }
        "connect_timeout" => {
            let mut d = duration("how long connecting may take (e.g. 10s)");
            d["anyOf"][0]["minimum"] = json!(1);
            d
        }
        _ => unreachable!("ssh key {key} has no schema"),
    });
    json!({
        "description": "SSH settings for the whole inventory, defaults for every host",
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
    })
}
