//! Byte-exact tests of the producer stream encoder and the GetMedia document writer against the
//! layout of the official producer (PIC mkvgen) and of real GetMedia captures.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use kvs_core::ebml::write::EncodeError;
use kvs_core::ebml::{Size, read_id, read_size};
use kvs_core::fragment::FragmentNumber;
use kvs_core::mkv::getmedia::{
    FragmentDocument, ProducerHeader, SEGMENT_UNKNOWN_SIZE_8, Trailer, kvs_tags_len,
    write_error_document, write_kvs_tags,
};
use kvs_core::mkv::writer::{
    ConfigError, EBML_HEADER, END_OF_FRAGMENT_LEN, Fragmentation, FrameOutcome, SkipReason,
    StreamConfig, StreamWriter, TimecodeMode, WriterError, tag_chain_len, write_tag_chain,
};
use kvs_core::mkv::{AudioSettings, Frame, TrackInfo, TrackType, VideoSettings, codec};

const UID: [u8; 16] = [0x55; 16];

fn video_track() -> TrackInfo {
    let mut t = TrackInfo::new(1, 1, TrackType::Video, codec::H264);
    t.name = Some("kvs_video_track".into());
    t.video = Some(VideoSettings {
        width: 1280,
        height: 720,
    });
    t.codec_private = Bytes::from_static(&[1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 0]);
    t
}

fn audio_track() -> TrackInfo {
    let mut t = TrackInfo::new(2, 2, TrackType::Audio, codec::AAC);
    t.name = Some("kvs_audio_track".into());
    t.audio = Some(AudioSettings {
        sampling_frequency: 48_000.0,
        channels: 2,
        bit_depth: None,
    });
    t.codec_private = Bytes::from_static(&[0x11, 0x90]);
    t
}

fn writer(config: StreamConfig) -> StreamWriter {
    StreamWriter::new(config, vec![video_track()]).unwrap()
}

fn ms(n: i64) -> i64 {
    n * 1_000_000
}

fn frame(ts_ms: i64, key: bool, len: usize) -> Frame {
    Frame::new(1, ms(ts_ms), key, vec![0xAB; len])
}

fn written(outcome: FrameOutcome) -> kvs_core::mkv::writer::BlockWritten {
    *outcome.written().expect("frame written")
}

#[test]
fn ebml_header_and_segment_are_the_producer_bytes() {
    let w = writer(StreamConfig::new(UID));
    let h = w.header();
    assert_eq!(EBML_HEADER.len(), 40);
    let want: [u8; 40] = [
        0x1A, 0x45, 0xDF, 0xA3, 0xA3, 0x42, 0x86, 0x81, 0x01, 0x42, 0xF7, 0x81, 0x01, 0x42, 0xF2,
        0x81, 0x04, 0x42, 0xF3, 0x81, 0x08, 0x42, 0x82, 0x88, b'm', b'a', b't', b'r', b'o', b's',
        b'k', b'a', 0x42, 0x87, 0x81, 0x02, 0x42, 0x85, 0x81, 0x02,
    ];
    assert_eq!(&h[..40], &want);
    assert_eq!(&h[40..45], &[0x18, 0x53, 0x80, 0x67, 0xFF]);
}

#[test]
fn info_is_109_bytes_with_size_4067() {
    let w = writer(StreamConfig::new(UID));
    let info = &w.header()[45..45 + 109];
    let mut want = vec![0x15, 0x49, 0xA9, 0x66, 0x40, 0x67, 0x73, 0xA4, 0x90];
    want.extend_from_slice(&UID);
    want.extend_from_slice(&[0x2A, 0xD7, 0xB1, 0x88, 0, 0, 0, 0, 0, 0x0F, 0x42, 0x40]);
    want.extend_from_slice(&[0x7B, 0xA9, 0x91]);
    want.extend_from_slice(b"Kinesis Video SDK");
    want.extend_from_slice(&[0x4D, 0x80, 0x97]);
    want.extend_from_slice(b"Kinesis Video SDK 1.1.0");
    want.extend_from_slice(&[0x57, 0x41, 0x97]);
    want.extend_from_slice(b"Kinesis Video SDK 1.1.0");
    assert_eq!(want.len(), 109);
    assert_eq!(info, &want[..]);
    // Tracks follow right after.
    assert_eq!(&w.header()[154..158], &[0x16, 0x54, 0xAE, 0x6B]);
}

#[test]
fn info_with_client_id_and_custom_scale() {
    let mut config = StreamConfig::new(UID);
    config.client_id = Some("cam-1".into());
    config.timecode_scale_ns = 100;
    let w = writer(config);
    let h = w.header();
    let info_len = 109 + 2 * " cam-1".len();
    assert_eq!(
        &h[45..51],
        &[0x15, 0x49, 0xA9, 0x66, 0x40, (info_len - 6) as u8]
    );
    assert_eq!(&h[45 + 29..45 + 37], &100u64.to_be_bytes());
    let text = String::from_utf8_lossy(&h[45..45 + info_len]);
    assert_eq!(text.matches("Kinesis Video SDK 1.1.0 cam-1").count(), 2);
}

#[test]
fn tracks_use_the_producer_widths() {
    let w = StreamWriter::new(StreamConfig::new(UID), vec![video_track(), audio_track()]).unwrap();
    let t = &w.header()[154..];
    // Tracks: 4-byte size; it spans the rest of the header.
    assert_eq!(t[4], 0x10);
    let tracks_len = u32::from_be_bytes([0, t[5], t[6], t[7]]) as usize;
    assert_eq!(tracks_len + 8, t.len());

    let mut video = vec![
        0xD7, 0x81, 0x01, 0x73, 0xC5, 0x88, 0, 0, 0, 0, 0, 0, 0, 1, 0x83, 0x81, 1,
    ];
    video.extend_from_slice(&[0x53, 0x6E, 0x8F]);
    video.extend_from_slice(b"kvs_video_track");
    video.extend_from_slice(&[0x86, 0x8F]);
    video.extend_from_slice(b"V_MPEG4/ISO/AVC");
    video.extend_from_slice(&[
        0xE0, 0x10, 0, 0, 0x08, 0xB0, 0x82, 0x05, 0x00, 0xBA, 0x82, 0x02, 0xD0,
    ]);
    video.extend_from_slice(&[0x63, 0xA2, 0x88, 1, 0x64, 0, 0x1F, 0xFF, 0xE1, 0, 0]);
    let mut entry = vec![0xAE, 0x10, 0, 0, video.len() as u8];
    entry.extend_from_slice(&video);
    assert_eq!(&t[8..8 + entry.len()], &entry[..]);

    let a = &t[8 + entry.len()..];
    let mut audio = vec![
        0xD7, 0x81, 0x02, 0x73, 0xC5, 0x88, 0, 0, 0, 0, 0, 0, 0, 2, 0x83, 0x81, 2,
    ];
    audio.extend_from_slice(&[0x53, 0x6E, 0x8F]);
    audio.extend_from_slice(b"kvs_audio_track");
    audio.extend_from_slice(&[0x86, 0x85]);
    audio.extend_from_slice(b"A_AAC");
    audio.extend_from_slice(&[0xE1, 0x10, 0, 0, 0x0D, 0xB5, 0x88]);
    audio.extend_from_slice(&48_000f64.to_be_bytes());
    audio.extend_from_slice(&[0x9F, 0x81, 0x02]);
    audio.extend_from_slice(&[0x63, 0xA2, 0x82, 0x11, 0x90]);
    let mut entry = vec![0xAE, 0x10, 0, 0, audio.len() as u8];
    entry.extend_from_slice(&audio);
    assert_eq!(a, &entry[..]);
}

#[test]
fn audio_bit_depth_widens_audio_to_0x11() {
    let mut t = TrackInfo::new(1, 7, TrackType::Audio, codec::MS_ACM);
    t.audio = Some(AudioSettings {
        sampling_frequency: 8_000.0,
        channels: 1,
        bit_depth: Some(16),
    });
    let w = StreamWriter::new(StreamConfig::new(UID), vec![t]).unwrap();
    let h = w.header();
    let pos = h
        .windows(5)
        .position(|x| x == [0xE1, 0x10, 0, 0, 0x11])
        .expect("Audio with size 0x11");
    assert_eq!(&h[pos + 5 + 13..pos + 5 + 17], &[0x62, 0x64, 0x81, 16]);
}

#[test]
fn cluster_and_simple_block_headers() {
    let mut w = writer(StreamConfig::new(UID));
    let mut out = Vec::new();
    let b = written(
        w.encode_frame_header(&frame(1_700_000_000_123, true, 1000), &mut out)
            .unwrap(),
    );
    assert_eq!(b.header_len, 18 + 13);
    let start = b.fragment.unwrap();
    assert_eq!(start.cluster_timecode, 1_700_000_000_123);
    assert_eq!(start.index, 0);
    let mut want = vec![0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xE7, 0x88];
    want.extend_from_slice(&1_700_000_000_123u64.to_be_bytes());
    want.extend_from_slice(&[0xA7, 0x81, 0x00]);
    want.extend_from_slice(&[0xA3, 0x01, 0, 0, 0, 0, 0, 0x03, 0xEC, 0x81, 0, 0, 0x80]);
    assert_eq!(out, want);

    out.clear();
    let mut f = frame(1_700_000_000_163, false, 10);
    f.invisible = true;
    f.discardable = true;
    let b = written(w.encode_frame_header(&f, &mut out).unwrap());
    assert_eq!(b.header_len, 13);
    assert_eq!(b.block_timecode, 40);
    assert!(b.fragment.is_none());
    assert_eq!(out, [0xA3, 0x01, 0, 0, 0, 0, 0, 0, 14, 0x81, 0, 40, 0x09]);
    assert_eq!(w.fragment_timecode(), Some(1_700_000_000_123));
}

#[test]
fn single_buffer_and_chunk_paths_match() {
    let frames = [
        frame(0, true, 50),
        frame(33, false, 20),
        frame(66, true, 30),
    ];
    let mut a = writer(StreamConfig::new(UID));
    let mut b = writer(StreamConfig::new(UID));
    let mut c = writer(StreamConfig::new(UID));
    let mut one = Vec::new();
    let mut zero = Vec::new();
    let mut chunks = VecDeque::new();
    let mut scratch = BytesMut::new();
    for f in &frames {
        a.encode_frame(f, &mut one).unwrap();
        b.encode_frame_header(f, &mut zero).unwrap();
        zero.extend_from_slice(&f.data);
        c.encode_frame_chunks(f, &mut scratch, &mut chunks).unwrap();
    }
    assert_eq!(one, zero);
    let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    assert_eq!(one, joined);
    assert_eq!(chunks.len(), 6);
    // The payload chunks are the frames' own buffers.
    assert_eq!(chunks[1].as_ptr(), frames[0].data.as_ptr());
}

#[test]
fn tag_chains_are_52_plus_name_plus_value() {
    for (n, v) in [
        ("a", ""),
        ("camera", "front door"),
        ("x", &"v".repeat(256)[..]),
    ] {
        let mut out = Vec::new();
        let len = write_tag_chain(&mut out, n, v).unwrap();
        assert_eq!(len, 52 + n.len() + v.len());
        assert_eq!(out.len(), len);
        assert_eq!(tag_chain_len(n, v), len);
        assert_eq!(&out[..5], &[0x12, 0x54, 0xC3, 0x67, 0x01]);
        assert_eq!(&out[12..15], &[0x73, 0x73, 0x01]);
        assert_eq!(&out[22..25], &[0x67, 0xC8, 0x01]);
        assert_eq!(&out[32..35], &[0x45, 0xA3, 0x01]);
        let tags_size = u64::from_be_bytes(out[4..12].try_into().unwrap()) & ((1 << 56) - 1);
        assert_eq!(tags_size as usize, len - 12);
    }
}

#[test]
fn end_of_fragment_is_84_bytes_and_eos_follows_the_rules() {
    let mut w = writer(StreamConfig::new(UID));
    let mut out = Vec::new();
    assert_eq!(w.end_fragment(&mut out), Err(WriterError::NoFragmentToEnd));
    w.encode_frame(&frame(0, true, 5), &mut out).unwrap();
    out.clear();
    assert_eq!(w.end_fragment(&mut out).unwrap(), 84);
    assert_eq!(END_OF_FRAGMENT_LEN, 84);
    let mut want = vec![0x12, 0x54, 0xC3, 0x67, 0x01, 0, 0, 0, 0, 0, 0, 72];
    want.extend_from_slice(&[0x73, 0x73, 0x01, 0, 0, 0, 0, 0, 0, 62]);
    want.extend_from_slice(&[0x67, 0xC8, 0x01, 0, 0, 0, 0, 0, 0, 52]);
    want.extend_from_slice(&[0x45, 0xA3, 0x01, 0, 0, 0, 0, 0, 0, 32]);
    want.extend_from_slice(b"AWS_KINESISVIDEO_END_OF_FRAGMENT");
    want.extend_from_slice(&[0x44, 0x87, 0x01, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(out, want);
    // Two in a row fail; non-key frames are skipped until the next key frame.
    assert_eq!(w.end_fragment(&mut out), Err(WriterError::NoFragmentToEnd));
    assert_eq!(
        w.encode_frame(&frame(40, false, 5), &mut out).unwrap(),
        FrameOutcome::Skipped(SkipReason::AwaitingKeyFrame)
    );
    // EOS is skipped right after an end of fragment...
    assert_eq!(w.finish(&mut out).unwrap(), 0);
    // ...and written otherwise.
    w.encode_frame(&frame(80, true, 5), &mut out).unwrap();
    out.clear();
    assert_eq!(w.finish(&mut out).unwrap(), 84);
    assert_eq!(&out[..], &want[..]);

    let mut d = StreamConfig::new(UID);
    d.fragmentation = Fragmentation::Duration(2_000_000_000);
    let mut w = writer(d);
    w.encode_frame(&frame(0, true, 5), &mut out).unwrap();
    assert_eq!(
        w.end_fragment(&mut out),
        Err(WriterError::EndOfFragmentNeedsKeyFrameMode)
    );
}

#[test]
fn fragmenting_by_key_frame_and_by_duration() {
    let mut out = Vec::new();
    let mut w = writer(StreamConfig::new(UID));
    assert_eq!(
        w.encode_frame(&frame(0, false, 5), &mut out).unwrap(),
        FrameOutcome::Skipped(SkipReason::AwaitingKeyFrame)
    );
    assert!(out.is_empty());
    let mut starts = Vec::new();
    for i in 0..10 {
        let o = w
            .encode_frame(&frame(i * 100, i % 3 == 0, 5), &mut out)
            .unwrap();
        if let Some(f) = written(o).fragment {
            starts.push(f.cluster_timecode);
        }
    }
    assert_eq!(starts, [0, 300, 600, 900]);

    let mut d = StreamConfig::new(UID);
    d.fragmentation = Fragmentation::Duration(1_000_000_000);
    let mut w = writer(d);
    let mut starts = Vec::new();
    for i in 0..50 {
        // Key frame every 400 ms: fragments open at the first key frame ≥ 1 s after the last.
        let o = w
            .encode_frame(&frame(i * 100, i % 4 == 0, 5), &mut out)
            .unwrap();
        if let Some(f) = written(o).fragment {
            starts.push(f.cluster_timecode);
        }
    }
    assert_eq!(starts, [0, 1200, 2400, 3600, 4800]);
}

#[test]
fn relative_timecodes_start_at_the_first_fragment() {
    let mut c = StreamConfig::new(UID);
    c.timecode_mode = TimecodeMode::Relative;
    let mut w = writer(c);
    let mut out = Vec::new();
    // A dropped non-key frame does not move the origin.
    w.encode_frame(&frame(5_000, false, 5), &mut out).unwrap();
    let f = written(w.encode_frame(&frame(10_000, true, 5), &mut out).unwrap());
    assert_eq!(f.fragment.unwrap().cluster_timecode, 0);
    let f = written(w.encode_frame(&frame(12_000, true, 5), &mut out).unwrap());
    assert_eq!(f.fragment.unwrap().cluster_timecode, 2_000);
    assert_eq!(w.stream_start_timecode(), Some(10_000));
    assert_eq!(TimecodeMode::Relative.header_value(), "RELATIVE");
}

#[test]
fn frame_errors_leave_state_unchanged() {
    let mut w = writer(StreamConfig::new(UID));
    let mut out = Vec::new();
    w.encode_frame(&frame(1_000, true, 5), &mut out).unwrap();
    let before = out.len();
    assert_eq!(
        w.encode_frame(&frame(999, false, 5), &mut out),
        Err(WriterError::TimestampBeforeFragment {
            frame_timecode: 999,
            cluster_timecode: 1_000
        })
    );
    assert_eq!(
        w.encode_frame(&frame(1_000 + 32_768, false, 5), &mut out),
        Err(WriterError::TimecodeDeltaTooLarge { delta: 32_768 })
    );
    let ok = written(
        w.encode_frame(&frame(1_000 + 32_767, false, 5), &mut out)
            .unwrap(),
    );
    assert_eq!(ok.block_timecode, 32_767);
    let end = out.len();
    assert_eq!(
        w.encode_frame(&Frame::new(9, 0, true, vec![1]), &mut out),
        Err(WriterError::UnknownTrack(9))
    );
    assert_eq!(
        w.encode_frame(&Frame::new(1, ms(40_000), true, Bytes::new()), &mut out),
        Err(WriterError::EmptyFrame(1))
    );
    assert_eq!(
        w.encode_frame(&Frame::new(1, -1, true, vec![1]), &mut out),
        Err(WriterError::NegativeTimestamp(-1))
    );
    assert_eq!(out.len(), end);
    assert!(end > before);
}

#[test]
fn config_errors() {
    let c = StreamConfig::new(UID);
    let many = vec![
        video_track(),
        audio_track(),
        TrackInfo::new(3, 3, TrackType::Video, "V_X"),
        TrackInfo::new(4, 4, TrackType::Video, "V_X"),
    ];
    assert_eq!(
        StreamWriter::new(c.clone(), many).unwrap_err(),
        ConfigError::TooManyTracks(4)
    );
    assert_eq!(
        StreamWriter::new(c.clone(), vec![]).unwrap_err(),
        ConfigError::NoTracks
    );
    let mut t = video_track();
    t.name = Some("n".repeat(33));
    assert!(matches!(
        StreamWriter::new(c.clone(), vec![t]),
        Err(ConfigError::TrackNameTooLong { len: 33, .. })
    ));
    let mut t = video_track();
    t.codec_id = "C".repeat(33);
    assert!(matches!(
        StreamWriter::new(c.clone(), vec![t]),
        Err(ConfigError::CodecIdTooLong { len: 33, .. })
    ));
    let mut t = video_track();
    t.uid = 0;
    assert_eq!(
        StreamWriter::new(c.clone(), vec![t]).unwrap_err(),
        ConfigError::ZeroTrackUid(1)
    );
    assert_eq!(
        StreamWriter::new(c.clone(), vec![video_track(), video_track()]).unwrap_err(),
        ConfigError::DuplicateTrackNumber(1)
    );
    let mut t = video_track();
    t.video = Some(VideoSettings {
        width: 70_000,
        height: 10,
    });
    assert!(matches!(
        StreamWriter::new(c.clone(), vec![t]),
        Err(ConfigError::VideoSizeTooLarge { .. })
    ));
    let mut bad = c.clone();
    bad.timecode_scale_ns = 99;
    assert_eq!(
        StreamWriter::new(bad, vec![video_track()]).unwrap_err(),
        ConfigError::InvalidTimecodeScale(99)
    );
    let mut bad = c.clone();
    bad.fragmentation = Fragmentation::Duration(31_000_000_000);
    assert!(matches!(
        StreamWriter::new(bad, vec![video_track()]),
        Err(ConfigError::InvalidFragmentDuration(_))
    ));
    let mut bad = c;
    bad.client_id = Some("c".repeat(65));
    assert_eq!(
        StreamWriter::new(bad, vec![video_track()]).unwrap_err(),
        ConfigError::ClientIdTooLong(65)
    );
}

#[test]
fn metadata_goes_before_the_next_cluster() {
    let mut w = writer(StreamConfig::new(UID));
    let mut out = Vec::new();
    assert_eq!(
        w.put_metadata("AWS_MINE", "x", false),
        Err(WriterError::ReservedMetadataName("AWS_MINE".into()))
    );
    assert_eq!(
        w.put_metadata("", "x", false),
        Err(WriterError::MetadataNameLength(0))
    );
    assert_eq!(
        w.put_metadata("n", &"v".repeat(257), false),
        Err(WriterError::MetadataValueTooLong(257))
    );
    w.put_metadata("site", "north", true).unwrap();
    w.put_metadata("event", "motion", false).unwrap();
    let b = written(w.encode_frame_header(&frame(0, true, 5), &mut out).unwrap());
    let tags = tag_chain_len("site", "north") + tag_chain_len("event", "motion");
    assert_eq!(b.header_len, tags + 18 + 13);
    assert_eq!(b.fragment.unwrap().metadata_tags, 2);
    assert_eq!(&out[tags..tags + 4], &[0x1F, 0x43, 0xB6, 0x75]);
    assert!(out.windows(5).any(|x| x == b"north"));

    // Only the persistent item is repeated; a later value replaces it; empty cancels it.
    out.clear();
    w.put_metadata("site", "south", true).unwrap();
    let b = written(
        w.encode_frame_header(&frame(100, true, 5), &mut out)
            .unwrap(),
    );
    assert_eq!(b.fragment.unwrap().metadata_tags, 1);
    assert!(out.windows(5).any(|x| x == b"south"));
    w.put_metadata("site", "", true).unwrap();
    out.clear();
    let b = written(
        w.encode_frame_header(&frame(200, true, 5), &mut out)
            .unwrap(),
    );
    assert_eq!(b.header_len, 31);

    for i in 0..10 {
        w.put_metadata(&format!("k{i}"), "v", i % 2 == 0).unwrap();
    }
    assert_eq!(
        w.put_metadata("k10", "v", false),
        Err(WriterError::TooManyMetadata)
    );
    assert_eq!(w.pending_metadata(), 10);
}

#[test]
fn buffer_too_small_writes_nothing_and_keeps_state() {
    let mut w = writer(StreamConfig::new(UID));
    let mut storage = [0u8; 20];
    let mut slice: &mut [u8] = &mut storage;
    let f = frame(0, true, 100);
    assert_eq!(
        w.encode_frame_header(&f, &mut slice),
        Err(WriterError::Encode(EncodeError::BufferTooSmall {
            needed: 31,
            available: 20
        }))
    );
    assert_eq!(w.fragment_count(), 0);
    let mut storage = [0u8; 64];
    let mut slice: &mut [u8] = &mut storage;
    assert_eq!(
        w.encode_frame(&f, &mut slice),
        Err(WriterError::Encode(EncodeError::BufferTooSmall {
            needed: 131,
            available: 64
        }))
    );
    assert_eq!(slice.len(), 64);
    let b = written(w.encode_frame_header(&f, &mut slice).unwrap());
    assert_eq!(b.header_len, 31);
    assert_eq!(slice.len(), 33);
    let mut tiny = [0u8; 10];
    let mut s: &mut [u8] = &mut tiny;
    assert!(matches!(
        w.write_header(&mut s),
        Err(EncodeError::BufferTooSmall { available: 10, .. })
    ));
    assert!(matches!(
        w.end_fragment(&mut s),
        Err(WriterError::Encode(EncodeError::BufferTooSmall {
            needed: 84,
            ..
        }))
    ));
}

#[test]
fn header_is_identical_for_reconnects() {
    let mut w = writer(StreamConfig::new(UID));
    let first = w.header().clone();
    let mut out = Vec::new();
    w.encode_frame(&frame(0, true, 5), &mut out).unwrap();
    let mut again = Vec::new();
    w.write_header(&mut again).unwrap();
    assert_eq!(first, again);
}

// ---------------------------------------------------------------------------------------------
// GetMedia documents
// ---------------------------------------------------------------------------------------------

fn element_at(buf: &[u8], pos: usize) -> (u32, Size, usize) {
    let (id, il) = read_id(&buf[pos..]).unwrap().unwrap();
    let (size, sl) = read_size(&buf[pos + il..]).unwrap().unwrap();
    (id, size, il + sl)
}

#[test]
fn producer_header_splits_zero_copy() {
    let w = writer(StreamConfig::new(UID));
    let p = ProducerHeader::parse(w.header().clone()).unwrap();
    assert_eq!(&p.ebml_header()[..], &EBML_HEADER);
    assert_eq!(&p.segment_children()[..], &w.header()[45..]);
    assert_eq!(p.segment_children().as_ptr(), w.header()[45..].as_ptr());
    assert!(ProducerHeader::parse(Bytes::from_static(&[0x1F, 0x43, 0xB6, 0x75, 0xFF])).is_err());
    assert!(ProducerHeader::parse(Bytes::from_static(&[0x1A, 0x45, 0xDF, 0xA3, 0x85, 0])).is_err());
}

#[test]
fn getmedia_document_layout() {
    let mut w = writer(StreamConfig::new(UID));
    let header = ProducerHeader::parse(w.header().clone()).unwrap();
    let mut cluster = Vec::new();
    w.encode_frame(&frame(1_511_852_108_513, true, 7), &mut cluster)
        .unwrap();
    let cluster = Bytes::from(cluster);
    let number = FragmentNumber::mint(1, 1_511_852_109_126, 77);
    let trailer = Trailer {
        millis_behind_now: 15_858,
        continuation_token: number.to_string(),
    };
    let doc = FragmentDocument {
        header: &header,
        fragment_number: number.as_str(),
        server_timestamp_ms: 1_511_852_109_126,
        producer_timestamp_ms: 1_511_852_108_513,
        cluster: &cluster,
        trailer: Some(&trailer),
    };
    let mut out = Vec::new();
    let len = doc.write(&mut out).unwrap();
    assert_eq!(len, out.len());
    assert_eq!(len, doc.len());
    assert_eq!(&out[..40], &EBML_HEADER);
    assert_eq!(&out[40..52], &SEGMENT_UNKNOWN_SIZE_8);
    let mut pos = 52 + header.segment_children().len();
    assert_eq!(&out[52..pos], &header.segment_children()[..]);
    // Leading Tags: 4-byte sizes everywhere, no Targets.
    assert_eq!(&out[pos..pos + 5], &[0x12, 0x54, 0xC3, 0x67, 0x10]);
    let (_, size, hl) = element_at(&out, pos);
    let tags_end = pos + hl + size.known().unwrap() as usize;
    assert_eq!(&out[pos + 8..pos + 11], &[0x73, 0x73, 0x10]);
    assert_eq!(&out[pos + 14..pos + 17], &[0x67, 0xC8, 0x10]);
    assert_eq!(&out[pos + 20..pos + 23], &[0x45, 0xA3, 0x10]);
    let text = String::from_utf8_lossy(&out[pos..tags_end]).into_owned();
    assert!(text.contains("AWS_KINESISVIDEO_FRAGMENT_NUMBER"));
    assert!(text.contains(number.as_str()));
    assert!(text.contains("AWS_KINESISVIDEO_SERVER_TIMESTAMP"));
    assert!(text.contains("1511852109.126"));
    assert!(text.contains("1511852108.513"));
    pos = tags_end;
    assert_eq!(&out[pos..pos + cluster.len()], &cluster[..]);
    pos += cluster.len();
    let trailing = String::from_utf8_lossy(&out[pos..]).into_owned();
    assert!(trailing.contains("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"));
    assert!(trailing.contains("15858"));
    assert!(trailing.contains("AWS_KINESISVIDEO_CONTINUATION_TOKEN"));
    assert_eq!(&out[pos..pos + 5], &[0x12, 0x54, 0xC3, 0x67, 0x10]);

    // Zero-copy chunks give the same bytes.
    let mut chunks = VecDeque::new();
    let mut scratch = BytesMut::new();
    doc.push_chunks(&mut scratch, &mut chunks).unwrap();
    let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    assert_eq!(joined, out);

    // Without trailer the document ends after the cluster.
    let cut = FragmentDocument {
        trailer: None,
        ..doc
    };
    let mut short = Vec::new();
    cut.write(&mut short).unwrap();
    assert_eq!(short.len(), pos);
    assert!(short.ends_with(&cluster));

    let mut small = [0u8; 100];
    let mut s: &mut [u8] = &mut small;
    assert!(matches!(
        doc.write(&mut s),
        Err(EncodeError::BufferTooSmall { available: 100, .. })
    ));
}

#[test]
fn timestamps_always_have_three_decimals() {
    let header = ProducerHeader::new(Bytes::from_static(&EBML_HEADER), Bytes::new());
    let cluster = Bytes::new();
    let doc = FragmentDocument {
        header: &header,
        fragment_number: "1",
        server_timestamp_ms: 5_000,
        producer_timestamp_ms: 0,
        cluster: &cluster,
        trailer: None,
    };
    let mut out = Vec::new();
    doc.write(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(text.contains("5.000"));
    assert!(text.contains("0.000"));
}

#[test]
fn kvs_tags_sizes_are_four_bytes() {
    let pairs = [("A", "bc")];
    let mut out = Vec::new();
    assert_eq!(
        write_kvs_tags(&mut out, &pairs).unwrap(),
        kvs_tags_len(&pairs)
    );
    assert_eq!(
        out,
        [
            0x12, 0x54, 0xC3, 0x67, 0x10, 0, 0, 27, // Tags
            0x73, 0x73, 0x10, 0, 0, 21, // Tag
            0x67, 0xC8, 0x10, 0, 0, 15, // SimpleTag
            0x45, 0xA3, 0x10, 0, 0, 1, b'A', // TagName
            0x44, 0x87, 0x10, 0, 0, 2, b'b', b'c', // TagString
        ]
    );
}

#[test]
fn error_document() {
    let mut out = Vec::new();
    let n = write_error_document(
        &mut out,
        &EBML_HEADER,
        "FRAGMENT_NOT_FOUND",
        3000,
        Some("123"),
    )
    .unwrap();
    assert_eq!(n, out.len());
    assert_eq!(&out[..40], &EBML_HEADER);
    assert_eq!(&out[40..52], &SEGMENT_UNKNOWN_SIZE_8);
    let (id, size, hl) = element_at(&out, 52);
    assert_eq!(id, 0x1254_C367);
    assert_eq!(52 + hl + size.known().unwrap() as usize, out.len());
    let text = String::from_utf8_lossy(&out[52..]).into_owned();
    let code = text.find("AWS_KINESISVIDEO_ERROR_CODE").unwrap();
    let eid = text.find("AWS_KINESISVIDEO_ERROR_ID").unwrap();
    let frag = text.find("AWS_KINESISVIDEO_FRAGMENT_NUMBER").unwrap();
    assert!(code < eid && eid < frag);
    assert!(text.contains("FRAGMENT_NOT_FOUND") && text.contains("3000"));
    let mut out2 = Vec::new();
    write_error_document(&mut out2, &EBML_HEADER, "INTERNAL", 5000, None).unwrap();
    assert!(!String::from_utf8_lossy(&out2).contains("FRAGMENT_NUMBER"));
}
