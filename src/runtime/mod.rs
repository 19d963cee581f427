//! `sysfile run`, `sysfile k8s` and `sysfile quadlet`: start or describe a sysfile image with the
//! engine flags its host needs, trusting no image label.
//!
//! The core is pure: [`labels::parse_labels`] validates the image labels (a map) into
//! [`ImageLabels`], [`plan_run`] turns them plus [`HostFacts`] into a [`RunPlan`] (argv, one reason
//! per flag group, warnings) or a [`Refusal`] by the rules in `rules.rs`, [`k8s::manifest`] prints
//! a Pod or Deployment and [`quadlet::unit`] a Podman Quadlet `.container` unit. `docker.rs` and
//! `podman.rs` hold each engine's flags, `host.rs` the host facts and their parsers, `shell.rs`
//! the quoting, `wait.rs` the wait for systemd to finish booting (`run --wait`) behind a trait.
//! Only `engine.rs` (the engine CLI through `std::process::Command`) and `command.rs` (the
//! subcommands) do I/O.

pub mod command;
pub mod docker;
pub mod engine;
pub mod host;
pub mod k8s;
pub mod labels;
pub mod podman;
pub mod quadlet;
pub mod rules;
pub mod shell;
pub mod wait;

use std::collections::BTreeMap;

use crate::contract::DEFAULT_ENGINE_STOP_TIMEOUT;
use labels::{BOOT_LABEL, SYSTEMD_VERSION_LABEL};

pub use command::{
    K8sArgs, QuadletArgs, RunArgs, WaitArgs, k8s_main, quadlet_main, run_main, wait_main,
};
pub use host::{CgroupVersion, HostFacts};
pub use labels::{ImageLabels, TmpfsMount, Warning, parse_labels};
pub use rules::V1CgroupMounts;

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
    /// `--force-cgroup-v1`: accepted for compatibility; it has no effect (systemd ≤ 257 boots on
    /// cgroup v1 without it, ≥ 258 cannot be forced).
    pub force_cgroup_v1: bool,
    /// `--cgroup-v1-mounts`: the cgroup mounts of a boot image on a cgroup v1 host.
    pub v1_cgroup_mounts: V1CgroupMounts,
}

impl Default for V1CgroupMounts {
    fn default() -> Self {
        rules::DEFAULT_V1_CGROUP_MOUNTS
    }
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
        for group in &self.groups {
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

/// Plans the run command for an image on a host. Pure: no I/O. Every label goes through
/// [`parse_labels`]; its warnings come back escaped in [`RunPlan::warnings`].
pub fn plan_run(
    labels: &Labels,
    facts: &HostFacts,
    request: &RunRequest,
) -> Result<RunPlan, Refusal> {
    let (image, label_warnings) = parse_labels(labels);
    let warnings: Vec<String> = label_warnings.iter().map(ToString::to_string).collect();
    let mut notes = Vec::new();
    if !image.boot {
        notes.push(format!(
            "the image has no {BOOT_LABEL}=true label (it was not built by sysfile), so it does not ask \
             to boot systemd: it gets \
             no cgroup write access, the default tmpfs mounts and a {DEFAULT_ENGINE_STOP_TIMEOUT} s stop \
             timeout; a systemd entrypoint will not boot without a writable cgroup"
        ));
    }

    // systemd version against the host: the rules table decides (the version label is
    // validated as a number; the `sysfile.systemd.cgroup` label is never read).
    let version_text = image
        .systemd_version
        .map_or_else(|| "unknown".to_string(), |v| v.to_string());
    let mut rule_line = None;
    match image.systemd_version {
        None => notes.push(format!(
            "the image has no usable {SYSTEMD_VERSION_LABEL} label; planning the ordinary flags \
             (systemd ≥ {} exits at once on a cgroup v1 host)",
            rules::HIGHEST_V1_BOOTED + 1
        )),
        Some(version) => match rules::boot_rule(facts.engine, facts.cgroup, version) {
            Some(rule) => {
                if let rules::Verdict::Refuse(reason) = rule.verdict {
                    return Err(Refusal(format!(
                        "systemd {version} cannot boot on this host, which mounts cgroup {} at /sys/fs/cgroup: \
                         {reason}; the highest systemd observed to boot on cgroup v1 is {}; use a cgroup v2 \
                         host or a base image with systemd ≤ {}",
                        facts.cgroup.as_str(),
                        rules::HIGHEST_V1_BOOTED,
                        rules::HIGHEST_V1_BOOTED
                    )));
                }
                rule_line = Some(format!(
                    "systemd {version} on cgroup {}: boots ({})",
                    facts.cgroup.as_str(),
                    rule.evidence
                ));
            }
            None => notes.push(format!(
                "no boot rule covers systemd {version} on cgroup {}; planning the ordinary flags",
                facts.cgroup.as_str()
            )),
        },
    }
    if request.force_cgroup_v1 {
        notes.push(format!(
            "--force-cgroup-v1 has no effect: systemd ≤ {} boots on cgroup v1 without it and \
             systemd ≥ {} cannot be forced",
            rules::HIGHEST_V1_BOOTED,
            rules::HIGHEST_V1_BOOTED + 1
        ));
    }

    let mut groups = match facts.engine {
        Engine::Docker => docker::groups(&image, facts, request, &mut notes)?,
        Engine::Podman => podman::groups(&image, facts, request, &mut notes),
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
    if facts.cgroup == CgroupVersion::V1 {
        host.push(format!(
            "cgroup v1 hierarchies: {}{}",
            if facts.cgroup_mounts.is_empty() {
                "unknown".to_string()
            } else {
                facts
                    .cgroup_mounts
                    .iter()
                    .map(|m| m.path.trim_start_matches("/sys/fs/cgroup/"))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
            if facts.hybrid() {
                " (hybrid: cgroup2 at /sys/fs/cgroup/unified)"
            } else {
                ""
            }
        ));
    }
    host.extend(rule_line);
    host.push(format!(
        "image: {}, systemd {version_text}, stop timeout {} s, tmpfs {}",
        if image.boot {
            "boots systemd (sysfile.systemd.boot=true)"
        } else {
            "does not ask to boot systemd"
        },
        image.stop_timeout,
        image
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
        _ => format!("the image asks for it in label {}", labels::TMPFS_LABEL),
    }
}

#[cfg(test)]
mod tests;
