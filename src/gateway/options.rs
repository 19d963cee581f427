//! The frontend's inputs from its environment: `BUILDKIT_FRONTEND_OPT_<n>`, the session, workers and product.
//!
//! BuildKit passes every request option as `BUILDKIT_FRONTEND_OPT_<n>=<key>=<value>`
//! (split at the first `=`; keys cannot contain `=`, values can). The typed
//! accessors below follow the Dockerfile frontend's option names (docs/compatibility.md).

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};

pub use super::decode::{OciPlatform, WorkerInfo};
use super::decode::{csv, parse_cache_from, parse_cache_imports, parse_workers};
use crate::network::Network;
use crate::pb;

const OPT_PREFIX: &str = "BUILDKIT_FRONTEND_OPT_";

/// Default of the `dockerfilekey` option: the local holding the spec.
pub const DEFAULT_DOCKERFILE_KEY: &str = "dockerfile";
/// Default of the `contextkey` option: the local holding the build context.
pub const DEFAULT_CONTEXT_KEY: &str = "context";

/// `image-resolve-mode`: how BuildKit resolves base images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ResolveMode {
    #[default]
    Default,
    Pull,
    Local,
}

impl ResolveMode {
    /// The wire string (`ResolveImageConfigRequest.ResolveMode`, `image.resolvemode` attr).
    pub fn as_str(self) -> &'static str {
        match self {
            ResolveMode::Default => "default",
            ResolveMode::Pull => "pull",
            ResolveMode::Local => "local",
        }
    }
}

/// Everything BuildKit tells the frontend through its environment.
#[derive(Clone, Debug)]
pub struct FrontendOptions {
    opts: BTreeMap<String, String>,
    session_id: Option<String>,
    workers: std::result::Result<Vec<WorkerInfo>, String>,
    exported_product: Option<String>,
}

impl FrontendOptions {
    /// Reads the options from environment variables (pass `std::env::vars()`).
    ///
    /// Never fails: an invalid `BUILDKIT_WORKERS` is reported by [`Self::workers`].
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> FrontendOptions {
        let mut out = FrontendOptions::from_opts([]);
        for (name, value) in vars {
            if name.starts_with(OPT_PREFIX) {
                // Same as Go's grpcclient: no `=` means the key with an empty value.
                let (k, v) = value.split_once('=').unwrap_or((value.as_str(), ""));
                out.opts.insert(k.to_string(), v.to_string());
            } else if name == "BUILDKIT_SESSION_ID" {
                out.session_id = Some(value);
            } else if name == "BUILDKIT_WORKERS" {
                out.workers = parse_workers(&value).map_err(|e| format!("{e:#}"));
            } else if name == "BUILDKIT_EXPORTEDPRODUCT" {
                out.exported_product = Some(value);
            }
        }
        out
    }

    /// Builds options from `key=value` option pairs directly (tests, subrequests).
    pub fn from_opts(opts: impl IntoIterator<Item = (String, String)>) -> FrontendOptions {
        FrontendOptions {
            opts: opts.into_iter().collect(),
            session_id: None,
            workers: Ok(Vec::new()),
            exported_product: None,
        }
    }

    /// All request options, as received.
    pub fn all(&self) -> &BTreeMap<String, String> {
        &self.opts
    }

    /// One raw option.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.opts.get(key).map(String::as_str)
    }

    /// `BUILDKIT_SESSION_ID`, the client's session.
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }

    /// `BUILDKIT_EXPORTEDPRODUCT` (`buildkit`, dockerd's product name, or empty).
    pub fn exported_product(&self) -> Option<&str> {
        self.exported_product.as_deref()
    }

    /// `BUILDKIT_WORKERS`, decoded with case-insensitive keys (v0.8 `ID`, v0.10+ `id`).
    pub fn workers(&self) -> Result<&[WorkerInfo]> {
        match &self.workers {
            Ok(w) => Ok(w),
            Err(e) => Err(anyhow!("invalid BUILDKIT_WORKERS: {e}")),
        }
    }

    /// `dockerfilekey`: the name of the local holding the spec.
    pub fn dockerfile_key(&self) -> String {
        self.non_empty("dockerfilekey")
            .unwrap_or(DEFAULT_DOCKERFILE_KEY)
            .to_string()
    }

    /// `contextkey`: the name of the local (or option) holding the context.
    pub fn context_key(&self) -> String {
        self.non_empty("contextkey")
            .unwrap_or(DEFAULT_CONTEXT_KEY)
            .to_string()
    }

    /// `build-arg:<NAME>` options, prefix stripped.
    pub fn build_args(&self) -> BTreeMap<String, String> {
        self.prefixed("build-arg:")
    }

    /// `label:<NAME>` options, prefix stripped.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.prefixed("label:")
    }

    /// `platform`: CSV of target platforms (unparsed, empty entries dropped).
    pub fn platforms(&self) -> Vec<String> {
        csv(self.get("platform").unwrap_or(""))
    }

    /// `no-cache`: present with any value (Docker sends `""` for all stages).
    pub fn no_cache(&self) -> bool {
        self.opts.contains_key("no-cache")
    }

    /// `force-network-mode`: `host`, `none` or `sandbox`; absent or empty gives the builder's
    /// default ([`Network::Default`], as `sandbox` does).
    pub fn force_network_mode(&self) -> Result<Network> {
        match self.non_empty("force-network-mode") {
            None => Ok(Network::Default),
            Some(name) => Network::from_builder_name(name).ok_or_else(|| {
                anyhow!(
                    "invalid option force-network-mode={name:?}: expected one of host, none, sandbox"
                )
            }),
        }
    }

    /// `add-hosts`: CSV of `host=ip`, host lowercased, IP validated.
    pub fn add_hosts(&self) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for entry in csv(self.get("add-hosts").unwrap_or("")) {
            let Some((host, ip)) = entry.split_once('=') else {
                bail!("invalid option add-hosts: entry {entry:?} is not host=ip");
            };
            if host.is_empty() || ip.parse::<std::net::IpAddr>().is_err() {
                bail!(
                    "invalid option add-hosts: entry {entry:?} needs a host name and an IP address"
                );
            }
            out.push((host.to_lowercase(), ip.to_string()));
        }
        Ok(out)
    }

    /// `image-resolve-mode`: `default` (also when absent or empty), `pull` or `local`.
    pub fn image_resolve_mode(&self) -> Result<ResolveMode> {
        match self.non_empty("image-resolve-mode") {
            None | Some("default") => Ok(ResolveMode::Default),
            Some("pull") => Ok(ResolveMode::Pull),
            Some("local") => Ok(ResolveMode::Local),
            Some(other) => bail!(
                "invalid option image-resolve-mode={other:?}: expected one of default, pull, local"
            ),
        }
    }

    /// Cache imports from `cache-from` (CSV) and then `cache-imports` (JSON).
    ///
    /// `cache-from` entries are registry refs (`Type: "registry"`, `Attrs: {ref}`),
    /// or buildx-style `type=<t>,<k>=<v>,…` groups: a `type=` item starts a new
    /// entry, following `k=v` items belong to it; `k=v` items with no `type=`
    /// form a registry entry.
    pub fn cache_imports(&self) -> Result<Vec<pb::gateway::CacheOptionsEntry>> {
        let mut out = parse_cache_from(self.get("cache-from").unwrap_or(""))?;
        if let Some(json) = self.non_empty("cache-imports") {
            out.extend(parse_cache_imports(json).context("invalid option cache-imports")?);
        }
        Ok(out)
    }

    /// `target`: the stage to build.
    pub fn target(&self) -> Option<String> {
        self.non_empty("target").map(str::to_string)
    }

    /// `requestid`: the subrequest name (e.g. `frontend.outline`).
    pub fn request_id(&self) -> Option<String> {
        self.non_empty("requestid").map(str::to_string)
    }

    /// `frontend.caps`: requested frontend caps, with any `+suffix` (e.g. `+forward`) dropped.
    pub fn frontend_caps(&self) -> Vec<String> {
        csv(self.get("frontend.caps").unwrap_or(""))
            .into_iter()
            .map(|c| {
                c.split_once('+')
                    .map_or(c.as_str(), |(name, _)| name)
                    .to_string()
            })
            .collect()
    }

    /// The session for the local `name`: `local-sessionid:<name>`, else `BUILDKIT_SESSION_ID`.
    pub fn local_session(&self, name: &str) -> Option<String> {
        self.non_empty(&format!("local-sessionid:{name}"))
            .or(self.session_id())
            .map(str::to_string)
    }

    /// `build-arg:SOURCE_DATE_EPOCH` as Unix seconds; absent or empty gives `None`.
    pub fn source_date_epoch(&self) -> Result<Option<u64>> {
        match self.non_empty("build-arg:SOURCE_DATE_EPOCH") {
            None => Ok(None),
            // The same rule as the spec's `[args] SOURCE_DATE_EPOCH`: digits only, no spaces.
            Some(v) => crate::model::parse_epoch(v).map_err(|_| {
                anyhow!(
                    "invalid option build-arg:SOURCE_DATE_EPOCH={v:?}: expected Unix seconds (a non-negative integer)"
                )
            }),
        }
    }

    fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    fn prefixed(&self, prefix: &str) -> BTreeMap<String, String> {
        self.opts
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(prefix)
                    .map(|name| (name.to_string(), v.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> FrontendOptions {
        FrontendOptions::from_env(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn opts(pairs: &[(&str, &str)]) -> FrontendOptions {
        FrontendOptions::from_env(
            pairs
                .iter()
                .enumerate()
                .map(|(i, (k, v))| (format!("{OPT_PREFIX}{i}"), format!("{k}={v}"))),
        )
    }

    #[test]
    fn splits_at_first_equals_and_reads_env() {
        let o = env(&[
            ("BUILDKIT_FRONTEND_OPT_0", "build-arg:X=a=b=c"),
            ("BUILDKIT_FRONTEND_OPT_1", "no-cache"),
            ("BUILDKIT_FRONTEND_OPT_12", "label:l="),
            ("BUILDKIT_SESSION_ID", "sess1"),
            ("BUILDKIT_EXPORTEDPRODUCT", "buildkit"),
            ("PATH", "/bin"),
        ]);
        assert_eq!(o.get("build-arg:X"), Some("a=b=c"));
        assert_eq!(o.get("no-cache"), Some(""));
        assert!(o.no_cache());
        assert_eq!(
            o.labels(),
            BTreeMap::from([("l".to_string(), String::new())])
        );
        assert_eq!(o.session_id(), Some("sess1"));
        assert_eq!(o.exported_product(), Some("buildkit"));
        assert_eq!(o.all().len(), 3);
        assert!(o.get("PATH").is_none());
    }

    #[test]
    fn defaults() {
        let o = env(&[]);
        assert_eq!(o.dockerfile_key(), "dockerfile");
        assert_eq!(o.context_key(), "context");
        assert!(o.build_args().is_empty());
        assert!(o.platforms().is_empty());
        assert!(!o.no_cache());
        assert_eq!(o.force_network_mode().ok(), Some(Network::Default));
        assert_eq!(o.image_resolve_mode().ok(), Some(ResolveMode::Default));
        assert!(o.add_hosts().map(|h| h.is_empty()).unwrap_or(false));
        assert!(o.cache_imports().map(|c| c.is_empty()).unwrap_or(false));
        assert_eq!(o.target(), None);
        assert_eq!(o.request_id(), None);
        assert!(o.frontend_caps().is_empty());
        assert_eq!(o.local_session("context"), None);
        assert_eq!(o.source_date_epoch().ok(), Some(None));
        assert!(o.workers().map(|w| w.is_empty()).unwrap_or(false));
    }

    #[test]
    fn names_and_keys() {
        let o = opts(&[
            ("filename", "Sysfile"),
            ("dockerfilekey", "spec"),
            ("contextkey", "ctx"),
            ("target", "prod"),
            ("requestid", "frontend.outline"),
        ]);
        assert_eq!(o.dockerfile_key(), "spec");
        assert_eq!(o.context_key(), "ctx");
        assert_eq!(o.target().as_deref(), Some("prod"));
        assert_eq!(o.request_id().as_deref(), Some("frontend.outline"));
    }

    #[test]
    fn build_args_and_labels_keep_equals_in_values() {
        let o = opts(&[
            ("build-arg:FOO", "x=1"),
            ("build-arg:EMPTY", ""),
            ("label:org.opencontainers.image.title", "a=b"),
            ("other", "1"),
        ]);
        assert_eq!(
            o.build_args(),
            BTreeMap::from([("EMPTY".into(), "".into()), ("FOO".into(), "x=1".into())])
        );
        assert_eq!(
            o.labels(),
            BTreeMap::from([("org.opencontainers.image.title".into(), "a=b".into())])
        );
    }

    #[test]
    fn platforms_csv() {
        let o = opts(&[("platform", "linux/amd64, linux/arm64/v8,,")]);
        assert_eq!(o.platforms(), vec!["linux/amd64", "linux/arm64/v8"]);
    }

    #[test]
    fn network_mode() {
        for (v, want) in [
            ("host", Network::Host),
            ("none", Network::None),
            ("sandbox", Network::Default),
            ("", Network::Default),
        ] {
            assert_eq!(
                opts(&[("force-network-mode", v)]).force_network_mode().ok(),
                Some(want)
            );
        }
        let err = opts(&[("force-network-mode", "bridge")])
            .force_network_mode()
            .err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("force-network-mode") && msg.contains("bridge"),
            "{msg}"
        );
    }

    #[test]
    fn add_hosts() {
        let o = opts(&[("add-hosts", "MyHost=10.0.0.1,db=::1")]);
        assert_eq!(
            o.add_hosts().ok(),
            Some(vec![
                ("myhost".into(), "10.0.0.1".into()),
                ("db".into(), "::1".into())
            ])
        );
        for bad in ["nohost", "h=notanip", "=1.2.3.4"] {
            let msg = opts(&[("add-hosts", bad)])
                .add_hosts()
                .err()
                .map(|e| e.to_string());
            assert!(msg.is_some_and(|m| m.contains("add-hosts")), "{bad}");
        }
    }

    #[test]
    fn resolve_mode() {
        assert_eq!(
            opts(&[("image-resolve-mode", "pull")])
                .image_resolve_mode()
                .ok(),
            Some(ResolveMode::Pull)
        );
        assert_eq!(
            opts(&[("image-resolve-mode", "local")])
                .image_resolve_mode()
                .ok(),
            Some(ResolveMode::Local)
        );
        assert_eq!(
            opts(&[("image-resolve-mode", "")])
                .image_resolve_mode()
                .ok(),
            Some(ResolveMode::Default)
        );
        let msg = opts(&[("image-resolve-mode", "always")])
            .image_resolve_mode()
            .err()
            .map(|e| e.to_string());
        assert!(msg.is_some_and(|m| m.contains("image-resolve-mode")));
        assert_eq!(ResolveMode::Pull.as_str(), "pull");
    }

    fn entry(t: &str, attrs: &[(&str, &str)]) -> pb::gateway::CacheOptionsEntry {
        super::super::decode::tests::entry(t, attrs)
    }

    #[test]
    fn cache_imports_json_case_insensitive() {
        let o = opts(&[
            ("cache-from", "reg.io/a"),
            (
                "cache-imports",
                r#"[{"Type":"registry","Attrs":{"ref":"x=y"}},{"type":"local","attrs":{"src":"/c"}}]"#,
            ),
        ]);
        assert_eq!(
            o.cache_imports().ok(),
            Some(vec![
                entry("registry", &[("ref", "reg.io/a")]),
                entry("registry", &[("ref", "x=y")]),
                entry("local", &[("src", "/c")]),
            ])
        );
        let err = opts(&[("cache-imports", "{nope")]).cache_imports().err();
        assert!(err.is_some_and(|e| format!("{e:#}").contains("cache-imports")));
    }

    #[test]
    fn workers_come_from_the_environment() {
        let o = env(&[(
            "BUILDKIT_WORKERS",
            r#"[{"id":"w","platforms":[{"architecture":"arm64","os":"linux"}]}]"#,
        )]);
        let w = o.workers().map(<[WorkerInfo]>::to_vec).unwrap_or_default();
        assert_eq!(w[0].platforms[0].platform().id(), "linux/arm64");
        let o = env(&[("BUILDKIT_WORKERS", "nope")]);
        assert!(
            o.workers()
                .err()
                .is_some_and(|e| e.to_string().contains("BUILDKIT_WORKERS"))
        );
    }

    #[test]
    fn frontend_caps_and_sessions() {
        let o = env(&[
            (
                "BUILDKIT_FRONTEND_OPT_0",
                "frontend.caps=moby.buildkit.frontend.inputs,moby.buildkit.frontend.subrequests+forward",
            ),
            ("BUILDKIT_FRONTEND_OPT_1", "local-sessionid:context=other"),
            ("BUILDKIT_SESSION_ID", "main"),
        ]);
        assert_eq!(
            o.frontend_caps(),
            vec![
                "moby.buildkit.frontend.inputs",
                "moby.buildkit.frontend.subrequests"
            ]
        );
        assert_eq!(o.local_session("context").as_deref(), Some("other"));
        assert_eq!(o.local_session("dockerfile").as_deref(), Some("main"));
    }

    #[test]
    fn source_date_epoch() {
        assert_eq!(
            opts(&[("build-arg:SOURCE_DATE_EPOCH", "1700000000")])
                .source_date_epoch()
                .ok(),
            Some(Some(1_700_000_000))
        );
        let msg = opts(&[("build-arg:SOURCE_DATE_EPOCH", "context")])
            .source_date_epoch()
            .err()
            .map(|e| e.to_string());
        assert!(msg.is_some_and(|m| m.contains("SOURCE_DATE_EPOCH")));
        for bad in [" 1700000000", "-1", "+5", "99999999999999999999"] {
            let o = opts(&[("build-arg:SOURCE_DATE_EPOCH", bad)]);
            assert!(o.source_date_epoch().is_err(), "{bad:?}");
        }
    }
}
