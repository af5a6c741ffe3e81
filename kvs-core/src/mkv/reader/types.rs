//! The reader's public vocabulary: limits, events, warnings and errors.

use bytes::Bytes;

use crate::ebml::VintError;
use crate::fragment::FragmentMetadata;
use crate::mkv::{Frame, TrackInfo};

/// Bounds on what the reader accepts. Exceeding one is a typed [`DecodeError`], never an
/// allocation of the attacker-chosen size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderLimits {
    /// Largest element the reader holds whole in memory (a block, a Tags, a TrackEntry, Info, the
    /// EBML header), data size in bytes. Elements it skips (Cues, SeekHead, attachments, unknown
    /// elements) are never buffered and have no size limit.
    pub max_element_size: u64,
    /// Deepest nesting of master elements.
    pub max_depth: usize,
    /// Most SimpleTags in one Tags element, and most user tags kept for one fragment.
    pub max_tags: usize,
    /// Largest CodecPrivate, in bytes.
    pub max_codec_private: u64,
    /// Most frames in one fragment (Cluster).
    pub max_frames_per_fragment: u64,
    /// Most tracks in one Tracks element (and distinct track numbers counted per fragment).
    pub max_tracks: usize,
    /// Most unconsumed input the reader holds; [`crate::mkv::reader::MkvReader::push`] refuses
    /// more (drain events after every push and this is never reached by valid input).
    pub max_buffered_bytes: usize,
}

impl Default for ReaderLimits {
    fn default() -> Self {
        ReaderLimits {
            max_element_size: 64 << 20,
            max_depth: 32,
            max_tags: 1024,
            max_codec_private: 4 << 20,
            max_frames_per_fragment: 1_000_000,
            max_tracks: 128,
            max_buffered_bytes: 256 << 20,
        }
    }
}

/// The EBML header of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EbmlHeader {
    /// Byte offset of the EBML element.
    pub offset: u64,
    /// EBMLVersion.
    pub version: u64,
    /// EBMLReadVersion.
    pub read_version: u64,
    /// EBMLMaxIDLength.
    pub max_id_length: u64,
    /// EBMLMaxSizeLength.
    pub max_size_length: u64,
    /// DocType (`matroska` or `webm`).
    pub doc_type: String,
    /// DocTypeVersion.
    pub doc_type_version: u64,
    /// DocTypeReadVersion.
    pub doc_type_read_version: u64,
}

/// The Segment's Info element.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentInfo {
    /// Byte offset of the Info element.
    pub offset: u64,
    /// TimestampScale in ns per tick (1,000,000 when absent).
    pub timecode_scale: u64,
    /// Duration in ticks, when written.
    pub duration: Option<f64>,
    /// SegmentUID, when written.
    pub segment_uid: Option<Bytes>,
    /// DateUTC in ns since 2001-01-01T00:00:00 UTC, when written.
    pub date_utc_ns: Option<i64>,
    /// Title, when written.
    pub title: Option<String>,
    /// MuxingApp, when written.
    pub muxing_app: Option<String>,
    /// WritingApp, when written.
    pub writing_app: Option<String>,
}

/// One SimpleTag (nested SimpleTags are flattened after their parent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleTag {
    /// TagName.
    pub name: String,
    /// TagString (empty when the tag has none).
    pub value: String,
    /// TagBinary, when written.
    pub binary: Option<Bytes>,
}

/// One level-1 Tags element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagsEvent {
    /// Byte offset of the Tags element.
    pub offset: u64,
    /// Every SimpleTag, in order.
    pub tags: Vec<SimpleTag>,
    /// The `AWS_KINESISVIDEO_*` tags of this element, typed.
    pub metadata: FragmentMetadata,
}

/// Everything known about one fragment once it is over: what `kvs inspect --json` prints.
///
/// A fragment is one Cluster with the Tags around it: the KVS leading tags and user tags written
/// before the Cluster, and the KVS trailing tags (`MILLIS_BEHIND_NOW`, `CONTINUATION_TOKEN`, error
/// tags) written after it. A GetMedia document that carries KVS tags but no Cluster (an in-band
/// error) is a fragment without a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentSummary {
    /// Index of the fragment in the input, from 0.
    pub index: u64,
    /// Index of the EBML document holding it, from 0 (GetMedia: one document per fragment).
    pub document: u64,
    /// Byte offset of the Cluster (or, without a cluster, of the first Tags element).
    pub offset: u64,
    /// Bytes of the Cluster element, header included (0 without a cluster).
    pub bytes: u64,
    /// Whether the fragment had a Cluster.
    pub has_cluster: bool,
    /// The Cluster Timestamp in ticks, when written.
    pub cluster_timecode: Option<u64>,
    /// The TimestampScale in force, ns per tick.
    pub timecode_scale: u64,
    /// KVS metadata from the tags before and after the Cluster.
    pub metadata: FragmentMetadata,
    /// User tags (names not starting with `AWS_KINESISVIDEO_`) that annotate this fragment.
    pub tags: Vec<(String, String)>,
    /// Frames delivered (laced frames counted one by one).
    pub frames: u64,
    /// Key frames among them.
    pub keyframes: u64,
    /// Frames per track number, sorted by track number.
    pub frames_per_track: Vec<(u64, u64)>,
    /// The input ended inside this fragment.
    pub truncated: bool,
}

/// Something the reader tolerated. Decoding goes on as if it were not there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Warning {
    /// A CRC-32 element does not match its parent's data.
    #[error(
        "CRC-32 mismatch in element 0x{parent:X} at byte {offset}: stored 0x{stored:08X}, computed 0x{computed:08X}"
    )]
    CrcMismatch {
        /// Byte offset of the parent element.
        offset: u64,
        /// The parent element ID.
        parent: u32,
        /// CRC as stored.
        stored: u32,
        /// CRC as computed.
        computed: u32,
    },
    /// A CRC-32 element that is not the first child of its parent (not checked).
    #[error("CRC-32 element at byte {offset} is not the first child of its parent")]
    CrcNotFirst {
        /// Byte offset of the CRC-32 element.
        offset: u64,
    },
    /// A CRC-32 element outside any master (level 0).
    #[error("CRC-32 element at byte {offset} sits at level 0, outside any master")]
    CrcAtTopLevel {
        /// Byte offset of the CRC-32 element.
        offset: u64,
    },
    /// An unknown (or non-minimally encoded) element inside the EBML header.
    #[error("unknown element 0x{id:X} at byte {offset} inside the EBML header (skipped)")]
    UnknownHeaderElement {
        /// Byte offset of the element.
        offset: u64,
        /// Its ID as written.
        id: u32,
    },
    /// An element that may occur once appears again; the first value is kept.
    #[error("element 0x{id:X} at byte {offset} repeats a unique element (first value kept)")]
    DuplicateElement {
        /// Byte offset of the repetition.
        offset: u64,
        /// Its ID.
        id: u32,
    },
    /// An EBML header value outside what the specifications define, which does not stop
    /// reading (EBMLVersion, DocTypeVersion, EBMLMaxIDLength, EBMLMaxSizeLength, version order).
    #[error("EBML header at byte {offset}: {what} is {value}, outside the defined range")]
    HeaderValue {
        /// Byte offset of the EBML header.
        offset: u64,
        /// What is odd.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// An element size wider than the document's EBMLMaxSizeLength (read anyway).
    #[error("element at byte {offset} has a {width}-byte size field; EBMLMaxSizeLength is {max}")]
    SizeWiderThanDeclared {
        /// Byte offset of the element.
        offset: u64,
        /// Width of its size field.
        width: usize,
        /// The document's EBMLMaxSizeLength.
        max: u64,
    },
    /// A value of the wrong length or form (SegmentUID not 16 bytes, a string that is not valid
    /// UTF-8, TimestampScale 0); the reader used it as well as it could.
    #[error("element 0x{id:X} at byte {offset}: {what}")]
    OddValue {
        /// Byte offset of the element.
        offset: u64,
        /// Its ID.
        id: u32,
        /// What is odd.
        what: &'static str,
    },
    /// A Cluster without a Timestamp element before its first block (0 assumed).
    #[error("cluster at byte {offset} has no Timestamp before its first block (0 assumed)")]
    MissingClusterTimecode {
        /// Byte offset of the Cluster.
        offset: u64,
    },
    /// Bytes dropped while looking for the next Cluster or EBML header after an error.
    #[error("skipped {bytes} bytes from byte {offset} to resynchronise")]
    Skipped {
        /// Where the skipped bytes began.
        offset: u64,
        /// How many.
        bytes: u64,
    },
}

/// What the reader reports, in input order.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// An EBML header: a new document starts.
    EbmlHeader(Box<EbmlHeader>),
    /// A Segment starts.
    SegmentStart {
        /// Byte offset of the Segment element.
        offset: u64,
        /// Its data size, `None` when unknown (live streams).
        size: Option<u64>,
    },
    /// The Segment's Info element.
    Info(Box<SegmentInfo>),
    /// One TrackEntry. GetMedia repeats the tracks in every document, so the same track may
    /// arrive many times.
    Track(Box<TrackInfo>),
    /// A level-1 Tags element.
    Tags(Box<TagsEvent>),
    /// A Cluster (a KVS fragment) starts; sent once its Timestamp is read.
    ClusterStart {
        /// Byte offset of the Cluster element.
        offset: u64,
        /// Its Timestamp in ticks (`None` when the cluster has none).
        timecode: Option<u64>,
    },
    /// One frame, as soon as its block is complete. Laced blocks give one event per frame.
    Frame(Frame),
    /// A fragment is over, with its metadata: sent at the next Cluster, the next EBML header, the
    /// end of the Segment or of the input, or as soon as its KVS trailing tags are complete.
    FragmentEnd(Box<FragmentSummary>),
    /// A Segment ends (its size ran out, a new EBML header or Segment began, or the input ended).
    SegmentEnd {
        /// Byte offset where it ended.
        offset: u64,
    },
    /// Something odd the reader tolerated.
    Warning(Warning),
}

/// A decoding error. The reader reports it, recovers (skipping the bad element when its extent is
/// known, else scanning for the next Cluster, EBML header or level-1 element) and goes on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A malformed element ID or size.
    #[error("malformed element header at byte {offset}: {source}")]
    Vint {
        /// Byte offset of the element.
        offset: u64,
        /// What was wrong.
        source: VintError,
    },
    /// A malformed value inside an element.
    #[error("malformed value in element 0x{id:X} at byte {offset}: {source}")]
    Value {
        /// Byte offset of the element.
        offset: u64,
        /// Its ID.
        id: u32,
        /// What was wrong.
        source: VintError,
    },
    /// An element the reader must hold in memory is larger than [`ReaderLimits::max_element_size`].
    #[error("element 0x{id:X} at byte {offset} has {size} bytes of data; the limit is {limit}")]
    ElementTooLarge {
        /// Byte offset of the element.
        offset: u64,
        /// Its ID.
        id: u32,
        /// Its data size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Unknown size on an element that must have a known size.
    #[error(
        "element 0x{id:X} at byte {offset} has an unknown size, which only some masters may have"
    )]
    UnknownSizeNotAllowed {
        /// Byte offset of the element.
        offset: u64,
        /// Its ID.
        id: u32,
    },
    /// A child element that runs past the end of its parent.
    #[error(
        "element 0x{id:X} at byte {offset} ends at byte {end}, past its parent 0x{parent:X} ending at byte {parent_end}"
    )]
    ChildOverflow {
        /// Byte offset of the child.
        offset: u64,
        /// Its ID.
        id: u32,
        /// Where it would end.
        end: u64,
        /// The parent's ID.
        parent: u32,
        /// Where the parent ends.
        parent_end: u64,
    },
    /// Masters nested deeper than [`ReaderLimits::max_depth`].
    #[error("element at byte {offset} nests deeper than {limit} levels")]
    TooDeep {
        /// Byte offset of the element.
        offset: u64,
        /// The limit.
        limit: usize,
    },
    /// A count or size limit of [`ReaderLimits`] was exceeded.
    #[error("{what} at byte {offset} exceeds the limit of {limit}")]
    Limit {
        /// Byte offset where it happened.
        offset: u64,
        /// Which limit.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// More input pushed than [`ReaderLimits::max_buffered_bytes`] allows: drain events first.
    #[error(
        "reader holds {buffered} unconsumed bytes and was pushed {pushed} more; the limit is {limit} (drain events after each push)"
    )]
    BufferFull {
        /// Bytes held.
        buffered: usize,
        /// Bytes pushed.
        pushed: usize,
        /// The limit.
        limit: usize,
    },
    /// An EBML header the reader cannot accept (missing or empty DocType, read versions it does
    /// not implement, a DocType other than matroska or webm).
    #[error("invalid EBML header at byte {offset}: {reason}")]
    InvalidHeader {
        /// Byte offset of the EBML header.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A TrackEntry the reader cannot use (no or zero TrackNumber).
    #[error("invalid TrackEntry at byte {offset}: {reason}")]
    InvalidTrack {
        /// Byte offset of the TrackEntry.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A malformed Block or SimpleBlock (header, lacing).
    #[error("invalid block at byte {offset}: {reason}")]
    InvalidBlock {
        /// Byte offset of the block element.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The input ended inside an element; the fragment it belongs to is reported truncated.
    #[error(
        "input ended at byte {offset} inside an element ({buffered} bytes of it held, {missing} more expected)"
    )]
    Truncated {
        /// Where the input ended.
        offset: u64,
        /// Bytes of the unfinished element held.
        buffered: u64,
        /// Bytes still expected, when known (0 when not).
        missing: u64,
    },
}
