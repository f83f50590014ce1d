//! Replays every input kept in `fuzz/regressions/manifest/` through the same
//! checks the `manifest` fuzz target runs (the file is shared with
//! `fuzz/src/manifest.rs`), so an input that once failed stays fixed, and
//! runs the seeds in `fuzz/seeds/manifest/` so the checks are exercised even
//! with no regression kept.

#[path = "../../fuzz/src/manifest.rs"]
mod checks;
#[path = "../../fuzz/src/kept.rs"]
mod kept;

#[test]
fn manifest_regressions() {
    kept::replay("regressions/manifest", checks::manifest);
}

#[test]
fn manifest_seeds() {
    assert!(kept::replay("seeds/manifest", checks::manifest) > 0);
}
