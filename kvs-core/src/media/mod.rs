//! Codec-private helpers for the codecs KVS producers send: H.264, H.265, AAC and G.711.
//!
//! | submodule | what it holds |
//! |---|---|
//! | [`nal`] | Annex-B ⇄ length-prefixed (AVCC/HVCC) NAL unit framing, borrowing iterators, emulation prevention |
//! | [`h264`] | H.264 NAL types, SPS parsing (dimensions, profile, chroma, bit depth), avcC build and parse |
//! | [`h265`] | H.265 NAL types, SPS parsing (profile_tier_level, conformance window), hvcC build and parse |
//! | [`access_unit`] | splitting an Annex-B H.264 / H.265 elementary stream into access units (frames) |
//! | [`adts`] | ADTS framing of raw AAC streams: frames, payloads and the AudioSpecificConfig |
//! | [`aac`] | the AAC AudioSpecificConfig: the 2-byte form the KVS producer writes, and a full parser |
//! | [`g711`] | the 18-byte WAVEFORMATEX the KVS producer writes for `A_MS/ACM` (A-law, µ-law), and a parser |
//!
//! The builders reproduce the bytes of the official producer library (PIC, `NalAdapter.c` and
//! `MkvGenerator.c`) exactly, quirks included. The parsers accept what real encoders produce.
//! Every function works on byte slices, returns [`MediaError`] on malformed input, never panics
//! and never allocates more than a small multiple of its input's length.
//!
//! [`codec_private_from_keyframe`] does what the producer's CPD auto-extraction does with the
//! first Annex-B key frame of an H.264 or H.265 track: it takes every NAL unit before the first
//! IDR slice, turns them into avcC or hvcC, and reads the picture size from the SPS.

pub mod aac;
pub mod access_unit;
pub mod adts;
mod bits;
pub mod g711;
pub mod h264;
pub mod h265;
pub mod nal;

/// Malformed or unsupported media data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// Annex-B data with a non-zero byte before its first start code.
    #[error("Annex-B data has a non-zero byte at offset {offset}, before any start code")]
    MissingStartCode {
        /// Offset of the first non-zero byte.
        offset: usize,
    },
    /// A length-prefixed NAL unit whose length runs past the end of the buffer.
    #[error(
        "length-prefixed NAL unit at offset {offset} declares {declared} bytes but only {available} remain"
    )]
    NalLengthOverrun {
        /// Offset of the length prefix.
        offset: usize,
        /// The length the prefix declares.
        declared: u64,
        /// The bytes left after the prefix.
        available: usize,
    },
    /// A length prefix cut off by the end of the buffer.
    #[error(
        "truncated NAL length prefix at offset {offset}: {needed} bytes needed, {available} left"
    )]
    TruncatedLengthPrefix {
        /// Offset of the partial prefix.
        offset: usize,
        /// The prefix size.
        needed: usize,
        /// The bytes left.
        available: usize,
    },
    /// A NAL length size other than 1, 2 or 4 bytes.
    #[error("NAL unit length size {0} is not 1, 2 or 4 bytes")]
    InvalidLengthSize(usize),
    /// A NAL unit too long for its length field.
    #[error(
        "NAL unit of {len} bytes at offset {offset} does not fit in a {field_size}-byte length field"
    )]
    NalTooLarge {
        /// Offset of the NAL unit in the input.
        offset: usize,
        /// Its length.
        len: usize,
        /// The size of the length field, in bytes.
        field_size: usize,
    },
    /// The output buffer cannot hold the result.
    #[error("output buffer too small: {needed} bytes needed, {available} available")]
    BufferTooSmall {
        /// Bytes the output needs.
        needed: usize,
        /// Bytes the buffer can still take.
        available: usize,
    },
    /// A bitstream (SPS, AudioSpecificConfig) that ends before a field.
    #[error("{what}: data ends at bit {bit_offset}, before the field is complete")]
    Truncated {
        /// The structure or field being read.
        what: &'static str,
        /// Bit offset (in the unescaped payload) where reading stopped.
        bit_offset: usize,
    },
    /// A byte structure (avcC, hvcC, WAVEFORMATEX) shorter than it must be.
    #[error(
        "{what} is truncated at byte offset {offset}: {needed} more bytes needed, {available} left"
    )]
    TruncatedRecord {
        /// The structure being read.
        what: &'static str,
        /// Offset where the missing bytes start.
        offset: usize,
        /// Bytes needed at that offset.
        needed: usize,
        /// Bytes left at that offset.
        available: usize,
    },
    /// An Exp-Golomb code with more than 31 leading zero bits.
    #[error("{what}: Exp-Golomb code at bit {bit_offset} has more than 31 leading zero bits")]
    ExpGolombTooLong {
        /// The field being read.
        what: &'static str,
        /// Bit offset of the code.
        bit_offset: usize,
    },
    /// A field whose value is outside the range the specification allows.
    #[error("{what}: value {value} is out of range")]
    OutOfRange {
        /// The field.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// A NAL unit of the wrong type where a specific one was required.
    #[error("expected {expected} NAL unit, found NAL unit type {found}")]
    UnexpectedNalType {
        /// What was required ("H.264 SPS", ...).
        expected: &'static str,
        /// The type found.
        found: u8,
    },
    /// An empty NAL unit where one with a header was required.
    #[error("empty {0} NAL unit")]
    EmptyNal(&'static str),
    /// A required element (parameter set, IDR slice) is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A structure or value this module does not support.
    #[error("unsupported {what}: {value}")]
    Unsupported {
        /// What is unsupported.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// A value that does not fit the field that must carry it.
    #[error("{what}: {value} does not fit in the field (max {max})")]
    TooLarge {
        /// The field.
        what: &'static str,
        /// The value.
        value: u64,
        /// The largest value the field holds.
        max: u64,
    },
}

/// The video codecs whose codec private data this module builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VideoCodec {
    /// H.264 / AVC (`V_MPEG4/ISO/AVC`, avcC codec private).
    H264,
    /// H.265 / HEVC (`V_MPEGH/ISO/HEVC`, hvcC codec private).
    H265,
}

impl VideoCodec {
    /// The Matroska CodecID of the codec.
    pub fn codec_id(self) -> &'static str {
        match self {
            VideoCodec::H264 => crate::mkv::codec::H264,
            VideoCodec::H265 => crate::mkv::codec::H265,
        }
    }
}

/// Codec private data and picture size taken from an Annex-B key frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedCodecPrivate {
    /// The avcC (H.264) or hvcC (H.265) record, as the official producer builds it.
    pub codec_private: Vec<u8>,
    /// Display width in pixels (after cropping).
    pub width: u32,
    /// Display height in pixels (after cropping).
    pub height: u32,
}

/// Build the codec private data and read the picture size from an Annex-B key frame, as the
/// official producer's CPD auto-extraction does.
///
/// The NAL units before the first IDR slice (H.264 type 5; H.265 types 19 and 20) are the
/// parameter sets; from them the avcC (first SPS and first PPS) or hvcC (first VPS, SPS and
/// optional PPS) is built, and the width and height come from the SPS.
///
/// # Errors
/// [`MediaError::Missing`] when the frame has no IDR slice or lacks a parameter set, and any
/// error from the Annex-B splitter, the SPS parser or the record builder.
pub fn codec_private_from_keyframe(
    codec: VideoCodec,
    access_unit: &[u8],
) -> Result<ExtractedCodecPrivate, MediaError> {
    match codec {
        VideoCodec::H264 => {
            let ps = h264::parameter_sets(access_unit)?;
            let sps = ps
                .iter()
                .copied()
                .find(|n| h264::nal_unit_type(n) == Some(h264::NAL_SPS))
                .ok_or(MediaError::Missing("H.264 SPS before the first IDR slice"))?;
            let pps = ps
                .iter()
                .copied()
                .find(|n| h264::nal_unit_type(n) == Some(h264::NAL_PPS))
                .ok_or(MediaError::Missing("H.264 PPS before the first IDR slice"))?;
            let parsed = h264::Sps::parse(sps)?;
            Ok(ExtractedCodecPrivate {
                codec_private: h264::build_avcc(sps, pps)?,
                width: parsed.width,
                height: parsed.height,
            })
        }
        VideoCodec::H265 => {
            let ps = h265::parameter_sets(access_unit)?;
            let find = |t: u8| {
                ps.iter()
                    .copied()
                    .find(|n| h265::nal_unit_type(n) == Some(t))
            };
            let vps = find(h265::NAL_VPS)
                .ok_or(MediaError::Missing("H.265 VPS before the first IDR slice"))?;
            let sps = find(h265::NAL_SPS)
                .ok_or(MediaError::Missing("H.265 SPS before the first IDR slice"))?;
            let pps = find(h265::NAL_PPS);
            let parsed = h265::Sps::parse(sps)?;
            Ok(ExtractedCodecPrivate {
                codec_private: h265::build_hvcc(vps, sps, pps)?,
                width: parsed.width,
                height: parsed.height,
            })
        }
    }
}
