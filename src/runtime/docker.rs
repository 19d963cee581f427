//! Docker's flags for a systemd container, by cgroup version and Docker version, without `--privileged`.
//!
//! The recipes and their provenance are in the systemd contract (§5.2, §5.3): the cgroup v1 one is
//! observed on Docker 20.10.24 and 26.1.5; the cgroup v2 ones come from sources and are not tested here.

use super::host::CgroupVersion;
use super::{Contract, FlagGroup, HostFacts, Refusal, RunRequest, tmpfs_reason};

/// The oldest Docker `sysfile run` drives (`--cgroupns` needs API 1.41, Docker 20.10).
pub const MIN_VERSION: (u32, u32) = (20, 10);
/// The first Docker with `--security-opt writable-cgroups=true`.
pub const WRITABLE_CGROUPS_VERSION: (u32, u32) = (28, 0);

/// The bind that makes the host's cgroup tree writable in the container.
pub const CGROUP_BIND: &str = "/sys/fs/cgroup:/sys/fs/cgroup:rw";

/// The `docker run` argument groups (starting with `run`), or a refusal for a Docker that is too old.
pub fn groups(
    contract: &Contract,
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
            [
                "--stop-timeout".to_string(),
                contract.stop_timeout.to_string(),
            ],
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
    for mount in &contract.tmpfs {
        groups.push(FlagGroup::new(
            ["--tmpfs".to_string(), mount.docker_value()],
            tmpfs_reason(&mount.path),
        ));
    }

    match facts.cgroup {
        CgroupVersion::V1 => groups.push(FlagGroup::new(
            ["-v", CGROUP_BIND],
            "on cgroup v1 systemd needs a writable name=systemd hierarchy, and Docker mounts /sys/fs/cgroup read-only; \
             Docker ≥ 25 applies `:ro` binds recursively, so the classic `-v /sys/fs/cgroup:/sys/fs/cgroup:ro` fails there \
             (it works on Docker < 25), while `:rw` works on both (observed on 20.10.24 and 26.1.5). \
             It exposes the host's cgroup tree read-write to the container: acceptable on a throw-away host, not isolation",
        )),
        CgroupVersion::V2 if facts.user_namespaced() => notes.push(
            "no cgroup flag: with a rootless or userns-remapped daemon Docker mounts the container's cgroup2 \
             read-write, so the tmpfs mounts suffice (from Docker's sources; cgroup v2 recipes are not tested here)"
                .to_string(),
        ),
        CgroupVersion::V2 if version.is_some_and(|v| v >= WRITABLE_CGROUPS_VERSION) => {
            groups.push(FlagGroup::new(
                ["--cgroupns=private"],
                "a private cgroup namespace: systemd sees its own subtree as the root of /sys/fs/cgroup",
            ));
            groups.push(FlagGroup::new(
                ["--security-opt", "writable-cgroups=true"],
                "Docker ≥ 28 mounts that subtree writable without --privileged, so systemd can create init.scope and \
                 its slices (cgroup v2 recipes are not tested here)",
            ));
        }
        CgroupVersion::V2 => {
            groups.push(FlagGroup::new(
                ["--cgroupns=host"],
                "Docker 20.10–27 has no writable-cgroups option; the documented fallback shares the host's cgroup namespace",
            ));
            groups.push(FlagGroup::new(
                ["-v", CGROUP_BIND],
                "and binds the host's cgroup2 tree read-write so systemd can create its scopes; this exposes the whole host \
                 cgroup tree to the container (and confuses `docker top`); Docker ≥ 28 removes the need with \
                 --security-opt writable-cgroups=true (cgroup v2 recipes are not tested here)",
            ));
        }
    }
    Ok(groups)
}
