//! The client's error type: what went wrong and what to do about it.

use crate::ack::ErrorId;
use crate::api::{ApiError, ApiErrorKind};
use crate::credentials::CredentialsError;

/// An error from the client transport.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The service answered with an error.
    #[error("{operation} failed: {error}{hint}")]
    Api {
        /// The operation (`DescribeStream`, `PutMedia`, ...).
        operation: &'static str,
        /// The service's error.
        error: ApiError,
        /// What to do about it (empty or starting with `; `).
        hint: String,
    },
    /// The request could not be sent or the response not read.
    #[error("{operation}: HTTP transport error talking to {endpoint}: {message}")]
    Transport {
        /// The operation.
        operation: &'static str,
        /// The endpoint.
        endpoint: String,
        /// The transport's message.
        message: String,
    },
    /// No usable credentials, region or shared file.
    #[error("credentials: {0}")]
    Credentials(#[from] CredentialsError),
    /// The IoT credentials provider failed.
    #[error("IoT credentials provider: {0}")]
    Iot(String),
    /// A configuration value is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// Signing failed.
    #[error("signing {operation}: {message}")]
    Sign {
        /// The operation.
        operation: &'static str,
        /// Why.
        message: String,
    },
    /// The producer failed, refused something or was closed. `message` says what happened;
    /// `api` and `ack` say why in typed form when the service was the cause (see
    /// [`ClientError::api_error`] and [`ClientError::ack_error_id`]).
    #[error("producer: {message}")]
    Producer {
        /// What happened and what to do about it.
        message: String,
        /// The service's refusal that stopped the producer: the data endpoint lookup or the
        /// PutMedia request answered with this error (`ResourceNotFoundException` for a missing
        /// stream, `NotAuthorizedException`...).
        api: Option<ApiError>,
        /// The `ErrorId` of the ERROR ACK that failed a fragment, when that is why frames were
        /// dropped (the first such ACK).
        ack: Option<ErrorId>,
    },
    /// The media stream could not be decoded.
    #[error("{operation}: the media stream could not be decoded: {message}")]
    Decode {
        /// The operation.
        operation: &'static str,
        /// Why.
        message: String,
    },
}

impl ClientError {
    /// A producer error with only a message (no service error behind it).
    pub fn producer(message: impl Into<String>) -> Self {
        ClientError::Producer {
            message: message.into(),
            api: None,
            ack: None,
        }
    }

    /// The service error, when there is one: the answer to a request, or the refusal that
    /// stopped a producer.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            ClientError::Api { error, .. } => Some(error),
            ClientError::Producer { api, .. } => api.as_ref(),
            _ => None,
        }
    }

    /// The `ErrorId` of the ERROR ACK that made a producer drop frames, when that is what
    /// happened.
    pub fn ack_error_id(&self) -> Option<ErrorId> {
        match self {
            ClientError::Producer { ack, .. } => *ack,
            _ => None,
        }
    }

    /// Whether the service error is of kind `kind`.
    pub fn is_kind(&self, kind: &ApiErrorKind) -> bool {
        self.api_error().is_some_and(|e| &e.kind == kind)
    }

    /// Whether retrying may help: throttling, 5xx, connection limits and transport errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Transport { .. } => true,
            ClientError::Api { error, .. } => is_retryable_api(error),
            _ => false,
        }
    }
}

/// Whether an [`ApiError`] is worth retrying (throttling and server-side failures).
pub fn is_retryable_api(error: &ApiError) -> bool {
    error.http_status >= 500
        || matches!(
            error.kind,
            ApiErrorKind::ClientLimitExceeded
                | ApiErrorKind::Throttling
                | ApiErrorKind::ServiceUnavailable
                | ApiErrorKind::InternalFailure
                | ApiErrorKind::ConnectionLimitExceeded
        )
}

/// A hint for authentication failures that names the key id and where it came from.
pub(crate) fn auth_hint(error: &ApiError, key_id: &str, source: &str) -> String {
    match error.kind {
        ApiErrorKind::InvalidSignature => format!(
            "; the secret access key paired with access key id {key_id} (from {source}) does not \
             match the one the service holds: fix AWS_SECRET_ACCESS_KEY or the profile's \
             aws_secret_access_key (for a local `kvs serve`, use the key pair its banner prints), \
             and check the system clock"
        ),
        ApiErrorKind::InvalidClientTokenId | ApiErrorKind::NotAuthorized => format!(
            "; the service does not know access key id {key_id} (from {source}): use a key pair \
             the service accepts (for a local `kvs serve`, the one its banner prints)"
        ),
        ApiErrorKind::AccessDenied => format!(
            "; access key id {key_id} (from {source}) may not call this operation: grant the \
             permission in IAM"
        ),
        ApiErrorKind::RequestExpired => {
            "; the request time is outside the allowed skew: fix the system clock".to_owned()
        }
        // GetClip (and the media APIs) answer an empty time range with ResourceNotFound too.
        ApiErrorKind::ResourceNotFound if error.message.starts_with("No fragments found") => {
            "; choose a time range that holds fragments (`kvs fragments` lists them)".to_owned()
        }
        ApiErrorKind::ResourceNotFound => {
            "; create the stream first (`kvs streams create NAME`, or `kvs put --create`)"
                .to_owned()
        }
        _ => String::new(),
    }
}
