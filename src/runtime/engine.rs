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

/// A started container, probed through the engine CLI (`docker`/`podman exec`, `inspect`, `logs`)
/// for [`wait`](super::wait). The engine CLI inherits the environment, so `DOCKER_HOST` and
/// `CONTAINER_HOST` apply.
pub struct EngineContainer {
    /// The engine program.
    pub program: String,
    /// The container's name or ID.
    pub container: String,
}

impl EngineContainer {
    /// Runs `program ARGS…` with stdin closed, killed after `limit`.
    fn call(&self, args: &[&str], limit: std::time::Duration) -> super::wait::ExecOutput {
        use std::io::Read as _;
        use std::time::Instant;
        let spawned = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let Ok(mut child) = spawned else {
            return super::wait::ExecOutput::default();
        };
        // Both pipes are drained by threads so a chatty command cannot block on a full pipe.
        let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut pipe) = pipe {
                    // At most 1 MiB is kept.
                    let _ = pipe.by_ref().take(1 << 20).read_to_end(&mut buf);
                    let _ = std::io::copy(&mut pipe, &mut std::io::sink());
                }
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
        let deadline = Instant::now() + limit;
        let code = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status.code(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        super::wait::ExecOutput {
            code,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        }
    }
}

impl super::wait::Probe for EngineContainer {
    fn name(&self) -> String {
        self.container.clone()
    }

    fn exec(&self, args: &[&str], limit: std::time::Duration) -> super::wait::ExecOutput {
        let mut full = vec!["exec", self.container.as_str()];
        full.extend_from_slice(args);
        self.call(&full, limit)
    }

    fn is_running(&self) -> Option<bool> {
        let out = self.call(
            &["inspect", "--format", "{{.State.Running}}", &self.container],
            std::time::Duration::from_secs(20),
        );
        match (out.code, out.stdout.trim()) {
            (Some(0), "true") => Some(true),
            (Some(0), "false") => Some(false),
            // `inspect` fails once the container is gone (e.g. started with `--rm`).
            (Some(_), _) if out.stderr.contains("o such") => Some(false),
            _ => None,
        }
    }

    fn logs_tail(&self, lines: usize) -> String {
        let out = self.call(
            &["logs", "--tail", &lines.to_string(), &self.container],
            std::time::Duration::from_secs(20),
        );
        format!("{}{}", out.stdout, out.stderr)
    }
}

#[cfg(test)]
mod tests {
    use super::super::wait::{self, Probe as _};
    use super::*;
    use std::time::{Duration, Instant};

    /// A fake engine CLI: a shell script that logs its arguments and answers
    /// `is-system-running` with "no bus" twice, then `running`.
    fn fake_engine(dir: &Path) -> String {
        let path = dir.join("fake-engine");
        let script = r#"#!/bin/sh
dir=$(dirname "$0")
echo "$*" >> "$dir/calls"
case "$*" in
  "exec box systemctl is-system-running --wait")
    n=$(cat "$dir/count" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$dir/count"
    if [ "$n" -le 2 ]; then echo "Failed to connect to bus: No such file or directory" >&2; exit 1; fi
    echo running ;;
  "exec box sleep-forever") exec sleep 30 ;;
  "inspect --format {{.State.Running}} box") echo true ;;
  "inspect --format {{.State.Running}} gone") echo "Error: No such object: gone" >&2; exit 1 ;;
  *) exit 1 ;;
esac
"#;
        std::fs::write(&path, script).unwrap();
        std::process::Command::new("chmod")
            .arg("755")
            .arg(&path)
            .status()
            .unwrap();
        path.to_str().unwrap().to_string()
    }

    #[test]
    fn the_engine_cli_is_retried_until_the_bus_is_up() {
        let dir = tempfile::tempdir().unwrap();
        let probe = EngineContainer {
            program: fake_engine(dir.path()),
            container: "box".into(),
        };
        let (code, text) = wait::wait_and_report(&probe, Duration::from_secs(20));
        assert_eq!(code, 0, "{text}");
        let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
        assert_eq!(
            calls
                .lines()
                .filter(|l| *l == "exec box systemctl is-system-running --wait")
                .count(),
            3,
            "{calls}"
        );
        assert_eq!(probe.is_running(), Some(true));
        let gone = EngineContainer {
            program: probe.program.clone(),
            container: "gone".into(),
        };
        assert_eq!(gone.is_running(), Some(false));
    }

    #[test]
    fn a_hanging_exec_is_cut_at_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let probe = EngineContainer {
            program: fake_engine(dir.path()),
            container: "box".into(),
        };
        let started = Instant::now();
        let out = probe.exec(&["sleep-forever"], Duration::from_millis(300));
        assert_eq!(out.code, None);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_missing_engine_is_no_answer() {
        let probe = EngineContainer {
            program: "/nonexistent/engine".into(),
            container: "box".into(),
        };
        assert_eq!(
            probe.exec(&["true"], Duration::from_secs(1)),
            wait::ExecOutput::default()
        );
        assert_eq!(probe.is_running(), None);
    }
}
