//! Integration tests of the gateway client against the in-process fake BuildKit.

use std::collections::BTreeMap;

use prost::Message as _;
use sha2::{Digest as _, Sha256};
use sysfile::diag::{Diagnostic, FileId, SourceFile, Sources, Span};
use sysfile::gateway::errors;
use sysfile::gateway::fake::FakeBuildkit;
use sysfile::gateway::{Bridge, BridgeError, Caps, ResolveMode};
use sysfile::pb;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn recorded(version: &str) -> Result<Caps, Box<dyn std::error::Error>> {
    let path = format!(
        "{}/tests/data/caps/{version}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    Ok(Caps::from_recorded(&std::fs::read_to_string(path)?)?)
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A Definition of `ops` (in order) plus a terminal op on the last one.
fn definition(ops: Vec<pb::llb::Op>) -> pb::llb::Definition {
    let mut def: Vec<Vec<u8>> = ops.iter().map(|op| op.encode_to_vec()).collect();
    if let Some(last) = def.last() {
        let terminal = pb::llb::Op {
            inputs: vec![pb::llb::Input {
                digest: digest(last),
                index: 0,
            }],
            ..Default::default()
        };
        def.push(terminal.encode_to_vec());
    }
    pb::llb::Definition {
        def,
        ..Default::default()
    }
}

fn source(identifier: &str, attrs: &[(&str, &str)]) -> pb::llb::Op {
    pb::llb::Op {
        op: Some(pb::llb::op::Op::Source(pb::llb::SourceOp {
            identifier: identifier.to_string(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })),
        ..Default::default()
    }
}

fn worker() -> pb::types::WorkerRecord {
    pb::types::WorkerRecord {
        id: "w0".into(),
        labels: BTreeMap::from([(
            "org.mobyproject.buildkit.worker.executor".into(),
            "oci".into(),
        )]),
        platforms: vec![pb::llb::Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn recorded_cap_sets_match_the_version_tables() -> TestResult {
    for (file, minor) in [("v0.8", 8), ("v0.13", 13), ("v0.32", 32)] {
        assert_eq!(recorded(file)?, Caps::for_version(minor), "{file}");
    }
    Ok(())
}

#[tokio::test]
async fn ping_reports_caps_and_workers() -> TestResult {
    for (file, hint) in [("v0.8", 8), ("v0.13", 13), ("v0.32", 31)] {
        let caps = recorded(file)?;
        let (client, _h) = FakeBuildkit::new(caps.clone())
            .with_worker(worker())
            .connect()
            .await?;
        let mut bridge = Bridge::new(client);
        let pong = bridge.ping().await?;
        assert_eq!(pong.caps, caps);
        assert_eq!(bridge.caps(), &caps);
        assert_eq!(pong.workers.len(), 1);
        assert_eq!(pong.workers[0].platforms[0].architecture, "amd64");
        assert_eq!(pong.caps.buildkit_version_hint().min_minor, hint, "{file}");
        assert!(pong.caps.require_gateway("solve.base", "solving").is_ok());
        assert!(pong.caps.require_llb("file.base", "file ops").is_ok());
    }
    let v08 = recorded("v0.8")?;
    let err = v08
        .require_gateway("source.metaresolver", "source metadata")
        .err();
    assert!(err.is_some_and(|e| e.to_string().contains("v0.13 (Docker 26.0 or newer)")));
    Ok(())
}

#[tokio::test]
async fn reads_the_spec_from_a_local() -> TestResult {
    let (client, h) = FakeBuildkit::new(recorded("v0.32")?)
        .with_local(
            "dockerfile",
            [("Sysfile", "[image]\nbase = \"debian\"\n"), ("sub/x", "y")],
        )
        .connect()
        .await?;
    let mut bridge = Bridge::new(client);
    bridge.ping().await?;
    let def = definition(vec![source(
        "local://dockerfile",
        &[
            ("local.session", "s1"),
            ("local.followpaths", "[\"Sysfile\"]"),
            ("local.sharedkeyhint", "dockerfile"),
        ],
    )]);
    let cache = vec![pb::gateway::CacheOptionsEntry {
        r#type: "registry".into(),
        attrs: BTreeMap::from([("ref".into(), "reg/cache".into())]),
    }];
    let r = bridge.solve(def.clone(), cache.clone(), false).await?;
    assert_eq!(r, "local:dockerfile");
    assert_eq!(
        bridge.read_file(&r, "Sysfile").await?,
        b"[image]\nbase = \"debian\"\n".to_vec()
    );
    assert_eq!(bridge.read_file(&r, "/sub/x").await?, b"y".to_vec());
    assert_eq!(bridge.read_file_opt(&r, "Dockerfile").await?, None);
    let missing = bridge.read_file(&r, "Dockerfile").await.err();
    assert!(missing.as_ref().is_some_and(BridgeError::is_not_found));
    assert_eq!(bridge.stat_file(&r, "Sysfile").await?.size, 24);
    assert!(bridge.read_file("nope", "Sysfile").await.is_err());

    let solves = h.solves();
    assert_eq!(solves.len(), 1);
    assert!(solves[0].allow_result_return && solves[0].allow_result_array_ref);
    assert!(!solves[0].evaluate);
    assert_eq!(solves[0].cache_imports, cache);
    assert_eq!(solves[0].definition, Some(def));
    Ok(())
}

#[tokio::test]
async fn resolves_image_config_and_reads_its_rootfs() -> TestResult {
    let config = br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin"]}}"#;
    let (client, h) = FakeBuildkit::new(recorded("v0.13")?)
        .with_image_config("debian:bookworm", "sha256:1234", config.to_vec())
        .with_image_rootfs("debian:bookworm", [("/etc/os-release", "ID=debian\n")])
        .connect()
        .await?;
    let mut bridge = Bridge::new(client);
    bridge.ping().await?;
    let platform = pb::llb::Platform {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    };
    let (dgst, cfg) = bridge
        .resolve_image_config(
            "docker.io/library/debian:bookworm",
            Some(platform.clone()),
            ResolveMode::Pull,
            "[internal] load metadata for docker.io/library/debian:bookworm",
        )
        .await?;
    assert_eq!(dgst, "sha256:1234");
    assert_eq!(cfg, config.to_vec());
    let resolves = h.resolves();
    assert_eq!(resolves[0].resolve_mode, "pull");
    assert_eq!(resolves[0].platform, Some(platform));
    assert!(
        bridge
            .resolve_image_config("nosuch", None, ResolveMode::Default, "")
            .await
            .is_err()
    );

    let def = definition(vec![source(
        "docker-image://docker.io/library/debian:bookworm@sha256:1234",
        &[],
    )]);
    let r = bridge.solve(def, vec![], true).await?;
    assert_eq!(
        bridge.read_file(&r, "/etc/os-release").await?,
        b"ID=debian\n".to_vec()
    );
    assert!(h.solves()[0].evaluate);
    Ok(())
}

#[tokio::test]
async fn other_definitions_are_decoded_and_recorded() -> TestResult {
    let (client, h) = FakeBuildkit::new(recorded("v0.32")?).connect().await?;
    let bridge = Bridge::new(client);
    let img = source("docker-image://docker.io/library/alpine:latest", &[]);
    let img_digest = digest(&img.encode_to_vec());
    let exec = pb::llb::Op {
        inputs: vec![pb::llb::Input {
            digest: img_digest,
            index: 0,
        }],
        op: Some(pb::llb::op::Op::Exec(pb::llb::ExecOp {
            meta: Some(pb::llb::Meta {
                args: vec!["true".into()],
                ..Default::default()
            }),
            mounts: vec![pb::llb::Mount {
                input: 0,
                dest: "/".into(),
                output: 0,
                ..Default::default()
            }],
            ..Default::default()
        })),
        ..Default::default()
    };
    let r1 = bridge
        .solve(definition(vec![img, exec]), vec![], false)
        .await?;
    assert!(r1.starts_with("ref-"), "{r1}");
    assert_eq!(
        bridge
            .solve(pb::llb::Definition::default(), vec![], false)
            .await?,
        ""
    );
    let bad = pb::llb::Definition {
        def: vec![vec![0xff, 0xff, 0xff]],
        ..Default::default()
    };
    let err = bridge.solve(bad, vec![], false).await.err();
    assert!(
        matches!(err, Some(BridgeError::Status(s)) if s.code() == tonic::Code::InvalidArgument)
    );
    assert_eq!(h.solves().len(), 3);
    Ok(())
}

#[tokio::test]
async fn warn_is_gated_on_the_cap() -> TestResult {
    let sources = Sources::new(SourceFile::new("Sysfile", "old = 1\n"));
    let diag = Diagnostic::warning(
        "deprecated",
        Span::new(FileId(0), 0..3),
        "old is deprecated",
    );
    let req = errors::warn_request(&diag, &sources, "sha256:00");

    let (client, h) = FakeBuildkit::new(recorded("v0.8")?).connect().await?;
    let mut bridge = Bridge::new(client);
    bridge.ping().await?;
    bridge.warn(req.clone()).await?;
    assert!(h.warnings().is_empty());

    let (client, h) = FakeBuildkit::new(recorded("v0.32")?).connect().await?;
    let mut bridge = Bridge::new(client);
    bridge.ping().await?;
    bridge.warn(req.clone()).await?;
    assert_eq!(h.warnings(), vec![req]);
    Ok(())
}

#[tokio::test]
async fn inputs_are_gated_on_the_cap() -> TestResult {
    let def = definition(vec![source("local://context", &[])]);
    let (client, _h) = FakeBuildkit::new(Caps::from_ids(["solve.base"], ["file.base"]))
        .with_input("context", def.clone())
        .connect()
        .await?;
    let mut bridge = Bridge::new(client);
    bridge.ping().await?;
    assert!(bridge.inputs().await?.is_empty());
    let (client, _h) = FakeBuildkit::new(recorded("v0.8")?)
        .with_input("context", def.clone())
        .connect()
        .await?;
    let mut bridge = Bridge::new(client);
    bridge.ping().await?;
    assert_eq!(
        bridge.inputs().await?,
        BTreeMap::from([("context".to_string(), def)])
    );
    Ok(())
}

#[tokio::test]
async fn return_error_with_source_detail_round_trips() -> TestResult {
    let sources = Sources::new(SourceFile::new("Sysfile", "[image]\nbsae = \"debian\"\n"));
    let diags = vec![
        Diagnostic::error(
            "unknown-key",
            Span::new(FileId(0), 8..12),
            "unknown key `bsae`",
        )
        .with_help("did you mean `base`?"),
    ];
    let status = errors::status_from_diagnostics(&diags, &sources);
    let (client, h) = FakeBuildkit::new(recorded("v0.32")?).connect().await?;
    let bridge = Bridge::new(client);
    bridge.return_error(status.clone()).await?;
    let returned = h.returned().and_then(|r| r.error);
    assert_eq!(returned.as_ref(), Some(&status));
    let returned = returned.unwrap_or_default();
    assert_eq!(returned.code, 2);
    assert_eq!(
        returned.message,
        "Sysfile:2:1: unknown key `bsae` (help: did you mean `base`?)"
    );
    assert_eq!(
        returned.details[0].type_url,
        "github.com/moby/buildkit/errdefs.Source+json"
    );
    let json: serde_json::Value = serde_json::from_slice(&returned.details[0].value)?;
    assert_eq!(json["ranges"][0]["start"]["line"], 2);
    assert_eq!(json["info"]["language"], "TOML");
    // A second Return is refused, as BuildKit does.
    assert!(bridge.return_error(status).await.is_err());
    Ok(())
}

#[tokio::test]
async fn return_result_is_recorded() -> TestResult {
    let (client, h) = FakeBuildkit::new(recorded("v0.8")?).connect().await?;
    let bridge = Bridge::new(client);
    let result = pb::gateway::Result {
        result: Some(pb::gateway::result::Result::Ref(pb::gateway::Ref {
            id: "ref-1".into(),
            def: None,
        })),
        metadata: BTreeMap::from([("containerimage.config".into(), b"{}".to_vec())]),
    };
    bridge.return_result(result.clone()).await?;
    assert_eq!(h.returned().and_then(|r| r.result), Some(result));
    Ok(())
}

#[tokio::test]
async fn buildkit_errors_pass_through_unchanged() -> TestResult {
    let original = pb::rpc::Status {
        code: 2,
        message: "process \"/bin/sh -c false\" did not complete successfully: exit code: 1".into(),
        details: vec![
            prost_types::Any {
                type_url: "github.com/moby/buildkit/errdefs.Vertex+json".into(),
                value: br#"{"digest":"sha256:abcd"}"#.to_vec(),
            },
            prost_types::Any {
                type_url: "github.com/moby/buildkit/errdefs.Solve+json".into(),
                value: br#"{"inputIDs":["x"],"Subject":{"exec":{}}}"#.to_vec(),
            },
            prost_types::Any {
                type_url: "type.example/Unknown".into(),
                value: vec![0, 1, 2, 255],
            },
        ],
    };
    let (client, _h) = FakeBuildkit::new(recorded("v0.32")?)
        .fail_solve_with(original.clone())
        .connect()
        .await?;
    let bridge = Bridge::new(client);
    let err = bridge
        .solve(
            definition(vec![source("local://context", &[])]),
            vec![],
            false,
        )
        .await
        .err();
    let Some(err) = err else {
        return Err("solve should fail".into());
    };
    assert!(err.tonic_status().is_some());
    let passed = err.to_rpc_status();
    assert_eq!(passed.encode_to_vec(), original.encode_to_vec());
    assert_eq!(passed, original);
    Ok(())
}
