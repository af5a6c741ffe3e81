//! Splitting an Annex-B H.264 / H.265 elementary stream into access units (one per frame).
//!
//! Raw camera output and `ffmpeg -f h264` files are one long Annex-B byte stream; KVS wants one
//! frame per SimpleBlock. [`AccessUnitSplitter`] is push-based: feed it chunks of any size and
//! take out complete access units as soon as the first NAL unit of the next one shows up.
//!
//! A new access unit starts, once the current one holds a slice, at an access unit delimiter,
//! a parameter set, a prefix SEI (and the other NAL types the specifications list as able to open
//! an access unit), or at a slice whose first-slice marker is set (H.264 `first_mb_in_slice == 0`,
//! H.265 `first_slice_segment_in_pic_flag`). Streams with arbitrary slice order are not split
//! correctly; no camera or common encoder produces them.

use bytes::{Bytes, BytesMut};

use super::nal::find_start_code;
use super::{MediaError, VideoCodec, h264, h265};

/// One access unit: all NAL units of one frame, in Annex-B form (start codes included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// The Annex-B bytes, starting with a start code.
    pub data: Bytes,
    /// It holds an IDR slice (H.264) or an IRAP slice (H.265): a decoder can start here.
    pub keyframe: bool,
}

/// Push-based access unit splitter. See the [module documentation](self).
#[derive(Debug)]
pub struct AccessUnitSplitter {
    codec: VideoCodec,
    buf: BytesMut,
    /// Where to look for the next start code.
    scan: usize,
    /// Whether a start code has been seen at all (bytes before it must be zero).
    started: bool,
    has_slice: bool,
    keyframe: bool,
    finished: bool,
    max_access_unit: usize,
}

/// The largest access unit accepted by default (a 4K intra frame is a few MiB).
pub const DEFAULT_MAX_ACCESS_UNIT: usize = 32 << 20;

impl AccessUnitSplitter {
    /// A splitter for `codec` accepting access units up to [`DEFAULT_MAX_ACCESS_UNIT`] bytes.
    pub fn new(codec: VideoCodec) -> Self {
        Self::with_max_access_unit(codec, DEFAULT_MAX_ACCESS_UNIT)
    }

    /// A splitter with a custom bound on the size of one access unit.
    pub fn with_max_access_unit(codec: VideoCodec, max_access_unit: usize) -> Self {
        AccessUnitSplitter {
            codec,
            buf: BytesMut::new(),
            scan: 0,
            started: false,
            has_slice: false,
            keyframe: false,
            finished: false,
            max_access_unit,
        }
    }

    /// Appends the next bytes of the stream. Take access units out with
    /// [`next_access_unit`](Self::next_access_unit) after every push.
    ///
    /// # Errors
    /// [`MediaError::TooLarge`] when the access unit being gathered would exceed the bound.
    pub fn push(&mut self, data: &[u8]) -> Result<(), MediaError> {
        let held = self.buf.len().saturating_add(data.len());
        if held > self.max_access_unit.saturating_add(16) {
            return Err(MediaError::TooLarge {
                what: "access unit size",
                value: held as u64,
                max: self.max_access_unit as u64,
            });
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// Says the stream is over: the last access unit becomes available.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// The next complete access unit, or `None` when more input is needed (or, after
    /// [`finish`](Self::finish), when the stream is exhausted).
    ///
    /// # Errors
    /// [`MediaError::MissingStartCode`] when the stream does not begin with a start code.
    pub fn next_access_unit(&mut self) -> Result<Option<AccessUnit>, MediaError> {
        loop {
            let Some(sc) = find_start_code(&self.buf, self.scan) else {
                if !self.started
                    && let Some(offset) = self.buf.iter().position(|&b| b != 0)
                {
                    return Err(MediaError::MissingStartCode { offset });
                }
                // Keep the last two bytes: they may begin a start code.
                self.scan = self.buf.len().saturating_sub(2).max(self.scan);
                return Ok(self.flush_at_end());
            };
            if !self.started {
                if let Some(offset) = self
                    .buf
                    .get(..sc)
                    .and_then(|p| p.iter().position(|&b| b != 0))
                {
                    return Err(MediaError::MissingStartCode { offset });
                }
                self.started = true;
            }
            // The NAL header and the byte after it decide whether a new access unit starts.
            let head = self.buf.get(sc + 3..sc + 6);
            let Some(head) = head else {
                if self.finished {
                    // A NAL unit too short to classify at the very end: part of this unit.
                    self.scan = self.buf.len();
                    continue;
                }
                return Ok(None);
            };
            let nal = classify(self.codec, head);
            self.scan = sc + 3;
            if nal.opens_access_unit && self.has_slice {
                // Zero bytes before the start code (a 4-byte start code's leading zero, trailing
                // zeros) stay with the next unit.
                let end = self.buf[..sc]
                    .iter()
                    .rposition(|&b| b != 0)
                    .map_or(0, |p| p + 1);
                let data = self.buf.split_to(end).freeze();
                let unit = AccessUnit {
                    data,
                    keyframe: self.keyframe,
                };
                self.scan -= end;
                self.has_slice = nal.is_slice;
                self.keyframe = nal.is_keyframe;
                return Ok(Some(unit));
            }
            self.has_slice |= nal.is_slice;
            self.keyframe |= nal.is_keyframe;
        }
    }

    /// After `finish`, everything held is the last access unit.
    fn flush_at_end(&mut self) -> Option<AccessUnit> {
        if !self.finished || !self.has_slice {
            return None;
        }
        let end = self.buf.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        let data = self.buf.split_to(end).freeze();
        self.buf.clear();
        self.scan = 0;
        self.has_slice = false;
        let keyframe = std::mem::take(&mut self.keyframe);
        Some(AccessUnit { data, keyframe })
    }
}

/// What the first bytes of a NAL unit say about access unit boundaries.
struct NalClass {
    is_slice: bool,
    is_keyframe: bool,
    opens_access_unit: bool,
}

fn classify(codec: VideoCodec, head: &[u8]) -> NalClass {
    let first = head.first().copied().unwrap_or(0);
    match codec {
        VideoCodec::H264 => {
            let kind = first & 0x1F;
            let is_slice = (1..=5).contains(&kind);
            // first_mb_in_slice is ue(v): the value 0 is the single bit '1'.
            let first_slice = head.get(1).is_some_and(|b| b & 0x80 != 0);
            NalClass {
                is_slice,
                is_keyframe: kind == h264::NAL_IDR,
                opens_access_unit: (is_slice && first_slice) || matches!(kind, 6..=9 | 14..=18),
            }
        }
        VideoCodec::H265 => {
            let kind = (first >> 1) & 0x3F;
            let is_slice = kind <= 31;
            let first_slice = head.get(2).is_some_and(|b| b & 0x80 != 0);
            NalClass {
                is_slice,
                is_keyframe: (16..=23).contains(&kind),
                opens_access_unit: (is_slice && first_slice)
                    || matches!(
                        kind,
                        h265::NAL_VPS..=h265::NAL_AUD | h265::NAL_SEI_PREFIX | 41..=44 | 48..=55
                    ),
            }
        }
    }
}

/// Splits a whole Annex-B stream held in memory into access units.
///
/// # Errors
/// As [`AccessUnitSplitter::next_access_unit`].
pub fn split_access_units(codec: VideoCodec, stream: &[u8]) -> Result<Vec<AccessUnit>, MediaError> {
    let mut splitter = AccessUnitSplitter::with_max_access_unit(codec, stream.len());
    splitter.push(stream)?;
    splitter.finish();
    let mut units = Vec::new();
    while let Some(unit) = splitter.next_access_unit()? {
        units.push(unit);
    }
    Ok(units)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IDR frame with SPS/PPS, then two P frames, the second in two slices.
    fn h264_stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&[0, 0, 0, 1, 0x67, 0x42, 0x00, 0x1E]); // SPS
        s.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xCE, 0x38, 0x80]); // PPS
        s.extend_from_slice(&[0, 0, 1, 0x65, 0x88, 0x84, 0x21]); // IDR, first_mb 0
        s.extend_from_slice(&[0, 0, 0, 1, 0x41, 0x9A, 0x02]); // P, first_mb 0
        s.extend_from_slice(&[0, 0, 1, 0x41, 0x9A, 0x03]); // P, first_mb 0
        s.extend_from_slice(&[0, 0, 1, 0x41, 0x40, 0x04]); // P, second slice (first_mb 1)
        s
    }

    #[test]
    fn splits_h264_frames_at_first_slices_and_parameter_sets() {
        let units = split_access_units(VideoCodec::H264, &h264_stream()).unwrap();
        assert_eq!(units.len(), 3);
        assert!(units[0].keyframe);
        assert_eq!(&units[0].data[..5], &[0, 0, 0, 1, 0x67]);
        assert!(!units[1].keyframe);
        assert_eq!(&units[1].data[..], &[0, 0, 0, 1, 0x41, 0x9A, 0x02]);
        assert_eq!(
            &units[2].data[..],
            &[0, 0, 1, 0x41, 0x9A, 0x03, 0, 0, 1, 0x41, 0x40, 0x04]
        );
    }

    #[test]
    fn any_chunking_gives_the_same_units() {
        let stream = h264_stream();
        let whole = split_access_units(VideoCodec::H264, &stream).unwrap();
        for chunk in 1..stream.len() {
            let mut s = AccessUnitSplitter::new(VideoCodec::H264);
            let mut got = Vec::new();
            for piece in stream.chunks(chunk) {
                s.push(piece).unwrap();
                while let Some(u) = s.next_access_unit().unwrap() {
                    got.push(u);
                }
            }
            s.finish();
            while let Some(u) = s.next_access_unit().unwrap() {
                got.push(u);
            }
            assert_eq!(got, whole, "chunk size {chunk}");
        }
    }

    #[test]
    fn h265_irap_and_first_slice_flag() {
        let mut s = Vec::new();
        s.extend_from_slice(&[0, 0, 0, 1, 0x40, 0x01, 0x0C]); // VPS
        s.extend_from_slice(&[0, 0, 0, 1, 0x42, 0x01, 0x01]); // SPS
        s.extend_from_slice(&[0, 0, 0, 1, 0x44, 0x01, 0xC1]); // PPS
        s.extend_from_slice(&[0, 0, 0, 1, 0x26, 0x01, 0xAF]); // IDR_W_RADL, first slice
        s.extend_from_slice(&[0, 0, 0, 1, 0x02, 0x01, 0xD0]); // TRAIL_R, first slice
        let units = split_access_units(VideoCodec::H265, &s).unwrap();
        assert_eq!(units.len(), 2);
        assert!(units[0].keyframe);
        assert!(!units[1].keyframe);
    }

    #[test]
    fn garbage_before_the_first_start_code_is_an_error() {
        let err = split_access_units(VideoCodec::H264, &[0, 7, 0, 0, 1, 0x65, 0x88]).unwrap_err();
        assert_eq!(err, MediaError::MissingStartCode { offset: 1 });
    }

    #[test]
    fn oversized_access_units_are_refused() {
        let mut s = AccessUnitSplitter::with_max_access_unit(VideoCodec::H264, 8);
        assert!(s.push(&[0; 64]).is_err());
    }
}
