//! The inputs kept under `fuzz/` (`regressions/TARGET`, `seeds/TARGET`), for
//! the regression tests of the main workspace that replay them (they include
//! this file with `#[path]`, as they do the checks).

use std::path::{Path, PathBuf};

/// Every file in `fuzz/DIR` but `.keep`, sorted; panics if the directory is
/// missing (a test must not pass by replaying nothing).
pub fn inputs(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(dir);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".keep"))
        .collect();
    found.sort();
    found
}

/// Run `check` on every input in `fuzz/DIR`, naming each first (so a panic
/// says which); returns how many.
pub fn replay(dir: &str, check: fn(&[u8])) -> usize {
    let inputs = inputs(dir);
    for input in &inputs {
        eprintln!("replaying {}", input.display());
        check(&std::fs::read(input).unwrap());
    }
    inputs.len()
}
