# shellcheck shell=bash
# Shared helpers for sysfile's scripts (sourced by the others; not run directly): logging, the
# Docker client to use, the build-cache caps, and the size a buildkitd state may reach.
# The flags that boot a sysfile image are spelled in one place only, the binary: scripts that
# start a container call `sysfile run` (or read `sysfile run --print`).

# Always Debian's client: a newer client may sit earlier on PATH (another client may be installed
# in /usr/local/bin on CI machines).
DOCKER=/usr/bin/docker

log() { printf '[%s] %s\n' "${LOG_TAG:-sysfile}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${LOG_TAG:-sysfile}" "$*" >&2; exit 1; }

# Build-cache caps. Every daemon the scripts start has its builder's garbage collection capped
# (BuildKit's default caps grow with the disk's size: on these large shared disks, left alone, the
# caches reached 19 GB in Docker 26 and 24 GB in buildkitd and the disk filled), and
# `scripts/setup-matrix reclaim` prunes each to its cap before and after the tests, which also
# bounds a daemon started earlier without the cap.
# SYSFILE_BUILD_CACHE_CAP_GB: the main Docker's and the buildkitds' (default 6); the other
# daemons hold less (2).
BUILD_CACHE_CAP_GB=${SYSFILE_BUILD_CACHE_CAP_GB:-6}
SMALL_BUILD_CACHE_CAP_GB=2
BUILD_CACHE_CAP="${BUILD_CACHE_CAP_GB}GB"
SMALL_BUILD_CACHE_CAP="${SMALL_BUILD_CACHE_CAP_GB}GB"

# docker_daemon_config CAP: a dockerd configuration file whose builder cache is capped at CAP.
docker_daemon_config() {
  printf '{\n  "builder": {"gc": {"enabled": true, "defaultKeepStorage": "%s"}}\n}\n' "$1"
}

# reset_bloated_buildkit_state ROOT: a stopped buildkitd's root directory, emptied when one of its
# databases passed $BK_STATE_DB_CAP_MB. buildkitd's image store keeps every image a build names
# (the tests and scripts/bench name one per build; no client call removes them), and its
# cache-key and metadata databases keep growing across runs: at ~185 MB each, every build on
# buildkitd a spent ~350 ms looking up its cache (a warm no-op of bench/webapp took 600 ms
# instead of 200 ms). The root holds only that cache, those images and their snapshots. (Not for
# dockerd: its builder's snapshots live in its graph driver's directory, outside that state.)
BK_STATE_DB_CAP_MB=64
reset_bloated_buildkit_state() {
  local root=$1 big mounts
  [ -d "$root" ] || return 0
  big=$(find "$root" -maxdepth 3 -name '*.db' -size +"${BK_STATE_DB_CAP_MB}"M -printf '%p (%s bytes) ' 2>/dev/null)
  [ -n "$big" ] || return 0
  log "=== $root: $big over ${BK_STATE_DB_CAP_MB} MB: starting this buildkitd from an empty state (its build cache and image store are lost) ==="
  # Mounts a killed daemon left behind go first: rm -rf would delete what they show.
  findmnt -rn -o TARGET | awk -v r="$root/" 'index($0, r) == 1' | sort -r \
    | while IFS= read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
  mounts=$(findmnt -rn -o TARGET | awk -v r="$root/" 'index($0, r) == 1' | wc -l)
  if [ "$mounts" -gt 0 ]; then
    log "=== $root still has $mounts mounts: left as it is ==="
    return 0
  fi
  rm -rf "$root"
}
