//! The `spec` stage: Sysfile TOML text to a validated [`model::Spec`](crate::model::Spec) plus diagnostics.
//!
//! This is the only module that knows TOML. It parses the text into
//! `toml`'s spanned tree and walks it by hand (no serde), so one pass reports
//! every problem with the exact span of the key or value at fault. It does no
//! I/O and never panics, whatever the input.
//!
//! Includes (`include = [...]`) are resolved from texts the caller supplies
//! in [`LoadOptions::includes`]: see [`include_requests`] and
//! [`collect_includes`] for the caller's side.
//!
//! Files: `schema.rs` (every table and key, and the JSON Schema), `include.rs`
//! (includes and merging), `walk.rs` (typed access to the spanned tree, shared diagnostics),
//! `sections.rs` (one function per table of the language), `values.rs`
//! (value formats), `interpolate.rs` (`${NAME}` build arguments).

mod include;
mod interpolate;
pub mod schema;
mod sections;
mod values;
mod walk;

use std::collections::BTreeMap;

pub use include::{
    Collected, Fetched, MAX_INCLUDE_DEPTH, MAX_SPEC_BYTES, collect_include_files, collect_includes,
    decode_include, include_requests,
};
pub use schema::json_schema;

use crate::diag::{Code, Diagnostic, SourceFile, Sources};
use crate::model::Spec;

/// Inputs of [`load`] other than the text.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--build-arg NAME=value` overrides.
    pub build_args: BTreeMap<String, String>,
    /// The texts of included files by normalised context-relative path (`include_requests`
    /// tells which to read; `collect_includes` reads them all). An `include` whose path is
    /// absent is a `missing-include` error.
    pub includes: BTreeMap<String, String>,
    /// Included files that exist but cannot be used, with the reason (see
    /// [`decode_include`]); each is an `unreadable-include` error at the entry naming it.
    pub include_errors: BTreeMap<String, String>,
}

/// Decodes the bytes of a main spec file. Bytes that are not UTF-8 give the text with
/// replacement characters and a `not-utf8` error at the first bad byte, so the problem is
/// shown in place like any other.
pub fn decode_main(name: impl Into<String>, data: Vec<u8>) -> (SourceFile, Option<Diagnostic>) {
    match String::from_utf8(data) {
        Ok(text) => (SourceFile::new(name, text), None),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let end = text[at..].chars().next().map_or(at, |c| at + c.len_utf8());
            let diagnostic = Diagnostic::error(
                Code::NotUtf8,
                crate::diag::Span::new(crate::diag::FileId(0), at..end),
                "the Sysfile is not UTF-8 text",
            )
            .with_label("not UTF-8")
            .with_help(
                "a Sysfile is a UTF-8 TOML document; save it as UTF-8 and remove binary bytes",
            );
            (SourceFile::new(name, text), Some(diagnostic))
        }
    }
}

/// The result of [`load`].
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The files read: the main Sysfile (`FileId(0)`), then included files in the order met.
    pub sources: Sources,
    /// The validated spec: `Some` only when no diagnostic is an error.
    pub spec: Option<Spec>,
    /// Every error and warning, sorted by (file, span start).
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses and validates a Sysfile.
///
/// `spec` is Some only when no diagnostic is an error. Diagnostics are sorted by (file, span start).
pub fn load(main: SourceFile, options: &LoadOptions) -> Loaded {
    let mut sources = Sources::new(main);
    let mut diagnostics = Vec::new();
    let order = include::resolve(&mut sources, options, &mut diagnostics);
    let mut spec = None;
    // A file that is not TOML was reported by itself; walking the rest would only add noise.
    if !diagnostics
        .iter()
        .any(|d| d.code == Code::TomlSyntax.as_str())
    {
        let (text, segments, main) = include::lay_out(&sources, &order);
        let padded: Vec<String> = segments
            .iter()
            .map(|seg| {
                let file = &text[seg.base..seg.base + seg.len];
                // A byte-order mark is only allowed at the very start: keep the offsets, drop the mark.
                let (pad, file) = match file.strip_prefix('\u{feff}') {
                    Some(rest) if seg.base > 0 => ("\n".repeat(seg.base) + "   ", rest),
                    _ => ("\n".repeat(seg.base), file),
                };
                pad + file
            })
            .collect();
        let mut ctx = walk::Ctx::new(&text, segments, main);
        if let Some(root) = include::merge(&mut ctx, &padded, main) {
            spec = sections::check(&mut ctx, &root, options);
        }
        diagnostics.append(&mut ctx.diagnostics);
    }
    diagnostics.sort_by_key(|d| (d.span.file, d.span.start));
    let diagnostics = crate::diag::cap(diagnostics, &sources);
    let spec = if diagnostics.iter().any(Diagnostic::is_error) {
        None
    } else {
        spec
    };
    Loaded {
        sources,
        spec,
        diagnostics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_utf8_sysfile_is_a_located_error() {
        let (file, diagnostic) = decode_main("Sysfile", b"[image]\nfrom = \"\xc3(\"\n".to_vec());
        let diagnostic = diagnostic.expect("not UTF-8");
        assert_eq!(diagnostic.code, "not-utf8");
        let at = file.line_col(diagnostic.span.start);
        assert_eq!((at.line, at.column), (2, 9));
        assert!(decode_main("Sysfile", b"[image]\n".to_vec()).1.is_none());
    }
}
