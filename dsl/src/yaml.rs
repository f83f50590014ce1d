//! A YAML document as a tree of nodes that all know where they came from.
//!
//! Built from saphyr-parser's event stream rather than through serde, because a
//! serde deserializer stops at the first error while remedy reports every
//! problem in a file at once, each with its position — and valid values need
//! their spans too (for errors found later, in Rhai or at bind time).

use crate::diagnostic::Diagnostic;
use crate::source::{Source, Span};
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

/// Parse one YAML document. A syntax error is a single diagnostic (the parser
/// cannot continue past it); duplicate keys are reported all together.
pub fn parse(source: &Arc<Source>) -> Result<Node, Vec<Diagnostic>> {
    let mut builder = Builder {
        source: source.clone(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        root: None,
        errors: Vec::new(),
        documents: 0,
    };
    for item in Parser::new_from_str(&source.text) {
        match item {
            Ok((event, span)) => builder.event(event, span),
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

enum Open {
    Seq(Span, Vec<Node>, usize),
    Map(Span, Vec<(Node, Node)>, Option<Node>, usize),
}

struct Builder {
    source: Arc<Source>,
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
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
    fn event(&mut self, event: Event<'_>, span: saphyr_parser::Span) {
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
                self.complete(Node { kind, span, style }, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                self.stack
                    .push(Open::Seq(to_span(span), Vec::new(), anchor))
            }
            Event::MappingStart(anchor, _) => {
                self.stack
                    .push(Open::Map(to_span(span), Vec::new(), None, anchor))
            }
            Event::SequenceEnd => {
                if let Some(Open::Seq(span, items, anchor)) = self.stack.pop() {
                    self.complete(
                        Node {
                            kind: NodeKind::Seq(items),
                            span,
                            style: Style::Plain,
                        },
                        anchor,
                    );
                }
            }
            Event::MappingEnd => {
                if let Some(Open::Map(span, entries, _, anchor)) = self.stack.pop() {
                    self.complete(
                        Node {
                            kind: NodeKind::Map(entries),
                            span,
                            style: Style::Plain,
                        },
                        anchor,
                    );
                }
            }
            Event::Alias(id) => {
                let node = match self.anchors.get(&id) {
                    Some(n) => {
                        let mut n = n.clone();
                        n.span = to_span(span);
                        n
                    }
                    None => Node {
                        kind: NodeKind::Null,
                        span: to_span(span),
                        style: Style::Plain,
                    },
                };
                self.complete(node, 0);
            }
            _ => {}
        }
    }

    fn complete(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Open::Seq(_, items, _)) => items.push(node),
            Some(Open::Map(_, entries, pending, _)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if let Some((first, _)) = entries.iter().find(|(k, _)| k.kind == key.kind) {
                        let what = key.scalar_text().unwrap_or_else(|| "?".into());
                        self.errors.push(
                            Diagnostic::at(
                                &self.source,
                                key.span,
                                format!("duplicate key `{what}`"),
                            )
                            .with_hint(format!(
                                "`{what}` is already set at line {}",
                                first.span.line
                            )),
                        );
                    }
                    entries.push((key, node));
                }
            },
        }
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

    #[test]
    fn quoted_numbers_stay_strings() {
        let src = Source::new("t.yaml", "a: '0644'\nb: 0644\n");
        let root = parse(&src).unwrap();
        assert_eq!(root.get("a").unwrap().kind, NodeKind::Str("0644".into()));
        assert_eq!(root.get("b").unwrap().kind, NodeKind::Int(644));
    }
}
