//! Generates the protobuf and gRPC types from `proto/` at build time with protox
//! (a pure-Rust protobuf compiler), so a fresh machine needs only cargo.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/pb/ops.proto",
        "proto/gateway/gateway.proto",
        "proto/apicaps/caps.proto",
        "proto/types/worker.proto",
        "proto/fsutil/stat.proto",
        "proto/google/rpc/status.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .btree_map(".")
        .include_file("protos.rs")
        .compile_fds(descriptors)?;
    Ok(())
}
