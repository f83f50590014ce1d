//! Fuzz target: see `remedy_fuzz::manifest::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| remedy_fuzz::manifest::manifest(data));
