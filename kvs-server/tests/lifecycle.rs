//! Durability across restarts, deletion removing data, control-plane status transitions.

mod common;

use std::time::Duration;

use common::*;
use kvs_core::ack::AckEventType;
use kvs_core::api::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_streams_and_fragments_delete_removes_them() {
    let mut limits = fast_limits();
    limits.transition_delay = Duration::from_millis(100);
    let (server, dir) = start(limits.clone()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "keep", 1).await;
    // CREATING first, ACTIVE shortly after.
    let d = call(
        &ep,
        &DescribeStreamRequest {
            stream_name: Some("keep".into()),
            stream_arn: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(d.stream_info.status, StreamStatus::Creating);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut producer = Producer::new(now_ms() - 5000, false);
    let mut pm = PutMedia::open(&ep, &absolute("keep")).await;
    assert_eq!(pm.status, 200);
    pm.send(&producer.header()).await;
    let mut numbers = Vec::new();
    for _ in 0..3 {
        pm.send(&producer.fragment(4, 500)).await;
        let acks = pm
            .acks_until(|a| a.event_type == AckEventType::Persisted)
            .await;
        numbers.push(
            acks.last()
                .unwrap()
                .fragment_number
                .clone()
                .unwrap()
                .as_str()
                .to_owned(),
        );
    }
    pm.finish().await;
    let arn = d.stream_info.stream_arn.clone();
    server.shutdown().await;

    // Same data directory, new process state.
    let (server, dir) = start_in(dir, limits).await;
    let ep = Endpoint::of(&server);
    let d2 = call(
        &ep,
        &DescribeStreamRequest {
            stream_name: None,
            stream_arn: Some(arn.clone()),
        },
    )
    .await
    .unwrap();
    assert_eq!(d2.stream_info.status, StreamStatus::Active);
    assert_eq!(d2.stream_info.creation_time, d.stream_info.creation_time);
    let r = call_raw(
        &ep,
        &GetMediaRequest {
            stream_name: Some("keep".into()),
            stream_arn: None,
            start_selector: StartSelector::new(StartSelectorType::Earliest),
        },
    )
    .await;
    let got = decode(r.body());
    let got_numbers: Vec<String> = got
        .fragments
        .iter()
        .map(|(s, _)| s.metadata.fragment_number.clone().unwrap())
        .collect();
    assert_eq!(got_numbers, numbers);
    let frames: Vec<_> = got.fragments.iter().flat_map(|(_, f)| f.clone()).collect();
    assert_eq!(frames.len(), producer.sent_frames.len());
    for (a, b) in frames.iter().zip(&producer.sent_frames) {
        assert_eq!(a.data, b.data);
    }
    // New fragments continue the sequence.
    let mut pm = PutMedia::open(&ep, &absolute("keep")).await;
    pm.send(&producer.header()).await;
    pm.send(&producer.fragment(4, 500)).await;
    let acks = pm
        .acks_until(|a| a.event_type == AckEventType::Persisted)
        .await;
    let n4 = acks
        .last()
        .unwrap()
        .fragment_number
        .clone()
        .unwrap()
        .as_str()
        .to_owned();
    assert!(n4 > numbers[2]);
    pm.finish().await;

    // DeleteStream: DELETING at once, data unreachable, directory removed.
    let streams_dir = dir.join("data/streams");
    assert_eq!(std::fs::read_dir(&streams_dir).unwrap().count(), 1);
    call(
        &ep,
        &DeleteStreamRequest {
            stream_arn: arn.clone(),
            current_version: Some(d2.stream_info.version.clone()),
        },
    )
    .await
    .unwrap();
    let e = call(
        &ep,
        &ListFragmentsRequest {
            stream_name: Some("keep".into()),
            stream_arn: None,
            max_results: None,
            next_token: None,
            fragment_selector: Some(FragmentSelector {
                fragment_selector_type: TimestampSelectorType::ServerTimestamp,
                timestamp_range: TimestampRange {
                    start_timestamp: Timestamp::from_millis(0),
                    end_timestamp: Timestamp::from_millis(now_ms()),
                },
            }),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::ResourceNotFound);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(std::fs::read_dir(&streams_dir).unwrap().count(), 0);
    let e = call(
        &ep,
        &DescribeStreamRequest {
            stream_name: Some("keep".into()),
            stream_arn: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind, ApiErrorKind::ResourceNotFound);
    // The name can be used again, with a new ARN.
    create_stream(&ep, "keep", 0).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_operations_answer_with_service_errors() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "x", 1).await;
    // GetImages is not served yet (GetClip is: see tests/clip.rs).
    let images = GetImagesRequest {
        stream_name: Some("x".into()),
        stream_arn: None,
        image_selector_type: TimestampSelectorType::ServerTimestamp,
        start_timestamp: Timestamp::from_millis(1000),
        end_timestamp: Timestamp::from_millis(2000),
        sampling_interval: None,
        format: ImageFormat::Jpeg,
        format_config: None,
        width_pixels: None,
        height_pixels: None,
        max_results: None,
        next_token: None,
    };
    let r = call_raw(&ep, &images).await;
    assert_eq!(r.status(), 404);
    assert!(
        r.headers()["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .starts_with("UnknownOperationException")
    );
    // A signaling-channel path, signed: the service's unknown-operation error.
    let mut req = http::Request::new(bytes::Bytes::from_static(b"{}"));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = format!("http://{}/createSignalingChannel", ep.addr)
        .parse()
        .unwrap();
    req.headers_mut()
        .insert("host", ep.addr.to_string().parse().unwrap());
    sign_at(&ep, &mut req, std::time::SystemTime::now());
    let r = send(&ep, req).await;
    assert_eq!(r.status(), 404);
    server.shutdown().await;
}

/// A fragment limit the storage format cannot hold is refused at start, not clamped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragment_limit_above_the_record_limit_is_refused() {
    let dir = temp_dir("cfg");
    let mut config = kvs_server::ServerConfig::new(dir.join("data"));
    config.port = 0;
    config.limits.max_fragment_bytes = 100 * 1024 * 1024;
    let e = kvs_server::Server::bind(config.clone())
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("max_fragment_bytes"), "{e}");
    config.limits.max_fragment_bytes = kvs_server::store::MAX_FRAGMENT_BYTES;
    let server = kvs_server::Server::bind(config).await.unwrap();
    server.shutdown().await;
}

/// A 256-character stream name (the API maximum) stores and recovers its fragments: the
/// directory is named from the creation time and a hash, not the name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longest_stream_name_persists_across_restart() {
    let (server, dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    let name = "n".repeat(256);
    create_stream(&ep, &name, 1).await;
    let mut producer = Producer::new(now_ms() - 5000, false);
    let mut pm = PutMedia::open(&ep, &absolute(&name)).await;
    assert_eq!(pm.status, 200);
    pm.send(&producer.header()).await;
    pm.send(&producer.fragment(3, 100)).await;
    let acks = pm
        .acks_until(|a| a.event_type == AckEventType::Persisted)
        .await;
    assert_eq!(
        acks.last().unwrap().event_type,
        AckEventType::Persisted,
        "{acks:?}"
    );
    pm.finish().await;
    let sdir = stream_dir(&dir, &name);
    assert!(sdir.file_name().unwrap().len() < 64);
    server.shutdown().await;
    let (server, _dir) = start_in(dir, fast_limits()).await;
    let ep = Endpoint::of(&server);
    let r = call_raw(
        &ep,
        &GetMediaRequest {
            stream_name: Some(name.clone()),
            stream_arn: None,
            start_selector: StartSelector::new(StartSelectorType::Earliest),
        },
    )
    .await;
    assert_eq!(decode(r.body()).fragments.len(), 1);
    server.shutdown().await;
}
