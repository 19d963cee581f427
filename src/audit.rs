//! The unit audit: container traps in systemd unit files, found before the image ships.
//!
//! Pure, no I/O. The caller hands in the text of a unit (its main file and drop-ins, in the order
//! systemd reads them) and a few facts about the image (which units are masked or exist, whether
//! an `ExecStart=` path is executable); [`audit_unit`] returns located [`Finding`]s:
//!
//! * a setting that fails in a system container started with the contract's unprivileged flags,
//!   from [`SETTINGS`], the table measured by `tests/e2e_audit.rs` on every host kind the suite
//!   runs (an error where it fails on every host kind, a warning where it fails on some);
//! * a dependency on a masked unit;
//! * an `ExecStart=` program that does not exist;
//! * a timer or socket whose service is missing.
//!
//! Unit text is read, never executed: the parser understands sections, `#`/`;` comments, line
//! continuations with a trailing backslash and empty assignments that reset a list, and looks
//! at a value only as far as a check needs (a boolean, a sign, a program path, unit names).
//! `docs/unit-audit.md` lists the table in prose; a test holds it to [`SETTINGS`].

use crate::diag::{Code, Severity};

/// A host kind the suite boots system containers on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostKind {
    /// cgroup v1 hybrid, Docker 26 (this machine).
    CgroupV1,
    /// cgroup v2, Docker 26 (the simulated cgroup v2 host).
    CgroupV2,
}

impl HostKind {
    pub const ALL: [HostKind; 2] = [HostKind::CgroupV1, HostKind::CgroupV2];

    pub fn name(self) -> &'static str {
        match self {
            HostKind::CgroupV1 => "cgroup v1",
            HostKind::CgroupV2 => "cgroup v2",
        }
    }
}

/// What a setting did when a unit carrying it was booted in a system container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The unit ran and the setting took effect (or, where nothing can be seen from inside,
    /// the unit ran).
    Works,
    /// The unit ran, but the setting had no effect that could be seen.
    Ignored,
    /// The unit failed before its program ran, with systemd's exit status (`226/NAMESPACE`).
    Fails { status: u8, name: &'static str },
}

impl Verdict {
    pub fn fails(self) -> bool {
        matches!(self, Verdict::Fails { .. })
    }

    /// `works`, `ignored` or `fails 226/NAMESPACE`: the wording of `docs/unit-audit.md`.
    pub fn label(self) -> String {
        match self {
            Verdict::Works => "works".to_string(),
            Verdict::Ignored => "ignored".to_string(),
            Verdict::Fails { status, name } => format!("fails {status}/{name}"),
        }
    }
}

/// Which values of a setting the measured verdict applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A true boolean (`1`, `yes`, `y`, `true`, `t`, `on`).
    True,
    /// Any value other than a false boolean (`yes`, `strict`, `read-only`, a list, …).
    NotFalse,
    /// Any non-empty value.
    Any,
    /// A negative number.
    Negative,
    /// One of these values (case-insensitive).
    OneOf(&'static [&'static str]),
}

impl Trigger {
    /// Whether `value` (as written, trimmed) is covered.
    pub fn matches(self, value: &str) -> bool {
        let value = value.trim();
        if value.is_empty() {
            return false;
        }
        match self {
            Trigger::True => parse_boolean(value) == Some(true),
            Trigger::NotFalse => parse_boolean(value) != Some(false),
            Trigger::Any => true,
            Trigger::Negative => value
                .strip_prefix('-')
                .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit())),
            Trigger::OneOf(values) => values.iter().any(|v| v.eq_ignore_ascii_case(value)),
        }
    }
}

/// One measured setting.
#[derive(Clone, Copy, Debug)]
pub struct Setting {
    /// A short id: the measurement unit is `audit-<id>.service`.
    pub id: &'static str,
    /// The directive's key, as systemd spells it.
    pub key: &'static str,
    /// The values the verdicts apply to.
    pub trigger: Trigger,
    /// The directive lines the measurement unit carries in `[Service]`.
    pub measured: &'static str,
    pub v1: Verdict,
    pub v2: Verdict,
    /// Why, in a few words.
    pub why: &'static str,
}

impl Setting {
    pub fn verdict(&self, host: HostKind) -> Verdict {
        match host {
            HostKind::CgroupV1 => self.v1,
            HostKind::CgroupV2 => self.v2,
        }
    }

    /// The unit `tests/e2e_audit.rs` boots to measure this setting.
    pub fn unit_name(&self) -> String {
        format!("audit-{}.service", self.id)
    }

    /// The host kinds where the setting fails.
    pub fn fails_on(&self) -> Vec<HostKind> {
        HostKind::ALL
            .into_iter()
            .filter(|h| self.verdict(*h).fails())
            .collect()
    }
}

const NAMESPACE: Verdict = Verdict::Fails {
    status: 226,
    name: "NAMESPACE",
};
use Verdict::{Ignored, Works};

/// The measured table (`tests/e2e_audit.rs` asserts every row on every host kind).
pub const SETTINGS: &[Setting] = &[
    Setting {
        id: "dynamicuser",
        key: "DynamicUser",
        trigger: Trigger::True,
        measured: "DynamicUser=yes",
        v1: NAMESPACE,
        v2: NAMESPACE,
        why: "the mount namespace it implies cannot be set up without CAP_SYS_ADMIN, and systemd does not skip it",
    },
    Setting {
        id: "privatenetwork",
        key: "PrivateNetwork",
        trigger: Trigger::True,
        measured: "PrivateNetwork=yes",
        v1: Ignored,
        v2: Ignored,
        why: "without CAP_SYS_ADMIN systemd skips the network namespace; the unit shares the container's network",
    },
    Setting {
        id: "privatedevices",
        key: "PrivateDevices",
        trigger: Trigger::True,
        measured: "PrivateDevices=yes",
        v1: Ignored,
        v2: Ignored,
        why: "systemd skips the private /dev when it cannot set up a mount namespace",
    },
    Setting {
        id: "privatetmp",
        key: "PrivateTmp",
        trigger: Trigger::NotFalse,
        measured: "PrivateTmp=yes",
        v1: Ignored,
        v2: Ignored,
        why: "systemd skips the private /tmp when it cannot set up a mount namespace",
    },
    Setting {
        id: "privateusers",
        key: "PrivateUsers",
        trigger: Trigger::NotFalse,
        measured: "PrivateUsers=yes",
        v1: Verdict::Fails {
            status: 217,
            name: "USER",
        },
        v2: Verdict::Fails {
            status: 217,
            name: "USER",
        },
        why: "the container may not create a user namespace, and systemd does not skip it",
    },
    Setting {
        id: "privatemounts",
        key: "PrivateMounts",
        trigger: Trigger::True,
        measured: "PrivateMounts=yes",
        v1: Ignored,
        v2: Ignored,
        why: "systemd skips the mount namespace it cannot set up",
    },
    Setting {
        id: "protectsystem",
        key: "ProtectSystem",
        trigger: Trigger::NotFalse,
        measured: "ProtectSystem=strict",
        v1: Ignored,
        v2: Ignored,
        why: "systemd skips the read-only mounts: /usr stays writable",
    },
    Setting {
        id: "protecthome",
        key: "ProtectHome",
        trigger: Trigger::NotFalse,
        measured: "ProtectHome=yes",
        v1: Ignored,
        v2: Ignored,
        why: "systemd skips the mount that hides /home",
    },
    Setting {
        id: "protectkerneltunables",
        key: "ProtectKernelTunables",
        trigger: Trigger::True,
        measured: "ProtectKernelTunables=yes",
        v1: Ignored,
        v2: Ignored,
        why: "systemd skips the read-only mounts (the engine already mounts /proc/sys and /sys read-only)",
    },
    Setting {
        id: "protectkernelmodules",
        key: "ProtectKernelModules",
        trigger: Trigger::True,
        measured: "ProtectKernelModules=yes",
        v1: Ignored,
        v2: Ignored,
        why: "systemd skips the mount namespace (the container has no CAP_SYS_MODULE anyway)",
    },
    Setting {
        id: "protectkernellogs",
        key: "ProtectKernelLogs",
        trigger: Trigger::True,
        measured: "ProtectKernelLogs=yes",
        v1: Ignored,
        v2: Ignored,
        why: "systemd skips the mount namespace that hides /dev/kmsg",
    },
    Setting {
        id: "protectcontrolgroups",
        key: "ProtectControlGroups",
        trigger: Trigger::NotFalse,
        measured: "ProtectControlGroups=yes",
        v1: Ignored,
        v2: Ignored,
        why: "systemd skips the mount namespace that makes /sys/fs/cgroup read-only",
    },
    Setting {
        id: "protectclock",
        key: "ProtectClock",
        trigger: Trigger::True,
        measured: "ProtectClock=yes",
        v1: Works,
        v2: Works,
        why: "a seccomp filter, which needs no privilege",
    },
    Setting {
        id: "protecthostname",
        key: "ProtectHostname",
        trigger: Trigger::NotFalse,
        measured: "ProtectHostname=yes",
        v1: Ignored,
        v2: Ignored,
        why: "systemd skips the UTS namespace (it logs that it does)",
    },
    Setting {
        id: "restrictnamespaces",
        key: "RestrictNamespaces",
        trigger: Trigger::NotFalse,
        measured: "RestrictNamespaces=yes",
        v1: Works,
        v2: Works,
        why: "a seccomp filter, which needs no privilege",
    },
    Setting {
        id: "restrictrealtime",
        key: "RestrictRealtime",
        trigger: Trigger::True,
        measured: "RestrictRealtime=yes",
        v1: Works,
        v2: Works,
        why: "a seccomp filter, which needs no privilege",
    },
    Setting {
        id: "nonewprivileges",
        key: "NoNewPrivileges",
        trigger: Trigger::True,
        measured: "NoNewPrivileges=yes",
        v1: Works,
        v2: Works,
        why: "a process flag any process may set",
    },
    Setting {
        id: "memorydenywriteexecute",
        key: "MemoryDenyWriteExecute",
        trigger: Trigger::True,
        measured: "MemoryDenyWriteExecute=yes",
        v1: Works,
        v2: Works,
        why: "a seccomp filter in systemd 252, prctl(PR_SET_MDWE) in 257; no privilege needed",
    },
    Setting {
        id: "systemcallfilter",
        key: "SystemCallFilter",
        trigger: Trigger::Any,
        measured: "SystemCallFilter=@system-service",
        v1: Works,
        v2: Works,
        why: "a seccomp filter, which needs no privilege",
    },
    Setting {
        id: "lockpersonality",
        key: "LockPersonality",
        trigger: Trigger::True,
        measured: "LockPersonality=yes",
        v1: Works,
        v2: Works,
        why: "a seccomp filter, which needs no privilege",
    },
    Setting {
        id: "capabilityboundingset",
        key: "CapabilityBoundingSet",
        trigger: Trigger::Any,
        measured: "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
        v1: Works,
        v2: Works,
        why: "dropping capabilities needs none",
    },
    Setting {
        id: "ambientcapabilities",
        key: "AmbientCapabilities",
        trigger: Trigger::Any,
        measured: "AmbientCapabilities=CAP_NET_BIND_SERVICE\nUser=nobody",
        v1: Works,
        v2: Works,
        why: "a capability the container has",
    },
    Setting {
        id: "readonlypaths",
        key: "ReadOnlyPaths",
        trigger: Trigger::Any,
        measured: "ReadOnlyPaths=/usr",
        v1: Ignored,
        v2: Ignored,
        why: "systemd skips the read-only mount",
    },
    Setting {
        id: "inaccessiblepaths",
        key: "InaccessiblePaths",
        trigger: Trigger::Any,
        measured: "InaccessiblePaths=/home",
        v1: Ignored,
        v2: Ignored,
        why: "systemd skips the mount that hides the path",
    },
    Setting {
        id: "temporaryfilesystem",
        key: "TemporaryFileSystem",
        trigger: Trigger::Any,
        measured: "TemporaryFileSystem=/srv",
        v1: NAMESPACE,
        v2: NAMESPACE,
        why: "an explicit mount cannot be set up without CAP_SYS_ADMIN, and systemd does not skip it",
    },
    Setting {
        id: "bindpaths",
        key: "BindPaths",
        trigger: Trigger::Any,
        measured: "BindPaths=/etc:/mnt/audit-bind",
        v1: NAMESPACE,
        v2: NAMESPACE,
        why: "an explicit mount cannot be set up without CAP_SYS_ADMIN, and systemd does not skip it",
    },
    Setting {
        id: "mountapivfs",
        key: "MountAPIVFS",
        trigger: Trigger::True,
        measured: "MountAPIVFS=yes",
        v1: Ignored,
        v2: Ignored,
        why: "systemd skips the mount namespace",
    },
    Setting {
        id: "limitnofile",
        key: "LimitNOFILE",
        trigger: Trigger::Any,
        measured: "LimitNOFILE=4096",
        v1: Works,
        v2: Works,
        why: "lowering a limit needs no privilege",
    },
    Setting {
        id: "memorymax",
        key: "MemoryMax",
        trigger: Trigger::Any,
        measured: "MemoryMax=64M",
        v1: Ignored,
        v2: Ignored,
        why: "the container gets no writable memory controller, so no limit is set",
    },
    Setting {
        id: "cpuquota",
        key: "CPUQuota",
        trigger: Trigger::Any,
        measured: "CPUQuota=50%",
        v1: Ignored,
        v2: Ignored,
        why: "the container gets no writable cpu controller, so no quota is set",
    },
    Setting {
        id: "tasksmax",
        key: "TasksMax",
        trigger: Trigger::Any,
        measured: "TasksMax=64",
        v1: Ignored,
        v2: Ignored,
        why: "the container gets no writable pids controller, so no limit is set",
    },
    Setting {
        id: "ioweight",
        key: "IOWeight",
        trigger: Trigger::Any,
        measured: "IOWeight=50",
        v1: Ignored,
        v2: Ignored,
        why: "the container gets no writable io controller, so no weight is set",
    },
    Setting {
        id: "nice",
        key: "Nice",
        trigger: Trigger::Negative,
        measured: "Nice=-5",
        v1: Ignored,
        v2: Ignored,
        why: "without CAP_SYS_NICE systemd sets the closest priority allowed, the default",
    },
    Setting {
        id: "cpuschedulingpolicy",
        key: "CPUSchedulingPolicy",
        trigger: Trigger::OneOf(&["fifo", "rr"]),
        measured: "CPUSchedulingPolicy=rr",
        v1: Verdict::Fails {
            status: 214,
            name: "SETSCHEDULER",
        },
        v2: Verdict::Fails {
            status: 214,
            name: "SETSCHEDULER",
        },
        why: "a real-time policy needs CAP_SYS_NICE, and systemd does not fall back",
    },
    Setting {
        id: "oomscoreadjust",
        key: "OOMScoreAdjust",
        trigger: Trigger::Negative,
        measured: "OOMScoreAdjust=-100",
        v1: Ignored,
        v2: Ignored,
        why: "without CAP_SYS_RESOURCE systemd assumes a container and keeps the score",
    },
    Setting {
        id: "delegate",
        key: "Delegate",
        trigger: Trigger::True,
        measured: "Delegate=yes",
        v1: Works,
        v2: Works,
        why: "the unit runs (nothing inside it shows the delegation)",
    },
];

/// systemd's boolean spellings; `None` for anything else.
pub fn parse_boolean(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Reading unit files

/// One file of a unit: the main unit file or a drop-in, with the path it was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitFile<'a> {
    pub path: &'a str,
    pub text: &'a str,
}

/// One assignment `Key=value` in a section, located at the line where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    pub section: String,
    pub key: String,
    /// The value with surrounding whitespace removed and continuations joined.
    pub value: String,
    /// The index of the file in the slice given to [`parse_unit`].
    pub file: usize,
    /// The 1-based line where the directive starts.
    pub line: usize,
}

/// Every assignment of a unit's files, in the order systemd applies them (the main file, then
/// the drop-ins as given).
///
/// The syntax systemd reads: `[Section]` headers; blank lines and comment lines (first
/// non-blank character `#` or `;`) are skipped, also inside a continuation; a line ending in an
/// odd number of backslashes continues on the next line, the backslash becoming a space; keys
/// and values are trimmed. Lines that are neither a header nor an assignment (systemd warns and
/// ignores them) are skipped, and so are assignments before the first header or after a
/// malformed one.
pub fn parse_unit(files: &[UnitFile]) -> Vec<Directive> {
    let mut out = Vec::new();
    for (index, file) in files.iter().enumerate() {
        parse_text(file.text, index, &mut out);
    }
    out
}

fn parse_text(text: &str, file: usize, out: &mut Vec<Directive>) {
    let mut section: Option<String> = None;
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let (start, mut logical) = match pending.take() {
            Some((start, joined)) => (start, joined),
            None => {
                if trimmed.is_empty() {
                    continue;
                }
                (i + 1, String::new())
            }
        };
        if ends_in_odd_backslashes(raw) {
            logical.push_str(&raw[..raw.len() - 1]);
            logical.push(' ');
            pending = Some((start, logical));
            continue;
        }
        logical.push_str(raw);
        finish_line(&logical, start, file, &mut section, out);
    }
    if let Some((start, logical)) = pending {
        finish_line(&logical, start, file, &mut section, out);
    }
}

fn ends_in_odd_backslashes(line: &str) -> bool {
    (line.len() - line.trim_end_matches('\\').len()) % 2 == 1
}

fn finish_line(
    logical: &str,
    line: usize,
    file: usize,
    section: &mut Option<String>,
    out: &mut Vec<Directive>,
) {
    let l = logical.trim();
    if l.is_empty() {
        return;
    }
    if let Some(rest) = l.strip_prefix('[') {
        *section = rest.strip_suffix(']').map(str::to_string);
        return;
    }
    let (Some(section), Some((key, value))) = (section.as_ref(), l.split_once('=')) else {
        return;
    };
    let key = key.trim();
    if key.is_empty() {
        return;
    }
    out.push(Directive {
        section: section.clone(),
        key: key.to_string(),
        value: value.trim().to_string(),
        file,
        line,
    });
}

// ---------------------------------------------------------------------------------------------
// The audit

/// What the audit needs to know about the image, answered by the caller.
pub struct Facts<'a> {
    /// Whether a unit is masked (its unit file is a link to `/dev/null`).
    pub masked: &'a dyn Fn(&str) -> bool,
    /// Whether a unit file of that name exists (for an instance, the audit also asks for its
    /// template, `foo@.service`).
    pub unit_exists: &'a dyn Fn(&str) -> bool,
    /// Whether a path is an executable file: `Some(answer)`, or `None` when the caller did not
    /// look (then the audit reports nothing about it).
    pub executable: &'a dyn Fn(&str) -> Option<bool>,
}

/// What kind of trap a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingKind {
    /// A setting of [`SETTINGS`] that fails on some host kind.
    Setting { key: &'static str },
    /// `Requires=`, `Requisite=`, `BindsTo=` or `Wants=` names a masked unit.
    MaskedDependency,
    /// An `ExecStart=` program that does not exist.
    MissingProgram,
    /// A timer or socket whose service does not exist.
    MissingService,
}

impl FindingKind {
    /// A stable identifier for diagnostics.
    pub fn code(self) -> Code {
        match self {
            FindingKind::Setting { .. } => Code::UnitSettingFails,
            FindingKind::MaskedDependency => Code::UnitDependsOnMasked,
            FindingKind::MissingProgram => Code::UnitProgramMissing,
            FindingKind::MissingService => Code::UnitServiceMissing,
        }
    }
}

/// One trap in one unit, located at a directive (or at the unit's first line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub kind: FindingKind,
    /// The unit audited.
    pub unit: String,
    /// The index of the file (in the slice given to [`audit_unit`]) and the 1-based line.
    pub file: usize,
    pub line: usize,
    /// One sentence, without a trailing period.
    pub message: String,
}

/// The sections whose processes the execution and resource settings apply to.
const EXEC_SECTIONS: [&str; 4] = ["Service", "Socket", "Mount", "Swap"];
/// Dependencies that pull a unit in (`After=` only orders and is not reported: the measured
/// unit with `Wants=` and `After=` on a masked unit runs).
const PULLING_DEPENDENCIES: [&str; 4] = ["Requires", "Requisite", "BindsTo", "Wants"];
/// Where systemd looks for an `ExecStart=` program named without a `/` (systemd ≥ 239).
const EXEC_SEARCH_PATH: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Audits one unit: `name` (with its suffix) and its files (the main file, then its drop-ins in
/// the order systemd applies them). Findings come in the order of the directives.
pub fn audit_unit(name: &str, files: &[UnitFile], facts: &Facts) -> Vec<Finding> {
    let directives = parse_unit(files);
    let mut findings = Vec::new();
    let mut finding = |severity, kind, file, line, message: String| {
        findings.push(Finding {
            severity,
            kind,
            unit: name.to_string(),
            file,
            line,
            message,
        })
    };

    // Settings: the last assignment wins, an empty one resets.
    for setting in SETTINGS {
        let fails_on = setting.fails_on();
        if fails_on.is_empty() {
            continue;
        }
        let Some(d) = last_assignment(&directives, &EXEC_SECTIONS, setting.key) else {
            continue;
        };
        if !setting.trigger.matches(&d.value) {
            continue;
        }
        let severity = setting_severity(&fails_on);
        let first = setting.verdict(fails_on[0]);
        let wheres = if fails_on.len() == HostKind::ALL.len()
            && fails_on.iter().all(|h| setting.verdict(*h) == first)
        {
            format!("{} on every host kind", first.label())
        } else {
            let each: Vec<String> = fails_on
                .iter()
                .map(|h| format!("{} on {}", setting.verdict(*h).label(), h.name()))
                .collect();
            each.join(", ")
        };
        finding(
            severity,
            FindingKind::Setting { key: setting.key },
            d.file,
            d.line,
            format!(
                "`{}={}` makes {name} fail in a system container ({wheres}): {}",
                d.key, d.value, setting.why
            ),
        );
    }

    // Dependencies on masked units (they add up; an empty assignment does not reset them).
    for d in directives
        .iter()
        .filter(|d| d.section == "Unit" && PULLING_DEPENDENCIES.contains(&d.key.as_str()))
    {
        for dep in d.value.split_whitespace().filter(|u| !u.contains('%')) {
            if !(facts.masked)(dep) {
                continue;
            }
            let consequence = if d.key == "Wants" {
                format!("{dep} never starts")
            } else {
                format!(
                    "{dep} never starts, and depending on the systemd version {name} starts \
                     without it (252) or not at all (257)"
                )
            };
            finding(
                Severity::Warning,
                FindingKind::MaskedDependency,
                d.file,
                d.line,
                format!("{name} has `{}={dep}`, a masked unit: {consequence}", d.key),
            );
        }
    }

    match name.rsplit_once('.').map(|(_, suffix)| suffix) {
        Some("service") => {
            for (d, program) in exec_starts(&directives) {
                let candidates = program.candidates();
                if candidates.is_empty()
                    || !candidates
                        .iter()
                        .all(|p| (facts.executable)(p) == Some(false))
                {
                    continue;
                }
                let (severity, consequence) = if program.ignore_failure {
                    (
                        Severity::Warning,
                        "the `-` prefix makes systemd ignore the failure, so it does nothing",
                    )
                } else {
                    (Severity::Error, "the unit fails with 203/EXEC")
                };
                finding(
                    severity,
                    FindingKind::MissingProgram,
                    d.file,
                    d.line,
                    format!(
                        "`ExecStart=` names {}, which is not an executable file in the image: \
                         {consequence}",
                        program.path
                    ),
                );
            }
        }
        Some(kind @ ("timer" | "socket")) => {
            let (section, key) = if kind == "timer" {
                ("Timer", "Unit")
            } else {
                ("Socket", "Service")
            };
            let named = last_assignment(&directives, &[section], key);
            let service = match named {
                Some(d) => d.value.clone(),
                None => {
                    let stem = &name[..name.len() - kind.len() - 1];
                    let accept = kind == "socket"
                        && last_assignment(&directives, &["Socket"], "Accept")
                            .is_some_and(|d| parse_boolean(&d.value) == Some(true));
                    if accept {
                        format!("{stem}@.service")
                    } else {
                        format!("{stem}.service")
                    }
                }
            };
            if !service.contains('%') && !unit_or_template_exists(&service, facts) {
                let (file, line) = named.map(|d| (d.file, d.line)).unwrap_or((0, 1));
                let verb = if kind == "timer" {
                    "triggers"
                } else {
                    "activates"
                };
                finding(
                    Severity::Error,
                    FindingKind::MissingService,
                    file,
                    line,
                    format!(
                        "{name} {verb} {service}, which does not exist: systemd refuses to start \
                         {name}"
                    ),
                );
            }
        }
        _ => {}
    }
    findings
}

/// An error where a setting fails on every host kind, a warning where it fails on some.
fn setting_severity(fails_on: &[HostKind]) -> Severity {
    if HostKind::ALL.iter().all(|h| fails_on.contains(h)) {
        Severity::Error
    } else {
        Severity::Warning
    }
}

/// The last non-empty assignment of `key` in one of `sections`, unless an empty assignment
/// after it reset the setting.
fn last_assignment<'d>(
    directives: &'d [Directive],
    sections: &[&str],
    key: &str,
) -> Option<&'d Directive> {
    directives
        .iter()
        .rev()
        .find(|d| d.key == key && sections.contains(&d.section.as_str()))
        .filter(|d| !d.value.is_empty())
}

fn unit_or_template_exists(unit: &str, facts: &Facts) -> bool {
    if (facts.unit_exists)(unit) {
        return true;
    }
    // `foo@bar.service` loads from `foo@.service`.
    match (unit.split_once('@'), unit.rsplit_once('.')) {
        (Some((prefix, _)), Some((_, suffix))) => {
            (facts.unit_exists)(&format!("{prefix}@.{suffix}"))
        }
        _ => false,
    }
}

/// The program of one `ExecStart=` line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Program {
    path: String,
    /// The `-` prefix: a failure is recorded but ignored.
    ignore_failure: bool,
}

impl Program {
    /// The paths systemd may run: the path itself, or for a bare name the search path.
    /// Empty when the path holds a specifier or variable, which only systemd can expand.
    fn candidates(&self) -> Vec<String> {
        if self.path.is_empty() || self.path.contains(['%', '$', '\\']) {
            return Vec::new();
        }
        if self.path.contains('/') {
            return if self.path.starts_with('/') {
                vec![self.path.clone()]
            } else {
                Vec::new()
            };
        }
        EXEC_SEARCH_PATH
            .iter()
            .map(|dir| format!("{dir}/{}", self.path))
            .collect()
    }
}

/// The programs of the `ExecStart=` lines in force (an empty assignment resets the list).
fn exec_starts(directives: &[Directive]) -> Vec<(&Directive, Program)> {
    let mut out = Vec::new();
    for d in directives
        .iter()
        .filter(|d| d.section == "Service" && d.key == "ExecStart")
    {
        if d.value.is_empty() {
            out.clear();
            continue;
        }
        if let Some(program) = parse_program(&d.value) {
            out.push((d, program));
        }
    }
    out
}

/// The program of a command line: the prefixes (`@`, `-`, `:`, `+`, `!`, `!!`, `|`) stripped,
/// then the first word, which may be quoted.
fn parse_program(value: &str) -> Option<Program> {
    let rest = value.trim_start();
    let prefix_len = rest
        .find(|c: char| !matches!(c, '@' | '-' | ':' | '+' | '!' | '|'))
        .unwrap_or(rest.len());
    let (prefixes, rest) = rest.split_at(prefix_len);
    let path = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let inner = &rest[1..];
            inner[..inner.find(q)?].to_string()
        }
        Some(_) => rest.split_whitespace().next()?.to_string(),
        None => return None,
    };
    Some(Program {
        path,
        ignore_failure: prefixes.contains('-'),
    })
}

/// Every path [`audit_unit`] would ask [`Facts::executable`] about for these files: what a
/// collector has to `test -x` so that nothing is left unknown.
pub fn exec_paths(files: &[UnitFile]) -> Vec<String> {
    let directives = parse_unit(files);
    let mut paths: Vec<String> = exec_starts(&directives)
        .into_iter()
        .flat_map(|(_, p)| p.candidates())
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn one(text: &str) -> Vec<Directive> {
        parse_unit(&[UnitFile {
            path: "/etc/systemd/system/x.service",
            text,
        }])
    }

    fn kv(d: &[Directive]) -> Vec<(String, String, String, usize)> {
        d.iter()
            .map(|d| (d.section.clone(), d.key.clone(), d.value.clone(), d.line))
            .collect()
    }

    fn t(section: &str, key: &str, value: &str, line: usize) -> (String, String, String, usize) {
        (section.into(), key.into(), value.into(), line)
    }

    #[test]
    fn parses_sections_comments_and_trims() {
        let d =
            one("# top\n[Unit]\n  ; note\nDescription = a b \n\n[Service]\n\tExecStart=/bin/x\n");
        assert_eq!(
            kv(&d),
            vec![
                t("Unit", "Description", "a b", 4),
                t("Service", "ExecStart", "/bin/x", 7)
            ]
        );
    }

    #[test]
    fn joins_continuations_and_skips_comments_inside_them() {
        let text = "[Service]\nExecStart=/bin/foo \\\n  --bar \\\n# a comment\n; another\n  --baz\nUser=u\n";
        let d = one(text);
        assert_eq!(
            kv(&d),
            vec![
                t("Service", "ExecStart", "/bin/foo    --bar    --baz", 2),
                t("Service", "User", "u", 7)
            ]
        );
    }

    #[test]
    fn an_even_run_of_backslashes_does_not_continue() {
        let d = one("[Service]\nEnvironment=A=x\\\\\nUser=u\n");
        assert_eq!(
            kv(&d),
            vec![
                t("Service", "Environment", "A=x\\\\", 2),
                t("Service", "User", "u", 3)
            ]
        );
        // A continuation at the end of the text ends the directive; an empty line ends it too.
        let d = one("[Service]\nUser=a \\\n\nGroup=b \\");
        assert_eq!(
            kv(&d),
            vec![t("Service", "User", "a", 2), t("Service", "Group", "b", 4)]
        );
    }

    #[test]
    fn crlf_lines_and_malformed_lines_are_handled() {
        let d = one(
            "Orphan=1\r\n[Service]\r\nUser=u\r\njunk\r\n=x\r\n[Broken\r\nGroup=g\r\n[Install]\r\nWantedBy=m\r\n",
        );
        assert_eq!(
            kv(&d),
            vec![
                t("Service", "User", "u", 3),
                t("Install", "WantedBy", "m", 9)
            ]
        );
        for odd in [
            "",
            "\\",
            "[",
            "]",
            "=",
            "[]\n=",
            "[Service]\n\\\n\\",
            "é=ü\n[Ü]\nä=ö",
        ] {
            let _ = one(odd);
        }
    }

    #[test]
    fn drop_ins_are_located_in_their_own_file() {
        let d = parse_unit(&[
            UnitFile {
                path: "/lib/systemd/system/a.service",
                text: "[Service]\nUser=a\n",
            },
            UnitFile {
                path: "/etc/systemd/system/a.service.d/10.conf",
                text: "\n[Service]\nUser=b\n",
            },
        ]);
        assert_eq!(
            d.iter().map(|d| (d.file, d.line)).collect::<Vec<_>>(),
            vec![(0, 2), (1, 3)]
        );
    }

    struct Image {
        masked: BTreeSet<&'static str>,
        units: BTreeSet<&'static str>,
        executables: BTreeSet<&'static str>,
        /// Paths the collector looked at; others are unknown.
        looked: BTreeSet<&'static str>,
    }

    impl Image {
        fn new() -> Image {
            Image {
                masked: ["systemd-timesyncd.service", "tmp.mount"].into(),
                units: ["a.service", "web.service", "echo@.service", "job@.service"].into(),
                executables: ["/usr/bin/present", "/usr/sbin/tool"].into(),
                looked: [
                    "/usr/bin/present",
                    "/usr/local/bin/gone",
                    "/usr/local/sbin/tool",
                    "/usr/local/bin/tool",
                    "/usr/sbin/tool",
                    "/usr/bin/tool",
                    "/sbin/tool",
                    "/bin/tool",
                    "/usr/local/sbin/nothere",
                    "/usr/local/bin/nothere",
                    "/usr/sbin/nothere",
                    "/usr/bin/nothere",
                    "/sbin/nothere",
                    "/bin/nothere",
                    "/opt/my app/run",
                ]
                .into(),
            }
        }

        fn audit(&self, name: &str, texts: &[&str]) -> Vec<Finding> {
            let masked = |u: &str| self.masked.contains(u);
            let exists = |u: &str| self.units.contains(u);
            let executable = |p: &str| {
                self.looked
                    .contains(p)
                    .then(|| self.executables.contains(p))
            };
            let facts = Facts {
                masked: &masked,
                unit_exists: &exists,
                executable: &executable,
            };
            let files: Vec<UnitFile> = texts
                .iter()
                .map(|text| UnitFile { path: "p", text })
                .collect();
            audit_unit(name, &files, &facts)
        }
    }

    fn brief(f: &[Finding]) -> Vec<(Severity, &'static str, usize, usize)> {
        f.iter()
            .map(|f| (f.severity, f.kind.code().as_str(), f.file, f.line))
            .collect()
    }

    #[test]
    fn a_setting_that_fails_everywhere_is_an_error_at_its_line() {
        let img = Image::new();
        let f = img.audit(
            "s.service",
            &["[Unit]\nDescription=x\n[Service]\nExecStart=/usr/bin/present\nDynamicUser=yes\n"],
        );
        assert_eq!(
            brief(&f),
            vec![(Severity::Error, "unit-setting-fails", 0, 5)]
        );
        assert!(
            f[0].message.contains("DynamicUser=yes")
                && f[0]
                    .message
                    .contains("fails 226/NAMESPACE on every host kind"),
            "{}",
            f[0].message
        );
        let f = img.audit(
            "s.service",
            &["[Service]\nPrivateUsers=true\nCPUSchedulingPolicy=rr\n"],
        );
        assert_eq!(
            brief(&f),
            vec![
                (Severity::Error, "unit-setting-fails", 0, 2),
                (Severity::Error, "unit-setting-fails", 0, 3)
            ]
        );
        assert!(f[0].message.contains("217/USER") && f[1].message.contains("214/SETSCHEDULER"));
    }

    #[test]
    fn settings_off_reset_ignored_or_working_are_not_reported() {
        let img = Image::new();
        for texts in [
            &["[Service]\nDynamicUser=no\n"][..],
            &["[Service]\n#DynamicUser=yes\n; PrivateUsers=yes\n"],
            &["[Unit]\nDynamicUser=yes\n"],
            &["[Service]\nDynamicUser=yes\n", "[Service]\nDynamicUser=\n"],
            &[
                "[Service]\nDynamicUser=yes\n",
                "[Service]\nDynamicUser=off\n",
            ],
            &["[Service]\nPrivateNetwork=yes\nPrivateTmp=yes\nProtectSystem=strict\n"],
            &["[Service]\nCPUSchedulingPolicy=batch\nNice=-5\nNoNewPrivileges=yes\n"],
        ] {
            assert_eq!(img.audit("s.service", texts), vec![], "{texts:?}");
        }
        // A drop-in can turn a setting on too, and is then the place reported.
        let f = img.audit(
            "s.service",
            &[
                "[Service]\nTemporaryFileSystem=\n",
                "[Service]\nTemporaryFileSystem=/srv\n",
            ],
        );
        assert_eq!(
            brief(&f),
            vec![(Severity::Error, "unit-setting-fails", 1, 2)]
        );
        // Sockets, mounts and swaps run processes with the same settings.
        let f = img.audit(
            "web.socket",
            &["[Socket]\nListenStream=1\nBindPaths=/a:/b\n[Install]\nWantedBy=sockets.target\n"],
        );
        assert_eq!(
            brief(&f),
            vec![(Severity::Error, "unit-setting-fails", 0, 3)]
        );
    }

    #[test]
    fn a_setting_failing_on_some_host_kinds_only_is_a_warning() {
        assert_eq!(setting_severity(&[HostKind::CgroupV2]), Severity::Warning);
        assert_eq!(setting_severity(&[HostKind::CgroupV1]), Severity::Warning);
        assert_eq!(setting_severity(&HostKind::ALL), Severity::Error);
    }

    #[test]
    fn triggers_read_booleans_signs_and_values() {
        assert!(Trigger::True.matches(" On "));
        assert!(!Trigger::True.matches("strict"));
        assert!(Trigger::NotFalse.matches("strict") && !Trigger::NotFalse.matches("0"));
        assert!(!Trigger::Any.matches("  "));
        assert!(Trigger::Negative.matches("-5") && !Trigger::Negative.matches("5"));
        assert!(!Trigger::Negative.matches("-") && !Trigger::Negative.matches("-x"));
        assert!(Trigger::OneOf(&["fifo", "rr"]).matches("RR"));
    }

    #[test]
    fn pulling_dependencies_on_masked_units_are_warnings() {
        let img = Image::new();
        let f = img.audit(
            "s.service",
            &[
                "[Unit]\nRequires=a.service systemd-timesyncd.service\nAfter=tmp.mount\nWants=tmp.mount\n",
                "[Unit]\nRequires=\nBindsTo=tmp.mount\nRequisite=%i.service\n",
            ],
        );
        assert_eq!(
            brief(&f),
            vec![
                (Severity::Warning, "unit-depends-on-masked", 0, 2),
                (Severity::Warning, "unit-depends-on-masked", 0, 4),
                (Severity::Warning, "unit-depends-on-masked", 1, 3)
            ]
        );
        assert!(f[0].message.contains("Requires=systemd-timesyncd.service"));
        assert!(f[1].message.contains("tmp.mount never starts"));
    }

    #[test]
    fn missing_programs_are_errors_and_unknown_ones_are_not_reported() {
        let img = Image::new();
        let f = img.audit(
            "s.service",
            &["[Service]\nType=oneshot\nExecStart=/usr/bin/present --x\nExecStart=+@/usr/local/bin/gone gone\nExecStart=-/usr/local/bin/gone\nExecStart=nothere\nExecStart=tool\nExecStart=/unknown/path\nExecStart=%h/bin/x\nExecStart=\"/opt/my app/run\" a\nExecStart=\"/unterminated\n"],
        );
        assert_eq!(
            brief(&f),
            vec![
                (Severity::Error, "unit-program-missing", 0, 4),
                (Severity::Warning, "unit-program-missing", 0, 5),
                (Severity::Error, "unit-program-missing", 0, 6),
                (Severity::Error, "unit-program-missing", 0, 10)
            ]
        );
        assert!(f[0].message.contains("/usr/local/bin/gone") && f[0].message.contains("203/EXEC"));
        assert!(f[3].message.contains("/opt/my app/run"));
        // An empty ExecStart= in a drop-in resets the list.
        let f = img.audit(
            "s.service",
            &[
                "[Service]\nExecStart=/usr/local/bin/gone\n",
                "[Service]\nExecStart=\nExecStart=/usr/bin/present\n",
            ],
        );
        assert_eq!(f, vec![]);
        // Only services are checked for programs.
        assert_eq!(
            img.audit(
                "s.socket",
                &["[Service]\nExecStart=/usr/local/bin/gone\n[Socket]\nService=a.service\n"]
            ),
            vec![]
        );
    }

    #[test]
    fn exec_paths_lists_what_a_collector_must_test() {
        let files = [UnitFile {
            path: "p",
            text: "[Service]\nExecStart=-/a/b x\nExecStart=tool\nExecStart=%h/x\n",
        }];
        let mut want: Vec<String> = EXEC_SEARCH_PATH
            .iter()
            .map(|d| format!("{d}/tool"))
            .collect();
        want.push("/a/b".into());
        want.sort();
        assert_eq!(exec_paths(&files), want);
    }

    #[test]
    fn timers_and_sockets_need_their_service() {
        let img = Image::new();
        let f = img.audit("orphan.timer", &["[Timer]\nOnBootSec=1\n"]);
        assert_eq!(
            brief(&f),
            vec![(Severity::Error, "unit-service-missing", 0, 1)]
        );
        assert!(f[0].message.contains("orphan.service"), "{}", f[0].message);
        let f = img.audit("x.timer", &["[Timer]\nOnBootSec=1\nUnit=gone.service\n"]);
        assert_eq!(
            brief(&f),
            vec![(Severity::Error, "unit-service-missing", 0, 3)]
        );
        assert_eq!(img.audit("x.timer", &["[Timer]\nUnit=a.service\n"]), vec![]);
        assert_eq!(img.audit("web.timer", &["[Timer]\nOnBootSec=1\n"]), vec![]);
        assert_eq!(
            img.audit("job@daily.timer", &["[Timer]\nOnCalendar=daily\n"]),
            vec![]
        );
        let f = img.audit("orphan.socket", &["[Socket]\nListenStream=80\n"]);
        assert_eq!(
            brief(&f),
            vec![(Severity::Error, "unit-service-missing", 0, 1)]
        );
        assert_eq!(
            img.audit("web.socket", &["[Socket]\nListenStream=80\n"]),
            vec![]
        );
        assert_eq!(
            img.audit("echo.socket", &["[Socket]\nListenStream=7\nAccept=yes\n"]),
            vec![]
        );
        let f = img.audit(
            "x.socket",
            &["[Socket]\nListenStream=7\nService=gone.service\n"],
        );
        assert_eq!(
            brief(&f),
            vec![(Severity::Error, "unit-service-missing", 0, 3)]
        );
    }

    #[test]
    fn the_table_is_well_formed() {
        let mut ids = BTreeSet::new();
        for s in SETTINGS {
            assert!(ids.insert(s.id), "{} twice", s.id);
            let first = s.measured.lines().next().unwrap();
            let (key, value) = first.split_once('=').unwrap();
            assert_eq!(key, s.key, "{}: the measured line sets another key", s.id);
            assert!(
                s.trigger.matches(value),
                "{}: the measured value is not covered",
                s.id
            );
            for h in HostKind::ALL {
                if let Verdict::Fails { status, name } = s.verdict(h) {
                    assert!(
                        status > 0
                            && !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                    );
                }
            }
        }
    }

    /// `docs/unit-audit.md` lists exactly the table's settings, with the same verdicts.
    #[test]
    fn the_docs_table_is_the_code_table() {
        let doc = include_str!("../docs/unit-audit.md");
        let section = doc
            .split("\n## Settings\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("docs/unit-audit.md has a Settings section");
        let mut documented = Vec::new();
        for row in section.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
            assert!(cells.len() >= 3, "short row: {row}");
            let setting = cells[0].trim_matches('`').to_string();
            documented.push((setting, cells[1].to_string(), cells[2].to_string()));
        }
        let table: Vec<(String, String, String)> = SETTINGS
            .iter()
            .map(|s| {
                (
                    s.measured.lines().next().unwrap().to_string(),
                    s.v1.label(),
                    s.v2.label(),
                )
            })
            .collect();
        assert_eq!(
            documented, table,
            "docs/unit-audit.md and SETTINGS disagree"
        );
    }

    proptest::proptest! {
        /// Any text: no panic, every directive and finding points at a line of its file, and a
        /// value holds no line break it did not join.
        #[test]
        fn any_text_is_read_without_panic(
            main in "[\\[\\]=#;\\\\ a-zA-Z\\-/@%\"'\\r\\n]{0,200}",
            dropin in "(\\[(Unit|Service|Timer|Socket)\\]\\n)?([A-Za-z]{1,12}=[ -~]{0,20}\\\\?\\n){0,8}",
        ) {
            let files = [UnitFile { path: "a", text: &main }, UnitFile { path: "b", text: &dropin }];
            for d in parse_unit(&files) {
                let lines = files[d.file].text.split('\n').count();
                proptest::prop_assert!(d.line >= 1 && d.line <= lines);
                proptest::prop_assert!(!d.value.contains('\n'));
            }
            let yes = |_: &str| true;
            let no = |_: &str| false;
            let missing = |_: &str| Some(false);
            let facts = Facts { masked: &yes, unit_exists: &no, executable: &missing };
            for name in ["x.service", "x.timer", "x@y.socket", "x"] {
                for f in audit_unit(name, &files, &facts) {
                    let lines = files[f.file].text.split('\n').count();
                    proptest::prop_assert!(f.line >= 1 && f.line <= lines);
                }
            }
        }
    }
}
