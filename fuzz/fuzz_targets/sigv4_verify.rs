//! Fuzz the SigV4 verifier: arbitrary bytes become a request (first line: method and target;
//! then `name:value` header lines; the rest after an empty line is the body). The verifier must
//! return a typed result, never panic, whatever the Authorization header, query or dates hold.
#![no_main]

use std::time::{Duration, SystemTime};

use kvs_core::sigv4::{
    Payload, RequestView, SigningKeyCache, StaticCredentials, Verifier, canonical,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.split('\n');
    let first = lines.next().unwrap_or("");
    let (method, target) = first.split_once(' ').unwrap_or(("POST", first));
    let headers: Vec<(&str, &[u8])> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n, v.as_bytes()))
        .collect();
    let view = RequestView::new(method, target, &headers);

    let mut keys = StaticCredentials::new();
    keys.insert("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None, None);
    let mut cache = SigningKeyCache::new(2);
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
    let verifier = Verifier::new("us-east-1");
    for payload in [Payload::Bytes(body.as_bytes()), Payload::Streaming] {
        let _ = verifier.verify(&view, payload, &keys, &mut cache, now);
    }
    let _ = verifier.canonical_request(&view, canonical::EMPTY_SHA256_HEX);
    let _ = canonical::parse_amz_date(first);
    let _ = canonical::parse_http_date(first);
});
