//! The build plan: a validated spec turned into ordered steps in sysfile's own vocabulary.
//!
//! No protobuf and no I/O here. Every step carries the span of the spec entry
//! that asked for it, and every command is an argv: user-supplied values reach
//! shells only as positional arguments or environment variables, never as
//! script text.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use crate::diag::Span;
use crate::distro::{self, Family};
use crate::model::{
    self, CacheSharing, Command, FileSource, MountKind, Network, Owner, PackageManager, Phase,
    RunMount, Spec, paths_overlap,
};
use crate::report::Inventory;

/// What the planner knows about the base image (found by the gateway, or given on the CLI).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseFacts {
    pub family: Family,
    /// systemd is installed in the base image.
    pub has_systemd: bool,
    /// `/sbin/init` exists in the base image (and is systemd when `has_systemd`).
    pub has_sbin_init: bool,
}

impl BaseFacts {
    /// Facts assumed when nothing could be read: a base that already boots systemd.
    pub fn assumed(family: Family) -> BaseFacts {
        BaseFacts {
            family,
            has_systemd: true,
            has_sbin_init: true,
        }
    }
}

/// Where build steps see the build context, read-only, when they need it.
pub const CONTEXT_MOUNT: &str = "/run/sysfile/context";

/// The drop-in that carries the manager settings (`DefaultEnvironment=`, stop timeout).
pub const SYSTEM_DROP_IN: &str = "/etc/systemd/system.conf.d/50-sysfile.conf";
/// The journald drop-in (console forwarding, no kernel log).
pub const JOURNALD_DROP_IN: &str = "/etc/systemd/journald.conf.d/50-sysfile.conf";
/// The unit that regenerates SSH host keys at first boot on Debian-family images.
pub const SSH_KEYGEN_UNIT: &str = "sysfile-ssh-host-keys.service";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub family: Family,
    pub manager: PackageManager,
    pub steps: Vec<Step>,
    /// Index of the units step: the last step, which also writes the verification report.
    pub units_step: usize,
    /// Index of the first `[[files]]` step (the state before it is where leaf files are applied).
    pub files_start: usize,
    /// Indexes of the *leaf* `[[files]]` steps, ascending (see [`place_files`]): on daemons with
    /// merge and diff ops they are applied on the state before the files and joined on top of
    /// the final filesystem, so changing one re-runs no later step.
    pub leaves: Vec<usize>,
    /// The files whose parent directories are made where the first `[[files]]` step is, as
    /// their copies would make them there: the leaves and the files placed after the runs, in
    /// the spec's order, file by file; not those directly inside an [`ALWAYS_THERE`] directory
    /// (a unit file), whose parents exist already.
    pub early_dirs: Vec<EarlyDir>,
    /// The user steps, as a range of [`Plan::steps`], when they may run beside the files (see
    /// [`users_beside_files`]): on daemons with merge and diff ops they are applied on the state
    /// before them apart from the chain, which goes on from that state, and their diff is laid
    /// on the chain just before the units step, so neither waits for the other.
    pub users_beside_files: Option<Range<usize>>,
    /// The `check = true` runs: each runs on the state before the units step (every step the
    /// spec asked for, with sysfile's systemd configuration and image hygiene) with the leaf
    /// files it may read, and its changes are discarded. Not in `steps`.
    pub checks: Vec<Check>,
    /// Context-relative paths the build reads (the include patterns of the context source).
    pub context_paths: Vec<String>,
    /// Paths read from named build contexts (or images) that `from` keys name.
    pub named_context_paths: BTreeMap<String, Vec<String>>,
    /// The entrypoint, decided here once: see [`Plan::entrypoint`].
    pub entrypoint: Entrypoint,
    pub cmd: Vec<String>,
    pub default_target: String,
    pub enabled_units: Vec<String>,
    pub disabled_units: Vec<String>,
    pub masked_units: Vec<String>,
}

/// A `check = true` run (see [`Plan::checks`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub step: Step,
    /// The leaf files it sees, as indexes of [`Plan::steps`] (a subset of [`Plan::leaves`]):
    /// all of them when it does not declare `reads`, else those whose `dest` overlaps a path
    /// it lists. A leaf it does not see is no input of it, so changing one does not re-run it.
    pub leaves: Vec<usize>,
}

/// A file whose parent directories are made early (see [`Plan::early_dirs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EarlyDir {
    pub dest: String,
    pub owner: Option<model::Owner>,
    /// The `[[files]]` entry.
    pub span: Span,
}

/// The image's PID 1: `/sbin/init` when the base has one (or the plan installs the package that
/// provides it), else systemd's own binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entrypoint {
    /// `/sbin/init` is the entrypoint, unless the built image shows it is another init system.
    pub sbin_init: bool,
    /// systemd's binary in this family (`/lib/systemd/systemd`, `/usr/lib/systemd/systemd`).
    pub systemd: String,
}

impl Plan {
    /// The units enabled in the image: as planned, but [`SSH_KEYGEN_UNIT`] only where the units
    /// step's report (`built`; `None` when there is none, as in `sysfile llb`) found an SSH
    /// server, as the units step writes and enables it only there.
    pub fn enabled_units_in(&self, built: Option<&Inventory>) -> Vec<&str> {
        self.enabled_units
            .iter()
            .map(String::as_str)
            .filter(|u| *u != SSH_KEYGEN_UNIT || built.is_none_or(|b| b.ssh_server))
            .collect()
    }

    /// The entrypoint of the image: `/sbin/init` as planned, unless the units step's report
    /// (`built`, `None` when there is none, as in `sysfile llb`) shows that `/sbin/init` exists
    /// and is another init system; then the systemd binary itself.
    pub fn entrypoint(&self, built: Option<&Inventory>) -> Vec<String> {
        let other_init = built.is_some_and(|i| !i.init.is_empty() && !i.init_is_systemd());
        if self.entrypoint.sbin_init && !other_init {
            vec!["/sbin/init".to_string()]
        } else {
            vec![self.entrypoint.systemd.clone()]
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The progress name, e.g. `[sysfile] install packages: openssh-server sudo`. Spec values
    /// appear as the spec writes them (`${NAME}`, never a build argument's value); lowering
    /// appends the entry's location (see [`Step::entry`]).
    pub name: String,
    /// The spec entry this step comes from (for a synthesised step, the section it belongs to).
    pub span: Span,
    /// The step comes from one spec entry, so its progress name carries that entry's
    /// `file:line`; `false` for steps sysfile adds on its own (systemd configuration, image
    /// hygiene, a units step with no `[services] enable`, packages only sysfile asked for).
    pub entry: bool,
    pub kind: StepKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepKind {
    Exec(ExecStep),
    Files(Vec<FileStep>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecStep {
    pub args: Vec<String>,
    /// Added to the image environment, after `SYSTEMD_OFFLINE=1`.
    pub env: Vec<(String, String)>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub network: Network,
    /// Extra mounts besides the root and the tmpfs on `/run` and `/tmp`.
    pub mounts: Vec<RunMount>,
    /// Bind the build context read-only at [`CONTEXT_MOUNT`].
    pub needs_context: bool,
    /// Mount an empty directory at [`report::REPORT_DIR`](crate::report::REPORT_DIR) whose
    /// contents are a second output of the step (the verification report), not part of the image.
    pub report: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileStep {
    /// Copy a context path (file or directory contents) to `dest`; `from` names a named build
    /// context (`None`: the main one).
    CopyFromContext {
        from: Option<String>,
        src: String,
        dest: String,
        mode: Option<u32>,
        owner: Option<Owner>,
    },
    /// Write a file, creating its parent directories.
    Write {
        path: String,
        data: Vec<u8>,
        mode: u32,
        owner: Option<Owner>,
    },
    /// Remove a path (a link itself, not what it points to); `wildcard` allows globs. Missing
    /// paths are fine.
    Remove { path: String, wildcard: bool },
}

/// Plans the build of `spec` on a base described by `facts`.
/// How the plan places the `[[files]]` entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// Leaves and files after the runs where [`place_files`] allows it.
    #[default]
    Graph,
    /// Every step where the spec declares it, no early directories: the plain line the graph
    /// must equal (the `BUILDKIT_SYSFILE_LINEAR=declared` build argument, to compare them).
    Declared,
}

/// The paths of the main build context the build reads, sorted and each once: every
/// [`Spec::context_uses`] path. The include patterns of the context source; they depend on the
/// spec alone, so the frontend loads the context while it resolves the base.
pub fn context_paths(spec: &Spec) -> Vec<String> {
    let paths: BTreeSet<&str> = spec.context_uses().iter().map(|u| u.path).collect();
    paths.into_iter().map(str::to_string).collect()
}

pub fn plan(spec: &Spec, facts: &BaseFacts, order: Order) -> Plan {
    let manager = spec
        .packages
        .manager
        .as_ref()
        .map_or(facts.family.package_manager(), |m| m.value);
    let mut steps = Vec::new();
    let mut named_paths: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let build_args: Vec<(String, String)> = spec
        .args
        .iter()
        .map(|a| (a.name.clone(), a.value.clone()))
        .collect();
    let shown = Shown::new(spec);

    for run in spec
        .runs
        .iter()
        .filter(|r| r.phase == Phase::BeforePackages && !r.check)
    {
        steps.push(run_step(run, &build_args, &shown, &mut named_paths));
    }

    let mut install: Vec<String> = spec
        .packages
        .install
        .iter()
        .map(|p| p.value.clone())
        .collect();
    if !facts.has_systemd || !facts.has_sbin_init {
        for package in facts.family.systemd_packages() {
            if !install.iter().any(|p| p == package) {
                install.push((*package).to_string());
            }
        }
    }
    let package_spans: Vec<Span> = spec
        .packages
        .install
        .iter()
        .chain(&spec.packages.remove)
        .map(|p| p.span)
        .collect();
    for chunk in package_chunks(&install) {
        let action = if spec.packages.recommends {
            PackageAction::InstallWithRecommends
        } else {
            PackageAction::Install
        };
        let mut step = package_step(manager, action, chunk, spec.packages.span);
        step.name = shown.show(&step.name, &package_spans);
        // Only the systemd packages sysfile adds: no entry asked for them.
        step.entry = !spec.packages.install.is_empty();
        steps.push(step);
    }
    let remove: Vec<String> = spec
        .packages
        .remove
        .iter()
        .map(|p| p.value.clone())
        .collect();
    for chunk in package_chunks(&remove) {
        let mut step = package_step(manager, PackageAction::Remove, chunk, spec.packages.span);
        step.name = shown.show(&step.name, &package_spans);
        steps.push(step);
    }

    let users_start = steps.len();
    for user in &spec.users {
        let mut step = user_step(user);
        step.name = shown.show(&step.name, &[user.span]);
        steps.push(step);
        if !user.authorized_keys.is_empty() {
            let mut step = authorized_keys_step(user);
            step.name = shown.show(&step.name, &[user.span]);
            steps.push(step);
        }
    }

    // sysfile's own file steps after the runs: built once, for the leaf rule and the plan.
    let finishing = [systemd_config_step(spec), hygiene_step(spec)];
    let files_start = steps.len();
    let users_beside_files = (order == Order::Graph
        && users_start < files_start
        && users_beside_files(spec, &finishing))
    .then_some(users_start..files_start);
    let places = match order {
        Order::Graph => place_files(spec, &finishing),
        Order::Declared => vec![FilePlace::Chain; spec.files.len()],
    };
    let mut leaves = Vec::new();
    // Each leaf's `dest`, beside `leaves`: what a check's `reads` is matched against.
    let mut leaf_dests = Vec::new();
    // The steps placed after the runs.
    let mut held_back = Vec::new();
    let mut early_dirs = Vec::new();
    for (file, place) in spec.files.iter().zip(places) {
        if place == FilePlace::Leaf {
            leaves.push(steps.len());
            leaf_dests.push(file.dest.as_str());
        }
        // A file directly inside a directory every image has by then needs none made.
        let parent_there = ALWAYS_THERE.contains(&ancestors(&file.dest).last().unwrap_or("/"));
        if place != FilePlace::Chain && !parent_there {
            early_dirs.push(EarlyDir {
                dest: file.dest.clone(),
                owner: file.owner.clone(),
                span: file.span,
            });
        }
        let (name, action) = match &file.source.value {
            FileSource::Context(src) => {
                if let Some(name) = &file.from {
                    named_paths
                        .entry(name.clone())
                        .or_default()
                        .insert(src.clone());
                }
                let shown = file
                    .from
                    .as_ref()
                    .map_or_else(|| src.clone(), |name| format!("{name}:{src}"));
                (
                    format!("[sysfile] copy {shown} -> {}", file.dest),
                    FileStep::CopyFromContext {
                        from: file.from.clone(),
                        src: src.clone(),
                        dest: file.dest.clone(),
                        mode: file.mode,
                        owner: file.owner.clone(),
                    },
                )
            }
            FileSource::Content(content) => (
                format!("[sysfile] write {}", file.dest),
                FileStep::Write {
                    path: file.dest.clone(),
                    data: content.as_bytes().to_vec(),
                    mode: file.mode.unwrap_or(0o644),
                    owner: file.owner.clone(),
                },
            ),
            FileSource::Remove => (
                format!("[sysfile] remove {}", file.dest),
                FileStep::Remove {
                    path: file.dest.clone(),
                    wildcard: false,
                },
            ),
        };
        let step = Step {
            name: shown.show(&name, &[file.span]),
            span: file.span,
            entry: true,
            kind: StepKind::Files(vec![action]),
        };
        if place == FilePlace::AfterRuns {
            held_back.push(step);
        } else {
            steps.push(step);
        }
    }

    for run in spec
        .runs
        .iter()
        .filter(|r| r.phase == Phase::AfterPackages && !r.check)
    {
        steps.push(run_step(run, &build_args, &shown, &mut named_paths));
    }
    // The files placed after the runs go into one step (one file op): what changes one of them
    // re-runs the units step anyway, and one op costs the daemon less than one per file.
    steps.extend(one_file_step(&held_back.iter().collect::<Vec<_>>()));

    let mut checks: Vec<Check> = spec
        .runs
        .iter()
        .filter(|r| r.check)
        .map(|run| {
            let mut step = run_step(run, &build_args, &shown, &mut named_paths);
            step.name = step
                .name
                .replacen("[sysfile] run: ", "[sysfile] check: ", 1);
            let leaves = match &run.reads {
                None => leaves.clone(),
                Some(reads) => {
                    let read = PathIndex::new(reads.iter().map(String::as_str));
                    leaves
                        .iter()
                        .zip(&leaf_dests)
                        .filter(|(_, dest)| read.overlaps(dest, 0))
                        .map(|(&i, _)| i)
                        .collect()
                }
            };
            Check { step, leaves }
        })
        .collect();

    let units = UnitPlan::new(spec, facts.family);
    // sysfile's two file steps as one op: they always re-run together. And in the same op as
    // the chain's file steps before them (see `joined_into_finishing`): what changes one of
    // those re-runs them anyway, and one op costs the daemon less than several.
    let [config, hygiene] = &finishing;
    let joined = joined_into_finishing(&steps, &leaves);
    let mut finishing_steps = Vec::with_capacity(joined.len());
    let mut chain = Vec::with_capacity(steps.len());
    for (i, step) in steps.into_iter().enumerate() {
        if joined.binary_search(&i).is_ok() {
            finishing_steps.push(step);
        } else {
            chain.push(step);
        }
    }
    steps = chain;
    let finishing_step = one_file_step(
        &finishing_steps
            .iter()
            .chain([config, hygiene])
            .collect::<Vec<_>>(),
    );
    // The leaves after a joined step moved up by one for each.
    let moved = |i: usize| i - joined.partition_point(|&j| j < i);
    for leaf in &mut leaves {
        *leaf = moved(*leaf);
    }
    for check in &mut checks {
        for leaf in &mut check.leaves {
            *leaf = moved(*leaf);
        }
    }
    steps.extend(finishing_step);
    let units_step = steps.len();
    let mut step = units.step(spec);
    let unit_spans: Vec<Span> = spec
        .services
        .enable
        .iter()
        .map(|u| u.span)
        .chain([spec.systemd.target.span])
        .collect();
    step.name = shown.show(&step.name, &unit_spans);
    steps.push(step);

    let entrypoint = Entrypoint {
        // Without systemd the install step adds the package that provides /sbin/init.
        sbin_init: facts.has_sbin_init || !facts.has_systemd,
        systemd: facts.family.systemd_binary().to_string(),
    };
    let cmd = spec
        .systemd
        .log_level
        .map(|l| vec![format!("--log-level={}", l.value.name())])
        .unwrap_or_default();

    Plan {
        family: facts.family,
        manager,
        steps,
        units_step,
        files_start,
        leaves,
        early_dirs,
        users_beside_files,
        checks,
        context_paths: context_paths(spec),
        named_context_paths: named_paths
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect(),
        entrypoint,
        cmd,
        default_target: spec.systemd.target.name.clone(),
        enabled_units: units.enable,
        disabled_units: units.disable,
        masked_units: units.mask,
    }
}

/// The chain's file steps that go into the finishing steps' op, as ascending indexes of
/// `steps`: the chain's last step when it is a file step, and the removals right before it
/// in the chain (leaves are no ops of the chain, so they do not separate them). Whatever
/// re-runs one of them re-runs the later ones and the finishing steps anyway; a removal costs
/// nothing to do again, while an earlier copy stays an op of its own, so that changing the
/// last file does not copy it again.
fn joined_into_finishing(steps: &[Step], leaves: &[usize]) -> Vec<usize> {
    let mut joined = Vec::new();
    for (i, step) in steps.iter().enumerate().rev() {
        if leaves.binary_search(&i).is_ok() {
            continue;
        }
        let StepKind::Files(files) = &step.kind else {
            break;
        };
        let removes_only = files.iter().all(|f| matches!(f, FileStep::Remove { .. }));
        if !joined.is_empty() && !removes_only {
            break;
        }
        joined.push(i);
    }
    joined.reverse();
    joined
}

/// File steps as one step (one file op, its actions in order), named after all of them and
/// located at the first; a single step unchanged; `None` for none. For files whose change
/// re-runs the same later steps whichever of them changed: one op costs the daemon less than
/// one per file.
pub fn one_file_step(steps: &[&Step]) -> Option<Step> {
    let mut step = (*steps.first()?).clone();
    if steps.len() > 1 {
        let names: Vec<&str> = steps
            .iter()
            .map(|s| s.name.strip_prefix("[sysfile] ").unwrap_or(&s.name))
            .collect();
        step.name = format!("[sysfile] {}", names.join("; "));
        step.kind = StepKind::Files(
            steps
                .iter()
                .flat_map(|s| match &s.kind {
                    StepKind::Files(files) => files.clone(),
                    StepKind::Exec(_) => Vec::new(),
                })
                .collect(),
        );
    }
    Some(step)
}

/// Paths no leaf file may overlap: what the units step reads or changes (unit files and
/// directories, SysV scripts, `/sbin/init`, SSH host keys), the identity files owners are
/// resolved from, and what the image-hygiene and systemd-configuration steps write or remove
/// (those are added by [`place_files`] from the steps themselves).
const NOT_LEAF: &[&str] = &[
    "/etc/systemd",
    "/usr/lib/systemd",
    "/lib/systemd",
    "/usr/local/lib/systemd",
    "/etc/xdg/systemd",
    "/run",
    // Symbolic links to /run on Debian-family and Fedora-family images.
    "/var/run",
    "/var/lock",
    "/etc/passwd",
    "/etc/group",
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/machine-id",
    "/var/lib/dbus/machine-id",
    "/usr/sbin/policy-rc.d",
    "/etc/fstab",
    "/sbin/init",
    "/usr/sbin/init",
    "/etc/init.d",
    "/etc/rc0.d",
    "/etc/rc1.d",
    "/etc/rc2.d",
    "/etc/rc3.d",
    "/etc/rc4.d",
    "/etc/rc5.d",
    "/etc/rc6.d",
    "/etc/rcS.d",
];

/// Whether `dest` could be or hold an SSH host key (`/etc/ssh/ssh_host_*`, which the units
/// step removes).
fn holds_ssh_host_key(dest: &str) -> bool {
    paths_overlap(dest, "/etc/ssh")
        && (dest.len() <= "/etc/ssh".len() || dest.starts_with("/etc/ssh/ssh_host_"))
}

/// The directories above `path` other than `/` (`/a/b/c` → `/a`, `/a/b`).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/')
        .skip(1)
        .map(move |(i, _)| &path[..i])
}

/// Where a `[[files]]` entry goes in the build graph (see [`place_files`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilePlace {
    /// In the chain, in the spec's order.
    Chain,
    /// In the chain, after the `[[run]]` steps that follow the packages and before sysfile's
    /// finishing steps: no such run reads or changes it, but the units step (or another
    /// finishing step) does. Changing it then re-runs no `[[run]]`.
    AfterRuns,
    /// Beside the chain, joined on top of the final filesystem (or, without merge and diff
    /// ops, at the chain's end): nothing after it reads or changes it.
    Leaf,
}

/// Where the files that may be placed after the runs are: inside the directory where `[[files]]`
/// puts unit files and drop-ins, which only the units step reads (no alias of it exists, unlike
/// `/lib` and `/usr/lib` on a merged-`/usr` image, so a textual overlap test is exact there).
const AFTER_RUNS_DIR: &str = "/etc/systemd/system/";

/// Directories every image has before its first `[[files]]` step, so no entry creates them and
/// their owner is no entry's: systemd is installed by then (the base has it, or the packages
/// step installs it), and its package ships them.
const ALWAYS_THERE: &[&str] = &["/etc", "/etc/systemd", "/etc/systemd/system"];

/// Where each `[[files]]` entry goes (one place per entry, in order).
///
/// A *leaf* is copied onto the filesystem as it is just before the first `[[files]]` entry and
/// joined on top of the final filesystem through a diff and a merge, so no later step depends
/// on it. That gives the filesystem of the linear build exactly when nothing after the entry
/// reads or changes what it writes, and when the directories it creates come out the same:
/// * its `dest` overlaps no path in [`NOT_LEAF`], nor a path the `finishing` steps (systemd
///   configuration and hygiene, which come after the runs) write or remove, nor an SSH host key;
/// * no other `[[files]]` entry's `dest` overlaps it (a later one would be overridden by the
///   merge; an earlier one could be a directory or symlink it goes through);
/// * no earlier non-leaf entry may create a parent directory it shares with a different
///   owner (in the linear build the first creator's owner wins, in the merge the leaf's;
///   [`ALWAYS_THERE`] directories exist already);
/// * with an owner, no earlier entry writes `/etc/passwd` or `/etc/group` (names resolve
///   against the state the copy is applied on);
/// * no later image-changing `[[run]]` reads it: a run without `reads` may read anything, a run
///   with `reads` reads the paths it lists. Checks change nothing.
///
/// An entry that meets every rule but the first because it is inside [`AFTER_RUNS_DIR`] (a
/// unit file, a drop-in: the units step reads it) is placed *after the runs* instead, at the
/// end of the chain, when no finishing step writes it and it does not name its owner (a name
/// resolves against the state the copy is applied on, which a run may change). Moving it past
/// runs and entries that neither read nor change it changes nothing they see; its directories
/// are made where the first file is, as for a leaf. With no run to move past it still moves,
/// into the finishing steps' file op: one op fewer per entry, and changing it re-runs no other
/// entry.
///
/// A `remove` entry stays in the chain: what it removes was made by an earlier step, so it is
/// not a layer of its own to join, and moving it would change what the steps between see. It
/// creates no directory.
pub fn place_files(spec: &Spec, finishing: &[Step]) -> Vec<FilePlace> {
    let written = paths_written(finishing);
    let blocked = PathIndex::new(NOT_LEAF.iter().copied().chain(written.iter().copied()));
    let finishing_writes = PathIndex::new(written.iter().copied());
    let later_runs: Vec<&model::RunStep> = spec
        .runs
        .iter()
        .filter(|r| r.phase == Phase::AfterPackages && !r.check)
        .collect();
    // A later run without `reads` may read anything: then every file stays in the chain.
    let reads_anything = later_runs.iter().any(|run| run.reads.is_none());
    let read = PathIndex::new(
        later_runs
            .iter()
            .filter_map(|run| run.reads.as_ref())
            .flatten()
            .map(String::as_str),
    );
    let dests = PathIndex::new(spec.files.iter().map(|f| f.dest.as_str()));
    let identity = ["/etc/passwd", "/etc/group"];
    let mut identity_written = false;
    // The owners of the earlier non-leaf entries below each directory (two distinct ones are
    // enough to tell whether one differs from a given owner).
    let mut owners_below: BTreeMap<&str, Vec<Option<&model::Owner>>> = BTreeMap::new();
    let mut places: Vec<FilePlace> = Vec::with_capacity(spec.files.len());
    for file in &spec.files {
        let dest = file.dest.as_str();
        let owner = file.owner.as_ref();
        let reserved = blocked.overlaps(dest, 0) || holds_ssh_host_key(dest);
        let overlapped = dests.overlaps(dest, 1);
        let shared_parent = ancestors(dest).any(|dir| {
            !ALWAYS_THERE.contains(&dir)
                && owners_below
                    .get(dir)
                    .is_some_and(|owners| owners.iter().any(|o| *o != owner))
        });
        let renamed = owner.is_some() && identity_written;
        let removes = !file.writes();
        let movable = !(removes
            || overlapped
            || shared_parent
            || renamed
            || reads_anything
            || read.overlaps(dest, 0));
        let place = if movable && !reserved {
            FilePlace::Leaf
        } else if movable
            && dest.starts_with(AFTER_RUNS_DIR)
            && !finishing_writes.overlaps(dest, 0)
            && !owner.is_some_and(names_owner)
        {
            FilePlace::AfterRuns
        } else {
            FilePlace::Chain
        };
        if place != FilePlace::Leaf && !removes {
            for dir in ancestors(dest) {
                let owners = owners_below.entry(dir).or_default();
                if owners.len() < 2 && !owners.contains(&owner) {
                    owners.push(owner);
                }
            }
        }
        identity_written |= identity.iter().any(|p| paths_overlap(dest, p));
        places.push(place);
    }
    places
}

/// The paths file steps write or remove (for a glob such as `/run/*`, the directory it lists).
fn paths_written(steps: &[Step]) -> Vec<&str> {
    steps
        .iter()
        .filter_map(|step| match &step.kind {
            StepKind::Files(files) => Some(files),
            StepKind::Exec(_) => None,
        })
        .flatten()
        .map(|file| match file {
            FileStep::Write { path, .. } => path.as_str(),
            FileStep::Remove {
                path,
                wildcard: true,
                ..
            } => path.rsplit_once('/').map_or(path.as_str(), |(dir, _)| dir),
            FileStep::Remove { path, .. } => path.as_str(),
            FileStep::CopyFromContext { dest, .. } => dest.as_str(),
        })
        .collect()
}

/// What the user steps write: the identity files with their backups (`/etc/passwd-`) and lock,
/// the subordinate id ranges, the login records `useradd` resets, the mail spools, and `/home`,
/// where a new user's home is made (the user step names it: `/home/NAME`, whatever the base's
/// `/etc/default/useradd` says).
const USERS_WRITE: &[&str] = &[
    "/etc/passwd",
    "/etc/passwd-",
    "/etc/group",
    "/etc/group-",
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/.pwd.lock",
    "/etc/subuid",
    "/etc/subuid-",
    "/etc/subgid",
    "/etc/subgid-",
    "/var/log/lastlog",
    "/var/log/faillog",
    "/var/log/tallylog",
    "/var/mail",
    "/var/spool/mail",
    "/home",
];

/// Whether the user steps may run beside the `[[files]]` entries and sysfile's finishing steps
/// (see [`Plan::users_beside_files`]) and the filesystem still be the line's, where the users
/// come first. The chain then runs from the state before the users, and the users' diff (their
/// changes to that same state, so exactly the line's) is laid over it before the units step.
/// That differs from the line only where the chain reads what the users write, or both write
/// one path (the users' version would win, where the line has the later file's). So:
/// * no `[[run]]` after the packages that changes the image (it may read anything, such as a
///   user; checks run on the joined state, after the users, as in the line);
/// * no `[[files]]` owner is a name (names resolve against the state the copy is applied on);
/// * no user sets `uid` (`usermod --uid` on a user the base or a package made re-owns the files
///   in its home, which may be anywhere) or `authorized_keys` (written into a home, which may
///   be anywhere for such a user);
/// * no `[[files]]` entry's `dest`, nor a path the `finishing` steps write or remove, overlaps
///   what the user steps write ([`USERS_WRITE`]). So no directory is made by both: a user
///   step makes one only under `/home` (a new user's home), which no file may touch.
pub fn users_beside_files(spec: &Spec, finishing: &[Step]) -> bool {
    let users_write = PathIndex::new(USERS_WRITE.iter().copied());
    let changing_run = spec
        .runs
        .iter()
        .any(|r| r.phase == Phase::AfterPackages && !r.check);
    let named_owner = spec
        .files
        .iter()
        .any(|f| f.owner.as_ref().is_some_and(names_owner));
    let user_elsewhere = spec
        .users
        .iter()
        .any(|u| u.uid.is_some() || !u.authorized_keys.is_empty());
    let overlaps = spec
        .files
        .iter()
        .map(|f| f.dest.as_str())
        .chain(paths_written(finishing))
        .any(|dest| users_write.overlaps(dest, 0));
    !(changing_run || named_owner || user_elsewhere || overlaps)
}

/// Whether an owner is given by a user or group name (rather than by numbers only).
fn names_owner(owner: &model::Owner) -> bool {
    matches!(owner.user, model::OwnerId::Name(_))
        || matches!(owner.group, Some(model::OwnerId::Name(_)))
}

/// Absolute, normalised paths, indexed so that "does this path overlap one of them" (equal, or
/// one holds the other at a `/` boundary, as [`model::paths_overlap`] says) costs a few
/// ordered-map lookups rather than a pass over all of them: a spec may have thousands of
/// `[[files]]`, and planning stays linear in its size.
struct PathIndex<'a> {
    count: BTreeMap<&'a str, usize>,
    total: usize,
}

impl<'a> PathIndex<'a> {
    fn new(paths: impl IntoIterator<Item = &'a str>) -> PathIndex<'a> {
        let mut count = BTreeMap::new();
        let mut total = 0;
        for path in paths {
            *count.entry(path).or_insert(0) += 1;
            total += 1;
        }
        PathIndex { count, total }
    }

    /// Whether a path of the index overlaps `path`, not counting `own` copies of `path` itself
    /// (1 when `path` is one of the indexed entries and only the others matter).
    fn overlaps(&self, path: &str, own: usize) -> bool {
        if path == "/" {
            return self.total > own;
        }
        if self.count.get(path).copied().unwrap_or(0) > own || self.count.contains_key("/") {
            return true;
        }
        if ancestors(path).any(|dir| self.count.contains_key(dir)) {
            return true;
        }
        // Entries below `path`: those between `path/` and `path0` (`0` follows `/`).
        let (below, after) = (format!("{path}/"), format!("{path}0"));
        self.count
            .range::<str, _>((
                std::ops::Bound::Included(below.as_str()),
                std::ops::Bound::Excluded(after.as_str()),
            ))
            .next()
            .is_some()
    }
}

fn run_step(
    run: &model::RunStep,
    build_args: &[(String, String)],
    shown: &Shown<'_>,
    named_paths: &mut BTreeMap<String, BTreeSet<String>>,
) -> Step {
    let args = match &run.command.value {
        Command::Shell(script) => vec!["/bin/sh".to_string(), "-c".to_string(), script.clone()],
        Command::Exec(argv) => argv.clone(),
    };
    for mount in &run.mounts {
        // `from` may name a named build context; if it turns out to be an image, this is unused.
        if let MountKind::Bind {
            source,
            from: model::BindFrom::Image(name),
            ..
        } = &mount.kind
        {
            let path = source.trim_start_matches('/');
            named_paths
                .entry(name.clone())
                .or_default()
                .insert(if path.is_empty() {
                    ".".into()
                } else {
                    path.into()
                });
        }
    }
    let label = run
        .name
        .clone()
        .unwrap_or_else(|| match &run.command.value {
            Command::Shell(script) => first_line(script),
            Command::Exec(argv) => argv.join(" "),
        });
    let mut env = build_args.to_vec();
    env.extend(
        run.env
            .iter()
            .map(|e| (e.name.value.clone(), e.value.value.clone())),
    );
    Step {
        name: shown.show(&format!("[sysfile] run: {label}"), &[run.span]),
        span: run.span,
        entry: true,
        kind: StepKind::Exec(ExecStep {
            args,
            env,
            workdir: run.workdir.as_ref().map(|w| w.value.clone()),
            user: run.user.as_ref().map(|u| u.value.clone()),
            network: run.network.value,
            mounts: run.mounts.clone(),
            needs_context: false,
            report: false,
        }),
    }
}

fn first_line(script: &str) -> String {
    let line = script
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut chars = line.chars();
    let short: String = chars.by_ref().take(60).collect();
    if chars.next().is_some() {
        format!("{short}…")
    } else {
        short
    }
}

/// Shows spec values in progress names the way the spec writes them.
///
/// A build argument's value interpolated into an entry is shown as its `${NAME}` reference
/// wherever it appears verbatim in that entry's step name, so a secret passed with
/// `--build-arg` never becomes a progress name or an image history line. Only the arguments an
/// entry references (inside the given spans) are replaced, and only non-empty values.
pub struct Shown<'a> {
    /// Sorted by file and start, so the templates inside a span are found by binary search
    /// (a spec with thousands of entries stays linear).
    templates: Vec<&'a model::Template>,
    args: &'a [model::BuildArg],
}

impl<'a> Shown<'a> {
    pub fn new(spec: &'a Spec) -> Shown<'a> {
        let mut templates: Vec<&model::Template> = spec.templates.iter().collect();
        templates.sort_by_key(|t| (t.span.file.0, t.span.start));
        Shown {
            templates,
            args: &spec.args,
        }
    }

    /// The templates that start inside `within`, in order.
    fn inside(&self, within: Span) -> impl Iterator<Item = &&'a model::Template> {
        let key = |t: &&model::Template| (t.span.file.0, t.span.start);
        let first = self
            .templates
            .partition_point(|t| key(t) < (within.file.0, within.start));
        self.templates[first..]
            .iter()
            .take_while(move |t| key(t) < (within.file.0, within.end.max(within.start) + 1))
            .filter(move |t| span_contains(within, t.span))
    }

    /// `text` with the values of the build arguments referenced inside `within` shown as `${NAME}`.
    pub fn show(&self, text: &str, within: &[Span]) -> String {
        let mut values: Vec<(&str, &str)> = Vec::new();
        for template in within.iter().flat_map(|w| self.inside(*w)) {
            for name in references(&template.text) {
                if let Some(arg) = self.args.iter().find(|a| a.name == name) {
                    if !arg.value.is_empty() {
                        values.push((arg.value.as_str(), arg.name.as_str()));
                    }
                }
            }
        }
        if values.is_empty() {
            return text.to_string();
        }
        // Longest first, so a value that contains another is shown whole.
        values.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(b.1)));
        values.dedup();
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        'scan: while !rest.is_empty() {
            for (value, name) in &values {
                if let Some(after) = rest.strip_prefix(value) {
                    out.push_str("${");
                    out.push_str(name);
                    out.push('}');
                    rest = after;
                    continue 'scan;
                }
            }
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        }
        out
    }
}

fn span_contains(outer: Span, inner: Span) -> bool {
    outer.file == inner.file && outer.start <= inner.start && inner.end <= outer.end
}

/// The build-argument names a template references (`${NAME}`; `$$` is a literal `$`).
fn references(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(close) = body.find('}') else {
                break;
            };
            names.push(&body[..close]);
            rest = &body[close + 1..];
        } else {
            rest = after;
        }
    }
    names
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PackageAction {
    /// Install without recommended (weak) dependencies, the default.
    Install,
    /// `[packages] recommends = true`.
    InstallWithRecommends,
    Remove,
}

/// apt's install script, the same text whatever `recommends` says but for its flag.
macro_rules! apt_install {
    ($recommends:literal) => {
        concat!(
            "set -eu\n",
            "export DEBIAN_FRONTEND=noninteractive\n",
            "# Official Debian/Ubuntu images delete downloaded .debs after every install; the cache\n",
            "# lives in a cache mount, never in a layer, so keep it.\n",
            "rm -f /etc/apt/apt.conf.d/docker-clean\n",
            "apt-get update -o APT::Update::Error-Mode=any\n",
            "apt-get install -y ",
            $recommends,
            " -o Binary::apt::APT::Keep-Downloaded-Packages=true -- \"$@\"\n",
        )
    };
}

/// Fixed scripts; package names arrive as `"$@"` (validated not to start with `-`).
fn package_script(manager: PackageManager, action: PackageAction) -> &'static str {
    match (manager, action) {
        (PackageManager::Apt, PackageAction::Install) => apt_install!("--no-install-recommends"),
        (PackageManager::Apt, PackageAction::InstallWithRecommends) => {
            apt_install!("--install-recommends")
        }
        (PackageManager::Apt, PackageAction::Remove) => {
            "set -eu\nexport DEBIAN_FRONTEND=noninteractive\napt-get purge -y --auto-remove -- \"$@\"\n"
        }
        (PackageManager::Dnf, PackageAction::Install) => {
            "set -eu\ndnf -y install --setopt=install_weak_deps=False --setopt=keepcache=True -- \"$@\"\n"
        }
        (PackageManager::Dnf, PackageAction::InstallWithRecommends) => {
            "set -eu\ndnf -y install --setopt=install_weak_deps=True --setopt=keepcache=True -- \"$@\"\n"
        }
        (PackageManager::Dnf, PackageAction::Remove) => "set -eu\ndnf -y remove -- \"$@\"\n",
        (PackageManager::Zypper, PackageAction::Install) => concat!(
            "set -eu\n",
            "zypper --non-interactive --gpg-auto-import-keys refresh\n",
            "zypper --non-interactive install --no-recommends -- \"$@\"\n",
        ),
        (PackageManager::Zypper, PackageAction::InstallWithRecommends) => concat!(
            "set -eu\n",
            "zypper --non-interactive --gpg-auto-import-keys refresh\n",
            "zypper --non-interactive install --recommends -- \"$@\"\n",
        ),
        (PackageManager::Zypper, PackageAction::Remove) => {
            "set -eu\nzypper --non-interactive remove -- \"$@\"\n"
        }
        // pacman never installs optional dependencies: there is nothing to recommend.
        (PackageManager::Pacman, PackageAction::Install | PackageAction::InstallWithRecommends) => {
            "set -eu\n# Arch supports no partial upgrades: sync and upgrade together.\npacman -Syu --noconfirm --needed -- \"$@\"\n"
        }
        (PackageManager::Pacman, PackageAction::Remove) => {
            "set -eu\npacman -Rns --noconfirm -- \"$@\"\n"
        }
    }
}

/// The package caches, kept in cache mounts (never in layers) and shared between builds under a lock.
fn package_caches(manager: PackageManager) -> &'static [&'static str] {
    match manager {
        PackageManager::Apt => &["/var/cache/apt", "/var/lib/apt/lists"],
        PackageManager::Dnf => &["/var/cache/dnf", "/var/cache/libdnf5"],
        PackageManager::Zypper => &["/var/cache/zypp"],
        PackageManager::Pacman => &["/var/cache/pacman/pkg"],
    }
}

/// The most argument bytes one package step passes: far below the kernel's limits (128 KiB
/// per argument, about 2 MiB for all of them with the environment).
pub const MAX_PACKAGE_ARG_BYTES: usize = 64 << 10;

/// Splits a package list into runs whose names take at most [`MAX_PACKAGE_ARG_BYTES`], so a
/// list of any length reaches the package manager (one step per run, in order).
pub fn package_chunks(packages: &[String]) -> Vec<&[String]> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, package) in packages.iter().enumerate() {
        let size = package.len() + 1;
        if i > start && bytes + size > MAX_PACKAGE_ARG_BYTES {
            chunks.push(&packages[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < packages.len() {
        chunks.push(&packages[start..]);
    }
    chunks
}

/// A package as the manager spells it: the spec's `name[:arch][=version]` (see
/// `check_package_name`) is apt's, zypper's and pacman's own syntax; dnf wants `name-version`
/// and, like zypper, `name.arch`.
pub fn package_argument(manager: PackageManager, package: &str) -> String {
    let (spec, version) = match package.split_once('=') {
        Some((spec, version)) => (spec, Some(version)),
        None => (package, None),
    };
    let (name, arch) = match spec.split_once(':') {
        Some((name, arch)) => (name, Some(arch)),
        None => (spec, None),
    };
    match (manager, arch, version) {
        (PackageManager::Dnf, _, _) => {
            let mut out = name.to_string();
            if let Some(version) = version {
                out.push('-');
                out.push_str(version);
            }
            if let Some(arch) = arch {
                out.push('.');
                out.push_str(arch);
            }
            out
        }
        (PackageManager::Zypper, Some(arch), _) => match version {
            Some(version) => format!("{name}.{arch}={version}"),
            None => format!("{name}.{arch}"),
        },
        _ => package.to_string(),
    }
}

fn package_step(
    manager: PackageManager,
    action: PackageAction,
    packages: &[String],
    span: Span,
) -> Step {
    let verb = match action {
        PackageAction::Install | PackageAction::InstallWithRecommends => "install",
        PackageAction::Remove => "remove",
    };
    let args = script_argv(
        package_script(manager, action),
        &format!("sysfile-{verb}"),
        packages.iter().map(|p| package_argument(manager, p)),
    );
    let mounts = package_caches(manager)
        .iter()
        .map(|target| RunMount {
            target: (*target).to_string(),
            kind: MountKind::Cache {
                id: format!("sysfile:{}:{target}", manager.name()),
                sharing: CacheSharing::Locked,
            },
            span,
        })
        .collect();
    Step {
        name: format!("[sysfile] {verb} packages: {}", packages.join(" ")),
        span,
        entry: true,
        // Package downloads need the builder's network (which `force-network-mode` may set).
        kind: StepKind::Exec(ExecStep {
            network: Network::Default,
            mounts,
            ..ExecStep::offline(args, false)
        }),
    }
}

/// Creates the user, or updates it when it exists (so `root` can be given keys).
const USER_SCRIPT: &str = r#"set -eu
name=$1 uid=$2 groups=$3 shell=$4
if getent passwd "$name" >/dev/null; then
  set --
  if [ -n "$uid" ]; then set -- "$@" --uid "$uid"; fi
  if [ -n "$groups" ]; then set -- "$@" --append --groups "$groups"; fi
  if [ -n "$shell" ]; then set -- "$@" --shell "$shell"; fi
  if [ "$#" -gt 0 ]; then usermod "$@" "$name"; fi
else
  set -- --create-home --home-dir "/home/$name"
  if [ -n "$uid" ]; then set -- "$@" --uid "$uid"; fi
  if [ -n "$groups" ]; then set -- "$@" --groups "$groups"; fi
  if [ -n "$shell" ]; then set -- "$@" --shell "$shell"; fi
  useradd "$@" "$name"
fi
"#;

/// Installs `~/.ssh/authorized_keys` (0600, in a 0700 directory) owned by the user.
const AUTHORIZED_KEYS_SCRIPT: &str = r#"set -eu
name=$1; shift
home=$(getent passwd "$name" | cut -d: -f6)
group=$(id -gn "$name")
install -d -m 0700 -o "$name" -g "$group" "$home/.ssh"
cat -- "$@" > "$home/.ssh/authorized_keys"
chown "$name:$group" "$home/.ssh/authorized_keys"
chmod 0600 "$home/.ssh/authorized_keys"
"#;

fn user_step(user: &model::User) -> Step {
    let args = script_argv(
        USER_SCRIPT,
        "sysfile-user",
        [
            user.name.clone(),
            user.uid
                .as_ref()
                .map(|u| u.value.to_string())
                .unwrap_or_default(),
            user.groups
                .iter()
                .map(|g| g.value.as_str())
                .collect::<Vec<_>>()
                .join(","),
            user.shell
                .as_ref()
                .map(|s| s.value.clone())
                .unwrap_or_default(),
        ],
    );
    Step {
        name: format!("[sysfile] user {}", user.name),
        span: user.span,
        entry: true,
        kind: StepKind::Exec(ExecStep::offline(args, false)),
    }
}

fn authorized_keys_step(user: &model::User) -> Step {
    let keys = user
        .authorized_keys
        .iter()
        .map(|k| format!("{CONTEXT_MOUNT}/{k}"));
    let args = script_argv(
        AUTHORIZED_KEYS_SCRIPT,
        "sysfile-authorized-keys",
        std::iter::once(user.name.clone()).chain(keys),
    );
    Step {
        name: format!("[sysfile] authorized keys for {}", user.name),
        span: user.span,
        entry: true,
        kind: StepKind::Exec(ExecStep::offline(args, true)),
    }
}

/// `/bin/sh -c SCRIPT NAME ARGS…`: a fixed script that receives user values only as arguments.
pub fn script_argv(
    script: &str,
    name: &str,
    arguments: impl IntoIterator<Item = String>,
) -> Vec<String> {
    let mut argv = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        script.to_string(),
        name.to_string(),
    ];
    argv.extend(arguments);
    argv
}

impl ExecStep {
    /// A step of sysfile's own that needs no network, as root in `/`.
    fn offline(args: Vec<String>, needs_context: bool) -> ExecStep {
        ExecStep {
            args,
            env: vec![],
            workdir: None,
            user: None,
            network: Network::None,
            mounts: vec![],
            needs_context,
            report: false,
        }
    }
}

/// Where the finalisation steps point: `[systemd] target` when written, else the `[image]` table.
pub fn finalize_span(spec: &Spec) -> Span {
    let target = spec.systemd.target.span;
    if target.start == target.end {
        spec.image.span
    } else {
        target
    }
}

/// Quotes one `KEY=value` assignment for systemd's `DefaultEnvironment=`.
pub fn systemd_quote(assignment: &str) -> String {
    let mut out = String::with_capacity(assignment.len() + 2);
    out.push('"');
    for c in assignment.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // The loader rejects other control characters; escape them anyway, never raw.
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c) & 0xff)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn systemd_config_step(spec: &Spec) -> Step {
    let mut manager = String::from(
        "# Written by sysfile: the system manager's settings for this image.\n[Manager]\n",
    );
    manager.push_str(&format!(
        "DefaultTimeoutStopSec={}\n",
        duration_for_systemd(spec.systemd.stop_timeout.value)
    ));
    // With console_logs the journal reaches the console: systemd's own status lines would say
    // each thing a second time, and colour codes end up in `docker logs` (docs/boot-log.md).
    let mut assignments: Vec<String> = Vec::new();
    if spec.systemd.console_logs.value {
        manager.push_str("ShowStatus=no\nLogColor=no\n");
        assignments.push(systemd_quote("SYSTEMD_COLORS=0"));
    }
    assignments.extend(
        spec.config
            .env
            .iter()
            .map(|e| systemd_quote(&format!("{}={}", e.name.value, e.value.value))),
    );
    if !assignments.is_empty() {
        manager.push_str(&format!("DefaultEnvironment={}\n", assignments.join(" ")));
    }
    let mut journald = String::from(
        "# Written by sysfile: journald settings for a container.\n[Journal]\nReadKMsg=no\n",
    );
    if spec.systemd.console_logs.value {
        journald.push_str("ForwardToConsole=yes\nTTYPath=/dev/console\nMaxLevelConsole=info\n");
    }
    let files = vec![
        FileStep::Write {
            path: SYSTEM_DROP_IN.to_string(),
            data: manager.into_bytes(),
            mode: 0o644,
            owner: None,
        },
        FileStep::Write {
            path: JOURNALD_DROP_IN.to_string(),
            data: journald.into_bytes(),
            mode: 0o644,
            owner: None,
        },
        FileStep::Write {
            path: "/etc/fstab".to_string(),
            data: b"# Emptied by sysfile: mounts come from the container engine.\n".to_vec(),
            mode: 0o644,
            owner: None,
        },
    ];
    Step {
        name: "[sysfile] systemd configuration".to_string(),
        span: finalize_span(spec),
        entry: false,
        kind: StepKind::Files(files),
    }
}

/// The text of [`SSH_KEYGEN_UNIT`], which the units step writes and enables only where an SSH
/// server is installed.
pub const SSH_KEYGEN_UNIT_TEXT: &str =
    "# Written by sysfile: every container gets its own SSH host keys.
[Unit]
Description=Generate SSH host keys
ConditionPathExists=/usr/bin/ssh-keygen
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key
Before=ssh.service sshd.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
";

/// Formats a duration the way systemd parses it (`20s`, `1500ms`).
pub fn duration_for_systemd(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Which units end up enabled, disabled and masked.
struct UnitPlan {
    enable: Vec<String>,
    disable: Vec<String>,
    mask: Vec<String>,
}

impl UnitPlan {
    fn new(spec: &Spec, family: Family) -> UnitPlan {
        let names = |units: &[model::Unit]| -> Vec<String> {
            units.iter().map(|u| u.name.clone()).collect()
        };
        let mut enable = names(&spec.services.enable);
        if !family.has_ssh_keygen_unit() {
            enable.push(SSH_KEYGEN_UNIT.to_string());
        }
        let disable = names(&spec.services.disable);
        let keep: BTreeSet<String> = spec.systemd.keep.iter().map(|u| u.name.clone()).collect();
        let mut mask: Vec<String> = Vec::new();
        for unit in family
            .core_masks()
            .into_iter()
            .chain(family.vm_migration_masks())
        {
            let wanted = keep.contains(unit)
                || enable.iter().any(|e| e == unit)
                || disable.iter().any(|d| d == unit);
            if !wanted && !distro::never_mask(unit) {
                mask.push(unit.to_string());
            }
        }
        for unit in &spec.services.mask {
            if !mask.contains(&unit.name) {
                mask.push(unit.name.clone());
            }
        }
        UnitPlan {
            enable,
            disable,
            mask,
        }
    }

    fn step(&self, spec: &Spec) -> Step {
        let mut args = script_argv(
            &crate::report::units_script(),
            "sysfile-units",
            ["--default".to_string(), spec.systemd.target.name.clone()],
        );
        let enable: Vec<String> = self
            .enable
            .iter()
            .filter(|u| *u != SSH_KEYGEN_UNIT)
            .cloned()
            .collect();
        let host_keys = self.enable.iter().any(|u| u == SSH_KEYGEN_UNIT);
        for (flag, units) in [("--enable", &enable), ("--disable", &self.disable)] {
            if !units.is_empty() {
                args.push(flag.to_string());
                args.extend(units.iter().cloned());
            }
        }
        if host_keys {
            args.extend(
                ["--ssh-host-keys", SSH_KEYGEN_UNIT, SSH_KEYGEN_UNIT_TEXT].map(str::to_string),
            );
        }
        if !self.mask.is_empty() {
            args.push("--mask".to_string());
            args.extend(self.mask.iter().cloned());
        }
        let mut summary = vec![format!("default {}", spec.systemd.target.name)];
        if !self.enable.is_empty() {
            let shown: Vec<&str> = spec
                .services
                .enable
                .iter()
                .map(|u| short_unit(&u.name))
                .collect();
            if !shown.is_empty() {
                summary.insert(0, format!("enable units: {}", shown.join(" ")));
            }
        }
        if !self.disable.is_empty() {
            summary.push(format!("disable {}", self.disable.len()));
        }
        summary.push(format!("mask {}", self.mask.len()));
        let span = spec
            .services
            .enable
            .first()
            .map_or(finalize_span(spec), |u| u.span);
        Step {
            name: format!("[sysfile] {}", summary.join(", ")),
            span,
            // The units step is `[services] enable`'s when there is one; else sysfile's own.
            entry: !spec.services.enable.is_empty(),
            kind: StepKind::Exec(ExecStep {
                report: true,
                ..ExecStep::offline(args, false)
            }),
        }
    }
}

fn short_unit(name: &str) -> &str {
    name.strip_suffix(".service").unwrap_or(name)
}

fn hygiene_step(spec: &Spec) -> Step {
    let remove = |path: &str, wildcard: bool| FileStep::Remove {
        path: path.to_string(),
        wildcard,
    };
    let files = vec![
        FileStep::Write {
            path: "/etc/machine-id".to_string(),
            data: vec![],
            mode: 0o444,
            owner: None,
        },
        remove("/var/lib/systemd/random-seed", false),
        remove("/var/lib/systemd/credential.secret", false),
        remove("/var/lib/dbus/machine-id", false),
        remove("/usr/sbin/policy-rc.d", false),
        remove("/run/*", true),
    ];
    Step {
        name: "[sysfile] image hygiene".to_string(),
        span: finalize_span(spec),
        entry: false,
        kind: StepKind::Files(files),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_quoting_escapes_quotes_backslashes_and_newlines() {
        assert_eq!(systemd_quote("A=b c"), "\"A=b c\"");
        assert_eq!(systemd_quote("A=\"x\"\\\n"), "\"A=\\\"x\\\"\\\\\\n\"");
        assert_eq!(
            systemd_quote("V=v\rLogLevel=debug"),
            "\"V=v\\rLogLevel=debug\""
        );
        assert_eq!(systemd_quote("V=\0\u{1b}"), "\"V=\\x00\\x1b\"");
    }

    #[test]
    fn package_pins_are_spelled_for_each_manager() {
        let arg = package_argument;
        assert_eq!(arg(PackageManager::Apt, "curl=7.88-1"), "curl=7.88-1");
        assert_eq!(arg(PackageManager::Apt, "libc6:i386"), "libc6:i386");
        assert_eq!(arg(PackageManager::Dnf, "curl=8.2.1"), "curl-8.2.1");
        assert_eq!(
            arg(PackageManager::Dnf, "glibc:i686=2.38"),
            "glibc-2.38.i686"
        );
        assert_eq!(arg(PackageManager::Zypper, "curl=8.2"), "curl=8.2");
        assert_eq!(arg(PackageManager::Zypper, "glibc:i586"), "glibc.i586");
        assert_eq!(arg(PackageManager::Pacman, "curl=8.2-1"), "curl=8.2-1");
    }

    #[test]
    fn long_package_lists_are_split_below_the_argument_limit() {
        let packages: Vec<String> = (0..200_000).map(|i| format!("package-{i}")).collect();
        let chunks = package_chunks(&packages);
        assert!(chunks.len() > 1);
        assert_eq!(
            chunks.iter().map(|c| c.len()).sum::<usize>(),
            packages.len()
        );
        assert_eq!(chunks.concat(), packages);
        for chunk in &chunks {
            let bytes: usize = chunk.iter().map(|p| p.len() + 1).sum();
            assert!(bytes <= MAX_PACKAGE_ARG_BYTES, "{bytes}");
        }
        assert_eq!(package_chunks(&packages[..3]).len(), 1);
        assert!(package_chunks(&[]).is_empty());
    }

    #[test]
    fn durations_format_for_systemd() {
        assert_eq!(
            duration_for_systemd(std::time::Duration::from_secs(20)),
            "20s"
        );
        assert_eq!(
            duration_for_systemd(std::time::Duration::from_millis(1500)),
            "1500ms"
        );
    }

    #[test]
    fn template_references_skip_literal_dollars() {
        assert_eq!(references("a${X}b${Y_2}"), ["X", "Y_2"]);
        assert_eq!(references("$${X} $$ $HOME ${Z}"), ["Z"]);
        assert!(references("${unterminated").is_empty());
    }

    #[test]
    fn names_show_the_reference_not_the_value() {
        let plan = plan_of(
            "[image]\nfrom = \"debian\"\n[args]\nA = \"x\"\nAB = \"secret\"\nE = \"\"\n[[run]]\nargv = [\"/bin/echo\", \"${AB}${A}${E}\", \"$${A}\"]\n[[run]]\nargv = [\"/bin/x\"]\n",
            Family::Debian,
        );
        let names: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
        // The longer value is shown whole; the empty one cannot be told apart and is left.
        assert!(
            names.contains(&"[sysfile] run: /bin/echo ${AB}${A} ${A}"),
            "{names:?}"
        );
        // `x` is referenced only by the first entry: the second keeps its literal `x`.
        assert!(names.contains(&"[sysfile] run: /bin/x"), "{names:?}");
        assert!(
            plan.steps.iter().any(
                |s| matches!(&s.kind, StepKind::Exec(e) if e.args.contains(&"secretx".to_string()))
            ),
            "the step itself runs with the value"
        );
    }

    /// The spec `text` loads to; panics with the diagnostics when it does not load.
    fn spec_of(text: &str) -> Spec {
        let loaded = crate::spec::load(
            crate::diag::SourceFile::new("Sysfile", text),
            &crate::spec::LoadOptions::default(),
        );
        loaded
            .spec
            .unwrap_or_else(|| panic!("not a valid spec: {:?}", loaded.diagnostics))
    }

    fn plan_of(text: &str, family: Family) -> Plan {
        plan(&spec_of(text), &BaseFacts::assumed(family), Order::Graph)
    }

    /// The script of the first package install step.
    fn install_script(plan: &Plan) -> String {
        plan.steps
            .iter()
            .find(|s| s.name.starts_with("[sysfile] install packages"))
            .and_then(|s| match &s.kind {
                StepKind::Exec(e) => Some(e.args.join(" ")),
                StepKind::Files(_) => None,
            })
            .expect("an install step")
    }

    #[test]
    fn recommends_switches_weak_dependencies_on_for_each_family() {
        let spec = |recommends: &str| {
            format!("[image]\nfrom = \"x\"\n[packages]\ninstall = [\"curl\"]\n{recommends}")
        };
        for (family, off, on) in [
            (
                Family::Debian,
                "--no-install-recommends",
                "--install-recommends",
            ),
            (
                Family::Fedora,
                "install_weak_deps=False",
                "install_weak_deps=True",
            ),
            (Family::Suse, "--no-recommends", " --recommends"),
        ] {
            let default = install_script(&plan_of(&spec(""), family));
            let unset = install_script(&plan_of(&spec("recommends = false\n"), family));
            let set = install_script(&plan_of(&spec("recommends = true\n"), family));
            assert!(default.contains(off) && !default.contains(on), "{default}");
            assert_eq!(default, unset);
            assert!(set.contains(on) && !set.contains(off), "{set}");
        }
    }

    /// docs/spec.md's `phase` row states the order of the steps; the plan must keep it.
    #[test]
    fn the_documented_step_order_is_the_plans() {
        let docs = include_str!("../docs/spec.md");
        let row = docs
            .lines()
            .find(|l| l.starts_with("| `phase` |"))
            .expect("the phase row");
        let order = row
            .split("(the order of the steps: ")
            .nth(1)
            .and_then(|r| r.split(", each kind in declaration order").next())
            .expect("the phase row states the order");
        let documented: Vec<&str> = order
            .split(", ")
            .map(|kind| match kind {
                "`before-packages` runs" => "before",
                "package installs and removals" => "packages",
                "users with their `authorized_keys`" => "users",
                "files" => "files",
                "`after-packages` runs" => "after",
                other => panic!("an unknown kind of step in the docs: {other}"),
            })
            .collect();
        // Entries declared in the opposite order of the documented one.
        let text = "[image]\nfrom = \"x\"\n\
            [[run]]\nsh = \"after\"\n\
            [[files]]\ncontent = \"x\"\ndest = \"/etc/x\"\nowner = \"app\"\n\
            [[users]]\nname = \"app\"\nauthorized_keys = [\"k.pub\"]\n\
            [packages]\ninstall = [\"curl\"]\nremove = [\"nano\"]\n\
            [[run]]\nsh = \"before\"\nphase = \"before-packages\"\n";
        let plan = plan_of(text, Family::Debian);
        let mut kinds: Vec<&str> = Vec::new();
        for step in &plan.steps {
            let kind = match &step.name {
                n if n.contains("run: before") => "before",
                n if n.contains("packages:") => "packages",
                n if n.starts_with("[sysfile] user ")
                    || n.starts_with("[sysfile] authorized keys") =>
                {
                    "users"
                }
                n if n.contains("write /etc/x") => "files",
                n if n.contains("run: after") => "after",
                _ => continue,
            };
            if kinds.last() != Some(&kind) {
                kinds.push(kind);
            }
        }
        assert_eq!(
            kinds,
            documented,
            "{:?}",
            plan.steps.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
    }

    #[test]
    fn steps_sysfile_adds_on_its_own_are_not_entries() {
        let spec = spec_of("[image]\nfrom = \"debian\"\n");
        let bare = BaseFacts {
            family: Family::Debian,
            has_systemd: false,
            has_sbin_init: false,
        };
        let plan = plan(&spec, &bare, Order::Graph);
        let entries: Vec<(&str, bool)> = plan
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.entry))
            .collect();
        assert!(
            entries.iter().all(|(_, entry)| !entry),
            "systemd packages, configuration, hygiene and a units step without `enable` come from no entry: {entries:?}"
        );
        assert!(
            entries[0]
                .0
                .starts_with("[sysfile] install packages: systemd")
        );
    }

    fn places_of(body: &str) -> Vec<FilePlace> {
        let spec = spec_of(&format!("[image]\nfrom = \"debian\"\n{body}"));
        place_files(&spec, &[systemd_config_step(&spec), hygiene_step(&spec)])
    }

    fn leaves_of(body: &str) -> Vec<bool> {
        places_of(body)
            .into_iter()
            .map(|place| place == FilePlace::Leaf)
            .collect()
    }

    fn file(dest: &str) -> String {
        format!("[[files]]\ndest = \"{dest}\"\ncontent = \"x\"\n")
    }

    #[test]
    fn the_path_index_answers_as_paths_overlap_does() {
        let paths = [
            "/",
            "/etc",
            "/etc/nginx",
            "/etc/nginx/conf.d/a.conf",
            "/etc/nginx2",
            "/srv/x",
            "/srv/x/y",
            "/srv/xy",
            "/var/lib/app",
        ];
        for set in [&paths[..], &paths[1..], &paths[3..], &[][..]] {
            let index = PathIndex::new(set.iter().copied());
            for probe in paths.iter().chain(&["/etc/nginx/conf.d", "/srv", "/opt/z"]) {
                let own = usize::from(set.contains(probe));
                let expected = set
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| !(own == 1 && *p == probe))
                    .any(|(_, p)| paths_overlap(probe, p));
                assert_eq!(index.overlaps(probe, own), expected, "{probe} in {set:?}");
            }
        }
    }

    #[test]
    fn paths_overlap_at_slash_boundaries_only() {
        assert!(paths_overlap("/etc/nginx", "/etc/nginx"));
        assert!(paths_overlap("/etc/nginx", "/etc/nginx/nginx.conf"));
        assert!(paths_overlap("/etc/nginx/nginx.conf", "/etc/nginx"));
        assert!(paths_overlap("/", "/etc"));
        assert!(!paths_overlap("/etc/nginx", "/etc/nginx2"));
        assert!(!paths_overlap("/etc/a/b", "/etc/a/c"));
        // One way round only: a directory holds itself and what is inside it.
        assert!(crate::model::path_holds("/etc", "/etc/nginx"));
        assert!(crate::model::path_holds("/etc", "/etc"));
        assert!(crate::model::path_holds("/", "/etc"));
        assert!(!crate::model::path_holds("/etc/nginx", "/etc"));
        assert!(!crate::model::path_holds("/etc/nginx", "/etc/nginx2"));
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), ["/a", "/a/b"]);
        assert!(holds_ssh_host_key("/etc/ssh/ssh_host_rsa_key"));
        assert!(holds_ssh_host_key("/etc"));
        assert!(!holds_ssh_host_key("/etc/ssh/sshd_config"));
    }

    #[test]
    fn unit_identity_and_sysfile_paths_are_never_leaves() {
        for dest in [
            "/etc/systemd/system/app.service",
            "/usr/lib/systemd/system/app.service",
            "/usr/local/lib/systemd/system/app.service",
            "/etc/passwd",
            "/etc/fstab",
            "/etc/machine-id",
            "/var/lib/systemd/random-seed",
            "/run/app.conf",
            "/var/run/app.pid",
            "/etc/ssh/ssh_host_ed25519_key",
            "/etc/init.d/app",
            "/sbin/init",
            "/etc",
        ] {
            assert_eq!(leaves_of(&file(dest)), [false], "{dest}");
        }
        assert_eq!(leaves_of(&file("/etc/ssh/sshd_config")), [true]);
        assert_eq!(leaves_of(&file("/etc/nginx/conf.d/app.conf")), [true]);
    }

    #[test]
    fn overlapping_dests_are_not_leaves_either_way_round() {
        let body = [file("/etc/app"), file("/etc/app/x.conf"), file("/srv/y")].concat();
        assert_eq!(leaves_of(&body), [false, false, true]);
        let body = [file("/etc/app/x.conf"), file("/etc/app/x.conf")].concat();
        assert_eq!(leaves_of(&body), [false, false]);
    }

    #[test]
    fn a_later_run_blocks_what_it_may_read() {
        let run = "[[run]]\nsh = \"true\"\n";
        let body = [file("/etc/a.conf"), run.to_string()].concat();
        assert_eq!(
            leaves_of(&body),
            [false],
            "an undeclared run may read anything"
        );
        let run = "[[run]]\nsh = \"true\"\nreads = [\"/etc/app/\"]\n";
        let body = [
            file("/etc/app/x.conf"),
            file("/etc/b.conf"),
            run.to_string(),
        ]
        .concat();
        assert_eq!(leaves_of(&body), [false, true]);
        // A check changes nothing; a run before the packages comes before every file.
        for run in [
            "[[run]]\nsh = \"true\"\ncheck = true\n",
            "[[run]]\nsh = \"true\"\nphase = \"before-packages\"\n",
        ] {
            assert_eq!(
                leaves_of(&[file("/etc/a.conf"), run.to_string()].concat()),
                [true]
            );
        }
    }

    #[test]
    fn owners_keep_the_linear_build_s_directories_and_names() {
        let owned = |dest: &str, owner: &str| {
            format!("[[files]]\ndest = \"{dest}\"\ncontent = \"x\"\nowner = \"{owner}\"\n")
        };
        let first = owned("/opt/app/first", "www-data");
        for (second, read, leaves) in [
            // The first creator of /opt/app is not a leaf and has another owner: the second is
            // not a leaf either (the merge would give /opt/app the second one's owner).
            (file("/opt/app/second"), "/opt/app/first", [false, false]),
            // The same owner creates the same directory.
            (
                owned("/opt/app/second", "www-data"),
                "/opt/app/first",
                [false, true],
            ),
            // A leaf first: in both shapes it creates the directory.
            (file("/opt/app/second"), "/opt/app/second", [true, false]),
        ] {
            let read = format!("[[run]]\nsh = \"true\"\nreads = [\"{read}\"]\n");
            let body = [first.clone(), second, read].concat();
            assert_eq!(leaves_of(&body), leaves, "{body}");
        }
        // An owner by name after a file that rewrites /etc/group resolves differently.
        let body = [file("/etc/group"), owned("/srv/x", "app")].concat();
        assert_eq!(leaves_of(&body), [false, false]);
    }

    #[test]
    fn a_remove_entry_stays_in_the_chain_and_keeps_the_entries_it_overlaps_there() {
        use FilePlace::{Chain, Leaf};
        let remove = |dest: &str| format!("[[files]]\ndest = \"{dest}\"\nremove = true\n");
        let owned = |dest: &str| {
            format!("[[files]]\ndest = \"{dest}\"\ncontent = \"x\"\nowner = \"7:7\"\n")
        };
        for (body, places) in [
            (
                [
                    remove("/etc/nginx/sites-enabled/default"),
                    file("/srv/page"),
                ]
                .concat(),
                vec![Chain, Leaf],
            ),
            // A copy into what an entry removes, or a removal of what an entry copied: both
            // keep their order in the chain.
            (
                [remove("/etc/app"), file("/etc/app/app.conf")].concat(),
                vec![Chain, Chain],
            ),
            (
                [file("/etc/app/app.conf"), remove("/etc/app")].concat(),
                vec![Chain, Chain],
            ),
            // It creates no directory, so an entry with another owner beside it stays a leaf
            // (a copy in the chain there would make `/srv/a` root's).
            (
                [remove("/srv/a/old"), owned("/srv/a/new")].concat(),
                vec![Chain, Leaf],
            ),
            // (Two copies of one path are in the chain, the first creating /srv/a.)
            (
                [file("/srv/a/old"), file("/srv/a/old"), owned("/srv/a/new")].concat(),
                vec![Chain, Chain, Chain],
            ),
        ] {
            assert_eq!(places_of(&body), places, "{body}");
        }
        let plan = plan_of(
            &format!(
                "[image]\nfrom = \"debian\"\n{}",
                remove("/etc/nginx/sites-enabled/")
            ),
            Family::Debian,
        );
        // Its file op (here the finishing steps' too: it ends the chain) removes the directory,
        // after the packages and users, before sysfile's own files.
        let StepKind::Files(actions) = &plan.steps[plan.units_step - 1].kind else {
            panic!("{:?}", plan.steps[plan.units_step - 1]);
        };
        assert_eq!(
            actions.first(),
            Some(&FileStep::Remove {
                path: "/etc/nginx/sites-enabled".to_string(),
                wildcard: false,
            })
        );
    }

    #[test]
    fn files_only_the_units_step_reads_go_after_the_runs_that_do_not_read_them() {
        use FilePlace::{AfterRuns, Chain, Leaf};
        let unit = file("/etc/systemd/system/app.service");
        let run = |reads: &str| format!("[[run]]\nsh = \"true\"\n{reads}\n");
        let declared = run("reads = [\"/etc/nginx\"]");
        for (body, places) in [
            (
                [unit.clone(), file("/srv/page"), declared.clone()].concat(),
                vec![AfterRuns, Leaf],
            ),
            // A run that may read anything, or reads the unit, keeps it in place.
            ([unit.clone(), run("")].concat(), vec![Chain]),
            (
                [unit.clone(), run("reads = [\"/etc/systemd\"]")].concat(),
                vec![Chain],
            ),
            // With no run after the files it still moves to the end of the chain, past the
            // entries after it: into the finishing steps' file op.
            (unit.clone(), vec![AfterRuns]),
            (
                [
                    unit.clone(),
                    "[[files]]\ndest = \"/etc/nginx/sites-enabled/default\"\nremove = true\n".to_string(),
                    file("/etc/passwd"),
                ]
                .concat(),
                vec![AfterRuns, Chain, Chain],
            ),
            // Only what is inside /etc/systemd/system moves: not the identity files, /run,
            // other systemd paths (a merged /usr makes /lib and /usr/lib one), nor a directory
            // holding the units, nor what a package's scripts read (policy-rc.d).
            (
                [
                    file("/etc/passwd"),
                    file("/run/x"),
                    file("/lib/systemd/system/b.service"),
                    file("/usr/lib/systemd/system/c.service"),
                    file("/etc/systemd/system"),
                    file("/usr/sbin/policy-rc.d"),
                    declared.clone(),
                ]
                .concat(),
                vec![Chain; 6],
            ),
            // An owner name resolves against the state the copy is applied on; numbers do not.
            (
                [
                    "[[files]]\ndest = \"/etc/systemd/system/a.service\"\ncontent = \"x\"\nowner = \"app\"\n",
                    "[[files]]\ndest = \"/etc/systemd/system/b.service\"\ncontent = \"x\"\nowner = \"0:0\"\n",
                    &declared,
                ]
                .concat(),
                vec![Chain, AfterRuns],
            ),
        ] {
            assert_eq!(places_of(&body), places, "{body}");
        }
        let plan = plan_of(
            &format!(
                "[image]\nfrom = \"debian\"\n{}",
                [
                    unit,
                    file("/srv/page"),
                    file("/etc/systemd/system/app.service.d/x.conf"),
                    declared
                ]
                .concat()
            ),
            Family::Debian,
        );
        let position = |name: &str| {
            plan.steps
                .iter()
                .position(|s| s.name.starts_with(name))
                .expect(name)
        };
        let (unit_step, run_step) = (
            position("[sysfile] write /etc/systemd/system/app.service"),
            position("[sysfile] run: true"),
        );
        // Both files after the runs are one step, one file op, with sysfile's systemd
        // configuration and hygiene after them: the step just before the units step.
        assert!(run_step < unit_step && unit_step + 1 == plan.units_step);
        let StepKind::Files(actions) = &plan.steps[unit_step].kind else {
            panic!("{:?}", plan.steps[unit_step]);
        };
        let written: Vec<&str> = actions
            .iter()
            .take(2)
            .filter_map(|action| match action {
                FileStep::Write { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(
            written,
            [
                "/etc/systemd/system/app.service",
                "/etc/systemd/system/app.service.d/x.conf"
            ]
        );
        assert!(
            plan.steps[unit_step].name.ends_with(
                "; write /etc/systemd/system/app.service.d/x.conf; systemd configuration; image hygiene"
            ),
            "{}",
            plan.steps[unit_step].name
        );
        assert_eq!(plan.leaves, [position("[sysfile] write /srv/page")]);
        // They get their directories where the first file is, in the spec's order, but for the
        // unit file: its directory is there already.
        let early: Vec<&str> = plan.early_dirs.iter().map(|d| d.dest.as_str()).collect();
        assert_eq!(
            early,
            ["/srv/page", "/etc/systemd/system/app.service.d/x.conf"]
        );
    }

    #[test]
    fn the_declared_order_moves_no_file() {
        let text = format!(
            "[image]\nfrom = \"debian\"\n{}",
            [
                file("/etc/systemd/system/app.service"),
                file("/srv/page"),
                "[[run]]\nsh = \"true\"\nreads = [\"/etc/nginx\"]\n".to_string(),
            ]
            .concat()
        );
        let spec = spec_of(&text);
        let graph = plan(&spec, &BaseFacts::assumed(Family::Debian), Order::Graph);
        assert!(!graph.early_dirs.is_empty() && !graph.leaves.is_empty());
        let declared = plan(&spec, &BaseFacts::assumed(Family::Debian), Order::Declared);
        assert!(declared.leaves.is_empty());
        assert!(declared.early_dirs.is_empty());
        let names: Vec<&str> = declared.steps[declared.files_start..declared.units_step]
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "[sysfile] write /etc/systemd/system/app.service",
                "[sysfile] write /srv/page",
                "[sysfile] run: true",
                "[sysfile] systemd configuration; image hygiene"
            ]
        );
    }

    #[test]
    fn leaves_and_checks_are_planned_apart() {
        let body = [
            file("/etc/a.conf"),
            "[[run]]\nargv = [\"nginx\", \"-t\"]\ncheck = true\nphase = \"before-packages\"\n"
                .to_string(),
        ]
        .concat();
        let plan = plan_of(
            &format!("[image]\nfrom = \"debian\"\n{body}"),
            Family::Debian,
        );
        assert_eq!(plan.leaves, [plan.files_start]);
        assert_eq!(
            plan.steps[plan.files_start].name,
            "[sysfile] write /etc/a.conf"
        );
        assert_eq!(plan.checks.len(), 1);
        assert!(
            plan.checks[0]
                .step
                .name
                .starts_with("[sysfile] check: nginx -t")
        );
        assert_eq!(plan.checks[0].leaves, plan.leaves, "no `reads`: every leaf");
        assert!(
            plan.steps.iter().all(|s| !s.name.contains("nginx -t")),
            "a check is not a step of the chain"
        );
    }

    #[test]
    fn a_check_with_reads_sees_only_the_leaf_files_it_lists() {
        let check = |reads: &str| {
            let body = [
                file("/etc/nginx/conf.d/site.conf"),
                file("/srv/page/index.html"),
                file("/etc/app/app.env"),
                format!("[[run]]\nsh = \"nginx -t\"\ncheck = true\n{reads}\n"),
            ]
            .concat();
            let plan = plan_of(
                &format!("[image]\nfrom = \"debian\"\n{body}"),
                Family::Debian,
            );
            let start = plan.files_start;
            assert_eq!(plan.leaves, [start, start + 1, start + 2]);
            plan.checks[0].leaves.clone()
        };
        let plan_start = plan_of("[image]\nfrom = \"debian\"\n", Family::Debian).files_start;
        let at =
            |offsets: &[usize]| -> Vec<usize> { offsets.iter().map(|o| plan_start + o).collect() };
        assert_eq!(check(""), at(&[0, 1, 2]), "no `reads`: every leaf");
        assert_eq!(check("reads = [\"/etc/nginx\"]"), at(&[0]));
        // A listed path inside a leaf's directory, or one holding several leaves.
        assert_eq!(check("reads = [\"/srv/page/index.html\"]"), at(&[1]));
        assert_eq!(check("reads = [\"/etc\"]"), at(&[0, 2]));
        assert_eq!(check("reads = [\"/\"]"), at(&[0, 1, 2]));
        assert_eq!(check("reads = []"), at(&[]), "it reads none of the files");
        assert_eq!(
            check("reads = [\"/etc/nginx/conf.d/site.conf.bak\"]"),
            at(&[])
        );
    }

    #[test]
    fn users_run_beside_the_files_only_when_nothing_there_reads_or_writes_what_they_write() {
        let beside = |body: &str| {
            let text = format!("[image]\nfrom = \"debian\"\n{body}");
            let graph = plan_of(&text, Family::Debian);
            let declared = plan(
                &spec_of(&text),
                &BaseFacts::assumed(Family::Debian),
                Order::Declared,
            );
            assert_eq!(
                declared.users_beside_files, None,
                "the declared line moves nothing"
            );
            graph.users_beside_files.map(|users| {
                assert!(
                    graph.steps[users.clone()]
                        .iter()
                        .all(|s| s.name.starts_with("[sysfile] user "))
                );
                assert_eq!(users.end, graph.files_start);
                users.len()
            })
        };
        let user = |extra: &str| format!("[[users]]\nname = \"app\"\n{extra}\n");
        let files = [
            file("/etc/nginx/conf.d/site.conf"),
            file("/srv/page/index.html"),
        ]
        .concat();
        assert_eq!(beside(&files), None, "no user");
        assert_eq!(
            beside(&user("")),
            Some(1),
            "no file: beside the finishing steps"
        );
        assert_eq!(
            beside(
                &[
                    user(""),
                    "[[users]]\nname = \"web\"\n".into(),
                    files.clone()
                ]
                .concat()
            ),
            Some(2)
        );
        let owned = "[[files]]\ndest = \"/srv/a\"\ncontent = \"x\"\nowner = ";
        assert_eq!(
            beside(&[user(""), format!("{owned}\"1500:1500\"\n")].concat()),
            Some(1)
        );
        for blocked in [
            format!("{owned}\"app\"\n"),
            format!("{owned}\"0:app\"\n"),
            file("/etc/passwd"),
            file("/etc/group-"),
            file("/etc/subuid"),
            file("/home/app/.profile"),
            file("/home"),
            file("/var/log/lastlog"),
            file("/var/mail/app"),
            file("/var"),
            "[[files]]\ndest = \"/home/app/.bashrc\"\nremove = true\n".into(),
            "[[run]]\nsh = \"true\"\nreads = [\"/srv\"]\n".into(),
        ] {
            assert_eq!(
                beside(&[user(""), files.clone(), blocked.clone()].concat()),
                None,
                "{blocked}"
            );
        }
        assert_eq!(
            beside(&[user("uid = 1500"), files.clone()].concat()),
            None,
            "uid"
        );
        assert_eq!(
            beside(&[user("authorized_keys = [\"k.pub\"]"), files.clone()].concat()),
            None,
            "keys"
        );
        // A check changes nothing and runs after the users; a run before the packages is before
        // them in both shapes.
        let check = "[[run]]\nsh = \"true\"\ncheck = true\n";
        let before = "[[run]]\nsh = \"true\"\nphase = \"before-packages\"\n";
        assert_eq!(
            beside(&[user(""), files.clone(), check.into()].concat()),
            Some(1)
        );
        assert_eq!(beside(&[user(""), files, before.into()].concat()), Some(1));
    }

    #[test]
    fn removals_before_the_chain_s_last_file_step_join_the_finishing_op_across_leaves() {
        let removal = |dest: &str| format!("[[files]]\ndest = \"{dest}\"\nremove = true\n");
        let unit = file("/etc/systemd/system/app.service");
        // The finishing op's steps, by their names, and the leaves', by their indexes.
        let layout = |body: &str| {
            let plan = plan_of(
                &format!("[image]\nfrom = \"debian\"\n{body}"),
                Family::Debian,
            );
            let last = &plan.steps[plan.units_step - 1];
            let leaves: Vec<&str> = plan
                .leaves
                .iter()
                .map(|&i| plan.steps[i].name.as_str())
                .collect();
            let checks: Vec<Vec<String>> = plan
                .checks
                .iter()
                .map(|c| {
                    c.leaves
                        .iter()
                        .map(|&i| plan.steps[i].name.clone())
                        .collect()
                })
                .collect();
            (last.name.clone(), leaves.join(" | "), checks)
        };
        let check = "[[run]]\nsh = \"true\"\ncheck = true\n";
        let (last, leaves, checks) = layout(
            &[
                removal("/etc/nginx/sites-enabled/default"),
                file("/srv/a"),
                removal("/etc/motd"),
                file("/srv/b"),
                unit.clone(),
                check.into(),
            ]
            .concat(),
        );
        assert_eq!(
            last,
            "[sysfile] remove /etc/nginx/sites-enabled/default; remove /etc/motd; write /etc/systemd/system/app.service; systemd configuration; image hygiene"
        );
        assert_eq!(leaves, "[sysfile] write /srv/a | [sysfile] write /srv/b");
        assert_eq!(
            checks,
            [["[sysfile] write /srv/a", "[sysfile] write /srv/b"]]
        );
        // A copy before the removals stays an op of its own, and so does what is before it.
        let (last, _, _) = layout(
            &[
                removal("/etc/motd"),
                file("/etc/init.d/x"),
                removal("/etc/issue"),
                removal("/etc/issue.net"),
            ]
            .concat(),
        );
        assert_eq!(
            last,
            "[sysfile] remove /etc/issue; remove /etc/issue.net; systemd configuration; image hygiene"
        );
        // A run ends the chain's file steps.
        let run = "[[run]]\nsh = \"true\"\n";
        let (last, _, _) = layout(&[removal("/etc/motd"), run.into()].concat());
        assert_eq!(last, "[sysfile] systemd configuration; image hygiene");
    }

    /// The manager drop-in of a spec, as the systemd configuration step writes it.
    fn manager_drop_in(text: &str) -> String {
        plan_of(text, Family::Debian)
            .steps
            .iter()
            .find_map(|s| match &s.kind {
                StepKind::Files(files) => files.iter().find_map(|f| match f {
                    FileStep::Write { path, data, .. } if path == SYSTEM_DROP_IN => {
                        Some(String::from_utf8_lossy(data).into_owned())
                    }
                    _ => None,
                }),
                _ => None,
            })
            .expect("the manager drop-in")
    }

    #[test]
    fn console_logs_quiet_the_boot_log() {
        let quiet = manager_drop_in(
            "[image]\nfrom = \"debian\"\n[systemd]\nconsole_logs = true\n[config]\nenv = { SYSTEMD_COLORS = \"1\" }\n",
        );
        assert!(quiet.contains("\nShowStatus=no\nLogColor=no\n"), "{quiet}");
        // sysfile's value first, so the spec's own wins.
        assert!(
            quiet.contains("DefaultEnvironment=\"SYSTEMD_COLORS=0\" \"SYSTEMD_COLORS=1\"\n"),
            "{quiet}"
        );
        let plain = manager_drop_in("[image]\nfrom = \"debian\"\n");
        assert!(
            !plain.contains("ShowStatus") && !plain.contains("DefaultEnvironment"),
            "{plain}"
        );
    }

    #[test]
    fn the_ssh_host_key_unit_goes_to_the_units_step_apart() {
        let spec = spec_of("[image]\nfrom = \"debian\"\n");
        let args = |family| {
            let plan = plan(&spec, &BaseFacts::assumed(family), Order::Graph);
            match &plan.steps[plan.units_step].kind {
                StepKind::Exec(exec) => exec.args.clone(),
                StepKind::Files(_) => panic!("the units step runs a script"),
            }
        };
        let debian = args(Family::Debian);
        let at = debian
            .iter()
            .position(|a| a == "--ssh-host-keys")
            .expect("--ssh-host-keys");
        assert_eq!(debian[at + 1], SSH_KEYGEN_UNIT);
        assert_eq!(debian[at + 2], SSH_KEYGEN_UNIT_TEXT);
        assert_eq!(debian.iter().filter(|a| *a == SSH_KEYGEN_UNIT).count(), 1);
        // Fedora's openssh ships its own key units.
        assert!(!args(Family::Fedora).iter().any(|a| a == "--ssh-host-keys"));
    }

    #[test]
    fn first_line_is_shortened() {
        assert_eq!(first_line("\n  echo hi\nmore"), "echo hi");
        assert_eq!(first_line(&"x".repeat(70)).chars().count(), 61);
    }
}
