//! Real-engine tests of `sysfile run` and `sysfile k8s` against `/usr/bin/docker`.
//!
//! Each test builds a tiny systemd image from a plain Dockerfile (with sysfile's labels) under a
//! unique tag and removes it, and any container it started, with the harness's Drop guards
//! (`sysfile_testkit::harness`). Without a reachable daemon every test prints `=== SKIPPED: … ===`
//! to stderr and passes, unless `SYSFILE_E2E=required`, which turns that into a failure; without
//! Podman the Podman test skips unless `SYSFILE_PODMAN=required`. `SYSFILE_E2E_KEEP=1` keeps
//! containers and images for debugging.
//!
//! Run: `SYSFILE_E2E=required cargo test --test runtime_engine -- --nocapture`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use sysfile_testkit::harness::{
    Container, DOCKER, Daemon, Engine, ImageGuard, PodmanContainer, PodmanImage, Run, podman,
    podman_skip, podman_version, run, sysfile_bin, tempdir, unique_name, wait_system_running,
};

/// The test image: Debian 12's systemd as PID 1, sysfile's runtime labels, `{version}` replaced.
const DOCKERFILE: &str = r#"FROM local/debian:bookworm
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/lib/systemd/systemd"]
LABEL sysfile.systemd.boot=true sysfile.runtime.stop-timeout=30 sysfile.runtime.tmpfs="/run:exec,mode=755;/run/lock;/tmp" sysfile.systemd.version={version}
"#;

fn stderr_line(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// Whether the daemon answers; otherwise skips loudly (or fails under `SYSFILE_E2E=required`).
fn engine_or_skip(test: &str) -> bool {
    Engine::detect(test).is_some()
}

fn docker(args: &[&str]) -> Run {
    Daemon::main().docker(args)
}

fn text(output: &str) -> String {
    output.trim().to_string()
}

fn sysfile(args: &[&str]) -> Run {
    run(sysfile_bin(), args)
}

/// A container of the main daemon named `name`, removed (with its volumes) on drop.
fn container(name: &str) -> Container {
    Container {
        name: name.to_string(),
        started: Instant::now(),
        daemon: Daemon::main(),
    }
}

fn build_image(test: &str, systemd_version: u32) -> ImageGuard {
    let dir = tempdir();
    std::fs::write(
        dir.path().join("Dockerfile"),
        DOCKERFILE.replace("{version}", &systemd_version.to_string()),
    )
    .unwrap();
    let tag = format!("{}:test", unique_name(test));
    let image = ImageGuard::new(tag.clone(), Daemon::main());
    let context = dir.path().display().to_string();
    let out = run(
        "env",
        &[
            "DOCKER_BUILDKIT=1",
            DOCKER,
            "build",
            "-q",
            "-t",
            &tag,
            &context,
        ],
    );
    assert!(out.ok(), "docker build failed: {}", text(&out.stderr));
    image
}

/// Drops terminal colour sequences (`ESC [ … m`) from a console line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn host_is_cgroup_v1() -> bool {
    text(&run("stat", &["-fc", "%T", "/sys/fs/cgroup"]).stdout) != "cgroup2fs"
}

fn inspect(name: &str, format: &str) -> String {
    text(&docker(&["inspect", "-f", format, name]).stdout)
}

/// The values following each `flag` in a `--print` line.
fn values_of<'a>(words: &'a [&'a str], flag: &str) -> Vec<&'a str> {
    words
        .windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1])
        .collect()
}

#[test]
fn run_boots_the_image_and_print_matches_what_ran() {
    let test = "boots";
    if !engine_or_skip(test) {
        return;
    }
    let image = build_image(test, 252);
    let name = unique_name(test);
    let running = container(&name);

    let start = Instant::now();
    let out = sysfile(&["run", &image.tag, "--name", &name]);
    let stderr = text(&out.stderr);
    assert_eq!(Some(out.code), Some(0), "sysfile run failed: {stderr}");
    let id = text(&out.stdout);
    assert!(
        id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "stdout is the container ID, got `{id}`"
    );
    // The hint works when pasted at once: it retries until the bus is up.
    assert!(
        stderr.contains(&format!(
            "docker exec {name} timeout 90 sh -c 'until systemctl"
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("docker stop {name}")), "{stderr}");
    let run_time = start.elapsed();

    let state = wait_system_running(&running, Duration::from_secs(60)).ok();
    let boot_time = start.elapsed();
    if state.as_deref() != Some("running") {
        let failed = docker(&["exec", &name, "systemctl", "--failed", "--no-legend"]);
        let logs = docker(&["logs", &name]);
        panic!(
            "state {state:?}; failed units: {}; logs:\n{}{}",
            text(&failed.stdout),
            text(&logs.stdout),
            text(&logs.stderr)
        );
    }
    assert_eq!(
        text(&docker(&["exec", &name, "cat", "/proc/1/comm"]).stdout),
        "systemd"
    );

    // `--print` gives the same command that ran: compare with what Docker recorded.
    let out = sysfile(&["run", &image.tag, "--name", &name, "--print"]);
    assert_eq!(Some(out.code), Some(0), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        !line.contains('\''),
        "no quoting expected in this command: {line}"
    );
    let words: Vec<&str> = line.split(' ').collect();
    assert_eq!(words[0], DOCKER);
    assert_eq!(words[1], "run");
    assert_eq!(
        *words.last().unwrap(),
        image.tag,
        "the image is last: {line}"
    );
    assert_eq!(values_of(&words, "--name"), [name.as_str()]);
    assert_eq!(values_of(&words, "--stop-timeout"), ["30"]);
    assert!(words.contains(&"-d") && words.contains(&"-t") && words.contains(&"--init=false"));
    assert!(!line.contains("privileged"));

    let printed_tmpfs: BTreeMap<String, String> = values_of(&words, "--tmpfs")
        .into_iter()
        .map(|v| {
            let (path, options) = v.split_once(':').unwrap_or((v, ""));
            (path.to_string(), options.to_string())
        })
        .collect();
    let actual_tmpfs: BTreeMap<String, String> =
        serde_json::from_str(&inspect(&name, "{{json .HostConfig.Tmpfs}}")).unwrap();
    assert_eq!(actual_tmpfs, printed_tmpfs);
    assert_eq!(
        actual_tmpfs.keys().collect::<Vec<_>>(),
        ["/run", "/run/lock", "/tmp"]
    );
    let actual_binds: Vec<String> =
        serde_json::from_str(&inspect(&name, "{{json .HostConfig.Binds}}")).unwrap_or_default();
    assert_eq!(actual_binds, values_of(&words, "-v"));
    assert_eq!(inspect(&name, "{{json .HostConfig.Init}}"), "false");
    assert_eq!(inspect(&name, "{{.Config.StopTimeout}}"), "30");
    assert_eq!(inspect(&name, "{{.Config.Tty}}"), "true");
    let cgroupns = inspect(&name, "{{.HostConfig.CgroupnsMode}}");
    if let Some(mode) = words.iter().find_map(|w| w.strip_prefix("--cgroupns=")) {
        assert_eq!(cgroupns, mode);
    }

    let stop_start = Instant::now();
    let stop = docker(&["stop", &name]);
    let stop_time = stop_start.elapsed();
    assert!(stop.ok(), "docker stop: {}", text(&stop.stderr));
    assert_eq!(inspect(&name, "{{.State.ExitCode}}"), "0");
    stderr_line(&format!(
        "runtime engine: `sysfile run` returned in {:.2} s, `running` after {:.2} s, `docker stop` took {:.2} s (exit 0)",
        run_time.as_secs_f64(),
        boot_time.as_secs_f64(),
        stop_time.as_secs_f64()
    ));
}

#[test]
fn negative_control_without_contract_flags_fails_to_boot() {
    let test = "negative";
    if !engine_or_skip(test) {
        return;
    }
    let image = build_image(test, 252);
    let name = unique_name(test);
    let _container = container(&name);
    let out = docker(&["run", "-d", "-t", "--name", &name, &image.tag]);
    assert!(out.ok(), "{}", text(&out.stderr));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(30);
    while inspect(&name, "{{.State.Running}}") == "true" {
        assert!(
            Instant::now() < deadline,
            "the container without contract flags is still running after 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let code = inspect(&name, "{{.State.ExitCode}}");
    let logs = docker(&["logs", &name]);
    let logs = format!("{}{}", text(&logs.stdout), text(&logs.stderr));
    assert_eq!(code, "255", "exit code; logs:\n{logs}");
    let lower = logs.to_lowercase();
    assert!(
        lower.contains("failed to mount") || lower.contains("cgroup"),
        "logs mention a mount or cgroup failure:\n{logs}"
    );
    stderr_line(&format!(
        "runtime engine: without contract flags PID 1 exited {code} after {:.2} s: {}",
        start.elapsed().as_secs_f64(),
        strip_ansi(logs.lines().find(|l| l.contains("Failed")).unwrap_or("")).trim()
    ));
}

#[test]
fn explain_print_refusals_and_k8s_against_the_engine() {
    let test = "explain";
    if !engine_or_skip(test) {
        return;
    }
    let v1 = host_is_cgroup_v1();
    let image = build_image(test, 252);

    let out = sysfile(&["run", &image.tag, "--explain"]);
    assert_eq!(Some(out.code), Some(0), "{}", text(&out.stderr));
    let explain = text(&out.stdout);
    assert!(explain.contains("--tmpfs /run"), "{explain}");
    let cgroup_flag = if v1 {
        "--mount type=bind,src=/sys/fs/cgroup/systemd,dst=/sys/fs/cgroup/systemd"
    } else {
        "--cgroupns="
    };
    assert!(explain.contains(cgroup_flag), "{explain}");
    assert!(explain.contains("  --tmpfs /run:exec,mode=755: systemd needs /run to be a tmpfs"));
    assert!(explain.contains(if v1 { "cgroup v1" } else { "cgroup v2" }));

    // Images the host cannot boot.
    for (version, refused_on_v1) in [(256, false), (258, true)] {
        let image = build_image(test, version);
        let out = sysfile(&["run", &image.tag, "--print"]);
        let stderr = text(&out.stderr);
        if v1 && refused_on_v1 {
            assert_eq!(Some(out.code), Some(1), "systemd {version}: {stderr}");
            assert!(stderr.contains(&format!("systemd {version}")), "{stderr}");
        } else {
            assert_eq!(Some(out.code), Some(0), "{stderr}");
        }
        if v1 && version == 256 {
            // 256 and 257 boot on cgroup v1 as they are: the old flag changes nothing.
            let plain = sysfile(&["run", &image.tag, "--print"]);
            let out = sysfile(&["run", &image.tag, "--print", "--force-cgroup-v1"]);
            assert_eq!(Some(out.code), Some(0), "{}", text(&out.stderr));
            assert_eq!(text(&out.stdout), text(&plain.stdout));
            assert!(!text(&out.stdout).contains("SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE"));
            assert!(
                text(&out.stderr).contains("note: --force-cgroup-v1 has no effect"),
                "{}",
                text(&out.stderr)
            );
            assert!(!text(&out.stderr).contains("warning:"));
        }
        if v1 && version == 258 {
            assert!(stderr.contains("dropped cgroup v1"), "{stderr}");
        }
    }

    // Not built by sysfile: runs with defaults and says so.
    let out = sysfile(&["run", "local/debian:bookworm", "--print"]);
    assert_eq!(Some(out.code), Some(0));
    assert!(text(&out.stderr).contains("not built by sysfile"));

    // Missing image: exit 2.
    let out = sysfile(&["run", "sysfile-rt-no-such-image:nope", "--print"]);
    assert_eq!(Some(out.code), Some(2));
    assert!(
        text(&out.stderr).contains("not found"),
        "{}",
        text(&out.stderr)
    );

    // k8s reads the same labels.
    let out = sysfile(&["k8s", &image.tag, "--deployment", "--replicas", "2"]);
    assert_eq!(Some(out.code), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(yaml.contains("kind: Deployment") && yaml.contains("replicas: 2"));
    assert!(
        !yaml.contains("Probe"),
        "no health label, no probes: {yaml}"
    );
    assert!(yaml.contains("mountPath: /run/lock"));
    assert!(yaml.contains("terminationGracePeriodSeconds: 30"));
}

/// Podman is optional on the project's machines: without `podman` this test skips loudly even under
/// `SYSFILE_E2E=required`. The image is copied from Docker with `docker save | podman load`.
#[test]
fn podman_run_boots_the_image() {
    let test = "podman";
    if !engine_or_skip(test) {
        return;
    }
    if let Err(why) = podman_version() {
        podman_skip(test, &why);
        return;
    }
    let image = build_image(test, 252);
    let name = unique_name(test);
    let _loaded = PodmanImage::load_from_docker(&image.tag).unwrap_or_else(|e| panic!("{e}"));
    let _container = PodmanContainer {
        name: name.clone(),
        started: Instant::now(),
    };

    let print = sysfile(&[
        "run", &image.tag, "--engine", "podman", "--name", &name, "--print",
    ]);
    assert_eq!(
        text(&print.stdout),
        format!(
            "podman run -d -t --systemd=always --stop-timeout 30 --name {name} {}",
            image.tag
        )
    );
    let start = Instant::now();
    let out = sysfile(&["run", &image.tag, "--engine", "podman", "--name", &name]);
    assert_eq!(Some(out.code), Some(0), "{}", text(&out.stderr));
    let mut state = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        state = text(
            &podman(&[
                "exec",
                &name,
                "timeout",
                "50",
                "systemctl",
                "is-system-running",
                "--wait",
            ])
            .stdout,
        );
        if !state.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let boot = start.elapsed();
    assert_eq!(
        state,
        "running",
        "logs: {}",
        text(&podman(&["logs", &name]).stdout)
    );
    let stop_start = Instant::now();
    assert!(podman(&["stop", &name]).ok());
    let stop = stop_start.elapsed();
    assert_eq!(
        text(&podman(&["inspect", "-f", "{{.State.ExitCode}}", &name]).stdout),
        "0"
    );
    stderr_line(&format!(
        "runtime engine: Podman: `running` after {:.2} s, `podman stop` took {:.2} s (exit 0)",
        boot.as_secs_f64(),
        stop.as_secs_f64()
    ));
}
