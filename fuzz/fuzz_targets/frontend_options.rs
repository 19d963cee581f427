//! Fuzz target `frontend_options`: the body is `sysfile::fuzzing::frontend_options` (replayed by tests/fuzz_regressions.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sysfile::fuzzing::run("frontend_options", data));
