//! Shared fixtures of the api tests: one full sample request and response per operation, and
//! the client → server → client round trip that checks them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Debug;

use bytes::Bytes;
use kvs_core::api::*;
use serde_json::Value;

pub const ARN: &str = "arn:aws:kinesisvideo:us-east-1:444709715744:stream/camera_101/1705489836421";
pub const FRAGMENT: &str = "91343852333181432511524306419788296366724229586";

pub fn endpoint() -> http::Uri {
    http::Uri::from_static("https://kinesisvideo.us-east-1.amazonaws.com")
}

/// What one operation's round trip put on the wire.
#[derive(Debug)]
pub struct Wire {
    pub op: Operation,
    pub request: Value,
    pub response: Value,
}

/// Client `to_http` → server parse (typed and routed) → server response → client `from_http`;
/// asserts equal values at each step and returns both JSON bodies.
pub fn roundtrip<R>(req: R, resp: R::Response) -> Wire
where
    R: ApiOperation + PartialEq + Debug,
    R::Response: PartialEq + Debug,
{
    let op = R::OPERATION;
    let http_req = req
        .to_http(&endpoint())
        .unwrap_or_else(|e| panic!("{op:?}: {e}"));
    assert_eq!(http_req.method(), http::Method::POST);
    assert_eq!(http_req.uri().path(), op.path());
    assert_eq!(
        http_req.uri().host(),
        Some("kinesisvideo.us-east-1.amazonaws.com")
    );
    assert_eq!(http_req.headers()["content-type"], "application/json");
    assert_eq!(
        http_req.headers()["host"],
        "kinesisvideo.us-east-1.amazonaws.com"
    );
    let parsed = R::from_http(&http_req).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    assert_eq!(parsed, req, "{op:?}: server parse");
    let routed = ApiRequest::from_http(&http_req).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    assert_eq!(routed.operation(), op);
    let http_resp = resp.to_http("req-123");
    assert_eq!(http_resp.status(), 200);
    assert_eq!(http_resp.headers()["x-amzn-requestid"], "req-123");
    let back = R::Response::from_http(&http_resp).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    assert_eq!(back, resp, "{op:?}: client parse");
    let request: Value = serde_json::from_slice(http_req.body()).unwrap();
    let response: Value = if http_resp.body().is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(http_resp.body()).unwrap()
    };
    Wire {
        op,
        request,
        response,
    }
}

fn tags() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("owner".into(), "team-a".into()),
        ("site".into(), "Zürich lab 1".into()),
    ])
}

fn info(name: &str, full: bool) -> StreamInfo {
    StreamInfo {
        device_name: full.then(|| "cam-1".into()),
        stream_name: name.into(),
        stream_arn: ARN.into(),
        media_type: full.then(|| "video/h264".into()),
        kms_key_id: full
            .then(|| "arn:aws:kms:us-east-1:444709715744:alias/aws/kinesisvideo".into()),
        version: "davN9FKg4vjyKdCSs0f4".into(),
        status: StreamStatus::Active,
        creation_time: Timestamp::from_millis(1_705_489_836_421),
        data_retention_in_hours: 24,
    }
}

fn range() -> archived::TimestampRange {
    archived::TimestampRange {
        start_timestamp: Timestamp::from_millis(1_700_000_000_000),
        end_timestamp: Timestamp::from_millis(1_700_000_060_500),
    }
}

fn session_selector() -> SessionFragmentSelector {
    SessionFragmentSelector {
        fragment_selector_type: Some(TimestampSelectorType::ProducerTimestamp),
        timestamp_range: Some(OpenTimestampRange {
            start_timestamp: Some(Timestamp::from_millis(1_700_000_000_000)),
            end_timestamp: Some(Timestamp::from_millis(1_700_000_600_000)),
        }),
    }
}

/// Every JSON operation once, with every member set (streams by name, or by ARN).
pub fn all_roundtrips(by_arn: bool) -> Vec<Wire> {
    let name = || (!by_arn).then(|| "camera_101".to_string());
    let arn = || by_arn.then(|| ARN.to_string());
    let storage = StreamStorageConfiguration {
        default_storage_tier: DefaultStorageTier::Warm,
    };
    vec![
        roundtrip(
            CreateStreamRequest {
                device_name: Some("cam-1".into()),
                stream_name: "camera_101".into(),
                media_type: Some("video/h264,audio/aac".into()),
                kms_key_id: Some("alias/my-key".into()),
                data_retention_in_hours: Some(24),
                tags: Some(tags()),
                stream_storage_configuration: Some(storage.clone()),
            },
            CreateStreamResponse { stream_arn: ARN.into() },
        ),
        roundtrip(
            DescribeStreamRequest { stream_name: name(), stream_arn: arn() },
            DescribeStreamResponse { stream_info: info("camera_101", true) },
        ),
        roundtrip(
            ListStreamsRequest {
                max_results: Some(100),
                next_token: Some("abc+/=".into()),
                stream_name_condition: Some(StreamNameCondition {
                    comparison_operator: Some(ComparisonOperator::BeginsWith),
                    comparison_value: Some("cam".into()),
                }),
            },
            ListStreamsResponse {
                stream_info_list: vec![info("camera_101", true), info("camera_102", false)],
                next_token: Some("bmV4dA==".into()),
            },
        ),
        roundtrip(
            DeleteStreamRequest { stream_arn: ARN.into(), current_version: Some("v1".into()) },
            EmptyResponse {},
        ),
        roundtrip(
            UpdateStreamRequest {
                stream_name: name(),
                stream_arn: arn(),
                current_version: "v1".into(),
                device_name: Some("cam-2".into()),
                media_type: Some("video/h265".into()),
            },
            EmptyResponse {},
        ),
        roundtrip(
            UpdateDataRetentionRequest {
                stream_name: name(),
                stream_arn: arn(),
                current_version: "v1".into(),
                operation: UpdateDataRetentionOperation::IncreaseDataRetention,
                data_retention_change_in_hours: 48,
            },
            EmptyResponse {},
        ),
        roundtrip(
            GetDataEndpointRequest { stream_name: name(), stream_arn: arn(), api_name: ApiName::GetHlsStreamingSessionUrl },
            GetDataEndpointResponse { data_endpoint: "https://b-1234abcd.kinesisvideo.us-east-1.amazonaws.com".into() },
        ),
        roundtrip(TagStreamRequest { stream_arn: arn(), stream_name: name(), tags: tags() }, EmptyResponse {}),
        roundtrip(
            UntagStreamRequest { stream_arn: arn(), stream_name: name(), tag_key_list: vec!["owner".into()] },
            EmptyResponse {},
        ),
        roundtrip(
            ListTagsForStreamRequest { next_token: Some("tok".into()), stream_arn: arn(), stream_name: name() },
            ListTagsResponse { next_token: Some("next".into()), tags: Some(tags()) },
        ),
        roundtrip(
            TagResourceRequest {
                resource_arn: ARN.into(),
                tags: vec![Tag { key: "owner".into(), value: "team-a".into() }, Tag { key: "empty".into(), value: String::new() }],
            },
            EmptyResponse {},
        ),
        roundtrip(
            UntagResourceRequest { resource_arn: ARN.into(), tag_key_list: vec!["owner".into(), "empty".into()] },
            EmptyResponse {},
        ),
        roundtrip(
            ListTagsForResourceRequest { next_token: Some("tok".into()), resource_arn: ARN.into() },
            ListTagsResponse { next_token: None, tags: Some(tags()) },
        ),
        roundtrip(
            DescribeStreamStorageConfigurationRequest { stream_name: name(), stream_arn: arn() },
            DescribeStreamStorageConfigurationResponse {
                stream_name: Some("camera_101".into()),
                stream_arn: Some(ARN.into()),
                stream_storage_configuration: Some(storage.clone()),
            },
        ),
        roundtrip(
            UpdateStreamStorageConfigurationRequest {
                stream_name: name(),
                stream_arn: arn(),
                current_version: "v1".into(),
                stream_storage_configuration: storage,
            },
            EmptyResponse {},
        ),
        roundtrip(
            GetMediaRequest {
                stream_name: name(),
                stream_arn: arn(),
                start_selector: StartSelector {
                    start_selector_type: StartSelectorType::FragmentNumber,
                    after_fragment_number: Some(FRAGMENT.into()),
                    start_timestamp: Some(Timestamp::from_millis(1_700_000_000_005)),
                    continuation_token: Some(FRAGMENT.into()),
                },
            },
            MediaResponse::webm(),
        ),
        roundtrip(
            ListFragmentsRequest {
                stream_name: name(),
                stream_arn: arn(),
                max_results: Some(1000),
                next_token: Some("YWJj".into()),
                fragment_selector: Some(FragmentSelector {
                    fragment_selector_type: TimestampSelectorType::ServerTimestamp,
                    timestamp_range: range(),
                }),
            },
            ListFragmentsResponse {
                fragments: vec![Fragment {
                    fragment_number: FRAGMENT.into(),
                    fragment_size_in_bytes: 123_456,
                    producer_timestamp: Timestamp::from_millis(1_511_852_109_126),
                    server_timestamp: Timestamp::from_millis(1_511_852_110_000),
                    fragment_length_in_milliseconds: 1796,
                }],
                next_token: Some("YWJj".into()),
            },
        ),
        roundtrip(
            GetMediaForFragmentListRequest { stream_name: name(), stream_arn: arn(), fragments: vec![FRAGMENT.into(), "1".into()] },
            MediaResponse::webm(),
        ),
        roundtrip(
            GetClipRequest {
                stream_name: name(),
                stream_arn: arn(),
                clip_fragment_selector: FragmentSelector {
                    fragment_selector_type: TimestampSelectorType::ProducerTimestamp,
                    timestamp_range: range(),
                },
            },
            MediaResponse { content_type: "video/mp4".into() },
        ),
        roundtrip(
            GetImagesRequest {
                stream_name: name(),
                stream_arn: arn(),
                image_selector_type: TimestampSelectorType::ProducerTimestamp,
                start_timestamp: Timestamp::from_millis(1_700_000_000_000),
                end_timestamp: Timestamp::from_millis(1_700_000_010_000),
                sampling_interval: Some(1000),
                format: ImageFormat::Jpeg,
                format_config: Some(BTreeMap::from([(FormatConfigKey::JpegQuality, "80".into())])),
                width_pixels: Some(640),
                height_pixels: Some(480),
                max_results: Some(25),
                next_token: Some("YWJj".into()),
            },
            GetImagesResponse {
                images: vec![
                    Image {
                        time_stamp: Some(Timestamp::from_millis(1_700_000_000_250)),
                        error: None,
                        image_content: Some("/9j/4AAQ".into()),
                    },
                    Image { time_stamp: Some(Timestamp::from_millis(1_700_000_001_250)), error: Some(ImageError::NoMedia), image_content: None },
                ],
                next_token: Some("YWJj".into()),
            },
        ),
        roundtrip(
            GetHlsStreamingSessionUrlRequest {
                stream_name: name(),
                stream_arn: arn(),
                playback_mode: Some(PlaybackMode::OnDemand),
                hls_fragment_selector: Some(session_selector()),
                container_format: Some(ContainerFormat::MpegTs),
                discontinuity_mode: Some(DiscontinuityMode::OnDiscontinuity),
                display_fragment_timestamp: Some(DisplayMode::Always),
                expires: Some(3600),
                max_media_playlist_fragment_results: Some(5000),
            },
            GetHlsStreamingSessionUrlResponse {
                hls_streaming_session_url: "https://b-1234abcd.kinesisvideo.us-east-1.amazonaws.com/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=CiAbc~".into(),
            },
        ),
        roundtrip(
            GetDashStreamingSessionUrlRequest {
                stream_name: name(),
                stream_arn: arn(),
                playback_mode: Some(PlaybackMode::LiveReplay),
                display_fragment_timestamp: Some(DisplayMode::Never),
                display_fragment_number: Some(DisplayMode::Always),
                dash_fragment_selector: Some(session_selector()),
                expires: Some(300),
                max_manifest_fragment_results: Some(1),
            },
            GetDashStreamingSessionUrlResponse {
                dash_streaming_session_url: "https://b-1234abcd.kinesisvideo.us-east-1.amazonaws.com/dash/v1/getDASHManifest.mpd?SessionToken=CiAbc~".into(),
            },
        ),
    ]
}

/// A raw JSON request to `path`, as a server receives it.
pub fn raw_request(path: &str, body: &str) -> http::Request<Bytes> {
    http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(Bytes::from(body.to_owned()))
        .unwrap()
}
