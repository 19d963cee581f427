//! The image's runtime contract as labels: every `sysfile.*` key, spelled once.
//!
//! `image` writes these labels and `runtime::labels` reads them back, both through the
//! constants below, so a key cannot drift between the writer and the reader. The values that
//! both sides need (the default tmpfs set, which cgroup versions a systemd version boots on)
//! live here too. Pure data: this module imports nothing from the crate.

use std::time::Duration;

/// sysfile's version, as the image was built by it.
pub const VERSION_LABEL: &str = "sysfile.version";
/// The label that marks an image built by sysfile (`true`).
pub const BOOT_LABEL: &str = "sysfile.systemd.boot";
/// The default target the image boots to.
pub const TARGET_LABEL: &str = "sysfile.systemd.target";
/// The `container=` value systemd sees.
pub const CONTAINER_LABEL: &str = "sysfile.systemd.container";
/// The units the build enabled, comma-separated.
pub const UNITS_ENABLED_LABEL: &str = "sysfile.systemd.units.enabled";
/// The units the build disabled, comma-separated.
pub const UNITS_DISABLED_LABEL: &str = "sysfile.systemd.units.disabled";
/// The units the build masked, comma-separated.
pub const UNITS_MASKED_LABEL: &str = "sysfile.systemd.units.masked";
/// systemd's major version in the image.
pub const SYSTEMD_VERSION_LABEL: &str = "sysfile.systemd.version";
/// The cgroup versions the image's systemd boots on ([`cgroup_support`]).
pub const CGROUP_LABEL: &str = "sysfile.systemd.cgroup";
/// `;`-separated `--tmpfs` entries.
pub const TMPFS_LABEL: &str = "sysfile.runtime.tmpfs";
/// Whether the container needs a TTY (`required`).
pub const TTY_LABEL: &str = "sysfile.runtime.tty";
/// Seconds to wait after the stop signal.
pub const STOP_TIMEOUT_LABEL: &str = "sysfile.runtime.stop-timeout";
/// Docker flags for humans to read (never read back by `sysfile run`).
pub const DOCKER_LABEL: &str = "sysfile.runtime.docker";
/// The health command for engines that ignore `Healthcheck`.
pub const HEALTH_LABEL: &str = "sysfile.health.cmd";

/// Every `sysfile.*` label key, in the order above.
pub const ALL_LABELS: [&str; 14] = [
    VERSION_LABEL,
    BOOT_LABEL,
    TARGET_LABEL,
    CONTAINER_LABEL,
    UNITS_ENABLED_LABEL,
    UNITS_DISABLED_LABEL,
    UNITS_MASKED_LABEL,
    SYSTEMD_VERSION_LABEL,
    CGROUP_LABEL,
    TMPFS_LABEL,
    TTY_LABEL,
    STOP_TIMEOUT_LABEL,
    DOCKER_LABEL,
    HEALTH_LABEL,
];

/// The tmpfs mounts the engine must provide, in the [`TMPFS_LABEL`] format.
pub const RUNTIME_TMPFS: &str = "/run:exec,mode=755;/run/lock;/tmp";

/// The bind that makes the host's cgroup tree writable in the container (`docker run -v`).
pub const CGROUP_BIND: &str = "/sys/fs/cgroup:/sys/fs/cgroup:rw";

/// The [`DOCKER_LABEL`] value: Docker flags that boot the image on both cgroup versions with
/// Docker ≥ 20.10, without `--privileged` (measured by the host matrix). They bind the host's
/// whole cgroup tree read-write; `sysfile run` picks narrower flags for the host it runs on,
/// systemd's `DefaultTimeoutStopSec=` in an image whose spec sets no `stop_timeout`.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// The seconds an engine should wait for a clean shutdown: systemd's stop timeout plus a margin.
pub const fn engine_stop_timeout(stop: Duration) -> u64 {
    stop.as_secs() + if stop.subsec_nanos() > 0 { 1 } else { 0 } + 10
}

/// The engine's stop timeout of an image whose spec sets no `stop_timeout` (30 s).
pub const DEFAULT_ENGINE_STOP_TIMEOUT: u32 = engine_stop_timeout(DEFAULT_STOP_TIMEOUT) as u32;

/// from the same [`CGROUP_BIND`] and [`RUNTIME_TMPFS`].
pub fn docker_flags(stop_timeout: u64) -> String {
    let tmpfs: Vec<String> = RUNTIME_TMPFS
        .split(';')
        .map(|mount| format!("--tmpfs {mount}"))
        .collect();
    format!(
        "-t --init=false --cgroupns=host -v {CGROUP_BIND} {} --stop-timeout {stop_timeout}",
        tmpfs.join(" ")
    )
}

/// Which cgroup versions can boot an image with this systemd ([`CGROUP_LABEL`]): up to
/// 257 both (the host matrix boots 252 and 257 on cgroup v1 without any forcing), from 258 only v2
/// (systemd 258 removed cgroup v1; 262 exits 255 on a v1 host).
pub fn cgroup_support(systemd_version: u32) -> &'static str {
    match systemd_version {
        0..=257 => "v1,v2",
        _ => "v2",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_namespaced() {
        let mut keys = ALL_LABELS.to_vec();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), ALL_LABELS.len());
        assert!(ALL_LABELS.iter().all(|k| k.starts_with("sysfile.")));
    }

    #[test]
    fn the_docker_label_is_the_recipe_it_always_was() {
        assert_eq!(
            docker_flags(30),
            "-t --init=false --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
             --tmpfs /run:exec,mode=755 --tmpfs /run/lock --tmpfs /tmp --stop-timeout 30"
        );
    }

    #[test]
    fn cgroup_v1_ends_with_systemd_258() {
        assert_eq!(cgroup_support(252), "v1,v2");
        assert_eq!(cgroup_support(257), "v1,v2");
        assert_eq!(cgroup_support(258), "v2");
    }
}
