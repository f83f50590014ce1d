//! Objects of any kind as JSON: read, list, server-side apply, patch,
//! delete, create, replace and scale, each with an optional server-side dry
//! run and an optional `resourceVersion` precondition (so a change planned
//! against one version of an object fails with a conflict, unchanged, when
//! the object moved on). Also what a backup needs: the fields the server
//! sets, stripped so an object can be re-created or compared.

use crate::client::{Kube, FIELD_MANAGER};
use crate::error::KubeError;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Which object: `apiVersion`, `kind`, namespace (for namespaced kinds) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    /// Its namespace, `default` when it names none (ignored for a
    /// cluster-scoped kind: see `Kind::collection`).
    pub fn namespace_or_default(&self) -> Option<&str> {
        Some(self.namespace.as_deref().unwrap_or("default"))
    }

    /// The reference an object (a manifest) carries. `default_namespace`
    /// fills in a namespaced object without one.
    pub fn of(obj: &Value) -> Result<ObjectRef, String> {
        let field = |path: &str, v: &Value| {
            v.as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("the object has no {path}"))
        };
        Ok(ObjectRef {
            api_version: field("apiVersion", &obj["apiVersion"])?,
            kind: field("kind", &obj["kind"])?,
            namespace: obj["metadata"]["namespace"].as_str().map(str::to_string),
            name: field("metadata.name", &obj["metadata"]["name"])?,
        })
    }

    /// `ValidatingWebhookConfiguration/lab-deadlock`, `ConfigMap default/x`.
    pub fn display(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

/// How a patch is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PatchType {
    /// RFC 7386 JSON merge patch.
    Merge,
    /// RFC 6902 JSON patch (a list of operations).
    Json,
    /// Kubernetes' strategic merge patch (built-in kinds only).
    Strategic,
}

impl PatchType {
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Json => "application/json-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
        }
    }

    pub fn parse(s: &str) -> Option<PatchType> {
        match s {
            "merge" => Some(PatchType::Merge),
            "json" => Some(PatchType::Json),
            "strategic" => Some(PatchType::Strategic),
            _ => None,
        }
    }
}

/// What deleting an object does to its dependents.
pub const PROPAGATION_POLICIES: &[&str] = &["Background", "Foreground", "Orphan"];

/// Metadata fields the server sets; an object re-created from a backup
/// leaves them out, and comparisons ignore them.
const SERVER_SET_METADATA: &[&str] = &[
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The object without what the server sets (metadata above, `status`):
/// what a re-creation sends, and what "the same object" compares.
pub fn without_server_fields(obj: &Value) -> Value {
    let mut out = obj.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in SERVER_SET_METADATA {
            meta.remove(*f);
        }
    }
    if let Some(map) = out.as_object_mut() {
        map.remove("status");
    }
    out
}

/// Metadata every write changes, whoever makes it and whatever it changes
/// (a controller's status write included): left out of `content_sha256`.
/// `generation` moves only with the spec, which the hash already covers.
const WRITE_METADATA: &[&str] = &["resourceVersion", "managedFields", "generation"];

/// The sha256 of what an object is, as a plan-vs-apply conflict check sees
/// it: everything but `status`, the metadata every write changes, and the
/// fields only ever written through the `status` subresource (see
/// `status_written_fields`). A controller writing the status of a
/// Deployment leaves it unchanged — even when, as the Deployment controller
/// does on its first sync, that write also sets an annotation
/// (`deployment.kubernetes.io/revision`); a spec, label or annotation change
/// made through the object itself, a deletion begun (deletionTimestamp) or a
/// re-created object (another uid) changes it.
pub fn content_sha256(obj: &Value) -> String {
    use sha2::Digest;
    let mut out = obj.clone();
    for path in status_written_fields(obj) {
        remove_path(&mut out, &path);
    }
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in WRITE_METADATA {
            meta.remove(*f);
        }
    }
    if let Some(map) = out.as_object_mut() {
        map.remove("status");
    }
    hex::encode(sha2::Sha256::digest(canonical(&out).as_bytes()))
}

/// The fields (as paths of map keys) that `managedFields` says were written
/// only through the `status` subresource: owned by an entry with
/// `subresource: status`, and neither it nor a field inside it by another
/// entry (another owning the map around it, `.`, is only owning the map).
/// What a status write puts
/// outside `status` (the API server lets a Deployment's status write set
/// annotations) is the controller's report, not what the object asks for.
/// Fields inside list items (`k:`, `v:`, `i:` keys) are not singled out.
pub fn status_written_fields(obj: &Value) -> Vec<Vec<String>> {
    let Some(entries) = obj["metadata"]["managedFields"].as_array() else {
        return Vec::new();
    };
    let (mut by_status, mut by_others) = (Vec::new(), Vec::new());
    for e in entries {
        let into = if e["subresource"].as_str() == Some("status") {
            &mut by_status
        } else {
            &mut by_others
        };
        leaf_fields(&e["fieldsV1"], &mut Vec::new(), into);
    }
    by_status.retain(|p: &Vec<String>| {
        p.first().map(String::as_str) != Some("status")
            && !by_others.iter().any(|o| o.starts_with(p.as_slice()))
    });
    by_status.sort();
    by_status.dedup();
    by_status
}

/// The map-key paths a `fieldsV1` set names as owned (its leaves and the
/// maps it marks with `.`).
fn leaf_fields(set: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let Some(map) = set.as_object() else { return };
    if (map.is_empty() || map.contains_key(".")) && !at.is_empty() {
        out.push(at.clone());
    }
    for (k, v) in map {
        if let Some(field) = k.strip_prefix("f:") {
            at.push(field.to_string());
            leaf_fields(v, at, out);
            at.pop();
        }
    }
}

/// Removes the field at `path` (map keys) from `obj`, if it is there.
fn remove_path(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut at = obj;
    for p in parents {
        match at.get_mut(p.as_str()) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(map) = at.as_object_mut() {
        map.remove(last.as_str());
    }
}

/// JSON with every mapping's keys sorted, so the same object hashes the
/// same whatever order an answer listed its fields in.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&m[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

/// The object's `metadata.resourceVersion`.
pub fn resource_version(obj: &Value) -> Option<String> {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string)
}

/// An object as YAML, for plans and diffs (without managedFields, which
/// change on every write and say nothing to a reader).
pub fn to_yaml(obj: &Value) -> String {
    let mut shown = obj.clone();
    if let Some(meta) = shown.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    serde_saphyr::to_string(&shown)
        .unwrap_or_else(|_| serde_json::to_string_pretty(&shown).unwrap_or_default())
}

/// A YAML or JSON document as a value.
pub fn parse_manifest(text: &str) -> Result<Value, String> {
    serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
}

fn query(dry_run: bool, extra: &[(&str, &str)]) -> String {
    let mut parts: Vec<String> = extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if dry_run {
        parts.push("dryRun=All".into());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// `resourceVersion` as a precondition inside a patch.
fn with_precondition(patch: &Value, ty: PatchType, rv: Option<&str>) -> Value {
    let Some(rv) = rv else {
        return patch.clone();
    };
    match ty {
        PatchType::Json => {
            // Replacing the resourceVersion makes the update conditional on
            // it: the server answers 409 Conflict when it moved on.
            let mut ops =
                vec![json!({ "op": "replace", "path": "/metadata/resourceVersion", "value": rv })];
            ops.extend(patch.as_array().cloned().unwrap_or_default());
            Value::Array(ops)
        }
        PatchType::Merge | PatchType::Strategic => {
            let mut p = patch.clone();
            if let Some(map) = p.as_object_mut() {
                let meta = map.entry("metadata").or_insert_with(|| json!({}));
                if let Some(m) = meta.as_object_mut() {
                    m.insert("resourceVersion".into(), json!(rv));
                }
            }
            p
        }
    }
}

impl Kube {
    /// One object, or `None` when it does not exist.
    pub async fn get(&self, r: &ObjectRef) -> Result<Option<Value>, KubeError> {
        let kind = self.kind(&r.api_version, &r.kind).await?;
        let mut obj = self
            .get_json(&kind.object(r.namespace_or_default(), &r.name))
            .await?;
        if let Some(o) = obj.as_mut() {
            // Some answers leave these out; backups and diffs want them.
            o["apiVersion"] = json!(r.api_version);
            o["kind"] = json!(r.kind);
        }
        Ok(obj)
    }

    /// Every object of a kind (in `namespace`, or all namespaces), narrowed
    /// by a label selector; each with its apiVersion and kind filled in.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, KubeError> {
        let k = self.kind(api_version, kind).await?;
        let mut path = k.collection(namespace);
        if let Some(sel) = label_selector.filter(|s| !s.is_empty()) {
            path.push_str(&format!("?labelSelector={}", encode(sel)));
        }
        let list = self.json(Method::GET, &path, None).await?;
        Ok(list["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|mut o| {
                o["apiVersion"] = json!(api_version);
                o["kind"] = json!(kind);
                o
            })
            .collect())
    }

    /// Server-side apply `obj` (its whole intent), as field manager
    /// `remedy`; `force` takes fields other managers own. With `dry_run`,
    /// the server's answer is what the object would become.
    pub async fn apply(&self, obj: &Value, force: bool, dry_run: bool) -> Result<Value, KubeError> {
        let r = ObjectRef::of(obj).map_err(|detail| KubeError::Decode {
            server: self.server().to_string(),
            what: "apply".into(),
            detail,
        })?;
        let kind = self.kind(&r.api_version, &r.kind).await?;
        let path = format!(
            "{}{}",
            kind.object(r.namespace_or_default(), &r.name),
            query(
                dry_run,
                &[
                    ("fieldManager", FIELD_MANAGER),
                    ("force", if force { "true" } else { "false" })
                ]
            )
        );
        let body = serde_json::to_vec(obj).unwrap_or_default();
        self.json(
            Method::PATCH,
            &path,
            Some(("application/apply-patch+yaml", body)),
        )
        .await
    }

    /// Patch one object; `expect_rv` makes it conditional on the version
    /// the plan saw.
    pub async fn patch(
        &self,
        r: &ObjectRef,
        patch: &Value,
        ty: PatchType,
        expect_rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, KubeError> {
        let kind = self.kind(&r.api_version, &r.kind).await?;
        let path = format!(
            "{}{}",
            kind.object(r.namespace_or_default(), &r.name),
            query(dry_run, &[("fieldManager", FIELD_MANAGER)])
        );
        let body = serde_json::to_vec(&with_precondition(patch, ty, expect_rv)).unwrap_or_default();
        self.json(Method::PATCH, &path, Some((ty.content_type(), body)))
            .await
    }

    /// Delete one object with an explicit propagation policy; `expect_rv`
    /// makes it conditional.
    pub async fn delete(
        &self,
        r: &ObjectRef,
        propagation: &str,
        expect_rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, KubeError> {
        let kind = self.kind(&r.api_version, &r.kind).await?;
        let path = format!(
            "{}{}",
            kind.object(r.namespace_or_default(), &r.name),
            query(dry_run, &[])
        );
        let mut options = json!({
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "propagationPolicy": propagation,
        });
        if let Some(rv) = expect_rv {
            options["preconditions"] = json!({ "resourceVersion": rv });
        }
        if dry_run {
            options["dryRun"] = json!(["All"]);
        }
        let body = serde_json::to_vec(&options).unwrap_or_default();
        self.json(Method::DELETE, &path, Some(("application/json", body)))
            .await
    }

    /// Create an object (server-set fields are dropped first).
    pub async fn create(&self, obj: &Value, dry_run: bool) -> Result<Value, KubeError> {
        let r = ObjectRef::of(obj).map_err(|detail| KubeError::Decode {
            server: self.server().to_string(),
            what: "create".into(),
            detail,
        })?;
        let kind = self.kind(&r.api_version, &r.kind).await?;
        let path = format!(
            "{}{}",
            kind.collection(r.namespace_or_default()),
            query(dry_run, &[("fieldManager", FIELD_MANAGER)])
        );
        let body = serde_json::to_vec(&without_server_fields(obj)).unwrap_or_default();
        self.json(Method::POST, &path, Some(("application/json", body)))
            .await
    }

    /// Replace an object with `obj` (a PUT), conditional on `expect_rv`
    /// when given.
    pub async fn replace(
        &self,
        obj: &Value,
        expect_rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, KubeError> {
        let r = ObjectRef::of(obj).map_err(|detail| KubeError::Decode {
            server: self.server().to_string(),
            what: "replace".into(),
            detail,
        })?;
        let kind = self.kind(&r.api_version, &r.kind).await?;
        let path = format!(
            "{}{}",
            kind.object(r.namespace_or_default(), &r.name),
            query(dry_run, &[("fieldManager", FIELD_MANAGER)])
        );
        let mut body = without_server_fields(obj);
        if let Some(rv) = expect_rv {
            body["metadata"]["resourceVersion"] = json!(rv);
        }
        self.json(
            Method::PUT,
            &path,
            Some((
                "application/json",
                serde_json::to_vec(&body).unwrap_or_default(),
            )),
        )
        .await
    }

    /// Set `spec.replicas` through the object's scale subresource.
    pub async fn scale(
        &self,
        r: &ObjectRef,
        replicas: i64,
        expect_rv: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, KubeError> {
        let kind = self.kind(&r.api_version, &r.kind).await?;
        let path = format!(
            "{}/scale{}",
            kind.object(r.namespace_or_default(), &r.name),
            query(dry_run, &[("fieldManager", FIELD_MANAGER)])
        );
        let patch = with_precondition(
            &json!({ "spec": { "replicas": replicas } }),
            PatchType::Merge,
            expect_rv,
        );
        self.json(
            Method::PATCH,
            &path,
            Some((
                "application/merge-patch+json",
                serde_json::to_vec(&patch).unwrap_or_default(),
            )),
        )
        .await
    }
}

/// Percent-encode a query value (label selectors hold `=`, `,`, `!`).
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Deployment as the API server returns it once the Deployment
    /// controller has synced it: the revision annotation set by a status
    /// write, next to one a user set.
    fn synced_deployment(revision: Option<&str>, user_note: &str) -> Value {
        let mut annotations = json!({ "note": user_note });
        let mut managed = vec![json!({
            "manager": "kubectl-create", "operation": "Update", "apiVersion": "apps/v1",
            "fieldsType": "FieldsV1",
            "fieldsV1": { "f:metadata": { "f:annotations": { ".": {}, "f:note": {} } },
                          "f:spec": { "f:replicas": {} } }
        })];
        if let Some(r) = revision {
            annotations["deployment.kubernetes.io/revision"] = json!(r);
            managed.push(json!({
                "manager": "kube-controller-manager", "operation": "Update",
                "apiVersion": "apps/v1", "subresource": "status", "fieldsType": "FieldsV1",
                "fieldsV1": { "f:metadata": { "f:annotations": {
                                  "f:deployment.kubernetes.io/revision": {} } },
                              "f:status": { "f:replicas": {} } }
            }));
        }
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "noisy", "namespace": "l", "uid": "u",
                          "annotations": annotations, "managedFields": managed },
            "spec": { "replicas": 3 }, "status": { "replicas": 3 }
        })
    }

    #[test]
    fn a_controllers_status_write_of_an_annotation_is_not_a_change_of_the_object() {
        let before = synced_deployment(None, "a");
        let synced = synced_deployment(Some("1"), "a");
        assert_eq!(
            status_written_fields(&synced),
            vec![vec![
                "metadata".to_string(),
                "annotations".into(),
                "deployment.kubernetes.io/revision".into()
            ]]
        );
        assert_eq!(content_sha256(&before), content_sha256(&synced));
        assert_eq!(
            content_sha256(&synced),
            content_sha256(&synced_deployment(Some("2"), "a"))
        );
        // A user's annotation is the object's: changing it is a change.
        assert_ne!(
            content_sha256(&synced),
            content_sha256(&synced_deployment(Some("1"), "b"))
        );
        // The same annotation written through the object itself (another
        // manager owns it too) stays in the hash.
        let mut by_hand = synced_deployment(Some("1"), "a");
        by_hand["metadata"]["managedFields"][0]["fieldsV1"]["f:metadata"]["f:annotations"]
            ["f:deployment.kubernetes.io/revision"] = json!({});
        assert!(status_written_fields(&by_hand).is_empty());
        assert_ne!(content_sha256(&by_hand), content_sha256(&before));
    }

    #[test]
    fn server_fields_are_stripped_and_preconditions_added() {
        let obj = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "x", "namespace": "d", "uid": "u", "resourceVersion": "7",
                          "creationTimestamp": "t", "managedFields": [], "labels": { "a": "b" } },
            "data": { "k": "v" }, "status": {}
        });
        let clean = without_server_fields(&obj);
        assert_eq!(
            clean,
            json!({ "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": { "name": "x", "namespace": "d", "labels": { "a": "b" } },
                    "data": { "k": "v" } })
        );
        assert_eq!(ObjectRef::of(&obj).unwrap().display(), "ConfigMap d/x");
        assert_eq!(
            with_precondition(
                &json!([{ "op": "remove", "path": "/data/k" }]),
                PatchType::Json,
                Some("7")
            ),
            json!([{ "op": "replace", "path": "/metadata/resourceVersion", "value": "7" },
                   { "op": "remove", "path": "/data/k" }])
        );
        assert_eq!(
            with_precondition(
                &json!({ "data": { "k": null } }),
                PatchType::Merge,
                Some("7")
            ),
            json!({ "data": { "k": null }, "metadata": { "resourceVersion": "7" } })
        );
        assert_eq!(encode("app=x,tier!=db"), "app%3Dx%2Ctier%21%3Ddb");
    }

    #[test]
    fn content_hash_ignores_status_writes_but_not_spec_or_identity() {
        let deploy = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "noisy", "namespace": "l", "uid": "u1", "resourceVersion": "7",
                          "generation": 2, "managedFields": [{ "manager": "kube-controller-manager" }] },
            "spec": { "replicas": 3 }, "status": { "replicas": 0 }
        });
        let mut status_written = deploy.clone();
        status_written["status"]["observedGeneration"] = json!(2);
        status_written["metadata"]["resourceVersion"] = json!("8");
        status_written["metadata"]["managedFields"] = json!([{ "manager": "x" }]);
        assert_eq!(content_sha256(&deploy), content_sha256(&status_written));
        // The same fields in another order hash the same.
        let reordered: Value = serde_json::from_str(
            r#"{"status":{},"spec":{"replicas":3},"metadata":{"uid":"u1","namespace":"l","name":"noisy"},"kind":"Deployment","apiVersion":"apps/v1"}"#,
        )
        .unwrap();
        assert_eq!(content_sha256(&deploy), content_sha256(&reordered));
        for (path, value) in [
            ("/spec/replicas", json!(4)),
            ("/metadata/uid", json!("u2")),
            ("/metadata/deletionTimestamp", json!("now")),
        ] {
            let mut changed = deploy.clone();
            let (parent, field) = path.rsplit_once('/').unwrap();
            changed.pointer_mut(parent).unwrap()[field] = value;
            assert_ne!(content_sha256(&deploy), content_sha256(&changed), "{path}");
        }
    }
}
