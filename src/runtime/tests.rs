//! Unit tests of the pure core: every host case, the systemd-version rules, label parsing and `--explain`.

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The labels sysfile writes for a Debian 12 image.
fn sysfile_labels(systemd: u32) -> Labels {
    labels(&[
        ("sysfile.systemd.boot", "true"),
        ("sysfile.systemd.version", &systemd.to_string()),
        ("sysfile.runtime.tmpfs", "/run:exec,mode=755;/run/lock;/tmp"),
        ("sysfile.runtime.stop-timeout", "30"),
        ("sysfile.health.cmd", "systemctl is-system-running --quiet"),
    ])
}

fn host(engine: Engine, cgroup: CgroupVersion, version: &str) -> HostFacts {
    HostFacts {
        engine,
        cgroup,
        cgroup_fs: match cgroup {
            CgroupVersion::V1 => "tmpfs".into(),
            CgroupVersion::V2 => "cgroup2fs".into(),
        },
        engine_version: Some(version.to_string()),
        rootless: false,
        userns: false,
    }
}

fn docker(cgroup: CgroupVersion, version: &str) -> HostFacts {
    host(Engine::Docker, cgroup, version)
}

fn request() -> RunRequest {
    RunRequest {
        program: "/usr/bin/docker".into(),
        image: "sysfile-example/sshd".into(),
        name: Some("sd".into()),
        extra_args: Vec::new(),
        force_cgroup_v1: false,
    }
}

fn line(l: &Labels, facts: &HostFacts, req: &RunRequest) -> String {
    plan_run(l, facts, req).unwrap().command_line()
}

const COMMON: &str = "/usr/bin/docker run -d -t --init=false --stop-timeout 30 --name sd \
                      --tmpfs /run:exec,mode=755 --tmpfs /run/lock --tmpfs /tmp";

// ---- every host case ---------------------------------------------------------------------------

#[test]
fn v1_docker_20_10() {
    assert_eq!(
        line(
            &sysfile_labels(252),
            &docker(CgroupVersion::V1, "20.10.24+dfsg1"),
            &request()
        ),
        format!("{COMMON} -v /sys/fs/cgroup:/sys/fs/cgroup:rw sysfile-example/sshd")
    );
}

#[test]
fn v1_docker_26() {
    assert_eq!(
        line(
            &sysfile_labels(252),
            &docker(CgroupVersion::V1, "26.1.5+dfsg1"),
            &request()
        ),
        format!("{COMMON} -v /sys/fs/cgroup:/sys/fs/cgroup:rw sysfile-example/sshd")
    );
}

#[test]
fn v1_docker_28_still_binds_rw() {
    assert_eq!(
        line(
            &sysfile_labels(252),
            &docker(CgroupVersion::V1, "28.0.1"),
            &request()
        ),
        format!("{COMMON} -v /sys/fs/cgroup:/sys/fs/cgroup:rw sysfile-example/sshd")
    );
}

#[test]
fn v2_docker_26_uses_host_cgroupns_and_rw_bind() {
    let plan = plan_run(
        &sysfile_labels(257),
        &docker(CgroupVersion::V2, "26.1.5+dfsg1"),
        &request(),
    )
    .unwrap();
    assert_eq!(
        plan.command_line(),
        format!(
            "{COMMON} --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw sysfile-example/sshd"
        )
    );
    let explain = plan.explain();
    assert!(
        explain.contains("exposes the whole host cgroup tree"),
        "{explain}"
    );
    assert!(
        explain.contains("Docker ≥ 28 removes the need"),
        "{explain}"
    );
    assert!(explain.contains("not tested here"), "{explain}");
}

#[test]
fn v2_docker_27_is_still_the_fallback() {
    assert!(
        line(
            &sysfile_labels(252),
            &docker(CgroupVersion::V2, "27.5.1"),
            &request()
        )
        .contains("--cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw")
    );
}

#[test]
fn v2_docker_28_uses_writable_cgroups() {
    let plan = plan_run(
        &sysfile_labels(258),
        &docker(CgroupVersion::V2, "28.0.0"),
        &request(),
    )
    .unwrap();
    assert_eq!(
        plan.command_line(),
        format!(
            "{COMMON} --cgroupns=private --security-opt writable-cgroups=true sysfile-example/sshd"
        )
    );
    assert!(!plan.command_line().contains("/sys/fs/cgroup"));
    assert!(!plan.command_line().contains("privileged"));
    assert!(plan.explain().contains("not tested here"));
}

#[test]
fn v2_docker_29_uses_writable_cgroups() {
    assert!(
        line(
            &sysfile_labels(259),
            &docker(CgroupVersion::V2, "v29.1.0-rc.2"),
            &request()
        )
        .contains("--cgroupns=private --security-opt writable-cgroups=true")
    );
}

#[test]
fn v2_userns_remap_needs_only_tmpfs() {
    for version in ["26.1.5", "28.1.0"] {
        let facts = HostFacts {
            userns: true,
            ..docker(CgroupVersion::V2, version)
        };
        let plan = plan_run(&sysfile_labels(257), &facts, &request()).unwrap();
        assert_eq!(
            plan.command_line(),
            format!("{COMMON} sysfile-example/sshd")
        );
        assert!(plan.notes.iter().any(|n| n.contains("userns-remapped")));
        assert!(plan.explain().contains("userns-remap"));
    }
}

#[test]
fn v2_rootless_needs_only_tmpfs() {
    let facts = HostFacts {
        rootless: true,
        ..docker(CgroupVersion::V2, "28.0.0")
    };
    assert_eq!(
        line(&sysfile_labels(257), &facts, &request()),
        format!("{COMMON} sysfile-example/sshd")
    );
}

#[test]
fn v1_userns_still_binds() {
    let facts = HostFacts {
        userns: true,
        ..docker(CgroupVersion::V1, "26.1.5")
    };
    assert!(
        line(&sysfile_labels(252), &facts, &request())
            .contains("-v /sys/fs/cgroup:/sys/fs/cgroup:rw")
    );
}

#[test]
fn docker_older_than_20_10_is_refused() {
    for cgroup in [CgroupVersion::V1, CgroupVersion::V2] {
        let err = plan_run(
            &sysfile_labels(252),
            &docker(cgroup, "19.03.15"),
            &request(),
        )
        .unwrap_err();
        assert!(err.0.contains("older than 20.10"), "{err}");
    }
}

#[test]
fn unknown_docker_version_assumes_the_fallback_with_a_note() {
    let facts = HostFacts {
        engine_version: Some("dev".into()),
        ..docker(CgroupVersion::V2, "")
    };
    let plan = plan_run(&sysfile_labels(252), &facts, &request()).unwrap();
    assert!(plan.command_line().contains("--cgroupns=host"));
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("could not read the Docker version"))
    );
}

#[test]
fn podman() {
    for cgroup in [CgroupVersion::V1, CgroupVersion::V2] {
        let req = RunRequest {
            program: "podman".into(),
            ..request()
        };
        let plan = plan_run(
            &sysfile_labels(252),
            &host(Engine::Podman, cgroup, "4.3.1"),
            &req,
        )
        .unwrap();
        assert_eq!(
            plan.command_line(),
            "podman run -d -t --systemd=always --stop-timeout 30 --name sd sysfile-example/sshd"
        );
        assert!(!plan.command_line().contains("--tmpfs"));
    }
}

#[test]
fn podman_still_refuses_258_on_v1() {
    let req = RunRequest {
        program: "podman".into(),
        ..request()
    };
    assert!(
        plan_run(
            &sysfile_labels(258),
            &host(Engine::Podman, CgroupVersion::V1, "4.3.1"),
            &req
        )
        .is_err()
    );
}

// ---- systemd version rules -------------------------------------------------------------------

#[test]
fn systemd_252_on_v1_boots() {
    let plan = plan_run(
        &sysfile_labels(252),
        &docker(CgroupVersion::V1, "26.1.5"),
        &request(),
    )
    .unwrap();
    assert!(plan.after_image.is_empty());
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    assert!(plan.command_line().ends_with(" sysfile-example/sshd"));
}

#[test]
fn systemd_255_on_v1_boots() {
    assert!(
        plan_run(
            &sysfile_labels(255),
            &docker(CgroupVersion::V1, "26.1.5"),
            &request()
        )
        .is_ok()
    );
}

#[test]
fn systemd_256_on_v1_needs_force() {
    let facts = docker(CgroupVersion::V1, "26.1.5");
    let err = plan_run(&sysfile_labels(256), &facts, &request()).unwrap_err();
    assert!(err.0.contains("--force-cgroup-v1"), "{err}");
    assert!(err.0.contains("cgroup v1"), "{err}");

    let forced = RunRequest {
        force_cgroup_v1: true,
        ..request()
    };
    for version in [256, 257] {
        let plan = plan_run(&sysfile_labels(version), &facts, &forced).unwrap();
        assert!(
            plan.command_line()
                .ends_with(" sysfile-example/sshd SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1"),
            "{}",
            plan.command_line()
        );
        assert!(plan.warnings.iter().any(|w| w.contains(LEGACY_FORCE_ARG)));
        assert!(
            plan.explain()
                .contains("SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1: ")
        );
    }
}

#[test]
fn systemd_258_on_v1_is_refused_even_when_forced() {
    let facts = docker(CgroupVersion::V1, "26.1.5");
    for force in [false, true] {
        let req = RunRequest {
            force_cgroup_v1: force,
            ..request()
        };
        let err = plan_run(&sysfile_labels(258), &facts, &req).unwrap_err();
        assert_eq!(
            err.0,
            "systemd 258 dropped cgroup v1; this host mounts cgroup v1 at /sys/fs/cgroup; \
             use a cgroup v2 host or a base with systemd ≤ 255"
        );
    }
}

#[test]
fn systemd_258_on_v2_boots() {
    let plan = plan_run(
        &sysfile_labels(258),
        &docker(CgroupVersion::V2, "28.0.0"),
        &request(),
    )
    .unwrap();
    assert!(plan.after_image.is_empty());
}

#[test]
fn force_is_ignored_where_not_needed() {
    let req = RunRequest {
        force_cgroup_v1: true,
        ..request()
    };
    let plan = plan_run(
        &sysfile_labels(256),
        &docker(CgroupVersion::V2, "28.0.0"),
        &req,
    )
    .unwrap();
    assert!(!plan.command_line().contains(LEGACY_FORCE_ARG));
    assert!(plan.notes.iter().any(|n| n.contains("not needed")));
}

#[test]
fn unknown_systemd_version_runs_with_a_note() {
    let mut l = sysfile_labels(252);
    l.remove(SYSTEMD_VERSION_LABEL);
    let plan = plan_run(&l, &docker(CgroupVersion::V1, "26.1.5"), &request()).unwrap();
    assert!(plan.notes.iter().any(|n| n.contains(SYSTEMD_VERSION_LABEL)));
    l.insert(SYSTEMD_VERSION_LABEL.into(), "two-five-two".into());
    let plan = plan_run(&l, &docker(CgroupVersion::V1, "26.1.5"), &request()).unwrap();
    assert!(plan.warnings.iter().any(|w| w.contains("two-five-two")));
}

#[test]
fn v1_support_table() {
    assert_eq!(v1_support(Some(249)), V1Support::Boots);
    assert_eq!(v1_support(Some(255)), V1Support::Boots);
    assert_eq!(v1_support(Some(256)), V1Support::NeedsForce);
    assert_eq!(v1_support(Some(257)), V1Support::NeedsForce);
    assert_eq!(v1_support(Some(258)), V1Support::Never);
    assert_eq!(v1_support(None), V1Support::Unknown);
}

// ---- labels ---------------------------------------------------------------------------------

#[test]
fn tmpfs_label_parsing() {
    let (m, w) = parse_tmpfs("/run:exec,mode=755;/run/lock;/tmp");
    assert!(w.is_empty());
    assert_eq!(
        m.iter().map(TmpfsMount::docker_value).collect::<Vec<_>>(),
        ["/run:exec,mode=755", "/run/lock", "/tmp"]
    );
    assert_eq!(m[0].path, "/run");
    assert_eq!(m[0].options, "exec,mode=755");

    // Empty entries and surrounding spaces are tolerated.
    let (m, w) = parse_tmpfs(" /run ;; /tmp:size=64m ; ");
    assert!(w.is_empty());
    assert_eq!(
        m.iter().map(TmpfsMount::docker_value).collect::<Vec<_>>(),
        ["/run", "/tmp:size=64m"]
    );

    // Empty.
    assert_eq!(parse_tmpfs(""), (Vec::new(), Vec::new()));
    assert_eq!(parse_tmpfs(" ; ;").0, Vec::new());

    // Malformed entries are dropped with a warning each.
    let (m, w) = parse_tmpfs("run;/a b;/x/../y;/c:d:e;/run/;/run;/ok/");
    assert_eq!(
        m.iter().map(TmpfsMount::docker_value).collect::<Vec<_>>(),
        ["/run", "/ok"]
    );
    assert_eq!(w.len(), 5, "{w:?}");
    assert!(w[0].contains("`run`") && w[0].contains("absolute"));
    assert!(w[1].contains("whitespace"));
    assert!(w[2].contains(".."));
    assert!(w[3].contains("more than one"));
    assert!(w[4].contains("repeats"));
}

#[test]
fn tmpfs_label_fallbacks() {
    let default = ["/run:exec,mode=755", "/run/lock", "/tmp"];
    let values = |c: &Contract| {
        c.tmpfs
            .iter()
            .map(TmpfsMount::docker_value)
            .collect::<Vec<_>>()
    };

    let c = contract(&labels(&[("sysfile.systemd.boot", "true")]));
    assert_eq!(values(&c), default);
    assert!(c.warnings.is_empty());

    let c = contract(&labels(&[("sysfile.runtime.tmpfs", "")]));
    assert_eq!(values(&c), default);
    assert!(c.warnings.iter().any(|w| w.contains("no usable tmpfs")));

    let c = contract(&labels(&[(
        "sysfile.runtime.tmpfs",
        "garbage;more garbage",
    )]));
    assert_eq!(values(&c), default);
    assert_eq!(c.warnings.len(), 3);

    let c = contract(&labels(&[("sysfile.runtime.tmpfs", "/tmp")]));
    assert_eq!(values(&c), ["/tmp"]);
    assert!(c.warnings.iter().any(|w| w.contains("no /run entry")));
}

#[test]
fn stop_timeout_label() {
    assert_eq!(contract(&Labels::new()).stop_timeout, 30);
    assert_eq!(
        contract(&labels(&[(STOP_TIMEOUT_LABEL, " 45 ")])).stop_timeout,
        45
    );
    for bad in ["", "0", "-3", "30s", "x"] {
        let c = contract(&labels(&[(STOP_TIMEOUT_LABEL, bad)]));
        assert_eq!(c.stop_timeout, 30, "{bad}");
        assert_eq!(c.warnings.len(), 1, "{bad}");
    }
    let plan = plan_run(
        &labels(&[
            (BOOT_LABEL, "true"),
            (STOP_TIMEOUT_LABEL, "90"),
            (SYSTEMD_VERSION_LABEL, "252"),
        ]),
        &docker(CgroupVersion::V1, "26.1.5"),
        &request(),
    )
    .unwrap();
    assert!(plan.command_line().contains("--stop-timeout 90"));
}

#[test]
fn health_label() {
    assert_eq!(contract(&Labels::new()).health_cmd, None);
    assert_eq!(contract(&labels(&[(HEALTH_LABEL, "  ")])).health_cmd, None);
    assert_eq!(
        contract(&labels(&[(
            HEALTH_LABEL,
            "systemctl is-system-running --quiet"
        )]))
        .health_cmd
        .as_deref(),
        Some("systemctl is-system-running --quiet")
    );
}

#[test]
fn image_not_built_by_sysfile_runs_with_defaults_and_a_note() {
    for l in [Labels::new(), labels(&[(BOOT_LABEL, "false")])] {
        let plan = plan_run(&l, &docker(CgroupVersion::V1, "26.1.5"), &request()).unwrap();
        assert_eq!(
            plan.command_line(),
            format!("{COMMON} -v /sys/fs/cgroup:/sys/fs/cgroup:rw sysfile-example/sshd")
        );
        assert!(
            plan.notes
                .iter()
                .any(|n| n.contains("not built by sysfile"))
        );
        assert!(plan.explain().contains("not built by sysfile"));
    }
}

// ---- argv shape, quoting, --explain -----------------------------------------------------------

#[test]
fn extra_args_go_before_the_image_and_are_quoted() {
    let req = RunRequest {
        name: Some("my box".into()),
        extra_args: vec![
            "-p".into(),
            "2222:22".into(),
            "-e".into(),
            "GREETING=it's here".into(),
            String::new(),
        ],
        ..request()
    };
    let plan = plan_run(
        &sysfile_labels(252),
        &docker(CgroupVersion::V1, "26.1.5"),
        &req,
    )
    .unwrap();
    let argv = plan.argv();
    let image_at = argv
        .iter()
        .position(|a| a == "sysfile-example/sshd")
        .unwrap();
    assert_eq!(
        image_at,
        argv.len() - 1,
        "the image is last: Cmd is not overridden"
    );
    assert_eq!(
        &argv[image_at - 5..image_at],
        ["-p", "2222:22", "-e", "GREETING=it's here", ""]
    );
    let line = plan.command_line();
    assert!(line.contains("--name 'my box'"), "{line}");
    assert!(
        line.ends_with(r"-p 2222:22 -e 'GREETING=it'\''s here' '' sysfile-example/sshd"),
        "{line}"
    );
}

#[test]
fn no_name_means_no_name_flag() {
    let req = RunRequest {
        name: None,
        ..request()
    };
    let plan = plan_run(
        &sysfile_labels(252),
        &docker(CgroupVersion::V1, "26.1.5"),
        &req,
    )
    .unwrap();
    assert!(!plan.args().contains(&"--name".to_string()));
}

#[test]
fn explain_mentions_every_flag_it_emits() {
    let hosts = [
        docker(CgroupVersion::V1, "20.10.24"),
        docker(CgroupVersion::V1, "26.1.5+dfsg1"),
        docker(CgroupVersion::V2, "26.1.5"),
        docker(CgroupVersion::V2, "28.0.0"),
        HostFacts {
            userns: true,
            ..docker(CgroupVersion::V2, "28.0.0")
        },
        host(Engine::Podman, CgroupVersion::V2, "5.4.0"),
    ];
    let forced = RunRequest {
        force_cgroup_v1: true,
        extra_args: vec!["--hostname".into(), "box".into()],
        ..request()
    };
    for facts in &hosts {
        for version in [252, 256] {
            let plan = match plan_run(&sysfile_labels(version), facts, &forced) {
                Ok(plan) => plan,
                Err(err) => panic!("{facts:?} {version}: {err}"),
            };
            let explain = plan.explain();
            assert!(explain.starts_with(&format!("{}\n", plan.command_line())));
            for arg in plan.argv() {
                let mentioned = explain
                    .lines()
                    .skip(1)
                    .any(|l| l.starts_with("  ") && l.contains(&shell::quote(&arg)));
                if arg.starts_with('-')
                    || arg == LEGACY_FORCE_ARG
                    || (arg.starts_with('/') && arg != plan.program)
                {
                    assert!(mentioned, "`{arg}` not explained in:\n{explain}");
                }
            }
            // One reason line per group.
            for group in plan.groups.iter().chain(&plan.after_image) {
                let head = format!("  {}: ", shell::join(&group.args));
                assert!(
                    explain.lines().any(|l| l.starts_with(&head)),
                    "{head} in {explain}"
                );
            }
            assert!(explain.contains("host:\n  cgroup "));
        }
    }
}

#[test]
fn explain_for_this_kind_of_host() {
    let plan = plan_run(
        &sysfile_labels(252),
        &docker(CgroupVersion::V1, "26.1.5+dfsg1"),
        &request(),
    )
    .unwrap();
    let explain = plan.explain();
    assert!(explain.contains(
        "  --tmpfs /run:exec,mode=755: systemd needs /run to be a tmpfs before PID 1 starts; \
         without CAP_SYS_ADMIN it cannot mount it itself"
    ));
    assert!(explain.contains("  -v /sys/fs/cgroup:/sys/fs/cgroup:rw: "));
    assert!(explain.contains("`:ro`"));
    assert!(explain.contains("Docker 26.1.5+dfsg1 (read as 26.1)"));
    assert!(explain.contains("cgroup v1 (/sys/fs/cgroup is tmpfs)"));
    assert!(explain.contains("image: built by sysfile, systemd 252, stop timeout 30 s"));
}
