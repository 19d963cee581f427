//! `include = [...]`: finding the included files, and merging every file's tree into one.
//!
//! Pass 1 ([`resolve`]) parses each file, checks its `include` entries and
//! orders the files: each file's includes (recursively, in order) before the
//! file itself, the main Sysfile last; a file included twice is applied once.
//! Pass 2 ([`merge`]) merges the parsed trees in that order, following the
//! key kinds of the schema: arrays of tables and lists concatenate, string
//! tables merge with the later file winning, and a scalar set by two included
//! files is `conflicting-include` (the main Sysfile may override an include).
//!
//! The files are laid end to end in one text (see [`super::walk::Ctx`]); each
//! is parsed from a copy padded with newlines up to its offset there, so every
//! span of the merged tree is an offset of that text and names its file.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::de::{DeArray, DeTable, DeValue};

use super::LoadOptions;
use super::schema::{self, Merge, TableKind};
use super::values;
use super::walk::{Ctx, Key, Value, type_name};
use crate::diag::{Code, Diagnostic, FileId, SourceFile, Sources, Span};

/// How deep includes may nest (the main Sysfile's includes are depth 1).
pub const MAX_INCLUDE_DEPTH: usize = 8;

/// The `toml-syntax` diagnostic of a parse error.
pub(crate) fn syntax_error(file: FileId, error: &toml::de::Error) -> Diagnostic {
    let range = error.span().unwrap_or(0..0);
    let message = error.message().trim().trim_end_matches('.').to_string();
    let message = if message.is_empty() {
        "invalid TOML".to_string()
    } else {
        message
    };
    Diagnostic::error(
        Code::TomlSyntax,
        Span::new(file, range),
        format!("invalid TOML: {message}"),
    )
    .with_label("here")
    .with_help("a Sysfile is a TOML document; fix the syntax at this point (see https://toml.io)")
}

/// The `include` entries of a parsed file: `Ok((normalised path, range))` or the diagnostic of a bad entry.
#[allow(
    clippy::result_large_err,
    reason = "each bad entry is reported as it is; a few per file"
)]
fn entries(file: FileId, root: &DeTable<'_>) -> Vec<Result<(String, Range<usize>), Diagnostic>> {
    let Some((_, value)) = root.iter().find(|(k, _)| k.get_ref() == "include") else {
        return Vec::new();
    };
    let wrong = |value: &Value<'_>, expected: &str, help: &str| {
        Diagnostic::error(
            Code::WrongType,
            Span::new(file, value.span()),
            format!("expected {expected}, found {}", type_name(value.get_ref())),
        )
        .with_label(format!("expected {expected}"))
        .with_help(help)
    };
    let DeValue::Array(array) = value.get_ref() else {
        return vec![Err(wrong(
            value,
            "an array",
            "`include` takes an array of build-context paths such as `[\"common.toml\"]`",
        ))];
    };
    array
        .iter()
        .map(|item| match item.get_ref() {
            DeValue::String(s) => match values::normalize_context_path(s) {
                Ok(path) => Ok((path, item.span())),
                Err(e) => Err(
                    Diagnostic::error(e.code, Span::new(file, item.span()), e.message)
                        .with_label("not a path inside the build context")
                        .with_help(e.help),
                ),
            },
            _ => Err(wrong(
                item,
                "a string",
                "each element of `include` is a build-context path in double quotes",
            )),
        })
        .collect()
}

/// Context-relative include paths named by `file` (normalised, with their spans), for the caller to read.
///
/// Tolerant: a file that is not TOML, or bad entries, give nothing. The spans
/// name `FileId(0)`: the caller knows which file it asked about.
pub fn include_requests(file: &SourceFile) -> Vec<(String, Span)> {
    let Ok(root) = DeTable::parse(&file.text) else {
        return Vec::new();
    };
    entries(FileId(0), root.get_ref())
        .into_iter()
        .filter_map(Result::ok)
        .map(|(path, range)| (path, Span::new(FileId(0), range)))
        .collect()
}

/// The largest spec file accepted, main Sysfile or include, in bytes (8 MiB).
pub const MAX_SPEC_BYTES: usize = 8 << 20;

/// Checks and decodes the bytes of an included file: at most [`MAX_SPEC_BYTES`], UTF-8.
///
/// The one decoder of included files, used by the CLI and the frontend alike. The error
/// says why the file cannot be used, for a diagnostic at the `include` entry.
pub fn decode_include(data: Vec<u8>) -> Result<String, String> {
    if data.len() > MAX_SPEC_BYTES {
        return Err(format!("it is larger than {} MiB", MAX_SPEC_BYTES >> 20));
    }
    String::from_utf8(data).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        // The prefix is valid UTF-8 by construction.
        let before = std::str::from_utf8(valid).unwrap_or_default();
        let at = crate::diag::LineIndex::new(before).line_col(before, before.len());
        format!(
            "it is not UTF-8 text (invalid byte at line {}, column {})",
            at.line, at.column
        )
    })
}

/// What a caller's reader found for one include path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The file does not exist.
    Missing,
    /// The file's bytes (checked and decoded by [`decode_include`]).
    Bytes(Vec<u8>),
    /// The file exists but must not be read, and why (not a regular file, outside the context).
    Refused(String),
}

/// Included texts and the include paths that could not be used, ready for [`LoadOptions`].
#[derive(Clone, Debug, Default)]
pub struct Collected {
    pub texts: BTreeMap<String, String>,
    pub errors: BTreeMap<String, String>,
}

/// Reads every file `main` includes, directly or not, through `read` (path → text, `None` when unreadable).
///
/// The result is ready for [`LoadOptions::includes`](super::LoadOptions). The
/// spec stays pure: `read` does the I/O. Includes deeper than
/// [`MAX_INCLUDE_DEPTH`] are not read (`load` reports them). For untrusted files use
/// [`collect_include_files`], which checks what it reads.
pub fn collect_includes(
    main: &SourceFile,
    mut read: impl FnMut(&str) -> Option<String>,
) -> BTreeMap<String, String> {
    collect_include_files(main, |path| {
        read(path).map_or(Fetched::Missing, |text| Fetched::Bytes(text.into_bytes()))
    })
    .texts
}

/// Reads every file `main` includes, directly or not, through `read`; each file's bytes go
/// through [`decode_include`], and what cannot be used is kept with its reason.
pub fn collect_include_files(
    main: &SourceFile,
    mut read: impl FnMut(&str) -> Fetched,
) -> Collected {
    let mut out = Collected::default();
    let mut missing = std::collections::BTreeSet::new();
    let mut level: Vec<String> = include_requests(main).into_iter().map(|(p, _)| p).collect();
    for _ in 0..MAX_INCLUDE_DEPTH {
        let mut next = Vec::new();
        for path in level {
            if out.texts.contains_key(&path)
                || out.errors.contains_key(&path)
                || missing.contains(&path)
            {
                continue;
            }
            match read(&path) {
                Fetched::Bytes(data) => match decode_include(data) {
                    Ok(text) => {
                        let file = SourceFile::new(path.clone(), text);
                        next.extend(include_requests(&file).into_iter().map(|(p, _)| p));
                        out.texts.insert(path, file.text);
                    }
                    Err(why) => {
                        out.errors.insert(path, why);
                    }
                },
                Fetched::Refused(why) => {
                    out.errors.insert(path, why);
                }
                Fetched::Missing => {
                    missing.insert(path);
                }
            }
        }
        level = next;
    }
    out
}

/// Pass 1: adds the included files to `sources` and returns the order to apply them in (main last).
///
/// Files that are not valid TOML are reported and left out of the order.
pub(crate) fn resolve(
    sources: &mut Sources,
    options: &LoadOptions,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<FileId> {
    let mut state = Resolve {
        order: Vec::new(),
        loaded: BTreeMap::new(),
        stack: vec![sources.main().name.clone()],
    };
    state.visit(sources, FileId(0), options, diagnostics);
    state.order
}

struct Resolve {
    order: Vec<FileId>,
    /// Included paths already added to the sources.
    loaded: BTreeMap<String, FileId>,
    /// The names of the files being included, outermost first.
    stack: Vec<String>,
}

impl Resolve {
    fn visit(
        &mut self,
        sources: &mut Sources,
        id: FileId,
        options: &LoadOptions,
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        let text = sources.get(id).text.clone();
        let root = match DeTable::parse(&text) {
            Ok(root) => root,
            Err(error) => {
                diagnostics.push(syntax_error(id, &error));
                return;
            }
        };
        for entry in entries(id, root.get_ref()) {
            let (path, range) = match entry {
                Ok(entry) => entry,
                Err(diagnostic) => {
                    diagnostics.push(diagnostic);
                    continue;
                }
            };
            let span = Span::new(id, range);
            if self.stack.contains(&path) {
                let chain: Vec<String> = self
                    .stack
                    .iter()
                    .chain(std::iter::once(&path))
                    .map(|name| format!("`{name}`"))
                    .collect();
                diagnostics.push(
                    Diagnostic::error(
                        Code::IncludeCycle,
                        span,
                        format!("`{path}` includes itself: {}", chain.join(" → ")),
                        )
                    .with_label("include cycle")
                    .with_help("remove this include: a file cannot include itself, directly or through other files"),
                );
                continue;
            }
            if self.loaded.contains_key(&path) {
                // Included before: applied once, at its first place.
                continue;
            }
            if let Some(why) = options.include_errors.get(&path) {
                diagnostics.push(
                    Diagnostic::error(
                        Code::UnreadableInclude,
                        span,
                        format!("the included file `{path}` cannot be used: {why}"),
                    )
                    .with_label("cannot be used")
                    .with_help(
                        "an included file is a UTF-8 TOML text of at most 8 MiB, a regular file inside the build context",
                    ),
                );
                continue;
            }
            let Some(text) = options.includes.get(&path) else {
                diagnostics.push(
                    Diagnostic::error(
                        Code::MissingInclude,
                        span,
                        format!("the included file `{path}` cannot be read"),
                    )
                    .with_label("not found")
                    .with_help(format!(
                        "add `{path}` to the build context (include paths are relative to the context root, not to this file), or remove this include"
                    )),
                );
                continue;
            };
            if self.stack.len() > MAX_INCLUDE_DEPTH {
                diagnostics.push(
                    Diagnostic::error(
                        Code::IncludeTooDeep,
                        span,
                        format!("includes nest more than {MAX_INCLUDE_DEPTH} deep"),
                    )
                    .with_label("too deep")
                    .with_help(
                        "include the fragments from the main Sysfile instead of from each other",
                    ),
                );
                continue;
            }
            let child = sources.add(SourceFile::new(path.clone(), text.clone()));
            self.loaded.insert(path.clone(), child);
            self.stack.push(path);
            self.visit(sources, child, options, diagnostics);
            self.stack.pop();
        }
        self.order.push(id);
    }
}

/// Where the files of `order` sit in the walk's text: `(text, segments, index of the main Sysfile)`.
pub(crate) fn lay_out(
    sources: &Sources,
    order: &[FileId],
) -> (String, Vec<super::walk::Segment>, usize) {
    let mut text = String::new();
    let mut segments = Vec::new();
    let mut main = 0;
    for &id in order {
        let file = sources.get(id);
        if id == FileId(0) {
            main = segments.len();
        }
        segments.push(super::walk::Segment {
            file: id,
            name: file.name.clone(),
            base: text.len(),
            len: file.text.len(),
        });
        text.push_str(&file.text);
        // A blank line, so no file's comments read as the next one's descriptions.
        text.push_str("\n\n");
    }
    (text, segments, main)
}

/// Pass 2: one root table from the parsed files (`padded[i]` is segment `i`'s file, padded to its offset).
pub(crate) fn merge<'i>(
    ctx: &mut Ctx<'_>,
    padded: &'i [String],
    main: usize,
) -> Option<DeTable<'i>> {
    let mut root = DeTable::new();
    for (i, text) in padded.iter().enumerate() {
        // Every file parsed in pass 1, so this fails only if padding changed the meaning.
        let layer = match DeTable::parse(text) {
            Ok(layer) => layer.into_inner(),
            Err(error) => {
                let d = syntax_error(FileId(0), &error);
                let range = error.span().unwrap_or(0..0);
                ctx.error(
                    Code::TomlSyntax,
                    range,
                    d.message,
                    d.label,
                    d.help.unwrap_or_default(),
                );
                return None;
            }
        };
        for (key, value) in layer {
            if key.get_ref() == "include" {
                continue;
            }
            let name = key.get_ref().to_string();
            let merged = match root.remove(&key) {
                Some(old) => merge_top(ctx, &name, old, value, i == main),
                None => value,
            };
            root.insert(key, merged);
        }
    }
    Some(root)
}

fn merge_top<'i>(
    ctx: &mut Ctx<'_>,
    name: &str,
    old: Value<'i>,
    new: Value<'i>,
    main: bool,
) -> Value<'i> {
    let kind = schema::table(name).map(|t| t.kind);
    let span = new.span();
    match (kind, old.into_inner(), new.into_inner()) {
        (Some(TableKind::Table | TableKind::Args), DeValue::Table(a), DeValue::Table(b)) => {
            toml::Spanned::new(span, DeValue::Table(merge_table(ctx, name, a, b, main)))
        }
        (Some(TableKind::ArrayOfTables), DeValue::Array(a), DeValue::Array(b)) => {
            toml::Spanned::new(span, DeValue::Array(concat(a, b)))
        }
        (_, _, b) => toml::Spanned::new(span, b),
    }
}

fn concat<'i>(a: DeArray<'i>, b: DeArray<'i>) -> DeArray<'i> {
    let mut out = DeArray::new();
    for item in a.iter().chain(b.iter()) {
        out.push(item.clone());
    }
    out
}

fn merge_table<'i>(
    ctx: &mut Ctx<'_>,
    table: &str,
    mut a: DeTable<'i>,
    b: DeTable<'i>,
    main: bool,
) -> DeTable<'i> {
    for (key, new) in b {
        let Some((old_key, old)) = a.remove_entry(&key) else {
            a.insert(key, new);
            continue;
        };
        let (old_span, span) = (old.span(), new.span());
        let merge = schema::merge_of(table, key.get_ref());
        let (key, value) = match (merge, old.into_inner(), new.into_inner()) {
            (Some(Merge::List), DeValue::Array(x), DeValue::Array(y)) => {
                (key, toml::Spanned::new(span, DeValue::Array(concat(x, y))))
            }
            (Some(Merge::Map), DeValue::Table(mut x), DeValue::Table(y)) => {
                for (k, v) in y {
                    x.remove(&k);
                    x.insert(k, v);
                }
                (key, toml::Spanned::new(span, DeValue::Table(x)))
            }
            (Some(Merge::Scalar), x, _) if !main => {
                conflict(ctx, table, &old_key, &key);
                (old_key, toml::Spanned::new(old_span, x))
            }
            (_, _, y) => (key, toml::Spanned::new(span, y)),
        };
        a.insert(key, value);
    }
    a
}

/// Reports `conflicting-include`: `second` sets a scalar that `first`, in another included file, set already.
fn conflict(ctx: &mut Ctx<'_>, table: &str, first: &Key<'_>, second: &Key<'_>) {
    let name = second.get_ref();
    let place = ctx.place(first.span().start, second.span().start);
    let header = match schema::table(table).map(|t| t.kind) {
        Some(TableKind::Args) | Some(TableKind::Table) => format!("`[{table}]`"),
        _ => format!("`{table}`"),
    };
    ctx.error(
        Code::ConflictingInclude,
        second.span(),
        format!("`{name}` of {header} is set by two included files"),
        format!("already set on {place}"),
        format!(
            "set `{name}` in only one of the included files; the main Sysfile may override a value set by an include"
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_are_capped_utf8() {
        assert_eq!(
            decode_include(b"a = 1\n".to_vec()).as_deref(),
            Ok("a = 1\n")
        );
        let bad = decode_include(b"a = 1\nb = \"\xff\"\n".to_vec()).unwrap_err();
        assert!(bad.contains("line 2, column 6"), "{bad}");
        let big = decode_include(vec![b'#'; MAX_SPEC_BYTES + 1]).unwrap_err();
        assert!(big.contains("larger than 8 MiB"), "{big}");
    }

    #[test]
    fn unusable_includes_are_located_errors() {
        let main = SourceFile::new(
            "Sysfile",
            "include = [\"a.toml\", \"b.toml\"]\n[image]\nfrom = \"x\"\n",
        );
        let collected = collect_include_files(&main, |path| match path {
            "a.toml" => Fetched::Bytes(vec![0xff, 0xfe]),
            _ => Fetched::Refused("it is not a regular file".into()),
        });
        assert!(collected.texts.is_empty());
        let options = LoadOptions {
            includes: collected.texts,
            include_errors: collected.errors,
            ..LoadOptions::default()
        };
        let loaded = super::super::load(main, &options);
        let codes: Vec<_> = loaded
            .diagnostics
            .iter()
            .map(|d| (d.code, d.span.start))
            .collect();
        assert_eq!(
            codes,
            [("unreadable-include", 11), ("unreadable-include", 21)]
        );
        assert!(loaded.diagnostics[0].message.contains("not UTF-8"));
        assert!(loaded.diagnostics[1].message.contains("not a regular file"));
    }
}
