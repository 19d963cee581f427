//! The `sysfile` binary: a thin entry point that maps the CLI's outcome to an exit code.

fn main() {
    std::process::exit(sysfile::cli::main());
}
