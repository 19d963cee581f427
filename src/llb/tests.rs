//! Builder tests: structure, de-duplication, determinism and source maps.

use super::*;

fn graph() -> Graph {
    Graph::new(Some(pb::Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    }))
}

#[test]
fn identical_ops_are_stored_once_and_the_terminal_op_is_last() {
    let mut g = graph();
    let a = g.image(
        "docker.io/library/alpine:latest",
        BTreeMap::new(),
        OpOptions::named("base"),
    );
    let b = g.image(
        "docker.io/library/alpine:latest",
        BTreeMap::new(),
        OpOptions::named("base"),
    );
    assert_eq!(a, b);
    let def = g.finish(&a);
    assert_eq!(def.def.len(), 2);
    let terminal = encode::decode_op(def.def.last().unwrap()).unwrap();
    assert_eq!(terminal.inputs[0].digest, a.digest);
    assert_eq!(
        a.digest,
        "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51"
    );
}

#[test]
fn exec_sorts_mounts_numbers_outputs_and_dedups_inputs() {
    let mut g = graph();
    let base = g.image(
        "docker.io/library/debian:12",
        BTreeMap::new(),
        OpOptions::default(),
    );
    let outputs = g.exec(
        Exec {
            args: vec!["true".into()],
            mounts: vec![
                Mount::tmpfs("/tmp"),
                Mount {
                    dest: "/src".into(),
                    kind: MountKind::Bind {
                        input: Some(base.clone()),
                        selector: "/etc".into(),
                        readonly: true,
                        output: false,
                    },
                },
                Mount::root(base.clone()),
                Mount {
                    dest: "/var/cache/apt".into(),
                    kind: MountKind::Cache {
                        id: "apt".into(),
                        sharing: CacheSharing::Locked,
                    },
                },
            ],
            ..Exec::default()
        },
        OpOptions::named("run"),
    );
    assert_eq!(outputs.len(), 1);
    let root = &outputs["/"];
    assert_eq!(root.index, 0);
    let def = g.finish(root);
    let op = encode::decode_op(&def.def[1]).unwrap();
    assert_eq!(op.inputs.len(), 1, "the same input is listed once");
    let Some(pb::op::Op::Exec(exec)) = op.op else {
        panic!("not an exec")
    };
    let dests: Vec<&str> = exec.mounts.iter().map(|m| m.dest.as_str()).collect();
    assert_eq!(dests, ["/", "/src", "/tmp", "/var/cache/apt"]);
    assert_eq!(exec.mounts[2].input, -1);
    assert_eq!(
        exec.mounts[3].cache_opt.as_ref().unwrap().sharing,
        pb::CacheSharingOpt::Locked as i32
    );
    assert_eq!(exec.meta.unwrap().cwd, "/");
}

#[test]
fn file_actions_chain_and_only_the_last_has_an_output() {
    let mut g = graph();
    let base = g.image(
        "docker.io/library/debian:12",
        BTreeMap::new(),
        OpOptions::default(),
    );
    let ctx = g.local(
        "context",
        &LocalOptions {
            session: "s".into(),
            ..Default::default()
        },
        OpOptions::default(),
    );
    let out = g.file(
        Some(&base),
        vec![
            FileAction::Mkdir {
                path: "/etc/x".into(),
                mode: 0o755,
                make_parents: true,
                owner: None,
                timestamp: None,
            },
            FileAction::Copy {
                from: ctx,
                src: "/a".into(),
                dest: "/etc/x/a".into(),
                options: CopyOptions::default(),
            },
            FileAction::Rm {
                path: "/run/*".into(),
                allow_not_found: true,
                allow_wildcard: true,
            },
        ],
        OpOptions::default(),
    );
    let def = g.finish(&out);
    let op = encode::decode_op(&def.def[2]).unwrap();
    let Some(pb::op::Op::File(file)) = op.op else {
        panic!("not a file op")
    };
    let io: Vec<(i64, i64, i64)> = file
        .actions
        .iter()
        .map(|a| (a.input, a.secondary_input, a.output))
        .collect();
    assert_eq!(io, [(0, -1, -1), (2, 1, -1), (3, -1, 0)]);
    assert!(
        def.metadata[&out.digest]
            .caps
            .contains_key("file.rm.wildcard")
    );
}

#[test]
fn same_graph_twice_gives_identical_bytes() {
    let build = || {
        let mut g = graph();
        let base = g.image(
            "docker.io/library/debian:12",
            BTreeMap::from([("image.resolvemode".into(), "default".into())]),
            OpOptions::named("base"),
        );
        let out = g.exec(
            Exec {
                args: vec!["sh".into(), "-c".into(), "echo hi".into()],
                env: vec!["A=1".into()],
                mounts: vec![Mount::root(base)],
                ..Exec::default()
            },
            OpOptions::named("run").at(Some(Location {
                source: 0,
                start_line: 3,
                start_column: 1,
                end_line: 4,
                end_column: 1,
            })),
        );
        let mut g2 = g;
        g2.add_source_file("Sysfile", b"x", "TOML");
        let def = g2.finish(&out["/"]);
        def.encode_to_vec()
    };
    use prost::Message;
    assert_eq!(build(), build());
}

#[test]
fn locations_are_keyed_by_op_digest() {
    let mut g = graph();
    let idx = g.add_source_file("Sysfile", b"[image]\nfrom = \"x\"\n", "TOML");
    let loc = Location {
        source: idx,
        start_line: 2,
        start_column: 1,
        end_line: 2,
        end_column: 11,
    };
    let base = g.image(
        "docker.io/library/x:latest",
        BTreeMap::new(),
        OpOptions::named("base").at(Some(loc)),
    );
    let def = g.finish(&base);
    let source = def.source.unwrap();
    assert_eq!(source.infos[0].language, "TOML");
    let ranges = &source.locations[&base.digest].locations[0].ranges[0];
    assert_eq!(ranges.start.unwrap().line, 2);
}
