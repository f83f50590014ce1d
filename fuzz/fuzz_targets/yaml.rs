//! Fuzz target: see `remedy_fuzz::dsl::yaml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remedy_fuzz::dsl::yaml(data));
