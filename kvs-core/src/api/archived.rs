//! `kinesis-video-archived-media`: ListFragments, GetMediaForFragmentList, GetClip, GetImages
//! and the HLS/DASH session URLs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::json::Timestamp;
use super::names;
use super::{JsonResponse, Validate, str_enum};

/// Longest time range of GetClip and HLS/DASH sessions: 24 hours.
pub const MAX_SESSION_RANGE_MS: u64 = 24 * 3600 * 1000;
/// Longest time range of GetImages: 300 seconds.
pub const MAX_IMAGES_RANGE_MS: u64 = 300 * 1000;

str_enum! {
    /// Which timestamp a selector filters on (`FragmentSelectorType`, `ClipFragmentSelectorType`,
    /// `HLSFragmentSelectorType`, `DASHFragmentSelectorType`, `ImageSelectorType`).
    TimestampSelectorType {
        /// The producer's timestamps.
        ProducerTimestamp = "PRODUCER_TIMESTAMP",
        /// The ingestion timestamps.
        ServerTimestamp = "SERVER_TIMESTAMP",
    }
}

str_enum! {
    /// `PlaybackMode` of HLS and DASH sessions.
    PlaybackMode {
        /// The newest fragments, refreshed continuously.
        Live = "LIVE",
        /// From a start time onwards, as if live.
        LiveReplay = "LIVE_REPLAY",
        /// A fixed range.
        OnDemand = "ON_DEMAND",
    }
}

str_enum! {
    /// `ContainerFormat` of HLS sessions.
    ContainerFormat {
        /// Fragmented MP4 (default).
        FragmentedMp4 = "FRAGMENTED_MP4",
        /// MPEG transport stream.
        MpegTs = "MPEG_TS",
    }
}

str_enum! {
    /// `DiscontinuityMode` of HLS sessions.
    DiscontinuityMode {
        /// A discontinuity tag before every fragment.
        Always = "ALWAYS",
        /// Never.
        Never = "NEVER",
        /// Where a gap or overlap exceeds 50 ms.
        OnDiscontinuity = "ON_DISCONTINUITY",
    }
}

str_enum! {
    /// `ALWAYS` / `NEVER` switches (`DisplayFragmentTimestamp`, `DisplayFragmentNumber`).
    DisplayMode {
        /// Always show.
        Always = "ALWAYS",
        /// Never show.
        Never = "NEVER",
    }
}

str_enum! {
    /// `Format` of GetImages.
    ImageFormat {
        /// JPEG.
        Jpeg = "JPEG",
        /// PNG.
        Png = "PNG",
    }
}

str_enum! {
    /// `FormatConfigKey` of GetImages.
    FormatConfigKey {
        /// JPEG quality, `1`..`100`.
        JpegQuality = "JPEGQuality",
    }
}

str_enum! {
    /// `ImageError` of GetImages.
    ImageError {
        /// No media at that time.
        NoMedia = "NO_MEDIA",
        /// The media could not be decoded.
        MediaError = "MEDIA_ERROR",
    }
}

/// A closed time range (`TimestampRange`, `ClipTimestampRange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimestampRange {
    /// Start (inclusive).
    pub start_timestamp: Timestamp,
    /// End (inclusive).
    pub end_timestamp: Timestamp,
}

/// A range whose members are optional (`HLSTimestampRange`, `DASHTimestampRange`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OpenTimestampRange {
    /// Start (required when the range is given).
    pub start_timestamp: Option<Timestamp>,
    /// End (required for ON_DEMAND).
    pub end_timestamp: Option<Timestamp>,
}

/// `FragmentSelector` of ListFragments and `ClipFragmentSelector` of GetClip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FragmentSelector {
    /// Which timestamps.
    pub fragment_selector_type: TimestampSelectorType,
    /// The range.
    pub timestamp_range: TimestampRange,
}

/// `HLSFragmentSelector` / `DASHFragmentSelector`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SessionFragmentSelector {
    /// Which timestamps (default SERVER_TIMESTAMP).
    pub fragment_selector_type: Option<TimestampSelectorType>,
    /// The range (absent for LIVE).
    pub timestamp_range: Option<OpenTimestampRange>,
}

fn stream_ref(name: &Option<String>, arn: &Option<String>) -> Result<(), ApiError> {
    names::one_stream(name.as_deref(), arn.as_deref(), false)
}

/// End after start and within `max_ms` of it.
fn check_range(
    member: &str,
    start: Timestamp,
    end: Timestamp,
    max_ms: u64,
) -> Result<(), ApiError> {
    if end <= start {
        return Err(ApiError::invalid_argument(format!(
            "{member}: EndTimestamp {end} must be later than StartTimestamp {start}."
        )));
    }
    if end.as_millis() - start.as_millis() > max_ms {
        return Err(ApiError::invalid_argument(format!(
            "{member}: EndTimestamp {end} must be within {} seconds of StartTimestamp {start}.",
            max_ms / 1000
        )));
    }
    Ok(())
}

/// `ListFragments` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFragmentsRequest {
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// The stream's ARN (or give `stream_name`).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Page size, 1–1000.
    pub max_results: Option<i64>,
    /// Token of the previous page.
    pub next_token: Option<String>,
    /// Time range; required unless `next_token` is given.
    pub fragment_selector: Option<FragmentSelector>,
}

impl Validate for ListFragmentsRequest {
    fn validate(&self) -> Result<(), ApiError> {
        stream_ref(&self.stream_name, &self.stream_arn)?;
        if let Some(v) = self.max_results {
            names::range("MaxResults", v, 1, 1000)?;
        }
        if let Some(v) = &self.next_token {
            names::archived_next_token("NextToken", v)?;
        }
        match &self.fragment_selector {
            Some(sel)
                if sel.timestamp_range.end_timestamp < sel.timestamp_range.start_timestamp =>
            {
                Err(ApiError::invalid_argument(
                    "EndTimestamp must not be before StartTimestamp.",
                ))
            }
            None if self.next_token.is_none() => Err(names::missing("FragmentSelector")),
            _ => Ok(()),
        }
    }
}

/// One `Fragment` of ListFragments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Fragment {
    /// The 47-digit fragment number.
    pub fragment_number: String,
    /// Stored size including metadata.
    pub fragment_size_in_bytes: u64,
    /// Producer start timestamp.
    pub producer_timestamp: Timestamp,
    /// Ingestion timestamp.
    pub server_timestamp: Timestamp,
    /// Duration.
    pub fragment_length_in_milliseconds: u64,
}

/// `ListFragments` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFragmentsResponse {
    /// The fragments of this page, in no particular order.
    pub fragments: Vec<Fragment>,
    /// Token of the next page, absent when done.
    pub next_token: Option<String>,
}
impl JsonResponse for ListFragmentsResponse {}

/// `GetMediaForFragmentList` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetMediaForFragmentListRequest {
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// The stream's ARN (or give `stream_name`).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Fragment numbers (1–1000).
    pub fragments: Vec<String>,
}

impl Validate for GetMediaForFragmentListRequest {
    fn validate(&self) -> Result<(), ApiError> {
        stream_ref(&self.stream_name, &self.stream_arn)?;
        names::count("Fragments", self.fragments.len(), 1, 1000)?;
        self.fragments
            .iter()
            .try_for_each(|f| names::fragment_number("Fragments", f))
    }
}

/// `GetClip` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetClipRequest {
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// The stream's ARN (or give `stream_name`).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Time range of the clip (end later than start, within 24 h).
    pub clip_fragment_selector: FragmentSelector,
}

impl Validate for GetClipRequest {
    fn validate(&self) -> Result<(), ApiError> {
        stream_ref(&self.stream_name, &self.stream_arn)?;
        let r = self.clip_fragment_selector.timestamp_range;
        check_range(
            "ClipFragmentSelector",
            r.start_timestamp,
            r.end_timestamp,
            MAX_SESSION_RANGE_MS,
        )
    }
}

/// `GetImages` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetImagesRequest {
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// The stream's ARN (or give `stream_name`).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// Which timestamps.
    pub image_selector_type: TimestampSelectorType,
    /// Range start.
    pub start_timestamp: Timestamp,
    /// Range end (at most 300 s after the start).
    pub end_timestamp: Timestamp,
    /// Milliseconds between images (≥ 200).
    pub sampling_interval: Option<i64>,
    /// JPEG or PNG.
    pub format: ImageFormat,
    /// Exactly one entry, `JPEGQuality`.
    pub format_config: Option<BTreeMap<FormatConfigKey, String>>,
    /// Width, 1–3840.
    pub width_pixels: Option<i64>,
    /// Height, 1–2160.
    pub height_pixels: Option<i64>,
    /// Page size, 1–100.
    pub max_results: Option<i64>,
    /// Token of the previous page.
    pub next_token: Option<String>,
}

impl Validate for GetImagesRequest {
    fn validate(&self) -> Result<(), ApiError> {
        stream_ref(&self.stream_name, &self.stream_arn)?;
        if self.end_timestamp < self.start_timestamp
            || self.end_timestamp.as_millis() - self.start_timestamp.as_millis()
                > MAX_IMAGES_RANGE_MS
        {
            return Err(ApiError::invalid_argument(
                "EndTimestamp must not be before StartTimestamp nor more than 300 seconds after it.",
            ));
        }
        if let Some(v) = self.sampling_interval {
            names::range("SamplingInterval", v, 200, i64::from(i32::MAX))?;
        }
        if let Some(config) = &self.format_config {
            names::count("FormatConfig", config.len(), 1, 1)?;
            for value in config.values() {
                names::length("FormatConfig.value", value, 0, 256)?;
                let ok = value
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
                if !ok {
                    return Err(names::constraint_error(
                        "FormatConfig.value",
                        value,
                        "satisfy regular expression pattern: ^[a-zA-Z_0-9]+",
                    ));
                }
            }
        }
        if let Some(v) = self.width_pixels {
            names::range("WidthPixels", v, 1, 3840)?;
        }
        if let Some(v) = self.height_pixels {
            names::range("HeightPixels", v, 1, 2160)?;
        }
        if let Some(v) = self.max_results {
            names::range("MaxResults", v, 1, 100)?;
        }
        if let Some(v) = &self.next_token {
            names::archived_next_token("NextToken", v)?;
        }
        Ok(())
    }
}

/// One `Image` of GetImages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Image {
    /// When (note the wire spelling `TimeStamp`).
    pub time_stamp: Option<Timestamp>,
    /// Why there is no image.
    pub error: Option<ImageError>,
    /// Base64 image.
    pub image_content: Option<String>,
}

/// `GetImages` response.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetImagesResponse {
    /// The images.
    pub images: Vec<Image>,
    /// Token of the next page.
    pub next_token: Option<String>,
}
impl JsonResponse for GetImagesResponse {}

/// Checks the playback mode against the selector, and the range.
fn check_session(
    mode: Option<PlaybackMode>,
    selector: Option<&SessionFragmentSelector>,
) -> Result<(), ApiError> {
    let range = selector.and_then(|s| s.timestamp_range);
    match (mode.unwrap_or(PlaybackMode::Live), range) {
        (PlaybackMode::Live, Some(_)) => Err(ApiError::invalid_argument(
            "TimestampRange must not be set when PlaybackMode is LIVE.",
        )),
        (PlaybackMode::Live, None) => Ok(()),
        (mode, None) => Err(ApiError::invalid_argument(format!(
            "TimestampRange is required when PlaybackMode is {mode}."
        ))),
        (mode, Some(range)) => {
            let start = range
                .start_timestamp
                .ok_or_else(|| names::missing("TimestampRange.StartTimestamp"))?;
            match range.end_timestamp {
                Some(end) => check_range("TimestampRange", start, end, MAX_SESSION_RANGE_MS),
                None if mode == PlaybackMode::OnDemand => Err(ApiError::invalid_argument(
                    "EndTimestamp is required when PlaybackMode is ON_DEMAND.",
                )),
                None => Ok(()),
            }
        }
    }
}

/// `GetHLSStreamingSessionURL` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetHlsStreamingSessionUrlRequest {
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// The stream's ARN (or give `stream_name`).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// LIVE (default), LIVE_REPLAY or ON_DEMAND.
    pub playback_mode: Option<PlaybackMode>,
    /// Which fragments.
    #[serde(rename = "HLSFragmentSelector")]
    pub hls_fragment_selector: Option<SessionFragmentSelector>,
    /// FRAGMENTED_MP4 (default) or MPEG_TS.
    pub container_format: Option<ContainerFormat>,
    /// Discontinuity tags.
    pub discontinuity_mode: Option<DiscontinuityMode>,
    /// `#EXT-X-PROGRAM-DATE-TIME` tags.
    pub display_fragment_timestamp: Option<DisplayMode>,
    /// Session lifetime in seconds, 300–43200.
    pub expires: Option<i64>,
    /// Fragments per media playlist, 1–5000.
    pub max_media_playlist_fragment_results: Option<i64>,
}

impl Validate for GetHlsStreamingSessionUrlRequest {
    fn validate(&self) -> Result<(), ApiError> {
        stream_ref(&self.stream_name, &self.stream_arn)?;
        if let Some(v) = self.expires {
            names::range("Expires", v, 300, 43200)?;
        }
        if let Some(v) = self.max_media_playlist_fragment_results {
            names::range("MaxMediaPlaylistFragmentResults", v, 1, 5000)?;
        }
        check_session(self.playback_mode, self.hls_fragment_selector.as_ref())
    }
}

/// `GetHLSStreamingSessionURL` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetHlsStreamingSessionUrlResponse {
    /// `.../hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=...`.
    #[serde(rename = "HLSStreamingSessionURL")]
    pub hls_streaming_session_url: String,
}
impl JsonResponse for GetHlsStreamingSessionUrlResponse {}

/// `GetDASHStreamingSessionURL` request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetDashStreamingSessionUrlRequest {
    /// The stream's name (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// The stream's ARN (or give `stream_name`).
    #[serde(rename = "StreamARN")]
    pub stream_arn: Option<String>,
    /// LIVE (default), LIVE_REPLAY or ON_DEMAND.
    pub playback_mode: Option<PlaybackMode>,
    /// `kvs:ts` attributes.
    pub display_fragment_timestamp: Option<DisplayMode>,
    /// `kvs:fn` attributes.
    pub display_fragment_number: Option<DisplayMode>,
    /// Which fragments.
    #[serde(rename = "DASHFragmentSelector")]
    pub dash_fragment_selector: Option<SessionFragmentSelector>,
    /// Session lifetime in seconds, 300–43200.
    pub expires: Option<i64>,
    /// Fragments per manifest, 1–5000.
    pub max_manifest_fragment_results: Option<i64>,
}

impl Validate for GetDashStreamingSessionUrlRequest {
    fn validate(&self) -> Result<(), ApiError> {
        stream_ref(&self.stream_name, &self.stream_arn)?;
        if let Some(v) = self.expires {
            names::range("Expires", v, 300, 43200)?;
        }
        if let Some(v) = self.max_manifest_fragment_results {
            names::range("MaxManifestFragmentResults", v, 1, 5000)?;
        }
        check_session(self.playback_mode, self.dash_fragment_selector.as_ref())
    }
}

/// `GetDASHStreamingSessionURL` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetDashStreamingSessionUrlResponse {
    /// `.../dash/v1/getDASHManifest.mpd?SessionToken=...`.
    #[serde(rename = "DASHStreamingSessionURL")]
    pub dash_streaming_session_url: String,
}
impl JsonResponse for GetDashStreamingSessionUrlResponse {}
