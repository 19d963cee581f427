//! Lowering: a build plan becomes an LLB definition with a source location on every op.
//!
//! The build-step rules of the systemd contract live here: every exec gets a
//! tmpfs on `/run`, `/run/lock` and `/tmp`, and `SYSTEMD_OFFLINE=1` and an empty
//! `SYSTEMD_PROC_CMDLINE` in its environment (never in the image config), and the
//! builder's forced network mode applies to every step that did not choose one.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{Sources, Span};
use crate::llb::{self, CopyOptions, FileAction, Graph, LocalOptions, Mount, OpOptions, Output};
use crate::model::{self, BindFrom, MountKind, Network, OwnerId};
use crate::pb::llb as pb;
use crate::plan::{CONTEXT_MOUNT, ExecStep, FileStep, Plan, Step, StepKind};
use crate::report::REPORT_DIR;

/// Everything lowering needs besides the plan; gathered by the gateway or the CLI.
#[derive(Clone, Debug, Default)]
pub struct LowerOptions {
    /// The base image reference, normalised and pinned (`docker.io/library/debian:12@sha256:…`).
    pub base_ref: String,
    /// The span of `[image] from`, for the base image op.
    pub base_span: Span,
    /// The OCI layout store the base comes from, when a named `oci-layout://` context replaces
    /// it; `None`: `base_ref` is an image in a registry or the daemon's image store.
    pub base_oci: Option<OciStore>,
    /// The base image's `Env` (for `PATH`), applied to every step.
    pub base_env: Vec<String>,
    /// The base image's working directory (`/` when empty).
    pub base_workdir: String,
    pub platform: Option<pb::Platform>,
    /// The client session for `local://` sources (empty outside a gateway build).
    pub session_id: String,
    /// The name of the local holding the build context.
    pub context_name: String,
    /// Named build contexts (`--build-context NAME=…`), by name.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// `force-network-mode` from the builder (`docker build --network=host`).
    pub force_network: Network,
    pub extra_hosts: Vec<(String, String)>,
    /// `--no-cache`: every step runs again.
    pub no_cache: bool,
    /// The `image.resolvemode` attr of image sources (`default`, `pull`, `local`).
    pub resolve_mode: String,
    /// SOURCE_DATE_EPOCH (Unix seconds): the timestamp of every file sysfile writes or copies.
    pub epoch: Option<u64>,
    /// LLB caps the daemon reports; `None` means assume a current daemon.
    pub llb_caps: Option<BTreeSet<String>>,
    /// Lay the build out as a line even when the daemon has merge and diff ops (the
    /// `BUILDKIT_SYSFILE_LINEAR` build argument): leaf files stay in the chain and the checks
    /// are solved apart. The filesystem is the same either way.
    pub linear: bool,
    /// Where the plan places the files (`BUILDKIT_SYSFILE_LINEAR=declared`: every step where
    /// the spec declares it, with `linear`).
    pub order: crate::plan::Order,
}

impl LowerOptions {
    fn has_cap(&self, cap: &str) -> bool {
        self.llb_caps.as_ref().is_none_or(|caps| caps.contains(cap))
    }

    /// Whether the build is dependency-shaped: leaf files and checks joined through merge and
    /// diff ops (daemons with both caps, BuildKit v0.10 and later, unless `linear`).
    pub fn joins(&self) -> bool {
        !self.linear && self.has_cap("mergeop") && self.has_cap("diffop")
    }
}

/// Where a named build context comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedContext {
    /// A directory the client shares as a local (`--build-context name=./dir`).
    Local { name: String, session: String },
    /// An image, normalised (`docker-image://…`).
    Image(String),
    /// A git repository: the LLB identifier (`host/path#ref`) and the URL as given.
    Git { identifier: String, url: String },
    /// A single file over HTTP(S).
    Http(String),
    /// An image in an OCI layout the client shares (`oci-layout://STORE@sha256:…`): `reference`
    /// is the context's name pinned to the digest (`docker.io/library/base@sha256:…`).
    OciLayout { reference: String, store: OciStore },
}

/// An OCI layout store shared by the client: its ID and the session that holds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OciStore {
    pub store: String,
    pub session: String,
}

/// The build contexts a step can read: the main one and the named ones the plan uses.
#[derive(Clone, Debug, Default)]
struct Contexts {
    main: Option<Output>,
    named: BTreeMap<String, Output>,
}

/// The result of lowering: the definition plus one history line per step.
#[derive(Clone, Debug)]
pub struct Lowered {
    pub definition: pb::Definition,
    /// `(created_by, empty_layer)` per step, in the order of the image's layers.
    pub history: Vec<(String, bool)>,
    /// The checks, one definition each, which the caller solves beside verification: on a
    /// daemon with merge and diff ops they are also part of `definition` (so they are cached and
    /// exported with it); elsewhere (or in a `linear` build) only here.
    pub checks: Vec<pb::Definition>,
    /// On a daemon with merge and diff ops, the leaf files no check sees (a check builds those
    /// it sees): their diffs, merged when there is more than one. The caller solves it
    /// (evaluated) beside verification, so that they are built while the units step runs
    /// instead of when the image is exported.
    pub leaves: Option<pb::Definition>,
}

/// Lowers the whole `plan` to LLB: the image, and the units step's verification report (see
/// [`Lowering::finish_with_report`]). `sources` provides the spec files for the source map.
pub fn lower(
    plan: &Plan,
    sources: &Sources,
    options: &LowerOptions,
) -> (Lowered, Option<pb::Definition>) {
    let mut lowering = Lowering::new(plan, sources, options);
    lowering.steps(plan.steps.len());
    lowering.finish_with_report()
}

/// The user steps applied apart from the chain (see [`Lowering::join_users`]).
struct UsersBeside {
    /// The state they were applied on: the chain's before them.
    before: Output,
    /// The state after the last of them so far.
    current: Output,
    /// The first user's entry, where the diff and the merge that join them point.
    span: Span,
    history: Vec<(String, bool)>,
}

/// Lowering in progress: the graph, the current root filesystem and the build context.
///
/// [`lower`] runs every step; [`crate::compile::Compiled::inspection`] stops part-way to
/// inspect an intermediate filesystem with [`Lowering::inspect`].
pub struct Lowering<'a> {
    plan: &'a Plan,
    graph: Graph,
    current: Output,
    /// The filesystem just before the first `[[files]]` step (with the leaf files' directories),
    /// once reached, and each leaf file applied on it alone, with its step's location
    /// (dependency-shaped builds only, see [`LowerOptions::joins`]).
    before_files: Option<Output>,
    /// The filesystem before the units step, once reached: what the checks run on.
    before_units: Option<Output>,
    /// The user steps run beside the files ([`Plan::users_beside_files`], dependency-shaped
    /// builds only), until their diff is laid on the chain before the units step.
    users_beside: Option<UsersBeside>,
    leaves: Vec<(Output, llb::Location)>,
    /// The history lines of the leaf files: their layers come after the chain's.
    leaf_history: Vec<(String, bool)>,
    contexts: Contexts,
    /// The verification report of the units step, once lowered.
    report: Option<Output>,
    /// The units step's spec location and its name's `(file:line)` suffix: the ops that carry
    /// its report point there too.
    report_origin: Option<(llb::Location, String)>,
    sources: &'a Sources,
    options: &'a LowerOptions,
    history: Vec<(String, bool)>,
}

impl<'a> Lowering<'a> {
    /// Starts from the base image (and the context source, when the plan reads the context).
    pub fn new(plan: &'a Plan, sources: &'a Sources, options: &'a LowerOptions) -> Lowering<'a> {
        let mut graph = Graph::new(options.platform.clone());
        for (_, file) in sources.iter() {
            graph.add_source_file(&file.name, file.text.as_bytes(), "TOML");
        }
        let base_name = format!(
            "[sysfile] base {} ({})",
            options.base_ref,
            entry_line(sources, options.base_span)
        );
        let current = base_source(
            &mut graph,
            &options.base_ref,
            &options.resolve_mode,
            options.base_oci.as_ref(),
            OpOptions::named(base_name).at(Some(location(sources, options.base_span))),
        );
        let context = main_context(
            &mut graph,
            &plan.context_paths,
            &options.session_id,
            &options.context_name,
        );
        let mut named = BTreeMap::new();
        for (name, paths) in &plan.named_context_paths {
            let Some(source) = options.named_contexts.get(name) else {
                continue;
            };
            let title = format!("[sysfile] load build context {name}");
            let output = match source {
                NamedContext::Local {
                    name: local_name,
                    session,
                } => {
                    let local = restricted_local(paths, session, local_name);
                    graph.local(local_name, &local, OpOptions::named(title))
                }
                NamedContext::Image(reference) => {
                    graph.image(reference, BTreeMap::new(), OpOptions::named(title))
                }
                NamedContext::Git { identifier, url } => {
                    graph.git(identifier, url, false, OpOptions::named(title))
                }
                NamedContext::Http(url) => {
                    graph.http(url, None, None, None, OpOptions::named(title))
                }
                NamedContext::OciLayout { reference, store } => graph.oci_layout(
                    reference,
                    &store.store,
                    &store.session,
                    OpOptions::named(title),
                ),
            };
            named.insert(name.clone(), output);
        }
        Lowering {
            plan,
            graph,
            current,
            before_files: None,
            before_units: None,
            users_beside: None,
            leaves: Vec::new(),
            leaf_history: Vec::new(),
            contexts: Contexts {
                main: context,
                named,
            },
            report: None,
            report_origin: None,
            sources,
            options,
            history: Vec::new(),
        }
    }

    /// Applies the plan's steps before index `end` (every step: the plan's length). On a
    /// dependency-shaped build the leaf files go on the filesystem as it was before the first
    /// `[[files]]` step, apart from the chain; [`Lowering::finish`] joins them on top. On a
    /// linear build [`Lowering::finish`] applies them at the end of the chain instead. Either
    /// way their directories are made in the chain, where the first `[[files]]` step is. On a
    /// dependency-shaped build the user steps the plan puts beside the files are applied apart
    /// too, and joined on the chain before the units step (or at `end` when that is where
    /// the units step would be).
    pub fn steps(&mut self, end: usize) {
        let plan = self.plan;
        let joins = self.options.joins();
        let users_beside = plan.users_beside_files.clone().filter(|_| joins);
        for (i, step) in plan.steps.iter().enumerate().take(end) {
            if i == plan.units_step {
                self.join_users();
                self.before_units = Some(self.current.clone());
            }
            if users_beside
                .as_ref()
                .is_some_and(|users| users.contains(&i))
            {
                self.apply_beside_files(step);
                continue;
            }
            if i == plan.files_start {
                self.early_directories();
                if joins {
                    self.before_files = Some(self.current.clone());
                }
            }
            let leaf = plan.leaves.binary_search(&i).is_ok();
            match &self.before_files {
                // A line: `finish` applies the leaf files at its end, after the units step, so
                // that changing one re-runs its copy alone there too.
                _ if leaf && !joins => {}
                Some(before) if leaf => {
                    // Each on its own: leaves never overlap, and their directories exist.
                    let applied = self.apply(step, &before.clone());
                    self.leaves
                        .push((applied, location(self.sources, step.span)));
                    self.leaf_history.push((step.name.clone(), false));
                }
                _ => {
                    self.current = self.apply(step, &self.current.clone());
                    self.history.push((step.name.clone(), false));
                }
            }
        }
        if end >= plan.units_step {
            self.join_users();
        }
    }

    /// Applies a user step apart from the chain, after the user steps before it: the chain
    /// stays at the state before them (see [`Plan::users_beside_files`]).
    fn apply_beside_files(&mut self, step: &Step) {
        let root = match &self.users_beside {
            Some(side) => side.current.clone(),
            None => self.current.clone(),
        };
        let applied = self.apply(step, &root);
        let line = (step.name.clone(), false);
        match &mut self.users_beside {
            Some(side) => {
                side.current = applied;
                side.history.push(line);
            }
            None => {
                self.users_beside = Some(UsersBeside {
                    before: self.current.clone(),
                    current: applied,
                    span: step.span,
                    history: vec![line],
                });
            }
        }
    }

    /// Lays the diff of the user steps run beside the files (their changes to the state before
    /// them) on the chain, when they did: `merge(chain, diff(before the users, the users))`.
    /// Their history lines follow the chain's, as their layers do.
    fn join_users(&mut self) {
        let Some(mut side) = self.users_beside.take() else {
            return;
        };
        let line = entry_line(self.sources, side.span);
        let at = location(self.sources, side.span);
        let diff = self.graph.diff(
            &side.before,
            &side.current,
            OpOptions::named(format!(
                "[sysfile] the users, made beside the files ({line})"
            ))
            .at(Some(at.clone())),
        );
        self.current = self.graph.merge(
            &[self.current.clone(), diff],
            OpOptions::named(format!("[sysfile] the files and the users ({line})")).at(Some(at)),
        );
        self.history.append(&mut side.history);
    }

    /// Creates the parent directories of every leaf file and every file placed after the runs in
    /// the chain, in the spec's order, the way each one's own copy would (0755, its owner): the
    /// chain's directories are then those of the linear build, so a `[[run]]` may write beside
    /// such a file, and changing a leaf's content or mode does not touch the chain.
    fn early_directories(&mut self) {
        let plan = self.plan;
        let timestamp = self.timestamp();
        let mut actions = Vec::new();
        let mut first = None;
        for early in &plan.early_dirs {
            first.get_or_insert(early.span);
            push_parent_dirs(&mut actions, &early.dest, early.owner.as_ref(), timestamp);
        }
        if actions.is_empty() {
            return;
        }
        // Located at the first of those files, and named with its line like every located op.
        let mut name = "[sysfile] directories of the files copied later".to_string();
        if let Some(span) = first {
            name.push_str(&format!(" ({})", entry_line(self.sources, span)));
        }
        let options = OpOptions::named(&name)
            .at(first.map(|span| location(self.sources, span)))
            .ignore_cache(self.options.no_cache);
        self.current = self.graph.file(Some(&self.current), actions, options);
        self.history.push((name, false));
    }

    /// SOURCE_DATE_EPOCH in nanoseconds, for file ops.
    fn timestamp(&self) -> Option<i64> {
        self.options.epoch.map(|e| {
            i64::try_from(e)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000_000)
        })
    }

    /// Lowers one step on the filesystem `root`; returns the filesystem after it.
    fn apply(&mut self, step: &Step, root: &Output) -> Output {
        let op_options = OpOptions::named(step_name(step, self.sources))
            .at(Some(location(self.sources, step.span)))
            .ignore_cache(self.options.no_cache);
        match &step.kind {
            StepKind::Exec(exec) => {
                let (image, report) = lower_exec(
                    &mut self.graph,
                    exec,
                    root,
                    &self.contexts,
                    op_options,
                    self.options,
                );
                if report.is_some() {
                    self.report = report;
                    self.report_origin = Some((
                        location(self.sources, step.span),
                        entry_suffix(step, self.sources),
                    ));
                }
                image
            }
            StepKind::Files(files) => {
                let timestamp = self.timestamp();
                lower_files(
                    &mut self.graph,
                    files,
                    root,
                    &self.contexts,
                    timestamp,
                    op_options,
                    self.options,
                )
            }
        }
    }

    /// Runs `args` on the current filesystem, mounted read-only, with an empty writable
    /// directory at [`REPORT_DIR`]; the returned output is that directory, never the image.
    pub fn inspect(&mut self, name: &str, args: Vec<String>, span: Span) -> Output {
        let mut env = Vec::new();
        for entry in &self.options.base_env {
            env.push(entry.clone());
        }
        env.extend(STEP_ENV.iter().map(|(k, v)| format!("{k}={v}")));
        let exec = llb::Exec {
            args,
            env,
            cwd: "/".to_string(),
            network: Network::None,
            mounts: vec![
                Mount {
                    dest: "/".to_string(),
                    kind: llb::MountKind::Bind {
                        input: Some(self.current.clone()),
                        selector: String::new(),
                        readonly: true,
                        output: false,
                    },
                },
                Mount::tmpfs("/run"),
                Mount::tmpfs("/run/lock"),
                Mount::tmpfs("/tmp"),
                report_mount(),
            ],
            ..llb::Exec::default()
        };
        let options = OpOptions::named(name).at(Some(location(self.sources, span)));
        let outputs = self.graph.exec(exec, options);
        outputs
            .get(REPORT_DIR)
            .cloned()
            .unwrap_or_else(|| self.current.clone())
    }

    /// Both definitions of a finished build: the image, and its verification report (when
    /// the units step was lowered). They share every op, so BuildKit runs the build once.
    pub fn finish_with_report(self) -> (Lowered, Option<pb::Definition>) {
        let report = self.report.clone().map(|report| {
            let graph = self.graph.clone();
            graph.finish(&report)
        });
        (self.finish(), report)
    }

    /// Finishes the graph on the image's filesystem: the current one, joined (on daemons with
    /// merge and diff ops) with the empty diff of the verification report against itself. That
    /// changes no layer, but makes the report a dependency of the image, so a cache exported
    /// with the image carries it, and a daemon importing that cache reads the report without
    /// running the units step again.
    ///
    /// On such daemons the leaf files join the chain in the same merge: each one's diff against
    /// the state it was applied on (the filesystem before the files, with their directories),
    /// laid on the chain before the report's. Elsewhere (a linear build) the leaf files are
    /// applied at the end of the chain, after the units step.
    ///
    /// Every check runs on what the spec's own steps make, with sysfile's systemd configuration
    /// and image hygiene: the chain before the units step with the leaf files it sees on it
    /// (all of them, or those its `reads` lists) — their diffs merged on it, or, in a linear
    /// build, their copies applied again in a graph of the check's own. So a check never waits
    /// for the units step (a unit file change re-runs the checks, which see the unit files,
    /// beside the units step, not after it), and a leaf file a check does not see never
    /// re-runs it. Each check is a definition of its own ([`Lowered::checks`]) that the caller
    /// solves beside verification; on daemons with merge and diff ops it also joins the image
    /// as the empty diff of its result against itself, so it is cached and exported with the
    /// build.
    pub fn finish(mut self) -> Lowered {
        let plan = self.plan;
        let joins = self.options.joins();
        let before_units = self
            .before_units
            .clone()
            .unwrap_or_else(|| self.current.clone());
        let leaf_steps = || plan.leaves.iter().filter_map(|&i| plan.steps.get(i));
        // In a line, the graph the checks run in: the image's up to the chain, plus, per check,
        // the leaf files it sees copied on the state before the units step.
        let mut check_graph = None;
        if !joins {
            if !plan.checks.is_empty() {
                check_graph = Some(self.graph.clone());
            }
            // In a line the leaves come one after the other, so changing one re-runs the later
            // ones too: one file op for all of them costs the daemon less.
            let leaves: Vec<&Step> = leaf_steps().collect();
            if let Some(step) = crate::plan::one_file_step(&leaves) {
                self.current = self.apply(&step, &self.current.clone());
                self.history.push((step.name.clone(), false));
            }
        }
        // Every layer of the image, joined in one merge at the end: the chain, then the leaf
        // files' diffs, the report's and the checks' (one merge op costs the daemon less than
        // nested ones, and lays the same layers).
        let mut layers = vec![self.current.clone()];
        // Each leaf's diff, by its index in the plan's steps (merge and diff ops only).
        let mut leaf_diffs = BTreeMap::new();
        if let Some(before) = self.before_files.clone() {
            if !self.leaves.is_empty() {
                let leaves = std::mem::take(&mut self.leaves);
                for (&index, (leaf, at)) in plan.leaves.iter().zip(leaves) {
                    let diff = self.graph.diff(
                        &before,
                        &leaf,
                        OpOptions::named("[sysfile] a file no later step reads").at(Some(at)),
                    );
                    layers.push(diff.clone());
                    leaf_diffs.insert(index, diff);
                }
                self.history.append(&mut self.leaf_history);
            }
        }
        // What each check runs on: the state before the units step with the leaf files it
        // sees. With merge and diff ops, their diffs merged on it (the merge points at the first
        // one's entry; checks that see the same leaves share it); in a line, their copies in one
        // file op, in a graph of the check's own.
        let check_bases: Vec<(Option<Graph>, Output)> = plan
            .checks
            .iter()
            .map(|check| {
                let seen: Vec<&Step> = check
                    .leaves
                    .iter()
                    .filter_map(|&i| plan.steps.get(i))
                    .collect();
                match &check_graph {
                    None => {
                        let diffs: Vec<Output> = check
                            .leaves
                            .iter()
                            .filter_map(|i| leaf_diffs.get(i).cloned())
                            .collect();
                        if diffs.is_empty() {
                            return (None, before_units.clone());
                        }
                        let at = seen.first().map(|step| location(self.sources, step.span));
                        let root = self.graph.merge(
                            &[std::slice::from_ref(&before_units), &diffs].concat(),
                            OpOptions::named("[sysfile] the files the checks see").at(at),
                        );
                        (None, root)
                    }
                    Some(graph) => {
                        let image_graph = std::mem::replace(&mut self.graph, graph.clone());
                        let root = match crate::plan::one_file_step(&seen) {
                            Some(step) => self.apply(&step, &before_units),
                            None => before_units.clone(),
                        };
                        let graph = std::mem::replace(&mut self.graph, image_graph);
                        (Some(graph), root)
                    }
                }
            })
            .collect();
        let (at, suffix) = self.report_origin.clone().unzip();
        let suffix = suffix.unwrap_or_default();
        if let Some(report) = self.report.clone() {
            if joins {
                layers.push(
                    self.graph.diff(
                        &report,
                        &report,
                        OpOptions::named(format!(
                            "[sysfile] keep the verification report with the cache{suffix}"
                        ))
                        .at(at.clone()),
                    ),
                );
            }
        }
        let mut checks = Vec::new();
        for (check, (own_graph, root)) in plan.checks.iter().zip(check_bases) {
            let StepKind::Exec(exec) = &check.step.kind else {
                continue;
            };
            let name = step_name(&check.step, self.sources);
            let located = location(self.sources, check.step.span);
            let op_options = OpOptions::named(name.clone())
                .at(Some(located.clone()))
                .ignore_cache(self.options.no_cache);
            match own_graph {
                None => {
                    let (result, _) = lower_exec(
                        &mut self.graph,
                        exec,
                        &root,
                        &self.contexts,
                        op_options,
                        self.options,
                    );
                    layers.push(self.graph.diff(
                        &result,
                        &result,
                        OpOptions::named(format!("{name}: done")).at(Some(located)),
                    ));
                    checks.push(self.graph.clone().finish(&result));
                }
                Some(mut graph) => {
                    let (result, _) = lower_exec(
                        &mut graph,
                        exec,
                        &root,
                        &self.contexts,
                        op_options,
                        self.options,
                    );
                    checks.push(graph.finish(&result));
                }
            }
        }
        let mut image = self.current.clone();
        if layers.len() > 1 {
            image = self.graph.merge(
                &layers,
                OpOptions::named(format!("[sysfile] image{suffix}")).at(at),
            );
        }
        let unseen: Vec<(&usize, &Output)> = leaf_diffs
            .iter()
            .filter(|(index, _)| !plan.checks.iter().any(|c| c.leaves.contains(index)))
            .collect();
        let leaves = match unseen.as_slice() {
            [] => None,
            [(_, diff)] => Some(self.graph.clone().finish(diff)),
            [(first, _), ..] => {
                let mut graph = self.graph.clone();
                let at = plan
                    .steps
                    .get(**first)
                    .map(|step| location(self.sources, step.span));
                let diffs: Vec<Output> = unseen.iter().map(|(_, diff)| (*diff).clone()).collect();
                let joined = graph.merge(
                    &diffs,
                    OpOptions::named("[sysfile] the files no check sees").at(at),
                );
                Some(graph.finish(&joined))
            }
        };
        let mut lowered = self.finish_at(&image);
        lowered.checks = checks;
        lowered.leaves = leaves;
        lowered
    }

    /// Finishes the graph on `result` (for example an [`Lowering::inspect`] report).
    pub fn finish_at(self, result: &Output) -> Lowered {
        Lowered {
            definition: self.graph.finish(result),
            history: self.history,
            checks: Vec::new(),
            leaves: None,
        }
    }
}

/// The main build context's source op, restricted to `paths` (the plan's
/// [`crate::plan::context_paths`]); `None` when the build reads no context file. The image's
/// graph and the frontend's early load of the context make the same op, so the daemon loads
/// the context once.
pub fn main_context(
    graph: &mut Graph,
    paths: &[String],
    session: &str,
    context_name: &str,
) -> Option<Output> {
    if paths.is_empty() {
        return None;
    }
    let local = restricted_local(paths, session, context_name);
    let name = format!("[sysfile] load build context: {}", paths.join(" "));
    Some(graph.local(context_name, &local, OpOptions::named(name)))
}

/// A local source of the client's directory `name` that transfers only `paths` (literal
/// patterns, symlinks followed inside the context), with `name` as its shared key hint.
pub fn restricted_local(paths: &[String], session: &str, name: &str) -> LocalOptions {
    LocalOptions {
        session: session.to_string(),
        include_patterns: literal_patterns(paths),
        follow_paths: follow_patterns(paths),
        shared_key_hint: name.to_string(),
        ..LocalOptions::default()
    }
}

/// The base image source: an `oci-layout://` op when `oci` names a store, else a
/// `docker-image://` op with the resolve mode's attrs. The build and the base inspection both
/// use it, so the facts read are those of the image built on.
pub fn base_source(
    graph: &mut Graph,
    base_ref: &str,
    resolve_mode: &str,
    oci: Option<&OciStore>,
    options: OpOptions,
) -> Output {
    match oci {
        Some(oci) => graph.oci_layout(base_ref, &oci.store, &oci.session, options),
        None => graph.image(base_ref, base_image_attrs(resolve_mode), options),
    }
}

/// The attrs of the base image source for a resolve mode (`default`, `pull`, `local`).
pub fn base_image_attrs(resolve_mode: &str) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::new();
    if !resolve_mode.is_empty() && resolve_mode != "default" {
        attrs.insert("image.resolvemode".to_string(), resolve_mode.to_string());
    }
    attrs
}

/// A step's progress name: the plan's name and, for a step that comes from one spec entry, that
/// entry's `(FILE:LINE)`, so a daemon that drops source maps from errors (BuildKit v0.8, Docker
/// 20.10) still points at the spec. `FILE` is the file the entry is written in (an include
/// fragment's own name). The image history keeps the plan's name alone, so moving an entry
/// does not change the image config.
pub fn step_name(step: &Step, sources: &Sources) -> String {
    format!("{}{}", step.name, entry_suffix(step, sources))
}

/// ` (FILE:LINE)` of a step that comes from one spec entry; empty for a step sysfile adds itself.
fn entry_suffix(step: &Step, sources: &Sources) -> String {
    if step.entry {
        format!(" ({})", entry_line(sources, step.span))
    } else {
        String::new()
    }
}

/// `FILE:LINE` of the start of `span`.
pub fn entry_line(sources: &Sources, span: Span) -> String {
    let file = sources.get(span.file);
    format!("{}:{}", file.name, file.line_col(span.start).line)
}

/// A context path as a transfer pattern that matches only itself: BuildKit reads include and
/// follow paths as patterns (`*`, `?`, `[…]`, `\\` escapes, a leading `!` for an exclusion),
/// so each of those characters is escaped with `\\`.
pub fn literal_pattern(path: &str) -> String {
    escape_with_backslash(path, &['*', '?', '[', ']', '\\', '!', '{', '}'])
}

/// `text` with a `\\` before every character in `special`.
fn escape_with_backslash(text: &str, special: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// [`literal_pattern`] of each path.
fn literal_patterns(paths: &[String]) -> Vec<String> {
    paths.iter().map(|p| literal_pattern(p)).collect()
}

/// Follow paths (whose symbolic links BuildKit resolves, inside the context): only the glob
/// characters `*`, `?`, `[` and `\\` are escaped, as BuildKit reads a follow path without
/// them literally. What is sent is still bounded by the [`literal_patterns`] include patterns.
fn follow_patterns(paths: &[String]) -> Vec<String> {
    paths
        .iter()
        .map(|p| escape_with_backslash(p, &['*', '?', '[', '\\']))
        .collect()
}

/// The 1-based line/column range of a span ([`crate::diag::SourceFile::range`]), as a
/// source-map location.
pub fn location(sources: &Sources, span: Span) -> llb::Location {
    let crate::diag::LineRange { start, end } = sources.get(span.file).range(span);
    llb::Location {
        source: span.file.0 as i32,
        start_line: start.line as i32,
        start_column: start.column as i32,
        end_line: end.line as i32,
        end_column: end.column as i32,
    }
}

/// The environment every build step gets last, so that nothing overrides it, and that never
/// reaches the image config:
///
/// * `SYSTEMD_OFFLINE=1`: `systemctl` in build steps works on unit files, not on a manager;
/// * `SYSTEMD_PROC_CMDLINE=` (empty): systemd's tools read the "kernel command line" of a
///   container from its PID 1's argv, which in a build step is the step's own command; a word of
///   it such as `-s` then reads as a boot option (`Note: found "-s" on the kernel
///   commandline…`). Empty, they see no options.
pub const STEP_ENV: [(&str, &str); 2] = [("SYSTEMD_OFFLINE", "1"), ("SYSTEMD_PROC_CMDLINE", "")];

fn lower_exec(
    graph: &mut Graph,
    exec: &ExecStep,
    root: &Output,
    contexts: &Contexts,
    op_options: OpOptions,
    options: &LowerOptions,
) -> (Output, Option<Output>) {
    let mut env: Vec<String> = Vec::new();
    let mut set_env = |key: &str, value: &str| {
        env.retain(|e| e.split_once('=').is_none_or(|(k, _)| k != key));
        env.push(format!("{key}={value}"));
    };
    for entry in &options.base_env {
        if let Some((k, v)) = entry.split_once('=') {
            set_env(k, v);
        }
    }

    // Like the Dockerfile frontend: a step with an SSH agent mount finds it through SSH_AUTH_SOCK.
    if let Some(agent) = exec
        .mounts
        .iter()
        .find(|m| matches!(m.kind, MountKind::Ssh { .. }))
    {
        set_env("SSH_AUTH_SOCK", &agent.target);
    }
    for (k, v) in &exec.env {
        set_env(k, v);
    }
    // Last, so nothing overrides them.
    for (key, value) in STEP_ENV {
        set_env(key, value);
    }
    let mut mounts = vec![
        Mount::root(root.clone()),
        Mount::tmpfs("/run"),
        Mount::tmpfs("/run/lock"),
        Mount::tmpfs("/tmp"),
    ];
    if exec.needs_context {
        mounts.push(Mount {
            dest: CONTEXT_MOUNT.to_string(),
            kind: llb::MountKind::Bind {
                input: contexts.main.clone(),
                selector: String::new(),
                readonly: true,
                output: false,
            },
        });
    }
    for mount in &exec.mounts {
        // A mount of the step's own replaces ours at that path and below (its `/run` hides ours).
        mounts.retain(|m| {
            m.dest != mount.target
                && !(m.dest.starts_with(&mount.target)
                    && m.dest[mount.target.len()..].starts_with('/'))
        });
        mounts.push(lower_mount(graph, mount, contexts, options));
    }
    if exec.report {
        mounts.push(report_mount());
    }
    let network = exec.network.or_forced(options.force_network);
    let exec = llb::Exec {
        args: exec.args.clone(),
        env,
        cwd: exec.workdir.clone().unwrap_or_else(|| {
            if options.base_workdir.is_empty() {
                "/".to_string()
            } else {
                options.base_workdir.clone()
            }
        }),
        user: exec.user.clone().unwrap_or_default(),
        network,
        extra_hosts: options.extra_hosts.clone(),
        hostname: String::new(),
        remove_mount_stubs_recursive: options.has_cap("exec.meta.removemountstubs.recursive"),
        mounts,
    };
    let outputs = graph.exec(exec, op_options);
    let image = outputs.get("/").cloned().unwrap_or_else(|| root.clone());
    (image, outputs.get(REPORT_DIR).cloned())
}

/// An empty writable directory at [`REPORT_DIR`] whose contents are an output of its own.
fn report_mount() -> Mount {
    Mount {
        dest: REPORT_DIR.to_string(),
        kind: llb::MountKind::Bind {
            input: None,
            selector: String::new(),
            readonly: false,
            output: true,
        },
    }
}

fn lower_mount(
    graph: &mut Graph,
    mount: &model::RunMount,
    contexts: &Contexts,
    options: &LowerOptions,
) -> Mount {
    let kind = match &mount.kind {
        MountKind::Bind {
            source,
            from,
            readonly,
        } => {
            let (input, selector) = match from {
                BindFrom::Context => (contexts.main.clone(), format!("/{source}")),
                BindFrom::Image(name) if contexts.named.contains_key(name) => {
                    (contexts.named.get(name).cloned(), source.clone())
                }
                BindFrom::Image(reference) => {
                    let normalized = crate::reference::Reference::parse(reference)
                        .map_or_else(|_| reference.clone(), |r| r.normalized());
                    let image = graph.image(
                        &normalized,
                        BTreeMap::new(),
                        OpOptions::named(format!("[sysfile] image {reference}")),
                    );
                    (Some(image), source.clone())
                }
            };
            let selector = if selector == "/" {
                String::new()
            } else {
                selector
            };
            // A writable bind whose changes are thrown away: no output.
            llb::MountKind::Bind {
                input,
                selector,
                readonly: *readonly,
                output: false,
            }
        }
        MountKind::Cache { id, sharing } => llb::MountKind::Cache {
            id: id.clone(),
            sharing: match sharing {
                model::CacheSharing::Shared => llb::CacheSharing::Shared,
                model::CacheSharing::Private => llb::CacheSharing::Private,
                model::CacheSharing::Locked => llb::CacheSharing::Locked,
            },
        },
        MountKind::Tmpfs { size } => llb::MountKind::Tmpfs {
            size: if options.has_cap("exec.mount.tmpfs.size") {
                size.map_or(0, |s| i64::try_from(s).unwrap_or(i64::MAX))
            } else {
                0
            },
        },
        MountKind::Secret {
            id,
            required,
            mode,
            uid,
            gid,
        } => llb::MountKind::Secret {
            id: id.clone(),
            uid: *uid,
            gid: *gid,
            mode: mode.unwrap_or(0o400),
            optional: !required,
        },
        MountKind::Ssh { id } => llb::MountKind::Ssh {
            id: id.clone(),
            uid: 0,
            gid: 0,
            mode: 0o600,
            optional: false,
        },
    };
    Mount {
        dest: mount.target.clone(),
        kind,
    }
}

/// BuildKit before v0.10 (Docker 20.10) has no `file.rm.nofollowsymlink`: its file op removes
/// what a final link points to, not the link (nginx's `sites-enabled/default` would keep its link
/// and lose the site it names).
const CAP_RM_KEEPS_LINK_TARGETS: &str = "file.rm.nofollowsymlink";

/// Lowers a file step to one file op on `base`. On a daemon whose file op follows a final link
/// on removal, each run of plain removals is an exec of `rm -rf --` with the paths as its
/// arguments instead, between the file ops of the actions around it, in the step's order.
fn lower_files(
    graph: &mut Graph,
    files: &[FileStep],
    base: &Output,
    contexts: &Contexts,
    timestamp: Option<i64>,
    op_options: OpOptions,
    options: &LowerOptions,
) -> Output {
    let removes_links = options.has_cap(CAP_RM_KEEPS_LINK_TARGETS);
    let mut base = base.clone();
    let mut actions = Vec::new();
    let mut removals: Vec<String> = Vec::new();
    for file in files {
        match file {
            FileStep::Remove {
                path,
                wildcard: false,
            } if !removes_links => {
                if !actions.is_empty() {
                    base = graph.file(
                        Some(&base),
                        std::mem::take(&mut actions),
                        op_options.clone(),
                    );
                }
                removals.push(path.clone());
                continue;
            }
            _ if !removals.is_empty() => {
                base = remove_by_exec(
                    graph,
                    std::mem::take(&mut removals),
                    &base,
                    &op_options,
                    options,
                );
            }
            _ => {}
        }
        match file {
            FileStep::CopyFromContext {
                from,
                src,
                dest,
                mode,
                owner,
            } => {
                let context = match from {
                    Some(name) => contexts.named.get(name),
                    None => contexts.main.as_ref(),
                };
                if let Some(context) = context {
                    // Create the parent directories first: newer BuildKit gives the directories a
                    // copy creates the copy's `mode` (a 0644 file made its new parent 0644, so
                    // nobody could enter it), older BuildKit gives them 0755. Made here, they are
                    // 0755 on every version.
                    push_parent_dirs(&mut actions, dest, owner.as_ref(), timestamp);
                    actions.push(FileAction::Copy {
                        from: context.clone(),
                        src: format!("/{src}"),
                        dest: dest.clone(),
                        options: CopyOptions {
                            owner: owner.as_ref().map(chown),
                            mode: *mode,
                            timestamp,
                            ..CopyOptions::default()
                        },
                    });
                }
            }
            FileStep::Write {
                path,
                data,
                mode,
                owner,
            } => {
                push_parent_dirs(&mut actions, path, owner.as_ref(), timestamp);
                actions.push(FileAction::Mkfile {
                    path: path.clone(),
                    mode: *mode,
                    data: data.clone(),
                    owner: owner.as_ref().map(chown),
                    timestamp,
                });
            }
            FileStep::Remove { path, wildcard } => {
                actions.push(FileAction::Rm {
                    path: path.clone(),
                    // Also where the path is there: BuildKit v0.13 checks that it exists with a
                    // stat that follows a final link, so an absolute link (nginx's
                    // `sites-enabled/default`) would count as missing.
                    allow_not_found: true,
                    allow_wildcard: *wildcard,
                });
            }
        }
    }
    if !removals.is_empty() {
        base = remove_by_exec(graph, removals, &base, &op_options, options);
    }
    if actions.is_empty() {
        base
    } else {
        graph.file(Some(&base), actions, op_options)
    }
}

/// `/bin/rm -rf -- PATH…` on `root`, the paths as arguments (no shell reads them), with the root as
/// its only mount of ours, so a path under `/run` or `/tmp` is the image's.
fn remove_by_exec(
    graph: &mut Graph,
    paths: Vec<String>,
    root: &Output,
    op_options: &OpOptions,
    options: &LowerOptions,
) -> Output {
    // `/bin/rm`: there on every distribution sysfile builds, merged `/usr` or not.
    let mut args = vec!["/bin/rm".to_string(), "-rf".to_string(), "--".to_string()];
    args.extend(paths);
    let exec = llb::Exec {
        args,
        env: options.base_env.clone(),
        cwd: "/".to_string(),
        user: String::new(),
        network: Network::None,
        extra_hosts: Vec::new(),
        hostname: String::new(),
        remove_mount_stubs_recursive: options.has_cap("exec.meta.removemountstubs.recursive"),
        mounts: vec![Mount::root(root.clone())],
    };
    let outputs = graph.exec(exec, op_options.clone());
    outputs.get("/").cloned().unwrap_or_else(|| root.clone())
}

/// A `mkdir -p` of `path`'s parent, mode 0755. Directories it creates belong to the file's owner
/// too; existing ones keep theirs. Left out when an earlier `mkdir -p` of the same op has made
/// that directory already ([`made_earlier`]).
fn push_parent_dirs(
    actions: &mut Vec<FileAction>,
    path: &str,
    owner: Option<&model::Owner>,
    timestamp: Option<i64>,
) {
    let Some(parent) = parent_dir(path) else {
        return;
    };
    let owner = owner.map(chown);
    if made_earlier(actions, parent, owner.as_ref()) {
        return;
    }
    actions.push(FileAction::Mkdir {
        path: parent.to_string(),
        mode: 0o755,
        make_parents: true,
        owner,
        timestamp,
    });
}

/// Whether `dir` exists for certain after `actions`, so that a `mkdir -p` of it with `owner`
/// would change nothing: an earlier `mkdir -p` made it or a directory under it, with that owner
/// or no owner asked for now (an owner is looked up even when nothing is created), and since
/// then no action removed or linked anything (wherever it was) or wrote a file at it or above
/// it. BuildKit leaves an existing directory as it is (no mode, owner or time is set), and every
/// action of a file op costs the daemon a mount of the filesystem, so each one left out makes
/// the step faster.
fn made_earlier(actions: &[FileAction], dir: &str, owner: Option<&llb::Chown>) -> bool {
    let at_or_above = |path: &str| model::path_holds(path, dir);
    for action in actions.iter().rev() {
        match action {
            FileAction::Mkdir {
                path,
                make_parents: true,
                owner: made_with,
                ..
            } if model::path_holds(dir, path) => {
                return owner.is_none() || owner == made_with.as_ref();
            }
            FileAction::Mkdir { .. } => {}
            FileAction::Mkfile { path, .. } if !at_or_above(path) => {}
            FileAction::Copy { dest, .. } if !at_or_above(dest) => {}
            FileAction::Mkfile { .. }
            | FileAction::Copy { .. }
            | FileAction::Rm { .. }
            | FileAction::Symlink { .. } => return false,
        }
    }
    false
}

fn parent_dir(path: &str) -> Option<&str> {
    let parent = path.rsplit_once('/')?.0;
    (!parent.is_empty()).then_some(parent)
}

fn chown(owner: &model::Owner) -> llb::Chown {
    let user = |id: &OwnerId| match id {
        OwnerId::Name(name) => llb::UserRef::Name(name.clone()),
        OwnerId::Id(id) => llb::UserRef::Id(*id),
    };
    llb::Chown {
        user: Some(user(&owner.user)),
        group: owner.group.as_ref().map(user),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parent directory an earlier `mkdir -p` of the same op made is not made again; anything
    /// that may have removed or replaced it since, or another owner, makes it again.
    #[test]
    fn a_parent_directory_made_earlier_in_the_op_is_not_made_again() {
        let mkdirs = |actions: &[FileAction]| -> Vec<String> {
            actions
                .iter()
                .filter_map(|a| match a {
                    FileAction::Mkdir { path, .. } => Some(path.clone()),
                    _ => None,
                })
                .collect()
        };
        let file = |path: &str| FileAction::Mkfile {
            path: path.into(),
            mode: 0o644,
            data: Vec::new(),
            owner: None,
            timestamp: None,
        };
        let bob = model::Owner {
            user: OwnerId::Name("bob".into()),
            group: None,
        };
        // Two files in one directory, then one directly in a directory above it.
        let mut actions = Vec::new();
        push_parent_dirs(&mut actions, "/etc/systemd/system/a.service", None, None);
        actions.push(file("/etc/systemd/system/a.service"));
        push_parent_dirs(&mut actions, "/etc/systemd/system/b.service", None, None);
        push_parent_dirs(&mut actions, "/etc/fstab", None, None);
        assert_eq!(mkdirs(&actions), ["/etc/systemd/system"]);
        // Another directory, and the same one for an owner the first did not ask for.
        push_parent_dirs(&mut actions, "/etc/app/x", None, None);
        push_parent_dirs(&mut actions, "/etc/app/y", Some(&bob), None);
        assert_eq!(
            mkdirs(&actions),
            ["/etc/systemd/system", "/etc/app", "/etc/app"]
        );
        // A removal, a link or a write at the directory or above it comes between: made again.
        for between in [
            FileAction::Rm {
                path: "/tmp/x".into(),
                allow_not_found: true,
                allow_wildcard: false,
            },
            FileAction::Symlink {
                target: "/x".into(),
                link: "/y".into(),
                owner: None,
                timestamp: None,
            },
            file("/srv"),
        ] {
            let mut actions = Vec::new();
            push_parent_dirs(&mut actions, "/srv/www/a", None, None);
            actions.push(between);
            push_parent_dirs(&mut actions, "/srv/www/b", None, None);
            assert_eq!(mkdirs(&actions), ["/srv/www", "/srv/www"]);
        }
        // `/srv/web` is not under `/srv/www`, nor `/srv/wwwx` under `/srv/www`.
        let mut actions = Vec::new();
        push_parent_dirs(&mut actions, "/srv/www/a", None, None);
        push_parent_dirs(&mut actions, "/srv/web/a", None, None);
        push_parent_dirs(&mut actions, "/srv/wwwx/a", None, None);
        push_parent_dirs(&mut actions, "/srv/a", None, None);
        assert_eq!(mkdirs(&actions), ["/srv/www", "/srv/web", "/srv/wwwx"]);
    }

    /// A source-map location is the place `diag` gives every other consumer (errors, warnings,
    /// outline): a span ending just past a newline ends on its own line, not at the next one.
    #[test]
    fn source_map_locations_use_the_one_span_mapping() {
        let sources = Sources::new(crate::diag::SourceFile::new("Sysfile", "a = 1\nb = 2\n"));
        let loc = location(&sources, Span::new(crate::diag::FileId(0), 0..6));
        assert_eq!(
            (
                loc.start_line,
                loc.start_column,
                loc.end_line,
                loc.end_column
            ),
            (1, 1, 1, 6)
        );
    }

    #[test]
    fn context_paths_are_literal_patterns() {
        assert_eq!(literal_pattern("files/app.conf"), "files/app.conf");
        assert_eq!(literal_pattern("*"), "\\*");
        assert_eq!(literal_pattern("!secret"), "\\!secret");
        assert_eq!(literal_pattern("a[1]?\\b"), "a\\[1\\]\\?\\\\b");
        assert_eq!(
            follow_patterns(&["*".into(), "!x".into(), "a?".into()]),
            ["\\*", "!x", "a\\?"]
        );
    }

    #[test]
    fn a_build_arg_path_sends_only_that_file() {
        use crate::spec::{LoadOptions, load};
        let text = "[image]\nfrom = \"debian:bookworm\"\n[args]\nF = \"\"\n[[files]]\nsrc = \"${F}\"\ndest = \"/x\"\n";
        for (value, pattern) in [("*", "\\*"), ("!x", "\\!x")] {
            let mut options = LoadOptions::default();
            options.build_args.insert("F".into(), value.into());
            let loaded = load(crate::diag::SourceFile::new("Sysfile", text), &options);
            let spec = loaded.spec.expect("loads");
            let plan = crate::plan::plan(
                &spec,
                &crate::plan::BaseFacts::assumed(crate::distro::Family::Debian),
                crate::plan::Order::Graph,
            );
            let (lowered, _) = lower(&plan, &loaded.sources, &LowerOptions::default());
            let dump = crate::llb::dump::render(&lowered.definition).expect("dump");
            assert!(dump.contains(pattern), "{dump}");
        }
    }
}
