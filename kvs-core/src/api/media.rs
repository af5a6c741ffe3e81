//! `kinesis-video-media`: GetMedia, and the head-only response of the streaming operations.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, REQUEST_ID_HEADER};
use super::json::Timestamp;
use super::names;
use super::{ApiResponse, Validate, header_value, str_enum};

/// The content type of GetMedia and GetMediaForFragmentList streams.
pub const WEBM_CONTENT_TYPE: &str = "video/webm";
/// The content type of GetClip.
pub const MP4_CONTENT_TYPE: &str = "video/mp4";

str_enum! {
    /// `StartSelectorType` of GetMedia.
    StartSelectorType {
        /// The chunk after `AfterFragmentNumber`.
        FragmentNumber = "FRAGMENT_NUMBER",
        /// The chunk holding the fragment with this server timestamp.
        ServerTimestamp = "SERVER_TIMESTAMP",
        /// The chunk holding the fragment with this producer timestamp.
        ProducerTimestamp = "PRODUCER_TIMESTAMP",
        /// The newest chunk.
        Now = "NOW",
        /// The oldest retained chunk.
        Earliest = "EARLIEST",
        /// Where a previous response ended.
        ContinuationToken = "CONTINUATION_TOKEN",
    }
}

/// `StartSelector`: where GetMedia starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StartSelector {
    /// How to pick the start.
    pub start_selector_type: StartSelectorType,
    /// For `FRAGMENT_NUMBER`.
    pub after_fragment_number: Option<String>,
    /// For `SERVER_TIMESTAMP` / `PRODUCER_TIMESTAMP`.
    pub start_timestamp: Option<Timestamp>,
    /// For `CONTINUATION_TOKEN`.
    pub continuation_token: Option<String>,
}

impl StartSelector {
    /// A selector of `kind` with no other member (for `NOW` and `EARLIEST`).
    pub fn new(kind: StartSelectorType) -> Self {
        StartSelector {
            start_selector_type: kind,
            after_fragment_number: None,
            start_timestamp: None,
            continuation_token: None,
        }
    }
}

/// `GetMedia` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMediaRequest {
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// The stream's ARN (or give `stream_name`; the media model allows the `aws` partition only).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Where to start.
    pub start_selector: StartSelector,
}

impl Validate for GetMediaRequest {
    fn validate(&self) -> Result<(), ApiError> {
        names::one_stream(
            self.stream_name.as_deref(),
            self.stream_arn.as_deref(),
            true,
        )?;
        let s = &self.start_selector;
        if let Some(v) = &s.after_fragment_number {
            names::fragment_number("StartSelector.AfterFragmentNumber", v)?;
        }
        if let Some(v) = &s.continuation_token {
            names::continuation_token("StartSelector.ContinuationToken", v)?;
        }
        let needed = match s.start_selector_type {
            StartSelectorType::FragmentNumber => s
                .after_fragment_number
                .is_none()
                .then_some("AfterFragmentNumber"),
            StartSelectorType::ServerTimestamp | StartSelectorType::ProducerTimestamp => {
                s.start_timestamp.is_none().then_some("StartTimestamp")
            }
            StartSelectorType::ContinuationToken => s
                .continuation_token
                .is_none()
                .then_some("ContinuationToken"),
            StartSelectorType::Now | StartSelectorType::Earliest => None,
        };
        match needed {
            Some(member) => Err(ApiError::invalid_argument(format!(
                "StartSelectorType {} requires {member}.",
                s.start_selector_type
            ))),
            None => Ok(()),
        }
    }
}

/// The head of a streaming response (GetMedia, GetMediaForFragmentList, GetClip): `200` and a
/// `Content-Type`. The body (MKV or MP4) is produced and consumed separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaResponse {
    /// `Content-Type`: `video/webm` for MKV streams, `video/mp4` for clips.
    pub content_type: String,
}

impl MediaResponse {
    /// The head of a GetMedia / GetMediaForFragmentList stream (`video/webm`).
    pub fn webm() -> Self {
        MediaResponse {
            content_type: WEBM_CONTENT_TYPE.into(),
        }
    }
}

impl MediaResponse {
    /// Client side, for a streamed response: reads the head. On a non-`2xx` status the caller
    /// passes the (buffered, small) error body and gets the [`ApiError`] it carries.
    pub fn from_parts(parts: &http::response::Parts, error_body: &[u8]) -> Result<Self, ApiError> {
        if !parts.status.is_success() {
            return Err(ApiError::from_response(parts, error_body));
        }
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(MediaResponse { content_type })
    }
}

impl ApiResponse for MediaResponse {
    /// The head with an empty body: the server streams the payload after it.
    fn to_http(&self, request_id: &str) -> http::Response<Bytes> {
        let mut response = http::Response::new(Bytes::new());
        let headers = response.headers_mut();
        headers.insert(http::header::CONTENT_TYPE, header_value(&self.content_type));
        headers.insert(REQUEST_ID_HEADER, header_value(request_id));
        response
    }

    /// Reads the head; the body (when the status is `2xx`) is ignored here.
    fn from_http(response: &http::Response<Bytes>) -> Result<Self, ApiError> {
        let mut head = http::Response::new(());
        *head.status_mut() = response.status();
        *head.headers_mut() = response.headers().clone();
        Self::from_parts(&head.into_parts().0, response.body())
    }
}
