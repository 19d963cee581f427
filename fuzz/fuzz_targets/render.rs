//! Fuzz target `render`: the body is `sysfile::fuzzing::render` (replayed by tests/fuzz_regressions.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sysfile::fuzzing::run("render", data));
