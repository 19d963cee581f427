# shellcheck shell=bash
# Shared helpers for sysfile's scripts (sourced by scripts/demo, scripts/frontend-image,
# scripts/bench and scripts/setup-matrix; not run directly): logging and the Docker client to use.
# The flags that boot a sysfile image are spelled in one place only, the binary: scripts that
# start a container call `sysfile run` (or read `sysfile run --print`).

# Always Debian's client: a newer client may sit earlier on PATH (another client may be installed
# in /usr/local/bin on CI machines).
DOCKER=/usr/bin/docker

log() { printf '[%s] %s\n' "${LOG_TAG:-sysfile}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${LOG_TAG:-sysfile}" "$*" >&2; exit 1; }
