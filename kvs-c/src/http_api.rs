//! HTTP requests for the KVS API (`kvs_request_*`), the SigV4 signer (`kvs_sigv4_sign`,
//! `kvs_request_sign`) and response parsing (`kvs_parse_*`).
//!
//! A `kvs_request` is a method, a request target, headers and a body. Builders produce one for
//! DescribeStream, CreateStream, GetDataEndpoint and the PutMedia head; the firmware signs it
//! with its credentials and the wall-clock time, serialises the head with
//! `kvs_request_write_head` and sends it (then the body, or for PutMedia the chunked MKV stream)
//! over its own connection.

use std::ffi::c_char;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use kvs_core::api::{
    ApiName, ApiOperation, ApiResponse, CreateStreamRequest, DescribeStreamRequest,
    FragmentTimecodeType, GetDataEndpointRequest, GetDataEndpointResponse, PutMediaRequest,
    Timestamp,
};
use kvs_core::sigv4::{
    PayloadSigning, RequestView, SessionTokenSigning, SigningCredentials, SigningParams,
    sign_native,
};

use crate::session::kvs_session;
use crate::{
    Fail, Res, boundary, check_out, copy_out, free_box, give_box, kvs_result, opt_str, try_mut,
    try_ref, try_slice, try_str, write_out,
};

/// An HTTP request to send (opaque).
pub struct kvs_request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl kvs_request {
    fn from_http<B>(request: http::Request<B>, body: Vec<u8>) -> kvs_request {
        let (parts, _) = request.into_parts();
        let target = parts
            .uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
        let headers = parts
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        kvs_request {
            method: parts.method.as_str().to_owned(),
            target,
            headers,
            body,
        }
    }

    fn set_header(&mut self, name: &str, value: &str) {
        let lower = name.to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != lower);
        self.headers.push((lower, value.to_owned()));
    }

    fn head(&self) -> String {
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        for (n, v) in &self.headers {
            head.push_str(n);
            head.push_str(": ");
            head.push_str(v);
            head.push_str("\r\n");
        }
        let chunked = self.headers.iter().any(|(n, _)| n == "transfer-encoding");
        let has_length = self.headers.iter().any(|(n, _)| n == "content-length");
        if !chunked && !has_length {
            head.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        head
    }
}

/// Credentials for signing. `session_token` may be NULL.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kvs_credentials {
    /// Access key id.
    pub access_key_id: *const c_char,
    /// Secret access key.
    pub secret_access_key: *const c_char,
    /// Session token of temporary credentials (NULL for none).
    pub session_token: *const c_char,
}

/// How the payload is covered by a signature.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_sign_mode {
    /// SHA-256 of the request body, session token signed (control-plane JSON calls, botocore).
    Body = 0,
    /// A streaming body as the official C producer signs PutMedia: the empty-string hash, the
    /// session token added unsigned.
    Streaming = 1,
}

/// One header line (NUL-terminated name and value).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kvs_header {
    /// Header name.
    pub name: *const c_char,
    /// Header value.
    pub value: *const c_char,
}

struct Creds<'a> {
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: Option<&'a str>,
}

/// # Safety
/// `creds` is NULL or valid with valid string pointers.
unsafe fn creds<'a>(creds: *const kvs_credentials) -> Res<Creds<'a>> {
    // SAFETY: per the contract above.
    let c = unsafe { try_ref(creds, "credentials") }?;
    Ok(Creds {
        // SAFETY: per the contract above.
        access_key_id: unsafe { try_str(c.access_key_id, "access_key_id") }?,
        // SAFETY: per the contract above.
        secret_access_key: unsafe { try_str(c.secret_access_key, "secret_access_key") }?,
        // SAFETY: per the contract above.
        session_token: unsafe { opt_str(c.session_token, "session_token") }?,
    })
}

#[allow(clippy::too_many_arguments)]
fn sign_headers(
    method: &str,
    target: &str,
    headers: &[(&str, &[u8])],
    payload: PayloadSigning<'_>,
    streaming: bool,
    creds: &Creds<'_>,
    region: &str,
    service: Option<&str>,
    epoch_ms: u64,
) -> Res<Vec<(String, String)>> {
    let time = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_millis(epoch_ms))
        .ok_or_else(|| Fail::new(kvs_result::Sign, "signing time out of range"))?;
    let credentials = SigningCredentials {
        access_key_id: creds.access_key_id,
        secret_access_key: creds.secret_access_key,
        session_token: creds.session_token,
    };
    let mut params = if streaming {
        SigningParams::c_producer_put_media(credentials, region, time)
    } else {
        SigningParams::new(credentials, region, time, payload)
    };
    if streaming {
        params.session_token = SessionTokenSigning::Unsigned;
    }
    if let Some(service) = service {
        params.service = service;
    }
    if !streaming {
        params.payload = payload;
    }
    let view = RequestView::new(method, target, headers);
    let out =
        sign_native(&view, &params).map_err(|e| Fail::new(kvs_result::Sign, e.to_string()))?;
    Ok(out.headers)
}

/// A SigV4 request description for [`kvs_sigv4_sign`].
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct kvs_sigv4_request {
    /// HTTP method (`"POST"`).
    pub method: *const c_char,
    /// Request target as sent: path and optional query (`"/putMedia"`).
    pub target: *const c_char,
    /// The request's headers (must include `host`).
    pub headers: *const kvs_header,
    /// Number of headers.
    pub n_headers: usize,
    /// Hex SHA-256 of the payload; NULL means the hash of the empty string (a streaming body).
    pub payload_sha256_hex: *const c_char,
    /// Credential-scope service; NULL means `kinesisvideo`.
    pub service: *const c_char,
    /// Leave the session token out of the signature (the C producer's PutMedia convention).
    pub unsigned_session_token: bool,
}

/// Signs a request described by `request` with `credentials` for `region` at wall-clock time
/// `epoch_ms`, and writes the headers to add into `buf` as `name: value\r\n` lines
/// (`x-amz-date`, `authorization`, and `x-amz-security-token` with a session token).
///
/// # Safety
/// `request`, `credentials` and `region` are valid (with valid pointers inside, `headers` holding
/// `n_headers` entries); `buf` has `len` writable bytes; `out_n` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_sigv4_sign(
    request: *const kvs_sigv4_request,
    credentials: *const kvs_credentials,
    region: *const c_char,
    epoch_ms: u64,
    buf: *mut u8,
    len: usize,
    out_n: *mut usize,
) -> kvs_result {
    boundary(|| {
        check_out(out_n, "out_n")?;
        // SAFETY: per the contract above.
        let r = unsafe { try_ref(request, "request") }?;
        // SAFETY: per the contract above.
        let creds = unsafe { creds(credentials) }?;
        // SAFETY: per the contract above.
        let region = unsafe { try_str(region, "region") }?;
        // SAFETY: per the contract above.
        let method = unsafe { try_str(r.method, "method") }?;
        // SAFETY: per the contract above.
        let target = unsafe { try_str(r.target, "target") }?;
        if r.n_headers > 256 {
            return Err(Fail::new(
                kvs_result::InvalidParameter,
                format!("{} headers given; at most 256 are allowed", r.n_headers),
            ));
        }
        if r.headers.is_null() && r.n_headers > 0 {
            return Err(Fail::new(kvs_result::NullParameter, "headers is NULL"));
        }
        let list = if r.n_headers == 0 {
            &[][..]
        } else {
            // SAFETY: non-NULL, bounded count, validity per the contract.
            unsafe { std::slice::from_raw_parts(r.headers, r.n_headers) }
        };
        let mut headers = Vec::with_capacity(list.len());
        for (i, h) in list.iter().enumerate() {
            // SAFETY: per the contract above.
            let name = unsafe { try_str(h.name, &format!("headers[{i}].name")) }?;
            // SAFETY: per the contract above.
            let value = unsafe { try_str(h.value, &format!("headers[{i}].value")) }?;
            headers.push((name, value.as_bytes()));
        }
        // SAFETY: per the contract above.
        let hash = unsafe { opt_str(r.payload_sha256_hex, "payload_sha256_hex") }?;
        // SAFETY: per the contract above.
        let service = unsafe { opt_str(r.service, "service") }?;
        let payload = match hash {
            Some(h) => PayloadSigning::Precomputed(h),
            None => PayloadSigning::StreamingEmptyHash,
        };
        let time = SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_millis(epoch_ms))
            .ok_or_else(|| Fail::new(kvs_result::Sign, "signing time out of range"))?;
        let mut params = SigningParams::new(
            SigningCredentials {
                access_key_id: creds.access_key_id,
                secret_access_key: creds.secret_access_key,
                session_token: creds.session_token,
            },
            region,
            time,
            payload,
        );
        if r.unsigned_session_token {
            params.session_token = SessionTokenSigning::Unsigned;
        }
        if let Some(service) = service {
            params.service = service;
        }
        let view = RequestView::new(method, target, &headers);
        let out =
            sign_native(&view, &params).map_err(|e| Fail::new(kvs_result::Sign, e.to_string()))?;
        let mut text = String::new();
        for (n, v) in &out.headers {
            text.push_str(n);
            text.push_str(": ");
            text.push_str(v);
            text.push_str("\r\n");
        }
        // SAFETY: per the contract above.
        unsafe { copy_out(text.as_bytes(), buf, len, out_n) }
    })
}

fn api_fail(e: impl std::fmt::Display) -> Fail {
    Fail::new(kvs_result::Api, e.to_string())
}

/// # Safety
/// `endpoint` is NULL or a NUL-terminated string.
unsafe fn endpoint(endpoint: *const c_char) -> Res<http::Uri> {
    // SAFETY: per the contract above.
    let text = unsafe { try_str(endpoint, "endpoint") }?;
    let uri: http::Uri = text.parse().map_err(|e| {
        Fail::new(
            kvs_result::InvalidParameter,
            format!("endpoint {text:?} is not a URL: {e}"),
        )
    })?;
    if uri.authority().is_none() {
        return Err(Fail::new(
            kvs_result::InvalidParameter,
            format!("endpoint {text:?} has no host"),
        ));
    }
    Ok(uri)
}

fn json_request<T: ApiOperation>(op: &T, endpoint: &http::Uri) -> Res<kvs_request> {
    let request = op.to_http(endpoint).map_err(api_fail)?;
    let body = request.body().to_vec();
    Ok(kvs_request::from_http(request, body))
}

/// The frame shared by the request builders: checks `request_out`, parses `endpoint_url`, runs
/// `build` on it and hands the request to the caller.
///
/// # Safety
/// `endpoint_url` is NULL or NUL-terminated; `request_out` is writable.
unsafe fn build_request(
    endpoint_url: *const c_char,
    request_out: *mut *mut kvs_request,
    build: impl FnOnce(&http::Uri) -> Res<kvs_request>,
) -> kvs_result {
    boundary(|| {
        check_out(request_out, "request_out")?;
        // SAFETY: per the contract above.
        let uri = unsafe { endpoint(endpoint_url) }?;
        let request = build(&uri)?;
        // SAFETY: checked non-NULL.
        unsafe { give_box(request, request_out) };
        Ok(())
    })
}

/// Builds `DescribeStream` for `endpoint` (`"https://kinesisvideo.us-east-1.amazonaws.com"`),
/// naming the stream by name or ARN (the other NULL).
///
/// # Safety
/// Strings are NULL or NUL-terminated; `request_out` is writable. Free the request with
/// [`kvs_request_free`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_request_describe_stream(
    endpoint_url: *const c_char,
    stream_name: *const c_char,
    stream_arn: *const c_char,
    request_out: *mut *mut kvs_request,
) -> kvs_result {
    let build = |uri: &http::Uri| {
        let op = DescribeStreamRequest {
            // SAFETY: per the contract above.
            stream_name: unsafe { opt_str(stream_name, "stream_name") }?.map(str::to_owned),
            // SAFETY: per the contract above.
            stream_arn: unsafe { opt_str(stream_arn, "stream_arn") }?.map(str::to_owned),
        };
        json_request(&op, uri)
    };
    // SAFETY: per the contract above.
    unsafe { build_request(endpoint_url, request_out, build) }
}

/// Builds `CreateStream` for `endpoint`. `device_name` and `media_type` may be NULL;
/// `data_retention_hours` 0 means no retention.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `request_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_request_create_stream(
    endpoint_url: *const c_char,
    stream_name: *const c_char,
    device_name: *const c_char,
    media_type: *const c_char,
    data_retention_hours: u32,
    request_out: *mut *mut kvs_request,
) -> kvs_result {
    let build = |uri: &http::Uri| {
        let op = CreateStreamRequest {
            // SAFETY: per the contract above.
            device_name: unsafe { opt_str(device_name, "device_name") }?.map(str::to_owned),
            // SAFETY: per the contract above.
            stream_name: unsafe { try_str(stream_name, "stream_name") }?.to_owned(),
            // SAFETY: per the contract above.
            media_type: unsafe { opt_str(media_type, "media_type") }?.map(str::to_owned),
            kms_key_id: None,
            data_retention_in_hours: (data_retention_hours != 0)
                .then_some(i64::from(data_retention_hours)),
            tags: None,
            stream_storage_configuration: None,
        };
        json_request(&op, uri)
    };
    // SAFETY: per the contract above.
    unsafe { build_request(endpoint_url, request_out, build) }
}

/// Builds `GetDataEndpoint` for `endpoint`; `api_name` is the APIName (`"PUT_MEDIA"`,
/// `"GET_MEDIA"`...).
///
/// # Safety
/// Strings are NULL or NUL-terminated; `request_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_request_get_data_endpoint(
    endpoint_url: *const c_char,
    stream_name: *const c_char,
    stream_arn: *const c_char,
    api_name: *const c_char,
    request_out: *mut *mut kvs_request,
) -> kvs_result {
    let build = |uri: &http::Uri| {
        // SAFETY: per the contract above.
        let api: ApiName = unsafe { try_str(api_name, "api_name") }?
            .parse()
            .map_err(|e| Fail::new(kvs_result::InvalidParameter, format!("api_name: {e}")))?;
        let op = GetDataEndpointRequest {
            // SAFETY: per the contract above.
            stream_name: unsafe { opt_str(stream_name, "stream_name") }?.map(str::to_owned),
            // SAFETY: per the contract above.
            stream_arn: unsafe { opt_str(stream_arn, "stream_arn") }?.map(str::to_owned),
            api_name: api,
        };
        json_request(&op, uri)
    };
    // SAFETY: per the contract above.
    unsafe { build_request(endpoint_url, request_out, build) }
}

fn put_media_request(request: &PutMediaRequest, uri: &http::Uri) -> Res<kvs_request> {
    let head = request.to_http(uri).map_err(api_fail)?;
    Ok(kvs_request::from_http(head, Vec::new()))
}

/// Builds the PutMedia request head (`POST /putMedia`, `transfer-encoding: chunked`) for the
/// data endpoint `endpoint`; `timecode_mode` is a `kvs_timecode_mode` value and
/// `producer_start_epoch_ms` the stream's wall-clock start. The MKV body follows as HTTP chunks.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `request_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_request_put_media(
    endpoint_url: *const c_char,
    stream_name: *const c_char,
    stream_arn: *const c_char,
    timecode_mode: u32,
    producer_start_epoch_ms: u64,
    request_out: *mut *mut kvs_request,
) -> kvs_result {
    let build = |uri: &http::Uri| {
        let mode = match timecode_mode {
            0 => FragmentTimecodeType::Absolute,
            1 => FragmentTimecodeType::Relative,
            other => {
                return Err(Fail::new(
                    kvs_result::InvalidParameter,
                    format!("timecode_mode {other} is not a kvs_timecode_mode"),
                ));
            }
        };
        let op = PutMediaRequest {
            // SAFETY: per the contract above.
            stream_name: unsafe { opt_str(stream_name, "stream_name") }?.map(str::to_owned),
            // SAFETY: per the contract above.
            stream_arn: unsafe { opt_str(stream_arn, "stream_arn") }?.map(str::to_owned),
            fragment_timecode_type: mode,
            producer_start_timestamp: Some(Timestamp::from_millis(producer_start_epoch_ms)),
            fragment_acknowledgment_required: Some(true),
        };
        put_media_request(&op, uri)
    };
    // SAFETY: per the contract above.
    unsafe { build_request(endpoint_url, request_out, build) }
}

/// Builds the PutMedia request head the session asked for in its CONNECT event for
/// `connection`, for the data endpoint `endpoint` (as [`kvs_request_put_media`]).
/// `KVS_RESULT_NOT_FOUND` when no recent CONNECT event named that connection.
///
/// # Safety
/// `session` is valid; `endpoint` is NUL-terminated; `request_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_session_connect_request(
    session: *const kvs_session,
    connection: u64,
    endpoint_url: *const c_char,
    request_out: *mut *mut kvs_request,
) -> kvs_result {
    boundary(|| {
        check_out(request_out, "request_out")?;
        // SAFETY: per the contract above.
        let s = unsafe { try_ref(session, "session") }?;
        // SAFETY: per the contract above.
        let uri = unsafe { endpoint(endpoint_url) }?;
        let op = s.connect_request(connection).ok_or_else(|| {
            Fail::new(
                kvs_result::NotFound,
                format!("no CONNECT event for connection {connection}"),
            )
        })?;
        let request = put_media_request(op, &uri)?;
        // SAFETY: checked non-NULL.
        unsafe { give_box(request, request_out) };
        Ok(())
    })
}

/// Frees a request (NULL is ignored).
///
/// # Safety
/// `request` is NULL or came from a `kvs_request_*` builder and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_request_free(request: *mut kvs_request) {
    // SAFETY: per the contract above.
    unsafe { free_box(request) }
}

/// Sets a header (replacing any value of the same name; names are stored lower-case). Add
/// headers before signing so that they are signed.
///
/// # Safety
/// `request` is valid; `name` and `value` are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_request_set_header(
    request: *mut kvs_request,
    name: *const c_char,
    value: *const c_char,
) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let r = unsafe { try_mut(request, "request") }?;
        // SAFETY: per the contract above.
        let name = unsafe { try_str(name, "name") }?;
        // SAFETY: per the contract above.
        let value = unsafe { try_str(value, "value") }?;
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            return Err(Fail::new(
                kvs_result::InvalidParameter,
                format!("header {name:?} is not a valid header line"),
            ));
        }
        r.set_header(name, value);
        Ok(())
    })
}

/// Signs the request with SigV4 (`mode` is a [`kvs_sign_mode`] value) for `region` at
/// wall-clock time `epoch_ms`, adding `x-amz-date`, `authorization` (and
/// `x-amz-security-token`).
///
/// # Safety
/// `request`, `credentials` and `region` are valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_request_sign(
    request: *mut kvs_request,
    credentials: *const kvs_credentials,
    region: *const c_char,
    epoch_ms: u64,
    mode: u32,
) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let r = unsafe { try_mut(request, "request") }?;
        // SAFETY: per the contract above.
        let creds = unsafe { creds(credentials) }?;
        // SAFETY: per the contract above.
        let region = unsafe { try_str(region, "region") }?;
        let streaming = match mode {
            0 => false,
            1 => true,
            other => {
                return Err(Fail::new(
                    kvs_result::InvalidParameter,
                    format!("mode {other} is not a kvs_sign_mode"),
                ));
            }
        };
        let headers: Vec<(&str, &[u8])> = r
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_bytes()))
            .collect();
        let add = sign_headers(
            &r.method,
            &r.target,
            &headers,
            PayloadSigning::Body(&r.body),
            streaming,
            &creds,
            region,
            None,
            epoch_ms,
        )?;
        for (n, v) in add {
            r.set_header(&n, &v);
        }
        Ok(())
    })
}

/// Writes the request head (`METHOD target HTTP/1.1`, the headers, a `content-length` unless
/// the body is chunked, and the empty line) into `buf`.
///
/// # Safety
/// `request` is valid; `buf` has `len` writable bytes; `out_n` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_request_write_head(
    request: *const kvs_request,
    buf: *mut u8,
    len: usize,
    out_n: *mut usize,
) -> kvs_result {
    boundary(|| {
        // SAFETY: per the contract above.
        let r = unsafe { try_ref(request, "request") }?;
        // SAFETY: per the contract above.
        unsafe { copy_out(r.head().as_bytes(), buf, len, out_n) }
    })
}

/// The request body (empty for PutMedia): a pointer into the request, valid until it is changed
/// or freed.
///
/// # Safety
/// `request` is valid; the outputs are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_request_body(
    request: *const kvs_request,
    body_out: *mut *const u8,
    len_out: *mut usize,
) -> kvs_result {
    boundary(|| {
        check_out(body_out, "body_out")?;
        check_out(len_out, "len_out")?;
        // SAFETY: per the contract above.
        let r = unsafe { try_ref(request, "request") }?;
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(body_out, r.body.as_ptr());
            write_out(len_out, r.body.len());
        }
        Ok(())
    })
}

/// Copies the value of header `name` (case-insensitive) into `buf`; `KVS_RESULT_NOT_FOUND` when
/// it is not set.
///
/// # Safety
/// `request` is valid; `name` is NUL-terminated; `buf` has `len` writable bytes; `out_n` is
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_request_header(
    request: *const kvs_request,
    name: *const c_char,
    buf: *mut u8,
    len: usize,
    out_n: *mut usize,
) -> kvs_result {
    boundary(|| {
        check_out(out_n, "out_n")?;
        // SAFETY: per the contract above.
        let r = unsafe { try_ref(request, "request") }?;
        // SAFETY: per the contract above.
        let name = unsafe { try_str(name, "name") }?;
        let value = r
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_bytes())
            .ok_or_else(|| Fail::new(kvs_result::NotFound, format!("no header {name:?}")))?;
        // SAFETY: per the contract above.
        unsafe { copy_out(value, buf, len, out_n) }
    })
}

/// Parses a GetDataEndpoint response (`status` and JSON body) and copies the `DataEndpoint` URL
/// into `buf`. A non-2xx status gives `KVS_RESULT_API` with the service's error in the message.
///
/// # Safety
/// `body` has `body_len` readable bytes; `buf` has `len` writable bytes; `out_n` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_parse_get_data_endpoint(
    status: u16,
    body: *const u8,
    body_len: usize,
    buf: *mut u8,
    len: usize,
    out_n: *mut usize,
) -> kvs_result {
    boundary(|| {
        check_out(out_n, "out_n")?;
        // SAFETY: per the contract above.
        let body = unsafe { try_slice(body, body_len, "body") }?;
        let mut response = http::Response::new(Bytes::copy_from_slice(body));
        *response.status_mut() = http::StatusCode::from_u16(status).map_err(|_| {
            Fail::new(
                kvs_result::InvalidParameter,
                format!("status {status} is not an HTTP status"),
            )
        })?;
        let parsed = GetDataEndpointResponse::from_http(&response).map_err(api_fail)?;
        // SAFETY: per the contract above.
        unsafe { copy_out(parsed.data_endpoint.as_bytes(), buf, len, out_n) }
    })
}
