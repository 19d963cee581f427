//! One e2e test per feature example (`examples/includes`, `named-context`, `secrets`,
//! `reproducible`, `lint`): each builds the example through the real frontend with the flags its
//! README gives, boots it where that shows something, and checks what the example is about.
//!
//! Same rules as `tests/e2e.rs` (shared harness in `testkit/src/harness.rs`): without a daemon each
//! test prints `=== SKIPPED … ===` and passes, unless `SYSFILE_E2E=required`. Each example is
//! built from a copy whose `# syntax=` line names the frontend under test
//! (`SYSFILE_FRONTEND_IMAGE`, default `local/sysfile:dev`).
//!
//! Run: `SYSFILE_E2E=required cargo test --test e2e_features -- --nocapture`.

use sysfile_testkit::harness;
use sysfile_testkit::leaks;

use harness::*;
use leaks::*;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BOOT_BOUND: Duration = Duration::from_secs(60);
/// `SOURCE_DATE_EPOCH` of the reproducible example's test and its RFC 3339 form.
const EPOCH: &str = "1700000000";
const EPOCH_RFC3339: &str = "2023-11-14T22:13:20Z";

// ---------------------------------------------------------------------------------------------
// Local helpers

/// The engine with base and frontend images ready, or `None` (skip).
fn setup(test: &str) -> Option<Engine> {
    let engine = Engine::detect(test)?;
    engine.require_base_image();
    engine.frontend_image();
    Some(engine)
}

/// A copy of `examples/<name>` whose Sysfile's `# syntax=` line names the frontend under test.
fn example_copy(name: &str) -> tempfile::TempDir {
    let example = repo_root().join("examples").join(name);
    let ctx = tempdir();
    copy_tree(&example, ctx.path());
    let file = ctx.path().join("Sysfile");
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", example.join("Sysfile").display()));
    let (first, rest) = text.split_once('\n').expect("a multi-line Sysfile");
    assert!(
        first.starts_with("# syntax="),
        "examples/{name}/Sysfile must start with a `# syntax=` line, found {first:?}"
    );
    std::fs::write(&file, format!("# syntax={}\n{rest}", frontend_tag())).unwrap();
    ctx
}

/// `docker buildx build` of a prepared example copy (its `Sysfile`, the copy as context).
fn buildx(engine: &Engine, test: &str, ctx: &Path, extra: &[&str]) -> Build {
    engine.build_with(&["buildx", "build"], test, ctx, &ctx.join("Sysfile"), extra)
}

/// `docker run --rm --entrypoint CMD IMAGE ARGS…` without booting: stdout, panics on failure.
fn image_cmd(image: &str, cmd: &str, args: &[&str]) -> String {
    let mut full = vec!["run", "--rm", "--network=none", "--entrypoint", cmd, image];
    full.extend_from_slice(args);
    let r = docker(&full);
    assert!(
        r.ok(),
        "{cmd} {args:?} in {image}: {}{}",
        r.stdout,
        r.stderr.trim()
    );
    r.stdout
}

/// `docker history` of IMAGE as (created, created_by), newest first.
fn history(image: &str) -> Vec<(String, String)> {
    let r = docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedAt}}|{{.CreatedBy}}",
        image,
    ]);
    assert!(r.ok(), "docker history {image}: {}", r.stderr.trim());
    r.stdout
        .lines()
        .map(|l| {
            let (at, by) = l.split_once('|').unwrap_or((l, ""));
            (at.to_string(), by.to_string())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The examples

/// examples/includes: the user and the unit come from fragments; the booted container has the
/// user, and the unit is enabled, active and ran as that user.
#[test]
fn includes_example() {
    let test = "includes_example";
    let Some(engine) = setup(test) else { return };
    let ctx = example_copy("includes");
    let build = buildx(&engine, test, ctx.path(), &[]);
    build.assert_ok("examples/includes");
    let enabled = image_label_list(build.tag(), "sysfile.systemd.units.enabled");
    assert!(
        enabled.iter().any(|u| u == "hello.service"),
        "the included unit is not in sysfile.systemd.units.enabled: {enabled:?}"
    );

    let c = start_container(build.tag(), &unique_name(test));
    assert_boots_to_running(&c, BOOT_BOUND, &|| c.logs_tail(60));
    let id = c.exec_full(&["id", "-un", "app"]);
    assert_eq!(
        (id.code, id.stdout.trim()),
        (0, "app"),
        "the included user `app`: {}",
        id.stderr
    );
    let (code, active) = c.exec(&["systemctl", "is-active", "hello.service"]);
    assert_eq!((code, active.trim()), (0, "active"), "the included unit");
    let (_, enabled) = c.exec(&["systemctl", "is-enabled", "hello.service"]);
    assert_eq!(enabled.trim(), "enabled", "the included unit's enablement");
    // The unit ran as the included user; console_logs puts its line in `docker logs`.
    let line = poll_until(Duration::from_secs(20), &|| c.logs(), &|l| {
        l.contains("hello from an included unit, running as app")
    });
    assert!(
        line.is_ok(),
        "docker logs has no line from hello.service:\n{}",
        tail(&line.unwrap_err(), 40)
    );
    let (stop, exit) = c.stop();
    assert_eq!(exit, 0, "exit code after docker stop");
    eprintln!(
        "[e2e_features] includes: build {:.1}s, stop {:.2}s",
        build.elapsed.as_secs_f64(),
        stop.as_secs_f64()
    );
}

/// examples/named-context: `[[files]] from = "site"` copies from a directory context, and a
/// bind mount `from = "tools"` reads the os-release of an image context during the build.
#[test]
fn named_context_example() {
    let test = "named_context_example";
    let Some(engine) = setup(test) else { return };
    let ctx = example_copy("named-context");
    let site = format!("site={}", ctx.path().join("site-content").display());
    let tools = format!("tools=docker-image://{BASE_IMAGE}");
    // --no-cache: the step that reads the tools context must print its line in this build.
    let build = buildx(
        &engine,
        test,
        ctx.path(),
        &[
            "--no-cache",
            "--build-context",
            &site,
            "--build-context",
            &tools,
        ],
    );
    build.assert_ok("examples/named-context");

    let expected = std::fs::read_to_string(ctx.path().join("site-content/index.txt")).unwrap();
    assert_eq!(image_file(build.tag(), "/srv/site/index.txt"), expected);
    let mode = image_cmd(build.tag(), "stat", &["-c", "%a", "/srv/site/index.txt"]);
    assert_eq!(mode.trim(), "644", "mode of /srv/site/index.txt");

    // The bind-mounted /etc/os-release of the tools image was read during the build.
    let os_release = image_file(BASE_IMAGE, "/etc/os-release");
    let pretty = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .expect("PRETTY_NAME in the base image's os-release")
        .trim_matches('"')
        .to_string();
    assert!(
        has_line_with(
            &build.output,
            &[&format!("tools context: PRETTY_NAME={pretty}")]
        ),
        "the build output does not show the tools context's os-release being read:\n{}",
        tail(&build.output, 60)
    );
    assert_eq!(
        image_file(build.tag(), "/etc/tools-os-release").trim(),
        pretty
    );
    // The tools image is mounted, not copied: nothing of it lands at the mount target.
    let (code, _) = docker_combined(&[
        "run",
        "--rm",
        "--network=none",
        "--entrypoint",
        "test",
        build.tag(),
        "-e",
        "/mnt/tools-os-release",
    ]);
    assert_ne!(code, 0, "the bind mount's target is left in the image");

    // Without the `site` context the build stops with a located error naming it.
    let missing = buildx(&engine, test, ctx.path(), &["--build-context", &tools]);
    missing.assert_failed("named-context without --build-context site");
    assert!(
        missing
            .output
            .contains("there is no build context named `site`"),
        "the error does not name the missing context:\n{}",
        tail(&missing.output, 30)
    );
    eprintln!(
        "[e2e_features] named-context: build (--no-cache) {:.1}s",
        build.elapsed.as_secs_f64()
    );
}

/// examples/secrets: a generated token and a throwaway agent key reach the steps; the token is
/// nowhere in the saved image (layers, files, config, history), only the fixed marker is.
#[test]
fn secrets_example() {
    let test = "secrets_example";
    let Some(engine) = setup(test) else { return };
    let ctx = example_copy("secrets");
    let secrets = tempdir();
    let token = random_hex(20); // fresh per run: also makes every step rerun (TOKEN_SHA256)
    let token_file = secrets.path().join("token.txt");
    std::fs::write(&token_file, &token).unwrap();
    let (key, _public) = keypair(secrets.path());
    let agent = Agent::start(secrets.path());
    agent.add(&key);
    let fp = run("ssh-keygen", &["-lf", key.to_str().unwrap()]);
    let fingerprint = fp
        .stdout
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("ssh-keygen -lf: {}{}", fp.stdout, fp.stderr))
        .to_string();

    let secret_flag = format!("id=token,src={}", token_file.display());
    let ssh_flag = format!("default={}", agent.socket.display());
    let hash_arg = format!(
        "TOKEN_SHA256={}",
        hex::encode(Sha256::digest(token.as_bytes()))
    );
    let build = buildx(
        &engine,
        test,
        ctx.path(),
        &[
            "--secret",
            &secret_flag,
            "--ssh",
            &ssh_flag,
            "--build-arg",
            &hash_arg,
        ],
    );
    build.assert_ok("examples/secrets");
    drop(agent);
    for want in [
        "token matches TOKEN_SHA256",
        "token used: 40 bytes",
        "SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0",
    ] {
        assert!(
            build.output.contains(want),
            "the build output lacks {want:?}:\n{}",
            tail(&build.output, 60)
        );
    }
    assert!(
        has_line_with(&build.output, &[&fingerprint, "sysfile-e2e"]),
        "`ssh-add -l` in the step did not list {fingerprint}:\n{}",
        tail(&build.output, 60)
    );
    assert!(
        !build.output.contains(&token),
        "the token appears in the build output"
    );
    let marker = "a token was used at build time\n";
    assert_eq!(image_file(build.tag(), "/etc/token-used"), marker);

    let scan = scan_saved_image(build.tag(), &[token.as_bytes(), marker.trim().as_bytes()]);
    eprintln!(
        "[e2e_features] secrets: build {:.1}s; scanned {} layers, {} files",
        build.elapsed.as_secs_f64(),
        scan.layers,
        scan.files
    );
    assert!(
        scan.hits[0].is_empty(),
        "the token leaked into the image: {:?}",
        scan.hits[0]
    );
    assert!(
        scan.hits[1]
            .iter()
            .any(|p| p.ends_with("file etc/token-used")),
        "the scan did not find the marker file in any layer (the scan is broken): {:?}",
        scan.hits[1]
    );
    let mount_points: Vec<&String> = scan
        .layer_paths
        .iter()
        .filter(|p| p.contains("run/secrets") || p.contains("ssh_agent"))
        .collect();
    assert!(
        mount_points.is_empty(),
        "a secret or agent mount point is in a layer: {mount_points:?}"
    );
}

/// examples/reproducible: with SOURCE_DATE_EPOCH the config's `created`, every sysfile history
/// entry and the files sysfile writes carry that time; a second build is entirely cached (the
/// frontend produced the same LLB); a `--no-cache` rebuild has the same config times. Layer
/// digests are reported, not asserted (they depend on the exporter: see the example's README).
#[test]
fn reproducible_example() {
    let test = "reproducible_example";
    let Some(engine) = setup(test) else { return };
    let ctx = example_copy("reproducible");
    let arg = format!("SOURCE_DATE_EPOCH={EPOCH}");
    let first = buildx(&engine, test, ctx.path(), &["--build-arg", &arg]);
    first.assert_ok("examples/reproducible");

    let check_times = |image: &str| {
        let config = inspect_image(image);
        assert_eq!(config["Created"], EPOCH_RFC3339, "{image}: image Created");
        let hist = history(image);
        let ours: Vec<&(String, String)> = hist
            .iter()
            .filter(|(_, by)| by.starts_with("[sysfile]"))
            .collect();
        assert!(
            ours.len() >= 3,
            "{image}: sysfile history entries: {hist:?}"
        );
        let wrong: Vec<_> = ours.iter().filter(|(at, _)| at != EPOCH_RFC3339).collect();
        assert!(
            wrong.is_empty(),
            "{image}: history entries not at {EPOCH_RFC3339}: {wrong:?}"
        );
        let stamps = image_cmd(
            image,
            "stat",
            &["-c", "%Y %n", "/etc/motd", "/etc/build-date"],
        );
        assert_eq!(
            stamps,
            format!("{EPOCH} /etc/motd\n{EPOCH} /etc/build-date\n"),
            "{image}: file times"
        );
        assert_eq!(image_file(image, "/etc/build-date").trim(), EPOCH_RFC3339);
        config["RootFS"]["Layers"].clone()
    };
    let layers_first = check_times(first.tag());

    // Same inputs, same LLB: BuildKit finds every step in its cache.
    let second = buildx(&engine, test, ctx.path(), &["--build-arg", &arg]);
    second.assert_ok("examples/reproducible, second build");
    let vertices = parse_plain_progress(&second.output);
    let executed: Vec<&str> = executed_steps(&vertices)
        .iter()
        .map(|v| v.name.as_str())
        .collect();
    assert!(
        executed.is_empty(),
        "the second build ran steps (the LLB changed?): {executed:?}"
    );

    // Every step again: the config times are the same; layer digests are what the exporter makes.
    let fresh = buildx(
        &engine,
        test,
        ctx.path(),
        &["--no-cache", "--build-arg", &arg],
    );
    fresh.assert_ok("examples/reproducible, --no-cache");
    let layers_fresh = check_times(fresh.tag());
    let same_layers = layers_first == layers_fresh;

    // `rewrite-timestamp=true` (a BuildKit v0.13 exporter option): Docker 26's `docker`
    // exporter accepts it; whether it changes the layers is reported, not asserted.
    let rewritten = buildx(
        &engine,
        test,
        ctx.path(),
        &[
            "--no-cache",
            "--build-arg",
            &arg,
            "--output",
            "type=docker,rewrite-timestamp=true",
        ],
    );
    rewritten.assert_ok("examples/reproducible, --output type=docker,rewrite-timestamp=true");
    let layers_rewritten = check_times(rewritten.tag());
    eprintln!(
        "[e2e_features] reproducible: builds {:.1}s / {:.1}s (cached) / {:.1}s (--no-cache) / \
         {:.1}s (rewrite-timestamp); created and history = {EPOCH_RFC3339} in all; layer digests \
         equal after --no-cache: {same_layers}; with rewrite-timestamp=true equal to the first: {}",
        first.elapsed.as_secs_f64(),
        second.elapsed.as_secs_f64(),
        fresh.elapsed.as_secs_f64(),
        rewritten.elapsed.as_secs_f64(),
        layers_first == layers_rewritten,
    );
}

/// examples/lint: `--print=lint` lists the rules the spec triggers, and the build still
/// succeeds, with the findings as warnings.
#[test]
fn lint_example() {
    let test = "lint_example";
    let Some(engine) = setup(test) else { return };
    let ctx = example_copy("lint");
    let rules = [
        ("NoConsoleLogs", "no-console-logs"),
        ("PackageManagerInRun", "package-manager-in-run"),
        ("HealthNone", "health-none"),
        ("StopTimeoutRange", "stop-timeout-range"),
    ];

    let started = Instant::now();
    let out = Command::new(DOCKER)
        .env("BUILDX_EXPERIMENTAL", "1")
        .args(["buildx", "build", "--progress=plain", "--print=lint", "-f"])
        .arg(ctx.path().join("Sysfile"))
        .arg(ctx.path())
        .stdin(Stdio::null())
        .output()
        .expect("cannot run docker buildx");
    let lint_time = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "--print=lint failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (rule, _) in rules {
        assert!(
            stdout.contains(&format!("WARNING: {rule} ")),
            "--print=lint does not list {rule}:\n{stdout}"
        );
    }
    // The local base: Docker resolves it from its own store without a digest, so no pin is
    // known and `unpinned-base-image` stays silent (it fires where a registry gives a digest).
    assert!(
        !stdout.contains("UnpinnedBaseImage"),
        "--print=lint calls a local-only base unpinned:\n{stdout}"
    );

    let build = buildx(&engine, test, ctx.path(), &[]);
    build.assert_ok("examples/lint (warnings only)");
    assert!(
        build.output.contains("4 warnings found"),
        "the build does not report its 4 warnings:\n{}",
        tail(&build.output, 15)
    );
    for (_, code) in rules {
        assert!(
            build.output.contains(&format!("- {code}: ")),
            "the build's warnings lack {code}:\n{}",
            tail(&build.output, 15)
        );
    }
    assert!(
        !build.output.contains("unpinned-base-image"),
        "the build calls a local-only base unpinned:\n{}",
        tail(&build.output, 15)
    );

    // `[lint] skip` and a step's `lint_skip` silence rules in the build's warnings.
    let file = ctx.path().join("Sysfile");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "sh = \"apt-get install -s base-files\"",
        "sh = \"apt-get install -s base-files\"\nlint_skip = [\"package-manager-in-run\"]",
    );
    std::fs::write(&file, format!("{text}\n[lint]\nskip = [\"HealthNone\"]\n")).unwrap();
    let skipped = buildx(&engine, test, ctx.path(), &[]);
    skipped.assert_ok("examples/lint with skips");
    assert!(
        skipped.output.contains("2 warnings found")
            && !skipped.output.contains("- health-none: ")
            && !skipped.output.contains("- package-manager-in-run: "),
        "the skipped rules are still reported:\n{}",
        tail(&skipped.output, 15)
    );
    eprintln!(
        "[e2e_features] lint: --print=lint {:.1}s, build {:.1}s",
        lint_time.as_secs_f64(),
        build.elapsed.as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// examples/multi-platform

/// `[image] platforms`: `--platform` overrides it (one image), and the two refusals this daemon
/// must give are clear: buildx refuses several platforms with the classic image store, and sysfile
/// itself refuses a platform no worker can run.
#[test]
fn multi_platform_example() {
    let test = "multi_platform_example";
    let Some(engine) = setup(test) else {
        return;
    };
    let ctx = example_copy("multi-platform");
    // The example names debian:bookworm, which cannot be pulled here: the base is local.
    let file = ctx.path().join("Sysfile");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("\"debian:bookworm\"", "\"local/debian:bookworm\"");
    std::fs::write(&file, text).unwrap();

    let one = buildx(
        &engine,
        test,
        ctx.path(),
        &["--network=host", "--platform", "linux/amd64"],
    );
    one.assert_ok("--platform linux/amd64 overrides [image] platforms");
    assert_eq!(inspect_image(one.tag())["Architecture"], "amd64");

    let several = buildx(
        &engine,
        test,
        ctx.path(),
        &["--network=host", "--platform", "linux/amd64,linux/386"],
    );
    several.assert_failed("several platforms on the classic image store");
    assert!(
        several
            .output
            .contains("Multi-platform build is not supported for the docker driver"),
        "{}",
        tail(&several.output, 20)
    );

    let foreign = buildx(
        &engine,
        test,
        ctx.path(),
        &["--network=host", "--platform", "linux/s390x"],
    );
    foreign.assert_failed("a platform no worker runs");
    assert!(
        foreign
            .output
            .contains("this builder cannot run build steps for linux/s390x"),
        "{}",
        tail(&foreign.output, 20)
    );
}

// ---------------------------------------------------------------------------------------------
// The manager settings: DefaultEnvironment, DefaultTimeoutStopSec and console forwarding

/// `[config] env` reaches services through the manager's `DefaultEnvironment=`, `stop_timeout`
/// is systemd's `DefaultTimeoutStopSec`, and `console_logs` turns on journald's console forwarding
/// (contract rows 19–21), read from the running system of the sshd example.
#[test]
fn manager_settings_reach_the_running_system() {
    let test = "manager_settings_reach_the_running_system";
    let Some(engine) = setup(test) else {
        return;
    };
    let ctx = example_copy("sshd");
    std::fs::create_dir_all(ctx.path().join("keys")).unwrap();
    std::fs::write(ctx.path().join("keys/admin.pub"), "").unwrap();
    let build = buildx(&engine, test, ctx.path(), &["--network=host"]);
    build.assert_ok("sshd example");
    let container = start_container(build.tag(), &unique_name("manager-settings"));
    assert_eq!(
        container.wait_running(BOOT_BOUND).as_deref(),
        Ok("running"),
        "{}",
        failed_units(&container)
    );
    let (_, environment) = container.exec(&["systemctl", "show-environment"]);
    assert!(
        environment.lines().any(|l| l == "TZ=UTC"),
        "show-environment:\n{environment}"
    );
    let (_, timeout) = container.exec(&["systemctl", "show", "--property=DefaultTimeoutStopUSec"]);
    assert_eq!(timeout.trim(), "DefaultTimeoutStopUSec=20s");
    let image = inspect_image(build.tag());
    assert_eq!(
        image["Config"]["Labels"]["sysfile.runtime.stop-timeout"], "30",
        "the engine waits systemd's 20 s plus a margin"
    );
    let (_, journald) = container.exec(&["systemd-analyze", "cat-config", "systemd/journald.conf"]);
    assert!(journald.contains("ForwardToConsole=yes"), "{journald}");
}
