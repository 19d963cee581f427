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

#[test]
fn files_from_a_named_context() {
    let text = "[image]\nfrom = \"debian\"\n\n[[files]]\nsrc = \"app.conf\"\nfrom = \"configs\"\ndest = \"/etc/app/\"\n\n[[files]]\nsrc = \"b.conf\"\ndest = \"/etc/b.conf\"\n";
    let loaded = load(SourceFile::new("Sysfile", text), &LoadOptions::default());
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let spec = loaded.spec.unwrap();
    assert_eq!(spec.files[0].from.as_deref(), Some("configs"));
    assert_eq!(spec.files[0].dest, "/etc/app/app.conf");
    assert_eq!(spec.files[1].from, None);
}

/// Loads `fixtures/include/<case>/Sysfile` with the files it includes read from the case directory.
fn load_include_case(case: &str) -> sysfile::spec::Loaded {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/include")
        .join(case);
    let main = SourceFile::new(
        "Sysfile",
        std::fs::read_to_string(dir.join("Sysfile")).unwrap(),
    );
    let options = LoadOptions {
        includes: sysfile::spec::collect_includes(&main, |path| {
            std::fs::read_to_string(dir.join(path)).ok()
        }),
        ..LoadOptions::default()
    };
    load(main, &options)
}

#[test]
fn includes_merge_in_order() {
    let loaded = load_include_case("merge");
    assert!(
        loaded.diagnostics.is_empty(),
        "{}",
        render(&loaded.diagnostics, &loaded.sources, false)
    );
    let names: Vec<&str> = loaded
        .sources
        .iter()
        .map(|(_, f)| f.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "Sysfile",
            "common.toml",
            "fragments/users.toml",
            "fragments/groups.toml"
        ]
    );
    let spec = loaded.spec.unwrap();
    // The main Sysfile overrides an included scalar.
    assert_eq!(spec.image.from.value, "local/debian:bookworm");
    assert_eq!(spec.image.title.as_deref(), Some("merged"));
    // Lists concatenate in include order, the including file last.
    let install: Vec<&str> = spec
        .packages
        .install
        .iter()
        .map(|p| p.value.as_str())
        .collect();
    assert_eq!(install, ["openssh-server", "sudo", "curl"]);
    let users: Vec<&str> = spec.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(users, ["ops", "admin"]);
    let dests: Vec<&str> = spec.files.iter().map(|f| f.dest.as_str()).collect();
    assert_eq!(dests, ["/opt/app/common", "/etc/main"]);
    // String tables merge, the later file winning.
    let env: std::collections::BTreeMap<&str, &str> = spec
        .config
        .env
        .iter()
        .map(|e| (e.name.value.as_str(), e.value.value.as_str()))
        .collect();
    assert_eq!(env.len(), 2);
    assert_eq!(env["GREETING"], "from main");
    assert_eq!(env["LANG"], "C.UTF-8");
    let team = spec
        .config
        .labels
        .iter()
        .find(|e| e.name.value == "org.example.team");
    assert_eq!(team.map(|e| e.value.value.as_str()), Some("infra"));
    assert_eq!(spec.systemd.stop_timeout.value.as_secs(), 30);
    // Declared in a fragment, described by its comment there.
    assert_eq!(spec.args[0].description, "Where the app lives.");

    // Spans name the file and line they came from.
    let at = |span: sysfile::diag::Span| {
        let file = loaded.sources.get(span.file);
        (file.name.as_str(), file.line_col(span.start).line)
    };
    assert_eq!(at(spec.files[0].span), ("common.toml", 11));
    assert_eq!(at(spec.files[1].span), ("Sysfile", 10));
    assert_eq!(at(spec.users[0].span), ("fragments/groups.toml", 1));
    assert_eq!(at(spec.users[1].span), ("fragments/users.toml", 3));
    assert_eq!(
        at(spec.services.enable[0].span),
        ("fragments/users.toml", 8)
    );
    assert_eq!(
        at(spec.packages.install[1].span),
        ("fragments/groups.toml", 5)
    );
    assert_eq!(at(spec.args[0].span), ("common.toml", 6));
    assert_eq!(at(spec.image.from.span), ("Sysfile", 4));
}

#[test]
fn include_requests_are_tolerant() {
    use sysfile::spec::include_requests;
    let file = SourceFile::new(
        "x",
        "include = [\"a.toml\", 1, \"../b\", \"./c/../d.toml\"]\n",
    );
    let paths: Vec<String> = include_requests(&file)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(paths, ["a.toml", "d.toml"]);
    assert!(include_requests(&SourceFile::new("x", "include = [")).is_empty());
    assert!(include_requests(&SourceFile::new("x", "include = \"a\"")).is_empty());
}

#[test]
fn a_file_included_twice_is_applied_once() {
    let main = SourceFile::new(
        "Sysfile",
        "\u{feff}include = [\"a.toml\", \"b.toml\"]\n[image]\nfrom = \"debian\"\n",
    );
    let mut options = LoadOptions::default();
    for (path, text) in [
        ("a.toml", "include = [\"c.toml\"]\n"),
        ("b.toml", "include = [\"c.toml\"]\n"),
        ("c.toml", "[[users]]\nname = \"ops\"\n"),
    ] {
        options.includes.insert(path.into(), text.into());
    }
    let loaded = load(main, &options);
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    assert_eq!(loaded.spec.unwrap().users.len(), 1);
    assert_eq!(loaded.sources.iter().count(), 4);
}
