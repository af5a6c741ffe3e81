//! Tests of the streaming MKV decoder on hand-built streams: unknown sizes, GetMedia documents,
//! KVS tags, BlockGroups, lacing, CRC-32, unknown elements, truncation, corruption, limits, and
//! the every-split property.

use bytes::Bytes;
use kvs_core::ebml::id;
use kvs_core::fragment::tag;
use kvs_core::mkv::Frame;
use kvs_core::mkv::reader::{
    DecodeError, Event, FragmentSummary, MkvReader, ReaderLimits, Warning, decode_all,
};
use proptest::prelude::*;

// ---------------------------------------------------------------- a tiny byte builder

fn id_bytes(id: u32) -> Vec<u8> {
    let b = id.to_be_bytes();
    let skip = b.iter().position(|&x| x != 0).unwrap_or(3);
    b[skip..].to_vec()
}

/// A size vint of exactly `width` bytes.
fn size_w(n: u64, width: usize) -> Vec<u8> {
    let mut out = vec![0u8; width];
    let v = n | (1u64 << (7 * width));
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = (v >> (8 * (width - 1 - i))) as u8;
    }
    out
}

fn min_width(n: u64) -> usize {
    (1..=8).find(|&w| n < (1u64 << (7 * w)) - 1).unwrap()
}

fn el_w(id: u32, data: &[u8], width: usize) -> Vec<u8> {
    let mut out = id_bytes(id);
    out.extend(size_w(data.len() as u64, width));
    out.extend_from_slice(data);
    out
}

fn el(id: u32, data: &[u8]) -> Vec<u8> {
    el_w(id, data, min_width(data.len() as u64))
}

fn unknown(id: u32) -> Vec<u8> {
    let mut out = id_bytes(id);
    out.push(0xFF);
    out
}

fn uint(id: u32, v: u64) -> Vec<u8> {
    let b = v.to_be_bytes();
    let skip = b.iter().position(|&x| x != 0).unwrap_or(7);
    el(id, &b[skip..])
}

fn ebml_header() -> Vec<u8> {
    let mut d = Vec::new();
    d.extend(uint(id::EBML_VERSION, 1));
    d.extend(uint(id::EBML_READ_VERSION, 1));
    d.extend(uint(id::EBML_MAX_ID_LENGTH, 4));
    d.extend(uint(id::EBML_MAX_SIZE_LENGTH, 8));
    d.extend(el(id::DOC_TYPE, b"matroska"));
    d.extend(uint(id::DOC_TYPE_VERSION, 2));
    d.extend(uint(id::DOC_TYPE_READ_VERSION, 2));
    el(id::EBML, &d)
}

fn info(scale: u64) -> Vec<u8> {
    let mut d = el(id::SEGMENT_UID, &[0x55; 16]);
    d.extend(el_w(id::TIMECODE_SCALE, &scale.to_be_bytes(), 1));
    d.extend(el(id::MUXING_APP, b"test"));
    el_w(id::INFO, &d, 2)
}

fn track(number: u64, kind: u64, codec: &str, default_duration: Option<u64>) -> Vec<u8> {
    let mut d = uint(id::TRACK_NUMBER, number);
    d.extend(uint(id::TRACK_UID, number + 100));
    d.extend(uint(id::TRACK_TYPE, kind));
    d.extend(el(id::CODEC_ID, codec.as_bytes()));
    if let Some(dd) = default_duration {
        d.extend(uint(id::DEFAULT_DURATION, dd));
    }
    if kind == 1 {
        let mut v = uint(id::PIXEL_WIDTH, 640);
        v.extend(uint(id::PIXEL_HEIGHT, 360));
        d.extend(el_w(id::VIDEO, &v, 4));
        d.extend(el(id::CODEC_PRIVATE, &[1, 2, 3, 4]));
    } else {
        let mut a = el(id::SAMPLING_FREQUENCY, &48_000f64.to_be_bytes());
        a.extend(uint(id::CHANNELS, 2));
        d.extend(el_w(id::AUDIO, &a, 4));
    }
    el_w(id::TRACK_ENTRY, &d, 4)
}

fn tracks() -> Vec<u8> {
    let mut d = track(1, 1, "V_MPEG4/ISO/AVC", None);
    d.extend(track(2, 2, "A_AAC", Some(20_000_000)));
    el_w(id::TRACKS, &d, 4)
}

fn block_body(track: u8, rel: i16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut d = vec![0x80 | track];
    d.extend(rel.to_be_bytes());
    d.push(flags);
    d.extend_from_slice(payload);
    d
}

fn simple_block(track: u8, rel: i16, flags: u8, payload: &[u8]) -> Vec<u8> {
    el_w(id::SIMPLE_BLOCK, &block_body(track, rel, flags, payload), 8)
}

/// A Tags element with one Tag holding the pairs, every size `width` bytes wide.
fn tags_w(pairs: &[(&str, &str)], width: usize) -> Vec<u8> {
    let mut t = Vec::new();
    for (n, v) in pairs {
        let mut s = el_w(id::TAG_NAME, n.as_bytes(), width);
        s.extend(el_w(id::TAG_STRING, v.as_bytes(), width));
        t.extend(el_w(id::SIMPLE_TAG, &s, width));
    }
    el_w(id::TAGS, &el_w(id::TAG, &t, width), width)
}

fn cluster_unknown(tc: u64, body: &[u8]) -> Vec<u8> {
    let mut c = unknown(id::CLUSTER);
    c.extend(el_w(id::CLUSTER_TIMECODE, &tc.to_be_bytes(), 1));
    c.extend([0xA7, 0x81, 0x00]);
    c.extend_from_slice(body);
    c
}

fn segment_unknown(body: &[u8]) -> Vec<u8> {
    let mut s = id_bytes(id::SEGMENT);
    s.extend([0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
    s.extend_from_slice(body);
    s
}

fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

/// A PutMedia-style producer stream: 8-byte sizes, unknown-size Segment and Clusters, tags
/// between clusters.
fn producer_stream() -> Vec<u8> {
    let mut body = info(1_000_000);
    body.extend(tracks());
    body.extend(tags_w(&[("camera", "front door")], 8));
    let mut c1 = simple_block(1, 0, 0x80, &payload(1, 100));
    c1.extend(simple_block(2, 0, 0x80, &payload(2, 10)));
    c1.extend(simple_block(1, 33, 0x00, &payload(3, 50)));
    c1.extend(simple_block(2, 20, 0x80, &payload(4, 10)));
    body.extend(cluster_unknown(1_000, &c1));
    body.extend(tags_w(&[(tag::END_OF_FRAGMENT, "")], 8));
    body.extend(tags_w(&[("camera", "back door")], 8));
    let c2 = simple_block(1, 0, 0x80, &payload(5, 70));
    body.extend(cluster_unknown(3_000, &c2));
    let mut out = ebml_header();
    out.extend(segment_unknown(&body));
    out
}

/// One GetMedia document: header, KVS leading tags, cluster, optional KVS trailing tags.
fn getmedia_document(number: &str, server: &str, tc: u64, trailing: Option<&str>) -> Vec<u8> {
    let mut body = info(1_000_000);
    body.extend(tracks());
    body.extend(tags_w(
        &[
            (tag::FRAGMENT_NUMBER, number),
            (tag::SERVER_TIMESTAMP, server),
            (tag::PRODUCER_TIMESTAMP, "1511852108.513"),
        ],
        4,
    ));
    let mut c = simple_block(1, 0, 0x80, &payload(7, 300));
    c.extend(simple_block(2, 0, 0x80, &payload(8, 20)));
    c.extend(simple_block(1, 40, 0x00, &payload(9, 120)));
    body.extend(cluster_unknown(tc, &c));
    if let Some(behind) = trailing {
        body.extend(tags_w(
            &[
                (tag::MILLIS_BEHIND_NOW, behind),
                (tag::CONTINUATION_TOKEN, number),
            ],
            4,
        ));
    }
    let mut out = ebml_header();
    out.extend(segment_unknown(&body));
    out
}

fn error_document(code: &str, error_id: &str) -> Vec<u8> {
    let body = tags_w(&[(tag::ERROR_CODE, code), (tag::ERROR_ID, error_id)], 4);
    let mut out = ebml_header();
    out.extend(segment_unknown(&body));
    out
}

// ---------------------------------------------------------------- helpers

fn ok_events(events: &[Result<Event, DecodeError>]) -> Vec<&Event> {
    events.iter().filter_map(|e| e.as_ref().ok()).collect()
}

fn frames(events: &[Result<Event, DecodeError>]) -> Vec<&Frame> {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(Event::Frame(f)) => Some(f),
            _ => None,
        })
        .collect()
}

fn fragments(events: &[Result<Event, DecodeError>]) -> Vec<&FragmentSummary> {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(Event::FragmentEnd(f)) => Some(&**f),
            _ => None,
        })
        .collect()
}

fn errors(events: &[Result<Event, DecodeError>]) -> Vec<&DecodeError> {
    events.iter().filter_map(|e| e.as_ref().err()).collect()
}

fn warnings(events: &[Result<Event, DecodeError>]) -> Vec<&Warning> {
    events
        .iter()
        .filter_map(|e| match e {
            Ok(Event::Warning(w)) => Some(w),
            _ => None,
        })
        .collect()
}

/// Decodes `data` pushed in pieces cut at `cuts` (sorted positions), draining after each push.
fn decode_split(data: &[u8], cuts: &[usize]) -> Vec<Result<Event, DecodeError>> {
    let all = Bytes::copy_from_slice(data);
    let mut reader = MkvReader::new();
    let mut out = Vec::new();
    let mut last = 0;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let cut = cut.clamp(last, data.len());
        reader.push(all.slice(last..cut)).unwrap();
        out.extend(reader.events());
        last = cut;
    }
    reader.finish();
    out.extend(reader.events());
    out
}

// ---------------------------------------------------------------- tests

#[test]
fn producer_stream_with_unknown_sizes_and_tags_between_clusters() {
    let data = producer_stream();
    let events = decode_all(&data);
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    assert!(warnings(&events).is_empty(), "{:?}", warnings(&events));
    let ok = ok_events(&events);
    assert!(
        matches!(ok[0], Event::EbmlHeader(h) if h.doc_type == "matroska" && h.doc_type_version == 2)
    );
    assert!(matches!(ok[1], Event::SegmentStart { size: None, .. }));
    assert!(matches!(ok[2], Event::Info(i) if i.timecode_scale == 1_000_000));
    let tracks: Vec<_> = ok
        .iter()
        .filter_map(|e| match e {
            Event::Track(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(tracks.len(), 2);
    assert_eq!(tracks[0].codec_id, "V_MPEG4/ISO/AVC");
    assert_eq!(tracks[0].uid, 101);
    assert_eq!(tracks[0].video.unwrap().width, 640);
    assert_eq!(&tracks[0].codec_private[..], &[1, 2, 3, 4]);
    assert_eq!(tracks[1].audio.unwrap().sampling_frequency, 48_000.0);
    assert_eq!(tracks[1].audio.unwrap().channels, 2);
    assert_eq!(tracks[1].default_duration_ns, Some(20_000_000));

    let f = frames(&events);
    assert_eq!(f.len(), 5);
    assert_eq!(
        f.iter().map(|f| f.timestamp_ns).collect::<Vec<_>>(),
        vec![
            1_000_000_000,
            1_000_000_000,
            1_033_000_000,
            1_020_000_000,
            3_000_000_000
        ]
    );
    assert_eq!(f[0].data, Bytes::from(payload(1, 100)));
    assert!(f[0].keyframe && !f[2].keyframe);
    assert_eq!(f[1].duration_ns, Some(20_000_000), "audio DefaultDuration");
    assert_eq!(f[0].duration_ns, None);

    let frags = fragments(&events);
    assert_eq!(frags.len(), 2);
    assert_eq!(frags[0].cluster_timecode, Some(1_000));
    assert_eq!(frags[0].frames, 4);
    assert_eq!(frags[0].keyframes, 3);
    assert_eq!(frags[0].frames_per_track, vec![(1, 2), (2, 2)]);
    assert_eq!(frags[0].tags, vec![("camera".into(), "front door".into())]);
    assert_eq!(frags[1].tags, vec![("camera".into(), "back door".into())]);
    assert_eq!(frags[1].frames, 1);
    assert!(!frags[0].truncated && !frags[1].truncated);
    // Cluster bytes: from its ID to the next level-1 element.
    let c1_start = frags[0].offset as usize;
    assert_eq!(&data[c1_start..c1_start + 4], &[0x1F, 0x43, 0xB6, 0x75]);
    // 5-byte header, 10-byte Timestamp, 3-byte Position, 4 blocks of 13 header bytes + 170 payload.
    assert_eq!(frags[0].bytes, 5 + 10 + 3 + 4 * 13 + 170);
    // The last events close the fragment then the segment.
    assert!(matches!(ok[ok.len() - 1], Event::SegmentEnd { .. }));
}

#[test]
fn getmedia_documents_with_leading_and_trailing_kvs_tags() {
    let n1 = "91343852333181432397633747755484426469404434412";
    let n2 = "91343852333181432402585470610625947624217640220";
    let mut data = getmedia_document(n1, "1511852109.126", 0, Some("15858"));
    data.extend(getmedia_document(n2, "1511852111.126", 2_000, None));
    data.extend(error_document("FRAGMENT_NOT_FOUND", "4000"));
    let events = decode_all(&data);
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    let ok = ok_events(&events);
    assert_eq!(
        ok.iter()
            .filter(|e| matches!(e, Event::EbmlHeader(_)))
            .count(),
        3
    );
    let frags = fragments(&events);
    assert_eq!(frags.len(), 3);
    let m = &frags[0].metadata;
    assert_eq!(m.fragment_number.as_deref(), Some(n1));
    assert_eq!(m.server_timestamp_ms, Some(1_511_852_109_126));
    assert_eq!(m.producer_timestamp_ms, Some(1_511_852_108_513));
    assert_eq!(m.millis_behind_now, Some(15_858));
    assert_eq!(m.continuation_token.as_deref(), Some(n1));
    assert!(m.is_complete());
    assert_eq!(frags[0].document, 0);
    assert_eq!(frags[0].frames, 3);
    assert!(frags[0].tags.is_empty());
    // The second response document lacks its trailing tags: delivered, but not complete.
    assert_eq!(frags[1].metadata.fragment_number.as_deref(), Some(n2));
    assert_eq!(frags[1].cluster_timecode, Some(2_000));
    assert!(!frags[1].metadata.is_complete());
    assert_eq!(frags[1].document, 1);
    // The in-band error document is a fragment without a cluster.
    assert!(!frags[2].has_cluster);
    assert_eq!(
        frags[2].metadata.error_code.as_deref(),
        Some("FRAGMENT_NOT_FOUND")
    );
    assert_eq!(frags[2].metadata.error_id, Some(4000));
    assert_eq!(frags[2].index, 2);
    // Frame timestamps restart per document from their cluster timecode.
    let f = frames(&events);
    assert_eq!(f.len(), 6);
    assert_eq!(f[3].timestamp_ns, 2_000_000_000);
    // The first fragment ends as soon as its trailing tags are complete, before the next header.
    let end = ok
        .iter()
        .position(|e| matches!(e, Event::FragmentEnd(_)))
        .unwrap();
    assert!(matches!(ok[end - 1], Event::Tags(_)));
    assert!(matches!(ok[end + 1], Event::SegmentEnd { .. }));
    assert!(matches!(ok[end + 2], Event::EbmlHeader(_)));
}

#[test]
fn frames_are_delivered_as_soon_as_their_block_is_complete() {
    let mut body = info(1_000_000);
    body.extend(tracks());
    body.extend(cluster_unknown(5, &simple_block(1, 0, 0x80, b"live")));
    let mut data = ebml_header();
    data.extend(segment_unknown(&body));
    let mut reader = MkvReader::new();
    reader.push(data).unwrap();
    let events: Vec<_> = reader.events().collect();
    let f = frames(&events);
    assert_eq!(f.len(), 1, "the frame is out before the cluster ends");
    assert_eq!(&f[0].data[..], b"live");
    assert!(fragments(&events).is_empty());
    assert_eq!(reader.buffered(), 0);
}

#[test]
fn payloads_are_slices_of_the_pushed_bytes() {
    let data = Bytes::from(producer_stream());
    let range = data.as_ptr() as usize..data.as_ptr() as usize + data.len();
    let mut reader = MkvReader::new();
    reader.push(data.clone()).unwrap();
    reader.finish();
    let events: Vec<_> = reader.events().collect();
    for f in frames(&events) {
        assert!(
            range.contains(&(f.data.as_ptr() as usize)),
            "payload was copied"
        );
    }
}

#[test]
fn block_groups_and_all_three_lacing_modes() {
    let mut c = Vec::new();
    // BlockGroup: no ReferenceBlock -> key frame, BlockDuration 40 ticks.
    let mut g = el(id::BLOCK, &block_body(1, 0, 0, b"key"));
    g.extend(uint(id::BLOCK_DURATION, 40));
    c.extend(el(id::BLOCK_GROUP, &g));
    // BlockGroup with ReferenceBlock -> not a key frame.
    let mut g = el(id::BLOCK, &block_body(1, 40, 0, b"delta"));
    g.extend(el(id::REFERENCE_BLOCK, &[0xD8]));
    c.extend(el(id::BLOCK_GROUP, &g));
    // Xiph lacing, 3 frames (sizes 2, 3, rest 4), track 2 with DefaultDuration 20 ms.
    let mut x = vec![2u8, 2, 3];
    x.extend(b"aabbbcccc");
    c.extend(simple_block(2, 100, 0x80 | 0x02, &x));
    // Fixed-size lacing, 2 frames of 2 bytes, inside a BlockGroup with BlockDuration 30.
    let mut fx = block_body(2, 200, 0x04, &[1]);
    fx.extend(b"ddee");
    let mut g = el(id::BLOCK, &fx);
    g.extend(uint(id::BLOCK_DURATION, 30));
    c.extend(el(id::BLOCK_GROUP, &g));
    // EBML lacing, 3 frames: 3, 3 + (-1) = 2, rest 1.
    let mut e = vec![2u8, 0x83, 0xBE];
    e.extend(b"fffggh");
    c.extend(simple_block(2, 300, 0x80 | 0x06, &e));
    let mut body = info(1_000_000);
    body.extend(tracks());
    body.extend(cluster_unknown(0, &c));
    let mut data = ebml_header();
    data.extend(segment_unknown(&body));

    let events = decode_all(&data);
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    let f = frames(&events);
    let got: Vec<(&[u8], i64, Option<u64>, bool)> = f
        .iter()
        .map(|f| {
            (
                &f.data[..],
                f.timestamp_ns / 1_000_000,
                f.duration_ns,
                f.keyframe,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (&b"key"[..], 0, Some(40_000_000), true),
            (&b"delta"[..], 40, None, false),
            (&b"aa"[..], 100, Some(20_000_000), true),
            (&b"bbb"[..], 120, Some(20_000_000), true),
            (&b"cccc"[..], 140, Some(20_000_000), true),
            (&b"dd"[..], 200, Some(15_000_000), true),
            (&b"ee"[..], 215, Some(15_000_000), true),
            (&b"fff"[..], 300, Some(20_000_000), true),
            (&b"gg"[..], 320, Some(20_000_000), true),
            (&b"h"[..], 340, Some(20_000_000), true),
        ]
    );
    let frags = fragments(&events);
    assert_eq!(frags[0].frames, 10);
    assert_eq!(frags[0].frames_per_track, vec![(1, 2), (2, 8)]);
}

#[test]
fn crc32_and_void_are_handled() {
    // Info with a correct leading CRC-32, then one with a wrong CRC-32.
    let inner = uint(id::TIMECODE_SCALE, 1_000_000);
    let crc = crc32fast(&inner);
    let mut good = el(id::CRC32, &crc.to_le_bytes());
    good.extend(&inner);
    let mut bad = el(id::CRC32, &(crc ^ 1).to_le_bytes());
    bad.extend(&inner);
    let mut body = el(id::INFO, &good);
    body.extend(el(id::VOID, &[0; 10]));
    body.extend(tracks());
    let mut c = el(id::VOID, &[0; 3]);
    c.extend(simple_block(1, 0, 0x80, b"x"));
    body.extend(cluster_unknown(0, &c));
    body.extend(el(id::INFO, &bad));
    let mut data = ebml_header();
    data.extend(segment_unknown(&body));
    let events = decode_all(&data);
    assert!(errors(&events).is_empty());
    let w = warnings(&events);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(matches!(
        w[0],
        Warning::CrcMismatch {
            parent: id::INFO,
            ..
        }
    ));
    assert_eq!(frames(&events).len(), 1);
}

/// Reference CRC-32 (bitwise) to check the decoder's table-driven one against.
fn crc32fast(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn unknown_elements_are_skipped_including_unknown_sized_ones() {
    let mut body = info(1_000_000);
    body.extend(el(0x4DBB, &[1, 2, 3])); // Seek-like unknown at level 1
    body.extend(tracks());
    body.extend(el(id::CUES, &[0xAA; 50]));
    let mut c = el(0x7E5B, &[0; 4]); // unknown element inside the cluster
    c.extend(simple_block(1, 0, 0x80, b"one"));
    body.extend(cluster_unknown(0, &c));
    // An unknown element of unknown size at level 1, closed by the next Cluster.
    body.extend(unknown(0x1A_1B_1C_1D & 0x1FFF_FFFF | 0x1000_0000));
    body.extend(el(0xEE, &[1]));
    body.extend(cluster_unknown(10, &simple_block(1, 0, 0x80, b"two")));
    let mut data = ebml_header();
    data.extend(segment_unknown(&body));
    let events = decode_all(&data);
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    let f = frames(&events);
    assert_eq!(f.len(), 2);
    assert_eq!(&f[1].data[..], b"two");
    assert_eq!(f[1].timestamp_ns, 10_000_000);
}

#[test]
fn large_skipped_elements_are_not_buffered() {
    let limits = ReaderLimits {
        max_element_size: 1 << 20,
        ..ReaderLimits::default()
    };
    let mut reader = MkvReader::with_limits(limits);
    let mut head = ebml_header();
    let mut seg = info(1_000_000);
    seg.extend(tracks());
    let cues_len = 10u64 << 20;
    seg.extend(id_bytes(id::CUES));
    seg.extend(size_w(cues_len, 8));
    head.extend(segment_unknown(&seg));
    reader.push(head).unwrap();
    let mut events: Vec<_> = reader.events().collect();
    let chunk = Bytes::from(vec![0u8; 64 << 10]);
    for _ in 0..(cues_len / chunk.len() as u64) {
        reader.push(chunk.clone()).unwrap();
        events.extend(reader.events());
        assert_eq!(reader.buffered(), 0, "skipped bytes are dropped at once");
    }
    reader
        .push(cluster_unknown(1, &simple_block(1, 0, 0x80, b"after")))
        .unwrap();
    reader.finish();
    events.extend(reader.events());
    assert!(errors(&events).is_empty(), "{:?}", errors(&events));
    assert_eq!(&frames(&events)[0].data[..], b"after");
}

#[test]
fn truncated_input_delivers_complete_fragments_and_reports_the_partial_one() {
    let data = producer_stream();
    // Cut inside the second cluster's only block.
    let cut = data.len() - 20;
    let events = decode_all(&data[..cut]);
    let frags = fragments(&events);
    assert_eq!(frags.len(), 2);
    assert!(!frags[0].truncated);
    assert_eq!(frags[0].frames, 4);
    assert!(frags[1].truncated);
    assert_eq!(frags[1].frames, 0);
    let errs = errors(&events);
    assert_eq!(errs.len(), 1);
    match errs[0] {
        DecodeError::Truncated {
            offset,
            buffered,
            missing,
        } => {
            assert_eq!(*offset as usize + *buffered as usize, cut);
            assert_eq!(*missing, 20);
        }
        other => panic!("unexpected {other:?}"),
    }
    // A cut between elements of an unknown-size cluster is a clean end.
    let clean = decode_all(&data);
    assert!(errors(&clean).is_empty());
}

#[test]
fn corrupt_input_is_reported_with_its_offset_then_resynchronised() {
    let mut data = getmedia_document("1", "1.000", 0, Some("5"));
    let garbage_at = data.len();
    data.extend([0x00, 0x00, 0x13, 0x37, 0x00]);
    data.extend(getmedia_document("2", "3.000", 2_000, Some("5")));
    // Corrupt a cluster in the middle of the second document: replace a block's ID with 0x00.
    let events = decode_all(&data);
    let errs = errors(&events);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        matches!(errs[0], DecodeError::Vint { offset, .. } if *offset as usize == garbage_at),
        "{errs:?}"
    );
    assert!(warnings(&events).iter().any(|w| matches!(
        w,
        Warning::Skipped { offset, bytes: 5 } if *offset as usize == garbage_at
    )));
    assert_eq!(frames(&events).len(), 6);
    assert_eq!(fragments(&events).len(), 2);

    // Garbage inside a cluster: the reader skips to the next Cluster ID.
    let mut body = info(1_000_000);
    body.extend(tracks());
    let mut c = simple_block(1, 0, 0x80, b"a");
    c.extend([0x00; 7]);
    c.extend(simple_block(1, 1, 0x00, b"lost"));
    body.extend(cluster_unknown(0, &c));
    body.extend(cluster_unknown(100, &simple_block(1, 0, 0x80, b"b")));
    let mut data = ebml_header();
    data.extend(segment_unknown(&body));
    let events = decode_all(&data);
    assert_eq!(errors(&events).len(), 1);
    let f = frames(&events);
    assert_eq!(f.len(), 2);
    assert_eq!(&f[1].data[..], b"b");
    assert_eq!(f[1].timestamp_ns, 100_000_000);
}

#[test]
fn a_child_running_past_its_parent_is_an_error() {
    let mut c = uint(id::CLUSTER_TIMECODE, 0);
    c.extend(simple_block(1, 0, 0x80, b"abc"));
    let mut cluster = el(id::CLUSTER, &c);
    // Shrink the cluster size by one byte so its last block overflows.
    let size_pos = 4;
    cluster[size_pos] -= 1;
    cluster.pop();
    let mut body = info(1_000_000);
    body.extend(tracks());
    body.extend(cluster);
    let mut data = ebml_header();
    data.extend(segment_unknown(&body));
    let events = decode_all(&data);
    assert!(errors(&events).iter().any(|e| matches!(
        e,
        DecodeError::ChildOverflow {
            parent: id::CLUSTER,
            ..
        }
    )));
}

#[test]
fn limits_are_typed_errors() {
    // A block larger than max_element_size is refused, skipped, and decoding goes on.
    let limits = ReaderLimits {
        max_element_size: 100,
        ..ReaderLimits::default()
    };
    let mut c = simple_block(1, 0, 0x80, &[0; 200]);
    c.extend(simple_block(1, 1, 0x00, b"small"));
    let mut body = info(1_000_000);
    body.extend(tracks());
    body.extend(cluster_unknown(0, &c));
    let mut data = ebml_header();
    data.extend(segment_unknown(&body));
    let mut reader = MkvReader::with_limits(limits);
    reader.push(data.clone()).unwrap();
    reader.finish();
    let events: Vec<_> = reader.events().collect();
    assert!(matches!(
        errors(&events)[..],
        [DecodeError::ElementTooLarge {
            size: 204,
            limit: 100,
            ..
        }]
    ));
    assert_eq!(&frames(&events)[0].data[..], b"small");

    // Frames per fragment.
    let mut reader = MkvReader::with_limits(ReaderLimits {
        max_frames_per_fragment: 1,
        ..ReaderLimits::default()
    });
    reader.push(data.clone()).unwrap();
    reader.finish();
    let events: Vec<_> = reader.events().collect();
    assert_eq!(frames(&events).len(), 1);
    assert!(matches!(errors(&events)[..], [DecodeError::Limit { .. }]));

    // Codec private.
    let mut reader = MkvReader::with_limits(ReaderLimits {
        max_codec_private: 2,
        ..ReaderLimits::default()
    });
    reader.push(data.clone()).unwrap();
    reader.finish();
    let events: Vec<_> = reader.events().collect();
    assert!(matches!(
        errors(&events)[..],
        [DecodeError::Limit {
            what: "CodecPrivate size",
            ..
        }]
    ));

    // Nesting depth: unknown-size unknown masters nested deeper than the limit.
    let mut deep = ebml_header();
    for _ in 0..10 {
        deep.extend(unknown(0x5FFF));
    }
    let mut reader = MkvReader::with_limits(ReaderLimits {
        max_depth: 4,
        ..ReaderLimits::default()
    });
    reader.push(deep).unwrap();
    reader.finish();
    let events: Vec<_> = reader.events().collect();
    assert!(
        errors(&events)
            .iter()
            .any(|e| matches!(e, DecodeError::TooDeep { limit: 4, .. }))
    );

    // Tags.
    let pairs: Vec<(String, String)> = (0..20).map(|i| (format!("k{i}"), "v".into())).collect();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let mut data = ebml_header();
    data.extend(segment_unknown(&tags_w(&pairs, 4)));
    let mut reader = MkvReader::with_limits(ReaderLimits {
        max_tags: 5,
        ..ReaderLimits::default()
    });
    reader.push(data).unwrap();
    reader.finish();
    let events: Vec<_> = reader.events().collect();
    assert!(matches!(
        errors(&events)[..],
        [DecodeError::Limit { limit: 5, .. }]
    ));

    // Buffered bytes.
    let mut reader = MkvReader::with_limits(ReaderLimits {
        max_buffered_bytes: 10,
        ..ReaderLimits::default()
    });
    assert!(matches!(
        reader.push(vec![0u8; 11]),
        Err(DecodeError::BufferFull { limit: 10, .. })
    ));
    assert_eq!(reader.buffered(), 0);

    // A huge declared size never allocates: the reader waits (and reports truncation).
    let mut data = ebml_header();
    let mut seg = tracks();
    seg.extend(id_bytes(id::TAGS));
    seg.extend(size_w(1 << 40, 8));
    data.extend(segment_unknown(&seg));
    let events = decode_all(&data);
    assert!(matches!(
        errors(&events)[..],
        [
            DecodeError::ElementTooLarge { .. },
            DecodeError::Truncated { .. }
        ]
    ));
}

#[test]
fn one_byte_at_a_time_gives_the_same_events() {
    let mut data = producer_stream();
    data.extend(getmedia_document("7", "9.000", 4_000, Some("1")));
    let whole = decode_all(&data);
    let cuts: Vec<usize> = (1..data.len()).collect();
    assert_eq!(decode_split(&data, &cuts), whole);
}

fn corpus_stream() -> Vec<u8> {
    let mut data = producer_stream();
    data.extend(getmedia_document("11", "1.000", 0, Some("3")));
    data.extend([0x00, 0x42]); // garbage, resynchronised
    data.extend(getmedia_document("12", "3.000", 2_000, None));
    data.extend(error_document("INTERNAL_ERROR", "5000"));
    data
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_split_gives_the_same_events(
        mut cuts in proptest::collection::vec(0usize..2000, 0..40),
        truncate in 0usize..400,
    ) {
        let mut data = corpus_stream();
        let keep = data.len() - truncate.min(data.len());
        data.truncate(keep);
        cuts.sort_unstable();
        let whole = decode_all(&data);
        prop_assert_eq!(decode_split(&data, &cuts), whole);
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut stream = ebml_header();
        stream.extend(segment_unknown(&data));
        let whole = decode_all(&stream);
        let cuts: Vec<usize> = (0..stream.len()).step_by(7).collect();
        prop_assert_eq!(decode_split(&stream, &cuts), whole);
    }
}
