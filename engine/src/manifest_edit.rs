//! Format-preserving edits of a Kubernetes static-pod manifest
//! (`/etc/kubernetes/manifests/kube-apiserver.yaml` and friends): set or remove
//! a container flag, set or remove a `resources` value.
//!
//! The operator approves a change by reading its diff, so the result must be
//! the original text with the smallest possible change — one or two lines —
//! and everything else (comments, key order, quoting, indentation, line
//! endings) byte-identical. Parsing into a value and serialising it again
//! would lose all of that, so instead the file is parsed with `saphyr-parser`
//! into a small tree that remembers where every node sits in the text, the
//! node to change is located, and whole lines are replaced, inserted or
//! deleted (or, for a single value, just its characters).
//!
//! Text splicing is easy to get subtly wrong, so every edit is checked: the
//! output is parsed again and compared, value for value, with what the
//! document should now contain (the original tree with the operation applied
//! to it). If they differ, the edit is refused with [`EditError::Internal`]
//! rather than returning a wrong manifest.

use saphyr_parser::{Event, Parser, ScalarStyle};
use std::fmt;

/// One change to a container of a static-pod manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditOp {
    /// Set `--name=value` in the container's `command` list (or `args` if the
    /// flag is already there). `name` includes the leading dashes, e.g.
    /// "--max-requests-inflight". If the flag exists (as `--name=old` or bare
    /// `--name`), that list item is replaced; otherwise a new item is appended
    /// after the last item of `command` (or of `args` if the container has
    /// `args` and no `command`), with the same indentation and `- ` prefix as
    /// the existing items. A flag that appears more than once is refused
    /// ([`EditError::DuplicateFlag`]): which occurrence wins differs between
    /// flags, so collapsing them is a decision for a person.
    SetFlag { name: String, value: String },
    /// Remove every item that is `--name` or starts with `--name=`. Removing a
    /// flag that is absent is not an error (no-op). If that empties `args`,
    /// the `args:` key goes too; emptying `command` is refused.
    RemoveFlag { name: String },
    /// Set a resource value; `key` is like "limits.memory" or "requests.cpu".
    /// Replaces the existing value, or inserts the key under `limits:` /
    /// `requests:`, creating those (and `resources:`) as needed, with the
    /// indentation step the file already uses.
    SetResource { key: String, value: String },
    /// Remove a resource value line; if that leaves `limits:` / `requests:`
    /// empty, that line goes too (and an emptied `resources:` becomes
    /// `resources: {}`, as kubeadm writes it). Absent: no-op.
    RemoveResource { key: String },
}

impl fmt::Display for EditOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EditOp::SetFlag { name, value } => write!(f, "set flag {name}={value}"),
            EditOp::RemoveFlag { name } => write!(f, "remove flag {name}"),
            EditOp::SetResource { key, value } => write!(f, "set resources.{key}: {value}"),
            EditOp::RemoveResource { key } => write!(f, "remove resources.{key}"),
        }
    }
}

/// Why an edit was refused. Nothing is changed when any error is returned.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EditError {
    #[error("the manifest is not valid YAML: {message} (line {line}, column {column}); fix the file by hand first")]
    InvalidYaml {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("not a pod manifest: {0}")]
    NotAPod(String),
    #[error("container `{name}` not found; containers in this manifest: {}", names_list(.present))]
    ContainerNotFound { name: String, present: Vec<String> },
    #[error("container `{container}` uses YAML anchors or aliases (`&name`/`*name`, line {line}); a textual edit could silently change other places that refer to them, so make this change by hand")]
    Anchors { container: String, line: usize },
    #[error("container `{container}` has neither a `command` nor an `args` list to add `{flag}` to; add the flag by hand")]
    NoCommandList { container: String, flag: String },
    #[error("`{key}` (line {line}) is written in flow style (`{{...}}` or `[...]`), which cannot be edited without rewriting it; convert it to block style or make this change by hand")]
    FlowStyle { key: String, line: usize },
    #[error("`{key}` (line {line}) is {found}, expected {expected}; make this change by hand")]
    UnexpectedShape {
        key: String,
        line: usize,
        found: &'static str,
        expected: &'static str,
    },
    #[error("cannot edit {what} at line {line} line-by-line because of how it is laid out; make this change by hand")]
    Layout { what: String, line: usize },
    #[error("bad resource key `{0}`: expected `limits.<resource>` or `requests.<resource>`, e.g. `limits.memory` or `requests.cpu`")]
    BadResourceKey(String),
    #[error("bad flag name `{0}`: expected the flag with its leading dashes and without a value, e.g. `--max-requests-inflight`")]
    BadFlagName(String),
    #[error("cannot write {value:?} for `{key}`: {reason}")]
    BadValue {
        key: String,
        value: String,
        reason: &'static str,
    },
    #[error("flag `{name}` appears {} times in container `{container}` (lines {}); remove it first and set it again, or edit by hand", .lines.len(), join_numbers(.lines))]
    DuplicateFlag {
        name: String,
        container: String,
        lines: Vec<usize>,
    },
    #[error("removing `{flag}` would leave `{list}` of container `{container}` empty; make this change by hand")]
    WouldEmptyList {
        flag: String,
        list: String,
        container: String,
    },
    #[error("internal error while editing the manifest: {0}; nothing was changed, make this change by hand (and report this)")]
    Internal(String),
}

fn names_list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn join_numbers(lines: &[usize]) -> String {
    lines
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn internal(msg: impl Into<String>) -> EditError {
    EditError::Internal(msg.into())
}

/// Apply `ops` in order to the container named `container` (None: the only
/// container, or the first one if there are several). Returns the new text.
///
/// Applying the same ops to the output again returns identical text, and an
/// op that asks for what is already there changes nothing.
pub fn edit(text: &str, container: Option<&str>, ops: &[EditOp]) -> Result<String, EditError> {
    let mut current = text.to_string();
    for op in ops {
        current = apply_one(&current, container, op)?;
    }
    Ok(current)
}

/// One op against the current text: parse, splice, then prove the splice did
/// exactly what the op means by re-parsing and comparing values.
fn apply_one(src: &str, want: Option<&str>, op: &EditOp) -> Result<String, EditError> {
    let text = Text::new(src);
    let root = parse(&text)?;
    let (index, container, name) = find_container(&text, &root, want)?;
    let ctx = Ctx {
        text: &text,
        root: &root,
        container,
        name,
    };
    let edits = match op {
        EditOp::SetFlag { name, value } => set_flag(&ctx, name, value)?,
        EditOp::RemoveFlag { name } => remove_flag(&ctx, name)?,
        EditOp::SetResource { key, value } => set_resource(&ctx, key, value)?,
        EditOp::RemoveResource { key } => remove_resource(&ctx, key)?,
    };
    let out = if edits.is_empty() {
        src.to_string()
    } else {
        apply_edits(src, edits)?
    };

    let mut expected = root.clone();
    expect(&mut expected, index, op)?;
    let out_text = Text::new(&out);
    let got = parse(&out_text)
        .map_err(|e| internal(format!("after `{op}` the manifest no longer parses ({e})")))?;
    if !same(&expected, &got) {
        return Err(internal(format!(
            "after `{op}` the manifest does not read back as expected"
        )));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Text positions

/// The source with the tables needed to turn saphyr's positions into byte
/// offsets and lines.
struct Text<'a> {
    src: &'a str,
    /// Byte offset of every character, plus `src.len()`: saphyr's markers
    /// count characters, and a comment with `ü` or `—` would otherwise shift
    /// every later splice.
    char_bytes: Vec<usize>,
    /// Byte offset where each `\n`-terminated line starts. Our own table rather
    /// than saphyr's line numbers, so that line numbering and slicing agree.
    line_starts: Vec<usize>,
    /// Line break for inserted lines: a CRLF file stays CRLF.
    nl: &'static str,
}

impl<'a> Text<'a> {
    fn new(src: &'a str) -> Self {
        let mut char_bytes: Vec<usize> = src.char_indices().map(|(b, _)| b).collect();
        char_bytes.push(src.len());
        let mut line_starts = vec![0];
        line_starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        let nl = if src.contains("\r\n") { "\r\n" } else { "\n" };
        Text {
            src,
            char_bytes,
            line_starts,
            nl,
        }
    }

    fn byte(&self, char_index: usize) -> usize {
        self.char_bytes
            .get(char_index)
            .copied()
            .unwrap_or(self.src.len())
    }

    /// 0-based line containing `byte`.
    fn line_of(&self, byte: usize) -> usize {
        self.line_starts
            .partition_point(|&s| s <= byte)
            .saturating_sub(1)
    }

    fn line_start(&self, line: usize) -> usize {
        self.line_starts
            .get(line)
            .copied()
            .unwrap_or(self.src.len())
    }

    /// Where the next line starts (after this line's break), or the end.
    fn line_end(&self, line: usize) -> usize {
        self.line_start(line + 1)
    }

    /// 1-based line number, for messages.
    fn line_number(&self, byte: usize) -> usize {
        self.line_of(byte) + 1
    }

    /// The text between the start of `byte`'s line and `byte`.
    fn prefix(&self, byte: usize) -> &'a str {
        self.src
            .get(self.line_start(self.line_of(byte))..byte)
            .unwrap_or("")
    }

    fn col(&self, byte: usize) -> usize {
        self.prefix(byte).chars().count()
    }

    /// Whether nothing but indentation precedes `byte` on its line.
    fn starts_line(&self, byte: usize) -> bool {
        self.prefix(byte).chars().all(|c| c == ' ')
    }

    fn is_comment_line(&self, line: usize) -> bool {
        self.src
            .get(self.line_start(line)..self.line_end(line))
            .is_some_and(|l| l.trim_start().starts_with('#'))
    }

    /// Last line holding any of the node's text.
    fn last_line(&self, node: &Node) -> usize {
        if node.end > node.start {
            self.line_of(node.end - 1)
        } else {
            self.line_of(node.start)
        }
    }

    fn entry_last_line(&self, key: &Node, value: &Node) -> usize {
        self.last_line(key).max(self.last_line(value))
    }

    /// Block scalars' spans run to the next token; pull the end back to the
    /// last character of their content.
    fn trim_back(&self, start: usize, end: usize) -> usize {
        let head = self.src.get(start..end).unwrap_or("");
        start + head.trim_end().len()
    }

    /// Byte just after the `:` that follows a mapping key ending at `key_end`.
    fn after_colon(&self, key_end: usize) -> Option<usize> {
        let rest = self.src.get(key_end..)?;
        let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        rest[skipped..]
            .starts_with(':')
            .then_some(key_end + skipped + 1)
    }
}

// ---------------------------------------------------------------------------
// The positioned tree

#[derive(Debug, Clone)]
struct Node {
    kind: Kind,
    /// Byte range of the node's text. Scalars: the token including quotes and
    /// tag (an empty value sits, zero-width, at the end of its key). Flow
    /// collections: bracket to bracket. Block collections: start of the first
    /// child to end of the last.
    start: usize,
    end: usize,
    flow: bool,
    /// Where its anchor (`&name`), which aliases elsewhere may refer to, is.
    anchor: Option<usize>,
}

#[derive(Debug, Clone)]
enum Kind {
    Scalar { value: String, plain: bool },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Alias,
}

impl Node {
    /// A node for the expected-value model; positions are never read there.
    fn synthetic(kind: Kind) -> Node {
        Node {
            kind,
            start: 0,
            end: 0,
            flow: false,
            anchor: None,
        }
    }

    fn scalar(value: &str) -> Node {
        Node::synthetic(Kind::Scalar {
            value: value.to_string(),
            plain: false,
        })
    }

    fn str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { value, plain: true }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// Null or `{}`: a mapping value with nothing in it yet.
    fn is_vacant(&self) -> bool {
        self.is_null() || matches!(&self.kind, Kind::Map(e) if e.is_empty())
    }

    fn entries(&self) -> &[(Node, Node)] {
        match &self.kind {
            Kind::Map(e) => e,
            _ => &[],
        }
    }

    fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Seq(i) => i,
            _ => &[],
        }
    }

    fn get(&self, key: &str) -> Option<&(Node, Node)> {
        self.entries().iter().find(|(k, _)| k.str() == Some(key))
    }

    fn describe(&self) -> &'static str {
        match &self.kind {
            _ if self.is_null() => "empty",
            Kind::Scalar { .. } => "a single value",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
            Kind::Alias => "an alias (`*name`)",
        }
    }
}

/// A collection whose end event has not arrived yet.
struct Open {
    start: usize,
    flow: bool,
    anchor: Option<usize>,
    map: bool,
    children: Vec<Node>,
}

fn parse(text: &Text) -> Result<Node, EditError> {
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    for event in Parser::new_from_str(text.src) {
        let (event, span) = event.map_err(|e| EditError::InvalidYaml {
            line: e.marker().line(),
            column: e.marker().col() + 1,
            message: e.info().to_string(),
        })?;
        let start = text.byte(span.start.index());
        let end = text.byte(span.end.index());
        let node = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(EditError::NotAPod(
                        "the file holds more than one YAML document (`---`); a static pod manifest holds exactly one".into(),
                    ));
                }
                continue;
            }
            Event::Scalar(value, style, anchor, _) => {
                let end = if matches!(style, ScalarStyle::Literal | ScalarStyle::Folded) {
                    text.trim_back(start, end)
                } else {
                    end
                };
                Node {
                    kind: Kind::Scalar {
                        value: value.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                    start,
                    end,
                    flow: false,
                    anchor: (anchor != 0).then_some(start),
                }
            }
            Event::Alias(_) => Node {
                kind: Kind::Alias,
                start,
                end,
                flow: false,
                anchor: None,
            },
            // A block collection's start span is empty, or covers just its
            // anchor/tag up to the first `-` or key; a flow collection's ends
            // with its opening bracket.
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                let flow = text
                    .src
                    .get(start..end)
                    .is_some_and(|s| s.ends_with(['[', '{']));
                stack.push(Open {
                    start: if flow { end - 1 } else { start },
                    flow,
                    anchor: (anchor != 0).then_some(start),
                    map: matches!(event, Event::MappingStart(..)),
                    children: Vec::new(),
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let open = stack
                    .pop()
                    .ok_or_else(|| internal("unbalanced YAML events"))?;
                close(text, open, start, end)?
            }
            _ => continue,
        };
        match stack.last_mut() {
            Some(open) => open.children.push(node),
            None if root.is_none() => root = Some(node),
            None => {}
        }
    }
    root.ok_or_else(|| EditError::NotAPod("the file is empty".into()))
}

/// Finish a collection; `end_start..end_end` is the span of its end event.
fn close(text: &Text, open: Open, end_start: usize, end_end: usize) -> Result<Node, EditError> {
    let (start, end) = if open.flow {
        // The end event's span runs on over any trailing comment; the
        // collection itself ends with its closing bracket.
        let bracket = text
            .src
            .get(end_start..)
            .is_some_and(|s| s.starts_with([']', '}']));
        (open.start, if bracket { end_start + 1 } else { end_end })
    } else {
        // A block collection's end event sits at the next token, possibly
        // lines later; its own text ends with its last child.
        let start = open.children.first().map_or(open.start, |c| c.start);
        let end = open
            .children
            .iter()
            .map(|c| c.end)
            .max()
            .unwrap_or(open.start);
        (start, end)
    };
    let kind = if open.map {
        let mut entries = Vec::with_capacity(open.children.len() / 2);
        let mut children = open.children.into_iter();
        while let Some(key) = children.next() {
            let value = children
                .next()
                .ok_or_else(|| internal("mapping with a key but no value"))?;
            entries.push((key, value));
        }
        Kind::Map(entries)
    } else {
        Kind::Seq(open.children)
    };
    Ok(Node {
        kind,
        start,
        end,
        flow: open.flow,
        anchor: open.anchor,
    })
}

/// Same values, ignoring positions, styles and mapping order.
fn same(a: &Node, b: &Node) -> bool {
    match (&a.kind, &b.kind) {
        (Kind::Scalar { value: x, .. }, Kind::Scalar { value: y, .. }) => {
            if a.is_null() || b.is_null() {
                a.is_null() && b.is_null()
            } else {
                x == y
            }
        }
        (Kind::Seq(x), Kind::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Kind::Map(x), Kind::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| same(k, k2) && same(v, v2)))
        }
        (Kind::Alias, Kind::Alias) => true,
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Finding the container

fn find_container<'n>(
    text: &Text,
    root: &'n Node,
    want: Option<&str>,
) -> Result<(usize, &'n Node, String), EditError> {
    if !matches!(root.kind, Kind::Map(_)) {
        return Err(EditError::NotAPod(format!(
            "the document is {}, not a mapping with `kind: Pod`",
            root.describe()
        )));
    }
    if let Some(kind) = root.get("kind").and_then(|(_, v)| v.str()) {
        if kind != "Pod" {
            return Err(EditError::NotAPod(format!(
                "`kind` is `{kind}`; only Pod manifests (as in /etc/kubernetes/manifests/) can be edited"
            )));
        }
    }
    let spec = match root.get("spec") {
        Some((_, v)) if matches!(v.kind, Kind::Map(_)) => v,
        _ => return Err(EditError::NotAPod("there is no `spec` mapping".into())),
    };
    let containers = match spec.get("containers") {
        Some((_, v)) if matches!(v.kind, Kind::Seq(_)) => v.items(),
        _ => {
            return Err(EditError::NotAPod(
                "there is no `spec.containers` list".into(),
            ))
        }
    };
    let names: Vec<String> = containers
        .iter()
        .map(|c| {
            c.get("name")
                .and_then(|(_, v)| v.str())
                .unwrap_or("<unnamed>")
                .to_string()
        })
        .collect();
    let index = match want {
        None if containers.is_empty() => {
            return Err(EditError::NotAPod("`spec.containers` is empty".into()))
        }
        None => 0,
        Some(n) => {
            names
                .iter()
                .position(|x| x == n)
                .ok_or_else(|| EditError::ContainerNotFound {
                    name: n.to_string(),
                    present: names.clone(),
                })?
        }
    };
    let (container, name) = containers
        .get(index)
        .zip(names.get(index))
        .ok_or_else(|| internal("container index out of range"))?;
    if container.flow {
        return Err(EditError::FlowStyle {
            key: format!("spec.containers[{name}]"),
            line: text.line_number(container.start),
        });
    }
    if !matches!(container.kind, Kind::Map(_)) || container.entries().is_empty() {
        return Err(EditError::NotAPod(format!(
            "item {} of `spec.containers` is {}, not a mapping",
            index + 1,
            container.describe()
        )));
    }
    if let Some(at) = anchor_or_alias(container) {
        return Err(EditError::Anchors {
            container: name.clone(),
            line: text.line_number(at),
        });
    }
    Ok((index, container, name.clone()))
}

/// Where the first anchor or alias in `node` is. Editing text under an anchor would
/// silently change every place that refers to it (and the self-check, which
/// compares aliases without expanding them, would not notice).
fn anchor_or_alias(node: &Node) -> Option<usize> {
    if matches!(node.kind, Kind::Alias) {
        return Some(node.start);
    }
    if node.anchor.is_some() {
        return node.anchor;
    }
    match &node.kind {
        Kind::Seq(items) => items.iter().find_map(anchor_or_alias),
        Kind::Map(entries) => entries
            .iter()
            .find_map(|(k, v)| anchor_or_alias(k).or_else(|| anchor_or_alias(v))),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Splicing

/// Replace `start..end` (bytes) with `text`; an empty range inserts.
#[derive(Debug)]
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

fn apply_edits(src: &str, mut edits: Vec<Edit>) -> Result<String, EditError> {
    edits.sort_by_key(|e| (e.start, e.end));
    let mut out = String::with_capacity(src.len() + 128);
    let mut pos = 0;
    for e in &edits {
        if e.start < pos || e.end < e.start {
            return Err(internal("overlapping edits"));
        }
        out.push_str(
            src.get(pos..e.start)
                .ok_or_else(|| internal("edit not on a character boundary"))?,
        );
        out.push_str(&e.text);
        pos = e.end;
    }
    out.push_str(
        src.get(pos..)
            .ok_or_else(|| internal("edit not on a character boundary"))?,
    );
    Ok(out)
}

fn insert_after(text: &Text, line: usize, lines: &[String]) -> Edit {
    let at = text.line_end(line);
    let mut s = String::new();
    if at == text.src.len() && !text.src.is_empty() && !text.src.ends_with('\n') {
        // The last line has no line break: add one before each new line, so
        // the file still ends the way it did.
        for l in lines {
            s.push_str(text.nl);
            s.push_str(l);
        }
    } else {
        for l in lines {
            s.push_str(l);
            s.push_str(text.nl);
        }
    }
    Edit {
        start: at,
        end: at,
        text: s,
    }
}

fn insert_before(text: &Text, line: usize, lines: &[String]) -> Edit {
    let at = text.line_start(line);
    let s = lines.iter().map(|l| format!("{l}{}", text.nl)).collect();
    Edit {
        start: at,
        end: at,
        text: s,
    }
}

fn delete_lines(text: &Text, first: usize, last: usize) -> Edit {
    Edit {
        start: text.line_start(first),
        end: text.line_end(last),
        text: String::new(),
    }
}

fn indent(n: usize) -> String {
    " ".repeat(n)
}

// ---------------------------------------------------------------------------
// Values

/// Whether `s` can be written as a plain (unquoted) block scalar and read back
/// as the same string.
fn plain_unsafe(s: &str) -> bool {
    let mut chars = s.chars();
    let first = chars.next();
    let second = chars.next();
    match first {
        None => return true,
        Some(
            ',' | '[' | ']' | '{' | '}' | '#' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%'
            | '@' | '`',
        ) => return true,
        // `-`, `?` and `:` only start a plain scalar when not followed by a space.
        Some('-' | '?' | ':') if second.is_none_or(char::is_whitespace) => return true,
        _ => {}
    }
    s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace)
        || s.ends_with(':')
        || s.contains(": ")
        || s.contains(":\t")
        || s.contains(" #")
        || s.contains("\t#")
        || s.chars().any(char::is_control)
}

/// The quoting rule for a flag's value: quote the whole item when the value
/// looks like YAML syntax of its own, even where the `--name=` in front
/// would make it technically safe — it keeps the manifest unambiguous to
/// read.
fn value_looks_like_yaml(v: &str) -> bool {
    v.is_empty()
        || v.contains(": ")
        || v.contains(" #")
        || v.starts_with([
            '*', '&', '!', '|', '>', '\'', '"', '%', '@', '`', '{', '[', '}', ']', '#', ',',
        ])
}

/// Words that YAML (1.1 as well as 1.2, sigs.k8s.io/yaml reads 1.1) would not
/// read as a string.
fn reserved_word(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    )
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn check_value(key: &str, value: &str) -> Result<(), EditError> {
    let reason = if value.contains(['\n', '\r']) {
        "it contains a line break; a flag or resource value must be a single line"
    } else if value.chars().any(|c| c.is_control() && c != '\t') {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(EditError::BadValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    })
}

fn check_flag_name(name: &str) -> Result<(), EditError> {
    let bare = name.trim_start_matches('-');
    let ok = name.starts_with('-')
        && !bare.is_empty()
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(EditError::BadFlagName(name.to_string()))
    }
}

fn flag_matches(item: &Node, name: &str) -> bool {
    item.str().is_some_and(|v| {
        v == name
            || v.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('='))
    })
}

/// `limits.memory` → (`limits`, `memory`). The resource name may itself hold
/// dots (`limits.nvidia.com/gpu`).
fn parse_resource_key(key: &str) -> Result<(&str, &str), EditError> {
    let bad = || EditError::BadResourceKey(key.to_string());
    let (section, name) = key.split_once('.').ok_or_else(bad)?;
    let name_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if matches!(section, "limits" | "requests") && name_ok {
        Ok((section, name))
    } else {
        Err(bad())
    }
}

// ---------------------------------------------------------------------------
// The operations, as text edits

struct Ctx<'a> {
    text: &'a Text<'a>,
    root: &'a Node,
    container: &'a Node,
    name: String,
}

impl Ctx<'_> {
    fn path(&self, key: &str) -> String {
        format!("spec.containers[{}].{key}", self.name)
    }

    fn line(&self, node: &Node) -> usize {
        self.text.line_number(node.start)
    }

    fn flow_error(&self, key: &str, node: &Node) -> EditError {
        EditError::FlowStyle {
            key: self.path(key),
            line: self.line(node),
        }
    }

    fn shape_error(&self, key: &str, node: &Node, expected: &'static str) -> EditError {
        EditError::UnexpectedShape {
            key: self.path(key),
            line: self.line(node),
            found: node.describe(),
            expected,
        }
    }

    /// The container's `command`/`args` list, if it has one we can edit.
    fn block_list(&self, key: &str) -> Result<Option<&Node>, EditError> {
        match self.container.get(key) {
            None => Ok(None),
            Some((_, v)) if v.is_null() => Ok(None),
            Some((_, v)) if v.flow => Err(self.flow_error(key, v)),
            Some((_, v)) if matches!(v.kind, Kind::Seq(_)) => Ok(Some(v)),
            Some((_, v)) => Err(self.shape_error(key, v, "a list")),
        }
    }

    /// The indentation step of the file: how far a nested mapping's keys sit
    /// right of their parent key. Looked for in the container first.
    fn step(&self) -> usize {
        detect_step(self.text, self.container)
            .or_else(|| detect_step(self.text, self.root))
            .unwrap_or(2)
    }
}

fn detect_step(text: &Text, node: &Node) -> Option<usize> {
    match &node.kind {
        Kind::Map(entries) => entries.iter().find_map(|(k, v)| {
            let direct = match (&v.kind, v.flow) {
                (Kind::Map(inner), false) => inner.first().and_then(|(ik, _)| {
                    let (kc, ic) = (text.col(k.start), text.col(ik.start));
                    (text.line_of(ik.start) > text.line_of(k.start) && ic > kc).then(|| ic - kc)
                }),
                _ => None,
            };
            direct.or_else(|| detect_step(text, v))
        }),
        Kind::Seq(items) => items.iter().find_map(|i| detect_step(text, i)),
        _ => None,
    }
}

/// Whether `p` is the text before a list item's value: indentation, `-`,
/// at least one space.
fn is_item_prefix(p: &str) -> bool {
    p.trim_start_matches(' ')
        .strip_prefix('-')
        .is_some_and(|after| !after.is_empty() && after.chars().all(|c| c == ' '))
}

fn set_flag(ctx: &Ctx, name: &str, value: &str) -> Result<Vec<Edit>, EditError> {
    check_flag_name(name)?;
    check_value(name, value)?;
    let item = format!("{name}={value}");
    let rendered = if value_looks_like_yaml(value) || plain_unsafe(&item) {
        double_quoted(&item)
    } else {
        item.clone()
    };
    let command = ctx.block_list("command")?;
    let args = ctx.block_list("args")?;
    let found: Vec<&Node> = command
        .into_iter()
        .chain(args)
        .flat_map(Node::items)
        .filter(|i| flag_matches(i, name))
        .collect();
    match found.as_slice() {
        [] => {
            let (list_key, list) = match (command, args) {
                (Some(c), _) => ("command", c),
                (None, Some(a)) => ("args", a),
                (None, None) => {
                    return Err(EditError::NoCommandList {
                        container: ctx.name.clone(),
                        flag: name.to_string(),
                    })
                }
            };
            let last = list
                .items()
                .last()
                .ok_or_else(|| internal("block list without items"))?;
            // Copy the existing items' `    - ` exactly. Taken from the last
            // item that has nothing else before its value (an anchor, a tag
            // or a block scalar's `|` would make its own line misleading).
            let prefix = list
                .items()
                .iter()
                .rev()
                .map(|i| ctx.text.prefix(i.start))
                .find(|p| is_item_prefix(p))
                .ok_or_else(|| EditError::Layout {
                    what: format!("the items of `{}`", ctx.path(list_key)),
                    line: ctx.line(last),
                })?;
            Ok(vec![insert_after(
                ctx.text,
                ctx.text.last_line(last),
                &[format!("{prefix}{rendered}")],
            )])
        }
        [existing] if existing.str() == Some(item.as_str()) => Ok(Vec::new()),
        [existing] => Ok(vec![Edit {
            start: existing.start,
            end: existing.end,
            text: rendered,
        }]),
        several => Err(EditError::DuplicateFlag {
            name: name.to_string(),
            container: ctx.name.clone(),
            lines: several.iter().map(|n| ctx.line(n)).collect(),
        }),
    }
}

fn remove_flag(ctx: &Ctx, name: &str) -> Result<Vec<Edit>, EditError> {
    check_flag_name(name)?;
    let mut edits = Vec::new();
    for key in ["command", "args"] {
        // A flow list without the flag needs no edit, so is no reason to fail.
        if let Some((_, v)) = ctx.container.get(key) {
            if v.flow && !v.items().iter().any(|i| flag_matches(i, name)) {
                continue;
            }
        }
        let Some(list) = ctx.block_list(key)? else {
            continue;
        };
        let doomed: Vec<&Node> = list
            .items()
            .iter()
            .filter(|i| flag_matches(i, name))
            .collect();
        if !doomed.is_empty() && doomed.len() == list.items().len() {
            // `args` holding only this flag: drop the whole `args:` entry. An
            // emptied `command` would make the container run its image's
            // entrypoint instead — not something to do as a side effect.
            if let Some((k, _)) = ctx.container.get(key) {
                if key == "args" && ctx.text.starts_line(k.start) {
                    edits.push(delete_lines(
                        ctx.text,
                        ctx.text.line_of(k.start),
                        ctx.text.last_line(list),
                    ));
                    continue;
                }
            }
            return Err(EditError::WouldEmptyList {
                flag: name.to_string(),
                list: key.to_string(),
                container: ctx.name.clone(),
            });
        }
        for item in doomed {
            if !is_item_prefix(ctx.text.prefix(item.start)) {
                return Err(EditError::Layout {
                    what: format!("the `{name}` item of `{}`", ctx.path(key)),
                    line: ctx.line(item),
                });
            }
            edits.push(delete_lines(
                ctx.text,
                ctx.text.line_of(item.start),
                ctx.text.last_line(item),
            ));
        }
    }
    Ok(edits)
}

fn set_resource(ctx: &Ctx, key: &str, value: &str) -> Result<Vec<Edit>, EditError> {
    let (section, resource) = parse_resource_key(key)?;
    check_value(key, value)?;
    if value.is_empty() {
        // An empty quantity makes the kubelet reject the pod, taking the
        // component down; refuse rather than quote it.
        return Err(EditError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            reason: "a resource quantity cannot be empty",
        });
    }
    let rendered = if plain_unsafe(value) || value_looks_like_yaml(value) || reserved_word(value) {
        double_quoted(value)
    } else {
        value.to_string()
    };
    let text = ctx.text;
    let step = ctx.step();
    let section_path = format!("resources.{section}");

    let Some((rk, rv)) = ctx.container.get("resources") else {
        let col = text.col(ctx.container.entries().first().map_or(0, |(k, _)| k.start));
        let lines = [
            format!("{}resources:", indent(col)),
            format!("{}{section}:", indent(col + step)),
            format!("{}{resource}: {rendered}", indent(col + 2 * step)),
        ];
        return insert_entry(ctx, "resources", ctx.container, "resources", &lines);
    };
    if rv.is_vacant() {
        let col = text.col(rk.start);
        let lines = [
            format!("{}{section}:", indent(col + step)),
            format!("{}{resource}: {rendered}", indent(col + 2 * step)),
        ];
        return fill_under_key(ctx, "resources", rk, rv, &lines);
    }
    if rv.flow {
        return Err(ctx.flow_error("resources", rv));
    }
    if !matches!(rv.kind, Kind::Map(_)) {
        return Err(ctx.shape_error("resources", rv, "a mapping"));
    }

    let Some((sk, sv)) = rv.get(section) else {
        let col = text.col(rv.start);
        let lines = [
            format!("{}{section}:", indent(col)),
            format!("{}{resource}: {rendered}", indent(col + step)),
        ];
        return insert_entry(ctx, "resources", rv, section, &lines);
    };
    if sv.is_vacant() {
        let lines = [format!(
            "{}{resource}: {rendered}",
            indent(text.col(sk.start) + step)
        )];
        return fill_under_key(ctx, &section_path, sk, sv, &lines);
    }
    if sv.flow {
        return Err(ctx.flow_error(&section_path, sv));
    }
    if !matches!(sv.kind, Kind::Map(_)) {
        return Err(ctx.shape_error(&section_path, sv, "a mapping"));
    }

    let entry_path = format!("resources.{key}");
    let Some((ek, ev)) = sv.get(resource) else {
        let lines = [format!(
            "{}{resource}: {rendered}",
            indent(text.col(sv.start))
        )];
        return insert_entry(ctx, &section_path, sv, resource, &lines);
    };
    match &ev.kind {
        Kind::Scalar { value: old, .. } if !ev.is_null() && old == value => Ok(Vec::new()),
        // `memory:` with nothing after it: the empty value sits at the key,
        // so write after the colon instead.
        Kind::Scalar { .. } if ev.end == ev.start => {
            let at = text.after_colon(ek.end).ok_or_else(|| EditError::Layout {
                what: format!("`{}`", ctx.path(&entry_path)),
                line: ctx.line(ek),
            })?;
            Ok(vec![Edit {
                start: at,
                end: at,
                text: format!(" {rendered}"),
            }])
        }
        Kind::Scalar { .. } => Ok(vec![Edit {
            start: ev.start,
            end: ev.end,
            text: rendered,
        }]),
        _ => Err(ctx.shape_error(&entry_path, ev, "a single value")),
    }
}

/// Add a key to a block mapping, as whole lines. Where the existing keys are
/// in alphabetical order (kubeadm writes them so) the new one goes in its
/// place; otherwise after the last entry.
fn insert_entry(
    ctx: &Ctx,
    map_path: &str,
    map: &Node,
    new_key: &str,
    lines: &[String],
) -> Result<Vec<Edit>, EditError> {
    let text = ctx.text;
    let entries = map.entries();
    let (last_k, last_v) = entries
        .last()
        .ok_or_else(|| internal(format!("`{map_path}` has no entries")))?;
    let keys: Option<Vec<&str>> = entries.iter().map(|(k, _)| k.str()).collect();
    let sorted_at = keys
        .filter(|keys| keys.windows(2).all(|w| w[0] <= w[1]))
        .and_then(|keys| keys.iter().position(|k| *k > new_key));
    let edit = match sorted_at {
        Some(0) => match entries.first() {
            Some((first, _)) if text.starts_line(first.start) => {
                // Comments right above the old first key describe it: go above them.
                let mut line = text.line_of(first.start);
                while line > 0 && text.is_comment_line(line - 1) {
                    line -= 1;
                }
                insert_before(text, line, lines)
            }
            // The first key shares its line with `- `: only appending is clean.
            _ => insert_after(text, text.entry_last_line(last_k, last_v), lines),
        },
        Some(i) => match entries.get(i - 1) {
            Some((k, v)) => insert_after(text, text.entry_last_line(k, v), lines),
            None => return Err(internal("sorted position out of range")),
        },
        None => insert_after(text, text.entry_last_line(last_k, last_v), lines),
    };
    Ok(vec![edit])
}

/// Give a key whose value is empty (`limits:`, `resources: {}`, `x: ~`) a
/// block mapping: drop the `{}`/`~`, keep any comment, add lines below.
fn fill_under_key(
    ctx: &Ctx,
    path: &str,
    key: &Node,
    value: &Node,
    lines: &[String],
) -> Result<Vec<Edit>, EditError> {
    let text = ctx.text;
    let after_colon = text.after_colon(key.end).ok_or_else(|| EditError::Layout {
        what: format!("`{}`", ctx.path(path)),
        line: ctx.line(key),
    })?;
    let mut edits = Vec::new();
    if value.end > value.start {
        if value.start < after_colon {
            return Err(internal(format!("value of `{path}` before its colon")));
        }
        edits.push(Edit {
            start: after_colon,
            end: value.end,
            text: String::new(),
        });
    }
    edits.push(insert_after(text, text.entry_last_line(key, value), lines));
    Ok(edits)
}

fn remove_resource(ctx: &Ctx, key: &str) -> Result<Vec<Edit>, EditError> {
    let (section, resource) = parse_resource_key(key)?;
    let text = ctx.text;
    let section_path = format!("resources.{section}");

    let Some((rk, rv)) = ctx.container.get("resources") else {
        return Ok(Vec::new());
    };
    if rv.is_vacant() {
        return Ok(Vec::new());
    }
    let in_flow = |map: &Node| {
        map.get(section)
            .is_some_and(|(_, s)| s.get(resource).is_some())
    };
    if rv.flow {
        return if in_flow(rv) {
            Err(ctx.flow_error("resources", rv))
        } else {
            Ok(Vec::new())
        };
    }
    if !matches!(rv.kind, Kind::Map(_)) {
        return Err(ctx.shape_error("resources", rv, "a mapping"));
    }
    let Some((sk, sv)) = rv.get(section) else {
        return Ok(Vec::new());
    };
    if sv.is_vacant() {
        return Ok(Vec::new());
    }
    if sv.flow {
        return if sv.get(resource).is_some() {
            Err(ctx.flow_error(&section_path, sv))
        } else {
            Ok(Vec::new())
        };
    }
    if !matches!(sv.kind, Kind::Map(_)) {
        return Err(ctx.shape_error(&section_path, sv, "a mapping"));
    }
    let Some((ek, ev)) = sv.get(resource) else {
        return Ok(Vec::new());
    };

    let layout = |node: &Node, what: &str| EditError::Layout {
        what: format!("`{}`", ctx.path(what)),
        line: ctx.line(node),
    };
    if sv.entries().len() > 1 {
        if !text.starts_line(ek.start) {
            return Err(layout(ek, &format!("resources.{key}")));
        }
        return Ok(vec![delete_lines(
            text,
            text.line_of(ek.start),
            text.entry_last_line(ek, ev),
        )]);
    }
    if !text.starts_line(sk.start) {
        return Err(layout(sk, &section_path));
    }
    if rv.entries().len() > 1 {
        return Ok(vec![delete_lines(
            text,
            text.line_of(sk.start),
            text.entry_last_line(sk, sv),
        )]);
    }
    // Nothing left under `resources:`: write `resources: {}` as kubeadm does,
    // rather than leave a bare `resources:` (null).
    let at = text
        .after_colon(rk.end)
        .ok_or_else(|| layout(rk, "resources"))?;
    Ok(vec![
        Edit {
            start: at,
            end: at,
            text: " {}".to_string(),
        },
        delete_lines(
            text,
            text.line_of(rk.start) + 1,
            text.entry_last_line(rk, rv),
        ),
    ])
}

// ---------------------------------------------------------------------------
// The expected result, as values: the self-check compares the re-parsed
// output against this.

fn get_mut<'n>(node: &'n mut Node, key: &str) -> Option<&'n mut Node> {
    match &mut node.kind {
        Kind::Map(entries) => entries
            .iter_mut()
            .find(|(k, _)| k.str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// The mapping under `key`, created (or turned from null/`{}` into a mapping)
/// if needed.
fn child_map<'n>(node: &'n mut Node, key: &str) -> Result<&'n mut Node, EditError> {
    let Kind::Map(entries) = &mut node.kind else {
        return Err(internal(format!("`{key}`'s parent is not a mapping")));
    };
    let pos = match entries.iter().position(|(k, _)| k.str() == Some(key)) {
        Some(p) => p,
        None => {
            entries.push((Node::scalar(key), Node::synthetic(Kind::Map(Vec::new()))));
            entries.len() - 1
        }
    };
    let (_, value) = entries
        .get_mut(pos)
        .ok_or_else(|| internal("entry vanished"))?;
    if value.is_null() {
        *value = Node::synthetic(Kind::Map(Vec::new()));
    }
    Ok(value)
}

fn expect(root: &mut Node, index: usize, op: &EditOp) -> Result<(), EditError> {
    let container = get_mut(root, "spec")
        .and_then(|s| get_mut(s, "containers"))
        .and_then(|c| match &mut c.kind {
            Kind::Seq(items) => items.get_mut(index),
            _ => None,
        })
        .ok_or_else(|| internal("container not found in the expected-value model"))?;
    match op {
        EditOp::SetFlag { name, value } => {
            let item = format!("{name}={value}");
            let mut found = false;
            for key in ["command", "args"] {
                if let Some(Node {
                    kind: Kind::Seq(items),
                    ..
                }) = get_mut(container, key)
                {
                    for i in items.iter_mut().filter(|i| flag_matches(i, name)) {
                        *i = Node::scalar(&item);
                        found = true;
                    }
                }
            }
            if !found {
                let list = ["command", "args"]
                    .into_iter()
                    .find(|k| {
                        container
                            .get(k)
                            .is_some_and(|(_, v)| matches!(v.kind, Kind::Seq(_)))
                    })
                    .and_then(|k| get_mut(container, k));
                match list {
                    Some(Node {
                        kind: Kind::Seq(items),
                        ..
                    }) => items.push(Node::scalar(&item)),
                    _ => return Err(internal("no list to append the flag to")),
                }
            }
        }
        EditOp::RemoveFlag { name } => {
            for key in ["command", "args"] {
                if let Some(Node {
                    kind: Kind::Seq(items),
                    ..
                }) = get_mut(container, key)
                {
                    let before = items.len();
                    items.retain(|i| !flag_matches(i, name));
                    if key == "args" && before > 0 && items.is_empty() {
                        if let Kind::Map(entries) = &mut container.kind {
                            entries.retain(|(k, _)| k.str() != Some("args"));
                        }
                    }
                }
            }
        }
        EditOp::SetResource { key, value } => {
            let (section, resource) = parse_resource_key(key)?;
            let resources = child_map(container, "resources")?;
            let section = child_map(resources, section)?;
            let Kind::Map(entries) = &mut section.kind else {
                return Err(internal("section is not a mapping"));
            };
            match entries.iter_mut().find(|(k, _)| k.str() == Some(resource)) {
                Some((_, v)) => *v = Node::scalar(value),
                None => entries.push((Node::scalar(resource), Node::scalar(value))),
            }
        }
        EditOp::RemoveResource { key } => {
            let (section, resource) = parse_resource_key(key)?;
            let Some(Node {
                kind: Kind::Map(sections),
                ..
            }) = get_mut(container, "resources")
            else {
                return Ok(());
            };
            let mut emptied = false;
            if let Some((
                _,
                Node {
                    kind: Kind::Map(entries),
                    ..
                },
            )) = sections.iter_mut().find(|(k, _)| k.str() == Some(section))
            {
                let before = entries.len();
                entries.retain(|(k, _)| k.str() != Some(resource));
                emptied = entries.is_empty() && before > 0;
            }
            if emptied {
                sections.retain(|(k, _)| k.str() != Some(section));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const APISERVER: &str = "\
apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 10.0.0.11:6443
  creationTimestamp: null
  labels:
    component: kube-apiserver
    tier: control-plane
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=10.0.0.11
    - --allow-privileged=true
    - --authorization-mode=Node,RBAC
    - --client-ca-file=/etc/kubernetes/pki/ca.crt
    - --enable-admission-plugins=NodeRestriction
    - --enable-bootstrap-token-auth=true
    - --etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt
    - --etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt
    - --etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key
    - --etcd-servers=https://127.0.0.1:2379
    - --kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt
    - --kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key
    - --secure-port=6443
    - --service-account-issuer=https://kubernetes.default.svc.cluster.local
    - --service-account-key-file=/etc/kubernetes/pki/sa.pub
    - --service-cluster-ip-range=10.96.0.0/12
    - --tls-cert-file=/etc/kubernetes/pki/apiserver.crt
    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key
    image: registry.k8s.io/kube-apiserver:v1.29.4
    imagePullPolicy: IfNotPresent
    livenessProbe:
      failureThreshold: 8
      httpGet:
        host: 10.0.0.11
        path: /livez
        port: 6443
        scheme: HTTPS
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    name: kube-apiserver
    readinessProbe:
      failureThreshold: 3
      httpGet:
        host: 10.0.0.11
        path: /readyz
        port: 6443
        scheme: HTTPS
      periodSeconds: 1
      timeoutSeconds: 15
    resources:
      requests:
        cpu: 250m
    startupProbe:
      failureThreshold: 24
      httpGet:
        host: 10.0.0.11
        path: /livez
        port: 6443
        scheme: HTTPS
      initialDelaySeconds: 10
      periodSeconds: 10
      timeoutSeconds: 15
    volumeMounts:
    - mountPath: /etc/ssl/certs
      name: ca-certs
      readOnly: true
    - mountPath: /etc/kubernetes/pki
      name: k8s-certs
      readOnly: true
  hostNetwork: true
  priority: 2000001000
  priorityClassName: system-node-critical
  securityContext:
    seccompProfile:
      type: RuntimeDefault
  volumes:
  - hostPath:
      path: /etc/ssl/certs
      type: DirectoryOrCreate
    name: ca-certs
  - hostPath:
      path: /etc/kubernetes/pki
      type: DirectoryOrCreate
    name: k8s-certs
status: {}
";

    /// kube-controller-manager as some kubeadm versions write it, with
    /// `resources: {}`.
    const CONTROLLER_MANAGER: &str = "\
apiVersion: v1
kind: Pod
metadata:
  creationTimestamp: null
  labels:
    component: kube-controller-manager
    tier: control-plane
  name: kube-controller-manager
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-controller-manager
    - --authentication-kubeconfig=/etc/kubernetes/controller-manager.conf
    - --authorization-kubeconfig=/etc/kubernetes/controller-manager.conf
    - --bind-address=127.0.0.1
    - --cluster-signing-cert-file=/etc/kubernetes/pki/ca.crt
    - --kubeconfig=/etc/kubernetes/controller-manager.conf
    - --leader-elect=true
    - --use-service-account-credentials=true
    image: registry.k8s.io/kube-controller-manager:v1.29.4
    imagePullPolicy: IfNotPresent
    name: kube-controller-manager
    resources: {}
    volumeMounts:
    - mountPath: /etc/kubernetes/controller-manager.conf
      name: kubeconfig
      readOnly: true
  hostNetwork: true
  priorityClassName: system-node-critical
  volumes:
  - hostPath:
      path: /etc/kubernetes/controller-manager.conf
      type: FileOrCreate
    name: kubeconfig
status: {}
";

    /// A pod with an app container and a sidecar that only has `args`.
    const TWO_CONTAINERS: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: etcd-backup
  namespace: kube-system
spec:
  containers:
  - name: main
    image: registry.example.com/main:1.0
    command:
      - /bin/main
      - --port=8080
  - name: sidecar
    image: registry.example.com/sidecar:2.3
    args:
      - --interval=30s
      - --verbose
";

    fn set_flag(name: &str, value: &str) -> EditOp {
        EditOp::SetFlag {
            name: name.into(),
            value: value.into(),
        }
    }

    fn remove_flag(name: &str) -> EditOp {
        EditOp::RemoveFlag { name: name.into() }
    }

    fn set_resource(key: &str, value: &str) -> EditOp {
        EditOp::SetResource {
            key: key.into(),
            value: value.into(),
        }
    }

    fn remove_resource(key: &str) -> EditOp {
        EditOp::RemoveResource { key: key.into() }
    }

    /// `text` with `old` (which must occur exactly once) replaced by `new`.
    fn replaced(text: &str, old: &str, new: &str) -> String {
        assert_eq!(
            text.matches(old).count(),
            1,
            "fixture must contain {old:?} once"
        );
        text.replacen(old, new, 1)
    }

    /// The differing lines of two texts, after stripping the common leading
    /// and trailing lines: (removed, added). Enough for single-hunk edits.
    fn hunk<'t>(before: &'t str, after: &'t str) -> (Vec<&'t str>, Vec<&'t str>) {
        let a: Vec<&str> = before.lines().collect();
        let b: Vec<&str> = after.lines().collect();
        let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let tail = a[head..]
            .iter()
            .rev()
            .zip(b[head..].iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        (
            a[head..a.len() - tail].to_vec(),
            b[head..b.len() - tail].to_vec(),
        )
    }

    /// The value of a flag in the first container, read back by parsing.
    fn read_flag(text: &str, container: usize, name: &str) -> Option<String> {
        let t = Text::new(text);
        let root = parse(&t).expect("parses");
        let c = &root.get("spec")?.1.get("containers")?.1.items()[container];
        ["command", "args"]
            .iter()
            .filter_map(|k| c.get(k))
            .flat_map(|(_, l)| l.items())
            .filter_map(Node::str)
            .find_map(|v| v.strip_prefix(name)?.strip_prefix('=').map(String::from))
    }

    fn read_resource(text: &str, section: &str, resource: &str) -> Option<String> {
        let t = Text::new(text);
        let root = parse(&t).expect("parses");
        let c = &root.get("spec")?.1.get("containers")?.1.items()[0];
        let r = &c.get("resources")?.1;
        r.get(section)?.1.get(resource)?.1.str().map(String::from)
    }

    #[test]
    fn set_new_flag_appends_one_line_after_last_command_item() {
        let out = edit(
            APISERVER,
            None,
            &[set_flag("--max-requests-inflight", "800")],
        )
        .unwrap();
        let expected = replaced(
            APISERVER,
            "    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n",
            "    - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key\n    - --max-requests-inflight=800\n",
        );
        assert_eq!(out, expected);
        assert_eq!(
            hunk(APISERVER, &out),
            (vec![], vec!["    - --max-requests-inflight=800"])
        );
    }

    #[test]
    fn set_existing_flag_changes_exactly_one_line() {
        let out = edit(
            APISERVER,
            Some("kube-apiserver"),
            &[set_flag(
                "--etcd-servers",
                "https://10.0.0.21:2379,https://10.0.0.22:2379",
            )],
        )
        .unwrap();
        let expected = replaced(
            APISERVER,
            "    - --etcd-servers=https://127.0.0.1:2379\n",
            "    - --etcd-servers=https://10.0.0.21:2379,https://10.0.0.22:2379\n",
        );
        assert_eq!(out, expected);
        assert_eq!(
            hunk(APISERVER, &out),
            (
                vec!["    - --etcd-servers=https://127.0.0.1:2379"],
                vec!["    - --etcd-servers=https://10.0.0.21:2379,https://10.0.0.22:2379"]
            )
        );
    }

    #[test]
    fn set_bare_flag_gives_it_a_value_and_keeps_its_comment() {
        let src = replaced(
            APISERVER,
            "    - --allow-privileged=true\n",
            "    - --allow-privileged   # needed for CNI\n",
        );
        let out = edit(&src, None, &[set_flag("--allow-privileged", "false")]).unwrap();
        let expected = replaced(
            &src,
            "    - --allow-privileged   # needed for CNI\n",
            "    - --allow-privileged=false   # needed for CNI\n",
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn flag_prefix_of_another_flag_is_not_matched() {
        // `--etcd` must not be taken for `--etcd-servers=...`.
        let out = edit(APISERVER, None, &[set_flag("--etcd", "x")]).unwrap();
        let (removed, added) = hunk(APISERVER, &out);
        assert!(removed.is_empty());
        assert_eq!(added, vec!["    - --etcd=x"]);
        assert_eq!(
            edit(APISERVER, None, &[remove_flag("--etcd")]).unwrap(),
            APISERVER
        );
    }

    #[test]
    fn remove_flag_deletes_its_line() {
        let out = edit(
            APISERVER,
            None,
            &[remove_flag("--enable-bootstrap-token-auth")],
        )
        .unwrap();
        let expected = replaced(APISERVER, "    - --enable-bootstrap-token-auth=true\n", "");
        assert_eq!(out, expected);
    }

    #[test]
    fn removing_the_only_arg_removes_args() {
        let out = edit(
            TWO_CONTAINERS,
            Some("sidecar"),
            &[remove_flag("--interval"), remove_flag("--verbose")],
        )
        .unwrap();
        let expected = replaced(
            TWO_CONTAINERS,
            "    args:\n      - --interval=30s\n      - --verbose\n",
            "",
        );
        assert_eq!(out, expected);
        // An emptied `command` is refused instead.
        let src = replaced(TWO_CONTAINERS, "      - /bin/main\n", "");
        assert_eq!(
            edit(&src, Some("main"), &[remove_flag("--port")]),
            Err(EditError::WouldEmptyList {
                flag: "--port".into(),
                list: "command".into(),
                container: "main".into(),
            })
        );
    }

    #[test]
    fn remove_absent_flag_is_a_no_op() {
        let out = edit(APISERVER, None, &[remove_flag("--audit-log-path")]).unwrap();
        assert_eq!(out, APISERVER);
    }

    #[test]
    fn remove_every_occurrence_of_a_repeated_flag() {
        let src = replaced(
            APISERVER,
            "    - --secure-port=6443\n",
            "    - --secure-port=6443\n    - --service-account-issuer=https://old.example\n",
        );
        let out = edit(&src, None, &[remove_flag("--service-account-issuer")]).unwrap();
        let expected = replaced(
            APISERVER,
            "    - --service-account-issuer=https://kubernetes.default.svc.cluster.local\n",
            "",
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn set_repeated_flag_is_refused_with_its_lines() {
        let src = replaced(
            APISERVER,
            "    - --secure-port=6443\n",
            "    - --secure-port=6443\n    - --service-account-issuer=https://old.example\n",
        );
        let err = edit(&src, None, &[set_flag("--service-account-issuer", "x")]).unwrap_err();
        assert_eq!(
            err,
            EditError::DuplicateFlag {
                name: "--service-account-issuer".into(),
                container: "kube-apiserver".into(),
                lines: vec![29, 30],
            }
        );
        assert!(err.to_string().contains("lines 29, 30"), "{err}");
    }

    #[test]
    fn edits_are_idempotent() {
        let ops = [
            set_flag("--max-requests-inflight", "800"),
            set_flag("--etcd-servers", "https://10.0.0.21:2379"),
            remove_flag("--enable-bootstrap-token-auth"),
            set_resource("limits.memory", "2Gi"),
            set_resource("requests.cpu", "500m"),
            remove_resource("requests.memory"),
        ];
        let once = edit(APISERVER, None, &ops).unwrap();
        assert_ne!(once, APISERVER);
        let twice = edit(&once, None, &ops).unwrap();
        assert_eq!(twice, once);

        let once = edit(CONTROLLER_MANAGER, None, &ops).unwrap();
        assert_eq!(edit(&once, None, &ops).unwrap(), once);
    }

    #[test]
    fn setting_the_current_value_returns_the_input_unchanged() {
        let ops = [
            set_flag("--secure-port", "6443"),
            set_resource("requests.cpu", "250m"),
        ];
        assert_eq!(edit(APISERVER, None, &ops).unwrap(), APISERVER);
    }

    #[test]
    fn set_limit_when_only_requests_exist() {
        let out = edit(APISERVER, None, &[set_resource("limits.memory", "2Gi")]).unwrap();
        // `limits` sorts before `requests`, so it goes in front, as kubectl
        // and kubeadm order them.
        let expected = replaced(
            APISERVER,
            "    resources:\n      requests:\n",
            "    resources:\n      limits:\n        memory: 2Gi\n      requests:\n",
        );
        assert_eq!(out, expected);
        assert_eq!(
            read_resource(&out, "limits", "memory").as_deref(),
            Some("2Gi")
        );
        assert_eq!(
            read_resource(&out, "requests", "cpu").as_deref(),
            Some("250m")
        );
    }

    #[test]
    fn new_first_key_goes_above_the_comment_of_the_old_first_key() {
        let src = replaced(
            APISERVER,
            "    resources:\n      requests:\n",
            "    resources:\n      # sized for 64 GiB nodes\n      requests:\n",
        );
        let out = edit(&src, None, &[set_resource("limits.memory", "2Gi")]).unwrap();
        let expected = replaced(
            &src,
            "    resources:\n",
            "    resources:\n      limits:\n        memory: 2Gi\n",
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn set_new_request_next_to_existing_one() {
        let out = edit(APISERVER, None, &[set_resource("requests.memory", "512Mi")]).unwrap();
        let expected = replaced(
            APISERVER,
            "        cpu: 250m\n",
            "        cpu: 250m\n        memory: 512Mi\n",
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn replace_existing_resource_value() {
        let out = edit(APISERVER, None, &[set_resource("requests.cpu", "1")]).unwrap();
        assert_eq!(
            out,
            replaced(APISERVER, "        cpu: 250m\n", "        cpu: 1\n")
        );
    }

    #[test]
    fn set_resource_when_resources_is_an_empty_flow_mapping() {
        let out = edit(
            CONTROLLER_MANAGER,
            None,
            &[set_resource("limits.memory", "2Gi")],
        )
        .unwrap();
        let expected = replaced(
            CONTROLLER_MANAGER,
            "    resources: {}\n",
            "    resources:\n      limits:\n        memory: 2Gi\n",
        );
        assert_eq!(out, expected);
        assert_eq!(
            hunk(CONTROLLER_MANAGER, &out),
            (
                vec!["    resources: {}"],
                vec!["    resources:", "      limits:", "        memory: 2Gi"]
            )
        );
    }

    #[test]
    fn comment_after_empty_flow_resources_is_kept() {
        let src = replaced(
            CONTROLLER_MANAGER,
            "    resources: {}\n",
            "    resources: {}   # kubeadm default\n",
        );
        let out = edit(&src, None, &[set_resource("requests.cpu", "200m")]).unwrap();
        let expected = replaced(
            &src,
            "    resources: {}   # kubeadm default\n",
            "    resources:   # kubeadm default\n      requests:\n        cpu: 200m\n",
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn set_resource_when_resources_is_absent() {
        let src = replaced(
            APISERVER,
            "    resources:\n      requests:\n        cpu: 250m\n",
            "",
        );
        let out = edit(&src, None, &[set_resource("requests.cpu", "250m")]).unwrap();
        assert_eq!(out, APISERVER);
    }

    #[test]
    fn set_resource_follows_the_files_indentation_step() {
        let src = "\
apiVersion: v1
kind: Pod
spec:
    containers:
        -   name: app
            image: nginx
            livenessProbe:
                    tcpSocket:
                            port: 80
";
        let out = edit(src, None, &[set_resource("limits.cpu", "2")]).unwrap();
        // Keys not in alphabetical order: appended; step 8 taken from
        // `livenessProbe` → `tcpSocket`.
        let expected = format!(
            "{src}            resources:\n                    limits:\n                            cpu: 2\n"
        );
        assert_eq!(out, expected);
        assert_eq!(read_resource(&out, "limits", "cpu").as_deref(), Some("2"));
    }

    #[test]
    fn remove_resource_value() {
        let src = edit(APISERVER, None, &[set_resource("requests.memory", "512Mi")]).unwrap();
        let out = edit(&src, None, &[remove_resource("requests.memory")]).unwrap();
        assert_eq!(out, APISERVER);
    }

    #[test]
    fn remove_last_value_of_a_section_removes_the_section() {
        let src = edit(APISERVER, None, &[set_resource("limits.memory", "2Gi")]).unwrap();
        let out = edit(&src, None, &[remove_resource("limits.memory")]).unwrap();
        assert_eq!(out, APISERVER);
    }

    #[test]
    fn remove_last_resource_leaves_empty_resources_mapping() {
        let out = edit(APISERVER, None, &[remove_resource("requests.cpu")]).unwrap();
        let expected = replaced(
            APISERVER,
            "    resources:\n      requests:\n        cpu: 250m\n",
            "    resources: {}\n",
        );
        assert_eq!(out, expected);
        // And back again.
        let back = edit(&out, None, &[set_resource("requests.cpu", "250m")]).unwrap();
        assert_eq!(back, APISERVER);
    }

    #[test]
    fn remove_absent_resource_is_a_no_op() {
        for key in ["limits.memory", "requests.memory"] {
            assert_eq!(
                edit(APISERVER, None, &[remove_resource(key)]).unwrap(),
                APISERVER
            );
            assert_eq!(
                edit(CONTROLLER_MANAGER, None, &[remove_resource(key)]).unwrap(),
                CONTROLLER_MANAGER
            );
        }
    }

    #[test]
    fn unknown_container_lists_the_containers_present() {
        let err = edit(TWO_CONTAINERS, Some("etcd"), &[set_flag("--x", "1")]).unwrap_err();
        assert_eq!(
            err,
            EditError::ContainerNotFound {
                name: "etcd".into(),
                present: vec!["main".into(), "sidecar".into()],
            }
        );
        assert_eq!(
            err.to_string(),
            "container `etcd` not found; containers in this manifest: `main`, `sidecar`"
        );
    }

    #[test]
    fn second_container_selected_by_name_gets_the_edit_in_its_args() {
        let out = edit(
            TWO_CONTAINERS,
            Some("sidecar"),
            &[
                set_flag("--interval", "1m"),
                set_flag("--log-format", "json"),
                remove_flag("--verbose"),
            ],
        )
        .unwrap();
        let expected = replaced(
            TWO_CONTAINERS,
            "      - --interval=30s\n      - --verbose\n",
            "      - --interval=1m\n      - --log-format=json\n",
        );
        assert_eq!(out, expected);
        // Without a name, the first container is edited.
        let out = edit(TWO_CONTAINERS, None, &[set_flag("--port", "9090")]).unwrap();
        assert_eq!(out, replaced(TWO_CONTAINERS, "--port=8080", "--port=9090"));
    }

    #[test]
    fn not_a_pod_manifest_is_refused() {
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template: {}\n";
        assert!(matches!(
            edit(deployment, None, &[set_flag("--x", "1")]),
            Err(EditError::NotAPod(m)) if m.contains("Deployment")
        ));
        let no_containers = "apiVersion: v1\nkind: Pod\nspec:\n  hostNetwork: true\n";
        assert_eq!(
            edit(no_containers, None, &[set_flag("--x", "1")]),
            Err(EditError::NotAPod(
                "there is no `spec.containers` list".into()
            ))
        );
        assert!(matches!(
            edit("- a\n- b\n", None, &[remove_flag("--x")]),
            Err(EditError::NotAPod(_))
        ));
        assert!(matches!(
            edit("", None, &[remove_flag("--x")]),
            Err(EditError::NotAPod(_))
        ));
    }

    #[test]
    fn invalid_yaml_reports_its_line() {
        let broken = replaced(
            APISERVER,
            "    imagePullPolicy: IfNotPresent\n",
            "    imagePullPolicy: [IfNotPresent\n",
        );
        match edit(&broken, None, &[set_flag("--x", "1")]) {
            Err(EditError::InvalidYaml { line, .. }) => assert!(line >= 35, "line {line}"),
            other => panic!("expected InvalidYaml, got {other:?}"),
        }
    }

    #[test]
    fn non_ascii_comments_survive_byte_identical() {
        let src = replaced(
            APISERVER,
            "  - command:\n",
            "  # Geändert von Jürgen — siehe Ticket №42 ✓\n  - command:\n    # Flags geprüft 🔍\n",
        );
        let out = edit(
            &src,
            None,
            &[
                set_flag("--secure-port", "6444"),
                set_flag("--max-requests-inflight", "800"),
                set_resource("limits.memory", "2Gi"),
            ],
        )
        .unwrap();
        let expected = replaced(
            &src,
            "    - --secure-port=6443\n",
            "    - --secure-port=6444\n",
        );
        let expected = replaced(
            &expected,
            "apiserver.key\n",
            "apiserver.key\n    - --max-requests-inflight=800\n",
        );
        let expected = replaced(
            &expected,
            "    resources:\n",
            "    resources:\n      limits:\n        memory: 2Gi\n",
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn crlf_line_endings_are_kept() {
        let src = APISERVER.replace('\n', "\r\n");
        let out = edit(&src, None, &[set_flag("--max-requests-inflight", "800")]).unwrap();
        let expected = replaced(
            &src,
            "apiserver.key\r\n",
            "apiserver.key\r\n    - --max-requests-inflight=800\r\n",
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn file_without_final_newline_stays_without() {
        let src = TWO_CONTAINERS.trim_end();
        let out = edit(src, Some("sidecar"), &[set_flag("--log-format", "json")]).unwrap();
        assert_eq!(out, format!("{src}\n      - --log-format=json"));
    }

    #[test]
    fn value_needing_quotes_is_quoted_and_reads_back() {
        let cases = [
            ("--cors-allowed-origins", "*"),
            ("--admission-control-config-file", "a: b"),
            ("--token-auth-file", "x #y"),
            ("--audit-log-path", ""),
            ("--oidc-username-prefix", "\"oidc\":"),
        ];
        for (name, value) in cases {
            let out = edit(APISERVER, None, &[set_flag(name, value)]).unwrap();
            let (_, added) = hunk(APISERVER, &out);
            assert_eq!(added.len(), 1);
            assert!(added[0].starts_with("    - \""), "{:?}", added[0]);
            assert_eq!(read_flag(&out, 0, name).as_deref(), Some(value));
            assert_eq!(edit(&out, None, &[set_flag(name, value)]).unwrap(), out);
        }
        let out = edit(
            APISERVER,
            None,
            &[set_flag("--oidc-username-prefix", "\"oidc\":")],
        )
        .unwrap();
        assert!(out.contains("    - \"--oidc-username-prefix=\\\"oidc\\\":\"\n"));

        let out = edit(APISERVER, None, &[set_resource("limits.memory", "true")]).unwrap();
        assert!(out.contains("        memory: \"true\"\n"));
        assert_eq!(
            read_resource(&out, "limits", "memory").as_deref(),
            Some("true")
        );
    }

    #[test]
    fn flow_style_collections_are_refused_with_their_key() {
        let src = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: c\n    command: [app, --a=1]\n";
        let err = edit(src, None, &[set_flag("--b", "2")]).unwrap_err();
        assert_eq!(
            err,
            EditError::FlowStyle {
                key: "spec.containers[c].command".into(),
                line: 6,
            }
        );
        assert!(err.to_string().contains("by hand"));
        // Removing a flag that is not there needs no edit, so is fine.
        assert_eq!(edit(src, None, &[remove_flag("--b")]).unwrap(), src);

        let src = replaced(
            CONTROLLER_MANAGER,
            "    resources: {}\n",
            "    resources: {limits: {cpu: 1}}\n",
        );
        let err = edit(&src, None, &[set_resource("limits.memory", "1Gi")]).unwrap_err();
        assert!(
            matches!(err, EditError::FlowStyle { line: 24, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn containers_using_anchors_or_aliases_are_refused() {
        let src = "\
apiVersion: v1
kind: Pod
spec:
  containers:
  - name: a
    args: &flags
    - --a=1
  - name: b
    args: *flags
";
        for name in ["a", "b"] {
            let err = edit(src, Some(name), &[set_flag("--b", "2")]).unwrap_err();
            assert!(
                matches!(&err, EditError::Anchors { container, line } if container == name && *line == if name == "a" { 6 } else { 9 }),
                "{err:?}"
            );
        }
    }

    #[test]
    fn bad_inputs_are_refused() {
        assert_eq!(
            edit(APISERVER, None, &[set_resource("memory", "1Gi")]),
            Err(EditError::BadResourceKey("memory".into()))
        );
        assert_eq!(
            edit(APISERVER, None, &[set_resource("limit.memory", "1Gi")]),
            Err(EditError::BadResourceKey("limit.memory".into()))
        );
        assert!(matches!(
            edit(APISERVER, None, &[set_resource("limits.memory", "")]),
            Err(EditError::BadValue { .. })
        ));
        assert!(matches!(
            edit(APISERVER, None, &[set_flag("--x", "a\nb")]),
            Err(EditError::BadValue { .. })
        ));
        assert_eq!(
            edit(APISERVER, None, &[set_flag("--x=1", "2")]),
            Err(EditError::BadFlagName("--x=1".into()))
        );
        assert_eq!(
            edit(APISERVER, None, &[set_flag("max-requests-inflight", "2")]),
            Err(EditError::BadFlagName("max-requests-inflight".into()))
        );
    }

    #[test]
    fn container_without_command_or_args() {
        let src =
            "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: c\n    image: nginx\n";
        assert_eq!(
            edit(src, None, &[set_flag("--x", "1")]),
            Err(EditError::NoCommandList {
                container: "c".into(),
                flag: "--x".into(),
            })
        );
    }

    #[test]
    fn set_resource_with_null_section_and_null_value() {
        let src = replaced(
            CONTROLLER_MANAGER,
            "    resources: {}\n",
            "    resources:\n      limits:\n      requests:\n        cpu:   # set me\n",
        );
        let out = edit(
            &src,
            None,
            &[
                set_resource("limits.memory", "1Gi"),
                set_resource("requests.cpu", "200m"),
            ],
        )
        .unwrap();
        let expected = replaced(
            CONTROLLER_MANAGER,
            "    resources: {}\n",
            "    resources:\n      limits:\n        memory: 1Gi\n      requests:\n        cpu: 200m   # set me\n",
        );
        assert_eq!(out, expected);
    }
}
