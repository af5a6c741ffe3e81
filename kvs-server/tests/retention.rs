//! Retention with an injected clock: the background sweep drops expired fragments from
//! ListFragments / GetMedia / GetMediaForFragmentList and deletes their segment files, and the
//! trim survives a restart (index log); retention 0 keeps an in-memory buffer bounded by time and
//! bytes, readable by GetMedia, without PERSISTED ACKs and without files.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use kvs_core::ack::AckEventType;
use kvs_core::api::*;
use kvs_server::ManualClock;

fn limits() -> kvs_server::Limits {
    kvs_server::Limits {
        retention_interval: Duration::from_millis(50),
        // One fragment per segment file, so retention can delete files.
        segment_bytes: 1,
        ..fast_limits()
    }
}

fn earliest(name: &str) -> GetMediaRequest {
    GetMediaRequest {
        stream_name: Some(name.into()),
        stream_arn: None,
        start_selector: StartSelector::new(StartSelectorType::Earliest),
    }
}

/// Sends `n` fragments on a new connection, advancing `clock` by `step` after each RECEIVED;
/// returns (fragment bytes, PERSISTED numbers, whether any PERSISTED came).
async fn put(
    ep: &Endpoint,
    name: &str,
    producer: &mut Producer,
    n: usize,
    payload: usize,
    clock: &ManualClock,
    step: Duration,
) -> (Vec<Bytes>, Vec<String>, usize) {
    let mut pm = PutMedia::open(ep, &absolute(name)).await;
    assert_eq!(pm.status, 200, "{}", pm.head);
    assert!(pm.send(&producer.header()).await);
    let mut sent = Vec::new();
    let mut received = 0;
    let mut persisted = Vec::new();
    for _ in 0..n {
        let f = producer.fragment(5, payload);
        assert!(pm.send(&f).await);
        sent.push(f);
        // Wait for this fragment's RECEIVED, so its server timestamp is minted before the clock
        // moves.
        while received < sent.len() {
            let a = pm.next_ack(10).await.expect("ack");
            match a.event_type {
                AckEventType::Received => received += 1,
                AckEventType::Persisted => {
                    persisted.push(a.fragment_number.unwrap().as_str().to_owned())
                }
                AckEventType::Error => panic!("error ack {a:?}"),
                _ => {}
            }
        }
        clock.advance(step);
    }
    pm.finish().await;
    while let Some(a) = pm.next_ack(2).await {
        if a.event_type == AckEventType::Persisted {
            persisted.push(a.fragment_number.unwrap().as_str().to_owned());
        }
    }
    let count = persisted.len();
    (sent, persisted, count)
}

/// Cluster bytes of every fragment GetMedia EARLIEST returns.
async fn read_back(ep: &Endpoint, name: &str) -> Vec<(String, Vec<kvs_core::mkv::Frame>)> {
    let r = call_raw(ep, &earliest(name)).await;
    assert_eq!(r.status(), 200);
    decode(r.body())
        .fragments
        .into_iter()
        .map(|(s, frames)| (s.metadata.fragment_number.unwrap(), frames))
        .collect()
}

async fn wait_for(mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not reached within 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_sweep_drops_expired_fragments_and_segments() {
    let clock = Arc::new(ManualClock::new(now_ms()));
    let dir = temp_dir("retention");
    let (server, dir) = start_in_with_clock(dir, limits(), clock.clone()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "ret", 1).await;
    let mut producer = Producer::new(now_ms() - 60_000, false);

    let (_, old, n) = put(&ep, "ret", &mut producer, 3, 200, &clock, Duration::ZERO).await;
    assert_eq!(n, 3, "every fragment PERSISTED");
    assert_eq!(list_all_fragments(&ep, "ret").await.len(), 3);
    let sdir = stream_dir(&dir, "ret");
    assert_eq!(segment_files(&sdir).len(), 3);

    // Two hours later (retention is one hour): two new fragments, the old three expire.
    clock.advance(Duration::from_secs(2 * 3600));
    let frames_before = producer.sent_frames.len();
    let (_, new, n) = put(&ep, "ret", &mut producer, 2, 200, &clock, Duration::ZERO).await;
    assert_eq!(n, 2);
    wait_for(async || list_all_fragments(&ep, "ret").await.len() == 2).await;
    let listed: Vec<String> = list_all_fragments(&ep, "ret")
        .await
        .into_iter()
        .map(|f| f.fragment_number)
        .collect();
    assert_eq!(listed, new);
    let back = read_back(&ep, "ret").await;
    assert_eq!(back.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), new);
    let frames: Vec<_> = back.into_iter().flat_map(|(_, f)| f).collect();
    assert_eq!(
        frames.iter().map(|f| &f.data).collect::<Vec<_>>(),
        producer.sent_frames[frames_before..]
            .iter()
            .map(|f| &f.data)
            .collect::<Vec<_>>()
    );
    // An expired number is not found any more.
    let gm = GetMediaForFragmentListRequest {
        stream_name: Some("ret".into()),
        stream_arn: None,
        fragments: vec![old[0].clone()],
    };
    let r = call_raw(&ep, &gm).await;
    let d = decode(r.body());
    assert_eq!(
        d.fragments[0].0.metadata.error_code.as_deref(),
        Some("FRAGMENT_NOT_FOUND")
    );
    // The expired segment files are gone (the writer deletes asynchronously).
    wait_for(async || segment_files(&sdir).len() == 2).await;

    // After a restart the index log still has the trim: the same two fragments.
    server.shutdown().await;
    let (server, _) = start_in_with_clock(dir.clone(), limits(), clock.clone()).await;
    let ep = Endpoint::of(&server);
    let listed: Vec<String> = list_all_fragments(&ep, "ret")
        .await
        .into_iter()
        .map(|f| f.fragment_number)
        .collect();
    assert_eq!(listed, new);
    assert_eq!(read_back(&ep, "ret").await.len(), 2);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_zero_buffer_is_bounded_by_time_and_bytes() {
    let clock = Arc::new(ManualClock::new(now_ms()));
    let mut l = limits();
    // Room for two 10 kB fragments, not three.
    l.buffer_bytes = 25_000;
    let (server, dir) = start_in_with_clock(temp_dir("ret0"), l, clock.clone()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "zero", 0).await;
    let mut producer = Producer::new(now_ms() - 60_000, false);

    // Two fragments fit: both readable, no PERSISTED, no files.
    let (sent, _, persisted) = put(
        &ep,
        "zero",
        &mut producer,
        2,
        2_000,
        &clock,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(persisted, 0, "retention 0 never acknowledges PERSISTED");
    assert!(sent.iter().all(|f| f.len() > 10_000 && f.len() < 12_500));
    let back = read_back(&ep, "zero").await;
    assert_eq!(back.len(), 2);
    assert_eq!(
        back.iter()
            .flat_map(|(_, f)| f)
            .map(|f| &f.data)
            .collect::<Vec<_>>(),
        producer
            .sent_frames
            .iter()
            .map(|f| &f.data)
            .collect::<Vec<_>>()
    );
    assert!(segment_files(&stream_dir_or_none(&dir, "zero")).is_empty());

    // Three more: the byte bound keeps the newest two.
    let (_, _, persisted) = put(
        &ep,
        "zero",
        &mut producer,
        3,
        2_000,
        &clock,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(persisted, 0);
    let back = read_back(&ep, "zero").await;
    assert_eq!(back.len(), 2);
    let n = producer.sent_frames.len();
    assert_eq!(
        back.iter()
            .flat_map(|(_, f)| f)
            .map(|f| &f.data)
            .collect::<Vec<_>>(),
        producer.sent_frames[n - 10..]
            .iter()
            .map(|f| &f.data)
            .collect::<Vec<_>>()
    );

    // Five minutes and a bit later, the time bound empties the buffer.
    clock.advance(Duration::from_secs(301));
    wait_for(async || list_all_fragments(&ep, "zero").await.is_empty()).await;
    assert!(read_back(&ep, "zero").await.is_empty());
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The stream directory, or a path that does not exist when the stream never wrote a file.
fn stream_dir_or_none(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    stream_dir_path(dir, name).unwrap_or_else(|| dir.join("none"))
}
