# shellcheck shell=bash
# Shared helpers for sysfile's scripts (sourced by scripts/demo, scripts/frontend-image; not run
# directly): logging, the Docker client to use, and the engine flags that boot a sysfile image
# under the systemd runtime contract (systemd-contract.md §5, docker-offline.md §8).
#
# KEEP IN AGREEMENT: tests/e2e/harness.rs (`contract_flags_for`) computes the same flags in Rust for
# the e2e tests. The e2e test `contract_flags_agree_with_scripts_lib` runs `contract_flags` below
# for every (cgroup fs type, Docker major) case and compares it with the Rust function; change both.

# Always Debian's client: a newer client may sit earlier on PATH (docker-offline.md §3.2).
DOCKER=/usr/bin/docker

log() { printf '[%s] %s\n' "${LOG_TAG:-sysfile}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${LOG_TAG:-sysfile}" "$*" >&2; exit 1; }

# The host's cgroup file system type: cgroup2fs (v2) or tmpfs (v1 / hybrid).
cgroup_fstype() { stat -fc %T /sys/fs/cgroup; }

# The Docker daemon's major version (26 for 26.1.5+dfsg1).
docker_major() {
  local v
  v=$("$DOCKER" version --format '{{.Server.Version}}') || return 1
  echo "${v%%.*}"
}

# contract_flags [FSTYPE [DOCKER_MAJOR]]
# Prints the `docker run` flags (one word per line; add -d and the image yourself) that boot a
# systemd image unprivileged on this host. Without arguments the host is probed.
#   every host:             -t --init=false --tmpfs /run:exec,mode=755 --tmpfs /run/lock --tmpfs /tmp
#   cgroup v1 / hybrid:     -v /sys/fs/cgroup:/sys/fs/cgroup:rw   (observed on Docker 20.10 and 26;
#                           `:ro` fails on Docker >= 25 because it became recursive)
#   cgroup v2, Docker >= 28: --cgroupns=private --security-opt writable-cgroups=true (not verified here)
#   cgroup v2, Docker < 28:  --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw (not verified here;
#                           exposes the host's cgroup tree; the same fallback as `sysfile run`)
#   every host:             --stop-timeout 30
contract_flags() {
  local fstype=${1:-} major=${2:-}
  [ -n "$fstype" ] || fstype=$(cgroup_fstype)
  [ -n "$major" ] || major=$(docker_major) || return 1
  printf '%s\n' -t --init=false --tmpfs /run:exec,mode=755 --tmpfs /run/lock --tmpfs /tmp
  if [ "$fstype" = cgroup2fs ]; then
    if [ "$major" -ge 28 ]; then
      printf '%s\n' --cgroupns=private --security-opt writable-cgroups=true
    else
      printf '%s\n' --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw
    fi
  else
    printf '%s\n' -v /sys/fs/cgroup:/sys/fs/cgroup:rw
  fi
  printf '%s\n' --stop-timeout 30
}

# The exit code `docker stop` should leave with the flags above: 0, or 130 when they include
# --privileged (CAP_SYS_BOOT turns systemd's final reboot() into SIGINT; systemd-contract.md §10).
contract_stop_exit_code() {
  if contract_flags "$@" | grep -qx -- --privileged; then echo 130; else echo 0; fi
}
