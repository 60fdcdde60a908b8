//! Compiles proto/kakehashi/v1 with protox (a protobuf compiler in Rust), so a fresh machine
//! needs no system `protoc`, then generates prost messages (and, with the `services` feature,
//! tonic clients and servers). The encoded descriptor set is kept in OUT_DIR for gRPC server
//! reflection.

use std::path::PathBuf;

use prost::Message;

const PROTO_FILES: [&str; 3] = [
    "kakehashi/v1/types.proto",
    "kakehashi/v1/payments.proto",
    "kakehashi/v1/relay.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    for file in PROTO_FILES {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }
    let descriptors = protox::compile(PROTO_FILES, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("kakehashi_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    // The gRPC clients and servers only with the "services" feature: the protocol crate uses the
    // messages alone and must not pull in tonic's transport (or tokio).
    let services = std::env::var_os("CARGO_FEATURE_SERVICES").is_some();
    tonic_prost_build::configure()
        .build_client(services)
        .build_server(services)
        // InvalidArgument (FF01) rather than Internal for requests that do not decode.
        .codec_path("crate::codec::StrictCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
