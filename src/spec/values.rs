//! Value formats of the spec language: durations, sizes, modes, owners, ports, paths, names and unit names.
//!
//! Everything here is pure string checking, free of TOML, so it is unit
//! tested directly. A rejected value is an [`Invalid`] carrying the
//! diagnostic code, message and help that the loader attaches to a span.

use std::time::Duration;

use crate::diag::Code;
use crate::model::{Owner, OwnerId, Port, Protocol};

/// Why a value was rejected: the pieces of a diagnostic, without its span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Invalid {
    pub code: Code,
    pub message: String,
    pub help: String,
}

fn invalid(code: Code, message: impl Into<String>, help: impl Into<String>) -> Invalid {
    Invalid {
        code,
        message: message.into(),
        help: help.into(),
    }
}

/// Splits `"15s"` into `("15", "s")`. No whitespace is allowed anywhere in a value (as in
/// modes, ports and owners), so `" 10s"` and `"64 m"` are rejected.
fn split_number(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    (&s[..end], &s[end..])
}

/// `"500ms"`, `"15s"`, `"2m"`, `"1h"` (integer seconds are handled by the caller).
pub(crate) fn parse_duration(s: &str) -> Result<Duration, Invalid> {
    let help =
        "write a whole number with a unit: `ms`, `s`, `m` or `h`, such as \"500ms\" or \"15s\"";
    let (number, unit) = split_number(s);
    let bad = || invalid(Code::BadDuration, format!("`{s}` is not a duration"), help);
    if number.is_empty() {
        return Err(bad());
    }
    let n: u64 = number.parse().map_err(|_| bad())?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(bad()),
    };
    millis.map(Duration::from_millis).ok_or_else(bad)
}

/// `"64m"`, `"1g"`, `"512k"`, `"10MB"` (1024-based), or a plain number of bytes as a string.
pub(crate) fn parse_size(s: &str) -> Result<u64, Invalid> {
    let help = "write a whole number with a unit `k`, `m` or `g` (1024-based), such as \"64m\", or an integer number of bytes";
    let (number, unit) = split_number(s);
    let bad = || invalid(Code::BadSize, format!("`{s}` is not a size"), help);
    if number.is_empty() {
        return Err(bad());
    }
    let n: u64 = number.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(factor).ok_or_else(bad)
}

/// The help shared by every mode diagnostic.
pub(crate) const MODE_HELP: &str =
    "write an octal mode as a string such as \"0644\" or as a TOML octal integer such as 0o644";

/// An octal mode written as a string: `"0644"` or `"644"`, at most `0o7777`.
pub(crate) fn parse_mode(s: &str) -> Result<u32, Invalid> {
    let bad = || {
        invalid(
            Code::BadMode,
            format!("`{s}` is not an octal file mode"),
            MODE_HELP,
        )
    };
    let digits = s.strip_prefix("0o").unwrap_or(s);
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
    {
        return Err(bad());
    }
    let mode = u32::from_str_radix(digits, 8).map_err(|_| bad())?;
    check_mode(mode)
}

/// Checks the range of a mode already read as a number.
pub(crate) fn check_mode(mode: u32) -> Result<u32, Invalid> {
    if mode > 0o7777 {
        return Err(invalid(
            Code::BadMode,
            format!("mode 0o{mode:o} is larger than 0o7777"),
            "a mode holds permission bits plus setuid, setgid and sticky: 0o7777 at most",
        ));
    }
    Ok(mode)
}

fn owner_id(part: &str) -> Option<OwnerId> {
    if part.is_empty() {
        return None;
    }
    if part.bytes().all(|b| b.is_ascii_digit()) {
        return part.parse::<u32>().ok().map(OwnerId::Id);
    }
    is_user_name(part).then(|| OwnerId::Name(part.to_string()))
}

/// `"user"`, `"user:group"` or `"uid:gid"`.
pub(crate) fn parse_owner(s: &str) -> Result<Owner, Invalid> {
    let bad = || {
        invalid(
            Code::BadOwner,
            format!("`{s}` is not an owner"),
            "write \"user\", \"user:group\" or \"uid:gid\", such as \"root:adm\" or \"1000:1000\"",
        )
    };
    let (user, group) = match s.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (s, None),
    };
    let user = owner_id(user).ok_or_else(bad)?;
    let group = match group {
        Some(group) => Some(owner_id(group).ok_or_else(bad)?),
        None => None,
    };
    Ok(Owner { user, group })
}

const PORT_HELP: &str = "write a port number from 1 to 65535, optionally followed by `/tcp` or `/udp`, such as \"80\" or \"53/udp\"";

/// Checks a port given as a TOML integer.
pub(crate) fn port_number(n: i64) -> Result<Port, Invalid> {
    match u16::try_from(n) {
        Ok(number) if number > 0 => Ok(Port {
            number,
            protocol: Protocol::Tcp,
        }),
        _ => Err(invalid(
            Code::BadPort,
            format!("port {n} is out of range"),
            PORT_HELP,
        )),
    }
}

/// `"80"`, `"80/tcp"` or `"53/udp"`.
pub(crate) fn parse_port(s: &str) -> Result<Port, Invalid> {
    let bad = || invalid(Code::BadPort, format!("`{s}` is not a port"), PORT_HELP);
    let (number, protocol) = match s.split_once('/') {
        Some((number, name)) => match Protocol::CHOICES.iter().find(|(n, _)| *n == name) {
            Some((_, protocol)) => (number, *protocol),
            None => return Err(bad()),
        },
        None => (s, Protocol::Tcp),
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match number.parse::<u16>() {
        Ok(n) if n > 0 => Ok(Port {
            number: n,
            protocol,
        }),
        _ => Err(invalid(
            Code::BadPort,
            format!("port `{number}` is out of range"),
            PORT_HELP,
        )),
    }
}

/// Normalises a build-context path: `./a/../b` becomes `b`, the root itself is `.`.
///
/// Absolute paths and paths that climb above the context root are rejected
/// (`path-escapes-context`), as is the empty string (`empty-path`).
pub(crate) fn normalize_context_path(s: &str) -> Result<String, Invalid> {
    if s.is_empty() {
        return Err(invalid(
            Code::EmptyPath,
            "the path is empty",
            "write a path relative to the build context, such as \"files/app.conf\"",
        ));
    }
    if s.starts_with('/') {
        return Err(invalid(
            Code::PathEscapesContext,
            format!("`{s}` is an absolute path, but build-context paths are relative"),
            "write the path relative to the root of the build context, without the leading `/`",
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(invalid(
                        Code::PathEscapesContext,
                        format!("`{s}` leads outside the build context"),
                        "only files inside the build context can be used; move the file into the context directory",
                    ));
                }
            }
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Ok(".".to_string());
    }
    Ok(parts.join("/"))
}

/// Normalises an absolute path in the image: `/a/./b/../c/` becomes `/a/c`.
///
/// `..` at the root stays at the root, as in the kernel.
pub(crate) fn normalize_absolute_path(s: &str) -> Result<String, Invalid> {
    if !s.starts_with('/') {
        return Err(invalid(
            Code::NotAbsolute,
            format!("`{s}` is not an absolute path"),
            format!(
                "write an absolute path in the image, such as \"/{}\"",
                s.trim_start_matches("./")
            ),
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in s.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A build-argument or environment-variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A user or group name: `[a-z_][a-z0-9_-]*`, 32 characters at most.
pub(crate) fn is_user_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    s.len() <= 32
        && matches!(bytes.next(), Some(b) if b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// A package: `name`, `name:arch` or either with `=version`, and nothing a package manager
/// would read as something else (a path, a URL, a pattern, a group, an option, apt's
/// trailing `-`/`+` action suffixes).
///
/// * `name`: a letter or digit, then letters, digits and `+._-`, not ending in `-` or `.`, nor
///   in a single `+` (apt's suffixes; `g++` is a name);
/// * `arch` (apt's multi-arch qualifier): lowercase letters, digits, `_` and `-`;
/// * `version`: a letter or digit, then letters, digits and `.+~:_-`.
pub(crate) fn check_package_name(s: &str) -> Result<(), Invalid> {
    let help = "write a package name such as \"openssh-server\", optionally with `:arch` and a pinned version as `name=version`, such as \"curl=7.88.1-10\"; paths, URLs, patterns and options are not package names";
    if s.is_empty() {
        return Err(invalid(
            Code::BadPackageName,
            "a package name is empty",
            help,
        ));
    }
    if s.starts_with('-') {
        return Err(invalid(
            Code::BadPackageName,
            format!("package name `{s}` starts with `-` and would be read as an option"),
            help,
        ));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            Code::BadPackageName,
            format!("package name {s:?} contains whitespace"),
            help,
        ));
    }
    let (spec, version) = match s.split_once('=') {
        Some((spec, version)) => (spec, Some(version)),
        None => (s, None),
    };
    let (name, arch) = match spec.split_once(':') {
        Some((name, arch)) => (name, Some(arch)),
        None => (spec, None),
    };
    let name_ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'_' | b'-'))
        && !name.ends_with(['-', '.'])
        // apt reads a trailing `+` as "install"; `++` ends real names (`g++`).
        && (!name.ends_with('+') || name.ends_with("++"));
    let arch_ok = arch.is_none_or(|a| {
        !a.is_empty()
            && a.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
    });
    let version_ok = version.is_none_or(|v| {
        v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'~' | b':' | b'_' | b'-')
            })
    });
    if name_ok && arch_ok && version_ok {
        Ok(())
    } else {
        Err(invalid(
            Code::BadPackageName,
            format!("`{s}` is not a package name"),
            help,
        ))
    }
}

fn is_path_component(s: &str) -> bool {
    // [a-z0-9]+ separated by `.`, `_`, `__` or runs of `-`.
    !s.is_empty()
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// An image reference: `[domain[:port]/]path[:tag][@digest]` with a lowercase path.
pub(crate) fn check_image_reference(s: &str) -> Result<(), Invalid> {
    let help = "write an image reference such as \"debian:bookworm\" or \"registry.example.com/team/base:1.0\"; repository paths are lowercase";
    let bad = |why: &str| {
        invalid(
            Code::BadImageReference,
            format!("`{s}` is not a valid image reference: {why}"),
            help,
        )
    };
    if s.is_empty() {
        return Err(invalid(
            Code::BadImageReference,
            "the image reference is empty",
            help,
        ));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("it contains whitespace"));
    }
    let (name, digest) = match s.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (s, None),
    };
    if let Some(digest) = digest {
        let ok = digest.split_once(':').is_some_and(|(algo, hex)| {
            !algo.is_empty()
                && algo.bytes().all(|b| {
                    b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || matches!(b, b'+' | b'.' | b'_' | b'-')
                })
                && hex.len() >= 32
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !ok {
            return Err(bad("the digest must look like `sha256:<hex>`"));
        }
    }
    let last_slash = name.rfind('/');
    let (name, tag) = match name.rfind(':') {
        Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
            (&name[..colon], Some(&name[colon + 1..]))
        }
        _ => (name, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !ok {
            return Err(bad("the tag may hold letters, digits, `_`, `.` and `-`"));
        }
    }
    let mut components: Vec<&str> = name.split('/').collect();
    if components.len() > 1 {
        let first = components[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let (host, port) = match first.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'));
            let port_ok =
                port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if !host_ok || !port_ok {
                return Err(bad("the registry host is malformed"));
            }
            components.remove(0);
        }
    }
    for component in components {
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("the repository path must be lowercase"));
        }
        if !is_path_component(component) {
            return Err(bad(
                "each path component is lowercase letters and digits separated by `.`, `_` or `-`",
            ));
        }
    }
    // What is accepted here, `sysfile llb` and the frontend must be able to pull: the same parser.
    crate::reference::Reference::parse(s).map_err(|why| bad(&why))?;
    Ok(())
}

/// An OCI platform: `os/arch[/variant]`, lowercase.
pub(crate) fn check_platform(s: &str) -> Result<(), Invalid> {
    // The one parser, as the `platform` build option and `sysfile llb --platform` use it.
    if crate::platform::Platform::parse(s).is_ok() {
        Ok(())
    } else {
        Err(invalid(
            Code::BadPlatform,
            format!("`{s}` is not a platform"),
            "write `os/arch` or `os/arch/variant` in lowercase, such as \"linux/amd64\" or \"linux/arm64/v8\"",
        ))
    }
}

/// The unit suffixes systemd knows, in the order they are listed in help texts.
pub(crate) const UNIT_SUFFIXES: &[&str] = &[
    ".service",
    ".socket",
    ".target",
    ".timer",
    ".mount",
    ".automount",
    ".path",
    ".slice",
    ".scope",
    ".swap",
    ".device",
];

/// Validates a unit name and appends `default_suffix` (such as `.service`) when it has no known suffix.
pub(crate) fn normalize_unit(s: &str, default_suffix: &str) -> Result<String, Invalid> {
    let help = "unit names hold letters, digits and `:_.\\@-`, such as \"ssh\", \"nginx.service\" or \"getty@tty1.service\"";
    if s.is_empty() {
        return Err(invalid(Code::BadUnitName, "a unit name is empty", help));
    }
    if s.contains('/') {
        return Err(invalid(
            Code::BadUnitName,
            format!("`{s}` is a path, not a unit name"),
            "write only the unit's file name, such as \"ssh.service\"",
        ));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ":_.\\@-".contains(*c)))
    {
        return Err(invalid(
            Code::BadUnitName,
            format!("unit name `{s}` contains {c:?}"),
            help,
        ));
    }
    let name = if UNIT_SUFFIXES
        .iter()
        .any(|suffix| s.ends_with(suffix) && s.len() > suffix.len())
    {
        s.to_string()
    } else {
        format!("{s}{default_suffix}")
    };
    if name.len() > 255 {
        return Err(invalid(
            Code::BadUnitName,
            format!("unit name `{s}` is longer than 255 characters"),
            help,
        ));
    }
    if name.starts_with('@') || name.starts_with('.') || name.starts_with('-') {
        return Err(invalid(
            Code::BadUnitName,
            format!("`{s}` is not a unit name"),
            help,
        ));
    }
    Ok(name)
}

/// `foo@.service` (a template without an instance).
pub(crate) fn is_template_without_instance(unit: &str) -> bool {
    unit.rfind('.')
        .is_some_and(|dot| unit[..dot].ends_with('@'))
}

/// Which mount an id belongs to: the character sets differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdKind {
    /// A secret id: a name, also the file name under `/run/secrets`.
    Secret,
    /// An SSH agent id: a name.
    Ssh,
    /// A cache id: a name that may hold `/`, `:` and `@` (the default id is the target path).
    Cache,
}

/// The longest mount id accepted.
pub(crate) const MAX_ID_LEN: usize = 255;

/// A mount id: secret and SSH ids are `[A-Za-z0-9][A-Za-z0-9_.-]*`, so a secret's default
/// target `/run/secrets/<id>` is always one file directly under `/run/secrets`; cache ids may
/// also hold `/`, `:`, `@` and `+` but never a `.` or `..` component, whitespace or control
/// characters. At most 255 bytes.
pub(crate) fn check_id(s: &str, kind: IdKind) -> Result<(), Invalid> {
    let (what, help) = match kind {
        IdKind::Secret => (
            "secret id",
            "a secret id starts with a letter or digit and holds letters, digits, `_`, `.` and `-`, such as \"api_token\"; set `target` to mount it elsewhere",
        ),
        IdKind::Ssh => (
            "SSH agent id",
            "an SSH agent id starts with a letter or digit and holds letters, digits, `_`, `.` and `-`, such as \"default\"",
        ),
        IdKind::Cache => (
            "cache id",
            "a cache id starts with a letter, digit or `/` and holds letters, digits and `_.-/:@+`, such as \"apt-cache\"",
        ),
    };
    let ok = match kind {
        IdKind::Secret | IdKind::Ssh => is_context_name(s),
        IdKind::Cache => {
            s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '/')
                && s.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'_' | b'.' | b'-' | b'/' | b':' | b'@' | b'+')
                })
                && !s.split('/').any(|part| part == "." || part == "..")
        }
    };
    if s.is_empty() {
        return Err(invalid(Code::BadId, format!("the {what} is empty"), help));
    }
    if !ok || s.len() > MAX_ID_LEN {
        return Err(invalid(
            Code::BadId,
            format!("{s:?} is not a valid {what}"),
            help,
        ));
    }
    Ok(())
}

/// A named build context: `[A-Za-z0-9][A-Za-z0-9_.-]*`.
pub(crate) fn is_context_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score =
            strsim::jaro_winkler(&word.to_ascii_lowercase(), &candidate.to_ascii_lowercase());
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// `a`, `b` and `c` as "`a`, `b`, `c`".
pub(crate) fn list(items: &[&str]) -> String {
    items
        .iter()
        .map(|item| format!("`{item}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in [
            "",
            "s",
            "15",
            "15x",
            "-1s",
            "1.5s",
            " 10s",
            "10s ",
            "10 s",
            "99999999999999999999h",
            "18446744073709551615h",
        ] {
            assert_eq!(
                parse_duration(bad).unwrap_err().code,
                Code::BadDuration,
                "{bad}"
            );
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("64m"), Ok(64 << 20));
        assert_eq!(parse_size("64MB"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2gb"), Ok(2 << 30));
        for bad in [
            "",
            "m",
            "1t",
            "-1m",
            "99999999999999g",
            "64 m",
            " 64m",
            "64m ",
        ] {
            assert_eq!(parse_size(bad).unwrap_err().code, Code::BadSize, "{bad}");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("644"), Ok(0o644));
        assert_eq!(parse_mode("0o755"), Ok(0o755));
        assert_eq!(parse_mode("4755"), Ok(0o4755));
        for bad in ["", "0648", "rw-r--r--", "17777", "000000", " 644", "644 "] {
            assert_eq!(parse_mode(bad).unwrap_err().code, Code::BadMode, "{bad}");
        }
        assert!(check_mode(0o10000).is_err());
    }

    #[test]
    fn owners() {
        assert_eq!(
            parse_owner("root"),
            Ok(Owner {
                user: OwnerId::Name("root".into()),
                group: None
            })
        );
        assert_eq!(
            parse_owner("www-data:adm"),
            Ok(Owner {
                user: OwnerId::Name("www-data".into()),
                group: Some(OwnerId::Name("adm".into()))
            })
        );
        assert_eq!(
            parse_owner("1000:100"),
            Ok(Owner {
                user: OwnerId::Id(1000),
                group: Some(OwnerId::Id(100))
            })
        );
        for bad in ["", ":", "root:", ":root", "Root", "a:b:c", "99999999999"] {
            assert_eq!(parse_owner(bad).unwrap_err().code, Code::BadOwner, "{bad}");
        }
    }

    #[test]
    fn ports() {
        assert_eq!(
            parse_port("80"),
            Ok(Port {
                number: 80,
                protocol: Protocol::Tcp
            })
        );
        assert_eq!(
            parse_port("80/tcp"),
            Ok(Port {
                number: 80,
                protocol: Protocol::Tcp
            })
        );
        assert_eq!(
            parse_port("53/udp"),
            Ok(Port {
                number: 53,
                protocol: Protocol::Udp
            })
        );
        for bad in ["", "0", "65536", "80/sctp", "http", "+80", "80/"] {
            assert_eq!(parse_port(bad).unwrap_err().code, Code::BadPort, "{bad}");
        }
        assert!(port_number(65535).is_ok());
        assert!(port_number(0).is_err());
        assert!(port_number(-1).is_err());
    }

    #[test]
    fn context_paths() {
        assert_eq!(normalize_context_path("./a/../b").as_deref(), Ok("b"));
        assert_eq!(normalize_context_path("a//b/./c/").as_deref(), Ok("a/b/c"));
        assert_eq!(normalize_context_path(".").as_deref(), Ok("."));
        assert_eq!(normalize_context_path("a/..").as_deref(), Ok("."));
        for bad in ["..", "../x", "a/../../x", "/etc/passwd", "./.."] {
            assert_eq!(
                normalize_context_path(bad).unwrap_err().code,
                Code::PathEscapesContext,
                "{bad}"
            );
        }
        assert_eq!(
            normalize_context_path("").unwrap_err().code,
            Code::EmptyPath
        );
    }

    #[test]
    fn absolute_paths() {
        assert_eq!(
            normalize_absolute_path("/a/./b/../c/").as_deref(),
            Ok("/a/c")
        );
        assert_eq!(normalize_absolute_path("/").as_deref(), Ok("/"));
        assert_eq!(normalize_absolute_path("/../etc").as_deref(), Ok("/etc"));
        assert_eq!(
            normalize_absolute_path("etc").unwrap_err().code,
            Code::NotAbsolute
        );
        assert_eq!(
            normalize_absolute_path("").unwrap_err().code,
            Code::NotAbsolute
        );
    }

    #[test]
    fn names() {
        assert!(
            is_env_name("A_1")
                && is_env_name("_x")
                && !is_env_name("1A")
                && !is_env_name("A-B")
                && !is_env_name("")
        );
        assert!(is_user_name("admin") && is_user_name("_apt") && is_user_name("www-data"));
        assert!(!is_user_name("Admin") && !is_user_name("1x") && !is_user_name(&"a".repeat(33)));
        assert!(check_package_name("openssh-server").is_ok());
        assert!(check_package_name("libc6:amd64").is_ok());
        assert!(check_package_name("curl=7.88.1-10+deb12u5").is_ok());
        assert!(check_package_name("libc6:amd64=2.36-9").is_ok());
        assert!(check_package_name("python3.11").is_ok());
        assert!(check_package_name("g++").is_ok() && check_package_name("libstdc++6").is_ok());
        for bad in [
            "",
            "-y",
            "--allow-unauthenticated",
            "a b",
            "a\tb",
            // Package-manager syntax that is not a name: local files, URLs, patterns, groups,
            // apt's removal and install suffixes, release pins, globs, empty parts.
            "./local.deb",
            "/tmp/x.rpm",
            "https://example.com/x.rpm",
            "http://example.com/x.rpm",
            "?name(openssh)",
            "~nfoo",
            "@development-tools",
            "openssh-server-",
            "nginx+",
            "nginx/bookworm-backports",
            "ngin*",
            "task^",
            "curl=",
            "curl=*",
            ":amd64",
            "libc6:",
            "libc6:AMD64",
            "a,b",
        ] {
            assert_eq!(
                check_package_name(bad).unwrap_err().code,
                Code::BadPackageName,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ids() {
        for good in ["token", "api_token.v2", "A-1"] {
            assert_eq!(check_id(good, IdKind::Secret), Ok(()), "{good}");
            assert_eq!(check_id(good, IdKind::Ssh), Ok(()), "{good}");
        }
        for good in ["/var/cache/apt", "sysfile:apt:/var/cache/apt", "go@1.22+x"] {
            assert_eq!(check_id(good, IdKind::Cache), Ok(()), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../../..",
            "../../etc/shadow",
            "a/b",
            "-x",
            "a b",
            "a\rb",
        ] {
            assert_eq!(
                check_id(bad, IdKind::Secret).unwrap_err().code,
                Code::BadId,
                "{bad:?}"
            );
        }
        for bad in ["", "..", "a/../b", "/./x", "a b", "a\0", "*"] {
            assert_eq!(
                check_id(bad, IdKind::Cache).unwrap_err().code,
                Code::BadId,
                "{bad:?}"
            );
        }
        assert!(check_id(&"a".repeat(256), IdKind::Secret).is_err());
    }

    #[test]
    fn image_references() {
        for good in [
            "debian",
            "debian:bookworm",
            "local/debian:bookworm",
            "registry.example.com:5000/team/base:1.0",
            "localhost/x",
            "quay.io/centos/centos:stream9",
            "debian@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "My.Registry.io/team/app",
        ] {
            assert_eq!(check_image_reference(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Debian",
            "debian bookworm",
            "debian:",
            "a//b",
            "debian@sha256:xyz",
            "-x",
            "x:tag!",
            // Digests `sysfile llb` could not use: only sha256 with 64 lowercase hex digits.
            "debian@sha256:0123456789abcdef0123456789abcdef",
            "debian@sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "debian@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(
                check_image_reference(bad).unwrap_err().code,
                Code::BadImageReference,
                "{bad}"
            );
        }
    }

    #[test]
    fn platforms() {
        assert!(check_platform("linux/amd64").is_ok());
        assert!(check_platform("linux/arm64/v8").is_ok());
        for bad in ["linux", "linux/", "Linux/amd64", "linux/arm/v7/x"] {
            assert!(check_platform(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn units() {
        assert_eq!(
            normalize_unit("ssh", ".service").as_deref(),
            Ok("ssh.service")
        );
        assert_eq!(
            normalize_unit("docker.socket", ".service").as_deref(),
            Ok("docker.socket")
        );
        assert_eq!(
            normalize_unit("getty@tty1", ".service").as_deref(),
            Ok("getty@tty1.service")
        );
        assert_eq!(
            normalize_unit("multi-user", ".target").as_deref(),
            Ok("multi-user.target")
        );
        assert_eq!(
            normalize_unit("a\\x2db.mount", ".service").as_deref(),
            Ok("a\\x2db.mount")
        );
        for bad in [
            "",
            "/etc/systemd/x.service",
            "a b",
            "ünit",
            ".service",
            "@.service",
        ] {
            assert_eq!(
                normalize_unit(bad, ".service").unwrap_err().code,
                Code::BadUnitName,
                "{bad}"
            );
        }
        assert!(normalize_unit(&"a".repeat(250), ".service").is_err());
        assert!(is_template_without_instance("foo@.service"));
        assert!(!is_template_without_instance("foo@bar.service"));
        assert!(!is_template_without_instance("foo.service"));
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("frmo", ["from", "platform", "title"]),
            Some("from")
        );
        assert_eq!(did_you_mean("zzzz", ["from", "platform", "title"]), None);
        assert_eq!(list(&["a", "b"]), "`a`, `b`");
    }
}
