//! Build-argument interpolation: `${NAME}` in spec strings, `$$` for a literal `$`.
//!
//! Only `${` starts a reference; a `$` followed by anything else is kept as
//! is. Shell scripts and inline file contents are never interpolated (the
//! loader simply does not call this for them).

use std::ops::Range;

/// A problem in one string, with its byte range in the decoded string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    /// `${NAME}` where `NAME` is not a declared argument.
    Undeclared { name: String, range: Range<usize> },
    /// `${` without a closing `}`.
    Unterminated { range: Range<usize> },
    /// `${}` or `${not a name}`.
    BadName { name: String, range: Range<usize> },
}

/// Replaces every `${NAME}` by `lookup(NAME)`; reports every problem found.
pub(crate) fn interpolate<'a>(
    s: &str,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Result<String, Vec<Problem>> {
    let mut out = String::with_capacity(s.len());
    let mut problems = Vec::new();
    let mut rest = s;
    let mut offset = 0;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let start = offset + dollar;
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            offset = start + 2;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(close) = body.find('}') else {
                problems.push(Problem::Unterminated {
                    range: start..s.len(),
                });
                rest = "";
                break;
            };
            let name = &body[..close];
            let end = start + 2 + close + 1;
            if !super::values::is_env_name(name) {
                problems.push(Problem::BadName {
                    name: name.to_string(),
                    range: start..end,
                });
            } else if let Some(value) = lookup(name) {
                out.push_str(value);
            } else {
                problems.push(Problem::Undeclared {
                    name: name.to_string(),
                    range: start..end,
                });
            }
            rest = &body[close + 1..];
            offset = end;
        } else {
            out.push('$');
            rest = after;
            offset = start + 1;
        }
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<&'static str> {
        match name {
            "VERSION" => Some("1.2"),
            "EMPTY" => Some(""),
            _ => None,
        }
    }

    #[test]
    fn substitutes() {
        assert_eq!(
            interpolate("v${VERSION}-x", lookup).as_deref(),
            Ok("v1.2-x")
        );
        assert_eq!(
            interpolate("${VERSION}${VERSION}", lookup).as_deref(),
            Ok("1.21.2")
        );
        assert_eq!(interpolate("a${EMPTY}b", lookup).as_deref(), Ok("ab"));
        assert_eq!(interpolate("plain", lookup).as_deref(), Ok("plain"));
        assert_eq!(interpolate("", lookup).as_deref(), Ok(""));
    }

    #[test]
    fn dollars() {
        assert_eq!(interpolate("$$", lookup).as_deref(), Ok("$"));
        assert_eq!(
            interpolate("$${VERSION}", lookup).as_deref(),
            Ok("${VERSION}")
        );
        assert_eq!(interpolate("$$$${X}", lookup).as_deref(), Ok("$${X}"));
        assert_eq!(
            interpolate("$HOME and $", lookup).as_deref(),
            Ok("$HOME and $")
        );
        assert_eq!(interpolate("é${VERSION}ü", lookup).as_deref(), Ok("é1.2ü"));
    }

    #[test]
    fn problems() {
        assert_eq!(
            interpolate("ab${NOPE}c${VERSION}${X", lookup),
            Err(vec![
                Problem::Undeclared {
                    name: "NOPE".into(),
                    range: 2..9
                },
                Problem::Unterminated { range: 20..23 },
            ])
        );
        assert_eq!(
            interpolate("${}", lookup),
            Err(vec![Problem::BadName {
                name: String::new(),
                range: 0..3
            }])
        );
        assert_eq!(
            interpolate("é${a b}", lookup),
            Err(vec![Problem::BadName {
                name: "a b".into(),
                range: 2..8
            }])
        );
    }
}
