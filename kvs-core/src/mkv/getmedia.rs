//! The GetMedia / GetMediaForFragmentList document writer: what a KVS-compatible server sends
//! back, one complete MKV document per fragment, as the real service lays it out:
//!
//! ```text
//! EBML header                      (the producer's, verbatim)
//! Segment, unknown 8-byte size     18 53 80 67 01 FF FF FF FF FF FF FF
//!   producer header elements       (Info, Tracks, Tags… exactly as the producer sent them)
//!   Tags  (KVS, 4-byte sizes, no Targets)
//!     FRAGMENT_NUMBER, SERVER_TIMESTAMP, PRODUCER_TIMESTAMP
//!   Cluster                        (the producer's bytes, verbatim)
//!   Tags  (KVS, 4-byte sizes, no Targets)
//!     MILLIS_BEHIND_NOW, CONTINUATION_TOKEN
//! ```
//!
//! Timestamps are written as seconds with exactly three decimals
//! ([`format_seconds_millis`]). In-band errors are documents holding only the EBML header,
//! the Segment and a Tags element with `AWS_KINESISVIDEO_ERROR_CODE`, `AWS_KINESISVIDEO_ERROR_ID`
//! and, when known, `AWS_KINESISVIDEO_FRAGMENT_NUMBER` ([`write_error_document`]).
//!
//! Every size field of the KVS Tags chains (Tags, Tag, SimpleTag, TagName, TagString) is written
//! 4 bytes wide (`10 00 00 NN`).

use std::collections::VecDeque;

use bytes::{BufMut, Bytes, BytesMut};

use crate::ebml::write::{EncodeError, SizeWidth, ensure_room, write_header};
use crate::ebml::{Size, VintError, id, read_id, read_size};
use crate::fragment::{format_seconds_millis, tag};

/// Segment header with the 8-byte unknown size GetMedia writes.
pub const SEGMENT_UNKNOWN_SIZE_8: [u8; 12] = [
    0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
];

/// Width of every size field in KVS-inserted Tags.
const KVS_SIZE_WIDTH: SizeWidth = SizeWidth::Fixed(4);

/// A producer stream header that cannot be split into EBML header and Segment children.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The bytes do not start with an EBML header element.
    #[error("stream header does not start with an EBML header (found ID 0x{0:X} at byte 0)")]
    NotEbml(u32),
    /// The EBML header is not followed by a Segment.
    #[error("expected a Segment at byte {offset}, found ID 0x{found:X}")]
    NotSegment {
        /// Byte offset of the element found.
        offset: usize,
        /// Its ID.
        found: u32,
    },
    /// The EBML header has an unknown size.
    #[error("the EBML header at byte 0 has an unknown size")]
    UnknownEbmlSize,
    /// The bytes end inside the EBML header or the Segment header.
    #[error("stream header truncated at byte {0}")]
    Truncated(usize),
    /// A malformed ID or size.
    #[error("malformed element at byte {offset}: {source}")]
    Vint {
        /// Byte offset of the element.
        offset: usize,
        /// What was wrong.
        source: VintError,
    },
}

/// The producer's header, split as GetMedia documents repeat it: the EBML header, and the
/// elements the producer put inside its Segment before the first Cluster (Info, Tracks, Tags…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerHeader {
    ebml_header: Bytes,
    segment_children: Bytes,
}

impl ProducerHeader {
    /// Both parts given directly (zero copy).
    pub fn new(ebml_header: Bytes, segment_children: Bytes) -> Self {
        ProducerHeader {
            ebml_header,
            segment_children,
        }
    }

    /// Splits the bytes a producer sent before its first Cluster (EBML header, Segment header of
    /// any size width, then header elements) without copying. The Segment header itself is
    /// dropped: documents write their own with the 8-byte unknown size.
    pub fn parse(stream_header: Bytes) -> Result<Self, HeaderError> {
        let vint = |offset: usize| move |source| HeaderError::Vint { offset, source };
        let (ebml_id, id_len) = read_id(&stream_header)
            .map_err(vint(0))?
            .ok_or(HeaderError::Truncated(0))?;
        if ebml_id != id::EBML {
            return Err(HeaderError::NotEbml(ebml_id));
        }
        let rest = stream_header.get(id_len..).unwrap_or_default();
        let (size, size_len) = read_size(rest)
            .map_err(vint(0))?
            .ok_or(HeaderError::Truncated(id_len))?;
        let Size::Known(data_len) = size else {
            return Err(HeaderError::UnknownEbmlSize);
        };
        let ebml_end = usize::try_from(data_len)
            .ok()
            .and_then(|d| d.checked_add(id_len + size_len))
            .filter(|&end| end <= stream_header.len())
            .ok_or(HeaderError::Truncated(stream_header.len()))?;
        let rest = stream_header.get(ebml_end..).unwrap_or_default();
        let (seg_id, seg_id_len) = read_id(rest)
            .map_err(vint(ebml_end))?
            .ok_or(HeaderError::Truncated(ebml_end))?;
        if seg_id != id::SEGMENT {
            return Err(HeaderError::NotSegment {
                offset: ebml_end,
                found: seg_id,
            });
        }
        let rest = rest.get(seg_id_len..).unwrap_or_default();
        let (_, seg_size_len) = read_size(rest)
            .map_err(vint(ebml_end))?
            .ok_or(HeaderError::Truncated(ebml_end + seg_id_len))?;
        let children_start = ebml_end + seg_id_len + seg_size_len;
        Ok(ProducerHeader {
            ebml_header: stream_header.slice(..ebml_end),
            segment_children: stream_header.slice(children_start..),
        })
    }

    /// The producer's EBML header.
    pub fn ebml_header(&self) -> &Bytes {
        &self.ebml_header
    }

    /// The producer's header elements inside the Segment (Info, Tracks, …).
    pub fn segment_children(&self) -> &Bytes {
        &self.segment_children
    }

    /// Length of a document's start: EBML header, 12-byte Segment header, header elements.
    pub fn document_start_len(&self) -> usize {
        self.ebml_header.len() + SEGMENT_UNKNOWN_SIZE_8.len() + self.segment_children.len()
    }

    /// Writes a document's start: EBML header, Segment of unknown size, header elements.
    pub fn write_document_start(&self, out: &mut impl BufMut) -> Result<usize, EncodeError> {
        let len = self.document_start_len();
        ensure_room(out, len)?;
        out.put_slice(&self.ebml_header);
        out.put_slice(&SEGMENT_UNKNOWN_SIZE_8);
        out.put_slice(&self.segment_children);
        Ok(len)
    }
}

/// Length of a KVS Tags element holding `pairs` as SimpleTags of one Tag (4-byte sizes).
pub fn kvs_tags_len(pairs: &[(&str, &str)]) -> usize {
    8 + 6
        + pairs
            .iter()
            .map(|(n, v)| 18 + n.len() + v.len())
            .sum::<usize>()
}

/// Writes a KVS Tags element: one Tag, no Targets, one SimpleTag per pair, every size field
/// 4 bytes wide (`10 00 00 NN`), as the service writes its GetMedia tags.
pub fn write_kvs_tags(out: &mut impl BufMut, pairs: &[(&str, &str)]) -> Result<usize, EncodeError> {
    let total = kvs_tags_len(pairs);
    let tag_len = (total - 8) as u64;
    // The outer size is checked first; every inner size is smaller.
    crate::ebml::write::size_len(tag_len, KVS_SIZE_WIDTH)?;
    ensure_room(out, total)?;
    write_header(out, id::TAGS, tag_len, KVS_SIZE_WIDTH)?;
    write_header(out, id::TAG, tag_len - 6, KVS_SIZE_WIDTH)?;
    for (name, value) in pairs {
        let simple = (12 + name.len() + value.len()) as u64;
        write_header(out, id::SIMPLE_TAG, simple, KVS_SIZE_WIDTH)?;
        write_header(out, id::TAG_NAME, name.len() as u64, KVS_SIZE_WIDTH)?;
        out.put_slice(name.as_bytes());
        write_header(out, id::TAG_STRING, value.len() as u64, KVS_SIZE_WIDTH)?;
        out.put_slice(value.as_bytes());
    }
    Ok(total)
}

/// Writes the leading KVS Tags: FRAGMENT_NUMBER, SERVER_TIMESTAMP and PRODUCER_TIMESTAMP
/// (epoch milliseconds, written as seconds with three decimals).
pub fn write_leading_tags(
    out: &mut impl BufMut,
    fragment_number: &str,
    server_timestamp_ms: u64,
    producer_timestamp_ms: u64,
) -> Result<usize, EncodeError> {
    let server = format_seconds_millis(server_timestamp_ms);
    let producer = format_seconds_millis(producer_timestamp_ms);
    write_kvs_tags(
        out,
        &[
            (tag::FRAGMENT_NUMBER, fragment_number),
            (tag::SERVER_TIMESTAMP, &server),
            (tag::PRODUCER_TIMESTAMP, &producer),
        ],
    )
}

/// Writes the trailing KVS Tags: MILLIS_BEHIND_NOW (an integer) and CONTINUATION_TOKEN.
pub fn write_trailing_tags(
    out: &mut impl BufMut,
    millis_behind_now: u64,
    continuation_token: &str,
) -> Result<usize, EncodeError> {
    let millis = millis_behind_now.to_string();
    write_kvs_tags(
        out,
        &[
            (tag::MILLIS_BEHIND_NOW, &millis),
            (tag::CONTINUATION_TOKEN, continuation_token),
        ],
    )
}

/// What follows a fragment's Cluster: the trailing KVS tags (absent when a response is cut).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailer {
    /// `AWS_KINESISVIDEO_MILLIS_BEHIND_NOW`.
    pub millis_behind_now: u64,
    /// `AWS_KINESISVIDEO_CONTINUATION_TOKEN` (the service writes the fragment number).
    pub continuation_token: String,
}

/// One fragment as a GetMedia document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentDocument<'a> {
    /// The producer's header, repeated in every document.
    pub header: &'a ProducerHeader,
    /// The 47-digit fragment number.
    pub fragment_number: &'a str,
    /// Ingestion time, epoch ms.
    pub server_timestamp_ms: u64,
    /// Producer time of the fragment, epoch ms.
    pub producer_timestamp_ms: u64,
    /// The Cluster as the producer wrote it, plus any producer level-1 elements that followed
    /// it (Cues, Tags), verbatim.
    pub cluster: &'a Bytes,
    /// The trailing tags, or `None` to end the document right after the cluster.
    pub trailer: Option<&'a Trailer>,
}

impl FragmentDocument<'_> {
    fn leading(&self) -> (String, String) {
        (
            format_seconds_millis(self.server_timestamp_ms),
            format_seconds_millis(self.producer_timestamp_ms),
        )
    }

    fn tags_len(&self) -> (usize, usize) {
        let (s, p) = self.leading();
        let leading = kvs_tags_len(&[
            (tag::FRAGMENT_NUMBER, self.fragment_number),
            (tag::SERVER_TIMESTAMP, &s),
            (tag::PRODUCER_TIMESTAMP, &p),
        ]);
        let trailing = self.trailer.map_or(0, |t| {
            kvs_tags_len(&[
                (tag::MILLIS_BEHIND_NOW, &t.millis_behind_now.to_string()),
                (tag::CONTINUATION_TOKEN, &t.continuation_token),
            ])
        });
        (leading, trailing)
    }

    /// Total length of the document in bytes.
    pub fn len(&self) -> usize {
        let (leading, trailing) = self.tags_len();
        self.header.document_start_len() + leading + self.cluster.len() + trailing
    }

    /// Always false: a document holds at least its EBML and Segment headers.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Single-buffer path: copies the whole document into `out` (nothing is written when it
    /// does not fit).
    pub fn write(&self, out: &mut impl BufMut) -> Result<usize, EncodeError> {
        let len = self.len();
        ensure_room(out, len)?;
        self.header.write_document_start(out)?;
        self.write_leading(out)?;
        out.put_slice(self.cluster);
        if let Some(t) = self.trailer {
            write_trailing_tags(out, t.millis_behind_now, &t.continuation_token)?;
        }
        Ok(len)
    }

    fn write_leading(&self, out: &mut impl BufMut) -> Result<usize, EncodeError> {
        write_leading_tags(
            out,
            self.fragment_number,
            self.server_timestamp_ms,
            self.producer_timestamp_ms,
        )
    }

    /// Zero-copy path: pushes the document as chunks. The EBML header, the header elements and
    /// the cluster are shared `Bytes` (reference counts); only the Segment header and the tags
    /// are written, through `scratch`.
    pub fn push_chunks(
        &self,
        scratch: &mut BytesMut,
        chunks: &mut VecDeque<Bytes>,
    ) -> Result<usize, EncodeError> {
        let (leading, trailing) = self.tags_len();
        scratch.reserve(SEGMENT_UNKNOWN_SIZE_8.len() + leading + trailing);
        chunks.push_back(self.header.ebml_header.clone());
        scratch.put_slice(&SEGMENT_UNKNOWN_SIZE_8);
        chunks.push_back(scratch.split().freeze());
        chunks.push_back(self.header.segment_children.clone());
        self.write_leading(scratch)?;
        chunks.push_back(scratch.split().freeze());
        chunks.push_back(self.cluster.clone());
        if let Some(t) = self.trailer {
            write_trailing_tags(scratch, t.millis_behind_now, &t.continuation_token)?;
            chunks.push_back(scratch.split().freeze());
        }
        Ok(self.len())
    }
}

/// Writes an in-band error document: the EBML header, a Segment of unknown size and one Tags
/// element with `AWS_KINESISVIDEO_ERROR_CODE`, `AWS_KINESISVIDEO_ERROR_ID` and, when known,
/// `AWS_KINESISVIDEO_FRAGMENT_NUMBER`, in that order (as in the GetMediaForFragmentList error
/// dump of aws-sdk-js#3217). Pass the producer's EBML header, or
/// [`crate::mkv::writer::EBML_HEADER`] when there is none.
pub fn write_error_document(
    out: &mut impl BufMut,
    ebml_header: &[u8],
    error_code: &str,
    error_id: u64,
    fragment_number: Option<&str>,
) -> Result<usize, EncodeError> {
    let id_text = error_id.to_string();
    let mut pairs: Vec<(&str, &str)> =
        vec![(tag::ERROR_CODE, error_code), (tag::ERROR_ID, &id_text)];
    if let Some(n) = fragment_number {
        pairs.push((tag::FRAGMENT_NUMBER, n));
    }
    let len = ebml_header.len() + SEGMENT_UNKNOWN_SIZE_8.len() + kvs_tags_len(&pairs);
    ensure_room(out, len)?;
    out.put_slice(ebml_header);
    out.put_slice(&SEGMENT_UNKNOWN_SIZE_8);
    write_kvs_tags(out, &pairs)?;
    Ok(len)
}
