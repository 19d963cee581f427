//! The gateway frontend: reads the Sysfile through BuildKit, compiles it, solves it and returns the image.
//!
//! This is the only place where the pipeline meets BuildKit: options come in through
//! `gateway` as one typed [`BuildRequest`], the pure pipeline ([`crate::compile`]) runs in
//! between, and the result or a source-located error goes back through `Return`. Nothing but
//! gRPC is ever written to stdout. `mod.rs` is the serve loop and the dispatch; the other
//! files are one job each: `subrequests` (answers from the spec alone), `read` (the spec, its
//! includes and context files), `base` (base resolution and inspection), `platform` (the build
//! of one platform) and `verification` (the units step's report, solved and checked).

mod base;
mod platform;
mod read;
mod subrequests;
mod verification;

use std::collections::BTreeMap;

use crate::diag::{Code, Diagnostic, Sources};
use crate::gateway::{
    Bridge, BridgeError, BuildRequest, Caps, FrontendOptions, RequestError, errors, transport,
};
use crate::model::{MountKind, Spec};
use crate::{lint, pb};
use platform::PlatformBuild;
use read::{load_context, load_spec};

/// Frontend caps this frontend implements (the `moby.buildkit.frontend.caps` image label).
pub const FRONTEND_CAPS: &[&str] = &[
    "moby.buildkit.frontend.contexts",
    "moby.buildkit.frontend.subrequests",
];

/// Runs the frontend over stdin/stdout; returns the exit code.
pub fn main() -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let options = FrontendOptions::from_env(std::env::vars());
        let channel = transport::connect_stdio().await?;
        let bridge = Bridge::new(transport::client(channel));
        serve(bridge, &options).await
    })
}

/// Why a build did not produce an image.
#[derive(Debug)]
pub enum BuildError {
    /// The spec is wrong: diagnostics that point into it.
    Spec {
        diagnostics: Vec<Diagnostic>,
        sources: Sources,
    },
    /// BuildKit reported an error: passed through unchanged.
    Buildkit(BridgeError),
    /// A subrequest this frontend does not answer.
    Subrequest(String),
    /// Anything else, as a message.
    Other(String),
}

impl From<BridgeError> for BuildError {
    fn from(e: BridgeError) -> BuildError {
        BuildError::Buildkit(e)
    }
}

impl BuildError {
    fn status(&self) -> pb::rpc::Status {
        match self {
            BuildError::Spec {
                diagnostics,
                sources,
            } => errors::status_from_diagnostics(diagnostics, sources),
            BuildError::Buildkit(e) => e.to_rpc_status(),
            BuildError::Subrequest(name) => errors::subrequest_unsupported(name),
            BuildError::Other(message) => errors::plain_status(message.clone()),
        }
    }
}

/// Pings, builds and returns exactly once. The exit code is 0 whenever `Return` went through.
pub async fn serve(mut bridge: Bridge, options: &FrontendOptions) -> anyhow::Result<i32> {
    let started = std::time::Instant::now();
    bridge.set_debug(crate::gateway::request::debug_requested(options));
    let pong = match bridge.ping().await {
        Ok(pong) => pong,
        Err(e) => {
            eprintln!("sysfile: ping failed: {e}");
            return Ok(1);
        }
    };
    // stderr goes to the daemon's log: enough to tell later what this build was asked to do.
    let keys: Vec<&str> = options.all().keys().map(String::as_str).collect();
    eprintln!(
        "sysfile {}: options {keys:?}; buildkit {}; workers {:?}",
        env!("CARGO_PKG_VERSION"),
        bridge.caps().buildkit_version_hint(),
        pong.workers
            .iter()
            .map(|w| (
                &w.id,
                &w.labels,
                w.platforms
                    .iter()
                    .map(|p| format!("{}/{}", p.os, p.architecture))
                    .collect::<Vec<_>>()
            ))
            .collect::<Vec<_>>()
    );
    let outcome = match options.request_id().as_deref() {
        None => build(&bridge, options).await,
        Some("frontend.subrequests.describe") => Ok(subrequests::describe()),
        Some(id @ ("frontend.outline" | "frontend.targets" | "frontend.lint")) => {
            subrequests::spec_subrequest(&bridge, options, id).await
        }
        Some(other) => Err(BuildError::Subrequest(other.to_string())),
    };
    let elapsed = started.elapsed();
    if bridge.debugging() {
        let waited = bridge.waited();
        // The bridge's start on the wall clock lines the `+ms` offsets of the debug lines up
        // with the daemon's trace of the build.
        let since_epoch = bridge.created_since_epoch();
        bridge.debug_line(format!(
            "sysfile: answered in {:.1} ms: {:.1} ms waiting for BuildKit, {:.1} ms of its own; offsets from unix {}.{:06}",
            elapsed.as_secs_f64() * 1000.0,
            waited.as_secs_f64() * 1000.0,
            elapsed.saturating_sub(waited).as_secs_f64() * 1000.0,
            since_epoch.as_secs(),
            since_epoch.subsec_micros()
        ));
    } else {
        eprintln!("sysfile: answered in {} ms", elapsed.as_millis());
    }
    let returned = match outcome {
        Ok(result) => bridge.return_result(result).await,
        Err(err) => {
            let status = err.status();
            eprintln!("sysfile: build failed: {}", status.message);
            bridge.return_error(status).await
        }
    };
    match returned {
        Ok(()) => Ok(0),
        Err(e) => {
            eprintln!("sysfile: Return failed: {e}");
            Ok(1)
        }
    }
}

pub(super) async fn warn(
    bridge: &Bridge,
    diagnostics: &[Diagnostic],
    sources: &Sources,
    digest: &str,
) {
    // Sent together, in order of the requests; each failure is logged.
    let sent = diagnostics
        .iter()
        .filter(|d| !d.is_error())
        .map(|diagnostic| bridge.warn(errors::warn_request(diagnostic, sources, digest)));
    for result in futures_util::future::join_all(sent).await {
        if let Err(e) = result {
            eprintln!("sysfile: warning not delivered: {e}");
        }
    }
}

async fn build(
    bridge: &Bridge,
    options: &FrontendOptions,
) -> Result<pb::gateway::Result, BuildError> {
    let caps = bridge.caps().clone();
    for (cap, feature) in [
        ("solve.base", "solving LLB"),
        ("readfile", "reading the spec"),
        ("return", "returning a result"),
    ] {
        caps.require_gateway(cap, feature)
            .map_err(|e| BuildError::Other(e.to_string()))?;
    }
    caps.require_llb("file.base", "file operations")
        .map_err(|e| BuildError::Other(e.to_string()))?;
    let (loaded, load_digest) = load_spec(bridge, options).await?;
    let Some(spec) = loaded.spec.as_ref() else {
        warn(bridge, &loaded.diagnostics, &loaded.sources, &load_digest).await;
        return Err(BuildError::Spec {
            diagnostics: loaded.diagnostics,
            sources: loaded.sources,
        });
    };
    let mut warnings = loaded.diagnostics.clone();
    warnings.extend(lint::check(spec, &loaded.sources));
    if let Some(target) = options.target() {
        warnings.push(Diagnostic::warning(
            Code::TargetIgnored,
            spec.image.span,
            format!("the build target `{target}` is ignored: a Sysfile has a single target"),
        ));
    }
    // The warnings go out before the build starts: sent beside it, clients sometimes never
    // showed them (buildctl dropped every warning of a cached build while other builds ran on
    // the daemon; Docker 26 moved them from the step to its closing summary).
    warn(bridge, &warnings, &loaded.sources, &load_digest).await;
    build_spec(bridge, options, &caps, spec, &loaded.sources, &load_digest).await
}

/// The build of a loaded spec: the request, the checks before it, every platform.
async fn build_spec(
    bridge: &Bridge,
    options: &FrontendOptions,
    caps: &Caps,
    spec: &Spec,
    sources: &Sources,
    load_digest: &str,
) -> Result<pb::gateway::Result, BuildError> {
    let request = BuildRequest::new(options, spec, caps).map_err(|e| match e {
        RequestError::Spec(diagnostics) => BuildError::Spec {
            diagnostics,
            sources: sources.clone(),
        },
        RequestError::Option(message) => BuildError::Other(message),
    })?;
    // What does not depend on the platform is read and checked once.
    let unsupported = unsupported_features(spec, caps);
    if !unsupported.is_empty() {
        return Err(BuildError::Spec {
            diagnostics: unsupported,
            sources: sources.clone(),
        });
    }
    // The build context is loaded beside the first platform's base resolution and inspection,
    // and the context files only a step reads are checked in it; a missing one is the error.
    let preflight = async {
        let missing = load_context(bridge, &request, spec).await?;
        if missing.is_empty() {
            Ok(())
        } else {
            Err(BuildError::Spec {
                diagnostics: missing,
                sources: sources.clone(),
            })
        }
    };
    let mut preflight = Some(preflight);
    let mut preflight = move || {
        let first = preflight.take();
        async move {
            match first {
                Some(check) => check.await,
                None => Ok(()),
            }
        }
    };
    let context = PlatformBuild {
        bridge,
        request: &request,
        spec,
        sources,
        load_digest,
        base_linted: Default::default(),
    };
    let platforms = &request.platforms;
    let multi = request.multi_platform;
    if !multi {
        let platform = platforms.first().cloned().unwrap_or_default();
        let (result_ref, config, epoch) = context.build(&platform, preflight()).await?;
        let mut metadata = BTreeMap::from([("containerimage.config".to_string(), config)]);
        if let Some(epoch) = epoch {
            metadata.insert(
                "source.date.epoch".to_string(),
                epoch.to_string().into_bytes(),
            );
        }
        return Ok(pb::gateway::Result {
            result: Some(pb::gateway::result::Result::Ref(pb::gateway::Ref {
                id: result_ref,
                def: None,
            })),
            metadata,
        });
    }
    caps.require_gateway("returnmap", "multi-platform results")
        .map_err(|e| BuildError::Other(e.to_string()))?;
    let mut refs = BTreeMap::new();
    let mut metadata = BTreeMap::new();
    let mut described = Vec::new();
    for platform in platforms {
        let id = platform.id();
        let (result_ref, config, epoch) = context.build(platform, preflight()).await?;
        refs.insert(
            id.clone(),
            pb::gateway::Ref {
                id: result_ref,
                def: None,
            },
        );
        metadata.insert(format!("containerimage.config/{id}"), config);
        if let Some(epoch) = epoch {
            metadata.insert(
                format!("source.date.epoch/{id}"),
                epoch.to_string().into_bytes(),
            );
        }
        let mut oci = serde_json::json!({"architecture": platform.architecture, "os": platform.os});
        if !platform.variant.is_empty() {
            oci["variant"] = serde_json::json!(platform.variant);
        }
        described.push(serde_json::json!({"ID": id, "Platform": oci}));
    }
    metadata.insert(
        "refs.platforms".to_string(),
        serde_json::to_vec(&serde_json::json!({ "Platforms": described })).unwrap_or_default(),
    );
    Ok(pb::gateway::Result {
        result: Some(pb::gateway::result::Result::Refs(pb::gateway::RefMap {
            refs,
        })),
        metadata,
    })
}

/// Spec features the daemon lacks the LLB caps for, as located errors naming the version needed.
fn unsupported_features(spec: &Spec, caps: &Caps) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for run in &spec.runs {
        for mount in &run.mounts {
            if let MountKind::Tmpfs { size: Some(_) } = mount.kind {
                if let Err(missing) = caps.require_llb("exec.mount.tmpfs.size", "a tmpfs `size`") {
                    diagnostics.push(
                        Diagnostic::error(Code::UnsupportedByBuilder, mount.span, missing.to_string())
                            .with_help("remove `size` (the tmpfs is then unlimited) or build with a newer BuildKit"),
                    );
                }
            }
        }
    }
    diagnostics
}
