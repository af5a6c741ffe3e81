//! Signing and verifying one KVS request (DescribeStream JSON and C-style PutMedia headers).

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, criterion_group, criterion_main};
use kvs_core::sigv4::{
    Payload, PayloadSigning, RequestView, SigningCredentials, SigningKeyCache, SigningParams,
    StaticCredentials, Verifier, canonical, sign_native,
};

const BODY: &[u8] = br#"{"StreamName":"my-stream"}"#;

fn request() -> http::Request<Vec<u8>> {
    http::Request::builder()
        .method("POST")
        .uri("https://kinesisvideo.us-west-2.amazonaws.com/describeStream")
        .header("host", "kinesisvideo.us-west-2.amazonaws.com")
        .header("content-type", "application/json")
        .header("user-agent", "AWS-PRODUCER-SDK-KVS/3.4.1")
        .body(BODY.to_vec())
        .unwrap()
}

fn time() -> SystemTime {
    canonical::parse_amz_date("20240102T030405Z").unwrap()
}

fn creds() -> SigningCredentials<'static> {
    SigningCredentials {
        access_key_id: "AKIDKVSEXAMPLE",
        secret_access_key: "kvsSecretKeyExample/0123456789abcdefghij",
        session_token: None,
    }
}

fn bench(c: &mut Criterion) {
    let req = request();
    let params = SigningParams::new(creds(), "us-west-2", time(), PayloadSigning::Body(BODY));

    c.bench_function("sigv4/sign_native", |b| {
        b.iter(|| sign_native(black_box(&RequestView::from_request(&req)), &params).unwrap())
    });
    #[cfg(feature = "sign")]
    c.bench_function("sigv4/sign_aws_sigv4", |b| {
        b.iter(|| kvs_core::sigv4::sign(black_box(&req), &params).unwrap())
    });

    let mut signed = req.clone();
    sign_native(&RequestView::from_request(&req), &params)
        .unwrap()
        .apply_to_request(&mut signed)
        .unwrap();
    let mut keys = StaticCredentials::new();
    keys.insert(
        "AKIDKVSEXAMPLE",
        "kvsSecretKeyExample/0123456789abcdefghij",
        None,
        None,
    );
    let verifier = Verifier::new("us-west-2");
    let mut cache = SigningKeyCache::default();
    c.bench_function("sigv4/verify_cached_key", |b| {
        b.iter(|| {
            let view = RequestView::from_request(black_box(&signed));
            verifier
                .verify(&view, Payload::Bytes(BODY), &keys, &mut cache, time())
                .unwrap()
        })
    });
    c.bench_function("sigv4/verify_cold_key", |b| {
        b.iter(|| {
            let mut cache = SigningKeyCache::new(0);
            let view = RequestView::from_request(black_box(&signed));
            verifier
                .verify(&view, Payload::Bytes(BODY), &keys, &mut cache, time())
                .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
