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
    ///
    /// A quoted line longer than [`MAX_QUOTED_CHARS`] is cut to a window
    /// around the caret, and a message or hint longer than
    /// [`MAX_MESSAGE_CHARS`] is cut too, so one diagnostic stays a few lines
    /// however long the input line or the value it quotes.
    pub fn render(&self) -> String {
        self.render_as("error")
    }

    /// The same, as a warning: something that compiles but deserves a look.
    pub fn render_warning(&self) -> String {
        self.render_as("warning")
    }

    fn render_as(&self, label: &str) -> String {
        let mut out = format!("{label}: {}\n", clip(&self.message, MAX_MESSAGE_CHARS));
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
                let (shown, col, len) = window(text, span.col, span.len);
                let _ = writeln!(out, "{pad} |");
                let _ = writeln!(out, "{:>gutter$} | {}", span.line, shown);
                let _ = writeln!(out, "{pad} | {}{}", " ".repeat(col), "^".repeat(len));
            }
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{pad} = hint: {}", clip(hint, MAX_MESSAGE_CHARS));
        }
        out
    }
}

impl Diagnostic {
    /// [`render`](Diagnostic::render) without its `error: ` head, for a
    /// caller that prints its own (`error: {…}`) or nests the diagnostic
    /// under something that already says it failed.
    pub fn render_body(&self) -> String {
        strip_head(self.render())
    }
}

fn strip_head(rendered: String) -> String {
    match rendered.strip_prefix("error: ") {
        Some(body) => body.to_string(),
        None => rendered,
    }
}

/// The widest source line quoted in full; a longer one is shown as a window
/// of this many characters around the caret.
pub const MAX_QUOTED_CHARS: usize = 160;

/// The longest message or hint rendered in full (they may quote user values).
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// How many diagnostics [`Diagnostics::render`] shows before "and N more".
pub const MAX_SHOWN: usize = 50;

/// `text` cut to `max` characters, saying how much was left out.
fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some((end, _)) => {
            let rest = text[end..].chars().count();
            format!("{}… ({rest} more characters)", &text[..end]).into()
        }
    }
}

/// The part of `line` to quote, and where the caret goes in it: the whole
/// line when short, else [`MAX_QUOTED_CHARS`] characters around `col` with
/// `…` where text was cut. Returns (text, caret column, caret length ≥ 1).
fn window(line: &str, col: usize, len: usize) -> (String, usize, usize) {
    let total = line.chars().count();
    if total <= MAX_QUOTED_CHARS {
        let len = len.clamp(1, total.saturating_sub(col).max(1));
        return (line.to_string(), col, len);
    }
    // Keep some context left of the caret; never run past the end.
    let start = col
        .saturating_sub(MAX_QUOTED_CHARS / 3)
        .min(total - MAX_QUOTED_CHARS);
    let end = start + MAX_QUOTED_CHARS;
    let mut shown: String = line.chars().skip(start).take(MAX_QUOTED_CHARS).collect();
    let lead = usize::from(start > 0);
    if start > 0 {
        shown.insert(0, '…');
    }
    if end < total {
        shown.push('…');
    }
    let caret = col.saturating_sub(start).min(MAX_QUOTED_CHARS) + lead;
    let len = len.clamp(1, end.saturating_sub(col.max(start)).max(1));
    (shown, caret, len)
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
    /// The first [`MAX_SHOWN`] diagnostics in file order, how many more
    /// there are, then a count line.
    pub fn render(&self) -> String {
        let mut sorted: Vec<&Diagnostic> = self.0.iter().collect();
        sorted.sort_by_key(|d| d.span.map(|s| (s.line, s.col)));
        let mut out = String::new();
        for d in sorted.iter().take(MAX_SHOWN) {
            out.push_str(&d.render());
            out.push('\n');
        }
        let n = self.0.len();
        if n > MAX_SHOWN {
            let _ = writeln!(
                out,
                "… and {} more not shown: fix these first (`remedy validate -o json` lists every error)\n",
                n - MAX_SHOWN
            );
        }
        let _ = writeln!(
            out,
            "{n} error{} found; nothing was run.",
            if n == 1 { "" } else { "s" }
        );
        out
    }
    /// [`render`](Diagnostics::render) without the first `error: `, for a
    /// caller that prints its own.
    pub fn render_body(&self) -> String {
        strip_head(self.render())
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
