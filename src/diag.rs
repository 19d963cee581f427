//! Diagnostics: spanned errors and warnings about a Sysfile, independent of any renderer.
//!
//! Every stage reports problems as [`Diagnostic`] values that point at byte
//! spans of a [`SourceFile`]. The CLI renders them like rustc (see
//! [`render`]); the gateway turns them into BuildKit `errdefs.Source` details
//! and `Warn` ranges through [`SourceFile::line_col`].

use std::fmt;

mod codes;
pub use codes::Code;

/// Index of a file in [`Sources`]. The main Sysfile is always `FileId(0)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// A byte range in one source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    pub file: FileId,
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(file: FileId, range: std::ops::Range<usize>) -> Span {
        Span {
            file,
            start: range.start,
            end: range.end,
        }
    }
}

/// A spec file as read: its name (as the user knows it) and its text.
///
/// Its [`LineIndex`] is built on the first [`SourceFile::line_col`] and kept, so
/// turning any number of spans into lines and columns costs linear time overall.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
    index: std::sync::OnceLock<LineIndex>,
}

impl PartialEq for SourceFile {
    fn eq(&self, other: &SourceFile) -> bool {
        self.name == other.name && self.text == other.text
    }
}

impl Eq for SourceFile {}

/// A 1-based line and column (column counted in characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineCol {
    pub line: usize,
    pub column: usize,
}

/// The byte offsets where the lines of one text start: span to line and column in
/// `O(log lines + line length)`. The one implementation of that mapping; every stage uses it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineIndex {
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        LineIndex {
            starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
            len: text.len(),
        }
    }

    /// The 0-based index of the line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1)
    }

    /// The byte offset where 0-based line `line` starts (the text's end past the last line).
    pub fn line_start(&self, line: usize) -> usize {
        self.starts.get(line).copied().unwrap_or(self.len)
    }

    /// The 1-based line and column of a byte offset of `text` (the text this index was built
    /// from), clamped to the text and to a character boundary.
    pub fn line_col(&self, text: &str, offset: usize) -> LineCol {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_of(offset);
        let start = self.line_start(line).min(offset);
        let column = text.get(start..offset).map_or(0, |s| s.chars().count()) + 1;
        LineCol {
            line: line + 1,
            column,
        }
    }
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            name: name.into(),
            text: text.into(),
            index: std::sync::OnceLock::new(),
        }
    }

    /// Runs `f` with the file's line index, built once (rebuilt if `text` was replaced since).
    pub fn with_index<R>(&self, f: impl FnOnce(&LineIndex) -> R) -> R {
        let index = self.index.get_or_init(|| LineIndex::new(&self.text));
        if index.len == self.text.len() {
            f(index)
        } else {
            f(&LineIndex::new(&self.text))
        }
    }

    /// The 1-based line and column of a byte offset (clamped to the text).
    pub fn line_col(&self, offset: usize) -> LineCol {
        self.with_index(|index| index.line_col(&self.text, offset))
    }

    /// Where a span of this file is, as 1-based lines and columns: the one span-to-location
    /// mapping behind source maps, `errdefs.Source` ranges, warnings and outline locations.
    /// An end just past a newline is pulled back onto the line it ends.
    pub fn range(&self, span: Span) -> LineRange {
        let mut end = span.end.max(span.start);
        if end > span.start && self.text.as_bytes().get(end - 1) == Some(&b'\n') {
            end -= 1;
        }
        self.with_index(|index| LineRange {
            start: index.line_col(&self.text, span.start),
            end: index.line_col(&self.text, end),
        })
    }
}

/// A span as 1-based lines and columns (see [`SourceFile::range`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRange {
    pub start: LineCol,
    pub end: LineCol,
}

/// All files a spec was read from: the main Sysfile first, then includes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    pub fn new(main: SourceFile) -> Sources {
        Sources { files: vec![main] }
    }

    pub fn add(&mut self, file: SourceFile) -> FileId {
        self.files.push(file);
        FileId((self.files.len() - 1) as u32)
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn main(&self) -> &SourceFile {
        &self.files[0]
    }

    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One problem found in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable identifier such as `unknown-key` or `path-escapes-context`.
    pub code: &'static str,
    /// What is wrong, one sentence without a trailing period.
    pub message: String,
    /// Where it is wrong.
    pub span: Span,
    /// A short label shown under the span.
    pub label: String,
    /// How to fix it.
    pub help: Option<String>,
    /// Other places that take part, each with its own label (shown when in the same file).
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    /// An error; `code` is a [`Code`] (or a lint rule's code).
    pub fn error(
        code: impl Into<&'static str>,
        span: Span,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code: code.into(),
            message: message.into(),
            span,
            label: String::new(),
            help: None,
            related: Vec::new(),
        }
    }

    pub fn warning(
        code: impl Into<&'static str>,
        span: Span,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = label.into();
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// Adds another place that takes part in the problem, with its label.
    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.related.push((span, label.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl Sources {
    /// The file with this id, if there is one.
    pub fn try_get(&self, id: FileId) -> Option<&SourceFile> {
        self.files.get(id.0 as usize)
    }
}

/// At most this many diagnostics are kept on one line of a file.
pub const MAX_PER_LINE: usize = 5;
/// At most this many diagnostics are kept for one file.
pub const MAX_PER_FILE: usize = 100;

/// Keeps at most [`MAX_PER_LINE`] diagnostics per line and [`MAX_PER_FILE`] per file (the
/// first ones, in the order given), and adds one `more-diagnostics` note per file that lost
/// some, at the last one dropped: "N more errors …". Its severity is the highest dropped, so
/// a spec never looks valid because its errors were cut. Linear in the number of diagnostics.
pub fn cap(diagnostics: Vec<Diagnostic>, sources: &Sources) -> Vec<Diagnostic> {
    use std::collections::HashMap;
    let mut per_file: HashMap<FileId, usize> = HashMap::new();
    let mut per_line: HashMap<(FileId, usize), usize> = HashMap::new();
    // Per file: (dropped count, highest severity, last dropped span).
    let mut dropped: std::collections::BTreeMap<FileId, (usize, Severity, Span)> =
        std::collections::BTreeMap::new();
    let mut kept = Vec::with_capacity(diagnostics.len().min(MAX_PER_FILE * 2));
    for diagnostic in diagnostics {
        // A count from an earlier cap stays, and does not count itself.
        if diagnostic.code == Code::MoreDiagnostics.as_str() {
            kept.push(diagnostic);
            continue;
        }
        let span = diagnostic.span;
        let line = sources.try_get(span.file).map_or(0, |file| {
            file.with_index(|index| index.line_of(span.start.min(file.text.len())))
        });
        let in_file = per_file.entry(span.file).or_default();
        let on_line = per_line.entry((span.file, line)).or_default();
        if *in_file < MAX_PER_FILE && *on_line < MAX_PER_LINE {
            *in_file += 1;
            *on_line += 1;
            kept.push(diagnostic);
        } else {
            let entry = dropped
                .entry(span.file)
                .or_insert((0, Severity::Warning, span));
            entry.0 += 1;
            entry.1 = entry.1.max(diagnostic.severity);
            entry.2 = span;
        }
    }
    for (_, (count, severity, span)) in dropped {
        let what = match severity {
            Severity::Error => "problems",
            Severity::Warning => "warnings",
        };
        let message = format!(
            "{count} more {what} in this file are not shown (at most {MAX_PER_LINE} per line and {MAX_PER_FILE} per file)"
        );
        kept.push(Diagnostic {
            severity,
            code: Code::MoreDiagnostics.as_str(),
            message,
            span,
            label: "and more".to_string(),
            help: Some("fix the problems shown and check again to see the rest".to_string()),
            related: Vec::new(),
        });
    }
    kept.sort_by_key(|d| (d.span.file, d.span.start));
    kept
}

/// Clamps a span to `text`, on character boundaries.
fn clamp(text: &str, span: Span) -> std::ops::Range<usize> {
    let floor = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let start = floor(span.start);
    let end = floor(span.end.max(span.start));
    start..end
}

/// Renders diagnostics like rustc and cargo: `error[code]: message`, ` --> file:line:col`, the source with carets and label, `= help: …`.
///
/// `color = false` gives stable plain text (used by snapshot tests). A
/// diagnostic whose file is unknown is rendered without a snippet.
pub fn render(diagnostics: &[Diagnostic], sources: &Sources, color: bool) -> String {
    use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};

    let renderer = if color {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let mut out = String::new();
    for diagnostic in diagnostics {
        let level = match diagnostic.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        let title = level
            .primary_title(diagnostic.message.as_str())
            .id(diagnostic.code);
        let mut group = match sources.try_get(diagnostic.span.file) {
            Some(file) => {
                // Only the lines the span touches are handed to the renderer (found in the
                // file's line index), so rendering stays linear in the number of diagnostics.
                let range = clamp(&file.text, diagnostic.span);
                let related: Vec<(std::ops::Range<usize>, &str)> = diagnostic
                    .related
                    .iter()
                    .filter(|(span, _)| span.file == diagnostic.span.file)
                    .map(|(span, label)| (clamp(&file.text, *span), label.as_str()))
                    .collect();
                let low = related
                    .iter()
                    .map(|(r, _)| r.start)
                    .fold(range.start, usize::min);
                let high = related
                    .iter()
                    .map(|(r, _)| r.end)
                    .fold(range.end, usize::max);
                let (line, first, last) = file.with_index(|index| {
                    let line = index.line_of(low);
                    let end_line = index.line_of(high);
                    (
                        line + 1,
                        index.line_start(line),
                        index.line_start(end_line + 1),
                    )
                });
                let (first, last) = (first.min(low), last.max(high));
                let excerpt = &file.text[first..last];
                let mut annotation =
                    AnnotationKind::Primary.span(range.start - first..range.end - first);
                if !diagnostic.label.is_empty() {
                    annotation = annotation.label(diagnostic.label.as_str());
                }
                let mut snippet = Snippet::source(excerpt)
                    .line_start(line)
                    .path(file.name.as_str())
                    .annotation(annotation);
                for (r, label) in related {
                    snippet = snippet.annotation(
                        AnnotationKind::Context
                            .span(r.start - first..r.end - first)
                            .label(label),
                    );
                }
                Group::with_title(title).element(snippet)
            }
            None => Group::with_title(title),
        };
        if let Some(help) = &diagnostic.help {
            group = group.element(Level::HELP.message(help.as_str()));
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&renderer.render(&[group]));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_rustc() {
        let sources = Sources::new(SourceFile::new("Sysfile", "[image]\nfrom = 1\n"));
        let span = Span::new(FileId(0), 15..16);
        let diagnostic =
            Diagnostic::error(Code::WrongType, span, "expected a string, found an integer")
                .with_label("expected a string")
                .with_help("put the value in double quotes");
        let out = render(&[diagnostic.clone(), diagnostic], &sources, false);
        let one = "error[wrong-type]: expected a string, found an integer\n --> Sysfile:2:8\n  |\n2 | from = 1\n  |        ^ expected a string\n  |\n  = help: put the value in double quotes\n";
        assert_eq!(out, format!("{one}\n{one}"));
    }

    #[test]
    fn diagnostics_are_capped_per_line_and_per_file() {
        let line = "${X}".repeat(8000);
        let text = format!("{line}\n{}", "y\n".repeat(300));
        let sources = Sources::new(SourceFile::new("Sysfile", text.as_str()));
        let mut diagnostics: Vec<Diagnostic> = (0..8000)
            .map(|i| Diagnostic::error("e", Span::new(FileId(0), i * 4..i * 4 + 4), "x"))
            .collect();
        let base = line.len() + 1;
        diagnostics.extend((0..300).map(|i| {
            Diagnostic::warning(
                "w",
                Span::new(FileId(0), base + i * 2..base + i * 2 + 1),
                "y",
            )
        }));
        let kept = cap(diagnostics, &sources);
        assert_eq!(kept.len(), MAX_PER_FILE + 1);
        assert_eq!(kept.iter().filter(|d| d.code == "e").count(), MAX_PER_LINE);
        let more: Vec<_> = kept
            .iter()
            .filter(|d| d.code == "more-diagnostics")
            .collect();
        assert_eq!(more.len(), 1);
        assert!(more[0].is_error(), "errors were dropped");
        assert!(
            more[0].message.starts_with("8200 more problems"),
            "{}",
            more[0].message
        );
        let started = std::time::Instant::now();
        let out = render(&kept, &sources, false);
        assert!(out.contains("8200 more problems"));
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        // Capping again keeps the count as it is.
        assert_eq!(cap(kept.clone(), &sources), kept);
    }

    #[test]
    fn odd_spans_do_not_panic() {
        let sources = Sources::new(SourceFile::new("Sysfile", "é\n"));
        let diagnostics = [
            Diagnostic::warning(
                "w",
                Span::new(FileId(0), 1..99),
                "inside a character, past the end",
            ),
            Diagnostic::error(
                "e",
                Span {
                    file: FileId(0),
                    start: 5,
                    end: 2,
                },
                "reversed",
            ),
            Diagnostic::error("e", Span::new(FileId(7), 0..1), "unknown file"),
        ];
        let out = render(&diagnostics, &sources, true);
        assert!(out.contains("unknown file"));
        assert!(out.contains("Sysfile:1:1"));
    }
}
