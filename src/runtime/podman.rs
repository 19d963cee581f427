//! Podman's flags for a systemd container: its systemd mode does the tmpfs and cgroup work itself.

use super::host::CgroupVersion;
use super::{FlagGroup, HostFacts, ImageLabels, RunRequest, tmpfs_reason};

/// The tmpfs mounts Podman's systemd mode provides itself.
pub const SYSTEMD_MODE_TMPFS: [&str; 4] = ["/run", "/run/lock", "/tmp", "/var/log/journal"];

/// The `podman run` argument groups (starting with `run`).
pub fn groups(
    image: &ImageLabels,
    facts: &HostFacts,
    request: &RunRequest,
    notes: &mut Vec<String>,
) -> Vec<FlagGroup> {
    let mut groups = vec![
        FlagGroup::new(["run"], "the engine's run command"),
        FlagGroup::new(
            ["-d"],
            "run in the background; the container ID is printed on stdout",
        ),
        FlagGroup::new(
            ["-t"],
            "a TTY gives the container a /dev/console, so systemd's output reaches `podman logs`",
        ),
        FlagGroup::new(
            ["--stop-timeout".to_string(), image.stop_timeout.to_string()],
            "`podman stop` waits this long after the stop signal before SIGKILL \
             (label sysfile.runtime.stop-timeout, default 30)",
        ),
    ];
    if let Some(name) = &request.name {
        groups.push(FlagGroup::new(
            ["--name".to_string(), name.clone()],
            "the container name (--name)",
        ));
    }
    if image.boot {
        groups.insert(
            3,
            FlagGroup::new(
            ["--systemd=always"],
            "Podman's systemd mode, whatever the entrypoint: it mounts tmpfs on /run, /run/lock, /tmp and \
             /var/log/journal, makes the cgroup mount writable and defaults the stop signal to SIGRTMIN+3, \
             so no --tmpfs or cgroup flags are needed",
            ),
        );
        for mount in image
            .tmpfs
            .iter()
            .filter(|m| !SYSTEMD_MODE_TMPFS.contains(&m.path.as_str()))
        {
            groups.push(FlagGroup::new(
                ["--tmpfs".to_string(), mount.docker_value()],
                tmpfs_reason(&mount.path),
            ));
        }
    } else {
        groups.insert(
            3,
            FlagGroup::new(
                ["--systemd=false"],
                "the image does not ask to boot systemd (no sysfile.systemd.boot=true), so Podman's systemd \
                 mode, which would make the cgroup mount writable when the command is systemd or init, is \
                 turned off; the tmpfs mounts are explicit",
            ),
        );
        for mount in &image.tmpfs {
            groups.push(FlagGroup::new(
                ["--tmpfs".to_string(), mount.docker_value()],
                tmpfs_reason(&mount.path),
            ));
        }
    }
    notes.push(match facts.cgroup {
        CgroupVersion::V1 => "Podman's cgroup v1 support is deprecated and removed after the 5.x releases; \
                              this recipe was observed to boot with Podman 4.3.1 on a cgroup v1 host"
            .to_string(),
        CgroupVersion::V2 => "the Podman recipe on cgroup v2 is not tested here".to_string(),
    });
    groups
}
