//! Encode → decode round trips: what the producer encoder writes, the decoder gives back, frame
//! for frame (track, timestamp, key flag, payload bytes), for every codec KVS producers send and
//! for single- and multi-track streams. Real media comes from the bundled sample streams.

use bytes::Bytes;
use kvs_core::media::access_unit::split_access_units;
use kvs_core::media::adts::split_adts;
use kvs_core::media::g711::{G711Law, build_waveformatex};
use kvs_core::media::{VideoCodec, codec_private_from_keyframe, nal};
use kvs_core::mkv::reader::{Event, decode_all};
use kvs_core::mkv::writer::{StreamConfig, StreamWriter, TimecodeMode};
use kvs_core::mkv::{AudioSettings, Frame, TrackInfo, TrackType, VideoSettings, codec};
use proptest::prelude::*;

const START_NS: i64 = 1_767_225_600_000_000_000;
const MS: i64 = 1_000_000;

fn media(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/media")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// H.264 frames of the bundled sample, as (payload, keyframe), in AVCC or Annex-B form.
fn h264_frames(avcc: bool) -> (Vec<(Bytes, bool)>, TrackInfo) {
    let stream = media("sample.h264");
    let units = split_access_units(VideoCodec::H264, &stream).unwrap();
    let cpd = codec_private_from_keyframe(VideoCodec::H264, &units[0].data).unwrap();
    let mut track = TrackInfo::new(1, 1, TrackType::Video, codec::H264);
    track.video = Some(VideoSettings {
        width: cpd.width,
        height: cpd.height,
    });
    if avcc {
        track.codec_private = cpd.codec_private.into();
    }
    let frames = units
        .iter()
        .map(|u| {
            let data = if avcc {
                Bytes::from(nal::annexb_to_avcc(&u.data).unwrap())
            } else {
                u.data.clone()
            };
            (data, u.keyframe)
        })
        .collect();
    (frames, track)
}

fn aac_track(number: u64) -> (Vec<(Bytes, i64)>, TrackInfo) {
    let adts = Bytes::from(media("sample.aac"));
    let frames = split_adts(&adts).unwrap();
    let header = frames[0].0;
    let mut track = TrackInfo::new(number, number, TrackType::Audio, codec::AAC);
    track.codec_private = Bytes::copy_from_slice(&header.audio_specific_config().unwrap());
    track.audio = Some(AudioSettings {
        sampling_frequency: f64::from(header.sample_rate),
        channels: u32::from(header.channel_configuration),
        bit_depth: None,
    });
    let mut t = 0;
    let timed = frames
        .into_iter()
        .map(|(h, payload)| {
            let at = t;
            t += h.duration_ns() as i64;
            (payload, at)
        })
        .collect();
    (timed, track)
}

/// Encodes `frames` (already in timestamp order) and decodes the result.
fn roundtrip(tracks: Vec<TrackInfo>, frames: &[Frame], mode: TimecodeMode) -> Vec<Frame> {
    let mut config = StreamConfig::new([7; 16]);
    config.timecode_mode = mode;
    let mut writer = StreamWriter::new(config, tracks.clone()).unwrap();
    let mut out = Vec::new();
    writer.write_header(&mut out).unwrap();
    for frame in frames {
        assert!(
            writer
                .encode_frame(frame, &mut out)
                .unwrap()
                .written()
                .is_some()
        );
    }
    writer.finish(&mut out).unwrap();

    let mut decoded_tracks = Vec::new();
    let mut decoded = Vec::new();
    for event in decode_all(&out) {
        match event.unwrap() {
            Event::Track(t) => decoded_tracks.push(*t),
            Event::Frame(f) => decoded.push(f),
            _ => {}
        }
    }
    assert_eq!(decoded_tracks, tracks, "track entries round-trip");
    decoded
}

/// What the decoder must give back for `frames`: relative mode shifts timestamps to the first.
fn expected(frames: &[Frame], mode: TimecodeMode) -> Vec<Frame> {
    let origin = match mode {
        TimecodeMode::Absolute => 0,
        TimecodeMode::Relative => frames[0].timestamp_ns,
    };
    frames
        .iter()
        .map(|f| Frame {
            timestamp_ns: f.timestamp_ns - origin,
            ..f.clone()
        })
        .collect()
}

fn check(tracks: Vec<TrackInfo>, frames: Vec<Frame>) {
    for mode in [TimecodeMode::Absolute, TimecodeMode::Relative] {
        let got = roundtrip(tracks.clone(), &frames, mode);
        assert_eq!(got.len(), frames.len());
        for (i, (g, e)) in got.iter().zip(expected(&frames, mode)).enumerate() {
            assert_eq!(*g, e, "frame {i} in {mode:?} mode");
        }
    }
}

#[test]
fn h264_avcc_single_track() {
    let (frames, track) = h264_frames(true);
    let frames = frames
        .into_iter()
        .enumerate()
        .map(|(i, (d, key))| Frame::new(1, START_NS + i as i64 * 40 * MS, key, d))
        .collect();
    check(vec![track], frames);
}

#[test]
fn h264_annexb_single_track() {
    let (frames, track) = h264_frames(false);
    assert!(frames[0].0.starts_with(&[0, 0, 0, 1]));
    let frames = frames
        .into_iter()
        .enumerate()
        .map(|(i, (d, key))| Frame::new(1, START_NS + i as i64 * 40 * MS, key, d))
        .collect();
    check(vec![track], frames);
}

#[test]
fn h265_with_hvcc() {
    // Parameter sets and slices of a real x265 stream (320x240, Main), one IDR and P frames.
    let vps = [
        0x40, 0x01, 0x0C, 0x01, 0xFF, 0xFF, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x03, 0x00, 0x3C, 0x95, 0x94, 0x09,
    ];
    let sps = [
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3C, 0xA0, 0x0A, 0x08, 0x0F, 0x16, 0x59, 0x59, 0x52, 0x93, 0x0B, 0xC0, 0x5A,
        0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x32, 0x10,
    ];
    let pps = [0x44, 0x01, 0xC1, 0x72, 0xB4, 0x62, 0x40];
    let mut key = Vec::new();
    for nal in [
        &vps[..],
        &sps[..],
        &pps[..],
        &[0x26, 0x01, 0xAF, 0x1D, 0x80][..],
    ] {
        key.extend_from_slice(&[0, 0, 0, 1]);
        key.extend_from_slice(nal);
    }
    let cpd = codec_private_from_keyframe(VideoCodec::H265, &key).unwrap();
    assert_eq!((cpd.width, cpd.height), (320, 240));
    let mut track = TrackInfo::new(1, 1, TrackType::Video, codec::H265);
    track.codec_private = cpd.codec_private.into();
    track.video = Some(VideoSettings {
        width: 320,
        height: 240,
    });
    let mut frames = Vec::new();
    for i in 0..60i64 {
        let payload = if i % 30 == 0 {
            nal::annexb_to_avcc(&key).unwrap()
        } else {
            let mut p = vec![0, 0, 0, 4, 0x02, 0x01, 0xD0, i as u8];
            p.extend(std::iter::repeat_n(i as u8, 100 + i as usize));
            p
        };
        frames.push(Frame::new(1, START_NS + i * 33 * MS, i % 30 == 0, payload));
    }
    check(vec![track], frames);
}

#[test]
fn aac_single_track_and_h264_plus_aac() {
    let (audio, track) = aac_track(1);
    // Audio-only streams mark key frames themselves (every 10th frame opens a fragment).
    let frames: Vec<Frame> = audio
        .iter()
        .enumerate()
        .map(|(i, (d, t))| Frame::new(1, START_NS + t, i % 10 == 0, d.clone()))
        .collect();
    check(vec![track], frames);

    let (video, vtrack) = h264_frames(true);
    let (audio, atrack) = aac_track(2);
    let mut frames: Vec<Frame> = video
        .into_iter()
        .enumerate()
        .map(|(i, (d, key))| Frame::new(1, START_NS + i as i64 * 40 * MS, key, d))
        .chain(
            audio
                .into_iter()
                .map(|(d, t)| Frame::new(2, START_NS + t, false, d)),
        )
        .collect();
    frames.sort_by_key(|f| (f.timestamp_ns, f.track));
    // The stream must start on a video key frame: audio before it is not sent.
    check(vec![vtrack, atrack], frames);
}

#[test]
fn g711_and_a_data_track() {
    let mut alaw = TrackInfo::new(1, 11, TrackType::Audio, codec::MS_ACM);
    alaw.codec_private =
        Bytes::copy_from_slice(&build_waveformatex(G711Law::ALaw, 8000, 1).unwrap());
    alaw.audio = Some(AudioSettings {
        sampling_frequency: 8000.0,
        channels: 1,
        bit_depth: None,
    });
    // A depth/RADAR-like sensor track with an application codec id.
    let mut depth = TrackInfo::new(2, 22, TrackType::Complex, "S_KVS/DEPTH16");
    depth.name = Some("depth".into());
    let mut frames = Vec::new();
    for i in 0..250i64 {
        // 20 ms of 8 kHz G.711: 160 bytes.
        let samples: Vec<u8> = (0..160).map(|j| (i * 7 + j) as u8).collect();
        frames.push(Frame::new(1, START_NS + i * 20 * MS, i % 50 == 0, samples));
        if i % 5 == 0 {
            let depth_map: Vec<u8> = (0..640 * 2).map(|j| (j as i64 ^ i) as u8).collect();
            frames.push(Frame::new(2, START_NS + i * 20 * MS, false, depth_map));
        }
    }
    check(vec![alaw, depth], frames);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Arbitrary payloads and flags on three tracks survive the round trip.
    #[test]
    fn arbitrary_three_track_streams(
        steps in proptest::collection::vec((0u64..3, 0i64..40, any::<bool>(), any::<bool>(),
            proptest::collection::vec(any::<u8>(), 1..300)), 1..80)
    ) {
        let tracks = vec![
            TrackInfo::new(1, 1, TrackType::Video, codec::H264),
            TrackInfo::new(2, 2, TrackType::Audio, codec::AAC),
            TrackInfo::new(3, 3, TrackType::Complex, "S_KVS/RADAR"),
        ];
        let mut t = START_NS;
        let mut frames = Vec::new();
        for (i, (track, gap_ms, key, invisible, data)) in steps.into_iter().enumerate() {
            t += gap_ms * MS;
            let mut f = Frame::new(track + 1, t, key || i == 0, data);
            f.invisible = invisible;
            frames.push(f);
        }
        for mode in [TimecodeMode::Absolute, TimecodeMode::Relative] {
            let got = roundtrip(tracks.clone(), &frames, mode);
            prop_assert_eq!(got, expected(&frames, mode));
        }
    }
}
