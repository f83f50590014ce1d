//! Checks for the runbook language (remedy-dsl): the spanned YAML tree, the
//! compiler and `${}` templates. Beyond "no panic, no hang, no memory bomb"
//! (libFuzzer's timeout and RSS limit catch those), each checks a promise
//! the code makes: rendered diagnostics stay bounded however hostile the
//! input, and a template splits into parts that put back together give the
//! text it came from.
//!
//! Included by `dsl/tests/fuzz_regressions.rs`, so it may use only
//! `remedy_dsl` and std.

use remedy_dsl::diagnostic::{MAX_MESSAGE_CHARS, MAX_QUOTED_CHARS, MAX_SHOWN};
use remedy_dsl::template::{split, RawPart};
use remedy_dsl::{Diagnostics, Source};

/// The most one rendered diagnostic may take: message, location, quoted
/// line, caret line and hint, each capped (4 bytes a character at worst).
const MAX_RENDERED_BYTES: usize = 4 * (2 * MAX_MESSAGE_CHARS + 3 * MAX_QUOTED_CHARS + 600);

/// Rendering never panics and stays within its caps.
fn check_rendering(d: &Diagnostics) {
    let out = d.render();
    let limit = (MAX_SHOWN + 1) * MAX_RENDERED_BYTES;
    assert!(
        out.len() <= limit,
        "{} diagnostics rendered to {} bytes",
        d.len(),
        out.len()
    );
}

/// Bytes as a YAML file: UTF-8 checked, parsed into the spanned tree, the
/// tree turned into JSON (what the engine gets), any errors rendered.
pub fn yaml(data: &[u8]) {
    let source = match Source::from_bytes("fuzz.yaml", data.to_vec()) {
        Ok(source) => source,
        Err(d) => return check_rendering(&Diagnostics::from(d)),
    };
    match remedy_dsl::yaml::parse(&source) {
        Ok(root) => {
            let _ = root.to_json();
        }
        Err(errors) => check_rendering(&Diagnostics(errors)),
    }
}

/// Bytes as a runbook, through the whole compiler.
pub fn compile(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(d) = remedy_dsl::compile(Source::new("fuzz.yaml", text)) {
        check_rendering(&d);
    }
}

/// Bytes as a string value with `${…}`: split, each expression compiled as
/// the compiler would, and the parts put back together give the text.
pub fn template(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parts) = split(text) else {
        return;
    };
    let mut rebuilt = String::new();
    for part in &parts {
        match part {
            // A literal `${` was written `$${`.
            RawPart::Lit(lit) => rebuilt.push_str(&lit.replace("${", "$${")),
            RawPart::Expr { text: expr, .. } => {
                rebuilt.push_str("${");
                rebuilt.push_str(expr);
                rebuilt.push('}');
                let _ = remedy_dsl::expr::compile(expr, remedy_dsl::Context::Step, false);
            }
        }
    }
    assert_eq!(rebuilt, text, "the parts of {text:?} are {parts:?}");
}
