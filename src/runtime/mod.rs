//! `sysfile run` and `sysfile k8s`: start a sysfile image with the engine flags its host needs.
//!
//! The core is pure: [`contract`] reads the image labels (a map), [`plan_run`] turns labels plus
//! [`HostFacts`] into a [`RunPlan`] (argv, one reason per flag group, warnings) or a [`Refusal`],
//! and [`k8s::manifest`] prints a Pod or Deployment. `docker.rs` and `podman.rs` hold each engine's
//! flags, `host.rs` the host facts and their parsers, `shell.rs` the quoting. Only `engine.rs`
//! (the engine CLI through `std::process::Command`) and `command.rs` (the two subcommands) do I/O.

pub mod command;
pub mod docker;
pub mod engine;
pub mod host;
pub mod k8s;
pub mod podman;
pub mod shell;

use std::collections::BTreeMap;

pub use command::{K8sArgs, RunArgs, k8s_main, run_main};
pub use host::{CgroupVersion, HostFacts};

/// Image labels, as `docker image inspect -f '{{json .Config.Labels}}'` gives them.
pub type Labels = BTreeMap<String, String>;

/// The container engine whose CLI `sysfile run` drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// Docker (`/usr/bin/docker` when it exists, else `docker` from `PATH`).
    Docker,
    /// Podman (`podman` from `PATH`), in its systemd mode.
    Podman,
}

impl Engine {
    /// `Docker` or `Podman`.
    pub fn display_name(self) -> &'static str {
        match self {
            Engine::Docker => "Docker",
            Engine::Podman => "Podman",
        }
    }
}

/// The label that marks an image built by sysfile.
pub const BOOT_LABEL: &str = "sysfile.systemd.boot";
/// Seconds to wait after the stop signal.
pub const STOP_TIMEOUT_LABEL: &str = "sysfile.runtime.stop-timeout";
/// `;`-separated `--tmpfs` entries.
pub const TMPFS_LABEL: &str = "sysfile.runtime.tmpfs";
/// systemd's major version in the image.
pub const SYSTEMD_VERSION_LABEL: &str = "sysfile.systemd.version";
/// The health command for engines that ignore `Healthcheck`.
pub const HEALTH_LABEL: &str = "sysfile.health.cmd";

/// The stop timeout when the label is missing or unreadable.
pub const DEFAULT_STOP_TIMEOUT: u32 = 30;
/// The tmpfs mounts when the label is missing, empty or unusable.
pub const DEFAULT_TMPFS: &str = crate::image::RUNTIME_TMPFS;
/// The argument that lets systemd 256/257 boot on cgroup v1 (read from PID 1's argv).
pub const LEGACY_FORCE_ARG: &str = "SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1";

/// One `--tmpfs` entry: a path and Docker's mount options (possibly empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TmpfsMount {
    /// The absolute mount point.
    pub path: String,
    /// Docker `--tmpfs` options after the `:`, e.g. `exec,mode=755`.
    pub options: String,
}

impl TmpfsMount {
    /// The `--tmpfs` value: `path` or `path:options`.
    pub fn docker_value(&self) -> String {
        if self.options.is_empty() {
            self.path.clone()
        } else {
            format!("{}:{}", self.path, self.options)
        }
    }
}

/// What the image asks of the engine, read from its labels, with defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contract {
    /// The image carries `sysfile.systemd.boot=true`.
    pub sysfile: bool,
    /// Seconds between the stop signal and SIGKILL.
    pub stop_timeout: u32,
    /// The tmpfs mounts the engine must provide.
    pub tmpfs: Vec<TmpfsMount>,
    /// systemd's version in the image, when the label says.
    pub systemd_version: Option<u32>,
    /// The health command; `None` when the label is missing or empty.
    pub health_cmd: Option<String>,
    /// Problems with the labels (each already says what default was used instead).
    pub warnings: Vec<String>,
    /// Facts worth telling the user (missing labels, defaults used).
    pub notes: Vec<String>,
}

/// Reads the runtime contract from image labels. Never fails: bad or missing labels fall back to
/// the defaults, with a warning or note saying so.
pub fn contract(labels: &Labels) -> Contract {
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    let sysfile = labels.get(BOOT_LABEL).map(|v| v.trim()) == Some("true");
    if !sysfile {
        notes.push(format!(
            "the image has no {BOOT_LABEL}=true label, so it was not built by sysfile; \
             using the default contract (tmpfs {DEFAULT_TMPFS}, stop timeout {DEFAULT_STOP_TIMEOUT} s), \
             which boots only if its entrypoint is systemd"
        ));
    }
    let stop_timeout = match labels.get(STOP_TIMEOUT_LABEL) {
        None => DEFAULT_STOP_TIMEOUT,
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => {
                warnings.push(format!(
                    "label {STOP_TIMEOUT_LABEL}=`{v}` is not a positive number of seconds; using {DEFAULT_STOP_TIMEOUT}"
                ));
                DEFAULT_STOP_TIMEOUT
            }
        },
    };
    let tmpfs = match labels.get(TMPFS_LABEL) {
        None => default_tmpfs(),
        Some(value) => {
            let (mounts, problems) = parse_tmpfs(value);
            warnings.extend(problems);
            if mounts.is_empty() {
                warnings.push(format!(
                    "label {TMPFS_LABEL} names no usable tmpfs mount; using the default `{DEFAULT_TMPFS}`"
                ));
                default_tmpfs()
            } else {
                if !mounts.iter().any(|m| m.path == "/run") {
                    warnings.push(format!(
                        "label {TMPFS_LABEL} has no /run entry; systemd cannot boot without a tmpfs /run \
                         unless the engine or extra arguments provide one"
                    ));
                }
                mounts
            }
        }
    };
    let systemd_version = match labels.get(SYSTEMD_VERSION_LABEL) {
        None => None,
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                warnings.push(format!(
                    "label {SYSTEMD_VERSION_LABEL}=`{v}` is not a version number; treating it as unknown"
                ));
                None
            }
        },
    };
    let health_cmd = labels
        .get(HEALTH_LABEL)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    Contract {
        sysfile,
        stop_timeout,
        tmpfs,
        systemd_version,
        health_cmd,
        warnings,
        notes,
    }
}

fn default_tmpfs() -> Vec<TmpfsMount> {
    parse_tmpfs(DEFAULT_TMPFS).0
}

/// Parses a `sysfile.runtime.tmpfs` value: `;`-separated Docker `--tmpfs` entries (`/path[:options]`).
/// Empty entries are skipped silently; entries that are not absolute paths, contain whitespace or
/// repeat a path are dropped with a warning.
pub fn parse_tmpfs(value: &str) -> (Vec<TmpfsMount>, Vec<String>) {
    let mut mounts: Vec<TmpfsMount> = Vec::new();
    let mut warnings = Vec::new();
    for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (path, options) = entry.split_once(':').unwrap_or((entry, ""));
        let problem = if !path.starts_with('/') {
            Some("is not an absolute path")
        } else if entry.chars().any(char::is_whitespace) {
            Some("contains whitespace")
        } else if path.split('/').any(|c| c == "..") {
            Some("contains `..`")
        } else if options.contains(':') {
            Some("has more than one `:`")
        } else if mounts.iter().any(|m| m.path == path.trim_end_matches('/')) {
            Some("repeats a mount point")
        } else {
            None
        };
        match problem {
            Some(why) => warnings.push(format!(
                "ignoring tmpfs entry `{entry}` in label {TMPFS_LABEL}: it {why}"
            )),
            None => mounts.push(TmpfsMount {
                path: match path.trim_end_matches('/') {
                    "" => "/".to_string(),
                    p => p.to_string(),
                },
                options: options.to_string(),
            }),
        }
    }
    (mounts, warnings)
}

/// Whether an image's systemd can boot on a cgroup v1 host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V1Support {
    /// systemd ≤ 255.
    Boots,
    /// systemd 256–257: only with `SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1`.
    NeedsForce,
    /// systemd ≥ 258 removed cgroup v1.
    Never,
    /// The version is not known.
    Unknown,
}

/// The cgroup v1 verdict for a systemd version.
pub fn v1_support(systemd_version: Option<u32>) -> V1Support {
    match systemd_version {
        None => V1Support::Unknown,
        Some(0..=255) => V1Support::Boots,
        Some(256..=257) => V1Support::NeedsForce,
        Some(_) => V1Support::Never,
    }
}

/// What the user asked `sysfile run` for, besides the image's labels and the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunRequest {
    /// The engine program to call (`/usr/bin/docker`, `podman`, …).
    pub program: String,
    /// The image reference, passed to the engine unchanged.
    pub image: String,
    /// `--name`.
    pub name: Option<String>,
    /// Arguments after `--`, placed before the image.
    pub extra_args: Vec<String>,
    /// `--force-cgroup-v1`: boot systemd 256/257 on cgroup v1 anyway.
    pub force_cgroup_v1: bool,
}

/// A group of arguments and why they are there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagGroup {
    /// The arguments, as passed to the engine.
    pub args: Vec<String>,
    /// One line saying why.
    pub why: String,
}

impl FlagGroup {
    fn new<S: Into<String>>(args: impl IntoIterator<Item = S>, why: impl Into<String>) -> Self {
        FlagGroup {
            args: args.into_iter().map(Into::into).collect(),
            why: why.into(),
        }
    }
}

/// The command `sysfile run` will execute, with its reasons.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunPlan {
    /// The engine program.
    pub program: String,
    /// The flag groups, in argv order (the engine's `run` subcommand first).
    pub groups: Vec<FlagGroup>,
    /// The image.
    pub image: String,
    /// Arguments after the image: systemd's "kernel command line" (the image `Cmd` is replaced
    /// only when this is non-empty).
    pub after_image: Vec<FlagGroup>,
    /// Things the user must know (printed as `warning:`).
    pub warnings: Vec<String>,
    /// Things worth knowing (printed as `note:`).
    pub notes: Vec<String>,
    /// The detected host, one line each, for `--explain`.
    pub host: Vec<String>,
}

impl RunPlan {
    /// The full argv, program first.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![self.program.clone()];
        argv.extend(self.groups.iter().flat_map(|g| g.args.iter().cloned()));
        argv.push(self.image.clone());
        argv.extend(self.after_image.iter().flat_map(|g| g.args.iter().cloned()));
        argv
    }

    /// The arguments after the program.
    pub fn args(&self) -> Vec<String> {
        self.argv().split_off(1)
    }

    /// The command as one shell-quoted line.
    pub fn command_line(&self) -> String {
        shell::join(&self.argv())
    }

    /// The `--explain` text: the command, one line per flag group, the host facts, then the
    /// warnings and notes.
    pub fn explain(&self) -> String {
        let mut out = String::new();
        out.push_str(&self.command_line());
        out.push_str("\n\nwhy each flag:\n");
        for group in self.groups.iter().chain(&self.after_image) {
            out.push_str(&format!("  {}: {}\n", shell::join(&group.args), group.why));
        }
        out.push_str("\nhost:\n");
        for line in &self.host {
            out.push_str(&format!("  {line}\n"));
        }
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        for n in &self.notes {
            out.push_str(&format!("note: {n}\n"));
        }
        out
    }
}

/// Why `sysfile run` will not start an image on this host (exit code 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Plans the run command for an image on a host. Pure: no I/O.
pub fn plan_run(
    labels: &Labels,
    facts: &HostFacts,
    request: &RunRequest,
) -> Result<RunPlan, Refusal> {
    let contract = contract(labels);
    let mut warnings = contract.warnings.clone();
    let mut notes = contract.notes.clone();
    let mut after_image = Vec::new();

    // systemd version against the host's cgroup version.
    let version_text = contract
        .systemd_version
        .map_or_else(|| "unknown".to_string(), |v| v.to_string());
    match (facts.cgroup, v1_support(contract.systemd_version)) {
        (CgroupVersion::V2, V1Support::Unknown) | (CgroupVersion::V1, V1Support::Unknown) => {
            notes.push(format!(
                "the image has no usable {SYSTEMD_VERSION_LABEL} label; running it anyway \
                 (systemd ≥ 258 cannot boot on cgroup v1, 256–257 only when forced)"
            ));
        }
        (CgroupVersion::V2, _) | (CgroupVersion::V1, V1Support::Boots) => {}
        (CgroupVersion::V1, V1Support::NeedsForce) => {
            if !request.force_cgroup_v1 {
                return Err(Refusal(format!(
                    "systemd {version_text} refuses to boot on cgroup v1 unless forced; this host mounts \
                     cgroup v1 at /sys/fs/cgroup; use a cgroup v2 host, a base with systemd ≤ 255, or pass \
                     --force-cgroup-v1 to add {LEGACY_FORCE_ARG} to systemd's command line"
                )));
            }
            warnings.push(format!(
                "systemd {version_text} on cgroup v1: forcing the deprecated v1 support with {LEGACY_FORCE_ARG} \
                 (this replaces the image Cmd; whether systemd honours it in a container is not verified)"
            ));
            after_image.push(FlagGroup::new(
                [LEGACY_FORCE_ARG],
                format!(
                    "arguments after the image are systemd's kernel command line; this makes systemd \
                     {version_text} boot on the host's cgroup v1 (--force-cgroup-v1)"
                ),
            ));
        }
        (CgroupVersion::V1, V1Support::Never) => {
            return Err(Refusal(format!(
                "systemd {version_text} dropped cgroup v1; this host mounts cgroup v1 at /sys/fs/cgroup; \
                 use a cgroup v2 host or a base with systemd ≤ 255"
            )));
        }
    }
    if request.force_cgroup_v1 && after_image.is_empty() {
        notes.push(
            "--force-cgroup-v1 is not needed for this image on this host; ignored".to_string(),
        );
    }

    let mut groups = match facts.engine {
        Engine::Docker => docker::groups(&contract, facts, request, &mut notes)?,
        Engine::Podman => podman::groups(&contract, facts, request, &mut notes),
    };
    if !request.extra_args.is_empty() {
        groups.push(FlagGroup::new(
            request.extra_args.iter().cloned(),
            "extra arguments given after `--`, passed through unchanged",
        ));
    }

    let mut host = vec![
        format!(
            "cgroup {} (/sys/fs/cgroup is {})",
            facts.cgroup.as_str(),
            if facts.cgroup_fs.is_empty() {
                "of unknown type"
            } else {
                &facts.cgroup_fs
            }
        ),
        format!(
            "{} {}{}",
            facts.engine.display_name(),
            facts
                .engine_version
                .as_deref()
                .unwrap_or("(version unknown)"),
            match facts.version() {
                Some((major, minor)) => format!(" (read as {major}.{minor})"),
                None => String::new(),
            }
        ),
    ];
    if facts.engine == Engine::Docker {
        host.push(format!(
            "daemon user namespaces: {}",
            match (facts.rootless, facts.userns) {
                (true, true) => "rootless, userns-remap",
                (true, false) => "rootless",
                (false, true) => "userns-remap",
                (false, false) => "none (rootful, no userns-remap)",
            }
        ));
    }
    host.push(format!(
        "image: {}, systemd {version_text}, stop timeout {} s, tmpfs {}",
        if contract.sysfile {
            "built by sysfile"
        } else {
            "not built by sysfile"
        },
        contract.stop_timeout,
        contract
            .tmpfs
            .iter()
            .map(TmpfsMount::docker_value)
            .collect::<Vec<_>>()
            .join(";")
    ));

    Ok(RunPlan {
        program: request.program.clone(),
        groups,
        image: request.image.clone(),
        after_image,
        warnings,
        notes,
        host,
    })
}

/// Why a tmpfs mount is there, for `--explain`.
fn tmpfs_reason(path: &str) -> String {
    match path {
        "/run" => "systemd needs /run to be a tmpfs before PID 1 starts; without CAP_SYS_ADMIN it cannot \
                   mount it itself (exec: Docker's tmpfs default is noexec; mode=755 instead of 1777)"
            .to_string(),
        "/run/lock" => "systemd mounts /run/lock itself only with CAP_SYS_ADMIN; otherwise boot fails with \
                        `Failed to mount tmpfs at /run/lock`"
            .to_string(),
        "/tmp" => "a fresh, memory-backed /tmp per container, as tmp.mount would give on a host".to_string(),
        _ => format!("the image asks for it in label {TMPFS_LABEL}"),
    }
}

#[cfg(test)]
mod tests;
