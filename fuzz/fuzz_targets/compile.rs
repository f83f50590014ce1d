//! Fuzz target: see `remedy_fuzz::dsl::compile`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remedy_fuzz::dsl::compile(data));
