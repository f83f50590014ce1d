//! Evaluating a step's Rhai at run time: `when`, `until`, `assert`, `${...}`
//! in `with`, scripts. Values flow as JSON; the Rhai scope is built from them.
//!
//! In a dry-run, a step whose result only a real apply could produce is
//! registered as unknown; anything that reads it evaluates to
//! [`Resolved::Unknown`] (`unknown (set by step X)`) instead of a guess.

use crate::redact::Derived;
use remedy_dsl::expr::ShellRaw;
use remedy_dsl::runbook::ArgValue;
use remedy_dsl::template::{Part, Template};
use remedy_dsl::{Diagnostic, Expr, Source};
use remedy_transport::shell::quote;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A registered step result.
#[derive(Debug, Clone, PartialEq)]
pub enum StepValue {
    Known(Value),
    /// Only a real run of step `set_by` would know it.
    Unknown {
        set_by: String,
    },
}

/// A dry-run placeholder for a result only a real run produces.
#[derive(Debug, Clone)]
struct NotYetKnown;

/// A value that is known, or not until step `set_by` really runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    Known(Value),
    Unknown { set_by: String },
}

/// A Rhai error at run time, placed at the expression in the runbook.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", .diagnostic.render_body().trim_end())]
pub struct EvalError {
    pub diagnostic: Diagnostic,
}

impl EvalError {
    fn new(source: &Arc<Source>, expr: &Expr, message: String) -> EvalError {
        EvalError {
            diagnostic: Diagnostic::at(source, expr.span, message),
        }
    }
}

/// What expressions of one host can see.
#[derive(Debug, Clone)]
pub struct Bindings {
    pub source: Arc<Source>,
    pub params: Map<String, Value>,
    pub host: Value,
    pub steps: BTreeMap<String, StepValue>,
    pub taint: Taint,
}

/// Which names carry secret values, so that whatever Rhai computes from them
/// is recorded as derived (and redacted like the secret itself).
#[derive(Debug, Clone, Default)]
pub struct Taint {
    /// Secret params, by name.
    pub secrets: Vec<String>,
    /// Steps whose arguments or script read a secret (or such a step), with
    /// the secret: their results are derived too.
    pub steps: BTreeMap<String, String>,
    pub derived: Derived,
}

impl Taint {
    /// The secret `expr` reads, directly or through a tainted step. Reading
    /// `params` whole or by brackets (`params["token"]`) counts as reading
    /// the first secret: the name is not known before it runs.
    pub fn source(&self, expr: &Expr) -> Option<String> {
        let first_secret = self.secrets.first()?;
        expr.references
            .iter()
            .find_map(
                |r| match (r.path.first().map(String::as_str), r.path.get(1)) {
                    (Some("params"), Some(name)) if self.secrets.contains(name) => {
                        Some(name.clone())
                    }
                    (Some("params"), None) => Some(first_secret.clone()),
                    (Some("steps"), Some(id)) => self.steps.get(id).cloned(),
                    _ => None,
                },
            )
            .or_else(|| expr.text.contains("params[").then(|| first_secret.clone()))
    }

    /// Marks `step` as derived from a secret when any of its expressions is.
    pub fn step(&mut self, step: &remedy_dsl::Step) {
        let secret = step
            .with
            .iter()
            .flat_map(|(_, v)| v.exprs())
            .find_map(|e| self.source(e));
        if let Some(secret) = secret {
            self.steps.insert(step.id.clone(), secret);
        }
    }

    fn record(&self, expr: &Expr, value: &Value) {
        if let Some(secret) = self.source(expr) {
            self.derived.add(value, &secret);
        }
    }
}

impl Bindings {
    pub fn register(&mut self, step: &str, value: StepValue) {
        self.steps.insert(step.to_string(), value);
    }

    fn unknown_dependency(&self, expr: &Expr) -> Option<String> {
        expr.step_ids().find_map(|id| match self.steps.get(id) {
            Some(StepValue::Unknown { set_by }) => Some(set_by.clone()),
            _ => None,
        })
    }

    fn scope(&self, result: Option<&Value>) -> Result<rhai::Scope<'static>, String> {
        let mut scope = rhai::Scope::new();
        let dynamic = |v: &Value| rhai::serde::to_dynamic(v).map_err(|e| e.to_string());
        scope.push_dynamic("params", dynamic(&Value::Object(self.params.clone()))?);
        scope.push_dynamic("host", dynamic(&self.host)?);
        let mut steps = rhai::Map::new();
        for (id, v) in &self.steps {
            let value = match v {
                StepValue::Known(v) => dynamic(v)?,
                // Opaque: any use of it is a Rhai error, so an expression that
                // needs it cannot produce a made-up value.
                StepValue::Unknown { .. } => rhai::Dynamic::from(NotYetKnown),
            };
            steps.insert(id.as_str().into(), value);
        }
        scope.push("steps", steps);
        if let Some(r) = result {
            scope.push_dynamic("result", dynamic(r)?);
        }
        Ok(scope)
    }

    /// Evaluate an expression or script; `result` is this step's own result
    /// (for `until`/`assert`). In a dry-run, an expression that reads a result
    /// only a real run would produce is [`Resolved::Unknown`] — but one that
    /// never gets to it (`false && steps.x.changed`) has a known value.
    pub fn eval(&self, expr: &Expr, result: Option<&Value>) -> Result<Resolved, EvalError> {
        match self.run(expr, result)? {
            Ran::Unknown(set_by) => Ok(Resolved::Unknown { set_by }),
            Ran::Value(value) => {
                let resolved = self.to_json(expr, &value)?;
                if let Resolved::Known(v) = &resolved {
                    self.taint.record(expr, v);
                }
                Ok(resolved)
            }
        }
    }

    /// Run the Rhai; the value stays Rhai's (a command needs to see a
    /// `shell_raw` marker before it becomes JSON).
    fn run(&self, expr: &Expr, result: Option<&Value>) -> Result<Ran, EvalError> {
        let mut scope = self
            .scope(result)
            .map_err(|m| EvalError::new(&self.source, expr, m))?;
        match remedy_dsl::expr::sandbox()
            .eval_ast_with_scope::<rhai::Dynamic>(&mut scope, &expr.ast)
        {
            Ok(v) => Ok(Ran::Value(v)),
            Err(e) => match self.unknown_dependency(expr) {
                Some(set_by) => Ok(Ran::Unknown(set_by)),
                None => Err(EvalError::new(
                    &self.source,
                    expr,
                    format!("evaluating `{}`: {}", expr.text.trim(), rhai_error_text(&e)),
                )),
            },
        }
    }

    fn to_json(&self, expr: &Expr, value: &rhai::Dynamic) -> Result<Resolved, EvalError> {
        if value.is::<ShellRaw>() {
            return Err(EvalError::new(
                &self.source,
                expr,
                format!(
                    "`{}`: `shell_raw(...)` only inserts text into a shell command (`cmd`, `unless`, `command`)",
                    expr.text.trim()
                ),
            ));
        }
        match rhai::serde::from_dynamic::<Value>(value) {
            Ok(json) => Ok(Resolved::Known(json)),
            Err(e) => match self.unknown_dependency(expr) {
                // The value itself is (or holds) a result not known yet.
                Some(set_by) => Ok(Resolved::Unknown { set_by }),
                None => Err(EvalError::new(
                    &self.source,
                    expr,
                    format!(
                        "`{}` produced a value remedy cannot use: {e}",
                        expr.text.trim()
                    ),
                )),
            },
        }
    }

    /// One `${...}` of a shell command as shell text: one single-quoted word
    /// (a list: one per item), or — only through `shell_raw(...)` — the text
    /// as it is. Whatever a param holds, quoted it is data, never shell.
    fn shell_words(&self, expr: &Expr) -> Result<Resolved, EvalError> {
        let value = match self.run(expr, None)? {
            Ran::Unknown(set_by) => return Ok(Resolved::Unknown { set_by }),
            Ran::Value(v) => v,
        };
        if let Some(raw) = value.clone().try_cast::<ShellRaw>() {
            let text = Value::String(raw.0);
            self.taint.record(expr, &text);
            return Ok(Resolved::Known(text));
        }
        let word = |v: &Value| match v {
            Value::String(s) => quote(s),
            other => quote(&other.to_string()),
        };
        let words = match self.to_json(expr, &value)? {
            Resolved::Known(v) => {
                self.taint.record(expr, &v);
                match &v {
                    Value::Array(items) => items.iter().map(word).collect::<Vec<_>>().join(" "),
                    other => word(other),
                }
            }
            unknown => return Ok(unknown),
        };
        let words = Value::String(words);
        // Quoting changes the text of a value holding `'`: that form is
        // derived too (otherwise the value itself is found inside the quotes).
        if words.as_str().is_some_and(|w| w.contains("'\\''")) {
            self.taint.record(expr, &words);
        }
        Ok(Resolved::Known(words))
    }

    /// Evaluate a condition that must be a boolean.
    pub fn eval_bool(
        &self,
        expr: &Expr,
        result: Option<&Value>,
    ) -> Result<Option<bool>, EvalError> {
        match self.eval(expr, result)? {
            Resolved::Unknown { .. } => Ok(None),
            Resolved::Known(Value::Bool(b)) => Ok(Some(b)),
            Resolved::Known(other) => Err(EvalError::new(
                &self.source,
                expr,
                format!(
                    "`{}` must be true or false, but is {}",
                    expr.text.trim(),
                    short(&other)
                ),
            )),
        }
    }

    /// Resolve a `with` value to JSON (templates interpolated).
    pub fn resolve(&self, arg: &ArgValue) -> Result<Resolved, EvalError> {
        Ok(match arg {
            ArgValue::Null => Resolved::Known(Value::Null),
            ArgValue::Bool(b) => Resolved::Known(Value::Bool(*b)),
            ArgValue::Int(i) => Resolved::Known(Value::from(*i)),
            ArgValue::Float(f) => Resolved::Known(Value::from(*f)),
            ArgValue::Expr(e) => Resolved::Known(Value::String(e.text.clone())),
            ArgValue::Text(t) => {
                if let Some(e) = t.as_single_expr() {
                    return self.eval(e, None);
                }
                return self.join(t, |e| self.eval(e, None));
            }
            ArgValue::Command(t) => return self.join(t, |e| self.shell_words(e)),
            ArgValue::List(items) => {
                let mut out = Vec::new();
                for i in items {
                    match self.resolve(i)? {
                        Resolved::Known(v) => out.push(v),
                        unknown => return Ok(unknown),
                    }
                }
                Resolved::Known(Value::Array(out))
            }
            ArgValue::Map(entries) => {
                let mut out = Map::new();
                for (k, v) in entries {
                    match self.resolve(v)? {
                        Resolved::Known(v) => {
                            out.insert(k.clone(), v);
                        }
                        unknown => return Ok(unknown),
                    }
                }
                Resolved::Known(Value::Object(out))
            }
        })
    }
}

impl Bindings {
    /// A template's text: literal parts as written, each expression's value
    /// as `insert` makes it (a string as it is, other values as JSON text).
    fn join(
        &self,
        t: &Template,
        insert: impl Fn(&Expr) -> Result<Resolved, EvalError>,
    ) -> Result<Resolved, EvalError> {
        let mut out = String::new();
        for part in &t.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Expr(e) => match insert(e)? {
                    Resolved::Unknown { set_by } => return Ok(Resolved::Unknown { set_by }),
                    Resolved::Known(Value::String(s)) => out.push_str(&s),
                    Resolved::Known(v) => out.push_str(&v.to_string()),
                },
            }
        }
        Ok(Resolved::Known(Value::String(out)))
    }
}

/// What running an expression gave: a Rhai value, or nothing yet because it
/// reads a result only a real run of that step produces.
enum Ran {
    Value(rhai::Dynamic),
    Unknown(String),
}

fn rhai_error_text(e: &rhai::EvalAltResult) -> String {
    // Rhai appends "(line 1, position 5)" — the runbook position is shown instead.
    let s = e.to_string();
    match s.rfind(" (line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A value shortened for messages.
pub fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    };
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bind::BoundRun;
    use crate::redact::Redactor;
    use serde_json::json;

    /// A command built from a secret, in every form an expression can give:
    /// each is quoted, and each is recorded as derived (a list's items too).
    #[test]
    fn secret_derived_values_in_commands_are_quoted_and_recorded() {
        let rb = remedy_dsl::compile(Source::new(
            "rb.yaml",
            "runbook: r\nsummary: s\ntargets: all\nparams:\n  token: { type: secret }\nsteps:\n  - id: a\n    action: shell\n    with: { cmd: \"use ${params.token.to_upper()} ${[params.token.sub_string(1, 5)]} ${shell_raw(`x` + params.token.len())}\" }\n",
        ))
        .unwrap();
        let derived = Derived::default();
        let params = json!({ "token": "hunter2-xyz" })
            .as_object()
            .cloned()
            .unwrap();
        let bindings = Bindings {
            source: rb.source.clone(),
            params: params.clone(),
            host: json!({}),
            steps: BTreeMap::new(),
            taint: Taint {
                secrets: vec!["token".into()],
                steps: BTreeMap::new(),
                derived: derived.clone(),
            },
        };
        let Resolved::Known(Value::String(cmd)) = bindings.resolve(&rb.steps[0].with[0].1).unwrap()
        else {
            panic!("not a string")
        };
        assert_eq!(cmd, "use 'HUNTER2-XYZ' 'unter' x11");
        let run = BoundRun {
            hosts: Vec::new(),
            params,
            secrets: vec!["token".into()],
            lbs: Vec::new(),
            etcd: Vec::new(),
            derived,
        };
        assert_eq!(
            Redactor::new(&run).apply(&cmd),
            "use '«secret:token, derived»' '«secret:token, derived»' x11"
        );
    }
}
