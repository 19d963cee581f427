//! The engine matrix: every BuildKit a user has, behind one [`Builder`] type, so that one
//! scenario runs unchanged on each of them.
//!
//! | builder | BuildKit | how the frontend is reached | where the result boots |
//! |---|---|---|---|
//! | `docker-26` | v0.13 inside dockerd | `# syntax=` from the image store | Docker 26 |
//! | `docker-20.10` | v0.8 inside dockerd | `# syntax=` from its image store | Docker 20.10 |
//! | `buildctl-registry` | newest standalone buildkitd | `--opt source=` from the local registry | Docker 26 (`docker load`) |
//! | `buildctl-oci-layout` | newest standalone buildkitd | an OCI layout (`--oci-layout` + `context:`) | Docker 26 (`docker load`) |
//!
//! `scripts/setup-matrix` brings the engines up at the fixed addresses below (KEEP IN AGREEMENT
//! with it). A builder whose engine is not there skips loudly, or fails under
//! `SYSFILE_E2E=required`.
//!
//! [`Host`] is the other axis: where an image boots (this cgroup v1 host, or the simulated cgroup
//! v2 host), with `sysfile run` run the way a user on that host would.

use crate::harness::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

/// The local registry (Debian's `docker-registry`) that buildkitd uses as its docker.io mirror.
pub const REGISTRY: &str = "127.0.0.1:5055";
/// The shared standalone builder and a second, independent one (its own state) for cache trips.
pub const BUILDKIT_A: &str = "unix:///run/sysfile-buildkit-a/buildkitd.sock";
pub const BUILDKIT_B: &str = "unix:///run/sysfile-buildkit-b/buildkitd.sock";

/// The longest a client call of the matrix may take (`timeout` exits 124 after it).
pub const BUILD_TIMEOUT: &str = "600";
/// The longest a build the engine must refuse may take: the refusal comes in seconds, and Docker
/// 20.10's client has been seen to hang after its daemon refused (see `Builder::build_refused`).
pub const REFUSAL_TIMEOUT: &str = "90";
/// `timeout`'s exit code when the command ran out of time.
pub const TIMED_OUT: i32 = 124;

/// Docker 20.10 from Debian bookworm, unpacked beside the main daemon with its own socket.
pub const DOCKER20: Daemon = Daemon {
    name: "docker-20.10",
    client: "/opt/sysfile/docker20/usr/bin/docker",
    host: Some("unix:///run/sysfile-docker20.sock"),
};

/// How the standalone daemon gets the frontend image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontendFrom {
    /// `--opt source=local/sysfile:dev`, resolved through the registry mirror.
    Registry,
    /// `--oci-layout sysfile=DIR --opt context:local/sysfile:dev=oci-layout://sysfile@sha256:…`.
    OciLayout,
}

/// One way of building a Sysfile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builder {
    /// `docker build` on the main Docker 26 daemon (buildx with the docker driver).
    Docker26,
    /// `DOCKER_BUILDKIT=1 docker build` with Docker 20.10's own client and daemon.
    Docker20,
    /// `buildctl build --frontend gateway.v0` against the standalone buildkitd.
    Buildctl(FrontendFrom),
}

/// Where `buildctl` and `buildkitd` are: `$SYSFILE_BUILDKIT_DIR`, `PATH`, or the prebuilt ones in
/// `../shared/tools/buildkit` beside the checkout.
pub fn buildkit_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("SYSFILE_BUILDKIT_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("buildctl").is_file() && dir.join("buildkitd").is_file() {
                return Some(dir);
            }
        }
    }
    let shared = repo_root().join("../shared/tools/buildkit");
    shared.join("buildctl").is_file().then_some(shared)
}

/// `buildctl` from [`buildkit_dir`].
pub fn buildctl_bin() -> Option<PathBuf> {
    buildkit_dir().map(|d| d.join("buildctl"))
}

/// `buildctl --addr ADDR ARGS…`, stderr merged into stdout.
pub fn buildctl(addr: &str, args: &[&str]) -> (i32, String) {
    buildctl_within(BUILD_TIMEOUT, addr, args)
}

/// [`buildctl`], cut after `timeout` seconds.
fn buildctl_within(timeout: &str, addr: &str, args: &[&str]) -> (i32, String) {
    let bin = buildctl_bin().expect("buildctl");
    let out = Command::new("sh")
        .args(["-c", "exec timeout -k 10 \"$0\" \"$@\" 2>&1", timeout])
        .arg(&bin)
        .args(["--addr", addr])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run buildctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

impl Builder {
    pub fn name(self) -> &'static str {
        match self {
            Builder::Docker26 => "docker-26",
            Builder::Docker20 => "docker-20.10",
            Builder::Buildctl(FrontendFrom::Registry) => "buildctl-registry",
            Builder::Buildctl(FrontendFrom::OciLayout) => "buildctl-oci-layout",
        }
    }

    /// The daemon whose image store receives the result, and which boots it.
    pub fn boot_daemon(self) -> Daemon {
        match self {
            Builder::Docker20 => DOCKER20,
            _ => Daemon::main(),
        }
    }

    /// Whether this builder's engine answers: Ok, or why not.
    pub fn probe(self) -> Result<(), String> {
        // Every builder needs the main daemon: it builds the frontend image and boots results.
        Engine::detect_quietly()?;
        match self {
            Builder::Docker26 => Ok(()),
            Builder::Docker20 => {
                let r = DOCKER20.docker(&["version", "--format", "{{.Server.Version}}"]);
                if r.ok() && r.stdout.starts_with("20.10") {
                    Ok(())
                } else {
                    Err(format!(
                        "Docker 20.10 does not answer on {} ({}); run scripts/setup-matrix docker20",
                        DOCKER20.host.unwrap_or_default(),
                        r.stderr.trim()
                    ))
                }
            }
            Builder::Buildctl(_) => {
                let Some(bin) = buildctl_bin() else {
                    return Err("no buildctl on PATH, in $SYSFILE_BUILDKIT_DIR or in \
                                ../shared/tools/buildkit"
                        .to_string());
                };
                let (code, out) = buildctl(BUILDKIT_A, &["debug", "workers"]);
                if code != 0 {
                    return Err(format!(
                        "{} cannot reach buildkitd at {BUILDKIT_A}: {}; run scripts/setup-matrix",
                        bin.display(),
                        out.trim()
                    ));
                }
                Ok(())
            }
        }
    }

    /// True when the test can go on; otherwise a loud skip (or a failure when required).
    pub fn detect(self, test: &str) -> bool {
        match self.probe() {
            Ok(()) => true,
            Err(why) => skip_or_fail(test, &format!("{}: {why}", self.name())),
        }
    }

    /// Makes sure this builder can reach the current frontend image: built once per test
    /// process, then loaded into Docker 20.10, pushed to the registry, or saved as an OCI layout.
    /// Returns what the build needs: the frontend reference (and for OCI layouts the store).
    fn frontend(self) -> Frontend {
        let engine = Engine::detect_quietly().expect("engine");
        let tag = engine.frontend_image();
        match self {
            Builder::Docker26 => Frontend::Tag(tag),
            Builder::Docker20 => {
                static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
                LOADED
                    .get_or_init(|| copy_image(&tag, &Daemon::main(), &DOCKER20))
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{e}"));
                Frontend::Tag(tag)
            }
            Builder::Buildctl(FrontendFrom::Registry) => {
                static PUSHED: OnceLock<Result<(), String>> = OnceLock::new();
                PUSHED
                    .get_or_init(|| push_to_registry(&tag))
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{e}"));
                Frontend::Tag(tag)
            }
            Builder::Buildctl(FrontendFrom::OciLayout) => {
                static LAYOUT: OnceLock<Result<(tempfile::TempDir, String), String>> =
                    OnceLock::new();
                let (dir, digest) = LAYOUT
                    .get_or_init(|| oci_layout_of(&tag))
                    .as_ref()
                    .unwrap_or_else(|e| panic!("{e}"));
                Frontend::OciLayout {
                    tag,
                    dir: dir.path().to_path_buf(),
                    digest: digest.clone(),
                }
            }
        }
    }

    /// Makes the frontend image reachable for this builder (see [`Builder::frontend`]).
    pub fn prepare_frontend(self) {
        self.frontend();
    }

    /// Builds `file` with context `context` and build args, tagging the result in
    /// [`Builder::boot_daemon`]'s image store. The output holds the plain progress and errors.
    pub fn build(self, test: &str, context: &Path, file: &Path, args: &[(&str, &str)]) -> Build {
        let (flag, prefix) = match self {
            Builder::Buildctl(_) => ("--opt", "build-arg:"),
            _ => ("--build-arg", ""),
        };
        let build_args: Vec<String> = args
            .iter()
            .map(|(k, v)| format!("{prefix}{k}={v}"))
            .collect();
        let mut flags: Vec<&str> = Vec::new();
        for a in &build_args {
            flags.extend([flag, a.as_str()]);
        }
        self.build_full(Submit::to(BUILDKIT_A), test, context, file, &flags)
    }

    /// Builds `<dir>/Sysfile` with extra client flags, given in the client's own syntax
    /// (`--secret`, `--ssh`, `--platform`, `--cache-to`, `--export-cache`, …).
    pub fn build_with_flags(self, test: &str, dir: &Path, flags: &[&str]) -> Build {
        self.build_full(
            Submit::to(BUILDKIT_A),
            test,
            dir,
            &dir.join("Sysfile"),
            flags,
        )
    }

    /// [`Builder::build_with_flags`] for a build the engine must refuse, cut after
    /// [`REFUSAL_TIMEOUT`]: a refusal comes in seconds, while Docker 20.10's client has been seen
    /// to hang for good on one its daemon had already answered (exit [`TIMED_OUT`] then; the
    /// caller tries again).
    pub fn build_refused(self, test: &str, dir: &Path, flags: &[&str]) -> Build {
        let submit = Submit {
            timeout: REFUSAL_TIMEOUT,
            ..Submit::to(BUILDKIT_A)
        };
        self.build_full(submit, test, dir, &dir.join("Sysfile"), flags)
    }

    /// [`Builder::build_with_flags`] on another standalone daemon (buildctl builders only).
    pub fn build_on(self, addr: &str, test: &str, dir: &Path, flags: &[&str]) -> Build {
        assert!(
            matches!(self, Builder::Buildctl(_)),
            "build_on needs buildctl"
        );
        self.build_full(Submit::to(addr), test, dir, &dir.join("Sysfile"), flags)
    }

    /// Builds `<dir>/Sysfile` on the standalone daemon and pushes it to `reference` in the
    /// registry. Panics when the build fails; returns the output.
    pub fn push(self, test: &str, dir: &Path, reference: &str) -> String {
        assert!(matches!(self, Builder::Buildctl(_)), "push needs buildctl");
        let submit = Submit {
            push: Some(reference),
            ..Submit::to(BUILDKIT_A)
        };
        let b = self.build_full(submit, test, dir, &dir.join("Sysfile"), &[]);
        b.assert_ok(&format!("{}: build and push {reference}", self.name()));
        b.output.clone()
    }

    /// The text result of subrequest `name` (`outline`, `targets`, `lint`): buildx `--print`
    /// through Docker 26's client (also against Docker 20.10, whose own client has no
    /// `--print`), `--opt requestid=frontend.NAME` through buildctl.
    pub fn subrequest(self, dir: &Path, name: &str) -> String {
        let file = dir.join("Sysfile");
        let (file, ctx) = (file.to_str().unwrap(), dir.to_str().unwrap());
        match self {
            Builder::Buildctl(_) => {
                let frontend = self.frontend();
                let mut opts = vec![
                    "build".to_string(),
                    "--frontend=gateway.v0".into(),
                    "--opt".into(),
                    format!("source={}", frontend.tag()),
                    "--opt".into(),
                    format!("requestid=frontend.{name}"),
                    "--local".into(),
                    format!("context={ctx}"),
                    "--local".into(),
                    format!("dockerfile={ctx}"),
                ];
                opts.extend(frontend.layout_opts());
                let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
                let (code, out) = buildctl(BUILDKIT_A, &opts);
                assert_eq!(code, 0, "{}: subrequest {name}:\n{out}", self.name());
                out
            }
            Builder::Docker26 | Builder::Docker20 => {
                self.frontend();
                let daemon = self.boot_daemon();
                let print = format!("--print={name}");
                let mut env = vec![("BUILDX_EXPERIMENTAL", "1")];
                env.extend(daemon.env());
                let out = Command::new("sh")
                    .args(["-c", "exec \"$0\" \"$@\" 2>&1", DOCKER])
                    .args(["buildx", "build", &print, "-f", file, ctx])
                    .envs(env)
                    .stdin(Stdio::null())
                    .output()
                    .expect("run docker buildx");
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert!(
                    out.status.success(),
                    "{}: docker buildx build {print}:\n{text}",
                    self.name()
                );
                text
            }
        }
    }

    fn build_full(
        self,
        submit: Submit,
        test: &str,
        context: &Path,
        file: &Path,
        flags: &[&str],
    ) -> Build {
        let Submit {
            addr,
            push,
            timeout,
        } = submit;
        let frontend = self.frontend();
        let daemon = self.boot_daemon();
        let image = ImageGuard::new(format!("{}:latest", unique_image(test)), daemon.clone());
        let ctx = context.to_str().expect("utf-8 path");
        let file_str = file.to_str().expect("utf-8 path");
        let _permit = BuildPermit::acquire();
        let started = Instant::now();
        let (code, output) = match self {
            Builder::Docker26 | Builder::Docker20 => {
                let mut cmd: Vec<&str> = vec![
                    "build",
                    "--progress=plain",
                    "--network=host",
                    "-f",
                    file_str,
                    "-t",
                    &image.tag,
                ];
                let syntax = format!("BUILDKIT_SYNTAX={}", frontend.tag());
                if frontend.tag() != DEFAULT_FRONTEND_IMAGE {
                    cmd.extend(["--build-arg", &syntax]);
                }
                cmd.extend_from_slice(flags);
                cmd.push(ctx);
                // Docker 20.10's client needs DOCKER_BUILDKIT=1; Docker 26's ignores it.
                with_env(timeout, &daemon, &[("DOCKER_BUILDKIT", "1")], &cmd)
            }
            Builder::Buildctl(_) => {
                let dir = file.parent().expect("spec directory");
                let name = file.file_name().and_then(|n| n.to_str()).expect("name");
                let tar = tempdir();
                let dest = tar.path().join("image.tar");
                let output = match push {
                    Some(reference) => {
                        format!("type=image,name={reference},push=true,registry.insecure=true")
                    }
                    None => format!("type=docker,name={},dest={}", image.tag, dest.display()),
                };
                let mut opts: Vec<String> = vec![
                    "build".into(),
                    "--progress=plain".into(),
                    "--frontend=gateway.v0".into(),
                    "--opt".into(),
                    format!("source={}", frontend.tag()),
                    "--opt".into(),
                    format!("filename={name}"),
                    "--opt".into(),
                    "force-network-mode=host".into(),
                    "--allow".into(),
                    "network.host".into(),
                    "--local".into(),
                    format!("context={ctx}"),
                    "--local".into(),
                    format!("dockerfile={}", dir.display()),
                    "--output".into(),
                    output,
                ];
                opts.extend(frontend.layout_opts());
                opts.extend(flags.iter().map(|f| f.to_string()));
                let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
                let (code, mut output) = buildctl_within(timeout, addr, &opts);
                if code == 0 && push.is_none() {
                    let dest = dest.to_str().expect("utf-8 path");
                    let (load, text) = daemon.combined(&["load", "-i", dest]);
                    output.push_str(&text);
                    (load, output)
                } else {
                    (code, output)
                }
            }
        };
        Build {
            code,
            output,
            elapsed: started.elapsed(),
            image,
        }
    }
}

/// Where a build goes and how long its client may take.
struct Submit<'a> {
    /// The standalone daemon (buildctl builders; the docker ones use their own daemon).
    addr: &'a str,
    /// Push the image to this registry reference instead of loading it (buildctl builders).
    push: Option<&'a str>,
    /// Seconds before the client is cut (`timeout` exits [`TIMED_OUT`]).
    timeout: &'a str,
}

impl<'a> Submit<'a> {
    fn to(addr: &'a str) -> Self {
        Submit {
            addr,
            push: None,
            timeout: BUILD_TIMEOUT,
        }
    }
}

/// The frontend as one builder reaches it.
enum Frontend {
    Tag(String),
    OciLayout {
        tag: String,
        dir: PathBuf,
        digest: String,
    },
}

impl Frontend {
    fn tag(&self) -> &str {
        match self {
            Frontend::Tag(tag) | Frontend::OciLayout { tag, .. } => tag,
        }
    }

    /// buildctl options that serve the frontend image from its OCI layout.
    fn layout_opts(&self) -> Vec<String> {
        match self {
            Frontend::Tag(_) => Vec::new(),
            Frontend::OciLayout { tag, dir, digest } => vec![
                "--oci-layout".into(),
                format!("sysfile={}", dir.display()),
                "--opt".into(),
                format!("context:{tag}=oci-layout://sysfile@{digest}"),
            ],
        }
    }
}

/// Runs the daemon's client with extra environment, stderr merged, cut after `timeout` seconds:
/// (code, output).
fn with_env(timeout: &str, daemon: &Daemon, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let mut full: Vec<&str> = Vec::new();
    if let Some(host) = daemon.host {
        full.extend(["-H", host]);
    }
    full.extend_from_slice(args);
    // A build that hangs fails its test instead of the whole suite (exit 124 from `timeout`).
    let out = Command::new("sh")
        .args([
            "-c",
            "exec timeout -k 10 \"$0\" \"$@\" 2>&1",
            timeout,
            daemon.client,
        ])
        .args(&full)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run docker");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `<from> save TAG | <to> load`.
pub fn copy_image(tag: &str, from: &Daemon, to: &Daemon) -> Result<(), String> {
    let client = |d: &Daemon| match d.host {
        Some(h) => format!("{} -H {h}", d.client),
        None => d.client.to_string(),
    };
    let script = format!("{} save {tag} | {} load", client(from), client(to));
    let r = run("sh", &["-c", &script]);
    if r.ok() {
        Ok(())
    } else {
        Err(format!(
            "copying {tag} from {} to {} failed: {}{}",
            from.name, to.name, r.stdout, r.stderr
        ))
    }
}

/// `docker push REGISTRY/TAG` (Docker allows plain HTTP to loopback registries).
pub fn push_to_registry(tag: &str) -> Result<(), String> {
    let remote = format!("{REGISTRY}/{tag}");
    for args in [
        vec!["tag", tag, remote.as_str()],
        vec!["push", "-q", &remote],
    ] {
        let r = docker(&args);
        if !r.ok() {
            return Err(format!("docker {}: {}", args.join(" "), r.stderr.trim()));
        }
    }
    Ok(())
}

/// Docker 26's `docker save` unpacked: an OCI layout whose index points at the manifest.
/// Returns the directory and the manifest digest.
pub fn oci_layout_of(tag: &str) -> Result<(tempfile::TempDir, String), String> {
    let dir = tempdir();
    let script = format!(
        "{DOCKER} save {tag} | tar -x -C {}",
        dir.path().to_str().unwrap()
    );
    let r = run("sh", &["-c", &script]);
    if !r.ok() {
        return Err(format!("docker save {tag}: {}", r.stderr.trim()));
    }
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("index.json"))
            .map_err(|e| format!("no index.json in docker save's output: {e}"))?,
    )
    .map_err(|e| format!("index.json: {e}"))?;
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .ok_or("index.json names no manifest")?
        .to_string();
    Ok((dir, digest))
}

/// The Sysfile lines a failed build names for `file`: code frames (BuildKit ≥ v0.10 clients), and
/// `file:N` in the error lines themselves (the message, `ERROR:` lines and the failed vertex's
/// ` > name` summary) — all that engines without source maps (v0.8) show.
pub fn error_locations(output: &str, file: &str) -> Vec<u32> {
    let mut lines = error_lines(output, file);
    let needle = format!("{file}:");
    for line in output.lines() {
        let l = line.trim_start_matches(|c: char| c == '#' || c.is_ascii_digit());
        let is_error = l.contains("ERROR")
            || l.starts_with(" > ")
            || line.starts_with(" > ")
            || l.contains("error:")
            || l.contains("failed to solve");
        if !is_error {
            continue;
        }
        for (i, _) in line.match_indices(&needle) {
            let digits: String = line[i + needle.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse() {
                lines.push(n);
            }
        }
    }
    lines.sort_unstable();
    lines.dedup();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_loaded_from_an_imported_cache_is_not_an_executed_step() {
        let imported = "#11 [sysfile] units (Sysfile:4)\n#11 sha256:502b 2.15kB / 2.15kB done\n\
                        #11 extracting sha256:502b 0.0s done\n#11 DONE 0.1s\n";
        assert!(executed_steps(&parse_plain_progress(imported)).is_empty());
        let ran = "#11 [sysfile] units (Sysfile:4)\n#11 0.282 Created symlink x\n#11 DONE 0.6s\n";
        assert_eq!(executed_steps(&parse_plain_progress(ran)).len(), 1);
        let silent = "#12 [sysfile] write /etc/motd (Sysfile:9)\n#12 DONE 0.1s\n";
        assert_eq!(executed_steps(&parse_plain_progress(silent)).len(), 1);
        let cached = "#12 [sysfile] write /etc/motd (Sysfile:9)\n#12 CACHED\n";
        assert!(executed_steps(&parse_plain_progress(cached)).is_empty());
        // Named only, after the export: no step the build waited for.
        let named_only = "#15 exporting to image\n#15 DONE 0.0s\n\n#16 [sysfile] enable units: ssh (Sysfile:40)\n";
        assert!(executed_steps(&parse_plain_progress(named_only)).is_empty());
        let failed = "#12 [sysfile] run: x (Sysfile:9)\n#12 ERROR: process did not complete\n";
        assert_eq!(executed_steps(&parse_plain_progress(failed)).len(), 1);
    }

    #[test]
    fn error_locations_reads_frames_and_v08_names() {
        let v013 = "Sysfile:4\n--------------------\n   3 |     \n   4 | >>> [[run]]\n   5 | >>> name = \"x\"\n--------------------\nerror: failed to solve: process did not complete";
        assert_eq!(error_locations(v013, "Sysfile"), vec![4, 5]);
        let v08 = "#9 [sysfile] run: explode (Sysfile:4)\n#9 ERROR: executor failed running [/bin/sh -c echo boom; exit 3]: exit code: 3\n------\n > [sysfile] run: explode (Sysfile:4):\n------\nfailed to solve with frontend dockerfile.v0: rpc error";
        assert_eq!(error_locations(v08, "Sysfile"), vec![4]);
        // A progress line that only names a step is not an error location.
        let ok = "#9 [sysfile] run: fine (Sysfile:7)\n#9 DONE 0.1s\n";
        assert!(error_locations(ok, "Sysfile").is_empty());
        let spec = "error: failed to solve: Sysfile:3:1: unknown key `colour`";
        assert_eq!(error_locations(spec, "Sysfile"), vec![3]);
    }
}

// ---------------------------------------------------------------------------------------------
// Hosts

/// The simulated cgroup v2 host's Docker 26 (`scripts/setup-matrix cgroup2`).
pub const CGROUP2: Daemon = Daemon {
    name: "docker-26-cgroup-v2",
    client: DOCKER,
    host: Some("unix:///run/sysfile-cg2/docker.sock"),
};
const CGROUP2_PIDFILE: &str = "/run/sysfile-cg2/docker.pid";

/// `local/debian:SUITE` (`scripts/setup-matrix bases` makes it); panics when the main daemon
/// does not have it.
pub fn suite_base(suite: &str) -> String {
    let base = format!("local/debian:{suite}");
    assert!(
        docker(&["image", "inspect", &base]).ok(),
        "{base} is missing; run scripts/setup-matrix bases"
    );
    base
}

/// A host kind a system container boots on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// This machine: cgroup v1 hybrid, the main Docker 26.
    CgroupV1,
    /// The simulated cgroup v2 host: its own mount, cgroup and network namespaces.
    CgroupV2,
}

impl Host {
    pub fn name(self) -> &'static str {
        match self {
            Host::CgroupV1 => "cgroup-v1",
            Host::CgroupV2 => "cgroup-v2",
        }
    }

    pub fn daemon(self) -> Daemon {
        match self {
            Host::CgroupV1 => Daemon::main(),
            Host::CgroupV2 => CGROUP2,
        }
    }

    /// Makes `tag`, built on the main daemon, available to this host's daemon: `None` on this
    /// machine (the main daemon), otherwise a copy whose guard removes it from that daemon.
    /// Panics when the copy fails.
    pub fn load_image(self, tag: &str) -> Option<ImageGuard> {
        let daemon = self.daemon();
        (daemon != Daemon::main()).then(|| {
            let guard = ImageGuard::new(tag, daemon);
            copy_image(tag, &Daemon::main(), &guard.daemon).unwrap_or_else(|e| panic!("{e}"));
            guard
        })
    }

    /// True when the host is up; otherwise a loud skip (or a failure when required).
    pub fn detect(self, test: &str) -> bool {
        let probe = Engine::detect_quietly().and_then(|_| {
            let r = self
                .daemon()
                .docker(&["info", "--format", "{{.CgroupVersion}}"]);
            let want = if self == Host::CgroupV1 { "1" } else { "2" };
            if r.ok() && r.stdout.trim() == want {
                Ok(())
            } else {
                Err(format!(
                    "{} does not answer as cgroup v{want} ({}{}); run scripts/setup-matrix cgroup2",
                    self.daemon().name,
                    r.stdout.trim(),
                    r.stderr.trim()
                ))
            }
        });
        match probe {
            Ok(()) => true,
            Err(why) => skip_or_fail(test, &why),
        }
    }

    /// The prefix that runs a program with the host's view of `/sys/fs/cgroup` and its network:
    /// nothing on this machine, `nsenter` into the simulated host's namespaces.
    pub fn prefix(self) -> Vec<String> {
        match self {
            Host::CgroupV1 => Vec::new(),
            Host::CgroupV2 => {
                let pid = std::fs::read_to_string(CGROUP2_PIDFILE)
                    .expect("the simulated host's pid file")
                    .trim()
                    .to_string();
                ["nsenter", "-t", &pid, "-m", "-C", "-n", "--"]
                    .map(String::from)
                    .to_vec()
            }
        }
    }

    /// `sysfile ARGS…` as a user on this host runs it (its daemon through `DOCKER_HOST`).
    pub fn sysfile(self, args: &[&str]) -> Run {
        let prefix = self.prefix();
        let mut cmd = match prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(sysfile_bin());
                c
            }
            None => Command::new(sysfile_bin()),
        };
        let out = cmd
            .args(args)
            .envs(self.daemon().env())
            .stdin(Stdio::null())
            .output()
            .expect("run sysfile");
        Run::from(out)
    }

    /// `sysfile run IMAGE --name NAME` on this host; panics unless it printed a container ID.
    pub fn start(self, image: &str, name: &str) -> Container {
        let mut container = Container {
            name: name.to_string(),
            started: Instant::now(),
            daemon: self.daemon(),
        };
        let r = self.sysfile(&["run", image, "--name", name]);
        assert!(
            r.ok(),
            "sysfile run {image} on {} failed (exit {}):\n{}{}",
            self.name(),
            r.code,
            r.stdout,
            r.stderr
        );
        container.started = Instant::now();
        container
    }

    /// An SSH key login from the host's network namespace.
    pub fn ssh_login(self, ip: &str, user: &str, key: &Path) {
        let prefix = self.prefix();
        let prefix: Vec<&str> = prefix.iter().map(String::as_str).collect();
        ssh_login_via(&prefix, ip, user, key);
    }
}
