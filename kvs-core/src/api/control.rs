//! The control plane (`kinesisvideo`): streams, data endpoints, tags, storage configuration.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::json::Timestamp;
use super::names::{self, one_stream};
use super::{JsonResponse, Validate, str_enum};

str_enum! {
    /// `Status` of a stream.
    StreamStatus {
        /// Being created.
        Creating = "CREATING",
        /// Ready.
        Active = "ACTIVE",
        /// Being updated.
        Updating = "UPDATING",
        /// Being deleted.
        Deleting = "DELETING",
    }
}

str_enum! {
    /// `APIName` of GetDataEndpoint.
    ApiName {
        /// PutMedia.
        PutMedia = "PUT_MEDIA",
        /// GetMedia.
        GetMedia = "GET_MEDIA",
        /// ListFragments.
        ListFragments = "LIST_FRAGMENTS",
        /// GetMediaForFragmentList.
        GetMediaForFragmentList = "GET_MEDIA_FOR_FRAGMENT_LIST",
        /// GetHLSStreamingSessionURL.
        GetHlsStreamingSessionUrl = "GET_HLS_STREAMING_SESSION_URL",
        /// GetDASHStreamingSessionURL.
        GetDashStreamingSessionUrl = "GET_DASH_STREAMING_SESSION_URL",
        /// GetClip.
        GetClip = "GET_CLIP",
        /// GetImages.
        GetImages = "GET_IMAGES",
    }
}

str_enum! {
    /// `ComparisonOperator` of ListStreams' StreamNameCondition.
    ComparisonOperator {
        /// Stream names starting with the value.
        BeginsWith = "BEGINS_WITH",
    }
}

str_enum! {
    /// `Operation` of UpdateDataRetention.
    UpdateDataRetentionOperation {
        /// Add hours.
        IncreaseDataRetention = "INCREASE_DATA_RETENTION",
        /// Remove hours.
        DecreaseDataRetention = "DECREASE_DATA_RETENTION",
    }
}

str_enum! {
    /// `DefaultStorageTier` of a stream's storage configuration.
    DefaultStorageTier {
        /// Hot storage.
        Hot = "HOT",
        /// Warm storage.
        Warm = "WARM",
    }
}

/// `StreamStorageConfiguration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamStorageConfiguration {
    /// The storage tier.
    pub default_storage_tier: DefaultStorageTier,
}

/// Checks an optional value with `check`.
fn opt<T: ?Sized>(
    value: Option<&T>,
    check: impl FnOnce(&T) -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    value.map_or(Ok(()), check)
}

/// Checks an optional stream name and ARN pair: exactly one must be given.
fn stream_ref(name: &Option<String>, arn: &Option<String>) -> Result<(), ApiError> {
    one_stream(name.as_deref(), arn.as_deref(), false)
}

/// `CreateStream` request.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateStreamRequest {
    /// Device name (unused by the service).
    pub device_name: Option<String>,
    /// The new stream's name.
    pub stream_name: String,
    /// Comma-separated MIME types, e.g. `video/h264`.
    pub media_type: Option<String>,
    /// KMS key for encryption at rest.
    pub kms_key_id: Option<String>,
    /// Hours of retention; 0 keeps nothing.
    pub data_retention_in_hours: Option<i64>,
    /// Initial tags (1–50).
    pub tags: Option<BTreeMap<String, String>>,
    /// Storage tier.
    pub stream_storage_configuration: Option<StreamStorageConfiguration>,
}

impl Validate for CreateStreamRequest {
    fn validate(&self) -> Result<(), ApiError> {
        opt(self.device_name.as_deref(), |v| {
            names::device_name("DeviceName", v)
        })?;
        names::stream_name("StreamName", &self.stream_name)?;
        opt(self.media_type.as_deref(), |v| {
            names::media_type("MediaType", v)
        })?;
        opt(self.kms_key_id.as_deref(), |v| {
            names::kms_key_id("KmsKeyId", v)
        })?;
        opt(self.data_retention_in_hours.as_ref(), |v| {
            names::range("DataRetentionInHours", *v, 0, i64::from(i32::MAX))
        })?;
        opt(self.tags.as_ref(), |t| names::tag_map("Tags", t.iter()))
    }
}

/// `CreateStream` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateStreamResponse {
    /// The new stream's ARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
}
impl JsonResponse for CreateStreamResponse {}

/// A request that names a stream by name or ARN and nothing else.
macro_rules! stream_only_request {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            /// The stream's name (or give `stream_arn`).
            pub stream_name: Option<String>,
            /// The stream's ARN (or give `stream_name`).
            #[serde(rename = "StreamARN")]
            pub stream_arn: Option<String>,
        }

        impl Validate for $name {
            fn validate(&self) -> Result<(), ApiError> {
                stream_ref(&self.stream_name, &self.stream_arn)
            }
        }
    };
}

stream_only_request! {
    /// `DescribeStream` request.
    DescribeStreamRequest
}

stream_only_request! {
    /// `DescribeStreamStorageConfiguration` request.
    DescribeStreamStorageConfigurationRequest
}

/// `StreamInfo`: what DescribeStream and ListStreams say about a stream. Optional members are
/// written as explicit `null`s, as the service does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamInfo {
    /// Device name, if set.
    pub device_name: Option<String>,
    /// Stream name.
    pub stream_name: String,
    /// Stream ARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    /// Media type, if set.
    pub media_type: Option<String>,
    /// KMS key (the service writes the `aws/kinesisvideo` alias ARN when none was given).
    pub kms_key_id: Option<String>,
    /// Current version, changed by every metadata update.
    pub version: String,
    /// Lifecycle status.
    pub status: StreamStatus,
    /// Creation time.
    pub creation_time: Timestamp,
    /// Hours of retention.
    pub data_retention_in_hours: i64,
}

/// `DescribeStream` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamResponse {
    /// The stream.
    pub stream_info: StreamInfo,
}
impl JsonResponse for DescribeStreamResponse {}

/// `StreamNameCondition` of ListStreams.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamNameCondition {
    /// Comparison (only `BEGINS_WITH`).
    pub comparison_operator: Option<ComparisonOperator>,
    /// The prefix.
    pub comparison_value: Option<String>,
}

/// `ListStreams` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsRequest {
    /// Page size, 1–10000 (default 10000).
    pub max_results: Option<i64>,
    /// Token of the previous page.
    pub next_token: Option<String>,
    /// Name filter.
    pub stream_name_condition: Option<StreamNameCondition>,
}

impl Validate for ListStreamsRequest {
    fn validate(&self) -> Result<(), ApiError> {
        opt(self.max_results.as_ref(), |v| {
            names::range("MaxResults", *v, 1, 10000)
        })?;
        opt(self.next_token.as_deref(), |v| {
            names::control_next_token("NextToken", v)
        })?;
        opt(self.stream_name_condition.as_ref(), |c| {
            opt(c.comparison_value.as_deref(), |v| {
                names::stream_name("StreamNameCondition.ComparisonValue", v)
            })
        })
    }
}

/// `ListStreams` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListStreamsResponse {
    /// The streams of this page.
    pub stream_info_list: Vec<StreamInfo>,
    /// Token of the next page, if any.
    pub next_token: Option<String>,
}
impl JsonResponse for ListStreamsResponse {}

/// `DeleteStream` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteStreamRequest {
    /// The stream's ARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: String,
    /// Expected version; a stale one gives VersionMismatchException.
    pub current_version: Option<String>,
}

impl Validate for DeleteStreamRequest {
    fn validate(&self) -> Result<(), ApiError> {
        names::resource_arn("StreamARN", &self.stream_arn, false)?;
        opt(self.current_version.as_deref(), |v| {
            names::version("CurrentVersion", v)
        })
    }
}

/// The empty `{}` response of DeleteStream, UpdateStream, UpdateDataRetention, TagStream,
/// UntagStream, TagResource, UntagResource and UpdateStreamStorageConfiguration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EmptyResponse {}
impl JsonResponse for EmptyResponse {}

/// `UpdateStream` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamRequest {
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// The stream's ARN (or give `stream_name`).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Expected version.
    pub current_version: String,
    /// New device name.
    pub device_name: Option<String>,
    /// New media type.
    pub media_type: Option<String>,
}

impl Validate for UpdateStreamRequest {
    fn validate(&self) -> Result<(), ApiError> {
        stream_ref(&self.stream_name, &self.stream_arn)?;
        names::version("CurrentVersion", &self.current_version)?;
        opt(self.device_name.as_deref(), |v| {
            names::device_name("DeviceName", v)
        })?;
        opt(self.media_type.as_deref(), |v| {
            names::media_type("MediaType", v)
        })
    }
}

/// `UpdateDataRetention` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateDataRetentionRequest {
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// The stream's ARN (or give `stream_name`).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Expected version.
    pub current_version: String,
    /// Increase or decrease.
    pub operation: UpdateDataRetentionOperation,
    /// By how many hours (≥ 1).
    pub data_retention_change_in_hours: i64,
}

impl Validate for UpdateDataRetentionRequest {
    fn validate(&self) -> Result<(), ApiError> {
        stream_ref(&self.stream_name, &self.stream_arn)?;
        names::version("CurrentVersion", &self.current_version)?;
        names::range(
            "DataRetentionChangeInHours",
            self.data_retention_change_in_hours,
            1,
            i64::from(i32::MAX),
        )
    }
}

/// `GetDataEndpoint` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetDataEndpointRequest {
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// The stream's ARN (or give `stream_name`).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Which data-plane API the endpoint is for.
    #[serde(rename = "APIName")]
    pub api_name: ApiName,
}

impl Validate for GetDataEndpointRequest {
    fn validate(&self) -> Result<(), ApiError> {
        stream_ref(&self.stream_name, &self.stream_arn)
    }
}

/// `GetDataEndpoint` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetDataEndpointResponse {
    /// Base URL without a path, e.g. `https://s-1234abcd.kinesisvideo.us-east-1.amazonaws.com`.
    pub data_endpoint: String,
}
impl JsonResponse for GetDataEndpointResponse {}

/// `TagStream` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagStreamRequest {
    /// The stream's ARN (or give `stream_name`).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// Tags to add or overwrite (1–50).
    pub tags: BTreeMap<String, String>,
}

impl Validate for TagStreamRequest {
    fn validate(&self) -> Result<(), ApiError> {
        stream_ref(&self.stream_name, &self.stream_arn)?;
        names::tag_map("Tags", self.tags.iter())
    }
}

/// `UntagStream` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagStreamRequest {
    /// The stream's ARN (or give `stream_name`).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// Keys to remove (1–50).
    pub tag_key_list: Vec<String>,
}

impl Validate for UntagStreamRequest {
    fn validate(&self) -> Result<(), ApiError> {
        stream_ref(&self.stream_name, &self.stream_arn)?;
        names::tag_key_list("TagKeyList", &self.tag_key_list)
    }
}

/// `ListTagsForStream` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForStreamRequest {
    /// Token of the previous page.
    pub next_token: Option<String>,
    /// The stream's ARN (or give `stream_name`).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
}

impl Validate for ListTagsForStreamRequest {
    fn validate(&self) -> Result<(), ApiError> {
        stream_ref(&self.stream_name, &self.stream_arn)?;
        opt(self.next_token.as_deref(), |v| {
            names::control_next_token("NextToken", v)
        })
    }
}

/// The response of `ListTagsForStream` and `ListTagsForResource`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsResponse {
    /// Token of the next page, if any.
    pub next_token: Option<String>,
    /// The tags.
    pub tags: Option<BTreeMap<String, String>>,
}
impl JsonResponse for ListTagsResponse {}

/// One `Tag` of TagResource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Key, 1–128.
    pub key: String,
    /// Value, 0–256.
    pub value: String,
}

/// `TagResource` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceRequest {
    /// The resource's ARN.
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    /// Tags to add (1–50).
    pub tags: Vec<Tag>,
}

impl Validate for TagResourceRequest {
    fn validate(&self) -> Result<(), ApiError> {
        names::resource_arn("ResourceARN", &self.resource_arn, false)?;
        names::count("Tags", self.tags.len(), 1, 50)?;
        self.tags.iter().try_for_each(|t| {
            names::tag_key("Tags.Key", &t.key)?;
            names::tag_value("Tags.Value", &t.value)
        })
    }
}

/// `UntagResource` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceRequest {
    /// The resource's ARN.
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
    /// Keys to remove (1–50).
    pub tag_key_list: Vec<String>,
}

impl Validate for UntagResourceRequest {
    fn validate(&self) -> Result<(), ApiError> {
        names::resource_arn("ResourceARN", &self.resource_arn, false)?;
        names::tag_key_list("TagKeyList", &self.tag_key_list)
    }
}

/// `ListTagsForResource` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListTagsForResourceRequest {
    /// Token of the previous page.
    pub next_token: Option<String>,
    /// The resource's ARN.
    #[serde(rename = "ResourceARN")]
    pub resource_arn: String,
}

impl Validate for ListTagsForResourceRequest {
    fn validate(&self) -> Result<(), ApiError> {
        names::resource_arn("ResourceARN", &self.resource_arn, false)?;
        opt(self.next_token.as_deref(), |v| {
            names::control_next_token("NextToken", v)
        })
    }
}

/// `DescribeStreamStorageConfiguration` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeStreamStorageConfigurationResponse {
    /// Stream name.
    pub stream_name: Option<String>,
    /// Stream ARN.
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Storage configuration.
    pub stream_storage_configuration: Option<StreamStorageConfiguration>,
}
impl JsonResponse for DescribeStreamStorageConfigurationResponse {}

/// `UpdateStreamStorageConfiguration` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateStreamStorageConfigurationRequest {
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// The stream's ARN (or give `stream_name`).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Expected version.
    pub current_version: String,
    /// New storage configuration.
    pub stream_storage_configuration: StreamStorageConfiguration,
}

impl Validate for UpdateStreamStorageConfigurationRequest {
    fn validate(&self) -> Result<(), ApiError> {
        stream_ref(&self.stream_name, &self.stream_arn)?;
        names::version("CurrentVersion", &self.current_version)
    }
}
