//! The `run` and `k8s` subcommands: arguments, the I/O sequence around the pure core, and output.
//!
//! Exit codes: 0 done; 1 the host cannot boot the image (a [`Refusal`](super::Refusal)) or a bad
//! `--name`; 2 (returned as an error to `cli`) the engine is missing, its daemon unreachable, the
//! image not found, or `run` failed.

use anyhow::Result;

use super::k8s::{self, K8sRequest};
use super::{Engine, RunRequest, engine, plan_run};

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
    /// Boot a systemd 256/257 image on a cgroup v1 host anyway (adds SYSTEMD_CGROUP_ENABLE_LEGACY_FORCE=1).
    #[arg(long)]
    pub force_cgroup_v1: bool,
    /// Extra engine arguments, placed before the image.
    #[arg(last = true, value_name = "ENGINE_ARGS")]
    pub extra: Vec<String>,
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
    eprintln!("started {who}; systemd is booting");
    eprintln!("  wait:  {exe} exec {who} systemctl is-system-running --wait");
    eprintln!("  logs:  {exe} logs {who}    (services: {exe} exec {who} journalctl -b)");
    eprintln!("  stop:  {exe} stop {who}");
    Ok(0)
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
    };
    match k8s::manifest(&labels, &request) {
        Ok(yaml) => {
            print!("{yaml}");
            Ok(0)
        }
        Err(msg) => {
            eprintln!("error: {msg}");
            Ok(1)
        }
    }
}
