//! PutMedia's request head: `POST /putMedia` with `x-amzn-*` headers; the MKV body streams
//! separately and the response is `200` followed by streamed ACKs (see [`crate::ack`]).

use bytes::Bytes;

use super::error::{ApiError, REQUEST_ID_HEADER};
use super::json::{MAX_EPOCH_SECONDS, Timestamp};
use super::{header_value, names, str_enum};

/// The PutMedia path.
pub const PUT_MEDIA_PATH: &str = "/putMedia";
/// Stream name header.
pub const STREAM_NAME_HEADER: &str = "x-amzn-stream-name";
/// Stream ARN header (documented alternative to the name).
pub const STREAM_ARN_HEADER: &str = "x-amzn-stream-arn";
/// `ABSOLUTE` or `RELATIVE`.
pub const TIMECODE_TYPE_HEADER: &str = "x-amzn-fragment-timecode-type";
/// Epoch seconds with a fraction.
pub const START_TIMESTAMP_HEADER: &str = "x-amzn-producer-start-timestamp";
/// `1` or `0` (undocumented; sent by the C producers).
pub const ACK_REQUIRED_HEADER: &str = "x-amzn-fragment-acknowledgment-required";

str_enum! {
    /// `x-amzn-fragment-timecode-type`.
    FragmentTimecodeType {
        /// Cluster timecodes are absolute (ms); the start timestamp is ignored.
        Absolute = "ABSOLUTE",
        /// Cluster timecodes are relative to the producer start timestamp.
        Relative = "RELATIVE",
    }
}

/// The parameters of a PutMedia request (its headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutMediaRequest {
    /// `x-amzn-stream-name` (or give `stream_arn`).
    pub stream_name: Option<String>,
    /// `x-amzn-stream-arn` (or give `stream_name`).
    pub stream_arn: Option<String>,
    /// `x-amzn-fragment-timecode-type`.
    pub fragment_timecode_type: FragmentTimecodeType,
    /// `x-amzn-producer-start-timestamp`; required for RELATIVE timecodes.
    pub producer_start_timestamp: Option<Timestamp>,
    /// `x-amzn-fragment-acknowledgment-required`.
    pub fragment_acknowledgment_required: Option<bool>,
}

impl PutMediaRequest {
    /// A RELATIVE-timecode request for stream `name` starting at `start`, with ACKs.
    pub fn relative(name: &str, start: Timestamp) -> Self {
        PutMediaRequest {
            stream_name: Some(name.into()),
            stream_arn: None,
            fragment_timecode_type: FragmentTimecodeType::Relative,
            producer_start_timestamp: Some(start),
            fragment_acknowledgment_required: Some(true),
        }
    }

    /// Checks the constraints: exactly one of name and ARN, and a start timestamp for RELATIVE.
    pub fn validate(&self) -> Result<(), ApiError> {
        names::one_stream(
            self.stream_name.as_deref(),
            self.stream_arn.as_deref(),
            false,
        )?;
        if self.fragment_timecode_type == FragmentTimecodeType::Relative
            && self.producer_start_timestamp.is_none()
        {
            return Err(ApiError::invalid_argument(format!(
                "{START_TIMESTAMP_HEADER} is required when {TIMECODE_TYPE_HEADER} is RELATIVE."
            )));
        }
        Ok(())
    }

    /// Client side: the request head (`POST /putMedia` and its headers) for `endpoint`; the
    /// caller streams the MKV body (`transfer-encoding: chunked`) after it. The start timestamp
    /// is written zero-padded (`1700000000.005`), which every reader understands.
    pub fn to_http(&self, endpoint: &http::Uri) -> Result<http::Request<()>, ApiError> {
        self.validate()?;
        let mut request = http::Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = super::endpoint_uri(endpoint, PUT_MEDIA_PATH)?;
        let headers = request.headers_mut();
        if let Some(authority) = endpoint.authority() {
            headers.insert(http::header::HOST, header_value(authority.as_str()));
        }
        if let Some(name) = &self.stream_name {
            headers.insert(STREAM_NAME_HEADER, header_value(name));
        }
        if let Some(arn) = &self.stream_arn {
            headers.insert(STREAM_ARN_HEADER, header_value(arn));
        }
        headers.insert(
            TIMECODE_TYPE_HEADER,
            header_value(self.fragment_timecode_type.as_str()),
        );
        if let Some(start) = self.producer_start_timestamp {
            headers.insert(START_TIMESTAMP_HEADER, header_value(&start.to_string()));
        }
        if let Some(ack) = self.fragment_acknowledgment_required {
            headers.insert(
                ACK_REQUIRED_HEADER,
                header_value(if ack { "1" } else { "0" }),
            );
        }
        headers.insert(
            http::header::TRANSFER_ENCODING,
            http::HeaderValue::from_static("chunked"),
        );
        Ok(request)
    }

    /// Server side: parses and validates the headers of a PutMedia request (method and path
    /// are the router's business; see [`super::ApiRequest::from_http`]).
    pub fn from_headers(headers: &http::HeaderMap) -> Result<Self, ApiError> {
        let text = |name: &str| -> Result<Option<&str>, ApiError> {
            match headers.get(name) {
                None => Ok(None),
                Some(v) => v.to_str().map(|s| Some(s.trim())).map_err(|_| {
                    ApiError::invalid_argument(format!("Header {name} is not valid text."))
                }),
            }
        };
        let fragment_timecode_type = match text(TIMECODE_TYPE_HEADER)? {
            Some(v) => v.parse::<FragmentTimecodeType>().map_err(|_| {
                ApiError::invalid_argument(format!(
                    "Header {TIMECODE_TYPE_HEADER} has value {v:?}; expected ABSOLUTE or RELATIVE."
                ))
            })?,
            None => {
                return Err(ApiError::invalid_argument(format!(
                    "Header {TIMECODE_TYPE_HEADER} is required."
                )));
            }
        };
        let producer_start_timestamp = text(START_TIMESTAMP_HEADER)?
            .map(|v| {
                parse_start_timestamp(v).ok_or_else(|| {
                    ApiError::invalid_argument(format!(
                        "Header {START_TIMESTAMP_HEADER} has value {:?}; expected epoch seconds.",
                        v.chars().take(64).collect::<String>()
                    ))
                })
            })
            .transpose()?;
        let fragment_acknowledgment_required = match text(ACK_REQUIRED_HEADER)? {
            None => None,
            Some("1") | Some("true") => Some(true),
            Some("0") | Some("false") => Some(false),
            Some(v) => {
                return Err(ApiError::invalid_argument(format!(
                    "Header {ACK_REQUIRED_HEADER} has value {v:?}; expected 1 or 0."
                )));
            }
        };
        let request = PutMediaRequest {
            stream_name: text(STREAM_NAME_HEADER)?.map(str::to_owned),
            stream_arn: text(STREAM_ARN_HEADER)?.map(str::to_owned),
            fragment_timecode_type,
            producer_start_timestamp,
            fragment_acknowledgment_required,
        };
        request.validate()?;
        Ok(request)
    }

    /// Server side: the `200` head sent as soon as the headers validate; ACK lines follow in
    /// the (chunked) body.
    pub fn response_head(request_id: &str) -> http::Response<Bytes> {
        let mut response = http::Response::new(Bytes::new());
        response
            .headers_mut()
            .insert(REQUEST_ID_HEADER, header_value(request_id));
        response
    }
}

/// Parses `x-amzn-producer-start-timestamp`: `<seconds>[.<fraction>]`.
///
/// The C producer prints `%llu.%llu` with the milliseconds unpadded, so a fraction of one to
/// three digits is read as a whole number of milliseconds (`.5` = 5 ms, `.05` = 5 ms,
/// `.005` = 5 ms, `.500` = 500 ms). Longer fractions are decimal and truncated to the
/// millisecond (`.123456` = 123 ms). A decimal writer's `.5` meaning 500 ms cannot be told
/// apart from the C form; zero-padded three-digit fractions, which kvs writes, are
/// unambiguous.
pub fn parse_start_timestamp(text: &str) -> Option<Timestamp> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    if secs.is_empty() || secs.len() > 12 || !secs.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 18 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    if secs > MAX_EPOCH_SECONDS {
        return None;
    }
    let millis: u64 = match frac.len() {
        0 => 0,
        1..=3 => frac.parse().ok()?,
        _ => frac.get(..3)?.parse().ok()?,
    };
    Some(Timestamp::from_millis(secs * 1000 + millis))
}
