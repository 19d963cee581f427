//! Fuzz target bodies, shared by the cargo-fuzz targets under `fuzz/` and by
//! `tests/fuzz_regressions.rs`, which replays every input that ever failed.
//!
//! Each body takes arbitrary bytes, runs one input path end to end and checks the
//! invariants the project promises for any input: no panic, every diagnostic inside the file
//! it names, a spec exactly when there is no error, `check` and `llb` agreeing, the same
//! bytes for the same input. A broken invariant panics, which is what fuzzers report.
//!
//! Input layout for the spec targets: the bytes before the first NUL (if any) are options,
//! one `NAME=value` build argument per line; the rest is the Sysfile. So every Sysfile is a
//! valid seed as it is. Adding a target: a function here, an entry in [`TARGETS`], a file
//! `fuzz/fuzz_targets/<name>.rs` calling [`run`], and its `[[bin]]` in `fuzz/Cargo.toml`.

use std::collections::BTreeMap;

use prost::Message as _;

use crate::diag::{self, Diagnostic, Sources};
use crate::distro::Family;
use crate::gateway::options::FrontendOptions;
use crate::spec::{self, LoadOptions, Loaded};

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// Every target: its name (the fuzz target's and the regression directory's) and its body.
pub const TARGETS: &[(&str, Body)] = &[
    ("spec_load", spec_load),
    ("compile", compile),
    ("render", render),
    ("frontend_options", frontend_options),
    ("image_labels", image_labels),
];

/// Runs the target `name` on `data`; an unknown name panics (a wiring mistake, not an input).
pub fn run(name: &str, data: &[u8]) {
    match TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, body)) => body(data),
        None => panic!("no fuzz target named {name}"),
    }
}

/// Splits `options NUL spec` into build arguments and the spec's bytes.
fn split(data: &[u8]) -> (BTreeMap<String, String>, &[u8]) {
    let Some(nul) = data.iter().position(|b| *b == 0) else {
        return (BTreeMap::new(), data);
    };
    let options = String::from_utf8_lossy(&data[..nul]);
    let args = options
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    (args, &data[nul + 1..])
}

/// Loads a spec the way the CLI does: decoded, with includes naming fragments of itself.
fn load(data: &[u8]) -> Loaded {
    let (build_args, bytes) = split(data);
    let (main, not_utf8) = spec::decode_main("Sysfile", bytes.to_vec());
    if let Some(diagnostic) = not_utf8 {
        return Loaded {
            sources: Sources::new(main),
            spec: None,
            diagnostics: vec![diagnostic],
        };
    }
    // Any include resolves to the main text itself: nested, cyclic and merged trees get fuzzed.
    let text = main.text.clone();
    let includes =
        spec::collect_include_files(&main, |_| spec::Fetched::Bytes(text.clone().into_bytes()));
    spec::load(
        main,
        &LoadOptions {
            build_args,
            includes: includes.texts,
            include_errors: includes.errors,
        },
    )
}

/// Checks what every load must satisfy.
fn check_loaded(loaded: &Loaded) {
    let has_error = loaded.diagnostics.iter().any(Diagnostic::is_error);
    assert_eq!(
        loaded.spec.is_some(),
        !has_error,
        "a spec exactly when there is no error"
    );
    check_locations(&loaded.diagnostics, &loaded.sources);
}

/// Every diagnostic (and each related place) lies inside the file it names, on character boundaries.
pub fn check_locations(diagnostics: &[Diagnostic], sources: &Sources) {
    for d in diagnostics {
        let spans = std::iter::once(&d.span).chain(d.related.iter().map(|(span, _)| span));
        for span in spans {
            let file = sources
                .try_get(span.file)
                .unwrap_or_else(|| panic!("{}: names an unknown file", d.code));
            assert!(
                span.start <= span.end && span.end <= file.text.len(),
                "{}: span {}..{} outside {} ({} bytes)",
                d.code,
                span.start,
                span.end,
                file.name,
                file.text.len()
            );
            assert!(
                file.text.is_char_boundary(span.start) && file.text.is_char_boundary(span.end),
                "{}: span {}..{} splits a character",
                d.code,
                span.start,
                span.end
            );
        }
    }
}

/// Spec load: any bytes give diagnostics or a spec, never a panic; locations are valid.
pub fn spec_load(data: &[u8]) {
    let loaded = load(data);
    check_loaded(&loaded);
    if let Some(spec) = &loaded.spec {
        check_locations(&crate::lint::check(spec, &loaded.sources), &loaded.sources);
        let base = crate::lint::BaseResolution::Registry {
            digest: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        };
        check_locations(
            &crate::lint::check_base(spec, &loaded.sources, base),
            &loaded.sources,
        );
        let _ = crate::lint::base_unknown(spec);
    }
}

/// The definition bytes and image config of a loaded spec, for one distribution family.
fn compile_once(loaded: &Loaded, family: Family) -> Option<(Vec<u8>, String)> {
    let spec = loaded.spec.as_ref()?;
    // `check` passed, so `llb` must not fail on the spec: they agree.
    let epoch = match spec.source_date_epoch() {
        Ok(epoch) => epoch,
        Err(d) => panic!("check accepted the spec but llb refuses it: {}", d.message),
    };
    if let Err(e) = crate::reference::Reference::parse(&spec.image.from.value) {
        panic!("check accepted `from` but llb refuses it: {e}");
    }
    let plan = crate::plan::plan(
        spec,
        &crate::plan::BaseFacts::assumed(family),
        crate::plan::Order::Graph,
    );
    // sysfile's own systemd drop-ins never hold a raw line break other than `\n`, nor NUL.
    for step in &plan.steps {
        if let crate::plan::StepKind::Files(files) = &step.kind {
            for file in files {
                if let crate::plan::FileStep::Write { path, data, .. } = file {
                    if path == crate::plan::SYSTEM_DROP_IN || path == crate::plan::JOURNALD_DROP_IN
                    {
                        assert!(
                            !data.iter().any(|b| *b == b'\r' || *b == 0),
                            "a control character reached {path}"
                        );
                    }
                }
            }
        }
    }
    let options = crate::lower::LowerOptions {
        base_ref: spec.image.from.value.clone(),
        base_span: spec.image.from.span,
        context_name: "context".to_string(),
        epoch,
        ..crate::lower::LowerOptions::default()
    };
    let compiled = crate::compile::compile(
        spec,
        &loaded.sources,
        &crate::plan::BaseFacts::assumed(family),
        &options,
    );
    assert_eq!(compiled.plan, plan, "compile plans as plan does");
    let bytes = compiled.definition.encode_to_vec();
    crate::llb::dump::render(&compiled.definition).expect("a definition we made dumps");
    let config = compiled.image_config(
        spec,
        None,
        &crate::image::ImageInputs {
            epoch,
            os: "linux".into(),
            architecture: "amd64".into(),
            ..crate::image::ImageInputs::default()
        },
    );
    Some((bytes, config.to_string()))
}

/// Full compile: spec and options to definition bytes, for every family; twice, same bytes.
pub fn compile(data: &[u8]) {
    let loaded = load(data);
    check_loaded(&loaded);
    for family in [Family::Debian, Family::Fedora, Family::Suse, Family::Arch] {
        let first = compile_once(&loaded, family);
        let again = compile_once(&load(data), family);
        assert_eq!(first, again, "the same input compiles to the same bytes");
    }
    if let Some(spec) = &loaded.spec {
        crate::outline::outline(spec, &loaded.sources);
        crate::outline::targets(spec, &loaded.sources);
    }
}

/// Diagnostics rendering: plain, styled, short, as a gateway Status and Warn requests; also
/// with spans moved by the input's first bytes (renderers clamp what they are given).
pub fn render(data: &[u8]) {
    let loaded = load(data);
    check_loaded(&loaded);
    let mut diagnostics = loaded.diagnostics.clone();
    let shift = data.first().copied().unwrap_or(0) as usize;
    diagnostics.extend(loaded.diagnostics.iter().take(4).map(|d| {
        let mut d = d.clone();
        d.span.start = d.span.start.saturating_add(shift);
        d.span.end = d.span.end.saturating_sub(shift);
        d.related.push((d.span, "moved".into()));
        d
    }));
    for color in [false, true] {
        let out = diag::render(&diagnostics, &loaded.sources, color);
        assert!(diagnostics.is_empty() || !out.is_empty());
    }
    let status = crate::gateway::errors::status_from_diagnostics(&diagnostics, &loaded.sources);
    assert!(!status.message.is_empty());
    for d in &loaded.diagnostics {
        crate::gateway::errors::render_short(d, &loaded.sources);
        crate::gateway::errors::warn_request(d, &loaded.sources, "sha256:00");
    }
    crate::outline::lint_text(&loaded.sources, &loaded.diagnostics);
    crate::outline::lint_result(&loaded.sources, &loaded.diagnostics);
}

/// Frontend option parsing: `key=value` lines as BuildKit's opts, every accessor called.
pub fn frontend_options(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let opts: Vec<(String, String)> = text
        .lines()
        .map(|line| match line.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (line.to_string(), String::new()),
        })
        .collect();
    // As environment variables: `BUILDKIT_*` lines as they are (workers, session), others as opts.
    let env: Vec<(String, String)> = opts
        .iter()
        .enumerate()
        .map(|(i, (k, v))| {
            if k.starts_with("BUILDKIT_") {
                (k.clone(), v.clone())
            } else {
                (format!("BUILDKIT_FRONTEND_OPT_{i}"), format!("{k}={v}"))
            }
        })
        .collect();
    for options in [
        FrontendOptions::from_opts(opts),
        FrontendOptions::from_env(env),
    ] {
        let _ = options.session_id();
        let _ = options.exported_product();
        let _ = options.workers();
        let _ = crate::gateway::request::spec_candidates(&options);
        let _ = options.dockerfile_key();
        let _ = options.context_key();
        let _ = options.build_args();
        let _ = options.labels();
        for platform in options.platforms() {
            let _ = crate::llb::parse_platform(&platform);
        }
        let _ = options.no_cache();
        let _ = options.force_network_mode();
        let _ = options.add_hosts();
        let _ = options.image_resolve_mode();
        let _ = options.cache_imports();
        let _ = options.target();
        let _ = options.request_id();
        let _ = options.frontend_caps();
        let _ = options.local_session("context");
        let _ = options.source_date_epoch();
        for (key, value) in options.all() {
            if key.starts_with("context:") {
                let _ = crate::gateway::contexts::git_context(value);
            }
        }
    }
}

/// A text a launcher prints holds no control character but newlines and no Unicode line or
/// paragraph separator: nothing from a label can move a terminal's cursor or end a YAML line.
fn assert_printable(what: &str, text: &str) {
    let bad = text.chars().find(|c| {
        (c.is_control() && *c != '\n') || matches!(c, '\u{85}' | '\u{2028}' | '\u{2029}')
    });
    assert!(bad.is_none(), "{what} holds {bad:?}: {text:?}");
}

/// Image labels, as `sysfile run`, `sysfile k8s` and `sysfile quadlet` read them from any image:
/// `key NUL value NUL …`. Whatever they hold, every output is printable, the planned flags are
/// never privileged, the manifest stays one document with no host access, and the unit holds
/// only sections, comments and `Key=Value` lines.
pub fn image_labels(data: &[u8]) {
    use crate::runtime::k8s::{self, DEFAULT_KUBE_VERSION, K8sRequest, Userns};
    use crate::runtime::quadlet::{self, QuadletRequest};
    use crate::runtime::{CgroupVersion, Engine, HostFacts, RunRequest, host::CgroupMount};

    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let mut labels = BTreeMap::new();
    while let (Some(key), Some(value)) = (parts.next(), parts.next()) {
        labels.insert(key.to_string(), value.to_string());
    }
    let (_, warnings) = crate::runtime::parse_labels(&labels);
    for warning in &warnings {
        assert_printable("a label warning", &warning.to_string());
    }

    let v1_mounts = ["systemd", "unified", "memory", "devices"]
        .map(|h| CgroupMount {
            path: format!("/sys/fs/cgroup/{h}"),
            fs_type: if h == "unified" { "cgroup2" } else { "cgroup" }.to_string(),
        })
        .to_vec();
    let hosts = [
        (
            Engine::Docker,
            CgroupVersion::V1,
            "26.1.5",
            v1_mounts.clone(),
        ),
        (Engine::Docker, CgroupVersion::V1, "20.10.24", v1_mounts),
        (Engine::Docker, CgroupVersion::V2, "28.1.0", Vec::new()),
        (Engine::Podman, CgroupVersion::V2, "5.4.0", Vec::new()),
    ];
    for (engine, cgroup, version, cgroup_mounts) in hosts {
        let facts = HostFacts {
            engine,
            cgroup,
            cgroup_fs: String::new(),
            engine_version: Some(version.to_string()),
            rootless: false,
            userns: false,
            cgroup_mounts,
        };
        let request = RunRequest {
            program: "docker".to_string(),
            image: "sysfile-example/sshd".to_string(),
            ..RunRequest::default()
        };
        match crate::runtime::plan_run(&labels, &facts, &request) {
            Ok(plan) => {
                let line = plan.command_line();
                assert_printable("the run command", &line);
                assert_printable("--explain", &plan.explain());
                assert!(!line.contains("--privileged"), "{line}");
                assert!(!line.contains("--cap-add"), "{line}");
            }
            Err(refusal) => assert_printable("a refusal", &refusal.0),
        }
    }

    let request = K8sRequest {
        image: "sysfile-example/sshd".to_string(),
        name: None,
        deployment: false,
        replicas: 1,
        kube_version: DEFAULT_KUBE_VERSION,
        userns: Userns::Auto,
        stop_signal: true,
    };
    if let Ok((yaml, _)) = k8s::manifest(&labels, &request) {
        assert_printable("the manifest", &yaml);
        let documents = yaml
            .lines()
            .filter(|l| l.starts_with("apiVersion:"))
            .count();
        assert_eq!(documents, 1, "{yaml}");
        assert!(!yaml.lines().any(|l| l.starts_with("---")), "{yaml}");
        // No line is a key that grants host access (a label's text may mention one inside a
        // quoted scalar, and the header's fixed comments name what is not used).
        for line in yaml.lines() {
            let key = line.trim_start().trim_start_matches("- ");
            for forbidden in ["privileged: true", "hostPID:", "hostPath:", "hostNetwork:"] {
                assert!(!key.starts_with(forbidden), "{forbidden} in {yaml}");
            }
        }
    }
    let request = QuadletRequest {
        image: "sysfile-example/sshd".to_string(),
        name: Some("sshd".to_string()),
    };
    if let Ok(unit) = quadlet::unit(&labels, &request) {
        assert_printable("the quadlet unit", &unit.text);
        // Only the keys the writer knows, and engine arguments only as sysfile spells them. (A
        // label's text may appear inside a value such as `HealthCmd=`, which Podman runs in the
        // container as one command, never as its own flags.)
        const KEYS: &[&str] = &[
            "Description",
            "Image",
            "PodmanArgs",
            "StopSignal",
            "StopTimeout",
            "Tmpfs",
            "HealthCmd",
            "HealthStartPeriod",
            "HealthInterval",
            "HealthTimeout",
            "HealthRetries",
            "TimeoutStopSec",
            "WantedBy",
        ];
        for line in unit.text.lines() {
            let section = line.starts_with('[') && line.ends_with(']');
            if line.is_empty() || line.starts_with('#') || section {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not a unit line: {line:?}"));
            assert!(KEYS.contains(&key), "unknown key in {line:?}");
            if key == "PodmanArgs" {
                assert!(
                    matches!(value, "--systemd=always" | "--systemd=false"),
                    "{line:?}"
                );
            }
        }
    }
}
