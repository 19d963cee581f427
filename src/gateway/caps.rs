//! The daemon's gateway and LLB caps from `Ping`, with the BuildKit version that introduced each cap.
//!
//! A cap counts only when it is listed and `Enabled` (BuildKit's `apicaps.Supports`).
//! The cap tables say which BuildKit release introduced each cap; [`DOCKER_BUILDKIT`] says
//! which Docker release ships which BuildKit, and every message naming a version uses both.

use std::collections::BTreeSet;
use std::fmt;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::pb;

/// Gateway caps and the BuildKit minor version (`0.X`) that first has them (3 = "≤ v0.3").
pub const GATEWAY_CAPS: &[(&str, u32)] = &[
    ("solve.base", 3),
    ("solve.inlinereturn", 3),
    ("resolveimage", 3),
    ("resolveimage.resolvemode", 3),
    ("readfile", 3),
    ("return", 3),
    ("returnmap", 3),
    ("readdir", 3),
    ("statfile", 3),
    ("importcaches", 4),
    ("proto.refarray", 7),
    ("reference.output", 7),
    ("frontend.inputs", 7),
    ("gateway.solve.metadata", 8),
    ("gateway.exec", 8),
    ("frontend.caps", 8),
    ("gateway.solve.evaluate", 8),
    ("gateway.exec.extrahosts", 10),
    ("gateway.exec.signals", 10),
    ("gateway.warnings", 10),
    ("gateway.evaluate", 11),
    ("reference.attestations", 11),
    ("gateway.exec.secretenv", 12),
    ("source.metaresolver", 13),
    ("gateway.exec.filesystem", 27),
    ("source.metaresolver.image.attestations", 28),
    ("source.metaresolver.http.checksumrequest", 28),
];

/// LLB caps and the BuildKit minor version that first has them (3 = "≤ v0.3").
pub const LLB_CAPS: &[(&str, u32)] = &[
    ("source.image", 3),
    ("source.image.resolvemode", 3),
    ("source.local", 3),
    ("source.local.unique", 3),
    ("source.local.sessionid", 3),
    ("source.local.includepatterns", 3),
    ("source.local.followpaths", 3),
    ("source.local.excludepatterns", 3),
    ("source.local.sharedkeyhint", 3),
    ("source.git", 3),
    ("source.git.keepgitdir", 3),
    ("source.git.fullurl", 3),
    ("source.http", 3),
    ("source.http.checksum", 3),
    ("source.http.perm", 3),
    ("soruce.http.uidgid", 3), // sic: the real ID has this typo
    ("source.buildop.llbfilename", 3),
    ("exec.meta.base", 3),
    ("exec.meta.proxyenv", 3),
    ("exec.meta.network", 3),
    ("exec.meta.setsdefaultpath", 3),
    ("exec.mount.bind", 3),
    ("exec.mount.cache", 3),
    ("exec.mount.cache.sharing", 3),
    ("exec.mount.selector", 3),
    ("exec.mount.tmpfs", 3),
    ("exec.mount.secret", 3),
    ("exec.mount.ssh", 3),
    ("exec.cgroup", 3),
    ("constraints", 3),
    ("platform", 3),
    ("meta.ignorecache", 3),
    ("meta.description", 3),
    ("meta.exportcache", 3),
    ("exec.meta.security", 5),
    ("file.base", 5),
    ("exec.mount.bind.readwrite-nooutput", 7),
    ("exec.meta.security.devices.v1", 7),
    ("file.rm.wildcard", 7),
    ("source.git.httpauth", 8),
    ("source.git.knownsshhosts", 8),
    ("source.git.mountsshsock", 8),
    ("source.local.differ", 9),
    ("source.git.subdir", 9),
    ("file.copy.includeexcludepatterns", 9),
    ("cache.gha", 9),
    ("exec.meta.cgroup.parent", 10),
    ("exec.meta.ulimit", 10),
    ("exec.mount.tmpfs.size", 10),
    ("exec.secretenv", 10),
    ("file.rm.nofollowsymlink", 10),
    ("mergeop", 10),
    ("diffop", 10),
    ("source.image.layerlimit", 11),
    ("source.ocilayout", 11),
    ("exec.meta.removemountstubs.recursive", 11),
    ("cache.s3", 11),
    ("cache.azblob", 11),
    ("exporter.image.annotations", 11),
    ("exporter.image.attestations", 11),
    ("exporter.sourcedateepoch", 11),
    ("source.policy", 11),
    ("exec.mount.cache.content", 13),
    ("exporter.multiple", 13),
    ("file.copy.alwaysreplaceexistingdestpaths", 14),
    ("exec.validexitcode", 17),
    ("file.copy.modestring", 17),
    ("gc.freespacefilter", 17),
    ("file.symlink.create", 19),
    ("exec.meta.cdi", 20),
    ("history.filter", 20),
    ("source.local.metadatatransfer", 21),
    ("source.http.auth", 21),
    ("source.http.header", 21),
    ("exporter.session", 21),
    ("source.git.checksum", 22),
    ("source.git.skipsubmodules", 24),
    ("source.image.checksum", 25),
    ("source.git.signatureverify", 26),
    ("file.copy.requiredpaths", 26),
    ("source.policy.session", 26),
    ("source.http.signatureverify", 28),
    ("source.imageblob", 28),
    ("source.git.mtime", 29),
    ("source.git.fetchbycommit", 30),
    ("source.git.bundle", 30),
    ("source.git.checkoutbundle", 30),
    ("exec.meta.network.proxy", 31),
    ("exec.meta.linux.resources", 31),
    ("passthroughop", 31),
];

/// Which cap table a cap belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapKind {
    Gateway,
    Llb,
}

impl fmt::Display for CapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CapKind::Gateway => "gateway",
            CapKind::Llb => "LLB",
        })
    }
}

/// The minor version that introduced a cap, if it is in our tables.
pub fn cap_since(kind: CapKind, cap: &str) -> Option<u32> {
    let table = match kind {
        CapKind::Gateway => GATEWAY_CAPS,
        CapKind::Llb => LLB_CAPS,
    };
    table.iter().find(|(id, _)| *id == cap).map(|(_, v)| *v)
}

/// A lower bound on the daemon's BuildKit release line, guessed from its caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionHint {
    /// The daemon is at least `v0.<min_minor>`.
    pub min_minor: u32,
}

impl VersionHint {
    /// The Docker release that ships at least this BuildKit line, when known.
    pub fn docker(&self) -> Option<String> {
        docker_equivalent(self.min_minor)
    }
}

impl fmt::Display for VersionHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BuildKit >= v0.{}", self.min_minor)
    }
}

/// Which Docker Engine release first vendored each BuildKit release line, as `(docker, minor)`,
/// oldest first: `docker build` on that engine (its built-in builder) runs BuildKit `v0.<minor>`.
///
/// Checked against moby's `vendor.mod` history (the "vendor: github.com/moby/buildkit" pull
/// requests of each release branch): 20.10 kept v0.8 to its end, 22.06 was never released,
/// 23.0 shipped v0.10, 24.0 v0.11, 25.0 v0.12, 26.0 and 26.1 v0.13, 27.0 v0.14, 28.0 v0.20.
/// `docs/compatibility.md` prints the same table; a test keeps the two in step.
pub const DOCKER_BUILDKIT: &[(&str, u32)] = &[
    ("20.10", 8),
    ("23.0", 10),
    ("24.0", 11),
    ("25.0", 12),
    ("26.0", 13),
    ("27.0", 14),
    ("28.0", 20),
];

/// The oldest Docker release whose built-in builder has at least BuildKit `v0.<minor>`, from
/// [`DOCKER_BUILDKIT`]; `None` past the newest line in the table.
pub fn docker_equivalent(minor: u32) -> Option<String> {
    DOCKER_BUILDKIT
        .iter()
        .find(|(_, shipped)| *shipped >= minor)
        .map(|(docker, _)| format!("Docker {docker}"))
}

/// A cap the daemon lacks, with what needed it. Converts into `anyhow::Error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingCap {
    pub kind: CapKind,
    pub cap: String,
    pub feature: String,
    /// Minor version that introduced the cap, if known.
    pub since: Option<u32>,
    /// What the daemon's caps suggest it is.
    pub daemon: VersionHint,
}

impl fmt::Display for MissingCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} needs the BuildKit {} cap `{}`, which this daemon does not support",
            self.feature, self.kind, self.cap
        )?;
        if let Some(since) = self.since {
            write!(f, "; it is available from BuildKit v0.{since}")?;
            if let Some(docker) = docker_equivalent(since) {
                write!(f, " ({docker} or newer)")?;
            }
        }
        write!(f, "; the daemon looks like {}", self.daemon)?;
        if let Some(docker) = self.daemon.docker() {
            write!(f, " ({docker} or newer)")?;
        }
        Ok(())
    }
}

impl std::error::Error for MissingCap {}

/// A cap set as recorded in `tests/data/caps/*.json`: lists of enabled cap IDs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedCaps {
    pub gateway: Vec<String>,
    pub llb: Vec<String>,
}

/// The enabled gateway and LLB caps of the daemon.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caps {
    gateway: BTreeSet<String>,
    llb: BTreeSet<String>,
}

impl Caps {
    /// Only caps with `Enabled` set count.
    pub fn from_pong(pong: &pb::gateway::PongResponse) -> Caps {
        let enabled = |caps: &[pb::apicaps::ApiCap]| {
            caps.iter()
                .filter(|c| c.enabled)
                .map(|c| c.id.clone())
                .collect()
        };
        Caps {
            gateway: enabled(&pong.frontend_api_caps),
            llb: enabled(&pong.llb_caps),
        }
    }

    /// Parses a recorded cap set: `{"gateway": [ids…], "llb": [ids…]}`.
    pub fn from_recorded(json: &str) -> Result<Caps> {
        let rec: RecordedCaps = serde_json::from_str(json).context("invalid recorded cap set")?;
        Ok(Caps::from_ids(rec.gateway, rec.llb))
    }

    pub fn from_ids(
        gateway: impl IntoIterator<Item = impl Into<String>>,
        llb: impl IntoIterator<Item = impl Into<String>>,
    ) -> Caps {
        Caps {
            gateway: gateway.into_iter().map(Into::into).collect(),
            llb: llb.into_iter().map(Into::into).collect(),
        }
    }

    /// All caps in the tables that BuildKit `v0.<minor>` has.
    pub fn for_version(minor: u32) -> Caps {
        let upto = |t: &[(&str, u32)]| {
            t.iter()
                .filter(|(_, v)| *v <= minor)
                .map(|(id, _)| id.to_string())
                .collect()
        };
        Caps {
            gateway: upto(GATEWAY_CAPS),
            llb: upto(LLB_CAPS),
        }
    }

    /// The caps as a `PongResponse` would carry them (all enabled).
    pub fn to_pong(&self, workers: Vec<pb::types::WorkerRecord>) -> pb::gateway::PongResponse {
        let api = |ids: &BTreeSet<String>| {
            ids.iter()
                .map(|id| pb::apicaps::ApiCap {
                    id: id.clone(),
                    enabled: true,
                    ..Default::default()
                })
                .collect()
        };
        pb::gateway::PongResponse {
            frontend_api_caps: api(&self.gateway),
            llb_caps: api(&self.llb),
            workers,
        }
    }

    pub fn has_gateway(&self, cap: &str) -> bool {
        self.gateway.contains(cap)
    }

    pub fn has_llb(&self, cap: &str) -> bool {
        self.llb.contains(cap)
    }

    pub fn llb_caps(&self) -> impl Iterator<Item = &str> {
        self.llb.iter().map(String::as_str)
    }

    /// Fails with a [`MissingCap`] naming `feature` unless the gateway cap is enabled.
    pub fn require_gateway(&self, cap: &str, feature: &str) -> Result<(), MissingCap> {
        self.require(CapKind::Gateway, cap, feature)
    }

    /// Fails with a [`MissingCap`] naming `feature` unless the LLB cap is enabled.
    pub fn require_llb(&self, cap: &str, feature: &str) -> Result<(), MissingCap> {
        self.require(CapKind::Llb, cap, feature)
    }

    fn require(&self, kind: CapKind, cap: &str, feature: &str) -> Result<(), MissingCap> {
        let present = match kind {
            CapKind::Gateway => self.has_gateway(cap),
            CapKind::Llb => self.has_llb(cap),
        };
        if present {
            return Ok(());
        }
        Err(MissingCap {
            kind,
            cap: cap.to_string(),
            feature: feature.to_string(),
            since: cap_since(kind, cap),
            daemon: self.buildkit_version_hint(),
        })
    }

    /// The newest release line any present cap implies (never below v0.8, the oldest supported).
    pub fn buildkit_version_hint(&self) -> VersionHint {
        let newest = |set: &BTreeSet<String>, kind| {
            set.iter()
                .filter_map(|c| cap_since(kind, c))
                .max()
                .unwrap_or(0)
        };
        let min_minor = newest(&self.gateway, CapKind::Gateway)
            .max(newest(&self.llb, CapKind::Llb))
            .max(8);
        VersionHint { min_minor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_enabled_caps_count() {
        let pong = pb::gateway::PongResponse {
            frontend_api_caps: vec![
                pb::apicaps::ApiCap {
                    id: "solve.base".into(),
                    enabled: true,
                    ..Default::default()
                },
                pb::apicaps::ApiCap {
                    id: "gateway.warnings".into(),
                    enabled: false,
                    ..Default::default()
                },
            ],
            llb_caps: vec![pb::apicaps::ApiCap {
                id: "file.base".into(),
                enabled: true,
                ..Default::default()
            }],
            workers: vec![],
        };
        let caps = Caps::from_pong(&pong);
        assert!(caps.has_gateway("solve.base"));
        assert!(!caps.has_gateway("gateway.warnings"));
        assert!(caps.has_llb("file.base"));
        assert!(!caps.has_llb("solve.base"));
    }

    #[test]
    fn version_hints() {
        assert_eq!(Caps::for_version(8).buildkit_version_hint().min_minor, 8);
        assert_eq!(Caps::default().buildkit_version_hint().min_minor, 8);
        assert_eq!(Caps::for_version(10).buildkit_version_hint().min_minor, 10);
        assert_eq!(Caps::for_version(13).buildkit_version_hint().min_minor, 13);
        assert_eq!(Caps::for_version(20).buildkit_version_hint().min_minor, 20);
        assert_eq!(Caps::for_version(32).buildkit_version_hint().min_minor, 31);
        let only_cdi = Caps::from_ids(Vec::<String>::new(), ["exec.meta.cdi"]);
        assert_eq!(
            only_cdi.buildkit_version_hint().to_string(),
            "BuildKit >= v0.20"
        );
    }

    #[test]
    fn docker_releases_map_to_the_buildkit_they_ship() {
        let docker = |minor| docker_equivalent(minor).unwrap_or_default();
        assert_eq!(docker(3), "Docker 20.10");
        assert_eq!(docker(8), "Docker 20.10");
        // v0.9 was in no Docker release (22.06 never shipped): 23.0 is the first with it.
        assert_eq!(docker(9), "Docker 23.0");
        assert_eq!(docker(10), "Docker 23.0");
        assert_eq!(docker(11), "Docker 24.0");
        assert_eq!(docker(12), "Docker 25.0");
        assert_eq!(docker(13), "Docker 26.0");
        assert_eq!(docker(14), "Docker 27.0");
        assert_eq!(docker(17), "Docker 28.0");
        assert_eq!(docker(20), "Docker 28.0");
        assert_eq!(docker_equivalent(21), None);
        assert!(
            DOCKER_BUILDKIT.windows(2).all(|w| w[0].1 < w[1].1),
            "oldest first, one line per release"
        );
    }

    #[test]
    fn the_docs_table_is_the_code_table() {
        let docs = include_str!("../../docs/compatibility.md");
        for (docker, minor) in DOCKER_BUILDKIT {
            let row = format!("| {docker} | v0.{minor} |");
            assert!(docs.contains(&row), "docs/compatibility.md lacks `{row}`");
        }
    }

    #[test]
    fn missing_cap_message_names_feature_cap_and_versions() {
        let caps = Caps::for_version(8);
        assert!(caps.require_gateway("solve.base", "solving").is_ok());
        let err = caps
            .require_gateway("gateway.warnings", "lint warnings")
            .err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            msg,
            "lint warnings needs the BuildKit gateway cap `gateway.warnings`, which this daemon does not support; \
             it is available from BuildKit v0.10 (Docker 23.0 or newer); the daemon looks like BuildKit >= v0.8 (Docker 20.10 or newer)"
        );
        let err = Caps::for_version(13).require_llb(
            "file.copy.alwaysreplaceexistingdestpaths",
            "replacing copies",
        );
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("v0.14")
                && msg.contains("replacing copies")
                && msg.contains("BuildKit >= v0.13"),
            "{msg}"
        );
        assert!(msg.contains("v0.14 (Docker 27.0 or newer)"), "{msg}");
        assert!(
            msg.contains("BuildKit >= v0.13 (Docker 26.0 or newer)"),
            "{msg}"
        );
        let newest = Caps::for_version(32).require_llb("passthroughop", "x");
        assert!(newest.is_ok());
        let msg = Caps::for_version(20)
            .require_llb("passthroughop", "passing through")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            msg.contains("v0.31;") && !msg.contains("v0.31 ("),
            "no Docker release in the table ships v0.31: {msg}"
        );
        let err = Caps::for_version(32).require_llb("no.such.cap", "x").err();
        assert!(err.is_some_and(|e| e.since.is_none()));
    }
}
