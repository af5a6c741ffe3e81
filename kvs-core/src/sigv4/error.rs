//! Typed SigV4 errors, mapped to the error names and HTTP statuses KVS answers with.

/// The message KVS sends (lower-case `message` key) when the signature does not match.
pub const SIGNATURE_MISMATCH_MESSAGE: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// Why a request failed SigV4 verification.
///
/// [`AuthError::aws_error_name`] and [`AuthError::http_status`] give what a KVS-compatible server
/// puts in `x-amzn-ErrorType` and the status line; `Display` is the wire `message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization` header and no `X-Amz-Signature` query parameter.
    #[error("Request is missing Authentication Token")]
    MissingAuthenticationToken,
    /// The Authorization header or presigned query is malformed or lacks a required part.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The credential scope (region, service, terminator or date) is wrong.
    #[error("{0}")]
    InvalidScope(String),
    /// The signing time is outside the allowed clock skew, or a presigned URL has expired.
    #[error("{0}")]
    SignatureExpired(String),
    /// The signature does not match what we computed.
    #[error("{SIGNATURE_MISMATCH_MESSAGE}")]
    SignatureMismatch,
    /// `x-amz-content-sha256` holds a hash that differs from the body's, or an invalid value.
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed: {0}")]
    PayloadHash(String),
    /// The access key id is unknown, or the session token is missing, unexpected or wrong.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// The credentials behind the access key id (a session) have expired.
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    /// A part of the request exceeds a [`Limits`](super::Limits) bound; nothing was allocated
    /// for it.
    #[error("request {what} is {len} bytes/items, over the limit of {limit}")]
    TooLarge {
        /// Which part: "path", "query", "header count", "header value", "authorization", ...
        what: &'static str,
        /// Its size.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
}

impl AuthError {
    /// The error name for `x-amzn-ErrorType` (the part before `:`).
    pub fn aws_error_name(&self) -> &'static str {
        match self {
            AuthError::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            AuthError::IncompleteSignature(_) | AuthError::TooLarge { .. } => {
                "IncompleteSignatureException"
            }
            AuthError::InvalidScope(_)
            | AuthError::SignatureExpired(_)
            | AuthError::SignatureMismatch
            | AuthError::PayloadHash(_) => "InvalidSignatureException",
            AuthError::UnrecognizedClient => "UnrecognizedClientException",
            AuthError::ExpiredToken => "ExpiredTokenException",
        }
    }

    /// The HTTP status: 400 for a malformed signature (CommonErrors: IncompleteSignature 400) or
    /// an oversized request, 403 for everything else.
    pub fn http_status(&self) -> http::StatusCode {
        match self {
            AuthError::IncompleteSignature(_) | AuthError::TooLarge { .. } => {
                http::StatusCode::BAD_REQUEST
            }
            _ => http::StatusCode::FORBIDDEN,
        }
    }

    /// The wire message (same as `Display`).
    pub fn message(&self) -> String {
        self.to_string()
    }
}

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The request has no `host` header and its URI has no authority to derive one from.
    #[error("cannot sign: the request has no host header and its URI has no authority")]
    MissingHost,
    /// A header value is not visible ASCII / UTF-8, so it cannot be signed by aws-sigv4 or put in
    /// an `http::HeaderValue`.
    #[error("cannot sign: header {name:?} has a value that is not valid text")]
    InvalidHeaderValue {
        /// The header name.
        name: String,
    },
    /// The signing time is before 1970 or after 9999.
    #[error("cannot sign: signing time is outside 1970..=9999")]
    TimeOutOfRange,
    /// aws-sigv4 refused the request.
    #[error("aws-sigv4 failed: {0}")]
    AwsSigv4(String),
}
