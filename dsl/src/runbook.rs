//! The checked runbook: what `compile` produces and the engine runs. Every
//! value here has passed the compiler; nothing unchecked reaches the engine.

use crate::action::ActionKind;
use crate::expr::Expr;
use crate::param::ParamType;
use crate::source::{Source, Span};
use crate::template::Template;
use serde_json::Value;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Runbook {
    pub name: String,
    pub summary: String,
    pub description: Option<String>,
    pub source: Arc<Source>,
    pub params: Vec<ParamSpec>,
    /// Inventory group, host name or pattern (`masters`, `master-*`, `a,b,!c`).
    pub targets: String,
    pub targets_span: Span,
    pub strategy: Strategy,
    pub approval: Approval,
    pub steps: Vec<Step>,
    pub on_failure: OnFailure,
    /// Run the steps on the first target host only (cluster-wide actions
    /// such as `etcd.defrag` reach every member from there); all targets are
    /// still locked and approved.
    pub run_once: bool,
    /// Things that compile but deserve a second look (`remedy validate`
    /// prints them): a param inserted into a command as raw shell text.
    pub warnings: Vec<crate::Diagnostic>,
}

impl Runbook {
    pub fn param(&self, name: &str) -> Option<&ParamSpec> {
        self.params.iter().find(|p| p.name == name)
    }
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}

#[derive(Debug, Clone)]
pub struct ParamSpec {
    pub name: String,
    pub ty: ParamType,
    pub default: Option<Value>,
    pub choices: Option<Vec<Value>>,
    pub required: bool,
    pub doc: String,
    pub span: Span,
}

/// How many hosts change at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// This many hosts per batch.
    Count(u32),
    /// This share of the targets per batch, rounded up, at least one host.
    Percent(u32),
    /// All hosts at once.
    Parallel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strategy {
    pub batch: Batch,
    /// Failed hosts tolerated before the rollout stops before its next batch.
    pub max_failed: u32,
}

impl Strategy {
    /// Split `n` hosts into batch sizes.
    pub fn batch_sizes(&self, n: usize) -> Vec<usize> {
        let size = match self.batch {
            Batch::Count(c) => c as usize,
            Batch::Percent(p) => (n * p as usize).div_ceil(100),
            Batch::Parallel => n,
        }
        .max(1);
        let mut out = Vec::new();
        let mut left = n;
        while left > 0 {
            let take = size.min(left);
            out.push(take);
            left -= take;
        }
        out
    }
}

impl Default for Strategy {
    fn default() -> Self {
        Strategy {
            batch: Batch::Count(1),
            max_failed: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalScope {
    Run,
    Host,
    Step,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    pub quorum: u32,
    pub approvers: Vec<String>,
    pub forbid_requester: bool,
    pub ttl_secs: i64,
    pub scope: ApprovalScope,
    /// A Rhai expression over `plan` that approves a run without a person
    /// (meant for scheduled runs), e.g. `plan.max_changing_per_batch <= 1`.
    pub auto_approve: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    None,
    Required(ApprovalPolicy),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Undo this host's completed steps in reverse and restore its backups.
    Rollback,
    /// Stop this host where it is; keep what was done.
    Stop,
    /// Record the failure and go on with the host's next step.
    Continue,
    /// Go on like `continue`, but the failure does not fail the host: a
    /// later step reads `steps.<id>.failed` and takes another way (a
    /// fallback), and that way's own steps decide how the host ends. Only
    /// for a step, and only one a later step reads (the compiler checks).
    Handled,
}

impl OnFailure {
    pub const NAMES: [&'static str; 4] = ["rollback", "stop", "continue", "handled"];
    pub fn name(self) -> &'static str {
        match self {
            OnFailure::Rollback => "rollback",
            OnFailure::Stop => "stop",
            OnFailure::Continue => "continue",
            OnFailure::Handled => "handled",
        }
    }
}

/// A `with` value: YAML structure, with strings as templates and expression
/// arguments compiled.
#[derive(Debug, Clone)]
pub enum ArgValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(Template),
    /// A shell command: each `${...}` is inserted as one shell-quoted word
    /// (a list as several), except `${shell_raw(...)}`, inserted as it is.
    Command(Template),
    List(Vec<ArgValue>),
    Map(Vec<(String, ArgValue)>),
    Expr(Expr),
}

impl ArgValue {
    /// Every expression inside, interpolations included.
    pub fn exprs(&self) -> Vec<&Expr> {
        match self {
            ArgValue::Text(t) | ArgValue::Command(t) => t.exprs().collect(),
            ArgValue::List(items) => items.iter().flat_map(ArgValue::exprs).collect(),
            ArgValue::Map(entries) => entries.iter().flat_map(|(_, v)| v.exprs()).collect(),
            ArgValue::Expr(e) => vec![e],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: String,
    pub name: Option<String>,
    pub action: ActionKind,
    pub with: Vec<(String, ArgValue)>,
    pub when: Option<Expr>,
    pub until: Option<Expr>,
    /// Extra attempts when `until` is false or the apply fails.
    pub retries: u32,
    pub backoff_secs: i64,
    pub timeout_secs: Option<i64>,
    pub assert: Option<Expr>,
    pub on_failure: Option<OnFailure>,
    pub span: Span,
}

impl Step {
    pub fn arg(&self, name: &str) -> Option<&ArgValue> {
        self.with.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
    /// Every step id this step's expressions read.
    pub fn reads_steps(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .with
            .iter()
            .flat_map(|(_, v)| v.exprs())
            .chain(self.when.iter())
            .chain(self.until.iter())
            .chain(self.assert.iter())
            .flat_map(|e| e.step_ids().map(str::to_string).collect::<Vec<_>>())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}
