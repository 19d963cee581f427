//! A new user's first day, end to end on the main Docker daemon: `sysfile run --wait` and three
//! real workloads from `examples/` (PostgreSQL, Apache + PHP-FPM + a timer, a Postfix relay).
//!
//! Each workload is built from its example directory with the frontend under test, started with
//! `sysfile run --wait` (which must exit 0: systemd reached `running`), checked for failed units
//! and for the image's enabled units, and then asked one service-level question from the host or
//! through `docker exec`. Build and boot times go to stderr (`--nocapture` shows them).
//!
//! `sysfile run --wait` is also checked on `examples/webapp` (exit 0, `running`) and on a spec
//! whose enabled unit runs `/bin/false` (exit 3, the unit and its journal lines on stderr); the
//! `wait:` hint `sysfile run` prints without `--wait` is run at once and must say `running`.
//!
//! Without a daemon every test skips loudly, unless `SYSFILE_E2E=required`.
//! Run: `SYSFILE_E2E=required cargo test --test e2e_workloads -- --nocapture`.

use sysfile_testkit::harness;

use harness::*;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `--wait` bound for every workload: a cold boot here takes a few seconds.
const WAIT: &str = "--wait=120";

/// Builds `examples/NAME` (copied to a temporary context) with the frontend under test.
fn build_example(engine: &Engine, name: &str, test: &str) -> (Build, tempfile::TempDir) {
    let example = repo_root().join("examples").join(name);
    let ctx = tempdir();
    copy_tree(&example, ctx.path());
    let build = build_context(engine, ctx.path(), test);
    build.assert_ok(&format!("examples/{name}"));
    eprintln!(
        "[workloads] examples/{name}: built in {:.1}s",
        build.elapsed.as_secs_f64()
    );
    (build, ctx)
}

/// Builds `spec` (its `{frontend}` replaced by the frontend tag) from a context of its own.
/// Returns the build and the context (keep it alive).
fn build_spec(engine: &Engine, spec: &str, test: &str) -> (Build, tempfile::TempDir) {
    let ctx = tempdir();
    std::fs::write(
        ctx.path().join("Sysfile"),
        spec.replace("{frontend}", &frontend_tag()),
    )
    .unwrap();
    let build = build_context(engine, ctx.path(), test);
    (build, ctx)
}

/// Builds the Sysfile in `ctx` with the frontend under test.
fn build_context(engine: &Engine, ctx: &Path, test: &str) -> Build {
    engine.require_base_image();
    engine.build_under_test(test, ctx, &ctx.join("Sysfile"))
}

/// What `sysfile run` did.
struct Started {
    container: Container,
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// `sysfile run IMAGE --name NAME ARGS…` with `env`; the container is removed on drop.
fn sysfile_run(image: &str, test: &str, args: &[&str], env: &[(&str, &str)]) -> Started {
    let name = unique_name(test);
    let container = Container {
        name: name.clone(),
        started: Instant::now(),
        daemon: Daemon::main(),
    };
    let started = Instant::now();
    let out = Command::new(sysfile_bin())
        .args(["run", image, "--name", &name])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run sysfile");
    Started {
        container,
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

impl Started {
    /// Panics unless `sysfile run --wait` said `running` and exited 0 with the ID on stdout.
    fn assert_running(&self, what: &str) {
        assert_eq!(
            self.code,
            0,
            "sysfile run --wait {what} exited {}:\n{}{}\n--- docker logs ---\n{}",
            self.code,
            self.stdout,
            self.stderr,
            self.container.logs_tail(60)
        );
        assert_container_id(&self.stdout);
        assert!(
            self.stderr.contains("systemd is running ("),
            "sysfile run --wait {what}: no `systemd is running` line on stderr:\n{}",
            self.stderr
        );
        let state = self
            .container
            .exec(&["systemctl", "is-system-running"])
            .1
            .trim()
            .to_string();
        assert_eq!(state, "running", "{what}: is-system-running after --wait");
    }
}

fn assert_container_id(stdout: &str) {
    let id = stdout.trim();
    assert!(
        id.len() == 64 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "stdout is {stdout:?}, expected only the 64-hex container ID"
    );
}

/// The checks every workload gets after `--wait`: nothing failed, every enabled unit is up.
fn assert_healthy(started: &Started, image: &str) {
    let c = &started.container;
    assert_no_failed_units(c);
    assert_pid1_is_systemd(c);
    assert_enabled_units_active(c, &image_label_list(image, "sysfile.systemd.units.enabled"));
    // For the record (not a check): what the boot logged at priority warning or worse.
    let (_, warnings) = c.exec(&["journalctl", "-b", "-p", "warning", "--no-pager", "-q"]);
    eprintln!(
        "[workloads] {image}: {} journal lines at priority warning or worse:\n{}",
        warnings.lines().count(),
        tail(&warnings, 15)
    );
}

fn image_size_mb(image: &str) -> f64 {
    let r = docker(&["image", "inspect", "--format", "{{.Size}}", image]);
    r.stdout.trim().parse::<f64>().unwrap_or(0.0) / 1_000_000.0
}

fn report_numbers(example: &str, build: &Build, started: &Started) {
    eprintln!(
        "[workloads] examples/{example}: built in {:.1}s, image {:.0} MB, `sysfile run --wait` returned \
         `running` after {:.1}s",
        build.elapsed.as_secs_f64(),
        image_size_mb(build.tag()),
        started.took.as_secs_f64()
    );
}

// -------------------------------------------------------------------------------------------
// sysfile run --wait

#[test]
fn run_wait_on_webapp_returns_running() {
    let test = "run_wait_on_webapp_returns_running";
    let Some(engine) = Engine::detect(test) else {
        return;
    };
    let (build, _ctx) = build_example(&engine, "webapp", test);
    let started = sysfile_run(build.tag(), test, &["--wait"], &[]);
    started.assert_running("examples/webapp");
    assert_healthy(&started, build.tag());
    report_numbers("webapp", &build, &started);
    // No SSH server in this image: no host-key unit, neither enabled nor in the label (#13).
    let enabled = image_label_list(build.tag(), "sysfile.systemd.units.enabled");
    assert!(
        !enabled.iter().any(|u| u == "sysfile-ssh-host-keys.service"),
        "{enabled:?}"
    );
    let (code, state) =
        started
            .container
            .exec(&["systemctl", "is-enabled", "sysfile-ssh-host-keys.service"]);
    assert_ne!(
        code, 0,
        "the host-key unit is in an image without sshd: {state}"
    );

    // Without --wait, the `wait:` hint works when pasted at once (the bus is not up yet).
    let plain = sysfile_run(build.tag(), test, &[], &[]);
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    let hint = plain
        .stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("wait:"))
        .unwrap_or_else(|| panic!("no `wait:` hint in:\n{}", plain.stderr))
        .trim()
        .to_string();
    let hinted = run("sh", &["-c", &hint]);
    assert_eq!(
        (hinted.code, hinted.stdout.trim()),
        (0, "running"),
        "the hint `{hint}` run at once: {}",
        hinted.stderr
    );
}

/// A spec whose enabled unit fails: `--wait` exits 3 and shows the unit and its journal.
const FAILING_SPEC: &str = r#"# syntax={frontend}
[image]
from = "local/debian:bookworm"

[[files]]
dest = "/etc/systemd/system/doomed.service"
mode = "0644"
content = """
[Unit]
Description=a unit that always fails

[Service]
Type=oneshot
ExecStartPre=/bin/echo doomed is about to fail
ExecStart=/bin/false

[Install]
WantedBy=multi-user.target
"""

[services]
enable = ["doomed"]
"#;

#[test]
fn run_wait_reports_a_failing_unit() {
    let test = "run_wait_reports_a_failing_unit";
    let Some(engine) = Engine::detect(test) else {
        return;
    };
    let (build, _ctx) = build_spec(&engine, FAILING_SPEC, test);
    build.assert_ok("the failing-unit spec");

    // DOCKER_HOST reaches the engine CLI (the main daemon's socket, named explicitly).
    let started = sysfile_run(
        build.tag(),
        test,
        &["--wait=60s"],
        &[("DOCKER_HOST", "unix:///var/run/docker.sock")],
    );
    let err = &started.stderr;
    assert_eq!(started.code, 3, "sysfile run --wait:\n{err}");
    assert_container_id(&started.stdout);
    assert!(
        err.contains("systemd finished booting as `degraded`, not `running`"),
        "{err}"
    );
    assert!(err.contains("failed units:\n  doomed.service\n"), "{err}");
    assert!(
        err.contains("last 10 journal lines of doomed.service:\n"),
        "{err}"
    );
    assert!(err.contains("doomed is about to fail"), "{err}");
    assert!(
        has_line_with(err, &["doomed.service", "Failed with result"]),
        "{err}"
    );
    eprintln!(
        "[workloads] failing unit: `sysfile run --wait` exited 3 after {:.1}s",
        started.took.as_secs_f64()
    );

    // `sysfile wait` on the running container: the same verdict and report.
    let r = run(
        sysfile_bin(),
        &["wait", &started.container.name, "--timeout", "30"],
    );
    assert_eq!(r.code, 3, "sysfile wait: {}", r.stderr);
    assert!(r.stderr.contains("doomed.service"), "{}", r.stderr);
}

/// A spec whose boot cannot finish in time: an enabled oneshot sleeps for a minute.
const SLOW_SPEC: &str = r#"# syntax={frontend}
[image]
from = "local/debian:bookworm"

[[files]]
dest = "/etc/systemd/system/slow.service"
mode = "0644"
content = """
[Unit]
Description=a unit that takes a minute to start

[Service]
Type=oneshot
ExecStart=/bin/sleep 60

[Install]
WantedBy=multi-user.target
"""

[services]
enable = ["slow"]
"#;

#[test]
fn run_wait_times_out_with_the_queued_jobs() {
    let test = "run_wait_times_out";
    let Some(engine) = Engine::detect(test) else {
        return;
    };
    let (build, _ctx) = build_spec(&engine, SLOW_SPEC, test);
    build.assert_ok("the slow-unit spec");
    let started = sysfile_run(build.tag(), test, &["--wait=5"], &[]);
    let err = &started.stderr;
    assert_eq!(started.code, 3, "sysfile run --wait=5:\n{err}");
    assert_container_id(&started.stdout);
    assert!(
        err.contains("systemd did not finish booting within 5 s"),
        "{err}"
    );
    assert!(err.contains("no failed units\n"), "{err}");
    assert!(
        has_line_with(err, &["slow.service", "start", "running"]),
        "the queued jobs should name slow.service:\n{err}"
    );
    assert!(
        started.took < Duration::from_secs(30),
        "--wait=5 took {:?}",
        started.took
    );
}

// -------------------------------------------------------------------------------------------
// The workloads

#[test]
fn workload_postgres() {
    let test = "workload_postgres";
    let Some(engine) = Engine::detect(test) else {
        return;
    };
    let (build, _ctx) = build_example(&engine, "postgres", test);
    let started = sysfile_run(build.tag(), test, &[WAIT], &[]);
    started.assert_running("examples/postgres");
    assert_healthy(&started, build.tag());
    report_numbers("postgres", &build, &started);

    let c = &started.container;
    let (code, one) = c.exec(&[
        "runuser", "-u", "postgres", "--", "psql", "-tAc", "select 1",
    ]);
    assert_eq!((code, one.trim()), (0, "1"), "psql select 1");
    // The table a build step created is there, owned by the role `app`.
    let (code, body) = c.exec(&[
        "runuser",
        "-u",
        "postgres",
        "--",
        "psql",
        "-d",
        "app",
        "-tAc",
        "select body from notes",
    ]);
    assert_eq!((code, body.trim()), (0, "created at build time"));

    // Over TCP from the host, once the README's ALTER ROLE has set a password.
    let (code, _) = c.exec(&[
        "runuser",
        "-u",
        "postgres",
        "--",
        "psql",
        "-c",
        "ALTER ROLE app LOGIN PASSWORD 'e2e-secret'",
    ]);
    assert_eq!(code, 0);
    let ip = c.ip();
    let mut stream = TcpStream::connect((ip.as_str(), 5432)).expect("connect to 5432");
    // An SSLRequest: a PostgreSQL server answers with one byte, `S` or `N`.
    stream
        .write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = [0u8; 1];
    std::io::Read::read_exact(&mut stream, &mut answer).expect("SSLRequest answer");
    assert!(
        matches!(answer[0], b'S' | b'N'),
        "port 5432 answered {answer:?}"
    );
    let (took, code) = c.stop();
    eprintln!(
        "[workloads] examples/postgres: docker stop took {:.1}s (exit {code})",
        took.as_secs_f64()
    );
}

#[test]
fn workload_webstack() {
    let test = "workload_webstack";
    let Some(engine) = Engine::detect(test) else {
        return;
    };
    let (build, _ctx) = build_example(&engine, "webstack", test);
    let started = sysfile_run(build.tag(), test, &[WAIT], &[]);
    started.assert_running("examples/webstack");
    assert_healthy(&started, build.tag());
    report_numbers("webstack", &build, &started);

    let c = &started.container;
    let ip = c.ip();
    // The timer fires 5 s after boot; the page then shows when.
    let page = poll_until(
        Duration::from_secs(30),
        &|| match http_get(&ip, 80, "/index.php") {
            Ok((200, body)) => body,
            Ok((status, body)) => format!("HTTP {status}: {body}"),
            Err(e) => e,
        },
        &|body| body.contains("scheduler last ran: 20"),
    );
    let page = page.unwrap_or_else(|last| panic!("GET /index.php never showed a tick:\n{last}"));
    assert!(
        page.starts_with("hello from PHP 8.2.") && page.contains("(fpm-fcgi)"),
        "GET /index.php was not rendered by PHP-FPM:\n{page}"
    );
    let (code, active) = c.exec(&["systemctl", "is-active", "webstack-tick.timer"]);
    assert_eq!((code, active.trim()), (0, "active"));
    let (_, result) = c.exec(&[
        "systemctl",
        "show",
        "-p",
        "Result",
        "--value",
        "webstack-tick.service",
    ]);
    assert_eq!(result.trim(), "success");
    let (took, code) = c.stop();
    eprintln!(
        "[workloads] examples/webstack: docker stop took {:.1}s (exit {code})",
        took.as_secs_f64()
    );
}

/// Reads one SMTP reply (all its `NNN-` lines and the final `NNN ` line).
fn smtp_reply(reader: &mut BufReader<TcpStream>) -> String {
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read an SMTP reply");
        assert!(
            n > 0,
            "the SMTP server closed the connection after {reply:?}"
        );
        reply.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return reply;
        }
    }
}

#[test]
fn workload_mailrelay() {
    let test = "workload_mailrelay";
    let Some(engine) = Engine::detect(test) else {
        return;
    };
    let (build, _ctx) = build_example(&engine, "mailrelay", test);
    let started = sysfile_run(build.tag(), test, &[WAIT], &[]);
    started.assert_running("examples/mailrelay");
    assert_healthy(&started, build.tag());
    report_numbers("mailrelay", &build, &started);

    let c = &started.container;
    let ip = c.ip();
    let stream = TcpStream::connect((ip.as_str(), 25)).expect("connect to port 25");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let banner = smtp_reply(&mut reader);
    assert!(
        banner.starts_with("220 relay.example.test ESMTP"),
        "banner: {banner:?}"
    );
    writer.write_all(b"EHLO x\r\n").unwrap();
    let ehlo = smtp_reply(&mut reader);
    assert!(
        ehlo.starts_with("250-relay.example.test")
            && ehlo.lines().last().unwrap().starts_with("250 "),
        "EHLO reply: {ehlo:?}"
    );
    // A message for a local user is accepted from the container network (mynetworks).
    for (send, want) in [
        ("MAIL FROM:<e2e@example.test>\r\n", "250 "),
        ("RCPT TO:<root@relay.example.test>\r\n", "250 "),
        ("DATA\r\n", "354 "),
        ("Subject: e2e\r\n\r\nhello\r\n.\r\n", "250 "),
        ("QUIT\r\n", "221 "),
    ] {
        writer.write_all(send.as_bytes()).unwrap();
        let reply = smtp_reply(&mut reader);
        assert!(reply.starts_with(want), "{send:?} -> {reply:?}");
    }
    let (took, code) = c.stop();
    eprintln!(
        "[workloads] examples/mailrelay: docker stop took {:.1}s (exit {code})",
        took.as_secs_f64()
    );
}

/// Build steps see a sane `/run` (issue #13): `/var/lock` is a symlink to `/run/lock`, and
/// `apache2ctl configtest` makes a directory there. Before build steps got a tmpfs at
/// `/run/lock`, this step failed with `mktemp: failed to create directory via template
/// '/var/lock/apache2.XXXXXXXXXX'` (and `examples/webstack` ran `mkdir -p /run/lock` first).
/// The same build shows that systemd's tools in a build step no longer read the step's own
/// command line as a kernel command line (`Note: found "-s" on the kernel commandline`, from
/// the `-s` of the units step's script).
const CONFIGTEST_SPEC: &str = r#"# syntax={frontend}
[image]
from = "local/debian:bookworm"

[packages]
install = ["apache2"]

[[run]]
name = "configtest with /run/lock"
sh = "test -d /run/lock && test -w /var/lock && apache2ctl configtest"
# Unique per run, so this step and the units step after it run (and print) every time.
env = { RUN = "{run}" }
"#;

#[test]
fn apache_configtest_in_a_build_step_finds_run_lock() {
    let test = "apache_configtest_finds_run_lock";
    let Some(engine) = Engine::detect(test) else {
        return;
    };
    let spec = CONFIGTEST_SPEC.replace("{run}", &unique_name(test));
    let (build, _ctx) = build_spec(&engine, &spec, test);
    build.assert_ok("apache2ctl configtest in a build step");
    assert!(
        build.output.contains("Syntax OK"),
        "{}",
        tail(&build.output, 40)
    );
    for leak in ["on the kernel commandline", "on the kernel command line"] {
        assert!(
            !build.output.contains(leak),
            "a build step's systemd tool read a kernel command line:\n{}",
            tail(&build.output, 60)
        );
    }
}

/// A unit with `DynamicUser=yes`, added with `[[files]]` and enabled (issue #13): it passed every
/// check and failed only at boot with `226/NAMESPACE`. Now the unit audit fails the build, at the
/// `[[files]]` entry (line 5), naming the unit file's line; the units step's script never shows.
const DYNAMIC_USER_SPEC: &str = r#"# syntax={frontend}
[image]
from = "local/debian:bookworm"

[[files]]
dest = "/etc/systemd/system/dyn.service"
content = """
[Service]
DynamicUser=yes
ExecStart=/usr/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""

[services]
enable = ["dyn"]
"#;

#[test]
fn dynamic_user_from_files_fails_the_build() {
    let test = "dynamic_user_from_files";
    let Some(engine) = Engine::detect(test) else {
        return;
    };
    let (build, _ctx) = build_spec(&engine, DYNAMIC_USER_SPEC, test);
    build.assert_failed("an enabled DynamicUser=yes unit");
    let output = &build.output;
    assert!(
        output.contains("`DynamicUser=yes` makes dyn.service fail")
            && output.contains("226/NAMESPACE")
            && output.contains("/etc/systemd/system/dyn.service, line 2"),
        "{}",
        tail(output, 40)
    );
    assert!(
        error_lines(output, "Sysfile").contains(&5),
        "the error is not located at the [[files]] entry:\n{}",
        tail(output, 40)
    );
    assert!(!output.contains("set -eu"), "{}", tail(output, 40));
}

/// A `systemctl enable` that fails in the units step (here: an `Alias=` without a unit suffix,
/// which systemctl refuses) names the step and the unit at the `enable` entry (line 17), with
/// systemctl's own message. Before, the build failed with BuildKit's
/// `process "/bin/sh -c set -eu …" did not complete successfully`, the whole internal script.
const FAILED_ENABLE_SPEC: &str = r#"# syntax={frontend}
[image]
from = "local/debian:bookworm"

[[files]]
dest = "/etc/systemd/system/aliased.service"
content = """
[Service]
ExecStart=/usr/bin/sleep infinity

[Install]
WantedBy=multi-user.target
Alias=aliased
"""

[services]
enable = ["aliased"]
"#;

#[test]
fn a_failed_enable_names_the_unit_not_the_script() {
    let test = "failed_enable_names_the_unit";
    let Some(engine) = Engine::detect(test) else {
        return;
    };
    let (build, _ctx) = build_spec(&engine, FAILED_ENABLE_SPEC, test);
    build.assert_failed("an enable systemctl refuses");
    let output = &build.output;
    assert!(
        output.contains("the units step could not set the unit states")
            && output.contains("`systemctl enable aliased.service` failed")
            && output.contains("cannot alias aliased.service as aliased"),
        "{}",
        tail(output, 40)
    );
    assert!(
        error_lines(output, "Sysfile").contains(&17),
        "not located at the enable entry:\n{}",
        tail(output, 40)
    );
    assert!(
        !output.contains("set -eu") && !output.contains("did not complete successfully"),
        "{}",
        tail(output, 40)
    );
}
