//! G.711 A-law / µ-law audio: the WAVEFORMATEX the official producer writes as `A_MS/ACM`
//! CodecPrivate, and a parser for WAVEFORMATEX structures in general.

use super::MediaError;
use super::bits::ByteReader;

/// The WAVEFORMATEX format tag of A-law.
pub const WAVE_FORMAT_ALAW: u16 = 6;
/// The WAVEFORMATEX format tag of µ-law.
pub const WAVE_FORMAT_MULAW: u16 = 7;
/// The size of the WAVEFORMATEX the producer writes.
pub const WAVEFORMATEX_LEN: usize = 18;
/// Lowest sampling rate the producer accepts, in Hz.
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest sampling rate the producer accepts, in Hz.
pub const MAX_SAMPLE_RATE: u32 = 192_000;

/// The G.711 companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711Law {
    /// A-law (format tag 6; content type `audio/alaw`).
    ALaw,
    /// µ-law (format tag 7; content type `audio/mulaw`).
    MuLaw,
}

impl G711Law {
    /// The WAVEFORMATEX format tag.
    pub fn format_tag(self) -> u16 {
        match self {
            G711Law::ALaw => WAVE_FORMAT_ALAW,
            G711Law::MuLaw => WAVE_FORMAT_MULAW,
        }
    }

    /// The law of a format tag, if it is 6 or 7.
    pub fn from_format_tag(tag: u16) -> Option<G711Law> {
        match tag {
            WAVE_FORMAT_ALAW => Some(G711Law::ALaw),
            WAVE_FORMAT_MULAW => Some(G711Law::MuLaw),
            _ => None,
        }
    }

    /// The KVS content type (`audio/alaw` or `audio/mulaw`).
    pub fn content_type(self) -> &'static str {
        match self {
            G711Law::ALaw => "audio/alaw",
            G711Law::MuLaw => "audio/mulaw",
        }
    }
}

/// Build the 18-byte little-endian WAVEFORMATEX exactly as the producer does
/// (`mkvgenGeneratePcmCpd`): format tag, channels, sample rate, avgBytesPerSec, blockAlign =
/// channels, bitsPerSample 0, cbSize 0.
///
/// avgBytesPerSec is `channels × rate / 8`, reproducing the producer's quirk: the true byte rate
/// of 8-bit G.711 would be `channels × rate`, but players ignore the field and byte-compatible
/// output needs the producer's value.
///
/// # Errors
/// [`MediaError::OutOfRange`] when `channels` is not 1 or 2 or `sample_rate` is outside
/// 8–192 kHz.
pub fn build_waveformatex(
    law: G711Law,
    sample_rate: u32,
    channels: u16,
) -> Result<[u8; WAVEFORMATEX_LEN], MediaError> {
    if !(1..=2).contains(&channels) {
        return Err(MediaError::OutOfRange {
            what: "G.711 channel count",
            value: u64::from(channels),
        });
    }
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&sample_rate) {
        return Err(MediaError::OutOfRange {
            what: "G.711 sampling rate",
            value: u64::from(sample_rate),
        });
    }
    let avg_bytes_per_sec = u32::from(channels) * sample_rate / 8;
    let mut out = [0u8; WAVEFORMATEX_LEN];
    let fields = law
        .format_tag()
        .to_le_bytes()
        .into_iter()
        .chain(channels.to_le_bytes())
        .chain(sample_rate.to_le_bytes())
        .chain(avg_bytes_per_sec.to_le_bytes())
        .chain(channels.to_le_bytes());
    for (slot, b) in out.iter_mut().zip(fields) {
        *slot = b;
    }
    Ok(out)
}

/// A parsed WAVEFORMATEX (or the 16-byte PCMWAVEFORMAT without `cbSize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaveFormatEx<'a> {
    /// `wFormatTag` (1 PCM, 3 IEEE float, 6 A-law, 7 µ-law, 0xFFFE extensible, ...).
    pub format_tag: u16,
    /// `nChannels`.
    pub channels: u16,
    /// `nSamplesPerSec`.
    pub sample_rate: u32,
    /// `nAvgBytesPerSec`.
    pub avg_bytes_per_sec: u32,
    /// `nBlockAlign`.
    pub block_align: u16,
    /// `wBitsPerSample` (0 in what the KVS producer writes, so it emits no BitDepth element).
    pub bits_per_sample: u16,
    /// `cbSize`, when the structure is at least 18 bytes long.
    pub cb_size: Option<u16>,
    /// The `cbSize` extra bytes.
    pub extra: &'a [u8],
}

impl<'a> WaveFormatEx<'a> {
    /// Parse a little-endian WAVEFORMATEX.
    ///
    /// # Errors
    /// [`MediaError::TruncatedRecord`] when it is shorter than 16 bytes or `cbSize` claims more
    /// bytes than follow.
    pub fn parse(data: &'a [u8]) -> Result<WaveFormatEx<'a>, MediaError> {
        let mut r = ByteReader::new(data, "WAVEFORMATEX");
        let format_tag = u16::from_le_bytes(r.array()?);
        let channels = u16::from_le_bytes(r.array()?);
        let sample_rate = u32::from_le_bytes(r.array()?);
        let avg_bytes_per_sec = u32::from_le_bytes(r.array()?);
        let block_align = u16::from_le_bytes(r.array()?);
        let bits_per_sample = u16::from_le_bytes(r.array()?);
        let (cb_size, extra) = if r.rest().len() >= 2 {
            let cb = u16::from_le_bytes(r.array()?);
            (Some(cb), r.take(usize::from(cb))?)
        } else {
            (None, &[][..])
        };
        Ok(WaveFormatEx {
            format_tag,
            channels,
            sample_rate,
            avg_bytes_per_sec,
            block_align,
            bits_per_sample,
            cb_size,
            extra,
        })
    }

    /// The G.711 law, if the format tag is A-law or µ-law.
    pub fn g711_law(&self) -> Option<G711Law> {
        G711Law::from_format_tag(self.format_tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_layout() {
        let b = build_waveformatex(G711Law::ALaw, 8_000, 1).unwrap();
        assert_eq!(
            b,
            [
                6, 0, 1, 0, 0x40, 0x1F, 0, 0, 0xE8, 0x03, 0, 0, 1, 0, 0, 0, 0, 0
            ]
        );
        let b = build_waveformatex(G711Law::MuLaw, 16_000, 2).unwrap();
        assert_eq!(
            b,
            [
                7, 0, 2, 0, 0x80, 0x3E, 0, 0, 0xA0, 0x0F, 0, 0, 2, 0, 0, 0, 0, 0
            ]
        );
        let w = WaveFormatEx::parse(&b).unwrap();
        assert_eq!(
            (w.format_tag, w.channels, w.sample_rate, w.avg_bytes_per_sec),
            (7, 2, 16_000, 4_000)
        );
        assert_eq!(
            (w.block_align, w.bits_per_sample, w.cb_size, w.g711_law()),
            (2, 0, Some(0), Some(G711Law::MuLaw))
        );
        assert!(build_waveformatex(G711Law::ALaw, 7_999, 1).is_err());
        assert!(build_waveformatex(G711Law::ALaw, 192_001, 1).is_err());
        assert!(build_waveformatex(G711Law::ALaw, 8_000, 3).is_err());
        assert!(build_waveformatex(G711Law::ALaw, 8_000, 0).is_err());
    }

    #[test]
    fn parse_variants_and_errors() {
        // 16-byte PCMWAVEFORMAT: PCM 44.1 kHz stereo 16-bit.
        let pcm = [1, 0, 2, 0, 0x44, 0xAC, 0, 0, 0x10, 0xB1, 2, 0, 4, 0, 16, 0];
        let w = WaveFormatEx::parse(&pcm).unwrap();
        assert_eq!(
            (
                w.sample_rate,
                w.avg_bytes_per_sec,
                w.bits_per_sample,
                w.cb_size
            ),
            (44_100, 176_400, 16, None)
        );
        let mut ext = pcm.to_vec();
        ext.extend_from_slice(&[2, 0, 0xAA, 0xBB]);
        assert_eq!(WaveFormatEx::parse(&ext).unwrap().extra, &[0xAA, 0xBB]);
        ext[16] = 3;
        assert!(matches!(
            WaveFormatEx::parse(&ext),
            Err(MediaError::TruncatedRecord {
                offset: 18,
                needed: 3,
                available: 2,
                ..
            })
        ));
        assert!(matches!(
            WaveFormatEx::parse(&pcm[..15]),
            Err(MediaError::TruncatedRecord { offset: 14, .. })
        ));
    }
}
