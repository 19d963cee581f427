//! The one parse of an image's `sysfile.*` labels into typed, validated values.
//!
//! Image labels are written by whoever built the image, so `sysfile run`, `sysfile k8s` and
//! `sysfile quadlet` trust none of them: [`parse_labels`] turns the raw map into [`ImageLabels`],
//! where every number is range-checked, every tmpfs entry is an allow-listed path plus
//! allow-listed options, and the health command is printable ASCII. Anything else is dropped with
//! a [`Warning`] whose text shows the offending value escaped by [`show`] (ASCII only: no control
//! character, line separator or terminal escape ever reaches a terminal, a YAML file or a unit
//! file). Labels that carry raw engine flags (`sysfile.runtime.docker`, `RUN`) are never read.

use std::collections::BTreeMap;
use std::fmt;

use crate::contract::DEFAULT_ENGINE_STOP_TIMEOUT;
pub use crate::contract::{
    BOOT_LABEL, HEALTH_LABEL, STOP_TIMEOUT_LABEL, SYSTEMD_VERSION_LABEL, TMPFS_LABEL,
};

/// The largest stop timeout accepted, in seconds (one hour).
pub const MAX_STOP_TIMEOUT: u32 = 3600;
/// The largest systemd version accepted (systemd numbers its releases 1, 2, … 262, …).
pub const MAX_SYSTEMD_VERSION: u32 = 9999;
/// The tmpfs mounts when the label is missing, empty or unusable.
pub const DEFAULT_TMPFS: &str = crate::contract::RUNTIME_TMPFS;
/// Label values longer than this (in bytes) are ignored whole.
pub const MAX_LABEL_LEN: usize = 4096;
/// At most this many tmpfs entries are used.
pub const MAX_TMPFS_ENTRIES: usize = 16;
/// The longest tmpfs mount point accepted, in bytes.
pub const MAX_TMPFS_PATH_LEN: usize = 256;
/// The largest tmpfs `size=` accepted: 16 GiB.
pub const MAX_TMPFS_SIZE: u64 = 16 << 30;
/// The longest health command accepted, in bytes.
pub const MAX_HEALTH_LEN: usize = 1024;
/// Mount points under these are the kernel's and the engine's: a tmpfs there is refused.
pub const KERNEL_PATHS: [&str; 3] = ["/proc", "/sys", "/dev"];

/// A problem with one label: the value was dropped or replaced by a default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The label's key (always one of the constants above, never a key read from the image).
    pub label: &'static str,
    /// What was wrong and what was used instead; any image value in it went through [`show`].
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "label {}: {}", self.label, self.message)
    }
}

/// One tmpfs mount option, from the allow-list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TmpfsOption {
    /// `exec`.
    Exec,
    /// `noexec`.
    NoExec,
    /// `nosuid`.
    NoSuid,
    /// `nodev`.
    NoDev,
    /// `mode=` in octal, at most `7777`.
    Mode(u32),
    /// `size=`: a number and an optional unit (`k`, `m` or `g`), at most [`MAX_TMPFS_SIZE`].
    Size(u64, Option<char>),
    /// `uid=`.
    Uid(u32),
    /// `gid=`.
    Gid(u32),
}

impl TmpfsOption {
    /// The option's name, for duplicate checks.
    fn name(self) -> &'static str {
        match self {
            TmpfsOption::Exec | TmpfsOption::NoExec => "exec",
            TmpfsOption::NoSuid => "nosuid",
            TmpfsOption::NoDev => "nodev",
            TmpfsOption::Mode(_) => "mode",
            TmpfsOption::Size(..) => "size",
            TmpfsOption::Uid(_) => "uid",
            TmpfsOption::Gid(_) => "gid",
        }
    }

    /// The size in bytes, for `size=`.
    pub fn size_bytes(self) -> Option<u64> {
        match self {
            TmpfsOption::Size(n, unit) => Some(n.saturating_mul(unit_bytes(unit))),
            _ => None,
        }
    }
}

fn unit_bytes(unit: Option<char>) -> u64 {
    match unit {
        Some('k') => 1 << 10,
        Some('m') => 1 << 20,
        Some('g') => 1 << 30,
        _ => 1,
    }
}

impl fmt::Display for TmpfsOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TmpfsOption::Exec => f.write_str("exec"),
            TmpfsOption::NoExec => f.write_str("noexec"),
            TmpfsOption::NoSuid => f.write_str("nosuid"),
            TmpfsOption::NoDev => f.write_str("nodev"),
            TmpfsOption::Mode(m) => write!(f, "mode={m:o}"),
            TmpfsOption::Size(n, unit) => match unit {
                Some(u) => write!(f, "size={n}{u}"),
                None => write!(f, "size={n}"),
            },
            TmpfsOption::Uid(n) => write!(f, "uid={n}"),
            TmpfsOption::Gid(n) => write!(f, "gid={n}"),
        }
    }
}

/// One validated tmpfs mount: a normalised absolute path and allow-listed options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TmpfsMount {
    /// The mount point: absolute, not `/`, made only of `A-Z a-z 0-9 . _ - + @` between single `/`s.
    pub path: String,
    /// The options, in the order given.
    pub options: Vec<TmpfsOption>,
}

impl TmpfsMount {
    /// The options joined by `,` (empty when there are none).
    pub fn options_text(&self) -> String {
        self.options
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The `--tmpfs` (Docker, Podman) and `Tmpfs=` (Quadlet) value: `path` or `path:options`.
    pub fn docker_value(&self) -> String {
        if self.options.is_empty() {
            self.path.clone()
        } else {
            format!("{}:{}", self.path, self.options_text())
        }
    }

    /// The `size=` option in bytes, if given.
    pub fn size_bytes(&self) -> Option<u64> {
        self.options.iter().find_map(|o| o.size_bytes())
    }
}

/// What the image asks of the engine, validated, with defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageLabels {
    /// The image carries `sysfile.systemd.boot=true`: it asks to be booted as a system container
    /// (and so for a writable cgroup). Without it the launchers give no cgroup write access.
    pub boot: bool,
    /// Seconds between the stop signal and SIGKILL, 1 to [`MAX_STOP_TIMEOUT`].
    pub stop_timeout: u32,
    /// The tmpfs mounts the engine must provide (never empty).
    pub tmpfs: Vec<TmpfsMount>,
    /// systemd's major version, 1 to [`MAX_SYSTEMD_VERSION`], when the label says.
    pub systemd_version: Option<u32>,
    /// The health command: printable ASCII, at most [`MAX_HEALTH_LEN`] bytes; `None` when the
    /// label is missing, empty or unusable.
    pub health_cmd: Option<String>,
}

impl Default for ImageLabels {
    fn default() -> Self {
        ImageLabels {
            boot: false,
            stop_timeout: DEFAULT_ENGINE_STOP_TIMEOUT,
            tmpfs: default_tmpfs(),
            systemd_version: None,
            health_cmd: None,
        }
    }
}

/// Shows an untrusted value in a message: double-quoted, ASCII only. Printable ASCII stays
/// as it is (except `"` and `\`, which get a backslash); every other character is written as
/// `\n`, `\t`, `\r`, `\0` or `\u{…}`, so control characters, terminal escapes, line and paragraph
/// separators and bidirectional overrides are all visible and inert. Values longer than 80
/// characters are cut with `...`.
pub fn show(value: &str) -> String {
    const MAX: usize = 80;
    let mut out = String::from("\"");
    for (i, c) in value.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            ' '..='~' => out.push(c),
            _ => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Makes text from outside (an engine's stderr, a container ID) safe for a terminal: newlines
/// stay, every other control character, line or paragraph separator and bidirectional control
/// becomes a `\u{…}` escape.
pub fn terminal_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let unsafe_char = c != '\n'
            && (c.is_control()
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{feff}'
                )
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c));
        if unsafe_char {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Parses the raw label map (as `docker image inspect` gives it) into validated labels and
/// the warnings for everything dropped. Pure, total and bounded: it never panics, whatever the
/// map holds, and reads only the labels named above.
pub fn parse_labels(raw: &BTreeMap<String, String>) -> (ImageLabels, Vec<Warning>) {
    let mut warnings = Vec::new();
    let mut get = |label: &'static str| -> Option<&str> {
        let value = raw.get(label)?;
        if value.len() > MAX_LABEL_LEN {
            warnings.push(Warning {
                label,
                message: format!(
                    "the value is {} bytes long (more than {MAX_LABEL_LEN}); ignored",
                    value.len()
                ),
            });
            return None;
        }
        Some(value.as_str())
    };
    let boot_value = get(BOOT_LABEL);
    let stop_value = get(STOP_TIMEOUT_LABEL);
    let tmpfs_value = get(TMPFS_LABEL);
    let version_value = get(SYSTEMD_VERSION_LABEL);
    let health_value = get(HEALTH_LABEL);

    let boot = match boot_value.map(str::trim) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            warnings.push(Warning {
                label: BOOT_LABEL,
                message: format!(
                    "{} is neither `true` nor `false`; treated as `false`",
                    show(boot_value.unwrap_or_default())
                ),
            });
            false
        }
    };

    let stop_timeout = match stop_value {
        None => DEFAULT_ENGINE_STOP_TIMEOUT,
        Some(v) => match number(v.trim(), 1, MAX_STOP_TIMEOUT) {
            Some(n) => n,
            None => {
                warnings.push(Warning {
                    label: STOP_TIMEOUT_LABEL,
                    message: format!(
                        "{} is not a whole number of seconds from 1 to {MAX_STOP_TIMEOUT}; using {DEFAULT_ENGINE_STOP_TIMEOUT}",
                        show(v)
                    ),
                });
                DEFAULT_ENGINE_STOP_TIMEOUT
            }
        },
    };

    let tmpfs = match tmpfs_value {
        None => default_tmpfs(),
        Some(value) => {
            let (mounts, problems) = parse_tmpfs(value);
            warnings.extend(problems);
            if mounts.is_empty() {
                warnings.push(Warning {
                    label: TMPFS_LABEL,
                    message: format!(
                        "names no usable tmpfs mount; using the default `{DEFAULT_TMPFS}`"
                    ),
                });
                default_tmpfs()
            } else {
                if !mounts.iter().any(|m| m.path == "/run") {
                    warnings.push(Warning {
                        label: TMPFS_LABEL,
                        message: "has no /run entry; systemd cannot boot without a tmpfs /run \
                                  unless the engine or extra arguments provide one"
                            .to_string(),
                    });
                }
                mounts
            }
        }
    };

    let systemd_version = version_value.and_then(|v| {
        let n = number(v.trim(), 1, MAX_SYSTEMD_VERSION);
        if n.is_none() {
            warnings.push(Warning {
                label: SYSTEMD_VERSION_LABEL,
                message: format!(
                    "{} is not a systemd version (a whole number from 1 to {MAX_SYSTEMD_VERSION}); treated as unknown",
                    show(v)
                ),
            });
        }
        n
    });

    let health_cmd = health_value.and_then(|v| {
        let v = v.trim();
        if v.is_empty() {
            None
        } else if v.len() > MAX_HEALTH_LEN {
            warnings.push(Warning {
                label: HEALTH_LABEL,
                message: format!(
                    "the command is longer than {MAX_HEALTH_LEN} bytes; no health check"
                ),
            });
            None
        } else if !v.chars().all(|c| matches!(c, ' '..='~')) {
            warnings.push(Warning {
                label: HEALTH_LABEL,
                message: format!(
                    "{} has characters other than printable ASCII; no health check",
                    show(v)
                ),
            });
            None
        } else {
            Some(v.to_string())
        }
    });

    (
        ImageLabels {
            boot,
            stop_timeout,
            tmpfs,
            systemd_version,
            health_cmd,
        },
        warnings,
    )
}

/// A decimal number of at most 10 digits (no sign, no spaces) within `min..=max`.
fn number(text: &str, min: u32, max: u32) -> Option<u32> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u64>()
        .ok()
        .filter(|n| (u64::from(min)..=u64::from(max)).contains(n))
        .and_then(|n| u32::try_from(n).ok())
}

/// The default tmpfs mounts (`/run:exec,mode=755`, `/run/lock`, `/tmp`).
pub fn default_tmpfs() -> Vec<TmpfsMount> {
    parse_tmpfs(DEFAULT_TMPFS).0
}

/// Parses a `sysfile.runtime.tmpfs` value: `;`-separated `/path[:options]` entries. Empty
/// entries are skipped; entries with a bad path are dropped, bad options are dropped from their
/// entry; each with a warning. At most [`MAX_TMPFS_ENTRIES`] entries are used.
pub fn parse_tmpfs(value: &str) -> (Vec<TmpfsMount>, Vec<Warning>) {
    let mut mounts: Vec<TmpfsMount> = Vec::new();
    let mut warnings = Vec::new();
    let warn = |warnings: &mut Vec<Warning>, message: String| {
        warnings.push(Warning {
            label: TMPFS_LABEL,
            message,
        })
    };
    for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        if mounts.len() == MAX_TMPFS_ENTRIES {
            warn(
                &mut warnings,
                format!("more than {MAX_TMPFS_ENTRIES} entries; the rest are ignored"),
            );
            break;
        }
        let (path, options) = entry.split_once(':').unwrap_or((entry, ""));
        let path = match check_path(path) {
            Ok(p) => p,
            Err(why) => {
                warn(
                    &mut warnings,
                    format!("ignoring tmpfs entry {}: its path {why}", show(entry)),
                );
                continue;
            }
        };
        if mounts.iter().any(|m| m.path == path) {
            warn(
                &mut warnings,
                format!(
                    "ignoring tmpfs entry {}: it repeats a mount point",
                    show(entry)
                ),
            );
            continue;
        }
        let mut parsed: Vec<TmpfsOption> = Vec::new();
        for option in options.split(',').filter(|o| !o.is_empty()) {
            match parse_option(option) {
                Some(o) if parsed.iter().any(|p| p.name() == o.name()) => warn(
                    &mut warnings,
                    format!(
                        "dropping option {} of tmpfs {path}: it repeats or contradicts an earlier option",
                        show(option)
                    ),
                ),
                Some(o) => parsed.push(o),
                None => warn(
                    &mut warnings,
                    format!(
                        "dropping option {} of tmpfs {path}: only exec, noexec, nosuid, nodev, \
                         mode=OCTAL, size=N[k|m|g] (at most 16g), uid=N and gid=N are allowed",
                        show(option)
                    ),
                ),
            }
        }
        mounts.push(TmpfsMount {
            path,
            options: parsed,
        });
    }
    (mounts, warnings)
}

/// Checks and normalises a tmpfs mount point (a trailing `/` is dropped).
fn check_path(path: &str) -> Result<String, &'static str> {
    if !path.starts_with('/') {
        return Err("is not absolute");
    }
    if path.len() > MAX_TMPFS_PATH_LEN {
        return Err("is too long");
    }
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    if trimmed.is_empty() {
        return Err("is `/`");
    }
    for component in trimmed[1..].split('/') {
        match component {
            "" => return Err("has an empty component (`//`)"),
            "." | ".." => return Err("has a `.` or `..` component"),
            c if !c
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-+@".contains(c)) =>
            {
                return Err("has a character other than A-Z a-z 0-9 . _ - + @ and /");
            }
            _ => {}
        }
    }
    if KERNEL_PATHS
        .iter()
        .any(|k| trimmed == *k || trimmed.starts_with(&format!("{k}/")))
    {
        return Err("is under /proc, /sys or /dev, which belong to the kernel and the engine");
    }
    Ok(trimmed.to_string())
}

fn parse_option(option: &str) -> Option<TmpfsOption> {
    Some(match option.split_once('=') {
        None => match option {
            "exec" => TmpfsOption::Exec,
            "noexec" => TmpfsOption::NoExec,
            "nosuid" => TmpfsOption::NoSuid,
            "nodev" => TmpfsOption::NoDev,
            _ => return None,
        },
        Some(("mode", m)) => {
            if m.is_empty() || m.len() > 4 || !m.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                return None;
            }
            TmpfsOption::Mode(u32::from_str_radix(m, 8).ok()?)
        }
        Some(("size", s)) => {
            let (digits, unit) = match s.chars().last()? {
                c @ ('k' | 'm' | 'g') => (&s[..s.len() - 1], Some(c)),
                _ => (s, None),
            };
            if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let n: u64 = digits.parse().ok()?;
            let bytes = n.checked_mul(unit_bytes(unit))?;
            if bytes == 0 || bytes > MAX_TMPFS_SIZE {
                return None;
            }
            TmpfsOption::Size(n, unit)
        }
        Some(("uid", n)) => TmpfsOption::Uid(number(n, 0, u32::MAX)?),
        Some(("gid", n)) => TmpfsOption::Gid(number(n, 0, u32::MAX)?),
        Some(_) => return None,
    })
}
