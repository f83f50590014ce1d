//! The compiler: runbook text in, checked [`Runbook`] out, or every problem
//! found, each with its place. The pipeline reads top to bottom:
//! parse YAML → check the top level → params → strategy/approval → steps
//! (ids first, so references can be told "later" from "unknown") → done.

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

const TOP_KEYS: &[&str] = &[
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
const STEP_KEYS: &[&str] = &[
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
const PARAM_KEYS: &[&str] = &["type", "default", "enum", "required", "doc"];
const HOST_FIELDS: &[&str] = &["name", "address", "port", "user", "groups", "vars", "lbs"];

/// Check a runbook completely. Nothing that fails here can run.
pub fn compile(source: Arc<Source>) -> Result<Runbook, Diagnostics> {
    let root = yaml::parse(&source).map_err(Diagnostics)?;
    let mut c = Checker {
        src: source.clone(),
        diags: Diagnostics::default(),
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
        let on_failure = get("on_failure")
            .and_then(|n| self.on_failure(n))
            .unwrap_or(OnFailure::Rollback);
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
        })
    }

    fn params(&mut self, node: &Node) -> Vec<ParamSpec> {
        let Some(entries) = node.as_map() else {
            self.error(
                node.span,
                format!(
                    "`params` must be a mapping of name to spec, found {}",
                    node.type_name()
                ),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, spec) in entries {
            let Some(name) = key.as_str() else {
                self.error(key.span, "param names must be strings");
                continue;
            };
            if !is_identifier(name) {
                self.error_hint(
                    key.span,
                    format!("param name `{name}` cannot be used in Rhai as `params.{name}`"),
                    Some("use letters, digits and `_`, e.g. `threshold_days`".into()),
                );
            }
            // Shorthand: `name: int`.
            if let Some(ty_name) = spec.as_str() {
                if let Some(ty) = self.param_type(ty_name, spec.span) {
                    out.push(ParamSpec {
                        name: name.into(),
                        ty,
                        default: None,
                        choices: None,
                        required: true,
                        doc: String::new(),
                        span: key.span,
                    });
                }
                continue;
            }
            let what = format!("param `{name}`");
            let Some(fields) = self.mapping(spec, &what, PARAM_KEYS) else {
                continue;
            };
            let get = |k: &str| {
                fields
                    .iter()
                    .find(|(key, _)| key.as_str() == Some(k))
                    .map(|(_, v)| v)
            };
            let Some(ty_node) = get("type") else {
                self.error_hint(
                    key.span,
                    format!("{what} has no `type`"),
                    Some(format!("one of: {}", ParamType::NAMES.join(", "))),
                );
                continue;
            };
            let Some(ty) = self
                .string(ty_node, "`type`")
                .and_then(|t| self.param_type(&t, ty_node.span))
            else {
                continue;
            };
            let choices = get("enum").and_then(|n| {
                let Some(items) = n.as_seq() else {
                    self.error(
                        n.span,
                        format!("`enum` must be a list, found {}", n.type_name()),
                    );
                    return None;
                };
                let mut vals = Vec::new();
                for item in items {
                    match ty.check_json(&item.to_json()) {
                        Ok(v) => vals.push(v),
                        Err(e) => self.error(item.span, format!("enum value of {what}: {e}")),
                    }
                }
                Some(vals)
            });
            let default = get("default").and_then(|n| match ty.check_json(&n.to_json()) {
                Ok(v) => {
                    if let Some(ch) = &choices {
                        if !ch.contains(&v) {
                            self.error_hint(
                                n.span,
                                format!("default of {what} is not one of its `enum` values"),
                                Some(format!("allowed: {}", render_values(ch))),
                            );
                        }
                    }
                    Some(v)
                }
                Err(e) => {
                    self.error(n.span, format!("default of {what} has the wrong type: {e}"));
                    None
                }
            });
            let required = match get("required") {
                Some(n) => match n.kind {
                    NodeKind::Bool(b) => {
                        if b && get("default").is_some() {
                            self.error_hint(
                                n.span,
                                format!("{what} is `required` but has a default"),
                                Some("drop one: a param with a default is never missing".into()),
                            );
                        }
                        b
                    }
                    _ => {
                        self.error(
                            n.span,
                            format!("`required` must be true or false, found {}", n.type_name()),
                        );
                        false
                    }
                },
                None => get("default").is_none(),
            };
            let doc = get("doc").and_then(|n| n.scalar_text()).unwrap_or_default();
            out.push(ParamSpec {
                name: name.into(),
                ty,
                default,
                choices,
                required,
                doc,
                span: key.span,
            });
        }
        out
    }

    fn param_type(&mut self, name: &str, span: Span) -> Option<ParamType> {
        let ty = ParamType::from_name(name);
        if ty.is_none() {
            let hint = did_you_mean(name, ParamType::NAMES)
                .unwrap_or_else(|| format!("one of: {}", ParamType::NAMES.join(", ")));
            self.error_hint(span, format!("unknown param type `{name}`"), Some(hint));
        }
        ty
    }

    fn strategy(&mut self, node: &Node) -> Strategy {
        let mut s = Strategy::default();
        if let Some(word) = node.as_str() {
            match word {
                "parallel" => s.batch = Batch::Parallel,
                "serial" => {}
                _ => self.error_hint(
                    node.span,
                    format!("unknown strategy `{word}`"),
                    Some(
                        "write `parallel`, or a mapping such as `{ serial: 1, max_failed: 0 }`"
                            .into(),
                    ),
                ),
            }
            return s;
        }
        let Some(entries) = self.mapping(node, "`strategy`", &["serial", "parallel", "max_failed"])
        else {
            return s;
        };
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        if let (Some(_), Some(p)) = (get("serial"), get("parallel")) {
            self.error_hint(
                p.span,
                "`serial` and `parallel` together",
                Some("choose one: `serial: N` (or `N%`) or `parallel: true`".into()),
            );
        }
        if let Some(n) = get("serial") {
            let serial_hint = Some(
                "write a host count (`serial: 1`) or a share of the targets (`serial: \"30%\"`)"
                    .to_string(),
            );
            match &n.kind {
                NodeKind::Int(i) if *i >= 1 && *i <= u32::MAX as i64 => {
                    s.batch = Batch::Count(*i as u32)
                }
                NodeKind::Str(text) if text.ends_with('%') => {
                    match text.trim_end_matches('%').trim().parse::<u32>() {
                        Ok(p) if (1..=100).contains(&p) => s.batch = Batch::Percent(p),
                        _ => self.error_hint(
                            n.span,
                            format!("`serial: {text}` must be a percentage from 1% to 100%"),
                            serial_hint,
                        ),
                    }
                }
                _ => self.error_hint(
                    n.span,
                    format!(
                        "`serial: {}` is not a batch size",
                        n.scalar_text().unwrap_or_else(|| n.type_name().into())
                    ),
                    serial_hint,
                ),
            }
        }
        if let Some(p) = get("parallel") {
            match p.kind {
                NodeKind::Bool(true) => s.batch = Batch::Parallel,
                NodeKind::Bool(false) => {}
                _ => self.error(
                    p.span,
                    format!("`parallel` must be true or false, found {}", p.type_name()),
                ),
            }
        }
        if let Some(m) = get("max_failed") {
            if let Some(v) = self.uint(m, "`max_failed`") {
                s.max_failed = v;
            }
        }
        s
    }

    fn approval(&mut self, node: &Node) -> Approval {
        if node.as_str() == Some("none") {
            return Approval::None;
        }
        let Some(entries) = self.mapping(
            node,
            "`approval`",
            &[
                "quorum",
                "approvers",
                "forbid_requester",
                "ttl",
                "scope",
                "auto_approve",
            ],
        ) else {
            return Approval::None;
        };
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        let quorum = get("quorum")
            .and_then(|n| self.uint(n, "`quorum`"))
            .unwrap_or(1);
        if quorum == 0 {
            if let Some(n) = get("quorum") {
                self.error_hint(
                    n.span,
                    "`quorum: 0` approves nothing",
                    Some("write `approval: none` to run without approval".into()),
                );
            }
        }
        let mut approvers = Vec::new();
        match get("approvers") {
            Some(n) => match n.as_seq() {
                Some(items) if !items.is_empty() => {
                    for item in items {
                        if let Some(s) = self.string(item, "an approver") {
                            approvers.push(s);
                        }
                    }
                }
                _ => self.error_hint(
                    n.span,
                    "`approvers` must be a non-empty list",
                    Some("users (`alice`) or groups (`group:sre`)".into()),
                ),
            },
            None => self.error_hint(
                node.span,
                "`approval` without `approvers`",
                Some("list who may approve: users (`alice`) or groups (`group:sre`)".into()),
            ),
        }
        let users_only =
            !approvers.is_empty() && approvers.iter().all(|a| !a.starts_with("group:"));
        if users_only && quorum as usize > approvers.len() {
            if let Some(n) = get("quorum") {
                self.error(
                    n.span,
                    format!(
                        "`quorum: {quorum}` can never be met by {} listed approver(s)",
                        approvers.len()
                    ),
                );
            }
        }
        let forbid_requester = match get("forbid_requester").map(|n| (&n.kind, n)) {
            Some((NodeKind::Bool(b), _)) => *b,
            Some((_, n)) => {
                self.error(n.span, "`forbid_requester` must be true or false");
                true
            }
            None => true,
        };
        let ttl_secs = get("ttl")
            .and_then(|n| self.duration(n, "`ttl`"))
            .unwrap_or(1800);
        let scope = match get("scope") {
            None => ApprovalScope::Run,
            Some(n) => match n.as_str() {
                Some("run") => ApprovalScope::Run,
                Some("host") => ApprovalScope::Host,
                Some("step") => ApprovalScope::Step,
                _ => {
                    self.error_hint(
                        n.span,
                        format!(
                            "unknown approval scope `{}`",
                            n.scalar_text().unwrap_or_default()
                        ),
                        Some("one of: run, host, step".into()),
                    );
                    ApprovalScope::Run
                }
            },
        };
        let auto_approve = get("auto_approve").and_then(|n| {
            let text = self.string(n, "`auto_approve`")?;
            match crate::expr::compile(&text, crate::expr::Context::Plan, false) {
                Ok(_) => Some(text),
                Err(e) => {
                    self.error_hint(
                        n.span,
                        format!(
                            "`auto_approve` is not a valid Rhai expression: {}",
                            e.message
                        ),
                        Some(
                            "an expression over `plan`, e.g. `plan.max_changing_per_batch <= 1`"
                                .into(),
                        ),
                    );
                    None
                }
            }
        });
        Approval::Required(ApprovalPolicy {
            quorum,
            approvers,
            forbid_requester,
            ttl_secs,
            scope,
            auto_approve,
        })
    }

    fn on_failure(&mut self, node: &Node) -> Option<OnFailure> {
        match node.as_str() {
            Some("rollback") => Some(OnFailure::Rollback),
            Some("stop") => Some(OnFailure::Stop),
            Some("continue") => Some(OnFailure::Continue),
            other => {
                let word = other
                    .map(str::to_string)
                    .unwrap_or_else(|| node.type_name().into());
                let hint = other
                    .and_then(|w| did_you_mean(w, OnFailure::NAMES))
                    .unwrap_or_else(|| format!("one of: {}", OnFailure::NAMES.join(", ")));
                self.error_hint(
                    node.span,
                    format!("unknown `on_failure: {word}`"),
                    Some(hint),
                );
                None
            }
        }
    }

    fn steps(&mut self, node: &Node, params: &[ParamSpec]) -> Vec<Step> {
        let Some(items) = node.as_seq() else {
            self.error(
                node.span,
                format!("`steps` must be a list, found {}", node.type_name()),
            );
            return Vec::new();
        };
        if items.is_empty() {
            self.error(
                node.span,
                "`steps` is empty: a runbook needs at least one step",
            );
        }
        // First pass: ids, so a reference can be told "later" from "unknown".
        let mut index: Vec<(String, usize, Span, Option<ActionKind>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(id_node) = item.get("id") else {
                continue;
            };
            let Some(id) = id_node.as_str() else { continue };
            if let Some((_, _, first, _)) = index.iter().find(|(other, ..)| other == id) {
                let line = first.line;
                self.error_hint(
                    id_node.span,
                    format!("duplicate step id `{id}`"),
                    Some(format!(
                        "`{id}` is already used at line {line}; step ids must be unique"
                    )),
                );
                continue;
            }
            let action = if item.get("script").is_some() {
                Some(ActionKind::Script)
            } else {
                item.get("action")
                    .and_then(|a| a.as_str())
                    .and_then(ActionKind::from_name)
            };
            index.push((id.to_string(), i, id_node.span, action));
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(step) = self.step(item, i, params, &index) {
                out.push(step);
            }
        }
        out
    }

    fn step(
        &mut self,
        node: &Node,
        i: usize,
        params: &[ParamSpec],
        index: &[(String, usize, Span, Option<ActionKind>)],
    ) -> Option<Step> {
        let entries = self.mapping(node, "a step", STEP_KEYS)?;
        let get = |k: &str| {
            entries
                .iter()
                .find(|(key, _)| key.as_str() == Some(k))
                .map(|(_, v)| v)
        };
        let id = match get("id") {
            Some(n) => {
                let id = self.string(n, "`id`")?;
                if !is_identifier(&id) {
                    self.error_hint(
                        n.span,
                        format!("step id `{id}` cannot be read as `steps.{id}` in Rhai"),
                        Some("use letters, digits and `_` (e.g. `renew_certs`)".into()),
                    );
                }
                id
            }
            None => {
                self.error_hint(
                    node.span,
                    format!("step {} has no `id`", i + 1),
                    Some(
                        "give every step a unique `id:` so later steps and the journal can name it"
                            .into(),
                    ),
                );
                return None;
            }
        };
        let action = match (get("action"), get("script")) {
            (Some(a), Some(s)) => {
                let _ = a;
                self.error_hint(
                    s.span,
                    format!("step `{id}` has both `action` and `script`"),
                    Some("`script:` is short for `action: script`; keep one".into()),
                );
                None
            }
            (Some(a), None) => {
                let name = self.string(a, "`action`")?;
                let kind = ActionKind::from_name(&name);
                if kind.is_none() {
                    let hint = did_you_mean(&name, ActionKind::ALL.iter().map(|k| k.name()))
                        .unwrap_or_else(|| {
                            "run `remedy list --actions` to see every action".into()
                        });
                    self.error_hint(a.span, format!("unknown action `{name}`"), Some(hint));
                }
                kind
            }
            (None, Some(_)) => Some(ActionKind::Script),
            (None, None) => {
                self.error_hint(
                    node.span,
                    format!("step `{id}` has no `action`"),
                    Some("add e.g. `action: shell`; `remedy list --actions` shows them all".into()),
                );
                None
            }
        };
        let scope = RefScope {
            params,
            steps: index,
            current: i,
            result_of: action,
            probe_result: false,
        };
        let when = get("when").and_then(|n| self.expr(n, Context::Step, false, &scope, "`when`"));
        let until =
            get("until").and_then(|n| self.expr(n, Context::Result, false, &scope, "`until`"));
        let assert =
            get("assert").and_then(|n| self.expr(n, Context::Result, false, &scope, "`assert`"));
        let retries = get("retries")
            .and_then(|n| self.uint(n, "`retries`"))
            .unwrap_or(0);
        if let (Some(u), None) = (get("until"), get("retries")) {
            self.error_hint(
                u.span,
                "`until` without `retries`",
                Some(
                    "say how many more attempts are allowed, e.g. `retries: 5` with `backoff: 10s`"
                        .into(),
                ),
            );
        }
        let backoff_secs = get("backoff")
            .and_then(|n| self.duration(n, "`backoff`"))
            .unwrap_or(5);
        let timeout_secs = get("timeout").and_then(|n| self.duration(n, "`timeout`"));
        if let (Some(n), Some(0)) = (get("timeout"), timeout_secs) {
            self.error(n.span, "`timeout: 0` would fail every attempt");
        }
        let on_failure = get("on_failure").and_then(|n| self.on_failure(n));
        let name = get("name").and_then(|n| n.scalar_text());
        let action = action?;
        let mut with = Vec::new();
        match (action, get("script")) {
            (ActionKind::Script, Some(code)) => {
                if let Some(e) = self.expr(code, Context::Step, true, &scope, "`script`") {
                    with.push(("code".to_string(), ArgValue::Expr(e)));
                }
                if let Some(w) = get("with") {
                    self.error_hint(
                        w.span,
                        "`with` on a `script:` step",
                        Some("a script reads `params`, `host` and `steps` directly".into()),
                    );
                }
            }
            _ => with = self.with(get("with"), action, &id, node.span, &scope),
        }
        Some(Step {
            id,
            name,
            action,
            with,
            when,
            until,
            retries,
            backoff_secs,
            timeout_secs,
            assert,
            on_failure,
            span: node.span,
        })
    }

    fn with(
        &mut self,
        node: Option<&Node>,
        action: ActionKind,
        id: &str,
        step_span: Span,
        scope: &RefScope,
    ) -> Vec<(String, ArgValue)> {
        let mut out = Vec::new();
        let entries: &[(Node, Node)] = match node {
            None => &[],
            Some(n) => match n.as_map() {
                Some(e) => e,
                None => {
                    self.error(
                        n.span,
                        format!(
                            "`with` must be a mapping of arguments, found {}",
                            n.type_name()
                        ),
                    );
                    return out;
                }
            },
        };
        for (key, value) in entries {
            let Some(k) = key.as_str() else { continue };
            let Some(spec) = action.arg(k) else {
                let names: Vec<&str> = action.args().iter().map(|a| a.name).collect();
                let hint = did_you_mean(k, names.iter().copied())
                    .unwrap_or_else(|| format!("`{action}` takes: {}", names.join(", ")));
                self.error_hint(
                    key.span,
                    format!("`{action}` has no argument `{k}`"),
                    Some(hint),
                );
                continue;
            };
            if k == "mode" && matches!(value.kind, NodeKind::Int(_)) {
                let written = self
                    .src
                    .line(value.span.line)
                    .and_then(|l| l.get(value.span.col..value.span.col + value.span.len))
                    .unwrap_or("")
                    .to_string();
                self.error_hint(
                    value.span,
                    format!(
                        "`mode: {written}` is read by YAML as the number {}, not an octal mode",
                        value.scalar_text().unwrap_or_default()
                    ),
                    Some(format!("quote it: `mode: \"{written}\"`")),
                );
                continue;
            }
            if let Some(v) = self.arg_value(value, spec.kind, &format!("`{k}`"), scope) {
                out.push((k.to_string(), v));
            }
        }
        for spec in action.args().iter().filter(|a| a.required) {
            if !entries.iter().any(|(k, _)| k.as_str() == Some(spec.name)) {
                let span = node.map(|n| n.span).unwrap_or(step_span);
                self.error_hint(
                    span,
                    format!("step `{id}`: `{action}` needs `{}`", spec.name),
                    Some(format!("`{}`: {}", spec.name, spec.doc)),
                );
            }
        }
        out
    }

    fn arg_value(
        &mut self,
        node: &Node,
        kind: ArgKind,
        what: &str,
        scope: &RefScope,
    ) -> Option<ArgValue> {
        let mismatch = |c: &mut Checker| {
            c.error(
                node.span,
                format!(
                    "{what} must be {}, found {}",
                    kind.describe(),
                    node.type_name()
                ),
            );
            None
        };
        match kind {
            ArgKind::Expr(ctx) => {
                let probe = RefScope {
                    probe_result: ctx == Context::Result,
                    ..*scope
                };
                self.expr(node, ctx, false, &probe, what)
                    .map(ArgValue::Expr)
            }
            ArgKind::Script => self
                .expr(node, Context::Step, true, scope, what)
                .map(ArgValue::Expr),
            ArgKind::Str => match &node.kind {
                NodeKind::Str(_) => self.template(node, scope).map(ArgValue::Text),
                NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_) => Some(ArgValue::Text(
                    Template::literal(node.scalar_text().unwrap_or_default()),
                )),
                _ => mismatch(self),
            },
            ArgKind::Int => match &node.kind {
                NodeKind::Int(i) => Some(ArgValue::Int(*i)),
                NodeKind::Str(_) => self.single_expr(node, scope, kind, what),
                _ => mismatch(self),
            },
            ArgKind::Bool => match &node.kind {
                NodeKind::Bool(b) => Some(ArgValue::Bool(*b)),
                NodeKind::Str(_) => self.single_expr(node, scope, kind, what),
                _ => mismatch(self),
            },
            ArgKind::Duration => match &node.kind {
                NodeKind::Str(s) if s.contains("${") => {
                    self.template(node, scope).map(ArgValue::Text)
                }
                _ => self.duration(node, what).map(ArgValue::Int),
            },
            ArgKind::StrList => match &node.kind {
                NodeKind::Seq(items) => {
                    let mut vals = Vec::new();
                    for item in items {
                        vals.push(self.arg_value(item, ArgKind::Str, "a list item", scope)?);
                    }
                    Some(ArgValue::List(vals))
                }
                NodeKind::Str(_) => self.single_expr(node, scope, kind, what),
                _ => mismatch(self),
            },
            ArgKind::StrMap => match &node.kind {
                NodeKind::Map(entries) => {
                    let mut vals = Vec::new();
                    for (k, v) in entries {
                        let key = k.scalar_text().unwrap_or_default();
                        if matches!(v.kind, NodeKind::Map(_) | NodeKind::Seq(_)) {
                            self.error(
                                v.span,
                                format!(
                                    "value of `{key}` in {what} must be a string, found {}",
                                    v.type_name()
                                ),
                            );
                            continue;
                        }
                        vals.push((key, self.arg_value(v, ArgKind::Str, "a value", scope)?));
                    }
                    Some(ArgValue::Map(vals))
                }
                NodeKind::Seq(items) => {
                    // Also written as a list of `NAME=VALUE` strings.
                    let mut vals = Vec::new();
                    for item in items {
                        vals.push(self.arg_value(item, ArgKind::Str, "a list item", scope)?);
                    }
                    Some(ArgValue::List(vals))
                }
                NodeKind::Str(_) => self.single_expr(node, scope, kind, what),
                _ => mismatch(self),
            },
        }
    }

    /// A string that must be exactly one `${...}` (for non-string arguments).
    fn single_expr(
        &mut self,
        node: &Node,
        scope: &RefScope,
        kind: ArgKind,
        what: &str,
    ) -> Option<ArgValue> {
        let t = self.template(node, scope)?;
        if t.as_single_expr().is_none() {
            self.error_hint(
                node.span,
                format!("{what} must be {}, found a string", kind.describe()),
                Some("write the value itself, or one `${...}` expression that computes it".into()),
            );
            return None;
        }
        Some(ArgValue::Text(t))
    }

    fn template(&mut self, node: &Node, scope: &RefScope) -> Option<Template> {
        let text = node.as_str()?;
        let raw = match template::split(text) {
            Ok(r) => r,
            Err((msg, line, col)) => {
                let span = node.inner_span(&self.src, line, col, 2);
                self.error_hint(
                    span,
                    msg,
                    Some("close it with `}`, or write `$${` for a literal `${`".into()),
                );
                return None;
            }
        };
        let mut parts = Vec::new();
        let mut ok = true;
        for p in raw {
            match p {
                RawPart::Lit(s) => parts.push(Part::Lit(s)),
                RawPart::Expr { text, line, col } => match self.compile_at(
                    node,
                    &text,
                    (line, col),
                    Context::Step,
                    false,
                    scope,
                    "`${...}`",
                ) {
                    Some(e) => parts.push(Part::Expr(e)),
                    None => ok = false,
                },
            }
        }
        ok.then_some(Template { parts })
    }

    fn expr(
        &mut self,
        node: &Node,
        ctx: Context,
        script: bool,
        scope: &RefScope,
        what: &str,
    ) -> Option<Expr> {
        let text = match &node.kind {
            NodeKind::Str(s) => s.clone(),
            NodeKind::Bool(_) | NodeKind::Int(_) | NodeKind::Float(_) => {
                node.scalar_text().unwrap_or_default()
            }
            _ => {
                self.error(
                    node.span,
                    format!(
                        "{what} must be a Rhai {}, found {}",
                        if script { "script" } else { "expression" },
                        node.type_name()
                    ),
                );
                return None;
            }
        };
        if text.contains("${") && !script {
            self.error_hint(
                node.span,
                format!("{what} is already Rhai: `${{...}}` is not needed here"),
                Some("write the expression itself, e.g. `when: params.force`".into()),
            );
            return None;
        }
        self.compile_at(node, &text, (0, 0), ctx, script, scope, what)
    }

    /// Compile Rhai text found at `base` (line, col) inside the scalar `node`,
    /// then check every name it reads.
    #[allow(clippy::too_many_arguments)]
    fn compile_at(
        &mut self,
        node: &Node,
        text: &str,
        base: (usize, usize),
        ctx: Context,
        script: bool,
        scope: &RefScope,
        what: &str,
    ) -> Option<Expr> {
        let at = |c: &Checker, line: usize, col: usize, len: usize| {
            let col = if line == 0 { base.1 + col } else { col };
            node.inner_span(&c.src, base.0 + line, col, len)
        };
        match expr::compile(text, ctx, script) {
            Err(e) => {
                let span = at(self, e.line, e.col, 1);
                let (msg, hint) = rhai_message(&e.message, ctx);
                self.error_hint(span, format!("in {what}: {msg}"), hint);
                None
            }
            Ok((ast, references)) => {
                let mut ok = true;
                for r in &references {
                    if let Some((seg, msg, hint)) = check_reference(r, ctx, scope) {
                        let (l, c, len) = r.positions[seg];
                        let span = at(self, l, c, len);
                        self.error_hint(span, msg, hint);
                        ok = false;
                    }
                }
                let span = at(self, 0, 0, text.chars().count());
                ok.then(|| Expr {
                    text: text.to_string(),
                    span,
                    ast: Arc::new(ast),
                    references,
                    context: ctx,
                })
            }
        }
    }
}

/// Turn Rhai's wording into ours, with a hint where it helps.
fn rhai_message(msg: &str, ctx: Context) -> (String, Option<String>) {
    if let Some(rest) = msg
        .strip_prefix("Undefined variable: ")
        .or_else(|| msg.strip_prefix("Variable not found: "))
    {
        let name = rest.trim();
        if name == "result" {
            return (
                "`result` is not defined here".into(),
                Some("`result` exists only in `until`, `assert` and `wait.until`'s `condition`; read an earlier step's result as `steps.<id>.<field>`".into()),
            );
        }
        let vars = ctx.variables();
        let hint = did_you_mean(name, vars.iter().copied()).unwrap_or_else(|| {
            format!(
                "expressions here can read {}; declare a param to pass a value in",
                vars.iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
        return (format!("undefined variable `{name}`"), Some(hint));
    }
    (format!("Rhai syntax error: {msg}"), None)
}

/// The first problem with a reference, as (segment index, message, hint).
fn check_reference(
    r: &expr::Reference,
    ctx: Context,
    scope: &RefScope,
) -> Option<(usize, String, Option<String>)> {
    let root = r.path[0].as_str();
    let second = r.path.get(1).map(String::as_str);
    match (root, second) {
        ("result", _) if ctx != Context::Result => Some((
            0,
            "`result` is only defined in `until`, `assert` and conditions that test a result"
                .into(),
            Some("read an earlier step's result as `steps.<id>.<field>`".into()),
        )),
        ("params", Some(name)) => {
            if scope.params.iter().any(|p| p.name == name) {
                return None;
            }
            let hint = did_you_mean(name, scope.params.iter().map(|p| p.name.as_str()))
                .unwrap_or_else(|| "declare it under `params:`".into());
            Some((
                1,
                format!("`params.{name}` is not a declared param"),
                Some(hint),
            ))
        }
        ("host", Some(field)) if !HOST_FIELDS.contains(&field) => {
            let hint = did_you_mean(field, HOST_FIELDS.iter().copied()).unwrap_or_else(|| {
                format!(
                    "a host has: {}; inventory variables are under `host.vars`",
                    HOST_FIELDS.join(", ")
                )
            });
            Some((1, format!("hosts have no field `{field}`"), Some(hint)))
        }
        ("steps", Some(id)) => {
            let Some((_, index, span, action)) = scope.steps.iter().find(|(s, ..)| s == id) else {
                let earlier = scope
                    .steps
                    .iter()
                    .filter(|(_, i, ..)| *i < scope.current)
                    .map(|(s, ..)| s.as_str());
                let hint = did_you_mean(id, earlier)
                    .unwrap_or_else(|| "name a step defined before this one".into());
                return Some((1, format!("unknown step `{id}`"), Some(hint)));
            };
            if *index >= scope.current {
                let which = if *index == scope.current {
                    "this step itself".to_string()
                } else {
                    format!("a later step (line {})", span.line)
                };
                return Some((1, format!("`steps.{id}` is {which}: it has not run yet"), Some("a step can only read the results of steps before it; use `result` in `until`/`assert` for this step's own result".into())));
            }
            let field = r.path.get(2)?;
            check_result_field(field, *action, &format!("step `{id}`")).map(|(m, h)| (2, m, h))
        }
        ("result", Some(field)) if scope.probe_result => {
            (!PROBE_RESULTS.contains(&field)).then(|| {
                let hint =
                    did_you_mean(field, PROBE_RESULTS.iter().copied()).unwrap_or_else(|| {
                        format!("a probe's result has: {}", PROBE_RESULTS.join(", "))
                    });
                (
                    1,
                    format!("a probe's `result` has no field `{field}`"),
                    Some(hint),
                )
            })
        }
        ("result", Some(field)) => {
            check_result_field(field, scope.result_of, "this step").map(|(m, h)| (1, m, h))
        }
        _ => None,
    }
}

fn check_result_field(
    field: &str,
    action: Option<ActionKind>,
    whose: &str,
) -> Option<(String, Option<String>)> {
    let action = action?;
    let results = action.results()?;
    let names: Vec<&str> = results
        .iter()
        .chain(COMMON_RESULTS)
        .map(|r| r.name)
        .collect();
    if names.contains(&field) {
        return None;
    }
    let hint = did_you_mean(field, names.iter().copied())
        .unwrap_or_else(|| format!("`{action}` results: {}", names.join(", ")));
    Some((
        format!("{whose} (`{action}`) has no result `{field}`"),
        Some(hint),
    ))
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
