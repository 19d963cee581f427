//! Unit tests of the pure core: every host case, the systemd-version rules, label parsing and `--explain`.

use super::host::CgroupMount;
use super::labels::*;
use super::rules::*;
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
        cgroup_mounts: match cgroup {
            CgroupVersion::V1 => hybrid_mounts(),
            CgroupVersion::V2 => Vec::new(),
        },
    }
}

/// The hierarchies of a Debian 11 style hybrid cgroup v1 host.
fn hybrid_mounts() -> Vec<CgroupMount> {
    [
        ("unified", "cgroup2"),
        ("systemd", "cgroup"),
        ("cpu,cpuacct", "cgroup"),
        ("memory", "cgroup"),
        ("pids", "cgroup"),
    ]
    .iter()
    .map(|(name, fs)| CgroupMount {
        path: format!("/sys/fs/cgroup/{name}"),
        fs_type: fs.to_string(),
    })
    .collect()
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
        v1_cgroup_mounts: V1CgroupMounts::TreeRw,
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
    assert!(!explain.contains("writable-cgroups"), "{explain}");
    assert!(explain.contains("--cgroupns=private alone makes systemd exit 255"));
    assert!(explain.contains("systemd 257 on cgroup v2: boots (measured"));
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

/// Docker ≥ 28's `writable-cgroups` option is not measured by the host matrix, so it is only
/// mentioned, never planned: the measured recipe is used on every Docker.
#[test]
fn v2_docker_28_and_later_use_the_measured_recipe() {
    for version in ["28.0.0", "v29.1.0-rc.2"] {
        let plan = plan_run(
            &sysfile_labels(258),
            &docker(CgroupVersion::V2, version),
            &request(),
        )
        .unwrap();
        assert_eq!(
            plan.command_line(),
            format!(
                "{COMMON} --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw sysfile-example/sshd"
            ),
            "Docker {version}"
        );
        assert!(!plan.command_line().contains("privileged"));
        assert!(
            plan.explain()
                .contains("that one has not been measured yet"),
            "{}",
            plan.explain()
        );
    }
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
fn podman_passes_only_the_tmpfs_systemd_mode_does_not_make() {
    let mut l = sysfile_labels(252);
    l.insert(TMPFS_LABEL.into(), "/run:exec;/var/cache/x:size=8m".into());
    let plan = plan_run(
        &l,
        &host(Engine::Podman, CgroupVersion::V2, "5.4.0"),
        &RunRequest {
            program: "podman".into(),
            ..request()
        },
    )
    .unwrap();
    assert_eq!(
        plan.command_line(),
        "podman run -d -t --systemd=always --stop-timeout 30 --name sd \
         --tmpfs /var/cache/x:size=8m sysfile-example/sshd"
    );
}

#[test]
fn podman_without_the_boot_label_gets_no_systemd_mode() {
    let plan = plan_run(
        &Labels::new(),
        &host(Engine::Podman, CgroupVersion::V2, "5.4.0"),
        &RunRequest {
            program: "podman".into(),
            ..request()
        },
    )
    .unwrap();
    assert_eq!(
        plan.command_line(),
        "podman run -d -t --systemd=false --stop-timeout 30 --name sd --tmpfs /run:exec,mode=755 \
         --tmpfs /run/lock --tmpfs /tmp sysfile-example/sshd"
    );
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
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    assert!(plan.command_line().ends_with(" sysfile-example/sshd"));
}

/// Measured: systemd 257 (trixie) boots on the cgroup v1 hybrid host with the ordinary flags.
#[test]
fn systemd_256_and_257_on_v1_boot_without_force() {
    let facts = docker(CgroupVersion::V1, "26.1.5");
    for version in [255, 256, 257] {
        let plan = plan_run(&sysfile_labels(version), &facts, &request()).unwrap();
        assert_eq!(
            plan.command_line(),
            format!("{COMMON} -v /sys/fs/cgroup:/sys/fs/cgroup:rw sysfile-example/sshd"),
            "{version}"
        );
        assert!(!plan.command_line().contains("LEGACY_FORCE"));
        assert!(plan.warnings.is_empty(), "{version}: {:?}", plan.warnings);
    }
}

/// Measured: systemd 262 exits 255 on cgroup v1; upstream removed v1 in 258.
#[test]
fn systemd_258_and_later_on_v1_is_refused_even_when_forced() {
    let facts = docker(CgroupVersion::V1, "26.1.5");
    for version in [258, 262] {
        for force in [false, true] {
            let req = RunRequest {
                force_cgroup_v1: force,
                ..request()
            };
            let err = plan_run(&sysfile_labels(version), &facts, &req).unwrap_err();
            assert!(
                err.0.starts_with(&format!(
                    "systemd {version} cannot boot on this host, which mounts cgroup v1"
                )),
                "{err}"
            );
            assert!(
                err.0
                    .contains("the highest systemd observed to boot on cgroup v1 is 257"),
                "{err}"
            );
            assert!(err.0.contains("use a cgroup v2 host"), "{err}");
        }
    }
}

#[test]
fn systemd_262_on_v2_boots() {
    for version in ["26.1.5", "28.0.0"] {
        assert!(
            plan_run(
                &sysfile_labels(262),
                &docker(CgroupVersion::V2, version),
                &request(),
            )
            .is_ok()
        );
    }
}

#[test]
fn force_has_no_effect() {
    let req = RunRequest {
        force_cgroup_v1: true,
        ..request()
    };
    for cgroup in [CgroupVersion::V1, CgroupVersion::V2] {
        let forced = plan_run(&sysfile_labels(257), &docker(cgroup, "26.1.5"), &req).unwrap();
        let plain = plan_run(&sysfile_labels(257), &docker(cgroup, "26.1.5"), &request()).unwrap();
        assert_eq!(forced.argv(), plain.argv());
        assert!(forced.notes.iter().any(|n| n.contains("has no effect")));
    }
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
    // A version label that is not a number never leads to a refusal.
    for bad in ["258x", "9999999999", "-1", "0x102", "  262abc"] {
        l.insert(SYSTEMD_VERSION_LABEL.into(), bad.into());
        assert!(
            plan_run(&l, &docker(CgroupVersion::V1, "26.1.5"), &request()).is_ok(),
            "{bad:?}"
        );
    }
}

#[test]
fn the_cgroup_label_is_never_read() {
    let mut l = sysfile_labels(262);
    l.insert("sysfile.systemd.cgroup".into(), "v1,v2".into());
    assert!(plan_run(&l, &docker(CgroupVersion::V1, "26.1.5"), &request()).is_err());
    let mut l = sysfile_labels(252);
    l.insert("sysfile.systemd.cgroup".into(), "v2".into());
    assert!(plan_run(&l, &docker(CgroupVersion::V1, "26.1.5"), &request()).is_ok());
}

#[test]
fn boot_rules_table() {
    use CgroupVersion::{V1, V2};
    let verdict = |engine, cgroup, v| boot_rule(engine, cgroup, v).map(|r| r.verdict);
    for engine in [Engine::Docker, Engine::Podman] {
        for v in [1, 219, 249, 252, 255, 256, 257] {
            assert_eq!(verdict(engine, V1, v), Some(Verdict::Boot), "{v}");
        }
        for v in [258, 262, 9999, u32::MAX] {
            assert!(
                matches!(verdict(engine, V1, v), Some(Verdict::Refuse(_))),
                "{v}"
            );
        }
        for v in [1, 252, 257, 258, 262, u32::MAX] {
            assert_eq!(verdict(engine, V2, v), Some(Verdict::Boot), "{v}");
        }
    }
    assert_eq!(HIGHEST_V1_BOOTED, 257);
    // Every row's range is non-empty and no two rows for the same cgroup overlap.
    for (i, a) in BOOT_RULES.iter().enumerate() {
        assert!(!a.systemd.is_empty());
        for b in &BOOT_RULES[i + 1..] {
            if a.cgroup == b.cgroup
                && (a.engine.is_none() || b.engine.is_none() || a.engine == b.engine)
            {
                assert!(
                    a.systemd.end() < b.systemd.start() || b.systemd.end() < a.systemd.start(),
                    "{a:?} overlaps {b:?}"
                );
            }
        }
    }
}

// ---- cgroup v1 mounts: the least-privilege default and the whole-tree fallback ------------------

#[test]
fn v1_default_is_the_systemd_hierarchy_alone() {
    assert_eq!(DEFAULT_V1_CGROUP_MOUNTS, V1CgroupMounts::SystemdRw);
    assert_eq!(V1CgroupMounts::default(), V1CgroupMounts::SystemdRw);
}

#[test]
fn v1_systemd_rw_on_a_hybrid_host() {
    let req = RunRequest {
        v1_cgroup_mounts: V1CgroupMounts::SystemdRw,
        ..request()
    };
    let plan = plan_run(
        &sysfile_labels(257),
        &docker(CgroupVersion::V1, "26.1.5"),
        &req,
    )
    .unwrap();
    assert_eq!(
        plan.command_line(),
        format!(
            "{COMMON} --mount type=bind,src=/sys/fs/cgroup/systemd,dst=/sys/fs/cgroup/systemd \
             sysfile-example/sshd"
        )
    );
    // Neither the whole tree nor the unified hierarchy: systemd 252 and 257 boot without them.
    assert!(!plan.command_line().contains(":rw"));
    assert!(!plan.command_line().contains("unified"));
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    let explain = plan.explain();
    assert!(explain.contains("hierarchy alone is bound read-write"));
    assert!(explain.contains("cannot move a process out of its limits"));
    assert!(
        explain.contains("cgroup v1 hierarchies: unified systemd cpu,cpuacct memory pids (hybrid")
    );
}

#[test]
fn v1_systemd_rw_on_docker_20_10_and_without_a_systemd_hierarchy() {
    let req = RunRequest {
        v1_cgroup_mounts: V1CgroupMounts::SystemdRw,
        ..request()
    };
    let mut facts = docker(CgroupVersion::V1, "20.10.24");
    facts.cgroup_mounts.retain(|m| !m.path.ends_with("unified"));
    let plan = plan_run(&sysfile_labels(252), &facts, &req).unwrap();
    assert!(!plan.command_line().contains("unified"));
    assert!(plan.command_line().contains("dst=/sys/fs/cgroup/systemd "));
    assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);

    facts.cgroup_mounts.clear();
    let err = plan_run(&sysfile_labels(252), &facts, &req).unwrap_err();
    assert!(err.0.contains("name=systemd hierarchy"), "{err}");
}

#[test]
fn images_without_the_boot_label_get_no_cgroup_write_access() {
    for facts in [
        docker(CgroupVersion::V1, "20.10.24"),
        docker(CgroupVersion::V1, "26.1.5"),
        docker(CgroupVersion::V2, "26.1.5"),
        docker(CgroupVersion::V2, "28.0.0"),
        host(Engine::Podman, CgroupVersion::V2, "5.4.0"),
    ] {
        for mounts in [V1CgroupMounts::TreeRw, V1CgroupMounts::SystemdRw] {
            for l in [
                Labels::new(),
                labels(&[(BOOT_LABEL, "false")]),
                labels(&[(BOOT_LABEL, "yes")]),
                labels(&[(BOOT_LABEL, "true\n")]),
            ] {
                let req = RunRequest {
                    v1_cgroup_mounts: mounts,
                    ..request()
                };
                let plan = plan_run(&l, &facts, &req).unwrap();
                let line = plan.command_line();
                if l.get(BOOT_LABEL).map(String::as_str) == Some("true\n") {
                    // Surrounding whitespace is trimmed: still a boot image.
                    assert!(
                        line.contains("cgroup") || line.contains("--systemd=always"),
                        "{line}"
                    );
                    continue;
                }
                assert!(!line.contains("cgroup"), "{line}");
                assert!(!line.contains("writable"), "{line}");
                assert!(!line.contains("--systemd=always"), "{line}");
                if facts.engine == Engine::Podman {
                    assert!(line.contains(" --systemd=false "), "{line}");
                }
                assert!(
                    plan.notes
                        .iter()
                        .any(|n| n.contains("no cgroup write access"))
                );
            }
        }
    }
}

// ---- labels ---------------------------------------------------------------------------------

fn tmpfs_values(m: &[TmpfsMount]) -> Vec<String> {
    m.iter().map(TmpfsMount::docker_value).collect()
}

#[test]
fn tmpfs_label_parsing() {
    let (m, w) = parse_tmpfs("/run:exec,mode=755;/run/lock;/tmp");
    assert!(w.is_empty());
    assert_eq!(
        tmpfs_values(&m),
        ["/run:exec,mode=755", "/run/lock", "/tmp"]
    );
    assert_eq!(m[0].path, "/run");
    assert_eq!(m[0].options, [TmpfsOption::Exec, TmpfsOption::Mode(0o755)]);

    // Empty entries and surrounding spaces are tolerated.
    let (m, w) = parse_tmpfs(" /run ;; /tmp:size=64m ; ");
    assert!(w.is_empty());
    assert_eq!(tmpfs_values(&m), ["/run", "/tmp:size=64m"]);
    assert_eq!(m[1].size_bytes(), Some(64 << 20));

    // Every allowed option.
    let (m, w) = parse_tmpfs("/srv:noexec,nosuid,nodev,mode=1777,size=16g,uid=1000,gid=0");
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        tmpfs_values(&m),
        ["/srv:noexec,nosuid,nodev,mode=1777,size=16g,uid=1000,gid=0"]
    );

    // Empty.
    assert_eq!(parse_tmpfs(""), (Vec::new(), Vec::new()));
    assert_eq!(parse_tmpfs(" ; ;").0, Vec::new());
}

#[test]
fn tmpfs_bad_paths_are_dropped() {
    let cases = [
        ("run", "is not absolute"),
        ("/", "is `/`"),
        ("//", "empty component"),
        ("/a b", "character other than"),
        ("/x/../y", "`..`"),
        ("/x/./y", "`.`"),
        ("/a//b", "empty component"),
        ("/a,b", "character other than"),
        ("/a=b", "character other than"),
        ("/a\u{1b}[31m", "character other than"),
        ("/proc", "kernel"),
        ("/sys/fs/cgroup", "kernel"),
        ("/dev/shm", "kernel"),
    ];
    for (entry, why) in cases {
        let (m, w) = parse_tmpfs(entry);
        assert!(m.is_empty(), "{entry:?}: {m:?}");
        assert_eq!(w.len(), 1, "{entry:?}");
        assert!(w[0].message.contains(why), "{entry:?}: {}", w[0]);
    }
    let long = format!("/{}", "a".repeat(MAX_TMPFS_PATH_LEN));
    assert!(parse_tmpfs(&long).0.is_empty());
    // Near misses are fine.
    let (m, w) = parse_tmpfs("/procfs;/devices;/run/;/x..y;/a.b/c-d_e+f@g");
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(
        tmpfs_values(&m),
        ["/procfs", "/devices", "/run", "/x..y", "/a.b/c-d_e+f@g"]
    );
    // A repeated mount point is dropped.
    let (m, w) = parse_tmpfs("/run;/run/;/run:exec");
    assert_eq!(tmpfs_values(&m), ["/run"]);
    assert_eq!(w.len(), 2);
}

#[test]
fn tmpfs_bad_options_are_dropped_from_their_entry() {
    for bad in [
        "rw",
        "ro",
        "suid",
        "dev",
        "bind",
        "mode=",
        "mode=8",
        "mode=12345",
        "mode=-1",
        "mode=0x1ff",
        "size=",
        "size=0",
        "size=17g",
        "size=17179869185",
        "size=1t",
        "size=64M",
        "size=1.5g",
        "size=-1",
        "size=99999999999999g",
        "uid=",
        "uid=-1",
        "uid=4294967296",
        "uid=root",
        "gid=x",
        "nr_inodes=10",
        "huge=always",
        "exec=1",
        "=",
        "\u{1b}[31mpwned\u{7}",
    ] {
        let (m, w) = parse_tmpfs(&format!("/run:exec,{bad},nosuid"));
        assert_eq!(tmpfs_values(&m), ["/run:exec,nosuid"], "{bad:?}");
        assert_eq!(w.len(), 1, "{bad:?}");
        assert!(w[0].message.contains("only exec, noexec"), "{bad:?}");
        assert!(!w[0].to_string().contains('\u{1b}'));
    }
    // The 16g cap, exactly.
    assert_eq!(
        tmpfs_values(&parse_tmpfs("/x:size=17179869184").0),
        ["/x:size=17179869184"]
    );
    // Contradicting or repeated options keep the first.
    let (m, w) = parse_tmpfs("/x:exec,noexec,mode=755,mode=700");
    assert_eq!(tmpfs_values(&m), ["/x:exec,mode=755"]);
    assert_eq!(w.len(), 2);
    // Commas cannot smuggle a second option past the check: each piece is checked on its own.
    let (m, _) = parse_tmpfs("/x:mode=755,rw");
    assert_eq!(tmpfs_values(&m), ["/x:mode=755"]);
    // `:` in the options is not an option.
    let (m, w) = parse_tmpfs("/c:d:e");
    assert_eq!(tmpfs_values(&m), ["/c"]);
    assert_eq!(w.len(), 1);
}

#[test]
fn tmpfs_entry_count_is_bounded() {
    let value: Vec<String> = (0..40).map(|i| format!("/t{i}")).collect();
    let (m, w) = parse_tmpfs(&value.join(";"));
    assert_eq!(m.len(), MAX_TMPFS_ENTRIES);
    assert_eq!(w.len(), 1);
}

#[test]
fn tmpfs_label_fallbacks() {
    let default = ["/run:exec,mode=755", "/run/lock", "/tmp"];

    let (c, w) = parse_labels(&labels(&[("sysfile.systemd.boot", "true")]));
    assert_eq!(tmpfs_values(&c.tmpfs), default);
    assert!(w.is_empty());

    let (c, w) = parse_labels(&labels(&[("sysfile.runtime.tmpfs", "")]));
    assert_eq!(tmpfs_values(&c.tmpfs), default);
    assert!(w.iter().any(|w| w.message.contains("no usable tmpfs")));

    let (c, w) = parse_labels(&labels(&[(
        "sysfile.runtime.tmpfs",
        "garbage;more garbage",
    )]));
    assert_eq!(tmpfs_values(&c.tmpfs), default);
    assert_eq!(w.len(), 3);

    let (c, w) = parse_labels(&labels(&[("sysfile.runtime.tmpfs", "/tmp")]));
    assert_eq!(tmpfs_values(&c.tmpfs), ["/tmp"]);
    assert!(w.iter().any(|w| w.message.contains("no /run entry")));
}

#[test]
fn stop_timeout_label() {
    assert_eq!(parse_labels(&Labels::new()).0.stop_timeout, 30);
    assert_eq!(
        parse_labels(&labels(&[(STOP_TIMEOUT_LABEL, " 45 ")]))
            .0
            .stop_timeout,
        45
    );
    assert_eq!(
        parse_labels(&labels(&[(STOP_TIMEOUT_LABEL, "3600")]))
            .0
            .stop_timeout,
        3600
    );
    for bad in [
        "",
        "0",
        "-3",
        "30s",
        "x",
        "+30",
        "3601",
        "4294967296",
        "1e3",
        "30\n---\nkind: Pod",
        "３０",
    ] {
        let (c, w) = parse_labels(&labels(&[(STOP_TIMEOUT_LABEL, bad)]));
        assert_eq!(c.stop_timeout, 30, "{bad}");
        assert_eq!(w.len(), 1, "{bad}");
        assert!(!w[0].to_string().contains('\n'), "{bad}");
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
fn systemd_version_label() {
    for (value, want) in [
        ("252", Some(252)),
        (" 257 ", Some(257)),
        ("9999", Some(9999)),
        ("0", None),
        ("10000", None),
        ("252.1", None),
        ("v252", None),
        ("", None),
        ("252\u{0}", None),
    ] {
        assert_eq!(
            parse_labels(&labels(&[(SYSTEMD_VERSION_LABEL, value)]))
                .0
                .systemd_version,
            want,
            "{value:?}"
        );
    }
}

#[test]
fn health_label() {
    assert_eq!(parse_labels(&Labels::new()).0.health_cmd, None);
    assert_eq!(
        parse_labels(&labels(&[(HEALTH_LABEL, "  ")])).0.health_cmd,
        None
    );
    let degraded = crate::image::health_command(crate::model::Health::RunningOrDegraded).unwrap();
    for ok in ["systemctl is-system-running --quiet", degraded] {
        assert_eq!(
            parse_labels(&labels(&[(HEALTH_LABEL, ok)]))
                .0
                .health_cmd
                .as_deref(),
            Some(ok)
        );
    }
    for bad in [
        "true\nrm -rf /",
        "a\u{1b}[2J",
        "a\u{2028}b",
        "tab\there",
        "é",
    ] {
        let (c, w) = parse_labels(&labels(&[(HEALTH_LABEL, bad)]));
        assert_eq!(c.health_cmd, None, "{bad:?}");
        assert_eq!(w.len(), 1);
    }
    let long = "x".repeat(MAX_HEALTH_LEN + 1);
    assert_eq!(
        parse_labels(&labels(&[(HEALTH_LABEL, &long)])).0.health_cmd,
        None
    );
}

#[test]
fn overlong_labels_are_ignored_whole() {
    let long = format!("/run;{}", "/x".repeat(MAX_LABEL_LEN));
    let (c, w) = parse_labels(&labels(&[(TMPFS_LABEL, &long), (BOOT_LABEL, "true")]));
    assert_eq!(c.tmpfs, default_tmpfs());
    assert_eq!(w.len(), 1);
    assert!(w[0].message.contains("bytes long"));
}

#[test]
fn show_escapes_everything_but_printable_ascii() {
    assert_eq!(show("plain text"), "\"plain text\"");
    assert_eq!(show("a\"b\\c"), r#""a\"b\\c""#);
    assert_eq!(
        show("\u{1b}[31m\n\r\t\0\u{7f}\u{85}\u{2028}\u{202e}é"),
        r#""\u{1b}[31m\n\r\t\0\u{7f}\u{85}\u{2028}\u{202e}\u{e9}""#
    );
    assert_eq!(show(&"y".repeat(100)), format!("\"{}...\"", "y".repeat(80)));
    for c in [
        '\u{0}', '\u{1b}', '\u{9b}', '\n', '\u{85}', '\u{2028}', '\u{2029}',
    ] {
        assert!(
            show(&format!("x{c}y"))
                .chars()
                .all(|c| matches!(c, ' '..='~'))
        );
    }
}

#[test]
fn terminal_text_keeps_newlines_and_escapes_the_rest() {
    assert_eq!(terminal_text("a\nb é ≥"), "a\nb é ≥");
    assert_eq!(
        terminal_text("\u{1b}[2J\r\t\u{0}\u{9b}\u{85}\u{2028}\u{202e}"),
        r"\u{1b}[2J\u{d}\u{9}\u{0}\u{9b}\u{85}\u{2028}\u{202e}"
    );
}

#[test]
fn engine_flag_labels_are_never_used() {
    let mut l = sysfile_labels(252);
    l.insert(
        "sysfile.runtime.docker".into(),
        "--privileged -v /:/host --pid=host".into(),
    );
    l.insert("RUN".into(), "podman run --privileged IMAGE".into());
    l.insert(
        TMPFS_LABEL.into(),
        "/run:exec --privileged;-v /:/host".into(),
    );
    for facts in [
        docker(CgroupVersion::V1, "26.1.5"),
        docker(CgroupVersion::V2, "28.0.0"),
        host(Engine::Podman, CgroupVersion::V2, "5.4.0"),
    ] {
        let plan = plan_run(&l, &facts, &request()).unwrap();
        for arg in plan.argv() {
            assert!(!arg.contains("privileged"), "{arg}");
            assert!(!arg.contains("/host"), "{arg}");
            assert!(!arg.contains("pid"), "{arg}");
        }
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
    for facts in &hosts {
        for (version, mounts) in [
            (252, V1CgroupMounts::TreeRw),
            (257, V1CgroupMounts::SystemdRw),
        ] {
            let forced = RunRequest {
                force_cgroup_v1: true,
                v1_cgroup_mounts: mounts,
                extra_args: vec!["--hostname".into(), "box".into()],
                ..request()
            };
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
                    || arg.starts_with("type=")
                    || (arg.starts_with('/') && arg != plan.program)
                {
                    assert!(mentioned, "`{arg}` not explained in:\n{explain}");
                }
            }
            // One reason line per group.
            for group in &plan.groups {
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
    assert!(explain.contains(
        "image: boots systemd (sysfile.systemd.boot=true), systemd 252, stop timeout 30 s"
    ));
    assert!(explain.contains("systemd 252 on cgroup v1: boots (measured"));
}

// ---- hostile labels: run --print, k8s and quadlet emit only validated values ------------------

/// Values that try to break out of a YAML scalar, a comment, a unit-file line, a shell word or
/// a terminal.
const HOSTILE_VALUES: &[&str] = &[
    "30\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: evil}\nspec:\n  hostPID: true\n  containers:\n  - name: x\n    image: x\n    securityContext: {privileged: true}",
    "---",
    "...",
    "'",
    "\"",
    "\": x",
    "x: y",
    "# comment",
    "\u{1b}]0;pwned\u{7}",
    "\u{1b}[2J\u{1b}[H",
    "\u{9b}31m",
    "\0",
    "a\0b",
    "\u{2028}hostPID: true",
    "\u{2029}",
    "\u{85}privileged: true",
    "\r\nhostPath: {path: /}",
    "\t",
    "{privileged: true}",
    "[1, 2]",
    "&a x",
    "*a",
    "!!binary AAAA",
    "%YAML 1.1",
    "| x",
    "> x",
    "@x",
    "`id`",
    "$(id)",
    "%n %i $HOME ${HOME}",
    "\u{feff}",
    "\u{202e}olleh",
    "x\\",
    "--privileged",
    "-v /:/host",
    "--privileged -v /:/host --pid=host",
    "/run:exec,mode=755;/host:rw,bind",
    "/run:exec\nExecStartPre=/bin/sh -c id",
    "/run:exec,mode=755\n[Service]\nExecStartPre=/bin/touch /pwned",
];

/// Every label the launchers read and the ones they must ignore.
const LABEL_KEYS: &[&str] = &[
    BOOT_LABEL,
    STOP_TIMEOUT_LABEL,
    TMPFS_LABEL,
    SYSTEMD_VERSION_LABEL,
    HEALTH_LABEL,
    "sysfile.systemd.cgroup",
    "sysfile.runtime.docker",
    "sysfile.runtime.tty",
    "RUN",
];

/// The sshd labels with one label replaced by a hostile value (or a hostile tmpfs entry or
/// option appended), for every label and value.
fn hostile_label_sets() -> Vec<Labels> {
    let mut sets = Vec::new();
    for value in HOSTILE_VALUES {
        for key in LABEL_KEYS {
            let mut l = sysfile_labels(252);
            l.insert(key.to_string(), value.to_string());
            sets.push(l);
        }
        let mut l = sysfile_labels(252);
        l.insert(
            TMPFS_LABEL.into(),
            format!("/run:exec,mode=755;/run/lock;/tmp;/x{value}"),
        );
        sets.push(l);
        let mut l = sysfile_labels(252);
        l.insert(TMPFS_LABEL.into(), format!("/run:exec,{value}"));
        sets.push(l);
        let mut l = sysfile_labels(252);
        l.insert(
            HEALTH_LABEL.into(),
            format!("systemctl is-system-running {value}"),
        );
        sets.push(l);
    }
    sets
}

fn printable_ascii_lines(text: &str) -> bool {
    text.chars().all(|c| c == '\n' || matches!(c, ' '..='~'))
}

/// No control character (but `\n`), line or paragraph separator, or bidirectional control:
/// text that is safe on a terminal (fixed text may hold `≥` and `–`).
fn terminal_safe(text: &str) -> bool {
    text.chars().all(|c| {
        c == '\n'
            || !(c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{feff}'
                )
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c))
    })
}

#[test]
fn hostile_labels_in_run_print() {
    let hosts = [
        docker(CgroupVersion::V1, "26.1.5"),
        docker(CgroupVersion::V2, "26.1.5"),
        docker(CgroupVersion::V2, "28.0.0"),
        host(Engine::Podman, CgroupVersion::V2, "5.4.0"),
    ];
    for l in hostile_label_sets() {
        for facts in &hosts {
            let plan = match plan_run(&l, facts, &request()) {
                Ok(plan) => plan,
                Err(refusal) => {
                    assert!(terminal_safe(&refusal.0), "{refusal}");
                    continue;
                }
            };
            let argv = plan.argv();
            for (i, arg) in argv.iter().enumerate() {
                assert!(
                    arg.chars().all(|c| matches!(c, ' '..='~')),
                    "{arg:?} from {l:?}"
                );
                if i > 0 && argv[i - 1] == "--tmpfs" {
                    // A tmpfs value is one validated entry (a path may be named `x--privileged`:
                    // it is still one word, a path).
                    let (parsed, warnings) = parse_tmpfs(arg);
                    assert!(warnings.is_empty(), "{arg:?}");
                    assert_eq!(&tmpfs_values(&parsed), std::slice::from_ref(arg));
                    continue;
                }
                for bad in ["privileged", "/host", "--pid", "--volume", "bind,", "rw,"] {
                    assert!(!arg.contains(bad), "{arg:?} from {l:?}");
                }
            }
            assert!(printable_ascii_lines(&plan.command_line()));
            assert!(terminal_safe(&plan.explain()), "{}", plan.explain());
            for w in &plan.warnings {
                assert!(terminal_safe(w) && !w.contains('\n'), "{w:?}");
            }
        }
    }
}

mod yaml_checks {
    use yaml_rust2::{Yaml, YamlLoader};

    /// Every key anywhere in the document.
    pub fn keys(node: &Yaml, out: &mut Vec<String>) {
        match node {
            Yaml::Hash(map) => {
                for (k, v) in map {
                    out.push(k.as_str().unwrap_or("<non-string key>").to_string());
                    keys(v, out);
                }
            }
            Yaml::Array(items) => items.iter().for_each(|i| keys(i, out)),
            _ => {}
        }
    }

    /// Parses the manifest and checks it is exactly one Pod or Deployment with the expected
    /// shape and nothing privileged; returns the document.
    pub fn check_manifest(yaml: &str, deployment: bool) -> Yaml {
        let docs =
            YamlLoader::load_from_str(yaml).unwrap_or_else(|e| panic!("not YAML ({e}):\n{yaml}"));
        assert_eq!(docs.len(), 1, "one document:\n{yaml}");
        let doc = docs.into_iter().next().unwrap();
        let top: Vec<&str> = doc
            .as_hash()
            .expect("a mapping")
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(top, ["apiVersion", "kind", "metadata", "spec"], "{yaml}");
        let kind = if deployment { "Deployment" } else { "Pod" };
        assert_eq!(doc["kind"].as_str(), Some(kind));
        let pod = if deployment {
            &doc["spec"]["template"]["spec"]
        } else {
            &doc["spec"]
        };
        let containers = pod["containers"].as_vec().expect("containers");
        assert_eq!(containers.len(), 1, "{yaml}");
        assert_eq!(
            containers[0]["securityContext"]["privileged"].as_bool(),
            Some(false)
        );
        let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
        assert!((1..=3600).contains(&grace), "{grace}");
        let mut all = Vec::new();
        keys(&doc, &mut all);
        for bad in [
            "hostPID",
            "hostNetwork",
            "hostIPC",
            "hostPath",
            "capabilities",
            "allowPrivilegeEscalation",
            "procMount",
        ] {
            assert!(!all.iter().any(|k| k == bad), "{bad} in:\n{yaml}");
        }
        assert_eq!(
            all.iter().filter(|k| *k == "privileged").count(),
            1,
            "{yaml}"
        );
        let mut names: Vec<&str> = pod["volumes"]
            .as_vec()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "unique volume names:\n{yaml}");
        for v in pod["volumes"].as_vec().unwrap() {
            assert_eq!(v.as_hash().unwrap().len(), 2, "name and emptyDir only");
            assert_eq!(v["emptyDir"]["medium"].as_str(), Some("Memory"));
        }
        doc
    }
}

#[test]
fn hostile_labels_in_k8s() {
    use super::k8s::{DEFAULT_KUBE_VERSION, K8sRequest, Userns, manifest};
    for l in hostile_label_sets() {
        for deployment in [false, true] {
            let req = K8sRequest {
                image: "sysfile-example/sshd:latest".into(),
                name: None,
                deployment,
                replicas: 2,
                kube_version: DEFAULT_KUBE_VERSION,
                userns: Userns::Auto,
                stop_signal: deployment,
            };
            let (yaml, warnings) = manifest(&l, &req).unwrap();
            assert!(printable_ascii_lines(&yaml), "{yaml}");
            for line in yaml.lines().filter(|l| l.trim_start().starts_with('#')) {
                // Comments are fixed text: no label value is ever written into one.
                assert!(!line.contains("warning"), "{line}");
            }
            let doc = yaml_checks::check_manifest(&yaml, deployment);
            let (parsed, _) = parse_labels(&l);
            let pod = if deployment {
                &doc["spec"]["template"]["spec"]
            } else {
                &doc["spec"]
            };
            assert_eq!(
                pod["terminationGracePeriodSeconds"].as_i64(),
                Some(i64::from(parsed.stop_timeout))
            );
            let mounts: Vec<&str> = pod["containers"][0]["volumeMounts"]
                .as_vec()
                .unwrap()
                .iter()
                .map(|m| m["mountPath"].as_str().unwrap())
                .collect();
            let want: Vec<&str> = parsed.tmpfs.iter().map(|m| m.path.as_str()).collect();
            assert_eq!(mounts, want);
            if let Some(cmd) = &parsed.health_cmd {
                let probe = &pod["containers"][0]["startupProbe"]["exec"]["command"];
                assert_eq!(probe[2].as_str(), Some(cmd.as_str()));
            }
            for w in &warnings {
                assert!(printable_ascii_lines(&w.to_string()) && !w.to_string().contains('\n'));
            }
        }
    }
}

#[test]
fn hostile_image_reference_in_k8s_is_one_scalar() {
    use super::k8s::{DEFAULT_KUBE_VERSION, K8sRequest, Userns, manifest};
    for value in HOSTILE_VALUES {
        let req = K8sRequest {
            image: value.to_string(),
            name: Some("box".into()),
            deployment: false,
            replicas: 1,
            kube_version: DEFAULT_KUBE_VERSION,
            userns: Userns::Off,
            stop_signal: false,
        };
        let (yaml, _) = manifest(&sysfile_labels(252), &req).unwrap();
        assert!(printable_ascii_lines(&yaml), "{yaml}");
        let doc = yaml_checks::check_manifest(&yaml, false);
        assert_eq!(
            doc["spec"]["containers"][0]["image"].as_str(),
            Some(*value),
            "{yaml}"
        );
    }
}

/// The keys `sysfile quadlet` may write, by section.
const QUADLET_KEYS: &[(&str, &[&str])] = &[
    ("Unit", &["Description"]),
    (
        "Container",
        &[
            "Image",
            "PodmanArgs",
            "Tmpfs",
            "StopSignal",
            "StopTimeout",
            "HealthCmd",
            "HealthStartPeriod",
            "HealthInterval",
            "HealthTimeout",
            "HealthRetries",
        ],
    ),
    ("Service", &["TimeoutStopSec"]),
    ("Install", &["WantedBy"]),
];

/// Reads a unit the way systemd does (comments, sections, `Key=Value`; no line continuation is
/// allowed in our output) and checks every key is one we write; returns the (section, key, value)s.
fn check_unit(text: &str) -> Vec<(String, String, String)> {
    assert!(printable_ascii_lines(text), "{text}");
    let mut section = String::new();
    let mut entries = Vec::new();
    let mut sections = Vec::new();
    for line in text.lines() {
        assert!(!line.ends_with('\\'), "a continuation line: {line}");
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
            sections.push(name.to_string());
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{line}"));
        let allowed = QUADLET_KEYS
            .iter()
            .find(|(s, _)| *s == section)
            .unwrap_or_else(|| panic!("section {section}"))
            .1;
        assert!(allowed.contains(&key), "{key} in [{section}]:\n{text}");
        assert_eq!(value.trim(), value, "{line}");
        assert!(!value.starts_with('"') && !value.ends_with('"'), "{line}");
        entries.push((section.clone(), key.to_string(), value.to_string()));
    }
    assert_eq!(sections, ["Unit", "Container", "Service", "Install"]);
    entries
}

/// Undoes the unit-file escaping of a value that reaches `ExecStart=`: `%%` → `%`, `$$` → `$`.
fn unescape_unit_value(value: &str) -> String {
    value.replace("%%", "%").replace("$$", "$")
}

#[test]
fn hostile_labels_in_quadlet() {
    use super::quadlet::{QuadletRequest, unit};
    let req = QuadletRequest {
        image: "localhost/sysfile-example/sshd:latest".into(),
        name: None,
    };
    for l in hostile_label_sets() {
        let u = unit(&l, &req).unwrap();
        assert_eq!(u.file_name, "sshd.container");
        let entries = check_unit(&u.text);
        let (parsed, _) = parse_labels(&l);
        let get = |key: &str| -> Vec<&str> {
            entries
                .iter()
                .filter(|(_, k, _)| k == key)
                .map(|(_, _, v)| v.as_str())
                .collect()
        };
        assert_eq!(get("Image"), ["localhost/sysfile-example/sshd:latest"]);
        assert_eq!(get("StopTimeout"), [parsed.stop_timeout.to_string()]);
        let want = if parsed.boot {
            "--systemd=always"
        } else {
            "--systemd=false"
        };
        assert_eq!(get("PodmanArgs"), [want]);
        for tmpfs in get("Tmpfs") {
            let (m, w) = parse_tmpfs(tmpfs);
            assert!(w.is_empty(), "{tmpfs}");
            assert_eq!(tmpfs_values(&m), [tmpfs]);
        }
        match get("HealthCmd").as_slice() {
            [] => {}
            [cmd] => assert_eq!(
                Some(unescape_unit_value(cmd)),
                parsed.health_cmd,
                "{}",
                u.text
            ),
            more => panic!("{more:?}"),
        }
        for w in &u.warnings {
            assert!(printable_ascii_lines(&w.to_string()) && !w.to_string().contains('\n'));
        }
    }
}

#[test]
fn quadlet_refuses_bad_names_and_references() {
    use super::quadlet::{QuadletRequest, unit};
    for image in HOSTILE_VALUES
        .iter()
        .copied()
        .chain(["", "-x", "a b", "a%b", "a$b"])
    {
        let err = unit(
            &sysfile_labels(252),
            &QuadletRequest {
                image: image.to_string(),
                name: Some("box".into()),
            },
        )
        .unwrap_err();
        assert!(
            printable_ascii_lines(&err) && !err.contains('\n'),
            "{err:?}"
        );
    }
    for name in ["Box", "a/b", "a.container", "../x", "x\n[Service]"] {
        assert!(
            unit(
                &sysfile_labels(252),
                &QuadletRequest {
                    image: "x".into(),
                    name: Some(name.into()),
                },
            )
            .is_err(),
            "{name:?}"
        );
    }
}

#[test]
fn unit_values_are_escaped_or_refused() {
    use super::quadlet::unit_value;
    assert_eq!(unit_value("a b").unwrap(), "a b");
    assert_eq!(unit_value("100%").unwrap(), "100%%");
    assert_eq!(unit_value("$x ${y} $$").unwrap(), "$$x $${y} $$$$");
    assert_eq!(
        unit_value("\"inner\" quotes").unwrap_err(),
        unit_value("\"x").unwrap_err()
    );
    for bad in ["", " x", "x ", "\"x", "x\"", "x\\", "a\nb", "a\u{1b}b", "é"] {
        assert!(unit_value(bad).is_err(), "{bad:?}");
    }
    let degraded = crate::image::health_command(crate::model::Health::RunningOrDegraded).unwrap();
    assert_eq!(
        unescape_unit_value(&unit_value(degraded).unwrap()),
        degraded
    );
}

// ---- golden outputs ------------------------------------------------------------------------------

#[test]
fn quadlet_golden() {
    use super::quadlet::{QuadletRequest, unit};
    let req = |image: &str| QuadletRequest {
        image: image.into(),
        name: None,
    };
    let u = unit(
        &sysfile_labels(252),
        &req("localhost/sysfile-example/sshd:latest"),
    )
    .unwrap();
    assert!(u.warnings.is_empty());
    insta::assert_snapshot!("quadlet_sshd", u.text);

    let mut l = sysfile_labels(257);
    l.insert(
        HEALTH_LABEL.into(),
        crate::image::health_command(crate::model::Health::RunningOrDegraded)
            .unwrap()
            .into(),
    );
    l.insert(STOP_TIMEOUT_LABEL.into(), "90".into());
    l.insert(
        TMPFS_LABEL.into(),
        "/run:exec,mode=755;/run/lock;/tmp;/var/cache/app:size=64m,mode=700,uid=1000".into(),
    );
    let u = unit(
        &l,
        &QuadletRequest {
            image: "registry.example.com:5000/team/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
            name: Some("web".into()),
        },
    )
    .unwrap();
    assert_eq!(u.file_name, "web.container");
    insta::assert_snapshot!("quadlet_degraded_health_extra_tmpfs", u.text);

    let u = unit(&Labels::new(), &req("docker.io/library/debian:bookworm")).unwrap();
    assert!(!u.text.contains("--systemd=always"));
    assert!(u.text.contains("\nPodmanArgs=--systemd=false\n"));
    insta::assert_snapshot!("quadlet_not_a_boot_image", u.text);

    let mut l = sysfile_labels(252);
    l.insert(STOP_TIMEOUT_LABEL.into(), "30\n---\nevil".into());
    l.insert(
        TMPFS_LABEL.into(),
        "/run:exec,bind;/x\u{1b}[2J;/srv:rw".into(),
    );
    l.insert(HEALTH_LABEL.into(), "\"quoted\"".into());
    let u = unit(&l, &req("localhost/sysfile-example/sshd:latest")).unwrap();
    let warnings: Vec<String> = u.warnings.iter().map(ToString::to_string).collect();
    insta::assert_snapshot!(
        "quadlet_hostile",
        format!("{}\n--- warnings ---\n{}\n", u.text, warnings.join("\n"))
    );
}

#[test]
fn run_explain_golden() {
    let plan = plan_run(
        &sysfile_labels(257),
        &docker(CgroupVersion::V1, "26.1.5+dfsg1"),
        &request(),
    )
    .unwrap();
    insta::assert_snapshot!("run_explain_v1_tree_rw", plan.explain());
    let plan = plan_run(
        &sysfile_labels(257),
        &docker(CgroupVersion::V1, "26.1.5+dfsg1"),
        &RunRequest {
            v1_cgroup_mounts: V1CgroupMounts::SystemdRw,
            ..request()
        },
    )
    .unwrap();
    insta::assert_snapshot!("run_explain_v1_systemd_rw", plan.explain());
    let plan = plan_run(
        &sysfile_labels(262),
        &docker(CgroupVersion::V2, "26.1.5+dfsg1"),
        &request(),
    )
    .unwrap();
    insta::assert_snapshot!("run_explain_v2_docker_26", plan.explain());
    let mut l = sysfile_labels(252);
    l.insert(STOP_TIMEOUT_LABEL.into(), "30\n---\nkind: Pod".into());
    l.insert(
        TMPFS_LABEL.into(),
        "/run:exec,mode=755;/run/lock;/tmp:size=1t;/host\u{1b}]0;x\u{7}".into(),
    );
    l.insert(
        "sysfile.runtime.docker".into(),
        "--privileged -v /:/host".into(),
    );
    let plan = plan_run(&l, &docker(CgroupVersion::V1, "26.1.5"), &request()).unwrap();
    insta::assert_snapshot!(
        "run_print_hostile",
        format!("{}\n{}", plan.command_line(), plan.warnings.join("\n"))
    );
}

/// `parse_labels` on many generated values (a fixed pseudo-random sequence over tricky
/// characters): it never panics, and what it returns is always valid by its own rules.
#[test]
fn parse_labels_invariants_on_generated_values() {
    const ALPHABET: &[&str] = &[
        "/", "/run", ":", ",", ";", "=", "..", ".", "exec", "mode=", "size=", "uid=", "7", "0",
        "9", "g", "k", "\n", "\u{1b}", "\0", "\u{2028}", "\u{85}", " ", "\"", "\\", "-", "é", "%",
        "$", "#", "---", "true",
    ];
    let mut state: u64 = 0x5eed;
    let mut next = |n: usize| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as usize) % n
    };
    for _ in 0..3000 {
        let mut l = Labels::new();
        for key in LABEL_KEYS {
            let len = next(12);
            let value: String = (0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect();
            l.insert(key.to_string(), value);
        }
        let (parsed, warnings) = parse_labels(&l);
        assert!((1..=MAX_STOP_TIMEOUT).contains(&parsed.stop_timeout));
        assert!(
            parsed
                .systemd_version
                .is_none_or(|v| (1..=MAX_SYSTEMD_VERSION).contains(&v))
        );
        assert!(!parsed.tmpfs.is_empty() && parsed.tmpfs.len() <= MAX_TMPFS_ENTRIES);
        for m in &parsed.tmpfs {
            let (again, w) = parse_tmpfs(&m.docker_value());
            assert!(w.is_empty(), "{m:?}");
            assert_eq!(again, std::slice::from_ref(m));
        }
        if let Some(cmd) = &parsed.health_cmd {
            assert!(cmd.chars().all(|c| matches!(c, ' '..='~')));
        }
        for w in &warnings {
            let text = w.to_string();
            assert!(
                printable_ascii_lines(&text) && !text.contains('\n'),
                "{text:?}"
            );
        }
    }
}
