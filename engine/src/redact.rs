//! Keeping `secret` params out of everything remedy shows: plan and result
//! output, JSON, progress lines, the journal. Values are replaced by
//! `«secret:NAME»`, in their plain form and in the escaped form JSON gives
//! them. Values Rhai computed from a secret (`params.token.to_upper()`,
//! `"Bearer " + params.token`, a slice of it, a script's result that read
//! it) are tainted: the engine records each one in [`Derived`] as it is
//! computed, and they are replaced by `«secret:NAME, derived»`.
//!
//! Not tracked: what a host prints after being given a secret (a command's
//! output is the host's, not Rhai's), and derived values shorter than
//! [`Derived::MIN_CHARS`] characters (they reveal at most that much, and
//! redacting every `1` or `ok` would make output unreadable).

use crate::bind::BoundRun;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Values computed from secrets during a run, by the secret they came from.
/// Shared: every clone (the run's bindings, each redactor) sees additions.
#[derive(Debug, Clone, Default)]
pub struct Derived(Arc<Mutex<BTreeMap<String, String>>>);

impl Derived {
    /// Shorter derived values are not redacted (see the module doc).
    pub const MIN_CHARS: usize = 4;

    /// Record every string (and number) inside `value` as derived from `secret`.
    pub fn add(&self, value: &Value, secret: &str) {
        let mut found = Vec::new();
        leaves(value, &mut found);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for text in found {
            if text.trim().chars().count() >= Self::MIN_CHARS {
                map.entry(text).or_insert_with(|| secret.to_string());
            }
        }
    }

    fn pairs(&self) -> Vec<(String, String)> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .map(|(v, name)| (v.clone(), format!("«secret:{name}, derived»")))
            .collect()
    }
}

fn leaves(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
        Value::Object(m) => m.values().for_each(|v| leaves(v, out)),
        Value::Bool(_) | Value::Null => {}
    }
}

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (value, marker) of the secrets themselves.
    pairs: Vec<(String, String)>,
    derived: Derived,
}

impl Redactor {
    pub fn new(run: &BoundRun) -> Redactor {
        let mut pairs: Vec<(String, String)> = run
            .secrets
            .iter()
            .filter_map(|name| match run.params.get(name) {
                Some(Value::String(v)) if !v.is_empty() => {
                    Some((v.clone(), format!("«secret:{name}»")))
                }
                _ => None,
            })
            .collect();
        pairs.extend(escaped(&pairs));
        Redactor {
            pairs,
            derived: run.derived.clone(),
        }
    }

    pub fn apply(&self, text: &str) -> String {
        let mut derived = self.derived.pairs();
        derived.extend(escaped(&derived));
        // The secrets first, so one that is also recorded as derived (an
        // expression that is just `params.token`) keeps its own marker.
        let mut pairs = self.pairs.clone();
        pairs.extend(derived);
        // Longest first (a stable sort), so a value containing another (a
        // secret inside a derived `Bearer …`) is replaced whole.
        pairs.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        let mut out = text.to_string();
        for (value, marker) in &pairs {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), marker);
            }
        }
        out
    }
}

/// The same values as JSON writes them inside a string, where that differs.
fn escaped(pairs: &[(String, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .filter_map(|(v, m)| {
            let json = serde_json::to_string(v).ok()?;
            let inner = json[1..json.len() - 1].to_string();
            (inner != *v).then(|| (inner, m.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_plain_and_json_escaped_values() {
        let run = BoundRun {
            hosts: Vec::new(),
            params: json!({ "token": "s3\"cret", "user": "bob" })
                .as_object()
                .cloned()
                .unwrap(),
            secrets: vec!["token".into()],
            lbs: Vec::new(),
            etcd: Vec::new(),
            derived: Derived::default(),
        };
        let r = Redactor::new(&run);
        assert_eq!(
            r.apply("curl -H 'X: s3\"cret' as bob"),
            "curl -H 'X: «secret:token»' as bob"
        );
        let json = serde_json::to_string(&json!({ "cmd": "use s3\"cret" })).unwrap();
        assert!(!r.apply(&json).contains("s3"), "{}", r.apply(&json));
        // A value derived later is redacted by the redactor made before.
        run.derived
            .add(&json!({ "up": "S3\"CRET", "n": 1 }), "token");
        assert_eq!(r.apply("x S3\"CRET y 1"), "x «secret:token, derived» y 1");
    }
}
