//! Replays every input kept in `fuzz/regressions/{yaml,compile,template}/`
//! through the same checks the fuzz targets run (the file is shared with
//! `fuzz/src/dsl.rs`), so an input that once crashed, hung or broke a
//! promise stays fixed. `scripts/fuzz` says how to add one.

#[path = "../../fuzz/src/dsl.rs"]
mod checks;

use std::path::Path;

/// Every kept input of one target, run through `check`; returns how many.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".keep"))
        .collect();
    inputs.sort();
    for input in &inputs {
        let bytes = std::fs::read(input).unwrap();
        // Name the input if the check panics.
        eprintln!("replaying {}", input.display());
        check(&bytes);
    }
    inputs.len()
}

#[test]
fn yaml_regressions() {
    replay("yaml", checks::yaml);
}

#[test]
fn compile_regressions() {
    replay("compile", checks::compile);
}

#[test]
fn template_regressions() {
    replay("template", checks::template);
}

/// The checks themselves catch what they promise to (so an empty
/// regressions directory still tests something).
#[test]
fn the_checks_run_on_real_inputs() {
    for (_, text) in [
        (
            "manifest-edit",
            include_str!("../../runbooks/manifest-edit.yaml"),
        ),
        ("cert-renew", include_str!("../../runbooks/cert-renew.yaml")),
    ] {
        checks::yaml(text.as_bytes());
        checks::compile(text.as_bytes());
        checks::template(text.as_bytes());
    }
    checks::yaml(b"a: &a [x]\nb: [*a, *a]\n\xff");
    checks::template(b"a ${x} $${y} ${ #{k: 1}.k }");
}
