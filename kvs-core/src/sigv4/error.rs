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
    /// The service error this failure is answered with: its name, status and wire form come
    /// from [`crate::api::ApiErrorKind`], the one table of service errors.
    pub fn kind(&self) -> crate::api::ApiErrorKind {
        use crate::api::ApiErrorKind;
        match self {
            AuthError::MissingAuthenticationToken => ApiErrorKind::MissingAuthenticationToken,
            // An oversized request is refused before its signature can even be read.
            AuthError::IncompleteSignature(_) | AuthError::TooLarge { .. } => {
                ApiErrorKind::IncompleteSignature
            }
            AuthError::InvalidScope(_)
            | AuthError::SignatureExpired(_)
            | AuthError::SignatureMismatch
            | AuthError::PayloadHash(_) => ApiErrorKind::InvalidSignature,
            AuthError::UnrecognizedClient => ApiErrorKind::UnrecognizedClient,
            AuthError::ExpiredToken => ApiErrorKind::ExpiredToken,
        }
    }

    /// The error name for `x-amzn-ErrorType` (the part before `:`).
    pub fn aws_error_name(&self) -> &'static str {
        self.kind()
            .static_name()
            .unwrap_or("InvalidSignatureException")
    }

    /// The HTTP status of [`kind`](Self::kind).
    pub fn http_status(&self) -> http::StatusCode {
        http::StatusCode::from_u16(self.kind().http_status()).unwrap_or(http::StatusCode::FORBIDDEN)
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

impl From<&AuthError> for crate::api::ApiError {
    fn from(error: &AuthError) -> Self {
        crate::api::ApiError::new(error.kind(), error.message())
    }
}

#[cfg(test)]
mod auth_error_kind_tests {
    use super::AuthError;
    use crate::api::{ApiError, ApiErrorKind};

    #[test]
    fn auth_errors_are_service_errors() {
        let e = ApiError::from(&AuthError::UnrecognizedClient);
        assert_eq!(
            (e.kind.clone(), e.http_status),
            (ApiErrorKind::UnrecognizedClient, 403)
        );
        assert_eq!(
            AuthError::UnrecognizedClient.aws_error_name(),
            "UnrecognizedClientException"
        );
        assert_eq!(AuthError::SignatureMismatch.http_status(), 403);
        assert_eq!(
            AuthError::IncompleteSignature("x".into()).aws_error_name(),
            "IncompleteSignatureException"
        );
        // Both spellings of the generic CommonErrors names parse to the same kind.
        assert_eq!(
            ApiErrorKind::from_name("IncompleteSignature"),
            ApiErrorKind::from_name("IncompleteSignatureException")
        );
        assert_eq!(
            ApiErrorKind::from_name("MissingAuthenticationToken"),
            ApiErrorKind::MissingAuthenticationToken
        );
    }
}
