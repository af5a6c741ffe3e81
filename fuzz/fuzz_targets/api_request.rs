//! Server-side request parsing of arbitrary method, path, headers and body.
//!
//! Input layout: byte 0 picks the method; then the path up to `\n`; then `name: value` header
//! lines up to an empty line; the rest is the body. Whatever comes in, `ApiRequest::from_http`
//! must return (never panic), and the error response it leads to must be buildable.
#![no_main]

use bytes::Bytes;
use kvs_core::api::{ApiRequest, ApiResponse, EmptyResponse};
use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 4] = ["POST", "GET", "PUT", "DELETE"];

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else { return };
    let method = METHODS[usize::from(m) % METHODS.len()];
    let text = String::from_utf8_lossy(rest);
    let (path, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let (head, body) = rest.split_once("\n\n").unwrap_or((rest, ""));
    let mut builder = http::Request::builder().method(method);
    builder = match path.parse::<http::Uri>() {
        Ok(uri) => builder.uri(uri),
        Err(_) => builder.uri("/"),
    };
    for line in head.lines() {
        if let Some((name, value)) = line.split_once(':') {
            if let (Ok(n), Ok(v)) =
                (http::HeaderName::try_from(name.trim()), http::HeaderValue::try_from(value.trim()))
            {
                builder = builder.header(n, v);
            }
        }
    }
    let Ok(request) = builder.body(Bytes::copy_from_slice(body.as_bytes())) else { return };
    match ApiRequest::from_http(&request) {
        Ok(parsed) => {
            let _ = parsed.operation().path();
            let _ = EmptyResponse {}.to_http("fuzz");
        }
        Err(err) => {
            let response = err.to_http("fuzz");
            let back = kvs_core::api::ApiError::from_http(&response);
            assert_eq!(back.kind, err.kind);
        }
    }
});
