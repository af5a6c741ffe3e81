//! A sans-IO fragmented-MP4 (ISO BMFF) writer for KVS media: what GetClip serves.
//!
//! [`Mp4Writer`] turns the tracks and frames of an MKV stream (as [`crate::mkv::reader`] decodes
//! them) into an MP4 file, one KVS fragment at a time, so a clip streams with memory bounded by
//! one fragment:
//!
//! * [`Mp4Writer::init_segment`]: `ftyp` + `moov` (`mvhd`, one `trak` per track with its sample
//!   description, and `mvex`/`trex`);
//! * [`Mp4Writer::fragment`]: one `moof` + `mdat` per KVS fragment;
//! * [`Mp4Writer::finish`]: the last `moof` + `mdat`, holding the samples kept back.
//! * [`Mp4Writer::standalone_fragment`]: one KVS fragment as a self-contained `moof` + `mdat`
//!   (nothing kept back, sequence number and end given), for HLS, where a player fetches each
//!   fragment on its own; decode times stay continuous when every fragment shares the origin.
//!
//! Supported codecs (GetClip's): H.264 (`V_MPEG4/ISO/AVC`, avcC → `avc1`), H.265
//! (`V_MPEGH/ISO/HEVC`, hvcC → `hvc1`), AAC (`A_AAC`, AudioSpecificConfig → `mp4a` + `esds`) and
//! G.711 (`A_MS/ACM` with WAVEFORMATEX format tag 6 or 7 → `alaw` / `ulaw`). Anything else is
//! [`Mp4Error::UnsupportedCodec`].
//!
//! Timing: video tracks use a 90 kHz timescale, audio tracks their sampling rate. Each sample's
//! decode time is its timestamp relative to the first frame of the clip, rounded once, so
//! durations (differences of rounded times) never drift. A sample's duration is the distance to
//! the next sample of its track, which is why the writer keeps the last sample of every track
//! back until the next fragment (or [`Mp4Writer::finish`]) shows where it ends. The last sample
//! of a track takes its MKV duration when known, else the codec's frame duration (AAC: 1024
//! samples; G.711: one sample per byte and channel), else its track's previous duration.
//! MKV timestamps are presentation times; when a track's timestamps go backwards inside a
//! fragment (B-frames), decode times are the sorted presentation times and the difference is
//! written as a signed composition offset (`trun` version 1).
//!
//! H.264/H.265 samples are written length-prefixed, as the codec private's length size says.
//! Frames that arrive in Annex-B form (start codes) are converted when the length size is 4.

mod boxes;
mod writer;

pub use writer::{Mp4Writer, Segment};

use crate::media::MediaError;

/// Largest number of tracks a clip may hold.
pub const MAX_TRACKS: usize = 8;
/// The timescale of video tracks (ticks per second).
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// Largest number of frames one fragment may hold (KVS allows 5 fragments/s of at most 20 s, so
/// a real fragment holds far fewer).
pub const MAX_FRAMES_PER_FRAGMENT: usize = 1 << 20;

/// Why an MP4 cannot be written for these tracks or frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mp4Error {
    /// A track whose codec MP4 clips do not carry.
    #[error(
        "track {track} has codec {codec_id}, which clips do not support: use H.264 or H.265 video and AAC or G.711 audio"
    )]
    UnsupportedCodec {
        /// The MKV track number.
        track: u64,
        /// Its CodecID (for `A_MS/ACM`, with the WAVEFORMATEX format tag).
        codec_id: String,
    },
    /// A track without the codec private data its sample description needs.
    #[error(
        "track {track} ({codec_id}) has no codec private data: the producer must send avcC/hvcC, the AAC AudioSpecificConfig or the WAVEFORMATEX"
    )]
    MissingCodecPrivate {
        /// The MKV track number.
        track: u64,
        /// Its CodecID.
        codec_id: String,
    },
    /// Codec private data that does not parse.
    #[error("track {track} ({codec_id}) has invalid codec private data: {source}")]
    InvalidCodecPrivate {
        /// The MKV track number.
        track: u64,
        /// Its CodecID.
        codec_id: String,
        /// What was wrong.
        source: MediaError,
    },
    /// No tracks, or more than [`MAX_TRACKS`].
    #[error("a clip needs 1 to {MAX_TRACKS} tracks, got {0}")]
    TrackCount(usize),
    /// A frame of a track the writer was not given.
    #[error("frame of unknown track {0}: declare every track when creating the writer")]
    UnknownTrack(u64),
    /// A video frame that is neither length-prefixed nor convertible Annex-B.
    #[error(
        "frame at {timestamp_ns} ns of track {track} is not a valid H.264/H.265 sample: {source}"
    )]
    InvalidFrame {
        /// The MKV track number.
        track: u64,
        /// The frame's timestamp.
        timestamp_ns: i64,
        /// What was wrong.
        source: MediaError,
    },
    /// A fragment too large for the 32-bit box sizes this writer uses, or with more than
    /// [`MAX_FRAMES_PER_FRAGMENT`] frames.
    #[error("fragment too large for one moof/mdat ({frames} frames, {bytes} bytes): split it")]
    FragmentTooLarge {
        /// Frames in the fragment.
        frames: usize,
        /// Payload bytes in the fragment.
        bytes: u64,
    },
}
