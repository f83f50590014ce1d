//! Rhai expressions and scripts: the sandbox they run in, compiling them at
//! check time, and finding which `params.*`, `steps.*`, `host.*` and `result.*`
//! names they read so the compiler can check those names.
//!
//! The sandbox is the same for checking and for running (the engine calls
//! [`sandbox`]), so what compiles here is exactly what runs there.

use crate::source::Span;
use rhai::{Engine, Scope, AST};
use std::sync::{Arc, OnceLock};

/// Variables an expression may read, by context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    /// `when`, `with` interpolation, `script`: params, host, steps.
    Step,
    /// `until`, `assert`, and `wait.until`'s condition: also `result`.
    Result,
    /// An approval policy's `auto_approve`: the plan only.
    Plan,
}

impl Context {
    pub fn variables(self) -> &'static [&'static str] {
        match self {
            Context::Step => &["params", "host", "steps"],
            Context::Result => &["params", "host", "steps", "result"],
            Context::Plan => &["plan"],
        }
    }
}

/// Build the sandboxed Rhai engine: bounded work, no `eval`, no imports, no I/O,
/// and undeclared variables are compile errors.
pub fn new_sandbox() -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(200_000)
        .set_max_call_levels(32)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(4 * 1024 * 1024)
        .set_max_array_size(100_000)
        .set_max_map_size(100_000)
        .set_max_variables(1_000)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true)
        .set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine.disable_symbol("eval");
    engine.disable_symbol("import");
    engine.on_print(|_| {});
    engine.on_debug(|_, _, _| {});
    engine.register_fn(
        "parse_duration",
        |s: &str| -> Result<i64, Box<rhai::EvalAltResult>> {
            crate::param::parse_duration(s)
                .ok_or_else(|| format!("`{s}` is not a duration (e.g. 30m, 1h30m)").into())
        },
    );
    engine.register_fn(
        "parse_bytes",
        |s: &str| -> Result<i64, Box<rhai::EvalAltResult>> {
            crate::param::parse_bytes(s)
                .ok_or_else(|| format!("`{s}` is not a size (e.g. 32MiB)").into())
        },
    );
    engine.register_fn("format_duration", crate::param::format_duration);
    engine.register_fn("shell_raw", |v: rhai::Dynamic| {
        ShellRaw(if v.is_string() {
            v.into_string().unwrap_or_default()
        } else {
            v.to_string()
        })
    });
    engine
}

/// Text `shell_raw(...)` marks for insertion into a shell command as it is,
/// not quoted. Only a command argument accepts it; anywhere else it is an
/// error (it cannot become a plain value by accident).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellRaw(pub String);

/// True when `text` calls `shell_raw(` outside a string literal — what the
/// compiler allows only in commands and warns about with a param.
pub fn calls_shell_raw(text: &str) -> bool {
    const NAME: &str = "shell_raw";
    let bytes = text.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(_) if c == b'\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if matches!(c, b'"' | b'\'' | b'`') => quote = Some(c),
            None if bytes[i..].starts_with(NAME.as_bytes()) => {
                let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
                let before_ok = i == 0 || !ident(bytes[i - 1]);
                let rest = text.get(i + NAME.len()..).unwrap_or("").trim_start();
                if before_ok && rest.starts_with('(') {
                    return true;
                }
                i += NAME.len();
                continue;
            }
            None => {}
        }
        i += 1;
    }
    false
}

/// The process-wide sandbox engine (building one registers every package).
pub fn sandbox() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(new_sandbox)
}

/// A scope declaring the context's variables, for strict compiling. They are
/// plain variables, not constants: Rhai's optimizer folds constants into the
/// AST, which would bake these empty placeholders into every expression.
pub fn compile_scope(ctx: Context) -> Scope<'static> {
    let mut scope = Scope::new();
    for name in ctx.variables() {
        scope.push(*name, rhai::Map::new());
    }
    scope
}

/// A name an expression reads: `steps.expiry.min_days_left` is
/// `["steps", "expiry", "min_days_left"]`, with where each segment sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub path: Vec<String>,
    /// (line, column, length) of each segment, 0-based, inside the expression text.
    pub positions: Vec<(usize, usize, usize)>,
}

/// A compiled expression or script, with its text and where it sits.
#[derive(Debug, Clone)]
pub struct Expr {
    pub text: String,
    /// Where the text starts in the runbook (for runtime errors).
    pub span: Span,
    pub ast: Arc<AST>,
    pub references: Vec<Reference>,
    pub context: Context,
}

impl Expr {
    /// Step ids this expression reads through `steps.<id>`.
    pub fn step_ids(&self) -> impl Iterator<Item = &str> {
        self.references
            .iter()
            .filter(|r| r.path.first().map(String::as_str) == Some("steps"))
            .filter_map(|r| r.path.get(1).map(String::as_str))
    }
}

/// A Rhai compile error, with its position inside the text (0-based line, col).
#[derive(Debug, Clone)]
pub struct RhaiError {
    pub message: String,
    pub line: usize,
    pub col: usize,
}

/// Compile `text` as a single expression (`script == false`) or a script.
pub fn compile(text: &str, ctx: Context, script: bool) -> Result<(AST, Vec<Reference>), RhaiError> {
    let scope = compile_scope(ctx);
    let engine = sandbox();
    let result = if script {
        engine.compile_with_scope(&scope, text)
    } else {
        engine.compile_expression_with_scope(&scope, text)
    };
    match result {
        Ok(ast) => Ok((ast, references(text))),
        Err(err) => {
            let pos = err.1;
            Err(RhaiError {
                message: err.0.to_string(),
                line: pos.line().unwrap_or(1).saturating_sub(1),
                col: pos.position().unwrap_or(1).saturating_sub(1),
            })
        }
    }
}

/// A position in expression text that counts lines and columns as it moves.
struct Cursor {
    chars: Vec<char>,
    i: usize,
    line: usize,
    col: usize,
}

impl Cursor {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).copied()
    }
    fn bump(&mut self) {
        if let Some(c) = self.peek(0) {
            self.i += 1;
            if c == '\n' {
                self.line += 1;
                self.col = 0;
            } else {
                self.col += 1;
            }
        }
    }
    fn done(&self) -> bool {
        self.i >= self.chars.len()
    }
}

/// Find dotted name chains rooted at a context variable, skipping strings and
/// comments. Indexing with brackets (`steps["x"]`) is dynamic and not listed.
pub fn references(text: &str) -> Vec<Reference> {
    let mut cur = Cursor {
        chars: text.chars().collect(),
        i: 0,
        line: 0,
        col: 0,
    };
    let mut out = Vec::new();
    let roots = ["params", "steps", "host", "result"];
    let mut prev_significant: Option<char> = None;
    while let Some(c) = cur.peek(0) {
        if c == '/' && cur.peek(1) == Some('/') {
            while !cur.done() && cur.peek(0) != Some('\n') {
                cur.bump();
            }
            continue;
        }
        if c == '/' && cur.peek(1) == Some('*') {
            while !(cur.done() || (cur.peek(0) == Some('*') && cur.peek(1) == Some('/'))) {
                cur.bump();
            }
            cur.bump();
            cur.bump();
            continue;
        }
        if c == '"' || c == '\'' || c == '`' {
            cur.bump();
            while !cur.done() && cur.peek(0) != Some(c) {
                if cur.peek(0) == Some('\\') {
                    cur.bump();
                }
                cur.bump();
            }
            cur.bump();
            prev_significant = Some(c);
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut path = Vec::new();
            let mut positions = Vec::new();
            let after_dot = prev_significant == Some('.');
            loop {
                let (line, col, start) = (cur.line, cur.col, cur.i);
                while cur.peek(0).is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    cur.bump();
                }
                path.push(cur.chars[start..cur.i].iter().collect::<String>());
                positions.push((line, col, cur.i - start));
                // `.name` or `?.name` continues the chain
                let dot = match (cur.peek(0), cur.peek(1)) {
                    (Some('.'), _) => 1,
                    (Some('?'), Some('.')) => 2,
                    _ => 0,
                };
                if dot > 0 && cur.peek(dot).is_some_and(|n| n.is_alphabetic() || n == '_') {
                    for _ in 0..dot {
                        cur.bump();
                    }
                    continue;
                }
                break;
            }
            prev_significant = Some('a');
            if !after_dot && roots.contains(&path[0].as_str()) {
                // A method call like `steps.keys()` ends the chain at the method.
                if cur.peek(0) == Some('(') {
                    path.pop();
                    positions.pop();
                }
                if !path.is_empty() {
                    out.push(Reference { path, positions });
                }
            }
            continue;
        }
        if !c.is_whitespace() {
            prev_significant = Some(c);
        }
        cur.bump();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> Vec<String> {
        references(text)
            .into_iter()
            .map(|r| r.path.join("."))
            .collect()
    }

    #[test]
    fn finds_chains_and_skips_strings() {
        assert_eq!(
            paths(
                r#"steps.expiry.min_days_left > params.threshold_days && "steps.no" != host.name"#
            ),
            [
                "steps.expiry.min_days_left",
                "params.threshold_days",
                "host.name"
            ]
        );
        assert_eq!(paths("result.stdout.contains(\"ok\")"), ["result.stdout"]);
        assert_eq!(paths("x.steps.y // steps.z"), Vec::<String>::new());
    }

    #[test]
    fn positions_are_per_segment() {
        let r = &references("1 + params.abc")[0];
        assert_eq!(r.positions, vec![(0, 4, 6), (0, 11, 3)]);
    }

    #[test]
    fn sandbox_refuses_eval_and_unknown_variables() {
        assert!(compile("eval(\"1\")", Context::Step, false).is_err());
        let err = compile("foo > 1", Context::Step, false).unwrap_err();
        assert!(err.message.contains("foo"), "{}", err.message);
        assert!(compile("params.x > 1", Context::Step, false).is_ok());
    }

    #[test]
    fn compiled_expressions_read_the_values_given_at_run_time() {
        let (ast, _) = compile("params.x + 1", Context::Step, false).unwrap();
        let mut scope = Scope::new();
        let mut params = rhai::Map::new();
        params.insert("x".into(), rhai::Dynamic::from(41_i64));
        scope.push_constant("params", params);
        let v: i64 = sandbox().eval_ast_with_scope(&mut scope, &ast).unwrap();
        assert_eq!(v, 42);
    }

    #[test]
    fn runaway_script_is_stopped() {
        let (ast, _) = compile("let x = 0; loop { x += 1; }", Context::Step, true).unwrap();
        let mut scope = compile_scope(Context::Step);
        assert!(sandbox()
            .eval_ast_with_scope::<rhai::Dynamic>(&mut scope, &ast)
            .is_err());
    }
}
