//! Go byte-exactness: the LLB sysfile emits, checked by BuildKit's own code.
//!
//! `bytecheck` (an oracle built from BuildKit's tree) re-marshals every op with BuildKit's
//! deterministic Go marshaller and compares bytes and digests, and checks that every metadata and
//! source-map key names an op; `buildctl debug dump-llb` decodes the whole definition. Both run
//! on the LLB of every example and good fixture (through `sysfile llb`), and on one graph that
//! uses every op, mount kind and file action the builder can emit.
//!
//! The tools come from `$SYSFILE_BUILDKIT_DIR`, `PATH` or `../shared/tools/buildkit` beside the
//! checkout; without them each test prints a loud SKIPPED line, or fails when
//! `SYSFILE_E2E=required`.

use sysfile_testkit::engines;
use sysfile_testkit::harness;

use harness::repo_root;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use prost::Message as _;
use sysfile::llb::{
    CacheSharing, Chown, CopyOptions, Exec, FileAction, Graph, LocalOptions, Location, Mount,
    MountKind, Network, OpOptions, UserRef,
};

/// `bytecheck` and `buildctl` from the BuildKit directory the engine matrix uses
/// ([`engines::buildkit_dir`]), or None after a loud skip (a failure when
/// `SYSFILE_E2E=required`).
fn tools(test: &str) -> Option<(PathBuf, PathBuf)> {
    let found = engines::buildkit_dir().and_then(|dir| {
        let check = [dir.join("bytecheck/bytecheck"), dir.join("bytecheck")]
            .into_iter()
            .find(|p| p.is_file())?;
        Some((check, dir.join("buildctl")))
    });
    if found.is_none() {
        harness::skip_or_fail(
            test,
            "no bytecheck beside buildctl in $SYSFILE_BUILDKIT_DIR, PATH or ../shared/tools/buildkit",
        );
    }
    found
}

/// Pipes `input` to `program args…`: (exit code, stdout + stderr).
fn pipe(program: &Path, args: &[&str], input: &[u8]) -> (i32, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Both oracles agree with the definition: bytecheck finds no mismatch, dump-llb decodes one
/// JSON object per op. Returns bytecheck's summary line.
fn check_definition(what: &str, definition: &[u8], check: &Path, buildctl: &Path) -> String {
    let (code, report) = pipe(check, &[], definition);
    assert_eq!(
        code, 0,
        "{what}: bytecheck found ops whose bytes differ from BuildKit's marshaller:\n{report}"
    );
    let summary = report
        .lines()
        .find(|l| l.starts_with("SUMMARY"))
        .unwrap_or_else(|| panic!("{what}: no SUMMARY from bytecheck:\n{report}"))
        .to_string();
    assert!(
        summary.contains("det_mismatches=0") && summary.contains("bad_srcmap=0"),
        "{what}: {summary}"
    );
    let (code, dump) = pipe(buildctl, &["debug", "dump-llb"], definition);
    assert_eq!(code, 0, "{what}: buildctl debug dump-llb failed:\n{dump}");
    let ops = sysfile::pb::llb::Definition::decode(definition)
        .expect("our own decoder")
        .def
        .len();
    let objects = dump.lines().filter(|l| l.starts_with('{')).count();
    assert_eq!(
        objects, ops,
        "{what}: dump-llb printed {objects} ops, the definition has {ops}:\n{dump}"
    );
    summary
}

/// Every example and good fixture, compiled by `sysfile llb` as a user would.
#[test]
fn examples_and_fixtures_match_buildkits_marshaller() {
    let Some((check, buildctl)) = tools("examples_and_fixtures_match_buildkits_marshaller") else {
        return;
    };
    let mut specs: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(repo_root().join("examples")).unwrap() {
        let spec = entry.unwrap().path().join("Sysfile");
        if spec.is_file() {
            specs.push(spec);
        }
    }
    for entry in std::fs::read_dir(repo_root().join("tests/fixtures/good")).unwrap() {
        specs.push(entry.unwrap().path());
    }
    specs.sort();
    assert!(specs.len() >= 10, "found only {specs:?}");
    let mut checked = 0;
    for spec in &specs {
        let out = Command::new(env!("CARGO_BIN_EXE_sysfile"))
            .args(["llb", "-f"])
            .arg(spec)
            .args(["--network", "host"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && stderr.contains("cannot resolve the named build context") {
            // Named contexts are the frontend's to resolve; the golden LLB tests and the
            // every-op graph below cover their ops.
            continue;
        }
        assert!(
            out.status.success(),
            "sysfile llb -f {}: {stderr}",
            spec.display()
        );
        let summary = check_definition(&spec.display().to_string(), &out.stdout, &check, &buildctl);
        eprintln!("[bytecheck] {}: {summary}", spec.display());
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} specs were checked");
}

/// One graph with every op kind, every mount kind, every file action and the option variants the
/// builder encodes differently (owners by name and id, timestamps, modes, wildcards, network
/// modes, extra hosts, readonly binds, cache sharing modes, platforms, source locations).
#[test]
fn every_op_the_builder_emits_matches_buildkits_marshaller() {
    let Some((check, buildctl)) = tools("every_op_the_builder_emits_matches_buildkits_marshaller")
    else {
        return;
    };
    let platform = sysfile::llb::parse_platform("linux/arm64/v8").unwrap();
    let mut g = Graph::new(Some(platform));
    let file = g.add_source_file("Sysfile", b"[image]\nfrom = \"x\"\n", "TOML");
    let at = |line| {
        Some(Location {
            source: file,
            start_line: line,
            start_column: 1,
            end_line: line + 1,
            end_column: 4,
        })
    };
    let base = g.image(
        "docker.io/library/debian:bookworm@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        BTreeMap::from([("image.resolvemode".to_string(), "pull".to_string())]),
        OpOptions::named("base").at(at(1)),
    );
    let context = g.local(
        "context",
        &LocalOptions {
            session: "session-id".into(),
            include_patterns: vec!["etc/**".into(), "keys/admin.pub".into()],
            exclude_patterns: vec!["**/*.tmp".into()],
            follow_paths: vec!["etc".into()],
            shared_key_hint: "context".into(),
            differ: Some("none".into()),
        },
        OpOptions::named("context"),
    );
    let git = g.git(
        "github.com/example/repo.git#v1:sub",
        "https://github.com/example/repo.git#v1:sub",
        true,
        OpOptions::named("git"),
    );
    let http = g.http(
        "https://example.com/tool.tar.gz",
        Some("sha256:1111111111111111111111111111111111111111111111111111111111111111"),
        Some("tool.tar.gz"),
        Some(0o755),
        OpOptions::named("http"),
    );
    let owner = Some(Chown {
        user: Some(UserRef::Name("admin".into())),
        group: Some(UserRef::Id(1000)),
    });
    let files = g.file(
        Some(&base),
        vec![
            FileAction::Mkdir {
                path: "/srv/a/b".into(),
                mode: 0o750,
                make_parents: true,
                owner: owner.clone(),
                timestamp: Some(1_700_000_000),
            },
            FileAction::Mkfile {
                path: "/srv/a/b/c".into(),
                mode: 0o640,
                data: b"content\n\0binary".to_vec(),
                owner: None,
                timestamp: None,
            },
            FileAction::Copy {
                from: context.clone(),
                src: "/etc/*.conf".into(),
                dest: "/etc/app/".into(),
                options: CopyOptions {
                    owner: owner.clone(),
                    mode: Some(0o644),
                    follow_symlink: false,
                    dir_copy_contents: false,
                    create_dest_path: true,
                    allow_wildcard: true,
                    allow_empty_wildcard: true,
                    timestamp: Some(1_700_000_000),
                },
            },
            FileAction::Copy {
                from: git.clone(),
                src: "/".into(),
                dest: "/opt/repo".into(),
                options: CopyOptions::default(),
            },
            FileAction::Copy {
                from: http,
                src: "/tool.tar.gz".into(),
                dest: "/opt/tool.tar.gz".into(),
                options: CopyOptions::default(),
            },
            FileAction::Rm {
                path: "/srv/a/*.old".into(),
                allow_not_found: true,
                allow_wildcard: true,
            },
            FileAction::Symlink {
                target: "/srv/a/b/c".into(),
                link: "/srv/link".into(),
                owner,
                timestamp: Some(0),
            },
        ],
        OpOptions::named("files").at(at(2)),
    );
    let mut outputs = BTreeMap::new();
    for (network, sharing) in [
        (Network::Default, CacheSharing::Shared),
        (Network::Host, CacheSharing::Private),
        (Network::None, CacheSharing::Locked),
    ] {
        outputs = g.exec(
            Exec {
                args: vec!["/bin/sh".into(), "-c".into(), "true".into()],
                env: vec!["PATH=/usr/bin:/bin".into(), "SYSTEMD_OFFLINE=1".into()],
                cwd: "/srv".into(),
                user: "admin".into(),
                network,
                extra_hosts: vec![("registry.local".into(), "10.0.0.1".into())],
                hostname: "builder".into(),
                remove_mount_stubs_recursive: true,
                mounts: vec![
                    Mount::root(files.clone()),
                    Mount::tmpfs("/run"),
                    Mount {
                        dest: "/tmp".into(),
                        kind: MountKind::Tmpfs { size: 64 << 20 },
                    },
                    Mount {
                        dest: "/var/cache/apt".into(),
                        kind: MountKind::Cache {
                            id: "apt".into(),
                            sharing,
                        },
                    },
                    Mount {
                        dest: "/src".into(),
                        kind: MountKind::Bind {
                            input: Some(context.clone()),
                            selector: "/etc".into(),
                            readonly: true,
                            output: false,
                        },
                    },
                    Mount {
                        dest: "/report".into(),
                        kind: MountKind::Bind {
                            input: None,
                            selector: String::new(),
                            readonly: false,
                            output: true,
                        },
                    },
                    Mount {
                        dest: "/run/secrets/token".into(),
                        kind: MountKind::Secret {
                            id: "token".into(),
                            uid: 1000,
                            gid: 1000,
                            mode: 0o400,
                            optional: true,
                        },
                    },
                    Mount {
                        dest: "/run/ssh-agent".into(),
                        kind: MountKind::Ssh {
                            id: "default".into(),
                            uid: 0,
                            gid: 0,
                            mode: 0o600,
                            optional: false,
                        },
                    },
                ],
            },
            OpOptions::named("run")
                .at(at(3))
                .ignore_cache(network == Network::None),
        );
    }
    let root = outputs["/"].clone();
    let merged = g.merge(
        &[root, outputs["/report"].clone(), git],
        OpOptions::named("merge"),
    );
    let definition = g.finish(&merged).encode_to_vec();
    let summary = check_definition("every-op graph", &definition, &check, &buildctl);
    for kind in [
        "exec:3",
        "merge:1",
        "source(docker-image://",
        "source(local://context)",
        "source(git://",
        "source(https://",
        "file[mkdir,mkfile,copy,copy,copy,rm,symlink]",
    ] {
        assert!(summary.contains(kind), "the graph lacks {kind}: {summary}");
    }
}
