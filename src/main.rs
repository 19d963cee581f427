//! The `sysfile` binary: the CLI and the BuildKit frontend entry point.
fn main() {}
