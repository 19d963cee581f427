//! Canonical `Op` bytes: the exact encoding BuildKit's Go client produces, so digests match.
//!
//! protobuf-go (deterministic) writes the non-oneof fields of `Op` in field
//! order (`inputs`, `platform`, `constraints`) and the oneof body last, and it
//! writes every map entry with both key and value, sorted by key. prost puts
//! the oneof at its lowest tag and drops empty map values, so `Op` and the
//! one body with a map (`SourceOp`) are encoded here by hand. Every other
//! message is encoded by prost, which already matches Go for messages without
//! oneofs or maps (field order, omitted zero scalars, packed repeated scalars).

use prost::Message;
use prost::bytes::BufMut;
use prost::encoding::{WireType, encode_key, encode_varint, message};
use sha2::{Digest as _, Sha256};

use crate::pb::llb::{Op, SourceOp, op};

/// Serialises an `Op` exactly as Go's deterministic marshaller does.
pub fn op_bytes(op: &Op) -> Vec<u8> {
    let mut buf = Vec::with_capacity(128);
    for input in &op.inputs {
        message::encode(1, input, &mut buf);
    }
    if let Some(platform) = &op.platform {
        message::encode(10, platform, &mut buf);
    }
    if let Some(constraints) = &op.constraints {
        message::encode(11, constraints, &mut buf);
    }
    match &op.op {
        None => {}
        Some(op::Op::Exec(exec)) => message::encode(2, exec, &mut buf),
        Some(op::Op::Source(source)) => {
            let body = source_op_bytes(source);
            encode_bytes_field(3, &body, &mut buf);
        }
        Some(op::Op::File(file)) => message::encode(4, file, &mut buf),
        Some(op::Op::Merge(merge)) => message::encode(6, merge, &mut buf),
        Some(op::Op::Diff(diff)) => message::encode(7, diff, &mut buf),
    }
    buf
}

/// `sha256:<hex>` of the given bytes: how BuildKit names an op.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn source_op_bytes(source: &SourceOp) -> Vec<u8> {
    let mut buf = Vec::new();
    if !source.identifier.is_empty() {
        encode_bytes_field(1, source.identifier.as_bytes(), &mut buf);
    }
    // `attrs` is a BTreeMap, so iteration is already sorted by key bytes.
    for (key, value) in &source.attrs {
        let mut entry = Vec::with_capacity(key.len() + value.len() + 4);
        encode_bytes_field(1, key.as_bytes(), &mut entry);
        encode_bytes_field(2, value.as_bytes(), &mut entry);
        encode_bytes_field(2, &entry, &mut buf);
    }
    buf
}

/// A length-delimited field, always written (even when empty).
fn encode_bytes_field(tag: u32, bytes: &[u8], buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(bytes.len() as u64, buf);
    buf.put_slice(bytes);
}

/// Decodes an `Op` (for tests and `sysfile llb --dump`): prost decoding accepts any field order.
pub fn decode_op(bytes: &[u8]) -> Result<Op, prost::DecodeError> {
    Op::decode(bytes)
}

#[cfg(test)]
mod tests;
