//! Property tests (proptest) over generated specs: the same bytes twice, `check` and `llb`
//! agree, no panic, and every diagnostic located inside the file it names.
//!
//! Specs are built from pieces of every table with arbitrary strings in the values, plus
//! build arguments `X` and `SOURCE_DATE_EPOCH` set to arbitrary strings, and sometimes raw
//! bytes appended. The bodies are `sysfile::fuzzing`'s, the fuzz targets' own.

use proptest::prelude::*;
use sysfile::diag::{Diagnostic, SourceFile};
use sysfile::spec::{LoadOptions, load};

/// A TOML basic string holding `s` exactly.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A value: often a valid name or path, sometimes spec-like text, sometimes anything.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z][a-z0-9-]{0,8}",
        3 => "/[a-z]{1,8}(/[a-z0-9.]{1,8})?",
        1 => "[0-7]{3,4}|[0-9]{1,3}[smhkg]?",
        2 => "[a-zA-Z0-9./${}_:@=+*!?~ -]{0,16}",
        1 => any::<String>(),
        1 => Just("${X}".to_string()),
    ]
}

fn piece() -> impl Strategy<Value = String> {
    let q = |v: &String| quoted(v);
    prop_oneof![
        value().prop_map(move |v| format!("[[run]]\nsh = {}\n", q(&v))),
        (value(), value()).prop_map(move |(a, b)| format!("[[run]]\nargv = [{}, \"-c\", {}]\n", q(&a), q(&b))),
        (value(), value(), value()).prop_map(move |(a, b, m)| format!("[[files]]\ndest = {}\ncontent = {}\nmode = {}\n", q(&a), q(&b), q(&m))),
        (value(), value()).prop_map(move |(a, b)| format!("[[files]]\nsrc = {}\ndest = {}\n", q(&a), q(&b))),
        (value(), any::<bool>()).prop_map(move |(a, b)| format!("[[files]]\ndest = {}\nremove = {b}\n", q(&a))),
        (value(), value()).prop_map(move |(a, b)| format!("[packages]\ninstall = [{}]\nremove = [{}]\n", q(&a), q(&b))),
        (value(), value(), 0..70000_i64).prop_map(move |(a, b, n)| format!("[[users]]\nname = {}\nuid = {n}\ngroups = [{}]\nauthorized_keys = [{}]\n", q(&a), q(&b), q(&b))),
        (value(), value()).prop_map(move |(a, b)| format!("[[run]]\nsh = \"true\"\nmounts = [{{ type = \"secret\", id = {} }}, {{ type = \"tmpfs\", target = \"/t\", size = {} }}]\n", q(&a), q(&b))),
        (value(), value()).prop_map(move |(a, b)| format!("[[run]]\nsh = \"true\"\nmounts = [{{ type = \"cache\", target = {}, id = {} }}]\n", q(&a), q(&b))),
        (value(), value()).prop_map(move |(a, b)| format!("[config]\nenv = {{ A = {} }}\nlabels = {{ {} = \"x\" }}\nworkdir = {}\n", q(&b), q(&a), q(&a))),
        (value(), value()).prop_map(move |(a, b)| format!("[systemd]\ntarget = {}\nstop_timeout = {}\n", q(&a), q(&b))),
        (value(), value()).prop_map(move |(a, b)| format!("[services]\nenable = [{}]\nmask = [{}]\n", q(&a), q(&b))),
        value().prop_map(move |v| format!("include = [{}]\n", q(&v))),
    ]
}

/// Options (before NUL) and a spec: the layout of the fuzz targets' inputs.
fn input() -> impl Strategy<Value = Vec<u8>> {
    (
        value(),
        value(),
        prop::collection::vec(piece(), 0..5),
        prop_oneof![4 => Just(Vec::new()), 1 => prop::collection::vec(any::<u8>(), 1..3)],
    )
        .prop_map(|(x, epoch, pieces, tail)| {
            let mut out = format!(
                "X={x}\nSOURCE_DATE_EPOCH={epoch}\n\0[image]\nfrom = \"debian:bookworm\"\n[args]\nX = \"\"\nSOURCE_DATE_EPOCH = \"\"\n"
            )
            .replace('\r', "");
            out.push_str(&pieces.concat());
            let mut bytes = out.into_bytes();
            bytes.extend(tail);
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Loading never panics, gives a spec exactly when there is no error, and every
    /// diagnostic lies inside the file it names.
    #[test]
    fn no_panic_and_every_diagnostic_is_located(data in input()) {
        sysfile::fuzzing::spec_load(&data);
        sysfile::fuzzing::render(&data);
    }

    /// Compiling the same input twice gives the same definition bytes and image config,
    /// for every distribution family.
    #[test]
    fn the_same_input_gives_the_same_bytes(data in input()) {
        sysfile::fuzzing::compile(&data);
    }

    /// Whatever `check` accepts, `llb` compiles: the epoch parses, lowering succeeds.
    #[test]
    fn check_and_llb_agree(x in value(), epoch in value(), pieces in prop::collection::vec(piece(), 0..6)) {
        let text = format!(
            "[image]\nfrom = \"debian:bookworm\"\n[args]\nX = \"\"\nSOURCE_DATE_EPOCH = \"\"\n{}",
            pieces.concat()
        );
        let mut options = LoadOptions::default();
        options.build_args.insert("X".into(), x);
        options.build_args.insert("SOURCE_DATE_EPOCH".into(), epoch);
        let loaded = load(SourceFile::new("Sysfile", text), &options);
        let checked = !loaded.diagnostics.iter().any(Diagnostic::is_error);
        prop_assert_eq!(checked, loaded.spec.is_some());
        if let Some(spec) = &loaded.spec {
            prop_assert!(spec.source_date_epoch().is_ok());
            let facts = sysfile::compile::assumed_facts(spec, None);
            let compiled = sysfile::compile::compile(spec, &loaded.sources, &facts, &sysfile::lower::LowerOptions::default());
            prop_assert!(!compiled.definition.def.is_empty());
        }
    }
}
