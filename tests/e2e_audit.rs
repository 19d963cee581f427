//! The unit audit's measurements: one image with one small service per setting of
//! `sysfile::audit::SETTINGS` (plus the other traps the audit reports: a dependency on a masked
//! unit, a missing `ExecStart=` program, a timer and a socket without their service), booted with
//! `sysfile run` on each host kind. Each unit's outcome (its state, systemd's exit status, and
//! whether the setting took effect where that can be seen from inside) must equal the verdict the
//! code table records for that host kind, so the table is held to reality on every run.
//!
//! Every service runs `/usr/local/bin/audit-probe`, which prints `AUDIT key=value` lines about
//! its own sandbox (user, namespaces, seccomp filters, capabilities, limits, which marker files
//! it sees) to the journal and then sleeps.

use sysfile_testkit::engines;
use sysfile_testkit::harness;

use engines::*;
use harness::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;
use sysfile::audit::{HostKind, SETTINGS, Setting, Verdict};

const BOOT_BOUND: Duration = Duration::from_secs(120);

#[test]
fn audit_table_holds_on_cgroup_v1_bookworm() {
    audit_matrix(Host::CgroupV1, "bookworm");
}

#[test]
fn audit_table_holds_on_cgroup_v2_bookworm() {
    audit_matrix(Host::CgroupV2, "bookworm");
}

#[test]
fn audit_table_holds_on_cgroup_v1_trixie() {
    audit_matrix(Host::CgroupV1, "trixie");
}

#[test]
fn audit_table_holds_on_cgroup_v2_trixie() {
    audit_matrix(Host::CgroupV2, "trixie");
}

/// A masked unit of Debian's VM-migration list (`src/distro.rs`), for the dependency trap.
const MASKED: &str = "systemd-timesyncd.service";

const PROBE: &str = r#"#!/bin/sh
# audit-probe: prints what this unit's sandbox looks like from inside, then stays up.
echo "AUDIT uid=$(id -u)"
for ns in mnt net uts user; do
  echo "AUDIT ns.$ns=$(readlink /proc/self/ns/$ns)"
done
echo "AUDIT netifs=$(ls /sys/class/net | tr '\n' ',')"
grep -E '^(NoNewPrivs|Seccomp_filters|CapBnd|CapAmb):' /proc/self/status \
  | sed 's/^/AUDIT /; s/:[[:space:]]*/=/'
echo "AUDIT oom=$(cat /proc/self/oom_score_adj)"
echo "AUDIT nofile=$(ulimit -n)"
set -- $(cat /proc/$$/stat)
echo "AUDIT nice=${19}"
echo "AUDIT policy=${41}"
if touch /usr/.audit-probe 2>/dev/null; then rm -f /usr/.audit-probe; echo "AUDIT usr=rw"; else echo "AUDIT usr=ro"; fi
for m in /home/.audit-marker /srv/.audit-marker /mnt/audit-bind/os-release /dev/console; do
  if test -e "$m"; then echo "AUDIT seen$m=yes"; else echo "AUDIT seen$m=no"; fi
done
echo "AUDIT done"
exec sleep infinity
"#;

/// A service unit running the probe with `lines` in `[Service]`.
fn probe_unit(description: &str, unit_lines: &str, service_lines: &str) -> String {
    format!(
        "[Unit]\nDescription=audit: {description}\n{unit_lines}\n[Service]\n\
         ExecStart=/usr/local/bin/audit-probe\n{service_lines}\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

/// The trap units beside the settings, each with its unit text.
fn trap_units() -> Vec<(&'static str, String)> {
    vec![
        (
            "audit-requires-masked.service",
            probe_unit(
                "Requires= a masked unit",
                &format!("Requires={MASKED}\nAfter={MASKED}"),
                "",
            ),
        ),
        (
            "audit-wants-masked.service",
            probe_unit(
                "Wants= a masked unit",
                &format!("Wants={MASKED}\nAfter={MASKED}"),
                "",
            ),
        ),
        (
            "audit-missing-exec.service",
            "[Unit]\nDescription=audit: ExecStart= names a missing program\n\n[Service]\n\
             ExecStart=/usr/local/bin/audit-does-not-exist\n\n[Install]\nWantedBy=multi-user.target\n"
                .to_string(),
        ),
        (
            "audit-missing-exec-dash.service",
            "[Unit]\nDescription=audit: ExecStart=- names a missing program\n\n[Service]\n\
             ExecStart=-/usr/local/bin/audit-does-not-exist\n\n[Install]\nWantedBy=multi-user.target\n"
                .to_string(),
        ),
        (
            "audit-orphan.timer",
            "[Unit]\nDescription=audit: a timer without its service\n\n[Timer]\nOnActiveSec=1s\n\n\
             [Install]\nWantedBy=timers.target\n"
                .to_string(),
        ),
        (
            "audit-orphan.socket",
            "[Unit]\nDescription=audit: a socket without its service\n\n[Socket]\n\
             ListenStream=127.0.0.1:7999\n\n[Install]\nWantedBy=sockets.target\n"
                .to_string(),
        ),
    ]
}

/// Where the measurement units live: a unit directory systemd reads that the build's unit audit
/// does not collect from (it reads `/etc/systemd/system`), so the build lets these deliberately
/// failing units through. A `[[run]]` step links each into the `.wants` directory of the target
/// its `[Install]` section names, in the same directory: at boot that is exactly what
/// `systemctl enable` would do.
const UNIT_DIR: &str = "/usr/local/lib/systemd/system";

/// Links every unit in [`UNIT_DIR`] where `WantedBy=` would (timers, sockets, services).
const ENABLE_SCRIPT: &str = r#"set -eu
d=/usr/local/lib/systemd/system
for u in "$d"/*; do
  [ -f "$u" ] || continue
  case "$u" in
    *.timer) w=timers.target ;;
    *.socket) w=sockets.target ;;
    *) w=multi-user.target ;;
  esac
  mkdir -p "$d/$w.wants"
  ln -s "../${u##*/}" "$d/$w.wants/${u##*/}"
done
"#;

/// The Sysfile: the probe, marker files, one unit per setting and trap, all started at boot.
fn sysfile(suite: &str) -> String {
    let mut s = format!(
        "# syntax=local/sysfile:dev\n[image]\nfrom = \"local/debian:{suite}\"\n\n\
         [[files]]\ndest = \"/usr/local/bin/audit-probe\"\nmode = \"0755\"\ncontent = '''\n{PROBE}'''\n\n\
         [[files]]\ndest = \"/home/.audit-marker\"\ncontent = \"marker\\n\"\n\n\
         [[files]]\ndest = \"/srv/.audit-marker\"\ncontent = \"marker\\n\"\n\n"
    );
    let mut names = Vec::new();
    for setting in SETTINGS {
        let text = probe_unit(
            setting.measured.lines().next().unwrap(),
            "",
            setting.measured,
        );
        let name = setting.unit_name();
        let _ = write!(
            s,
            "[[files]]\ndest = \"{UNIT_DIR}/{name}\"\ncontent = '''\n{text}'''\n\n"
        );
        names.push(name);
    }
    for (name, text) in trap_units() {
        let _ = write!(
            s,
            "[[files]]\ndest = \"{UNIT_DIR}/{name}\"\ncontent = '''\n{text}'''\n\n"
        );
        names.push(name.to_string());
    }
    let _ = write!(
        s,
        "[[run]]\nname = \"start the {} measurement units at boot\"\nsh = '''\n{ENABLE_SCRIPT}'''\n",
        names.len()
    );
    s
}

/// What `systemctl show` and the journal say about one unit.
#[derive(Debug)]
struct Observed {
    active: String,
    result: String,
    status: String,
    journal: String,
    facts: BTreeMap<String, String>,
}

impl Observed {
    fn fact(&self, key: &str) -> &str {
        self.facts.get(key).map(String::as_str).unwrap_or("")
    }
}

/// What the journal holds of one unit, its messages only.
fn journal_of(c: &Container, unit: &str) -> String {
    c.exec(&["journalctl", "-u", unit, "-o", "cat", "--no-pager"])
        .1
}

fn observe(c: &Container, unit: &str) -> Observed {
    let (_, show) = c.exec(&[
        "systemctl",
        "show",
        "-p",
        "ActiveState,Result,ExecMainStatus",
        unit,
    ]);
    let prop = |key: &str| {
        show.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or("")
            .to_string()
    };
    let journal = journal_of(c, unit);
    let facts = journal
        .lines()
        .filter_map(|l| l.strip_prefix("AUDIT "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Observed {
        active: prop("ActiveState"),
        result: prop("Result"),
        status: prop("ExecMainStatus"),
        journal,
        facts,
    }
}

/// What PID 1 and a plain exec in the container see, to compare a unit's sandbox with.
struct Baseline {
    ns: BTreeMap<String, String>,
    seccomp_filters: u32,
}

fn baseline(c: &Container) -> Baseline {
    let ns = ["mnt", "net", "uts", "user"]
        .into_iter()
        .map(|n| {
            let (_, link) = c.exec(&["readlink", &format!("/proc/1/ns/{n}")]);
            (format!("ns.{n}"), link.trim().to_string())
        })
        .collect();
    let (_, status) = c.exec(&["cat", "/proc/1/status"]);
    let seccomp_filters = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp_filters:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Seccomp_filters in /proc/1/status");
    Baseline {
        ns,
        seccomp_filters,
    }
}

/// The cgroup files a resource setting writes, and what they must hold when it took effect.
fn cgroup_files(id: &str) -> Option<(&'static [&'static str], &'static str)> {
    Some(match id {
        "memorymax" => (&["memory.max", "memory.limit_in_bytes"], "67108864"),
        "cpuquota" => (&["cpu.max", "cpu.cfs_quota_us"], "50000"),
        "tasksmax" => (&["pids.max"], "64"),
        "ioweight" => (
            &[
                "io.weight",
                "io.bfq.weight",
                "blkio.weight",
                "blkio.bfq.weight",
            ],
            "50",
        ),
        _ => return None,
    })
}

/// Whether the setting took effect, from what the probe and the cgroup tree show.
fn took_effect(c: &Container, setting: &Setting, o: &Observed, base: &Baseline) -> bool {
    let ns_differs = |n: &str| {
        let key = format!("ns.{n}");
        !o.fact(&key).is_empty() && Some(o.fact(&key)) != base.ns.get(&key).map(String::as_str)
    };
    let more_seccomp = || {
        o.fact("Seccomp_filters")
            .parse::<u32>()
            .is_ok_and(|n| n > base.seccomp_filters)
    };
    if let Some((files, want)) = cgroup_files(setting.id) {
        let unit = setting.unit_name();
        let names: Vec<String> = files.iter().map(|f| format!("-name {f}")).collect();
        let script = format!(
            "find /sys/fs/cgroup -path '*/{unit}/*' \\( {} \\) -exec cat {{}} +",
            names.join(" -o ")
        );
        let (_, content) = c.exec(&["sh", "-c", &script]);
        return content.contains(want);
    }
    match setting.id {
        "dynamicuser" => !matches!(o.fact("uid"), "" | "0"),
        "privatenetwork" => o.fact("netifs") == "lo,",
        "privatedevices" => o.fact("seen/dev/console") == "no",
        "privatetmp"
        | "privatemounts"
        | "protectkerneltunables"
        | "protectkernelmodules"
        | "protectkernellogs"
        | "protectcontrolgroups"
        | "mountapivfs" => ns_differs("mnt"),
        "privateusers" => ns_differs("user"),
        "protectsystem" | "readonlypaths" => o.fact("usr") == "ro",
        "protecthome" | "inaccessiblepaths" => o.fact("seen/home/.audit-marker") == "no",
        "temporaryfilesystem" => o.fact("seen/srv/.audit-marker") == "no",
        "bindpaths" => o.fact("seen/mnt/audit-bind/os-release") == "yes",
        "protecthostname" => ns_differs("uts"),
        "protectclock" | "restrictnamespaces" | "restrictrealtime" | "systemcallfilter"
        | "lockpersonality" => more_seccomp(),
        "nonewprivileges" => o.fact("NoNewPrivs") == "1",
        "capabilityboundingset" => o.fact("CapBnd") == "0000000000000400",
        "ambientcapabilities" => o.fact("CapAmb") == "0000000000000400",
        "limitnofile" => o.fact("nofile") == "4096",
        "nice" => o.fact("nice") == "-5",
        "cpuschedulingpolicy" => o.fact("policy") == "2",
        "oomscoreadjust" => o.fact("oom") == "-100",
        // Nothing inside the unit shows delegation, nor the write-execute lock of systemd 257
        // (prctl PR_SET_MDWE, not a seccomp filter as in 252): the unit running is the measurement.
        "delegate" | "memorydenywriteexecute" => true,
        other => panic!("no effect check for the table's setting {other:?}: add one"),
    }
}

/// The verdict a unit's observed outcome amounts to, worded as [`Verdict::label`] words it.
fn verdict_of(c: &Container, setting: &Setting, o: &Observed, base: &Baseline) -> String {
    if o.active == "failed" {
        let status: u8 = o.status.parse().unwrap_or(0);
        // systemd names the status in its log: `status=226/NAMESPACE` when the main process
        // exits, `Failed at step NAMESPACE spawning …` when it never started. The unit's state
        // can change before journald has written either line: wait for one.
        let marker = format!("status={status}/");
        let unit = setting.unit_name();
        let named = |text: &str| -> Option<String> {
            let word = |rest: &str| {
                rest.split(|ch: char| !ch.is_ascii_alphanumeric() && ch != '_')
                    .next()
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
            };
            text.split(&marker)
                .nth(1)
                .and_then(word)
                .or_else(|| text.split("Failed at step ").nth(1).and_then(word))
        };
        let journal = if named(&o.journal).is_some() {
            o.journal.clone()
        } else {
            poll_until(Duration::from_secs(15), &|| journal_of(c, &unit), &|text| {
                named(text).is_some()
            })
            .unwrap_or_else(|text| text)
        };
        // journald may drop both lines (seen on bookworm): then the status number, which
        // systemd measured, is named by systemd's own fixed table (systemd.exec(5)).
        let name = named(&journal).unwrap_or_else(|| {
            match status {
                203 => "EXEC",
                214 => "SETSCHEDULER",
                217 => "USER",
                226 => "NAMESPACE",
                _ => "?",
            }
            .to_string()
        });
        return format!("fails {status}/{name}");
    }
    assert!(
        o.active == "active" && o.journal.lines().any(|l| l == "AUDIT done"),
        "{}: neither failed nor running its probe: {o:?}",
        setting.unit_name()
    );
    if took_effect(c, setting, o, base) {
        Verdict::Works.label()
    } else {
        Verdict::Ignored.label()
    }
}

fn audit_matrix(host: Host, suite: &str) {
    let test = format!("audit_{suite}_on_{}", host.name());
    if !host.detect(&test) {
        return;
    }
    let engine = Engine::detect_quietly().expect("engine");
    let base = suite_base(suite);
    let ctx = tempdir();
    std::fs::write(ctx.path().join("Sysfile"), sysfile(suite)).unwrap();
    let build = engine.build_under_test(&test, ctx.path(), &ctx.path().join("Sysfile"));
    build.assert_ok(&format!("the audit image on {base}"));
    let tag = build.tag();
    let _copy = host.load_image(tag);
    let c = host.start(tag, &unique_name(&test));
    let state = wait_system_running(&c, BOOT_BOUND).unwrap_or_else(|e| panic!("{test}: {e}"));
    // Units that fail make the system degraded; that is what this image is for.
    assert!(
        state == "degraded" || state == "running",
        "{test}: is-system-running says {state:?}"
    );
    let kind = match host {
        Host::CgroupV1 => HostKind::CgroupV1,
        Host::CgroupV2 => HostKind::CgroupV2,
    };
    let base_facts = baseline(&c);
    // Wait until every probe that runs has printed its facts (the journal takes a moment).
    let _ = poll_until(
        Duration::from_secs(30),
        &|| {
            let (_, out) = c.exec(&[
                "sh",
                "-c",
                "journalctl -o cat --no-pager | grep -c '^AUDIT done'",
            ]);
            out
        },
        &|n| {
            n.trim().parse::<usize>().unwrap_or(0)
                >= SETTINGS.len() - SETTINGS.iter().filter(|s| s.verdict(kind).fails()).count()
        },
    );

    let mut report = String::new();
    let mut wrong = Vec::new();
    for setting in SETTINGS {
        let o = observe(&c, &setting.unit_name());
        let seen = verdict_of(&c, setting, &o, &base_facts);
        let notes: Vec<&str> = o
            .journal
            .lines()
            .filter(|l| {
                l.contains("ignoring") || l.contains("Failed at step") || l.contains("status=")
            })
            .collect();
        let _ = writeln!(
            report,
            "{:<40} {:<22} {} | {}",
            setting.measured.lines().next().unwrap(),
            seen,
            o.result,
            notes.join(" / ")
        );
        if seen != setting.verdict(kind).label() {
            wrong.push(format!(
                "{}: the table says {}, measured {} ({o:?})",
                setting.measured.lines().next().unwrap(),
                setting.verdict(kind).label(),
                seen
            ));
        }
    }
    // The traps beside the settings.
    let (_, masked) = c.exec(&["systemctl", "is-enabled", MASKED]);
    let _ = writeln!(report, "{MASKED}: {}", masked.trim());
    // The socket without its service never listens.
    let (code, _) = c.exec(&["bash", "-c", "echo hi > /dev/tcp/127.0.0.1/7999"]);
    let _ = writeln!(report, "connect to audit-orphan.socket: exit {code}");
    if code == 0 {
        wrong.push("something listens on audit-orphan.socket's port".to_string());
    }
    for (name, _) in trap_units() {
        let o = observe(&c, name);
        let lines: Vec<&str> = o
            .journal
            .lines()
            .filter(|l| !l.starts_with("AUDIT"))
            .collect();
        let _ = writeln!(
            report,
            "{name:<40} {} {} {} | {}",
            o.active,
            o.result,
            o.status,
            lines.join(" / ")
        );
        // (ActiveState, a journal line that says why, the ExecMainStatus that says the same
        // when journald dropped that line), as measured.
        let (active, says, status) = match name {
            // systemd 252 starts the unit without the masked one; 257 does not start it.
            "audit-requires-masked.service" if suite == "bookworm" => {
                ("active", "AUDIT done", None)
            }
            "audit-requires-masked.service" => ("inactive", "", None),
            "audit-wants-masked.service" => ("active", "AUDIT done", None),
            // 203 is EXEC in systemd.exec(5)'s table of exit statuses.
            "audit-missing-exec.service" => ("failed", "status=203/EXEC", Some("203")),
            "audit-missing-exec-dash.service" => ("inactive", "Deactivated successfully", None),
            "audit-orphan.timer" => ("inactive", "to trigger not loaded", None),
            "audit-orphan.socket" => ("inactive", "not loaded, refusing", None),
            other => panic!("no expectation for {other}"),
        };
        // The unit's state can change before journald has written the line: wait for it. On
        // bookworm journald sometimes drops it altogether (as for the settings' failures,
        // verdict_of); then systemd's own measured status must say the same.
        let explained = o.journal.contains(says)
            || poll_until(Duration::from_secs(15), &|| journal_of(&c, name), &|text| {
                text.contains(says)
            })
            .is_ok()
            || status == Some(o.status.as_str());
        if o.active != active || !explained {
            wrong.push(format!(
                "{name}: expected {active} with {says:?} in its journal (or ExecMainStatus {status:?}), measured {o:?}"
            ));
        }
    }
    let (_, masked_state) = c.exec(&["systemctl", "show", "-p", "ActiveState", MASKED]);
    if masked.trim() != "masked" || masked_state.trim() != "ActiveState=inactive" {
        wrong.push(format!(
            "{MASKED}: expected masked and inactive, measured {masked:?} {masked_state:?}"
        ));
    }
    let failed = failed_units(&c);
    let _ = writeln!(report, "systemctl --failed:\n{failed}");
    eprintln!("[audit] {test}:\n{report}");
    // Exactly the units that fail: the failing settings and the missing program.
    let mut want_failed: Vec<String> = SETTINGS
        .iter()
        .filter(|s| s.verdict(kind).fails())
        .map(Setting::unit_name)
        .chain(["audit-missing-exec.service".to_string()])
        .collect();
    want_failed.sort();
    let mut got_failed: Vec<String> = failed
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect();
    got_failed.sort();
    if got_failed != want_failed {
        wrong.push(format!(
            "systemctl --failed lists {got_failed:?}, expected {want_failed:?}"
        ));
    }
    assert!(wrong.is_empty(), "{test}:\n{}", wrong.join("\n"));
}
