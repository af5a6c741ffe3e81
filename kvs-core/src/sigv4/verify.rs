//! SigV4 verification written from the specification (no aws-sigv4).

use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::canonical::{
    self, ALGORITHM, EMPTY_SHA256_HEX, KINESIS_VIDEO_SERVICE, PathOptions, SCOPE_TERMINATOR,
    UNSIGNED_PAYLOAD,
};
use super::error::AuthError;
use super::request::RequestView;

/// Size bounds checked before anything is allocated for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest raw path, in bytes.
    pub max_path_len: usize,
    /// Longest raw query, in bytes.
    pub max_query_len: usize,
    /// Most header lines.
    pub max_headers: usize,
    /// Longest single header value, in bytes.
    pub max_header_value_len: usize,
    /// Longest `Authorization` header value, in bytes.
    pub max_authorization_len: usize,
    /// Most names in SignedHeaders.
    pub max_signed_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_path_len: 8 * 1024,
            max_query_len: 16 * 1024,
            max_headers: 128,
            max_header_value_len: 16 * 1024,
            max_authorization_len: 4 * 1024,
            max_signed_headers: 64,
        }
    }
}

/// What the caller knows about the request body when it verifies the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// The whole body is buffered (JSON control-plane calls).
    Bytes(&'a [u8]),
    /// The caller already computed the body's SHA-256.
    Sha256([u8; 32]),
    /// The body is a stream not read yet (PutMedia). Without `x-amz-content-sha256` the
    /// signature may cover the empty-string hash (C producer) or `UNSIGNED-PAYLOAD`.
    Streaming,
}

/// How much of the body the verified signature covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadCoverage {
    /// The signature covers the body the caller supplied (bytes or hash).
    Verified,
    /// The client sent `UNSIGNED-PAYLOAD`: the body is not covered.
    Unsigned,
    /// Streaming PutMedia signed with the empty-string hash (C producer): the body is not covered.
    EmptyHashStreaming,
    /// The signature covers this SHA-256 of a body the caller has not read yet; the caller must
    /// hash the body and compare before trusting it.
    MustMatch([u8; 32]),
    /// An `x-amz-content-sha256: STREAMING-*` value (chunk signing): the chunks are not checked.
    StreamingChunks,
}

/// Which form carried the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthForm {
    /// `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`
    Header,
    /// Presigned: `X-Amz-Signature` and friends in the query.
    Query,
}

/// A successfully verified request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The access key id that signed.
    pub access_key_id: String,
    /// The signing time from `X-Amz-Date` (or `Date`).
    pub signed_at: SystemTime,
    /// Header or query form.
    pub form: AuthForm,
    /// How much of the body the signature covers.
    pub payload: PayloadCoverage,
    /// Whether the session token (if any) was covered by the signature.
    pub session_token_signed: bool,
}

/// A stored credential returned by a [`CredentialLookup`].
#[derive(Clone, Copy, Debug)]
pub struct StoredCredential<'a> {
    /// The secret access key.
    pub secret_access_key: &'a str,
    /// When set, requests must carry exactly this session token.
    pub session_token: Option<&'a str>,
    /// When set, requests at or after this time fail with `ExpiredTokenException`.
    pub expires_at: Option<SystemTime>,
}

/// The server's key store: access key id → secret (and session token requirement).
pub trait CredentialLookup {
    /// The credential for `access_key_id`, or `None` when it is unknown.
    fn lookup(&self, access_key_id: &str) -> Option<StoredCredential<'_>>;
}

/// A fixed list of credentials, enough for a local server or tests.
#[derive(Clone, Debug, Default)]
pub struct StaticCredentials {
    entries: Vec<StaticEntry>,
}

#[derive(Clone, Debug)]
struct StaticEntry {
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    expires_at: Option<SystemTime>,
}

impl StaticCredentials {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a credential.
    pub fn insert(
        &mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
        expires_at: Option<SystemTime>,
    ) -> &mut Self {
        let access_key_id = access_key_id.into();
        self.entries.retain(|e| e.access_key_id != access_key_id);
        self.entries.push(StaticEntry {
            access_key_id,
            secret_access_key: secret_access_key.into(),
            session_token,
            expires_at,
        });
        self
    }
}

impl CredentialLookup for StaticCredentials {
    fn lookup(&self, access_key_id: &str) -> Option<StoredCredential<'_>> {
        self.entries
            .iter()
            .find(|e| e.access_key_id == access_key_id)
            .map(|e| StoredCredential {
                secret_access_key: &e.secret_access_key,
                session_token: e.session_token.as_deref(),
                expires_at: e.expires_at,
            })
    }
}

/// A small bounded cache of derived signing keys, keyed by access key id, date, region and
/// service (and checked against the secret, so a rotated secret is never served stale). The
/// caller owns it (one per thread, or behind a lock).
#[derive(Clone, Debug)]
pub struct SigningKeyCache {
    capacity: usize,
    tick: u64,
    entries: Vec<CacheEntry>,
}

#[derive(Clone)]
struct CacheEntry {
    access_key_id: String,
    secret: String,
    date: String,
    region: String,
    service: String,
    key: [u8; 32],
    used: u64,
}

impl std::fmt::Debug for CacheEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheEntry")
            .field("access_key_id", &self.access_key_id)
            .field("date", &self.date)
            .finish_non_exhaustive()
    }
}

impl Default for SigningKeyCache {
    fn default() -> Self {
        Self::new(64)
    }
}

impl SigningKeyCache {
    /// A cache holding at most `capacity` keys (least recently used evicted; 0 disables it).
    pub fn new(capacity: usize) -> Self {
        SigningKeyCache {
            capacity,
            tick: 0,
            entries: Vec::new(),
        }
    }

    /// Number of cached keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The signing key for this scope, derived on a miss.
    pub fn get_or_derive(
        &mut self,
        access_key_id: &str,
        secret_access_key: &str,
        date: &str,
        region: &str,
        service: &str,
    ) -> [u8; 32] {
        self.tick = self.tick.wrapping_add(1);
        let tick = self.tick;
        if let Some(e) = self.entries.iter_mut().find(|e| {
            e.access_key_id == access_key_id
                && e.date == date
                && e.region == region
                && e.service == service
                && bool::from(e.secret.as_bytes().ct_eq(secret_access_key.as_bytes()))
        }) {
            e.used = tick;
            return e.key;
        }
        let key = canonical::signing_key(secret_access_key, date, region, service);
        if self.capacity == 0 {
            return key;
        }
        if self.entries.len() >= self.capacity
            && let Some(pos) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.used)
                .map(|(i, _)| i)
        {
            self.entries.swap_remove(pos);
        }
        self.entries.push(CacheEntry {
            access_key_id: access_key_id.to_owned(),
            secret: secret_access_key.to_owned(),
            date: date.to_owned(),
            region: region.to_owned(),
            service: service.to_owned(),
            key,
            used: tick,
        });
        key
    }
}

/// Longest accepted `X-Amz-Expires`: one week.
pub const MAX_PRESIGN_EXPIRES_SECS: u64 = 604_800;

/// The SigV4 verifier: expected region and service, allowed clock skew, path rules and limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifier {
    /// The region credentials must be scoped to.
    pub region: String,
    /// The service credentials must be scoped to (`kinesisvideo` for KVS).
    pub service: String,
    /// Allowed clock skew between the signing time and `now` (5 min for KVS).
    pub max_skew: Duration,
    /// Path canonicalisation rules.
    pub path: PathOptions,
    /// Size bounds.
    pub limits: Limits,
}

/// The parsed signature parameters, common to the header and query forms.
struct AuthParams {
    form: AuthForm,
    access_key_id: String,
    scope_date: String,
    scope_region: String,
    scope_service: String,
    scope_terminator: String,
    signed_headers: String,
    signature: String,
    /// Timestamp as it goes into the string to sign.
    amz_date: String,
    signed_at: SystemTime,
    expires: Option<u64>,
    /// Query form only: decoded query pairs minus X-Amz-Signature.
    query_pairs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Query form only: index in `query_pairs` of X-Amz-Security-Token.
    query_token_index: Option<usize>,
    /// The session token presented, if any.
    token: Option<String>,
}

fn incomplete(msg: impl Into<String>) -> AuthError {
    AuthError::IncompleteSignature(msg.into())
}

fn skew_text(d: Duration) -> String {
    let s = d.as_secs();
    if s.is_multiple_of(60) {
        format!("{} min.", s / 60)
    } else {
        format!("{s} sec.")
    }
}

fn fmt_time(t: SystemTime) -> String {
    canonical::format_amz_date(t).unwrap_or_else(|| "(out of range)".to_owned())
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Verifier {
    /// A verifier for KVS in `region`: service `kinesisvideo`, 5 min skew, normalised paths.
    pub fn new(region: impl Into<String>) -> Self {
        Verifier {
            region: region.into(),
            service: KINESIS_VIDEO_SERVICE.to_owned(),
            max_skew: super::MAX_CLOCK_SKEW,
            path: PathOptions::KVS,
            limits: Limits::default(),
        }
    }

    /// Replaces the expected service name.
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Replaces the path rules.
    pub fn with_path_options(mut self, path: PathOptions) -> Self {
        self.path = path;
        self
    }

    fn check_limits(&self, req: &RequestView<'_>) -> Result<(), AuthError> {
        let l = &self.limits;
        let too = |what, len, limit| AuthError::TooLarge { what, len, limit };
        if req.path.len() > l.max_path_len {
            return Err(too("path", req.path.len(), l.max_path_len));
        }
        if req.query.len() > l.max_query_len {
            return Err(too("query", req.query.len(), l.max_query_len));
        }
        let count = req.header_count();
        if count > l.max_headers {
            return Err(too("header count", count, l.max_headers));
        }
        for (name, value) in req.headers() {
            let limit = if name.eq_ignore_ascii_case("authorization") {
                l.max_authorization_len
            } else {
                l.max_header_value_len
            };
            if value.len() > limit {
                let what = if limit == l.max_authorization_len {
                    "authorization"
                } else {
                    "header value"
                };
                return Err(too(what, value.len(), limit));
            }
        }
        Ok(())
    }

    /// Verifies a signed request at time `now`.
    ///
    /// Checks, in order: sizes, the Authorization header (or presigned query) syntax, that
    /// `host` and a date are signed, the credential scope, the clock skew (and presign expiry),
    /// the access key and session token, then the signature (constant-time compare) for each
    /// payload hash the body knowledge allows.
    pub fn verify(
        &self,
        req: &RequestView<'_>,
        payload: Payload<'_>,
        keys: &impl CredentialLookup,
        cache: &mut SigningKeyCache,
        now: SystemTime,
    ) -> Result<Verified, AuthError> {
        self.check_limits(req)?;
        let params = self.parse(req)?;
        self.check_scope(&params)?;
        self.check_time(&params, now)?;

        let stored = keys
            .lookup(&params.access_key_id)
            .ok_or(AuthError::UnrecognizedClient)?;
        match (stored.session_token, params.token.as_deref()) {
            (None, None) => {}
            (Some(want), Some(got)) if bool::from(want.as_bytes().ct_eq(got.as_bytes())) => {}
            _ => return Err(AuthError::UnrecognizedClient),
        }
        if stored.expires_at.is_some_and(|t| t <= now) {
            return Err(AuthError::ExpiredToken);
        }

        let candidates = payload_candidates(req, payload)?;
        let key = cache.get_or_derive(
            &params.access_key_id,
            stored.secret_access_key,
            &params.scope_date,
            &params.scope_region,
            &params.scope_service,
        );
        let scope = canonical::credential_scope(
            &params.scope_date,
            &params.scope_region,
            &params.scope_service,
        );
        let provided = decode_signature(&params.signature);

        // Query form with a token: it may have been signed (in the canonical query) or appended
        // after signing (C-style, aws-c-auth `omit_session_token`).
        let token_variants: &[bool] = match (params.form, params.query_token_index) {
            (AuthForm::Query, Some(_)) => &[true, false],
            (AuthForm::Query, None) => &[false],
            (AuthForm::Header, _) => &[true],
        };
        for &include_token in token_variants {
            let prefix = self.canonical_prefix(req, &params, include_token);
            let mut hasher = Sha256::new();
            hasher.update(&prefix);
            for (hash, coverage) in &candidates {
                let mut h = hasher.clone();
                h.update(hash.as_bytes());
                let creq_hash = hex::encode(h.finalize());
                let sts = canonical::string_to_sign(&params.amz_date, &scope, &creq_hash);
                let computed = canonical::signature(&key, sts.as_bytes());
                if let Some(provided) = provided
                    && bool::from(computed.ct_eq(&provided))
                {
                    let session_token_signed = params.token.is_some()
                        && match params.form {
                            AuthForm::Query => include_token,
                            AuthForm::Header => params
                                .signed_headers
                                .split(';')
                                .any(|h| h == "x-amz-security-token"),
                        };
                    return Ok(Verified {
                        access_key_id: params.access_key_id.clone(),
                        signed_at: params.signed_at,
                        form: params.form,
                        payload: *coverage,
                        session_token_signed,
                    });
                }
            }
        }
        Err(AuthError::SignatureMismatch)
    }

    /// The canonical request this verifier computes for `req` with the given payload hash (for
    /// diagnostics and differential tests). Presigned requests include the token if present.
    pub fn canonical_request(
        &self,
        req: &RequestView<'_>,
        payload_hash: &str,
    ) -> Result<String, AuthError> {
        self.check_limits(req)?;
        let params = self.parse(req)?;
        let mut bytes = self.canonical_prefix(req, &params, true);
        bytes.extend_from_slice(payload_hash.as_bytes());
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn parse(&self, req: &RequestView<'_>) -> Result<AuthParams, AuthError> {
        let mut auth_values = req.header_values("authorization");
        if let Some(auth) = auth_values.next() {
            if auth_values.next().is_some() {
                return Err(incomplete("Only one Authorization header is allowed."));
            }
            self.parse_header_form(req, auth)
        } else if query_has_signature(req.query) {
            self.parse_query_form(req)
        } else {
            Err(AuthError::MissingAuthenticationToken)
        }
    }

    fn parse_header_form(
        &self,
        req: &RequestView<'_>,
        auth: &[u8],
    ) -> Result<AuthParams, AuthError> {
        let auth = std::str::from_utf8(auth)
            .map_err(|e| {
                incomplete(format!(
                    "Authorization header is not UTF-8 (byte {}).",
                    e.valid_up_to()
                ))
            })?
            .trim();
        let (algorithm, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        if algorithm != ALGORITHM {
            return Err(incomplete(format!(
                "Unsupported AWS 'algorithm': '{algorithm}'. Only '{ALGORITHM}' is accepted."
            )));
        }
        let (mut credential, mut signed_headers, mut signature) = (None, None, None);
        for part in rest.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let slot = match k {
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => continue,
            };
            if slot.is_some() {
                return Err(incomplete(format!(
                    "Authorization header has '{k}' more than once."
                )));
            }
            *slot = Some(v);
        }
        let x_amz_date = req.header("x-amz-date");
        let date = req.header("date");
        let mut missing = String::new();
        for (name, value) in [
            ("Credential", credential.is_some()),
            ("Signature", signature.is_some()),
            ("SignedHeaders", signed_headers.is_some()),
        ] {
            if !value {
                missing.push_str(&format!(
                    "Authorization header requires '{name}' parameter. "
                ));
            }
        }
        if x_amz_date.is_none() && date.is_none() {
            missing.push_str(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
            );
        }
        let (Some(credential), Some(signed_headers), Some(signature)) =
            (credential, signed_headers, signature)
        else {
            return Err(incomplete(format!("{missing}Authorization={auth}")));
        };
        if !missing.is_empty() {
            return Err(incomplete(format!("{missing}Authorization={auth}")));
        }
        let (amz_date, signed_at) = match (x_amz_date, date) {
            (Some(v), _) => {
                let text = String::from_utf8_lossy(v).trim().to_owned();
                let t = canonical::parse_amz_date(&text).ok_or_else(|| {
                    incomplete(format!(
                        "Date must be in ISO-8601 'basic format'. Got '{text}'. See http://docs.aws.amazon.com/general/latest/gr/sigv4-date-handling.html"
                    ))
                })?;
                (text, t)
            }
            (None, Some(v)) => {
                let text = String::from_utf8_lossy(v);
                let t = canonical::parse_http_date(&text).ok_or_else(|| {
                    incomplete(format!("Date header is not an RFC 1123 date: '{text}'."))
                })?;
                (fmt_time(t), t)
            }
            (None, None) => return Err(incomplete("Missing date.")),
        };
        let signed = self.check_signed_headers(signed_headers)?;
        if !signed.iter().any(|h| *h == "x-amz-date" || *h == "date") {
            return Err(incomplete(
                "'X-Amz-Date' or 'Date' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        let token = req
            .header("x-amz-security-token")
            .map(|v| String::from_utf8_lossy(v).trim().to_owned());
        let mut params = split_credential(credential)?;
        params.form = AuthForm::Header;
        params.signed_headers = signed_headers.to_owned();
        params.signature = signature.to_owned();
        params.amz_date = amz_date;
        params.signed_at = signed_at;
        params.token = token;
        Ok(params)
    }

    fn parse_query_form(&self, req: &RequestView<'_>) -> Result<AuthParams, AuthError> {
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut fields: [Option<String>; 7] = Default::default();
        const NAMES: [&str; 7] = [
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-SignedHeaders",
            "X-Amz-Signature",
            "X-Amz-Expires",
            "X-Amz-Security-Token",
        ];
        let mut token_index = None;
        for (k, v) in canonical::query_pairs(req.query) {
            if let Some(i) = NAMES.iter().position(|n| n.as_bytes() == k.as_slice()) {
                let slot = fields.get_mut(i).ok_or_else(|| incomplete("internal"))?;
                if slot.is_some() {
                    return Err(incomplete(format!(
                        "Query parameter '{}' appears more than once.",
                        NAMES.get(i).copied().unwrap_or("")
                    )));
                }
                *slot = Some(String::from_utf8_lossy(&v).into_owned());
                if i == 4 {
                    continue; // the signature is not part of the canonical query
                }
                if i == 6 {
                    token_index = Some(pairs.len());
                }
            }
            pairs.push((k, v));
        }
        let [
            algorithm,
            credential,
            date,
            signed_headers,
            signature,
            expires,
            token,
        ] = fields;
        let (
            Some(algorithm),
            Some(credential),
            Some(date),
            Some(signed_headers),
            Some(signature),
            Some(expires),
        ) = (
            algorithm,
            credential,
            date,
            signed_headers,
            signature,
            expires,
        )
        else {
            return Err(incomplete(
                "AWS query-string parameters must include 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Signature', 'X-Amz-Date', 'X-Amz-SignedHeaders' and 'X-Amz-Expires'.",
            ));
        };
        if algorithm != ALGORITHM {
            return Err(incomplete(format!(
                "Unsupported AWS 'algorithm': '{algorithm}'. Only '{ALGORITHM}' is accepted."
            )));
        }
        let signed_at = canonical::parse_amz_date(&date).ok_or_else(|| {
            incomplete(format!(
                "X-Amz-Date must be in ISO-8601 'basic format'. Got '{date}'."
            ))
        })?;
        let expires_secs: u64 = expires.parse().map_err(|_| {
            incomplete(format!(
                "X-Amz-Expires must be a number of seconds, got '{expires}'."
            ))
        })?;
        if expires_secs == 0 || expires_secs > MAX_PRESIGN_EXPIRES_SECS {
            return Err(incomplete(format!(
                "X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES_SECS} seconds, got {expires_secs}."
            )));
        }
        self.check_signed_headers(&signed_headers)?;
        let mut params = split_credential(&credential)?;
        params.form = AuthForm::Query;
        params.signed_headers = signed_headers;
        params.signature = signature;
        params.amz_date = date;
        params.signed_at = signed_at;
        params.expires = Some(expires_secs);
        params.query_pairs = pairs;
        params.query_token_index = token_index;
        params.token = token;
        Ok(params)
    }

    fn check_signed_headers<'s>(&self, signed: &'s str) -> Result<Vec<&'s str>, AuthError> {
        let count = signed.split(';').count();
        if count > self.limits.max_signed_headers {
            return Err(AuthError::TooLarge {
                what: "SignedHeaders count",
                len: count,
                limit: self.limits.max_signed_headers,
            });
        }
        let names: Vec<&str> = signed.split(';').collect();
        if let Some(bad) = names
            .iter()
            .find(|n| n.is_empty() || !n.bytes().all(is_token_char))
        {
            return Err(incomplete(format!(
                "SignedHeaders must be lower-case header names separated by ';', got '{bad}' in '{signed}'."
            )));
        }
        if !names.contains(&"host") {
            return Err(incomplete(
                "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            ));
        }
        Ok(names)
    }

    fn check_scope(&self, p: &AuthParams) -> Result<(), AuthError> {
        let mut msg = String::new();
        if p.scope_region != self.region {
            msg.push_str("Credential should be scoped to a valid region. ");
        }
        if p.scope_service != self.service {
            msg.push_str(&format!(
                "Credential should be scoped to correct service: '{}'. ",
                self.service
            ));
        }
        if p.scope_terminator != SCOPE_TERMINATOR {
            msg.push_str(&format!(
                "Credential should be scoped with a valid terminator: '{SCOPE_TERMINATOR}', not '{}'. ",
                p.scope_terminator
            ));
        }
        let date8 = p.amz_date.get(0..8).unwrap_or("");
        if p.scope_date != date8 {
            msg.push_str(&format!(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{date8}', from '{}'.",
                p.scope_date, p.amz_date
            ));
        }
        if msg.is_empty() {
            Ok(())
        } else {
            Err(AuthError::InvalidScope(msg.trim_end().to_owned()))
        }
    }

    fn check_time(&self, p: &AuthParams, now: SystemTime) -> Result<(), AuthError> {
        let skew = skew_text(self.max_skew);
        let t = p.signed_at;
        if let Some(latest) = now.checked_add(self.max_skew)
            && t > latest
        {
            return Err(AuthError::SignatureExpired(format!(
                "Signature not yet current: {} is still later than {} ({} + {skew})",
                p.amz_date,
                fmt_time(latest),
                fmt_time(now)
            )));
        }
        let (window, window_text) = match p.expires {
            Some(e) => (Duration::from_secs(e), format!("{e} sec.")),
            None => (self.max_skew, skew),
        };
        if let Some(earliest) = now.checked_sub(window)
            && t < earliest
        {
            return Err(AuthError::SignatureExpired(format!(
                "Signature expired: {} is now earlier than {} ({} - {window_text})",
                p.amz_date,
                fmt_time(earliest),
                fmt_time(now)
            )));
        }
        Ok(())
    }

    /// Canonical request up to and including the SignedHeaders line and its newline.
    fn canonical_prefix(
        &self,
        req: &RequestView<'_>,
        p: &AuthParams,
        include_token: bool,
    ) -> Vec<u8> {
        let uri = canonical::canonical_uri(req.path, self.path);
        let query = match p.form {
            AuthForm::Header => canonical::canonical_query(req.query),
            AuthForm::Query => canonical::canonical_query_from_pairs(
                p.query_pairs
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| include_token || Some(*i) != p.query_token_index)
                    .map(|(_, (k, v))| (k, v)),
            ),
        };
        let mut out = Vec::with_capacity(uri.len() + query.len() + 512);
        out.extend_from_slice(req.method.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(uri.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(query.as_bytes());
        out.push(b'\n');
        for name in p.signed_headers.split(';') {
            out.extend_from_slice(name.as_bytes());
            out.push(b':');
            for (i, value) in req.header_values(name).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical::push_header_value(value, &mut out);
            }
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(p.signed_headers.as_bytes());
        out.push(b'\n');
        out
    }
}

fn query_has_signature(query: &str) -> bool {
    query
        .split('&')
        .any(|p| p.starts_with("X-Amz-Signature=") || p.starts_with("X-Amz-Algorithm="))
}

fn split_credential(credential: &str) -> Result<AuthParams, AuthError> {
    let mut parts = credential.rsplitn(5, '/');
    let (Some(term), Some(service), Some(region), Some(date), Some(akid)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    };
    if akid.is_empty() || akid.contains('/') {
        return Err(incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    }
    Ok(AuthParams {
        form: AuthForm::Header,
        access_key_id: akid.to_owned(),
        scope_date: date.to_owned(),
        scope_region: region.to_owned(),
        scope_service: service.to_owned(),
        scope_terminator: term.to_owned(),
        signed_headers: String::new(),
        signature: String::new(),
        amz_date: String::new(),
        signed_at: SystemTime::UNIX_EPOCH,
        expires: None,
        query_pairs: Vec::new(),
        query_token_index: None,
        token: None,
    })
}

fn decode_signature(sig: &str) -> Option<[u8; 32]> {
    if sig.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(sig, &mut out).ok()?;
    Some(out)
}

fn payload_candidates(
    req: &RequestView<'_>,
    payload: Payload<'_>,
) -> Result<Vec<(String, PayloadCoverage)>, AuthError> {
    let body_hash = match payload {
        Payload::Bytes(b) => Some(<[u8; 32]>::from(Sha256::digest(b))),
        Payload::Sha256(h) => Some(h),
        Payload::Streaming => None,
    };
    if let Some(raw) = req.header("x-amz-content-sha256") {
        let value = std::str::from_utf8(raw)
            .map_err(|_| AuthError::PayloadHash("the value is not text".to_owned()))?
            .trim();
        if value == UNSIGNED_PAYLOAD {
            return Ok(vec![(value.to_owned(), PayloadCoverage::Unsigned)]);
        }
        if value.starts_with("STREAMING-") {
            return Ok(vec![(value.to_owned(), PayloadCoverage::StreamingChunks)]);
        }
        let mut claimed = [0u8; 32];
        if value.len() != 64
            || value.bytes().any(|b| b.is_ascii_uppercase())
            || hex::decode_to_slice(value, &mut claimed).is_err()
        {
            return Err(AuthError::PayloadHash(format!(
                "'{value}' is not UNSIGNED-PAYLOAD, STREAMING-* or a lower-case hex SHA-256"
            )));
        }
        return match body_hash {
            Some(h) if !bool::from(h.ct_eq(&claimed)) => Err(AuthError::PayloadHash(format!(
                "the header says {value}, the body hashes to {}",
                hex::encode(h)
            ))),
            Some(_) => Ok(vec![(value.to_owned(), PayloadCoverage::Verified)]),
            None => Ok(vec![(
                value.to_owned(),
                PayloadCoverage::MustMatch(claimed),
            )]),
        };
    }
    Ok(match body_hash {
        Some(h) => vec![(hex::encode(h), PayloadCoverage::Verified)],
        None => vec![
            (
                EMPTY_SHA256_HEX.to_owned(),
                PayloadCoverage::EmptyHashStreaming,
            ),
            (UNSIGNED_PAYLOAD.to_owned(), PayloadCoverage::Unsigned),
        ],
    })
}
