//! ADTS, the framing of raw AAC streams (`.aac` files, `ffmpeg -f adts`): each frame carries a
//! 7- or 9-byte header with the sample rate and channel layout, which become the track's
//! AudioSpecificConfig; KVS wants the raw AAC payload without the header.

use bytes::Bytes;

use super::MediaError;
use super::aac::{SAMPLE_RATES, build_asc};

/// Samples per AAC frame (one raw data block).
pub const SAMPLES_PER_FRAME: u32 = 1024;

/// The fields of an ADTS header that matter for muxing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdtsHeader {
    /// Audio object type (ADTS profile + 1; 2 = AAC LC).
    pub object_type: u8,
    /// `sampling_frequency_index`.
    pub frequency_index: u8,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// `channel_configuration`.
    pub channel_configuration: u8,
    /// Header length: 7, or 9 with a CRC.
    pub header_len: usize,
    /// Frame length including the header.
    pub frame_len: usize,
    /// Raw data blocks in the frame (usually 1).
    pub raw_blocks: u8,
}

impl AdtsHeader {
    /// Parses the header at the start of `data`; `Ok(None)` when fewer than 7 bytes are there.
    ///
    /// # Errors
    /// [`MediaError::MissingStartCode`] without the 12-bit sync word, [`MediaError::OutOfRange`]
    /// for a reserved sample rate index or a frame length shorter than its header.
    pub fn parse(data: &[u8]) -> Result<Option<AdtsHeader>, MediaError> {
        let Some(h) = data.get(..7) else {
            return Ok(None);
        };
        if h[0] != 0xFF || h[1] & 0xF0 != 0xF0 {
            return Err(MediaError::MissingStartCode { offset: 0 });
        }
        let protection_absent = h[1] & 0x01 != 0;
        let object_type = (h[2] >> 6) + 1;
        let frequency_index = (h[2] >> 2) & 0x0F;
        let sample_rate =
            *SAMPLE_RATES
                .get(usize::from(frequency_index))
                .ok_or(MediaError::OutOfRange {
                    what: "ADTS sampling frequency index",
                    value: u64::from(frequency_index),
                })?;
        let channel_configuration = ((h[2] & 0x01) << 2) | (h[3] >> 6);
        let frame_len =
            (usize::from(h[3] & 0x03) << 11) | (usize::from(h[4]) << 3) | (usize::from(h[5]) >> 5);
        let header_len = if protection_absent { 7 } else { 9 };
        if frame_len <= header_len {
            return Err(MediaError::OutOfRange {
                what: "ADTS frame length",
                value: frame_len as u64,
            });
        }
        Ok(Some(AdtsHeader {
            object_type,
            frequency_index,
            sample_rate,
            channel_configuration,
            header_len,
            frame_len,
            raw_blocks: (h[6] & 0x03) + 1,
        }))
    }

    /// The 2-byte AudioSpecificConfig for this stream, as the KVS producer writes it.
    ///
    /// # Errors
    /// As [`build_asc`] (channel configuration 0 is not supported).
    pub fn audio_specific_config(&self) -> Result<[u8; 2], MediaError> {
        build_asc(
            self.object_type,
            self.sample_rate,
            self.channel_configuration,
        )
    }

    /// Duration of the frame in nanoseconds.
    pub fn duration_ns(&self) -> u64 {
        u64::from(SAMPLES_PER_FRAME) * u64::from(self.raw_blocks) * 1_000_000_000
            / u64::from(self.sample_rate)
    }
}

/// Splits a whole ADTS stream into `(header, raw AAC payload)` pairs; payloads are zero-copy
/// slices of `stream`. A truncated last frame is an error.
///
/// # Errors
/// As [`AdtsHeader::parse`], with the offset of the bad frame, or [`MediaError::TruncatedRecord`]
/// when the stream ends inside a frame.
pub fn split_adts(stream: &Bytes) -> Result<Vec<(AdtsHeader, Bytes)>, MediaError> {
    let mut frames = Vec::new();
    let mut offset = 0;
    while offset < stream.len() {
        let rest = stream.get(offset..).unwrap_or_default();
        let header = AdtsHeader::parse(rest)
            .map_err(|e| match e {
                MediaError::MissingStartCode { .. } => MediaError::MissingStartCode { offset },
                other => other,
            })?
            .ok_or(MediaError::TruncatedRecord {
                what: "ADTS header",
                offset,
                needed: 7,
                available: rest.len(),
            })?;
        if header.frame_len > rest.len() {
            return Err(MediaError::TruncatedRecord {
                what: "ADTS frame",
                offset,
                needed: header.frame_len,
                available: rest.len(),
            });
        }
        frames.push((
            header,
            stream.slice(offset + header.header_len..offset + header.frame_len),
        ));
        offset += header.frame_len;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        // AAC LC (profile 1), 16 kHz (index 8), mono, no CRC.
        let len = payload.len() + 7;
        let mut h = vec![
            0xFF,
            0xF1,
            (1 << 6) | (8 << 2),
            (1 << 6) | ((len >> 11) as u8 & 0x03),
            (len >> 3) as u8,
            ((len as u8 & 0x07) << 5) | 0x1F,
            0xFC,
        ];
        h.extend_from_slice(payload);
        h
    }

    #[test]
    fn splits_frames_and_builds_the_asc() {
        let mut s = frame(&[1, 2, 3]);
        s.extend(frame(&[4, 5]));
        let frames = split_adts(&Bytes::from(s)).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(&frames[0].1[..], &[1, 2, 3]);
        assert_eq!(&frames[1].1[..], &[4, 5]);
        let h = frames[0].0;
        assert_eq!(
            (h.object_type, h.sample_rate, h.channel_configuration),
            (2, 16_000, 1)
        );
        assert_eq!(h.audio_specific_config().unwrap(), [0x14, 0x08]);
        assert_eq!(h.duration_ns(), 64_000_000);
    }

    #[test]
    fn bad_input_is_a_typed_error() {
        let mut s = frame(&[1, 2, 3]);
        s.truncate(8);
        assert!(matches!(
            split_adts(&Bytes::from(s)),
            Err(MediaError::TruncatedRecord { offset: 0, .. })
        ));
        let mut s = frame(&[1]);
        s.extend_from_slice(&[0x12, 0x34, 0, 0, 0, 0, 0]);
        assert_eq!(
            split_adts(&Bytes::from(s)),
            Err(MediaError::MissingStartCode { offset: 8 })
        );
    }
}
