//! Reading a manifest into a tree that remembers where every node sits:
//! [`Text`] turns saphyr's character positions into bytes and lines, [`parse`]
//! builds the [`Node`] tree, [`find_container`] picks the container an edit
//! is for, and [`same`] compares two trees value for value (the self-check).

use crate::{internal, EditError};
use saphyr_parser::{Event, Parser, ScalarStyle};

// Text positions

/// The source with the tables needed to turn saphyr's positions into byte
/// offsets and lines.
pub(crate) struct Text<'a> {
    pub(crate) src: &'a str,
    /// Byte offset of every character, plus `src.len()`: saphyr's markers
    /// count characters, and a comment with `ü` or `—` would otherwise shift
    /// every later splice.
    pub(crate) char_bytes: Vec<usize>,
    /// Byte offset where each `\n`-terminated line starts. Our own table rather
    /// than saphyr's line numbers, so that line numbering and slicing agree.
    pub(crate) line_starts: Vec<usize>,
    /// Line break for inserted lines: a CRLF file stays CRLF.
    pub(crate) nl: &'static str,
}

impl<'a> Text<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
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

    pub(crate) fn byte(&self, char_index: usize) -> usize {
        self.char_bytes
            .get(char_index)
            .copied()
            .unwrap_or(self.src.len())
    }

    /// 0-based line containing `byte`.
    pub(crate) fn line_of(&self, byte: usize) -> usize {
        self.line_starts
            .partition_point(|&s| s <= byte)
            .saturating_sub(1)
    }

    pub(crate) fn line_start(&self, line: usize) -> usize {
        self.line_starts
            .get(line)
            .copied()
            .unwrap_or(self.src.len())
    }

    /// Where the next line starts (after this line's break), or the end.
    pub(crate) fn line_end(&self, line: usize) -> usize {
        self.line_start(line + 1)
    }

    /// 1-based line number, for messages.
    pub(crate) fn line_number(&self, byte: usize) -> usize {
        self.line_of(byte) + 1
    }

    /// The text between the start of `byte`'s line and `byte`.
    pub(crate) fn prefix(&self, byte: usize) -> &'a str {
        self.src
            .get(self.line_start(self.line_of(byte))..byte)
            .unwrap_or("")
    }

    pub(crate) fn col(&self, byte: usize) -> usize {
        self.prefix(byte).chars().count()
    }

    /// Whether nothing but indentation precedes `byte` on its line.
    pub(crate) fn starts_line(&self, byte: usize) -> bool {
        self.prefix(byte).chars().all(|c| c == ' ')
    }

    pub(crate) fn is_comment_line(&self, line: usize) -> bool {
        self.src
            .get(self.line_start(line)..self.line_end(line))
            .is_some_and(|l| l.trim_start().starts_with('#'))
    }

    /// Last line holding any of the node's text.
    pub(crate) fn last_line(&self, node: &Node) -> usize {
        if node.end > node.start {
            self.line_of(node.end - 1)
        } else {
            self.line_of(node.start)
        }
    }

    pub(crate) fn entry_last_line(&self, key: &Node, value: &Node) -> usize {
        self.last_line(key).max(self.last_line(value))
    }

    /// Block scalars' spans run to the next token; pull the end back to the
    /// last character of their content.
    pub(crate) fn trim_back(&self, start: usize, end: usize) -> usize {
        let head = self.src.get(start..end).unwrap_or("");
        start + head.trim_end().len()
    }

    /// Byte just after the `:` that follows a mapping key ending at `key_end`.
    pub(crate) fn after_colon(&self, key_end: usize) -> Option<usize> {
        let rest = self.src.get(key_end..)?;
        let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        rest[skipped..]
            .starts_with(':')
            .then_some(key_end + skipped + 1)
    }
}

// The positioned tree

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) kind: Kind,
    /// Byte range of the node's text. Scalars: the token including quotes and
    /// tag (an empty value sits, zero-width, at the end of its key). Flow
    /// collections: bracket to bracket. Block collections: start of the first
    /// child to end of the last.
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) flow: bool,
    /// Where its anchor (`&name`), which aliases elsewhere may refer to, is.
    pub(crate) anchor: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Scalar { value: String, plain: bool },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Alias,
}

impl Node {
    /// A node for the expected-value model; positions are never read there.
    pub(crate) fn synthetic(kind: Kind) -> Node {
        Node {
            kind,
            start: 0,
            end: 0,
            flow: false,
            anchor: None,
        }
    }

    pub(crate) fn scalar(value: &str) -> Node {
        Node::synthetic(Kind::Scalar {
            value: value.to_string(),
            plain: false,
        })
    }

    pub(crate) fn str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { value, .. } => Some(value),
            _ => None,
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { value, plain: true }
            if matches!(value.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// Null or `{}`: a mapping value with nothing in it yet.
    pub(crate) fn is_vacant(&self) -> bool {
        self.is_null() || matches!(&self.kind, Kind::Map(e) if e.is_empty())
    }

    pub(crate) fn entries(&self) -> &[(Node, Node)] {
        match &self.kind {
            Kind::Map(e) => e,
            _ => &[],
        }
    }

    pub(crate) fn items(&self) -> &[Node] {
        match &self.kind {
            Kind::Seq(i) => i,
            _ => &[],
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&(Node, Node)> {
        self.entries().iter().find(|(k, _)| k.str() == Some(key))
    }

    pub(crate) fn describe(&self) -> &'static str {
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
pub(crate) struct Open {
    pub(crate) start: usize,
    pub(crate) flow: bool,
    pub(crate) anchor: Option<usize>,
    pub(crate) map: bool,
    pub(crate) children: Vec<Node>,
}

pub(crate) fn parse(text: &Text) -> Result<Node, EditError> {
    // YAML reads a lone `\r` as a line break, the line table does not: an
    // edit placed by line would land elsewhere than YAML sees it (found by
    // fuzzing: an item appended after `- x\r:` went outside the list).
    let bytes = text.src.as_bytes();
    if let Some((at, _)) = text
        .src
        .match_indices('\r')
        .find(|(i, _)| bytes.get(i + 1) != Some(&b'\n'))
    {
        return Err(EditError::LoneCarriageReturn {
            line: text.line_number(at),
        });
    }
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
pub(crate) fn close(
    text: &Text,
    open: Open,
    end_start: usize,
    end_end: usize,
) -> Result<Node, EditError> {
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
pub(crate) fn same(a: &Node, b: &Node) -> bool {
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

// Finding the container

pub(crate) fn find_container<'n>(
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
pub(crate) fn anchor_or_alias(node: &Node) -> Option<usize> {
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

/// The indentation step of a node's nested mappings, if it has one.
pub(crate) fn detect_step(text: &Text, node: &Node) -> Option<usize> {
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
pub(crate) fn is_item_prefix(p: &str) -> bool {
    p.trim_start_matches(' ')
        .strip_prefix('-')
        .is_some_and(|after| !after.is_empty() && after.chars().all(|c| c == ' '))
}
