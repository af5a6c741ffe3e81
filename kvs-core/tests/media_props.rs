//! Property tests of `kvs_core::media`: framing round trips, builder/parser agreement, and that
//! no parser panics on arbitrary bytes.

use kvs_core::media::aac::{AudioSpecificConfig, SAMPLE_RATES, build_asc};
use kvs_core::media::g711::{G711Law, WaveFormatEx, build_waveformatex};
use kvs_core::media::h264::{self, AvcConfig};
use kvs_core::media::h265::{self, HevcConfig};
use kvs_core::media::nal::{
    add_emulation_prevention, annexb_nalus, annexb_to_avcc, annexb_to_avcc_len, avcc_nalus,
    avcc_to_annexb, avcc_to_annexb_in_place, avcc_to_annexb_len, length_prefixed_nalus,
    remove_emulation_prevention,
};
use kvs_core::media::{VideoCodec, codec_private_from_keyframe};
use proptest::prelude::*;

/// A well-formed NAL unit: a non-zero header byte, an escaped random payload, and a final
/// non-zero byte (like rbsp_trailing_bits), so it never contains or ends in a start code.
fn nal_unit() -> impl Strategy<Value = Vec<u8>> {
    (1u8..=0x7F, proptest::collection::vec(any::<u8>(), 0..64)).prop_map(|(header, body)| {
        let mut rbsp = vec![header];
        rbsp.extend(body);
        rbsp.push(0x80);
        add_emulation_prevention(&rbsp)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn annexb_avcc_annexb_is_identity_on_nal_units(
        nals in proptest::collection::vec(nal_unit(), 0..12),
        long_codes in proptest::collection::vec(any::<bool>(), 12),
        leading_zeros in 0usize..4,
        trailing_zeros in 0usize..4,
    ) {
        let mut annexb = vec![0u8; leading_zeros];
        for (nal, long) in nals.iter().zip(&long_codes) {
            if *long { annexb.push(0); }
            annexb.extend_from_slice(&[0, 0, 1]);
            annexb.extend_from_slice(nal);
        }
        annexb.extend(std::iter::repeat_n(0u8, trailing_zeros));
        let split: Vec<&[u8]> = annexb_nalus(&annexb).unwrap().collect();
        let expect: Vec<&[u8]> = nals.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(&split, &expect);

        let avcc = annexb_to_avcc(&annexb).unwrap();
        prop_assert_eq!(avcc.len(), annexb_to_avcc_len(&annexb).unwrap());
        let from_avcc: Vec<&[u8]> = avcc_nalus(&avcc).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(&from_avcc, &expect);

        let back = avcc_to_annexb(&avcc, 4).unwrap();
        let mut in_place = avcc.clone();
        avcc_to_annexb_in_place(&mut in_place).unwrap();
        prop_assert_eq!(&back, &in_place);
        let resplit: Vec<&[u8]> = annexb_nalus(&back).unwrap().collect();
        prop_assert_eq!(&resplit, &expect);
        // Canonical 4-byte-start-code input survives the round trip byte for byte.
        prop_assert_eq!(annexb_to_avcc(&back).unwrap(), avcc);
    }

    #[test]
    fn emulation_prevention_round_trips(rbsp in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(3), any::<u8>()], 0..200)) {
        let escaped = add_emulation_prevention(&rbsp);
        prop_assert!(!escaped.windows(3).any(|w| w[0] == 0 && w[1] == 0 && w[2] <= 2));
        prop_assert_eq!(remove_emulation_prevention(&escaped), rbsp);
    }

    #[test]
    fn framing_never_panics(data in proptest::collection::vec(prop_oneof![Just(0u8), Just(1), any::<u8>()], 0..300)) {
        if let Ok(it) = annexb_nalus(&data) {
            for nal in it { prop_assert!(!nal.is_empty()); }
        }
        let _ = annexb_to_avcc(&data);
        for size in [1usize, 2, 3, 4] {
            if let Ok(out) = avcc_to_annexb(&data, size) {
                prop_assert_eq!(out.len(), avcc_to_annexb_len(&data, size).unwrap());
            }
            if let Ok(it) = length_prefixed_nalus(&data, size) {
                for r in it { let _ = r; }
            }
        }
        let mut copy = data.clone();
        if avcc_to_annexb_in_place(&mut copy).is_err() {
            prop_assert_eq!(copy, data.clone());
        }
        let _ = h264::parameter_sets(&data);
        let _ = h265::parameter_sets(&data);
        let _ = h264::avcc_from_annexb(&data);
        let _ = h265::hvcc_from_annexb(&data);
        let _ = codec_private_from_keyframe(VideoCodec::H264, &data);
        let _ = codec_private_from_keyframe(VideoCodec::H265, &data);
    }

    #[test]
    fn record_parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut sps264 = vec![0x67];
        sps264.extend_from_slice(&data);
        let _ = h264::Sps::parse(&sps264);
        let _ = h264::Sps::parse(&data);
        let mut sps265 = vec![0x42, 0x01];
        sps265.extend_from_slice(&data);
        let _ = h265::Sps::parse(&sps265);
        let _ = h265::Sps::parse(&data);
        let mut rec = vec![1u8];
        rec.extend_from_slice(&data);
        let _ = AvcConfig::parse(&rec);
        let _ = HevcConfig::parse(&rec);
        let _ = AvcConfig::parse(&data);
        let _ = HevcConfig::parse(&data);
        let _ = AudioSpecificConfig::parse(&data);
        let _ = WaveFormatEx::parse(&data);
    }

    #[test]
    fn mutated_real_sps_never_panics(pos in 0usize..64, value in any::<u8>(), cut in 1usize..64) {
        // A real x264 High-profile SPS (642×362) with one byte changed and a random cut.
        let mut sps = vec![
            0x67, 0x64, 0x00, 0x1E, 0xAC, 0xD9, 0x40, 0xA4, 0x2F, 0xE2, 0x24, 0xC0, 0x44, 0x00,
            0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xC8, 0x3C, 0x58, 0xB6, 0x58,
        ];
        let n = sps.len();
        if pos > 0 && pos < n { sps[pos] = value; }
        sps.truncate(cut.min(n));
        if let Ok(parsed) = h264::Sps::parse(&sps) {
            prop_assert!(parsed.width > 0 && parsed.height > 0);
            prop_assert!(parsed.width <= h264::MAX_DIMENSION && parsed.height <= h264::MAX_DIMENSION);
        }
    }

    #[test]
    fn waveformatex_round_trips(alaw in any::<bool>(), rate in 8_000u32..=192_000, channels in 1u16..=2) {
        let law = if alaw { G711Law::ALaw } else { G711Law::MuLaw };
        let b = build_waveformatex(law, rate, channels).unwrap();
        let w = WaveFormatEx::parse(&b).unwrap();
        prop_assert_eq!(w.g711_law(), Some(law));
        prop_assert_eq!((w.channels, w.sample_rate, w.block_align, w.bits_per_sample), (channels, rate, channels, 0));
        prop_assert_eq!(w.avg_bytes_per_sec, u32::from(channels) * rate / 8);
        prop_assert_eq!(w.cb_size, Some(0));
    }
}

#[test]
fn asc_build_parse_agree_for_every_valid_input() {
    for object_type in 1..=30u8 {
        for &rate in &SAMPLE_RATES {
            for channels in 1..=7u8 {
                let b = build_asc(object_type, rate, channels).unwrap();
                if object_type == 5 || object_type == 29 {
                    // Explicit SBR/PS: the 2-byte form is too short for the extension fields.
                    assert!(AudioSpecificConfig::parse(&b).is_err());
                    continue;
                }
                let p = AudioSpecificConfig::parse(&b).unwrap();
                assert_eq!(
                    (p.object_type, p.sample_rate, p.channel_configuration),
                    (object_type, rate, channels)
                );
            }
        }
    }
}
