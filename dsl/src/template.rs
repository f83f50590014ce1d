//! `${...}` interpolation inside YAML strings. Each `${...}` is a Rhai
//! expression, compiled and checked like a `when`; `$${` writes a literal `${`.

use crate::expr::Expr;

/// One piece of an interpolated string.
#[derive(Debug, Clone)]
pub enum Part {
    Lit(String),
    Expr(Expr),
}

/// A string value that may contain `${...}` expressions.
#[derive(Debug, Clone)]
pub struct Template {
    pub parts: Vec<Part>,
}

impl Template {
    pub fn literal(text: impl Into<String>) -> Template {
        Template {
            parts: vec![Part::Lit(text.into())],
        }
    }

    /// The text when it has no expressions.
    pub fn as_literal(&self) -> Option<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Expr(_) => return None,
            }
        }
        Some(out)
    }

    /// The expression when the whole string is one `${...}`: its value keeps its
    /// type (a list stays a list) instead of becoming text.
    pub fn as_single_expr(&self) -> Option<&Expr> {
        match self.parts.as_slice() {
            [Part::Expr(e)] => Some(e),
            _ => None,
        }
    }

    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(e) => Some(e),
            Part::Lit(_) => None,
        })
    }
}

/// A piece found by [`split`], before compiling: literal text, or the text of an
/// expression with its (line, col) inside the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawPart {
    Lit(String),
    Expr {
        text: String,
        line: usize,
        col: usize,
    },
}

/// Split a string at `${` … `}`. An unclosed `${` is an error at its (line, col).
pub fn split(text: &str) -> Result<Vec<RawPart>, (String, usize, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut parts = Vec::new();
    let mut lit = String::new();
    let (mut i, mut line, mut col) = (0, 0, 0);
    let step = |c: char, line: &mut usize, col: &mut usize| {
        if c == '\n' {
            *line += 1;
            *col = 0;
        } else {
            *col += 1;
        }
    };
    while i < chars.len() {
        if chars[i] == '$' && chars.get(i + 1) == Some(&'$') && chars.get(i + 2) == Some(&'{') {
            lit.push_str("${");
            for _ in 0..3 {
                step(chars[i], &mut line, &mut col);
                i += 1;
            }
            continue;
        }
        if chars[i] == '$' && chars.get(i + 1) == Some(&'{') {
            let (open_line, open_col) = (line, col);
            for _ in 0..2 {
                step(chars[i], &mut line, &mut col);
                i += 1;
            }
            let (expr_line, expr_col, start) = (line, col, i);
            let mut depth = 1;
            let mut quote: Option<char> = None;
            while i < chars.len() {
                let c = chars[i];
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) if c == '\\' => {
                        step(c, &mut line, &mut col);
                        i += 1;
                    }
                    Some(_) => {}
                    None if c == '"' || c == '\'' || c == '`' => quote = Some(c),
                    None if c == '{' => depth += 1,
                    None if c == '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    None => {}
                }
                if i < chars.len() {
                    step(chars[i], &mut line, &mut col);
                    i += 1;
                }
            }
            if i >= chars.len() {
                return Err(("`${` is never closed with `}`".into(), open_line, open_col));
            }
            let inner: String = chars[start..i].iter().collect();
            if inner.trim().is_empty() {
                return Err(("empty `${}`".into(), open_line, open_col));
            }
            if !lit.is_empty() {
                parts.push(RawPart::Lit(std::mem::take(&mut lit)));
            }
            parts.push(RawPart::Expr {
                text: inner,
                line: expr_line,
                col: expr_col,
            });
            step(chars[i], &mut line, &mut col);
            i += 1;
            continue;
        }
        lit.push(chars[i]);
        step(chars[i], &mut line, &mut col);
        i += 1;
    }
    if !lit.is_empty() || parts.is_empty() {
        parts.push(RawPart::Lit(lit));
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_escapes() {
        let parts = split("a ${x.y} b $${lit} ${ #{a: 1}.a }").unwrap();
        assert_eq!(
            parts,
            vec![
                RawPart::Lit("a ".into()),
                RawPart::Expr {
                    text: "x.y".into(),
                    line: 0,
                    col: 4
                },
                RawPart::Lit(" b ${lit} ".into()),
                RawPart::Expr {
                    text: " #{a: 1}.a ".into(),
                    line: 0,
                    col: 21
                },
            ]
        );
    }

    #[test]
    fn unclosed_is_an_error() {
        assert_eq!(split("x ${a").unwrap_err().2, 2);
    }
}
