//! Fuzz target `spec_load`: the body is `sysfile::fuzzing::spec_load` (replayed by tests/fuzz_regressions.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sysfile::fuzzing::run("spec_load", data));
