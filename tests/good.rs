//! Good specs: each loads with no error, and the model is pinned by a snapshot.

use sysfile::diag::{SourceFile, render};
use sysfile::spec::{LoadOptions, load};

fn load_path(path: &std::path::Path) -> sysfile::spec::Loaded {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    load(SourceFile::new(name, text), &LoadOptions::default())
}

#[test]
fn good_fixtures_load() {
    insta::glob!("fixtures/good/*.toml", |path| {
        let loaded = load_path(path);
        assert!(
            loaded.diagnostics.is_empty(),
            "{}",
            render(&loaded.diagnostics, &loaded.sources, false)
        );
        let spec = loaded.spec.expect("a spec");
        insta::assert_debug_snapshot!(spec);
    });
}

#[test]
fn sshd_example_loads_cleanly() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sshd/Sysfile");
    let loaded = load_path(&path);
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        render(&loaded.diagnostics, &loaded.sources, false)
    );
    let spec = loaded.spec.expect("a spec");
    assert_eq!(spec.image.from.value, "local/debian:bookworm");
    assert_eq!(spec.services.enable[0].name, "ssh.service");
    assert_eq!(spec.runs[0].mounts.len(), 2);
}

#[test]
fn build_args_override_defaults() {
    let text = "[image]\nfrom = \"debian:${R}\"\n[args]\n# Release.\nR = \"bookworm\"\n";
    let mut options = LoadOptions::default();
    options.build_args.insert("R".into(), "trixie".into());
    options
        .build_args
        .insert("TARGETARCH".into(), "amd64".into());
    options
        .build_args
        .insert("http_proxy".into(), "http://proxy".into());
    let loaded = load(SourceFile::new("Sysfile", text), &options);
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        render(&loaded.diagnostics, &loaded.sources, false)
    );
    let spec = loaded.spec.unwrap();
    assert_eq!(spec.image.from.value, "debian:trixie");
    assert_eq!(spec.args[0].value, "trixie");
    assert_eq!(spec.args[0].default, "bookworm");
    assert_eq!(spec.args[0].description, "Release.");
}

#[test]
fn warnings_keep_the_spec() {
    let text = "[image]\nfrom = \"debian\"\n";
    let mut options = LoadOptions::default();
    options.build_args.insert("VERSION".into(), "1".into());
    let loaded = load(SourceFile::new("Sysfile", text), &options);
    assert_eq!(loaded.diagnostics.len(), 1);
    assert_eq!(loaded.diagnostics[0].code, "undeclared-build-arg");
    assert!(loaded.spec.is_some());
}
