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

#[test]
fn remote_sources_carry_their_attrs_and_no_platform() {
    let mut g = graph();
    let git = g.git(
        "github.com/example/repo.git#main",
        "https://github.com/example/repo.git#main",
        true,
        OpOptions::default(),
    );
    let http = g.http(
        "https://example.com/a.tar",
        Some("sha256:abc"),
        Some("a.tar"),
        Some(0o644),
        OpOptions::default(),
    );
    let merged = g.merge(&[git.clone(), http.clone()], OpOptions::named("merge"));
    let def = g.finish(&merged);
    let ops: Vec<pb::Op> = def
        .def
        .iter()
        .map(|b| encode::decode_op(b).unwrap())
        .collect();
    let Some(pb::op::Op::Source(git_op)) = &ops[0].op else {
        panic!("git source")
    };
    assert_eq!(git_op.identifier, "git://github.com/example/repo.git#main");
    assert_eq!(git_op.attrs["git.keepgitdir"], "true");
    assert!(ops[0].platform.is_none());
    let Some(pb::op::Op::Source(http_op)) = &ops[1].op else {
        panic!("http source")
    };
    assert_eq!(http_op.attrs["http.perm"], "0644");
    assert_eq!(http_op.attrs["http.checksum"], "sha256:abc");
    let Some(pb::op::Op::Merge(merge)) = &ops[2].op else {
        panic!("merge")
    };
    assert_eq!(merge.inputs.len(), 2);
    assert!(def.metadata[&merged.digest].caps.contains_key("mergeop"));
}

#[test]
fn secret_and_ssh_mounts_have_no_input_or_output() {
    let mut g = graph();
    let base = g.image(
        "docker.io/library/debian:12",
        BTreeMap::new(),
        OpOptions::default(),
    );
    let out = g.exec(
        Exec {
            args: vec!["true".into()],
            mounts: vec![
                Mount::root(base),
                Mount {
                    dest: "/run/secrets/token".into(),
                    kind: MountKind::Secret {
                        id: "token".into(),
                        uid: 0,
                        gid: 0,
                        mode: 0o400,
                        optional: false,
                    },
                },
                Mount {
                    dest: "/run/buildkit/ssh_agent.0".into(),
                    kind: MountKind::Ssh {
                        id: "default".into(),
                        uid: 0,
                        gid: 0,
                        mode: 0o600,
                        optional: true,
                    },
                },
            ],
            ..Exec::default()
        },
        OpOptions::default(),
    );
    let def = g.finish(&out["/"]);
    let op = encode::decode_op(&def.def[1]).unwrap();
    let Some(pb::op::Op::Exec(exec)) = op.op else {
        panic!("exec")
    };
    for m in &exec.mounts[1..] {
        assert_eq!((m.input, m.output), (-1, -1), "{}", m.dest);
    }
    assert_eq!(
        exec.mounts
            .iter()
            .find(|m| m.dest == "/run/secrets/token")
            .unwrap()
            .secret_opt
            .as_ref()
            .unwrap()
            .mode,
        0o400
    );
    let caps = &def.metadata[&out["/"].digest].caps;
    assert!(caps.contains_key("exec.mount.secret") && caps.contains_key("exec.mount.ssh"));
}

#[test]
fn symlinks_and_chown_by_name_refer_to_the_action_input() {
    let mut g = graph();
    let base = g.image(
        "docker.io/library/debian:12",
        BTreeMap::new(),
        OpOptions::default(),
    );
    let out = g.file(
        Some(&base),
        vec![
            FileAction::Mkfile {
                path: "/etc/a".into(),
                mode: 0o600,
                data: b"x".to_vec(),
                owner: Some(Chown {
                    user: Some(UserRef::Name("admin".into())),
                    group: Some(UserRef::Id(27)),
                }),
                timestamp: None,
            },
            FileAction::Symlink {
                target: "/etc/a".into(),
                link: "/etc/b".into(),
                owner: None,
                timestamp: None,
            },
        ],
        OpOptions::default(),
    );
    let def = g.finish(&out);
    let op = encode::decode_op(&def.def[1]).unwrap();
    let Some(pb::op::Op::File(file)) = op.op else {
        panic!("file op")
    };
    let Some(pb::file_action::Action::Mkfile(mkfile)) = &file.actions[0].action else {
        panic!("mkfile")
    };
    let owner = mkfile.owner.as_ref().unwrap();
    assert_eq!(
        owner.user.as_ref().unwrap().user,
        Some(pb::user_opt::User::ByName(pb::NamedUserOpt {
            name: "admin".into(),
            input: 0
        }))
    );
    assert_eq!(
        owner.group.as_ref().unwrap().user,
        Some(pb::user_opt::User::ById(27))
    );
    assert!(matches!(
        file.actions[1].action,
        Some(pb::file_action::Action::Symlink(_))
    ));
    assert!(
        def.metadata[&out.digest]
            .caps
            .contains_key("file.symlink.create")
    );
}
