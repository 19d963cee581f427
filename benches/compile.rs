//! The pure compile path, spec text to definition bytes, with no daemon and no I/O:
//! `spec::load` → `compile::compile` (plan and lowering) → protobuf encoding, as `sysfile llb`
//! runs it (the base assumed as `sysfile llb` assumes it, no build arguments, no includes).
//!
//! Inputs: `examples/webapp/Sysfile`, `examples/sshd/Sysfile` and a generated spec of 1,000
//! `[[run]]` steps (the shape `bench/compile-growth` uses for its `[[run]]` series).
//!
//!     cargo bench --bench compile
//!
//! Only the times mean anything; nothing here is a test and nothing asserts a timing.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use std::hint::black_box;
use sysfile::compile;
use sysfile::spec::{self, LoadOptions};

/// Spec text to the encoded `pb.Definition`, the way `sysfile llb` does it.
fn compile(name: &str, text: &str) -> Vec<u8> {
    let (main, not_utf8) = spec::decode_main(name, text.as_bytes().to_vec());
    assert!(not_utf8.is_none(), "{name} is not UTF-8");
    let loaded = spec::load(main, &LoadOptions::default());
    let spec = loaded
        .spec
        .as_ref()
        .unwrap_or_else(|| panic!("{name} does not load: {:?}", loaded.diagnostics));
    let facts = compile::assumed_facts(spec, None);
    let options = compile::offline_options(spec).expect("offline lowering options");
    compile::compile(spec, &loaded.sources, &facts, &options)
        .definition
        .encode_to_vec()
}

/// A spec of `n` `[[run]]` steps that each interpolate a build argument.
fn generated(n: usize) -> String {
    let mut text =
        String::from("[image]\nfrom = \"debian:bookworm\"\n\n[args]\nVERSION = \"1.0\"\n\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[run]]\nname = \"step {i}\"\nargv = [\"/usr/bin/touch\", \"/srv/${{VERSION}}-{i}\"]\n\n"
        ));
    }
    text
}

fn read(path: &str) -> String {
    let full = format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn bench_compile(c: &mut Criterion) {
    let inputs = [
        ("webapp", read("examples/webapp/Sysfile")),
        ("sshd", read("examples/sshd/Sysfile")),
        ("generated-1000-run-steps", generated(1000)),
    ];
    let mut group = c.benchmark_group("compile");
    for (label, text) in &inputs {
        // A spec that does not compile would time an error path: fail before measuring.
        assert!(
            !compile("Sysfile", text).is_empty(),
            "{label}: empty definition"
        );
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(label), text, |b, text| {
            b.iter(|| compile("Sysfile", black_box(text)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_compile);
criterion_main!(benches);
