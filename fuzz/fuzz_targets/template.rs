//! Fuzz target: see `remedy_fuzz::dsl::template`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remedy_fuzz::dsl::template(data));
