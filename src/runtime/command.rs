//! The `run`, `k8s` and `quadlet` subcommands: arguments, the I/O sequence around the pure core, and output.
//!
//! Exit codes: 0 done; 1 the host cannot boot the image (a [`Refusal`](super::Refusal)), a bad
//! `--name`, image reference or option; 2 (returned as an error to `cli`) the engine is missing,
//! its daemon unreachable, the image not found, `run` failed or the unit could not be written;
//! 3 (`run --wait`, `wait`) systemd finished booting in a state other than `running` (e.g.
//! `degraded`), the container stopped, or systemd was not up within the timeout.
//! Label warnings reach stderr only through [`Warning`](super::Warning)'s escaped text.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::k8s::{self, K8sRequest, KubeVersion, Userns};
use super::quadlet::{self, QuadletRequest};
use super::rules::{DEFAULT_V1_CGROUP_MOUNTS, V1CgroupMounts};
use super::{Engine, RunRequest, Warning, engine, plan_run, wait};

/// `sysfile run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The image to start (must exist in the engine's local store).
    pub image: String,
    /// The engine whose CLI starts the container.
    #[arg(long, value_enum, default_value_t = Engine::Docker)]
    pub engine: Engine,
    /// The container name.
    #[arg(long)]
    pub name: Option<String>,
    /// Print the command as one shell-quoted line instead of running it.
    #[arg(long, conflicts_with = "explain")]
    pub print: bool,
    /// Print the command, why each flag is there and the detected host, instead of running it.
    #[arg(long)]
    pub explain: bool,
    /// No effect, kept for compatibility: systemd ≤ 257 boots on cgroup v1 without it, ≥ 258 cannot.
    #[arg(long)]
    pub force_cgroup_v1: bool,
    /// The cgroup mounts of a boot image on a cgroup v1 host (Docker): the whole tree read-write,
    /// or read-only with only the name=systemd (and unified) hierarchies read-write.
    #[arg(long, value_enum, default_value_t = DEFAULT_V1_CGROUP_MOUNTS)]
    pub cgroup_v1_mounts: V1CgroupMounts,
    /// After starting, wait until systemd has finished booting (default 90 s; e.g. --wait=2m).
    /// Exit 0 when it is `running`; exit 3 when it is `degraded` (or another state), the
    /// container stopped, or it was not up in time, after printing the failed units and their
    /// last journal lines to stderr (exit 1 stays "the host cannot boot the image", 2 "an engine
    /// or image problem"). The container ID still goes to stdout.
    #[arg(
        long,
        value_name = "TIMEOUT",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "90",
        value_parser = wait::parse_timeout,
        conflicts_with_all = ["print", "explain"]
    )]
    pub wait: Option<Duration>,
    /// Extra engine arguments, placed before the image.
    #[arg(last = true, value_name = "ENGINE_ARGS")]
    pub extra: Vec<String>,
}

/// Waiting for an already started container (what `sysfile run --wait` does after `run`).
#[derive(Debug, clap::Args)]
pub struct WaitArgs {
    /// The container's name or ID.
    pub container: String,
    /// The engine that runs it.
    #[arg(long, value_enum, default_value_t = Engine::Docker)]
    pub engine: Engine,
    /// How long to wait (whole seconds or minutes: 90, 90s, 2m; at most 1 h).
    #[arg(long, default_value = "90", value_parser = wait::parse_timeout)]
    pub timeout: Duration,
}

/// `sysfile k8s`.
#[derive(Debug, clap::Args)]
pub struct K8sArgs {
    /// The image (its labels are read through the engine).
    pub image: String,
    /// The engine to read the labels with.
    #[arg(long, value_enum, default_value_t = Engine::Docker)]
    pub engine: Engine,
    /// The Pod/Deployment and container name (default: the image's last path component without tag).
    #[arg(long)]
    pub name: Option<String>,
    /// Print a Deployment instead of a Pod.
    #[arg(long)]
    pub deployment: bool,
    /// Replicas of the Deployment.
    #[arg(long, default_value_t = 1, requires = "deployment")]
    pub replicas: u32,
    /// The Kubernetes version to write for (decides which fields are written).
    #[arg(long, default_value_t = k8s::DEFAULT_KUBE_VERSION, value_parser = parse_kube_version)]
    pub kube_version: KubeVersion,
    /// Ask for a user namespace (`hostUsers: false`): auto = from Kubernetes 1.33, where it is on by default.
    #[arg(long, value_enum, default_value_t = Userns::Auto)]
    pub userns: Userns,
    /// Write `lifecycle.stopSignal: SIGRTMIN+3` (Kubernetes ≥ 1.33 with the alpha ContainerStopSignals gate).
    #[arg(long)]
    pub stop_signal: bool,
}

fn parse_kube_version(text: &str) -> Result<KubeVersion, String> {
    text.parse()
}

/// `sysfile quadlet`.
#[derive(Debug, clap::Args)]
pub struct QuadletArgs {
    /// The image (its labels are read through the engine).
    pub image: String,
    /// The engine to read the labels with.
    #[arg(long, value_enum, default_value_t = Engine::Podman)]
    pub engine: Engine,
    /// The unit name: NAME.container, NAME.service (default: the image's last path component without tag).
    #[arg(long)]
    pub name: Option<String>,
    /// Write NAME.container into this directory instead of printing it.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
}

fn print_warnings(warnings: &[Warning]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// Runs `sysfile run`; `Err` means exit code 2.
pub fn run_main(args: &RunArgs) -> Result<i32> {
    let program = engine::program(args.engine);
    let version = engine::server_version(args.engine, &program)?;
    let labels = engine::image_labels(&program, &args.image)?;
    let facts = engine::detect_host(args.engine, &program, version)?;
    let request = RunRequest {
        program: program.clone(),
        image: args.image.clone(),
        name: args.name.clone(),
        extra_args: args.extra.clone(),
        force_cgroup_v1: args.force_cgroup_v1,
        v1_cgroup_mounts: args.cgroup_v1_mounts,
    };
    let plan = match plan_run(&labels, &facts, &request) {
        Ok(plan) => plan,
        Err(refusal) => {
            eprintln!("error: {refusal}");
            return Ok(1);
        }
    };
    if args.explain {
        print!("{}", plan.explain());
        return Ok(0);
    }
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    for n in &plan.notes {
        eprintln!("note: {n}");
    }
    if args.print {
        println!("{}", plan.command_line());
        return Ok(0);
    }
    let id = engine::run(&plan.argv())?;
    println!("{id}");
    let who = args
        .name
        .clone()
        .unwrap_or_else(|| id.chars().take(12).collect());
    let exe = if args.engine == Engine::Docker {
        "docker"
    } else {
        "podman"
    };
    let code = match args.wait {
        Some(timeout) => {
            eprintln!(
                "started {who}; waiting up to {} s for systemd to finish booting",
                timeout.as_secs()
            );
            let probe = engine::EngineContainer {
                program: program.clone(),
                container: id.clone(),
            };
            let (code, report) = wait::wait_and_report(&probe, timeout);
            eprint!("{}", report.replacen(&id, &who, 1));
            code
        }
        None => {
            eprintln!("started {who}; systemd is booting");
            eprintln!("  wait:  {}", wait::shell_hint(exe, &who));
            0
        }
    };
    eprintln!("  logs:  {exe} logs {who}    (services: {exe} exec {who} journalctl -b)");
    eprintln!("  stop:  {exe} stop {who}");
    Ok(code)
}

/// Waits for systemd in a started container, as `sysfile run --wait` does; `Err` means exit code 2.
pub fn wait_main(args: &WaitArgs) -> Result<i32> {
    let program = engine::program(args.engine);
    engine::server_version(args.engine, &program)?;
    let probe = engine::EngineContainer {
        program,
        container: args.container.clone(),
    };
    let (code, report) = wait::wait_and_report(&probe, args.timeout);
    eprint!("{report}");
    Ok(code)
}

/// Runs `sysfile k8s`; `Err` means exit code 2.
pub fn k8s_main(args: &K8sArgs) -> Result<i32> {
    if let Some(name) = &args.name {
        if let Err(msg) = k8s::check_name(name) {
            eprintln!("error: {msg}");
            return Ok(1);
        }
    }
    let program = engine::program(args.engine);
    engine::server_version(args.engine, &program)?;
    let labels = engine::image_labels(&program, &args.image)?;
    let request = K8sRequest {
        image: args.image.clone(),
        name: args.name.clone(),
        deployment: args.deployment,
        replicas: args.replicas,
        kube_version: args.kube_version,
        userns: args.userns,
        stop_signal: args.stop_signal,
    };
    match k8s::manifest(&labels, &request) {
        Ok((yaml, warnings)) => {
            print_warnings(&warnings);
            print!("{yaml}");
            Ok(0)
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            Ok(1)
        }
    }
}

/// Runs `sysfile quadlet`; `Err` means exit code 2.
pub fn quadlet_main(args: &QuadletArgs) -> Result<i32> {
    let request = QuadletRequest {
        image: args.image.clone(),
        name: args.name.clone(),
    };
    // The request is checked before the engine is asked, so a bad name or reference fails fast.
    if let Err(msg) = quadlet::unit(&super::Labels::new(), &request) {
        eprintln!("error: {msg}");
        return Ok(1);
    }
    let program = engine::program(args.engine);
    engine::server_version(args.engine, &program)?;
    let labels = engine::image_labels(&program, &args.image)?;
    let unit = match quadlet::unit(&labels, &request) {
        Ok(unit) => unit,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Ok(1);
        }
    };
    print_warnings(&unit.warnings);
    match &args.output_dir {
        None => print!("{}", unit.text),
        Some(dir) => {
            let path = dir.join(&unit.file_name);
            std::fs::write(&path, &unit.text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(0)
}
