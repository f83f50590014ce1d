//! The terminal a run's output goes to: whether stdout is one and how wide it
//! is, and fitting text to that width. ANSI colour codes take no room; every
//! other character is counted as one column (remedy's own output is ASCII
//! plus arrows and ellipses).

use std::io::IsTerminal;

/// The width of the terminal on stdout, or `None` when stdout is not a
/// terminal (a pipe, a file, cron): then output is left exactly as it is.
pub fn stdout_width() -> Option<usize> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ only writes a winsize into the struct passed.
    let asked = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    let cols = if asked == 0 && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(80)
    };
    // Narrower than this, wrapping makes things worse, not better.
    Some(cols.max(40))
}

/// A piece of a line: an escape sequence (no width) or one character.
enum Piece<'a> {
    Escape(&'a str),
    Char(char),
}

fn pieces(line: &str) -> impl Iterator<Item = Piece<'_>> {
    let mut rest = line;
    std::iter::from_fn(move || {
        let c = rest.chars().next()?;
        if c == '\x1b' && rest[1..].starts_with('[') {
            // CSI: ESC [ parameters, then one final byte in 0x40..=0x7e.
            let end = rest[2..]
                .find(|c: char| ('\x40'..='\x7e').contains(&c))
                .map(|i| i + 3)
                .unwrap_or(rest.len());
            let (escape, tail) = rest.split_at(end);
            rest = tail;
            return Some(Piece::Escape(escape));
        }
        rest = &rest[c.len_utf8()..];
        Some(Piece::Char(c))
    })
}

/// How many columns `line` takes on the terminal.
pub fn width_of(line: &str) -> usize {
    pieces(line).filter(|p| matches!(p, Piece::Char(_))).count()
}

/// Every line of `text` wrapped to `width` columns, at a space where one is
/// near; the continuation lines are indented like the line they continue,
/// plus two, so a wrapped step line still reads as one.
pub fn wrap(text: &str, width: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, newline) = match line.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (line, ""),
        };
        wrap_line(body, width, &mut out);
        out.push_str(newline);
    }
    out
}

fn wrap_line(line: &str, width: usize, out: &mut String) {
    if width_of(line) <= width {
        out.push_str(line);
        return;
    }
    let indent = line.len() - line.trim_start_matches(' ').len();
    let hang = (indent + 2).min(width / 2);
    let mut current = String::new();
    let mut col = 0;
    // The last space on the current line worth breaking at: byte offset.
    let mut space: Option<usize> = None;
    for piece in pieces(line) {
        let c = match piece {
            Piece::Escape(e) => {
                current.push_str(e);
                continue;
            }
            Piece::Char(c) => c,
        };
        if col == width {
            let rest = match space {
                Some(at) => {
                    let rest = current.split_off(at + 1);
                    current.truncate(at);
                    rest
                }
                None => String::new(),
            };
            out.push_str(current.trim_end_matches(' '));
            out.push('\n');
            current = format!("{:hang$}{rest}", "");
            col = width_of(&current);
            space = None;
        }
        // Break at a space only when the line keeps a good part of itself
        // (a space in the indent would leave an empty line).
        if c == ' ' && col > hang + width / 3 {
            space = Some(current.len());
        }
        current.push(c);
        col += 1;
    }
    out.push_str(&current);
}

/// `line` cut to `width` columns, with `…` where it was cut.
pub fn truncate(line: &str, width: usize) -> String {
    if width_of(line) <= width {
        return line.to_string();
    }
    let mut out = String::new();
    let mut col = 0;
    let mut escaped = false;
    for piece in pieces(line) {
        match piece {
            Piece::Escape(e) => {
                escaped = true;
                out.push_str(e);
            }
            Piece::Char(_) if col + 1 >= width => break,
            Piece::Char(c) => {
                out.push(c);
                col += 1;
            }
        }
    }
    out.push('…');
    if escaped {
        out.push_str("\x1b[0m");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_a_space_with_a_hanging_indent() {
        let line = format!("  {}", "word ".repeat(30));
        let wrapped = wrap(&line, 40);
        assert!(wrapped.lines().count() > 1, "{wrapped}");
        for l in wrapped.lines() {
            assert!(width_of(l) <= 40, "{l:?}");
        }
        assert!(wrapped.lines().skip(1).all(|l| l.starts_with("    w")));
        // Nothing lost but the spaces at the breaks.
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(words(&wrapped), words(&line));
    }

    #[test]
    fn wraps_a_line_without_spaces_hard() {
        let line = format!("            {}", "x".repeat(300));
        let wrapped = wrap(&line, 100);
        assert!(wrapped.lines().all(|l| width_of(l) <= 100), "{wrapped}");
        assert_eq!(wrapped.matches('x').count(), 300);
    }

    #[test]
    fn colour_codes_take_no_room() {
        let line = format!("\x1b[32m{}\x1b[0m", "y".repeat(50));
        assert_eq!(width_of(&line), 50);
        assert_eq!(wrap(&line, 50), line);
        let cut = truncate(&line, 10);
        assert_eq!(width_of(&cut), 10);
        assert!(cut.ends_with("…\x1b[0m"), "{cut:?}");
    }

    #[test]
    fn short_lines_are_left_alone() {
        let text = "a\n\n  b c\n";
        assert_eq!(wrap(text, 40), text);
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
    }
}
