//! The build of one platform: resolve and inspect the base, compile, verify, solve, and make
//! the image config.

use super::base::{BaseImage, detect_base, resolve_base};
use super::verification::Verification;
use super::{BuildError, warn};
use crate::compile::compile;
use crate::diag::Sources;
use crate::gateway::{Bridge, BuildRequest};
use crate::image::ImageInputs;
use crate::lower::LowerOptions;
use crate::model::Spec;
use crate::platform::Platform;
use crate::{lint, llb};

/// What building one platform needs; [`PlatformBuild::build`] returns the ref, config and epoch.
pub(super) struct PlatformBuild<'a> {
    pub bridge: &'a Bridge,
    pub request: &'a BuildRequest,
    pub spec: &'a Spec,
    pub sources: &'a Sources,
    pub load_digest: &'a str,
    /// Set once `unpinned-base-image` was checked (on the first platform built).
    pub base_linted: std::sync::atomic::AtomicBool,
}

impl PlatformBuild<'_> {
    /// Builds `platform`. `preflight` runs beside the base's resolution and inspection (which
    /// do not need it); its error wins over the build's.
    pub async fn build(
        &self,
        platform: &Platform,
        preflight: impl std::future::Future<Output = Result<(), BuildError>>,
    ) -> Result<(String, Vec<u8>, Option<u64>), BuildError> {
        let (bridge, request, spec) = (self.bridge, self.request, self.spec);
        let caps = bridge.caps().clone();
        let platform = llb::to_pb_platform(platform);
        let cache_imports = &request.cache_imports;
        // The base is resolved and inspected beside the preflight (the context's load).
        let resolved = async {
            let base = resolve_base(bridge, spec, request, &platform, self.sources).await?;
            let mut warnings = Vec::new();
            if !self
                .base_linted
                .swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                let resolution = if base.manifest_digest.is_empty() {
                    lint::BaseResolution::LocalStore
                } else {
                    lint::BaseResolution::Registry {
                        digest: &base.manifest_digest,
                    }
                };
                warnings = lint::check_base(spec, self.sources, resolution);
            }
            let (_, facts) = tokio::join!(
                warn(bridge, &warnings, self.sources, self.load_digest),
                detect_base(
                    bridge,
                    spec,
                    BaseImage {
                        reference: &base.pinned,
                        resolve_mode: request.resolve_mode.as_str(),
                        oci: base.oci.as_ref(),
                    },
                    &platform,
                    self.sources,
                    cache_imports,
                )
            );
            Ok::<_, BuildError>((base, facts?))
        };
        let (checked, resolved) = tokio::join!(preflight, resolved);
        checked?;
        let (base, facts) = resolved?;
        let lower_options = LowerOptions {
            named_contexts: request.named_contexts.clone(),
            base_ref: base.pinned.clone(),
            base_oci: base.oci.clone(),
            base_span: spec.image.from.span,
            base_env: base.env.clone(),
            base_workdir: base.workdir.clone(),
            platform: Some(platform.clone()),
            session_id: request.context_session.clone(),
            context_name: request.context_name.clone(),
            force_network: request.network,
            extra_hosts: request.extra_hosts.clone(),
            no_cache: request.no_cache,
            resolve_mode: request.resolve_mode.as_str().to_string(),
            llb_caps: Some(caps.llb_caps().map(str::to_string).collect()),
            epoch: request.epoch,
            linear: request.linear,
            order: if request.declared_order {
                crate::plan::Order::Declared
            } else {
                crate::plan::Order::Graph
            },
        };
        let compiled = compile(spec, self.sources, &facts, &lower_options);
        let verification = Verification {
            bridge,
            spec,
            compiled: &compiled,
            sources: self.sources,
            options: &lower_options,
            cache_imports,
        };
        // The image's solve is sent beside the report's, so it costs no round trip. In a line it
        // is evaluated: the ops after the units step (the leaf files) then run while the report
        // is read and verified, instead of after the frontend returns. With merge and diff ops
        // it stays lazy (nothing runs until it is exported): evaluating would make the daemon
        // build the merged filesystem, which the export does not need; the leaf files no check
        // sees are solved (evaluated) on their own instead, so that they too are built while
        // the units step runs (a warm build finds them in the cache). The checks run on what
        // the spec's steps make, not on the units step's result, so they are evaluated beside
        // verification (on daemons with merge and diff ops they are in the image too, and then
        // found in the cache). Verification's error wins, then a check's, then a leaf's.
        let evaluate_image = !lower_options.joins();
        let checks = compiled
            .checks
            .iter()
            .map(|check| bridge.solve(check.clone(), cache_imports.clone(), true));
        let leaves = compiled
            .leaves
            .iter()
            .map(|leaves| bridge.solve(leaves.clone(), cache_imports.clone(), true));
        let (verified, result_ref, checked, leaves_built) = tokio::join!(
            verification.run(),
            bridge.solve(
                compiled.definition.clone(),
                cache_imports.clone(),
                evaluate_image
            ),
            futures_util::future::try_join_all(checks),
            futures_util::future::try_join_all(leaves),
        );
        let verified = verified?;
        // The warnings of a verified build go out even when a check failed.
        warn(bridge, &verified.warnings, self.sources, self.load_digest).await;
        checked?;
        leaves_built?;
        let result_ref = result_ref?;
        let config = compiled.image_config(
            spec,
            Some(&verified.inventory),
            &ImageInputs {
                base_config: &base.config,
                base_name: base.reference.normalized(),
                base_digest: base.digest,
                extra_labels: request.labels.clone(),
                os: platform.os.clone(),
                architecture: platform.architecture.clone(),
                variant: platform.variant.clone(),
                epoch: request.epoch,
            },
        );
        let config = serde_json::to_vec(&config).map_err(|e| BuildError::Other(e.to_string()))?;
        Ok((result_ref, config, request.epoch))
    }
}
