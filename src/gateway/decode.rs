//! The option values that carry structure: CSV lists, `cache-from` (registry refs and buildx
//! `type=…,k=v` groups), and the JSON of `cache-imports` and `BUILDKIT_WORKERS`, decoded the way
//! Go's `encoding/json` does (keys matched case-insensitively after an exact match).
//!
//! Pure; [`super::options::FrontendOptions`]'s accessors call these.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

use crate::pb;
use crate::platform::Platform;

/// An OCI platform as found in `BUILDKIT_WORKERS`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OciPlatform {
    pub architecture: String,
    pub os: String,
    pub variant: String,
    pub os_version: String,
    pub os_features: Vec<String>,
}

impl OciPlatform {
    /// The platform a build targets (OS version and features are the worker's own business).
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
    }
}

/// One entry of `BUILDKIT_WORKERS`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerInfo {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub platforms: Vec<OciPlatform>,
}

/// Splits a CSV option value, trimming items and dropping empty ones.
pub(super) fn csv(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

pub(super) fn parse_cache_from(s: &str) -> Result<Vec<pb::gateway::CacheOptionsEntry>> {
    use pb::gateway::CacheOptionsEntry;
    let mut out: Vec<CacheOptionsEntry> = Vec::new();
    // Whether the last entry is a `k=v` group that further `k=v` items extend.
    let mut open = false;
    for item in csv(s) {
        match item.split_once('=') {
            None => {
                out.push(registry_entry(item));
                open = false;
            }
            Some((k, v)) => {
                let (k, v) = (k.trim(), v.trim());
                if k.is_empty() {
                    bail!("invalid option cache-from: item {item:?} has an empty key");
                }
                if k == "type" {
                    if v.is_empty() {
                        bail!("invalid option cache-from: item {item:?} has an empty type");
                    }
                    out.push(CacheOptionsEntry {
                        r#type: v.to_string(),
                        attrs: BTreeMap::new(),
                    });
                    open = true;
                    continue;
                }
                if !open {
                    out.push(CacheOptionsEntry {
                        r#type: String::new(),
                        attrs: BTreeMap::new(),
                    });
                    open = true;
                }
                if let Some(last) = out.last_mut() {
                    last.attrs.insert(k.to_string(), v.to_string());
                }
            }
        }
    }
    for entry in &mut out {
        if entry.r#type.is_empty() {
            entry.r#type = "registry".to_string();
            if !entry.attrs.contains_key("ref") {
                bail!(
                    "invalid option cache-from: an entry without type= needs ref=<image>: {:?}",
                    entry.attrs
                );
            }
        }
    }
    Ok(out)
}

fn registry_entry(reference: String) -> pb::gateway::CacheOptionsEntry {
    pb::gateway::CacheOptionsEntry {
        r#type: "registry".to_string(),
        attrs: BTreeMap::from([("ref".to_string(), reference)]),
    }
}

pub(super) fn parse_cache_imports(json: &str) -> Result<Vec<pb::gateway::CacheOptionsEntry>> {
    let value: Value = serde_json::from_str(json).context("not JSON")?;
    let Value::Array(items) = value else {
        bail!("expected a JSON array of {{\"Type\":…,\"Attrs\":{{…}}}}");
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            bail!("entry {i} is not a JSON object");
        };
        let r#type = match get_ci(obj, "type") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => String::new(),
            Some(_) => bail!("entry {i}: Type is not a string"),
        };
        let attrs = match get_ci(obj, "attrs") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(v) => string_map(v).with_context(|| format!("entry {i}: Attrs"))?,
        };
        out.push(pb::gateway::CacheOptionsEntry { r#type, attrs });
    }
    Ok(out)
}

/// Looks a key up the way Go's `encoding/json` does: exact match first, then case-insensitive.
fn get_ci<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn string_map(v: &Value) -> Result<BTreeMap<String, String>> {
    let Value::Object(obj) = v else {
        bail!("not a JSON object")
    };
    obj.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(anyhow!("value of {k:?} is not a string")),
        })
        .collect()
}

fn string_field(obj: &Map<String, Value>, key: &str) -> Result<String> {
    match get_ci(obj, key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => bail!("{key} is not a string"),
    }
}

pub(super) fn parse_workers(json: &str) -> Result<Vec<WorkerInfo>> {
    let value: Value = serde_json::from_str(json).context("not JSON")?;
    let items = match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        _ => bail!("expected a JSON array"),
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(obj) = item else {
            bail!("worker {i} is not a JSON object")
        };
        let id = string_field(obj, "id").with_context(|| format!("worker {i}"))?;
        let labels = match get_ci(obj, "labels") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(v) => string_map(v).with_context(|| format!("worker {i}: labels"))?,
        };
        let mut platforms = Vec::new();
        match get_ci(obj, "platforms") {
            None | Some(Value::Null) => {}
            Some(Value::Array(ps)) => {
                for p in ps {
                    let Value::Object(p) = p else {
                        bail!("worker {i}: a platform is not a JSON object");
                    };
                    platforms
                        .push(parse_worker_platform(p).with_context(|| format!("worker {i}"))?);
                }
            }
            Some(_) => bail!("worker {i}: platforms is not an array"),
        }
        out.push(WorkerInfo {
            id,
            labels,
            platforms,
        });
    }
    Ok(out)
}

fn parse_worker_platform(p: &Map<String, Value>) -> Result<OciPlatform> {
    let os_features = match get_ci(p, "os.features") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(fs)) => fs
            .iter()
            .map(|f| {
                f.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("os.features item is not a string"))
            })
            .collect::<Result<_>>()?,
        Some(_) => bail!("os.features is not an array"),
    };
    Ok(OciPlatform {
        architecture: string_field(p, "architecture")?,
        os: string_field(p, "os")?,
        variant: string_field(p, "variant")?,
        os_version: string_field(p, "os.version")?,
        os_features,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::gateway) fn entry(
        t: &str,
        attrs: &[(&str, &str)],
    ) -> pb::gateway::CacheOptionsEntry {
        pb::gateway::CacheOptionsEntry {
            r#type: t.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn cache_from_refs_and_buildx_forms() {
        assert_eq!(
            parse_cache_from("reg.io/a:cache,reg.io/b").ok(),
            Some(vec![
                entry("registry", &[("ref", "reg.io/a:cache")]),
                entry("registry", &[("ref", "reg.io/b")])
            ])
        );
        assert_eq!(
            parse_cache_from(
                "type=local,src=/tmp/c,digest=sha256:ab=,ref=plain/ref,type=gha,scope=x"
            )
            .ok(),
            Some(vec![
                entry(
                    "local",
                    &[
                        ("src", "/tmp/c"),
                        ("digest", "sha256:ab="),
                        ("ref", "plain/ref")
                    ]
                ),
                entry("gha", &[("scope", "x")]),
            ])
        );
        assert_eq!(
            parse_cache_from("ref=reg.io/c,mode=max,reg.io/d").ok(),
            Some(vec![
                entry("registry", &[("ref", "reg.io/c"), ("mode", "max")]),
                entry("registry", &[("ref", "reg.io/d")]),
            ])
        );
        assert_eq!(parse_cache_from("").ok(), Some(vec![]));
        let msg = parse_cache_from("mode=max").err().map(|e| e.to_string());
        assert!(msg.is_some_and(|m| m.contains("cache-from")));
    }

    #[test]
    fn workers_both_key_styles() {
        let v08 = r#"[{"ID":"w1","Labels":{"org.mobyproject.buildkit.worker.executor":"oci"},"Platforms":[{"architecture":"amd64","os":"linux"},{"architecture":"arm","os":"linux","variant":"v7"}],"GCPolicy":null}]"#;
        let v10 = r#"[{"id":"w2","labels":{},"platforms":[{"architecture":"amd64","os":"windows","os.version":"10.0","os.features":["win32k"]}],"buildkitVersion":{"version":"v0.32.0"}}]"#;
        let w = parse_workers(v08).unwrap_or_default();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].id, "w1");
        assert_eq!(
            w[0].labels
                .get("org.mobyproject.buildkit.worker.executor")
                .map(String::as_str),
            Some("oci")
        );
        assert_eq!(w[0].platforms[1].variant, "v7");
        let w = parse_workers(v10).unwrap_or_default();
        assert_eq!(w[0].id, "w2");
        assert_eq!(w[0].platforms[0].os_version, "10.0");
        assert_eq!(w[0].platforms[0].os_features, vec!["win32k"]);
        assert_eq!(w[0].platforms[0].platform().os, "windows");
        assert!(parse_workers("nope").is_err());
        assert_eq!(parse_workers("null").ok(), Some(vec![]));
    }
}
