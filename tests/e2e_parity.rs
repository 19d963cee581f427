//! Parity tests against the real Docker daemon: secrets, SSH agents and the buildx subrequests
//! (`--print=…`), the things the Dockerfile frontend offers that a custom frontend must match.
//!
//! Same rules as `tests/e2e.rs` (shared harness in `tests/e2e/harness.rs`): without a daemon each
//! test prints `=== SKIPPED … ===` and passes, unless `SYSFILE_E2E=required`.
//!
//! * `secret_reaches_run_and_never_lands_in_the_image`, `secret_only_change_behaviour`:
//!   `docker build --secret`; findings written up in `docs/secrets.md`.
//! * `ssh_agent_reaches_run`: `docker build --ssh default=<agent socket>`.
//! * `subrequests_describe_via_buildx`, `outline_via_buildx`, `targets_via_buildx`,
//!   `lint_via_buildx`: Debian's buildx 0.13.1 has no `--call`/`--check`; `--print=NAME` exists
//!   only with `BUILDX_EXPERIMENTAL=1` and sends the frontend option `requestid=frontend.NAME`.
//!   The last three fail with "WAITING FOR frontend.<name>" until sysfile answers them.
//!
//! Run: `SYSFILE_E2E=required cargo test --test e2e_parity -- --nocapture`.

#[path = "e2e/harness.rs"]
mod harness;

use harness::*;
use sha2::{Digest, Sha256};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Local helpers

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sysfile-e2e-parity-")
        .tempdir()
        .unwrap()
}

/// Writes `text` (with `{frontend}` replaced by the frontend tag) to `<dir>/Sysfile`.
fn write_sysfile(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("Sysfile");
    std::fs::write(&path, text.replace("{frontend}", &frontend_tag())).unwrap();
    path
}

/// `n` random bytes as lowercase hex (2n characters), from /dev/urandom.
fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut buf)
        .unwrap();
    hex::encode(buf)
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The engine with base and frontend images ready, or `None` (skip).
fn setup(test: &str) -> Option<Engine> {
    let engine = Engine::detect(test)?;
    engine.require_base_image();
    engine.frontend_image();
    Some(engine)
}

/// The first vertex whose name contains `needle`, with a readable panic otherwise.
fn vertex<'a>(vertices: &'a [Vertex], needle: &str, output: &str) -> &'a Vertex {
    vertices
        .iter()
        .find(|v| v.name.contains(needle))
        .unwrap_or_else(|| panic!("no progress vertex named like {needle:?} in:\n{output}"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// `docker save` scanning

/// What [`scan_saved_image`] looked at and where it found the needles.
#[derive(Debug, Default)]
struct Scan {
    /// Layer tarballs listed in manifest.json and scanned.
    layers: usize,
    /// Files looked at: archive members, extracted layer files, config.
    files: usize,
    /// Paths (`layer N: etc/x`) of every layer entry.
    layer_paths: Vec<String>,
    /// Per needle: where it was found.
    hits: Vec<Vec<String>>,
}

/// Decompresses a layer blob: gzip (magic 1f 8b) through `gzip -dc`, zstd (28 b5 2f fd) through
/// `zstd -dc`, a plain tar (`ustar` at offset 257) as is. Panics on anything else.
fn layer_tar(path: &Path) -> Vec<u8> {
    let data = std::fs::read(path).unwrap();
    let tool = if data.starts_with(&[0x1f, 0x8b]) {
        Some("gzip")
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else {
        None
    };
    let Some(tool) = tool else {
        assert!(
            (data.len() >= 262 && &data[257..262] == b"ustar") || data.iter().all(|b| *b == 0),
            "{}: neither gzip, zstd nor a tar archive",
            path.display()
        );
        return data;
    };
    let out = Command::new(tool)
        .args(["-dc", path.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
    assert!(out.status.success(), "{tool} -dc {}", path.display());
    out.stdout
}

/// Every regular file and symlink under `dir` (symlinks are not followed).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, out);
        } else if meta.is_file() || meta.file_type().is_symlink() {
            out.push(path);
        }
    }
}

/// `docker save`s `image` (Docker 26 format: `index.json`, `oci-layout`, `blobs/sha256/*`,
/// `manifest.json`; the older `<id>/layer.tar` layout works too, as manifest.json names the
/// layers either way), then searches for each needle in: every member of the archive (raw
/// bytes, which includes the config JSON with its history), every layer's decompressed tar
/// stream, every file extracted from every layer (content, name and symlink target), the
/// parsed config's `history`, `docker history --no-trunc` and `docker image inspect`.
fn scan_saved_image(image: &str, needles: &[&[u8]]) -> Scan {
    let work = tempdir();
    let archive = work.path().join("image.tar");
    let r = docker(&["save", "-o", archive.to_str().unwrap(), image]);
    assert!(r.ok(), "docker save {image}: {}", r.stderr.trim());
    let saved = work.path().join("saved");
    std::fs::create_dir(&saved).unwrap();
    let r = run(
        "tar",
        &[
            "-xf",
            archive.to_str().unwrap(),
            "-C",
            saved.to_str().unwrap(),
        ],
    );
    assert!(r.ok(), "tar -xf of docker save output: {}", r.stderr.trim());

    let mut scan = Scan {
        hits: vec![Vec::new(); needles.len()],
        ..Scan::default()
    };
    let record = |scan: &mut Scan, data: &[u8], place: &str| {
        for (i, n) in needles.iter().enumerate() {
            if contains(data, n) {
                scan.hits[i].push(place.to_string());
            }
        }
    };

    // 1. Every member of the saved archive, raw.
    assert!(
        saved.join("manifest.json").is_file(),
        "docker save wrote no manifest.json"
    );
    if !saved.join("index.json").is_file() {
        eprintln!("[e2e_parity] note: docker save wrote no index.json (pre-25 format)");
    }
    let mut members = Vec::new();
    walk(&saved, &mut members);
    for m in &members {
        let data = std::fs::read(m).unwrap_or_default();
        scan.files += 1;
        record(
            &mut scan,
            &data,
            &format!("archive {}", m.strip_prefix(&saved).unwrap().display()),
        );
    }

    // 2. The layers and the config named by manifest.json.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(saved.join("manifest.json")).unwrap()).unwrap();
    let entry = &manifest[0];
    let layers: Vec<String> = entry["Layers"]
        .as_array()
        .expect("manifest.json Layers")
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    assert!(!layers.is_empty(), "no layers in {manifest}");
    for (n, layer) in layers.iter().enumerate() {
        let stream = layer_tar(&saved.join(layer));
        record(&mut scan, &stream, &format!("layer {n} tar stream"));
        let tar_path = work.path().join(format!("layer{n}.tar"));
        std::fs::write(&tar_path, &stream).unwrap();
        drop(stream);
        let listing = run("tar", &["-tf", tar_path.to_str().unwrap()]);
        assert!(listing.ok(), "tar -tf layer {n}: {}", listing.stderr.trim());
        scan.layer_paths.extend(
            listing
                .stdout
                .lines()
                .map(|p| format!("layer {n}: {}", p.trim_start_matches("./"))),
        );
        let dir = work.path().join(format!("layer{n}"));
        std::fs::create_dir(&dir).unwrap();
        let r = run(
            "tar",
            &[
                "-xf",
                tar_path.to_str().unwrap(),
                "-C",
                dir.to_str().unwrap(),
                "--no-same-owner",
                "--no-same-permissions",
            ],
        );
        assert!(r.ok(), "extracting layer {n}: {}", r.stderr.trim());
        let _ = std::fs::remove_file(&tar_path);
        let mut files = Vec::new();
        walk(&dir, &mut files);
        for f in &files {
            let rel = f.strip_prefix(&dir).unwrap().display().to_string();
            let place = format!("layer {n} file {rel}");
            scan.files += 1;
            record(&mut scan, rel.as_bytes(), &format!("{place} (name)"));
            if let Ok(target) = std::fs::read_link(f) {
                record(
                    &mut scan,
                    target.as_os_str().as_encoded_bytes(),
                    &format!("{place} (symlink target)"),
                );
            } else if let Ok(data) = std::fs::read(f) {
                record(&mut scan, &data, &place);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        scan.layers += 1;
    }
    let config_path = saved.join(entry["Config"].as_str().expect("manifest.json Config"));
    let config_raw = std::fs::read(&config_path).unwrap();
    record(&mut scan, &config_raw, "config blob");
    let config: serde_json::Value = serde_json::from_slice(&config_raw).unwrap();
    let history = serde_json::to_string(&config["history"]).unwrap();
    assert!(
        config["history"].as_array().is_some_and(|h| !h.is_empty()),
        "the config has no history: {config}"
    );
    record(&mut scan, history.as_bytes(), "config history");

    // 3. What the engine shows about the image.
    let h = docker(&["history", "--no-trunc", image]);
    assert!(h.ok(), "docker history: {}", h.stderr.trim());
    record(&mut scan, h.stdout.as_bytes(), "docker history --no-trunc");
    let i = docker(&["image", "inspect", image]);
    record(&mut scan, i.stdout.as_bytes(), "docker image inspect");
    scan
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// The step checks the secret against a hash given as a build argument (so the secret itself
/// never appears in the Sysfile) and writes only a derived, non-secret marker.
const SECRET_SPEC: &str = r#"# syntax={frontend}
[image]
from = "local/debian:bookworm"

[args]
TOKEN_SHA256 = "unset"

[[run]]
name = "use the token"
sh = '''
set -eu
# nonce: {nonce}
test "$(sha256sum < /run/secrets/token | cut -d' ' -f1)" = "$TOKEN_SHA256"
printf 'secret-ok len=%s\n' "$(wc -c < /run/secrets/token)" > /etc/sysfile-secret-ok
'''
mounts = [{ type = "secret", id = "token", target = "/run/secrets/token" }]

"#;

/// An optional secret: the step records whether it was there.
const OPTIONAL_SECRET_SPEC: &str = r#"# syntax={frontend}
[image]
from = "local/debian:bookworm"

[[run]]
name = "maybe use the token"
sh = '''
# nonce: {nonce}
if [ -e /run/secrets/token ]; then echo present; else echo absent; fi > /etc/sysfile-secret-state
'''
mounts = [{ type = "secret", id = "token", required = false }]

"#;

#[test]
fn secret_reaches_run_and_never_lands_in_the_image() {
    let test = "secret_reaches_run_and_never_lands_in_the_image";
    let Some(engine) = setup(test) else { return };
    let nonce = random_hex(8);
    let secret = random_hex(20); // 40 hex characters, fresh per run
    let secrets = tempdir();
    let secret_file = secrets.path().join("token");
    std::fs::write(&secret_file, &secret).unwrap();
    let ctx = tempdir();
    let file = write_sysfile(ctx.path(), &SECRET_SPEC.replace("{nonce}", &nonce));
    let secret_flag = format!("id=token,src={}", secret_file.display());
    let hash_arg = format!("TOKEN_SHA256={}", sha256_hex(secret.as_bytes()));

    // The secret reaches the step (the hash check inside it passes) ...
    let build = engine.build(
        test,
        ctx.path(),
        &file,
        &["--secret", &secret_flag, "--build-arg", &hash_arg],
    );
    build.assert_ok("build with --secret");
    assert!(
        !build.output.contains(&secret),
        "the secret appears in the build output:\n{}",
        build.output
    );
    assert_eq!(
        image_file(build.tag(), "/etc/sysfile-secret-ok"),
        "secret-ok len=40\n"
    );

    // ... and is nowhere in the saved image. The marker is the positive control: it proves the
    // scan looks inside the layer that the step wrote.
    let scan = scan_saved_image(build.tag(), &[secret.as_bytes(), b"secret-ok len=40"]);
    eprintln!(
        "[e2e_parity] scanned {} layers, {} files; marker found in {:?}",
        scan.layers, scan.files, scan.hits[1]
    );
    assert!(
        scan.hits[0].is_empty(),
        "the secret value leaked into the image: {:?}",
        scan.hits[0]
    );
    assert!(
        scan.hits[1]
            .iter()
            .any(|p| p.ends_with("file etc/sysfile-secret-ok")),
        "the scan did not find the step's marker file in any layer (the scan is broken): {:?}",
        scan.hits[1]
    );
    let mount_point: Vec<&String> = scan
        .layer_paths
        .iter()
        .filter(|p| p.contains("run/secrets"))
        .collect();
    assert!(
        mount_point.is_empty(),
        "the secret's mount point is in a layer: {mount_point:?}"
    );

    // A required secret (the default) that the build does not provide fails the build, naming it.
    // Only when the step runs: a CACHED step does not need its secret (the cache key does not
    // include secrets), so the same spec with the same nonce would build. A fresh nonce here.
    let ctx_missing = tempdir();
    let file_missing = write_sysfile(
        ctx_missing.path(),
        &SECRET_SPEC.replace("{nonce}", &random_hex(8)),
    );
    let missing = engine.build(
        test,
        ctx_missing.path(),
        &file_missing,
        &["--build-arg", &hash_arg],
    );
    missing.assert_failed("required secret not provided");
    let tail_text = tail(&missing.output, 30);
    assert!(
        tail_text.contains("secret token") && tail_text.contains("not found"),
        "the error does not say which secret is missing:\n{tail_text}"
    );

    // An optional one is simply absent.
    let ctx2 = tempdir();
    let file2 = write_sysfile(
        ctx2.path(),
        &OPTIONAL_SECRET_SPEC.replace("{nonce}", &nonce),
    );
    let optional = engine.build(test, ctx2.path(), &file2, &[]);
    optional.assert_ok("optional secret not provided");
    assert_eq!(
        image_file(optional.tag(), "/etc/sysfile-secret-state"),
        "absent\n"
    );
    // Providing it now would hit the cache of the build above (still "absent"): whether a
    // secret is present is not in the cache key either. A fresh nonce makes the step run.
    let ctx3 = tempdir();
    let file3 = write_sysfile(
        ctx3.path(),
        &OPTIONAL_SECRET_SPEC.replace("{nonce}", &random_hex(8)),
    );
    let given = engine.build(test, ctx3.path(), &file3, &["--secret", &secret_flag]);
    given.assert_ok("optional secret provided");
    assert_eq!(
        image_file(given.tag(), "/etc/sysfile-secret-state"),
        "present\n"
    );
}

/// Records a fingerprint of the secret (16 hex of its sha256, not the secret) so the test can
/// tell which secret value the image was built with.
const FINGERPRINT_SPEC: &str = r#"# syntax={frontend}
[image]
from = "local/debian:bookworm"

[args]
# Bump to rebuild the steps that use the token.
TOKEN_VERSION = "1"

[[run]]
name = "fingerprint the token"
sh = '''
set -eu
# nonce: {nonce}
sha256sum < /run/secrets/token | cut -c1-16 > /etc/token-fingerprint
'''
mounts = [{ type = "secret", id = "token" }]

"#;

#[test]
fn secret_only_change_behaviour() {
    let test = "secret_only_change_behaviour";
    let Some(engine) = setup(test) else { return };
    let ctx = tempdir();
    let file = write_sysfile(
        ctx.path(),
        &FINGERPRINT_SPEC.replace("{nonce}", &random_hex(8)),
    );
    let secrets = tempdir();
    let secret_file = secrets.path().join("token");
    let flag = format!("id=token,src={}", secret_file.display());
    let (a, b) = (random_hex(20), random_hex(20));
    let fp = |s: &str| format!("{}\n", &sha256_hex(s.as_bytes())[..16]);
    let step = "fingerprint the token";

    let build = |extra: &[&str], what: &str| {
        let mut args = vec!["--secret", flag.as_str()];
        args.extend_from_slice(extra);
        let b = engine.build(test, ctx.path(), &file, &args);
        b.assert_ok(what);
        let v = vertex(&parse_plain_progress(&b.output), step, &b.output).clone();
        let fingerprint = image_file(b.tag(), "/etc/token-fingerprint");
        (b, v, fingerprint)
    };

    std::fs::write(&secret_file, &a).unwrap();
    let (_b1, v1, f1) = build(&[], "first build, secret A");
    assert!(!v1.cached, "the first build's step came from the cache");
    assert_eq!(f1, fp(&a));

    // Only the secret's content changes: BuildKit's cache key does not include it, so the step
    // is CACHED and the image still carries what was derived from the OLD secret.
    std::fs::write(&secret_file, &b).unwrap();
    let (_b2, v2, f2) = build(&[], "second build, secret B");
    assert!(
        v2.cached && v2.log_lines == 0,
        "expected the step to be CACHED after a secret-only change: {v2:?}"
    );
    assert_eq!(
        f2,
        fp(&a),
        "expected the stale result (derived from secret A) after a secret-only change"
    );

    // Fix 1: a build argument the step sees (every declared arg is in the step's environment,
    // so it is part of the cache key).
    let (_b3, v3, f3) = build(
        &["--build-arg", "TOKEN_VERSION=2"],
        "third build, TOKEN_VERSION=2",
    );
    assert!(!v3.cached, "TOKEN_VERSION=2 did not rerun the step: {v3:?}");
    assert_eq!(f3, fp(&b));

    // Fix 2: --no-cache, with the old TOKEN_VERSION.
    let (_b4, v4, f4) = build(&["--no-cache"], "fourth build, --no-cache");
    assert!(!v4.cached, "--no-cache did not rerun the step: {v4:?}");
    assert_eq!(f4, fp(&b));

    // A --no-cache build replaces the cached result: the next plain build reuses it.
    let (_b5, v5, f5) = build(&[], "fifth build, after --no-cache");
    assert!(v5.cached, "expected a cached step after --no-cache: {v5:?}");
    assert_eq!(f5, fp(&b));

    // A cached step does not need its secret at all: without --secret the build still succeeds.
    let without = engine.build(test, ctx.path(), &file, &[]);
    without.assert_ok("sixth build, no --secret, step cached");
    let vertices6 = parse_plain_progress(&without.output);
    let v6 = vertex(&vertices6, step, &without.output);
    assert!(v6.cached, "expected the step to be CACHED: {v6:?}");
}

// ---------------------------------------------------------------------------------------------
// SSH

/// An `ssh-agent -D -a SOCKET` child, killed (by its pid) on drop.
struct Agent {
    child: Child,
    socket: PathBuf,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .args(["-D", "-a", socket.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot run ssh-agent (is openssh-client installed?)");
        let agent = Agent { child, socket };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !agent.socket.exists() {
            assert!(Instant::now() < deadline, "ssh-agent made no socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        agent
    }

    fn add(&self, key: &Path) {
        let out = Command::new("ssh-add")
            .arg(key)
            .env("SSH_AUTH_SOCK", &self.socket)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ssh-add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first step reports the `SSH_AUTH_SOCK` sysfile sets for an ssh mount; the second uses
/// it to list the agent's keys.
const SSH_SPEC: &str = r#"# syntax={frontend}
[image]
from = "local/debian:bookworm"

[args]
EXPECTED_FINGERPRINT = "unset"

[packages]
install = ["openssh-client"]

[[run]]
name = "report SSH_AUTH_SOCK"
sh = '''
# nonce: {nonce}
echo "sysfile-ssh-auth-sock=${SSH_AUTH_SOCK:-unset}"
'''
mounts = [{ type = "ssh" }]

[[run]]
name = "list agent keys"
sh = '''
set -eu
# nonce: {nonce}
ssh-add -l
ssh-add -l | grep -qF -- "$EXPECTED_FINGERPRINT"
'''
mounts = [{ type = "ssh" }]
"#;

#[test]
fn ssh_agent_reaches_run() {
    let test = "ssh_agent_reaches_run";
    let Some(engine) = setup(test) else { return };
    let keys = tempdir();
    let (key, _public) = keypair(keys.path());
    let agent = Agent::start(keys.path());
    agent.add(&key);
    let fp = run("ssh-keygen", &["-lf", key.to_str().unwrap()]);
    assert!(fp.ok(), "ssh-keygen -lf: {}", fp.stderr.trim());
    // "256 SHA256:… sysfile-e2e (ED25519)"
    let fingerprint = fp
        .stdout
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_string();
    assert!(fingerprint.starts_with("SHA256:"), "{}", fp.stdout);

    let ctx = tempdir();
    let file = write_sysfile(ctx.path(), &SSH_SPEC.replace("{nonce}", &random_hex(8)));
    let ssh_flag = format!("default={}", agent.socket.display());
    let fp_arg = format!("EXPECTED_FINGERPRINT={fingerprint}");
    let build = engine.build(
        test,
        ctx.path(),
        &file,
        &["--ssh", &ssh_flag, "--build-arg", &fp_arg],
    );
    build.assert_ok("build with --ssh");
    let listed = build
        .output
        .lines()
        .any(|l| l.contains(&fingerprint) && l.contains("sysfile-e2e") && !l.contains("grep"));
    assert!(
        listed,
        "`ssh-add -l` in the step did not list {fingerprint}:\n{}",
        build.output
    );
    let sock = build
        .output
        .lines()
        .find_map(|l| l.split("sysfile-ssh-auth-sock=").nth(1))
        .map(str::trim)
        .unwrap_or("(not printed)");
    // Like the Dockerfile frontend, sysfile points SSH_AUTH_SOCK at the first ssh mount's target.
    assert_eq!(
        sock, "/run/buildkit/ssh_agent.0",
        "SSH_AUTH_SOCK in a step with an ssh mount"
    );
    drop(agent);
}

// ---------------------------------------------------------------------------------------------
// Subrequests through buildx

/// `BUILDX_EXPERIMENTAL=1 docker buildx build --progress=plain --print=WHAT -f FILE DIR`.
/// buildx 0.13.1 only has `--print` (experimental); it sends `requestid=frontend.<name>` and
/// prints the answer on stdout (progress goes to stderr).
fn buildx_print(what: &str, dir: &Path, file: &Path) -> Run {
    let out = Command::new(DOCKER)
        .env("BUILDX_EXPERIMENTAL", "1")
        .args(["buildx", "build", "--progress=plain"])
        .arg(format!("--print={what}"))
        .arg("-f")
        .arg(file)
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run docker buildx");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Panics with a clear message when the frontend does not answer `frontend.<name>` yet; else
/// requires success.
fn require_answered(r: &Run, name: &str) {
    let unsupported = format!("unsupported request frontend.{name}");
    if r.stderr.contains(&unsupported) || r.stdout.contains(&unsupported) {
        panic!(
            "WAITING FOR frontend.{name}: sysfile answered {unsupported:?} (not implemented yet).\n{}",
            tail(&r.stderr, 8)
        );
    }
    assert!(
        r.code == 0,
        "--print={name} failed (exit {}):\nstdout:\n{}\nstderr:\n{}",
        r.code,
        r.stdout,
        tail(&r.stderr, 30)
    );
}

/// The JSON document in a `format=json` answer (the whole of stdout).
fn json_of(r: &Run) -> serde_json::Value {
    serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", r.stdout))
}

const SUBREQUEST_SPEC: &str = r#"# syntax={frontend}
[image]
from = "local/debian:bookworm"

[args]
# Debian release codename.
RELEASE = "bookworm"
# The port sshd listens on.
PORT = 2222

[[run]]
name = "uses secrets and ssh"
sh = "true"
mounts = [
  { type = "secret", id = "token" },
  { type = "secret", id = "extra", required = false },
  { type = "ssh" },
]
"#;

fn subrequest_setup(test: &str) -> Option<(tempfile::TempDir, PathBuf)> {
    setup(test)?;
    let ctx = tempdir();
    let file = write_sysfile(ctx.path(), SUBREQUEST_SPEC);
    Some((ctx, file))
}

#[test]
fn subrequests_describe_via_buildx() {
    let Some((ctx, file)) = subrequest_setup("subrequests_describe_via_buildx") else {
        return;
    };
    let json = buildx_print("subrequests.describe,format=json", ctx.path(), &file);
    require_answered(&json, "subrequests.describe");
    let list = json_of(&json);
    let names: Vec<&str> = list
        .as_array()
        .expect("describe answers a JSON array")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(
        names.contains(&"frontend.subrequests.describe"),
        "describe does not list itself: {names:?}"
    );
    // The text form: buildx's table, names without the `frontend.` prefix.
    let text = buildx_print("subrequests.describe", ctx.path(), &file);
    require_answered(&text, "subrequests.describe");
    assert!(
        text.stdout.lines().next().unwrap_or("").starts_with("NAME")
            && text
                .stdout
                .lines()
                .any(|l| l.starts_with("subrequests.describe ")),
        "unexpected table:\n{}",
        text.stdout
    );
}

#[test]
fn outline_via_buildx() {
    let Some((ctx, file)) = subrequest_setup("outline_via_buildx") else {
        return;
    };
    let r = buildx_print("outline,format=json", ctx.path(), &file);
    require_answered(&r, "outline");
    let outline = json_of(&r);
    let args = outline["args"].as_array().expect("outline.args");
    let arg = |name: &str| {
        args.iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("outline.args has no {name}: {outline}"))
    };
    assert_eq!(arg("RELEASE")["value"], "bookworm");
    assert_eq!(arg("RELEASE")["description"], "Debian release codename.");
    assert_eq!(arg("PORT")["value"], "2222");
    assert_eq!(arg("PORT")["description"], "The port sshd listens on.");
    let ids = |key: &str| -> Vec<(String, bool)> {
        outline[key]
            .as_array()
            .unwrap_or_else(|| panic!("outline.{key} missing: {outline}"))
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().unwrap_or("").to_string(),
                    s["required"].as_bool().unwrap_or(false),
                )
            })
            .collect()
    };
    let secrets = ids("secrets");
    assert!(
        secrets.contains(&("token".into(), true)) && secrets.contains(&("extra".into(), false)),
        "outline.secrets: {secrets:?}"
    );
    let ssh = ids("ssh");
    assert!(
        ssh.iter().any(|(n, _)| n == "default"),
        "outline.ssh: {ssh:?}"
    );

    // The text form is buildx's rendering of result.json.
    let t = buildx_print("outline", ctx.path(), &file);
    require_answered(&t, "outline");
    let row = |first: &str| {
        t.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(first))
            .unwrap_or_else(|| panic!("no row {first} in:\n{}", t.stdout))
            .to_string()
    };
    assert!(row("RELEASE").contains("bookworm") && row("RELEASE").contains("Debian release"));
    assert!(row("PORT").contains("2222"));
    assert!(row("token").contains("true"), "{}", t.stdout);
    assert!(
        t.stdout.lines().any(|l| l.starts_with("SSH")),
        "{}",
        t.stdout
    );
    row("default");
}

#[test]
fn targets_via_buildx() {
    let Some((ctx, file)) = subrequest_setup("targets_via_buildx") else {
        return;
    };
    let r = buildx_print("targets,format=json", ctx.path(), &file);
    require_answered(&r, "targets");
    let v = json_of(&r);
    let targets = v["targets"].as_array().expect("targets");
    assert_eq!(targets.len(), 1, "exactly one target: {v}");
    assert_eq!(targets[0]["name"], "default");
    assert_eq!(targets[0]["default"], true);

    let t = buildx_print("targets", ctx.path(), &file);
    require_answered(&t, "targets");
    assert!(
        t.stdout.lines().any(|l| l.starts_with("default (default)")),
        "unexpected table:\n{}",
        t.stdout
    );
}

#[test]
fn lint_via_buildx() {
    let Some((ctx, file)) = subrequest_setup("lint_via_buildx") else {
        return;
    };
    // buildx 0.13.1 has no lint printer: it prints the frontend's `result.txt` verbatim (and,
    // without one, logs the raw metadata map to stderr). No `--call=check`, no exit status
    // from `result.statuscode`.
    let r = buildx_print("lint", ctx.path(), &file);
    require_answered(&r, "lint");
    assert!(
        r.stdout.contains("UnpinnedBaseImage"),
        "lint did not report UnpinnedBaseImage for an unpinned base:\nstdout:\n{}\nstderr:\n{}",
        r.stdout,
        tail(&r.stderr, 10)
    );
}
