//! Every input a fuzz target ever failed on, replayed: `fuzz/regressions/<target>/*` through
//! the same body the fuzz target runs (`sysfile::fuzzing`). A new crash found by
//! `scripts/fuzz` is copied there and stays a test for good.

use std::path::Path;

#[test]
fn every_regression_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut ran = 0;
    for (name, body) in sysfile::fuzzing::TARGETS {
        let dir = root.join(name);
        if !dir.is_dir() {
            // A target nothing has failed on yet.
            continue;
        }
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file() && path.file_name().is_some_and(|n| n != ".gitkeep"))
            .collect();
        inputs.sort();
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(outcome.is_ok(), "{} fails target {name}", input.display());
            ran += 1;
        }
    }
    assert!(ran > 0, "the regression corpus is empty");
}

#[test]
fn every_regression_directory_names_a_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for entry in std::fs::read_dir(root).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            sysfile::fuzzing::TARGETS.iter().any(|(n, _)| *n == name),
            "fuzz/regressions/{name} is not a fuzz target"
        );
    }
}

#[test]
fn the_fuzz_crate_lists_every_target() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/Cargo.toml"))
            .unwrap();
    for (name, _) in sysfile::fuzzing::TARGETS {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] for {name}"
        );
        let file =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("fuzz/fuzz_targets/{name}.rs"));
        assert!(file.is_file(), "{} is missing", file.display());
    }
}
