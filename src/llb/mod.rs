//! LLB: a typed builder for BuildKit ops, canonical encoding, digests and source maps.
//!
//! The only module (with `gateway`) that knows protobuf. [`Graph`] collects
//! ops, de-duplicates them by digest, records progress names (`llb.customname`)
//! and source locations, and [`Graph::finish`] returns a `pb::Definition` whose
//! last op is the terminal op. Op bytes come from [`encode::op_bytes`], which
//! matches BuildKit's Go client byte for byte.

pub mod dump;
pub mod encode;

use std::collections::{BTreeMap, BTreeSet};

pub use crate::network::Network;
use crate::pb::llb as pb;
pub use crate::platform::Platform;

pub use encode::{digest, op_bytes};

/// One output of an op: what another op uses as an input.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Output {
    pub digest: String,
    pub index: i64,
}

/// Where in a spec file an op comes from (1-based lines and columns).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// Index returned by [`Graph::add_source_file`].
    pub source: i32,
    pub start_line: i32,
    pub start_column: i32,
    pub end_line: i32,
    pub end_column: i32,
}

/// Metadata of one op: its progress name, cache policy and spec location.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpOptions {
    /// Shown in progress output (`llb.customname`).
    pub name: String,
    pub ignore_cache: bool,
    pub location: Option<Location>,
    /// Extra `OpMetadata.description` entries.
    pub description: BTreeMap<String, String>,
}

impl OpOptions {
    pub fn named(name: impl Into<String>) -> OpOptions {
        OpOptions {
            name: name.into(),
            ..OpOptions::default()
        }
    }

    pub fn at(mut self, location: Option<Location>) -> OpOptions {
        self.location = location;
        self
    }

    pub fn ignore_cache(mut self, ignore: bool) -> OpOptions {
        self.ignore_cache = ignore;
        self
    }
}

/// Attributes of a `local://` source.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalOptions {
    pub session: String,
    pub include_patterns: Vec<String>,
    pub exclude_patterns: Vec<String>,
    pub follow_paths: Vec<String>,
    pub shared_key_hint: String,
    /// `local.differ`, e.g. `none` (needs cap `source.local.differ`).
    pub differ: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CacheSharing {
    #[default]
    Shared,
    Private,
    Locked,
}

/// What is mounted at a path in an exec op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// A bind of an op output (or scratch when `input` is `None`).
    Bind {
        input: Option<Output>,
        selector: String,
        readonly: bool,
        output: bool,
    },
    Cache {
        id: String,
        sharing: CacheSharing,
    },
    Tmpfs {
        size: i64,
    },
    Secret {
        id: String,
        uid: u32,
        gid: u32,
        mode: u32,
        optional: bool,
    },
    Ssh {
        id: String,
        uid: u32,
        gid: u32,
        mode: u32,
        optional: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub dest: String,
    pub kind: MountKind,
}

impl Mount {
    /// The root filesystem of an exec: a writable bind with an output.
    pub fn root(input: Output) -> Mount {
        Mount {
            dest: "/".into(),
            kind: MountKind::Bind {
                input: Some(input),
                selector: String::new(),
                readonly: false,
                output: true,
            },
        }
    }

    pub fn tmpfs(dest: impl Into<String>) -> Mount {
        Mount {
            dest: dest.into(),
            kind: MountKind::Tmpfs { size: 0 },
        }
    }
}

/// An exec op: a process run on a root filesystem with mounts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: String,
    pub network: Network,
    pub extra_hosts: Vec<(String, String)>,
    pub hostname: String,
    /// `Meta.removeMountStubsRecursive` (cap `exec.meta.removemountstubs.recursive`, v0.11).
    pub remove_mount_stubs_recursive: bool,
    pub mounts: Vec<Mount>,
}

/// The owner of a file-op result: by name (looked up in the input's `/etc/passwd`) or by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserRef {
    Name(String),
    Id(u32),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chown {
    pub user: Option<UserRef>,
    pub group: Option<UserRef>,
}

/// Options of a copy action; the defaults match a plain `COPY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyOptions {
    pub owner: Option<Chown>,
    /// Permission bits; `None` keeps the source mode.
    pub mode: Option<u32>,
    pub follow_symlink: bool,
    pub dir_copy_contents: bool,
    pub create_dest_path: bool,
    pub allow_wildcard: bool,
    pub allow_empty_wildcard: bool,
    pub timestamp: Option<i64>,
}

impl Default for CopyOptions {
    fn default() -> CopyOptions {
        CopyOptions {
            owner: None,
            mode: None,
            follow_symlink: true,
            dir_copy_contents: true,
            create_dest_path: true,
            allow_wildcard: false,
            allow_empty_wildcard: false,
            timestamp: None,
        }
    }
}

/// One action of a file op; actions apply in order, each on the previous result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileAction {
    Mkdir {
        path: String,
        mode: u32,
        make_parents: bool,
        owner: Option<Chown>,
        timestamp: Option<i64>,
    },
    Mkfile {
        path: String,
        mode: u32,
        data: Vec<u8>,
        owner: Option<Chown>,
        timestamp: Option<i64>,
    },
    Copy {
        from: Output,
        src: String,
        dest: String,
        options: CopyOptions,
    },
    Rm {
        path: String,
        allow_not_found: bool,
        allow_wildcard: bool,
    },
    Symlink {
        target: String,
        link: String,
        owner: Option<Chown>,
        timestamp: Option<i64>,
    },
}

/// A graph of ops under construction.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    platform: Option<pb::Platform>,
    ops: Vec<Vec<u8>>,
    seen: BTreeSet<String>,
    metadata: BTreeMap<String, pb::OpMetadata>,
    locations: BTreeMap<String, pb::Locations>,
    infos: Vec<pb::SourceInfo>,
}

impl Graph {
    /// A graph whose exec and image ops run on `platform` (worker default when `None`).
    pub fn new(platform: Option<pb::Platform>) -> Graph {
        Graph {
            platform,
            ..Graph::default()
        }
    }

    /// Registers a spec file for source maps; returns its index for [`Location::source`].
    pub fn add_source_file(&mut self, filename: &str, data: &[u8], language: &str) -> i32 {
        if let Some(i) = self.infos.iter().position(|info| info.filename == filename) {
            return i as i32;
        }
        self.infos.push(pb::SourceInfo {
            filename: filename.to_string(),
            data: data.to_vec(),
            definition: None,
            language: language.to_string(),
        });
        (self.infos.len() - 1) as i32
    }

    /// A `docker-image://` source (the reference should be normalised and pinned).
    pub fn image(
        &mut self,
        reference: &str,
        attrs: BTreeMap<String, String>,
        options: OpOptions,
    ) -> Output {
        let mut caps = vec!["source.image"];
        if attrs.get("image.resolvemode").is_some_and(|m| m == "pull") {
            caps.push("source.image.resolvemode");
        }
        let op = pb::Op {
            inputs: vec![],
            platform: self.platform.clone(),
            constraints: Some(pb::WorkerConstraints::default()),
            op: Some(pb::op::Op::Source(pb::SourceOp {
                identifier: format!("docker-image://{reference}"),
                attrs,
            })),
        };
        self.push(op, &caps, options)
    }

    /// An `oci-layout://` source: an image in an OCI layout the client shares in its session
    /// (`buildctl --oci-layout STORE=DIR`). `reference` is `name@sha256:…` (the name only labels
    /// it; the digest selects it), `store` the store ID, `session` the session that holds it.
    pub fn oci_layout(
        &mut self,
        reference: &str,
        store: &str,
        session: &str,
        options: OpOptions,
    ) -> Output {
        let mut attrs = BTreeMap::from([("oci.store".to_string(), store.to_string())]);
        if !session.is_empty() {
            attrs.insert("oci.session".to_string(), session.to_string());
        }
        let op = pb::Op {
            inputs: vec![],
            platform: self.platform.clone(),
            constraints: Some(pb::WorkerConstraints::default()),
            op: Some(pb::op::Op::Source(pb::SourceOp {
                identifier: format!("oci-layout://{reference}"),
                attrs,
            })),
        };
        self.push(op, &["source.ocilayout"], options)
    }

    /// A `local://` source from the client session.
    pub fn local(&mut self, name: &str, local: &LocalOptions, options: OpOptions) -> Output {
        let mut attrs = BTreeMap::new();
        let mut caps = vec!["source.local"];
        if local.session.is_empty() {
            attrs.insert("local.unique".to_string(), name.to_string());
            caps.push("source.local.unique");
        } else {
            attrs.insert("local.session".to_string(), local.session.clone());
            caps.push("source.local.sessionid");
        }
        let mut json_list = |key: &str, cap: &'static str, items: &[String]| {
            if !items.is_empty() {
                attrs.insert(
                    key.to_string(),
                    serde_json::to_string(items).unwrap_or_default(),
                );
                caps.push(cap);
            }
        };
        json_list(
            "local.includepattern",
            "source.local.includepatterns",
            &local.include_patterns,
        );
        json_list(
            "local.excludepatterns",
            "source.local.excludepatterns",
            &local.exclude_patterns,
        );
        json_list(
            "local.followpaths",
            "source.local.followpaths",
            &local.follow_paths,
        );
        if !local.shared_key_hint.is_empty() {
            attrs.insert(
                "local.sharedkeyhint".to_string(),
                local.shared_key_hint.clone(),
            );
            caps.push("source.local.sharedkeyhint");
        }
        if let Some(differ) = &local.differ {
            attrs.insert("local.differ".to_string(), differ.clone());
            caps.push("source.local.differ");
        }
        self.push(
            unplatformed_source(format!("local://{name}"), attrs),
            &caps,
            options,
        )
    }

    /// A `git://` source; `url` is `host/path[#ref[:subdir]]`, `full_url` the URL as given.
    pub fn git(
        &mut self,
        url: &str,
        full_url: &str,
        keep_git_dir: bool,
        options: OpOptions,
    ) -> Output {
        let mut attrs = BTreeMap::from([("git.fullurl".to_string(), full_url.to_string())]);
        let mut caps = vec!["source.git", "source.git.fullurl"];
        if keep_git_dir {
            attrs.insert("git.keepgitdir".to_string(), "true".to_string());
            caps.push("source.git.keepgitdir");
        }
        self.push(
            unplatformed_source(format!("git://{url}"), attrs),
            &caps,
            options,
        )
    }

    /// An `http(s)://` source: one file, optionally checked against a digest.
    pub fn http(
        &mut self,
        url: &str,
        checksum: Option<&str>,
        filename: Option<&str>,
        mode: Option<u32>,
        options: OpOptions,
    ) -> Output {
        let mut attrs = BTreeMap::new();
        let mut caps = vec!["source.http"];
        if let Some(checksum) = checksum {
            attrs.insert("http.checksum".to_string(), checksum.to_string());
            caps.push("source.http.checksum");
        }
        if let Some(filename) = filename {
            attrs.insert("http.filename".to_string(), filename.to_string());
        }
        if let Some(mode) = mode {
            attrs.insert("http.perm".to_string(), format!("0{mode:o}"));
            caps.push("source.http.perm");
        }
        self.push(unplatformed_source(url.to_string(), attrs), &caps, options)
    }

    /// An exec op. Returns the outputs of its writable bind mounts, keyed by mount path.
    pub fn exec(&mut self, exec: Exec, options: OpOptions) -> BTreeMap<String, Output> {
        let mut mounts = exec.mounts;
        mounts.sort_by(|a, b| a.dest.cmp(&b.dest));
        let mut inputs: Vec<pb::Input> = Vec::new();
        let mut caps = vec!["exec.meta.base", "exec.mount.bind"];
        let mut pb_mounts = Vec::with_capacity(mounts.len());
        let mut output_dests = Vec::new();
        for mount in &mounts {
            let mut m = pb::Mount {
                input: -1,
                output: -1,
                dest: mount.dest.clone(),
                ..Default::default()
            };
            match &mount.kind {
                MountKind::Bind {
                    input,
                    selector,
                    readonly,
                    output,
                } => {
                    m.input = input.as_ref().map_or(-1, |o| input_index(&mut inputs, o));
                    m.selector = selector.clone();
                    m.readonly = *readonly;
                    if !selector.is_empty() {
                        caps.push("exec.mount.selector");
                    }
                    if *output && !*readonly {
                        m.output = output_dests.len() as i64;
                        output_dests.push(mount.dest.clone());
                    }
                }
                MountKind::Cache { id, sharing } => {
                    m.mount_type = pb::MountType::Cache as i32;
                    m.cache_opt = Some(pb::CacheOpt {
                        id: id.clone(),
                        sharing: match sharing {
                            CacheSharing::Shared => pb::CacheSharingOpt::Shared,
                            CacheSharing::Private => pb::CacheSharingOpt::Private,
                            CacheSharing::Locked => pb::CacheSharingOpt::Locked,
                        } as i32,
                    });
                    caps.extend(["exec.mount.cache", "exec.mount.cache.sharing"]);
                }
                MountKind::Tmpfs { size } => {
                    m.mount_type = pb::MountType::Tmpfs as i32;
                    if *size > 0 {
                        m.tmpfs_opt = Some(pb::TmpfsOpt { size: *size });
                        caps.push("exec.mount.tmpfs.size");
                    }
                    caps.push("exec.mount.tmpfs");
                }
                MountKind::Secret {
                    id,
                    uid,
                    gid,
                    mode,
                    optional,
                } => {
                    m.mount_type = pb::MountType::Secret as i32;
                    m.secret_opt = Some(pb::SecretOpt {
                        id: id.clone(),
                        uid: *uid,
                        gid: *gid,
                        mode: *mode,
                        optional: *optional,
                    });
                    caps.push("exec.mount.secret");
                }
                MountKind::Ssh {
                    id,
                    uid,
                    gid,
                    mode,
                    optional,
                } => {
                    m.mount_type = pb::MountType::Ssh as i32;
                    m.ssh_opt = Some(pb::SshOpt {
                        id: id.clone(),
                        uid: *uid,
                        gid: *gid,
                        mode: *mode,
                        optional: *optional,
                    });
                    caps.push("exec.mount.ssh");
                }
            }
            pb_mounts.push(m);
        }
        let network = match exec.network {
            Network::Default => pb::NetMode::Unset,
            Network::Host => pb::NetMode::Host,
            Network::None => pb::NetMode::None,
        };
        if network != pb::NetMode::Unset {
            caps.push("exec.meta.network");
        }
        if exec.remove_mount_stubs_recursive {
            caps.push("exec.meta.removemountstubs.recursive");
        }
        let meta = pb::Meta {
            args: exec.args,
            env: exec.env,
            cwd: if exec.cwd.is_empty() {
                "/".to_string()
            } else {
                exec.cwd
            },
            user: exec.user,
            extra_hosts: exec
                .extra_hosts
                .into_iter()
                .map(|(host, ip)| pb::HostIp { host, ip })
                .collect(),
            hostname: exec.hostname,
            remove_mount_stubs_recursive: exec.remove_mount_stubs_recursive,
            ..Default::default()
        };
        let op = pb::Op {
            inputs,
            platform: self.platform.clone(),
            constraints: Some(pb::WorkerConstraints::default()),
            op: Some(pb::op::Op::Exec(pb::ExecOp {
                meta: Some(meta),
                mounts: pb_mounts,
                network: network as i32,
                security: pb::SecurityMode::Sandbox as i32,
                secretenv: vec![],
            })),
        };
        let root = self.push(op, &caps, options);
        output_dests
            .into_iter()
            .enumerate()
            .map(|(i, dest)| {
                (
                    dest,
                    Output {
                        digest: root.digest.clone(),
                        index: i as i64,
                    },
                )
            })
            .collect()
    }

    /// A file op applying `actions` in order on `base` (scratch when `None`).
    pub fn file(
        &mut self,
        base: Option<&Output>,
        actions: Vec<FileAction>,
        options: OpOptions,
    ) -> Output {
        let mut inputs: Vec<pb::Input> = Vec::new();
        let base_index = base.map_or(-1, |o| input_index(&mut inputs, o));
        // Register copy sources first so that action indices (len(inputs) + k) are known.
        let secondary: Vec<i64> = actions
            .iter()
            .map(|action| match action {
                FileAction::Copy { from, .. } => input_index(&mut inputs, from),
                _ => -1,
            })
            .collect();
        let input_count = inputs.len() as i64;
        // A user or group name is looked up in the base input, never in a previous action's
        // output (current BuildKit refuses that: "invalid input index"); the actions here never
        // change /etc/passwd or /etc/group, so both give the same answer.
        let owner_input = |input: i64| if base_index >= 0 { base_index } else { input };
        let mut caps = vec!["file.base"];
        let last = actions.len().saturating_sub(1);
        let pb_actions = actions
            .into_iter()
            .enumerate()
            .map(|(k, action)| {
                let input = if k == 0 {
                    base_index
                } else {
                    input_count + k as i64 - 1
                };
                let action = match action {
                    FileAction::Mkdir {
                        path,
                        mode,
                        make_parents,
                        owner,
                        timestamp,
                    } => pb::file_action::Action::Mkdir(pb::FileActionMkDir {
                        path,
                        mode: mode as i32,
                        make_parents,
                        owner: owner.map(|o| chown(o, owner_input(input))),
                        timestamp: timestamp.unwrap_or(-1),
                    }),
                    FileAction::Mkfile {
                        path,
                        mode,
                        data,
                        owner,
                        timestamp,
                    } => pb::file_action::Action::Mkfile(pb::FileActionMkFile {
                        path,
                        mode: mode as i32,
                        data,
                        owner: owner.map(|o| chown(o, owner_input(input))),
                        timestamp: timestamp.unwrap_or(-1),
                    }),
                    FileAction::Copy {
                        src,
                        dest,
                        options: o,
                        ..
                    } => pb::file_action::Action::Copy(pb::FileActionCopy {
                        src,
                        dest,
                        owner: o.owner.map(|c| chown(c, owner_input(input))),
                        mode: o.mode.map_or(-1, |m| m as i32),
                        follow_symlink: o.follow_symlink,
                        dir_copy_contents: o.dir_copy_contents,
                        create_dest_path: o.create_dest_path,
                        allow_wildcard: o.allow_wildcard,
                        allow_empty_wildcard: o.allow_empty_wildcard,
                        timestamp: o.timestamp.unwrap_or(-1),
                        ..Default::default()
                    }),
                    FileAction::Rm {
                        path,
                        allow_not_found,
                        allow_wildcard,
                    } => {
                        if allow_wildcard {
                            caps.push("file.rm.wildcard");
                        }
                        pb::file_action::Action::Rm(pb::FileActionRm {
                            path,
                            allow_not_found,
                            allow_wildcard,
                        })
                    }
                    FileAction::Symlink {
                        target,
                        link,
                        owner,
                        timestamp,
                    } => {
                        caps.push("file.symlink.create");
                        pb::file_action::Action::Symlink(pb::FileActionSymlink {
                            oldpath: target,
                            newpath: link,
                            owner: owner.map(|o| chown(o, owner_input(input))),
                            timestamp: timestamp.unwrap_or(-1),
                        })
                    }
                };
                pb::FileAction {
                    input,
                    secondary_input: secondary[k],
                    output: if k == last { 0 } else { -1 },
                    action: Some(action),
                }
            })
            .collect();
        let op = pb::Op {
            inputs,
            platform: None,
            constraints: Some(pb::WorkerConstraints::default()),
            op: Some(pb::op::Op::File(pb::FileOp {
                actions: pb_actions,
            })),
        };
        self.push(op, &caps, options)
    }

    /// A merge op: the union of the inputs' filesystems, later ones winning (cap `mergeop`, v0.10).
    pub fn merge(&mut self, layers: &[Output], options: OpOptions) -> Output {
        let inputs: Vec<pb::Input> = layers
            .iter()
            .map(|o| pb::Input {
                digest: o.digest.clone(),
                index: o.index,
            })
            .collect();
        let merge = pb::MergeOp {
            inputs: (0..inputs.len() as i64)
                .map(|input| pb::MergeInput { input })
                .collect(),
        };
        let op = pb::Op {
            inputs,
            platform: None,
            constraints: Some(pb::WorkerConstraints::default()),
            op: Some(pb::op::Op::Merge(merge)),
        };
        self.push(op, &["mergeop"], options)
    }

    /// A diff op: what `upper` changes on top of `lower` (cap `diffop`, v0.10). The diff of an
    /// output against itself is empty.
    pub fn diff(&mut self, lower: &Output, upper: &Output, options: OpOptions) -> Output {
        // One input each, as BuildKit's Go client writes them, even when both are the same.
        let inputs = [lower, upper]
            .map(|o| pb::Input {
                digest: o.digest.clone(),
                index: o.index,
            })
            .to_vec();
        let (lower, upper) = (0, 1);
        let op = pb::Op {
            inputs,
            platform: None,
            constraints: Some(pb::WorkerConstraints::default()),
            op: Some(pb::op::Op::Diff(pb::DiffOp {
                lower: Some(pb::LowerDiffInput { input: lower }),
                upper: Some(pb::UpperDiffInput { input: upper }),
            })),
        };
        self.push(op, &["diffop"], options)
    }

    /// The finished definition: every op once, then the terminal op pointing at `result`.
    pub fn finish(mut self, result: &Output) -> pb::Definition {
        let terminal = pb::Op {
            inputs: vec![pb::Input {
                digest: result.digest.clone(),
                index: result.index,
            }],
            ..Default::default()
        };
        let bytes = op_bytes(&terminal);
        let digest = digest(&bytes);
        let mut caps = BTreeMap::from([("constraints".to_string(), true)]);
        if self.platform.is_some() {
            caps.insert("platform".to_string(), true);
        }
        self.metadata.insert(
            digest,
            pb::OpMetadata {
                caps,
                ..Default::default()
            },
        );
        self.ops.push(bytes);
        pb::Definition {
            def: self.ops,
            metadata: self.metadata,
            source: if self.infos.is_empty() {
                None
            } else {
                Some(pb::Source {
                    locations: self.locations,
                    infos: self.infos,
                })
            },
        }
    }

    fn push(&mut self, op: pb::Op, caps: &[&str], options: OpOptions) -> Output {
        let bytes = op_bytes(&op);
        let digest = digest(&bytes);
        if self.seen.insert(digest.clone()) {
            self.ops.push(bytes);
        }
        let metadata = self.metadata.entry(digest.clone()).or_default();
        metadata.ignore_cache |= options.ignore_cache;
        for cap in caps {
            metadata.caps.insert((*cap).to_string(), true);
        }
        if !options.name.is_empty() {
            metadata
                .description
                .insert("llb.customname".to_string(), options.name);
        }
        metadata.description.extend(options.description);
        if let Some(loc) = options.location {
            let range = pb::Range {
                start: Some(pb::Position {
                    line: loc.start_line,
                    character: loc.start_column,
                }),
                end: Some(pb::Position {
                    line: loc.end_line,
                    character: loc.end_column,
                }),
            };
            let locations = self.locations.entry(digest.clone()).or_default();
            let location = pb::Location {
                source_index: loc.source,
                ranges: vec![range],
            };
            if !locations.locations.contains(&location) {
                locations.locations.push(location);
            }
        }
        Output { digest, index: 0 }
    }
}

/// Parses an OCI platform `os/arch[/variant]` ([`Platform::parse`]) into its protobuf form.
pub fn parse_platform(s: &str) -> anyhow::Result<pb::Platform> {
    Ok(to_pb_platform(
        &Platform::parse(s).map_err(anyhow::Error::msg)?,
    ))
}

/// The protobuf form of a platform.
pub fn to_pb_platform(p: &Platform) -> pb::Platform {
    pb::Platform {
        os: p.os.clone(),
        architecture: p.architecture.clone(),
        variant: p.variant.clone(),
        ..Default::default()
    }
}

/// A source op without a platform (local, git and http sources, as the Go client makes them).
fn unplatformed_source(identifier: String, attrs: BTreeMap<String, String>) -> pb::Op {
    pb::Op {
        inputs: vec![],
        platform: None,
        constraints: Some(pb::WorkerConstraints::default()),
        op: Some(pb::op::Op::Source(pb::SourceOp { identifier, attrs })),
    }
}

/// The index of `output` in an op's inputs, adding it the first time it is used.
fn input_index(inputs: &mut Vec<pb::Input>, output: &Output) -> i64 {
    let input = pb::Input {
        digest: output.digest.clone(),
        index: output.index,
    };
    match inputs.iter().position(|i| *i == input) {
        Some(i) => i as i64,
        None => {
            inputs.push(input);
            (inputs.len() - 1) as i64
        }
    }
}

fn chown(owner: Chown, input: i64) -> pb::ChownOpt {
    let user_opt = |user: UserRef| pb::UserOpt {
        user: Some(match user {
            UserRef::Name(name) => pb::user_opt::User::ByName(pb::NamedUserOpt { name, input }),
            UserRef::Id(id) => pb::user_opt::User::ById(id),
        }),
    };
    pb::ChownOpt {
        user: owner.user.map(user_opt),
        group: owner.group.map(user_opt),
    }
}

#[cfg(test)]
mod tests;
