//! The build request: every build option BuildKit passed, interpreted once into a typed
//! [`BuildRequest`] (platforms, named contexts, network mode, epoch, cache imports, …).
//!
//! The frontend reads nothing from [`FrontendOptions`] for a build but through here, except
//! the locals' names and sessions it needs to read the spec. Pure: the spec and the daemon's
//! caps come in as arguments; an option that is wrong is a message, a spec entry that cannot
//! be built with the options given is a located diagnostic.

use std::collections::BTreeMap;

use super::caps::Caps;
use super::contexts;
use super::options::{FrontendOptions, OciPlatform, ResolveMode};
use crate::diag::Diagnostic;
use crate::lower::NamedContext;
use crate::model::Spec;
use crate::network::Network;
use crate::pb;
use crate::platform::Platform;

/// Where the spec is looked for in the spec local: the `filename` option (Docker sends the
/// basename of `-f`), else `Dockerfile` (what Docker sends by default), then `Sysfile`.
pub fn spec_candidates(options: &FrontendOptions) -> Vec<String> {
    match options.get("filename").filter(|name| !name.is_empty()) {
        Some(name) => vec![name.to_string()],
        None => vec!["Dockerfile".to_string(), "Sysfile".to_string()],
    }
}

/// One build, as asked for: everything the per-platform builds need from the options.
#[derive(Clone, Debug)]
pub struct BuildRequest {
    /// The platforms to build, in order, without duplicates; never empty.
    pub platforms: Vec<Platform>,
    /// Return a refs map (one ref per platform) rather than one ref.
    pub multi_platform: bool,
    /// The named build contexts the spec uses, interpreted.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// `force-network-mode`, for the steps that chose no network.
    pub network: Network,
    /// SOURCE_DATE_EPOCH: the build argument, else the spec's `[args]`.
    pub epoch: Option<u64>,
    /// Cache imports for every solve that shares ops with the image.
    pub cache_imports: Vec<pb::gateway::CacheOptionsEntry>,
    /// `image-resolve-mode`.
    pub resolve_mode: ResolveMode,
    /// `add-hosts`.
    pub extra_hosts: Vec<(String, String)>,
    /// `no-cache`.
    pub no_cache: bool,
    /// `label:*`: labels merged over every other image label.
    pub labels: BTreeMap<String, String>,
    /// The local holding the build context, and its session.
    pub context_name: String,
    pub context_session: String,
    /// The build argument `BUILDKIT_SYSFILE_LINEAR` is `1`, `true` or `declared`: lay the build
    /// out as a line even on a daemon with merge and diff ops (same filesystem, for comparing
    /// shapes).
    pub linear: bool,
    /// `BUILDKIT_SYSFILE_LINEAR=declared`: moreover every step where the spec declares it (no
    /// leaf or unit file moved), the plain line the other shapes must equal.
    pub declared_order: bool,
}

/// Whether the build argument `BUILDKIT_SYSFILE_DEBUG` asks for a per-request log
/// ([`crate::gateway::Bridge::set_debug`]).
pub fn debug_requested(options: &FrontendOptions) -> bool {
    build_arg_flag(options, "BUILDKIT_SYSFILE_DEBUG")
}

/// Whether the build argument `name` is set to `1` or `true`.
pub fn build_arg_flag(options: &FrontendOptions, name: &str) -> bool {
    options
        .build_args()
        .get(name)
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Why the options cannot build the spec.
#[derive(Clone, Debug, PartialEq)]
pub enum RequestError {
    /// Spec entries the options or the daemon cannot serve, located.
    Spec(Vec<Diagnostic>),
    /// An option is wrong, or no worker runs a requested platform.
    Option(String),
}

impl BuildRequest {
    /// Interprets `options` for `spec` on a daemon with `caps`.
    pub fn new(
        options: &FrontendOptions,
        spec: &Spec,
        caps: &Caps,
    ) -> Result<BuildRequest, RequestError> {
        let option = |e: anyhow::Error| RequestError::Option(format!("{e:#}"));
        let platforms = requested_platforms(options, spec).map_err(RequestError::Option)?;
        check_worker_platforms(options, &platforms).map_err(RequestError::Option)?;
        let multi_platform =
            platforms.len() > 1 || options.get("multi-platform").is_some_and(|v| v != "false");
        let named_contexts =
            contexts::named_contexts(spec, &contexts::context_options(options), options, caps)
                .map_err(RequestError::Spec)?;
        let epoch = match options.source_date_epoch().map_err(option)? {
            Some(epoch) => Some(epoch),
            None => spec
                .source_date_epoch()
                .map_err(|d| RequestError::Spec(vec![d]))?,
        };
        let cache_imports = options.cache_imports().map_err(option)?;
        let resolve_mode = options.image_resolve_mode().map_err(option)?;
        let network = options.force_network_mode().map_err(option)?;
        if network == Network::Host {
            caps.require_llb("exec.meta.network", "host networking")
                .map_err(|e| RequestError::Option(e.to_string()))?;
        }
        let context_name = options.context_key();
        let declared_order = options
            .build_args()
            .get("BUILDKIT_SYSFILE_LINEAR")
            .is_some_and(|v| v.eq_ignore_ascii_case("declared"));
        Ok(BuildRequest {
            platforms,
            multi_platform,
            named_contexts,
            network,
            epoch,
            cache_imports,
            resolve_mode,
            extra_hosts: options.add_hosts().map_err(option)?,
            no_cache: options.no_cache(),
            labels: options.labels(),
            context_session: options.local_session(&context_name).unwrap_or_default(),
            context_name,
            linear: build_arg_flag(options, "BUILDKIT_SYSFILE_LINEAR") || declared_order,
            declared_order,
        })
    }
}

/// The platforms to build: the `platform` option (CSV), else `[image] platform`, else the
/// first worker's, else `linux/amd64`.
fn requested_platforms(options: &FrontendOptions, spec: &Spec) -> Result<Vec<Platform>, String> {
    let mut texts = options.platforms();
    if texts.is_empty() {
        texts.extend(
            spec.image
                .platform
                .iter()
                .chain(&spec.image.platforms)
                .map(|p| p.value.clone()),
        );
    }
    if texts.is_empty() {
        let worker = options.workers().ok().and_then(|w| w.first().cloned());
        let default = worker.and_then(|w| w.platforms.first().map(OciPlatform::platform));
        texts.push(default.map_or_else(|| "linux/amd64".to_string(), |p| p.id()));
    }
    let mut platforms: Vec<Platform> = Vec::new();
    for text in texts {
        let platform = Platform::parse(&text)?;
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    Ok(platforms)
}

/// Fails clearly when no worker can run steps for a requested platform (no emulation installed).
fn check_worker_platforms(options: &FrontendOptions, platforms: &[Platform]) -> Result<(), String> {
    let Ok(workers) = options.workers() else {
        return Ok(());
    };
    let supported: Vec<Platform> = workers
        .iter()
        .flat_map(|w| w.platforms.iter().map(OciPlatform::platform))
        .collect();
    if supported.is_empty() {
        return Ok(());
    }
    let missing: Vec<String> = platforms
        .iter()
        .filter(|p| !supported.iter().any(|s| s.runs(p)))
        .map(Platform::id)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut unique: Vec<String> = supported.iter().map(Platform::id).collect();
    unique.dedup();
    Err(format!(
        "this builder cannot run build steps for {}: its workers run {}; install emulation (for example Debian's qemu-user-static with binfmt-support) or build on a native builder",
        missing.join(", "),
        unique.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> FrontendOptions {
        FrontendOptions::from_opts(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        )
    }

    #[test]
    fn the_spec_is_the_named_file_else_dockerfile_then_sysfile() {
        assert_eq!(spec_candidates(&opts(&[])), ["Dockerfile", "Sysfile"]);
        assert_eq!(
            spec_candidates(&opts(&[("filename", "")])),
            ["Dockerfile", "Sysfile"]
        );
        assert_eq!(
            spec_candidates(&opts(&[("filename", "web.sysfile")])),
            ["web.sysfile"]
        );
    }

    fn spec(text: &str) -> Spec {
        let loaded = crate::spec::load(
            crate::diag::SourceFile::new("Sysfile", text),
            &Default::default(),
        );
        loaded.spec.expect("loads")
    }

    #[test]
    fn platforms_come_from_the_option_then_the_spec_then_the_worker() {
        let plain = spec("[image]\nfrom = \"debian\"\n");
        let pinned = spec("[image]\nfrom = \"debian\"\nplatform = \"linux/arm64\"\n");
        let ids = |o: &FrontendOptions, s: &Spec| {
            requested_platforms(o, s).map(|ps| ps.iter().map(Platform::id).collect::<Vec<_>>())
        };
        let both = opts(&[("platform", "linux/amd64,linux/arm64/v8,linux/amd64")]);
        assert_eq!(
            ids(&both, &pinned),
            Ok(vec!["linux/amd64".into(), "linux/arm64/v8".into()])
        );
        assert_eq!(ids(&opts(&[]), &pinned), Ok(vec!["linux/arm64".into()]));
        assert_eq!(ids(&opts(&[]), &plain), Ok(vec!["linux/amd64".into()]));
        let worker = FrontendOptions::from_env([(
            "BUILDKIT_WORKERS".to_string(),
            r#"[{"id":"w","platforms":[{"os":"linux","architecture":"riscv64"}]}]"#.to_string(),
        )]);
        assert_eq!(ids(&worker, &plain), Ok(vec!["linux/riscv64".into()]));
        assert!(ids(&opts(&[("platform", "Linux")]), &plain).is_err());
    }

    #[test]
    fn one_request_holds_every_interpreted_option() {
        let s = spec("[image]\nfrom = \"debian\"\n");
        let caps = Caps::for_version(32);
        let request = BuildRequest::new(
            &opts(&[
                ("force-network-mode", "none"),
                ("build-arg:SOURCE_DATE_EPOCH", "42"),
                ("platform", "linux/amd64,linux/arm64"),
                ("label:a", "b"),
            ]),
            &s,
            &caps,
        )
        .expect("a request");
        assert_eq!(request.network, Network::None);
        assert_eq!(request.epoch, Some(42));
        assert!(request.multi_platform);
        assert_eq!(request.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(request.context_name, "context");
        let bad = BuildRequest::new(&opts(&[("force-network-mode", "bridge")]), &s, &caps);
        assert!(matches!(bad, Err(RequestError::Option(m)) if m.contains("bridge")));
    }
}
