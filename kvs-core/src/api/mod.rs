//! The KVS HTTP API as typed operations, for clients and servers alike.
//!
//! Every operation is a request type implementing [`ApiOperation`] and a response type
//! implementing [`ApiResponse`]. The same types serve both sides:
//!
//! | side | request | response |
//! |---|---|---|
//! | client | [`ApiOperation::to_http`] validates and builds `POST /<op>` | [`ApiResponse::from_http`] parses the body or the error |
//! | server | [`ApiRequest::from_http`] routes on the path, parses and validates | [`ApiResponse::to_http`] / [`ApiError::to_http`] |
//!
//! JSON member names are those of the botocore models; timestamps are [`Timestamp`]s (epoch
//! seconds on the wire); field constraints live in [`names`] and [`arn`]. PutMedia is not JSON:
//! see [`put_media`]. GetMedia, GetMediaForFragmentList and GetClip answer a byte stream: their
//! response type [`MediaResponse`] models only the head.

pub mod archived;
pub mod arn;
pub mod control;
pub mod error;
pub mod json;
pub mod media;
pub mod names;
pub mod put_media;

pub use archived::*;
pub use arn::{ArnError, ResourceArn};
pub use control::*;
pub use error::{ApiError, ApiErrorKind};
pub use json::Timestamp;
pub use media::*;
pub use put_media::{FragmentTimecodeType, PutMediaRequest};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// `application/json`, the content type of every JSON request and response.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// Largest JSON request body a server accepts (GetMediaForFragmentList with 1000 numbers is
/// about 130 KB).
pub const MAX_REQUEST_BODY: usize = 1024 * 1024;
/// Largest JSON response body a client accepts (GetImages: up to 100 images of 6 MiB base64).
pub const MAX_RESPONSE_BODY: usize = 700 * 1024 * 1024;

/// The KVS service (botocore model) an operation belongs to. All sign as `kinesisvideo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// `kinesisvideo`: the control plane.
    ControlPlane,
    /// `kinesis-video-media`: GetMedia and PutMedia.
    Media,
    /// `kinesis-video-archived-media`.
    ArchivedMedia,
}

impl Service {
    /// The botocore model name (`kinesisvideo`, `kinesis-video-media`, ...).
    pub fn model_name(self) -> &'static str {
        match self {
            Service::ControlPlane => "kinesisvideo",
            Service::Media => "kinesis-video-media",
            Service::ArchivedMedia => "kinesis-video-archived-media",
        }
    }
}

/// Client- and server-side checks of a request's field constraints.
pub trait Validate {
    /// `Ok` when every field satisfies the model's constraints and the operation's rules;
    /// otherwise the `InvalidArgumentException` the service answers.
    fn validate(&self) -> Result<(), ApiError>;
}

/// A JSON operation's request: its path, its response type and the HTTP mapping.
pub trait ApiOperation: Serialize + DeserializeOwned + Validate + Sized {
    /// Which operation this is.
    const OPERATION: Operation;
    /// What the operation answers.
    type Response: ApiResponse;

    /// Client side: validates and builds `POST <path>` with a JSON body for `endpoint` (a base
    /// URL such as `https://kinesisvideo.us-east-1.amazonaws.com`; only its scheme and authority
    /// are used; an endpoint without them gives an origin-form URI). Absent members are left
    /// out, as botocore does.
    fn to_http(&self, endpoint: &http::Uri) -> Result<http::Request<Bytes>, ApiError> {
        self.validate()?;
        let mut value =
            serde_json::to_value(self).map_err(|e| ApiError::serialization(e.to_string()))?;
        strip_nulls(&mut value);
        let body = Bytes::from(value.to_string());
        let mut request = http::Request::new(body);
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = endpoint_uri(endpoint, Self::OPERATION.path())?;
        let headers = request.headers_mut();
        if let Some(authority) = endpoint.authority() {
            headers.insert(http::header::HOST, header_value(authority.as_str()));
        }
        headers.insert(http::header::CONTENT_TYPE, header_value(JSON_CONTENT_TYPE));
        Ok(request)
    }

    /// Server side: checks method and path, parses the JSON body (an empty body is `{}`) and
    /// validates it. Unparsable JSON or wrong types give `SerializationException`; missing
    /// members, unknown enum values and constraint violations `InvalidArgumentException`.
    fn from_http(request: &http::Request<Bytes>) -> Result<Self, ApiError> {
        check_route(request.method(), request.uri().path(), Self::OPERATION)?;
        let value: Self = parse_json_body(request.body(), MAX_REQUEST_BODY)?;
        value.validate()?;
        Ok(value)
    }
}

/// An operation's response, written by servers and read by clients.
pub trait ApiResponse: Sized {
    /// Server side: the `200` response, carrying `x-amzn-RequestId: request_id`.
    fn to_http(&self, request_id: &str) -> http::Response<Bytes>;
    /// Client side: the value of a `2xx` response, or the [`ApiError`] any other status
    /// carries.
    fn from_http(response: &http::Response<Bytes>) -> Result<Self, ApiError>;
}

/// Marker for responses that are JSON bodies (every response but the media streams).
pub trait JsonResponse: Serialize + DeserializeOwned {}

impl<T: JsonResponse> ApiResponse for T {
    fn to_http(&self, request_id: &str) -> http::Response<Bytes> {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        strip_nulls(&mut value);
        let mut response = http::Response::new(Bytes::from(value.to_string()));
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, header_value(JSON_CONTENT_TYPE));
        headers.insert(error::REQUEST_ID_HEADER, header_value(request_id));
        response
    }

    fn from_http(response: &http::Response<Bytes>) -> Result<Self, ApiError> {
        if !response.status().is_success() {
            return Err(ApiError::from_http(response));
        }
        let request_id = response
            .headers()
            .get(error::REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok());
        parse_json_body(response.body(), MAX_RESPONSE_BODY).map_err(|mut e| {
            e.request_id = request_id.map(str::to_owned);
            e
        })
    }
}

/// Removes `null` members recursively (absent members are omitted on the wire), except inside
/// `StreamInfo` objects, where the service writes its nulls explicitly.
fn strip_nulls(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            for (key, v) in map.iter_mut() {
                if key != "StreamInfo" && key != "StreamInfoList" {
                    strip_nulls(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Parses a JSON body of at most `limit` bytes, mapping serde errors to the service's exceptions.
fn parse_json_body<T: DeserializeOwned>(body: &[u8], limit: usize) -> Result<T, ApiError> {
    if body.len() > limit {
        return Err(ApiError::invalid_argument(format!(
            "The body of {} bytes exceeds the limit of {limit} bytes.",
            body.len()
        )));
    }
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let invalid = e.classify() == serde_json::error::Category::Data
            && (text.starts_with("missing field") || text.starts_with("unknown variant"));
        if invalid {
            ApiError::invalid_argument(format!("1 validation error detected: {text}"))
        } else {
            ApiError::serialization(format!("Unable to parse the request body: {text}"))
        }
    })
}

/// Server side: the request must be `POST` to the operation's path.
fn check_route(method: &http::Method, path: &str, op: Operation) -> Result<(), ApiError> {
    if path != op.path() || method != http::Method::POST {
        return Err(ApiError::new(
            ApiErrorKind::UnknownOperation,
            format!("No operation matches {method} {}", truncate(path, 128)),
        ));
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> &str {
    s.char_indices()
        .nth(n)
        .map_or(s, |(i, _)| s.get(..i).unwrap_or(s))
}

/// `endpoint`'s scheme and authority with `path`.
fn endpoint_uri(endpoint: &http::Uri, path: &str) -> Result<http::Uri, ApiError> {
    let mut parts = http::uri::Parts::default();
    if let (Some(scheme), Some(authority)) = (endpoint.scheme(), endpoint.authority()) {
        parts.scheme = Some(scheme.clone());
        parts.authority = Some(authority.clone());
    }
    parts.path_and_query = Some(
        path.parse()
            .map_err(|e| ApiError::invalid_argument(format!("invalid path {path}: {e}")))?,
    );
    http::Uri::from_parts(parts)
        .map_err(|e| ApiError::invalid_argument(format!("invalid endpoint {endpoint}: {e}")))
}

/// A header value from text, with invalid characters replaced so building never fails.
pub(crate) fn header_value(text: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(text).unwrap_or_else(|_| {
        let clean: String = text
            .chars()
            .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
            .collect();
        http::HeaderValue::from_str(&clean).unwrap_or(http::HeaderValue::from_static(""))
    })
}

/// Declares a string enum of the models: its wire names, `ALL`, `as_str` and serde.
macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every value, in model order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// Every wire name, in model order.
            pub const NAMES: &'static [&'static str] = &[$($wire),*];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }
        }

        impl core::str::FromStr for $name {
            type Err = $crate::api::ApiError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($wire => Ok($name::$variant),)*
                    other => Err($crate::api::names::constraint_error(
                        stringify!($name),
                        other,
                        &format!("satisfy enum value set: [{}]", Self::NAMES.join(", ")),
                    )),
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                match text.as_ref() {
                    $($wire => Ok($name::$variant),)*
                    other => Err(serde::de::Error::unknown_variant(other, Self::NAMES)),
                }
            }
        }
    };
}
pub(crate) use str_enum;

/// Declares every operation once: the [`Operation`] enum, the [`ApiOperation`] impls and the
/// [`ApiRequest`] dispatch enum.
macro_rules! operations {
    ($($op:ident => $path:literal, $service:ident, $req:ident, $resp:ident;)*) => {
        /// Every operation kvs speaks, for routing.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $(
                #[doc = concat!("`POST ", $path, "`.")]
                $op,
            )*
            /// `POST /putMedia` (headers plus a streamed MKV body; in no botocore model).
            PutMedia,
        }

        impl Operation {
            /// Every operation.
            pub const ALL: &'static [Operation] = &[$(Operation::$op,)* Operation::PutMedia];

            /// The operation name, as in the models (`DescribeStream`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Operation::$op => stringify!($op),)*
                    Operation::PutMedia => "PutMedia",
                }
            }

            /// The request path (`/describeStream`, `/TagResource`).
            pub fn path(self) -> &'static str {
                match self {
                    $(Operation::$op => $path,)*
                    Operation::PutMedia => put_media::PUT_MEDIA_PATH,
                }
            }

            /// The service (botocore model) the operation belongs to.
            pub fn service(self) -> Service {
                match self {
                    $(Operation::$op => Service::$service,)*
                    Operation::PutMedia => Service::Media,
                }
            }

            /// The operation at `path` (exact, case-sensitive, as the service routes).
            pub fn from_path(path: &str) -> Option<Operation> {
                match path {
                    $($path => Some(Operation::$op),)*
                    put_media::PUT_MEDIA_PATH => Some(Operation::PutMedia),
                    _ => None,
                }
            }
        }

        $(
            impl ApiOperation for $req {
                const OPERATION: Operation = Operation::$op;
                type Response = $resp;
            }
        )*

        /// A parsed request of any operation: what a server routes on.
        #[derive(Debug, Clone, PartialEq)]
        pub enum ApiRequest {
            $(
                #[doc = concat!("`", stringify!($op), "`.")]
                $op($req),
            )*
            /// `PutMedia`: the request head only; the body is the MKV stream.
            PutMedia(PutMediaRequest),
        }

        impl ApiRequest {
            /// Server side: routes on the path and parses the request (for PutMedia, only its
            /// headers). An unknown path or a method other than POST gives
            /// `UnknownOperationException`.
            pub fn from_http(request: &http::Request<Bytes>) -> Result<ApiRequest, ApiError> {
                let path = request.uri().path();
                let op = Operation::from_path(path).ok_or_else(|| {
                    ApiError::new(
                        ApiErrorKind::UnknownOperation,
                        format!("No operation matches {} {}", request.method(), truncate(path, 128)),
                    )
                })?;
                Ok(match op {
                    $(Operation::$op => ApiRequest::$op(<$req as ApiOperation>::from_http(request)?),)*
                    Operation::PutMedia => {
                        check_route(request.method(), path, op)?;
                        ApiRequest::PutMedia(PutMediaRequest::from_headers(request.headers())?)
                    }
                })
            }

            /// Which operation this is.
            pub fn operation(&self) -> Operation {
                match self {
                    $(ApiRequest::$op(_) => Operation::$op,)*
                    ApiRequest::PutMedia(_) => Operation::PutMedia,
                }
            }
        }
    };
}

operations! {
    CreateStream => "/createStream", ControlPlane, CreateStreamRequest, CreateStreamResponse;
    DescribeStream => "/describeStream", ControlPlane, DescribeStreamRequest, DescribeStreamResponse;
    ListStreams => "/listStreams", ControlPlane, ListStreamsRequest, ListStreamsResponse;
    DeleteStream => "/deleteStream", ControlPlane, DeleteStreamRequest, EmptyResponse;
    UpdateStream => "/updateStream", ControlPlane, UpdateStreamRequest, EmptyResponse;
    UpdateDataRetention => "/updateDataRetention", ControlPlane, UpdateDataRetentionRequest, EmptyResponse;
    GetDataEndpoint => "/getDataEndpoint", ControlPlane, GetDataEndpointRequest, GetDataEndpointResponse;
    TagStream => "/tagStream", ControlPlane, TagStreamRequest, EmptyResponse;
    UntagStream => "/untagStream", ControlPlane, UntagStreamRequest, EmptyResponse;
    ListTagsForStream => "/listTagsForStream", ControlPlane, ListTagsForStreamRequest, ListTagsResponse;
    TagResource => "/TagResource", ControlPlane, TagResourceRequest, EmptyResponse;
    UntagResource => "/UntagResource", ControlPlane, UntagResourceRequest, EmptyResponse;
    ListTagsForResource => "/ListTagsForResource", ControlPlane, ListTagsForResourceRequest, ListTagsResponse;
    DescribeStreamStorageConfiguration => "/describeStreamStorageConfiguration", ControlPlane,
        DescribeStreamStorageConfigurationRequest, DescribeStreamStorageConfigurationResponse;
    UpdateStreamStorageConfiguration => "/updateStreamStorageConfiguration", ControlPlane,
        UpdateStreamStorageConfigurationRequest, EmptyResponse;
    GetMedia => "/getMedia", Media, GetMediaRequest, MediaResponse;
    ListFragments => "/listFragments", ArchivedMedia, ListFragmentsRequest, ListFragmentsResponse;
    GetMediaForFragmentList => "/getMediaForFragmentList", ArchivedMedia, GetMediaForFragmentListRequest, MediaResponse;
    GetClip => "/getClip", ArchivedMedia, GetClipRequest, MediaResponse;
    GetImages => "/getImages", ArchivedMedia, GetImagesRequest, GetImagesResponse;
    GetHLSStreamingSessionURL => "/getHLSStreamingSessionURL", ArchivedMedia,
        GetHlsStreamingSessionUrlRequest, GetHlsStreamingSessionUrlResponse;
    GetDASHStreamingSessionURL => "/getDASHStreamingSessionURL", ArchivedMedia,
        GetDashStreamingSessionUrlRequest, GetDashStreamingSessionUrlResponse;
}
