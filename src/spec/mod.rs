//! The `spec` stage: Sysfile TOML text to a validated [`model::Spec`](crate::model::Spec) plus diagnostics.
//!
//! This is the only module that knows TOML. It parses the text into
//! `toml`'s spanned tree and walks it by hand (no serde), so one pass reports
//! every problem with the exact span of the key or value at fault. It does no
//! I/O and never panics, whatever the input.
//!
//! Files: `walk.rs` (typed access to the spanned tree, shared diagnostics),
//! `sections.rs` (one function per table of the language), `values.rs`
//! (value formats), `interpolate.rs` (`${NAME}` build arguments).

mod interpolate;
pub mod schema;
mod sections;
mod values;
mod walk;

use std::collections::BTreeMap;

use crate::diag::{Diagnostic, FileId, SourceFile, Sources};
use crate::model::Spec;

/// Inputs of [`load`] other than the text.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--build-arg NAME=value` overrides.
    pub build_args: BTreeMap<String, String>,
}

/// The result of [`load`].
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The files read (only the main Sysfile in v1).
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
    let sources = Sources::new(main);
    let (spec, mut diagnostics) = sections::check(&sources.main().text, FileId(0), options);
    diagnostics.sort_by_key(|d| (d.span.file, d.span.start));
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
