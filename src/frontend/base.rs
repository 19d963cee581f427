//! Base inspection: solve the base image with the same op the build starts from, and read what
//! the planner needs (the distribution family from os-release, whether systemd and
//! `/sbin/init` are there).

use super::BuildError;
use super::read::exists;
use crate::diag::{Code, Diagnostic, Sources};
use crate::distro::Family;
use crate::gateway::{Bridge, BridgeError, BuildRequest};
use crate::llb::{Graph, OpOptions};
use crate::lower::{self, NamedContext, OciStore};
use crate::model::Spec;
use crate::pb;
use crate::plan::BaseFacts;
use crate::reference::Reference;

/// The base image op's inputs: the pinned reference, the resolve mode and, for an
/// `oci-layout://` base, its store.
pub(super) struct BaseImage<'a> {
    pub reference: &'a str,
    pub resolve_mode: &'a str,
    pub oci: Option<&'a OciStore>,
}

/// Solves the base image and reads what the planner needs: distribution family and systemd.
pub(super) async fn detect_base(
    bridge: &Bridge,
    spec: &Spec,
    base: BaseImage<'_>,
    platform: &pb::llb::Platform,
    sources: &Sources,
    cache_imports: &[pb::gateway::CacheOptionsEntry],
) -> Result<BaseFacts, BuildError> {
    let mut graph = Graph::new(Some(platform.clone()));
    // The same op as the build's base (same attrs), so the facts are those of the image built on.
    let image = lower::base_source(
        &mut graph,
        base.reference,
        base.resolve_mode,
        base.oci,
        OpOptions::named(format!("[sysfile] inspect {}", base.reference)),
    );
    let reference = bridge
        .solve(graph.finish(&image), cache_imports.to_vec(), false)
        .await
        .map_err(|e| not_resolved(spec, sources, base.reference, &e))?;
    // The usual answers first, all at once: a merged-/usr image with an /etc/os-release and
    // systemd in /usr/lib answers in one round trip of three requests. Each request mounts the
    // base on the daemon, so the older places are only asked when the usual one is missing.
    let (etc, usr_lib, sbin_init) = tokio::join!(
        bridge.read_file_opt(&reference, "/etc/os-release"),
        exists(bridge, &reference, "/usr/lib/systemd/systemd"),
        exists(bridge, &reference, "/sbin/init"),
    );
    let (etc, usr_lib, has_sbin_init) = (etc?, usr_lib?, sbin_init?);
    let (usr, lib) = tokio::join!(
        async {
            if etc.is_some() {
                Ok(None)
            } else {
                bridge
                    .read_file_opt(&reference, "/usr/lib/os-release")
                    .await
            }
        },
        async {
            if usr_lib {
                Ok(true)
            } else {
                exists(bridge, &reference, "/lib/systemd/systemd").await
            }
        },
    );
    let os_release = match etc {
        Some(data) => Some(data),
        None => usr?,
    }
    .map(|data| String::from_utf8_lossy(&data).into_owned());
    let detected = os_release.as_deref().and_then(Family::from_os_release);
    let family = match (&spec.packages.manager, detected) {
        (Some(manager), _) => Family::of_manager(manager.value),
        (None, Some(family)) => family,
        (None, None) => {
            let found = os_release
                .as_deref()
                .and_then(|t| t.lines().find(|l| l.starts_with("ID=")).map(str::to_string))
                .unwrap_or_else(|| "no os-release file".to_string());
            return Err(BuildError::Spec {
                diagnostics: vec![
                    Diagnostic::error(
                        Code::UnknownDistribution,
                        spec.image.from.span,
                        format!(
                            "cannot tell which distribution `{}` is ({found})",
                            spec.image.from.value
                        ),
                    )
                    .with_label("base image")
                    .with_help("set `manager = \"apt\"` (or dnf, zypper, pacman) in [packages]"),
                ],
                sources: sources.clone(),
            });
        }
    };
    let has_systemd = lib?;
    Ok(BaseFacts {
        family,
        has_systemd,
        has_sbin_init,
    })
}

/// A `base-not-resolved` error at `[image] from` with BuildKit's message: without a source of
/// its own, an engine would show it at the first line of the Sysfile (the `# syntax` line).
fn not_resolved(spec: &Spec, sources: &Sources, base: &str, error: &BridgeError) -> BuildError {
    let pinned = base.contains('@');
    let help = if pinned {
        "check the digest: it must be one a registry knows for this name (`docker image inspect --format '{{.RepoDigests}}' IMAGE`), not a local image ID; a base only in the daemon's store is named without a digest"
    } else {
        "check the name and tag, and that the daemon has the image or can reach its registry"
    };
    BuildError::Spec {
        diagnostics: vec![
            Diagnostic::error(
                Code::BaseNotResolved,
                spec.image.from.span,
                format!("cannot resolve the base image `{base}`: {error}"),
            )
            .with_label("base image")
            .with_help(help),
        ],
        sources: sources.clone(),
    }
}

/// The base image of one platform's build, resolved: what it was named, the reference the
/// build pins it to, its config and what that config gives every step.
pub(super) struct ResolvedBase {
    /// The base as named (the spec's `from`, or the image a named context replaces it with).
    pub reference: Reference,
    /// `reference` pinned to the manifest digest BuildKit resolved (when there is one).
    pub pinned: String,
    /// The manifest digest, else the pinned one, else the config's digest (an image only in
    /// Docker's local store has no manifest digest).
    pub digest: String,
    /// The manifest digest exactly as the resolver gave it: empty when Docker answered from its
    /// own image store, and for a base a named context replaced (`unpinned-base-image` is then
    /// not about the spec's `from`).
    pub manifest_digest: String,
    /// The base image config JSON.
    pub config: Vec<u8>,
    /// The `oci-layout://` store the base comes from, for a named context of that kind.
    pub oci: Option<OciStore>,
    /// The config's `Env` and `WorkingDir`.
    pub env: Vec<String>,
    pub workdir: String,
}

/// Resolves the base of `spec` for `platform`: a named context can replace it by name, like in
/// the Dockerfile frontend (the request has already refused one that is not an image).
pub(super) async fn resolve_base(
    bridge: &Bridge,
    spec: &Spec,
    request: &BuildRequest,
    platform: &pb::llb::Platform,
    sources: &Sources,
) -> Result<ResolvedBase, BuildError> {
    let (text, oci) = match request.named_contexts.get(&spec.image.from.value) {
        Some(NamedContext::Image(reference)) => (reference.clone(), None),
        Some(NamedContext::OciLayout { reference, store }) => {
            (reference.clone(), Some(store.clone()))
        }
        _ => (spec.image.from.value.clone(), None),
    };
    let reference = Reference::parse(&text).map_err(|message| BuildError::Spec {
        diagnostics: vec![Diagnostic::error(
            Code::BadImageReference,
            spec.image.from.span,
            message,
        )],
        sources: sources.clone(),
    })?;
    let log_name = format!("[sysfile] load metadata for {}", reference.normalized());
    let (digest, config) = match &oci {
        Some(oci) => bridge
            .resolve_oci_layout_config(
                &reference.normalized(),
                Some(platform.clone()),
                &oci.store,
                &oci.session,
                &log_name,
            )
            .await
            .map_err(|e| not_resolved(spec, sources, &text, &e))?,
        None => bridge
            .resolve_image_config(
                &reference.normalized(),
                Some(platform.clone()),
                request.resolve_mode,
                &log_name,
            )
            .await
            .map_err(|e| not_resolved(spec, sources, &text, &e))?,
    };
    let manifest_digest = if text == spec.image.from.value && oci.is_none() {
        digest.clone()
    } else {
        String::new()
    };
    let pinned = if digest.is_empty() || reference.digest.is_some() {
        reference.normalized()
    } else {
        reference.pinned(&digest)
    };
    let digest = match (digest.is_empty(), &reference.digest) {
        (false, _) => digest,
        (true, Some(pinned)) => pinned.clone(),
        (true, None) => crate::llb::digest(&config),
    };
    let json: serde_json::Value =
        serde_json::from_slice(&config).unwrap_or(serde_json::Value::Null);
    let env: Vec<String> = json["config"]["Env"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let workdir = json["config"]["WorkingDir"]
        .as_str()
        .unwrap_or("")
        .to_string();
    Ok(ResolvedBase {
        reference,
        pinned,
        digest,
        manifest_digest,
        config,
        oci,
        env,
        workdir,
    })
}
