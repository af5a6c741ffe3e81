//! AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), the `A_AAC` CodecPrivate.

use super::MediaError;
use super::bits::BitReader;

/// The sampling frequencies of `samplingFrequencyIndex` 0–12.
pub const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// AAC Main object type.
pub const AOT_AAC_MAIN: u8 = 1;
/// AAC LC (low complexity), what nearly every encoder produces.
pub const AOT_AAC_LC: u8 = 2;
/// SBR (HE-AAC v1) explicit signalling.
pub const AOT_SBR: u8 = 5;
/// PS (HE-AAC v2) explicit signalling.
pub const AOT_PS: u8 = 29;

/// The `samplingFrequencyIndex` of a standard rate, if it is one of [`SAMPLE_RATES`].
pub fn frequency_index(sample_rate: u32) -> Option<u8> {
    SAMPLE_RATES
        .iter()
        .position(|&r| r == sample_rate)
        .map(|i| i as u8)
}

/// Build the 2-byte AudioSpecificConfig the official producer writes
/// (`mkvgenGenerateAacCpd`): `objectType<<11 | freqIndex<<7 | channels<<3`, big-endian.
///
/// # Errors
/// [`MediaError::OutOfRange`] when `object_type` is not 1–30 (31 would need the escape form),
/// `sample_rate` is not one of the 13 standard rates, or `channel_configuration` is not 1–7 (the
/// range the producer accepts).
pub fn build_asc(
    object_type: u8,
    sample_rate: u32,
    channel_configuration: u8,
) -> Result<[u8; 2], MediaError> {
    if !(1..=30).contains(&object_type) {
        return Err(MediaError::OutOfRange {
            what: "AAC audio object type",
            value: u64::from(object_type),
        });
    }
    let idx = frequency_index(sample_rate).ok_or(MediaError::OutOfRange {
        what: "AAC sampling frequency",
        value: u64::from(sample_rate),
    })?;
    if !(1..=7).contains(&channel_configuration) {
        return Err(MediaError::OutOfRange {
            what: "AAC channel configuration",
            value: u64::from(channel_configuration),
        });
    }
    let v = (u16::from(object_type) << 11)
        | (u16::from(idx) << 7)
        | (u16::from(channel_configuration) << 3);
    Ok(v.to_be_bytes())
}

/// The leading fields of an AudioSpecificConfig.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AudioSpecificConfig {
    /// `audioObjectType` (2 = AAC LC), after the escape (32 + 6 bits for 31). For explicit SBR/PS
    /// signalling this is the underlying core object type, and [`Self::sbr_sample_rate`] is set.
    pub object_type: u8,
    /// `samplingFrequencyIndex`, or `None` when the rate is written out (index 15).
    pub frequency_index: Option<u8>,
    /// The core sampling rate in Hz.
    pub sample_rate: u32,
    /// `channelConfiguration` (0 = defined in a program config element).
    pub channel_configuration: u8,
    /// The SBR output rate for explicit SBR/PS signalling (object type 5 or 29).
    pub sbr_sample_rate: Option<u32>,
}

impl AudioSpecificConfig {
    /// The number of output channels `channel_configuration` stands for, or `None` for 0
    /// (program config element) and reserved values.
    pub fn channels(&self) -> Option<u8> {
        match self.channel_configuration {
            c @ 1..=6 => Some(c),
            7 | 12 | 14 => Some(8),
            11 => Some(7),
            13 => Some(24),
            _ => None,
        }
    }

    /// Parse the leading fields of an AudioSpecificConfig (object type with the 31 escape,
    /// frequency index with the 15 escape, channel configuration, and explicit SBR/PS signalling).
    /// Trailing fields (GASpecificConfig and extensions) are not read.
    ///
    /// # Errors
    /// [`MediaError::Truncated`] when the data ends inside a field, [`MediaError::OutOfRange`] for
    /// the reserved frequency indices 13 and 14 or an escaped rate of 0.
    pub fn parse(data: &[u8]) -> Result<AudioSpecificConfig, MediaError> {
        let mut r = BitReader::new(data, "AAC AudioSpecificConfig");
        let mut object_type = read_object_type(&mut r)?;
        let (frequency_index, sample_rate) = read_frequency(&mut r)?;
        let channel_configuration = r.u8(4)?;
        let mut sbr_sample_rate = None;
        if object_type == AOT_SBR || object_type == AOT_PS {
            sbr_sample_rate = Some(read_frequency(&mut r)?.1);
            object_type = read_object_type(&mut r)?;
        }
        Ok(AudioSpecificConfig {
            object_type,
            frequency_index,
            sample_rate,
            channel_configuration,
            sbr_sample_rate,
        })
    }
}

fn read_object_type(r: &mut BitReader<'_>) -> Result<u8, MediaError> {
    let t = r.u8(5)?;
    if t == 31 { Ok(32 + r.u8(6)?) } else { Ok(t) }
}

fn read_frequency(r: &mut BitReader<'_>) -> Result<(Option<u8>, u32), MediaError> {
    let idx = r.u8(4)?;
    if idx == 15 {
        let rate = r.bits(24)?;
        if rate == 0 {
            return Err(MediaError::OutOfRange {
                what: "AAC explicit sampling frequency",
                value: 0,
            });
        }
        return Ok((None, rate));
    }
    let rate = SAMPLE_RATES
        .get(usize::from(idx))
        .copied()
        .ok_or(MediaError::OutOfRange {
            what: "AAC samplingFrequencyIndex",
            value: u64::from(idx),
        })?;
    Ok((Some(idx), rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_known_configs() {
        // AAC LC 44.1 kHz stereo = 0x1210; 48 kHz stereo = 0x1190; 16 kHz mono = 0x1408.
        assert_eq!(build_asc(2, 44_100, 2).unwrap(), [0x12, 0x10]);
        assert_eq!(build_asc(2, 48_000, 2).unwrap(), [0x11, 0x90]);
        assert_eq!(build_asc(2, 16_000, 1).unwrap(), [0x14, 0x08]);
        assert_eq!(build_asc(1, 8_000, 1).unwrap(), [0x0D, 0x88]);
        assert!(build_asc(2, 44_000, 2).is_err());
        assert!(build_asc(0, 44_100, 2).is_err());
        assert!(build_asc(31, 44_100, 2).is_err());
        assert!(build_asc(2, 44_100, 0).is_err());
        assert!(build_asc(2, 44_100, 8).is_err());
    }

    #[test]
    fn parse_plain_and_escaped() {
        let asc = AudioSpecificConfig::parse(&[0x12, 0x10]).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.channel_configuration),
            (2, 44_100, 2)
        );
        assert_eq!((asc.frequency_index, asc.channels()), (Some(4), Some(2)));
        // Escape frequency: AOT 2, idx 15, rate 0x00_1F40 (8000), channels 1:
        // 00010 1111 000000000001111101000000 0001 → 17 80 0F A0 08
        let asc = AudioSpecificConfig::parse(&[0x17, 0x80, 0x0F, 0xA0, 0x08]).unwrap();
        assert_eq!(
            (
                asc.object_type,
                asc.frequency_index,
                asc.sample_rate,
                asc.channel_configuration
            ),
            (2, None, 8_000, 1)
        );
        // Escaped object type 31 + 6 bits (value 10 → AOT 42, USAC), idx 3, channels 2:
        // 11111 001010 0011 0010 → 1111 1001 0100 0110 010x
        let asc = AudioSpecificConfig::parse(&[0xF9, 0x46, 0x40]).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.channel_configuration),
            (42, 48_000, 2)
        );
        // Explicit HE-AAC: AOT 5, idx 6 (24 kHz), ch 2, ext idx 3 (48 kHz), AOT 2:
        // 00101 0110 0010 0011 00010 → 0010 1011 0001 0001 1000 10xx
        let asc = AudioSpecificConfig::parse(&[0x2B, 0x11, 0x88]).unwrap();
        assert_eq!(
            (asc.object_type, asc.sample_rate, asc.sbr_sample_rate),
            (2, 24_000, Some(48_000))
        );
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(
            AudioSpecificConfig::parse(&[0x12]),
            Err(MediaError::Truncated { .. })
        ));
        assert!(matches!(
            AudioSpecificConfig::parse(&[]),
            Err(MediaError::Truncated { bit_offset: 0, .. })
        ));
        // idx 13 is reserved: 00010 1101 → 0001 0110 1...
        assert!(matches!(
            AudioSpecificConfig::parse(&[0x16, 0x90]),
            Err(MediaError::OutOfRange { value: 13, .. })
        ));
        assert!(matches!(
            AudioSpecificConfig::parse(&[0x17, 0x80, 0x00, 0x00, 0x00, 0x80]),
            Err(MediaError::OutOfRange { .. })
        ));
    }
}
