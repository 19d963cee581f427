//! The host matrix: the boot scenario on every host kind this machine can run (this cgroup v1
//! hybrid host and the simulated cgroup v2 host of `scripts/setup-matrix cgroup2`), for Debian
//! bookworm (systemd 252), trixie (257) and sid (the newest systemd), booted with `sysfile run`
//! as a user on that host would.
//!
//! Where a combination boots: `running`, no failed unit, every enabled unit active, an SSH key
//! login, the boot in `docker logs` (each message once, no colour codes), `healthy`, a second
//! container with its own identity, and `docker stop` exiting 0. Where `sysfile run` refuses (a systemd without cgroup v1 support on a
//! v1 host), the test proves both the refusal and that the image really fails there. Each run
//! prints the systemd version every suite brings, for `docs/contract.md`.

use sysfile_testkit::engines;
use sysfile_testkit::harness;

use engines::*;
use harness::*;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

const BOOT_BOUND: Duration = Duration::from_secs(90);

#[test]
fn boot_bookworm_on_cgroup_v1() {
    boot_matrix(Host::CgroupV1, "bookworm");
}

#[test]
fn boot_trixie_on_cgroup_v1() {
    boot_matrix(Host::CgroupV1, "trixie");
}

#[test]
fn boot_sid_on_cgroup_v1() {
    boot_matrix(Host::CgroupV1, "sid");
}

#[test]
fn boot_bookworm_on_cgroup_v2() {
    boot_matrix(Host::CgroupV2, "bookworm");
}

#[test]
fn boot_trixie_on_cgroup_v2() {
    boot_matrix(Host::CgroupV2, "trixie");
}

#[test]
fn boot_sid_on_cgroup_v2() {
    boot_matrix(Host::CgroupV2, "sid");
}

/// The sshd example on `local/debian:SUITE`, built on the main daemon once for the tests of a suite
/// that run at the same time, and removed when the last of them ends.
struct SuiteImage {
    build: Build,
    key: PathBuf,
    systemd_major: u32,
    _ctx: tempfile::TempDir,
}

fn suite_image(suite: &'static str) -> Arc<SuiteImage> {
    // Weak: a `static` is never dropped, so a strong reference here would leave the image behind.
    static IMAGES: Mutex<Vec<(&'static str, Weak<SuiteImage>)>> = Mutex::new(Vec::new());
    let mut images = IMAGES.lock().unwrap_or_else(|e| e.into_inner());
    images.retain(|(_, image)| image.strong_count() > 0);
    if let Some(image) = images
        .iter()
        .find(|(s, _)| *s == suite)
        .and_then(|(_, image)| image.upgrade())
    {
        return image;
    }
    let engine = Engine::detect_quietly().expect("engine");
    let base = suite_base(suite);
    let ctx = tempdir();
    copy_tree(&repo_root().join("examples/sshd"), ctx.path());
    let spec = std::fs::read_to_string(ctx.path().join("Sysfile"))
        .unwrap()
        .replace("local/debian:bookworm", &base);
    std::fs::write(ctx.path().join("Sysfile"), spec).unwrap();
    let (key, public) = keypair(ctx.path());
    std::fs::create_dir_all(ctx.path().join("keys")).unwrap();
    std::fs::write(ctx.path().join("keys/admin.pub"), public).unwrap();
    let build = engine.build_under_test(
        &format!("hosts-{suite}"),
        ctx.path(),
        &ctx.path().join("Sysfile"),
    );
    build.assert_ok(&format!("the sshd example on {base}"));
    let version = inspect_image(build.tag())["Config"]["Labels"]["sysfile.systemd.version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let systemd_major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("{base}: no systemd version label ({version:?})"));
    eprintln!("[hosts] {base}: systemd {version}");
    let image = Arc::new(SuiteImage {
        build,
        key,
        systemd_major,
        _ctx: ctx,
    });
    images.push((suite, Arc::downgrade(&image)));
    image
}

fn boot_matrix(host: Host, suite: &'static str) {
    let test = format!("boot_{suite}_on_{}", host.name());
    if !host.detect(&test) {
        return;
    }
    let image = suite_image(suite);
    let tag = image.build.tag();
    let daemon = host.daemon();
    let _copy = host.load_image(tag);
    // systemd 258 dropped cgroup v1: refused there, booted everywhere else.
    if host == Host::CgroupV1 && image.systemd_major >= 258 {
        refused_and_really_fails(host, tag, &test, image.systemd_major);
        return;
    }
    // `--explain` on this host names the measured cgroup flags and why.
    let explain = host.sysfile(&["run", tag, "--explain"]);
    assert!(
        explain.ok(),
        "{test}: sysfile run --explain: {}",
        explain.stderr
    );
    let (flag, reason) = match host {
        Host::CgroupV1 => (
            "--mount type=bind,src=/sys/fs/cgroup/systemd,dst=/sys/fs/cgroup/systemd",
            "hierarchy alone is bound read-write",
        ),
        Host::CgroupV2 => (
            "--cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw",
            "--cgroupns=private alone makes systemd exit 255",
        ),
    };
    assert!(
        explain.stdout.contains(flag) && explain.stdout.contains(reason),
        "{test}: --explain does not name {flag:?} with its reason:\n{}",
        explain.stdout
    );
    assert!(!explain.stdout.contains("--privileged"));
    let c = host.start(tag, &unique_name(&test));
    let twin = host.start(tag, &unique_name(&test));
    assert_boots_to_running(&c, BOOT_BOUND, &|| c.logs_tail(60));
    assert_no_failed_units(&c);
    assert_pid1_is_systemd(&c);
    let enabled = daemon.image_label_list(tag, "sysfile.systemd.units.enabled");
    // The sshd example has an SSH server: the host-key unit is enabled and in the label.
    assert!(
        enabled.iter().any(|u| u == "sysfile-ssh-host-keys.service"),
        "{test}: {enabled:?}"
    );
    assert_enabled_units_active(&c, &enabled);
    host.ssh_login(&c.ip(), "admin", &image.key);
    let boot = poll_until(BOOT_BOUND, &|| c.logs(), &|l| {
        has_line_with(l, &["Reached target", "Multi-User System"])
    });
    assert!(
        boot.is_ok(),
        "{test}: docker logs shows no boot:\n{}",
        tail(&boot.unwrap_err(), 30)
    );
    assert_quiet_boot_log(&test, &c.logs());
    let healthy = poll_until(BOOT_BOUND, &|| c.health(), &|h| h == "healthy");
    assert!(healthy.is_ok(), "{test}: health {:?}", healthy.unwrap_err());
    assert_boots_to_running(&twin, BOOT_BOUND, &|| twin.logs_tail(60));
    assert_ne!(
        machine_id(&c),
        machine_id(&twin),
        "{test}: shared machine ID"
    );
    assert_ne!(
        ssh_host_key_fingerprint(&c),
        ssh_host_key_fingerprint(&twin),
        "{test}: shared SSH host key"
    );
    if host == Host::CgroupV1 {
        assert_no_controller_is_writable(&c);
    }
    assert_engine_facts(&c);
    drop(twin);
    let (took, exit) = c.stop();
    assert_eq!(exit, 0, "{test}: exit code after docker stop");
    // Exit 0 already proves systemd halted on its stop signal; this bound (the stop timeout) only
    // catches a stop that waited for the engine to give up.
    assert!(
        took < Duration::from_secs(30),
        "{test}: docker stop took {took:?}"
    );
    eprintln!(
        "[hosts] {test}: systemd {}, running, docker stop {:.2}s",
        image.systemd_major,
        took.as_secs_f64()
    );
}

/// The boot log of an image with `console_logs` (docs/boot-log.md): every message once (no
/// status line repeating a journal line) and no colour codes. The only escape sequences allowed
/// are the terminal setup systemd writes before its first line (257: a reset; 262: a size query
/// and a reset) and 262's OSC 3008 context markers, none of which a terminal shows.
fn assert_quiet_boot_log(test: &str, logs: &str) {
    let mut rest = String::with_capacity(logs.len());
    for line in logs.lines() {
        let line = match line.find("systemd ") {
            Some(at) if line.contains(" running in system mode") => &line[at..],
            _ => line,
        };
        let mut line = line.to_string();
        while let Some(start) = line.find("\x1b]3008;") {
            let end = line[start..]
                .find("\x1b\\")
                .map_or(line.len(), |e| start + e + 2);
            line.replace_range(start..end, "");
        }
        rest.push_str(&line);
        rest.push('\n');
    }
    let escapes = rest.matches('\x1b').count();
    assert_eq!(
        escapes,
        0,
        "{test}: escape sequences in docker logs:\n{}",
        tail(&rest, 40)
    );
    let logs = rest.as_str();
    // A message said twice by two paths (a status line and a journal line, or two forwarders):
    // the same journal line (timestamp and text) twice, or an untimed line (systemd's own, or a
    // status line) repeating a journal line's text. systemd may log one thing twice itself, at
    // two times; that is not a repeat.
    let mut journal = std::collections::BTreeSet::new();
    let mut journal_texts = std::collections::BTreeSet::new();
    let mut untimed = Vec::new();
    let mut repeated = Vec::new();
    for line in logs.lines() {
        let line = line.trim_end_matches('\r');
        assert!(
            !line.starts_with("[  OK  ]") && !line.starts_with("         Starting "),
            "{test}: a status line in docker logs: {line:?}"
        );
        match line.strip_prefix('[').and_then(|l| l.split_once("] ")) {
            // Journal lines: `[11601.456] systemd[1]: text`.
            Some((stamp, message)) if stamp.trim().parse::<f64>().is_ok() => {
                if !journal.insert((stamp.to_string(), message.to_string())) {
                    repeated.push(message.to_string());
                }
                let text = message.split_once("]: ").map_or(message, |(_, t)| t);
                journal_texts.insert(text.to_string());
            }
            _ if !line.trim().is_empty() => untimed.push(line.to_string()),
            _ => {}
        }
    }
    repeated.extend(untimed.into_iter().filter(|l| journal_texts.contains(l)));
    assert!(
        repeated.is_empty(),
        "{test}: messages repeated in docker logs: {repeated:?}\n{}",
        tail(logs, 40)
    );
    eprintln!(
        "[hosts] {test}: docker logs has {} lines, none repeated, no colour codes",
        logs.lines().count()
    );
}

/// No cgroup v1 controller hierarchy accepts a process from the container: writing the
/// `cgroup.procs` of every controller mount it sees fails. Only `name=systemd`, which carries no
/// controller, is writable. (Directories systemd creates on the writable tmpfs at
/// `/sys/fs/cgroup`, such as `cpu,cpuacct`, are not cgroup file systems and do not count.)
fn assert_no_controller_is_writable(c: &Container) {
    let (_, mountinfo) = c.exec(&["cat", "/proc/self/mountinfo"]);
    // `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS … - FSTYPE SOURCE SUPER_OPTIONS`
    let mut controllers: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut right = right.split_whitespace();
            let (fstype, _, super_options) = (right.next()?, right.next()?, right.next()?);
            (fstype == "cgroup" && !super_options.contains("name=systemd"))
                .then(|| left.split_whitespace().nth(4).map(String::from))
                .flatten()
        })
        .collect();
    controllers.sort();
    controllers.dedup();
    assert!(
        controllers.len() >= 3,
        "{}: expected the v1 controller mounts, found {controllers:?}",
        c.name
    );
    for mount in controllers {
        let procs = format!("{mount}/cgroup.procs");
        let (code, _) = c.exec(&["sh", "-c", &format!("echo 0 > {procs}")]);
        assert_ne!(
            code, 0,
            "{}: the container could write {procs}: it could leave its limits",
            c.name
        );
    }
}

/// What the engine must provide and the image must hold, seen from inside the booted container
/// (docs/contract.md rows 2, 4, 9 and 25): systemd detected the container manager, `/sys` is
/// read-only, the engine waits the contract's stop timeout, fstab and policy-rc.d are neutral.
fn assert_engine_facts(c: &Container) {
    let (_, manager) = c.exec(&["cat", "/run/systemd/container"]);
    assert_eq!(
        manager.trim(),
        "docker",
        "{}: /run/systemd/container",
        c.name
    );
    let (_, mountinfo) = c.exec(&["cat", "/proc/self/mountinfo"]);
    let sys = mountinfo
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/sys"))
        .unwrap_or_else(|| panic!("{}: no /sys mount", c.name));
    let options = sys.split_whitespace().nth(5).unwrap_or_default();
    assert!(
        options.split(',').any(|o| o == "ro"),
        "{}: /sys is mounted {options}, not read-only",
        c.name
    );
    let timeout = c
        .daemon
        .docker(&["inspect", "-f", "{{.Config.StopTimeout}}", &c.name]);
    assert_eq!(
        timeout.stdout.trim(),
        "30",
        "{}: the engine's stop timeout",
        c.name
    );
    let (_, fstab) = c.exec(&["cat", "/etc/fstab"]);
    assert!(
        fstab
            .lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#')),
        "{}: /etc/fstab mounts something: {fstab:?}",
        c.name
    );
    let (code, _) = c.exec(&["test", "-e", "/usr/sbin/policy-rc.d"]);
    assert_ne!(code, 0, "{}: /usr/sbin/policy-rc.d is in the image", c.name);
}

/// `sysfile run` refuses with a reason and a hint, and the image really fails with the flags that
/// would otherwise be used: systemd exits at once, naming the legacy hierarchy.
fn refused_and_really_fails(host: Host, tag: &str, test: &str, major: u32) {
    let r = host.sysfile(&["run", tag, "--name", &unique_name(test)]);
    assert_eq!(
        r.code, 1,
        "{test}: sysfile run should refuse systemd {major} on cgroup v1:\n{}{}",
        r.stdout, r.stderr
    );
    assert!(
        r.stderr.contains("cgroup v1") && r.stderr.contains("257"),
        "{test}: the refusal should say why and name the newest systemd that boots on v1:\n{}",
        r.stderr
    );
    let c = Container {
        name: unique_name(test),
        started: std::time::Instant::now(),
        daemon: host.daemon(),
    };
    let run = host.daemon().docker(&[
        "run",
        "-d",
        "-t",
        "--name",
        &c.name,
        "--tmpfs",
        "/run:exec,mode=755",
        "--tmpfs",
        "/run/lock",
        "--tmpfs",
        "/tmp",
        "-v",
        "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        tag,
    ]);
    assert!(run.ok(), "docker run: {}", run.stderr);
    let exited = poll_until(Duration::from_secs(30), &|| c.state().0, &|s| s == "exited");
    assert!(
        exited.is_ok(),
        "{test}: systemd {major} kept running on cgroup v1"
    );
    let (_, code) = c.state();
    let logs = c.logs();
    assert_eq!(code, 255, "{test}: exit code\n{logs}");
    assert!(
        logs.contains("cgroup v1") || logs.contains("legacy cgroup hierarchy"),
        "{test}: systemd's own reason is missing:\n{}",
        tail(&logs, 20)
    );
}
