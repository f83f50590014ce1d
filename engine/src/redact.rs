//! Keeping `secret` params out of everything remedy shows: plan and result
//! output, JSON, progress lines. Values are replaced by `«secret:NAME»`, in
//! their plain form and in the escaped form JSON gives them.

use crate::bind::BoundRun;
use serde_json::Value;

#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// (value, marker), longest value first so overlapping secrets redact whole.
    pairs: Vec<(String, String)>,
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
        let escaped: Vec<(String, String)> = pairs
            .iter()
            .filter_map(|(v, m)| {
                let json = serde_json::to_string(v).ok()?;
                let inner = json[1..json.len() - 1].to_string();
                (inner != *v).then(|| (inner, m.clone()))
            })
            .collect();
        pairs.extend(escaped);
        pairs.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        Redactor { pairs }
    }

    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (value, marker) in &self.pairs {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), marker);
            }
        }
        out
    }
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
        };
        let r = Redactor::new(&run);
        assert_eq!(
            r.apply("curl -H 'X: s3\"cret' as bob"),
            "curl -H 'X: «secret:token»' as bob"
        );
        let json = serde_json::to_string(&json!({ "cmd": "use s3\"cret" })).unwrap();
        assert!(!r.apply(&json).contains("s3"), "{}", r.apply(&json));
    }
}
