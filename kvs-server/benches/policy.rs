//! Cost of one access-control decision (no allocation on the allow path).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kvs_core::api::Operation;
use kvs_server::policy::{Policy, Resource, StreamResource};

fn stream(name: &str) -> Resource<'_> {
    Resource::Stream(StreamResource {
        partition: "aws",
        region: "us-east-1",
        account: "000000000000",
        name,
        creation_ms: Some(1_705_489_836_421),
    })
}

fn evaluate(c: &mut Criterion) {
    let full = Policy::full_access();
    let scoped = Policy::from_profile_keys(
        Some("kinesisvideo:PutMedia, kinesisvideo:Describe*, kinesisvideo:GetDataEndpoint"),
        Some("kinesisvideo:DeleteStream"),
        Some("lobby, cam-*"),
        false,
    )
    .unwrap();
    let document = Policy::from_iam_json(
        r#"{"Statement": [
          {"Effect": "Allow", "Action": ["kinesisvideo:PutMedia", "kinesisvideo:Describe*"],
           "Resource": "arn:aws:kinesisvideo:*:*:stream/cam-*/*"},
          {"Effect": "Allow", "Action": "kinesisvideo:ListStreams", "Resource": "*"},
          {"Effect": "Deny", "Action": "kinesisvideo:*",
           "Resource": "arn:aws:kinesisvideo:*:*:stream/cam-secret/*"}]}"#,
    )
    .unwrap();
    let cam = stream("cam-entrance-0042");
    let mut group = c.benchmark_group("policy_evaluate");
    group.bench_function("full_access", |b| {
        b.iter(|| black_box(&full).evaluate(Operation::PutMedia, black_box(&cam)))
    });
    group.bench_function("ini_scoped_allow", |b| {
        b.iter(|| black_box(&scoped).evaluate(Operation::PutMedia, black_box(&cam)))
    });
    group.bench_function("iam_document_allow", |b| {
        b.iter(|| black_box(&document).evaluate(Operation::PutMedia, black_box(&cam)))
    });
    group.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
