//! Reading through BuildKit: the spec from the spec local, the files it includes from the
//! context local (only the paths named), and the build context itself, loaded early with the
//! image's own source op, in which the files only a step would read are looked up.

use std::collections::{BTreeMap, BTreeSet};

use super::BuildError;
use crate::diag::{Diagnostic, SourceFile, Sources};
use crate::gateway::request::spec_candidates;
use crate::gateway::{Bridge, BuildRequest, FrontendOptions};
use crate::llb::{Graph, LocalOptions, OpOptions};
use crate::lower;
use crate::model::Spec;
use crate::plan;
use crate::spec::{self, LoadOptions};

/// The spec as read from the `dockerfile` local, with the digest of the op that loaded it.
struct SpecFile {
    file: SourceFile,
    load_digest: String,
}

async fn read_spec(bridge: &Bridge, options: &FrontendOptions) -> Result<SpecFile, BuildError> {
    let key = options.dockerfile_key();
    let candidates = spec_candidates(options);
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
pub(super) async fn load_spec(
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

/// Loads the main build context the build reads, and checks the context files a spec names by
/// path that only a build step would read (the users' `authorized_keys`), so that a missing one
/// is a located error at its entry instead of a failing step. The context is the very source op
/// the image's graph makes ([`lower::main_context`]), solved evaluated: the daemon transfers it
/// while the base is resolved and inspected, and the build's own solves find it loaded.
pub(super) async fn load_context(
    bridge: &Bridge,
    request: &BuildRequest,
    spec: &Spec,
) -> Result<Vec<Diagnostic>, BuildError> {
    let mut graph = Graph::new(None);
    let Some(context) = lower::main_context(
        &mut graph,
        &plan::context_paths(spec),
        &request.context_session,
        &request.context_name,
    ) else {
        return Ok(Vec::new());
    };
    let reference = bridge.solve(graph.finish(&context), vec![], true).await?;
    let keys: BTreeSet<&str> = spec
        .users
        .iter()
        .flat_map(|u| u.authorized_keys.iter().map(String::as_str))
        .collect();
    let found = futures_util::future::try_join_all(
        keys.iter().map(|path| exists(bridge, &reference, path)),
    )
    .await?;
    let present: BTreeSet<&str> = keys
        .iter()
        .zip(found)
        .filter(|(_, found)| *found)
        .map(|(path, _)| *path)
        .collect();
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
    let session = options.local_session(&key).unwrap_or_default();
    let local = lower::restricted_local(paths, &session, &key);
    let mut graph = Graph::new(None);
    let output = graph.local(&key, &local, OpOptions::named(name));
    Ok(bridge.solve(graph.finish(&output), vec![], false).await?)
}

pub(super) async fn exists(
    bridge: &Bridge,
    reference: &str,
    path: &str,
) -> Result<bool, BuildError> {
    match bridge.stat_file(reference, path).await {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e.into()),
    }
}
