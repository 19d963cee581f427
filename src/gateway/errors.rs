//! `google.rpc.Status` values for `Return{error}`: the frontend's own errors with BuildKit `errdefs` details, and pass-through of BuildKit's.
//!
//! Details are `google.protobuf.Any` whose value is JSON (BuildKit registers
//! its error types as `github.com/moby/buildkit/errdefs.<Type>+json`). Our own
//! errors use code 2 (Unknown), which clients print without a code prefix.

use base64::Engine as _;
use prost::Message as _;
use serde::Serialize;

use crate::diag::{Diagnostic, SourceFile, Sources, Span};
use crate::pb;
pub use crate::source_range::{Position, Range, SPEC_LANGUAGE};

/// `type_url` of a BuildKit source-location detail.
pub const SOURCE_TYPE_URL: &str = "github.com/moby/buildkit/errdefs.Source+json";
/// `type_url` of BuildKit's "unsupported subrequest" detail.
pub const SUBREQUEST_TYPE_URL: &str = "github.com/moby/buildkit/errdefs.Subrequest+json";
/// gRPC code Unknown, the code BuildKit itself uses for ordinary errors.
pub const CODE_UNKNOWN: i32 = 2;

impl Range {
    /// The protobuf form (for `WarnRequest.ranges` and source maps).
    pub fn to_pb(self) -> pb::llb::Range {
        let pos = |p: Position| pb::llb::Position {
            line: p.line,
            character: p.character,
        };
        pb::llb::Range {
            start: Some(pos(self.start)),
            end: Some(pos(self.end)),
        }
    }
}

#[derive(Serialize)]
struct SourceInfoJson<'a> {
    filename: &'a str,
    #[serde(skip_serializing_if = "String::is_empty")]
    data: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    language: &'a str,
}

#[derive(Serialize)]
struct SourceJson<'a> {
    info: SourceInfoJson<'a>,
    ranges: &'a [Range],
}

/// The JSON value of an `errdefs.Source` detail.
pub fn source_json(filename: &str, data: &[u8], language: &str, ranges: &[Range]) -> Vec<u8> {
    let value = SourceJson {
        info: SourceInfoJson {
            filename,
            data: base64::engine::general_purpose::STANDARD.encode(data),
            language,
        },
        ranges,
    };
    // Serialising plain structs of strings and integers cannot fail.
    serde_json::to_vec(&value).unwrap_or_default()
}

/// An `errdefs.Source` detail for ranges of one spec file.
pub fn source_detail(file: &SourceFile, ranges: &[Range]) -> prost_types::Any {
    prost_types::Any {
        type_url: SOURCE_TYPE_URL.to_string(),
        value: source_json(&file.name, file.text.as_bytes(), SPEC_LANGUAGE, ranges),
    }
}

/// A code-2 Status with one `errdefs.Source` detail per file the spans touch (in first-seen order).
pub fn source_status(message: &str, spans: &[Span], sources: &Sources) -> pb::rpc::Status {
    let mut groups: Vec<(crate::diag::FileId, Vec<Range>)> = Vec::new();
    for span in spans {
        let range = Range::of_span(sources.get(span.file), *span);
        match groups.iter_mut().find(|(f, _)| *f == span.file) {
            Some((_, ranges)) => ranges.push(range),
            None => groups.push((span.file, vec![range])),
        }
    }
    pb::rpc::Status {
        code: CODE_UNKNOWN,
        message: message.to_string(),
        details: groups
            .iter()
            .map(|(f, ranges)| source_detail(sources.get(*f), ranges))
            .collect(),
    }
}

/// One diagnostic as a single line: `<file>:<line>:<col>: <message> (help: …)`.
pub fn render_short(diag: &Diagnostic, sources: &Sources) -> String {
    let file = sources.get(diag.span.file);
    let lc = file.line_col(diag.span.start);
    let mut out = format!("{}:{}:{}: {}", file.name, lc.line, lc.column, diag.message);
    if let Some(help) = &diag.help {
        out.push_str(&format!(" (help: {help})"));
    }
    out
}

/// The Status for a spec that failed validation: every error diagnostic, in order.
///
/// The message holds one short line per error (the first is what clients show
/// most prominently); there is one Source detail per file, with the ranges of
/// every error in it, in order. With no error diagnostics, warnings are used instead.
pub fn status_from_diagnostics(diags: &[Diagnostic], sources: &Sources) -> pb::rpc::Status {
    let errors: Vec<&Diagnostic> = diags.iter().filter(|d| d.is_error()).collect();
    let chosen: Vec<&Diagnostic> = if errors.is_empty() {
        diags.iter().collect()
    } else {
        errors
    };
    let message = if chosen.is_empty() {
        "the spec is invalid".to_string()
    } else {
        chosen
            .iter()
            .map(|d| render_short(d, sources))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // One Source detail per file, holding every range in it: each file's text is sent once,
    // however many errors point into it.
    let mut groups: Vec<(crate::diag::FileId, Vec<Range>)> = Vec::new();
    for d in &chosen {
        let spans = std::iter::once(d.span).chain(d.related.iter().map(|(span, _)| *span));
        for span in spans {
            let range = Range::of_span(sources.get(span.file), span);
            match groups.iter_mut().find(|(f, _)| *f == span.file) {
                Some((_, ranges)) => ranges.push(range),
                None => groups.push((span.file, vec![range])),
            }
        }
    }
    let details = groups
        .iter()
        .map(|(f, ranges)| source_detail(sources.get(*f), ranges))
        .collect();
    pb::rpc::Status {
        code: CODE_UNKNOWN,
        message,
        details,
    }
}

/// A `WarnRequest` for a warning diagnostic, attached to the vertex `digest`.
pub fn warn_request(
    diag: &Diagnostic,
    sources: &Sources,
    digest: &str,
) -> pb::gateway::WarnRequest {
    let file = sources.get(diag.span.file);
    let range = Range::of_span(file, diag.span);
    pb::gateway::WarnRequest {
        digest: digest.to_string(),
        level: 1,
        short: format!(
            "{}: {} (line {})",
            diag.code, diag.message, range.start.line
        )
        .into_bytes(),
        detail: diag.help.iter().map(|h| h.clone().into_bytes()).collect(),
        url: String::new(),
        info: Some(pb::llb::SourceInfo {
            filename: file.name.clone(),
            data: file.text.clone().into_bytes(),
            definition: None,
            language: SPEC_LANGUAGE.to_string(),
        }),
        ranges: vec![range.to_pb()],
    }
}

/// The `google.rpc.Status` of an error received from BuildKit, unchanged.
///
/// tonic keeps the whole encoded `google.rpc.Status` (with BuildKit's
/// `Source`, `Solve`, `Vertex` details) in `grpc-status-details-bin`,
/// exposed as `details()`. Without it (or if it does not decode), the
/// Status is rebuilt from the code and message.
pub fn status_from_tonic(status: &tonic::Status) -> pb::rpc::Status {
    if !status.details().is_empty() {
        if let Ok(decoded) = pb::rpc::Status::decode(status.details()) {
            return decoded;
        }
    }
    pb::rpc::Status {
        code: status.code() as i32,
        message: status.message().to_string(),
        details: vec![],
    }
}

/// The reverse of [`status_from_tonic`]: a tonic Status carrying `status` in its details (used by the fake daemon).
pub fn status_to_tonic(status: &pb::rpc::Status) -> tonic::Status {
    tonic::Status::with_details(
        tonic::Code::from_i32(status.code),
        status.message.clone(),
        prost::bytes::Bytes::from(status.encode_to_vec()),
    )
}

/// The answer to an unknown `requestid`: `unsupported request <name>` with an `errdefs.Subrequest` detail.
pub fn subrequest_unsupported(name: &str) -> pb::rpc::Status {
    let value = serde_json::json!({ "name": name }).to_string().into_bytes();
    pb::rpc::Status {
        code: CODE_UNKNOWN,
        message: format!("unsupported request {name}"),
        details: vec![prost_types::Any {
            type_url: SUBREQUEST_TYPE_URL.to_string(),
            value,
        }],
    }
}

/// A plain code-2 Status for errors that have no source location.
pub fn plain_status(message: impl Into<String>) -> pb::rpc::Status {
    pb::rpc::Status {
        code: CODE_UNKNOWN,
        message: message.into(),
        details: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::FileId;

    #[test]
    fn source_json_matches_buildkit_bytes() {
        // BuildKit master's ToGRPC on "bad key b" with a Source for spec.yaml line 2.
        let line2 = Position {
            line: 2,
            character: 0,
        };
        let json = source_json(
            "spec.yaml",
            b"a: 1\nb: 2\n",
            "YAML",
            &[Range {
                start: line2,
                end: line2,
            }],
        );
        assert_eq!(
            String::from_utf8_lossy(&json),
            r#"{"info":{"filename":"spec.yaml","data":"YTogMQpiOiAyCg==","language":"YAML"},"ranges":[{"start":{"line":2},"end":{"line":2}}]}"#
        );
    }

    #[test]
    fn source_status_code_and_detail() {
        let sources = Sources::new(SourceFile::new("Sysfile", "a = 1\nb = 2\n"));
        let span = Span::new(FileId(0), 6..11);
        let st = source_status("bad key b", &[span], &sources);
        assert_eq!(st.code, 2);
        assert_eq!(st.message, "bad key b");
        assert_eq!(st.details.len(), 1);
        assert_eq!(st.details[0].type_url, SOURCE_TYPE_URL);
        assert_eq!(
            String::from_utf8_lossy(&st.details[0].value),
            r#"{"info":{"filename":"Sysfile","data":"YSA9IDEKYiA9IDIK","language":"TOML"},"ranges":[{"start":{"line":2,"character":1},"end":{"line":2,"character":6}}]}"#
        );
    }

    #[test]
    fn span_ending_after_newline_stays_on_its_line() {
        let file = SourceFile::new("f", "a = 1\nb = 2\n");
        let r = Range::of_span(&file, Span::new(FileId(0), 0..6));
        assert_eq!((r.start.line, r.end.line, r.end.character), (1, 1, 6));
    }

    #[test]
    fn diagnostics_render_and_detail_per_error() {
        let mut sources = Sources::new(SourceFile::new("Sysfile", "[image]\nbase = 1\n"));
        let inc = sources.add(SourceFile::new("inc.toml", "x = 2\n"));
        let diags = vec![
            Diagnostic::error(
                "type",
                Span::new(FileId(0), 15..16),
                "base must be a string",
            )
            .with_help("quote it"),
            Diagnostic::warning("unused", Span::new(FileId(0), 0..7), "unused table"),
            Diagnostic::error(
                crate::diag::Code::UnknownKey,
                Span::new(inc, 0..1),
                "unknown key x",
            ),
        ];
        let st = status_from_diagnostics(&diags, &sources);
        assert_eq!(st.code, 2);
        assert_eq!(
            st.message,
            "Sysfile:2:8: base must be a string (help: quote it)\ninc.toml:1:1: unknown key x"
        );
        assert_eq!(st.details.len(), 2);
        let second = String::from_utf8_lossy(&st.details[1].value).to_string();
        assert!(second.contains(r#""filename":"inc.toml""#), "{second}");
    }

    #[test]
    fn each_file_is_sent_once_however_many_errors_point_into_it() {
        let text = "x = 1\n".repeat(50);
        let sources = Sources::new(SourceFile::new("Sysfile", text.as_str()));
        let diags: Vec<Diagnostic> = (0..50)
            .map(|i| {
                Diagnostic::error(
                    crate::diag::Code::UnknownKey,
                    Span::new(FileId(0), i * 6..i * 6 + 1),
                    "x",
                )
            })
            .collect();
        let st = status_from_diagnostics(&diags, &sources);
        assert_eq!(st.details.len(), 1);
        let json: serde_json::Value = serde_json::from_slice(&st.details[0].value).unwrap();
        assert_eq!(json["ranges"].as_array().map(Vec::len), Some(50));
        assert_eq!(json["ranges"][49]["start"]["line"], 50);
        assert!(st.details[0].value.len() < 2 * text.len() + 50 * 100);
    }

    #[test]
    fn tonic_pass_through_and_fallback() {
        let original = pb::rpc::Status {
            code: 2,
            message: "process \"/bin/false\" did not complete successfully: exit code: 1".into(),
            details: vec![prost_types::Any {
                type_url: "github.com/moby/buildkit/errdefs.Vertex+json".into(),
                value: br#"{"digest":"sha256:00"}"#.to_vec(),
            }],
        };
        let t = status_to_tonic(&original);
        assert_eq!(status_from_tonic(&t), original);
        let plain = tonic::Status::not_found("nope");
        assert_eq!(
            status_from_tonic(&plain),
            pb::rpc::Status {
                code: 5,
                message: "nope".into(),
                details: vec![]
            }
        );
    }

    #[test]
    fn subrequest_detail() {
        let st = subrequest_unsupported("frontend.lint");
        assert_eq!(st.code, 2);
        assert_eq!(st.message, "unsupported request frontend.lint");
        assert_eq!(st.details[0].type_url, SUBREQUEST_TYPE_URL);
        assert_eq!(st.details[0].value, br#"{"name":"frontend.lint"}"#.to_vec());
    }

    #[test]
    fn warn_request_shape() {
        let sources = Sources::new(SourceFile::new("Sysfile", "a = 1\n"));
        let d = Diagnostic::warning(
            "deprecated-key",
            Span::new(FileId(0), 0..1),
            "a is deprecated",
        )
        .with_help("use b");
        let w = warn_request(&d, &sources, "sha256:abc");
        assert_eq!(
            w.short,
            b"deprecated-key: a is deprecated (line 1)".to_vec()
        );
        assert_eq!(w.detail, vec![b"use b".to_vec()]);
        assert_eq!(w.level, 1);
        assert_eq!(w.ranges.len(), 1);
    }
}
