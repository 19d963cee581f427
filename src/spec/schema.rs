//! The one description of the spec language's tables and keys.
//!
//! The loader takes its known-key lists (and so its "accepts …" and
//! "did you mean" help) from [`SPEC`], the include merge takes each key's kind
//! (scalar, list, map) from it, and [`json_schema`] turns it into a JSON
//! Schema for editors. `tests/schema.rs` checks `docs/spec.md` against it.

use crate::model::{CacheSharing, Health, LogLevel, Network, PackageManager, Phase};
use serde_json::{Map, Value, json};

/// The type of a key's value, which also decides how includes merge it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// Any string (interpolated).
    String,
    Bool,
    /// A whole number in a range.
    Integer {
        min: i64,
        max: i64,
    },
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
    /// A string in one of the documented value formats.
    Format(Format),
    /// An array of values of one format.
    List(Format),
    /// A table of strings (`env`, `labels`).
    StringMap,
    /// A table of environment variables (names `[A-Za-z_][A-Za-z0-9_]*`).
    EnvMap,
    /// `[args]`: a table of strings, integers or booleans.
    ArgMap,
    /// An array of mount tables (see [`MOUNTS`]).
    Mounts,
}

/// The value formats of `docs/spec.md`, "Value formats".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Any string.
    Text,
    Duration,
    Size,
    Mode,
    Owner,
    Port,
    ContextPath,
    AbsolutePath,
    ImageReference,
    Platform,
    UnitName,
    PackageName,
    /// `[[run]] user`: `user`, `user:group` or `uid:gid`.
    User,
    /// The name of a named build context.
    ContextName,
    /// A lint rule: its code (`unpinned-base-image`) or name (`UnpinnedBaseImage`).
    LintRule,
}

/// How includes merge a key set in several files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// Set in one file only (the main Sysfile may override an include).
    Scalar,
    /// Arrays concatenate in include order.
    List,
    /// Tables of strings merge, the later file winning.
    Map,
}

impl Type {
    pub fn merge(self) -> Merge {
        match self {
            Type::List(_) | Type::Mounts => Merge::List,
            Type::StringMap | Type::EnvMap | Type::ArgMap => Merge::Map,
            _ => Merge::Scalar,
        }
    }
}

/// One key of a table.
#[derive(Clone, Copy, Debug)]
pub struct KeyDef {
    pub name: &'static str,
    pub ty: Type,
    pub required: bool,
    /// The default as a JSON literal, when there is a fixed one.
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

/// How a top-level key is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    /// `[name]`.
    Table,
    /// `[[name]]` entries.
    ArrayOfTables,
    /// A top-level key with a value, such as `include = […]`.
    Value(Type),
    /// `[args]`: free names.
    Args,
}

/// One top-level table (or key) of the language.
#[derive(Clone, Copy, Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub kind: TableKind,
    pub required: bool,
    pub doc: &'static str,
    pub keys: &'static [KeyDef],
}

impl TableDef {
    /// The names of its keys, in documentation order.
    pub fn key_names(&self) -> Vec<&'static str> {
        self.keys.iter().map(|k| k.name).collect()
    }

    pub fn key(&self, name: &str) -> Option<&'static KeyDef> {
        self.keys.iter().find(|k| k.name == name)
    }
}

const fn key(name: &'static str, ty: Type, doc: &'static str) -> KeyDef {
    KeyDef {
        name,
        ty,
        required: false,
        default: None,
        doc,
    }
}

const fn req(name: &'static str, ty: Type, doc: &'static str) -> KeyDef {
    KeyDef {
        required: true,
        ..key(name, ty, doc)
    }
}

const fn dft(name: &'static str, ty: Type, default: &'static str, doc: &'static str) -> KeyDef {
    KeyDef {
        default: Some(default),
        ..key(name, ty, doc)
    }
}

/// Every table of the language, top-level keys in documentation order.
pub const SPEC: &[TableDef] = &[
    TableDef {
        name: "include",
        kind: TableKind::Value(Type::List(Format::ContextPath)),
        required: false,
        doc: "Sysfile fragments applied before this file, as build-context paths",
        keys: &[],
    },
    TableDef {
        name: "image",
        kind: TableKind::Table,
        required: true,
        doc: "The base image and the image's description",
        keys: &[
            req(
                "from",
                Type::Format(Format::ImageReference),
                "Base image reference: [registry[:port]/]path[:tag][@digest]",
            ),
            key(
                "platform",
                Type::Format(Format::Platform),
                "OCI platform os/arch[/variant], such as linux/amd64",
            ),
            key(
                "platforms",
                Type::List(Format::Platform),
                "Several platforms for one multi-platform image; instead of `platform`",
            ),
            key("title", Type::String, "Human title of the image"),
            key(
                "description",
                Type::String,
                "Human description of the image",
            ),
        ],
    },
    TableDef {
        name: "args",
        kind: TableKind::Args,
        required: false,
        doc: "Build arguments and their defaults; the comment above each is its description",
        keys: &[],
    },
    TableDef {
        name: "packages",
        kind: TableKind::Table,
        required: false,
        doc: "Packages installed and removed with the base image's package manager",
        keys: &[
            dft(
                "install",
                Type::List(Format::PackageName),
                "[]",
                "Packages to install",
            ),
            dft(
                "remove",
                Type::List(Format::PackageName),
                "[]",
                "Packages to remove",
            ),
            key(
                "manager",
                Type::Enum(PackageManager::NAMES),
                "The package manager (default: detected from the base image)",
            ),
            dft(
                "recommends",
                Type::Bool,
                "false",
                "Also install the packages' recommended (weak) dependencies",
            ),
        ],
    },
    TableDef {
        name: "files",
        kind: TableKind::ArrayOfTables,
        required: false,
        doc: "Files copied into the image, or removed from it",
        keys: &[
            key(
                "src",
                Type::Format(Format::ContextPath),
                "A file or directory of the build context (or of the named context `from`)",
            ),
            key(
                "content",
                Type::Format(Format::Text),
                "Inline file content, used verbatim (never interpolated)",
            ),
            key(
                "remove",
                Type::Bool,
                "Remove `dest` (a file, or a directory with all it holds) instead of writing it; it must exist",
            ),
            req(
                "dest",
                Type::Format(Format::AbsolutePath),
                "Where it goes in the image; a trailing / means into that directory",
            ),
            key("mode", Type::Format(Format::Mode), "Permission bits"),
            key(
                "owner",
                Type::Format(Format::Owner),
                "Owner of the copied files: user, user:group or uid:gid",
            ),
            key(
                "from",
                Type::Format(Format::ContextName),
                "A named build context (--build-context NAME=…) to take `src` from; default: the main context",
            ),
            dft(
                "lint_skip",
                Type::List(Format::LintRule),
                "[]",
                "Lint rules not reported for this entry",
            ),
        ],
    },
    TableDef {
        name: "users",
        kind: TableKind::ArrayOfTables,
        required: false,
        doc: "Users created in the image",
        keys: &[
            req(
                "name",
                Type::String,
                "User name: [a-z_][a-z0-9_-]*, at most 32 characters",
            ),
            key(
                "uid",
                Type::Integer {
                    min: 0,
                    max: 2_147_483_647,
                },
                "User id (default: chosen by the system)",
            ),
            dft(
                "groups",
                Type::List(Format::Text),
                "[]",
                "Supplementary groups",
            ),
            key("shell", Type::Format(Format::AbsolutePath), "Login shell"),
            dft(
                "authorized_keys",
                Type::List(Format::ContextPath),
                "[]",
                "Public-key files of the build context, concatenated into ~/.ssh/authorized_keys",
            ),
        ],
    },
    TableDef {
        name: "run",
        kind: TableKind::ArrayOfTables,
        required: false,
        doc: "Build steps",
        keys: &[
            key("name", Type::String, "Shown in build progress"),
            key(
                "sh",
                Type::Format(Format::Text),
                "Script run by /bin/sh -c; never interpolated (build arguments are environment variables)",
            ),
            key(
                "argv",
                Type::List(Format::Text),
                "Program and arguments, run without a shell",
            ),
            dft("env", Type::EnvMap, "{}", "Extra environment"),
            key(
                "workdir",
                Type::Format(Format::AbsolutePath),
                "Working directory",
            ),
            key(
                "user",
                Type::Format(Format::User),
                "User to run as (default: root)",
            ),
            dft(
                "network",
                Type::Enum(Network::NAMES),
                "\"default\"",
                "Network mode",
            ),
            dft(
                "phase",
                Type::Enum(Phase::NAMES),
                "\"after-packages\"",
                "When the step runs: before [packages], or after packages, then users, then files",
            ),
            dft("mounts", Type::Mounts, "[]", "Mounts of the step"),
            dft(
                "lint_skip",
                Type::List(Format::LintRule),
                "[]",
                "Lint rules not reported for this step",
            ),
            dft(
                "check",
                Type::Bool,
                "false",
                "A check (such as nginx -t): runs on the final filesystem whatever its phase; its changes are discarded",
            ),
            key(
                "reads",
                Type::List(Format::AbsolutePath),
                "Paths of earlier [[files]] the step reads or changes; files outside them are not rebuilt before it, and a check does not see (or re-run for) leaf files outside them (default: everything)",
            ),
        ],
    },
    TableDef {
        name: "services",
        kind: TableKind::Table,
        required: false,
        doc: "Unit states",
        keys: &[
            dft(
                "enable",
                Type::List(Format::UnitName),
                "[]",
                "Units to enable",
            ),
            dft(
                "disable",
                Type::List(Format::UnitName),
                "[]",
                "Units to disable",
            ),
            dft("mask", Type::List(Format::UnitName), "[]", "Units to mask"),
        ],
    },
    TableDef {
        name: "systemd",
        kind: TableKind::Table,
        required: false,
        doc: "The systemd manager in the container",
        keys: &[
            dft(
                "target",
                Type::Format(Format::UnitName),
                "\"multi-user.target\"",
                "The default target",
            ),
            key(
                "log_level",
                Type::Enum(LogLevel::NAMES),
                "The manager's log level (default: systemd's)",
            ),
            dft(
                "container",
                Type::String,
                "\"docker\"",
                "The container= value; lowercase [a-z0-9-]+",
            ),
            dft(
                "console_logs",
                Type::Bool,
                "false",
                "Forward the journal to the console (docker logs)",
            ),
            dft(
                "stop_timeout",
                Type::Format(Format::Duration),
                "\"20s\"",
                "systemd's DefaultTimeoutStopSec; more than 0, at most 1h",
            ),
            dft(
                "health",
                Type::Enum(Health::NAMES),
                "\"running\"",
                "What systemctl is-system-running must say for the container to be healthy",
            ),
            dft(
                "health_start_period",
                Type::Format(Format::Duration),
                "\"60s\"",
                "How long failed health checks do not count after the container starts",
            ),
            dft(
                "keep",
                Type::List(Format::UnitName),
                "[]",
                "Units never masked by sysfile's default mask lists",
            ),
        ],
    },
    TableDef {
        name: "config",
        kind: TableKind::Table,
        required: false,
        doc: "Image configuration",
        keys: &[
            dft(
                "env",
                Type::EnvMap,
                "{}",
                "Image environment (and the manager's DefaultEnvironment)",
            ),
            dft("labels", Type::StringMap, "{}", "Image labels"),
            dft("expose", Type::List(Format::Port), "[]", "Exposed ports"),
            dft("volumes", Type::List(Format::AbsolutePath), "[]", "Volumes"),
            key(
                "workdir",
                Type::Format(Format::AbsolutePath),
                "Working directory",
            ),
        ],
    },
    TableDef {
        name: "lint",
        kind: TableKind::Table,
        required: false,
        doc: "Lint rules silenced for the whole spec",
        keys: &[dft(
            "skip",
            Type::List(Format::LintRule),
            "[]",
            "Lint rules not reported (kebab-case codes or PascalCase names)",
        )],
    },
];

/// The keys of each mount type (`type` first).
pub const MOUNTS: &[(&str, &str, &[KeyDef])] = &[
    (
        "bind",
        "A directory of the build context or of an image",
        &[
            req("type", Type::Enum(&["bind"]), "The mount type"),
            req("target", Type::Format(Format::AbsolutePath), "Mount point"),
            req(
                "source",
                Type::Format(Format::Text),
                "A build-context path (from = \"context\") or an absolute path in the image",
            ),
            dft(
                "from",
                Type::Format(Format::Text),
                "\"context\"",
                "\"context\", an image reference, or the name of a named build context",
            ),
            dft("readonly", Type::Bool, "true", "Read-only mount"),
        ],
    ),
    (
        "cache",
        "A persistent cache directory",
        &[
            req("type", Type::Enum(&["cache"]), "The mount type"),
            req("target", Type::Format(Format::AbsolutePath), "Mount point"),
            key("id", Type::String, "Cache id (default: the target path)"),
            dft(
                "sharing",
                Type::Enum(CacheSharing::NAMES),
                "\"locked\"",
                "How concurrent builds share the cache",
            ),
        ],
    ),
    (
        "tmpfs",
        "A tmpfs",
        &[
            req("type", Type::Enum(&["tmpfs"]), "The mount type"),
            req("target", Type::Format(Format::AbsolutePath), "Mount point"),
            key("size", Type::Format(Format::Size), "Size limit"),
        ],
    ),
    (
        "secret",
        "A build secret as a file",
        &[
            req("type", Type::Enum(&["secret"]), "The mount type"),
            req("id", Type::String, "Secret id (--secret id=…)"),
            key(
                "target",
                Type::Format(Format::AbsolutePath),
                "Mount point (default: /run/secrets/<id>)",
            ),
            dft(
                "required",
                Type::Bool,
                "true",
                "Fail when the secret is not given",
            ),
            key(
                "mode",
                Type::Format(Format::Mode),
                "File mode (default 0400)",
            ),
            dft(
                "uid",
                Type::Integer {
                    min: 0,
                    max: 2_147_483_647,
                },
                "0",
                "Owner of the secret file (a `user` step that is not root needs its uid here)",
            ),
            dft(
                "gid",
                Type::Integer {
                    min: 0,
                    max: 2_147_483_647,
                },
                "0",
                "Group of the secret file",
            ),
        ],
    ),
    (
        "ssh",
        "The SSH agent socket",
        &[
            req("type", Type::Enum(&["ssh"]), "The mount type"),
            dft(
                "id",
                Type::String,
                "\"default\"",
                "SSH agent id (--ssh id=…)",
            ),
            key(
                "target",
                Type::Format(Format::AbsolutePath),
                "Socket path (default: /run/buildkit/ssh_agent.0)",
            ),
        ],
    ),
];

/// The table named `name`.
pub fn table(name: &str) -> Option<&'static TableDef> {
    SPEC.iter().find(|t| t.name == name)
}

/// The key names of table `name` (empty for an unknown table).
pub(crate) fn keys_of(name: &str) -> Vec<&'static str> {
    table(name).map(TableDef::key_names).unwrap_or_default()
}

/// The top-level keys.
pub(crate) fn top_keys() -> Vec<&'static str> {
    SPEC.iter().map(|t| t.name).collect()
}

/// The mount types.
pub(crate) fn mount_types() -> Vec<&'static str> {
    MOUNTS.iter().map(|(name, _, _)| *name).collect()
}

/// The keys of one mount type (the ssh keys for an unknown type).
pub(crate) fn mount_keys(kind: &str) -> Vec<&'static str> {
    MOUNTS
        .iter()
        .find(|(name, _, _)| *name == kind)
        .or(MOUNTS.last())
        .map(|(_, _, keys)| keys.iter().map(|k| k.name).collect())
        .unwrap_or_default()
}

/// Every mount key of any type, each once.
pub(crate) fn all_mount_keys() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (_, _, keys) in MOUNTS {
        for k in *keys {
            if !out.contains(&k.name) {
                out.push(k.name);
            }
        }
    }
    out
}

/// How includes merge `key` of top-level table `table` (`None`: not a known key).
pub(crate) fn merge_of(table_name: &str, key_name: &str) -> Option<Merge> {
    let t = table(table_name)?;
    match t.kind {
        TableKind::Args => Some(Merge::Map),
        _ => t.key(key_name).map(|k| k.ty.merge()),
    }
}

/// A string matching `pattern`, or any string holding a `${NAME}` reference (checked once interpolated).
fn pattern(pattern: &str) -> Value {
    json!({ "type": "string", "pattern": format!("^(?:{pattern})$|\\$\\{{") })
}

fn format_schema(format: Format) -> Value {
    match format {
        Format::Text => json!({ "type": "string" }),
        Format::Duration => json!({
            "oneOf": [
                pattern("[0-9]+ ?(?:ms|s|m|h)"),
                { "type": "integer", "minimum": 0 }
            ],
            "description": "A duration: \"500ms\", \"15s\", \"2m\", \"1h\", or integer seconds"
        }),
        Format::Size => json!({
            "oneOf": [
                pattern("[0-9]+ ?[kKmMgG][bB]?"),
                { "type": "integer", "minimum": 0 }
            ],
            "description": "A size: \"64m\", \"1G\", \"512kb\" (1024-based), or integer bytes"
        }),
        Format::Mode => json!({
            "oneOf": [
                pattern("0?[0-7]{1,4}"),
                { "type": "integer", "minimum": 0, "maximum": 4095 }
            ],
            "description": "An octal mode: \"0644\", or a TOML octal integer such as 0o755"
        }),
        Format::Owner | Format::User => json!({
            "type": "string",
            "pattern": "^(?:[a-z_][a-z0-9_-]*|[0-9]+)(?::(?:[a-z_][a-z0-9_-]*|[0-9]+))?$|\\$\\{",
            "description": "\"user\", \"user:group\" or \"uid:gid\""
        }),
        Format::Port => json!({
            "oneOf": [
                { "type": "integer", "minimum": 1, "maximum": 65535 },
                pattern("[0-9]{1,5}(?:/(?:tcp|udp))?")
            ],
            "description": "A port: 80, \"443/tcp\", \"53/udp\""
        }),
        Format::ContextPath => json!({
            "type": "string",
            "minLength": 1,
            "pattern": "^[^/]",
            "description": "A path relative to the build context root"
        }),
        Format::AbsolutePath => json!({
            "type": "string",
            "pattern": "^/|\\$\\{",
            "description": "An absolute path in the image"
        }),
        Format::ImageReference => json!({
            "type": "string",
            "pattern": "^\\S+$"
        }),
        Format::Platform => pattern("[a-z0-9_.-]+/[a-z0-9_.-]+(?:/[a-z0-9_.-]+)?"),
        Format::UnitName => json!({
            "type": "string",
            "pattern": "^[A-Za-z0-9:_.\\\\@-]+$|\\$\\{",
            "maxLength": 255,
            "description": "A systemd unit name; .service is appended without a suffix"
        }),
        Format::PackageName => json!({
            "type": "string",
            "pattern": "^[^\\s-]\\S*$"
        }),
        Format::ContextName => pattern("[A-Za-z0-9][A-Za-z0-9_.-]*"),
        Format::LintRule => json!({
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z-]*$",
            "description": "A lint rule's code (\"unpinned-base-image\") or name (\"UnpinnedBaseImage\"), see docs/lint.md"
        }),
    }
}

fn type_schema(ty: Type) -> Value {
    match ty {
        Type::String => json!({ "type": "string" }),
        Type::Bool => json!({ "type": "boolean" }),
        Type::Integer { min, max } => {
            json!({ "type": "integer", "minimum": min, "maximum": max })
        }
        Type::Enum(values) => json!({ "type": "string", "enum": values }),
        Type::Format(format) => format_schema(format),
        Type::List(format) => json!({ "type": "array", "items": format_schema(format) }),
        Type::StringMap => json!({
            "type": "object",
            "additionalProperties": { "type": "string" }
        }),
        Type::EnvMap => json!({
            "type": "object",
            "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
            "additionalProperties": { "type": "string" }
        }),
        Type::ArgMap => json!({
            "type": "object",
            "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
            "additionalProperties": { "type": ["string", "integer", "boolean"] }
        }),
        Type::Mounts => json!({
            "type": "array",
            "items": { "$ref": "#/definitions/mount" }
        }),
    }
}

fn key_schema(k: &KeyDef) -> Value {
    let mut schema = type_schema(k.ty);
    if let Value::Object(object) = &mut schema {
        let doc = match object.get("description").and_then(Value::as_str) {
            Some(format) => format!("{}. {format}", k.doc),
            None => k.doc.to_string(),
        };
        object.insert("description".into(), Value::String(doc));
        if let Some(default) = k.default.and_then(|d| serde_json::from_str(d).ok()) {
            object.insert("default".into(), default);
        }
    }
    schema
}

fn object_schema(doc: &str, keys: &[KeyDef]) -> Value {
    let mut properties = Map::new();
    for k in keys {
        properties.insert(k.name.to_string(), key_schema(k));
    }
    let required: Vec<&str> = keys.iter().filter(|k| k.required).map(|k| k.name).collect();
    let mut object = json!({
        "type": "object",
        "description": doc,
        "properties": properties,
        "additionalProperties": false,
    });
    if !required.is_empty() {
        object["required"] = json!(required);
    }
    object
}

/// The JSON Schema (draft-07) of a Sysfile, for editors (Even Better TOML / taplo).
pub fn json_schema() -> Value {
    let mut properties = Map::new();
    for t in SPEC {
        let schema = match t.kind {
            TableKind::Table => object_schema(t.doc, t.keys),
            TableKind::ArrayOfTables => json!({
                "type": "array",
                "description": t.doc,
                "items": object_schema(t.doc, t.keys),
            }),
            TableKind::Args => {
                let mut s = type_schema(Type::ArgMap);
                s["description"] = json!(t.doc);
                s
            }
            TableKind::Value(ty) => {
                let mut s = type_schema(ty);
                s["description"] = json!(t.doc);
                s
            }
        };
        properties.insert(t.name.to_string(), schema);
    }
    let mounts: Vec<Value> = MOUNTS
        .iter()
        .map(|(_, doc, keys)| object_schema(doc, keys))
        .collect();
    let required: Vec<&str> = SPEC.iter().filter(|t| t.required).map(|t| t.name).collect();
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Sysfile",
        "description": "A Sysfile: a declarative TOML spec of a systemd system container, built by the sysfile BuildKit frontend",
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
        "definitions": {
            "mount": { "oneOf": mounts }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_json() {
        for t in SPEC {
            for k in t.keys {
                if let Some(d) = k.default {
                    assert!(
                        serde_json::from_str::<Value>(d).is_ok(),
                        "{}.{}",
                        t.name,
                        k.name
                    );
                }
            }
        }
    }

    #[test]
    fn merge_kinds() {
        assert_eq!(merge_of("image", "from"), Some(Merge::Scalar));
        assert_eq!(merge_of("packages", "install"), Some(Merge::List));
        assert_eq!(merge_of("config", "env"), Some(Merge::Map));
        assert_eq!(merge_of("args", "ANY"), Some(Merge::Map));
        assert_eq!(merge_of("image", "nope"), None);
        assert_eq!(mount_keys("cache"), ["type", "target", "id", "sharing"]);
    }

    /// The backticked name at the start of a table cell: "`from`" gives `from`.
    fn leading_code(cell: &str) -> Option<&str> {
        let rest = cell.trim().strip_prefix('`')?;
        Some(&rest[..rest.find('`')?])
    }

    /// The mount keys of a row of the mounts table: the leading name of each top-level item.
    fn mount_row_keys(cell: &str) -> Vec<&str> {
        let mut keys = Vec::new();
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in cell.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    keys.extend(leading_code(&cell[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
        keys.extend(leading_code(&cell[start..]));
        keys
    }

    #[test]
    fn docs_mention_every_key() {
        let docs = include_str!("../../docs/spec.md");
        let mentioned = |name: &str| docs.contains(&format!("`{name}`"));
        for t in SPEC {
            assert!(
                mentioned(t.name),
                "docs/spec.md does not mention `{}`",
                t.name
            );
            for k in t.keys {
                assert!(
                    mentioned(k.name),
                    "docs/spec.md does not mention `{}.{}`",
                    t.name,
                    k.name
                );
            }
        }
        for (kind, _, keys) in MOUNTS {
            assert!(
                mentioned(kind),
                "docs/spec.md does not mention mount type `{kind}`"
            );
            for k in *keys {
                assert!(
                    mentioned(k.name),
                    "docs/spec.md does not mention mount key `{}`",
                    k.name
                );
            }
        }
    }

    #[test]
    fn docs_key_tables_name_schema_keys() {
        let docs = include_str!("../../docs/spec.md");
        let mut section = String::new();
        let mut in_key_table = false;
        let mut checked = 0;
        for line in docs.lines() {
            if line.starts_with('#') {
                section = line
                    .split('`')
                    .nth(1)
                    .unwrap_or(if line.contains("Mounts") {
                        "mounts"
                    } else {
                        ""
                    })
                    .trim_matches(['[', ']'])
                    .to_string();
                in_key_table = false;
                continue;
            }
            if !line.starts_with('|') {
                in_key_table = false;
                continue;
            }
            if line.starts_with("| Key |") || line.starts_with("| `type` |") {
                in_key_table = true;
                continue;
            }
            if !in_key_table || line.starts_with("|---") {
                continue;
            }
            let cells: Vec<&str> = line.split('|').collect();
            let Some(name) = cells.get(1).and_then(|c| leading_code(c)) else {
                continue;
            };
            if section == "mounts" {
                assert!(
                    mount_types().contains(&name),
                    "docs: unknown mount type `{name}`"
                );
                for key in mount_row_keys(cells.get(2).unwrap_or(&"")) {
                    assert!(
                        mount_keys(name).contains(&key),
                        "docs: `{key}` is not a {name} mount key"
                    );
                    checked += 1;
                }
                continue;
            }
            let t = table(&section)
                .unwrap_or_else(|| panic!("docs: key table in unknown section `{section}`"));
            let known = t.key(name).is_some() || (t.keys.is_empty() && name == t.name);
            assert!(
                known,
                "docs: `{name}` is not a key of `{section}` in the schema"
            );
            checked += 1;
        }
        let keys: usize = SPEC.iter().map(|t| t.keys.len().max(1)).sum::<usize>() - 1;
        assert!(
            checked >= keys,
            "only {checked} documented keys were checked"
        );
    }

    #[test]
    fn schema_snapshot() {
        let text = serde_json::to_string_pretty(&json_schema()).unwrap();
        insta::assert_snapshot!(text);
    }
}
