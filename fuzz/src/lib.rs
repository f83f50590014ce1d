//! What each fuzz target checks, as plain functions of the input bytes: the
//! targets in `fuzz_targets/` call them under libFuzzer, and the regression
//! tests of the main workspace include the same files (`#[path]`) to replay
//! every input kept in `fuzz/regressions/` — so a crash found once stays
//! fixed. A function panics when the code under test breaks a promise.

pub mod dsl;
pub mod kept;
pub mod manifest;
