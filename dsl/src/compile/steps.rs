//! `steps:`: ids first (so a reference can be told "later" from
//! "unknown"), then each step's keys, action, `with` arguments by the
//! action's catalogue, and its expressions.

use super::*;

impl Checker {
    pub(super) fn steps(&mut self, node: &Node, params: &[ParamSpec]) -> Vec<Step> {
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
        // Where each id was first seen: a scan of `index` per step made
        // 40,000 steps take seconds.
        let mut first_at: std::collections::HashMap<&str, Span> = Default::default();
        for (i, item) in items.iter().enumerate() {
            let Some(id_node) = item.get("id") else {
                continue;
            };
            let Some(id) = id_node.as_str() else { continue };
            if let Some(first) = first_at.get(id) {
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
            first_at.insert(id, id_node.span);
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

    /// A step whose failure is `handled` must be read by a later step (its
    /// `failed` decides the other way): otherwise the failure would vanish.
    pub(super) fn handled_failures_are_read(&mut self, steps: &[Step]) {
        for (i, step) in steps.iter().enumerate() {
            if step.on_failure != Some(OnFailure::Handled) {
                continue;
            }
            let read = steps[i + 1..]
                .iter()
                .any(|later| later.reads_steps().contains(&step.id));
            if !read {
                self.error_hint(
                    step.span,
                    format!("step `{}` has `on_failure: handled` but no later step reads `steps.{}`", step.id, step.id),
                    Some(format!("add the other way, e.g. a step with `when: steps.{}.failed == true`, or use `on_failure: continue`", step.id)),
                );
            }
        }
    }

    pub(super) fn step(
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

    pub(super) fn with(
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

    pub(super) fn arg_value(
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
                // `kube.wait`'s condition reads its own result (the object);
                // other conditions over `result` read a probe's.
                let probe = RefScope {
                    probe_result: ctx == Context::Result
                        && scope.result_of != Some(ActionKind::KubeWait),
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
            ArgKind::Command => match &node.kind {
                NodeKind::Str(_) => {
                    self.in_command = true;
                    let t = self.template(node, scope);
                    self.in_command = false;
                    let t = t?;
                    self.warn_raw_params(&t, what);
                    Some(ArgValue::Command(t))
                }
                NodeKind::Int(_) | NodeKind::Float(_) | NodeKind::Bool(_) => Some(
                    ArgValue::Command(Template::literal(node.scalar_text().unwrap_or_default())),
                ),
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
            ArgKind::Value => match &node.kind {
                NodeKind::Null => Some(ArgValue::Null),
                NodeKind::Bool(b) => Some(ArgValue::Bool(*b)),
                NodeKind::Int(i) => Some(ArgValue::Int(*i)),
                NodeKind::Float(f) => Some(ArgValue::Float(*f)),
                NodeKind::Str(_) => self.template(node, scope).map(ArgValue::Text),
                NodeKind::Seq(items) => {
                    let mut vals = Vec::new();
                    for item in items {
                        vals.push(self.arg_value(item, ArgKind::Value, what, scope)?);
                    }
                    Some(ArgValue::List(vals))
                }
                NodeKind::Map(entries) => {
                    let mut vals = Vec::new();
                    for (k, v) in entries {
                        let key = k.scalar_text().unwrap_or_default();
                        vals.push((key, self.arg_value(v, ArgKind::Value, what, scope)?));
                    }
                    Some(ArgValue::Map(vals))
                }
            },
        }
    }
}
