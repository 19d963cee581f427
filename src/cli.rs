//! The command line: `check`, `llb`, `frontend`, `run`, `k8s`, `quadlet` and the helper commands, and their exit codes.
//!
//! The CLI reads files and writes to stdout/stderr; everything it calls below
//! `spec`, `plan`, `lower` and `image` is pure.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use prost::Message as _;

use crate::compile;
use crate::diag;
use crate::distro::Family;
use crate::lower::LowerOptions;
use crate::network::Network;
use crate::spec::{self, LoadOptions};

#[derive(Debug, Parser)]
#[command(
    name = "sysfile",
    version,
    about = "Build system containers (PID 1 = systemd) from a declarative Sysfile"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate a Sysfile and print its diagnostics (exit 1 on errors).
    Check(SpecArgs),
    /// Compile a Sysfile to a serialized LLB definition on stdout (for `buildctl build`).
    Llb(LlbArgs),
    /// Run as a BuildKit gateway frontend (the frontend image's entrypoint).
    Frontend,
    /// Print the frontend caps the image label must declare.
    FrontendCaps,
    /// Print the JSON Schema of the spec (for editors' TOML extensions).
    Schema,
    /// Print the documentation of a lint rule (code or name) or a diagnostic code.
    Explain {
        /// `unpinned-base-image`, `UnpinnedBaseImage`, `unknown-key`, …
        name: String,
    },
    /// Start a sysfile image with the engine flags this host needs (exit 1: the host cannot boot it).
    Run(crate::runtime::RunArgs),
    /// Print a Kubernetes Pod or Deployment manifest for a sysfile image.
    K8s(crate::runtime::K8sArgs),
    /// Print a Podman Quadlet `.container` unit for a sysfile image.
    Quadlet(crate::runtime::QuadletArgs),
    /// Wait until systemd in a started container is running (exit 3 otherwise, with the failed
    /// units and their journal).
    Wait(crate::runtime::WaitArgs),
}

#[derive(Debug, clap::Args)]
struct SpecArgs {
    /// The spec file.
    #[arg(short = 'f', long = "file", default_value = "Sysfile")]
    file: PathBuf,
    /// The build context (where `src`, `authorized_keys` and includes are read); default: the spec's directory.
    #[arg(long)]
    context: Option<PathBuf>,
    /// Set a declared build argument (repeatable).
    #[arg(long = "build-arg", value_name = "NAME=VALUE", value_parser = parse_key_value)]
    build_args: Vec<(String, String)>,
}

#[derive(Debug, clap::Args)]
struct LlbArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// The base image's distribution family or ID (debian, ubuntu, fedora, rocky, opensuse, arch, …).
    #[arg(long)]
    distro: Option<String>,
    /// Target platform, e.g. linux/amd64.
    #[arg(long)]
    platform: Option<String>,
    /// Network mode for steps that do not choose one (host, none, sandbox).
    #[arg(long)]
    network: Option<String>,
    /// Print a readable dump instead of the binary definition.
    #[arg(long)]
    dump: bool,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got `{s}`")),
    }
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check(args) => check(&args),
        Command::Llb(args) => llb(&args),
        Command::Frontend => crate::frontend::main(),
        Command::Schema => {
            println!(
                "{}",
                serde_json::to_string_pretty(&spec::json_schema()).unwrap_or_default()
            );
            Ok(0)
        }
        Command::Explain { name } => explain(&name),
        Command::FrontendCaps => {
            println!("{}", crate::frontend::FRONTEND_CAPS.join(","));
            Ok(0)
        }
        Command::Run(args) => crate::runtime::run_main(&args),
        Command::K8s(args) => crate::runtime::k8s_main(&args),
        Command::Quadlet(args) => crate::runtime::quadlet_main(&args),
        Command::Wait(args) => crate::runtime::wait_main(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            2
        }
    }
}

/// The build context of a spec command: `--context`, else the spec's directory.
fn context_dir(args: &SpecArgs) -> PathBuf {
    let context = match &args.context {
        Some(dir) => dir.clone(),
        None => args.file.parent().map(PathBuf::from).unwrap_or_default(),
    };
    if context.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        context
    }
}

fn load(args: &SpecArgs) -> Result<spec::Loaded> {
    let data = read_spec_file(&args.file)?;
    let name = args.file.file_name().map_or_else(
        || args.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let (main, not_utf8) = spec::decode_main(name, data);
    if let Some(diagnostic) = not_utf8 {
        return Ok(spec::Loaded {
            sources: diag::Sources::new(main),
            spec: None,
            diagnostics: vec![diagnostic],
        });
    }
    let context = context_dir(args);
    let collected = spec::collect_include_files(&main, |path| read_context_file(&context, path));
    let options = LoadOptions {
        build_args: args.build_args.iter().cloned().collect::<BTreeMap<_, _>>(),
        includes: collected.texts,
        include_errors: collected.errors,
    };
    Ok(spec::load(main, &options))
}

/// Opens a file for reading without blocking on a FIFO or device, and without following a
/// symbolic link in its last component.
fn open_plain(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
}

/// Reads an opened file that must be a regular file of at most [`spec::MAX_SPEC_BYTES`].
fn read_regular(file: std::fs::File) -> std::result::Result<Vec<u8>, String> {
    use std::io::Read as _;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("it is not a regular file".to_string());
    }
    let cap = spec::MAX_SPEC_BYTES as u64;
    if meta.len() > cap {
        return Err(format!("it is larger than {} MiB", cap >> 20));
    }
    let mut data = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut data)
        .map_err(|e| e.to_string())?;
    Ok(data)
}

/// Reads the main spec file: a regular file (a symbolic link to one is fine: the user named
/// it), at most [`spec::MAX_SPEC_BYTES`]. Anything else is an unreadable path (exit 2).
fn read_spec_file(path: &Path) -> Result<Vec<u8>> {
    let what = || format!("cannot read {}", path.display());
    let real = path.canonicalize().with_context(what)?;
    let file = open_plain(&real).with_context(what)?;
    read_regular(file)
        .map_err(anyhow::Error::msg)
        .with_context(what)
}

/// Reads an included file the way the frontend's context can give it: the path, with every
/// symbolic link resolved, must stay inside the context directory, and name a regular file
/// of at most [`spec::MAX_SPEC_BYTES`]. Its bytes are decoded by [`spec::decode_include`].
fn read_context_file(context: &Path, relative: &str) -> spec::Fetched {
    // `collect_include_files` hands over normalised context-relative paths; refuse anything else.
    let inside = Path::new(relative)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !inside {
        return spec::Fetched::Refused("it is not a path inside the build context".into());
    }
    let Ok(root) = context.canonicalize() else {
        return spec::Fetched::Missing;
    };
    let real = match root.join(relative).canonicalize() {
        Ok(real) => real,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return spec::Fetched::Missing,
        Err(e) => return spec::Fetched::Refused(e.to_string()),
    };
    if !real.starts_with(&root) {
        return spec::Fetched::Refused(
            "it leads outside the build context through a symbolic link".into(),
        );
    }
    match open_plain(&real)
        .map_err(|e| e.to_string())
        .and_then(read_regular)
    {
        Ok(data) => spec::Fetched::Bytes(data),
        Err(why) => spec::Fetched::Refused(why),
    }
}

fn print_diagnostics(loaded: &spec::Loaded) {
    if loaded.diagnostics.is_empty() {
        return;
    }
    let color = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    eprint!(
        "{}",
        diag::render(&loaded.diagnostics, &loaded.sources, color)
    );
}

/// The context paths the spec's steps read, looked for in `context`: each must exist, be of
/// the right kind and stay inside the context with symbolic links resolved (as the build's
/// copy would see it).
fn check_context(spec: &crate::model::Spec, context: &Path) -> Result<Vec<diag::Diagnostic>> {
    use crate::diag::{Code, Diagnostic};
    use crate::model::ContextKind;
    let root = context
        .canonicalize()
        .with_context(|| format!("cannot read the build context {}", context.display()))?;
    let mut out = Vec::new();
    for used in spec.context_uses() {
        let path = used.path;
        let real = match root.join(path).canonicalize() {
            Ok(real) => real,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.push(
                    Diagnostic::error(
                        Code::ContextFileMissing,
                        used.span,
                        format!("`{path}` is not in the build context {}", context.display()),
                    )
                    .with_label("not in the build context")
                    .with_help(format!(
                        "create `{path}` in the build context (paths are relative to its root; `--context` names it), or remove it from {}",
                        used.what
                    )),
                );
                continue;
            }
            Err(e) => bail!("cannot read {}: {e}", root.join(path).display()),
        };
        if !real.starts_with(&root) {
            out.push(
                Diagnostic::error(
                    Code::PathEscapesContext,
                    used.span,
                    format!(
                        "`{path}` leads outside the build context through a symbolic link (to {})",
                        real.display()
                    ),
                )
                .with_label("outside the build context")
                .with_help("the build sees only the context: copy the file into it instead of linking to it"),
            );
            continue;
        }
        let meta =
            std::fs::metadata(&real).with_context(|| format!("cannot read {}", real.display()))?;
        let (ok, wanted) = match used.kind {
            ContextKind::File => (meta.is_file(), "a regular file"),
            ContextKind::FileOrDirectory => {
                (meta.is_file() || meta.is_dir(), "a file or a directory")
            }
        };
        if !ok {
            let found = if meta.is_dir() {
                "a directory"
            } else {
                "neither a file nor a directory"
            };
            out.push(
                Diagnostic::error(
                    Code::ContextFileKind,
                    used.span,
                    format!("`{path}` is {found}, but {} needs {wanted}", used.what),
                )
                .with_label(format!("not {wanted}"))
                .with_help(format!("name {wanted} of the build context")),
            );
        }
    }
    Ok(out)
}

fn check(args: &SpecArgs) -> Result<i32> {
    let mut loaded = load(args)?;
    if let Some(spec) = &loaded.spec {
        let findings = crate::lint::check(spec, &loaded.sources);
        loaded.diagnostics.extend(findings);
        loaded
            .diagnostics
            .extend(check_context(spec, &context_dir(args))?);
        loaded
            .diagnostics
            .sort_by_key(|d| (d.span.file, d.span.start));
        loaded.diagnostics = diag::cap(std::mem::take(&mut loaded.diagnostics), &loaded.sources);
    }
    print_diagnostics(&loaded);
    if let Some(note) = loaded.spec.as_ref().and_then(crate::lint::base_unknown) {
        eprintln!("note: {note}");
    }
    let errors = loaded.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = loaded.diagnostics.len() - errors;
    if errors > 0 {
        eprintln!(
            "{}: {errors} error(s), {warnings} warning(s)",
            args.file.display()
        );
        Ok(1)
    } else {
        eprintln!("{}: ok ({warnings} warning(s))", args.file.display());
        Ok(0)
    }
}

/// `sysfile explain NAME`: exit 1 for a name that is neither a lint rule nor a diagnostic code.
fn explain(name: &str) -> Result<i32> {
    match crate::lint::explain(name) {
        Some(text) => {
            print!("{text}");
            Ok(0)
        }
        None => {
            eprintln!(
                "error: `{name}` is neither a lint rule nor a diagnostic code (docs/lint.md and docs/spec.md list them)"
            );
            Ok(1)
        }
    }
}

fn llb(args: &LlbArgs) -> Result<i32> {
    let loaded = load(&args.spec)?;
    print_diagnostics(&loaded);
    let Some(spec) = loaded.spec.as_ref() else {
        return Ok(1);
    };
    let family = args
        .distro
        .as_deref()
        .map(|name| {
            Family::from_name(name).with_context(|| format!("unknown distribution `{name}`"))
        })
        .transpose()?;
    if let Some(file) = spec.files.iter().find(|f| f.from.is_some()) {
        let at = loaded.sources.get(file.span.file).line_col(file.span.start);
        bail!(
            "{}:{}:{}: `sysfile llb` cannot resolve the named build context `{}`; build with `docker buildx build --build-context`",
            loaded.sources.get(file.span.file).name,
            at.line,
            at.column,
            file.from.as_deref().unwrap_or_default()
        );
    }
    let options = LowerOptions {
        platform: args
            .platform
            .as_deref()
            .map(crate::llb::parse_platform)
            .transpose()?,
        force_network: match args.network.as_deref() {
            None => Network::Default,
            Some(name) => Network::from_builder_name(name)
                .with_context(|| format!("unknown network mode `{name}` (host, none, sandbox)"))?,
        },
        ..compile::offline_options(spec).map_err(anyhow::Error::msg)?
    };
    let facts = compile::assumed_facts(spec, family);
    let lowered = compile::compile(spec, &loaded.sources, &facts, &options);
    let mut stdout = std::io::stdout().lock();
    if args.dump {
        stdout.write_all(crate::llb::dump::render(&lowered.definition)?.as_bytes())?;
    } else {
        stdout.write_all(&lowered.definition.encode_to_vec())?;
    }
    stdout.flush()?;
    Ok(0)
}
