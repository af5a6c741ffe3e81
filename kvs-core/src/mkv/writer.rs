//! The KVS producer stream encoder: the MKV bytes of a PutMedia body, laid out byte for byte as
//! the official producer (PIC `mkvgen`) writes them.
//!
//! A stream is `[header][Tags…][Cluster][SimpleBlock…]…[Tags][Cluster]…[EOS Tags]`:
//! - the **header** ([`StreamWriter::header`]) is the 40-byte EBML header, a Segment of unknown
//!   size (`18 53 80 67 FF`), Info (2-byte size) and Tracks (4-byte sizes). It never changes for a
//!   writer, so a reconnect sends it again and then the already-encoded clusters unchanged;
//! - every fragment is one **Cluster** of unknown size with an 8-byte Timecode and `Position 0`
//!   (an 18-byte header), opened only by a key frame;
//! - every frame is one **SimpleBlock** with an 8-byte size (a 13-byte header);
//! - fragment **metadata** and the end-of-fragment / end-of-stream markers are level-1 Tags chains
//!   whose sizes are all 8 bytes wide, with no Targets.
//!
//! [`StreamWriter`] is a plain sans-IO object: it reads no clock and draws no random numbers (the
//! SegmentUID is a parameter). It offers two output paths for frames:
//! - zero copy: [`StreamWriter::encode_frame_header`] writes only the bytes that precede the
//!   payload (Tags, Cluster header, SimpleBlock header); the caller then sends `frame.data` itself,
//!   for instance with a vectored write. [`StreamWriter::encode_frame_chunks`] does the same into a
//!   queue of [`Bytes`] chunks;
//! - one buffer: [`StreamWriter::encode_frame`] copies headers and payload into one `BufMut`.
//!
//! Every call checks the buffer's room before writing and fails with
//! [`EncodeError::BufferTooSmall`] (inside [`WriterError::Encode`]) without writing anything or
//! changing state, so a bounded `&mut [u8]` can be retried after draining.

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::ebml::id;
use crate::ebml::write::{
    EncodeError, SizeWidth, ensure_room, write_binary_as, write_float, write_string,
    write_uint_fixed,
};
use crate::fragment::tag;
use crate::mkv::{Frame, TrackInfo};

/// The EBML header every KVS producer writes (40 bytes; DocType `matroska`, version 2).
pub const EBML_HEADER: [u8; 40] = [
    0x1A, 0x45, 0xDF, 0xA3, 0xA3, // EBML, size 35
    0x42, 0x86, 0x81, 0x01, // EBMLVersion 1
    0x42, 0xF7, 0x81, 0x01, // EBMLReadVersion 1
    0x42, 0xF2, 0x81, 0x04, // EBMLMaxIDLength 4
    0x42, 0xF3, 0x81, 0x08, // EBMLMaxSizeLength 8
    0x42, 0x82, 0x88, b'm', b'a', b't', b'r', b'o', b's', b'k', b'a', // DocType
    0x42, 0x87, 0x81, 0x02, // DocTypeVersion 2
    0x42, 0x85, 0x81, 0x02, // DocTypeReadVersion 2
];

/// Segment header with the 1-byte unknown size, as the producer writes it.
pub const SEGMENT_UNKNOWN_SIZE: [u8; 5] = [0x18, 0x53, 0x80, 0x67, 0xFF];

/// Info Title written by the official producer.
pub const TITLE: &str = "Kinesis Video SDK";
/// MuxingApp / WritingApp without a client id (`"Kinesis Video SDK 1.1.0"`).
pub const APPLICATION: &str = "Kinesis Video SDK 1.1.0";
/// Length of a Cluster header: ID, unknown size, 8-byte Timecode, Position 0.
pub const CLUSTER_HEADER_LEN: usize = 18;
/// Length of a SimpleBlock header: ID, 8-byte size, track vint, int16 timecode, flags.
pub const SIMPLE_BLOCK_HEADER_LEN: usize = 13;
/// Bytes of a Tags chain besides its name and value (all five sizes are 8 bytes wide).
pub const TAG_CHAIN_OVERHEAD: usize = 52;
/// Length of the end-of-fragment (and end-of-stream) Tags chain.
pub const END_OF_FRAGMENT_LEN: usize = TAG_CHAIN_OVERHEAD + tag::END_OF_FRAGMENT.len();
/// Most tracks a KVS stream may declare.
pub const MAX_TRACKS: usize = 3;
/// Longest track Name and CodecID, in bytes.
pub const MAX_TRACK_NAME_LEN: usize = 32;
/// Longest CodecID, in bytes.
pub const MAX_CODEC_ID_LEN: usize = 32;
/// Largest CodecPrivate, in bytes (1 MiB).
pub const MAX_CODEC_PRIVATE_LEN: usize = 1 << 20;
/// Longest client id appended to MuxingApp / WritingApp, in bytes.
pub const MAX_CLIENT_ID_LEN: usize = 64;
/// Longest metadata (tag) name, in bytes.
pub const MAX_TAG_NAME_LEN: usize = 128;
/// Longest metadata (tag) value, in bytes.
pub const MAX_TAG_VALUE_LEN: usize = 256;
/// Most metadata items the service accepts before one fragment.
pub const MAX_METADATA_PER_FRAGMENT: usize = 10;
/// Default TimecodeScale: 1 ms.
pub const DEFAULT_TIMECODE_SCALE_NS: u64 = 1_000_000;
/// Smallest TimecodeScale the producer allows (100 ns).
pub const MIN_TIMECODE_SCALE_NS: u64 = 100;
/// Largest TimecodeScale the producer allows (1 s).
pub const MAX_TIMECODE_SCALE_NS: u64 = 1_000_000_000;
/// Shortest fragment duration in duration mode (1 s).
pub const MIN_FRAGMENT_DURATION_NS: u64 = 1_000_000_000;
/// Longest fragment duration in duration mode (30 s).
pub const MAX_FRAGMENT_DURATION_NS: u64 = 30_000_000_000;
/// Largest SimpleBlock timecode offset from its Cluster (int16).
pub const MAX_BLOCK_TIMECODE_DELTA: u64 = i16::MAX as u64;

/// How Cluster timecodes relate to frame timestamps (the `x-amzn-fragment-timecode-type` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimecodeMode {
    /// Cluster timecode = PTS / TimecodeScale (epoch milliseconds with wall-clock PTS).
    #[default]
    Absolute,
    /// Cluster timecode = (PTS − PTS of the stream's first fragment) / TimecodeScale.
    Relative,
}

impl TimecodeMode {
    /// The value of the `x-amzn-fragment-timecode-type` header for this mode.
    pub fn header_value(self) -> &'static str {
        match self {
            TimecodeMode::Absolute => "ABSOLUTE",
            TimecodeMode::Relative => "RELATIVE",
        }
    }
}

/// When a key frame opens a new fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Fragmentation {
    /// Every key frame opens a fragment (the producers' default).
    #[default]
    KeyFrame,
    /// A key frame opens a fragment once `pts − fragment start ≥` this many nanoseconds (1–30 s).
    Duration(u64),
}

/// Settings of a producer stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// SegmentUID (16 bytes, given by the caller: the core draws no randomness). Keep it the same
    /// across every PutMedia session of one stream.
    pub segment_uid: [u8; 16],
    /// TimecodeScale in nanoseconds (100 ns to 1 s; default 1 ms).
    pub timecode_scale_ns: u64,
    /// Optional client id appended to MuxingApp/WritingApp (at most 64 bytes).
    pub client_id: Option<String>,
    /// Absolute or relative Cluster timecodes.
    pub timecode_mode: TimecodeMode,
    /// When key frames open fragments.
    pub fragmentation: Fragmentation,
}

impl StreamConfig {
    /// Defaults of the official producer: 1 ms scale, absolute timecodes, a fragment per key frame.
    pub fn new(segment_uid: [u8; 16]) -> Self {
        StreamConfig {
            segment_uid,
            timecode_scale_ns: DEFAULT_TIMECODE_SCALE_NS,
            client_id: None,
            timecode_mode: TimecodeMode::Absolute,
            fragmentation: Fragmentation::KeyFrame,
        }
    }
}

/// A stream configuration or track list the producer layout cannot carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No track was given.
    #[error("a stream needs at least one track")]
    NoTracks,
    /// More than [`MAX_TRACKS`] tracks.
    #[error("{0} tracks given; KVS streams carry at most 3")]
    TooManyTracks(usize),
    /// A track number outside 1..=126 (it must fit a 1-byte vint in SimpleBlocks).
    #[error("track {index}: track number {number} is outside 1..=126")]
    InvalidTrackNumber {
        /// Position of the track in the list.
        index: usize,
        /// The number given.
        number: u64,
    },
    /// Two tracks share a number.
    #[error("track number {0} is declared twice")]
    DuplicateTrackNumber(u64),
    /// TrackUID 0 (KVS requires non-zero track ids).
    #[error("track {0}: TrackUID must be non-zero")]
    ZeroTrackUid(u64),
    /// A TrackType code that does not fit in one byte.
    #[error("track {track}: TrackType {code} does not fit in one byte")]
    InvalidTrackType {
        /// Track number.
        track: u64,
        /// The code.
        code: u64,
    },
    /// A Name longer than [`MAX_TRACK_NAME_LEN`].
    #[error("track {track}: name is {len} bytes; at most 32 are allowed")]
    TrackNameTooLong {
        /// Track number.
        track: u64,
        /// Its length.
        len: usize,
    },
    /// A CodecID longer than [`MAX_CODEC_ID_LEN`].
    #[error("track {track}: codec id is {len} bytes; at most 32 are allowed")]
    CodecIdTooLong {
        /// Track number.
        track: u64,
        /// Its length.
        len: usize,
    },
    /// A CodecPrivate larger than [`MAX_CODEC_PRIVATE_LEN`].
    #[error("track {track}: codec private data is {len} bytes; at most 1 MiB is allowed")]
    CodecPrivateTooLong {
        /// Track number.
        track: u64,
        /// Its length.
        len: usize,
    },
    /// A video dimension above 65535 (the producer writes 2-byte widths and heights).
    #[error("track {track}: video size {width}x{height} does not fit 2-byte fields")]
    VideoSizeTooLarge {
        /// Track number.
        track: u64,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// A channel count or bit depth above 255 (1-byte fields).
    #[error("track {track}: audio {what} {value} does not fit in one byte")]
    AudioFieldTooLarge {
        /// Track number.
        track: u64,
        /// "channels" or "bit depth".
        what: &'static str,
        /// The value.
        value: u32,
    },
    /// A client id longer than [`MAX_CLIENT_ID_LEN`].
    #[error("client id is {0} bytes; at most 64 are allowed")]
    ClientIdTooLong(usize),
    /// A TimecodeScale outside 100 ns..=1 s.
    #[error("timecode scale {0} ns is outside 100 ns..=1 s")]
    InvalidTimecodeScale(u64),
    /// A fragment duration outside 1..=30 s in duration mode.
    #[error("fragment duration {0} ns is outside 1 s..=30 s")]
    InvalidFragmentDuration(u64),
    /// The header could not be encoded.
    #[error("encoding the stream header: {0}")]
    Encode(#[from] EncodeError),
}

/// A frame, metadata item or marker the writer refused; the writer's state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WriterError {
    /// The frame names a track the stream did not declare.
    #[error("frame for unknown track {0}")]
    UnknownTrack(u64),
    /// The frame has no payload.
    #[error("frame for track {0} has an empty payload")]
    EmptyFrame(u64),
    /// The frame's timestamp is negative.
    #[error("frame timestamp {0} ns is negative")]
    NegativeTimestamp(i64),
    /// The frame is earlier than the current fragment's start
    /// (PIC `STATUS_MKV_INVALID_FRAME_TIMESTAMP`).
    #[error(
        "frame timecode {frame_timecode} is before the fragment start {cluster_timecode} (in TimecodeScale units)"
    )]
    TimestampBeforeFragment {
        /// The frame's timecode (PTS / TimecodeScale).
        frame_timecode: u64,
        /// The current fragment's start timecode on the same scale.
        cluster_timecode: u64,
    },
    /// The frame is more than 32767 ticks after its fragment start
    /// (PIC `STATUS_MKV_LARGE_FRAME_TIMECODE`); the fragment is not split automatically.
    #[error("frame is {delta} ticks after its fragment start; SimpleBlock offsets stop at 32767")]
    TimecodeDeltaTooLarge {
        /// The offset that did not fit.
        delta: u64,
    },
    /// The payload is too large for an EBML size.
    #[error("frame payload of {0} bytes is too large for a SimpleBlock")]
    FrameTooLarge(usize),
    /// A metadata name starting with `AWS` (PIC `STATUS_INVALID_METADATA_NAME`).
    #[error("metadata name {0:?} starts with the reserved prefix \"AWS\"")]
    ReservedMetadataName(String),
    /// A metadata name that is empty or longer than 128 bytes.
    #[error("metadata name is {0} bytes; 1 to 128 are allowed")]
    MetadataNameLength(usize),
    /// A metadata value longer than 256 bytes.
    #[error("metadata value is {0} bytes; at most 256 are allowed")]
    MetadataValueTooLong(usize),
    /// More than [`MAX_METADATA_PER_FRAGMENT`] items would precede the next fragment.
    #[error("more than 10 metadata items would precede the next fragment")]
    TooManyMetadata,
    /// End of fragment requested in duration mode (PIC allows it only with key-frame
    /// fragmentation).
    #[error("an explicit end of fragment needs key-frame fragmentation")]
    EndOfFragmentNeedsKeyFrameMode,
    /// Two ends of fragment in a row, or one with no fragment open.
    #[error("no fragment is open to end")]
    NoFragmentToEnd,
    /// The output buffer is too small (nothing was written).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Why a frame was not written, though it was valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// A non-key frame with no fragment open (stream start, after an end of fragment or after
    /// [`StreamWriter::finish`]): only a key frame can open one, so the producer drops it.
    AwaitingKeyFrame,
}

/// A fragment (Cluster) opened by a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentStart {
    /// The Cluster Timecode as written: what PutMedia ACKs report as `FragmentTimecode`.
    pub cluster_timecode: u64,
    /// Zero-based count of fragments this writer has opened.
    pub index: u64,
    /// Metadata Tags chains written before the Cluster.
    pub metadata_tags: usize,
}

/// What one frame produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockWritten {
    /// Bytes written before the payload (metadata Tags, Cluster header, SimpleBlock header).
    pub header_len: usize,
    /// Payload bytes (written by [`StreamWriter::encode_frame`], left to the caller otherwise).
    pub payload_len: usize,
    /// Set when this frame opened a new fragment.
    pub fragment: Option<FragmentStart>,
    /// The SimpleBlock's timecode offset from its Cluster.
    pub block_timecode: i16,
}

/// The result of offering a frame to the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameOutcome {
    /// The frame was encoded.
    Written(BlockWritten),
    /// The frame was dropped, as the official producer drops it.
    Skipped(SkipReason),
}

impl FrameOutcome {
    /// The block, when the frame was written.
    pub fn written(&self) -> Option<&BlockWritten> {
        match self {
            FrameOutcome::Written(b) => Some(b),
            FrameOutcome::Skipped(_) => None,
        }
    }
}

/// One fragment metadata item waiting for the next Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Metadata {
    name: String,
    value: String,
}

/// Everything decided about a frame before any byte is written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Absolute timecode of the frame (PTS / scale).
    tc: u64,
    /// Some(absolute cluster timecode) when the frame opens a Cluster.
    new_cluster: bool,
    delta: u16,
    track_byte: u8,
    flags: u8,
    payload_len: usize,
    header_len: usize,
    /// Relative start to store when this frame opens the stream's first fragment.
    stream_start: u64,
}

impl Plan {
    /// Bytes the planned frame writes before its payload.
    pub(crate) fn header_len(&self) -> usize {
        self.header_len
    }
}

/// The KVS producer stream encoder (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct StreamWriter {
    config: StreamConfig,
    tracks: Vec<TrackInfo>,
    header: Bytes,
    /// Fragment-duration threshold in ticks (duration mode).
    duration_ticks: Option<u64>,
    /// Absolute timecode of the open Cluster, if any.
    open_cluster: Option<u64>,
    /// Absolute timecode of the last Cluster opened (kept across ends of fragment, as PIC does).
    last_cluster: Option<u64>,
    /// Absolute timecode of the stream's first fragment (the relative-mode origin).
    stream_start: Option<u64>,
    /// The last thing written was an end-of-fragment or end-of-stream chain.
    ended: bool,
    fragments: u64,
    persistent: Vec<Metadata>,
    one_shot: Vec<Metadata>,
}

impl StreamWriter {
    /// A writer for `tracks` (1 to 3, written in this order). The header is encoded once here.
    pub fn new(config: StreamConfig, tracks: Vec<TrackInfo>) -> Result<Self, ConfigError> {
        validate(&config, &tracks)?;
        let duration_ticks = match config.fragmentation {
            Fragmentation::KeyFrame => None,
            Fragmentation::Duration(ns) => Some(ns / config.timecode_scale_ns),
        };
        let header = encode_header(&config, &tracks)?;
        Ok(StreamWriter {
            config,
            tracks,
            header,
            duration_ticks,
            open_cluster: None,
            last_cluster: None,
            stream_start: None,
            ended: false,
            fragments: 0,
            persistent: Vec::new(),
            one_shot: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// The tracks, in TrackEntry order.
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }

    /// The stream header: EBML header, Segment (unknown size), Info and Tracks. The same bytes
    /// start every PutMedia session of this writer, including reconnects.
    pub fn header(&self) -> &Bytes {
        &self.header
    }

    /// Writes [`header`](Self::header) into `out`. Does not change the writer's state.
    pub fn write_header(&self, out: &mut impl BufMut) -> Result<usize, EncodeError> {
        ensure_room(out, self.header.len())?;
        out.put_slice(&self.header);
        Ok(self.header.len())
    }

    /// The Cluster Timecode (as written) of the open fragment, if one is open.
    pub fn fragment_timecode(&self) -> Option<u64> {
        self.open_cluster.map(|tc| self.written_timecode(tc))
    }

    /// Number of fragments opened so far.
    pub fn fragment_count(&self) -> u64 {
        self.fragments
    }

    /// The relative-mode origin: the timecode (PTS / scale) of the stream's first fragment.
    pub fn stream_start_timecode(&self) -> Option<u64> {
        self.stream_start
    }

    /// Queues a fragment metadata item, written as a Tags chain before the next Cluster.
    ///
    /// A persistent item is written before every fragment until it is cancelled by putting the
    /// same name with an empty value; putting a name again replaces its value. Names starting
    /// with `AWS` are reserved; at most 10 items may precede one fragment.
    pub fn put_metadata(
        &mut self,
        name: &str,
        value: &str,
        persistent: bool,
    ) -> Result<(), WriterError> {
        if name.is_empty() || name.len() > MAX_TAG_NAME_LEN {
            return Err(WriterError::MetadataNameLength(name.len()));
        }
        if name.starts_with(tag::RESERVED_PREFIX) {
            return Err(WriterError::ReservedMetadataName(name.to_owned()));
        }
        if value.len() > MAX_TAG_VALUE_LEN {
            return Err(WriterError::MetadataValueTooLong(value.len()));
        }
        let list = if persistent {
            &mut self.persistent
        } else {
            &mut self.one_shot
        };
        let existing = list.iter().position(|m| m.name == name);
        match (persistent && value.is_empty(), existing) {
            (true, Some(i)) => {
                list.remove(i);
            }
            (true, None) => {}
            (false, Some(i)) => {
                if let Some(m) = list.get_mut(i) {
                    m.value = value.to_owned();
                }
            }
            (false, None) => {
                if self.persistent.len() + self.one_shot.len() >= MAX_METADATA_PER_FRAGMENT {
                    return Err(WriterError::TooManyMetadata);
                }
                let item = Metadata {
                    name: name.to_owned(),
                    value: value.to_owned(),
                };
                if persistent {
                    self.persistent.push(item);
                } else {
                    self.one_shot.push(item);
                }
            }
        }
        Ok(())
    }

    /// Number of metadata items that will precede the next fragment.
    pub fn pending_metadata(&self) -> usize {
        self.persistent.len() + self.one_shot.len()
    }

    /// Zero-copy path: writes the bytes that precede `frame.data` (metadata Tags and a Cluster
    /// header when the frame opens a fragment, then the 13-byte SimpleBlock header) into `out`.
    /// The caller sends `frame.data` right after them.
    pub fn encode_frame_header(
        &mut self,
        frame: &Frame,
        out: &mut impl BufMut,
    ) -> Result<FrameOutcome, WriterError> {
        let Some(plan) = self.plan(frame)? else {
            return Ok(FrameOutcome::Skipped(SkipReason::AwaitingKeyFrame));
        };
        ensure_room(out, plan.header_len)?;
        Ok(FrameOutcome::Written(self.emit(&plan, out)))
    }

    /// Zero-copy path into a chunk queue: the header bytes go through `scratch` (split off and
    /// frozen, so its allocation is reused) and are pushed as one chunk, followed by a clone of
    /// `frame.data` (a reference count, not a copy).
    pub fn encode_frame_chunks(
        &mut self,
        frame: &Frame,
        scratch: &mut BytesMut,
        chunks: &mut VecDeque<Bytes>,
    ) -> Result<FrameOutcome, WriterError> {
        let Some(plan) = self.plan(frame)? else {
            return Ok(FrameOutcome::Skipped(SkipReason::AwaitingKeyFrame));
        };
        scratch.reserve(plan.header_len);
        let written = self.emit(&plan, scratch);
        chunks.push_back(scratch.split().freeze());
        chunks.push_back(frame.data.clone());
        Ok(FrameOutcome::Written(written))
    }

    /// Single-buffer path: writes the headers and copies the payload into `out`.
    pub fn encode_frame(
        &mut self,
        frame: &Frame,
        out: &mut impl BufMut,
    ) -> Result<FrameOutcome, WriterError> {
        let Some(plan) = self.plan(frame)? else {
            return Ok(FrameOutcome::Skipped(SkipReason::AwaitingKeyFrame));
        };
        ensure_room(out, plan.header_len + plan.payload_len)?;
        let written = self.emit(&plan, out);
        out.put_slice(&frame.data);
        Ok(FrameOutcome::Written(written))
    }

    /// Bytes [`encode_frame_header`](Self::encode_frame_header) would write for `frame` now
    /// (0 when it would be skipped), without changing state.
    pub fn frame_header_len(&self, frame: &Frame) -> Result<usize, WriterError> {
        Ok(self.plan(frame)?.map_or(0, |p| p.header_len))
    }

    /// [`frame_header_len`](Self::frame_header_len) and
    /// [`encode_frame_header`](Self::encode_frame_header) in two halves that share one plan:
    /// validates `frame` and lays it out (`None` when it would be skipped) without changing
    /// state. Pass the plan to [`emit_planned`](Self::emit_planned) before any other call that
    /// changes the writer.
    pub(crate) fn plan_frame(&self, frame: &Frame) -> Result<Option<Plan>, WriterError> {
        self.plan(frame)
    }

    /// Writes the headers of a frame planned by [`plan_frame`](Self::plan_frame) (`out` grows
    /// or already has room for [`Plan::header_len`] bytes) and commits the state change, as
    /// [`encode_frame_header`](Self::encode_frame_header) does.
    pub(crate) fn emit_planned(&mut self, plan: &Plan, out: &mut impl BufMut) -> BlockWritten {
        self.emit(plan, out)
    }

    /// Ends the open fragment with the `AWS_KINESISVIDEO_END_OF_FRAGMENT` Tags chain (84 bytes).
    /// The next fragment starts at the next key frame; non-key frames until then are skipped.
    pub fn end_fragment(&mut self, out: &mut impl BufMut) -> Result<usize, WriterError> {
        if self.duration_ticks.is_some() {
            return Err(WriterError::EndOfFragmentNeedsKeyFrameMode);
        }
        if self.open_cluster.is_none() || self.ended {
            return Err(WriterError::NoFragmentToEnd);
        }
        let n = write_tag_chain(out, tag::END_OF_FRAGMENT, "")?;
        self.open_cluster = None;
        self.ended = true;
        Ok(n)
    }

    /// Ends the stream (session): writes the end-of-stream chain (the same 84 bytes as the end
    /// of fragment) unless an end of fragment was just written, and closes the open fragment.
    /// Returns the bytes written (0 or 84). The writer can go on with a new session: send the
    /// header again, then frames from a key frame.
    pub fn finish(&mut self, out: &mut impl BufMut) -> Result<usize, WriterError> {
        if self.ended {
            return Ok(0);
        }
        let n = write_tag_chain(out, tag::END_OF_FRAGMENT, "")?;
        self.open_cluster = None;
        self.ended = true;
        Ok(n)
    }

    /// Resets the fragment state and the relative-mode origin, as the producer does on token
    /// rotation or error recovery. Metadata and the header are kept.
    pub fn reset(&mut self) {
        self.open_cluster = None;
        self.last_cluster = None;
        self.stream_start = None;
        self.ended = false;
    }

    fn written_timecode(&self, abs: u64) -> u64 {
        match self.config.timecode_mode {
            TimecodeMode::Absolute => abs,
            TimecodeMode::Relative => abs - self.stream_start.unwrap_or(abs).min(abs),
        }
    }

    /// Validates `frame` and decides its layout; `None` when it is skipped.
    fn plan(&self, frame: &Frame) -> Result<Option<Plan>, WriterError> {
        let track = frame.track;
        if !self.tracks.iter().any(|t| t.number == track) {
            return Err(WriterError::UnknownTrack(track));
        }
        if frame.data.is_empty() {
            return Err(WriterError::EmptyFrame(track));
        }
        let pts = u64::try_from(frame.timestamp_ns)
            .map_err(|_| WriterError::NegativeTimestamp(frame.timestamp_ns))?;
        let tc = pts / self.config.timecode_scale_ns;
        if let Some(last) = self.last_cluster
            && tc < last
        {
            return Err(WriterError::TimestampBeforeFragment {
                frame_timecode: tc,
                cluster_timecode: last,
            });
        }
        let new_cluster = match self.open_cluster {
            None if !frame.keyframe => return Ok(None),
            None => true,
            Some(open) => {
                frame.keyframe && self.duration_ticks.is_none_or(|ticks| tc - open >= ticks)
            }
        };
        let delta = match (new_cluster, self.open_cluster) {
            (false, Some(open)) => tc - open,
            _ => 0,
        };
        if delta > MAX_BLOCK_TIMECODE_DELTA {
            return Err(WriterError::TimecodeDeltaTooLarge { delta });
        }
        let payload_len = frame.data.len();
        if payload_len as u64 + 4 > crate::ebml::write::MAX_ELEMENT_SIZE {
            return Err(WriterError::FrameTooLarge(payload_len));
        }
        let mut header_len = SIMPLE_BLOCK_HEADER_LEN;
        if new_cluster {
            header_len += CLUSTER_HEADER_LEN;
            header_len += self
                .persistent
                .iter()
                .chain(&self.one_shot)
                .map(|m| TAG_CHAIN_OVERHEAD + m.name.len() + m.value.len())
                .sum::<usize>();
        }
        let mut flags = 0u8;
        if frame.keyframe {
            flags |= 0x80;
        }
        if frame.invisible {
            flags |= 0x08;
        }
        if frame.discardable {
            flags |= 0x01;
        }
        Ok(Some(Plan {
            tc,
            new_cluster,
            delta: delta as u16,
            // Track numbers were validated to 1..=126 at construction.
            track_byte: 0x80 | (track as u8),
            flags,
            payload_len,
            header_len,
            stream_start: self.stream_start.unwrap_or(tc),
        }))
    }

    /// Writes the planned headers (room already checked) and commits the state change.
    fn emit(&mut self, plan: &Plan, out: &mut impl BufMut) -> BlockWritten {
        let mut fragment = None;
        if plan.new_cluster {
            let mut tags = 0;
            for m in self.persistent.iter().chain(&self.one_shot) {
                put_tag_chain(out, &m.name, &m.value);
                tags += 1;
            }
            self.one_shot.clear();
            self.stream_start = Some(plan.stream_start);
            let written_tc = match self.config.timecode_mode {
                TimecodeMode::Absolute => plan.tc,
                TimecodeMode::Relative => plan.tc - plan.stream_start.min(plan.tc),
            };
            let mut cluster = [0u8; CLUSTER_HEADER_LEN];
            cluster[..7].copy_from_slice(&[0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xE7, 0x88]);
            cluster[7..15].copy_from_slice(&written_tc.to_be_bytes());
            cluster[15..].copy_from_slice(&[0xA7, 0x81, 0x00]);
            out.put_slice(&cluster);
            self.open_cluster = Some(plan.tc);
            self.last_cluster = Some(plan.tc);
            fragment = Some(FragmentStart {
                cluster_timecode: written_tc,
                index: self.fragments,
                metadata_tags: tags,
            });
            self.fragments += 1;
        }
        let mut block = [0u8; SIMPLE_BLOCK_HEADER_LEN];
        block[0] = 0xA3;
        block[1..9].copy_from_slice(&((1u64 << 56) | (plan.payload_len as u64 + 4)).to_be_bytes());
        block[9] = plan.track_byte;
        block[10..12].copy_from_slice(&plan.delta.to_be_bytes());
        block[12] = plan.flags;
        out.put_slice(&block);
        self.ended = false;
        BlockWritten {
            header_len: plan.header_len,
            payload_len: plan.payload_len,
            fragment,
            block_timecode: plan.delta as i16,
        }
    }
}

/// Length of a producer Tags chain for one name/value pair: `52 + name + value`.
pub fn tag_chain_len(name: &str, value: &str) -> usize {
    TAG_CHAIN_OVERHEAD + name.len() + value.len()
}

/// Writes one producer Tags chain (Tags > Tag > SimpleTag > TagName, TagString; every size 8
/// bytes wide; no Targets), as PIC writes fragment metadata and the end-of-fragment marker.
pub fn write_tag_chain(
    out: &mut impl BufMut,
    name: &str,
    value: &str,
) -> Result<usize, EncodeError> {
    let len = tag_chain_len(name, value);
    ensure_room(out, len)?;
    put_tag_chain(out, name, value);
    Ok(len)
}

/// Writes a Tags chain; room already checked.
fn put_tag_chain(out: &mut impl BufMut, name: &str, value: &str) {
    let (n, v) = (name.len() as u64, value.len() as u64);
    let size8 = |x: u64| ((1u64 << 56) | x).to_be_bytes();
    let simple = 10 + n + 10 + v;
    let tag = 10 + simple;
    let tags = 10 + tag;
    out.put_slice(&[0x12, 0x54, 0xC3, 0x67]);
    out.put_slice(&size8(tags));
    out.put_slice(&[0x73, 0x73]);
    out.put_slice(&size8(tag));
    out.put_slice(&[0x67, 0xC8]);
    out.put_slice(&size8(simple));
    out.put_slice(&[0x45, 0xA3]);
    out.put_slice(&size8(n));
    out.put_slice(name.as_bytes());
    out.put_slice(&[0x44, 0x87]);
    out.put_slice(&size8(v));
    out.put_slice(value.as_bytes());
}

fn validate(config: &StreamConfig, tracks: &[TrackInfo]) -> Result<(), ConfigError> {
    if !(MIN_TIMECODE_SCALE_NS..=MAX_TIMECODE_SCALE_NS).contains(&config.timecode_scale_ns) {
        return Err(ConfigError::InvalidTimecodeScale(config.timecode_scale_ns));
    }
    if let Fragmentation::Duration(ns) = config.fragmentation
        && !(MIN_FRAGMENT_DURATION_NS..=MAX_FRAGMENT_DURATION_NS).contains(&ns)
    {
        return Err(ConfigError::InvalidFragmentDuration(ns));
    }
    if let Some(id) = &config.client_id
        && id.len() > MAX_CLIENT_ID_LEN
    {
        return Err(ConfigError::ClientIdTooLong(id.len()));
    }
    if tracks.is_empty() {
        return Err(ConfigError::NoTracks);
    }
    if tracks.len() > MAX_TRACKS {
        return Err(ConfigError::TooManyTracks(tracks.len()));
    }
    for (index, t) in tracks.iter().enumerate() {
        let track = t.number;
        if !(1..=126).contains(&track) {
            return Err(ConfigError::InvalidTrackNumber {
                index,
                number: track,
            });
        }
        if tracks[..index].iter().any(|o| o.number == track) {
            return Err(ConfigError::DuplicateTrackNumber(track));
        }
        if t.uid == 0 {
            return Err(ConfigError::ZeroTrackUid(track));
        }
        let code = t.track_type.code();
        if code > 0xFF {
            return Err(ConfigError::InvalidTrackType { track, code });
        }
        if let Some(name) = &t.name
            && name.len() > MAX_TRACK_NAME_LEN
        {
            return Err(ConfigError::TrackNameTooLong {
                track,
                len: name.len(),
            });
        }
        if t.codec_id.len() > MAX_CODEC_ID_LEN {
            return Err(ConfigError::CodecIdTooLong {
                track,
                len: t.codec_id.len(),
            });
        }
        if t.codec_private.len() > MAX_CODEC_PRIVATE_LEN {
            return Err(ConfigError::CodecPrivateTooLong {
                track,
                len: t.codec_private.len(),
            });
        }
        if let Some(v) = t.video
            && (v.width > 0xFFFF || v.height > 0xFFFF)
        {
            return Err(ConfigError::VideoSizeTooLarge {
                track,
                width: v.width,
                height: v.height,
            });
        }
        if let Some(a) = t.audio {
            if a.channels > 0xFF {
                return Err(ConfigError::AudioFieldTooLarge {
                    track,
                    what: "channels",
                    value: a.channels,
                });
            }
            if let Some(bits) = a.bit_depth
                && bits > 0xFF
            {
                return Err(ConfigError::AudioFieldTooLarge {
                    track,
                    what: "bit depth",
                    value: bits,
                });
            }
        }
    }
    Ok(())
}

/// The MuxingApp / WritingApp string: `"Kinesis Video SDK 1.1.0"` plus `" <clientId>"`.
pub fn application_name(client_id: Option<&str>) -> String {
    match client_id {
        Some(id) if !id.is_empty() => format!("{APPLICATION} {id}"),
        _ => APPLICATION.to_owned(),
    }
}

fn encode_header(config: &StreamConfig, tracks: &[TrackInfo]) -> Result<Bytes, EncodeError> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&EBML_HEADER);
    out.extend_from_slice(&SEGMENT_UNKNOWN_SIZE);

    let app = application_name(config.client_id.as_deref());
    let mut info = Vec::with_capacity(128);
    write_binary_as(
        &mut info,
        id::SEGMENT_UID,
        &config.segment_uid,
        SizeWidth::Minimal,
    )?;
    write_uint_fixed(&mut info, id::TIMECODE_SCALE, config.timecode_scale_ns, 8)?;
    write_string(&mut info, id::TITLE, TITLE)?;
    write_string(&mut info, id::MUXING_APP, &app)?;
    write_string(&mut info, id::WRITING_APP, &app)?;
    write_binary_as(&mut out, id::INFO, &info, SizeWidth::Fixed(2))?;

    let mut entries = Vec::with_capacity(256);
    for t in tracks {
        let mut e = Vec::with_capacity(64 + t.codec_private.len());
        write_uint_fixed(&mut e, id::TRACK_NUMBER, t.number, 1)?;
        write_uint_fixed(&mut e, id::TRACK_UID, t.uid, 8)?;
        write_uint_fixed(&mut e, id::TRACK_TYPE, t.track_type.code(), 1)?;
        if let Some(name) = t.name.as_deref().filter(|n| !n.is_empty()) {
            write_string(&mut e, id::NAME, name)?;
        }
        if !t.codec_id.is_empty() {
            write_string(&mut e, id::CODEC_ID, &t.codec_id)?;
        }
        if let Some(v) = t.video {
            let mut video = Vec::with_capacity(8);
            write_uint_fixed(&mut video, id::PIXEL_WIDTH, u64::from(v.width), 2)?;
            write_uint_fixed(&mut video, id::PIXEL_HEIGHT, u64::from(v.height), 2)?;
            write_binary_as(&mut e, id::VIDEO, &video, SizeWidth::Fixed(4))?;
        }
        if let Some(a) = t.audio {
            let mut audio = Vec::with_capacity(17);
            write_float(&mut audio, id::SAMPLING_FREQUENCY, a.sampling_frequency)?;
            write_uint_fixed(&mut audio, id::CHANNELS, u64::from(a.channels), 1)?;
            if let Some(bits) = a.bit_depth.filter(|&b| b != 0) {
                write_uint_fixed(&mut audio, id::BIT_DEPTH, u64::from(bits), 1)?;
            }
            write_binary_as(&mut e, id::AUDIO, &audio, SizeWidth::Fixed(4))?;
        }
        if !t.codec_private.is_empty() {
            write_binary_as(
                &mut e,
                id::CODEC_PRIVATE,
                &t.codec_private,
                SizeWidth::Minimal,
            )?;
        }
        write_binary_as(&mut entries, id::TRACK_ENTRY, &e, SizeWidth::Fixed(4))?;
    }
    write_binary_as(&mut out, id::TRACKS, &entries, SizeWidth::Fixed(4))?;
    Ok(Bytes::from(out))
}
