//! Replays every input kept in `fuzz/regressions/{yaml,compile,template}/`
//! through the same checks the fuzz targets run (the files are shared with
//! `fuzz/src/`), so an input that once crashed, hung or broke a promise
//! stays fixed. `scripts/fuzz` says how to add one.

#[path = "../../fuzz/src/dsl.rs"]
mod checks;
#[path = "../../fuzz/src/kept.rs"]
mod kept;

#[test]
fn yaml_regressions() {
    kept::replay("regressions/yaml", checks::yaml);
}

#[test]
fn compile_regressions() {
    kept::replay("regressions/compile", checks::compile);
}

#[test]
fn template_regressions() {
    kept::replay("regressions/template", checks::template);
}

/// The checks run on real inputs too (so an empty regressions directory
/// still tests something).
#[test]
fn the_checks_run_on_real_inputs() {
    for text in [
        include_str!("../../runbooks/manifest-edit.yaml"),
        include_str!("../../runbooks/cert-renew.yaml"),
    ] {
        checks::yaml(text.as_bytes());
        checks::compile(text.as_bytes());
        checks::template(text.as_bytes());
    }
    checks::yaml(b"a: &a [x]\nb: [*a, *a]\n\xff");
    checks::template(b"a ${x} $${y} ${ #{k: 1}.k }");
}
