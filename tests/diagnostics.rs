//! Bad specs: each fixture under `fixtures/bad` yields diagnostics, pinned as rendered plain text.
//!
//! A fixture may start with `# build-arg: NAME=value` lines, passed as `--build-arg`s.

use sysfile::diag::{SourceFile, render};
use sysfile::spec::{LoadOptions, load};

fn options_for(text: &str) -> LoadOptions {
    let mut options = LoadOptions::default();
    for line in text.lines() {
        let Some(arg) = line.strip_prefix("# build-arg: ") else {
            break;
        };
        let (name, value) = arg.split_once('=').expect("NAME=value");
        options
            .build_args
            .insert(name.to_string(), value.to_string());
    }
    options
}

#[test]
fn bad_fixtures() {
    insta::glob!("fixtures/bad/*.toml", |path| {
        let text = std::fs::read_to_string(path).unwrap();
        let name = format!("bad/{}", path.file_name().unwrap().to_string_lossy());
        let loaded = load(SourceFile::new(name, text.clone()), &options_for(&text));
        assert!(
            !loaded.diagnostics.is_empty(),
            "{} yields no diagnostic",
            path.display()
        );
        let has_error = loaded.diagnostics.iter().any(|d| d.is_error());
        assert_eq!(
            loaded.spec.is_some(),
            !has_error,
            "spec is Some exactly when there is no error"
        );
        let sorted = loaded
            .diagnostics
            .windows(2)
            .all(|w| (w[0].span.file, w[0].span.start) <= (w[1].span.file, w[1].span.start));
        assert!(sorted, "diagnostics are sorted");
        for d in &loaded.diagnostics {
            assert!(d.help.is_some(), "{} has no help", d.code);
            assert!(
                !d.message.ends_with('.'),
                "{}: message ends with a period",
                d.code
            );
        }
        insta::assert_snapshot!(render(&loaded.diagnostics, &loaded.sources, false));
    });
}

#[test]
fn colored_render_names_the_location() {
    let loaded = load(
        SourceFile::new("Sysfile", "[image]\nfrom = 1\n"),
        &LoadOptions::default(),
    );
    let out = render(&loaded.diagnostics, &loaded.sources, true);
    assert!(out.contains("Sysfile:2:8"), "{out}");
    assert!(out.contains("\u{1b}["), "styled output has escapes");
}

/// Loads `fixtures/include/<case>/Sysfile` with the files it includes read from the case directory.
fn load_include_case(sysfile: &std::path::Path) -> sysfile::spec::Loaded {
    let dir = sysfile.parent().unwrap();
    let main = SourceFile::new("Sysfile", std::fs::read_to_string(sysfile).unwrap());
    let options = LoadOptions {
        includes: sysfile::spec::collect_includes(&main, |path| {
            std::fs::read_to_string(dir.join(path)).ok()
        }),
        ..LoadOptions::default()
    };
    load(main, &options)
}

#[test]
fn include_fixtures() {
    insta::glob!("fixtures/include/*/Sysfile", |path| {
        let case = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy();
        let loaded = load_include_case(path);
        if case.starts_with("merge") {
            assert!(
                loaded.diagnostics.is_empty(),
                "{}",
                render(&loaded.diagnostics, &loaded.sources, false)
            );
            return;
        }
        assert!(
            !loaded.diagnostics.is_empty(),
            "{case} yields no diagnostic"
        );
        assert!(
            loaded.spec.is_none(),
            "{case}: every include case has an error"
        );
        for d in &loaded.diagnostics {
            assert!(d.help.is_some(), "{} has no help", d.code);
            assert!(!d.message.ends_with('.'), "{}: trailing period", d.code);
            assert!(loaded.sources.try_get(d.span.file).is_some());
        }
        insta::assert_snapshot!(render(&loaded.diagnostics, &loaded.sources, false));
    });
}
