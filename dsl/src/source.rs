//! A named source text (a runbook or inventory file) and positions inside it.
//!
//! Positions are kept as character offsets plus a 1-based line and 0-based
//! column, which is what the YAML parser reports and what diagnostics render.
//! Bytes from a file become a `Source` through [`Source::from_bytes`], which
//! refuses invalid UTF-8 with the place of the first bad byte; the size limit
//! every input shares is [`MAX_SOURCE_BYTES`].

use crate::diagnostic::Diagnostic;
use std::sync::Arc;

/// The largest runbook, inventory, params file or site config remedy reads.
/// Real ones are a few KiB (an inventory of thousands of hosts stays under
/// 1 MiB); past this, memory and error output would grow with the input for
/// nothing a person could read.
pub const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;

/// One input file, kept whole so diagnostics can quote the offending line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// What the user calls this file (a path as given, or `builtin:NAME`).
    pub name: String,
    /// The full text.
    pub text: String,
    /// Byte offset where each line starts, so quoting line N costs nothing
    /// however many diagnostics a large file has.
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<Source> {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .filter(|&i| i < text.len())
            .collect();
        Arc::new(Source {
            name: name.into(),
            text,
            line_starts,
        })
    }

    /// A source from a file's bytes. Invalid UTF-8 is refused at the first bad
    /// sequence, located by line and column (and byte offset, for a hex dump),
    /// with that line quoted as far as it can be read.
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>) -> Result<Arc<Source>, Diagnostic> {
        let name = name.into();
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Source::new(name, text)),
            Err(e) => {
                let bytes = e.as_bytes();
                let offset = e.utf8_error().valid_up_to();
                let bad = bytes.get(offset).copied().unwrap_or(0);
                // The prefix is valid UTF-8 by definition of `valid_up_to`.
                let valid = std::str::from_utf8(&bytes[..offset]).unwrap_or_default();
                let line = valid.matches('\n').count() + 1;
                let line_start = valid.rfind('\n').map_or(0, |i| i + 1);
                let col = valid[line_start..].chars().count();
                let shown = Source::new(name, String::from_utf8_lossy(bytes).into_owned());
                let what = match e.utf8_error().error_len() {
                    Some(_) => format!("invalid byte 0x{bad:02x}"),
                    None => format!("a character cut short by the end of the file (0x{bad:02x})"),
                };
                Err(Diagnostic::at(
                    &shown,
                    crate::Span::new(line, col, 1),
                    format!(
                        "the file is not valid UTF-8: {what} at byte offset {offset} (line {line}, column {})",
                        col + 1
                    ),
                )
                .with_hint(
                    "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 FILE`); `xxd -s OFFSET -l 16 FILE` shows the bytes",
                ))
            }
        }
    }

    /// The text of a 1-based line, without its line break (as `str::lines`).
    pub fn line(&self, line: usize) -> Option<&str> {
        let start = *self.line_starts.get(line.checked_sub(1)?)?;
        let rest = &self.text[start..];
        Some(match rest.find('\n') {
            Some(end) => rest[..end].strip_suffix('\r').unwrap_or(&rest[..end]),
            None => rest,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_str_lines() {
        for text in [
            "",
            "a",
            "a\n",
            "a\nb",
            "a\r\nb\r\n",
            "\n\nc",
            "x\n\n",
            "é\nü\r",
        ] {
            let src = Source::new("t", text);
            let expected: Vec<&str> = text.lines().collect();
            let got: Vec<&str> = (1..=expected.len() + 1)
                .map_while(|n| src.line(n))
                .collect();
            assert_eq!(got, expected, "{text:?}");
            assert_eq!(src.line(0), None);
        }
    }

    #[test]
    fn invalid_utf8_is_located() {
        let d = Source::from_bytes("f.yaml", b"a: 1\nb: \"x\xffy\"\n".to_vec()).unwrap_err();
        assert_eq!(d.span, Some(Span::new(2, 5, 1)));
        assert_eq!(
            d.message,
            "the file is not valid UTF-8: invalid byte 0xff at byte offset 10 (line 2, column 6)"
        );
        let d = Source::from_bytes("f.yaml", b"a: \xc3".to_vec()).unwrap_err();
        assert!(d
            .message
            .contains("cut short by the end of the file (0xc3) at byte offset 3"));
    }
}
