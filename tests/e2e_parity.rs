//! Parity tests against the real Docker daemon: secrets, SSH agents and the buildx subrequests
//! (`--print=…`), the things the Dockerfile frontend offers that a custom frontend must match.
//!
//! Same rules as `tests/e2e.rs` (shared harness in `testkit/src/harness.rs`): without a daemon each
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

use sysfile_testkit::harness;
use sysfile_testkit::leaks;

use harness::*;
use leaks::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

// ---------------------------------------------------------------------------------------------
// Local helpers

/// Writes `text` (with `{frontend}` replaced by the frontend tag) to `<dir>/Sysfile`.
fn write_sysfile(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("Sysfile");
    std::fs::write(&path, text.replace("{frontend}", &frontend_tag())).unwrap();
    path
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
    Run::from(out)
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
        r.stdout.contains("NoConsoleLogs"),
        "lint did not report NoConsoleLogs for a spec without console_logs:\nstdout:\n{}\nstderr:\n{}",
        r.stdout,
        tail(&r.stderr, 10)
    );
    // Docker's classic store resolves the local base without a digest: no pin is known, so
    // `frontend.lint` (which resolves the base like the build) does not call it unpinned.
    assert!(
        !r.stdout.contains("UnpinnedBaseImage"),
        "lint reported UnpinnedBaseImage for a base Docker resolved without a digest:\n{}",
        r.stdout
    );
}
