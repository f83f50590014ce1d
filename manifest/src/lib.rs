//! remedy-manifest: Kubernetes static-pod manifests
//! (`/etc/kubernetes/manifests/kube-apiserver.yaml` and friends), text in and
//! text out: read a container flag or a component's health endpoint
//! ([`flag_value`], [`default_health_url`]), and edit — set or remove a
//! container flag, set or remove a `resources` value ([`edit`]); where a
//! restart parks a manifest and finds it again ([`Parking`]). No I/O: the
//! engine's actions read and write the files; this crate must not depend on
//! the engine or on any transport.
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

mod expect;
mod flags;
mod parse;
mod read;
mod render;
mod resources;
mod static_pod;
#[cfg(test)]
mod tests;

pub use read::{check_pod, default_health_url, flag_value, has_flag, under_manifests_dir};
pub use static_pod::{health_url, Parking, Placement, Unplaced};

use expect::expect;
use flags::{remove_flag, set_flag};
use parse::{detect_step, find_container, parse, same, Kind, Node, Text};
use render::apply_edits;
use resources::{remove_resource, set_resource};
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
    #[error("line {line} holds a carriage return (`\\r`) with no line feed after it, which YAML reads as a line break but a line-by-line edit would not; convert the file's line endings (e.g. `dos2unix`) or make this change by hand")]
    LoneCarriageReturn { line: usize },
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

pub(crate) fn internal(msg: impl Into<String>) -> EditError {
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

// The operations, as text edits

pub(crate) struct Ctx<'a> {
    pub(crate) text: &'a Text<'a>,
    pub(crate) root: &'a Node,
    pub(crate) container: &'a Node,
    pub(crate) name: String,
}

impl Ctx<'_> {
    pub(crate) fn path(&self, key: &str) -> String {
        format!("spec.containers[{}].{key}", self.name)
    }

    pub(crate) fn line(&self, node: &Node) -> usize {
        self.text.line_number(node.start)
    }

    pub(crate) fn flow_error(&self, key: &str, node: &Node) -> EditError {
        EditError::FlowStyle {
            key: self.path(key),
            line: self.line(node),
        }
    }

    pub(crate) fn shape_error(&self, key: &str, node: &Node, expected: &'static str) -> EditError {
        EditError::UnexpectedShape {
            key: self.path(key),
            line: self.line(node),
            found: node.describe(),
            expected,
        }
    }

    /// The container's `command`/`args` list, if it has one we can edit.
    pub(crate) fn block_list(&self, key: &str) -> Result<Option<&Node>, EditError> {
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
    pub(crate) fn step(&self) -> usize {
        detect_step(self.text, self.container)
            .or_else(|| detect_step(self.text, self.root))
            .unwrap_or(2)
    }
}
