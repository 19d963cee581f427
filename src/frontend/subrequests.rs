//! The subrequests (`requestid`): `frontend.subrequests.describe`, `frontend.outline`,
//! `frontend.targets` and `frontend.lint`, answered from the spec alone with metadata only
//! (`frontend.lint` also resolves the base, for `unpinned-base-image`).

use std::collections::BTreeMap;

use serde_json::json;

use super::BuildError;
use super::read::load_spec;
use crate::diag::Sources;
use crate::gateway::{Bridge, BuildRequest, FrontendOptions};
use crate::model::Spec;
use crate::{lint, outline, pb};

/// The subrequests answered (`requestid`), with their descriptions.
const SUBREQUESTS: &[(&str, &str)] = &[
    (
        "frontend.subrequests.describe",
        "List available subrequests",
    ),
    (
        "frontend.outline",
        "List the build arguments, secrets and SSH agents the spec uses",
    ),
    ("frontend.targets", "List the targets the spec builds"),
    (
        "frontend.lint",
        "Check the spec against sysfile's lint rules",
    ),
];

fn metadata_result(metadata: BTreeMap<String, Vec<u8>>) -> pb::gateway::Result {
    pb::gateway::Result {
        result: Some(pb::gateway::result::Result::Ref(pb::gateway::Ref::default())),
        metadata,
    }
}

pub(super) fn describe() -> pb::gateway::Result {
    let described: Vec<_> = SUBREQUESTS
        .iter()
        .map(|(name, description)| {
            json!({
                "name": name,
                "version": "1.0.0",
                "type": "rpc",
                "description": description,
                "opts": [],
                "metadata": [{"name": "result.json"}, {"name": "result.txt"}],
            })
        })
        .collect();
    let mut text = String::from("NAME\tVERSION\tDESCRIPTION\n");
    for (name, description) in SUBREQUESTS {
        text.push_str(&format!("{name}\t1.0.0\t{description}\n"));
    }
    subrequest_result(serde_json::Value::Array(described), text, None)
}

fn subrequest_result(
    json: serde_json::Value,
    text: String,
    status: Option<u8>,
) -> pb::gateway::Result {
    let mut metadata = BTreeMap::from([
        (
            "result.json".to_string(),
            serde_json::to_vec(&json).unwrap_or_default(),
        ),
        ("result.txt".to_string(), text.into_bytes()),
        ("version".to_string(), b"1.0.0".to_vec()),
    ]);
    if let Some(code) = status {
        metadata.insert(
            "result.statuscode".to_string(),
            code.to_string().into_bytes(),
        );
    }
    metadata_result(metadata)
}

/// `unpinned-base-image` for `frontend.lint`: the base resolved as the build would resolve it
/// (a named context replacing it, or a failed lookup, gives nothing: the build reports those).
async fn base_lint(
    bridge: &Bridge,
    options: &FrontendOptions,
    spec: &Spec,
    sources: &Sources,
) -> Vec<crate::diag::Diagnostic> {
    let from = &spec.image.from.value;
    if lint::pinned_or_scratch(from) {
        return Vec::new();
    }
    let Ok(request) = BuildRequest::new(options, spec, bridge.caps()) else {
        return Vec::new();
    };
    if request.named_contexts.contains_key(from) {
        return Vec::new();
    }
    let Ok(reference) = crate::reference::Reference::parse(from) else {
        return Vec::new();
    };
    let platform = request.platforms.first().map(crate::llb::to_pb_platform);
    let resolved = bridge
        .resolve_image_config(
            &reference.normalized(),
            platform,
            request.resolve_mode,
            &format!(
                "[sysfile] lint: load metadata for {}",
                reference.normalized()
            ),
        )
        .await;
    match resolved {
        Ok((digest, _)) if !digest.is_empty() => lint::check_base(
            spec,
            sources,
            lint::BaseResolution::Registry { digest: &digest },
        ),
        _ => Vec::new(),
    }
}

/// `frontend.outline`, `frontend.targets` and `frontend.lint`: answered from the spec alone.
pub(super) async fn spec_subrequest(
    bridge: &Bridge,
    options: &FrontendOptions,
    id: &str,
) -> Result<pb::gateway::Result, BuildError> {
    let (loaded, _) = load_spec(bridge, options).await?;
    if id == "frontend.lint" {
        let mut diagnostics = loaded.diagnostics.clone();
        if let Some(spec) = &loaded.spec {
            diagnostics.extend(lint::check(spec, &loaded.sources));
            diagnostics.extend(base_lint(bridge, options, spec, &loaded.sources).await);
            diagnostics.sort_by_key(|d| (d.span.file, d.span.start));
        }
        let mut json = outline::lint_result(&loaded.sources, &diagnostics);
        let mut text = outline::lint_text(&loaded.sources, &diagnostics);
        if let Some(error) = diagnostics.iter().find(|d| d.is_error()) {
            json["buildError"] = json!({
                "message": error.message,
                "location": outline::location(&loaded.sources, error.span),
            });
            text.push_str(&format!("ERROR: {}\n", error.message));
        }
        let failed = diagnostics.iter().any(|d| d.is_error()) || !diagnostics.is_empty();
        return Ok(subrequest_result(json, text, Some(u8::from(failed))));
    }
    let Some(spec) = loaded.spec.as_ref() else {
        return Err(BuildError::Spec {
            diagnostics: loaded.diagnostics,
            sources: loaded.sources,
        });
    };
    Ok(match id {
        "frontend.outline" => subrequest_result(
            outline::outline(spec, &loaded.sources),
            outline::outline_text(spec),
            None,
        ),
        _ => subrequest_result(
            outline::targets(spec, &loaded.sources),
            outline::targets_text(spec),
            None,
        ),
    })
}
