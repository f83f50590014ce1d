//! Evaluating a step's Rhai at run time: `when`, `until`, `assert`, `${...}`
//! in `with`, scripts. Values flow as JSON; the Rhai scope is built from them.
//!
//! In a dry-run, a step whose result only a real apply could produce is
//! registered as unknown; anything that reads it evaluates to
//! [`Resolved::Unknown`] (`unknown (set by step X)`) instead of a guess.

use remedy_dsl::runbook::ArgValue;
use remedy_dsl::template::Part;
use remedy_dsl::{Diagnostic, Expr, Source};
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
        let unknown = self.unknown_dependency(expr);
        let mut scope = self
            .scope(result)
            .map_err(|m| EvalError::new(&self.source, expr, m))?;
        let value = match remedy_dsl::expr::sandbox()
            .eval_ast_with_scope::<rhai::Dynamic>(&mut scope, &expr.ast)
        {
            Ok(v) => v,
            Err(_) if unknown.is_some() => {
                return Ok(Resolved::Unknown {
                    set_by: unknown.unwrap_or_default(),
                })
            }
            Err(e) => {
                return Err(EvalError::new(
                    &self.source,
                    expr,
                    format!("evaluating `{}`: {}", expr.text.trim(), rhai_error_text(&e)),
                ));
            }
        };
        match rhai::serde::from_dynamic::<Value>(&value) {
            Ok(json) => Ok(Resolved::Known(json)),
            // The value itself is (or holds) a result not known yet.
            Err(_) if unknown.is_some() => Ok(Resolved::Unknown {
                set_by: unknown.unwrap_or_default(),
            }),
            Err(e) => Err(EvalError::new(
                &self.source,
                expr,
                format!(
                    "`{}` produced a value remedy cannot use: {e}",
                    expr.text.trim()
                ),
            )),
        }
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
                let mut out = String::new();
                for part in &t.parts {
                    match part {
                        Part::Lit(s) => out.push_str(s),
                        Part::Expr(e) => match self.eval(e, None)? {
                            Resolved::Unknown { set_by } => {
                                return Ok(Resolved::Unknown { set_by })
                            }
                            Resolved::Known(Value::String(s)) => out.push_str(&s),
                            Resolved::Known(v) => out.push_str(&v.to_string()),
                        },
                    }
                }
                Resolved::Known(Value::String(out))
            }
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
