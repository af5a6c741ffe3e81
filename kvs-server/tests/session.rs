//! PutMedia from kvs-core's producer session (`PutMediaSession`, driven over real HTTP by
//! `kvs_server::producer`): every fragment PERSISTED, and GetMedia / GetMediaForFragmentList
//! return the session's bytes unchanged.

mod common;

use bytes::Bytes;
use common::*;
use kvs_core::ack::AckEventType;
use kvs_core::api::*;
use kvs_core::fragment::tag;
use kvs_core::mkv::getmedia::{ProducerHeader, kvs_tags_len};
use kvs_core::mkv::writer::StreamConfig;
use kvs_core::mkv::{Frame, TrackInfo, TrackType, codec};
use kvs_core::session::{Event, SessionConfig};
use kvs_server::producer::{Report, Target, run};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_producer_every_fragment_persisted_and_read_back_identical() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "sess", 24).await;

    let start_ms = now_ms() - 20_000;
    let tracks = vec![TrackInfo::new(1, 1, TrackType::Video, codec::H264)];
    let config = SessionConfig::new(
        "sess",
        StreamConfig::new([3u8; 16]),
        tracks,
        Timestamp::from_millis(start_ms),
    );
    let (frame_tx, frame_rx) = mpsc::channel(16);
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let driver = tokio::spawn(run(Target::of(&server), config, frame_rx, report_tx));
    // Four fragments of 25 frames at 25 fps (a key frame every second).
    let mut frames = Vec::new();
    for i in 0..100u64 {
        let data: Vec<u8> = (0..700).map(|j| (i * 7 + j) as u8).collect();
        let ts = (start_ms + i * 40) as i64 * 1_000_000;
        let f = Frame::new(1, ts, i % 25 == 0, data);
        frames.push(f.clone());
        frame_tx.send(f).await.unwrap();
    }
    drop(frame_tx);
    let metrics = tokio::time::timeout(std::time::Duration::from_secs(30), driver)
        .await
        .expect("session ends")
        .unwrap()
        .unwrap();

    let mut persisted = Vec::new();
    let mut sent = Vec::new();
    let mut first_chunk = None;
    let mut connections = std::collections::BTreeSet::new();
    while let Ok(r) = reports.try_recv() {
        match r {
            Report::Session(
                Event::Ack {
                    kind: AckEventType::Persisted,
                    fragment_number,
                    ..
                },
                _,
            ) => persisted.push(fragment_number.unwrap().as_str().to_owned()),
            Report::Session(Event::Dropped(d), _) => panic!("dropped: {d:?}"),
            Report::Session(Event::Error(e), _) => panic!("session error: {e:?}"),
            Report::Refused { .. } => panic!("frame refused"),
            Report::Sent { connection, data } => {
                connections.insert(connection);
                first_chunk.get_or_insert(data.clone());
                sent.extend_from_slice(&data);
            }
            _ => {}
        }
    }
    assert_eq!(persisted.len(), 4, "every fragment PERSISTED ({metrics:?})");
    assert_eq!(connections.len(), 1);

    // GetMedia EARLIEST: the same fragments, the same frames.
    let r = call_raw(
        &ep,
        &GetMediaRequest {
            stream_name: Some("sess".into()),
            stream_arn: None,
            start_selector: StartSelector::new(StartSelectorType::Earliest),
        },
    )
    .await;
    let d = decode(r.body());
    let numbers: Vec<String> = d
        .fragments
        .iter()
        .map(|(s, _)| s.metadata.fragment_number.clone().unwrap())
        .collect();
    assert_eq!(numbers, persisted);
    let got: Vec<Frame> = d.fragments.into_iter().flat_map(|(_, f)| f).collect();
    assert_eq!(got.len(), frames.len());
    for (g, f) in got.iter().zip(&frames) {
        assert_eq!(
            (g.timestamp_ns, g.keyframe, &g.data),
            (f.timestamp_ns, f.keyframe, &f.data)
        );
    }

    // GetMediaForFragmentList: minus the KVS prefix, the stored bytes are the session's body
    // after its header, byte for byte.
    let r = call_raw(
        &ep,
        &GetMediaForFragmentListRequest {
            stream_name: Some("sess".into()),
            stream_arn: None,
            fragments: persisted.clone(),
        },
    )
    .await;
    // The session sends its stream header as the first chunk of the body.
    let header = ProducerHeader::parse(first_chunk.unwrap()).expect("first chunk is the header");
    let header_doc_len = header.document_start_len();
    let dd = decode(r.body());
    let mut rest: &[u8] = r.body();
    let mut rebuilt = Vec::new();
    for (s, _) in &dd.fragments {
        let m = &s.metadata;
        let st = kvs_core::fragment::format_seconds_millis(m.server_timestamp_ms.unwrap());
        let pt = kvs_core::fragment::format_seconds_millis(m.producer_timestamp_ms.unwrap());
        let next = rest[4..]
            .windows(4)
            .position(|w| w == [0x1A, 0x45, 0xDF, 0xA3])
            .map_or(rest.len(), |p| p + 4);
        let prefix = header_doc_len
            + kvs_tags_len(&[
                (tag::FRAGMENT_NUMBER, m.fragment_number.as_deref().unwrap()),
                (tag::SERVER_TIMESTAMP, &st),
                (tag::PRODUCER_TIMESTAMP, &pt),
            ]);
        rebuilt.extend_from_slice(&rest[prefix..next]);
        rest = &rest[next..];
    }
    assert!(sent.len() > rebuilt.len());
    let header_len = sent.len() - rebuilt.len();
    assert!(
        sent[header_len..] == rebuilt[..],
        "stored fragments differ from the session's bytes"
    );
    ProducerHeader::parse(Bytes::copy_from_slice(&sent[..header_len]))
        .expect("what precedes the fragments is exactly the stream header");
    server.shutdown().await;
}

/// The session rotates its connection (a short rotation age here): the successor is accepted
/// while the predecessor still streams, and every fragment is PERSISTED and readable in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_rotation_is_accepted_and_loses_nothing() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "rot", 24).await;
    let start_ms = now_ms() - 20_000;
    let tracks = vec![TrackInfo::new(1, 1, TrackType::Video, codec::H264)];
    let mut config = SessionConfig::new(
        "rot",
        StreamConfig::new([4u8; 16]),
        tracks,
        Timestamp::from_millis(start_ms),
    );
    config.timeouts.rotation_ms = 300;
    let (frame_tx, frame_rx) = mpsc::channel(16);
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let driver = tokio::spawn(run(Target::of(&server), config, frame_rx, report_tx));
    // Twelve fragments of 5 frames, paced so that several rotations happen.
    for i in 0..60u64 {
        let ts = (start_ms + i * 40) as i64 * 1_000_000;
        frame_tx
            .send(Frame::new(1, ts, i % 5 == 0, vec![i as u8; 300]))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    drop(frame_tx);
    let metrics = tokio::time::timeout(std::time::Duration::from_secs(30), driver)
        .await
        .expect("session ends")
        .unwrap()
        .unwrap();
    let mut persisted = Vec::new();
    while let Ok(r) = reports.try_recv() {
        match r {
            Report::Session(
                Event::Ack {
                    kind: AckEventType::Persisted,
                    fragment_number,
                    ..
                },
                _,
            ) => persisted.push(fragment_number.unwrap().as_str().to_owned()),
            Report::Session(Event::Dropped(d), _) => panic!("dropped: {d:?}"),
            _ => {}
        }
    }
    assert!(metrics.rotations >= 1, "{metrics:?}");
    assert_eq!(persisted.len(), 12, "{metrics:?}");
    persisted.sort();
    let r = call_raw(
        &ep,
        &GetMediaRequest {
            stream_name: Some("rot".into()),
            stream_arn: None,
            start_selector: StartSelector::new(StartSelectorType::Earliest),
        },
    )
    .await;
    let d = decode(r.body());
    let numbers: Vec<String> = d
        .fragments
        .iter()
        .map(|(s, _)| s.metadata.fragment_number.clone().unwrap())
        .collect();
    assert_eq!(numbers, persisted);
    let frames: usize = d.fragments.iter().map(|(_, f)| f.len()).sum();
    assert_eq!(frames, 60);
    server.shutdown().await;
}
