//! Fuzz target `compile`: the body is `sysfile::fuzzing::compile` (replayed by tests/fuzz_regressions.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sysfile::fuzzing::run("compile", data));
