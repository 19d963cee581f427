//! Fuzz target `image_labels`: the body is `sysfile::fuzzing::image_labels` (replayed by tests/fuzz_regressions.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sysfile::fuzzing::run("image_labels", data));
