//! Matroska for KVS: the push decoder ([`reader`]), the producer stream encoder ([`writer`]) and
//! the GetMedia document writer ([`getmedia`]), sharing the track and frame types below.

pub mod getmedia;
pub mod reader;
pub mod writer;

use bytes::Bytes;

/// Matroska TrackType values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TrackType {
    /// 1: video.
    Video,
    /// 2: audio.
    Audio,
    /// 3: complex (PIC also writes 3 for "unknown" data tracks).
    Complex,
    /// 0x11: subtitle.
    Subtitle,
    /// 0x21: metadata.
    Metadata,
    /// Any other value, kept as written.
    Other(u64),
}

impl TrackType {
    /// The value written in the TrackType element.
    pub fn code(self) -> u64 {
        match self {
            TrackType::Video => 1,
            TrackType::Audio => 2,
            TrackType::Complex => 3,
            TrackType::Subtitle => 0x11,
            TrackType::Metadata => 0x21,
            TrackType::Other(v) => v,
        }
    }

    /// The track type for a TrackType element value.
    pub fn from_code(code: u64) -> Self {
        match code {
            1 => TrackType::Video,
            2 => TrackType::Audio,
            3 => TrackType::Complex,
            0x11 => TrackType::Subtitle,
            0x21 => TrackType::Metadata,
            v => TrackType::Other(v),
        }
    }
}

/// Video settings of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VideoSettings {
    /// PixelWidth.
    pub width: u32,
    /// PixelHeight.
    pub height: u32,
}

/// Audio settings of a track.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AudioSettings {
    /// SamplingFrequency in Hz.
    pub sampling_frequency: f64,
    /// Channels.
    pub channels: u32,
    /// BitDepth, when written.
    pub bit_depth: Option<u32>,
}

/// One track of a stream, as declared in its TrackEntry.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackInfo {
    /// TrackNumber: what blocks refer to (1, 2, 3 for KVS producers).
    pub number: u64,
    /// TrackUID (KVS: the caller's track id, non-zero).
    pub uid: u64,
    /// TrackType.
    pub track_type: TrackType,
    /// CodecID, such as `V_MPEG4/ISO/AVC` or `A_AAC`.
    pub codec_id: String,
    /// Name, when present.
    pub name: Option<String>,
    /// CodecPrivate (empty when absent).
    pub codec_private: Bytes,
    /// Video settings, when present.
    pub video: Option<VideoSettings>,
    /// Audio settings, when present.
    pub audio: Option<AudioSettings>,
    /// DefaultDuration in ns, when present.
    pub default_duration_ns: Option<u64>,
}

impl TrackInfo {
    /// A track with the given number, UID, type and codec, and nothing else set.
    pub fn new(number: u64, uid: u64, track_type: TrackType, codec_id: impl Into<String>) -> Self {
        TrackInfo {
            number,
            uid,
            track_type,
            codec_id: codec_id.into(),
            name: None,
            codec_private: Bytes::new(),
            video: None,
            audio: None,
            default_duration_ns: None,
        }
    }
}

/// One media frame: what a producer puts and what a consumer gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Track number the frame belongs to.
    pub track: u64,
    /// Presentation timestamp in nanoseconds: absolute (epoch) or relative to the stream start,
    /// as the stream's timecode mode says. Readers compute it as
    /// `(cluster timecode + block offset) × TimecodeScale`.
    pub timestamp_ns: i64,
    /// Duration in nanoseconds, when known (BlockDuration or the track's DefaultDuration).
    pub duration_ns: Option<u64>,
    /// Key frame (SimpleBlock flag 0x80, or a Block without ReferenceBlock).
    pub keyframe: bool,
    /// Invisible flag (0x08).
    pub invisible: bool,
    /// Discardable flag (0x01).
    pub discardable: bool,
    /// The payload: a zero-copy slice of the input on the read side.
    pub data: Bytes,
}

impl Frame {
    /// A visible, non-discardable frame with no known duration.
    pub fn new(track: u64, timestamp_ns: i64, keyframe: bool, data: impl Into<Bytes>) -> Self {
        Frame {
            track,
            timestamp_ns,
            duration_ns: None,
            keyframe,
            invisible: false,
            discardable: false,
            data: data.into(),
        }
    }
}

/// Common MKV CodecID values used with KVS.
pub mod codec {
    /// H.264 / AVC (CodecPrivate: avcC).
    pub const H264: &str = "V_MPEG4/ISO/AVC";
    /// H.265 / HEVC (CodecPrivate: hvcC).
    pub const H265: &str = "V_MPEGH/ISO/HEVC";
    /// Video for Windows FOURCC (M-JPEG in KVS).
    pub const VFW_FOURCC: &str = "V_MS/VFW/FOURCC";
    /// AAC (CodecPrivate: AudioSpecificConfig).
    pub const AAC: &str = "A_AAC";
    /// Audio Compression Manager (G.711 A-law/µ-law in KVS; CodecPrivate: WAVEFORMATEX).
    pub const MS_ACM: &str = "A_MS/ACM";
    /// Little-endian integer PCM.
    pub const PCM_INT_LIT: &str = "A_PCM/INT/LIT";
}
