//! The compiler: runbook text in, checked [`Runbook`] out, or every problem
//! found, each with its place. The pipeline reads top to bottom:
//! parse YAML → check the top level → params → strategy/approval → steps
//! (ids first, so references can be told "later" from "unknown") → done.
//! Here: the entry points, the top level and the checks every part uses;
//! `params.rs`, `policy.rs` (strategy, approval, on_failure), `steps.rs` and
//! `exprs.rs` (Rhai and `${}` templates, references) hold the parts.

use crate::action::{ActionKind, ArgKind, COMMON_RESULTS};
use crate::diagnostic::{did_you_mean, Diagnostic, Diagnostics};
use crate::expr::{self, Context, Expr};
use crate::param::{parse_duration, ParamType};
use crate::runbook::*;
use crate::source::{Source, Span};
use crate::template::{self, Part, RawPart, Template};
use crate::yaml::{self, Node, NodeKind};
use serde_json::Value;
use std::sync::Arc;

mod exprs;
mod params;
mod policy;
mod steps;

pub(crate) const TOP_KEYS: &[&str] = &[
    "runbook",
    "summary",
    "description",
    "params",
    "targets",
    "strategy",
    "approval",
    "steps",
    "on_failure",
    "run_once",
];
pub(crate) const STEP_KEYS: &[&str] = &[
    "id",
    "name",
    "action",
    "script",
    "with",
    "when",
    "until",
    "retries",
    "backoff",
    "timeout",
    "assert",
    "on_failure",
];
pub(crate) const PARAM_KEYS: &[&str] = &["type", "default", "enum", "required", "doc"];
pub(crate) const STRATEGY_KEYS: &[&str] = &["serial", "parallel", "max_failed"];
pub(crate) const APPROVAL_KEYS: &[&str] = &[
    "quorum",
    "approvers",
    "forbid_requester",
    "ttl",
    "scope",
    "auto_approve",
];
/// `approval: { scope: … }`.
pub(crate) const APPROVAL_SCOPES: &[&str] = &["run", "host", "step"];
const HOST_FIELDS: &[&str] = &[
    "name", "address", "port", "user", "groups", "vars", "lbs", "first",
];

/// Check a runbook completely. Nothing that fails here can run.
pub fn compile(source: Arc<Source>) -> Result<Runbook, Diagnostics> {
    let root = yaml::parse(&source).map_err(Diagnostics)?;
    let mut c = Checker {
        src: source.clone(),
        diags: Diagnostics::default(),
        warnings: Vec::new(),
        in_command: false,
    };
    let runbook = c.runbook(&root);
    match runbook {
        Some(rb) if c.diags.is_empty() => Ok(rb),
        _ => Err(c.diags),
    }
}

/// Check an `approval:` block found outside a runbook (an inventory, the
/// site config), with the same rules and messages.
pub fn approval(source: Arc<Source>, node: &yaml::Node) -> Result<Approval, Diagnostics> {
    let mut c = Checker {
        src: source,
        diags: Diagnostics::default(),
        warnings: Vec::new(),
        in_command: false,
    };
    let a = c.approval(node);
    c.diags.into_result(a)
}

/// What an expression may refer to at its position in the runbook.
#[derive(Clone, Copy)]
struct RefScope<'a> {
    params: &'a [ParamSpec],
    /// All steps by id: (index, span, action if it parsed).
    steps: &'a [(String, usize, Span, Option<ActionKind>)],
    /// Index of the step the expression belongs to.
    current: usize,
    /// For `result.*`: the action of the current step.
    result_of: Option<ActionKind>,
    /// `result` is a probe's output (`wait.until`'s `condition`), not the step's result.
    probe_result: bool,
}

/// What a probe command's `result` holds.
const PROBE_RESULTS: &[&str] = &["rc", "stdout", "stderr"];

struct Checker {
    src: Arc<Source>,
    diags: Diagnostics,
    warnings: Vec<Diagnostic>,
    /// True while a shell command argument is compiled: only there may
    /// `shell_raw(...)` appear.
    in_command: bool,
}

impl Checker {
    fn error(&mut self, span: Span, msg: impl Into<String>) {
        self.diags.push(Diagnostic::at(&self.src, span, msg));
    }

    fn error_hint(&mut self, span: Span, msg: impl Into<String>, hint: Option<String>) {
        let mut d = Diagnostic::at(&self.src, span, msg);
        d.hint = hint;
        self.diags.push(d);
    }

    /// The node as a mapping, checking its keys against `allowed`.
    fn mapping<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<&'n [(Node, Node)]> {
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!("{what} must be a mapping, found {}", node.type_name()),
            );
            return None;
        };
        for (key, _) in entries {
            match key.as_str() {
                Some(k) if allowed.contains(&k) => {}
                Some(k) => {
                    let hint = did_you_mean(k, allowed.iter().copied())
                        .unwrap_or_else(|| format!("allowed here: {}", allowed.join(", ")));
                    self.error_hint(key.span, format!("unknown key `{k}` in {what}"), Some(hint));
                }
                None => self.error(key.span, format!("keys in {what} must be strings")),
            }
        }
        Some(entries)
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.kind {
            NodeKind::Str(s) => Some(s.clone()),
            _ => {
                self.error(
                    node.span,
                    format!("{what} must be a string, found {}", node.type_name()),
                );
                None
            }
        }
    }

    fn uint(&mut self, node: &Node, what: &str) -> Option<u32> {
        match node.kind {
            NodeKind::Int(i) if i >= 0 && i <= u32::MAX as i64 => Some(i as u32),
            NodeKind::Int(i) => {
                self.error(node.span, format!("{what} must be zero or more, found {i}"));
                None
            }
            _ => {
                self.error(
                    node.span,
                    format!("{what} must be a whole number, found {}", node.type_name()),
                );
                None
            }
        }
    }

    fn duration(&mut self, node: &Node, what: &str) -> Option<i64> {
        let parsed = match &node.kind {
            NodeKind::Int(i) if *i >= 0 => Some(*i),
            NodeKind::Str(s) => parse_duration(s),
            _ => None,
        };
        if parsed.is_none() {
            self.error_hint(
                node.span,
                format!(
                    "{what} must be a duration, found `{}`",
                    node.scalar_text().unwrap_or_default()
                ),
                Some("write e.g. 30s, 5m, 1h30m or 7d".into()),
            );
        }
        parsed
    }

    fn runbook(&mut self, root: &Node) -> Option<Runbook> {
        let entries = self.mapping(root, "the runbook", TOP_KEYS)?;
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        let top = Span::new(1, 0, 1);

        let name = match get("runbook") {
            Some(n) => self.string(n, "`runbook`").inspect(|name| {
                let ok = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if !ok {
                    self.error_hint(
                        n.span,
                        format!("runbook name `{name}` is not valid"),
                        Some("use lowercase letters, digits and `-`, e.g. `cert-renew`".into()),
                    );
                }
            }),
            None => {
                self.error_hint(
                    top,
                    "missing `runbook:` (the runbook's name)",
                    Some("add e.g. `runbook: cert-renew` at the top".into()),
                );
                None
            }
        };
        let summary = match get("summary") {
            Some(n) => self.string(n, "`summary`"),
            None => {
                self.error_hint(
                    top,
                    "missing `summary:`",
                    Some("one line that tells an on-call engineer what this runbook does".into()),
                );
                None
            }
        };
        let description = get("description").and_then(|n| self.string(n, "`description`"));
        let (targets, targets_span) = match get("targets") {
            Some(n) => (self.string(n, "`targets`"), n.span),
            None => {
                self.error_hint(
                    top,
                    "missing `targets:`",
                    Some("name an inventory group or host pattern, e.g. `targets: masters`".into()),
                );
                (None, top)
            }
        };
        let params = get("params").map(|n| self.params(n)).unwrap_or_default();
        let strategy = get("strategy")
            .map(|n| self.strategy(n))
            .unwrap_or_default();
        let approval = get("approval")
            .map(|n| self.approval(n))
            .unwrap_or(Approval::None);
        let on_failure = match get("on_failure").map(|n| (n, self.on_failure(n))) {
            Some((n, Some(OnFailure::Handled))) => {
                self.error_hint(
                    n.span,
                    "`on_failure: handled` is for a single step",
                    Some("a later step must read that step's `failed` and take another way; for the whole runbook use `continue`".into()),
                );
                OnFailure::Rollback
            }
            Some((_, Some(p))) => p,
            _ => OnFailure::Rollback,
        };
        let run_once = match get("run_once").map(|n| (&n.kind, n)) {
            None => false,
            Some((NodeKind::Bool(b), _)) => *b,
            Some((_, n)) => {
                self.error(n.span, "`run_once` must be true or false");
                false
            }
        };
        let steps = match get("steps") {
            Some(n) => self.steps(n, &params),
            None => {
                self.error_hint(
                    top,
                    "missing `steps:`",
                    Some("a runbook needs at least one step".into()),
                );
                Vec::new()
            }
        };
        self.handled_failures_are_read(&steps);
        Some(Runbook {
            name: name?,
            summary: summary?,
            description,
            source: self.src.clone(),
            params,
            targets: targets?,
            targets_span,
            strategy,
            approval,
            steps,
            on_failure,
            run_once,
            warnings: std::mem::take(&mut self.warnings),
        })
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn render_values(vals: &[Value]) -> String {
    vals.iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
