# shellcheck shell=bash
# Shared helpers for sysfile's scripts (sourced by the others; not run directly): logging, the
# Docker client to use, and the build-cache caps.
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
