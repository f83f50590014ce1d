//! Expressions and `${}` templates: compiled with Rhai where they stand,
//! Rhai's messages turned into ours, and every `params.`/`steps.`/`host.`/
//! `result.` reference checked against what exists at that point.

use super::*;

impl Checker {
    /// A string that must be exactly one `${...}` (for non-string arguments).
    pub(super) fn single_expr(
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

    /// Warn where a param's value goes into a command as raw shell text:
    /// whoever gives the param can then run commands on the host.
    pub(super) fn warn_raw_params(&mut self, t: &Template, what: &str) {
        for e in t.exprs() {
            let params: Vec<String> = e
                .references
                .iter()
                .filter(|r| r.path.first().map(String::as_str) == Some("params"))
                .filter_map(|r| r.path.get(1).map(|p| format!("params.{p}")))
                .collect();
            if expr::calls_shell_raw(&e.text) && !params.is_empty() {
                self.warnings.push(
                    Diagnostic::at(
                        &self.src,
                        e.span,
                        format!(
                            "{what} inserts {} as raw shell text: whoever gives that param can run any command on the host",
                            params.join(", ")
                        ),
                    )
                    .with_hint("drop `shell_raw` to insert the value as one quoted word, or check the value with an `enum` or a `when`"),
                );
            }
        }
    }

    pub(super) fn template(&mut self, node: &Node, scope: &RefScope) -> Option<Template> {
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

    pub(super) fn expr(
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
    pub(super) fn compile_at(
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
                if !self.in_command && expr::calls_shell_raw(text) {
                    self.error_hint(
                        at(self, 0, 0, text.chars().count()),
                        format!("in {what}: `shell_raw(...)` is only for shell commands"),
                        Some("it inserts shell text into `cmd`, `unless` or `command`; elsewhere a value is used as it is".into()),
                    );
                    ok = false;
                }
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
