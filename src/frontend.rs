//! The gateway frontend: reads the Sysfile through BuildKit, compiles it, solves it and returns the image.
//!
//! This is the only place where the pipeline meets BuildKit: options and the
//! spec come in through `gateway`, the pure stages (`spec`, `plan`, `lower`,
//! `image`) run in between, and the result or a source-located error goes back
//! through `Return`. Nothing but gRPC is ever written to stdout.

use std::collections::BTreeMap;

use serde_json::json;

use crate::diag::{Diagnostic, SourceFile, Sources};
use crate::distro::Family;
use crate::gateway::{Bridge, BridgeError, FrontendOptions, errors, transport};
use crate::llb::{Graph, LocalOptions, OpOptions};
use crate::lower::{LowerOptions, Lowering, NamedContext, OciStore};
use crate::pb;
use crate::plan::{self, BaseFacts};
use crate::reference::Reference;
use crate::spec::{self, LoadOptions};
use crate::{image, lint, outline, verify};

/// Frontend caps this frontend implements (the `moby.buildkit.frontend.caps` image label).
pub const FRONTEND_CAPS: &[&str] = &[
    "moby.buildkit.frontend.contexts",
    "moby.buildkit.frontend.subrequests",
];

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
        Some("frontend.subrequests.describe") => Ok(describe()),
        Some(id @ ("frontend.outline" | "frontend.targets" | "frontend.lint")) => {
            spec_subrequest(&bridge, options, id).await
        }
        Some(other) => Err(BuildError::Subrequest(other.to_string())),
    };
    eprintln!("sysfile: answered in {} ms", started.elapsed().as_millis());
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

fn metadata_result(metadata: BTreeMap<String, Vec<u8>>) -> pb::gateway::Result {
    pb::gateway::Result {
        result: Some(pb::gateway::result::Result::Ref(pb::gateway::Ref::default())),
        metadata,
    }
}

fn describe() -> pb::gateway::Result {
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

/// `frontend.outline`, `frontend.targets` and `frontend.lint`: answered from the spec alone.
async fn spec_subrequest(
    bridge: &Bridge,
    options: &FrontendOptions,
    id: &str,
) -> Result<pb::gateway::Result, BuildError> {
    let (loaded, _) = load_spec(bridge, options).await?;
    if id == "frontend.lint" {
        let mut diagnostics = loaded.diagnostics.clone();
        if let Some(spec) = &loaded.spec {
            diagnostics.extend(lint::check(spec, &loaded.sources));
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
            outline::outline_text(spec, &loaded.sources),
            None,
        ),
        _ => subrequest_result(
            outline::targets(spec, &loaded.sources),
            outline::targets_text(spec, &loaded.sources),
            None,
        ),
    })
}

/// The spec as read from the `dockerfile` local, with the digest of the op that loaded it.
struct SpecFile {
    file: SourceFile,
    load_digest: String,
}

async fn read_spec(bridge: &Bridge, options: &FrontendOptions) -> Result<SpecFile, BuildError> {
    let key = options.dockerfile_key();
    let explicit = options.get("filename").map(str::to_string);
    let candidates: Vec<String> = match &explicit {
        Some(name) => vec![name.clone()],
        None => vec!["Dockerfile".to_string(), "Sysfile".to_string()],
    };
    let local = LocalOptions {
        session: options.local_session(&key).unwrap_or_default(),
        follow_paths: candidates.clone(),
        shared_key_hint: key.clone(),
        ..LocalOptions::default()
    };
    let mut graph = Graph::new(None);
    let name = format!(
        "[internal] load build definition from {}",
        candidates.join(" or ")
    );
    let output = graph.local(&key, &local, OpOptions::named(name));
    let load_digest = output.digest.clone();
    let reference = bridge.solve(graph.finish(&output), vec![], false).await?;
    for candidate in &candidates {
        if let Some(data) = bridge.read_file_opt(&reference, candidate).await? {
            let display = candidate
                .rsplit('/')
                .next()
                .unwrap_or(candidate)
                .to_string();
            // The CLI's decoder: bytes that are not UTF-8 are a located error, as in `check`.
            let (file, not_utf8) = spec::decode_main(display, data);
            if let Some(diagnostic) = not_utf8 {
                return Err(BuildError::Spec {
                    diagnostics: vec![diagnostic],
                    sources: Sources::new(file),
                });
            }
            return Ok(SpecFile { file, load_digest });
        }
    }
    Err(BuildError::Other(format!(
        "no spec found: {} does not exist in the build definition context (use -f to name it)",
        candidates.join(" or ")
    )))
}

/// Reads the spec and every file it includes (from the build context), then loads it.
async fn load_spec(
    bridge: &Bridge,
    options: &FrontendOptions,
) -> Result<(spec::Loaded, String), BuildError> {
    let spec_file = read_spec(bridge, options).await?;
    let (includes, include_errors) = read_includes(bridge, options, &spec_file.file).await?;
    let loaded = spec::load(
        spec_file.file,
        &LoadOptions {
            build_args: options.build_args(),
            includes,
            include_errors,
        },
    );
    Ok((loaded, spec_file.load_digest))
}

/// Included texts by path, and the included files that cannot be used with the reason.
type IncludeTexts = (BTreeMap<String, String>, BTreeMap<String, String>);

/// Reads included fragments from the context local, level by level (nested includes), bounded.
async fn read_includes(
    bridge: &Bridge,
    options: &FrontendOptions,
    main: &SourceFile,
) -> Result<IncludeTexts, BuildError> {
    let mut texts = BTreeMap::new();
    let mut errors = BTreeMap::new();
    let mut pending: Vec<String> = spec::include_requests(main)
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    for _ in 0..spec::MAX_INCLUDE_DEPTH {
        pending.retain(|p| !texts.contains_key(p) && !errors.contains_key(p));
        pending.sort();
        pending.dedup();
        if pending.is_empty() {
            break;
        }
        let name = format!("[sysfile] load includes: {}", pending.join(" "));
        let reference = solve_context_paths(bridge, options, &pending, name).await?;
        let mut next = Vec::new();
        for path in std::mem::take(&mut pending) {
            // A missing file is reported by the loader, at the include entry that names it.
            if let Some(data) = bridge.read_file_opt(&reference, &path).await? {
                // The same checks as the CLI's: size cap, UTF-8.
                let text = match spec::decode_include(data) {
                    Ok(text) => text,
                    Err(why) => {
                        errors.insert(path, why);
                        continue;
                    }
                };
                next.extend(
                    spec::include_requests(&SourceFile::new(path.clone(), text.clone()))
                        .into_iter()
                        .map(|(p, _)| p),
                );
                texts.insert(path, text);
            }
        }
        pending = next;
    }
    Ok((texts, errors))
}

async fn warn(bridge: &Bridge, diagnostics: &[Diagnostic], sources: &Sources, digest: &str) {
    for diagnostic in diagnostics.iter().filter(|d| !d.is_error()) {
        if let Err(e) = bridge
            .warn(errors::warn_request(diagnostic, sources, digest))
            .await
        {
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
    let other = |e: anyhow::Error| BuildError::Other(format!("{e:#}"));

    let (loaded, load_digest) = load_spec(bridge, options).await?;
    warn(bridge, &loaded.diagnostics, &loaded.sources, &load_digest).await;
    let Some(spec) = loaded.spec.as_ref() else {
        return Err(BuildError::Spec {
            diagnostics: loaded.diagnostics,
            sources: loaded.sources,
        });
    };
    warn(
        bridge,
        &lint::check(spec, &loaded.sources),
        &loaded.sources,
        &load_digest,
    )
    .await;
    if let Some(target) = options.target() {
        let note = Diagnostic::warning(
            "target-ignored",
            spec.image.span,
            format!("the build target `{target}` is ignored: a Sysfile has a single target"),
        );
        warn(bridge, &[note], &loaded.sources, &load_digest).await;
    }

    let platforms = requested_platforms(options, spec).map_err(other)?;
    check_worker_platforms(options, &platforms)?;
    let multi = platforms.len() > 1 || options.get("multi-platform").is_some_and(|v| v != "false");
    // What does not depend on the platform is read and checked once.
    let unsupported = unsupported_features(spec, &caps);
    if !unsupported.is_empty() {
        return Err(BuildError::Spec {
            diagnostics: unsupported,
            sources: loaded.sources.clone(),
        });
    }
    let missing = missing_context_files(bridge, options, spec).await?;
    if !missing.is_empty() {
        return Err(BuildError::Spec {
            diagnostics: missing,
            sources: loaded.sources.clone(),
        });
    }
    let named_contexts = named_contexts(
        spec,
        &context_options(options),
        options,
        &caps,
        &loaded.sources,
    )?;
    let epoch = match options.source_date_epoch().map_err(other)? {
        Some(epoch) => Some(epoch),
        None => spec.source_date_epoch().map_err(|d| BuildError::Spec {
            diagnostics: vec![d],
            sources: loaded.sources.clone(),
        })?,
    };
    let context = PlatformBuild {
        bridge,
        options,
        spec,
        sources: &loaded.sources,
        load_digest: &load_digest,
        named_contexts,
        // Every solve that shares ops with the image gets the cache imports: the first one to
        // evaluate a step is the one that can take it from an imported cache.
        cache_imports: options.cache_imports().map_err(other)?,
        epoch,
    };
    if !multi {
        let platform = platforms.into_iter().next().unwrap_or_default();
        let (result_ref, config, epoch) = context.build(&platform).await?;
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
    for platform in &platforms {
        let id = platform_id(platform);
        let (result_ref, config, epoch) = context.build(platform).await?;
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

/// `linux/arm64/v8` style platform IDs, as BuildKit's `platforms.Format`.
pub fn platform_id(platform: &pb::llb::Platform) -> String {
    let mut id = format!("{}/{}", platform.os, platform.architecture);
    if !platform.variant.is_empty() {
        id.push('/');
        id.push_str(&platform.variant);
    }
    id
}

/// The platforms to build: the `platform` option (CSV), else `[image] platform`, else the worker's.
fn requested_platforms(
    options: &FrontendOptions,
    spec: &crate::model::Spec,
) -> anyhow::Result<Vec<pb::llb::Platform>> {
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
        let default = worker.and_then(|w| w.platforms.first().map(|p| platform_id(&p.to_pb())));
        texts.push(default.unwrap_or_else(|| "linux/amd64".to_string()));
    }
    let mut platforms: Vec<pb::llb::Platform> = Vec::new();
    for text in texts {
        let platform = crate::llb::parse_platform(&text)?;
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    Ok(platforms)
}

/// Fails clearly when no worker can run steps for a requested platform (no emulation installed).
fn check_worker_platforms(
    options: &FrontendOptions,
    platforms: &[pb::llb::Platform],
) -> Result<(), BuildError> {
    let Ok(workers) = options.workers() else {
        return Ok(());
    };
    let supported: Vec<String> = workers
        .iter()
        .flat_map(|w| w.platforms.iter().map(|p| platform_id(&p.to_pb())))
        .collect();
    if supported.is_empty() {
        return Ok(());
    }
    let matches = |p: &pb::llb::Platform| {
        let id = platform_id(p);
        supported
            .iter()
            .any(|s| *s == id || (p.variant.is_empty() && s.starts_with(&format!("{id}/"))))
    };
    let missing: Vec<String> = platforms
        .iter()
        .filter(|p| !matches(p))
        .map(platform_id)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut unique = supported.clone();
    unique.dedup();
    Err(BuildError::Other(format!(
        "this builder cannot run build steps for {}: its workers run {}; install emulation (for example Debian's qemu-user-static with binfmt-support) or build on a native builder",
        missing.join(", "),
        unique.join(", ")
    )))
}

/// Spec features the daemon lacks the LLB caps for, as located errors naming the version needed.
fn unsupported_features(spec: &crate::model::Spec, caps: &crate::gateway::Caps) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    for run in &spec.runs {
        for mount in &run.mounts {
            if let crate::model::MountKind::Tmpfs { size: Some(_) } = mount.kind {
                if let Err(missing) = caps.require_llb("exec.mount.tmpfs.size", "a tmpfs `size`") {
                    diagnostics.push(
                        Diagnostic::error("unsupported-by-builder", mount.span, missing.to_string())
                            .with_help("remove `size` (the tmpfs is then unlimited) or build with a newer BuildKit"),
                    );
                }
            }
        }
    }
    diagnostics
}

/// The `context:NAME=VALUE` options (`--build-context NAME=…`) as given, by name.
///
/// Nothing is interpreted here: BuildKit passes every named context of the request, including
/// ones the spec never uses (such as the `oci-layout://` store it loaded this frontend from), and
/// like the Dockerfile frontend sysfile ignores those. [`named_contexts`] interprets the ones
/// the spec uses.
fn context_options(options: &FrontendOptions) -> BTreeMap<String, String> {
    let mut contexts = BTreeMap::new();
    for (key, value) in options.all() {
        let Some(name) = key.strip_prefix("context:") else {
            continue;
        };
        // `context:NAME::PLATFORM` applies to one platform; sysfile treats it like `context:NAME`.
        let name = name.split("::").next().unwrap_or(name).to_string();
        contexts.insert(name, value.clone());
    }
    contexts
}

/// What a spec entry uses a named build context for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ContextUse {
    /// `[image] from` names it: it replaces the base image.
    Base,
    /// `[[files]] from`.
    Files,
    /// A bind mount's `from`.
    Bind,
}

/// The named build contexts the spec uses (base `from`, `[[files]] from`, bind mount `from`),
/// interpreted; a context it cannot read is a located error at the entry that uses it.
fn named_contexts(
    spec: &crate::model::Spec,
    given: &BTreeMap<String, String>,
    options: &FrontendOptions,
    caps: &crate::gateway::Caps,
    sources: &Sources,
) -> Result<BTreeMap<String, NamedContext>, BuildError> {
    let mut uses: Vec<(&str, crate::diag::Span, ContextUse)> = Vec::new();
    if given.contains_key(&spec.image.from.value) {
        uses.push((
            &spec.image.from.value,
            spec.image.from.span,
            ContextUse::Base,
        ));
    }
    for file in &spec.files {
        if let Some(name) = &file.from {
            uses.push((name, file.span, ContextUse::Files));
        }
    }
    for mount in spec.runs.iter().flat_map(|r| &r.mounts) {
        // A bind mount's `from` is a named context when one has that name, else an image.
        if let crate::model::MountKind::Bind {
            from: crate::model::BindFrom::Image(name),
            ..
        } = &mount.kind
        {
            if given.contains_key(name) {
                uses.push((name, mount.span, ContextUse::Bind));
            }
        }
    }
    let mut contexts = BTreeMap::new();
    let mut failed = std::collections::BTreeSet::new();
    let mut diagnostics = Vec::new();
    for (name, span, used) in uses {
        if failed.contains(name) {
            continue;
        }
        let Some(value) = given.get(name) else {
            diagnostics.push(
                Diagnostic::error(
                    "unknown-build-context",
                    span,
                    format!("there is no build context named `{name}`"),
                )
                .with_help(format!(
                    "pass it with `docker buildx build --build-context {name}=<directory or docker-image://REF>`"
                )),
            );
            failed.insert(name);
            continue;
        };
        let context = match contexts.get(name) {
            Some(context) => context,
            None => match interpret_context(name, value, options, caps) {
                Ok(context) => contexts.entry(name.to_string()).or_insert(context),
                Err((code, message, help)) => {
                    diagnostics.push(Diagnostic::error(code, span, message).with_help(help));
                    failed.insert(name);
                    continue;
                }
            },
        };
        let is_image = matches!(
            context,
            NamedContext::Image(_) | NamedContext::OciLayout { .. }
        );
        if used == ContextUse::Base && !is_image {
            diagnostics.push(
                Diagnostic::error(
                    "bad-base-context",
                    span,
                    format!("the build context `{name}` replaces the base image, but it is not an image"),
                )
                .with_help("pass it as `--build-context NAME=docker-image://REF` or `NAME=oci-layout://STORE@sha256:…`"),
            );
            failed.insert(name);
        }
    }
    if diagnostics.is_empty() {
        Ok(contexts)
    } else {
        Err(BuildError::Spec {
            diagnostics,
            sources: sources.clone(),
        })
    }
}

/// Reads one named context's value; on failure, a diagnostic code, message and help.
fn interpret_context(
    name: &str,
    value: &str,
    options: &FrontendOptions,
    caps: &crate::gateway::Caps,
) -> Result<NamedContext, (&'static str, String, String)> {
    if let Some(reference) = value.strip_prefix("docker-image://") {
        let parsed = Reference::parse(reference).map_err(|e| {
            (
                "bad-build-context",
                format!("the build context `{name}={value}` is not a valid image reference: {e}"),
                format!("pass an image as `--build-context {name}=docker-image://REF`"),
            )
        })?;
        Ok(NamedContext::Image(parsed.normalized()))
    } else if let Some(layout) = value.strip_prefix("oci-layout://") {
        caps.require_llb(
            "source.ocilayout",
            &format!("the oci-layout:// build context `{name}`"),
        )
        .map_err(|missing| {
            (
                "unsupported-by-builder",
                missing.to_string(),
                format!(
                    "build with a newer BuildKit, or load the image into the daemon and pass `--build-context {name}=docker-image://REF`"
                ),
            )
        })?;
        let (store, digest) = oci_layout_context(layout).map_err(|e| {
            (
                "bad-build-context",
                format!("the build context `{name}={value}` is not a valid oci-layout:// context: {e}"),
                format!(
                    "pass it as `--build-context {name}=oci-layout://STORE@sha256:…` (the store as given to `--oci-layout`, the manifest digest)"
                ),
            )
        })?;
        Ok(NamedContext::OciLayout {
            reference: oci_reference(name, &store, &digest),
            store: OciStore {
                store,
                session: options.session_id().unwrap_or_default().to_string(),
            },
        })
    } else if let Some(local) = value.strip_prefix("local:") {
        Ok(NamedContext::Local {
            name: local.to_string(),
            session: options.local_session(local).unwrap_or_default(),
        })
    } else if let Some((identifier, url)) = git_context(value) {
        Ok(NamedContext::Git { identifier, url })
    } else if value.starts_with("https://") || value.starts_with("http://") {
        Ok(NamedContext::Http(value.to_string()))
    } else {
        Err((
            "unsupported-build-context",
            format!("the build context `{name}={value}` is not supported"),
            "sysfile takes directories, docker-image://, oci-layout://, git and https contexts"
                .to_string(),
        ))
    }
}

/// Splits the part after `oci-layout://` into the store ID and the manifest digest:
/// `STORE[:TAG]@sha256:…` (a tag only labels it; the digest selects the image).
pub fn oci_layout_context(layout: &str) -> Result<(String, String), String> {
    let Some((store_ref, digest)) = layout.rsplit_once('@') else {
        return Err("it has no `@sha256:…` digest".to_string());
    };
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("`{digest}` is not a sha256 digest"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("`{digest}` is not a sha256 digest"));
    }
    let last_slash = store_ref.rfind('/').map_or(0, |i| i + 1);
    let store = match store_ref[last_slash..].rfind(':') {
        Some(i) => &store_ref[..last_slash + i],
        None => store_ref,
    };
    if store.is_empty() {
        return Err("it names no store".to_string());
    }
    Ok((store.to_string(), digest.to_string()))
}

/// The reference of an `oci-layout://` source: like the Dockerfile frontend, the context's
/// name pinned to the digest (only the digest selects the image; the name labels it). A name
/// that is no image name falls back to the store's, then to `sysfile-context`.
fn oci_reference(name: &str, store: &str, digest: &str) -> String {
    let parsed = [
        name.to_string(),
        name.to_ascii_lowercase(),
        store.to_string(),
    ]
    .iter()
    .find_map(|candidate| {
        Reference::parse(candidate)
            .ok()
            .map(|r| (candidate.clone(), r))
    });
    let (written, mut reference) = match parsed {
        Some(found) => found,
        None => match Reference::parse("sysfile-context") {
            Ok(r) => ("sysfile-context".to_string(), r),
            Err(_) => return format!("docker.io/library/sysfile-context@{digest}"),
        },
    };
    // `base` is `docker.io/library/base@sha256:…`, without the `latest` a bare name implies.
    let last = written.rsplit('/').next().unwrap_or(&written);
    if !last.contains(':') {
        reference.tag = None;
    }
    reference.digest = Some(digest.to_string());
    reference.normalized()
}

/// A git URL as BuildKit's git source wants it: the identifier `host/path[#ref[:subdir]]` and
/// the full URL without the fragment (`git.fullurl`). `None` when `value` is not a git URL.
pub fn git_context(value: &str) -> Option<(String, String)> {
    let (url, fragment) = match value.split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (value, None),
    };
    let is_git = url.starts_with("git://")
        || url.starts_with("git@")
        || url.starts_with("ssh://")
        || url.ends_with(".git")
        || url.starts_with("github.com/");
    if !is_git {
        return None;
    }
    // `git@host:org/repo.git` is `host/org/repo.git`.
    let path = if let Some(rest) = url.strip_prefix("git@") {
        rest.replacen(':', "/", 1)
    } else {
        let without_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        without_scheme
            .split_once('@')
            .map_or(without_scheme, |(_, host)| host)
            .to_string()
    };
    let identifier = match fragment {
        Some(fragment) if !fragment.is_empty() => format!("{path}#{fragment}"),
        _ => path,
    };
    let full = if url.starts_with("github.com/") {
        format!("https://{url}")
    } else {
        url.to_string()
    };
    Some((identifier, full))
}

/// What building one platform needs; [`PlatformBuild::build`] returns the ref, config and epoch.
struct PlatformBuild<'a> {
    bridge: &'a Bridge,
    options: &'a FrontendOptions,
    spec: &'a crate::model::Spec,
    sources: &'a Sources,
    load_digest: &'a str,
    named_contexts: BTreeMap<String, NamedContext>,
    cache_imports: Vec<pb::gateway::CacheOptionsEntry>,
    epoch: Option<u64>,
}

impl PlatformBuild<'_> {
    async fn build(
        &self,
        platform: &pb::llb::Platform,
    ) -> Result<(String, Vec<u8>, Option<u64>), BuildError> {
        let (bridge, options, spec) = (self.bridge, self.options, self.spec);
        let caps = bridge.caps().clone();
        let other = |e: anyhow::Error| BuildError::Other(format!("{e:#}"));
        let platform = platform.clone();
        let cache_imports = &self.cache_imports;
        // Like the Dockerfile frontend: a named context can replace the base image by name
        // (`named_contexts` has already refused one that is not an image).
        let (base_text, base_oci) = match self.named_contexts.get(&spec.image.from.value) {
            Some(NamedContext::Image(reference)) => (reference.clone(), None),
            Some(NamedContext::OciLayout { reference, store }) => {
                (reference.clone(), Some(store.clone()))
            }
            _ => (spec.image.from.value.clone(), None),
        };
        let base = Reference::parse(&base_text).map_err(|message| BuildError::Spec {
            diagnostics: vec![Diagnostic::error(
                "bad-image-reference",
                spec.image.from.span,
                message,
            )],
            sources: self.sources.clone(),
        })?;
        let resolve_mode = options.image_resolve_mode().map_err(other)?;
        let log_name = format!("[sysfile] load metadata for {}", base.normalized());
        let (digest, base_config) = match &base_oci {
            Some(oci) => {
                bridge
                    .resolve_oci_layout_config(
                        &base.normalized(),
                        Some(platform.clone()),
                        &oci.store,
                        &oci.session,
                        &log_name,
                    )
                    .await?
            }
            None => {
                bridge
                    .resolve_image_config(
                        &base.normalized(),
                        Some(platform.clone()),
                        resolve_mode,
                        &log_name,
                    )
                    .await?
            }
        };
        let base_ref = if digest.is_empty() || base.digest.is_some() {
            base.normalized()
        } else {
            base.pinned(&digest)
        };
        // An image found only in Docker's local store has no manifest digest: record its
        // config digest (the image ID) so the base is still identified exactly.
        let base_digest = match (digest.is_empty(), &base.digest) {
            (false, _) => digest,
            (true, Some(pinned)) => pinned.clone(),
            (true, None) => crate::llb::digest(&base_config),
        };

        let resolve_mode_attr = resolve_mode.as_str();
        let facts = detect_base(
            bridge,
            spec,
            BaseImage {
                reference: &base_ref,
                resolve_mode: resolve_mode_attr,
                oci: base_oci.as_ref(),
            },
            &platform,
            self.sources,
            cache_imports,
        )
        .await?;
        let base_json: serde_json::Value =
            serde_json::from_slice(&base_config).unwrap_or(serde_json::Value::Null);
        let base_env: Vec<String> = base_json["config"]["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let base_workdir = base_json["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("")
            .to_string();

        let plan = plan::plan(spec, &facts);
        let force_network =
            options
                .force_network_mode()
                .map_err(other)?
                .and_then(|mode| match mode {
                    crate::gateway::NetworkMode::Host => Some(crate::llb::NetMode::Host),
                    crate::gateway::NetworkMode::None => Some(crate::llb::NetMode::None),
                    crate::gateway::NetworkMode::Sandbox => None,
                });
        if force_network == Some(crate::llb::NetMode::Host) {
            caps.require_llb("exec.meta.network", "host networking")
                .map_err(|e| BuildError::Other(e.to_string()))?;
        }
        let context_key = options.context_key();
        let lower_options = LowerOptions {
            named_contexts: self.named_contexts.clone(),
            base_ref: base_ref.clone(),
            base_oci,
            base_span: spec.image.from.span,
            base_env,
            base_workdir,
            platform: Some(platform.clone()),
            session_id: options.local_session(&context_key).unwrap_or_default(),
            context_name: context_key,
            force_network,
            extra_hosts: options.add_hosts().map_err(other)?,
            no_cache: options.no_cache(),
            resolve_mode: resolve_mode.as_str().to_string(),
            llb_caps: Some(caps.llb_caps().map(str::to_string).collect()),
            epoch: self.epoch,
        };
        let mut plan = plan;
        let verified = verify_build(
            bridge,
            spec,
            &plan,
            self.sources,
            &lower_options,
            cache_imports,
        )
        .await?;
        warn(bridge, &verified.warnings, self.sources, self.load_digest).await;
        if !verified.inventory.init.is_empty() && !verified.inventory.init_is_systemd() {
            // `/sbin/init` is another init system: start the systemd binary itself.
            plan.entrypoint = vec![facts.family.systemd_binary().to_string()];
        }
        let lowered = verified.image;
        let result_ref = bridge
            .solve(lowered.definition, cache_imports.clone(), false)
            .await?;

        let epoch = lower_options.epoch;
        let config = image::image_config(
            spec,
            &plan,
            &image::ImageInputs {
                base_config: &base_config,
                base_name: base.normalized(),
                base_digest,
                extra_labels: options.labels(),
                os: platform.os.clone(),
                architecture: platform.architecture.clone(),
                variant: platform.variant.clone(),
                history: lowered.history,
                epoch,
                systemd_version: verified.inventory.systemd_version,
            },
        );
        let config = serde_json::to_vec(&config).map_err(|e| BuildError::Other(e.to_string()))?;
        Ok((result_ref, config, epoch))
    }
}

/// The base image op's inputs: the pinned reference, the resolve mode and, for an
/// `oci-layout://` base, its store.
struct BaseImage<'a> {
    reference: &'a str,
    resolve_mode: &'a str,
    oci: Option<&'a OciStore>,
}

/// Solves the base image and reads what the planner needs: distribution family and systemd.
async fn detect_base(
    bridge: &Bridge,
    spec: &crate::model::Spec,
    base: BaseImage<'_>,
    platform: &pb::llb::Platform,
    sources: &Sources,
    cache_imports: &[pb::gateway::CacheOptionsEntry],
) -> Result<BaseFacts, BuildError> {
    let mut graph = Graph::new(Some(platform.clone()));
    // The same op as the build's base (same attrs), so the facts are those of the image built on.
    let image = crate::lower::base_source(
        &mut graph,
        base.reference,
        base.resolve_mode,
        base.oci,
        OpOptions::named(format!("[sysfile] inspect {}", base.reference)),
    );
    let reference = bridge
        .solve(graph.finish(&image), cache_imports.to_vec(), false)
        .await?;
    let mut os_release = None;
    for path in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Some(data) = bridge.read_file_opt(&reference, path).await? {
            os_release = Some(String::from_utf8_lossy(&data).into_owned());
            break;
        }
    }
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
                        "unknown-distribution",
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
    let (lib, usr_lib, sbin_init) = tokio::join!(
        exists(bridge, &reference, "/lib/systemd/systemd"),
        exists(bridge, &reference, "/usr/lib/systemd/systemd"),
        exists(bridge, &reference, "/sbin/init"),
    );
    let has_systemd = lib? || usr_lib?;
    let has_sbin_init = sbin_init?;
    Ok(BaseFacts {
        family,
        has_systemd,
        has_sbin_init,
    })
}

/// The context files a spec names by path that only a build step would read (the users'
/// `authorized_keys`): checked before the build, so that a missing one is a located error at its
/// entry instead of a failing step. Reads nothing but those paths from the context.
async fn missing_context_files(
    bridge: &Bridge,
    options: &FrontendOptions,
    spec: &crate::model::Spec,
) -> Result<Vec<Diagnostic>, BuildError> {
    let paths: Vec<String> = spec
        .users
        .iter()
        .flat_map(|u| u.authorized_keys.iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let name = "[sysfile] check context files".to_string();
    let reference = solve_context_paths(bridge, options, &paths, name).await?;
    let mut present = std::collections::BTreeSet::new();
    for path in &paths {
        if exists(bridge, &reference, path).await? {
            present.insert(path.as_str());
        }
    }
    Ok(spec.missing_context_files(|path| present.contains(path)))
}

/// Solves the build context restricted to `paths` (sent as literal patterns, symlinks followed
/// inside the context) and returns the reference to read them from.
async fn solve_context_paths(
    bridge: &Bridge,
    options: &FrontendOptions,
    paths: &[String],
    name: String,
) -> Result<String, BuildError> {
    let key = options.context_key();
    let local = LocalOptions {
        session: options.local_session(&key).unwrap_or_default(),
        include_patterns: crate::lower::literal_patterns(paths),
        follow_paths: crate::lower::follow_patterns(paths),
        shared_key_hint: key.clone(),
        ..LocalOptions::default()
    };
    let mut graph = Graph::new(None);
    let output = graph.local(&key, &local, OpOptions::named(name));
    Ok(bridge.solve(graph.finish(&output), vec![], false).await?)
}

async fn exists(bridge: &Bridge, reference: &str, path: &str) -> Result<bool, BuildError> {
    match bridge.stat_file(reference, path).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A build that passed verification: the image's LLB, what the report found, and warnings.
struct Verified {
    image: crate::lower::Lowered,
    inventory: crate::report::Inventory,
    warnings: Vec<Diagnostic>,
}

/// Solves the build up to its units step's report and checks it: unit names, unit states and
/// image hygiene. When the units step itself fails, inspects the filesystem before it to say
/// which unit name was wrong; anything else BuildKit reports passes through unchanged.
async fn verify_build(
    bridge: &Bridge,
    spec: &crate::model::Spec,
    plan: &plan::Plan,
    sources: &Sources,
    options: &LowerOptions,
    cache_imports: &[pb::gateway::CacheOptionsEntry],
) -> Result<Verified, BuildError> {
    let mut lowering = Lowering::new(plan, sources, options);
    for step in &plan.steps {
        lowering.step(step);
    }
    let (image, report) = lowering.finish_with_report();
    let report =
        report.ok_or_else(|| BuildError::Other("the plan has no units step".to_string()))?;
    let texts = match read_report(bridge, report, cache_imports).await {
        Ok(texts) => texts,
        Err(failure) => {
            return Err(explain_units_failure(
                bridge,
                spec,
                plan,
                sources,
                options,
                cache_imports,
                failure,
            )
            .await);
        }
    };
    let [units, aliases, version, init, states, facts] = texts;
    let inventory = crate::report::Inventory::parse(&units, &aliases, &version, &init);
    let mut diagnostics = verify::check_inventory(spec, &inventory);
    diagnostics.extend(verify::check_state(spec, plan, &states, &facts));
    let (errors, warnings): (Vec<_>, Vec<_>) =
        diagnostics.into_iter().partition(Diagnostic::is_error);
    if !errors.is_empty() {
        return Err(BuildError::Spec {
            diagnostics: errors,
            sources: sources.clone(),
        });
    }
    Ok(Verified {
        image,
        inventory,
        warnings,
    })
}

/// Solves a report definition and reads every report file (the script always writes them all).
async fn read_report(
    bridge: &Bridge,
    report: pb::llb::Definition,
    cache_imports: &[pb::gateway::CacheOptionsEntry],
) -> Result<[String; 6], BridgeError> {
    let reference = bridge.solve(report, cache_imports.to_vec(), false).await?;
    read_texts(bridge, &reference, crate::report::REPORT_FILES).await
}

/// Reads `names` from a solved ref, as text.
async fn read_texts<const N: usize>(
    bridge: &Bridge,
    reference: &str,
    names: [&str; N],
) -> Result<[String; N], BridgeError> {
    let mut texts: [String; N] = std::array::from_fn(|_| String::new());
    for (text, name) in texts.iter_mut().zip(names) {
        *text = String::from_utf8_lossy(&bridge.read_file(reference, name).await?).into_owned();
    }
    Ok(texts)
}

/// The units step failed: if a unit name in the spec is wrong, say which, at its line; else
/// pass BuildKit's error on.
async fn explain_units_failure(
    bridge: &Bridge,
    spec: &crate::model::Spec,
    plan: &plan::Plan,
    sources: &Sources,
    options: &LowerOptions,
    cache_imports: &[pb::gateway::CacheOptionsEntry],
    failure: BridgeError,
) -> BuildError {
    let mut lowering = Lowering::new(plan, sources, options);
    for step in &plan.steps[..plan.units_step] {
        lowering.step(step);
    }
    let args = plan::script_argv(
        &crate::report::inventory_script(),
        "sysfile-inventory",
        [crate::report::REPORT_DIR.to_string()],
    );
    let span = plan
        .steps
        .get(plan.units_step)
        .map(|s| s.span)
        .unwrap_or_default();
    let report = lowering.inspect("[sysfile] inspect units", args, span);
    let inspected = async {
        let reference = bridge
            .solve(
                lowering.finish_at(&report).definition,
                cache_imports.to_vec(),
                false,
            )
            .await?;
        read_texts(bridge, &reference, ["units", "aliases", "version", "init"]).await
    };
    match inspected.await {
        Ok([units, aliases, version, init]) => {
            let inventory = crate::report::Inventory::parse(&units, &aliases, &version, &init);
            let errors: Vec<Diagnostic> = verify::check_inventory(spec, &inventory)
                .into_iter()
                .filter(Diagnostic::is_error)
                .collect();
            if errors.is_empty() {
                BuildError::Buildkit(failure)
            } else {
                BuildError::Spec {
                    diagnostics: errors,
                    sources: sources.clone(),
                }
            }
        }
        // The steps before the units step failed too: BuildKit's own error says where.
        Err(_) => BuildError::Buildkit(failure),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_layout_contexts_name_a_store_and_a_digest() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            oci_layout_context(&format!("store@{d}")),
            Ok(("store".into(), d.clone()))
        );
        assert_eq!(
            oci_layout_context(&format!("local/sysfile:dev@{d}")),
            Ok(("local/sysfile".into(), d.clone()))
        );
        assert_eq!(
            oci_layout_context(&format!("localhost:5000/x@{d}")),
            Ok(("localhost:5000/x".into(), d.clone()))
        );
        assert!(oci_layout_context("store").is_err());
        assert!(oci_layout_context(&format!("@{d}")).is_err());
        assert!(oci_layout_context("store@sha256:AB").is_err());
        assert!(oci_layout_context(&format!("store@sha512:{}", "ab".repeat(32))).is_err());
        assert_eq!(
            oci_reference("base", "store", &d),
            format!("docker.io/library/base@{d}")
        );
        assert_eq!(
            oci_reference("local/sysfile:dev", "store", &d),
            format!("docker.io/local/sysfile:dev@{d}")
        );
        assert_eq!(
            oci_reference("Tools", "store", &d),
            format!("docker.io/library/tools@{d}")
        );
        assert_eq!(
            oci_reference("a b", "my.registry/layouts", &d),
            format!("my.registry/layouts@{d}")
        );
    }

    #[test]
    fn git_contexts_split_the_fragment_off_the_full_url() {
        let ctx = |v: &str| git_context(v);
        assert_eq!(
            ctx("https://github.com/org/repo.git#v1.2:sub"),
            Some((
                "github.com/org/repo.git#v1.2:sub".into(),
                "https://github.com/org/repo.git".into()
            ))
        );
        assert_eq!(
            ctx("git@github.com:org/repo.git#main"),
            Some((
                "github.com/org/repo.git#main".into(),
                "git@github.com:org/repo.git".into()
            ))
        );
        assert_eq!(
            ctx("git://host/repo"),
            Some(("host/repo".into(), "git://host/repo".into()))
        );
        assert_eq!(
            ctx("ssh://git@host/repo.git"),
            Some(("host/repo.git".into(), "ssh://git@host/repo.git".into()))
        );
        assert_eq!(ctx("https://example.com/file.tar"), None);
    }
}
