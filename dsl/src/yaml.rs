//! A YAML document as a tree of nodes that all know where they came from.
//!
//! Built from saphyr-parser's event stream rather than through serde, because a
//! serde deserializer stops at the first error while remedy reports every
//! problem in a file at once, each with its position — and valid values need
//! their spans too (for errors found later, in Rhai or at bind time).
//!
//! Every YAML remedy reads goes through [`parse`] — runbooks, inventories,
//! params files, the site config, and manifests and kubeconfigs read from
//! hosts — so the limits that keep a hostile file from taking all memory or
//! stack live here: input size, nesting depth, and values copied by aliases.

use crate::diagnostic::Diagnostic;
use crate::source::{Source, Span, MAX_SOURCE_BYTES};
use saphyr_parser::{Event, Parser, ScalarStyle};
use std::collections::HashMap;
use std::sync::Arc;

/// How a scalar was written; decides whether `123` is a number or a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    /// `|` or `>` block scalars: content starts on the line after the indicator.
    Block,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys are kept in file order; duplicates are reported while loading.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
    pub style: Style,
}

impl Node {
    /// A short name for the node's type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            NodeKind::Null => "nothing (null)",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a number",
            NodeKind::Str(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a mapping",
        }
    }

    /// A mapping or a list (as opposed to a scalar).
    pub fn is_collection(&self) -> bool {
        matches!(self.kind, NodeKind::Seq(_) | NodeKind::Map(_))
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            NodeKind::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            NodeKind::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The value under `key` in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }

    /// The scalar as the text a user would write, for messages and string contexts.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.kind {
            NodeKind::Str(s) => Some(s.clone()),
            NodeKind::Int(i) => Some(i.to_string()),
            NodeKind::Float(f) => Some(f.to_string()),
            NodeKind::Bool(b) => Some(b.to_string()),
            NodeKind::Null => Some(String::new()),
            _ => None,
        }
    }

    /// Plain JSON, dropping spans (for values handed to the engine as data).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::from(*i),
            NodeKind::Float(f) => Value::from(*f),
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.scalar_text().unwrap_or_default(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Where text inside this scalar starts: one past an opening quote, or the
    /// first content line of a block scalar.
    pub fn content_start(&self, source: &Source) -> Span {
        match self.style {
            Style::Plain => self.span,
            Style::Quoted => self.span.shifted(1, self.span.len.saturating_sub(2)),
            Style::Block => {
                // The parser's span may start at the `|`/`>` header or at the
                // first content line; content is never on the header line.
                let on_header = source
                    .line(self.span.line)
                    .and_then(|l| l.chars().nth(self.span.col))
                    .is_some_and(|c| c == '|' || c == '>');
                let line = self.span.line + usize::from(on_header);
                let indent = source
                    .line(line)
                    .map(|l| l.len() - l.trim_start().len())
                    .unwrap_or(0);
                Span::new(line, indent, 1)
            }
        }
    }

    /// The span of the text at `line`/`col` (0-based, inside the value) of a scalar.
    pub fn inner_span(&self, source: &Source, line: usize, col: usize, len: usize) -> Span {
        let start = self.content_start(source);
        if line == 0 {
            Span::new(start.line, start.col + col, len)
        } else if self.style == Style::Block {
            Span::new(start.line + line, start.col + col, len)
        } else {
            // A quoted or plain scalar folded over lines: point at the line, best effort.
            Span::new(start.line + line, col, len)
        }
    }
}

/// How deep mappings and lists may nest. Runbooks nest about six levels;
/// the limit keeps recursive walks of the tree (checking, converting,
/// dropping) far from the end of the stack.
pub const MAX_DEPTH: usize = 128;

/// How many values aliases (`*name`) may copy into one document, in total.
/// The tree holds a copy per alias, so without a bound a few hundred bytes of
/// nested aliases expand to billions of values (the "billion laughs" bomb).
/// Honest uses — a shared `vars` block in an inventory — copy a few hundred.
pub const MAX_ALIAS_VALUES: usize = 100_000;

/// Parse one YAML document. A syntax error is a single diagnostic (the parser
/// cannot continue past it); duplicate keys are reported all together.
/// Inputs over [`MAX_SOURCE_BYTES`], nesting deeper than [`MAX_DEPTH`] and
/// aliases copying more than [`MAX_ALIAS_VALUES`] values are refused, at the
/// place where the limit is crossed.
pub fn parse(source: &Arc<Source>) -> Result<Node, Vec<Diagnostic>> {
    if source.text.len() > MAX_SOURCE_BYTES {
        return Err(vec![too_large(source)]);
    }
    let mut builder = Builder {
        source: source.clone(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        alias_values: 0,
        root: None,
        errors: Vec::new(),
        documents: 0,
    };
    for item in Parser::new_from_str(&source.text) {
        match item {
            Ok((event, span)) => {
                if let Err(fatal) = builder.event(event, span) {
                    return Err(vec![fatal]);
                }
            }
            Err(e) => {
                let m = e.marker();
                let span = Span::new(m.line(), m.col(), 1);
                let msg = format!("invalid YAML: {}", e.info());
                return Err(vec![Diagnostic::at(source, span, msg).with_hint(
                    "check indentation and quoting near this point; a value containing `: ` or starting with `{`, `[`, `*` or `&` needs quotes",
                )]);
            }
        }
    }
    if !builder.errors.is_empty() {
        return Err(builder.errors);
    }
    match builder.root {
        Some(root) => Ok(root),
        None => Err(vec![Diagnostic::at(
            source,
            Span::new(1, 0, 1),
            "the file is empty",
        )]),
    }
}

fn too_large(source: &Arc<Source>) -> Diagnostic {
    Diagnostic::new(format!(
        "{} is {} bytes; remedy reads runbooks, inventories and params files of at most {} MiB",
        source.name,
        source.text.len(),
        MAX_SOURCE_BYTES >> 20
    ))
    .with_hint("is this the file you meant? split a very large inventory into several")
}

/// A mapping or list whose end has not been read yet.
struct Open {
    span: Span,
    anchor: usize,
    /// Values in this collection so far, itself included (what an alias of
    /// it would copy).
    values: usize,
    kind: OpenKind,
}

enum OpenKind {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Node, Node)>,
        /// A key read, waiting for its value.
        pending: Option<Node>,
        /// Scalar keys seen, by type and text, with their entry: finds a
        /// duplicate without comparing every key with every other one.
        seen: HashMap<(&'static str, String), usize>,
    },
}

struct Builder {
    source: Arc<Source>,
    stack: Vec<Open>,
    /// Each anchored value and how many values an alias of it copies.
    anchors: HashMap<usize, (Node, usize)>,
    /// Values copied by aliases so far (bounded by MAX_ALIAS_VALUES).
    alias_values: usize,
    root: Option<Node>,
    errors: Vec<Diagnostic>,
    documents: usize,
}

fn to_span(s: saphyr_parser::Span) -> Span {
    let len = s.end.index().saturating_sub(s.start.index());
    let len = if s.end.line() == s.start.line() {
        len
    } else {
        1
    };
    Span::new(s.start.line(), s.start.col(), len.max(1))
}

impl Builder {
    /// Take one parser event. `Err` is a limit crossed: parsing stops there.
    fn event(&mut self, event: Event<'_>, span: saphyr_parser::Span) -> Result<(), Diagnostic> {
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents == 2 {
                    self.errors.push(
                        Diagnostic::at(
                            &self.source,
                            to_span(span),
                            "a second YAML document (`---`) in one file",
                        )
                        .with_hint("put one runbook or inventory per file"),
                    );
                }
            }
            Event::Scalar(value, style, anchor, tag) => {
                let span = to_span(span);
                let (kind, style) = match style {
                    ScalarStyle::Plain if tag.is_none() => (plain_scalar(&value), Style::Plain),
                    ScalarStyle::Plain => (NodeKind::Str(value.to_string()), Style::Plain),
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                        (NodeKind::Str(value.to_string()), Style::Quoted)
                    }
                    ScalarStyle::Literal | ScalarStyle::Folded => {
                        (NodeKind::Str(value.to_string()), Style::Block)
                    }
                };
                self.complete(Node { kind, span, style }, 1, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.open(span, anchor, OpenKind::Seq(Vec::new()))?
            }
            Event::MappingStart(anchor, _) => self.open(
                span,
                anchor,
                OpenKind::Map {
                    entries: Vec::new(),
                    pending: None,
                    seen: HashMap::new(),
                },
            )?,
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some(open) = self.stack.pop() {
                    let kind = match open.kind {
                        OpenKind::Seq(items) => NodeKind::Seq(items),
                        OpenKind::Map { entries, .. } => NodeKind::Map(entries),
                    };
                    let node = Node {
                        kind,
                        span: open.span,
                        style: Style::Plain,
                    };
                    self.complete(node, open.values, open.anchor);
                }
            }
            Event::Alias(id) => {
                let span = to_span(span);
                let (node, values) = match self.anchors.get(&id) {
                    Some((n, values)) => {
                        let total = self.alias_values.saturating_add(*values);
                        if total > MAX_ALIAS_VALUES {
                            return Err(Diagnostic::at(
                                &self.source,
                                span,
                                format!(
                                    "aliases would copy more than {MAX_ALIAS_VALUES} values into this document (this one alone copies {values}); refused so that a few lines cannot take all memory"
                                ),
                            )
                            .with_hint("write the values out instead of nesting aliases of aliases; an alias (`*name`) copies everything under its anchor (`&name`)"));
                        }
                        self.alias_values = total;
                        let mut n = n.clone();
                        n.span = span;
                        (n, *values)
                    }
                    None => (
                        Node {
                            kind: NodeKind::Null,
                            span,
                            style: Style::Plain,
                        },
                        1,
                    ),
                };
                self.complete(node, values, 0);
            }
            _ => {}
        }
        Ok(())
    }

    fn open(
        &mut self,
        span: saphyr_parser::Span,
        anchor: usize,
        kind: OpenKind,
    ) -> Result<(), Diagnostic> {
        let span = to_span(span);
        if self.stack.len() >= MAX_DEPTH {
            return Err(Diagnostic::at(
                &self.source,
                span,
                format!("mappings and lists nest deeper than {MAX_DEPTH} levels here"),
            )
            .with_hint("no runbook, inventory or params file needs this depth: is the file what you meant?"));
        }
        self.stack.push(Open {
            span,
            anchor,
            values: 1,
            kind,
        });
        Ok(())
    }

    /// A finished value of `values` values (itself and everything under it):
    /// record its anchor and put it into the collection being read.
    fn complete(&mut self, node: Node, values: usize, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, (node.clone(), values));
        }
        let Some(open) = self.stack.last_mut() else {
            if self.root.is_none() {
                self.root = Some(node);
            }
            return;
        };
        open.values = open.values.saturating_add(values);
        match &mut open.kind {
            OpenKind::Seq(items) => items.push(node),
            OpenKind::Map {
                entries,
                pending,
                seen,
            } => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    let id = match key.scalar_text().filter(|_| !key.is_collection()) {
                        Some(text) => (key.type_name(), text),
                        // Spans differ between two equal collections: their
                        // values in one canonical text identify them (once
                        // per key; comparing with every earlier key was
                        // quadratic, found by fuzzing).
                        None => ("collection", canonical(&key.to_json())),
                    };
                    let first = seen.get(&id).copied().or_else(|| {
                        seen.insert(id, entries.len());
                        None
                    });
                    if let Some(first) = first {
                        let what = key.scalar_text().unwrap_or_else(|| "?".into());
                        self.errors.push(
                            Diagnostic::at(
                                &self.source,
                                key.span,
                                format!("duplicate key `{what}`"),
                            )
                            .with_hint(format!(
                                "`{what}` is already set at line {}",
                                entries[first].0.span.line
                            )),
                        );
                    }
                    entries.push((key, node));
                }
            },
        }
    }
}

/// JSON text with every object's keys sorted: equal values (mappings equal
/// whatever their key order) give equal text.
fn canonical(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, String)> =
                m.iter().map(|(k, v)| (k, canonical(v))).collect();
            entries.sort();
            let body: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| format!("{}:{v}", Value::String(k.clone())))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => {
            let body: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", body.join(","))
        }
        other => other.to_string(),
    }
}

/// YAML 1.2 core-schema resolution of an unquoted scalar.
fn plain_scalar(value: &str) -> NodeKind {
    match value {
        "" | "~" | "null" | "Null" | "NULL" => return NodeKind::Null,
        "true" | "True" | "TRUE" => return NodeKind::Bool(true),
        "false" | "False" | "FALSE" => return NodeKind::Bool(false),
        _ => {}
    }
    if let Ok(i) = value.parse::<i64>() {
        return NodeKind::Int(i);
    }
    if let Some(hex) = value.strip_prefix("0x") {
        if let Ok(i) = i64::from_str_radix(hex, 16) {
            return NodeKind::Int(i);
        }
    }
    if let Some(oct) = value.strip_prefix("0o") {
        if let Ok(i) = i64::from_str_radix(oct, 8) {
            return NodeKind::Int(i);
        }
    }
    let looks_numeric = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '-' || c == '+' || c == '.');
    if looks_numeric {
        if let Ok(f) = value.parse::<f64>() {
            return NodeKind::Float(f);
        }
    }
    NodeKind::Str(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_values() {
        let src = Source::new("t.yaml", "a: 1\nb:\n  c: \"x\"\n  d: [true, ~]\n");
        let root = parse(&src).unwrap();
        let b = root.get("b").unwrap();
        let c = b.get("c").unwrap();
        assert_eq!(c.kind, NodeKind::Str("x".into()));
        assert_eq!((c.span.line, c.span.col), (3, 5));
        let d = b.get("d").unwrap().as_seq().unwrap();
        assert_eq!(d[0].kind, NodeKind::Bool(true));
        assert_eq!(d[1].kind, NodeKind::Null);
        assert_eq!(root.get("a").unwrap().kind, NodeKind::Int(1));
    }

    #[test]
    fn duplicate_keys_are_all_reported() {
        let src = Source::new("t.yaml", "a: 1\na: 2\nb: 1\nb: 3\n");
        let errs = parse(&src).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].span.unwrap().line, 2);
    }

    /// Issue 14, item 1: nine levels of nine aliases each would be 9^10
    /// values; refused at the first alias past the budget, quickly.
    #[test]
    fn issue_14_alias_bomb_is_refused_at_the_alias() {
        let mut text = String::from("a: &a [x,x,x,x,x,x,x,x,x]\n");
        for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
            let refs = vec![format!("*{prev}"); 9].join(",");
            text.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let errs = parse(&Source::new("t.yaml", text)).unwrap_err();
        assert_eq!(errs.len(), 1);
        let span = errs[0].span.unwrap();
        // b..e copy 9·10, 9·91, 9·820, 9·7381 values; f's alias crosses 100000.
        assert_eq!(span.line, 6, "{}", errs[0].render());
        assert!(
            errs[0].message.contains("more than 100000 values"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn aliases_within_the_budget_are_copies() {
        let src = Source::new("t.yaml", "v: &v {a: 1, b: [2, 3]}\nw: *v\n");
        let root = parse(&src).unwrap();
        assert_eq!(
            root.get("w").unwrap().to_json(),
            root.get("v").unwrap().to_json()
        );
        assert_eq!(root.get("w").unwrap().span.line, 2);
    }

    #[test]
    fn nesting_past_the_depth_limit_is_refused_where_it_happens() {
        let nested = |levels: usize| -> String {
            (0..levels)
                .map(|i| format!("{}k:\n", "  ".repeat(i)))
                .collect()
        };
        assert!(parse(&Source::new("t.yaml", nested(MAX_DEPTH))).is_ok());
        let errs = parse(&Source::new("t.yaml", nested(1_000))).unwrap_err();
        // Line N opens the Nth mapping; the 129th is one too many.
        assert_eq!(
            errs[0].span.unwrap().line,
            MAX_DEPTH + 1,
            "{}",
            errs[0].render()
        );
        assert!(errs[0].message.contains("deeper than 128 levels"));
        // Sequences nested on one line need no indentation: 100,000 levels
        // in 200 KB overflowed the stack of walks over the tree (to_json, drop).
        let dashes = format!("{}x\n", "- ".repeat(100_000));
        let errs = parse(&Source::new("t.yaml", dashes)).unwrap_err();
        assert_eq!(errs[0].span.unwrap(), Span::new(1, 2 * MAX_DEPTH, 1));
        // Flow collections: the parser has its own limit (255), checked first.
        let flow = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(parse(&Source::new("t.yaml", flow)).is_err());
    }

    #[test]
    fn oversized_input_is_refused_before_parsing() {
        let big = "a: b\n".repeat(MAX_SOURCE_BYTES / 5 + 1);
        let errs = parse(&Source::new("big.yaml", big)).unwrap_err();
        assert!(
            errs[0].message.starts_with("big.yaml is 4194305 bytes"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn duplicate_keys_of_every_scalar_type_and_collections() {
        let src = Source::new(
            "t.yaml",
            "1: a\n'1': b\n1: c\n[x]: d\n[x]: e\n~: f\nnull: g\n",
        );
        let lines: Vec<usize> = parse(&src)
            .unwrap_err()
            .iter()
            .map(|d| d.span.unwrap().line)
            .collect();
        assert_eq!(lines, vec![3, 5, 7]);
    }

    #[test]
    fn equal_mappings_as_keys_are_duplicates_whatever_their_order() {
        let src = Source::new(
            "t.yaml",
            "{a: 1, b: [2]}: x\n{b: [2], a: 1}: y\n{a: 2}: z\n",
        );
        let errors = parse(&src).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].span.unwrap().line, 2);
    }

    /// Found by fuzzing (a 32 KB runbook took 16 s): each collection key was
    /// compared with every earlier one, converting both to JSON each time.
    #[test]
    fn many_collection_keys_in_one_mapping_take_linear_time() {
        let text: String = (0..20_000).map(|i| format!("[k{i}]: v\n")).collect();
        let src = Source::new("t.yaml", text);
        let started = std::time::Instant::now();
        let root = parse(&src).unwrap();
        assert_eq!(root.as_map().unwrap().len(), 20_000);
        // Quadratic, this is 2e8 conversions: minutes, not a fraction of one.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn quoted_numbers_stay_strings() {
        let src = Source::new("t.yaml", "a: '0644'\nb: 0644\n");
        let root = parse(&src).unwrap();
        assert_eq!(root.get("a").unwrap().kind, NodeKind::Str("0644".into()));
        assert_eq!(root.get("b").unwrap().kind, NodeKind::Int(644));
    }
}
