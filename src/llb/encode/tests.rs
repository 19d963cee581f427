//! Hex vectors produced by BuildKit's Go client (its deterministic marshaller).

use std::collections::BTreeMap;

use super::*;
use crate::pb::llb::{Input, Platform, WorkerConstraints};

fn alpine_image_op() -> Op {
    Op {
        inputs: vec![],
        platform: Some(Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            ..Default::default()
        }),
        constraints: Some(WorkerConstraints::default()),
        op: Some(op::Op::Source(SourceOp {
            identifier: "docker-image://docker.io/library/alpine:latest".into(),
            attrs: BTreeMap::new(),
        })),
    }
}

#[test]
fn image_op_matches_go_bytes_and_digest() {
    let bytes = op_bytes(&alpine_image_op());
    assert_eq!(
        hex::encode(&bytes),
        concat!(
            "520e0a05616d64363412056c696e7578",
            "5a00",
            "1a300a2e646f636b65722d696d6167653a2f2f646f636b65722e696f2f6c6962726172792f616c70696e653a6c6174657374"
        )
    );
    assert_eq!(
        digest(&bytes),
        "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51"
    );
}

#[test]
fn prost_order_differs_and_gives_the_gogo_digest() {
    // prost writes the oneof at its tag: the v0.16 (gogo) bytes, a different digest.
    let prost_bytes = alpine_image_op().encode_to_vec();
    assert_eq!(
        digest(&prost_bytes),
        "sha256:665ba8b2cdc0cb0200e2a42a6b3c0f8f684089f4cd1b81494fbb9805879120f7"
    );
    assert_ne!(prost_bytes, op_bytes(&alpine_image_op()));
}

#[test]
fn terminal_op_matches_go() {
    let terminal = Op {
        inputs: vec![Input {
            digest: "sha256:a7f9733e307dd352c82d43053b783dd17bb2ec2c36214908ce393e41545c8b51"
                .into(),
            index: 0,
        }],
        ..Default::default()
    };
    let bytes = op_bytes(&terminal);
    assert_eq!(&hex::encode(&bytes)[..8], "0a490a47");
    assert_eq!(
        digest(&bytes),
        "sha256:91d1ea452bdb17a7987049c214be5a0ebfc499b11003e057978043b827bee403"
    );
}

#[test]
fn map_entries_keep_empty_values_like_go() {
    let op = Op {
        op: Some(op::Op::Source(SourceOp {
            identifier: String::new(),
            attrs: BTreeMap::from([("b".into(), String::new()), ("a".into(), "1".into())]),
        })),
        ..Default::default()
    };
    let bytes = op_bytes(&op);
    // 1a <len> { 12 06 {0a01 61 1201 31}  12 05 {0a01 62 1200} }
    assert_eq!(hex::encode(&bytes), "1a0f12060a016112013112050a01621200");
    let decoded = decode_op(&bytes).expect("decodes");
    assert_eq!(decoded, op);
}

#[test]
fn negative_indices_are_ten_byte_varints() {
    use crate::pb::llb::{FileAction, FileActionMkDir, FileOp, file_action};
    let op = Op {
        op: Some(op::Op::File(FileOp {
            actions: vec![FileAction {
                input: -1,
                secondary_input: -1,
                output: 0,
                action: Some(file_action::Action::Mkdir(FileActionMkDir {
                    path: "/x".into(),
                    mode: 0o755,
                    make_parents: true,
                    owner: None,
                    timestamp: -1,
                })),
            }],
        })),
        ..Default::default()
    };
    let hex = hex::encode(op_bytes(&op));
    assert!(hex.contains("08ffffffffffffffffff01"), "{hex}");
    assert!(hex.contains("10ffffffffffffffffff01"), "{hex}");
}
