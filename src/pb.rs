//! The protobuf and gRPC types generated from `proto/` (BuildKit wire subsets).
//!
//! Generated code is never edited by hand; `build.rs` regenerates it on every
//! change under `proto/`. Only `llb` and `gateway` use these types.

#[allow(missing_docs, clippy::all, clippy::pedantic, unreachable_pub)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/protos.rs"));
}

/// File stat records (`fsutil.types`).
pub use generated::fsutil::types as fsutil;
/// `google.rpc.Status`.
pub use generated::google::rpc;
/// API capability records (`moby.buildkit.v1.apicaps`).
pub use generated::moby::buildkit::v1::apicaps;
/// The gateway frontend API (`moby.buildkit.v1.frontend`).
pub use generated::moby::buildkit::v1::frontend as gateway;
/// Worker records (`moby.buildkit.v1.types`).
pub use generated::moby::buildkit::v1::types;
/// LLB: `Op`, `Definition`, source maps (BuildKit package `pb`).
pub use generated::pb as llb;
