//! The `frontend.outline`, `frontend.targets` and `frontend.lint` subrequest results, as JSON and as text.
//!
//! Pure functions of the validated spec and its sources; the frontend puts
//! the JSON in `result.json` and the text in `result.txt`. Shapes follow
//! BuildKit's `frontend/subrequests/{outline,targets,lint}` result types; a `location` is a
//! `pb.Location` as JSON, its
//! `sourceIndex` the [`FileId`](crate::diag::FileId) of the file.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::diag::{Diagnostic, Severity, Sources, Span};
use crate::lint;
use crate::model::{MountKind, Spec};
use crate::source_range::{Range, SPEC_LANGUAGE};

/// The one target a Sysfile has.
pub const DEFAULT_TARGET: &str = "default";

/// `{"sourceIndex": i, "ranges": [{start, end}]}` for a span.
pub fn location(sources: &Sources, span: Span) -> Value {
    let ranges = match sources.try_get(span.file) {
        Some(file) => vec![Range::of_span(file, span)],
        None => Vec::new(),
    };
    json!({ "sourceIndex": span.file.0, "ranges": ranges })
}

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

/// The base64 text of every source file, in `FileId` order.
fn sources_data(sources: &Sources) -> Vec<String> {
    sources.iter().map(|(_, f)| base64(&f.text)).collect()
}

fn description(spec: &Spec) -> String {
    spec.image
        .description
        .clone()
        .or_else(|| spec.image.title.clone())
        .unwrap_or_default()
}

/// A secret or ssh id used by the run steps: `(id, required, first span)`, each id once.
fn mounts(spec: &Spec, secrets: bool) -> Vec<(String, bool, Span)> {
    let mut out: Vec<(String, bool, Span)> = Vec::new();
    for mount in spec.runs.iter().flat_map(|r| &r.mounts) {
        let (id, required) = match (&mount.kind, secrets) {
            (MountKind::Secret { id, required, .. }, true) => (id, *required),
            (MountKind::Ssh { id }, false) => (id, true),
            _ => continue,
        };
        match out.iter_mut().find(|(seen, _, _)| seen == id) {
            Some(entry) => entry.1 |= required,
            None => out.push((id.clone(), required, mount.span)),
        }
    }
    out
}

/// The `frontend.outline` result: build arguments, secrets and ssh ids, with their locations.
pub fn outline(spec: &Spec, sources: &Sources) -> Value {
    let args: Vec<Value> = spec
        .args
        .iter()
        .map(|arg| {
            let mut v = json!({ "name": arg.name });
            if !arg.description.is_empty() {
                v["description"] = json!(arg.description);
            }
            v["value"] = json!(arg.value);
            v["location"] = location(sources, arg.span);
            v
        })
        .collect();
    let secrets: Vec<Value> = mounts(spec, true)
        .into_iter()
        .map(|(name, required, span)| {
            let mut v = json!({ "name": name });
            if required {
                v["required"] = json!(true);
            }
            v["location"] = location(sources, span);
            v
        })
        .collect();
    let ssh: Vec<Value> = mounts(spec, false)
        .into_iter()
        .map(|(name, _, span)| json!({ "name": name, "location": location(sources, span) }))
        .collect();
    let mut out = json!({ "name": DEFAULT_TARGET });
    let description = description(spec);
    if !description.is_empty() {
        out["description"] = json!(description);
    }
    out["args"] = json!(args);
    out["secrets"] = json!(secrets);
    out["ssh"] = json!(ssh);
    out["sources"] = json!(sources_data(sources));
    out
}

/// Left-aligned columns separated by at least two spaces, like Go's tabwriter output.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `frontend.outline` as text, like the Dockerfile frontend's `--call=outline`.
pub fn outline_text(spec: &Spec) -> String {
    let mut out = format!("TARGET:      {DEFAULT_TARGET}\n");
    let description = description(spec);
    if !description.is_empty() {
        out.push_str(&format!("DESCRIPTION: {description}\n"));
    }
    if !spec.args.is_empty() {
        let mut rows = vec![vec![
            "BUILD ARG".to_string(),
            "VALUE".to_string(),
            "DESCRIPTION".to_string(),
        ]];
        for arg in &spec.args {
            rows.push(vec![
                arg.name.clone(),
                arg.value.clone(),
                arg.description.replace('\n', " "),
            ]);
        }
        out.push('\n');
        out.push_str(&table(&rows));
    }
    let secrets = mounts(spec, true);
    if !secrets.is_empty() {
        let mut rows = vec![vec!["SECRET".to_string(), "REQUIRED".to_string()]];
        for (name, required, _) in secrets {
            rows.push(vec![name, if required { "true" } else { "" }.to_string()]);
        }
        out.push('\n');
        out.push_str(&table(&rows));
    }
    let ssh = mounts(spec, false);
    if !ssh.is_empty() {
        let mut rows = vec![vec!["SSH".to_string()]];
        rows.extend(ssh.into_iter().map(|(name, _, _)| vec![name]));
        out.push('\n');
        out.push_str(&table(&rows));
    }
    out
}

/// The `frontend.targets` result: the one `default` target, its base image and platform.
pub fn targets(spec: &Spec, sources: &Sources) -> Value {
    let mut target = json!({ "name": DEFAULT_TARGET, "default": true });
    let description = description(spec);
    if !description.is_empty() {
        target["description"] = json!(description);
    }
    target["base"] = json!(spec.image.from.value);
    if let Some(platform) = &spec.image.platform {
        target["platform"] = json!(platform.value);
    }
    target["location"] = location(sources, spec.image.span);
    json!({ "targets": [target], "sources": sources_data(sources) })
}

/// `frontend.targets` as text.
pub fn targets_text(spec: &Spec) -> String {
    let rows = vec![
        vec!["TARGET".to_string(), "DESCRIPTION".to_string()],
        vec![format!("{DEFAULT_TARGET} (default)"), description(spec)],
    ];
    table(&rows)
}

/// `early-boot-target` as `EarlyBootTarget`: the rule name of a loader warning.
fn pascal_case(code: &str) -> String {
    code.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The rule name, description and url of a warning (a lint rule, or one of the loader's warnings).
fn rule_of(d: &Diagnostic) -> (String, String, String) {
    match lint::rule(d.code) {
        Some(rule) => (
            rule.name.to_string(),
            rule.description.to_string(),
            rule.url.to_string(),
        ),
        None => (
            pascal_case(d.code),
            d.message.clone(),
            format!("{}spec.md#diagnostic-codes", lint::DOCS_URL),
        ),
    }
}

/// The `frontend.lint` result for `diagnostics` (the loader's warnings and [`lint::check`]'s).
///
/// Errors are left out: with an error there is no `spec` to lint.
pub fn lint_result(sources: &Sources, diagnostics: &[Diagnostic]) -> Value {
    let warnings: Vec<Value> = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(|d| {
            let (name, description, url) = rule_of(d);
            json!({
                "ruleName": name,
                "description": description,
                "url": url,
                "detail": d.message,
                "location": location(sources, d.span),
            })
        })
        .collect();
    let files: Vec<Value> = sources
        .iter()
        .map(|(_, f)| {
            json!({
                "filename": f.name,
                "data": base64(&f.text),
                "language": SPEC_LANGUAGE,
            })
        })
        .collect();
    json!({ "warnings": warnings, "sources": files })
}

/// `frontend.lint` as text: each warning as `WARNING: Rule - url`, its detail and the rendered source.
pub fn lint_text(sources: &Sources, diagnostics: &[Diagnostic]) -> String {
    let warnings: Vec<&Diagnostic> = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .collect();
    if warnings.is_empty() {
        return "Check complete, no warnings found.\n".to_string();
    }
    let mut out = match warnings.len() {
        1 => "Check complete, 1 warning has been found!\n".to_string(),
        n => format!("Check complete, {n} warnings have been found!\n"),
    };
    for d in warnings {
        let (name, _, url) = rule_of(d);
        out.push_str(&format!("\nWARNING: {name} - {url}\n"));
        out.push_str(&crate::diag::render(
            std::slice::from_ref(d),
            sources,
            false,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::SourceFile;
    use crate::spec::{LoadOptions, load};

    fn sshd() -> (Spec, Sources, Vec<Diagnostic>) {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sshd/Sysfile");
        let text = std::fs::read_to_string(path).unwrap();
        let loaded = load(SourceFile::new("Sysfile", text), &LoadOptions::default());
        let spec = loaded.spec.unwrap();
        let mut diagnostics = loaded.diagnostics;
        diagnostics.extend(lint::check(&spec, &loaded.sources));
        // As the frontend has it once a registry resolved the base.
        let digest = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
        let base = lint::BaseResolution::Registry { digest };
        diagnostics.extend(lint::check_base(&spec, &loaded.sources, base));
        (spec, loaded.sources, diagnostics)
    }

    #[test]
    fn outline_of_sshd() {
        let (spec, sources, _) = sshd();
        let json = serde_json::to_string_pretty(&outline(&spec, &sources)).unwrap();
        insta::assert_snapshot!(json);
        insta::assert_snapshot!(outline_text(&spec));
    }

    #[test]
    fn targets_of_sshd() {
        let (spec, sources, _) = sshd();
        let json = serde_json::to_string_pretty(&targets(&spec, &sources)).unwrap();
        insta::assert_snapshot!(json);
        insta::assert_snapshot!(targets_text(&spec));
    }

    #[test]
    fn lint_of_sshd() {
        let (_, sources, diagnostics) = sshd();
        let json = serde_json::to_string_pretty(&lint_result(&sources, &diagnostics));
        insta::assert_snapshot!(json.unwrap());
        insta::assert_snapshot!(lint_text(&sources, &diagnostics));
    }

    #[test]
    fn outline_with_includes_secrets_and_ssh() {
        let main = SourceFile::new(
            "Sysfile",
            "include = [\"common.toml\"]\n[image]\nfrom = \"debian:${RELEASE}\"\n\n[[run]]\nsh = \"true\"\nmounts = [\n  { type = \"secret\", id = \"token\", required = false },\n  { type = \"ssh\" },\n]\n\n[[run]]\nsh = \"true\"\nmounts = [{ type = \"secret\", id = \"token\" }]\n",
        );
        let mut options = LoadOptions::default();
        options.includes.insert(
            "common.toml".into(),
            "[args]\n# Debian release codename.\nRELEASE = \"bookworm\"\nPORT = 22\n".into(),
        );
        options.build_args.insert("RELEASE".into(), "trixie".into());
        let loaded = load(main, &options);
        let spec = loaded.spec.unwrap();
        let json = serde_json::to_string_pretty(&outline(&spec, &loaded.sources)).unwrap();
        insta::assert_snapshot!(json);
        insta::assert_snapshot!(outline_text(&spec));
    }

    #[test]
    fn loader_warnings_get_rule_names() {
        assert_eq!(pascal_case("early-boot-target"), "EarlyBootTarget");
        let text = "[image]\nfrom = \"debian\"\n[systemd]\ntarget = \"sysinit\"\n";
        let loaded = load(SourceFile::new("Sysfile", text), &LoadOptions::default());
        assert!(loaded.spec.is_some());
        let result = lint_result(&loaded.sources, &loaded.diagnostics);
        assert_eq!(result["warnings"][0]["ruleName"], "EarlyBootTarget");
        assert_eq!(
            result["warnings"][0]["location"]["ranges"][0]["start"]["line"],
            4
        );
        assert_eq!(
            lint_text(&loaded.sources, &[]),
            "Check complete, no warnings found.\n"
        );
    }
}
