//! Source ranges as BuildKit shows them: 1-based line and column positions of a span, the shape
//! of `pb.Range` in JSON (errors' `Source` details, subrequest results).
//!
//! Pure: `gateway::errors` adds the protobuf form, `outline` writes the JSON.

use serde::Serialize;

use crate::diag::{LineCol, LineRange, SourceFile, Span};

/// The language tag sysfile puts in `SourceInfo.language`.
pub const SPEC_LANGUAGE: &str = "TOML";

/// A `pb.Position` as JSON: 1-based line, character omitted when 0 (Go `omitempty`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Position {
    pub line: i32,
    #[serde(skip_serializing_if = "is_zero")]
    pub character: i32,
}

/// A `pb.Range` as JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Range {
    pub start: Position,
    pub end: Position,
}

impl Range {
    /// The 1-based line/column range of a span in `file` ([`SourceFile::range`]).
    pub fn of_span(file: &SourceFile, span: Span) -> Range {
        let LineRange { start, end } = file.range(span);
        let pos = |lc: LineCol| Position {
            line: i32::try_from(lc.line).unwrap_or(i32::MAX),
            character: i32::try_from(lc.column).unwrap_or(i32::MAX),
        };
        Range {
            start: pos(start),
            end: pos(end),
        }
    }
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}
