//! The image config: the base image's config plus the systemd runtime contract and sysfile's labels.
//!
//! Pure: the base config JSON comes in as bytes (resolved by the gateway), the
//! finished config goes out as JSON for `containerimage.config`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::contract::{self, RUNTIME_TMPFS, engine_stop_timeout};
use crate::model::{Health, Spec};
use crate::plan::Plan;
use crate::report::Inventory;

/// Everything about the build that the config records besides the spec and the plan.
#[derive(Clone, Debug, Default)]
pub struct ImageInputs<'a> {
    /// The base image config JSON (empty for an unknown base).
    pub base_config: &'a [u8],
    /// The base image as named in the spec (normalised).
    pub base_name: String,
    /// The manifest digest the base was pinned to (may be empty).
    pub base_digest: String,
    /// `label:*` build options, merged over every other label.
    pub extra_labels: BTreeMap<String, String>,
    /// `os` and `architecture` (and `variant`) of the result.
    pub os: String,
    pub architecture: String,
    pub variant: String,
    /// SOURCE_DATE_EPOCH, used for history and `created`.
    pub epoch: Option<u64>,
}

/// The Docker healthcheck command for a health policy (`None` for `health = "none"`).
pub fn health_command(health: Health) -> Option<&'static str> {
    match health {
        Health::Running => Some("systemctl is-system-running --quiet"),
        Health::RunningOrDegraded => Some(
            "s=$(systemctl is-system-running 2>/dev/null); [ \"$s\" = running ] || [ \"$s\" = degraded ]",
        ),
        Health::None => None,
    }
}

/// Builds the final image config JSON. `steps` is lowering's history, one
/// `(created_by, empty_layer)` per build step; `built` is what the units step's report found in the image (`None` outside
/// a gateway build: no systemd version labels, the planned entrypoint).
pub fn image_config(
    spec: &Spec,
    plan: &Plan,
    steps: &[(String, bool)],
    built: Option<&Inventory>,
    inputs: &ImageInputs<'_>,
) -> Value {
    let mut image: Map<String, Value> = serde_json::from_slice::<Value>(inputs.base_config)
        .ok()
        .and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default();
    image.remove("created");
    image.remove("rootfs");
    image.remove("container_config");
    image.remove("container");
    image.insert("os".into(), json!(inputs.os));
    image.insert("architecture".into(), json!(inputs.architecture));
    if inputs.variant.is_empty() {
        image.remove("variant");
    } else {
        image.insert("variant".into(), json!(inputs.variant));
    }
    if let Some(epoch) = inputs.epoch {
        image.insert("created".into(), json!(rfc3339(epoch)));
    }

    let mut config = match image.remove("config") {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    // PID 1 must be root, and nothing from the base may wrap it in a shell.
    for key in ["User", "Shell", "ArgsEscaped"] {
        config.remove(key);
    }
    config.insert("Entrypoint".into(), json!(plan.entrypoint(built)));
    if plan.cmd.is_empty() {
        config.remove("Cmd");
    } else {
        config.insert("Cmd".into(), json!(plan.cmd));
    }
    config.insert("Env".into(), json!(env(spec, &config)));
    config.insert("StopSignal".into(), json!("SIGRTMIN+3"));
    match health_command(spec.systemd.health.value) {
        Some(cmd) => {
            config.insert(
                "Healthcheck".into(),
                json!({
                    "Test": ["CMD-SHELL", cmd],
                    "Interval": 15_000_000_000u64,
                    "Timeout": 10_000_000_000u64,
                    "StartPeriod": u64::try_from(spec.systemd.health_start_period.value.as_nanos()).unwrap_or(u64::MAX),
                    "StartInterval": 1_000_000_000u64,
                    "Retries": 3,
                }),
            );
        }
        None => {
            config.remove("Healthcheck");
        }
    }
    if !spec.config.expose.is_empty() {
        let ports: Map<String, Value> = spec
            .config
            .expose
            .iter()
            .map(|p| {
                let proto = p.protocol.name();
                (format!("{}/{proto}", p.number), json!({}))
            })
            .collect();
        merge_object(&mut config, "ExposedPorts", ports);
    }
    if !spec.config.volumes.is_empty() {
        let volumes: Map<String, Value> = spec
            .config
            .volumes
            .iter()
            .map(|v| (v.value.clone(), json!({})))
            .collect();
        merge_object(&mut config, "Volumes", volumes);
    }
    if let Some(workdir) = &spec.config.workdir {
        config.insert("WorkingDir".into(), json!(workdir.value));
    }
    let labels: Map<String, Value> = labels(spec, plan, inputs, built, &config)
        .into_iter()
        .map(|(k, v)| (k, json!(v)))
        .collect();
    config.insert("Labels".into(), Value::Object(labels));
    config.remove("OnBuild");
    image.insert("config".into(), Value::Object(config));

    let mut history = match image.remove("history") {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    };
    for (created_by, empty_layer) in steps {
        let mut entry = Map::new();
        if let Some(epoch) = inputs.epoch {
            entry.insert("created".into(), json!(rfc3339(epoch)));
        }
        entry.insert("created_by".into(), json!(created_by));
        entry.insert("comment".into(), json!("sysfile.v1"));
        if *empty_layer {
            entry.insert("empty_layer".into(), json!(true));
        }
        history.push(Value::Object(entry));
    }
    image.insert("history".into(), Value::Array(history));
    Value::Object(image)
}

fn env(spec: &Spec, config: &Map<String, Value>) -> Vec<String> {
    let mut env: Vec<(String, String)> = config
        .get("Env")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(Value::as_str)
                .filter_map(|e| {
                    e.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut set = |key: &str, value: &str| {
        env.retain(|(k, _)| k != key);
        env.push((key.to_string(), value.to_string()));
    };
    if !env_has(&config_env(config), "PATH") {
        set(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        );
    }
    set("container", &spec.systemd.container.value);
    // systemd writes its first console lines before it reads its configuration: only its
    // environment keeps them free of colour codes (docs/boot-log.md). `[config] env` may undo it.
    if spec.systemd.console_logs.value {
        set("SYSTEMD_COLORS", "0");
    }
    for entry in &spec.config.env {
        set(&entry.name.value, &entry.value.value);
    }
    env.retain(|(k, _)| k != "SYSTEMD_OFFLINE");
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn config_env(config: &Map<String, Value>) -> Vec<String> {
    config
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn env_has(env: &[String], key: &str) -> bool {
    env.iter()
        .any(|e| e.split_once('=').is_some_and(|(k, _)| k == key))
}

fn merge_object(config: &mut Map<String, Value>, key: &str, add: Map<String, Value>) {
    let mut existing = match config.remove(key) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    existing.extend(add);
    config.insert(key.into(), Value::Object(existing));
}

fn labels(
    spec: &Spec,
    plan: &Plan,
    inputs: &ImageInputs<'_>,
    built: Option<&Inventory>,
    config: &Map<String, Value>,
) -> BTreeMap<String, String> {
    let systemd_version = built.and_then(|b| b.systemd_version);
    let mut labels: BTreeMap<String, String> = config
        .get("Labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    if let Some(title) = &spec.image.title {
        labels.insert("org.opencontainers.image.title".into(), title.clone());
    }
    if let Some(description) = &spec.image.description {
        labels.insert(
            "org.opencontainers.image.description".into(),
            description.clone(),
        );
    }
    labels.insert(
        "org.opencontainers.image.base.name".into(),
        inputs.base_name.clone(),
    );
    if !inputs.base_digest.is_empty() {
        labels.insert(
            "org.opencontainers.image.base.digest".into(),
            inputs.base_digest.clone(),
        );
    }
    let stop = engine_stop_timeout(spec.systemd.stop_timeout.value);
    let mut put = |key: &str, value: String| labels.insert(key.to_string(), value);
    put(
        contract::VERSION_LABEL,
        env!("CARGO_PKG_VERSION").to_string(),
    );
    put(contract::BOOT_LABEL, "true".into());
    put(contract::TARGET_LABEL, plan.default_target.clone());
    put(
        contract::CONTAINER_LABEL,
        spec.systemd.container.value.clone(),
    );
    put(
        contract::UNITS_ENABLED_LABEL,
        plan.enabled_units_in(built).join(","),
    );
    put(
        contract::UNITS_DISABLED_LABEL,
        plan.disabled_units.join(","),
    );
    put(contract::UNITS_MASKED_LABEL, plan.masked_units.join(","));
    if let Some(version) = systemd_version {
        put(contract::SYSTEMD_VERSION_LABEL, version.to_string());
        put(
            contract::CGROUP_LABEL,
            contract::cgroup_support(version).to_string(),
        );
    }
    put(contract::TMPFS_LABEL, RUNTIME_TMPFS.into());
    put(contract::TTY_LABEL, "required".into());
    put(contract::STOP_TIMEOUT_LABEL, stop.to_string());
    put(contract::DOCKER_LABEL, contract::docker_flags(stop));
    put(
        contract::HEALTH_LABEL,
        health_command(spec.systemd.health.value)
            .unwrap_or("")
            .to_string(),
    );
    labels.insert(
        "RUN".into(),
        format!("podman run -d --name NAME --systemd=always -t --stop-timeout={stop} IMAGE"),
    );
    for entry in &spec.config.labels {
        labels.insert(entry.name.value.clone(), entry.value.value.clone());
    }
    for (k, v) in &inputs.extra_labels {
        labels.insert(k.clone(), v.clone());
    }
    labels
}

/// Formats Unix seconds as RFC 3339 UTC (`1970-01-01T00:00:00Z`), without a date library.
pub fn rfc3339(epoch: u64) -> String {
    let days = epoch / 86_400;
    let secs = epoch % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), valid for all u64 days we can meet.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn default_stop_timeouts_are_one_value() {
        // A spec without `stop_timeout` gets the one default, and a launcher that finds no
        // stop-timeout label assumes the engine timeout such an image would carry.
        let loaded = crate::spec::load(
            crate::diag::SourceFile::new("Sysfile", "[image]\nfrom = \"debian\"\n"),
            &crate::spec::LoadOptions::default(),
        );
        let spec = loaded.spec.unwrap();
        assert_eq!(
            spec.systemd.stop_timeout.value,
            crate::model::DEFAULT_STOP_TIMEOUT
        );
        let (labels, _) = crate::runtime::labels::parse_labels(&Default::default());
        assert_eq!(
            u64::from(labels.stop_timeout),
            engine_stop_timeout(spec.systemd.stop_timeout.value)
        );
        assert_eq!(contract::DEFAULT_ENGINE_STOP_TIMEOUT, 30);
    }

    #[test]
    fn console_logs_turn_systemd_colours_off_unless_the_spec_sets_them() {
        let env_of = |text: &str| {
            let loaded = crate::spec::load(
                crate::diag::SourceFile::new("Sysfile", text),
                &Default::default(),
            );
            env(&loaded.spec.expect("loads"), &Map::new())
        };
        let base = "[image]\nfrom = \"debian\"\n";
        assert!(!env_of(base).iter().any(|e| e.starts_with("SYSTEMD_COLORS")));
        let quiet = format!("{base}[systemd]\nconsole_logs = true\n");
        assert!(env_of(&quiet).contains(&"SYSTEMD_COLORS=0".to_string()));
        let own = format!("{quiet}[config]\nenv = {{ SYSTEMD_COLORS = \"1\" }}\n");
        let own = env_of(&own);
        assert!(own.contains(&"SYSTEMD_COLORS=1".to_string()), "{own:?}");
        assert!(!own.contains(&"SYSTEMD_COLORS=0".to_string()), "{own:?}");
    }

    #[test]
    fn stop_timeout_adds_a_margin() {
        assert_eq!(engine_stop_timeout(Duration::from_secs(20)), 30);
        assert_eq!(engine_stop_timeout(Duration::from_millis(1500)), 12);
    }
}
