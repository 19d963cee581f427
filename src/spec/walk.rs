//! Typed access to `toml`'s spanned tree: each getter checks the type, interpolates and reports at the right span.
//!
//! Getters never fail hard: a wrong value becomes a diagnostic in [`Ctx`] and
//! the getter returns `None` (or an empty list), so the walk goes on and
//! every problem is reported in one pass.

use std::collections::BTreeMap;
use std::ops::Range;

use toml::de::{DeString, DeTable, DeValue};

use super::interpolate::{Problem, interpolate};
use super::values::{self, Invalid, did_you_mean, list};
use crate::diag::{Code, Diagnostic, FileId, LineIndex, Span};
use crate::model::{Spanned, Template};

pub(crate) type Value<'i> = toml::Spanned<DeValue<'i>>;
pub(crate) type Key<'i> = toml::Spanned<DeString<'i>>;

/// One TOML table of the spec, its entries in source order.
pub(crate) struct Table<'t, 'i> {
    /// How messages name it: "`[image]`", "this `[[files]]` entry", "this mount".
    pub what: String,
    pub span: Range<usize>,
    pub entries: Vec<(&'t Key<'i>, &'t Value<'i>)>,
    /// Valid keys that an unknown key was reported as a likely typo of; they are not reported missing too.
    pub typos: Vec<&'static str>,
}

impl<'t, 'i> Table<'t, 'i> {
    pub fn new(
        what: impl Into<String>,
        span: Range<usize>,
        table: &'t DeTable<'i>,
    ) -> Table<'t, 'i> {
        let mut entries: Vec<_> = table.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        Table {
            what: what.into(),
            span,
            entries,
            typos: Vec::new(),
        }
    }

    /// From the header to the end of the last value: the whole entry, for source maps.
    pub fn full_span(&self) -> Range<usize> {
        let end = self
            .entries
            .iter()
            .map(|(key, value)| key.span().end.max(value.span().end))
            .fold(self.span.end, usize::max);
        self.span.start..end
    }

    pub fn get(&self, key: &str) -> Option<&'t Value<'i>> {
        self.entries
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(_, v)| *v)
    }

    pub fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.entries
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .map(|(k, _)| k.span())
    }
}

/// "a string", "an integer", … for `found …` messages.
pub(crate) fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Reads a TOML integer whatever its radix; `None` when it does not fit an `i64`.
pub(crate) fn integer_value(value: &DeValue<'_>) -> Option<i64> {
    let DeValue::Integer(i) = value else {
        return None;
    };
    let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
    i64::from_str_radix(&digits, i.radix()).ok()
}

/// One file's place in the walk's text: the files are laid end to end, so a byte offset names a file.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    pub file: FileId,
    pub name: String,
    pub base: usize,
    pub len: usize,
}

/// The walk's state: where we are, the declared build arguments, and the diagnostics so far.
///
/// `text` holds every file of the spec (includes first, the main Sysfile last)
/// laid end to end; offsets into it are mapped back to a file and a file
/// offset by [`Ctx::span`].
pub(crate) struct Ctx<'s> {
    pub text: &'s str,
    pub diagnostics: Vec<Diagnostic>,
    /// Declared build arguments and their effective values (for interpolation).
    pub args: BTreeMap<String, String>,
    /// Every string written with a `${NAME}` reference, as written, at its literal's span.
    pub templates: Vec<Template>,
    segments: Vec<Segment>,
    /// The segment of the main Sysfile.
    main: usize,
    /// Line starts of `text`, built on first use by [`Ctx::place`].
    line_starts: Option<LineIndex>,
    /// How many more undeclared references get a "did you mean" (see [`Ctx::interpolate`]).
    suggestions_left: usize,
}

/// Where a problem is: a range of the walk's text (a raw TOML value's) or a span of one file
/// (a model value's).
pub(crate) trait At {
    fn span(self, ctx: &Ctx<'_>) -> Span;
}

impl At for Range<usize> {
    fn span(self, ctx: &Ctx<'_>) -> Span {
        ctx.span(self)
    }
}

impl At for Span {
    fn span(self, _: &Ctx<'_>) -> Span {
        self
    }
}

impl<'s> Ctx<'s> {
    /// A walk over `text`, made of `segments` (sorted by base); `main` is the main Sysfile's.
    pub fn new(text: &'s str, segments: Vec<Segment>, main: usize) -> Ctx<'s> {
        Ctx {
            text,
            diagnostics: Vec::new(),
            args: BTreeMap::new(),
            templates: Vec::new(),
            segments,
            main,
            line_starts: None,
            suggestions_left: crate::diag::MAX_PER_FILE,
        }
    }

    fn segment_of(&self, offset: usize) -> Option<&Segment> {
        let i = self.segments.partition_point(|s| s.base <= offset);
        self.segments.get(i.checked_sub(1)?)
    }

    /// Maps a range of the walk's text to a span of one file.
    pub fn span(&self, range: Range<usize>) -> Span {
        match self.segment_of(range.start) {
            Some(seg) => {
                let start = (range.start - seg.base).min(seg.len);
                let end = range.end.saturating_sub(seg.base).clamp(start, seg.len);
                Span::new(seg.file, start..end)
            }
            None => Span::new(FileId(0), range),
        }
    }

    /// The inverse of [`Ctx::span`]: a span of one file as a range of the walk's text.
    pub fn unspan(&self, span: Span) -> Range<usize> {
        let base = self
            .segments
            .iter()
            .find(|s| s.file == span.file)
            .map_or(0, |s| s.base);
        base + span.start..base + span.end
    }

    /// An empty range at the start of the main Sysfile, for problems of the spec as a whole.
    pub fn main_anchor(&self) -> Range<usize> {
        let base = self.segments.get(self.main).map_or(0, |s| s.base);
        base..base
    }

    /// Where `offset` is, for a label of a problem at `at`: "line 3", or "line 3 of `common.toml`" in another file.
    pub fn place(&mut self, offset: usize, at: usize) -> String {
        if self.line_starts.is_none() {
            self.line_starts = Some(LineIndex::new(self.text));
        }
        let starts = self.line_starts.as_ref();
        let line_index = |o: usize| starts.map_or(0, |s| s.line_of(o)) + 1;
        let Some(seg) = self.segment_of(offset) else {
            return format!("line {}", line_index(offset));
        };
        let line = line_index(offset) + 1 - line_index(seg.base);
        if self.segment_of(at).is_some_and(|s| s.file == seg.file) {
            format!("line {line}")
        } else {
            format!("line {line} of `{}`", seg.name)
        }
    }

    pub fn error(
        &mut self,
        code: Code,
        range: impl At,
        message: impl Into<String>,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        let diagnostic = Diagnostic::error(code, range.span(self), message)
            .with_label(label)
            .with_help(help);
        self.diagnostics.push(diagnostic);
    }

    pub fn warning(
        &mut self,
        code: Code,
        range: impl At,
        message: impl Into<String>,
        label: impl Into<String>,
        help: impl Into<String>,
    ) {
        let diagnostic = Diagnostic::warning(code, range.span(self), message)
            .with_label(label)
            .with_help(help);
        self.diagnostics.push(diagnostic);
    }

    /// Reports a value rejected by one of the `values` checks.
    pub fn invalid(&mut self, range: impl At, invalid: Invalid, label: impl Into<String>) {
        self.error(invalid.code, range, invalid.message, label, invalid.help);
    }

    /// Reports every key of `table` not in `allowed` as `unknown-key`.
    pub fn check_keys(&mut self, table: &mut Table<'_, '_>, allowed: &[&'static str]) {
        for (key, value) in &table.entries {
            let name: &str = key.get_ref();
            if allowed.contains(&name) {
                continue;
            }
            let suggestion = did_you_mean(name, allowed.iter().copied());
            let help = match suggestion {
                Some(candidate) => format!("did you mean `{candidate}`?"),
                None => format!("{} accepts {}", table.what, list(allowed)),
            };
            if let Some(candidate) = suggestion {
                table.typos.push(candidate);
            }
            let message = if table.span.is_empty() && matches!(value.get_ref(), DeValue::Table(_)) {
                format!("unknown table `[{name}]`")
            } else {
                format!("unknown key `{name}` in {}", table.what)
            };
            self.error(Code::UnknownKey, key.span(), message, "unknown key", help);
        }
    }

    fn wrong_type(&mut self, value: &Value<'_>, expected: &str, help: String) {
        self.error(
            Code::WrongType,
            value.span(),
            format!("expected {expected}, found {}", type_name(value.get_ref())),
            format!("expected {expected}"),
            help,
        );
    }

    /// `key` must be present in `table`; reports `missing-key` at the table otherwise.
    pub fn require<'t, 'i>(
        &mut self,
        table: &Table<'t, 'i>,
        key: &str,
        example: &str,
    ) -> Option<&'t Value<'i>> {
        let value = table.get(key);
        if value.is_none() && !table.typos.contains(&key) {
            self.error(
                Code::MissingKey,
                table.span.clone(),
                format!("{} is missing the required key `{key}`", table.what),
                format!("`{key}` is required here"),
                format!("add `{key} = {example}`"),
            );
        }
        value
    }

    /// A table (inline or not).
    pub fn table<'t, 'i>(
        &mut self,
        key: &str,
        value: &'t Value<'i>,
        what: impl Into<String>,
    ) -> Option<Table<'t, 'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(Table::new(what, value.span(), table)),
            _ => {
                self.wrong_type(
                    value,
                    "a table",
                    format!("write `{key}` as a table: `[{key}]` followed by `key = value` lines"),
                );
                None
            }
        }
    }

    /// An array of tables (`[[key]]` entries or an array of inline tables).
    pub fn tables<'t, 'i>(
        &mut self,
        header: &str,
        value: &'t Value<'i>,
        what: &str,
    ) -> Vec<Table<'t, 'i>> {
        let key = header.rsplit('.').next().unwrap_or(header);
        let DeValue::Array(array) = value.get_ref() else {
            self.wrong_type(
                value,
                "an array of tables",
                format!("write each entry under its own `[[{header}]]` header, or as `{key} = [{{ … }}, {{ … }}]`"),
            );
            return Vec::new();
        };
        let mut tables = Vec::new();
        for item in array.iter() {
            match item.get_ref() {
                DeValue::Table(table) => tables.push(Table::new(what, item.span(), table)),
                _ => self.wrong_type(
                    item,
                    "a table",
                    format!("each element of `{key}` is a table such as `{{ … }}`"),
                ),
            }
        }
        tables
    }

    /// A string, with `${NAME}` build arguments interpolated.
    pub fn string(&mut self, key: &str, value: &Value<'_>) -> Option<Spanned<String>> {
        let raw = self.raw_string(key, value)?;
        let out = self.interpolate(&raw, value.span())?;
        if raw.contains("${") {
            let span = self.span(value.span());
            self.templates.push(Template { span, text: raw });
        }
        Some(Spanned::new(out, self.span(value.span())))
    }

    /// A string used verbatim (shell scripts, file contents).
    pub fn raw_string(&mut self, key: &str, value: &Value<'_>) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(
                    value,
                    "a string",
                    format!("`{key}` takes a string: put the value in double quotes"),
                );
                None
            }
        }
    }

    pub fn bool(&mut self, key: &str, value: &Value<'_>) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(
                    value,
                    "a boolean",
                    format!("`{key}` takes `true` or `false` (without quotes)"),
                );
                None
            }
        }
    }

    /// The elements of an array, each reported separately if wrong.
    pub fn array<'t, 'i>(&mut self, key: &str, value: &'t Value<'i>) -> Vec<&'t Value<'i>> {
        match value.get_ref() {
            DeValue::Array(array) => array.iter().collect(),
            _ => {
                self.wrong_type(
                    value,
                    "an array",
                    format!("`{key}` takes an array such as `[\"a\", \"b\"]`"),
                );
                Vec::new()
            }
        }
    }

    /// An array of strings, each interpolated.
    pub fn strings(&mut self, key: &str, value: &Value<'_>) -> Vec<Spanned<String>> {
        self.array(key, value)
            .into_iter()
            .filter_map(|item| self.string(key, item))
            .collect()
    }

    /// A table of string values, such as `env`; keys come with their spans.
    pub fn string_map(
        &mut self,
        key: &str,
        value: &Value<'_>,
    ) -> Vec<(Spanned<String>, Spanned<String>)> {
        let DeValue::Table(table) = value.get_ref() else {
            self.wrong_type(
                value,
                "a table",
                format!("write `{key}` as a table such as `{{ NAME = \"value\" }}`"),
            );
            return Vec::new();
        };
        let table = Table::new("", value.span(), table);
        let mut out = Vec::new();
        for (k, v) in table.entries {
            if let Some(s) = self.string(k.get_ref(), v) {
                out.push((
                    Spanned::new(k.get_ref().to_string(), self.span(k.span())),
                    s,
                ));
            }
        }
        out
    }

    /// One of a fixed set of strings.
    pub fn choice<T: Copy>(
        &mut self,
        key: &str,
        value: &Value<'_>,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let s = self.string(key, value)?;
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == s.value) {
            return Some(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        let help = match did_you_mean(&s.value, names.iter().copied()) {
            Some(candidate) => format!("did you mean \"{candidate}\"?"),
            None => format!(
                "write one of them, such as `{key} = \"{}\"`",
                names.first().copied().unwrap_or_default()
            ),
        };
        self.error(
            Code::BadValue,
            value.span(),
            format!("`{}` is not a valid value for `{key}`", &s.value),
            format!("expected one of {}", list(&names)),
            help,
        );
        None
    }

    /// An integer in `range`, reported with `code` otherwise.
    pub fn integer(
        &mut self,
        key: &str,
        value: &Value<'_>,
        range: std::ops::RangeInclusive<i64>,
        code: Code,
    ) -> Option<i64> {
        if !matches!(value.get_ref(), DeValue::Integer(_)) {
            self.wrong_type(
                value,
                "an integer",
                format!("`{key}` takes a whole number without quotes"),
            );
            return None;
        }
        match integer_value(value.get_ref()) {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.error(
                    code,
                    value.span(),
                    format!("`{key}` is out of range"),
                    format!("expected {} to {}", range.start(), range.end()),
                    format!(
                        "`{key}` takes a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// A file mode: an octal string or a TOML octal integer.
    pub fn mode(&mut self, key: &str, value: &Value<'_>) -> Option<u32> {
        match value.get_ref() {
            DeValue::String(_) => {
                let s = self.string(key, value)?;
                values::parse_mode(&s.value)
                    .map_err(|e| self.invalid(value.span(), e, "not an octal mode"))
                    .ok()
            }
            DeValue::Integer(i) if i.radix() == 8 => {
                let mode = integer_value(value.get_ref())
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(u32::MAX);
                values::check_mode(mode)
                    .map_err(|e| self.invalid(value.span(), e, "too large"))
                    .ok()
            }
            DeValue::Integer(i) => {
                let digits = i.as_str();
                let help = if i.radix() == 10
                    && !digits.is_empty()
                    && digits.bytes().all(|b| (b'0'..=b'7').contains(&b))
                {
                    format!("write 0o{digits} or \"0{digits}\"")
                } else {
                    values::MODE_HELP.to_string()
                };
                let (kind, label) = match i.radix() {
                    16 => ("a hexadecimal", "read as a hexadecimal number"),
                    2 => ("a binary", "read as a binary number"),
                    _ => ("a decimal", "read as a decimal number"),
                };
                self.error(
                    Code::BadMode,
                    value.span(),
                    format!("`{key}` is {kind} integer, but modes are octal"),
                    label,
                    help,
                );
                None
            }
            _ => {
                self.wrong_type(value, "an octal mode", values::MODE_HELP.to_string());
                None
            }
        }
    }

    /// A duration: a string with a unit, or integer seconds.
    pub fn duration(&mut self, key: &str, value: &Value<'_>) -> Option<std::time::Duration> {
        match value.get_ref() {
            DeValue::String(_) => {
                let s = self.string(key, value)?;
                values::parse_duration(&s.value)
                    .map_err(|e| self.invalid(value.span(), e, "not a duration"))
                    .ok()
            }
            DeValue::Integer(_) => {
                let seconds =
                    self.integer(key, value, 0..=i64::from(u32::MAX), Code::BadDuration)?;
                Some(std::time::Duration::from_secs(seconds.unsigned_abs()))
            }
            _ => {
                self.wrong_type(
                    value,
                    "a duration",
                    "write a duration such as \"15s\", \"500ms\" or \"2m\", or integer seconds"
                        .into(),
                );
                None
            }
        }
    }

    /// A size: a string with a unit, or integer bytes.
    pub fn size(&mut self, key: &str, value: &Value<'_>) -> Option<u64> {
        match value.get_ref() {
            DeValue::String(_) => {
                let s = self.string(key, value)?;
                values::parse_size(&s.value)
                    .map_err(|e| self.invalid(value.span(), e, "not a size"))
                    .ok()
            }
            DeValue::Integer(_) => self
                .integer(key, value, 0..=i64::MAX, Code::BadSize)
                .map(i64::unsigned_abs),
            _ => {
                self.wrong_type(
                    value,
                    "a size",
                    "write a size such as \"64m\" or \"1g\", or integer bytes".into(),
                );
                None
            }
        }
    }

    /// A build-context path, normalised.
    pub fn context_path(&mut self, key: &str, value: &Value<'_>) -> Option<Spanned<String>> {
        let s = self.string(key, value)?;
        match values::normalize_context_path(&s.value) {
            Ok(path) => Some(Spanned::new(path, s.span)),
            Err(e) => {
                self.invalid(value.span(), e, "not a path inside the build context");
                None
            }
        }
    }

    /// An absolute path in the image, normalised.
    pub fn absolute_path(&mut self, key: &str, value: &Value<'_>) -> Option<Spanned<String>> {
        let s = self.string(key, value)?;
        match values::normalize_absolute_path(&s.value) {
            Ok(path) => Some(Spanned::new(path, s.span)),
            Err(e) => {
                self.invalid(value.span(), e, "must be absolute");
                None
            }
        }
    }

    /// Interpolates a string whose TOML literal is at `range`, reporting problems at the reference itself.
    fn interpolate(&mut self, s: &str, range: Range<usize>) -> Option<String> {
        let problems = match interpolate(s, |name| self.args.get(name).map(String::as_str)) {
            Ok(out) => return Some(out),
            Err(problems) => problems,
        };
        for problem in problems {
            match problem {
                Problem::Undeclared { name, range: inner } => {
                    let at = self.inner_range(&range, s, inner);
                    // A suggestion compares with every declared argument: only for the first
                    // few references, so many of them against many arguments stay linear.
                    let suggestion = if self.suggestions_left > 0 {
                        self.suggestions_left -= 1;
                        did_you_mean(&name, self.args.keys().map(String::as_str))
                    } else {
                        None
                    };
                    let help = match suggestion {
                        Some(candidate) => format!("did you mean `${{{candidate}}}`?"),
                        None => format!(
                            "declare it under `[args]`, such as `{name} = \"default\"`, or write `$${{{name}}}` for a literal `${{{name}}}`"
                        ),
                    };
                    self.error(
                        Code::UndeclaredArg,
                        at,
                        format!("build argument `{name}` is not declared"),
                        "not declared in `[args]`",
                        help,
                    );
                }
                Problem::Unterminated { range: inner } => {
                    let at = self.inner_range(&range, s, inner);
                    self.error(
                        Code::UnterminatedInterpolation,
                        at,
                        "`${` is not closed by `}`",
                        "unterminated `${`",
                        "close the reference as `${NAME}`, or write `$$` for a literal `$`",
                    );
                }
                Problem::BadName { name, range: inner } => {
                    let at = self.inner_range(&range, s, inner);
                    self.error(
                        Code::BadInterpolation,
                        at,
                        format!("`${{{name}}}` does not name a build argument"),
                        "not a build-argument reference",
                        "build-argument names are letters, digits and `_`, such as `${VERSION}`; write `$$` for a literal `$`",
                    );
                }
            }
        }
        None
    }

    /// Maps a byte range of a decoded string to the source when the literal has no escapes; else the whole literal.
    fn inner_range(
        &self,
        literal: &Range<usize>,
        decoded: &str,
        inner: Range<usize>,
    ) -> Range<usize> {
        let Some(raw) = self.text.get(literal.clone()) else {
            return literal.clone();
        };
        for delimiter in ["\"\"\"", "'''", "\"", "'"] {
            if raw.len() >= 2 * delimiter.len()
                && raw.starts_with(delimiter)
                && raw.ends_with(delimiter)
            {
                let mut body_start = delimiter.len();
                let body_end = raw.len() - delimiter.len();
                if delimiter.len() == 3 {
                    if raw[body_start..].starts_with("\r\n") {
                        body_start += 2;
                    } else if raw[body_start..].starts_with('\n') {
                        body_start += 1;
                    }
                }
                if raw.get(body_start..body_end) == Some(decoded) {
                    let base = literal.start + body_start;
                    return base + inner.start..base + inner.end;
                }
                break;
            }
        }
        literal.clone()
    }
}
