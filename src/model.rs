//! The validated Sysfile model: every value checked and normalised, spans kept for later diagnostics.
//!
//! Produced by `spec` (which alone knows TOML) and consumed by `plan`. A value
//! of these types is always valid: paths are absolute or context-relative and
//! normalised, unit names carry their suffix, build arguments are already
//! interpolated, durations and sizes are numbers.

use std::time::Duration;

use crate::diag::{Code, Diagnostic, Span};

/// A value together with the span of the spec text it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Spanned<T> {
        Spanned { value, span }
    }
}

/// The spec's spelling of each value of a closed set, written once: the schema lists
/// `NAMES`, the loader parses with `CHOICES`, and every writer prints `name()`.
macro_rules! spelled {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value with the name the spec writes it as, in documentation order.
            pub const CHOICES: &'static [(&'static str, $ty)] = &[$(($name, $ty::$variant)),+];
            /// The names alone, in the same order.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            /// The name the spec writes this value as.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }
    };
}

spelled!(PackageManager { Apt => "apt", Dnf => "dnf", Zypper => "zypper", Pacman => "pacman" });
spelled!(Network { Default => "default", None => "none", Host => "host" });
spelled!(Phase { BeforePackages => "before-packages", AfterPackages => "after-packages" });
spelled!(CacheSharing { Shared => "shared", Private => "private", Locked => "locked" });
spelled!(Health { Running => "running", RunningOrDegraded => "running-or-degraded", None => "none" });
spelled!(LogLevel {
    Emerg => "emerg",
    Alert => "alert",
    Crit => "crit",
    Err => "err",
    Warning => "warning",
    Notice => "notice",
    Info => "info",
    Debug => "debug",
});
spelled!(Protocol { Tcp => "tcp", Udp => "udp" });

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
    /// `[lint] skip`: lint rules not reported for this spec, as written (the lint checks the names).
    pub lint_skip: Vec<Spanned<String>>,
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
                            Code::ContextFileMissing,
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

    /// Every path of the main build context a build step reads, with what reads it: `[[files]]
    /// src` (without `from`), `authorized_keys` and the sources of `from = "context"` bind
    /// mounts. `sysfile check` looks for them in the context directory.
    pub fn context_uses(&self) -> Vec<ContextUse<'_>> {
        let mut out = Vec::new();
        for file in &self.files {
            if let (FileSource::Context(src), None) = (&file.source.value, &file.from) {
                out.push(ContextUse {
                    path: src,
                    span: file.source.span,
                    kind: ContextKind::FileOrDirectory,
                    what: "`[[files]] src`",
                });
            }
        }
        for user in &self.users {
            for (path, span) in user.authorized_keys.iter().zip(&user.authorized_key_spans) {
                out.push(ContextUse {
                    path,
                    span: *span,
                    kind: ContextKind::File,
                    what: "`authorized_keys`",
                });
            }
        }
        for run in &self.runs {
            for mount in &run.mounts {
                if let MountKind::Bind {
                    source,
                    from: BindFrom::Context,
                    ..
                } = &mount.kind
                {
                    out.push(ContextUse {
                        path: source,
                        span: mount.span,
                        kind: ContextKind::FileOrDirectory,
                        what: "the bind mount's `source`",
                    });
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
                Code::BadValue,
                arg.span,
                format!("SOURCE_DATE_EPOCH is `{}`, not Unix seconds", arg.value),
            )
            .with_help("write whole seconds since 1970, for example \"1700000000\"")
        })
    }
}

/// A path of the main build context that a build step reads ([`Spec::context_uses`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContextUse<'a> {
    /// Normalised, relative to the context root (the loader refused `..` and absolute paths).
    pub path: &'a str,
    /// The value that names it.
    pub span: Span,
    pub kind: ContextKind,
    /// The key that names it, for messages.
    pub what: &'static str,
}

/// What a [`ContextUse`] must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextKind {
    /// A regular file (`authorized_keys`).
    File,
    /// A regular file or a directory (`src`, bind sources: a directory copies or mounts its contents).
    FileOrDirectory,
}

/// Whether two absolute, normalised paths overlap: equal, or one is a directory holding the
/// other (a prefix at a `/` boundary).
pub fn paths_overlap(a: &str, b: &str) -> bool {
    path_holds(a, b) || path_holds(b, a)
}

/// Whether the absolute, normalised `path` is `dir` or inside it (a prefix at a `/` boundary).
pub fn path_holds(dir: &str, path: &str) -> bool {
    dir == "/"
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
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

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Packages {
    pub install: Vec<Spanned<String>>,
    pub remove: Vec<Spanned<String>>,
    /// Explicit `manager`; `None` means detect from the base image.
    pub manager: Option<Spanned<PackageManager>>,
    /// `recommends`: also install recommended (weak) dependencies.
    pub recommends: bool,
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
    /// `remove = true`: the entry removes `dest` (a file, a link, or a directory with all it
    /// holds); a missing path is no error.
    Remove,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// `src` or `content`, at its value.
    pub source: Spanned<FileSource>,
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
    /// `lint_skip`: lint rules not reported inside this entry, as written.
    pub lint_skip: Vec<Spanned<String>>,
    /// The span of this `[[files]]` entry.
    pub span: Span,
}

impl FileEntry {
    /// Whether the entry puts a file or directory at `dest` (`src`, `content`), rather than
    /// removing what is there (`remove = true`).
    pub fn writes(&self) -> bool {
        self.source.value != FileSource::Remove
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: Option<Spanned<u32>>,
    pub groups: Vec<Spanned<String>>,
    /// Absolute path of the login shell.
    pub shell: Option<Spanned<String>>,
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
    /// After packages, then users, then files (the default).
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
    /// `sh` or `argv`, at its value.
    pub command: Spanned<Command>,
    /// Extra environment, in declaration order.
    pub env: Vec<Entry>,
    /// Absolute working directory.
    pub workdir: Option<Spanned<String>>,
    pub user: Option<Spanned<String>>,
    /// At its value, or at the step when not set.
    pub network: Spanned<Network>,
    pub phase: Phase,
    pub mounts: Vec<RunMount>,
    /// `lint_skip`: lint rules not reported inside this step, as written.
    pub lint_skip: Vec<Spanned<String>>,
    /// `check = true`: the step only verifies; it runs on what the spec's steps make (with
    /// sysfile's systemd configuration and hygiene, before the units step) and its changes are
    /// discarded.
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

/// systemd's `DefaultTimeoutStopSec` when `[systemd] stop_timeout` is not set; defined with the
/// engine's stop timeout derived from it ([`crate::contract::engine_stop_timeout`]).
pub use crate::contract::DEFAULT_STOP_TIMEOUT;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Systemd {
    /// The default target (`multi-user.target` unless set).
    pub target: Unit,
    pub log_level: Option<Spanned<LogLevel>>,
    /// The value of `container=` (default `docker`, at the `[image]` table).
    pub container: Spanned<String>,
    /// At its value, or at the `[systemd]` table when not set (at `[image]` without one).
    pub console_logs: Spanned<bool>,
    /// This, `health` and `health_start_period` are at their values, or at the `[image]` table when not set.
    /// systemd's `DefaultTimeoutStopSec` ([`DEFAULT_STOP_TIMEOUT`] unless set); the engine stop
    /// timeout label is derived from it.
    pub stop_timeout: Spanned<Duration>,
    pub health: Spanned<Health>,
    /// How long after the container starts failed health checks do not count (Docker's
    /// `StartPeriod`; [`DEFAULT_HEALTH_START_PERIOD`] unless set).
    pub health_start_period: Spanned<Duration>,
    /// Units never masked by the default mask lists (`[systemd] keep`).
    pub keep: Vec<Unit>,
    /// The span of the `[systemd]` table, when the spec has one.
    pub span: Option<Span>,
}

/// The healthcheck's start period when `[systemd] health_start_period` is not set.
pub const DEFAULT_HEALTH_START_PERIOD: Duration = Duration::from_secs(60);

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

/// A `NAME = "value"` entry of an `env` or `labels` table, each side at its own text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: Spanned<String>,
    pub value: Spanned<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Image `Env` and the manager's `DefaultEnvironment`, in declaration order.
    pub env: Vec<Entry>,
    /// Sorted by name (a TOML table has each key once).
    pub labels: Vec<Entry>,
    pub expose: Vec<Port>,
    /// Absolute paths.
    pub volumes: Vec<Spanned<String>>,
    pub workdir: Option<Spanned<String>>,
}
