//! Compiler-style diagnostics: a message, a place, and a hint, rendered with the
//! source line and a caret under the offending text.
//!
//! Every error the DSL (and the inventory/param binding in the engine) reports
//! goes through here, so they all look alike and all carry `file:line:col`.

use crate::source::{Source, Span};
use std::fmt::Write as _;
use std::sync::Arc;

/// One problem found in an input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub source: Option<Arc<Source>>,
    pub span: Option<Span>,
    /// A next step for the user, rendered as `= hint: …`.
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            source: None,
            span: None,
            hint: None,
        }
    }

    pub fn at(source: &Arc<Source>, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            source: Some(source.clone()),
            span: Some(span),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// `file:line:col`, or just the file, or nothing.
    pub fn location(&self) -> Option<String> {
        match (&self.source, self.span) {
            (Some(src), Some(span)) => Some(format!("{}:{}", src.name, span)),
            (Some(src), None) => Some(src.name.clone()),
            _ => None,
        }
    }

    /// Render like a compiler:
    ///
    /// ```text
    /// error: unknown action `cert.renw`
    ///   --> runbook.yaml:12:13
    ///    |
    /// 12 |     action: cert.renw
    ///    |             ^^^^^^^^^
    ///    = hint: did you mean `cert.renew`?
    /// ```
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", self.message);
        let gutter = self
            .span
            .map(|s| s.line.to_string().len())
            .unwrap_or(1)
            .max(1);
        let pad = " ".repeat(gutter);
        if let Some(loc) = self.location() {
            let _ = writeln!(out, "{pad}--> {loc}");
        }
        if let (Some(src), Some(span)) = (&self.source, self.span) {
            if let Some(text) = src.line(span.line) {
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{:>gutter$} | {}", span.line, text);
                let available = text.chars().count().saturating_sub(span.col).max(1);
                let carets = "^".repeat(span.len.clamp(1, available));
                let _ = writeln!(out, "{pad} | {}{}", " ".repeat(span.col), carets);
            }
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{pad} = hint: {hint}");
        }
        out
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

/// All the problems found in one compile; never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }
    /// All diagnostics in file order, then a count line.
    pub fn render(&self) -> String {
        let mut sorted: Vec<&Diagnostic> = self.0.iter().collect();
        sorted.sort_by_key(|d| d.span.map(|s| (s.line, s.col)));
        let mut out = String::new();
        for d in sorted {
            out.push_str(&d.render());
            out.push('\n');
        }
        let n = self.0.len();
        let _ = writeln!(
            out,
            "{n} error{} found; nothing was run.",
            if n == 1 { "" } else { "s" }
        );
        out
    }
    /// `Ok(value)` when nothing was reported, else all of it.
    pub fn into_result<T>(self, value: T) -> Result<T, Diagnostics> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `did you mean `x`?` for a hint, when there is a close candidate.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    suggest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}
