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
        why: "implies a private /tmp and a read-only file system, which need a mount namespace",
    },
    Setting {
        id: "privatenetwork",
        key: "PrivateNetwork",
        trigger: Trigger::True,
        measured: "PrivateNetwork=yes",
        v1: Ignored,
        v2: Ignored,
        why: "a network namespace needs CAP_SYS_ADMIN",
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
        why: "a user namespace cannot be created without CAP_SYS_ADMIN",
    },
    Setting {
        id: "privatemounts",
        key: "PrivateMounts",
        trigger: Trigger::True,
        measured: "PrivateMounts=yes",
        v1: Ignored,
        v2: Ignored,
        why: "a mount namespace needs CAP_SYS_ADMIN",
    },
    Setting {
        id: "protectsystem",
        key: "ProtectSystem",
        trigger: Trigger::NotFalse,
        measured: "ProtectSystem=strict",
        v1: Ignored,
        v2: Ignored,
        why: "read-only bind mounts need a mount namespace",
    },
    Setting {
        id: "protecthome",
        key: "ProtectHome",
        trigger: Trigger::NotFalse,
        measured: "ProtectHome=yes",
        v1: Ignored,
        v2: Ignored,
        why: "hiding /home needs a mount namespace",
    },
    Setting {
        id: "protectkerneltunables",
        key: "ProtectKernelTunables",
        trigger: Trigger::True,
        measured: "ProtectKernelTunables=yes",
        v1: Ignored,
        v2: Ignored,
        why: "read-only /proc/sys and /sys need a mount namespace",
    },
    Setting {
        id: "protectkernelmodules",
        key: "ProtectKernelModules",
        trigger: Trigger::True,
        measured: "ProtectKernelModules=yes",
        v1: Ignored,
        v2: Ignored,
        why: "hiding /usr/lib/modules needs a mount namespace",
    },
    Setting {
        id: "protectkernellogs",
        key: "ProtectKernelLogs",
        trigger: Trigger::True,
        measured: "ProtectKernelLogs=yes",
        v1: Ignored,
        v2: Ignored,
        why: "hiding /dev/kmsg needs a mount namespace",
    },
    Setting {
        id: "protectcontrolgroups",
        key: "ProtectControlGroups",
        trigger: Trigger::NotFalse,
        measured: "ProtectControlGroups=yes",
        v1: Ignored,
        v2: Ignored,
        why: "a read-only /sys/fs/cgroup needs a mount namespace",
    },
    Setting {
        id: "protectclock",
        key: "ProtectClock",
        trigger: Trigger::True,
        measured: "ProtectClock=yes",
        v1: Works,
        v2: Works,
        why: "a seccomp filter",
    },
    Setting {
        id: "protecthostname",
        key: "ProtectHostname",
        trigger: Trigger::NotFalse,
        measured: "ProtectHostname=yes",
        v1: Ignored,
        v2: Ignored,
        why: "a UTS namespace needs CAP_SYS_ADMIN",
    },
    Setting {
        id: "restrictnamespaces",
        key: "RestrictNamespaces",
        trigger: Trigger::NotFalse,
        measured: "RestrictNamespaces=yes",
        v1: Works,
        v2: Works,
        why: "a seccomp filter",
    },
    Setting {
        id: "restrictrealtime",
        key: "RestrictRealtime",
        trigger: Trigger::True,
        measured: "RestrictRealtime=yes",
        v1: Works,
        v2: Works,
        why: "a seccomp filter",
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
        why: "a seccomp filter",
    },
    Setting {
        id: "systemcallfilter",
        key: "SystemCallFilter",
        trigger: Trigger::Any,
        measured: "SystemCallFilter=@system-service",
        v1: Works,
        v2: Works,
        why: "a seccomp filter",
    },
    Setting {
        id: "lockpersonality",
        key: "LockPersonality",
        trigger: Trigger::True,
        measured: "LockPersonality=yes",
        v1: Works,
        v2: Works,
        why: "a seccomp filter",
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
        why: "a read-only bind mount needs a mount namespace",
    },
    Setting {
        id: "inaccessiblepaths",
        key: "InaccessiblePaths",
        trigger: Trigger::Any,
        measured: "InaccessiblePaths=/home",
        v1: Ignored,
        v2: Ignored,
        why: "an over-mount needs a mount namespace",
    },
    Setting {
        id: "temporaryfilesystem",
        key: "TemporaryFileSystem",
        trigger: Trigger::Any,
        measured: "TemporaryFileSystem=/srv",
        v1: NAMESPACE,
        v2: NAMESPACE,
        why: "a tmpfs mount needs a mount namespace",
    },
    Setting {
        id: "bindpaths",
        key: "BindPaths",
        trigger: Trigger::Any,
        measured: "BindPaths=/etc:/mnt/audit-bind",
        v1: NAMESPACE,
        v2: NAMESPACE,
        why: "a bind mount needs a mount namespace",
    },
    Setting {
        id: "mountapivfs",
        key: "MountAPIVFS",
        trigger: Trigger::True,
        measured: "MountAPIVFS=yes",
        v1: Ignored,
        v2: Ignored,
        why: "API file systems of its own need a mount namespace",
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
        why: "the memory controller is not delegated to the container",
    },
    Setting {
        id: "cpuquota",
        key: "CPUQuota",
        trigger: Trigger::Any,
        measured: "CPUQuota=50%",
        v1: Ignored,
        v2: Ignored,
        why: "the cpu controller is not delegated to the container",
    },
    Setting {
        id: "tasksmax",
        key: "TasksMax",
        trigger: Trigger::Any,
        measured: "TasksMax=64",
        v1: Ignored,
        v2: Ignored,
        why: "the pids controller is not delegated to the container",
    },
    Setting {
        id: "ioweight",
        key: "IOWeight",
        trigger: Trigger::Any,
        measured: "IOWeight=50",
        v1: Ignored,
        v2: Ignored,
        why: "the io controller is not delegated to the container",
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
        why: "a real-time policy needs CAP_SYS_NICE",
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
        why: "systemd hands the unit its cgroup subtree",
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
