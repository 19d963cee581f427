//! The host rules as data: which systemd versions boot on which engine and cgroup version, and
//! which cgroup mounts a boot image gets on a cgroup v1 host.
//!
//! These are the facts the real-host measurements decide. Changing a measured fact means
//! changing one row of [`BOOT_RULES`] or the value of [`DEFAULT_V1_CGROUP_MOUNTS`]; the planner
//! (`mod.rs`, `docker.rs`, `podman.rs`) only reads them.

use std::ops::RangeInclusive;

use super::Engine;
use super::host::CgroupVersion;

/// What the rules say about booting an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Plan the ordinary flags for this engine and cgroup version.
    Boot,
    /// Refuse, with this reason (the hint is added by the caller).
    Refuse(&'static str),
}

/// One row: for this engine (`None`: any), cgroup version and systemd version range, the verdict
/// and what it rests on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootRule {
    /// The engine the row is for; `None` matches every engine.
    pub engine: Option<Engine>,
    /// The host's cgroup version.
    pub cgroup: CgroupVersion,
    /// systemd major versions, inclusive.
    pub systemd: RangeInclusive<u32>,
    /// Boot or refuse.
    pub verdict: Verdict,
    /// Where the fact comes from (shown by `--explain`).
    pub evidence: &'static str,
}

/// The highest systemd version observed to boot on a cgroup v1 host.
pub const HIGHEST_V1_BOOTED: u32 = 257;

/// The boot rules, first match wins. The rows cover every (engine, cgroup, version) triple, so
/// a lookup always finds one.
pub const BOOT_RULES: &[BootRule] = &[
    BootRule {
        engine: None,
        cgroup: CgroupVersion::V1,
        systemd: 0..=HIGHEST_V1_BOOTED,
        verdict: Verdict::Boot,
        evidence: "measured on a cgroup v1 hybrid host with Docker 26: systemd 252 and 257 boot with the \
                   ordinary v1 flags, no SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE needed",
    },
    BootRule {
        engine: None,
        cgroup: CgroupVersion::V1,
        systemd: (HIGHEST_V1_BOOTED + 1)..=u32::MAX,
        verdict: Verdict::Refuse(
            "systemd ≥ 258 dropped cgroup v1: on a cgroup v1 host it refuses to run \
             (measured: systemd 262 exits 255 with `cgroup v1 ... no longer supported`)",
        ),
        evidence: "upstream: systemd 256 deprecated cgroup v1 and 258 removed it; measured: 262 exits 255 on v1",
    },
    BootRule {
        engine: None,
        cgroup: CgroupVersion::V2,
        systemd: 0..=u32::MAX,
        verdict: Verdict::Boot,
        evidence: "measured on a simulated cgroup v2 host with Docker 26 (cgroupfs driver): systemd 252, 257 \
                   and 262 boot with --cgroupns=host and a read-write bind of /sys/fs/cgroup",
    },
];

/// The row for an engine, a cgroup version and a known systemd version.
pub fn boot_rule(engine: Engine, cgroup: CgroupVersion, systemd: u32) -> Option<&'static BootRule> {
    BOOT_RULES.iter().find(|r| {
        r.engine.is_none_or(|e| e == engine) && r.cgroup == cgroup && r.systemd.contains(&systemd)
    })
}

/// Which cgroup mounts a boot image gets on a cgroup v1 host (Docker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum V1CgroupMounts {
    /// Bind the host's whole `/sys/fs/cgroup` read-write (`-v /sys/fs/cgroup:/sys/fs/cgroup:rw`):
    /// boots, but root in the container can write every controller hierarchy. Kept for hosts
    /// without a `name=systemd` hierarchy.
    TreeRw,
    /// The default, least privilege: only the `name=systemd` hierarchy bound read-write; the
    /// controller hierarchies stay on Docker's own read-only cgroup mount. Measured by the host
    /// matrix (`tests/e2e_hosts.rs`) on Docker 20.10 and 26 with systemd 252 and 257.
    SystemdRw,
}

impl V1CgroupMounts {
    /// The value as given on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            V1CgroupMounts::TreeRw => "tree-rw",
            V1CgroupMounts::SystemdRw => "systemd-rw",
        }
    }
}

/// The v1 cgroup mounts `sysfile run` plans when `--cgroup-v1-mounts` is not given.
pub const DEFAULT_V1_CGROUP_MOUNTS: V1CgroupMounts = V1CgroupMounts::SystemdRw;
