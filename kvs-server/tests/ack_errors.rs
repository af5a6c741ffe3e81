//! Each ERROR ACK rule provoked by a crafted producer stream; the connection closes after it.

mod common;

use std::time::Duration;

use common::*;
use kvs_core::ack::{AckEventType, ErrorId};

/// Sends `header` then `body` pieces and returns the ErrorId of the ERROR ACK, asserting that
/// the response then ends.
async fn provoke(ep: &Endpoint, stream: &str, pieces: Vec<Vec<u8>>) -> Option<u32> {
    let mut pm = PutMedia::open(ep, &absolute(stream)).await;
    assert_eq!(pm.status, 200, "{}", pm.head);
    for p in pieces {
        if !pm.send(&p).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let acks = pm.acks_until(|a| a.event_type == AckEventType::Error).await;
    let err = acks.iter().find(|a| a.event_type == AckEventType::Error)?;
    // The service closes the connection after an ERROR.
    let mut ended = pm.ended.clone();
    tokio::time::timeout(Duration::from_secs(5), ended.wait_for(|e| *e))
        .await
        .expect("connection closed after ERROR")
        .unwrap();
    Some(err.error_id.unwrap().code())
}

fn kf(payload: &[u8]) -> (u8, i16, bool, &[u8]) {
    (1, 0, true, payload)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_rule() {
    let mut limits = fast_limits();
    limits.max_fragment_bytes = 100_000;
    limits.max_fragment_duration_ms = 2_000;
    let (server, _dir) = start(limits).await;
    let ep = Endpoint::of(&server);
    let now = now_ms();
    let p = [0u8; 100];
    let h1 = header_with_tracks(1);
    let eofr = tags_el(&[("AWS_KINESISVIDEO_END_OF_FRAGMENT", "")]);

    let mut n = 0;
    let mut stream = || {
        n += 1;
        format!("s{n}")
    };

    // 4004: a cluster timecode lower than the previous one.
    let s = stream();
    create_stream(&ep, &s, 1).await;
    let mut c2 = cluster(now - 1000, &[kf(&p)]);
    c2.extend(&eofr);
    let got = provoke(
        &ep,
        &s,
        vec![h1.clone(), cluster(now, &[kf(&p)]), eofr.clone(), c2],
    )
    .await;
    assert_eq!(got, Some(ErrorId::FRAGMENT_TIMECODE_NOT_MONOTONIC.code()));

    // 4006: not MKV at all, and a second segment.
    let s = stream();
    create_stream(&ep, &s, 1).await;
    let got = provoke(
        &ep,
        &s,
        vec![b"this is not matroska at all, sorry".repeat(10)],
    )
    .await;
    assert_eq!(got, Some(ErrorId::INVALID_MKV_DATA.code()));
    let s = stream();
    create_stream(&ep, &s, 1).await;
    let got = provoke(
        &ep,
        &s,
        vec![
            h1.clone(),
            cluster(now, &[kf(&p)]),
            eofr.clone(),
            h1.clone(),
        ],
    )
    .await;
    assert_eq!(got, Some(ErrorId::INVALID_MKV_DATA.code()));

    // 4007: a producer timestamp a day in the future.
    let s = stream();
    create_stream(&ep, &s, 1).await;
    let got = provoke(
        &ep,
        &s,
        vec![
            h1.clone(),
            cluster(now + 86_400_000, &[kf(&p)]),
            eofr.clone(),
        ],
    )
    .await;
    assert_eq!(got, Some(ErrorId::INVALID_PRODUCER_TIMESTAMP.code()));

    // 4009: eleven metadata tags on one fragment, and a reserved name.
    let s = stream();
    create_stream(&ep, &s, 1).await;
    let names: Vec<String> = (0..11).map(|i| format!("tag{i}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let got = provoke(
        &ep,
        &s,
        vec![
            h1.clone(),
            tags_el(&pairs),
            cluster(now, &[kf(&p)]),
            eofr.clone(),
        ],
    )
    .await;
    assert_eq!(got, Some(ErrorId::FRAGMENT_METADATA_LIMIT_REACHED.code()));
    let s = stream();
    create_stream(&ep, &s, 1).await;
    let got = provoke(
        &ep,
        &s,
        vec![
            h1.clone(),
            tags_el(&[("AWSsecret", "x")]),
            cluster(now, &[kf(&p)]),
        ],
    )
    .await;
    assert_eq!(got, Some(ErrorId::FRAGMENT_METADATA_LIMIT_REACHED.code()));

    // 4010: a block for a track the header does not declare.
    let s = stream();
    create_stream(&ep, &s, 1).await;
    let got = provoke(
        &ep,
        &s,
        vec![
            h1.clone(),
            cluster(now, &[kf(&p), (2, 1, false, &p)]),
            eofr.clone(),
        ],
    )
    .await;
    assert_eq!(got, Some(ErrorId::TRACK_NUMBER_MISMATCH.code()));

    // 4011: two tracks declared, frames for one only.
    let s = stream();
    create_stream(&ep, &s, 1).await;
    let got = provoke(
        &ep,
        &s,
        vec![header_with_tracks(2), cluster(now, &[kf(&p)]), eofr.clone()],
    )
    .await;
    assert_eq!(got, Some(ErrorId::FRAMES_MISSING_FOR_TRACK.code()));

    // 4012: four tracks.
    let s = stream();
    create_stream(&ep, &s, 1).await;
    let got = provoke(&ep, &s, vec![header_with_tracks(4)]).await;
    assert_eq!(got, Some(ErrorId::MORE_THAN_ALLOWED_TRACKS_FOUND.code()));

    // 4001: a fragment over the (lowered) size limit.
    let s = stream();
    create_stream(&ep, &s, 1).await;
    let big = vec![1u8; 30_000];
    let blocks: Vec<(u8, i16, bool, &[u8])> = (0..5)
        .map(|i| (1u8, i as i16, i == 0, big.as_slice()))
        .collect();
    let got = provoke(&ep, &s, vec![h1.clone(), cluster(now, &blocks)]).await;
    assert_eq!(got, Some(ErrorId::FRAGMENT_SIZE_REACHED.code()));

    // 4002: a fragment longer than the (lowered) duration limit.
    let s = stream();
    create_stream(&ep, &s, 1).await;
    let got = provoke(
        &ep,
        &s,
        vec![
            h1.clone(),
            cluster(now, &[kf(&p), (1, 3000, false, &p)]),
            eofr.clone(),
        ],
    )
    .await;
    assert_eq!(got, Some(ErrorId::FRAGMENT_DURATION_REACHED.code()));

    // 4008: the stream is deleted while the producer streams.
    let s = stream();
    create_stream(&ep, &s, 1).await;
    let mut pm = PutMedia::open(&ep, &absolute(&s)).await;
    pm.send(&h1).await;
    let mut c = cluster(now, &[kf(&p)]);
    c.extend(&eofr);
    pm.send(&c).await;
    pm.acks_until(|a| a.event_type == AckEventType::Persisted)
        .await;
    let arn = call(
        &ep,
        &kvs_core::api::DescribeStreamRequest {
            stream_name: Some(s.clone()),
            stream_arn: None,
        },
    )
    .await
    .unwrap()
    .stream_info
    .stream_arn;
    call(
        &ep,
        &kvs_core::api::DeleteStreamRequest {
            stream_arn: arn,
            current_version: None,
        },
    )
    .await
    .unwrap();
    let mut c = cluster(now + 100, &[kf(&p)]);
    c.extend(&eofr);
    pm.send(&c).await;
    let acks = pm.acks_until(|a| a.event_type == AckEventType::Error).await;
    let err = acks
        .iter()
        .find(|a| a.event_type == AckEventType::Error)
        .unwrap();
    assert_eq!(err.error_id, Some(ErrorId::STREAM_NOT_ACTIVE));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_age_limit_and_idle() {
    let mut limits = fast_limits();
    limits.max_connection_duration = Duration::from_millis(600);
    limits.idle_ack_interval = Duration::from_millis(200);
    let (server, _dir) = start(limits).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "age", 1).await;
    let now = now_ms();
    let p = [0u8; 50];
    let eofr = tags_el(&[("AWS_KINESISVIDEO_END_OF_FRAGMENT", "")]);
    let mut pm = PutMedia::open(&ep, &absolute("age")).await;
    pm.send(&header_with_tracks(1)).await;
    let mut c = cluster(now, &[kf(&p)]);
    c.extend(&eofr);
    pm.send(&c).await;
    // Nothing arrives for a while: IDLE ACKs, then the connection-age ERROR (4003).
    let acks = pm.acks_until(|a| a.event_type == AckEventType::Error).await;
    assert!(acks.iter().any(|a| a.event_type == AckEventType::Idle));
    assert!(acks.iter().any(|a| a.event_type == AckEventType::Persisted));
    let err = acks.last().unwrap();
    assert_eq!(err.event_type, AckEventType::Error);
    assert_eq!(err.error_id, Some(ErrorId::CONNECTION_DURATION_REACHED));
    server.shutdown().await;
}

/// The connection-age limit fires while data keeps flowing (one deadline per connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_age_limit_fires_while_data_flows() {
    let mut limits = fast_limits();
    limits.max_connection_duration = Duration::from_millis(800);
    let (server, _dir) = start(limits).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "busy", 1).await;
    let now = now_ms() - 10_000;
    let mut pm = PutMedia::open(&ep, &absolute("busy")).await;
    pm.send(&header_with_tracks(1)).await;
    pm.send(&cluster(now, &[kf(&[1u8; 50])])).await;
    let started = std::time::Instant::now();
    let mut got = None;
    // One long fragment: a frame every 50 ms, never idle.
    for i in 1..80i16 {
        let mut block = vec![0x81];
        block.extend_from_slice(&(i * 50).to_be_bytes());
        block.push(0);
        block.extend_from_slice(&[2u8; 50]);
        if !pm.send(&el(&[0xA3], &block)).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Ok(a) = pm.acks.try_recv() {
            if a.event_type == AckEventType::Error {
                got = a.error_id;
            }
        }
        if got.is_some() {
            break;
        }
    }
    assert_eq!(got, Some(ErrorId::CONNECTION_DURATION_REACHED));
    assert!(started.elapsed() < Duration::from_secs(3));
    server.shutdown().await;
}

/// Bytes outside fragments are bounded: a huge element before the first cluster or between
/// fragments is refused with 4006 instead of being buffered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_outside_fragments_are_bounded() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    let now = now_ms() - 10_000;
    let void = |n: usize| el(&[0xEC], &vec![0u8; n]);
    let eofr = tags_el(&[("AWS_KINESISVIDEO_END_OF_FRAGMENT", "")]);
    create_stream(&ep, "gap", 1).await;
    let mut pieces = vec![header_with_tracks(1)];
    let mut c = cluster(now, &[kf(&[1u8; 50])]);
    c.extend(&eofr);
    pieces.push(c);
    pieces.extend((0..4).map(|_| void(40_000)));
    pieces.push(cluster(now + 100, &[kf(&[1u8; 50])]));
    let got = provoke(&ep, "gap", pieces).await;
    assert_eq!(got, Some(ErrorId::INVALID_MKV_DATA.code()));
    create_stream(&ep, "head", 1).await;
    let mut pieces = vec![header_with_tracks(1)];
    pieces.extend((0..5).map(|_| void(300_000)));
    pieces.push(cluster(now, &[kf(&[1u8; 50])]));
    let got = provoke(&ep, "head", pieces).await;
    assert_eq!(got, Some(ErrorId::INVALID_MKV_DATA.code()));
    server.shutdown().await;
}
