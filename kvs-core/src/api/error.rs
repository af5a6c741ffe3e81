//! Service errors: the exception names of the KVS models, their HTTP statuses, and how they
//! travel (`x-amzn-ErrorType` header, `{"Message": ...}` body, `x-amzn-RequestId`).

use bytes::Bytes;
use core::fmt;

/// Header carrying `<Code>:<namespace-url>` on every error response.
pub const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";
/// Older spelling of the error type header that the developer guide documents; written too.
pub const LEGACY_ERROR_TYPE_HEADER: &str = "x-amz-errortype";
/// Header carrying the request id on every response.
pub const REQUEST_ID_HEADER: &str = "x-amzn-requestid";
/// Namespace the service appends to its own (modelled) exceptions.
pub const SERVICE_ERROR_NAMESPACE: &str = "https://kinesisvideo.amazonaws.com/doc/2017-09-30/";
/// Namespace of front-door (Coral framework) errors: auth, serialization, unknown operation.
pub const CORAL_ERROR_NAMESPACE: &str =
    "http://internal.amazon.com/coral/com.amazon.coral.service/";
/// Largest error body the client looks into; the rest is ignored.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

macro_rules! error_kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal, $status:literal, $coral:literal;)*) => {
        /// Every exception the KVS services (and their front door) answer with.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ApiErrorKind {
            $($(#[$doc])* $variant,)*
            /// An error name this crate does not know, kept verbatim.
            Other(String),
        }

        impl ApiErrorKind {
            /// Every known kind (not `Other`), for tests and tables.
            pub const ALL: &'static [ApiErrorKind] = &[$(ApiErrorKind::$variant),*];

            /// The AWS name, as written in `x-amzn-ErrorType` (e.g. `ResourceNotFoundException`).
            pub fn name(&self) -> &str {
                match self {
                    $(ApiErrorKind::$variant => $name,)*
                    ApiErrorKind::Other(name) => name,
                }
            }

            /// The AWS name of a known kind as a `'static` string (`None` for `Other`).
            pub fn static_name(&self) -> Option<&'static str> {
                match self {
                    $(ApiErrorKind::$variant => Some($name),)*
                    ApiErrorKind::Other(_) => None,
                }
            }

            /// The HTTP status the services answer this error with (500 for `Other`).
            pub fn http_status(&self) -> u16 {
                match self {
                    $(ApiErrorKind::$variant => $status,)*
                    ApiErrorKind::Other(_) => 500,
                }
            }

            /// True for front-door (Coral framework) errors rather than modelled exceptions:
            /// these use the Coral namespace and a lower-case `message` body key.
            pub fn is_front_door(&self) -> bool {
                match self {
                    $(ApiErrorKind::$variant => $coral,)*
                    ApiErrorKind::Other(_) => false,
                }
            }

            /// Looks up a name; unknown names become [`ApiErrorKind::Other`].
            pub fn from_name(name: &str) -> ApiErrorKind {
                // The generic CommonErrors page spells two front-door errors without the
                // suffix that Coral services send; both spellings mean the same kind.
                let name = match name {
                    "IncompleteSignature" => "IncompleteSignatureException",
                    "MissingAuthenticationToken" => "MissingAuthenticationTokenException",
                    other => other,
                };
                match name {
                    $($name => ApiErrorKind::$variant,)*
                    other => ApiErrorKind::Other(other.to_owned()),
                }
            }
        }
    };
}

error_kinds! {
    /// A parameter failed validation (400).
    InvalidArgument = "InvalidArgumentException", 400, false;
    /// Throttled: too many calls per second (400).
    ClientLimitExceeded = "ClientLimitExceededException", 400, false;
    /// The account has too many streams (400).
    AccountStreamLimitExceeded = "AccountStreamLimitExceededException", 400, false;
    /// The account has too many signaling channels (400).
    AccountChannelLimitExceeded = "AccountChannelLimitExceededException", 400, false;
    /// Not implemented by the service (400).
    DeviceStreamLimitExceeded = "DeviceStreamLimitExceededException", 400, false;
    /// Not implemented by the service (400).
    InvalidDevice = "InvalidDeviceException", 400, false;
    /// The stream exists already, or is not ACTIVE (400).
    ResourceInUse = "ResourceInUseException", 400, false;
    /// Stale `CurrentVersion` (400).
    VersionMismatch = "VersionMismatchException", 400, false;
    /// More than 50 tags (400).
    TagsPerResourceExceededLimit = "TagsPerResourceExceededLimitException", 400, false;
    /// Malformed StreamARN (400).
    InvalidResourceFormat = "InvalidResourceFormatException", 400, false;
    /// The stream keeps no data but the operation needs the archive (400).
    NoDataRetention = "NoDataRetentionException", 400, false;
    /// The caller may not do this (401).
    NotAuthorized = "NotAuthorizedException", 401, false;
    /// The caller may not do this (401 in the model).
    AccessDenied = "AccessDeniedException", 401, false;
    /// The stream does not exist or is not active (404).
    ResourceNotFound = "ResourceNotFoundException", 404, false;
    /// No edge configuration for the stream (404).
    StreamEdgeConfigurationNotFound = "StreamEdgeConfigurationNotFoundException", 404, false;
    /// The request went to the wrong data endpoint (400).
    InvalidEndpoint = "InvalidEndpointException", 400, false;
    /// Too many concurrent connections for the stream (400).
    ConnectionLimitExceeded = "ConnectionLimitExceededException", 400, false;
    /// The media type cannot be packaged (400).
    UnsupportedStreamMediaType = "UnsupportedStreamMediaTypeException", 400, false;
    /// A track lacks codec private data (400).
    MissingCodecPrivateData = "MissingCodecPrivateDataException", 400, false;
    /// Codec private data could not be parsed (400).
    InvalidCodecPrivateData = "InvalidCodecPrivateDataException", 400, false;
    /// A frame could not be parsed (GetClip, 400).
    InvalidMediaFrame = "InvalidMediaFrameException", 400, false;
    /// The signature is wrong or expired (403).
    InvalidSignature = "InvalidSignatureException", 403, true;
    /// The Authorization header is malformed (400).
    IncompleteSignature = "IncompleteSignatureException", 400, true;
    /// Unknown access key id (403).
    InvalidClientTokenId = "InvalidClientTokenId", 403, true;
    /// No credentials in the request (403).
    MissingAuthenticationToken = "MissingAuthenticationTokenException", 403, true;
    /// The access key id is not known (403).
    UnrecognizedClient = "UnrecognizedClientException", 403, true;
    /// The session token has expired (403).
    ExpiredToken = "ExpiredTokenException", 403, true;
    /// The request is too old or too far in the future (400).
    RequestExpired = "RequestExpired", 400, true;
    /// Generic throttling (400).
    Throttling = "ThrottlingException", 400, true;
    /// Generic validation error (400).
    ValidationError = "ValidationError", 400, true;
    /// The service is unavailable (503).
    ServiceUnavailable = "ServiceUnavailable", 503, true;
    /// Internal error (500).
    InternalFailure = "InternalFailure", 500, true;
    /// The body is not the JSON the operation expects (400, Coral envelope).
    Serialization = "SerializationException", 400, true;
    /// No operation at this path (404, Coral envelope).
    UnknownOperation = "UnknownOperationException", 404, true;
}

impl fmt::Display for ApiErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An error answered by (or to be answered by) a KVS service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} (HTTP {http_status}): {message}")]
pub struct ApiError {
    /// Which exception.
    pub kind: ApiErrorKind,
    /// The human-readable message (may be empty).
    pub message: String,
    /// The HTTP status of the response.
    pub http_status: u16,
    /// The `x-amzn-RequestId` of the response, when known.
    pub request_id: Option<String>,
}

impl ApiError {
    /// An error of `kind` with its usual status.
    pub fn new(kind: ApiErrorKind, message: impl Into<String>) -> Self {
        let http_status = kind.http_status();
        ApiError {
            kind,
            message: message.into(),
            http_status,
            request_id: None,
        }
    }

    /// `InvalidArgumentException` with `message`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::InvalidArgument, message)
    }

    /// `SerializationException` with `message`.
    pub fn serialization(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::Serialization, message)
    }

    /// `ResourceNotFoundException` with the service's message for a missing stream.
    pub fn stream_not_found() -> Self {
        Self::new(
            ApiErrorKind::ResourceNotFound,
            "The requested stream is not found or not active.",
        )
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Server side: the HTTP response the service writes for this error. Modelled exceptions
    /// get `x-amzn-ErrorType: <Name>:<doc namespace>` and `{"Message": ...}`; front-door errors
    /// the Coral namespace and `{"message": ...}`; `SerializationException` and
    /// `UnknownOperationException` the Coral `{"Output": {"__type": ...}, "Version": "1.0"}`
    /// envelope. `request_id` is used unless the error carries its own.
    pub fn to_http(&self, request_id: &str) -> http::Response<Bytes> {
        let name = self.kind.name();
        let namespace = if self.kind.is_front_door() {
            CORAL_ERROR_NAMESPACE
        } else {
            SERVICE_ERROR_NAMESPACE
        };
        let message = if self.message.is_empty() {
            serde_json::Value::Null
        } else {
            self.message.clone().into()
        };
        let body = match self.kind {
            ApiErrorKind::Serialization | ApiErrorKind::UnknownOperation => serde_json::json!({
                "Output": {"__type": format!("com.amazon.coral.service#{name}"), "Message": message},
                "Version": "1.0",
            }),
            _ if self.kind.is_front_door() => serde_json::json!({ "message": message }),
            _ => serde_json::json!({ "Message": message }),
        };
        let rid = self.request_id.as_deref().unwrap_or(request_id);
        let error_type = format!("{name}:{namespace}");
        let mut response = http::Response::new(Bytes::from(body.to_string()));
        *response.status_mut() =
            http::StatusCode::from_u16(self.http_status).unwrap_or(http::StatusCode::BAD_REQUEST);
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            super::header_value(super::JSON_CONTENT_TYPE),
        );
        headers.insert(ERROR_TYPE_HEADER, super::header_value(&error_type));
        headers.insert(LEGACY_ERROR_TYPE_HEADER, super::header_value(&error_type));
        headers.insert(REQUEST_ID_HEADER, super::header_value(rid));
        response
    }

    /// Client side: reads an error response as botocore does. The code comes from
    /// `x-amzn-ErrorType` (cut at the first `:`), else the body's `code`/`Code`, else `__type`
    /// (also inside a Coral `Output` envelope; cut after the last `#`); the message from
    /// `message`/`Message`. Without any code the kind is derived from the status.
    pub fn from_response(parts: &http::response::Parts, body: &[u8]) -> ApiError {
        let body = body.get(..MAX_ERROR_BODY).unwrap_or(body);
        let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let inner = json
            .get("Output")
            .filter(|o| o.is_object())
            .unwrap_or(&json);
        let text = |v: &serde_json::Value, keys: &[&str]| {
            keys.iter()
                .find_map(|k| v.get(*k).and_then(|x| x.as_str()).map(str::to_owned))
        };
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let code = header(ERROR_TYPE_HEADER)
            .or_else(|| header(LEGACY_ERROR_TYPE_HEADER))
            .map(|v| v.split(':').next().unwrap_or(v).trim().to_owned())
            .filter(|c| !c.is_empty())
            .or_else(|| text(inner, &["code", "Code"]))
            .or_else(|| {
                text(inner, &["__type"]).map(|t| t.rsplit('#').next().unwrap_or(&t).to_owned())
            });
        let status = parts.status.as_u16();
        let kind = match code {
            Some(code) => ApiErrorKind::from_name(&code),
            None => match status {
                404 => ApiErrorKind::ResourceNotFound,
                401 => ApiErrorKind::NotAuthorized,
                403 => ApiErrorKind::InvalidSignature,
                503 => ApiErrorKind::ServiceUnavailable,
                500..=599 => ApiErrorKind::InternalFailure,
                _ => ApiErrorKind::Other(format!("HTTP{status}")),
            },
        };
        ApiError {
            kind,
            message: text(inner, &["message", "Message"]).unwrap_or_default(),
            http_status: status,
            request_id: header(REQUEST_ID_HEADER).map(str::to_owned),
        }
    }

    /// Client side: [`ApiError::from_response`] over a whole buffered response.
    pub fn from_http(response: &http::Response<Bytes>) -> ApiError {
        let (parts, body) = (response_parts(response), response.body());
        Self::from_response(&parts, body)
    }
}

/// A copy of a response head (status and headers) without the body.
fn response_parts(response: &http::Response<Bytes>) -> http::response::Parts {
    let mut head = http::Response::new(());
    *head.status_mut() = response.status();
    *head.headers_mut() = response.headers().clone();
    head.into_parts().0
}
