//! The frontend end to end against the in-process fake BuildKit: options in, `Return` out.

use prost::Message as _;
use sysfile::frontend;
use sysfile::gateway::fake::{FakeBuildkit, FakeHandle};
use sysfile::gateway::{Bridge, Caps, DebugSink, FrontendOptions, errors};
use sysfile::pb;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const DEBIAN: &str = "local/debian:bookworm";
const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn caps(version: &str) -> Caps {
    let path = format!(
        "{}/tests/data/caps/{version}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    Caps::from_recorded(&std::fs::read_to_string(path).expect("recorded caps")).expect("valid caps")
}

fn base_config() -> Vec<u8> {
    br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/bash"],"Labels":{"base.label":"kept"}},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"debootstrap"}]}"#.to_vec()
}

fn fake(version: &str, spec: &str) -> FakeBuildkit {
    FakeBuildkit::new(caps(version))
        .with_local("dockerfile", [("Sysfile", spec.as_bytes().to_vec())])
        .with_local(
            "context",
            [("keys/admin.pub", b"ssh-ed25519 AAAA test".to_vec())],
        )
        .with_image_config(DEBIAN, DIGEST, base_config())
        .with_image_rootfs(
            DEBIAN,
            [
                (
                    "/etc/os-release",
                    b"ID=debian\nVERSION_ID=\"12\"\n".to_vec(),
                ),
                ("/lib/systemd/systemd", b"\x7fELF".to_vec()),
                ("/sbin/init", b"\x7fELF".to_vec()),
            ],
        )
        .with_exec_output("sysfile-inventory", inventory())
        .with_exec_output("sysfile-units", units_report(spec))
}

/// What the units step reports for a correctly built image of `spec`: the inventory, then every
/// unit in the state the plan asked for.
fn units_report(spec: &str) -> Vec<(&'static str, String)> {
    let mut report: Vec<(&'static str, String)> = inventory()
        .into_iter()
        .map(|(k, v)| (k, v.to_string()))
        .collect();
    report.extend(final_state(spec));
    report
}

/// The states and facts part of a report for a correctly built image of `spec`.
fn final_state(spec: &str) -> Vec<(&'static str, String)> {
    let loaded = sysfile::spec::load(
        sysfile::diag::SourceFile::new("Sysfile", spec),
        &Default::default(),
    );
    let Some(spec) = loaded.spec else {
        return vec![];
    };
    let plan = sysfile::plan::plan(
        &spec,
        &sysfile::plan::BaseFacts::assumed(sysfile::distro::Family::Debian),
        sysfile::plan::Order::Graph,
    );
    let mut states = String::new();
    for unit in &plan.enabled_units {
        states.push_str(&format!("{unit}\tenabled\n"));
    }
    for unit in &plan.disabled_units {
        states.push_str(&format!("{unit}\tdisabled\n"));
    }
    for unit in &plan.masked_units {
        states.push_str(&format!("{unit}\tmasked\n"));
    }
    let facts = format!("default\t{}\nmachine-id\tempty\n", plan.default_target);
    vec![
        ("states", states),
        ("facts", facts),
        ("failures", String::new()),
        ("audit", String::new()),
    ]
}

/// What the inventory step reports for a Debian image with openssh-server.
fn inventory() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "units",
            "ssh.service\t\nsshd.service\t/lib/systemd/system/ssh.service\nmulti-user.target\t\nsysinit.target\t\nsysfile-ssh-host-keys.service\t\n",
        ),
        (
            "aliases",
            "/lib/systemd/system/ssh.service:Alias=sshd.service\n",
        ),
        ("version", "systemd 252 (252.39-1~deb12u2)\n"),
        ("init", "/usr/lib/systemd/systemd\n"),
        ("sshd", "present\n"),
    ]
}

async fn run(
    fake: FakeBuildkit,
    opts: &[(&str, &str)],
) -> Result<FakeHandle, Box<dyn std::error::Error>> {
    run_with_env(fake, opts, &[]).await
}

async fn run_with_env(
    fake: FakeBuildkit,
    opts: &[(&str, &str)],
    env: &[(&str, &str)],
) -> Result<FakeHandle, Box<dyn std::error::Error>> {
    let (client, handle) = fake.connect().await?;
    let code = frontend::serve(Bridge::new(client), &frontend_options(opts, env)).await?;
    assert_eq!(code, 0, "the frontend exits 0 once Return went through");
    Ok(handle)
}

/// The options BuildKit hands the frontend: session 1, `opts` as frontend options, `env` besides.
fn frontend_options(opts: &[(&str, &str)], env: &[(&str, &str)]) -> FrontendOptions {
    let mut vars = vec![("BUILDKIT_SESSION_ID".to_string(), "session-1".to_string())];
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    for (i, (k, v)) in opts.iter().enumerate() {
        vars.push((format!("BUILDKIT_FRONTEND_OPT_{i}"), format!("{k}={v}")));
    }
    FrontendOptions::from_env(vars)
}

/// The error status the frontend returned; panics when it returned none.
fn returned_error(handle: &FakeHandle) -> pb::rpc::Status {
    handle
        .returned()
        .and_then(|r| r.error)
        .expect("an error status")
}

fn returned_config(handle: &FakeHandle) -> serde_json::Value {
    let returned = handle.returned().expect("Return was called");
    assert!(
        returned.error.is_none(),
        "unexpected error: {:?}",
        returned.error
    );
    let result = returned.result.expect("a result");
    let config = result
        .metadata
        .get("containerimage.config")
        .expect("an image config");
    serde_json::from_slice(config).expect("config is JSON")
}

/// Every exec op of the last solved definition.
fn exec_ops(handle: &FakeHandle) -> Vec<pb::llb::ExecOp> {
    let solves = handle.solves();
    let def = solves
        .last()
        .and_then(|s| s.definition.clone())
        .expect("a definition was solved");
    def.def
        .iter()
        .filter_map(
            |bytes| match pb::llb::Op::decode(bytes.as_slice()).ok()?.op? {
                pb::llb::op::Op::Exec(exec) => Some(exec),
                _ => None,
            },
        )
        .collect()
}

const SSHD: &str = r#"# syntax=local/sysfile:dev
[image]
from = "local/debian:bookworm"

[packages]
install = ["openssh-server"]

[[users]]
name = "admin"
authorized_keys = ["keys/admin.pub"]

[services]
enable = ["ssh"]

[config]
env = { TZ = "UTC" }
"#;

#[tokio::test]
async fn builds_and_returns_the_contract_config() -> TestResult {
    let handle = run(
        fake("v0.32", SSHD),
        &[("filename", "Sysfile"), ("label:extra", "yes")],
    )
    .await?;
    let config = returned_config(&handle);
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    let c = &config["config"];
    assert_eq!(c["Entrypoint"], serde_json::json!(["/sbin/init"]));
    assert!(
        c.get("Cmd").is_none(),
        "the base Cmd (/bin/bash) must not reach systemd: {c}"
    );
    assert_eq!(c["StopSignal"], "SIGRTMIN+3");
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        env.contains(&"container=docker") && env.contains(&"TZ=UTC"),
        "{env:?}"
    );
    assert!(
        env.iter().all(|e| !e.starts_with("SYSTEMD_OFFLINE")),
        "{env:?}"
    );
    assert_eq!(c["Labels"]["base.label"], "kept");
    assert_eq!(c["Labels"]["extra"], "yes");
    assert_eq!(c["Labels"]["org.opencontainers.image.base.digest"], DIGEST);
    assert_eq!(
        c["Labels"]["sysfile.systemd.units.enabled"],
        "ssh.service,sysfile-ssh-host-keys.service"
    );
    assert_eq!(
        config["history"][0]["created_by"], "debootstrap",
        "base history is kept"
    );
    assert!(config["history"].as_array().unwrap().len() > 4);
    // The base is pinned by digest in the LLB.
    let solves = handle.solves();
    let def = solves.last().and_then(|s| s.definition.clone()).unwrap();
    let pinned = format!("docker-image://docker.io/local/debian:bookworm@{DIGEST}");
    assert!(
        def.def
            .iter()
            .any(|b| String::from_utf8_lossy(b).contains(&pinned)),
        "the base image op is pinned to {DIGEST}"
    );
    // Every step has tmpfs /run and /tmp and SYSTEMD_OFFLINE=1.
    let execs = exec_ops(&handle);
    assert!(execs.len() >= 3);
    for exec in &execs {
        let tmpfs: Vec<&str> = exec
            .mounts
            .iter()
            .filter(|m| m.mount_type == pb::llb::MountType::Tmpfs as i32)
            .map(|m| m.dest.as_str())
            .collect();
        assert!(
            tmpfs.contains(&"/run") && tmpfs.contains(&"/tmp"),
            "{tmpfs:?}"
        );
        assert!(
            exec.meta
                .as_ref()
                .unwrap()
                .env
                .iter()
                .any(|e| e == "SYSTEMD_OFFLINE=1")
        );
    }
    Ok(())
}

#[tokio::test]
async fn force_network_mode_reaches_every_default_network_step() -> TestResult {
    let spec =
        format!("{SSHD}\n[[run]]\nsh = \"true\"\n\n[[run]]\nsh = \"true\"\nnetwork = \"none\"\n");
    let handle = run(
        fake("v0.13", &spec),
        &[("filename", "Sysfile"), ("force-network-mode", "host")],
    )
    .await?;
    let networks: Vec<i32> = exec_ops(&handle).iter().map(|e| e.network).collect();
    let host = pb::llb::NetMode::Host as i32;
    let none = pb::llb::NetMode::None as i32;
    // packages and the first run step follow the builder; the second run step chose none;
    // user, keys and unit steps never need the network.
    assert_eq!(
        networks.iter().filter(|n| **n == host).count(),
        2,
        "{networks:?}"
    );
    assert!(networks.contains(&none));
    assert!(!networks.contains(&(pb::llb::NetMode::Unset as i32)));
    Ok(())
}

#[tokio::test]
async fn spec_errors_return_a_source_located_status() -> TestResult {
    let spec = "[image]\nfrom = \"local/debian:bookworm\"\ncolour = \"blue\"\n";
    let handle = run(fake("v0.8", spec), &[("filename", "Sysfile")]).await?;
    let status = returned_error(&handle);
    assert_eq!(status.code, errors::CODE_UNKNOWN);
    assert!(status.message.contains("Sysfile:3"), "{}", status.message);
    let json = source_detail(&status)?;
    assert_eq!(json["info"]["filename"], "Sysfile");
    assert_eq!(json["ranges"][0]["start"]["line"], 3);
    assert!(
        handle.solves().len() == 1,
        "nothing but the spec was solved"
    );
    Ok(())
}

#[tokio::test]
async fn warnings_are_sent_only_when_the_daemon_supports_them() -> TestResult {
    let spec =
        "[image]\nfrom = \"local/debian:bookworm\"\n\n[systemd]\ntarget = \"sysinit.target\"\n";
    let new = run(
        fake("v0.32", spec),
        &[("filename", "Sysfile"), ("target", "prod")],
    )
    .await?;
    let warnings = new.warnings();
    assert!(
        warnings.len() >= 2,
        "early-boot-target and target-ignored: {warnings:?}"
    );
    assert!(
        warnings
            .iter()
            .all(|w| w.info.is_some() && !w.ranges.is_empty())
    );
    returned_config(&new);
    let old = run(
        fake("v0.8", spec),
        &[("filename", "Sysfile"), ("target", "prod")],
    )
    .await?;
    assert!(old.warnings().is_empty(), "v0.8 has no Warn");
    returned_config(&old);
    Ok(())
}

#[tokio::test]
async fn falls_back_to_sysfile_when_no_filename_is_given() -> TestResult {
    let handle = run(fake("v0.32", SSHD), &[]).await?;
    returned_config(&handle);
    Ok(())
}

#[tokio::test]
async fn unknown_distribution_points_at_the_base_image() -> TestResult {
    let spec = "[image]\nfrom = \"alpine:3\"\n";
    let fake = FakeBuildkit::new(caps("v0.32"))
        .with_local("dockerfile", [("Sysfile", spec.as_bytes().to_vec())])
        .with_image_config("alpine:3", DIGEST, base_config())
        .with_image_rootfs("alpine:3", [("/etc/os-release", b"ID=alpine\n".to_vec())]);
    let handle = run(fake, &[("filename", "Sysfile")]).await?;
    let status = returned_error(&handle);
    assert!(
        status.message.contains("Sysfile:2") && status.message.contains("manager"),
        "{}",
        status.message
    );
    Ok(())
}

#[tokio::test]
async fn describe_subrequest_lists_what_is_answered() -> TestResult {
    let handle = run(
        fake("v0.32", SSHD),
        &[("requestid", "frontend.subrequests.describe")],
    )
    .await?;
    let result = handle.returned().and_then(|r| r.result).expect("a result");
    let described: serde_json::Value = serde_json::from_slice(&result.metadata["result.json"])?;
    let names: Vec<&str> = described
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "frontend.subrequests.describe",
            "frontend.outline",
            "frontend.targets",
            "frontend.lint"
        ]
    );
    assert!(handle.solves().is_empty(), "a subrequest solves nothing");
    let unknown = run(fake("v0.32", SSHD), &[("requestid", "frontend.nonsense")]).await?;
    let status = returned_error(&unknown);
    assert!(
        status
            .details
            .iter()
            .any(|d| d.type_url == errors::SUBREQUEST_TYPE_URL)
    );
    Ok(())
}

#[tokio::test]
async fn buildkit_errors_pass_through_unchanged() -> TestResult {
    let failure = pb::rpc::Status {
        code: 2,
        message: "failed to resolve source metadata".into(),
        details: vec![prost_types::Any {
            type_url: "example/detail".into(),
            value: b"{\"x\":1}".to_vec(),
        }],
    };
    let handle = run(
        fake("v0.32", SSHD).fail_solve_with(failure.clone()),
        &[("filename", "Sysfile")],
    )
    .await?;
    assert_eq!(handle.returned().and_then(|r| r.error), Some(failure));
    Ok(())
}

#[tokio::test]
async fn an_alias_or_a_typo_in_services_is_a_located_error_with_a_suggestion() -> TestResult {
    for (unit, expected) in [
        ("sshd", "name the unit itself: `ssh`"),
        ("sssh", "did you mean `ssh.service`?"),
    ] {
        let spec = format!(
            "[image]\nfrom = \"local/debian:bookworm\"\n\n[services]\nenable = [\"{unit}\"]\n"
        );
        let handle = run(fake("v0.32", &spec), &[("filename", "Sysfile")]).await?;
        let status = returned_error(&handle);
        assert!(
            status.message.starts_with("Sysfile:5:"),
            "{}",
            status.message
        );
        assert!(status.message.contains(expected), "{}", status.message);
    }
    Ok(())
}

#[tokio::test]
async fn a_unit_in_the_wrong_state_fails_the_build() -> TestResult {
    let report = report_with(
        SSHD,
        &[
            ("states", "ssh.service\tdisabled\n"),
            (
                "facts",
                "default\tmulti-user.target\nmachine-id\tnot-empty\n",
            ),
        ],
    );
    let handle = build_reporting(SSHD, report).await?;
    let status = returned_error(&handle);
    assert!(
        status.message.contains("`ssh.service` should be enabled"),
        "{}",
        status.message
    );
    assert!(status.message.contains("machine-id"), "{}", status.message);
    Ok(())
}

#[tokio::test]
async fn source_date_epoch_sets_times_and_keeps_the_llb_identical() -> TestResult {
    let build = || async {
        let handle = run(
            fake("v0.32", SSHD),
            &[
                ("filename", "Sysfile"),
                ("build-arg:SOURCE_DATE_EPOCH", "1700000000"),
            ],
        )
        .await?;
        Ok::<_, Box<dyn std::error::Error>>(handle)
    };
    let first = build().await?;
    let config = returned_config(&first);
    assert_eq!(config["created"], "2023-11-14T22:13:20Z");
    let history = config["history"].as_array().unwrap();
    assert!(
        history
            .iter()
            .filter(|h| h["comment"] == "sysfile.v1")
            .all(|h| h["created"] == "2023-11-14T22:13:20Z")
    );
    let returned = first.returned().and_then(|r| r.result).unwrap();
    assert_eq!(returned.metadata["source.date.epoch"], b"1700000000");
    // Every file sysfile writes carries the epoch as its timestamp.
    let def = first
        .solves()
        .last()
        .and_then(|s| s.definition.clone())
        .unwrap();
    let mut stamped = 0;
    for bytes in &def.def {
        if let Some(pb::llb::op::Op::File(file)) = pb::llb::Op::decode(bytes.as_slice())?.op {
            for action in file.actions {
                let ts = match action.action {
                    Some(pb::llb::file_action::Action::Mkfile(m)) => m.timestamp,
                    Some(pb::llb::file_action::Action::Mkdir(m)) => m.timestamp,
                    Some(pb::llb::file_action::Action::Copy(c)) => c.timestamp,
                    _ => continue,
                };
                assert_eq!(ts, 1_700_000_000_000_000_000);
                stamped += 1;
            }
        }
    }
    assert!(stamped > 3);
    let second = build().await?;
    let defs = |h: &FakeHandle| {
        h.solves()
            .iter()
            .map(|s| s.definition.clone().unwrap_or_default().encode_to_vec())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        defs(&first),
        defs(&second),
        "the same spec and options give the same LLB bytes"
    );
    Ok(())
}

const WORKERS_AMD64_386: &str = r#"[{"id":"w1","labels":{},"platforms":[{"architecture":"amd64","os":"linux"},{"architecture":"386","os":"linux"}]}]"#;

#[tokio::test]
async fn several_platforms_return_a_refs_map_with_per_platform_configs() -> TestResult {
    let handle = run_with_env(
        fake("v0.32", SSHD),
        &[
            ("filename", "Sysfile"),
            ("platform", "linux/amd64,linux/386"),
        ],
        &[("BUILDKIT_WORKERS", WORKERS_AMD64_386)],
    )
    .await?;
    let returned = handle.returned().expect("Return was called");
    assert!(returned.error.is_none(), "{:?}", returned.error);
    let result = returned.result.expect("a result");
    let Some(pb::gateway::result::Result::Refs(refs)) = result.result else {
        panic!("not a refs map")
    };
    assert_eq!(
        refs.refs.keys().collect::<Vec<_>>(),
        ["linux/386", "linux/amd64"]
    );
    for (id, arch) in [("linux/amd64", "amd64"), ("linux/386", "386")] {
        let config: serde_json::Value =
            serde_json::from_slice(&result.metadata[&format!("containerimage.config/{id}")])?;
        assert_eq!(config["architecture"], arch);
    }
    let platforms: serde_json::Value = serde_json::from_slice(&result.metadata["refs.platforms"])?;
    assert_eq!(platforms["Platforms"][0]["ID"], "linux/amd64");
    assert_eq!(platforms["Platforms"][1]["Platform"]["architecture"], "386");
    // Each platform's exec ops run on that platform.
    let archs: std::collections::BTreeSet<String> = handle
        .solves()
        .iter()
        .filter_map(|s| s.definition.clone())
        .flat_map(|d| d.def)
        .filter_map(|b| pb::llb::Op::decode(b.as_slice()).ok())
        .filter(|op| matches!(op.op, Some(pb::llb::op::Op::Exec(_))))
        .filter_map(|op| op.platform.map(|p| p.architecture))
        .collect();
    assert_eq!(archs.into_iter().collect::<Vec<_>>(), ["386", "amd64"]);
    Ok(())
}

#[tokio::test]
async fn a_platform_no_worker_can_run_is_a_clear_error() -> TestResult {
    let handle = run_with_env(
        fake("v0.32", SSHD),
        &[("filename", "Sysfile"), ("platform", "linux/arm64")],
        &[("BUILDKIT_WORKERS", WORKERS_AMD64_386)],
    )
    .await?;
    let status = returned_error(&handle);
    assert!(
        status
            .message
            .contains("cannot run build steps for linux/arm64"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("linux/amd64, linux/386"),
        "{}",
        status.message
    );
    Ok(())
}

#[tokio::test]
async fn a_feature_an_old_daemon_lacks_is_a_located_error_naming_the_version() -> TestResult {
    let spec = "[image]\nfrom = \"local/debian:bookworm\"\n\n[[run]]\nsh = \"true\"\nmounts = [{ type = \"tmpfs\", target = \"/scratch\", size = \"64m\" }]\n";
    let old = run(fake("v0.8", spec), &[("filename", "Sysfile")]).await?;
    let status = old
        .returned()
        .and_then(|r| r.error)
        .expect("an error on v0.8");
    assert!(status.message.contains("Sysfile:6"), "{}", status.message);
    assert!(status.message.contains("v0.10"), "{}", status.message);
    let new = run(fake("v0.13", spec), &[("filename", "Sysfile")]).await?;
    returned_config(&new);
    Ok(())
}

#[tokio::test]
async fn outline_targets_and_lint_answer_from_the_spec() -> TestResult {
    let spec = "[image]\nfrom = \"local/debian:bookworm\"\n\n[args]\n# The release to build.\nRELEASE = \"bookworm\"\n\n[[run]]\nsh = \"true\"\nmounts = [{ type = \"secret\", id = \"token\" }]\n";
    let outline = run(
        fake("v0.32", spec),
        &[("filename", "Sysfile"), ("requestid", "frontend.outline")],
    )
    .await?;
    let result = outline.returned().and_then(|r| r.result).expect("a result");
    let json: serde_json::Value = serde_json::from_slice(&result.metadata["result.json"])?;
    assert_eq!(json["args"][0]["name"], "RELEASE");
    assert_eq!(json["args"][0]["value"], "bookworm");
    assert_eq!(json["args"][0]["description"], "The release to build.");
    assert_eq!(json["secrets"][0]["name"], "token");
    assert_eq!(outline.solves().len(), 1, "only the spec is read");

    let targets = run(
        fake("v0.32", spec),
        &[("filename", "Sysfile"), ("requestid", "frontend.targets")],
    )
    .await?;
    let result = targets.returned().and_then(|r| r.result).expect("a result");
    let json: serde_json::Value = serde_json::from_slice(&result.metadata["result.json"])?;
    assert_eq!(json["targets"][0]["name"], "default");

    let lint = run(
        fake("v0.32", spec),
        &[("filename", "Sysfile"), ("requestid", "frontend.lint")],
    )
    .await?;
    let result = lint.returned().and_then(|r| r.result).expect("a result");
    let json: serde_json::Value = serde_json::from_slice(&result.metadata["result.json"])?;
    let rules: Vec<&str> = json["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w["ruleName"].as_str())
        .collect();
    assert!(
        rules.contains(&"UnpinnedBaseImage") && rules.contains(&"NoConsoleLogs"),
        "{rules:?}"
    );
    assert_eq!(result.metadata["result.statuscode"], b"1");
    Ok(())
}

#[tokio::test]
async fn lint_findings_are_warnings_during_a_build() -> TestResult {
    let handle = run(fake("v0.32", SSHD), &[("filename", "Sysfile")]).await?;
    returned_config(&handle);
    let shorts: Vec<String> = handle
        .warnings()
        .iter()
        .map(|w| String::from_utf8_lossy(&w.short).into_owned())
        .collect();
    assert!(
        shorts.iter().any(|s| s.contains("unpinned-base-image")),
        "{shorts:?}"
    );
    Ok(())
}

#[tokio::test]
async fn includes_are_read_from_the_context_and_errors_name_the_fragment() -> TestResult {
    let main = "include = [\"common.toml\"]\n[image]\nfrom = \"local/debian:bookworm\"\n";
    let good = FakeBuildkit::new(caps("v0.32"))
        .with_local("dockerfile", [("Sysfile", main.as_bytes().to_vec())])
        .with_local(
            "context",
            [(
                "common.toml",
                b"[config]\nenv = { FROM_FRAGMENT = \"yes\" }\n".to_vec(),
            )],
        );
    // The fragment changes no unit, so the final state is that of the spec without it.
    let good = with_debian(good, "[image]\nfrom = \"local/debian:bookworm\"\n");
    let handle = run(good, &[("filename", "Sysfile")]).await?;
    let config = returned_config(&handle);
    let env: Vec<&str> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(env.contains(&"FROM_FRAGMENT=yes"), "{env:?}");

    let bad = FakeBuildkit::new(caps("v0.32"))
        .with_local("dockerfile", [("Sysfile", main.as_bytes().to_vec())])
        .with_local(
            "context",
            [("common.toml", b"[config]\n\nbogus = 1\n".to_vec())],
        );
    let handle = run(with_debian(bad, main), &[("filename", "Sysfile")]).await?;
    let status = returned_error(&handle);
    assert!(
        status.message.starts_with("common.toml:3:"),
        "{}",
        status.message
    );
    let json = source_detail(&status)?;
    assert_eq!(json["info"]["filename"], "common.toml");
    Ok(())
}

#[tokio::test]
async fn a_non_utf8_include_is_a_located_error_as_in_the_cli() -> TestResult {
    let main = "include = [\"common.toml\"]\n[image]\nfrom = \"local/debian:bookworm\"\n";
    let bad = FakeBuildkit::new(caps("v0.32"))
        .with_local("dockerfile", [("Sysfile", main.as_bytes().to_vec())])
        .with_local(
            "context",
            [("common.toml", b"[config]\nworkdir = \"/\xff\"\n".to_vec())],
        );
    let handle = run(with_debian(bad, main), &[("filename", "Sysfile")]).await?;
    let status = returned_error(&handle);
    // Not decoded with replacement characters: refused where it is included.
    assert!(
        status.message.starts_with(
            "Sysfile:1:12: the included file `common.toml` cannot be used: it is not UTF-8 text"
        ),
        "{}",
        status.message
    );
    Ok(())
}

/// The Debian base image, its inventory and a healthy final state, for a fake with custom locals.
fn with_debian(fake: FakeBuildkit, spec: &str) -> FakeBuildkit {
    fake.with_image_config(DEBIAN, DIGEST, base_config())
        .with_image_rootfs(
            DEBIAN,
            [
                ("/etc/os-release", b"ID=debian\n".to_vec()),
                ("/lib/systemd/systemd", b"\x7fELF".to_vec()),
                ("/sbin/init", b"\x7fELF".to_vec()),
            ],
        )
        .with_exec_output("sysfile-inventory", inventory())
        .with_exec_output("sysfile-units", units_report(spec))
}

#[tokio::test]
async fn named_build_contexts_feed_files_bind_mounts_and_the_base() -> TestResult {
    let spec = "[image]\nfrom = \"base\"\n\n[[files]]\nfrom = \"extra\"\nsrc = \"motd\"\ndest = \"/etc/motd\"\n\n[[run]]\nsh = \"cat /mnt/tools/x\"\nmounts = [{ type = \"bind\", from = \"tools\", source = \"/bin\", target = \"/mnt/tools\" }]\n";
    let fake = with_debian(
        FakeBuildkit::new(caps("v0.32"))
            .with_local("dockerfile", [("Sysfile", spec.as_bytes().to_vec())]),
        spec,
    );
    let handle = run(
        fake,
        &[
            ("filename", "Sysfile"),
            ("context:base", "docker-image://local/debian:bookworm"),
            ("context:extra", "local:extra"),
            ("context:tools::linux/amd64", "docker-image://busybox:1"),
        ],
    )
    .await?;
    let config = returned_config(&handle);
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.base.name"],
        "docker.io/local/debian:bookworm"
    );
    let def = handle
        .solves()
        .last()
        .and_then(|s| s.definition.clone())
        .unwrap();
    let sources: Vec<String> = def
        .def
        .iter()
        .filter_map(|b| match pb::llb::Op::decode(b.as_slice()).ok()?.op? {
            pb::llb::op::Op::Source(s) => Some(format!(
                "{} {:?}",
                s.identifier,
                s.attrs.get("local.includepattern")
            )),
            _ => None,
        })
        .collect();
    assert!(
        sources
            .iter()
            .any(|s| s == "local://extra Some(\"[\\\"motd\\\"]\")"),
        "{sources:?}"
    );
    assert!(
        sources
            .iter()
            .any(|s| s.starts_with("docker-image://docker.io/library/busybox:1")),
        "{sources:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_file_from_an_unknown_build_context_is_a_located_error() -> TestResult {
    let spec = "[image]\nfrom = \"local/debian:bookworm\"\n\n[[files]]\nfrom = \"extra\"\nsrc = \"motd\"\ndest = \"/etc/motd\"\n";
    let handle = run(fake("v0.32", spec), &[("filename", "Sysfile")]).await?;
    let status = returned_error(&handle);
    assert!(
        status.message.starts_with("Sysfile:4:"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("--build-context extra="),
        "{}",
        status.message
    );
    Ok(())
}

/// The same build on the recorded cap sets of BuildKit v0.8 (Docker 20.10), v0.13 (Docker 26) and
/// v0.32: it succeeds on each, and only uses what each daemon has.
#[tokio::test]
async fn the_same_build_works_on_every_recorded_buildkit() -> TestResult {
    let mut bytes_per_version = Vec::new();
    for version in ["v0.8", "v0.13", "v0.32"] {
        let handle = run(fake(version, SSHD), &[("filename", "Sysfile")]).await?;
        let config = returned_config(&handle);
        assert_eq!(config["config"]["StopSignal"], "SIGRTMIN+3", "{version}");
        let stubs = exec_ops(&handle).iter().all(|e| {
            e.meta
                .as_ref()
                .is_some_and(|m| m.remove_mount_stubs_recursive)
        });
        assert_eq!(
            stubs,
            version != "v0.8",
            "removeMountStubsRecursive needs v0.11 ({version})"
        );
        let warned = !handle.warnings().is_empty();
        assert_eq!(warned, version != "v0.8", "Warn needs v0.10 ({version})");
        let def = handle
            .solves()
            .last()
            .and_then(|s| s.definition.clone())
            .unwrap();
        bytes_per_version.push(def.encode_to_vec());
    }
    assert_ne!(
        bytes_per_version[0], bytes_per_version[2],
        "v0.8 gets no removeMountStubsRecursive"
    );
    assert_eq!(
        bytes_per_version[1], bytes_per_version[2],
        "v0.13 and v0.32 get the same LLB"
    );
    Ok(())
}

#[tokio::test]
async fn a_definition_over_an_old_daemons_request_limit_is_a_clear_error() -> TestResult {
    let big = "x".repeat(5 * 1024 * 1024);
    let spec = format!(
        "[image]\nfrom = \"local/debian:bookworm\"\n\n[[files]]\ncontent = \"{big}\"\ndest = \"/srv/big\"\n"
    );
    let old = run(fake("v0.13", &spec), &[("filename", "Sysfile")]).await?;
    let status = old
        .returned()
        .and_then(|r| r.error)
        .expect("an error on v0.13 (4 MiB requests)");
    assert!(
        status.message.contains("request limit"),
        "{}",
        &status.message[..status.message.len().min(300)]
    );
    Ok(())
}

#[tokio::test]
async fn the_base_user_never_reaches_pid_1() -> TestResult {
    let config = br#"{"architecture":"amd64","os":"linux","config":{"User":"nobody","Shell":["/bin/bash","-c"],"Env":["PATH=/usr/bin:/bin"]}}"#;
    let handle = run(
        fake("v0.32", SSHD).with_image_config(DEBIAN, DIGEST, config.to_vec()),
        &[("filename", "Sysfile")],
    )
    .await?;
    let config = returned_config(&handle);
    assert!(
        config["config"].get("User").is_none(),
        "{}",
        config["config"]
    );
    assert!(config["config"].get("Shell").is_none());
    Ok(())
}

#[tokio::test]
async fn cache_imports_reach_every_solve_that_builds_steps() -> TestResult {
    let handle = run(
        fake("v0.32", SSHD),
        &[
            ("filename", "Sysfile"),
            ("cache-from", "registry.example/cache:sshd"),
        ],
    )
    .await?;
    returned_config(&handle);
    for solve in handle.solves() {
        let def = solve.definition.clone().unwrap_or_default();
        let builds = def.def.iter().any(|b| {
            pb::llb::Op::decode(b.as_slice())
                .is_ok_and(|op| matches!(op.op, Some(pb::llb::op::Op::Source(ref s)) if s.identifier.starts_with("docker-image://")))
        });
        if builds {
            assert_eq!(
                solve.cache_imports.len(),
                1,
                "a solve with build steps lacks the cache import"
            );
            assert_eq!(
                solve.cache_imports[0].attrs["ref"],
                "registry.example/cache:sshd"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn git_and_https_build_contexts_become_git_and_http_sources() -> TestResult {
    let spec = "[image]\nfrom = \"local/debian:bookworm\"\n\n[[files]]\nfrom = \"repo\"\nsrc = \"etc/app.conf\"\ndest = \"/etc/app.conf\"\n\n[[files]]\nfrom = \"motd\"\nsrc = \"motd\"\ndest = \"/etc/motd\"\n";
    let fake = with_debian(
        FakeBuildkit::new(caps("v0.32"))
            .with_local("dockerfile", [("Sysfile", spec.as_bytes().to_vec())]),
        spec,
    );
    let handle = run(
        fake,
        &[
            ("filename", "Sysfile"),
            ("context:repo", "https://github.com/example/app.git#v1.2"),
            ("context:motd", "https://example.com/motd"),
        ],
    )
    .await?;
    returned_config(&handle);
    let def = handle
        .solves()
        .last()
        .and_then(|s| s.definition.clone())
        .unwrap();
    let sources: Vec<pb::llb::SourceOp> = def
        .def
        .iter()
        .filter_map(|b| match pb::llb::Op::decode(b.as_slice()).ok()?.op? {
            pb::llb::op::Op::Source(s) => Some(s),
            _ => None,
        })
        .collect();
    let git = sources
        .iter()
        .find(|s| s.identifier.starts_with("git://"))
        .expect("a git source");
    assert_eq!(git.identifier, "git://github.com/example/app.git#v1.2");
    assert_eq!(
        git.attrs["git.fullurl"],
        "https://github.com/example/app.git"
    );
    assert!(
        sources
            .iter()
            .any(|s| s.identifier == "https://example.com/motd"),
        "{sources:?}"
    );
    Ok(())
}

const OCI_DIGEST: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const OCI_TOOLS: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

/// Every source op of every solved definition, with the caps its metadata asks for.
fn all_sources(handle: &FakeHandle) -> Vec<(pb::llb::Op, pb::llb::SourceOp, Vec<String>)> {
    let mut out = Vec::new();
    for solve in handle.solves() {
        let def = solve.definition.clone().unwrap_or_default();
        for bytes in &def.def {
            let Ok(op) = pb::llb::Op::decode(bytes.as_slice()) else {
                continue;
            };
            if let Some(pb::llb::op::Op::Source(source)) = op.op.clone() {
                let caps = def
                    .metadata
                    .get(&sysfile::llb::digest(bytes))
                    .map(|m| m.caps.keys().cloned().collect())
                    .unwrap_or_default();
                out.push((op, source, caps));
            }
        }
    }
    out
}

/// BuildKit passes every named context, also the OCI layout it loaded the frontend from
/// (`--opt context:local/sysfile:dev=oci-layout://…`): one the spec never names is ignored, even
/// a kind sysfile cannot read and even on a daemon without oci-layout sources.
#[tokio::test]
async fn named_contexts_the_spec_never_uses_are_ignored() -> TestResult {
    for version in ["v0.8", "v0.32"] {
        let handle = run(
            fake(version, SSHD),
            &[
                ("filename", "Sysfile"),
                (
                    "context:local/sysfile:dev",
                    &format!("oci-layout://frontend-store@{OCI_DIGEST}"),
                ),
                ("context:from-input", "input:other"),
                ("context:odd", "ftp://example.com/x"),
            ],
        )
        .await?;
        let config = returned_config(&handle);
        assert_eq!(config["config"]["StopSignal"], "SIGRTMIN+3", "{version}");
        assert!(
            all_sources(&handle)
                .iter()
                .all(|(_, s, _)| !s.identifier.starts_with("oci-layout://")),
            "an unused context is never loaded ({version})"
        );
        assert!(
            handle.resolves().iter().all(|r| r.resolver_type == 0),
            "an unused context is never resolved ({version})"
        );
    }
    Ok(())
}

/// The Debian root filesystem a layout image holds in these tests.
fn debian_rootfs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("/etc/os-release", b"ID=debian\n".to_vec()),
        ("/lib/systemd/systemd", b"\x7fELF".to_vec()),
        ("/sbin/init", b"\x7fELF".to_vec()),
    ]
}

#[tokio::test]
async fn oci_layout_contexts_feed_the_base_files_and_bind_mounts() -> TestResult {
    for version in ["v0.13", "v0.32"] {
        oci_layout_build(version).await?;
    }
    Ok(())
}

async fn oci_layout_build(version: &str) -> TestResult {
    let spec = "[image]\nfrom = \"base\"\n\n[[files]]\nfrom = \"site\"\nsrc = \"index.html\"\ndest = \"/srv/index.html\"\n\n[[run]]\nsh = \"ls /mnt/tools\"\nmounts = [{ type = \"bind\", from = \"tools\", source = \"/usr/bin\", target = \"/mnt/tools\" }]\n";
    let layout_config = br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin:/bin"],"Labels":{"from.layout":"yes"}},"rootfs":{"type":"layers","diff_ids":[]},"history":[{"created_by":"made in a layout"}]}"#;
    let fake = FakeBuildkit::new(caps(version))
        .with_local("dockerfile", [("Sysfile", spec.as_bytes().to_vec())])
        .with_oci_layout(
            "layouts",
            OCI_DIGEST,
            layout_config.to_vec(),
            debian_rootfs(),
        )
        .with_oci_layout(
            "layouts",
            OCI_TOOLS,
            layout_config.to_vec(),
            debian_rootfs(),
        )
        .with_exec_output("sysfile-inventory", inventory())
        .with_exec_output("sysfile-units", units_report(spec));
    let handle = run(
        fake,
        &[
            ("filename", "Sysfile"),
            (
                "context:base",
                &format!("oci-layout://layouts@{OCI_DIGEST}"),
            ),
            (
                "context:site",
                &format!("oci-layout://layouts:site@{OCI_TOOLS}"),
            ),
            (
                "context:tools::linux/amd64",
                &format!("oci-layout://layouts@{OCI_TOOLS}"),
            ),
        ],
    )
    .await?;
    let config = returned_config(&handle);
    // The base's config and history come from the layout, resolved through the store.
    assert_eq!(config["config"]["Labels"]["from.layout"], "yes");
    assert_eq!(config["history"][0]["created_by"], "made in a layout");
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.base.digest"],
        OCI_DIGEST
    );
    let oci_resolves: Vec<_> = handle
        .resolves()
        .into_iter()
        .filter(|r| r.resolver_type == 1)
        .collect();
    assert_eq!(oci_resolves.len(), 1, "only the base's config is resolved");
    assert_eq!(
        oci_resolves[0].r#ref,
        format!("docker.io/library/base@{OCI_DIGEST}")
    );
    assert_eq!(oci_resolves[0].store_id, "layouts");
    assert_eq!(oci_resolves[0].session_id, "session-1");
    assert!(oci_resolves[0].platform.is_some());
    let sources = all_sources(&handle);
    let oci: Vec<_> = sources
        .iter()
        .filter(|(_, s, _)| s.identifier.starts_with("oci-layout://"))
        .collect();
    for (op, source, caps) in &oci {
        assert_eq!(source.attrs["oci.store"], "layouts", "{source:?}");
        assert_eq!(source.attrs["oci.session"], "session-1", "{source:?}");
        assert!(op.platform.is_some(), "an image source has a platform");
        assert!(caps.contains(&"source.ocilayout".to_string()), "{caps:?}");
    }
    let identifiers: std::collections::BTreeSet<&str> =
        oci.iter().map(|(_, s, _)| s.identifier.as_str()).collect();
    assert_eq!(
        identifiers.into_iter().collect::<Vec<_>>(),
        [
            format!("oci-layout://docker.io/library/base@{OCI_DIGEST}"),
            format!("oci-layout://docker.io/library/site@{OCI_TOOLS}"),
            format!("oci-layout://docker.io/library/tools@{OCI_TOOLS}"),
        ]
    );
    assert!(
        sources
            .iter()
            .all(|(_, s, _)| !s.identifier.starts_with("docker-image://")),
        "nothing is pulled: {:?}",
        sources
            .iter()
            .map(|(_, s, _)| &s.identifier)
            .collect::<Vec<_>>()
    );
    // The base inspection reads the layout image too.
    let inspected = handle.ref_files(&format!("oci:layouts@{OCI_DIGEST}"));
    assert!(inspected.is_some_and(|fs| fs.contains_key("etc/os-release")));
    Ok(())
}

#[tokio::test]
async fn an_oci_layout_context_on_a_daemon_without_it_is_a_located_error() -> TestResult {
    let spec = "[image]\nfrom = \"local/debian:bookworm\"\n\n[[files]]\nfrom = \"site\"\nsrc = \"index.html\"\ndest = \"/srv/index.html\"\n";
    let handle = run(
        fake("v0.8", spec),
        &[
            ("filename", "Sysfile"),
            (
                "context:site",
                &format!("oci-layout://layouts@{OCI_DIGEST}"),
            ),
        ],
    )
    .await?;
    let status = returned_error(&handle);
    assert!(
        status.message.starts_with("Sysfile:4:"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("source.ocilayout")
            && status
                .message
                .contains("available from BuildKit v0.11 (Docker 24.0 or newer)"),
        "{}",
        status.message
    );
    assert_eq!(handle.solves().len(), 1, "nothing but the spec was solved");
    Ok(())
}

#[tokio::test]
async fn a_used_context_sysfile_cannot_read_is_an_error_at_the_entry_that_uses_it() -> TestResult {
    let spec = "[image]\nfrom = \"local/debian:bookworm\"\n\n[[run]]\nsh = \"true\"\nmounts = [{ type = \"bind\", from = \"tools\", source = \"/\", target = \"/mnt\" }]\n";
    for (value, expected) in [
        ("input:other", "is not supported"),
        ("oci-layout://layouts", "has no `@sha256:…` digest"),
        ("docker-image://Not Valid", "not a valid image reference"),
    ] {
        let handle = run(
            fake("v0.32", spec),
            &[("filename", "Sysfile"), ("context:tools", value)],
        )
        .await?;
        let status = returned_error(&handle);
        assert!(
            status.message.starts_with("Sysfile:6:"),
            "{value}: {}",
            status.message
        );
        assert!(status.message.contains(expected), "{}", status.message);
    }
    Ok(())
}

/// A build argument interpolated into a spec entry reaches the command that runs, but progress
/// names, the image history and the image config show the spec's `${TOKEN}`, never its value.
#[tokio::test]
async fn a_build_arg_value_never_reaches_names_history_or_the_config() -> TestResult {
    const SECRET: &str = "s3cr3t-9f8e7d6c5b4a";
    let spec = r#"[image]
from = "local/debian:bookworm"

[args]
TOKEN = "placeholder"

[packages]
install = ["openssh-server", "pkg-${TOKEN}"]

[[files]]
content = "x"
dest = "/etc/app/${TOKEN}.conf"

[[users]]
name = "u${TOKEN}"

[[run]]
argv = ["/usr/bin/deploy", "--token=${TOKEN}"]

[[run]]
name = "notify ${TOKEN}"
argv = ["/bin/true"]
"#;
    let handle = run(
        fake("v0.32", spec),
        &[("filename", "Sysfile"), ("build-arg:TOKEN", SECRET)],
    )
    .await?;
    let config = returned_config(&handle);
    let solves = handle.solves();
    let def = solves
        .last()
        .and_then(|s| s.definition.clone())
        .expect("a definition");
    // The value is interpolated where the spec asked for it: the test is not vacuous.
    assert!(
        exec_ops(&handle).iter().any(|e| e
            .meta
            .as_ref()
            .is_some_and(|m| m.args.iter().any(|a| a == &format!("--token={SECRET}")))),
        "the run step gets the value"
    );
    for solve in &solves {
        let def = solve.definition.clone().unwrap_or_default();
        for metadata in def.metadata.values() {
            for (key, value) in &metadata.description {
                assert!(!value.contains(SECRET), "{key} = {value}");
            }
        }
    }
    let text = serde_json::to_string(&config)?;
    assert!(!text.contains(SECRET), "the image config shows the value");
    for request in handle.resolves() {
        assert!(!request.log_name.contains(SECRET), "{}", request.log_name);
    }
    let history: Vec<&str> = config["history"]
        .as_array()
        .expect("a history")
        .iter()
        .filter_map(|h| h["created_by"].as_str())
        .collect();
    for expected in [
        "[sysfile] install packages: openssh-server pkg-${TOKEN}",
        "[sysfile] write /etc/app/${TOKEN}.conf",
        "[sysfile] user u${TOKEN}",
        "[sysfile] run: /usr/bin/deploy --token=${TOKEN}",
        "[sysfile] run: notify ${TOKEN}",
    ] {
        assert!(history.contains(&expected), "{expected} in {history:?}");
    }
    let names: Vec<&String> = def
        .metadata
        .values()
        .filter_map(|m| m.description.get("llb.customname"))
        .collect();
    assert!(
        names
            .iter()
            .any(|n| *n == "[sysfile] run: /usr/bin/deploy --token=${TOKEN} (Sysfile:17)"),
        "{names:?}"
    );
    Ok(())
}

/// Docker 20.10 (BuildKit v0.8) shows no source location for a failing step: every step a spec
/// entry produces names its line in its progress name, which the daemon always shows.
#[tokio::test]
async fn every_step_name_carries_its_spec_line() -> TestResult {
    let handle = run(fake("v0.8", SSHD), &[("filename", "Sysfile")]).await?;
    returned_config(&handle);
    let def = handle
        .solves()
        .last()
        .and_then(|s| s.definition.clone())
        .expect("a definition");
    let names: std::collections::BTreeSet<String> = def
        .metadata
        .values()
        .filter_map(|m| m.description.get("llb.customname").cloned())
        .collect();
    for expected in [
        "[sysfile] base docker.io/local/debian:bookworm@sha256:1111111111111111111111111111111111111111111111111111111111111111 (Sysfile:3)",
        "[sysfile] install packages: openssh-server (Sysfile:5)",
        "[sysfile] user admin (Sysfile:8)",
        "[sysfile] authorized keys for admin (Sysfile:8)",
        "[sysfile] enable units: ssh, default multi-user.target, mask 49 (Sysfile:13)",
        "[sysfile] systemd configuration; image hygiene",
    ] {
        assert!(names.contains(expected), "{expected} in {names:?}");
    }
    Ok(())
}

#[tokio::test]
async fn a_base_context_that_is_no_image_is_an_error_at_from() -> TestResult {
    let spec = "[image]\nfrom = \"base\"\n";
    for (value, expected) in [
        (
            "local:somedir",
            "replaces the base image, but it is not an image",
        ),
        ("input:other", "is not supported"),
    ] {
        let handle = run(
            fake("v0.32", spec),
            &[("filename", "Sysfile"), ("context:base", value)],
        )
        .await?;
        let status = returned_error(&handle);
        assert!(
            status.message.starts_with("Sysfile:2:"),
            "{value}: {}",
            status.message
        );
        assert!(status.message.contains(expected), "{}", status.message);
        assert_eq!(handle.solves().len(), 1, "nothing but the spec was solved");
    }
    Ok(())
}

/// The frontend loads the build context while it resolves and inspects the base: one evaluated
/// solve of the very source op the image's graph reads (so the daemon transfers the context
/// once, before the build needs it), sent before the build's own solves; the `authorized_keys`
/// files are looked up in it. A spec that reads no context file loads none.
#[tokio::test]
async fn the_build_context_is_loaded_beside_the_base_with_the_images_own_op() -> TestResult {
    let with_file =
        format!("{SSHD}\n[[files]]\nsrc = \"keys/admin.pub\"\ndest = \"/etc/app/admin.pub\"\n");
    let digest_of = |bytes: &Vec<u8>| sysfile::llb::digest(bytes);
    for spec in [SSHD, with_file.as_str()] {
        let handle = run(fake("v0.32", spec), &[("filename", "Sysfile")]).await?;
        returned_config(&handle);
        let solves = handle.solves();
        // A solve of the main context alone: one `local://context` op and the terminal.
        let context_only = |s: &pb::gateway::SolveRequest| {
            let definition = s.definition.as_ref()?;
            let [source, _terminal] = definition.def.as_slice() else {
                return None;
            };
            let op = pb::llb::Op::decode(source.as_slice()).ok()?;
            match op.op {
                Some(pb::llb::op::Op::Source(s)) if s.identifier == "local://context" => {
                    Some((source.clone(), s.attrs))
                }
                _ => None,
            }
        };
        let loads: Vec<(usize, Vec<u8>, std::collections::BTreeMap<String, String>)> = solves
            .iter()
            .enumerate()
            .filter_map(|(i, s)| context_only(s).map(|(op, attrs)| (i, op, attrs)))
            .collect();
        let [(at, op, attrs)] = loads.as_slice() else {
            panic!("one load of the context, not {}", loads.len());
        };
        assert!(solves[*at].evaluate, "the load is evaluated");
        assert!(
            attrs["local.includepattern"].contains("keys/admin.pub"),
            "{attrs:?}"
        );
        let image_ops = |s: &pb::gateway::SolveRequest| -> Vec<String> {
            s.definition
                .as_ref()
                .map(|d| d.def.iter().map(digest_of).collect())
                .unwrap_or_default()
        };
        let builds: Vec<usize> = solves
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.definition.as_ref().is_some_and(|d| {
                    sysfile::llb::dump::render(d).is_ok_and(|dump| dump.contains("image hygiene"))
                })
            })
            .map(|(i, _)| i)
            .collect();
        assert!(!builds.is_empty());
        for build in builds {
            assert!(
                *at < build,
                "the context is loaded before the build is solved"
            );
            assert!(
                image_ops(&solves[build]).contains(&digest_of(op)),
                "the build reads the same context op"
            );
        }
    }
    let none = "[image]\nfrom = \"local/debian:bookworm\"\n";
    let handle = run(fake("v0.32", none), &[("filename", "Sysfile")]).await?;
    returned_config(&handle);
    assert!(
        handle
            .solves()
            .iter()
            .all(|s| s.definition.as_ref().is_none_or(|d| d
                .def
                .iter()
                .all(|op| !String::from_utf8_lossy(op).contains("local://context")))),
        "no context is loaded"
    );
    Ok(())
}

/// The sshd example with a context that lacks its `authorized_keys` file (`keys/admin.pub`).
fn sshd_without_its_key() -> FakeBuildkit {
    FakeBuildkit::new(caps("v0.32"))
        .with_local("dockerfile", [("Sysfile", SSHD.as_bytes().to_vec())])
        .with_local(
            "context",
            [("keys/other.pub", b"ssh-ed25519 AAAA x".to_vec())],
        )
}

/// The error of [`sshd_without_its_key`]: located at the user's `authorized_keys` entry.
fn assert_missing_admin_key(message: &str) {
    assert!(message.starts_with("Sysfile:10:"), "{message}");
    assert!(
        message.contains("`keys/admin.pub` is not in the build context"),
        "{message}"
    );
}

/// An `authorized_keys` file that is not in the build context is a located frontend error at the
/// entry that names it, before any step runs (not a failing build step).
#[tokio::test]
async fn a_missing_authorized_keys_file_is_a_located_error() -> TestResult {
    let fake = sshd_without_its_key()
        .with_image_config(DEBIAN, DIGEST, base_config())
        .with_image_rootfs(
            DEBIAN,
            [(
                "/etc/os-release",
                b"ID=debian\nVERSION_ID=\"12\"\n".to_vec(),
            )],
        );
    let handle = run(fake, &[("filename", "Sysfile")]).await?;
    let status = returned_error(&handle);
    assert_missing_admin_key(&status.message);
    let execs = handle
        .solves()
        .iter()
        .filter_map(|solve| solve.definition.as_ref())
        .flat_map(|definition| definition.def.iter())
        .filter(|bytes| {
            matches!(
                pb::llb::Op::decode(bytes.as_slice())
                    .ok()
                    .and_then(|op| op.op),
                Some(pb::llb::op::Op::Exec(_))
            )
        })
        .count();
    assert_eq!(execs, 0, "a build step was solved before the check");
    Ok(())
}

/// The context is loaded beside the base's resolution, and its error wins: with a base that
/// cannot be resolved too, a missing context file is the error (the user's to fix first).
#[tokio::test]
async fn a_missing_context_file_wins_over_a_base_that_cannot_be_resolved() -> TestResult {
    let fake = sshd_without_its_key();
    let handle = run(fake, &[("filename", "Sysfile")]).await?;
    let status = returned_error(&handle);
    assert_missing_admin_key(&status.message);
    assert!(
        !status.message.contains("cannot resolve the base image"),
        "{}",
        status.message
    );
    Ok(())
}

/// A Sysfile that is not UTF-8 is a located `not-utf8` error, as in `sysfile check`.
#[tokio::test]
async fn a_non_utf8_sysfile_is_a_located_error() -> TestResult {
    let mut bytes = b"[image]\nfrom = \"local/debian:bookworm\"\n# caf".to_vec();
    bytes.extend([0xe9, b'\n']);
    let fake = FakeBuildkit::new(caps("v0.32")).with_local("dockerfile", [("Sysfile", bytes)]);
    let handle = run(fake, &[("filename", "Sysfile")]).await?;
    let status = returned_error(&handle);
    assert!(
        status.message.starts_with("Sysfile:3:"),
        "{}",
        status.message
    );
    assert!(status.message.contains("not UTF-8"), "{}", status.message);
    Ok(())
}

/// The plan decides the entrypoint once, from what the units step's report found: when the
/// built image's `/sbin/init` is another init system, systemd's own binary is PID 1.
#[tokio::test]
async fn an_sbin_init_that_is_not_systemd_gives_the_systemd_binary_as_entrypoint() -> TestResult {
    let report: Vec<(&'static str, String)> = units_report(SSHD)
        .into_iter()
        .map(|(k, v)| match k {
            "init" => (k, "/bin/busybox\n".to_string()),
            _ => (k, v),
        })
        .collect();
    let handle = build_reporting(SSHD, report).await?;
    let config = returned_config(&handle);
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/lib/systemd/systemd"])
    );
    Ok(())
}

/// The `short` line of every warning the build sent.
fn warning_lines(handle: &FakeHandle) -> Vec<String> {
    handle
        .warnings()
        .iter()
        .map(|w| {
            let detail: Vec<String> = w
                .detail
                .iter()
                .map(|d| String::from_utf8_lossy(d).into_owned())
                .collect();
            format!("{} {}", String::from_utf8_lossy(&w.short), detail.join(" "))
        })
        .collect()
}

/// `units_report(spec)` with some files replaced.
fn report_with(spec: &str, replace: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    units_report(spec)
        .into_iter()
        .map(|(k, v)| match replace.iter().find(|(name, _)| *name == k) {
            Some((_, text)) => (k, text.to_string()),
            None => (k, v),
        })
        .collect()
}

/// The `errdefs.Source` detail of an error status, as JSON.
fn source_detail(status: &pb::rpc::Status) -> Result<serde_json::Value, serde_json::Error> {
    let detail = status
        .details
        .iter()
        .find(|d| d.type_url == errors::SOURCE_TYPE_URL)
        .expect("a Source detail");
    serde_json::from_slice(&detail.value)
}

/// Builds `spec` (on v0.32) with `report` as the units step's report.
async fn build_reporting(
    spec: &str,
    report: Vec<(&'static str, String)>,
) -> Result<FakeHandle, Box<dyn std::error::Error>> {
    run(
        fake("v0.32", spec).with_exec_output("sysfile-units", report),
        &[("filename", "Sysfile")],
    )
    .await
}

/// The rule names of a `frontend.lint` answer.
async fn lint_rules(fake: FakeBuildkit) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let lint = run(
        fake,
        &[("filename", "Sysfile"), ("requestid", "frontend.lint")],
    )
    .await?;
    let result = lint.returned().and_then(|r| r.result).expect("a result");
    let json: serde_json::Value = serde_json::from_slice(&result.metadata["result.json"])?;
    Ok(json["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w["ruleName"].as_str().map(str::to_string))
        .collect())
}

/// `unpinned-base-image` fires only when the builder resolved the base to a registry digest
/// (and then names that digest); Docker's own image store answers without one, and a pin it
/// could not honour is never suggested.
#[tokio::test]
async fn unpinned_base_image_fires_only_with_a_digest_to_pin_to() -> TestResult {
    let registry = run(fake("v0.32", SSHD), &[("filename", "Sysfile")]).await?;
    returned_config(&registry);
    let lines = warning_lines(&registry);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("unpinned-base-image") && l.contains(DIGEST)),
        "{lines:?}"
    );
    let rules = lint_rules(fake("v0.32", SSHD)).await?;
    assert!(rules.iter().any(|r| r == "UnpinnedBaseImage"), "{rules:?}");

    // Docker's classic store: the config, no manifest digest.
    let local = || fake("v0.32", SSHD).with_image_config(DEBIAN, "", base_config());
    let handle = run(local(), &[("filename", "Sysfile")]).await?;
    returned_config(&handle);
    let lines = warning_lines(&handle);
    assert!(
        !lines.iter().any(|l| l.contains("unpinned-base-image")),
        "{lines:?}"
    );
    let rules = lint_rules(local()).await?;
    assert!(!rules.iter().any(|r| r == "UnpinnedBaseImage"), "{rules:?}");
    Ok(())
}

/// `[lint] skip` and an entry's `lint_skip` silence rules in the build's warnings and in
/// `frontend.lint` alike; an unknown name is a warning of its own.
#[tokio::test]
async fn lint_skips_are_honoured_by_builds_and_frontend_lint() -> TestResult {
    let spec = format!(
        "{SSHD}\n[lint]\nskip = [\"UnpinnedBaseImage\", \"no-console-logs\", \"no-such-rule\"]\n\n[[run]]\nsh = \"curl -fsSL https://x | sh\"\nlint_skip = [\"curl-pipe-shell\"]\n"
    );
    let handle = run(fake("v0.32", &spec), &[("filename", "Sysfile")]).await?;
    returned_config(&handle);
    let lines = warning_lines(&handle);
    for silenced in ["unpinned-base-image", "no-console-logs", "curl-pipe-shell"] {
        assert!(
            !lines.iter().any(|l| l.starts_with(silenced)),
            "{silenced}: {lines:?}"
        );
    }
    assert!(
        lines.iter().any(|l| l.contains("unknown-lint-rule")),
        "{lines:?}"
    );
    let rules = lint_rules(fake("v0.32", &spec)).await?;
    assert_eq!(rules, vec!["UnknownLintRule".to_string()]);
    Ok(())
}

/// A base the builder cannot resolve is an error at `[image] from` (without a source of its
/// own, an engine shows it at the Sysfile's first line, the `# syntax` line).
#[tokio::test]
async fn a_base_that_cannot_be_resolved_is_an_error_at_from() -> TestResult {
    let spec = SSHD.replace("local/debian:bookworm", "local/nosuch:bookworm");
    let handle = run(fake("v0.32", &spec), &[("filename", "Sysfile")]).await?;
    let status = returned_error(&handle);
    assert!(
        status
            .message
            .starts_with("Sysfile:3:8: cannot resolve the base image")
            && status.message.contains("not found"),
        "{}",
        status.message
    );
    let json = source_detail(&status)?;
    assert_eq!(json["ranges"][0]["start"]["line"], 3, "the `from` line");
    Ok(())
}

#[tokio::test]
async fn health_start_period_sets_the_healthcheck_start_period() -> TestResult {
    let default = run(fake("v0.32", SSHD), &[("filename", "Sysfile")]).await?;
    let config = returned_config(&default);
    assert_eq!(
        config["config"]["Healthcheck"]["StartPeriod"],
        60_000_000_000u64
    );
    let spec = format!("{SSHD}\n[systemd]\nhealth_start_period = \"5s\"\n");
    let set = run(fake("v0.32", &spec), &[("filename", "Sysfile")]).await?;
    let config = returned_config(&set);
    assert_eq!(
        config["config"]["Healthcheck"]["StartPeriod"],
        5_000_000_000u64
    );
    Ok(())
}

/// A removal takes a link away, not what it points to, on every daemon: a file op where the
/// daemon has `file.rm.nofollowsymlink` (v0.10+), else (v0.8, Docker 20.10, whose file op would
/// remove the link's target) an exec of `/bin/rm -rf --` with the paths as arguments, in the
/// step's order between the file ops of the actions around it. A glob stays in the file op.
#[tokio::test]
async fn a_removal_takes_the_link_not_its_target_on_every_daemon() -> TestResult {
    let spec = "[image]\nfrom = \"local/debian:bookworm\"\n\n[[files]]\ndest = \"/etc/nginx/sites-enabled/default\"\nremove = true\n";
    let by_exec = r#"exec ["/bin/rm","-rf","--","/etc/nginx/sites-enabled/default"]"#;
    let by_file_op = "rm /etc/nginx/sites-enabled/default allow-not-found=true wildcard=false";
    for (version, exec) in [("v0.8", true), ("v0.13", false), ("v0.32", false)] {
        let handle = run(fake(version, spec), &[("filename", "Sysfile")]).await?;
        returned_config(&handle);
        let image = handle
            .solves()
            .iter()
            .filter_map(|s| s.definition.as_ref())
            .filter_map(|d| sysfile::llb::dump::render(d).ok())
            .find(|dump| dump.contains("image hygiene"))
            .expect("the image was solved");
        assert_eq!(image.contains(by_exec), exec, "{version}: {image}");
        assert_eq!(image.contains(by_file_op), !exec, "{version}: {image}");
        assert!(
            image.contains("rm /run/* allow-not-found=true wildcard=true"),
            "{version}: {image}"
        );
        if exec {
            // The removal first, then the writes of the same step, then its later removals.
            let at = |needle: &str| {
                image
                    .find(needle)
                    .unwrap_or_else(|| panic!("{needle}: {image}"))
            };
            assert!(at(by_exec) < at("mkfile /etc/machine-id"), "{image}");
            assert!(
                at("mkfile /etc/machine-id")
                    < at(r#""/var/lib/systemd/random-seed","/var/lib/systemd/credential.secret""#),
                "{image}"
            );
        }
    }
    Ok(())
}

#[tokio::test]
async fn checks_are_evaluated_beside_verification_and_joined_to_the_image_with_merge_and_diff()
-> TestResult {
    // The leaf is in a directory of its own: the op that makes it early shows where it went.
    let spec = "[image]\nfrom = \"local/debian:bookworm\"\n\n[[files]]\ndest = \"/etc/app/app.conf\"\ncontent = \"x\"\n\n[[run]]\nname = \"app check\"\nargv = [\"/usr/bin/app\", \"--check\"]\ncheck = true\n";
    let evaluated = |handle: &FakeHandle| -> Vec<String> {
        handle
            .solves()
            .iter()
            .filter(|s| s.evaluate)
            .filter_map(|s| s.definition.as_ref())
            .filter_map(|d| sysfile::llb::dump::render(d).ok())
            .collect()
    };
    // The image's solve: the last of a graph with sysfile's finishing steps whose result is
    // neither the report (output 1 of the units step) nor a check's own result (a check op).
    // Returns its dump and whether it was evaluated.
    let image_solve = |handle: &FakeHandle| -> (String, bool) {
        let image = handle.solves().into_iter().rev().find_map(|s| {
            let definition = s.definition.as_ref()?;
            let dump = sysfile::llb::dump::render(definition).ok()?;
            let terminal = pb::llb::Op::decode(definition.def.last()?.as_slice()).ok()?;
            let result = terminal.inputs.first()?;
            let digest = result.digest.strip_prefix("sha256:")?.get(..12)?;
            let result_op = dump
                .lines()
                .find(|l| l.starts_with(&format!("op {digest} ")))?;
            (dump.contains("image hygiene")
                && result.index == 0
                && !result_op.contains("[sysfile] check: "))
            .then_some((dump, s.evaluate))
        });
        image.expect("the image was solved")
    };
    // Merge and diff ops: the check is evaluated beside verification and joins the image.
    let new = run(fake("v0.13", spec), &[("filename", "Sysfile")]).await?;
    returned_config(&new);
    let checks = evaluated(&new);
    assert_eq!(
        checks.iter().filter(|d| d.contains("app check")).count(),
        1,
        "{checks:?}"
    );
    // The image's solve stays lazy: evaluating would build the merged filesystem.
    let (dump, image_evaluated) = image_solve(&new);
    assert!(!image_evaluated, "{dump}");
    assert!(dump.contains("app check (Sysfile:8): done"), "{dump}");
    // The leaf file's diff joins the image in the same merge as the check's.
    assert!(dump.contains("a file no later step reads"), "{dump}");
    assert!(dump.contains("\n  merge 0 1 2 3\n"), "{dump}");
    // v0.8, or the linear build argument: the check is solved (evaluated) on its own only.
    // `declared`: the same, and the leaf file stays where the spec declares it.
    for (version, linear, moves) in [
        ("v0.8", None, true),
        ("v0.13", Some("1"), true),
        ("v0.13", Some("declared"), false),
    ] {
        let mut args = vec![("filename", "Sysfile")];
        args.extend(linear.map(|v| ("build-arg:BUILDKIT_SYSFILE_LINEAR", v)));
        let old = run(fake(version, spec), &args).await?;
        returned_config(&old);
        let checks: Vec<String> = evaluated(&old)
            .into_iter()
            .filter(|d| d.contains("app check"))
            .collect();
        assert_eq!(checks.len(), 1, "{version} {args:?}");
        // In a line the image is evaluated beside verification: the leaf file's op after the
        // units step runs while the report is read.
        let (dump, image_evaluated) = image_solve(&old);
        assert!(image_evaluated, "{version} {args:?}: {dump}");
        assert!(!dump.contains("app check"), "{dump}");
        assert!(!dump.contains("diff lower"), "{dump}");
        assert_eq!(
            dump.contains("directories of the files copied later"),
            moves,
            "{version} {args:?}: {dump}"
        );
    }
    Ok(())
}

/// The ops of `dump` by short digest, each with its lines.
fn ops_by_digest(dump: &str) -> std::collections::BTreeMap<String, String> {
    let mut ops = std::collections::BTreeMap::new();
    for block in dump.split("\nop ") {
        let block = block.strip_prefix("op ").unwrap_or(block);
        if let Some(digest) = block.split_whitespace().next() {
            ops.insert(digest.to_string(), block.to_string());
        }
    }
    ops
}

/// The op a definition's terminal points at, and every op of the definition by short digest.
fn result_op(
    definition: &pb::llb::Definition,
) -> Option<(String, std::collections::BTreeMap<String, String>)> {
    let dump = sysfile::llb::dump::render(definition).ok()?;
    let ops = ops_by_digest(&dump);
    let terminal = pb::llb::Op::decode(definition.def.last()?.as_slice()).ok()?;
    let digest = terminal
        .inputs
        .first()?
        .digest
        .strip_prefix("sha256:")?
        .get(..12)?;
    Some((ops.get(digest)?.clone(), ops))
}

/// The ops `op` reads, in input order.
fn inputs_of(op: &str, ops: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    op.lines()
        .filter_map(|l| l.trim().strip_prefix("input "))
        .filter_map(|i| ops.get(i.split(':').next()?).cloned())
        .collect()
}

/// With merge and diff ops, the leaf files no check sees are solved (evaluated) beside
/// verification — the diff the image's merge uses, or with more than one their diffs merged —
/// so that they are built while the units step runs rather than when the image is exported; a
/// leaf a check sees is built by the check. In a line there is nothing to add: the image itself
/// is evaluated there.
#[tokio::test]
async fn leaf_files_no_check_sees_are_built_beside_verification() -> TestResult {
    let leaf = |dest: &str| format!("[[files]]\ndest = \"{dest}\"\ncontent = \"x\"\n\n");
    let check = "[[run]]\nname = \"app check\"\nargv = [\"/usr/bin/app\", \"--check\"]\nreads = [\"/etc/app\"]\ncheck = true\n";
    let spec = |dests: &[&str]| {
        let leaves: String = dests.iter().map(|d| leaf(d)).collect();
        format!("[image]\nfrom = \"local/debian:bookworm\"\n\n{leaves}{check}")
    };
    // The paths written by the leaves an evaluated solve of leaf diffs builds.
    let built = |handle: &FakeHandle| -> Vec<Vec<String>> {
        let written = |diff: &str, ops: &std::collections::BTreeMap<String, String>| -> String {
            assert!(diff.contains("a file no later step reads"), "{diff}");
            assert!(diff.contains("diff lower=0 upper=1"), "{diff}");
            // The copy's own op, named after what it writes.
            inputs_of(diff, ops)
                .get(1)
                .and_then(|upper| {
                    upper
                        .lines()
                        .next()?
                        .split_once("] write ")
                        .map(|(_, r)| r.to_string())
                })
                .and_then(|rest| rest.split_whitespace().next().map(str::to_string))
                .unwrap_or_default()
        };
        handle
            .solves()
            .iter()
            .filter(|s| s.evaluate)
            .filter_map(|s| result_op(s.definition.as_ref()?))
            .filter_map(|(op, ops)| {
                if op.contains("a file no later step reads") {
                    Some(vec![written(&op, &ops)])
                } else if op.contains("the files no check sees") {
                    Some(
                        inputs_of(&op, &ops)
                            .iter()
                            .map(|d| written(d, &ops))
                            .collect(),
                    )
                } else {
                    None
                }
            })
            .collect()
    };
    let one = spec(&["/etc/app/app.conf", "/srv/site/index.html"]);
    let two = spec(&[
        "/etc/app/app.conf",
        "/srv/site/index.html",
        "/opt/data/a.txt",
    ]);
    for version in ["v0.13", "v0.32"] {
        let handle = run(fake(version, &one), &[("filename", "Sysfile")]).await?;
        returned_config(&handle);
        assert_eq!(built(&handle), [["/srv/site/index.html"]], "{version}");
        let handle = run(fake(version, &two), &[("filename", "Sysfile")]).await?;
        returned_config(&handle);
        assert_eq!(
            built(&handle),
            [["/srv/site/index.html", "/opt/data/a.txt"]],
            "{version}"
        );
    }
    for (version, linear) in [("v0.8", None), ("v0.13", Some("1"))] {
        let mut args = vec![("filename", "Sysfile")];
        args.extend(linear.map(|v| ("build-arg:BUILDKIT_SYSFILE_LINEAR", v)));
        let handle = run(fake(version, &two), &args).await?;
        returned_config(&handle);
        assert!(built(&handle).is_empty(), "{version} {args:?}");
    }
    Ok(())
}

/// A `systemctl` call that fails in the units step is an error at the entry that named the unit,
/// naming the step and the unit; the step's internal script never appears (issue #13).
#[tokio::test]
async fn a_failed_systemctl_call_names_the_unit_at_its_entry_not_the_script() -> TestResult {
    let report = report_with(
        SSHD,
        &[(
            "failures",
            "enable\tssh.service\tFailed to enable unit: Unit file /etc/systemd/system/ssh.service is masked.\n",
        )],
    );
    let handle = build_reporting(SSHD, report).await?;
    let status = returned_error(&handle);
    let message = &status.message;
    assert!(message.starts_with("Sysfile:13:"), "{message}");
    assert!(
        message.contains("the units step")
            && message.contains("`systemctl enable ssh.service` failed")
            && message.contains("is masked"),
        "{message}"
    );
    assert!(
        !message.contains("set -eu") && !message.contains("$out"),
        "{message}"
    );
    Ok(())
}

const DYNAMIC_USER: &str = r#"[image]
from = "local/debian:bookworm"

[[files]]
dest = "/etc/systemd/system/app.service"
content = """
[Service]
DynamicUser=yes
ExecStart=/usr/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""

[[files]]
dest = "/etc/systemd/system/idle.service"
content = """
[Service]
DynamicUser=yes
ExecStart=/usr/bin/sleep infinity
"""

[services]
enable = ["app"]
"#;

/// A record of `$out/audit` for a unit file.
fn collected(kind: &str, name: &str, path: &str, text: &str) -> String {
    format!("file\t{kind}\t{name}\t{path}\t{}\n{text}\n", text.len())
}

/// The unit audit runs on what the units step collected: `DynamicUser=yes` in an enabled unit
/// from `[[files]]` fails the build at that entry (it fails with 226/NAMESPACE at boot, which
/// nothing caught before); in a unit that nothing starts it is a warning at its entry.
#[tokio::test]
async fn the_unit_audit_locates_a_failing_setting_at_its_files_entry() -> TestResult {
    let app = "\n[Service]\nDynamicUser=yes\nExecStart=/usr/bin/sleep infinity\n\n[Install]\nWantedBy=multi-user.target\n";
    let idle = "\n[Service]\nDynamicUser=yes\nExecStart=/usr/bin/sleep infinity\n";
    // `$out/audit` for both units, with app.service also as an enabled unit when `enabled`.
    let audit = |enabled: bool| {
        let mut records = vec![
            collected(
                "unit",
                "app.service",
                "/etc/systemd/system/app.service",
                app,
            ),
            collected(
                "unit",
                "idle.service",
                "/etc/systemd/system/idle.service",
                idle,
            ),
        ];
        if enabled {
            records.push(collected(
                "enabled",
                "app.service",
                "/etc/systemd/system/app.service",
                app,
            ));
        }
        records.push("exec\t/usr/bin/sleep\tyes\n".to_string());
        records.concat()
    };
    let units = "app.service\t\nidle.service\t\nmulti-user.target\t\n";
    let report = report_with(DYNAMIC_USER, &[("units", units), ("audit", &audit(true))]);
    let handle = build_reporting(DYNAMIC_USER, report).await?;
    let status = returned_error(&handle);
    let message = &status.message;
    assert!(message.starts_with("Sysfile:4:"), "{message}");
    assert!(
        message.contains("`DynamicUser=yes` makes app.service fail")
            && message.contains("226/NAMESPACE")
            && message.contains("/etc/systemd/system/app.service, line 3"),
        "{message}"
    );

    // Nothing enables app.service: both units are only warned about, each at its own entry.
    let spec = DYNAMIC_USER.replace("enable = [\"app\"]", "");
    let report = report_with(&spec, &[("units", units), ("audit", &audit(false))]);
    let handle = build_reporting(&spec, report).await?;
    returned_config(&handle);
    let warnings: Vec<(String, i32)> = handle
        .warnings()
        .iter()
        .map(|w| {
            (
                String::from_utf8_lossy(&w.short).into_owned(),
                w.ranges
                    .first()
                    .and_then(|r| r.start.as_ref())
                    .map_or(0, |p| p.line),
            )
        })
        .collect();
    for (unit, line) in [("app.service", 4), ("idle.service", 15)] {
        assert!(
            warnings
                .iter()
                .any(|(w, l)| w.contains(&format!("makes {unit} fail")) && *l == line),
            "{unit} at line {line}: {warnings:?}"
        );
    }
    Ok(())
}

/// `sysfile-ssh-host-keys.service` is written and enabled by the units step only where an SSH
/// server is installed: the script gets it as `--ssh-host-keys`, never as a plain `--enable`,
/// and the image's enabled-units label lists it only when the report found `sshd`.
#[tokio::test]
async fn the_ssh_host_key_unit_is_only_where_an_ssh_server_is() -> TestResult {
    let label = |handle: &FakeHandle| {
        returned_config(handle)["config"]["Labels"]["sysfile.systemd.units.enabled"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let with_ssh = run(fake("v0.32", SSHD), &[("filename", "Sysfile")]).await?;
    assert_eq!(
        label(&with_ssh),
        "ssh.service,sysfile-ssh-host-keys.service"
    );
    let mut states: String = final_state(SSHD)
        .into_iter()
        .find(|(k, _)| *k == "states")
        .map(|(_, v)| v)
        .unwrap_or_default();
    states = states.replace(
        "sysfile-ssh-host-keys.service\tenabled",
        "sysfile-ssh-host-keys.service\tno-ssh-server",
    );
    let report = report_with(SSHD, &[("sshd", ""), ("states", &states)]);
    let without = build_reporting(SSHD, report).await?;
    assert_eq!(label(&without), "ssh.service");
    Ok(())
}

/// The base inspection asks the usual places first (`/etc/os-release`,
/// `/usr/lib/systemd/systemd`, `/sbin/init`: three requests, all at once) and the older ones
/// (`/usr/lib/os-release`, `/lib/systemd/systemd`) only when a usual one is missing; either way
/// the facts decide whether the install step adds the systemd packages.
#[tokio::test]
async fn the_base_is_inspected_in_the_usual_places_first_and_the_older_ones_when_missing()
-> TestResult {
    const INSPECTED: [&str; 5] = [
        "/etc/os-release",
        "/usr/lib/os-release",
        "/usr/lib/systemd/systemd",
        "/lib/systemd/systemd",
        "/sbin/init",
    ];
    let os_release = b"ID=debian\nVERSION_ID=\"12\"\n".to_vec();
    let elf = b"\x7fELF".to_vec();
    // (what the base holds, the paths asked, whether the systemd packages are added)
    let cases: [(&[&str], &[&str], bool); 5] = [
        (
            &["/etc/os-release", "/usr/lib/systemd/systemd", "/sbin/init"],
            &["/etc/os-release", "/usr/lib/systemd/systemd", "/sbin/init"],
            false,
        ),
        (
            &["/usr/lib/os-release", "/lib/systemd/systemd", "/sbin/init"],
            &INSPECTED,
            false,
        ),
        (
            &["/etc/os-release", "/lib/systemd/systemd", "/sbin/init"],
            &[
                "/etc/os-release",
                "/usr/lib/systemd/systemd",
                "/sbin/init",
                "/lib/systemd/systemd",
            ],
            false,
        ),
        (
            &["/etc/os-release", "/usr/lib/systemd/systemd"],
            &["/etc/os-release", "/usr/lib/systemd/systemd", "/sbin/init"],
            true,
        ),
        (
            &["/etc/os-release"],
            &[
                "/etc/os-release",
                "/usr/lib/systemd/systemd",
                "/sbin/init",
                "/lib/systemd/systemd",
            ],
            true,
        ),
    ];
    for (held, asked, adds_systemd) in cases {
        let rootfs: Vec<(&str, Vec<u8>)> = held
            .iter()
            .map(|path| {
                let data = if path.ends_with("os-release") {
                    os_release.clone()
                } else {
                    elf.clone()
                };
                (*path, data)
            })
            .collect();
        let fake = FakeBuildkit::new(caps("v0.32"))
            .with_local("dockerfile", [("Sysfile", SSHD.as_bytes().to_vec())])
            .with_local(
                "context",
                [("keys/admin.pub", b"ssh-ed25519 AAAA test".to_vec())],
            )
            .with_image_config(DEBIAN, DIGEST, base_config())
            .with_image_rootfs(DEBIAN, rootfs)
            .with_exec_output("sysfile-inventory", inventory())
            .with_exec_output("sysfile-units", units_report(SSHD));
        let handle = run(fake, &[("filename", "Sysfile")]).await?;
        returned_config(&handle);
        let mut requested: Vec<String> = handle
            .file_requests()
            .into_iter()
            .map(|(_, path)| path)
            .filter(|path| INSPECTED.contains(&path.as_str()))
            .collect();
        let mut expected: Vec<String> = asked.iter().map(|p| p.to_string()).collect();
        requested.sort();
        expected.sort();
        assert_eq!(requested, expected, "a base holding {held:?}");
        let installs_systemd = exec_ops(&handle).iter().any(|exec| {
            exec.meta
                .as_ref()
                .is_some_and(|meta| meta.args.iter().any(|a| a == "systemd-sysv"))
        });
        assert_eq!(installs_systemd, adds_systemd, "a base holding {held:?}");
    }
    Ok(())
}

/// Runs `spec` on the fake with the debug lines collected instead of written to stderr.
async fn debug_lines(
    spec: &str,
    build_args: &[(&str, &str)],
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let (client, handle) = fake("v0.32", spec).connect().await?;
    let args: Vec<(String, &str)> = build_args
        .iter()
        .map(|(k, v)| (format!("build-arg:{k}"), *v))
        .collect();
    let mut opts = vec![("filename", "Sysfile")];
    opts.extend(args.iter().map(|(k, v)| (k.as_str(), *v)));
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut bridge = Bridge::new(client);
    bridge.set_debug_sink(DebugSink::Lines(lines.clone()));
    let code = frontend::serve(bridge, &frontend_options(&opts, &[])).await?;
    assert_eq!(code, 0);
    returned_config(&handle);
    let lines = lines.lock().map_err(|e| e.to_string())?.clone();
    Ok(lines)
}

#[tokio::test]
async fn debug_logs_every_request_with_when_it_was_sent_and_answered() -> TestResult {
    let lines = debug_lines(SSHD, &[("BUILDKIT_SYSFILE_DEBUG", "1")]).await?;
    // `sysfile: debug: WHAT: MS ms (+SENT..+ANSWERED)`, SENT and ANSWERED in ms from the start.
    let requests: Vec<(String, f64, f64, f64)> =
        lines.iter().filter_map(|l| debug_request(l)).collect();
    for expected in [
        "Ping",
        "ReadFile Sysfile",
        "ResolveImageConfig",
        "ReadFile /etc/os-release",
        "StatFile /usr/lib/systemd/systemd",
        "ReadFile units",
        "Return",
    ] {
        assert!(
            requests.iter().any(|(what, ..)| what.starts_with(expected)),
            "no debug line for {expected}: {lines:#?}"
        );
    }
    assert!(
        requests
            .iter()
            .any(|(what, ..)| what.starts_with("Solve ") && what.ends_with("evaluate=true")),
        "{lines:#?}"
    );
    for (what, took, sent, answered) in &requests {
        assert!(
            sent <= answered,
            "{what}: sent at +{sent}, answered at +{answered}"
        );
        assert!(
            (answered - sent - took).abs() < 0.11,
            "{what}: {took} ms is the time between +{sent} and +{answered}"
        );
    }
    // Ping is the first request, Return the last.
    assert!(
        requests.first().is_some_and(|(what, ..)| what == "Ping"),
        "{lines:#?}"
    );
    let last_sent = requests.iter().map(|r| r.2).fold(0.0, f64::max);
    assert!(
        requests
            .last()
            .is_some_and(|(what, _, sent, _)| what == "Return" && *sent == last_sent),
        "{lines:#?}"
    );
    // The total, and the wall-clock moment the offsets count from (within a day of now).
    let answered: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("sysfile: answered in "))
        .collect();
    let [answered] = answered.as_slice() else {
        panic!("one `answered in` line: {lines:#?}");
    };
    let from = answered
        .rsplit_once("offsets from unix ")
        .map(|(_, t)| t.parse::<f64>())
        .transpose()?
        .ok_or("no offsets-from time")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    assert!((now - from).abs() < 86_400.0, "{answered}");
    // Without the build argument, nothing.
    assert_eq!(debug_lines(SSHD, &[]).await?, Vec::<String>::new());
    Ok(())
}

/// `sysfile: debug: WHAT: MS ms (+SENT..+ANSWERED)` → (WHAT, MS, SENT, ANSWERED).
fn debug_request(line: &str) -> Option<(String, f64, f64, f64)> {
    let rest = line.strip_prefix("sysfile: debug: ")?;
    let (what, times) = rest.rsplit_once(": ")?;
    let (took, offsets) = times.split_once(" ms (+")?;
    let (sent, answered) = offsets.strip_suffix(')')?.split_once("..+")?;
    Some((
        what.to_string(),
        took.parse().ok()?,
        sent.parse().ok()?,
        answered.parse().ok()?,
    ))
}
