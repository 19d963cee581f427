//! The e2e harness: drives the real Docker daemon (`/usr/bin/docker`) for `tests/e2e.rs`.
//!
//! * [`Engine::detect`] decides whether a test runs: no daemon means a loud skip, or a failure
//!   when `SYSFILE_E2E=required` (CI sets it).
//! * [`Engine::frontend_image`] runs `scripts/frontend-image` once per test process.
//! * Builds go through a semaphore (at most [`MAX_PARALLEL_BUILDS`] at a time) and return their
//!   combined `--progress=plain` output; containers and images are removed by Drop guards, also
//!   when a test panics.
//! * Containers start the way users start them: `sysfile run` (the one place the engine flags
//!   are spelled).

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Debian's client, never whatever is first on PATH (a newer client may sit in /usr/local/bin).
pub const DOCKER: &str = "/usr/bin/docker";
/// The base image `scripts/setup-engine` makes.
pub const BASE_IMAGE: &str = "local/debian:bookworm";
/// The frontend tag the examples' `# syntax=` lines name.
pub const DEFAULT_FRONTEND_IMAGE: &str = "local/sysfile:dev";
/// Parallel `docker build`s on a 2-core machine.
pub const MAX_PARALLEL_BUILDS: usize = 2;

/// The sysfile repository (this crate is its `testkit/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit/ is inside the repository")
        .to_path_buf()
}

/// A fresh temporary directory `sysfile-e2e-<pid>-*`, removed on drop. The first call in a
/// process removes the directories of test processes that are gone (a killed run, or a directory
/// held by a `static`, which is never dropped).
pub fn tempdir() -> tempfile::TempDir {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| sweep_stale_tempdirs(&std::env::temp_dir()));
    tempfile::Builder::new()
        .prefix(&format!("sysfile-e2e-{}-", std::process::id()))
        .tempdir()
        .unwrap()
}

/// Whether the process `pid` is gone.
fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid of the test process that made a [`tempdir`] named `name` (`sysfile-e2e-<pid>-…`).
fn tempdir_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("sysfile-e2e-")?;
    rest.split_once('-')?.0.parse().ok()
}

/// The pid of the test process that made the image `tag` from a [`unique_name`]
/// (`[REGISTRY/]sysfile-e2e/<test>-<pid>-<n>[:TAG]`, or `sysfile-e2e-<test>-<pid>-<n>[:TAG]`).
fn test_image_owner(tag: &str) -> Option<u32> {
    let at = tag.find("sysfile-e2e")?;
    if at > 0 && !tag[..at].ends_with('/') {
        return None;
    }
    let rest = &tag[at + "sysfile-e2e".len()..];
    let name = rest.strip_prefix('/').or_else(|| rest.strip_prefix('-'))?;
    let name = name.split(':').next().unwrap_or(name);
    let (owner, n) = name.rsplit_once('-')?;
    n.parse::<u32>().ok()?;
    owner.rsplit('-').next()?.parse().ok()
}

/// Removes `DIR/sysfile-e2e-<pid>-*` directories whose process is gone.
fn sweep_stale_tempdirs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .file_name()
            .to_str()
            .and_then(tempdir_owner)
            .is_some_and(gone);
        if stale && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Removes the test images ([`test_image_owner`]) that a test process which is gone left on
/// `daemon`: a killed run never drops its guards. Once per
/// daemon and process, before the first image is tagged there ([`ImageGuard::new`]).
fn sweep_stale_images(daemon: &Daemon) {
    static SWEPT: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|e| e.into_inner());
        if swept.contains(&daemon.name) {
            return;
        }
        swept.push(daemon.name);
    }
    let listed = daemon.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    if !listed.ok() {
        return;
    }
    let stale: Vec<&str> = listed
        .stdout
        .lines()
        .filter(|tag| test_image_owner(tag).is_some_and(gone))
        .collect();
    if !stale.is_empty() {
        let mut args = vec!["rmi", "-f"];
        args.extend(&stale);
        let _ = daemon.docker(&args);
    }
}

/// Whether CI demands the real engines (`SYSFILE_E2E=required`): then a missing piece fails.
pub fn e2e_required() -> bool {
    std::env::var("SYSFILE_E2E").as_deref() == Ok("required")
}

/// Skips a test loudly (straight to stderr: libtest captures eprintln! of passing tests), or
/// panics when [`e2e_required`]. Returns false so callers can `return` on it.
pub fn skip_or_fail(test: &str, why: &str) -> bool {
    if e2e_required() {
        panic!("e2e test {test}: {why}; SYSFILE_E2E=required makes this an error");
    }
    let _ = writeln!(
        std::io::stderr(),
        "=== SKIPPED: e2e test {test}: {why} (set SYSFILE_E2E=required to make this an error) ==="
    );
    false
}

/// The frontend image tag: `SYSFILE_FRONTEND_IMAGE` or `local/sysfile:dev`.
pub fn frontend_tag() -> String {
    std::env::var("SYSFILE_FRONTEND_IMAGE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            // Several checkouts share one daemon: each builds its own tag (passed to builds as
            // BUILDKIT_SYNTAX), so one checkout's tests never run another's frontend.
            let dir = repo_root();
            match dir.file_name().and_then(|n| n.to_str()) {
                Some(name) if name.starts_with("wt-") => format!("local/sysfile:{name}"),
                _ => DEFAULT_FRONTEND_IMAGE.to_string(),
            }
        })
}

/// An image repository unique within this machine's test runs, `sysfile-e2e/<test>-<pid>-<n>`:
/// [`unique_name`] under the `sysfile-e2e/` namespace that [`test_image_owner`] reads.
pub fn unique_image(test: &str) -> String {
    unique_name(test).replacen("sysfile-e2e-", "sysfile-e2e/", 1)
}

/// A name unique within this machine's test runs: `sysfile-e2e-<test>-<pid>-<n>`.
pub fn unique_name(test: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let test: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("sysfile-e2e-{test}-{}-{n}", std::process::id())
}

// ---------------------------------------------------------------------------------------------
// Processes

/// The result of a finished command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

impl From<std::process::Output> for Run {
    /// A finished command's exit code (-1 when a signal ended it) and its output as text.
    fn from(out: std::process::Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs a program to completion with stdin closed.
pub fn run(program: &str, args: &[&str]) -> Run {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    Run::from(out)
}

/// `docker ARGS…` against the main daemon.
pub fn docker(args: &[&str]) -> Run {
    Daemon::main().docker(args)
}

/// Runs docker with stderr merged into stdout (the order a user sees), returning (code, output).
pub fn docker_combined(args: &[&str]) -> (i32, String) {
    Daemon::main().combined(args)
}

/// A Docker daemon and the client that speaks to it. The main one (Docker 26, the default
/// socket) is what most tests use; the engine matrix adds Docker 20.10 on its own socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Daemon {
    /// A short name for messages: `docker-26`, `docker-20.10`.
    pub name: &'static str,
    pub client: &'static str,
    /// `-H` for the client and `DOCKER_HOST` for `sysfile run`; `None` = the default socket.
    pub host: Option<&'static str>,
}

impl Daemon {
    pub const fn main() -> Daemon {
        Daemon {
            name: "docker-26",
            client: DOCKER,
            host: None,
        }
    }

    fn args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut full = Vec::with_capacity(args.len() + 2);
        if let Some(host) = self.host {
            full.extend(["-H", host]);
        }
        full.extend_from_slice(args);
        full
    }

    pub fn docker(&self, args: &[&str]) -> Run {
        run(self.client, &self.args(args))
    }

    /// stderr merged into stdout, returning (code, output).
    pub fn combined(&self, args: &[&str]) -> (i32, String) {
        let mut full = vec!["-c", "exec \"$0\" \"$@\" 2>&1", self.client];
        full.extend(self.args(args));
        let r = run("sh", &full);
        (r.code, r.stdout)
    }

    /// The environment that points `sysfile run` (and any Docker client) at this daemon.
    pub fn env(&self) -> Vec<(&'static str, &'static str)> {
        self.host.map(|h| ("DOCKER_HOST", h)).into_iter().collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Engine

/// A reachable Docker daemon and what the tests need to know about it.
#[derive(Clone, Debug)]
pub struct Engine {
    pub server_version: String,
    pub cgroup_fstype: String,
}

impl Engine {
    /// The engine, or `None` after printing a loud skip message when no daemon is reachable.
    /// With `SYSFILE_E2E=required` an unreachable daemon fails the test instead.
    pub fn detect(test: &str) -> Option<Engine> {
        match probed() {
            Ok(engine) => Some(engine.clone()),
            Err(why) => {
                skip_or_fail(
                    test,
                    &format!("no Docker daemon reachable ({why}); run scripts/setup-engine"),
                );
                None
            }
        }
    }

    /// The main engine, or why there is none, without printing anything.
    pub fn detect_quietly() -> Result<Engine, String> {
        probed().clone()
    }

    /// Panics with a pointer to `scripts/setup-engine` when the base image is missing.
    pub fn require_base_image(&self) {
        let r = docker(&["image", "inspect", "--format", "{{.Id}}", BASE_IMAGE]);
        assert!(
            r.ok(),
            "base image {BASE_IMAGE} is missing; run scripts/setup-engine ({})",
            r.stderr.trim()
        );
    }

    /// Builds the frontend image with `scripts/frontend-image`, once per test process (the
    /// OnceLock makes parallel tests wait for the first build; `flock` guards against a second
    /// test process doing the same at once). Panics with the script's output when it fails.
    pub fn frontend_image(&self) -> String {
        static BUILT: OnceLock<Result<String, String>> = OnceLock::new();
        let built = BUILT.get_or_init(|| {
            let tag = frontend_tag();
            let script = repo_root().join("scripts/frontend-image");
            let started = Instant::now();
            let out = Command::new("flock")
                .arg("/tmp/sysfile-e2e-frontend-image.lock")
                .arg(&script)
                .env("SYSFILE_FRONTEND_IMAGE", &tag)
                .current_dir(repo_root())
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if !out.status.success() {
                return Err(format!(
                    "the frontend image could not be built: scripts/frontend-image failed ({}).\n\
                     Last lines of its output:\n{}",
                    out.status,
                    tail(&text, 25)
                ));
            }
            eprintln!(
                "[e2e] frontend image {tag} ready in {:.1}s: {}",
                started.elapsed().as_secs_f64(),
                text.lines().rfind(|l| l.contains(" size: ")).unwrap_or("")
            );
            Ok(tag)
        });
        match built {
            Ok(tag) => tag.clone(),
            Err(e) => panic!("{e}"),
        }
    }

    /// `docker build --progress=plain --network=host -f FILE -t TAG [extra] CONTEXT`, at most
    /// MAX_PARALLEL_BUILDS at a time. The returned guard removes the tag even if the build failed.
    pub fn build(&self, test: &str, context: &Path, file: &Path, extra: &[&str]) -> Build {
        self.build_with(&["build"], test, context, file, extra)
    }

    /// [`Engine::build`] of the Sysfile `file` in `context` with the frontend under test, not the
    /// one the spec's `# syntax=` line names: `--build-arg BUILDKIT_SYNTAX=<tag>` unless the tag
    /// is the default one the `# syntax=` lines already name. Builds the frontend image first
    /// ([`Engine::frontend_image`]).
    pub fn build_under_test(&self, test: &str, context: &Path, file: &Path) -> Build {
        let frontend = self.frontend_image();
        let syntax = format!("BUILDKIT_SYNTAX={frontend}");
        let extra: Vec<&str> = if frontend == DEFAULT_FRONTEND_IMAGE {
            vec![]
        } else {
            vec!["--build-arg", syntax.as_str()]
        };
        self.build(test, context, file, &extra)
    }

    /// [`Engine::build`] with another docker subcommand, e.g. `["buildx", "build"]`.
    pub fn build_with(
        &self,
        command: &[&str],
        test: &str,
        context: &Path,
        file: &Path,
        extra: &[&str],
    ) -> Build {
        let image = ImageGuard::new(format!("{}:latest", unique_image(test)), Daemon::main());
        let mut args: Vec<&str> = command.to_vec();
        args.extend(["--progress=plain", "--network=host"]);
        let file = file.to_str().expect("utf-8 path");
        let ctx = context.to_str().expect("utf-8 path");
        args.extend(["-f", file, "-t", &image.tag]);
        args.extend_from_slice(extra);
        args.push(ctx);
        let _permit = BuildPermit::acquire();
        let started = Instant::now();
        let (code, output) = docker_combined(&args);
        Build {
            code,
            output,
            elapsed: started.elapsed(),
            image,
        }
    }
}

/// The engine probe, made once per test process.
fn probed() -> &'static Result<Engine, String> {
    static PROBE: OnceLock<Result<Engine, String>> = OnceLock::new();
    PROBE.get_or_init(probe)
}

fn probe() -> Result<Engine, String> {
    if !Path::new(DOCKER).exists() {
        return Err(format!("{DOCKER} does not exist"));
    }
    // `timeout`: a hung daemon socket must not hang the tests.
    let r = run(
        "timeout",
        &["20", DOCKER, "info", "--format", "{{.ServerVersion}}"],
    );
    let version = r.stdout.trim().to_string();
    if !r.ok() || version.is_empty() {
        return Err(format!("`{DOCKER} info` failed: {}", r.stderr.trim()));
    }
    version
        .split('.')
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .ok_or_else(|| format!("unexpected Docker server version {version:?}"))?;
    let fstype = run("stat", &["-fc", "%T", "/sys/fs/cgroup"])
        .stdout
        .trim()
        .to_string();
    Ok(Engine {
        server_version: version,
        cgroup_fstype: fstype,
    })
}

// ---------------------------------------------------------------------------------------------
// Build semaphore

static BUILDS_RUNNING: Mutex<usize> = Mutex::new(0);
static BUILDS_FREED: Condvar = Condvar::new();

/// One of at most [`MAX_PARALLEL_BUILDS`] builds running at once, across every engine.
pub struct BuildPermit;

impl BuildPermit {
    pub fn acquire() -> BuildPermit {
        let mut n = BUILDS_RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= MAX_PARALLEL_BUILDS {
            n = BUILDS_FREED.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        BuildPermit
    }
}

impl Drop for BuildPermit {
    fn drop(&mut self) {
        *BUILDS_RUNNING.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        BUILDS_FREED.notify_one();
    }
}

// ---------------------------------------------------------------------------------------------
// Builds and images

/// Removes an image tag on drop (`docker rmi -f`; a missing tag is fine). Made with
/// [`ImageGuard::new`] before the tag exists.
#[derive(Debug)]
#[non_exhaustive]
pub struct ImageGuard {
    pub tag: String,
    /// The daemon whose image store holds the tag.
    pub daemon: Daemon,
}

impl ImageGuard {
    /// A guard for `tag` on `daemon`. The first guard for a daemon in a process removes the test
    /// images that gone test processes left there.
    pub fn new(tag: impl Into<String>, daemon: Daemon) -> ImageGuard {
        sweep_stale_images(&daemon);
        ImageGuard {
            tag: tag.into(),
            daemon,
        }
    }
}

impl Drop for ImageGuard {
    fn drop(&mut self) {
        if std::env::var_os("SYSFILE_E2E_KEEP").is_none() {
            let _ = self.daemon.docker(&["rmi", "-f", &self.tag]);
        }
    }
}

/// A finished `docker build`.
#[derive(Debug)]
pub struct Build {
    pub code: i32,
    /// stdout and stderr combined (plain progress, code frames, the final ERROR line).
    pub output: String,
    pub elapsed: Duration,
    pub image: ImageGuard,
}

impl Build {
    pub fn tag(&self) -> &str {
        &self.image.tag
    }

    /// Panics with the build output unless the build succeeded.
    pub fn assert_ok(&self, what: &str) -> &Build {
        assert!(
            self.code == 0,
            "{what}: the build failed (exit {}):\n{}",
            self.code,
            tail(&self.output, 60)
        );
        self
    }

    /// Panics unless the build failed.
    pub fn assert_failed(&self, what: &str) -> &Build {
        assert!(
            self.code != 0,
            "{what}: the build was expected to fail but succeeded:\n{}",
            tail(&self.output, 40)
        );
        self
    }
}

/// `docker image inspect IMAGE` as JSON (the first element).
pub fn inspect_image(image: &str) -> serde_json::Value {
    Daemon::main().inspect_image(image)
}

impl Daemon {
    /// `docker image inspect IMAGE` on this daemon as JSON (the first element).
    pub fn inspect_image(&self, image: &str) -> serde_json::Value {
        let r = self.docker(&["image", "inspect", image]);
        assert!(
            r.ok(),
            "docker image inspect {image} on {}: {}",
            self.name,
            r.stderr.trim()
        );
        let mut v: serde_json::Value = serde_json::from_str(&r.stdout).expect("inspect JSON");
        v[0].take()
    }

    /// A label of IMAGE split at commas; empty entries dropped.
    pub fn image_label_list(&self, image: &str, label: &str) -> Vec<String> {
        let config = &self.inspect_image(image)["Config"];
        let value = config["Labels"][label]
            .as_str()
            .unwrap_or_else(|| panic!("image {image} has no label {label}"));
        value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
}

/// The content of a file in an image, read without booting it.
pub fn image_file(image: &str, path: &str) -> String {
    let r = docker(&[
        "run",
        "--rm",
        "--network=none",
        "--entrypoint",
        "/bin/cat",
        image,
        path,
    ]);
    assert!(r.ok(), "reading {path} from {image}: {}", r.stderr.trim());
    r.stdout
}

// ---------------------------------------------------------------------------------------------
// Containers

/// A running (or stopped) container, removed with its volumes on drop.
#[derive(Debug)]
pub struct Container {
    pub name: String,
    pub started: Instant,
    /// The daemon that runs it.
    pub daemon: Daemon,
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::env::var_os("SYSFILE_E2E_KEEP").is_none() {
            let _ = self.daemon.docker(&["rm", "-f", "-v", &self.name]);
        }
    }
}

impl Container {
    /// `docker exec C ARGS…` → (exit code, stdout).
    pub fn exec(&self, args: &[&str]) -> (i32, String) {
        let r = self.exec_full(args);
        (r.code, r.stdout)
    }

    pub fn exec_full(&self, args: &[&str]) -> Run {
        let mut full = vec!["exec", self.name.as_str()];
        full.extend_from_slice(args);
        self.daemon.docker(&full)
    }

    pub fn is_running(&self) -> bool {
        self.daemon
            .docker(&["inspect", "-f", "{{.State.Running}}", &self.name])
            .stdout
            .trim()
            == "true"
    }

    pub fn logs_tail(&self, lines: usize) -> String {
        let (_, out) = self
            .daemon
            .combined(&["logs", "--tail", &lines.to_string(), &self.name]);
        out
    }

    /// Retries `systemctl is-system-running --wait` until it prints a final state (the bus
    /// is not there right after `docker run`), within `timeout`.
    /// Ok(state) once booted (`running`, `degraded`, …), Err(diagnostics) otherwise.
    pub fn wait_running(&self, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "not booted after {timeout:?}; last is-system-running output {last:?}\n--- docker logs ---\n{}",
                    self.logs_tail(40)
                ));
            }
            let secs = left.as_secs().max(1).to_string();
            let r = run(
                "timeout",
                &[
                    &secs,
                    DOCKER,
                    "exec",
                    &self.name,
                    "systemctl",
                    "is-system-running",
                    "--wait",
                ],
            );
            let state = r.stdout.trim().to_string();
            match state.as_str() {
                "running" | "degraded" | "maintenance" | "stopping" | "offline" => {
                    return Ok(state);
                }
                _ => {}
            }
            last = format!("{state} {}", r.stderr.trim());
            if !self.is_running() {
                return Err(format!(
                    "the container exited while booting (last output {last:?})\n--- docker logs ---\n{}",
                    self.logs_tail(40)
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// `docker stop` → (how long it took, the container's exit code).
    pub fn stop(&self) -> (Duration, i32) {
        let started = Instant::now();
        let r = self.daemon.docker(&["stop", &self.name]);
        let took = started.elapsed();
        assert!(r.ok(), "docker stop {}: {}", self.name, r.stderr.trim());
        let code = self
            .daemon
            .docker(&["inspect", "-f", "{{.State.ExitCode}}", &self.name])
            .stdout
            .trim()
            .parse()
            .unwrap_or(-1);
        (took, code)
    }

    /// The container's address on the default bridge.
    pub fn ip(&self) -> String {
        let r = self.daemon.docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            &self.name,
        ]);
        let ip = r.stdout.split_whitespace().next().unwrap_or("").to_string();
        assert!(
            !ip.is_empty(),
            "container {} has no IP address: {}",
            self.name,
            r.stdout
        );
        ip
    }
}

// ---------------------------------------------------------------------------------------------
// Boot checks shared by the reference-image test and the sysfile image tests

/// Timings measured by [`boot_checks`].
#[derive(Debug)]
pub struct BootTimings {
    pub to_running: Duration,
    pub stop: Duration,
}

/// The runtime-contract checks (docs/contract.md) on a freshly started container:
/// boots to `running`; `ssh` active; no `/run/nologin`; a 32-hex machine ID; a key login as
/// `ssh_user`; `docker stop` well under its timeout with the contract's exit code (0, never 137).
pub fn boot_checks(c: &Container, ssh_user: &str, key: &Path) -> BootTimings {
    let state = c
        .wait_running(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    let to_running = c.started.elapsed();
    if state != "running" {
        let (_, failed) = c.exec(&["systemctl", "--failed", "--no-legend", "--no-pager"]);
        panic!(
            "{}: is-system-running says {state:?}, expected running; failed units:\n{failed}",
            c.name
        );
    }
    let (code, active) = c.exec(&["systemctl", "is-active", "ssh"]);
    assert_eq!(
        (code, active.trim()),
        (0, "active"),
        "systemctl is-active ssh"
    );
    let (code, _) = c.exec(&["test", "-e", "/run/nologin"]);
    assert_eq!(
        code, 1,
        "/run/nologin exists: logins would be refused (systemd-user-sessions did not run)"
    );
    let (_, id) = c.exec(&["cat", "/etc/machine-id"]);
    let id = id.trim();
    assert!(
        id.len() == 32 && id.chars().all(|ch| ch.is_ascii_hexdigit()),
        "/etc/machine-id in the container is {id:?}, expected 32 hex digits"
    );
    ssh_login(&c.ip(), ssh_user, key);
    let (stop, exit) = c.stop();
    assert_ne!(
        exit, 137,
        "docker stop had to SIGKILL systemd (exit 137); is STOPSIGNAL SIGRTMIN+3 set?"
    );
    assert_eq!(exit, 0, "exit code after docker stop");
    assert!(
        stop < Duration::from_secs(20),
        "docker stop took {stop:?} (expected well under the 30 s timeout)"
    );
    BootTimings { to_running, stop }
}

/// `ssh -i KEY … USER@IP true` must succeed (a few retries for a just-started sshd).
pub fn ssh_login(ip: &str, user: &str, key: &Path) {
    ssh_login_via(&[], ip, user, key);
}

/// [`ssh_login`] with a command prefix, such as `nsenter -t PID -n --` for a container in another
/// network namespace.
pub fn ssh_login_via(prefix: &[&str], ip: &str, user: &str, key: &Path) {
    let key = key.to_str().expect("utf-8 path");
    let dest = format!("{user}@{ip}");
    let mut last = String::new();
    let (program, before) = match prefix.split_first() {
        Some((program, rest)) => (*program, rest.to_vec()),
        None => ("ssh", Vec::new()),
    };
    for _ in 0..10 {
        let mut args: Vec<&str> = before.clone();
        if !prefix.is_empty() {
            args.push("ssh");
        }
        args.extend([
            "-i",
            key,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            &dest,
            "true",
        ]);
        let r = run(program, &args);
        if r.ok() {
            return;
        }
        last = format!("exit {}: {}", r.code, r.stderr.trim());
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("ssh key login as {dest} failed: {last}");
}

/// A fresh ed25519 keypair in `dir`: returns (private key path, public key text).
pub fn keypair(dir: &Path) -> (PathBuf, String) {
    let key = dir.join("id_ed25519");
    let r = run(
        "ssh-keygen",
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "sysfile-e2e",
            "-f",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        r.ok(),
        "ssh-keygen failed (is openssh-client installed?): {}",
        r.stderr.trim()
    );
    let public = std::fs::read_to_string(dir.join("id_ed25519.pub")).expect("public key");
    (key, public)
}

/// Copies a directory tree (regular files, directories, symlinks).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            copy_tree(&src, &dst);
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading docker's output

/// One vertex of BuildKit's `--progress=plain` output.
#[derive(Debug, Default, Clone)]
pub struct Vertex {
    pub id: u32,
    /// The text of the vertex's first line (`[2/3] RUN true`, `[internal] load metadata …`).
    pub name: String,
    pub cached: bool,
    pub done: bool,
    pub error: bool,
    /// Timestamped output lines (`#6 0.123 …`): only a step that executes prints them.
    pub log_lines: usize,
    /// Lines starting with `transferring` (local sources: contexts, the spec file).
    pub transfers: bool,
    /// Layer blobs it fetched (`sha256:… done`, `extracting sha256:…`): a result loaded from an
    /// imported cache, not computed.
    pub pulled: bool,
}

/// Parses plain progress: every line `#N rest`. The first line of a vertex is its name; then
/// `#N CACHED`, `#N DONE 0.1s`, `#N ERROR: …`, `#N 0.123 output`, `#N transferring …`.
pub fn parse_plain_progress(output: &str) -> Vec<Vertex> {
    let mut vertices: Vec<Vertex> = Vec::new();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((id, text)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(id) = id.parse::<u32>() else { continue };
        let i = match vertices.iter().position(|v| v.id == id) {
            Some(i) => i,
            None => {
                vertices.push(Vertex {
                    id,
                    name: text.to_string(),
                    ..Vertex::default()
                });
                continue;
            }
        };
        let v = &mut vertices[i];
        let first = text.split_whitespace().next().unwrap_or("");
        if text == "CACHED" {
            v.cached = true;
        } else if text == "DONE" || text.starts_with("DONE ") {
            v.done = true;
        } else if text.starts_with("ERROR") || text.starts_with("CANCELED") {
            v.error = true;
        } else if first.contains('.') && first.parse::<f64>().is_ok() {
            v.log_lines += 1;
        } else if text.starts_with("transferring") {
            v.transfers = true;
        } else if text.starts_with("sha256:") || text.starts_with("extracting sha256:") {
            v.pulled = true;
        }
    }
    vertices
}

/// Whether a vertex is bookkeeping rather than a build step: frontend and image resolution,
/// local transfers (context, spec file), base image sources and the export.
pub fn is_bookkeeping(v: &Vertex) -> bool {
    let n = v.name.as_str();
    v.id == 0
        || v.transfers
        || n.starts_with("[internal]")
        || n.starts_with("[context ") // a named context BuildKit loads, e.g. the frontend's OCI layout
        || n.starts_with("resolve image config")
        || n.starts_with("exporting")
        || n.starts_with("importing cache manifest")
        || n.starts_with("naming to")
        || n.starts_with("writing image")
        || n.contains("docker-image://")
        || n.contains("local://")
        || n.contains("load build definition")
        || n.contains("load metadata for")
        || n.contains("load build context")
        || n.starts_with("[sysfile] base ") // the base image source of a sysfile build
        || n.starts_with("[sysfile] inspect ") // the base image solved to read its os-release
        || n.contains("load .dockerignore")
        || n.split_whitespace().nth(1) == Some("FROM") // the Dockerfile frontend's `[1/3] FROM …`
}

/// Build steps that executed instead of coming from the cache. The criterion: a vertex executed
/// if it is not bookkeeping (see [`is_bookkeeping`]) and printed output lines, failed, or
/// finished (`DONE`) without being marked `CACHED` and without loading its result's layers from
/// an imported cache. A cached vertex prints only its name and `CACHED`; one whose cached result
/// lives in a registry cache prints the layer blobs it fetches and `DONE`. A vertex that never
/// finished in the output ran nothing the build waited for: Docker 26 once printed the units step
/// of a warm rebuild after the export, by its name alone, with neither `CACHED` nor `DONE` nor
/// any output, every other step `CACHED`.
pub fn executed_steps(vertices: &[Vertex]) -> Vec<&Vertex> {
    vertices
        .iter()
        .filter(|v| {
            !is_bookkeeping(v) && (v.log_lines > 0 || v.error || (v.done && !v.cached && !v.pulled))
        })
        .collect()
}

/// The source lines a build error points at in `file` (docker 26 / buildx prints a code frame:
///
/// ```text
/// Sysfile:4
/// --------------------
///    3 |     from = "local/debian:bookworm"
///    4 | >>> colour = "blue"
///    5 |
/// --------------------
/// ```
///
/// with one `>>>` line per line of the range and only the range's first line in the header).
/// Returns the header line numbers and every `>>>` line inside frames for `file`.
pub fn error_lines(output: &str, file: &str) -> Vec<u32> {
    let mut lines = Vec::new();
    let mut in_frame = false;
    let mut dashes = 0;
    let prefix = format!("{file}:");
    for line in output.lines() {
        if let Some(n) = line.strip_prefix(&prefix) {
            let start = n.split('-').next().unwrap_or("");
            if let Ok(n) = start.trim().parse::<u32>() {
                lines.push(n);
                in_frame = true;
                dashes = 0;
                continue;
            }
        }
        if in_frame {
            if line.starts_with("-----") {
                dashes += 1;
                if dashes == 2 {
                    in_frame = false;
                }
            } else if let Some((num, text)) = line.split_once('|') {
                if text.starts_with(" >>>") {
                    if let Ok(n) = num.trim().parse::<u32>() {
                        lines.push(n);
                    }
                }
            }
        }
    }
    lines
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for l in &lines[lines.len().saturating_sub(n)..] {
        let _ = writeln!(out, "{l}");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Starting a container the way users do: `sysfile run`

/// The `sysfile` binary built for this test run: cargo builds it next to the test binaries
/// (`target/<profile>/sysfile`, the tests being in `target/<profile>/deps/`).
pub fn sysfile_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile = exe
            .parent()
            .and_then(Path::parent)
            .expect("tests run from target/<profile>/deps");
        profile.join("sysfile").display().to_string()
    })
}

/// Starts IMAGE as container NAME on the main daemon the way users do: `sysfile run`.
pub fn start_container(image: &str, name: &str) -> Container {
    start_with_sysfile_run(&Daemon::main(), image, name)
}

/// `sysfile run IMAGE --name NAME` against `daemon` (through `DOCKER_HOST`): the container ID on
/// stdout, exit 0.
pub fn start_with_sysfile_run(daemon: &Daemon, image: &str, name: &str) -> Container {
    let mut container = Container {
        name: name.to_string(),
        started: Instant::now(),
        daemon: daemon.clone(),
    };
    let out = Command::new(sysfile_bin())
        .args(["run", image, "--name", name])
        .envs(daemon.env())
        .stdin(Stdio::null())
        .output()
        .expect("run sysfile");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "sysfile run {image} --name {name} on {} failed ({}):\n{stdout}{stderr}",
        daemon.name,
        out.status
    );
    assert_container_id(&stdout, "sysfile run");
    container.started = Instant::now();
    container
}

fn assert_container_id(stdout: &str, what: &str) {
    let id = stdout.trim();
    assert!(
        id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{what} printed {stdout:?} on stdout, expected the 64-hex container ID"
    );
}

// ---------------------------------------------------------------------------------------------
// Contract checks, for Docker and Podman containers alike

/// Something that runs commands in a container: `docker exec` or `podman exec`.
pub trait Exec {
    fn exec_in(&self, args: &[&str]) -> Run;
    fn label(&self) -> String;
}

impl Exec for Container {
    fn exec_in(&self, args: &[&str]) -> Run {
        self.exec_full(args)
    }
    fn label(&self) -> String {
        format!("docker container {}", self.name)
    }
}

/// A label of IMAGE (Docker's image store) split at commas; empty entries dropped.
pub fn image_label_list(image: &str, label: &str) -> Vec<String> {
    Daemon::main().image_label_list(image, label)
}

/// `systemctl is-system-running --wait` retried until it prints a state, via any [`Exec`].
pub fn wait_system_running(c: &dyn Exec, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        let r = c.exec_in(&["timeout", "30", "systemctl", "is-system-running", "--wait"]);
        let state = r.stdout.trim().to_string();
        if matches!(
            state.as_str(),
            "running" | "degraded" | "maintenance" | "stopping" | "offline"
        ) {
            return Ok(state);
        }
        last = format!("{state:?} (exit {}) {}", r.code, r.stderr.trim());
        std::thread::sleep(Duration::from_millis(300));
    }
    Err(format!(
        "{}: no boot state within {timeout:?}; last: {last}",
        c.label()
    ))
}

/// Boots to exactly `running`, else panics with the failed units.
pub fn assert_boots_to_running(c: &dyn Exec, timeout: Duration, logs: &dyn Fn() -> String) {
    let state =
        wait_system_running(c, timeout).unwrap_or_else(|e| panic!("{e}\n--- logs ---\n{}", logs()));
    if state != "running" {
        panic!(
            "{}: is-system-running says {state:?}, expected running; failed units:\n{}\n--- logs ---\n{}",
            c.label(),
            failed_units(c),
            logs()
        );
    }
}

/// `systemctl --failed --no-legend --plain`, trimmed.
pub fn failed_units(c: &dyn Exec) -> String {
    c.exec_in(&[
        "systemctl",
        "--failed",
        "--no-legend",
        "--plain",
        "--no-pager",
    ])
    .stdout
    .trim()
    .to_string()
}

pub fn assert_no_failed_units(c: &dyn Exec) {
    let failed = failed_units(c);
    assert!(
        failed.is_empty(),
        "{}: systemctl --failed lists units:\n{failed}",
        c.label()
    );
}

/// `/proc/1/comm` is `systemd`: no injected init (tini, docker-init, catatonit) is PID 1.
pub fn assert_pid1_is_systemd(c: &dyn Exec) {
    let comm = c.exec_in(&["cat", "/proc/1/comm"]).stdout;
    assert_eq!(comm.trim(), "systemd", "{}: /proc/1/comm", c.label());
}

/// Every unit of the image label `sysfile.systemd.units.enabled` is running or has done its job.
///
/// The rule: `systemctl is-active U` must say `active` (services, sockets, timers, paths and
/// targets that stay up). The one exception is a `Type=oneshot` service without
/// `RemainAfterExit=yes` (such as `sysfile-ssh-host-keys.service`): once it has run — or was
/// skipped because its `Condition…=` was false — it is `inactive`, so it must instead be
/// `inactive` with `Result=success` and `systemctl is-enabled` = `enabled`. A oneshot that
/// failed is `failed` and fails this check (and the `--failed` check).
pub fn assert_enabled_units_active(c: &dyn Exec, units: &[String]) {
    assert!(
        !units.is_empty(),
        "{}: no enabled units to check",
        c.label()
    );
    let mut problems = Vec::new();
    for unit in units {
        let show = c
            .exec_in(&[
                "systemctl",
                "show",
                "-p",
                "ActiveState,Type,RemainAfterExit,Result,UnitFileState",
                unit,
            ])
            .stdout;
        let prop = |key: &str| -> String {
            show.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or("")
                .to_string()
        };
        let active = prop("ActiveState");
        let ok = active == "active"
            || (prop("Type") == "oneshot"
                && prop("RemainAfterExit") == "no"
                && active == "inactive"
                && prop("Result") == "success"
                && prop("UnitFileState") == "enabled");
        if !ok {
            problems.push(format!("{unit}: {}", show.replace('\n', " ")));
        }
    }
    assert!(
        problems.is_empty(),
        "{}: enabled units not active (rule: is-active = active, or a finished oneshot: \
         inactive + Result=success + enabled):\n{}",
        c.label(),
        problems.join("\n")
    );
}

/// Every unit of the image label `sysfile.systemd.units.masked` reports `masked`.
pub fn assert_masked_units_masked(c: &dyn Exec, units: &[String]) {
    assert!(!units.is_empty(), "{}: no masked units to check", c.label());
    let mut args = vec!["systemctl", "is-enabled"];
    args.extend(units.iter().map(String::as_str));
    let out = c.exec_in(&args).stdout;
    let states: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(
        states.len(),
        units.len(),
        "{}: systemctl is-enabled printed {} lines for {} units:\n{out}",
        c.label(),
        states.len(),
        units.len()
    );
    let wrong: Vec<String> = units
        .iter()
        .zip(&states)
        .filter(|(_, s)| **s != "masked")
        .map(|(u, s)| format!("{u}: {s}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "{}: units the image label lists as masked are not masked: {wrong:?}",
        c.label()
    );
}

/// `/etc/machine-id`: 32 hex digits (the image ships it empty).
pub fn machine_id(c: &dyn Exec) -> String {
    let id = c
        .exec_in(&["cat", "/etc/machine-id"])
        .stdout
        .trim()
        .to_string();
    assert!(
        id.len() == 32 && id.chars().all(|ch| ch.is_ascii_hexdigit()),
        "{}: /etc/machine-id is {id:?}, expected 32 hex digits",
        c.label()
    );
    id
}

/// The SHA256 fingerprint of the container's ed25519 SSH host key.
pub fn ssh_host_key_fingerprint(c: &dyn Exec) -> String {
    let r = c.exec_in(&["ssh-keygen", "-lf", "/etc/ssh/ssh_host_ed25519_key.pub"]);
    assert!(
        r.ok(),
        "{}: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub: {}",
        c.label(),
        r.stderr.trim()
    );
    r.stdout
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("{}: unexpected ssh-keygen output {:?}", c.label(), r.stdout))
        .to_string()
}

/// `examples/webapp` answers on :80 with the app's page: the request went nginx -> hello-app.
pub fn assert_webapp_page(ip: &str) {
    let page = poll_until(
        Duration::from_secs(20),
        &|| match http_get(ip, 80, "/") {
            Ok((status, body)) => format!("{status}\n{body}"),
            Err(e) => e,
        },
        &|r| r.starts_with("200\n") && r.contains("Hello from sysfile-webapp"),
    );
    assert!(
        page.is_ok(),
        "GET http://{ip}:80/ did not return the app's page: {}",
        page.unwrap_err()
    );
}

/// Polls `fetch` until `want` holds for its output, within `timeout`; returns the last output.
pub fn poll_until(
    timeout: Duration,
    fetch: &dyn Fn() -> String,
    want: &dyn Fn(&str) -> bool,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let out = fetch();
        if want(&out) {
            return Ok(out);
        }
        if Instant::now() >= deadline {
            return Err(out);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Whether some line of `text` contains all of `parts`.
pub fn has_line_with(text: &str, parts: &[&str]) -> bool {
    text.lines().any(|l| parts.iter().all(|p| l.contains(p)))
}

/// A plain HTTP/1.0 GET with std::net: (status code, body).
pub fn http_get(host: &str, port: u16, path: &str) -> Result<(u16, String), String> {
    use std::io::Read as _;
    use std::net::{TcpStream, ToSocketAddrs};
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port}: no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: sysfile-e2e\r\n\r\n"
    )
    .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("read from {addr}: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header in {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_string()))
}

impl Container {
    /// All of `docker logs` (stdout and stderr).
    pub fn logs(&self) -> String {
        self.daemon.combined(&["logs", &self.name]).1
    }

    /// `{{.State.Health.Status}}` (`starting`, `healthy`, `unhealthy`, or empty).
    pub fn health(&self) -> String {
        self.daemon
            .docker(&[
                "inspect",
                "-f",
                "{{if .State.Health}}{{.State.Health.Status}}{{end}}",
                &self.name,
            ])
            .stdout
            .trim()
            .to_string()
    }

    /// `{{.State.Status}} {{.State.ExitCode}}`.
    pub fn state(&self) -> (String, i32) {
        let out = self
            .daemon
            .docker(&[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                &self.name,
            ])
            .stdout;
        let mut it = out.split_whitespace();
        let status = it.next().unwrap_or("").to_string();
        let code = it.next().and_then(|c| c.parse().ok()).unwrap_or(-1);
        (status, code)
    }
}

// ---------------------------------------------------------------------------------------------
// Podman

pub const PODMAN: &str = "podman";

/// Podman's version when it is installed and answers (`podman version`), else why not.
pub fn podman_version() -> Result<String, String> {
    let r = Command::new("timeout")
        .args(["30", PODMAN, "version", "--format", "{{.Client.Version}}"])
        .stdin(Stdio::null())
        .output();
    match r {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        }
        Ok(out) => Err(format!(
            "`podman version` failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(e) => Err(format!("cannot run podman: {e}")),
    }
}

pub fn podman(args: &[&str]) -> Run {
    run(PODMAN, args)
}

/// A loud skip: printed straight to stderr (libtest captures eprintln! of passing tests).
/// `SYSFILE_PODMAN=required` turns it into a failure.
pub fn podman_skip(test: &str, why: &str) {
    if std::env::var("SYSFILE_PODMAN").as_deref() == Ok("required") {
        panic!("e2e test {test}: Podman cannot run here and SYSFILE_PODMAN=required: {why}");
    }
    let _ = writeln!(
        std::io::stderr(),
        "=== SKIPPED: e2e test {test}: Podman cannot run the image on this host (set \
         SYSFILE_PODMAN=required to make this an error) ===\n    reason: {why}"
    );
}

/// An image loaded into Podman's store, removed on drop.
#[derive(Debug)]
pub struct PodmanImage {
    pub name: String,
}

impl PodmanImage {
    /// `docker save TAG | podman load`; the name Podman gave it (`docker.io/…:latest`).
    pub fn load_from_docker(tag: &str) -> Result<PodmanImage, String> {
        let script = format!("'{DOCKER}' save '{tag}' | {PODMAN} load");
        let r = run("sh", &["-c", &script]);
        if !r.ok() {
            return Err(format!(
                "docker save | podman load failed (exit {}): {}{}",
                r.code, r.stdout, r.stderr
            ));
        }
        let name = format!("{}{}", r.stdout, r.stderr)
            .lines()
            .find_map(|l| {
                l.strip_prefix("Loaded image: ")
                    .or(l.strip_prefix("Loaded image(s): "))
            })
            .map(|s| s.trim().to_string())
            .ok_or_else(|| {
                format!(
                    "podman load did not name the image:\n{}{}",
                    r.stdout, r.stderr
                )
            })?;
        Ok(PodmanImage { name })
    }
}

impl Drop for PodmanImage {
    fn drop(&mut self) {
        if std::env::var_os("SYSFILE_E2E_KEEP").is_none() {
            let _ = podman(&["rmi", "-f", &self.name]);
        }
    }
}

/// A Podman container, removed on drop.
#[derive(Debug)]
pub struct PodmanContainer {
    pub name: String,
    pub started: Instant,
}

impl PodmanContainer {
    /// `podman container runlabel --name NAME run IMAGE`: the image's `RUN` label, as a user
    /// would start it. Err(podman's output) when the container does not start.
    pub fn runlabel(image: &str, name: &str) -> Result<PodmanContainer, String> {
        let display = podman(&["container", "runlabel", "--display", "run", image]);
        let mut c = PodmanContainer {
            name: name.to_string(),
            started: Instant::now(),
        };
        let r = podman(&["container", "runlabel", "--name", name, "run", image]);
        if !r.ok() {
            return Err(format!(
                "`podman container runlabel --name {name} run {image}` failed (exit {}).\n\
                 The label's command: {}\npodman said:\n{}{}",
                r.code,
                display.stdout.trim(),
                r.stdout,
                r.stderr
            ));
        }
        c.started = Instant::now();
        Ok(c)
    }

    pub fn logs(&self) -> String {
        let r = podman(&["logs", &self.name]);
        format!("{}{}", r.stdout, r.stderr)
    }

    pub fn is_running(&self) -> bool {
        podman(&["inspect", "-f", "{{.State.Running}}", &self.name])
            .stdout
            .trim()
            == "true"
    }

    /// `podman stop` → (how long it took, the container's exit code).
    pub fn stop(&self) -> (Duration, i32) {
        let started = Instant::now();
        let r = podman(&["stop", &self.name]);
        let took = started.elapsed();
        assert!(r.ok(), "podman stop {}: {}", self.name, r.stderr.trim());
        let code = podman(&["inspect", "-f", "{{.State.ExitCode}}", &self.name])
            .stdout
            .trim()
            .parse()
            .unwrap_or(-1);
        (took, code)
    }
}

impl Exec for PodmanContainer {
    fn exec_in(&self, args: &[&str]) -> Run {
        let mut full = vec!["exec", self.name.as_str()];
        full.extend_from_slice(args);
        podman(&full)
    }
    fn label(&self) -> String {
        format!("podman container {}", self.name)
    }
}

impl Drop for PodmanContainer {
    fn drop(&mut self) {
        if std::env::var_os("SYSFILE_E2E_KEEP").is_none() {
            let _ = podman(&["rm", "-f", "-v", &self.name]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_image_owner_reads_the_pid_of_every_test_image_name() {
        let pid = 30957;
        for tag in [
            "sysfile-e2e/hosts-trixie-30957-8:latest",
            "sysfile-e2e-restart-policy-30957-0:test",
            "127.0.0.1:5055/sysfile-e2e/matrix-buildctl-registry-30957-20:1",
            "sysfile-e2e/a-30957-3",
        ] {
            assert_eq!(test_image_owner(tag), Some(pid), "{tag}");
        }
        for tag in [
            "local/sysfile:dev",
            "127.0.0.1:5055/local/debian:bookworm",
            "my-sysfile-e2e/x-1-2:latest",
            "sysfile-e2e/no-counter:latest",
            "sysfile-e2e/remote-x:latest",
            "sysfile-e2e-frontend-image.lock",
        ] {
            assert_eq!(test_image_owner(tag), None, "{tag}");
        }
    }

    #[test]
    fn tempdir_owner_reads_the_pid_and_only_from_test_directories() {
        assert_eq!(tempdir_owner("sysfile-e2e-4242-Ab3xYz"), Some(4242));
        assert_eq!(tempdir_owner("sysfile-e2e-Ab3xYz"), None);
        assert_eq!(tempdir_owner("sysfile-e2e-frontend-image.lock"), None);
        assert_eq!(tempdir_owner("other-4242-Ab3xYz"), None);
    }

    #[test]
    fn a_stale_tempdir_is_removed_and_a_live_or_foreign_one_kept() {
        let parent = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22: this pid never runs.
        let stale = parent.path().join("sysfile-e2e-4194305-abcdef");
        let live = parent
            .path()
            .join(format!("sysfile-e2e-{}-abcdef", std::process::id()));
        let foreign = parent.path().join("sysfile-e2e-abcdef");
        for dir in [&stale, &live, &foreign] {
            std::fs::create_dir_all(dir.join("inner")).unwrap();
        }
        sweep_stale_tempdirs(parent.path());
        assert!(!stale.exists());
        assert!(live.exists() && foreign.exists());
    }
}
