//! Golden LLB: every example and good fixture compiles to the same decoded graph, byte-identically twice.

use prost::Message as _;
use sysfile::compile::{self, Compiled};
use sysfile::diag::SourceFile;
use sysfile::llb::dump;
use sysfile::lower::{LowerOptions, NamedContext};
use sysfile::network::Network;
use sysfile::spec::{self, LoadOptions};

/// The named build contexts an example's README passes (`--build-context NAME=…`), as the
/// frontend would see them: a directory is a local of the client's session, an image is
/// normalised. Without them `[[files]] from` would copy nothing and a bind mount's `from` would
/// be read as an image reference.
const NAMED_CONTEXTS: &[(&str, &str, &str)] = &[
    ("examples/named-context/Sysfile", "site", "local"),
    (
        "examples/named-context/Sysfile",
        "tools",
        "docker.io/local/debian:bookworm",
    ),
];

fn compile(path: &std::path::Path) -> Compiled {
    let text = std::fs::read_to_string(path).expect("readable spec");
    let main = SourceFile::new("Sysfile", text);
    // Includes are read from the spec's directory, the build context of every example.
    let dir = path.parent().expect("a directory");
    let includes = spec::collect_includes(&main, |p| std::fs::read_to_string(dir.join(p)).ok());
    let load_options = LoadOptions {
        includes,
        ..LoadOptions::default()
    };
    let loaded = spec::load(main, &load_options);
    let spec = loaded
        .spec
        .as_ref()
        .unwrap_or_else(|| panic!("{} has errors: {:?}", path.display(), loaded.diagnostics));
    let options = LowerOptions {
        base_env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        session_id: "session".into(),
        force_network: Network::Host,
        named_contexts: NAMED_CONTEXTS
            .iter()
            .filter(|(spec, _, _)| path.ends_with(spec))
            .map(|(_, name, value)| {
                let context = if *value == "local" {
                    NamedContext::Local {
                        name: (*name).to_string(),
                        session: "session".into(),
                    }
                } else {
                    NamedContext::Image((*value).to_string())
                };
                ((*name).to_string(), context)
            })
            .collect(),
        ..compile::offline_options(spec).expect("a base and epoch llb can use")
    };
    compile::compile(
        spec,
        &loaded.sources,
        &compile::assumed_facts(spec, None),
        &options,
    )
}

#[test]
fn examples_and_good_fixtures_have_golden_llb() {
    let mut paths: Vec<_> = std::fs::read_dir("examples")
        .expect("examples/")
        .filter_map(|e| Some(e.ok()?.path().join("Sysfile")))
        .filter(|p| p.exists())
        .collect();
    paths.extend(
        std::fs::read_dir("tests/fixtures/good")
            .expect("good fixtures")
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml")),
    );
    paths.sort();
    assert!(paths.len() >= 5, "examples and fixtures found: {paths:?}");
    for path in paths {
        let lowered = compile(&path);
        let name = path.display().to_string().replace(['/', '.'], "_");
        insta::assert_snapshot!(name, dump::render(&lowered.definition).expect("decodes"));
    }
}

#[test]
fn compiling_twice_gives_identical_bytes() {
    let a = compile(std::path::Path::new("examples/sshd/Sysfile"))
        .definition
        .encode_to_vec();
    let b = compile(std::path::Path::new("examples/sshd/Sysfile"))
        .definition
        .encode_to_vec();
    assert_eq!(a, b);
}

#[test]
fn every_op_has_a_source_location_and_a_name() {
    let def = compile(std::path::Path::new("examples/sshd/Sysfile")).definition;
    let source = def.source.as_ref().expect("a source map");
    let terminal = def.def.last().map(|b| sysfile::llb::digest(b));
    for bytes in &def.def {
        let digest = sysfile::llb::digest(bytes);
        if Some(&digest) == terminal.as_ref() {
            continue;
        }
        let name = def
            .metadata
            .get(&digest)
            .and_then(|m| m.description.get("llb.customname"));
        assert!(
            name.is_some_and(|n| n.starts_with("[sysfile]")),
            "{digest} has no progress name"
        );
        let is_context = name.is_some_and(|n| n.contains("load build context"));
        assert!(
            is_context || source.locations.contains_key(&digest),
            "{name:?} has no location"
        );
    }
}

/// Every op an entry produces names the line of that entry (the line its source location
/// starts on), so engines that drop source maps from errors still point at the spec; only the
/// steps sysfile adds on its own carry no line.
#[test]
fn step_names_carry_the_line_of_their_location() {
    let mut named = 0;
    for example in ["examples/sshd/Sysfile", "examples/includes/Sysfile"] {
        let def = compile(std::path::Path::new(example)).definition;
        let source = def.source.as_ref().expect("a source map");
        for (digest, locations) in &source.locations {
            let name = def
                .metadata
                .get(digest)
                .and_then(|m| m.description.get("llb.customname"))
                .expect("a located op has a name");
            if name == "[sysfile] systemd configuration; image hygiene" {
                continue;
            }
            let location = &locations.locations[0];
            let file = &source.infos[location.source_index as usize].filename;
            let line = location.ranges[0].start.as_ref().map_or(0, |p| p.line);
            assert!(
                name.ends_with(&format!(" ({file}:{line})")),
                "{example}: `{name}` should end with ({file}:{line})"
            );
            named += 1;
        }
    }
    assert!(named >= 10, "{named} located names checked");
}
