//! A named source text (a runbook or inventory file) and positions inside it.
//!
//! Positions are kept as character offsets plus a 1-based line and 0-based
//! column, which is what the YAML parser reports and what diagnostics render.

use std::sync::Arc;

/// One input file, kept whole so diagnostics can quote the offending line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// What the user calls this file (a path as given, or `builtin:NAME`).
    pub name: String,
    /// The full text.
    pub text: String,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<Source> {
        Arc::new(Source {
            name: name.into(),
            text: text.into(),
        })
    }

    /// The text of a 1-based line, without its line break.
    pub fn line(&self, line: usize) -> Option<&str> {
        self.text.lines().nth(line.checked_sub(1)?)
    }
}

/// A range in a source: where a value or an error sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Span {
    /// 1-based line of the first character.
    pub line: usize,
    /// 0-based column (in characters) of the first character.
    pub col: usize,
    /// Length in characters, at least 1 when rendered.
    pub len: usize,
}

impl Span {
    pub fn new(line: usize, col: usize, len: usize) -> Span {
        Span { line, col, len }
    }

    /// A span `offset` characters further along the same line, `len` long.
    pub fn shifted(self, offset: usize, len: usize) -> Span {
        Span {
            line: self.line,
            col: self.col + offset,
            len,
        }
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col + 1)
    }
}
