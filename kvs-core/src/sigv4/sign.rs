//! SigV4 signing: through aws-sigv4 (feature `sign`) and natively with the verifier's
//! canonicalisation (always available, for firmware built without `sign`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};

use super::canonical::{
    self, ALGORITHM, EMPTY_SHA256_HEX, KINESIS_VIDEO_SERVICE, PathOptions, UNSIGNED_PAYLOAD,
};
use super::error::SignError;
use super::request::RequestView;

/// Borrowed credentials to sign with.
#[derive(Clone, Copy)]
pub struct SigningCredentials<'a> {
    /// Access key id (`AKIA...`/`ASIA...`).
    pub access_key_id: &'a str,
    /// Secret access key.
    pub secret_access_key: &'a str,
    /// Session token of temporary credentials.
    pub session_token: Option<&'a str>,
}

impl std::fmt::Debug for SigningCredentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.map(|_| "** redacted **"),
            )
            .finish()
    }
}

/// Which payload hash goes into the canonical request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadSigning<'a> {
    /// SHA-256 of this body (botocore, control-plane JSON).
    Body(&'a [u8]),
    /// SHA-256 of the empty string, for a streaming body (the C producer's PutMedia).
    StreamingEmptyHash,
    /// The literal `UNSIGNED-PAYLOAD` (the Java producer's PutMedia); also sets the
    /// `x-amz-content-sha256` header unless [`SigningParams::content_sha256_header`] is cleared.
    Unsigned,
    /// A hex SHA-256 computed by the caller.
    Precomputed(&'a str),
}

impl PayloadSigning<'_> {
    fn hash(&self) -> String {
        match self {
            PayloadSigning::Body(b) => canonical::sha256_hex(b),
            PayloadSigning::StreamingEmptyHash => EMPTY_SHA256_HEX.to_owned(),
            PayloadSigning::Unsigned => UNSIGNED_PAYLOAD.to_owned(),
            PayloadSigning::Precomputed(h) => (*h).to_owned(),
        }
    }
}

/// Whether the session token is covered by the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionTokenSigning {
    /// Added before signing and signed (botocore, aws-sigv4 default).
    Signed,
    /// Added after signing, left out of the signature (C producer).
    Unsigned,
}

/// Where the signature goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureLocation {
    /// `Authorization` and `X-Amz-Date` headers.
    Headers,
    /// A presigned URL valid for `expires_in` (whole seconds).
    Query {
        /// Validity, sent as `X-Amz-Expires`.
        expires_in: Duration,
    },
}

/// Headers aws-sigv4 leaves unsigned by default; the native signer uses the same list.
pub const DEFAULT_EXCLUDED_HEADERS: &[&str] = &[
    "authorization",
    "user-agent",
    "x-amzn-trace-id",
    "transfer-encoding",
];

/// Headers the signer itself sets; any value already in the request is ignored.
const SIGNER_HEADERS: &[&str] = &[
    "authorization",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Everything needed to sign one request.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct SigningParams<'a> {
    /// The credentials.
    pub credentials: SigningCredentials<'a>,
    /// Region of the credential scope.
    pub region: &'a str,
    /// Service of the credential scope (default `kinesisvideo`).
    pub service: &'a str,
    /// Signing time (a parameter: this crate never reads the clock).
    pub time: SystemTime,
    /// Payload hash convention.
    pub payload: PayloadSigning<'a>,
    /// Send (and sign) `x-amz-content-sha256` with the payload hash (header location only).
    pub content_sha256_header: bool,
    /// Whether the session token is signed.
    pub session_token: SessionTokenSigning,
    /// Path canonicalisation (default [`PathOptions::KVS`]).
    pub path: PathOptions,
    /// Lower-case names of request headers left unsigned.
    pub excluded_headers: &'a [&'a str],
    /// Header or presigned-query signature.
    pub location: SignatureLocation,
}

impl<'a> SigningParams<'a> {
    /// Parameters for service `kinesisvideo` with the aws-sigv4 defaults: signed token,
    /// normalised path, headers location, `x-amz-content-sha256` only for
    /// [`PayloadSigning::Unsigned`].
    pub fn new(
        credentials: SigningCredentials<'a>,
        region: &'a str,
        time: SystemTime,
        payload: PayloadSigning<'a>,
    ) -> Self {
        SigningParams {
            credentials,
            region,
            service: KINESIS_VIDEO_SERVICE,
            time,
            payload,
            content_sha256_header: matches!(payload, PayloadSigning::Unsigned),
            session_token: SessionTokenSigning::Signed,
            path: PathOptions::KVS,
            excluded_headers: DEFAULT_EXCLUDED_HEADERS,
            location: SignatureLocation::Headers,
        }
    }

    /// The C producer's convention for streaming PutMedia: empty-string hash, no
    /// `x-amz-content-sha256`, token added unsigned.
    pub fn c_producer_put_media(
        credentials: SigningCredentials<'a>,
        region: &'a str,
        time: SystemTime,
    ) -> Self {
        let mut p = Self::new(
            credentials,
            region,
            time,
            PayloadSigning::StreamingEmptyHash,
        );
        p.session_token = SessionTokenSigning::Unsigned;
        p.excluded_headers = &["authorization", "content-type", "content-length"];
        p
    }

    /// The Java producer's convention for PutMedia: `UNSIGNED-PAYLOAD` with the
    /// `x-amz-content-sha256` header, token signed.
    pub fn java_producer_put_media(
        credentials: SigningCredentials<'a>,
        region: &'a str,
        time: SystemTime,
    ) -> Self {
        Self::new(credentials, region, time, PayloadSigning::Unsigned)
    }
}

/// What to add to the request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SigningOutput {
    /// Headers to set (lower-case names), in the order the signer produced them.
    pub headers: Vec<(String, String)>,
    /// Query parameters to append (presigned form), unencoded.
    pub query: Vec<(String, String)>,
    /// The hex signature.
    pub signature: String,
    /// The canonical request (native signer only).
    pub canonical_request: Option<String>,
    /// The string to sign (native signer only).
    pub string_to_sign: Option<String>,
}

impl SigningOutput {
    /// Sets the output headers on `headers`, replacing existing values.
    pub fn apply_to_headers(&self, headers: &mut HeaderMap) -> Result<(), SignError> {
        for (name, value) in &self.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| SignError::InvalidHeaderValue { name: name.clone() })?;
            let v = HeaderValue::from_str(value)
                .map_err(|_| SignError::InvalidHeaderValue { name: name.clone() })?;
            headers.insert(n, v);
        }
        Ok(())
    }

    /// Sets the headers and appends the query parameters (encoded) to the request URI.
    pub fn apply_to_request<B>(&self, request: &mut http::Request<B>) -> Result<(), SignError> {
        self.apply_to_headers(request.headers_mut())?;
        if self.query.is_empty() {
            return Ok(());
        }
        let uri = request.uri();
        let mut pq = uri.path().to_owned();
        let mut sep = '?';
        if let Some(q) = uri.query() {
            pq.push('?');
            pq.push_str(q);
            sep = '&';
        }
        for (k, v) in &self.query {
            pq.push(sep);
            sep = '&';
            canonical::uri_encode(k.as_bytes(), &mut pq);
            pq.push('=');
            canonical::uri_encode(v.as_bytes(), &mut pq);
        }
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(
            pq.parse()
                .map_err(|e| SignError::AwsSigv4(format!("rebuilding the URI: {e}")))?,
        );
        *request.uri_mut() = http::Uri::from_parts(parts)
            .map_err(|e| SignError::AwsSigv4(format!("rebuilding the URI: {e}")))?;
        Ok(())
    }
}

/// Signs with our own canonicalisation (no aws-sigv4): the same code the verifier uses.
///
/// Signed headers are the request's headers minus `excluded_headers` and the ones the signer
/// sets, plus `host` (from the URI when absent), `x-amz-date`, and per the parameters
/// `x-amz-security-token` and `x-amz-content-sha256`.
pub fn sign_native(
    request: &RequestView<'_>,
    params: &SigningParams<'_>,
) -> Result<SigningOutput, SignError> {
    let amz_date = canonical::format_amz_date(params.time).ok_or(SignError::TimeOutOfRange)?;
    let date = amz_date.get(0..8).ok_or(SignError::TimeOutOfRange)?;
    let creds = params.credentials;
    let payload_hash = params.payload.hash();
    let query_location = match params.location {
        SignatureLocation::Headers => None,
        SignatureLocation::Query { expires_in } => Some(expires_in.as_secs()),
    };

    let mut signed: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (name, value) in request.headers() {
        let lower = name.to_ascii_lowercase();
        if SIGNER_HEADERS.contains(&lower.as_str())
            || params
                .excluded_headers
                .iter()
                .any(|e| e.eq_ignore_ascii_case(&lower))
        {
            continue;
        }
        let entry = signed.entry(lower).or_default();
        if !entry.is_empty() {
            entry.push(b',');
        }
        canonical::push_header_value(value, entry);
    }
    if !signed.contains_key("host") {
        let host = request.uri_host.ok_or(SignError::MissingHost)?;
        signed.insert("host".to_owned(), host.as_bytes().to_vec());
    }
    let mut out_headers = Vec::new();
    if query_location.is_none() {
        signed.insert("x-amz-date".to_owned(), amz_date.clone().into_bytes());
        if let (Some(token), SessionTokenSigning::Signed) =
            (creds.session_token, params.session_token)
        {
            signed.insert("x-amz-security-token".to_owned(), token.as_bytes().to_vec());
        }
        if params.content_sha256_header {
            signed.insert(
                "x-amz-content-sha256".to_owned(),
                payload_hash.clone().into_bytes(),
            );
        }
    }
    let signed_names = signed.keys().cloned().collect::<Vec<_>>().join(";");
    let scope = canonical::credential_scope(date, params.region, params.service);

    let mut query_params: Vec<(String, String)> = Vec::new();
    let canonical_query = match query_location {
        None => canonical::canonical_query(request.query),
        Some(expires) => {
            query_params.push(("X-Amz-Algorithm".into(), ALGORITHM.into()));
            query_params.push((
                "X-Amz-Credential".into(),
                format!("{}/{scope}", creds.access_key_id),
            ));
            query_params.push(("X-Amz-Date".into(), amz_date.clone()));
            query_params.push(("X-Amz-Expires".into(), expires.to_string()));
            query_params.push(("X-Amz-SignedHeaders".into(), signed_names.clone()));
            if let (Some(token), SessionTokenSigning::Signed) =
                (creds.session_token, params.session_token)
            {
                query_params.push(("X-Amz-Security-Token".into(), token.to_owned()));
            }
            let existing = canonical::query_pairs(request.query);
            canonical::canonical_query_from_pairs(
                existing.chain(
                    query_params
                        .iter()
                        .map(|(k, v)| (k.clone().into_bytes(), v.clone().into_bytes())),
                ),
            )
        }
    };

    let mut creq: Vec<u8> = Vec::with_capacity(512);
    creq.extend_from_slice(request.method.as_bytes());
    creq.push(b'\n');
    creq.extend_from_slice(canonical::canonical_uri(request.path, params.path).as_bytes());
    creq.push(b'\n');
    creq.extend_from_slice(canonical_query.as_bytes());
    creq.push(b'\n');
    for (name, value) in &signed {
        creq.extend_from_slice(name.as_bytes());
        creq.push(b':');
        creq.extend_from_slice(value);
        creq.push(b'\n');
    }
    creq.push(b'\n');
    creq.extend_from_slice(signed_names.as_bytes());
    creq.push(b'\n');
    creq.extend_from_slice(payload_hash.as_bytes());

    let sts = canonical::string_to_sign(&amz_date, &scope, &canonical::sha256_hex(&creq));
    let key = canonical::signing_key(creds.secret_access_key, date, params.region, params.service);
    let signature = hex::encode(canonical::signature(&key, sts.as_bytes()));

    match query_location {
        None => {
            out_headers.push(("x-amz-date".to_owned(), amz_date.clone()));
            out_headers.push((
                "authorization".to_owned(),
                format!(
                    "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_names}, Signature={signature}",
                    creds.access_key_id
                ),
            ));
            if params.content_sha256_header {
                out_headers.push(("x-amz-content-sha256".to_owned(), payload_hash.clone()));
            }
            if let Some(token) = creds.session_token {
                out_headers.push(("x-amz-security-token".to_owned(), token.to_owned()));
            }
        }
        Some(_) => {
            query_params.push(("X-Amz-Signature".into(), signature.clone()));
            if let (Some(token), SessionTokenSigning::Unsigned) =
                (creds.session_token, params.session_token)
            {
                query_params.push(("X-Amz-Security-Token".into(), token.to_owned()));
            }
        }
    }
    Ok(SigningOutput {
        headers: out_headers,
        query: query_params,
        signature,
        canonical_request: Some(String::from_utf8_lossy(&creq).into_owned()),
        string_to_sign: Some(sts),
    })
}

/// Signs an [`http::Request`] with the aws-sigv4 crate.
#[cfg(feature = "sign")]
pub fn sign<B>(
    request: &http::Request<B>,
    params: &SigningParams<'_>,
) -> Result<SigningOutput, SignError> {
    sign_http(request.method(), request.uri(), request.headers(), params)
}

/// Signs a method, URI and header map with the aws-sigv4 crate.
#[cfg(feature = "sign")]
pub fn sign_http(
    method: &http::Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    params: &SigningParams<'_>,
) -> Result<SigningOutput, SignError> {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody, SignableRequest,
        SignatureLocation as AwsLocation, SigningSettings, UriPathNormalizationMode,
    };

    if !headers.contains_key(http::header::HOST) && uri.authority().is_none() {
        return Err(SignError::MissingHost);
    }
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        if SIGNER_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let v = value.to_str().map_err(|_| SignError::InvalidHeaderValue {
            name: name.as_str().to_owned(),
        })?;
        pairs.push((name.as_str(), v));
    }
    let body = match params.payload {
        PayloadSigning::Body(b) => SignableBody::Bytes(b),
        PayloadSigning::StreamingEmptyHash => {
            SignableBody::Precomputed(EMPTY_SHA256_HEX.to_owned())
        }
        PayloadSigning::Unsigned => SignableBody::UnsignedPayload,
        PayloadSigning::Precomputed(h) => SignableBody::Precomputed(h.to_owned()),
    };
    let uri_text = uri.to_string();
    let signable = SignableRequest::new(method.as_str(), uri_text, pairs.into_iter(), body)
        .map_err(|e| SignError::AwsSigv4(e.to_string()))?;

    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = if params.content_sha256_header {
        PayloadChecksumKind::XAmzSha256
    } else {
        PayloadChecksumKind::NoHeader
    };
    settings.session_token_mode = match params.session_token {
        SessionTokenSigning::Signed => SessionTokenMode::Include,
        SessionTokenSigning::Unsigned => SessionTokenMode::Exclude,
    };
    settings.uri_path_normalization_mode = if params.path.normalize {
        UriPathNormalizationMode::Enabled
    } else {
        UriPathNormalizationMode::Disabled
    };
    settings.percent_encoding_mode = if params.path.double_encode {
        PercentEncodingMode::Double
    } else {
        PercentEncodingMode::Single
    };
    settings.excluded_headers = Some(
        params
            .excluded_headers
            .iter()
            .map(|h| std::borrow::Cow::Owned(h.to_ascii_lowercase()))
            .collect(),
    );
    if let SignatureLocation::Query { expires_in } = params.location {
        settings.signature_location = AwsLocation::QueryParams;
        settings.expires_in = Some(expires_in);
    }

    let creds = params.credentials;
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id,
        creds.secret_access_key,
        creds.session_token.map(str::to_owned),
        None,
        "kvs",
    )
    .into();
    let v4 = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(params.region)
        .name(params.service)
        .time(params.time)
        .settings(settings)
        .build()
        .map_err(|e| SignError::AwsSigv4(e.to_string()))?;
    let v4: aws_sigv4::http_request::SigningParams<'_> = v4.into();
    let (instructions, signature) = aws_sigv4::http_request::sign(signable, &v4)
        .map_err(|e| SignError::AwsSigv4(e.to_string()))?
        .into_parts();
    let out_headers = instructions
        .headers()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    let query = instructions
        .params()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.to_string()))
        .collect();
    Ok(SigningOutput {
        headers: out_headers,
        query,
        signature,
        canonical_request: None,
        string_to_sign: None,
    })
}
