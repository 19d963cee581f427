//! The validated Sysfile model: every value checked and normalised, spans kept for later diagnostics.
//!
//! Produced by `spec` (which alone knows TOML) and consumed by `plan`. A value
//! of these types is always valid: paths are absolute or context-relative and
//! normalised, unit names carry their suffix, build arguments are already
//! interpolated, durations and sizes are numbers.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::diag::{Diagnostic, Span};

/// A value together with the span of the spec text it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Spanned<T> {
        Spanned { value, span }
    }
}

/// A whole validated spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub image: Image,
    /// Declared build arguments with their effective values (default or `--build-arg`).
    pub args: Vec<BuildArg>,
    /// Every string value the spec writes with `${NAME}` references, as written: what progress
    /// names and history show instead of the interpolated value.
    pub templates: Vec<Template>,
    pub packages: Packages,
    pub files: Vec<FileEntry>,
    pub users: Vec<User>,
    /// `[[run]]` steps in declaration order (each knows its phase).
    pub runs: Vec<RunStep>,
    pub services: Services,
    pub systemd: Systemd,
    pub config: Config,
}

impl Spec {
    /// A `context-file-missing` error for every `authorized_keys` file that is not in the
    /// main build context; `exists` answers for a normalised context-relative path (the CLI
    /// stats the directory, the frontend the context it was sent). Such a file would
    /// otherwise fail inside a build step, far from the spec line that names it.
    pub fn missing_context_files(&self, mut exists: impl FnMut(&str) -> bool) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for user in &self.users {
            for (path, span) in user.authorized_keys.iter().zip(&user.authorized_key_spans) {
                if !exists(path) {
                    out.push(
                        Diagnostic::error(
                            "context-file-missing",
                            *span,
                            format!("`{path}` is not in the build context"),
                        )
                        .with_label("not in the build context")
                        .with_help(format!(
                            "add `{path}` to the build context (paths are relative to its root), or remove it from `authorized_keys`"
                        )),
                    );
                }
            }
        }
        out
    }

    /// SOURCE_DATE_EPOCH from `[args]` (a declared default, or `--build-arg` through it).
    #[allow(
        clippy::result_large_err,
        reason = "a Diagnostic is what callers report; this runs once per build"
    )]
    pub fn source_date_epoch(&self) -> Result<Option<u64>, Diagnostic> {
        let Some(arg) = self.args.iter().find(|a| a.name == "SOURCE_DATE_EPOCH") else {
            return Ok(None);
        };
        parse_epoch(&arg.value).map_err(|_| {
            Diagnostic::error(
                "bad-value",
                arg.span,
                format!("SOURCE_DATE_EPOCH is `{}`, not Unix seconds", arg.value),
            )
            .with_help("write whole seconds since 1970, for example \"1700000000\"")
        })
    }
}

/// A `SOURCE_DATE_EPOCH` value: empty (unset) or whole seconds since 1970 up to `i64::MAX`.
pub fn parse_epoch(value: &str) -> Result<Option<u64>, &'static str> {
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<u64>() {
        Ok(n) if value.bytes().all(|b| b.is_ascii_digit()) && i64::try_from(n).is_ok() => {
            Ok(Some(n))
        }
        _ => Err("not Unix seconds"),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// The base image reference as written (after interpolation).
    pub from: Spanned<String>,
    /// An OCI platform string such as `linux/amd64`.
    pub platform: Option<Spanned<String>>,
    /// `platforms`: several platforms for one multi-platform image (exclusive with `platform`).
    pub platforms: Vec<Spanned<String>>,
    pub title: Option<String>,
    pub description: Option<String>,
    /// The span of the `[image]` table header.
    pub span: Span,
}

/// A string value as the spec writes it, before build arguments are interpolated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    /// The span of the string's literal.
    pub span: Span,
    /// The decoded string with its `${NAME}` references.
    pub text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildArg {
    pub name: String,
    /// The effective value: the `--build-arg` override, else the default.
    pub value: String,
    pub default: String,
    /// The comment lines directly above the declaration (for `frontend.outline`).
    pub description: String,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PackageManager {
    Apt,
    Dnf,
    Zypper,
    Pacman,
}

impl PackageManager {
    pub fn name(self) -> &'static str {
        match self {
            PackageManager::Apt => "apt",
            PackageManager::Dnf => "dnf",
            PackageManager::Zypper => "zypper",
            PackageManager::Pacman => "pacman",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packages {
    pub install: Vec<Spanned<String>>,
    pub remove: Vec<Spanned<String>>,
    /// Explicit `manager`; `None` means detect from the base image.
    pub manager: Option<Spanned<PackageManager>>,
    /// The span of the `[packages]` table (or the `[image]` table when absent).
    pub span: Span,
}

/// `owner = "user"`, `"user:group"` or `"uid:gid"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub user: OwnerId,
    pub group: Option<OwnerId>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerId {
    Name(String),
    Id(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileSource {
    /// A normalised path relative to the build context root (no `..`, no leading `/`).
    Context(String),
    /// Inline content.
    Content(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub source: FileSource,
    /// The named build context `src` is taken from (`docker buildx build --build-context
    /// NAME=…`); `None` means the main build context. Always `None` with inline content.
    pub from: Option<String>,
    /// Absolute, normalised destination path in the image, always the path of the copied
    /// file or directory itself: a `dest` written with a trailing `/` next to a `src` means
    /// "into that directory", so `src = "conf/app.conf"`, `dest = "/etc/app/"` is stored as
    /// `/etc/app/app.conf` (and `src = "."` as `/etc/app`).
    pub dest: String,
    /// Permission bits (0o7777 at most).
    pub mode: Option<u32>,
    pub owner: Option<Owner>,
    /// The span of this `[[files]]` entry.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: Option<u32>,
    pub groups: Vec<String>,
    /// Absolute path of the login shell.
    pub shell: Option<String>,
    /// Context-relative paths of public key files, concatenated into `~/.ssh/authorized_keys`.
    pub authorized_keys: Vec<String>,
    /// Where each of `authorized_keys` is written, in the same order.
    pub authorized_key_spans: Vec<Span>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// A script run by `/bin/sh -c`; never interpolated, build args reach it as environment.
    Shell(String),
    /// An argv run without a shell.
    Exec(Vec<String>),
}

pub use crate::network::Network;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    BeforePackages,
    /// After packages, files and users (the default).
    #[default]
    AfterPackages,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheSharing {
    Shared,
    Private,
    #[default]
    Locked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindFrom {
    Context,
    Image(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// `source` is context-relative (for `from = "context"`) or an absolute path in the image.
    Bind {
        source: String,
        from: BindFrom,
        readonly: bool,
    },
    /// `id` defaults to the target path.
    Cache {
        id: String,
        sharing: CacheSharing,
    },
    Tmpfs {
        size: Option<u64>,
    },
    /// `uid`/`gid` own the secret file (default root), so a non-root step can read it.
    Secret {
        id: String,
        required: bool,
        mode: Option<u32>,
        uid: u32,
        gid: u32,
    },
    Ssh {
        id: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunMount {
    /// Absolute mount point (secrets default to `/run/secrets/<id>`, ssh to `/run/buildkit/ssh_agent.0`).
    pub target: String,
    pub kind: MountKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunStep {
    pub name: Option<String>,
    pub command: Command,
    /// Extra environment, in declaration order.
    pub env: Vec<(String, String)>,
    /// Absolute working directory.
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub network: Network,
    pub phase: Phase,
    pub mounts: Vec<RunMount>,
    /// `check = true`: the step only verifies; it runs on the final filesystem and its changes
    /// are discarded.
    pub check: bool,
    /// `reads`: the absolute paths (normalised) among earlier `[[files]]` this step reads or
    /// changes; `None` when undeclared (the step may read anything).
    pub reads: Option<Vec<String>>,
    /// The span of this `[[run]]` entry (what a failing step points at).
    pub span: Span,
}

/// A systemd unit name, always with its suffix (`ssh` becomes `ssh.service`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unit {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Services {
    pub enable: Vec<Unit>,
    pub disable: Vec<Unit>,
    pub mask: Vec<Unit>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Health {
    /// `systemctl is-system-running` must say `running`.
    #[default]
    Running,
    /// `running` or `degraded` are both healthy.
    RunningOrDegraded,
    /// No healthcheck.
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Emerg,
    Alert,
    Crit,
    Err,
    Warning,
    Notice,
    Info,
    Debug,
}

impl LogLevel {
    pub fn name(self) -> &'static str {
        match self {
            LogLevel::Emerg => "emerg",
            LogLevel::Alert => "alert",
            LogLevel::Crit => "crit",
            LogLevel::Err => "err",
            LogLevel::Warning => "warning",
            LogLevel::Notice => "notice",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Systemd {
    /// The default target (`multi-user.target` unless set).
    pub target: Unit,
    pub log_level: Option<LogLevel>,
    /// The value of `container=` (default `docker`).
    pub container: String,
    pub console_logs: bool,
    /// systemd's `DefaultTimeoutStopSec` (default 20 s); the engine stop timeout label is derived from it.
    pub stop_timeout: Duration,
    pub health: Health,
    /// Units never masked by the default mask lists (`[systemd] keep`).
    pub keep: Vec<Unit>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    pub number: u16,
    pub protocol: Protocol,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Image `Env` and the manager's `DefaultEnvironment`, in declaration order.
    pub env: Vec<(String, String)>,
    pub labels: BTreeMap<String, String>,
    pub expose: Vec<Port>,
    /// Absolute paths.
    pub volumes: Vec<String>,
    pub workdir: Option<String>,
}
