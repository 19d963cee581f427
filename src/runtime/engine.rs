//! The thin I/O layer: calls the engine CLI (`docker`/`podman`) and `stat` through `std::process::Command`.
//!
//! Every failure here (no engine, daemon unreachable, no such image) is an error the CLI reports
//! with exit code 2; the parsing of what these commands print lives in `host.rs`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use anyhow::{Result, anyhow, bail};

use super::host::{self, HostFacts};
use super::{Engine, Labels};

/// The engine program: Debian's `/usr/bin/docker` when it exists (its client matches the daemon),
/// else `docker` from `PATH`; `podman` from `PATH`.
pub fn program(engine: Engine) -> String {
    match engine {
        Engine::Docker if Path::new("/usr/bin/docker").exists() => "/usr/bin/docker".to_string(),
        Engine::Docker => "docker".to_string(),
        Engine::Podman => "podman".to_string(),
    }
}

fn output(program: &str, args: &[&str]) -> Result<Output> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow!("`{program}` not found; install the engine or choose another with --engine")
            }
            _ => anyhow!("cannot run `{program}`: {err}"),
        })
}

/// The engine's stderr, made safe for a terminal (it may echo image names or label values).
fn stderr_text(out: &Output) -> String {
    super::labels::terminal_text(String::from_utf8_lossy(&out.stderr).trim())
}

/// The engine's server version (`26.1.5+dfsg1`); fails when the daemon is unreachable.
pub fn server_version(engine: Engine, program: &str) -> Result<String> {
    let format = match engine {
        Engine::Docker => "{{.Server.Version}}",
        // Podman prints the local (or remote) version under Client; Server exists only for remote.
        Engine::Podman => "{{.Client.Version}}",
    };
    let out = output(program, &["version", "--format", format])?;
    let version = super::labels::terminal_text(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || version.is_empty() {
        bail!(
            "the {} daemon is unreachable (`{program} version` failed): {}",
            engine.display_name(),
            stderr_text(&out)
        );
    }
    Ok(version)
}

/// The image's labels (`{{json .Config.Labels}}`); fails when the image does not exist locally.
pub fn image_labels(program: &str, image: &str) -> Result<Labels> {
    let out = output(
        program,
        &[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            image,
        ],
    )?;
    if !out.status.success() {
        bail!(
            "image `{image}` not found (pull or build it first): {}",
            stderr_text(&out)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let labels: Option<Labels> = serde_json::from_str(text.trim()).map_err(|err| {
        anyhow!(
            "cannot read the labels of `{image}` ({err}): {}",
            super::labels::show(&text)
        )
    })?;
    Ok(labels.unwrap_or_default())
}

/// Detects the host: cgroup version (`stat -fc %T /sys/fs/cgroup`, else `/proc/self/mountinfo`),
/// the cgroup hierarchies below `/sys/fs/cgroup` (`/proc/self/mountinfo`) and, for Docker,
/// whether the daemon is rootless or userns-remapped.
pub fn detect_host(engine: Engine, program: &str, engine_version: String) -> Result<HostFacts> {
    let cgroup_fs = Command::new("stat")
        .args(["-fc", "%T", "/sys/fs/cgroup"])
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|fs| !fs.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/self/mountinfo")
                .ok()
                .and_then(|text| host::cgroup_fs_from_mountinfo(&text))
        })
        .ok_or_else(|| {
            anyhow!("cannot tell the cgroup version: nothing is mounted at /sys/fs/cgroup")
        })?;
    let (rootless, userns) = match engine {
        Engine::Docker => output(program, &["info", "--format", "{{json .SecurityOptions}}"])
            .ok()
            .filter(|out| out.status.success())
            .map_or((false, false), |out| {
                host::parse_security_options(&String::from_utf8_lossy(&out.stdout))
            }),
        Engine::Podman => (false, false),
    };
    let cgroup_mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map(|text| host::cgroup_mounts_from_mountinfo(&text))
        .unwrap_or_default();
    Ok(HostFacts {
        engine,
        cgroup: host::cgroup_from_fs_type(&cgroup_fs),
        cgroup_fs,
        engine_version: Some(engine_version),
        rootless,
        userns,
        cgroup_mounts,
    })
}

/// Runs `argv` (program first) and returns what it printed on stdout (the container ID for `run -d`).
/// The engine's stderr passes through to ours.
pub fn run(argv: &[String]) -> Result<String> {
    let (program, args) = argv.split_first().ok_or_else(|| anyhow!("empty command"))?;
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|err| anyhow!("cannot run `{program}`: {err}"))?;
    if !out.status.success() {
        bail!(
            "`{program} run` failed with {}",
            out.status
                .code()
                .map_or_else(|| "a signal".to_string(), |c| format!("exit code {c}"))
        );
    }
    Ok(super::labels::terminal_text(
        String::from_utf8_lossy(&out.stdout).trim(),
    ))
}
