//! Writing the new text: [`Edit`]s are byte-range splices applied together,
//! and values are quoted only where YAML would not read them back as the
//! same string.

use crate::parse::Text;
use crate::{internal, EditError};

// Splicing

/// Replace `start..end` (bytes) with `text`; an empty range inserts.
#[derive(Debug)]
pub(crate) struct Edit {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) text: String,
}

pub(crate) fn apply_edits(src: &str, mut edits: Vec<Edit>) -> Result<String, EditError> {
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

pub(crate) fn insert_after(text: &Text, line: usize, lines: &[String]) -> Edit {
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

pub(crate) fn insert_before(text: &Text, line: usize, lines: &[String]) -> Edit {
    let at = text.line_start(line);
    let s = lines.iter().map(|l| format!("{l}{}", text.nl)).collect();
    Edit {
        start: at,
        end: at,
        text: s,
    }
}

pub(crate) fn delete_lines(text: &Text, first: usize, last: usize) -> Edit {
    Edit {
        start: text.line_start(first),
        end: text.line_end(last),
        text: String::new(),
    }
}

pub(crate) fn indent(n: usize) -> String {
    " ".repeat(n)
}

// Values

/// Whether `s` can be written as a plain (unquoted) block scalar and read back
/// as the same string.
pub(crate) fn plain_unsafe(s: &str) -> bool {
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
pub(crate) fn value_looks_like_yaml(v: &str) -> bool {
    v.is_empty()
        || v.contains(": ")
        || v.contains(" #")
        || v.starts_with([
            '*', '&', '!', '|', '>', '\'', '"', '%', '@', '`', '{', '[', '}', ']', '#', ',',
        ])
}

/// Words that YAML (1.1 as well as 1.2, sigs.k8s.io/yaml reads 1.1) would not
/// read as a string.
pub(crate) fn reserved_word(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    )
}

pub(crate) fn double_quoted(s: &str) -> String {
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

pub(crate) fn check_value(key: &str, value: &str) -> Result<(), EditError> {
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
