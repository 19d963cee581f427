//! End-to-end tests against the real Docker daemon (Docker 26 / BuildKit on this project's hosts).
//!
//! Every test first calls `Engine::detect`: without a reachable daemon it prints
//! `=== SKIPPED: e2e test … ===` and passes, unless `SYSFILE_E2E=required` (set by `.ci/run`),
//! which turns that into a failure. Tests that need the frontend build it once per process with
//! `scripts/frontend-image` (image `local/sysfile:dev`, or `SYSFILE_FRONTEND_IMAGE`).
//!
//! The tests run in parallel; builds are limited to two at a time by the harness. Containers and
//! images get unique names (`sysfile-e2e-<test>-<pid>-<n>`) and are removed by Drop guards, also
//! when a test fails (set `SYSFILE_E2E_KEEP=1` to keep them for debugging).
//!
//! The inline Sysfiles below use the spec shape of `src/model.rs` (`[image] from`,
//! `[packages] install`, `[services] enable`, `[[run]] sh`).
//!
//! Run one: `SYSFILE_E2E=required cargo test --test e2e harness_boots -- --nocapture`.

#[path = "e2e/harness.rs"]
mod harness;

use harness::*;
use std::path::Path;

/// The base Sysfile most tests build: Debian 12 + openssh-server, `ssh` enabled.
/// `{frontend}` is replaced by the frontend tag.
const SSHD_SPEC: &str = r#"# syntax={frontend}
[image]
from = "local/debian:bookworm"

[packages]
install = ["openssh-server"]

[services]
enable = ["ssh"]
"#;

/// Writes `text` (with `{frontend}` replaced) to `<dir>/Sysfile` and returns its path.
fn write_sysfile(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("Sysfile");
    std::fs::write(&path, text.replace("{frontend}", &frontend_tag())).unwrap();
    path
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sysfile-e2e-")
        .tempdir()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The harness itself, without the sysfile frontend

/// The reference image: the Dockerfile of docker-offline.md §7 (what sysfile is meant to
/// produce, minus its labels), plus an `admin` user whose authorized key comes from the context
/// like the sshd example's `[[users]]`. It verifies the harness (build, contract flags, boot
/// checks, SSH, stop, the cached-build criterion) against the real daemon, and doubles as the
/// reference for what the stock Dockerfile frontend gives.
const REFERENCE_DOCKERFILE: &str = r#"FROM local/debian:bookworm
ENV container=docker
RUN apt-get update -o APT::Update::Error-Mode=any \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssh-server \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
RUN systemctl enable ssh \
 && systemctl mask dev-hugepages.mount sys-fs-fuse-connections.mount sys-kernel-config.mount \
      sys-kernel-debug.mount sys-kernel-tracing.mount systemd-remount-fs.service getty.target \
      console-getty.service systemd-firstboot.service systemd-udevd.service \
      systemd-udev-trigger.service systemd-modules-load.service proc-sys-fs-binfmt_misc.automount \
 && systemctl set-default multi-user.target
RUN useradd -m -s /bin/bash admin && install -d -m 700 -o admin -g admin /home/admin/.ssh
COPY --chown=admin:admin --chmod=600 keys/admin.pub /home/admin/.ssh/authorized_keys
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/lib/systemd/systemd"]
"#;

#[test]
fn harness_boots_a_reference_dockerfile_image() {
    let Some(engine) = Engine::detect("harness_boots_a_reference_dockerfile_image") else {
        return;
    };
    engine.require_base_image();
    let keys = tempdir();
    let (key, public) = keypair(keys.path());
    let ctx = tempdir();
    std::fs::create_dir_all(ctx.path().join("keys")).unwrap();
    std::fs::write(ctx.path().join("keys/admin.pub"), public).unwrap();
    let dockerfile = ctx.path().join("Dockerfile");
    std::fs::write(&dockerfile, REFERENCE_DOCKERFILE).unwrap();

    let test = "harness_reference";
    let first = engine.build(test, ctx.path(), &dockerfile, &[]);
    first.assert_ok("reference image");
    // The fresh key makes the COPY step new in every run, so the criterion must see it execute.
    let first_vertices = parse_plain_progress(&first.output);
    let ran: Vec<&str> = executed_steps(&first_vertices)
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert!(
        ran.iter().any(|n| n.contains("COPY")),
        "the cached-build criterion missed the COPY step that ran; executed: {ran:?}\n{}",
        first.output
    );
    // Same context again: everything cached, nothing executed (the second_build criterion).
    let second = engine.build(test, ctx.path(), &dockerfile, &[]);
    second.assert_ok("reference image, second build");
    let vertices = parse_plain_progress(&second.output);
    let ran = executed_steps(&vertices);
    assert!(
        ran.is_empty(),
        "second build executed steps: {ran:?}\n{}",
        second.output
    );
    assert!(
        vertices.iter().any(|v| v.cached),
        "second build shows no CACHED step:\n{}",
        second.output
    );

    // The image: empty machine-id, the contract's stop signal.
    assert_eq!(
        image_file(first.tag(), "/etc/machine-id"),
        "",
        "/etc/machine-id must be empty in the image"
    );
    let config = &inspect_image(first.tag())["Config"];
    assert_eq!(config["StopSignal"], "SIGRTMIN+3");

    let c = engine.run_container(test, first.tag(), &[]);
    let t = boot_checks(&engine, &c, "admin", &key);
    eprintln!(
        "[e2e] reference image: build {:.1}s (second, cached: {:.1}s), docker run -> running {:.2}s, docker stop {:.2}s",
        first.elapsed.as_secs_f64(),
        second.elapsed.as_secs_f64(),
        t.to_running.as_secs_f64(),
        t.stop.as_secs_f64()
    );
}

/// `scripts/lib.sh` `contract_flags` (used by scripts/demo) and the harness's
/// `contract_flags_for` must give the same flags for every host kind. Needs bash, not Docker.
#[test]
fn contract_flags_agree_with_scripts_lib() {
    let lib = repo_root().join("scripts/lib.sh");
    for fstype in ["tmpfs", "cgroup2fs"] {
        for major in [20, 24, 25, 26, 27, 28, 29] {
            let script = format!(". '{}' && contract_flags {fstype} {major}", lib.display());
            let r = run("bash", &["-c", &script]);
            assert!(r.ok(), "contract_flags failed: {}", r.stderr);
            let shell: Vec<&str> = r.stdout.lines().collect();
            assert_eq!(
                shell,
                contract_flags_for(fstype, major),
                "cgroup {fstype}, Docker {major}"
            );
            let script = format!(
                ". '{}' && contract_stop_exit_code {fstype} {major}",
                lib.display()
            );
            let r = run("bash", &["-c", &script]);
            let rust = contract_stop_exit_code(&contract_flags_for(fstype, major));
            assert_eq!(
                r.stdout.trim(),
                rust.to_string(),
                "stop exit code, cgroup {fstype}, Docker {major}"
            );
        }
    }
    // This host's recipe, spelled out (docker-offline.md §8, Docker 26 on cgroup v1).
    assert_eq!(
        contract_flags_for("tmpfs", 26).join(" "),
        "-t --init=false --tmpfs /run:exec,mode=755 --tmpfs /run/lock --tmpfs /tmp \
         -v /sys/fs/cgroup:/sys/fs/cgroup:rw --stop-timeout 30"
    );
}

/// The parsers of docker's output, on text captured from Docker 26.1.5.
#[test]
fn output_parsers_read_docker_26_output() {
    let failed = "#6 [3/3] RUN true   && exit 3\n#6 ERROR: process \"/bin/sh -c true   && exit 3\" did not complete successfully: exit code: 3\n------\n > [3/3] RUN true   && exit 3:\n------\nDockerfile.ml:4\n--------------------\n   3 |     \n   4 | >>> RUN true \\\n   5 | >>>   && exit 3\n   6 |     \n--------------------\nERROR: failed to solve: process \"/bin/sh -c true   && exit 3\" did not complete successfully: exit code: 3\n";
    assert_eq!(error_lines(failed, "Dockerfile.ml"), vec![4, 4, 5]);
    assert_eq!(error_lines(failed, "Sysfile"), Vec::<u32>::new());
    let cached = "#0 building with \"default\" instance using docker driver\n\n#1 [internal] load build definition from Dockerfile.ok\n#1 transferring dockerfile: 93B done\n#1 DONE 0.0s\n\n#4 [1/3] FROM docker.io/local/debian:bookworm\n#4 DONE 0.0s\n\n#5 [2/3] RUN true\n#5 CACHED\n\n#6 [3/3] RUN echo hi > /x\n#6 CACHED\n\n#7 exporting to image\n#7 exporting layers done\n#7 DONE 0.0s\n";
    let v = parse_plain_progress(cached);
    assert!(executed_steps(&v).is_empty(), "{v:?}");
    let ran = cached.replace("#6 CACHED", "#6 0.105 hi\n#6 DONE 0.2s");
    let v = parse_plain_progress(&ran);
    let names: Vec<&str> = executed_steps(&v).iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, vec!["[3/3] RUN echo hi > /x"]);
}

// ---------------------------------------------------------------------------------------------
// The sysfile frontend (these fail until `sysfile frontend` and `sysfile frontend-caps` exist)

#[test]
fn sshd_example_builds_and_boots() {
    let Some(engine) = Engine::detect("sshd_example_builds_and_boots") else {
        return;
    };
    engine.require_base_image();
    let frontend = engine.frontend_image();
    let example = repo_root().join("examples/sshd");
    assert!(
        example.join("Sysfile").is_file(),
        "examples/sshd/Sysfile does not exist"
    );
    // A copy of the example with a fresh key for `admin` (the spec reads keys/admin.pub).
    let keys = tempdir();
    let (key, public) = keypair(keys.path());
    let ctx = tempdir();
    copy_tree(&example, ctx.path());
    std::fs::create_dir_all(ctx.path().join("keys")).unwrap();
    std::fs::write(ctx.path().join("keys/admin.pub"), public).unwrap();

    let syntax = format!("BUILDKIT_SYNTAX={frontend}");
    // The example names local/sysfile:dev; only override it when testing another tag.
    let extra: Vec<&str> = if frontend == DEFAULT_FRONTEND_IMAGE {
        vec![]
    } else {
        vec!["--build-arg", syntax.as_str()]
    };
    let build = engine.build(
        "sshd_example",
        ctx.path(),
        &ctx.path().join("Sysfile"),
        &extra,
    );
    build.assert_ok("examples/sshd");

    assert_eq!(
        image_file(build.tag(), "/etc/machine-id"),
        "",
        "/etc/machine-id must be empty in the image"
    );
    let c = engine.run_container("sshd_example", build.tag(), &[]);
    let t = boot_checks(&engine, &c, "admin", &key);
    eprintln!(
        "[e2e] examples/sshd: build {:.1}s, docker run -> running {:.2}s, docker stop {:.2}s",
        build.elapsed.as_secs_f64(),
        t.to_running.as_secs_f64(),
        t.stop.as_secs_f64()
    );
}

#[test]
fn image_config_carries_the_contract() {
    let Some(engine) = Engine::detect("image_config_carries_the_contract") else {
        return;
    };
    engine.require_base_image();
    engine.frontend_image();
    let ctx = tempdir();
    let sysfile = write_sysfile(ctx.path(), SSHD_SPEC);
    let build = engine.build("image_config", ctx.path(), &sysfile, &[]);
    build.assert_ok("image config spec");
    let image = inspect_image(build.tag());
    let config = &image["Config"];

    let entrypoint: Vec<&str> = config["Entrypoint"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    let pid1_ok = entrypoint
        .first()
        .is_some_and(|p| *p == "/sbin/init" || p.rsplit('/').next() == Some("systemd"));
    assert!(
        pid1_ok,
        "Entrypoint {entrypoint:?}: expected [\"/sbin/init\"] or a path to systemd"
    );

    let env: Vec<&str> = config["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        env.contains(&"container=docker"),
        "Env {env:?} lacks container=docker"
    );
    for leaked in ["SYSFILE", "SYSTEMD_OFFLINE"] {
        assert!(
            !env.iter().any(|e| e.contains(leaked)),
            "build-time variable {leaked} leaked into Env {env:?}"
        );
    }
    assert_eq!(config["StopSignal"], "SIGRTMIN+3", "StopSignal");
    assert!(
        config["Healthcheck"]["Test"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "no Healthcheck in {:#}",
        config["Healthcheck"]
    );

    let labels = config["Labels"].as_object().cloned().unwrap_or_default();
    let missing: Vec<&str> = [
        "sysfile.runtime.tmpfs",
        "sysfile.runtime.tty",
        "sysfile.runtime.stop-timeout",
        "sysfile.runtime.docker",
        "sysfile.systemd.target",
        "sysfile.systemd.units.enabled",
        "sysfile.systemd.units.masked",
        "sysfile.health.cmd",
        "RUN",
        "org.opencontainers.image.base.name",
        "org.opencontainers.image.base.digest",
    ]
    .into_iter()
    .filter(|l| !labels.contains_key(*l))
    .collect();
    assert!(
        missing.is_empty(),
        "labels missing: {missing:?}; present: {:?}",
        labels.keys().collect::<Vec<_>>()
    );
}

#[test]
fn spec_error_shows_sysfile_line() {
    let Some(engine) = Engine::detect("spec_error_shows_sysfile_line") else {
        return;
    };
    engine.frontend_image();
    let ctx = tempdir();
    // Line 4 has a key the spec does not know.
    let sysfile = write_sysfile(
        ctx.path(),
        "# syntax={frontend}\n[image]\nfrom = \"local/debian:bookworm\"\ncolour = \"blue\"\n",
    );
    let build = engine.build("spec_error", ctx.path(), &sysfile, &[]);
    build.assert_failed("unknown key");
    // Docker 26 prints `Sysfile:4` and a code frame with `   4 | >>> colour = "blue"`.
    let lines = error_lines(&build.output, "Sysfile");
    assert!(
        build.output.lines().any(|l| l == "Sysfile:4") && lines.contains(&4),
        "the error does not point at Sysfile:4 (lines found: {lines:?}):\n{}",
        tail(&build.output, 40)
    );
}

#[test]
fn failing_run_step_shows_its_line() {
    let Some(engine) = Engine::detect("failing_run_step_shows_its_line") else {
        return;
    };
    engine.require_base_image();
    engine.frontend_image();
    let ctx = tempdir();
    // The [[run]] entry spans lines 5-6; the frame must cover it.
    let sysfile = write_sysfile(
        ctx.path(),
        "# syntax={frontend}\n[image]\nfrom = \"local/debian:bookworm\"\n\n[[run]]\nsh = \"exit 3\"\n",
    );
    let build = engine.build("failing_run", ctx.path(), &sysfile, &[]);
    build.assert_failed("[[run]] exit 3");
    assert!(
        build.output.contains("exit code: 3"),
        "no `exit code: 3` in:\n{}",
        tail(&build.output, 40)
    );
    let lines = error_lines(&build.output, "Sysfile");
    assert!(
        lines.iter().any(|l| (5..=6).contains(l)),
        "the error does not point at the [[run]] entry, Sysfile:5-6 (lines found: {lines:?}):\n{}",
        tail(&build.output, 40)
    );
}

/// Criterion (see `harness::executed_steps`): in the second build's plain progress, every vertex
/// that is not bookkeeping (frontend/image resolution, local transfers, export) is `CACHED` and
/// printed no output lines, and at least one vertex is `CACHED`. The reference-image test checks
/// the same criterion both ways on the stock Dockerfile frontend.
#[test]
fn second_build_runs_no_step() {
    let Some(engine) = Engine::detect("second_build_runs_no_step") else {
        return;
    };
    engine.require_base_image();
    engine.frontend_image();
    let ctx = tempdir();
    let sysfile = write_sysfile(ctx.path(), SSHD_SPEC);
    let first = engine.build("second_build", ctx.path(), &sysfile, &[]);
    first.assert_ok("first build");
    let second = engine.build("second_build", ctx.path(), &sysfile, &[]);
    second.assert_ok("second build");
    let vertices = parse_plain_progress(&second.output);
    let ran = executed_steps(&vertices);
    assert!(
        ran.is_empty(),
        "the second build executed steps: {ran:#?}\n{}",
        second.output
    );
    assert!(
        vertices.iter().any(|v| v.cached),
        "the second build shows no CACHED step:\n{}",
        second.output
    );
}

/// `buildctl build --frontend gateway.v0 --opt source=local/sysfile:dev` is the path a plain
/// BuildKit user takes, but Debian packages neither buildkitd nor buildctl (docker-offline.md
/// §12) and there is no registry to fetch them, so it cannot run here. The equivalent through
/// Docker is the dockerfile frontend forwarding to a gateway image named by the
/// `BUILDKIT_SYNTAX` build argument, with no `# syntax=` line in the spec: the same gateway.v0
/// hop and the same frontend protocol, which this test covers.
#[test]
fn buildctl_gateway_path() {
    let Some(engine) = Engine::detect("buildctl_gateway_path") else {
        return;
    };
    engine.require_base_image();
    let frontend = engine.frontend_image();
    let ctx = tempdir();
    let spec = SSHD_SPEC.lines().skip(1).collect::<Vec<_>>().join("\n") + "\n";
    assert!(!spec.contains("syntax="));
    let sysfile = write_sysfile(ctx.path(), &spec);
    let arg = format!("BUILDKIT_SYNTAX={frontend}");
    // `docker buildx build` with the docker driver puts the result in the image store.
    let build = engine.build_with(
        &["buildx", "build"],
        "gateway_path",
        ctx.path(),
        &sysfile,
        &["--build-arg", &arg],
    );
    build.assert_ok("BUILDKIT_SYNTAX build");
    let config = &inspect_image(build.tag())["Config"];
    assert_eq!(
        config["StopSignal"], "SIGRTMIN+3",
        "the image was not made by the sysfile frontend"
    );
    assert!(
        config["Labels"]["sysfile.systemd.target"].is_string(),
        "no sysfile.systemd.target label"
    );
}
