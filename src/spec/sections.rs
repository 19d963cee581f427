//! One function per table of the spec language, turning the spanned TOML tree into the `model`.
//!
//! Each function reports what is wrong and returns a best-effort value (with
//! placeholders where a value was wrong); `load` drops the spec when any
//! error was reported, so placeholders never escape.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::LoadOptions;
use super::schema;
use super::values::{self, did_you_mean, list};
use super::walk::{Ctx, Table, Value, integer_value};
use crate::diag::Code;
use crate::model::*;

fn mount_keys(kind: &str) -> Vec<&'static str> {
    schema::mount_keys(kind)
}

/// Targets after which the default target is reached before any ordinary service starts.
const EARLY_BOOT_TARGETS: &[&str] = &[
    "sysinit.target",
    "basic.target",
    "sockets.target",
    "paths.target",
    "timers.target",
    "slices.target",
    "swap.target",
    "local-fs.target",
    "local-fs-pre.target",
    "remote-fs.target",
    "emergency.target",
];

const MAX_STOP_TIMEOUT: Duration = Duration::from_secs(3600);

/// Build arguments BuildKit and docker pass on their own; never reported as undeclared.
fn is_builtin_arg(name: &str) -> bool {
    const PROXIES: &[&str] = &[
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "FTP_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
    ];
    const PLATFORM: &[&str] = &[
        "SOURCE_DATE_EPOCH",
        "TARGETPLATFORM",
        "TARGETOS",
        "TARGETARCH",
        "TARGETVARIANT",
        "BUILDPLATFORM",
        "BUILDOS",
        "BUILDARCH",
        "BUILDVARIANT",
    ];
    name.starts_with("BUILDKIT_")
        || PROXIES.iter().any(|p| p.eq_ignore_ascii_case(name))
        || PLATFORM.contains(&name)
}

/// Walks the (merged) root table of the spec and assembles the model.
pub(crate) fn check(ctx: &mut Ctx<'_>, root: &DeTable<'_>, options: &LoadOptions) -> Option<Spec> {
    let anchor = ctx.main_anchor();
    let mut root = Table::new("the Sysfile", anchor.clone(), root);
    ctx.check_keys(&mut root, &schema::top_keys());

    let image_value = root.get("image");
    let image_span = image_value.map_or(anchor, |v| v.span());
    let args = args(ctx, root.get("args"), &image_span, options);
    let image = image(ctx, image_value);
    let packages = packages(ctx, root.get("packages"), &image_span);
    let files = root.get("files").map(|v| files(ctx, v)).unwrap_or_default();
    let users = root.get("users").map(|v| users(ctx, v)).unwrap_or_default();
    let runs = root.get("run").map(|v| runs(ctx, v)).unwrap_or_default();
    let services = root
        .get("services")
        .map(|v| services(ctx, v))
        .unwrap_or_default();
    let systemd = systemd(ctx, root.get("systemd"), &image_span);
    let config = root
        .get("config")
        .map(|v| config(ctx, v))
        .unwrap_or_default();

    let lint_skip = match root
        .get("lint")
        .and_then(|v| ctx.table("lint", v, "`[lint]`"))
    {
        Some(mut table) => {
            ctx.check_keys(&mut table, &schema::keys_of("lint"));
            table
                .get("skip")
                .map(|v| ctx.strings("skip", v))
                .unwrap_or_default()
        }
        None => Vec::new(),
    };
    let templates = std::mem::take(&mut ctx.templates);
    image.map(|image| Spec {
        image,
        args,
        templates,
        packages,
        files,
        users,
        runs,
        services,
        systemd,
        config,
        lint_skip,
    })
}

/// A `skip`/`lint_skip` list of rule names, as written (the lint checks the names: the
/// loader does not know the rules).
fn lint_skip(ctx: &mut Ctx<'_>, value: Option<&Value<'_>>) -> Vec<Spanned<String>> {
    value
        .map(|v| ctx.strings("lint_skip", v))
        .unwrap_or_default()
}

/// The `#` comment lines directly above the line holding `offset`, without the `# `.
fn comment_above(text: &str, offset: usize) -> String {
    let Some(before) = text.get(..offset) else {
        return String::new();
    };
    let mut end = before.rfind('\n').map_or(0, |i| i + 1);
    let mut lines = Vec::new();
    while end > 0 {
        let line_end = end - 1;
        let line_start = before[..line_end].rfind('\n').map_or(0, |i| i + 1);
        let line = before[line_start..line_end].trim();
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        lines.push(comment.strip_prefix(' ').unwrap_or(comment).trim_end());
        end = line_start;
    }
    lines.reverse();
    lines.join("\n")
}

fn args(
    ctx: &mut Ctx<'_>,
    value: Option<&Value<'_>>,
    image_span: &Range<usize>,
    options: &LoadOptions,
) -> Vec<BuildArg> {
    let mut out = Vec::new();
    let table = value.and_then(|v| ctx.table("args", v, "`[args]`"));
    if let Some(table) = &table {
        for (key, value) in &table.entries {
            let name: &str = key.get_ref();
            if !values::is_env_name(name) {
                ctx.error(
                    Code::BadArgName,
                    key.span(),
                    format!("`{name}` is not a valid build-argument name"),
                    "invalid name",
                    "build-argument names start with a letter or `_` and hold letters, digits and `_`, such as `APP_VERSION`",
                );
                continue;
            }
            let default = match value.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Boolean(b) => b.to_string(),
                DeValue::Integer(_) => match integer_value(value.get_ref()) {
                    Some(n) => n.to_string(),
                    None => ctx.text.get(value.span()).unwrap_or_default().to_string(),
                },
                _ => {
                    ctx.error(
                        Code::WrongType,
                        value.span(),
                        format!(
                            "expected a string, found {}",
                            super::walk::type_name(value.get_ref())
                        ),
                        "expected a string",
                        format!("give `{name}` a default value in quotes, such as `{name} = \"\"`"),
                    );
                    continue;
                }
            };
            let effective = options
                .build_args
                .get(name)
                .cloned()
                .unwrap_or_else(|| default.clone());
            if name == "SOURCE_DATE_EPOCH" && parse_epoch(&effective).is_err() {
                ctx.error(
                    Code::BadValue,
                    key.span().start..value.span().end,
                    format!("SOURCE_DATE_EPOCH is `{effective}`, not Unix seconds"),
                    "not Unix seconds",
                    "write whole seconds since 1970, for example \"1700000000\"",
                );
            }
            ctx.args.insert(name.to_string(), effective.clone());
            out.push(BuildArg {
                name: name.to_string(),
                value: effective,
                default,
                description: comment_above(ctx.text, key.span().start),
                span: ctx.span(key.span().start..value.span().end),
            });
        }
    }
    let at = table
        .as_ref()
        .map_or_else(|| image_span.clone(), |t| t.span.clone());
    for name in options.build_args.keys() {
        if ctx.args.contains_key(name) || is_builtin_arg(name) {
            continue;
        }
        let help = match did_you_mean(name, ctx.args.keys().map(String::as_str)) {
            Some(candidate) => format!(
                "did you mean `{candidate}`? Otherwise declare it under `[args]` or drop the --build-arg"
            ),
            None => format!(
                "declare it under `[args]`, such as `{name} = \"\"`, or drop the --build-arg"
            ),
        };
        ctx.warning(
            Code::UndeclaredBuildArg,
            at.clone(),
            format!("build argument `{name}` was given but is not declared"),
            "not declared here",
            help,
        );
    }
    out
}

fn image(ctx: &mut Ctx<'_>, value: Option<&Value<'_>>) -> Option<Image> {
    let Some(value) = value else {
        ctx.error(
            Code::MissingKey,
            ctx.main_anchor(),
            "the Sysfile has no `[image]` table",
            "`[image]` is required",
            "start the Sysfile with `[image]` and `from = \"debian:bookworm\"` (the base image)",
        );
        return None;
    };
    let mut table = ctx.table("image", value, "`[image]`")?;
    ctx.check_keys(&mut table, &schema::keys_of("image"));
    let from = ctx
        .require(&table, "from", "\"debian:bookworm\"")
        .and_then(|v| ctx.string("from", v));
    if let Some(from) = &from {
        if let Err(e) = values::check_image_reference(&from.value) {
            ctx.invalid(from.span, e, "not an image reference");
        }
    }
    let platform = table
        .get("platform")
        .and_then(|v| ctx.string("platform", v));
    if let Some(platform) = &platform {
        if let Err(e) = values::check_platform(&platform.value) {
            ctx.invalid(platform.span, e, "not a platform");
        }
    }
    let mut platforms = Vec::new();
    if let Some(value) = table.get("platforms") {
        let items = ctx.strings("platforms", value);
        for item in &items {
            match values::check_platform(&item.value) {
                Ok(()) => platforms.push(item.clone()),
                Err(e) => ctx.invalid(item.span, e, "not a platform"),
            }
        }
        if let (Some(one), Some(first)) = (&platform, items.first()) {
            ctx.error(
                Code::ConflictingKeys,
                first.span,
                "`platform` and `platforms` are both set",
                "set one of them",
                format!(
                    "keep `platforms` and add {:?} to it, or keep `platform` alone",
                    &one.value
                ),
            );
        }
    }
    let title = table
        .get("title")
        .and_then(|v| ctx.string("title", v))
        .map(|s| s.value);
    let description = table
        .get("description")
        .and_then(|v| ctx.string("description", v))
        .map(|s| s.value);
    let span = ctx.span(table.span.clone());
    let from = from.unwrap_or_else(|| Spanned::new(String::new(), span));
    Some(Image {
        from,
        platform,
        platforms,
        title,
        description,
        span,
    })
}

fn packages(ctx: &mut Ctx<'_>, value: Option<&Value<'_>>, image_span: &Range<usize>) -> Packages {
    let Some(mut table) = value.and_then(|v| ctx.table("packages", v, "`[packages]`")) else {
        return Packages {
            span: ctx.span(image_span.clone()),
            ..Packages::default()
        };
    };
    ctx.check_keys(&mut table, &schema::keys_of("packages"));
    let names = |ctx: &mut Ctx<'_>, key: &str| -> Vec<Spanned<String>> {
        let Some(value) = table.get(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for name in ctx.strings(key, value) {
            match values::check_package_name(&name.value) {
                Ok(()) => out.push(name.clone()),
                Err(e) => ctx.invalid(name.span, e, "not a package name"),
            }
        }
        out
    };
    let install = names(ctx, "install");
    let remove = names(ctx, "remove");
    let manager = table.get("manager").and_then(|v| {
        ctx.choice("manager", v, PackageManager::CHOICES)
            .map(|m| Spanned::new(m, ctx.span(v.span())))
    });
    let recommends = table
        .get("recommends")
        .and_then(|v| ctx.bool("recommends", v))
        .unwrap_or_default();
    Packages {
        install,
        remove,
        manager,
        recommends,
        span: ctx.span(table.span.clone()),
    }
}

/// Reports `conflicting-keys` for each key of a `remove = true` entry that describes a file to
/// write: the entry removes `dest` and writes nothing.
fn removal_keys(ctx: &mut Ctx<'_>, table: &Table<'_, '_>) {
    for key in ["src", "content", "from", "mode", "owner"] {
        if let Some(at) = table.key_span(key) {
            ctx.error(
                Code::ConflictingKeys,
                at,
                format!("{} sets `remove = true` and `{key}`", table.what),
                "the entry removes `dest` and writes nothing",
                format!("leave out `{key}`, or drop `remove = true` to write `dest`"),
            );
        }
    }
}

/// Reports `conflicting-keys` when both of two mutually exclusive keys are set; `missing-key` when neither is.
fn exactly_one(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    (a, a_example): (&str, &str),
    (b, b_example): (&str, &str),
) {
    match (table.key_span(a), table.key_span(b)) {
        (Some(first), Some(second)) => {
            let (at, earlier, other) = if second.start > first.start {
                (second, first, a)
            } else {
                (first, second, b)
            };
            ctx.error(
                Code::ConflictingKeys,
                at,
                format!("{} sets both `{a}` and `{b}`", table.what),
                format!("`{other}` is already set"),
                format!("keep either `{a}` or `{b}`, not both"),
            );
            // Point at the first key and at the table's header too.
            let earlier = ctx.span(earlier);
            let header = ctx.span(table.span.clone());
            if let Some(d) = ctx.diagnostics.last_mut() {
                d.related.push((earlier, format!("`{other}` set here")));
                if header.start < header.end && header.end <= earlier.start {
                    d.related.push((header, "in this table".to_string()));
                }
            }
        }
        (None, None) if !table.typos.iter().any(|t| *t == a || *t == b) => ctx.error(
            Code::MissingKey,
            table.span.clone(),
            format!("{} needs `{a}` or `{b}`", table.what),
            format!("`{a}` or `{b}` is required here"),
            format!("add `{a} = {a_example}` or `{b} = {b_example}`"),
        ),
        _ => {}
    }
}

fn owner(ctx: &mut Ctx<'_>, value: &Value<'_>) -> Option<Owner> {
    let s = ctx.string("owner", value)?;
    values::parse_owner(&s.value)
        .map_err(|e| ctx.invalid(value.span(), e, "not an owner"))
        .ok()
}

fn files(ctx: &mut Ctx<'_>, value: &Value<'_>) -> Vec<FileEntry> {
    let mut out = Vec::new();
    for mut table in ctx.tables("files", value, "this `[[files]]` entry") {
        ctx.check_keys(&mut table, &schema::keys_of("files"));
        // `remove`'s value, if set, and where: the span of `remove = true`; a value that is not a
        // boolean is reported as such, not as a missing source.
        let remove = table
            .get("remove")
            .map(|v| (ctx.bool("remove", v), ctx.span(v.span())));
        let removal = match remove {
            Some((Some(true), span)) => Some(span),
            _ => None,
        };
        if removal.is_some() {
            removal_keys(ctx, &table);
        } else if !matches!(remove, Some((None, _))) {
            exactly_one(
                ctx,
                &table,
                ("src", "\"path/in/context\""),
                ("content", "\"inline text\""),
            );
        }
        // Both are checked even when both are set (a `conflicting-keys` error), to report everything.
        let src = table
            .get("src")
            .and_then(|v| ctx.context_path("src", v))
            .map(|p| Spanned::new(FileSource::Context(p.value), p.span));
        let content = table.get("content").and_then(|v| {
            let text = ctx.raw_string("content", v)?;
            Some(Spanned::new(FileSource::Content(text), ctx.span(v.span())))
        });
        let source = match removal {
            Some(span) => Some(Spanned::new(FileSource::Remove, span)),
            None => src.or(content),
        };
        let from = table.get("from").and_then(|v| {
            let name = ctx.string("from", v)?;
            if !values::is_context_name(&name.value) {
                ctx.error(
                    Code::BadContextName,
                    v.span(),
                    format!("`{}` is not a build-context name", &name.value),
                    "not a context name",
                    "name a context passed as `--build-context NAME=…`: letters, digits, `_`, `.` and `-`, starting with a letter or digit; leave `from` out for the main context",
                );
                return None;
            }
            if matches!(source.as_ref().map(|s| &s.value), Some(FileSource::Content(_))) {
                ctx.error(
                    Code::ConflictingKeys,
                    v.span(),
                    "`from` names a build context, but this entry has inline `content`",
                    "only for `src`",
                    "remove `from`, or copy a file with `src` from that context",
                );
                return None;
            }
            Some(name.value)
        });
        let dest_value = ctx.require(&table, "dest", "\"/etc/app/app.conf\"");
        let raw_dest = dest_value.and_then(|v| ctx.string("dest", v));
        let mut dest = None;
        if let Some(raw) = &raw_dest {
            match values::normalize_absolute_path(&raw.value) {
                Ok(path) => dest = Some(path),
                Err(e) => ctx.invalid(raw.span, e, "must be absolute"),
            }
        }
        if let (Some(raw), Some(d)) = (&raw_dest, &mut dest) {
            let into_dir = raw.value.ends_with('/') || d == "/";
            match source.as_ref().map(|s| &s.value) {
                Some(FileSource::Context(src)) if into_dir && src != "." => {
                    let base = src.rsplit('/').next().unwrap_or(src);
                    *d = if d == "/" {
                        format!("/{base}")
                    } else {
                        format!("{d}/{base}")
                    };
                }
                Some(FileSource::Remove) if d == "/" => ctx.error(
                    Code::BadDest,
                    raw.span,
                    "`remove` would remove the whole filesystem",
                    "the root directory",
                    "name the file or directory to remove, such as \"/etc/nginx/sites-enabled/default\"",
                ),
                Some(FileSource::Content(_)) if into_dir => ctx.error(
                    Code::BadDest,
                    raw.span,
                    format!(
                        "`{}` is a directory, but inline `content` needs a file path",
                        &raw.value
                    ),
                    "names a directory",
                    "write the full path of the file to create, such as \"/etc/motd\"",
                ),
                _ => {}
            }
        }
        let mode = table.get("mode").and_then(|v| ctx.mode("mode", v));
        let owner = table.get("owner").and_then(|v| owner(ctx, v));
        if let (Some(source), Some(dest)) = (source, dest) {
            out.push(FileEntry {
                source,
                from,
                dest,
                mode,
                owner,
                lint_skip: lint_skip(ctx, table.get("lint_skip")),
                span: ctx.span(table.full_span()),
            });
        }
    }
    out
}

fn users(ctx: &mut Ctx<'_>, value: &Value<'_>) -> Vec<User> {
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut uids: HashMap<u32, usize> = HashMap::new();
    for mut table in ctx.tables("users", value, "this `[[users]]` entry") {
        ctx.check_keys(&mut table, &schema::keys_of("users"));
        let name = ctx
            .require(&table, "name", "\"admin\"")
            .and_then(|v| ctx.string("name", v));
        if let Some(name) = &name {
            if !values::is_user_name(&name.value) {
                ctx.error(
                    Code::BadUserName,
                    name.span,
                    format!("`{}` is not a valid user name", &name.value),
                    "invalid user name",
                    "user names start with a lowercase letter or `_`, hold lowercase letters, digits, `_` and `-`, and are at most 32 characters",
                );
            } else if let Some(first) = names.get(&name.value) {
                let line = ctx.place(*first, ctx.unspan(name.span).start);
                ctx.error(
                    Code::DuplicateUser,
                    name.span,
                    format!("user `{}` is declared twice", &name.value),
                    format!("`{}` is already declared on {line}", &name.value),
                    "merge the two `[[users]]` entries into one",
                );
            } else {
                names.insert(name.value.clone(), ctx.unspan(name.span).start);
            }
        }
        let uid = table.get("uid").and_then(|v| {
            ctx.integer("uid", v, 0..=i64::from(i32::MAX), Code::BadUid)
                .map(|n| (n, v.span()))
        });
        if let (Some((0, span)), Some(name)) = (&uid, &name) {
            if &name.value != "root" {
                ctx.error(
                    Code::BadUid,
                    span.clone(),
                    format!("uid 0 is root's; `{}` cannot have it", &name.value),
                    "root's uid",
                    "give the user a uid of its own, such as 1000, or leave `uid` out to let the system choose; add it to a group such as `sudo` or `wheel` for privileges",
                );
            }
        }
        if let Some((uid, span)) = &uid {
            let uid = u32::try_from(*uid).unwrap_or_default();
            if let Some(first) = uids.get(&uid) {
                let line = ctx.place(*first, span.start);
                ctx.error(
                    Code::DuplicateUid,
                    span.clone(),
                    format!("uid {uid} is given to two users"),
                    format!("uid {uid} is already used on {line}"),
                    "give each user its own uid, or leave `uid` out to let the system choose",
                );
            } else {
                uids.insert(uid, span.start);
            }
        }
        let mut groups = Vec::new();
        if let Some(v) = table.get("groups") {
            for group in ctx.strings("groups", v) {
                if values::is_user_name(&group.value) {
                    groups.push(group);
                } else {
                    ctx.error(
                        Code::BadGroupName,
                        group.span,
                        format!("`{}` is not a valid group name", &group.value),
                        "invalid group name",
                        "group names start with a lowercase letter or `_` and hold lowercase letters, digits, `_` and `-`",
                    );
                }
            }
        }
        let shell = table
            .get("shell")
            .and_then(|v| ctx.string("shell", v))
            .and_then(
                |shell| match values::normalize_absolute_path(&shell.value) {
                    Ok(path) => Some(Spanned::new(path, shell.span)),
                    Err(mut e) => {
                        e.help =
                            "write the absolute path of the login shell, such as \"/bin/bash\""
                                .to_string();
                        ctx.invalid(shell.span, e, "must be absolute");
                        None
                    }
                },
            );
        let mut authorized_keys = Vec::new();
        let mut authorized_key_spans = Vec::new();
        if let Some(v) = table.get("authorized_keys") {
            for item in ctx.array("authorized_keys", v) {
                if let Some(path) = ctx.context_path("authorized_keys", item) {
                    authorized_key_spans.push(path.span);
                    authorized_keys.push(path.value);
                }
            }
        }
        if let Some(name) = name {
            out.push(User {
                name: name.value,
                uid: uid.and_then(|(n, range)| {
                    Some(Spanned::new(u32::try_from(n).ok()?, ctx.span(range)))
                }),
                groups,
                shell,
                authorized_keys,
                authorized_key_spans,
                span: ctx.span(table.full_span()),
            });
        }
    }
    out
}

/// Programs that read some argument as script text: shells, interpreters, and programs that
/// hand a command string to a shell or split one (`su -c`, `runuser -c`, `sudo -s`, `ssh`,
/// `script -c`, `env -S`, `capsh -- -c`, `tar --to-command`, `git -c alias.x=!…`,
/// `make 'X=$(shell …)'`, …).
///
/// Names are compared after dropping the directory and a version suffix (`python3.12` is `python`).
const SCRIPT_RUNNERS: &[&str] = &[
    "sh",
    "bash",
    "rbash",
    "dash",
    "ash",
    "ksh",
    "mksh",
    "pdksh",
    "zsh",
    "yash",
    "posh",
    "fish",
    "csh",
    "tcsh",
    "busybox",
    "toybox",
    "capsh",
    "env",
    "make",
    "gmake",
    "git",
    "tar",
    "zip",
    "pypy",
    "su",
    "runuser",
    "sudo",
    "doas",
    "script",
    "flock",
    "watch",
    "ssh",
    "machinectl",
    "nsenter",
    "eval",
    "python",
    "perl",
    "ruby",
    "node",
    "nodejs",
    "php",
    "lua",
    "luajit",
    "tclsh",
    "wish",
    "expect",
    "awk",
    "gawk",
    "mawk",
    "nawk",
    "sed",
    "jq",
    "rc",
    "es",
    "elvish",
    "nu",
    "pwsh",
    "xonsh",
    "guile",
    "osascript",
];

/// Whether one word names a [`SCRIPT_RUNNERS`] program.
fn names_script_runner(word: &str) -> bool {
    let base = word.rsplit('/').next().unwrap_or(word);
    let base = base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    SCRIPT_RUNNERS.contains(&base)
}

/// Whether some word of an element names a POSIX shell, which expands `${NAME}` itself.
fn names_posix_shell(element: &str) -> bool {
    const SHELLS: &[&str] = &[
        "sh", "bash", "rbash", "dash", "ash", "ksh", "mksh", "pdksh", "zsh", "yash", "posh",
        "busybox",
    ];
    element
        .split(|c: char| c.is_whitespace() || c == '=' || c == ',' || c == ';')
        .any(|word| {
            let base = word.rsplit('/').next().unwrap_or(word);
            SHELLS.contains(&base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.'))
        })
}

/// Whether an `argv` may run script text: some word of some element, alone or after `=`
/// (`--shell=/bin/sh`, `SHELL=/bin/bash`), names a shell, an interpreter or a program that
/// hands a string to one. Such an `argv` is used verbatim: no build argument is pasted into it,
/// whatever flags or wrappers (`env`, `nice`, `sudo`, `-c --`, `-o errexit`) come first.
pub(crate) fn argv_runs_script<'a>(argv: impl IntoIterator<Item = &'a str>) -> bool {
    argv.into_iter().any(|element| {
        element
            .split(|c: char| c.is_whitespace() || c == '=' || c == ',' || c == ';')
            .any(names_script_runner)
    })
}

/// Names sysfile sets itself: a spec may not set them.
const RESERVED_ENV: [&str; 2] = ["SYSTEMD_OFFLINE", "container"];

/// An environment table whose names must be valid variable names.
///
/// With `for_systemd` (`[config] env`, written into the manager's `DefaultEnvironment=`), a
/// value holding a control character other than tab and newline is rejected: systemd splits
/// lines at `\r` and NUL, so such a value could add settings of its own.
fn env(ctx: &mut Ctx<'_>, value: &Value<'_>, for_systemd: bool) -> Vec<Entry> {
    let mut out = Vec::new();
    for (name, value) in ctx.string_map("env", value) {
        let control = value
            .value
            .chars()
            .find(|c| c.is_control() && *c != '\t' && *c != '\n');
        if let (true, Some(c)) = (for_systemd, control) {
            ctx.error(
                Code::ControlCharacter,
                value.span,
                format!(
                    "the value of `{}` holds the control character {c:?}",
                    &name.value
                ),
                "control character",
                "`[config] env` values are written into a systemd setting; remove the control character (check the build arguments interpolated here)",
            );
        } else if RESERVED_ENV.contains(&name.value.as_str()) {
            ctx.error(
                Code::ReservedEnvName,
                name.span,
                format!("`{}` is set by sysfile and cannot be set here", &name.value),
                "reserved",
                "`container=` comes from `[systemd] container`; `SYSTEMD_OFFLINE` is set in build steps only and must never reach services",
            );
        } else if values::is_env_name(&name.value) {
            out.push(Entry { name, value });
        } else {
            ctx.error(
                Code::BadEnvName,
                name.span,
                format!("`{}` is not a valid environment variable name", &name.value),
                "invalid name",
                "environment variable names start with a letter or `_` and hold letters, digits and `_`",
            );
        }
    }
    out
}

fn runs(ctx: &mut Ctx<'_>, value: &Value<'_>) -> Vec<RunStep> {
    let mut out = Vec::new();
    for mut table in ctx.tables("run", value, "this `[[run]]` step") {
        ctx.check_keys(&mut table, &schema::keys_of("run"));
        exactly_one(
            ctx,
            &table,
            ("sh", "\"a shell script\""),
            ("argv", "[\"program\", \"arg\"]"),
        );
        // Both are checked even when both are set (a `conflicting-keys` error), to report everything.
        let sh = table.get("sh").and_then(|v| {
            Some(Spanned::new(
                Command::Shell(ctx.raw_string("sh", v)?),
                ctx.span(v.span()),
            ))
        });
        let argv = table.get("argv").map(|v| {
            // An argv that may run script text is used verbatim, like `sh`: build args reach the
            // script as environment variables, so no argument is ever pasted into script text.
            let items = ctx.array("argv", v);
            let verbatim = argv_runs_script(items.iter().filter_map(|item| match item.get_ref() {
                DeValue::String(s) => Some(&**s),
                _ => None,
            }));
            let mut argv: Vec<String> = Vec::with_capacity(items.len());
            for item in &items {
                let value = if verbatim {
                    ctx.raw_string("argv", item)
                } else {
                    ctx.string("argv", item).map(|s| s.value)
                };
                if let Some(value) = value {
                    argv.push(value);
                }
            }
            // A POSIX shell expands `${NAME}` from its environment, where build args are; any
            // other program gets the text `${NAME}` itself: say so rather than stay silent.
            if verbatim && !argv.iter().any(|a| names_posix_shell(a)) {
                let declared = items.iter().zip(&argv).find_map(|(item, text)| {
                    ctx.args
                        .keys()
                        .find(|name| text.contains(&format!("${{{name}}}")))
                        .map(|name| (item.span(), name.clone()))
                });
                if let Some((at, name)) = declared {
                    ctx.warning(
                        Code::ArgvNotInterpolated,
                        at,
                        format!(
                            "`${{{name}}}` is passed as it is: this `argv` runs a program that reads script text, so it is not interpolated"
                        ),
                        "not interpolated",
                        format!(
                            "read the build argument from the environment in the script (build arguments are environment variables of the step), such as `os.environ[\"{name}\"]` in Python"
                        ),
                    );
                }
            }
            if matches!(v.get_ref(), DeValue::Array(a) if a.iter().next().is_none()) {
                ctx.error(
                    Code::EmptyArgv,
                    v.span(),
                    "`argv` is empty",
                    "no program to run",
                    "give the program and its arguments, such as `argv = [\"systemctl\", \"preset-all\"]`",
                );
            }
            Spanned::new(Command::Exec(argv), ctx.span(v.span()))
        });
        let command = sh.or(argv);
        let name = table
            .get("name")
            .and_then(|v| ctx.string("name", v))
            .map(|s| s.value);
        let env = table
            .get("env")
            .map(|v| env(ctx, v, false))
            .unwrap_or_default();
        let workdir = table
            .get("workdir")
            .and_then(|v| ctx.absolute_path("workdir", v));
        let user = table.get("user").and_then(|v| ctx.string("user", v));
        if let Some(user) = &user {
            if let Err(e) = values::parse_owner(&user.value) {
                ctx.error(
                    Code::BadUser,
                    user.span,
                    format!("`{}` is not a user", user.value),
                    "not a user",
                    e.help.replace("an owner", "a user"),
                );
            }
        }
        let network = table
            .get("network")
            .and_then(|v| {
                let network = ctx.choice("network", v, Network::CHOICES)?;
                Some(Spanned::new(network, ctx.span(v.span())))
            })
            .unwrap_or_else(|| Spanned::new(Network::Default, ctx.span(table.full_span())));
        let phase = table
            .get("phase")
            .and_then(|v| ctx.choice("phase", v, Phase::CHOICES))
            .unwrap_or_default();
        let mounts = table
            .get("mounts")
            .map(|v| mounts(ctx, v))
            .unwrap_or_default();
        let check = table
            .get("check")
            .and_then(|v| ctx.bool("check", v))
            .unwrap_or(false);
        let reads = table.get("reads").map(|v| {
            ctx.array("reads", v)
                .into_iter()
                .filter_map(|item| ctx.absolute_path("reads", item))
                .map(|path| path.value)
                .collect()
        });
        if let Some(command) = command {
            out.push(RunStep {
                name,
                command,
                env,
                workdir,
                user,
                network,
                phase,
                mounts,
                lint_skip: lint_skip(ctx, table.get("lint_skip")),
                check,
                reads,
                span: ctx.span(table.full_span()),
            });
        }
    }
    out
}

/// A mount target: absolute, normalised, not `/`.
fn mount_target(ctx: &mut Ctx<'_>, value: &Value<'_>) -> Option<String> {
    let target = ctx.absolute_path("target", value)?;
    if &target.value == "/" {
        ctx.error(
            Code::MountOnRoot,
            value.span(),
            "a mount cannot cover `/`",
            "mounts over the root filesystem",
            "mount on a directory such as \"/var/cache/apt\"",
        );
        return None;
    }
    Some(target.value)
}

fn mounts(ctx: &mut Ctx<'_>, value: &Value<'_>) -> Vec<RunMount> {
    let mut out: Vec<RunMount> = Vec::new();
    let mut targets: BTreeMap<String, usize> = BTreeMap::new();
    for mut table in ctx.tables("run.mounts", value, "this mount") {
        let kind = ctx.require(&table, "type", "\"cache\"").and_then(|v| {
            let choices: Vec<(&str, &str)> =
                schema::mount_types().into_iter().map(|t| (t, t)).collect();
            ctx.choice("type", v, &choices)
        });
        let Some(kind) = kind else {
            ctx.check_keys(&mut table, &schema::all_mount_keys());
            continue;
        };
        let allowed = mount_keys(kind);
        let mut typos = Vec::new();
        for (key, _) in &table.entries {
            let name: &str = key.get_ref();
            if allowed.contains(&name) {
                continue;
            }
            let valid = list(&allowed);
            let suggestion = did_you_mean(name, allowed.iter().copied());
            let help = match suggestion {
                Some(candidate) => {
                    format!("did you mean `{candidate}`? A {kind} mount accepts {valid}")
                }
                None => format!("a {kind} mount accepts {valid}"),
            };
            let message = if schema::all_mount_keys().contains(&name) {
                format!("`{name}` is not an option of a {kind} mount")
            } else {
                format!("unknown mount option `{name}`")
            };
            typos.extend(suggestion);
            ctx.error(
                Code::BadMountOption,
                key.span(),
                message,
                format!("not a {kind} mount option"),
                help,
            );
        }
        table.typos.extend(typos);
        let target_value = table.get("target");
        let explicit_target = match (kind, target_value) {
            (_, Some(v)) => mount_target(ctx, v),
            ("bind" | "cache" | "tmpfs", None) => {
                ctx.require(&table, "target", "\"/var/cache/app\"");
                None
            }
            _ => None,
        };
        let mount = match kind {
            "bind" => {
                let from = match table.get("from").and_then(|v| ctx.string("from", v)) {
                    None => Some(BindFrom::Context),
                    Some(from) if &from.value == "context" => Some(BindFrom::Context),
                    Some(from) => match values::check_image_reference(&from.value) {
                        Ok(()) => Some(BindFrom::Image(from.value)),
                        Err(mut e) => {
                            e.help = format!(
                                "`from` is \"context\" (the default) or an image reference; {}",
                                e.help
                            );
                            ctx.invalid(from.span, e, "not an image reference");
                            None
                        }
                    },
                };
                let source = ctx
                    .require(&table, "source", "\"dir\"")
                    .and_then(|v| match from {
                        Some(BindFrom::Image(_)) => ctx.absolute_path("source", v).map(|s| s.value),
                        Some(BindFrom::Context) => ctx.context_path("source", v).map(|s| s.value),
                        // `from` is wrong: whether `source` is right cannot be told.
                        None => None,
                    });
                let readonly = table
                    .get("readonly")
                    .and_then(|v| ctx.bool("readonly", v))
                    .unwrap_or(true);
                match (source, from) {
                    (Some(source), Some(from)) => explicit_target.map(|t| {
                        (
                            t,
                            MountKind::Bind {
                                source,
                                from,
                                readonly,
                            },
                        )
                    }),
                    _ => None,
                }
            }
            "cache" => {
                let id = table
                    .get("id")
                    .and_then(|v| id_value(ctx, v, values::IdKind::Cache));
                let sharing = table
                    .get("sharing")
                    .and_then(|v| ctx.choice("sharing", v, CacheSharing::CHOICES))
                    .unwrap_or_default();
                explicit_target.map(|t| {
                    (
                        t.clone(),
                        MountKind::Cache {
                            id: id.unwrap_or(t),
                            sharing,
                        },
                    )
                })
            }
            "tmpfs" => {
                let size = table.get("size").and_then(|v| {
                    let size = ctx.size("size", v)?;
                    // BuildKit takes the size as a signed 64-bit byte count, 0 meaning unlimited.
                    if size == 0 || i64::try_from(size).is_err() {
                        ctx.error(
                            Code::BadSize,
                            v.span(),
                            if size == 0 {
                                "a tmpfs of size 0 would be unlimited".to_string()
                            } else {
                                format!("a tmpfs size of {size} bytes is too large")
                            },
                            "out of range",
                            "give a size from 1 byte up, such as \"64m\"; leave `size` out for no limit",
                        );
                        return None;
                    }
                    Some(size)
                });
                explicit_target.map(|t| (t, MountKind::Tmpfs { size }))
            }
            "secret" => {
                let id = ctx
                    .require(&table, "id", "\"token\"")
                    .and_then(|v| id_value(ctx, v, values::IdKind::Secret));
                let required = table
                    .get("required")
                    .and_then(|v| ctx.bool("required", v))
                    .unwrap_or(true);
                let mode = table.get("mode").and_then(|v| ctx.mode("mode", v));
                let mut owner_id = |key: &str| -> u32 {
                    table
                        .get(key)
                        .and_then(|v| ctx.integer(key, v, 0..=i64::from(i32::MAX), Code::BadUid))
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(0)
                };
                let (uid, gid) = (owner_id("uid"), owner_id("gid"));
                id.and_then(|id| {
                    let target = match target_value {
                        Some(_) => explicit_target?,
                        None => values::normalize_absolute_path(&format!("/run/secrets/{id}"))
                            .unwrap_or_default(),
                    };
                    Some((
                        target,
                        MountKind::Secret {
                            id,
                            required,
                            mode,
                            uid,
                            gid,
                        },
                    ))
                })
            }
            _ => {
                let id = match table.get("id") {
                    Some(v) => match id_value(ctx, v, values::IdKind::Ssh) {
                        Some(id) => id,
                        None => continue,
                    },
                    None => "default".to_string(),
                };
                let target = match target_value {
                    Some(_) => explicit_target,
                    None => Some("/run/buildkit/ssh_agent.0".to_string()),
                };
                target.map(|t| (t, MountKind::Ssh { id }))
            }
        };
        let Some((target, kind)) = mount else {
            continue;
        };
        let at = target_value.map_or(table.span.clone(), |v| v.span());
        if let Some(first) = targets.get(&target) {
            let line = ctx.place(*first, at.start);
            ctx.error(
                Code::DuplicateMountTarget,
                at,
                format!("two mounts of this step use the target `{target}`"),
                format!("`{target}` is already a mount target on {line}"),
                "give each mount of a step its own target",
            );
            continue;
        }
        targets.insert(target.clone(), at.start);
        out.push(RunMount {
            target,
            kind,
            span: ctx.span(table.span.clone()),
        });
    }
    out
}

/// A mount `id` (secret, cache or SSH agent), checked by character set.
fn id_value(ctx: &mut Ctx<'_>, value: &Value<'_>, kind: values::IdKind) -> Option<String> {
    let id = ctx.string("id", value)?;
    match values::check_id(&id.value, kind) {
        Ok(()) => Some(id.value),
        Err(e) => {
            ctx.invalid(value.span(), e, "not a valid id");
            None
        }
    }
}

/// A list of unit names, normalised with `default_suffix`.
fn units(ctx: &mut Ctx<'_>, key: &str, value: &Value<'_>, default_suffix: &str) -> Vec<Unit> {
    let mut out = Vec::new();
    for name in ctx.strings(key, value) {
        match values::normalize_unit(&name.value, default_suffix) {
            Ok(unit) => out.push(Unit {
                name: unit,
                span: name.span,
            }),
            Err(e) => ctx.invalid(name.span, e, "not a unit name"),
        }
    }
    out
}

fn services(ctx: &mut Ctx<'_>, value: &Value<'_>) -> Services {
    let Some(mut table) = ctx.table("services", value, "`[services]`") else {
        return Services::default();
    };
    let service_keys = schema::keys_of("services");
    ctx.check_keys(&mut table, &service_keys);
    let mut lists: Vec<Vec<Unit>> = Vec::new();
    let mut seen: HashMap<String, (&str, usize)> = HashMap::new();
    for key in &service_keys {
        let mut kept = Vec::new();
        let found = table
            .get(key)
            .map(|v| units(ctx, key, v, ".service"))
            .unwrap_or_default();
        for unit in found {
            if *key == "enable" && values::is_template_without_instance(&unit.name) {
                let suggestion = unit.name.replacen("@.", "@instance.", 1);
                ctx.error(
                    Code::TemplateUnit,
                    unit.span,
                    format!(
                        "`{}` is a template and cannot be enabled without an instance",
                        unit.name
                    ),
                    "template unit",
                    format!("name an instance, such as \"{suggestion}\""),
                );
                continue;
            }
            match seen.get(&unit.name) {
                Some((other, first)) if other == key => {
                    let line = ctx.place(*first, ctx.unspan(unit.span).start);
                    ctx.warning(
                        Code::DuplicateUnit,
                        unit.span,
                        format!("`{}` is listed twice in `{key}`", unit.name),
                        format!("already listed on {line}"),
                        "remove the repeated entry",
                    );
                }
                Some((other, first)) => {
                    let line = ctx.place(*first, ctx.unspan(unit.span).start);
                    ctx.error(
                        Code::ConflictingUnitState,
                        unit.span,
                        format!("`{}` is in both `{other}` and `{key}`", unit.name),
                        format!("already in `{other}` on {line}"),
                        format!(
                            "a unit has one state: keep `{}` in `{other}` or in `{key}`, not both",
                            unit.name
                        ),
                    );
                }
                None => {
                    seen.insert(unit.name.clone(), (key, ctx.unspan(unit.span).start));
                    kept.push(unit);
                }
            }
        }
        lists.push(kept);
    }
    let mask = lists.pop().unwrap_or_default();
    let disable = lists.pop().unwrap_or_default();
    let enable = lists.pop().unwrap_or_default();
    Services {
        enable,
        disable,
        mask,
    }
}

fn systemd(ctx: &mut Ctx<'_>, value: Option<&Value<'_>>, image_span: &Range<usize>) -> Systemd {
    let unset = ctx.span(image_span.clone());
    let mut systemd = Systemd {
        target: Unit {
            name: "multi-user.target".to_string(),
            span: ctx.span(ctx.main_anchor()),
        },
        log_level: None,
        container: Spanned::new("docker".to_string(), unset),
        console_logs: Spanned::new(false, unset),
        stop_timeout: Spanned::new(DEFAULT_STOP_TIMEOUT, unset),
        health: Spanned::new(Health::Running, unset),
        health_start_period: Spanned::new(DEFAULT_HEALTH_START_PERIOD, unset),
        keep: Vec::new(),
        span: None,
    };
    let Some(mut table) = value.and_then(|v| ctx.table("systemd", v, "`[systemd]`")) else {
        return systemd;
    };
    systemd.target.span = ctx.span(table.span.clone());
    systemd.span = Some(systemd.target.span);
    // Unset, `console_logs` is reported where it would be written.
    systemd.console_logs.span = systemd.target.span;
    ctx.check_keys(&mut table, &schema::keys_of("systemd"));
    if let Some(v) = table.get("target") {
        if let Some(unit) = units_one(ctx, "target", v, ".target") {
            if !unit.name.ends_with(".target") {
                ctx.error(
                    Code::BadTarget,
                    v.span(),
                    format!("`{}` is not a target unit", unit.name),
                    "not a `.target`",
                    "the default target is a `.target` unit, such as \"multi-user.target\"; enable services with `[services] enable`",
                );
            } else if EARLY_BOOT_TARGETS.contains(&unit.name.as_str()) {
                ctx.warning(
                    Code::EarlyBootTarget,
                    v.span(),
                    format!("`{}` is reached early in boot, before ordinary services", unit.name),
                    "early-boot target",
                    "services wanted by multi-user.target will never start; use \"multi-user.target\" (the default) or a target of your own",
                );
                systemd.target = unit;
            } else {
                systemd.target = unit;
            }
        }
    }
    systemd.log_level = table.get("log_level").and_then(|v| {
        let level = ctx.choice("log_level", v, LogLevel::CHOICES)?;
        Some(Spanned::new(level, ctx.span(v.span())))
    });
    if let Some(container) = table
        .get("container")
        .and_then(|v| ctx.string("container", v))
    {
        let ok = !container.value.is_empty()
            && container
                .value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            systemd.container = container;
        } else {
            ctx.error(
                Code::BadContainerName,
                container.span,
                format!("`{}` is not a valid `container` value", &container.value),
                "expected lowercase letters, digits and `-`",
                "write a lowercase name such as \"docker\", \"podman\" or \"oci\"",
            );
        }
    }
    if let Some(v) = table.get("console_logs") {
        systemd.console_logs = Spanned::new(
            ctx.bool("console_logs", v).unwrap_or_default(),
            ctx.span(v.span()),
        );
    }
    if let Some(v) = table.get("stop_timeout") {
        if let Some(timeout) = ctx.duration("stop_timeout", v) {
            if timeout.is_zero() || timeout > MAX_STOP_TIMEOUT {
                ctx.error(
                    Code::BadDuration,
                    v.span(),
                    "`stop_timeout` must be more than 0 and at most 1h",
                    "out of range",
                    "write a duration such as \"20s\" (the default) or \"2m\"",
                );
            } else {
                systemd.stop_timeout = Spanned::new(timeout, ctx.span(v.span()));
            }
        }
    }
    if let Some(v) = table.get("health") {
        if let Some(health) = ctx.choice("health", v, Health::CHOICES) {
            systemd.health = Spanned::new(health, ctx.span(v.span()));
        }
    }
    if let Some(v) = table.get("health_start_period") {
        if let Some(period) = ctx.duration("health_start_period", v) {
            if period > MAX_STOP_TIMEOUT {
                ctx.error(
                    Code::BadDuration,
                    v.span(),
                    "`health_start_period` must be at most 1h",
                    "out of range",
                    "write a duration such as \"60s\" (the default) or \"5m\"",
                );
            } else {
                systemd.health_start_period = Spanned::new(period, ctx.span(v.span()));
            }
        }
    }
    systemd.keep = table
        .get("keep")
        .map(|v| units(ctx, "keep", v, ".service"))
        .unwrap_or_default();
    systemd
}

fn units_one(
    ctx: &mut Ctx<'_>,
    key: &str,
    value: &Value<'_>,
    default_suffix: &str,
) -> Option<Unit> {
    let name = ctx.string(key, value)?;
    match values::normalize_unit(&name.value, default_suffix) {
        Ok(unit) => Some(Unit {
            name: unit,
            span: name.span,
        }),
        Err(e) => {
            ctx.invalid(name.span, e, "not a unit name");
            None
        }
    }
}

fn config(ctx: &mut Ctx<'_>, value: &Value<'_>) -> Config {
    let Some(mut table) = ctx.table("config", value, "`[config]`") else {
        return Config::default();
    };
    ctx.check_keys(&mut table, &schema::keys_of("config"));
    let env = table
        .get("env")
        .map(|v| env(ctx, v, true))
        .unwrap_or_default();
    let mut labels = Vec::new();
    if let Some(v) = table.get("labels") {
        for (key, value) in ctx.string_map("labels", v) {
            if key.value.is_empty() {
                ctx.error(
                    Code::BadLabel,
                    key.span,
                    "a label key is empty",
                    "empty key",
                    "label keys are names such as \"org.example.team\"",
                );
            } else {
                labels.push(Entry { name: key, value });
            }
        }
        labels.sort_by(|a, b| a.name.value.cmp(&b.name.value));
    }
    let mut expose = Vec::new();
    let mut exposed = std::collections::BTreeSet::new();
    if let Some(v) = table.get("expose") {
        for item in ctx.array("expose", v) {
            let port = match item.get_ref() {
                DeValue::Integer(_) => {
                    values::port_number(integer_value(item.get_ref()).unwrap_or(-1))
                }
                DeValue::String(_) => match ctx.string("expose", item) {
                    Some(s) => values::parse_port(&s.value),
                    None => continue,
                },
                other => {
                    ctx.error(
                        Code::WrongType,
                        item.span(),
                        format!("expected a port, found {}", super::walk::type_name(other)),
                        "expected a port",
                        "write a port as 80 or \"80/tcp\" or \"53/udp\"",
                    );
                    continue;
                }
            };
            match port {
                Ok(port) if exposed.insert(port) => expose.push(port),
                Ok(_) => {}
                Err(e) => ctx.invalid(item.span(), e, "not a port"),
            }
        }
    }
    let mut volumes = Vec::new();
    if let Some(v) = table.get("volumes") {
        for item in ctx.array("volumes", v) {
            volumes.extend(ctx.absolute_path("volumes", item));
        }
    }
    let workdir = table
        .get("workdir")
        .and_then(|v| ctx.absolute_path("workdir", v));
    Config {
        env,
        labels,
        expose,
        volumes,
        workdir,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_above() {
        let text = "[args]\n# The version.\n#  Indented\n#\nV = \"1\"\n\n# not this\n\nW = \"2\"\n";
        let v = text.find("V =").unwrap();
        assert_eq!(comment_above(text, v), "The version.\n Indented\n");
        let w = text.find("W =").unwrap();
        assert_eq!(comment_above(text, w), "");
        assert_eq!(comment_above("# a\nX = 1", 4), "a");
        assert_eq!(comment_above("X = 1", 0), "");
    }

    /// The argv of the first `[[run]]` step of a spec with `argv`, loaded with `X` set to `value`.
    fn argv_with(argv: &str, value: &str) -> Vec<String> {
        let text = format!(
            "[image]\nfrom = \"debian:bookworm\"\n[args]\nX = \"\"\n[[run]]\nargv = {argv}\n"
        );
        let mut options = LoadOptions::default();
        options.build_args.insert("X".into(), value.into());
        let loaded = super::super::load(crate::diag::SourceFile::new("Sysfile", text), &options);
        let spec = loaded.spec.expect("loads");
        match &spec.runs[0].command.value {
            Command::Exec(argv) => argv.clone(),
            Command::Shell(_) => unreachable!("argv gives Exec"),
        }
    }

    #[test]
    fn no_build_arg_reaches_a_shell_through_flags_or_wrappers() {
        let attack = "; touch /pwned";
        for argv in [
            r#"["sh", "-c", "--", "${X}"]"#,
            r#"["bash", "-c", "-e", "${X}"]"#,
            r#"["sh", "-c", "-o", "errexit", "${X}"]"#,
            r#"["env", "sh", "-c", "echo ${X}"]"#,
            r#"["/usr/bin/env", "-S", "sh -c '${X}'"]"#,
            r#"["nice", "-n", "5", "/bin/bash", "-ec", "${X}"]"#,
            r#"["sudo", "-u", "nobody", "${X}"]"#,
            r#"["su", "-c", "${X}", "nobody"]"#,
            r#"["runuser", "-u", "nobody", "--", "dash", "-c", "${X}"]"#,
            r#"["python3.12", "-c", "print('${X}')"]"#,
            r#"["xargs", "-0", "busybox", "sh", "-c", "${X}"]"#,
            r#"["timeout", "5", "zsh", "-c", "${X}"]"#,
            r#"["chroot", "/", "SHELL=/bin/sh", "${X}"]"#,
            r#"["git", "-c", "core.fsmonitor=${X}", "status"]"#,
            r#"["tar", "--to-command=${X}", "-xf", "/a.tar"]"#,
            r#"["make", "V=${X}"]"#,
            r#"["/usr/bin/env", "-S", "${X}"]"#,
        ] {
            let got = argv_with(argv, attack);
            assert!(got.iter().all(|a| !a.contains(attack)), "{argv}: {got:?}");
            assert!(got.iter().any(|a| a.contains("${X}")), "{argv}: {got:?}");
        }
        // Without any shell or interpreter, arguments are interpolated (each one argument).
        assert_eq!(
            argv_with(r#"["systemctl", "enable", "${X}"]"#, "nginx"),
            ["systemctl", "enable", "nginx"]
        );
        assert_eq!(
            argv_with(r#"["/usr/local/bin/fetch", "--out=${X}"]"#, "/srv"),
            ["/usr/local/bin/fetch", "--out=/srv"]
        );
    }

    #[test]
    fn script_runners_are_found_in_any_word() {
        assert!(argv_runs_script(["/bin/sh"]));
        assert!(argv_runs_script(["perl5.36"]));
        assert!(argv_runs_script(["--shell=/bin/bash"]));
        assert!(!argv_runs_script(["systemctl", "preset-all"]));
        assert!(!argv_runs_script(["shell", "bashful", "sha256sum"]));
    }

    #[test]
    fn a_missing_authorized_keys_file_is_located() {
        let text = "[image]\nfrom = \"debian\"\n[[users]]\nname = \"admin\"\nauthorized_keys = [\"keys/admin.pub\", \"./keys/ops.pub\"]\n";
        let loaded = super::super::load(
            crate::diag::SourceFile::new("Sysfile", text),
            &LoadOptions::default(),
        );
        let spec = loaded.spec.expect("loads");
        let missing = spec.missing_context_files(|path| path == "keys/ops.pub");
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].code, "context-file-missing");
        assert_eq!(
            missing[0].message,
            "`keys/admin.pub` is not in the build context"
        );
        let at = loaded.sources.main().line_col(missing[0].span.start);
        assert_eq!((at.line, at.column), (5, 20));
        assert!(spec.missing_context_files(|_| true).is_empty());
    }

    #[test]
    fn builtin_args() {
        assert!(is_builtin_arg("BUILDKIT_INLINE_CACHE"));
        assert!(is_builtin_arg("http_proxy"));
        assert!(is_builtin_arg("TARGETARCH"));
        assert!(!is_builtin_arg("VERSION"));
    }
}
