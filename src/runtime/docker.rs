//! Docker's flags for a systemd container, by cgroup version and Docker version, without `--privileged`.
//!
//! Provenance (measured by `tests/e2e_hosts.rs` and `tests/e2e_matrix.rs`): the default cgroup v1
//! recipe `systemd-rw` (only the `name=systemd` hierarchy read-write) boots systemd 252 and 257 on
//! Docker 20.10.24 and 26.1.5; the cgroup v2 fallback (`--cgroupns=host` plus a read-write bind)
//! boots 252, 257 and 262 on a simulated cgroup v2 host with Docker 26. The Docker ≥ 28 recipe is
//! not measured here.
//! Images that do not carry `sysfile.systemd.boot=true` get no cgroup flag at all.

use super::host::{CgroupVersion, SYSTEMD_HIERARCHY};
use super::rules::V1CgroupMounts;
use super::{FlagGroup, HostFacts, ImageLabels, Refusal, RunRequest, tmpfs_reason};

/// The oldest Docker `sysfile run` drives (`--cgroupns` needs API 1.41, Docker 20.10).
pub const MIN_VERSION: (u32, u32) = (20, 10);
/// The first Docker with `--security-opt writable-cgroups=true`.
pub const WRITABLE_CGROUPS_VERSION: (u32, u32) = (28, 0);

pub use crate::contract::CGROUP_BIND;

/// The `docker run` argument groups (starting with `run`), or a refusal for a Docker that is too old.
pub fn groups(
    image: &ImageLabels,
    facts: &HostFacts,
    request: &RunRequest,
    notes: &mut Vec<String>,
) -> Result<Vec<FlagGroup>, Refusal> {
    let version = facts.version();
    if let Some(v) = version {
        if v < MIN_VERSION {
            return Err(Refusal(format!(
                "Docker {} is older than 20.10, which `sysfile run` needs (`--cgroupns`, API 1.41); \
                 upgrade Docker or use Podman (--engine podman)",
                facts.engine_version.as_deref().unwrap_or("?")
            )));
        }
    } else {
        notes.push(format!(
            "could not read the Docker version from `{}`; assuming 20.10–27",
            facts.engine_version.as_deref().unwrap_or("")
        ));
    }

    let mut groups = vec![
        FlagGroup::new(["run"], "the engine's run command"),
        FlagGroup::new(
            ["-d"],
            "run in the background; the container ID is printed on stdout",
        ),
        FlagGroup::new(
            ["-t"],
            "a TTY gives the container a /dev/console; without it systemd's boot and shutdown output never reaches `docker logs`",
        ),
        FlagGroup::new(
            ["--init=false"],
            "no docker-init in front of systemd: systemd must be PID 1 (a daemon configured with \"init\": true would inject one)",
        ),
        FlagGroup::new(
            ["--stop-timeout".to_string(), image.stop_timeout.to_string()],
            "`docker stop` sends the image's stop signal (SIGRTMIN+3: systemd halts) and waits this long before SIGKILL; \
             Docker's default of 10 s is shorter than a systemd shutdown may take (label sysfile.runtime.stop-timeout, default 30)",
        ),
    ];
    if let Some(name) = &request.name {
        groups.push(FlagGroup::new(
            ["--name".to_string(), name.clone()],
            "the container name (--name)",
        ));
    }
    for mount in &image.tmpfs {
        groups.push(FlagGroup::new(
            ["--tmpfs".to_string(), mount.docker_value()],
            tmpfs_reason(&mount.path),
        ));
    }

    if !image.boot {
        notes.push(
            "no cgroup flag: the image does not ask to boot systemd, so the container keeps Docker's \
             read-only cgroup mount"
                .to_string(),
        );
        return Ok(groups);
    }
    match facts.cgroup {
        CgroupVersion::V1 => groups.extend(v1_cgroup_groups(request.v1_cgroup_mounts, facts)?),
        CgroupVersion::V2 if facts.user_namespaced() => notes.push(
            "no cgroup flag: with a rootless or userns-remapped daemon Docker mounts the container's cgroup2 \
             read-write, so the tmpfs mounts suffice (from Docker's sources; not measured here)"
                .to_string(),
        ),
        CgroupVersion::V2 => {
            if version.is_some_and(|v| v >= WRITABLE_CGROUPS_VERSION) {
                notes.push(
                    "Docker ≥ 28 also has --cgroupns=private --security-opt writable-cgroups=true, which would not \
                     expose the host's cgroup tree; sysfile plans only flags its host matrix has booted, and that \
                     one has not been measured yet"
                        .to_string(),
                );
            }
            groups.push(FlagGroup::new(
                ["--cgroupns=host"],
                "systemd needs the host's cgroup namespace (measured with Docker 26: --cgroupns=private alone \
                 makes systemd exit 255)",
            ));
            groups.push(FlagGroup::new(
                ["-v", CGROUP_BIND],
                "and a read-write bind of the host's cgroup2 tree so systemd can create its scopes (measured: \
                 systemd 252, 257 and 262 boot so with Docker 26); this exposes the whole host cgroup tree to \
                 the container (and confuses `docker top`)",
            ));
        }
    }
    Ok(groups)
}

/// The `--mount` value binding `path` onto itself, read-only or read-write.
fn bind(path: &str, readonly: bool) -> String {
    format!(
        "type=bind,src={path},dst={path}{}",
        if readonly { ",readonly" } else { "" }
    )
}

/// The cgroup flags of a boot image on a cgroup v1 host, by the chosen recipe.
pub fn v1_cgroup_groups(
    recipe: V1CgroupMounts,
    facts: &HostFacts,
) -> Result<Vec<FlagGroup>, Refusal> {
    match recipe {
        V1CgroupMounts::TreeRw => Ok(vec![FlagGroup::new(
            ["-v", CGROUP_BIND],
            "on cgroup v1 systemd needs a writable name=systemd hierarchy, and Docker mounts /sys/fs/cgroup read-only; \
             Docker ≥ 25 applies `:ro` binds recursively, so the classic `-v /sys/fs/cgroup:/sys/fs/cgroup:ro` fails there \
             (it works on Docker < 25), while `:rw` works on both (observed on 20.10.24 and 26.1.5). \
             It exposes the host's whole cgroup v1 tree read-write to the container (--cgroup-v1-mounts tree-rw; \
             the default systemd-rw binds only the name=systemd hierarchy)",
        )]),
        V1CgroupMounts::SystemdRw => {
            if !facts.has_systemd_hierarchy() {
                return Err(Refusal(format!(
                    "--cgroup-v1-mounts systemd-rw needs the host's name=systemd hierarchy at {SYSTEMD_HIERARCHY}, \
                     which this host does not mount; use --cgroup-v1-mounts tree-rw"
                )));
            }
            Ok(vec![FlagGroup::new(
                ["--mount".to_string(), bind(SYSTEMD_HIERARCHY, false)],
                "on cgroup v1 systemd creates init.scope and its slices in the name=systemd hierarchy, so that \
                 hierarchy alone is bound read-write; every controller hierarchy stays on Docker's own read-only \
                 cgroup mount, so the container cannot move a process out of its limits (measured: systemd 252 \
                 and 257 boot this way on Docker 20.10 and 26, and writing a controller's cgroup.procs fails)",
            )])
        }
    }
}
