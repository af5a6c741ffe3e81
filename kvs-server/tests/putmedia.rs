//! PutMedia over real HTTP (full duplex, chunked both ways), then reading back through GetMedia
//! with every start selector, ListFragments and GetMediaForFragmentList.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use kvs_core::ack::{AckEvent, AckEventType};
use kvs_core::api::*;
use kvs_core::fragment::tag;
use kvs_core::mkv::getmedia::{ProducerHeader, kvs_tags_len};

fn persisted(acks: &[AckEvent]) -> Vec<String> {
    acks.iter()
        .filter(|a| a.event_type == AckEventType::Persisted)
        .map(|a| a.fragment_number.as_ref().unwrap().as_str().to_owned())
        .collect()
}

fn get_media(name: &str, sel: StartSelector) -> GetMediaRequest {
    GetMediaRequest {
        stream_name: Some(name.into()),
        stream_arn: None,
        start_selector: sel,
    }
}

fn numbers(d: &Decoded) -> Vec<String> {
    d.fragments
        .iter()
        .map(|(s, _)| s.metadata.fragment_number.clone().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_media_round_trip_every_selector() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "cam", 1).await;

    // A live GetMedia NOW opened before anything is sent.
    let ep2 = ep.clone();
    let live = tokio::spawn(async move {
        call_raw(
            &ep2,
            &get_media("cam", StartSelector::new(StartSelectorType::Now)),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut producer = Producer::new(now_ms() - 10_000, false);
    let mut pm = PutMedia::open(&ep, &absolute("cam")).await;
    assert_eq!(pm.status, 200, "{}", pm.head);
    let header = producer.header();
    let mut body_after_header = Vec::new();
    assert!(pm.send(&header).await);
    let mut acks = Vec::new();
    for _ in 0..5 {
        let frag = producer.fragment(10, 300);
        body_after_header.extend_from_slice(&frag);
        // Split the fragment across chunks at an odd boundary.
        let (a, b) = frag.split_at(frag.len() / 3);
        assert!(pm.send(a).await);
        assert!(pm.send(b).await);
        // BUFFERING, RECEIVED and PERSISTED for this fragment before the next is sent.
        acks.extend(
            pm.acks_until(|a| a.event_type == AckEventType::Persisted)
                .await,
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    pm.finish().await;
    let kinds: Vec<AckEventType> = acks
        .iter()
        .filter(|a| a.event_type != AckEventType::Idle)
        .map(|a| a.event_type)
        .collect();
    assert_eq!(
        kinds,
        [
            AckEventType::Buffering,
            AckEventType::Received,
            AckEventType::Persisted
        ]
        .repeat(5)
    );
    let nums = persisted(&acks);
    assert_eq!(nums.len(), 5);
    assert!(nums.iter().all(|n| n.len() == 47));
    assert!(nums.windows(2).all(|w| w[0] < w[1]));
    // Timecodes in the ACKs are the raw cluster timecodes (absolute ms).
    let tc0 = acks[0].fragment_timecode.unwrap();
    assert_eq!(tc0 as i64, producer.sent_frames[0].timestamp_ns / 1_000_000);

    // EARLIEST: every fragment, every frame byte-identical, numbers as ACKed.
    let all = call_raw(
        &ep,
        &get_media("cam", StartSelector::new(StartSelectorType::Earliest)),
    )
    .await;
    assert_eq!(all.status(), 200);
    assert_eq!(all.headers()["content-type"], "video/webm");
    let d = decode(all.body());
    assert_eq!(numbers(&d), nums);
    let frames: Vec<_> = d.fragments.iter().flat_map(|(_, f)| f.clone()).collect();
    assert_eq!(frames.len(), producer.sent_frames.len());
    for (got, sent) in frames.iter().zip(&producer.sent_frames) {
        assert_eq!(got.data, sent.data);
        assert_eq!(got.timestamp_ns, sent.timestamp_ns);
        assert_eq!(got.keyframe, sent.keyframe);
    }
    for (s, _) in &d.fragments {
        assert!(s.metadata.is_complete(), "{:?}", s.metadata);
        assert_eq!(
            s.metadata.continuation_token, s.metadata.fragment_number,
            "continuation token = fragment number"
        );
    }

    // The live reader saw the five fragments as they completed.
    let live = tokio::time::timeout(Duration::from_secs(20), live)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(numbers(&decode(live.body())), nums);

    // FRAGMENT_NUMBER: after the second.
    let mut sel = StartSelector::new(StartSelectorType::FragmentNumber);
    sel.after_fragment_number = Some(nums[1].clone());
    let r = call_raw(&ep, &get_media("cam", sel)).await;
    assert_eq!(numbers(&decode(r.body())), nums[2..]);

    // CONTINUATION_TOKEN: the token of the first fragment.
    let mut sel = StartSelector::new(StartSelectorType::ContinuationToken);
    sel.continuation_token = d.fragments[0].0.metadata.continuation_token.clone();
    let r = call_raw(&ep, &get_media("cam", sel)).await;
    assert_eq!(numbers(&decode(r.body())), nums[1..]);

    // PRODUCER_TIMESTAMP: the chunk holding the third fragment's start.
    let p3 = d.fragments[2].0.metadata.producer_timestamp_ms.unwrap();
    let mut sel = StartSelector::new(StartSelectorType::ProducerTimestamp);
    sel.start_timestamp = Some(Timestamp::from_millis(p3 + 10));
    let r = call_raw(&ep, &get_media("cam", sel)).await;
    assert_eq!(numbers(&decode(r.body())), nums[2..]);

    // SERVER_TIMESTAMP: the fourth fragment's server timestamp.
    let s4 = d.fragments[3].0.metadata.server_timestamp_ms.unwrap();
    let mut sel = StartSelector::new(StartSelectorType::ServerTimestamp);
    sel.start_timestamp = Some(Timestamp::from_millis(s4));
    let r = call_raw(&ep, &get_media("cam", sel)).await;
    let got = numbers(&decode(r.body()));
    assert_eq!(got.last(), nums.last());
    assert!(got.len() >= 2 && got.contains(&nums[3]), "{got:?}");

    // ListFragments, server range [f2, f4] inclusive, paginated one at a time.
    let s2 = d.fragments[1].0.metadata.server_timestamp_ms.unwrap();
    let mut listed = Vec::new();
    let mut req = ListFragmentsRequest {
        stream_name: Some("cam".into()),
        stream_arn: None,
        max_results: Some(1),
        next_token: None,
        fragment_selector: Some(FragmentSelector {
            fragment_selector_type: TimestampSelectorType::ServerTimestamp,
            timestamp_range: TimestampRange {
                start_timestamp: Timestamp::from_millis(s2),
                end_timestamp: Timestamp::from_millis(s4),
            },
        }),
    };
    let mut pages = 0;
    loop {
        let page = call(&ep, &req).await.unwrap();
        pages += 1;
        listed.extend(page.fragments);
        match page.next_token {
            Some(t) => {
                req.next_token = Some(t);
                req.fragment_selector = None;
            }
            None => break,
        }
    }
    let listed_nums: Vec<String> = listed.iter().map(|f| f.fragment_number.clone()).collect();
    assert_eq!(listed_nums, nums[1..4]);
    assert!(pages >= 3);
    assert!(listed.iter().all(|f| f.fragment_size_in_bytes > 0));
    assert!(
        listed
            .iter()
            .all(|f| f.fragment_length_in_milliseconds >= 290)
    );

    // GetMediaForFragmentList: every fragment; the documents minus their KVS prefix are the
    // producer's bytes after its header, byte for byte.
    let gm = GetMediaForFragmentListRequest {
        stream_name: Some("cam".into()),
        stream_arn: None,
        fragments: nums.clone(),
    };
    let r = call_raw(&ep, &gm).await;
    assert_eq!(r.status(), 200);
    let header_doc_len = ProducerHeader::parse(header.clone())
        .unwrap()
        .document_start_len();
    let mut rebuilt = Vec::new();
    let mut rest: &[u8] = r.body();
    let dd = decode(r.body());
    for (s, _) in &dd.fragments {
        let m = &s.metadata;
        let st = kvs_core::fragment::format_seconds_millis(m.server_timestamp_ms.unwrap());
        let pt = kvs_core::fragment::format_seconds_millis(m.producer_timestamp_ms.unwrap());
        let prefix = header_doc_len
            + kvs_tags_len(&[
                (tag::FRAGMENT_NUMBER, m.fragment_number.as_deref().unwrap()),
                (tag::SERVER_TIMESTAMP, &st),
                (tag::PRODUCER_TIMESTAMP, &pt),
            ]);
        // The document ends where the next EBML header starts.
        let next = rest[4..]
            .windows(4)
            .position(|w| w == [0x1A, 0x45, 0xDF, 0xA3])
            .map_or(rest.len(), |p| p + 4);
        rebuilt.extend_from_slice(&rest[prefix..next]);
        rest = &rest[next..];
    }
    assert_eq!(numbers(&dd), nums);
    assert!(
        rebuilt == body_after_header,
        "stored fragments differ from the producer's bytes"
    );

    // Missing fragments answer in-band.
    let gm = GetMediaForFragmentListRequest {
        stream_name: Some("cam".into()),
        stream_arn: None,
        fragments: vec![
            nums[0].clone(),
            "91343852333181714687576861120838395174634006751".into(),
        ],
    };
    let r = call_raw(&ep, &gm).await;
    let dd = decode(r.body());
    assert_eq!(dd.fragments.len(), 2);
    assert_eq!(
        dd.fragments[1].0.metadata.error_code.as_deref(),
        Some("FRAGMENT_NOT_FOUND")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_timecodes_and_retention_zero() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "rel", 0).await;
    let start = now_ms() - 5_000;
    let mut req = PutMediaRequest::relative("rel", Timestamp::from_millis(start));
    req.fragment_acknowledgment_required = Some(true);
    let mut pm = PutMedia::open(&ep, &req).await;
    assert_eq!(pm.status, 200);
    // Relative producer: cluster timecodes from 0.
    let mut producer = Producer::new(0, false);
    pm.send(&producer.header()).await;
    for _ in 0..3 {
        let f = producer.fragment(5, 100);
        pm.send(&f).await;
    }
    pm.finish().await;
    let mut acks = Vec::new();
    while let Some(a) = pm.next_ack(5).await {
        acks.push(a);
    }
    // Retention 0: no PERSISTED, but RECEIVED for each.
    assert_eq!(
        acks.iter()
            .filter(|a| a.event_type == AckEventType::Received)
            .count(),
        3
    );
    assert!(acks.iter().all(|a| a.event_type != AckEventType::Persisted));
    let r = call_raw(
        &ep,
        &get_media("rel", StartSelector::new(StartSelectorType::Earliest)),
    )
    .await;
    let d = decode(r.body());
    assert_eq!(d.fragments.len(), 3);
    // Producer timestamp = start + cluster timecode.
    assert_eq!(d.fragments[0].0.metadata.producer_timestamp_ms, Some(start));
    assert_eq!(
        d.fragments[1].0.metadata.producer_timestamp_ms,
        Some(start + 5 * 33)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_connection_wins_and_head_errors() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "one", 1).await;
    let mut first = PutMedia::open(&ep, &absolute("one")).await;
    assert_eq!(first.status, 200);
    first.send(&Producer::new(now_ms(), false).header()).await;
    // A rotating producer's successor is accepted while the first still streams.
    let second = PutMedia::open(&ep, &absolute("one")).await;
    assert_eq!(second.status, 200, "{}", second.head);
    let missing = PutMedia::open(&ep, &absolute("nope")).await;
    assert_eq!(missing.status, 404);
    assert!(missing.head.contains("ResourceNotFoundException"));
    server.shutdown().await;
}

/// Two overlapping connections of a rotating producer: the successor's fragments complete
/// before the predecessor's last one, and everything still lands in sequence order; the
/// predecessor opens no new fragment once superseded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_rotation_keeps_every_fragment_in_order() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "rot", 1).await;
    let mut producer = Producer::new(now_ms() - 10_000, false);
    let header = producer.header();
    let mut a = PutMedia::open(&ep, &absolute("rot")).await;
    assert_eq!(a.status, 200);
    assert!(a.send(&header).await);
    let f1 = producer.fragment(5, 200);
    let (f1a, f1b) = f1.split_at(f1.len() / 2);
    assert!(a.send(f1a).await);
    let buffering = a
        .acks_until(|k| k.event_type == AckEventType::Buffering)
        .await;
    assert_eq!(
        buffering.last().unwrap().event_type,
        AckEventType::Buffering
    );

    let mut b = PutMedia::open(&ep, &absolute("rot")).await;
    assert_eq!(b.status, 200, "{}", b.head);
    assert!(b.send(&header).await);
    for _ in 0..2 {
        assert!(b.send(&producer.fragment(5, 200)).await);
    }
    // Both received; not persisted before the predecessor's fragment completes.
    let mut b_acks = b
        .acks_until(|k| k.event_type == AckEventType::Received)
        .await;
    b_acks.extend(
        b.acks_until(|k| k.event_type == AckEventType::Received)
            .await,
    );
    assert!(persisted(&b_acks).is_empty(), "{b_acks:?}");

    // The predecessor ends its fragment, then tries to open another one (ignored).
    let mut junk = Producer::new(now_ms() - 5_000, false);
    assert!(a.send(f1b).await);
    let _ = a.send(&junk.fragment(3, 50)).await;
    a.finish().await;
    let a_acks = a
        .acks_until(|k| k.event_type == AckEventType::Persisted)
        .await;
    let a_nums = persisted(&a_acks);
    assert_eq!(a_nums.len(), 1, "{a_acks:?}");
    b.finish().await;
    while persisted(&b_acks).len() < 2 {
        let more = b
            .acks_until(|k| k.event_type == AckEventType::Persisted)
            .await;
        assert!(!more.is_empty(), "{b_acks:?}");
        b_acks.extend(more);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut nums = a_nums.clone();
    nums.extend(persisted(&b_acks));
    assert!(nums.windows(2).all(|w| w[0] < w[1]), "{nums:?}");
    let all = call_raw(
        &ep,
        &get_media("rot", StartSelector::new(StartSelectorType::Earliest)),
    )
    .await;
    let d = decode(all.body());
    assert_eq!(numbers(&d), nums);
    let frames: Vec<_> = d.fragments.iter().flat_map(|(_, f)| f.clone()).collect();
    assert_eq!(frames.len(), producer.sent_frames.len());
    for (got, sent) in frames.iter().zip(&producer.sent_frames) {
        assert_eq!(got.data, sent.data);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_tampered_or_expired_are_rejected() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "auth", 1).await;
    // A signed header changed after signing.
    let pm = PutMedia::open_with(&ep, &absolute("auth"), std::time::SystemTime::now(), |h| {
        h.insert(
            "x-amzn-stream-name",
            http::HeaderValue::from_static("other"),
        );
    })
    .await;
    assert_eq!(pm.status, 403);
    assert!(pm.head.contains("InvalidSignatureException"));
    // Signed ten minutes ago.
    let old = std::time::SystemTime::now() - Duration::from_secs(600);
    let pm = PutMedia::open_with(&ep, &absolute("auth"), old, |_| {}).await;
    assert_eq!(pm.status, 403);
    // A JSON call with a tampered body and one with a wrong secret.
    let req = DescribeStreamRequest {
        stream_name: Some("auth".into()),
        stream_arn: None,
    };
    let mut http_req = req.to_http(&ep.uri()).unwrap();
    sign_at(&ep, &mut http_req, std::time::SystemTime::now());
    *http_req.body_mut() = Bytes::from_static(b"{\"StreamName\":\"auth2\"}");
    let r = send(&ep, http_req).await;
    assert_eq!(r.status(), 403);
    let mut bad = ep.clone();
    bad.secret = "x".repeat(40);
    let e = call(&bad, &req).await.unwrap_err();
    assert_eq!(e.http_status, 403);
    assert_eq!(e.kind, ApiErrorKind::InvalidSignature, "{e:?}");
    assert!(e.request_id.is_some(), "{e:?}");
    let mut unknown = ep.clone();
    unknown.access_key_id = "AKIAUNKNOWN000000000".into();
    let e = call(&unknown, &req).await.unwrap_err();
    assert_eq!(e.http_status, 403);
    assert_eq!(e.kind, ApiErrorKind::UnrecognizedClient, "{e:?}");
    assert!(!e.message.is_empty());
    let pm = PutMedia::open_with(
        &unknown,
        &absolute("auth"),
        std::time::SystemTime::now(),
        |_| {},
    )
    .await;
    assert_eq!(pm.status, 403);
    assert!(
        pm.head.contains("UnrecognizedClientException"),
        "{}",
        pm.head
    );
    // Unsigned.
    let r = send(&ep, req.to_http(&ep.uri()).unwrap()).await;
    assert_eq!(r.status(), 403);
    // And the signed one works.
    call(&ep, &req).await.unwrap();
    server.shutdown().await;
}

/// An AfterFragmentNumber / ContinuationToken this stream never minted (here one whose sequence
/// bits are all ones) is refused, never a panic or a replay from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_fragment_numbers_are_invalid() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "range", 1).await;
    let mut producer = Producer::new(now_ms() - 10_000, false);
    let mut pm = PutMedia::open(&ep, &absolute("range")).await;
    assert!(pm.send(&producer.header()).await);
    assert!(pm.send(&producer.fragment(3, 50)).await);
    let acks = pm
        .acks_until(|a| a.event_type == AckEventType::Persisted)
        .await;
    let first = persisted(&acks)[0].clone();
    pm.finish().await;
    for text in [
        "91343852333181432387730302044767688728495783935",
        "1",
        "99999999999999999999999999999999999999999999999999",
    ] {
        for ty in [
            StartSelectorType::FragmentNumber,
            StartSelectorType::ContinuationToken,
        ] {
            let mut sel = StartSelector::new(ty);
            if ty == StartSelectorType::FragmentNumber {
                sel.after_fragment_number = Some(text.into());
            } else {
                sel.continuation_token = Some(text.into());
            }
            let r = call_raw(&ep, &get_media("range", sel)).await;
            assert_eq!(r.status(), 400, "{text}: {:?}", r.body());
            let e = ApiError::from_http(&r);
            assert_eq!(e.kind, ApiErrorKind::InvalidArgument, "{text}");
        }
    }
    // A real number still resumes after it (nothing after it yet).
    let mut sel = StartSelector::new(StartSelectorType::FragmentNumber);
    sel.after_fragment_number = Some(first);
    let r = call_raw(&ep, &get_media("range", sel)).await;
    assert_eq!(r.status(), 200);
    assert!(decode(r.body()).fragments.is_empty());
    server.shutdown().await;
}

/// Ten persistent metadata items sent before every fragment (the producer SDK sends them while
/// the previous cluster is still open) count for the next fragment, not the open one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_between_fragments_counts_for_the_next_fragment() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "meta", 1).await;
    let names: Vec<String> = (0..10).map(|i| format!("tag{i}")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    let tags = tags_el(&pairs);
    let now = now_ms() - 10_000;
    let mut pm = PutMedia::open(&ep, &absolute("meta")).await;
    assert!(pm.send(&header_with_tracks(1)).await);
    for i in 0..3u64 {
        assert!(pm.send(&tags).await);
        assert!(
            pm.send(&cluster(now + i * 100, &[(1, 0, true, &[1u8; 50])]))
                .await
        );
    }
    assert!(
        pm.send(&tags_el(&[("AWS_KINESISVIDEO_END_OF_FRAGMENT", "")]))
            .await
    );
    pm.finish().await;
    let mut acks = Vec::new();
    while persisted(&acks).len() < 3 {
        let more = pm
            .acks_until(|a| a.event_type == AckEventType::Persisted)
            .await;
        assert!(!more.is_empty(), "{acks:?}");
        acks.extend(more);
    }
    assert!(
        acks.iter().all(|a| a.event_type != AckEventType::Error),
        "{acks:?}"
    );
    server.shutdown().await;
}

/// A fragment whose write fails (ERROR 5001) is invisible to every reader afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_failure_hides_the_fragment() {
    use kvs_server::store::{FaultPoint, Faults};
    let dir = temp_dir("fault");
    let mut config = kvs_server::ServerConfig::new(dir.join("data"));
    config.port = 0;
    config.limits = fast_limits();
    config.store_faults = Some(Faults(std::sync::Arc::new(|p, _: &std::path::Path| {
        if p == FaultPoint::SegmentSync {
            Err(std::io::Error::other("injected fsync failure"))
        } else {
            Ok(())
        }
    })));
    let server = kvs_server::Server::bind(config).await.unwrap();
    let ep = Endpoint::of(&server);
    create_stream(&ep, "lost", 1).await;
    let mut producer = Producer::new(now_ms() - 10_000, false);
    let mut pm = PutMedia::open(&ep, &absolute("lost")).await;
    assert!(pm.send(&producer.header()).await);
    assert!(pm.send(&producer.fragment(3, 100)).await);
    let acks = pm.acks_until(|a| a.event_type == AckEventType::Error).await;
    let err = acks.last().unwrap();
    assert_eq!(err.event_type, AckEventType::Error, "{acks:?}");
    assert_eq!(
        err.error_id,
        Some(kvs_core::ack::ErrorId::FRAGMENT_ARCHIVAL_ERROR)
    );
    assert!(persisted(&acks).is_empty());
    let all = call_raw(
        &ep,
        &get_media("lost", StartSelector::new(StartSelectorType::Earliest)),
    )
    .await;
    assert!(decode(all.body()).fragments.is_empty());
    let list = call(
        &ep,
        &ListFragmentsRequest {
            stream_name: Some("lost".into()),
            stream_arn: None,
            max_results: None,
            next_token: None,
            fragment_selector: Some(FragmentSelector {
                fragment_selector_type: TimestampSelectorType::ServerTimestamp,
                timestamp_range: TimestampRange {
                    start_timestamp: Timestamp::from_millis(0),
                    end_timestamp: Timestamp::from_millis(now_ms() + 60_000),
                },
            }),
        },
    )
    .await
    .unwrap();
    assert!(list.fragments.is_empty());
    server.shutdown().await;
}

/// While the disk is slow, a connection holds at most `max_pending_fragments` unpersisted
/// fragments: the request body is not read meanwhile (and nothing is lost afterwards).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_fragments_per_connection_are_bounded() {
    use kvs_server::store::{FaultPoint, Faults};
    use std::sync::atomic::{AtomicBool, Ordering};
    let stalled = std::sync::Arc::new(AtomicBool::new(true));
    let s = stalled.clone();
    let dir = temp_dir("slow");
    let mut config = kvs_server::ServerConfig::new(dir.join("data"));
    config.port = 0;
    config.limits = fast_limits();
    config.limits.max_pending_fragments = 2;
    config.store_faults = Some(Faults(std::sync::Arc::new(
        move |p, _: &std::path::Path| {
            while p == FaultPoint::SegmentWrite && s.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        },
    )));
    let server = kvs_server::Server::bind(config).await.unwrap();
    let ep = Endpoint::of(&server);
    create_stream(&ep, "slow", 1).await;
    let mut producer = Producer::new(now_ms() - 10_000, false);
    let mut pm = PutMedia::open(&ep, &absolute("slow")).await;
    assert!(pm.send(&producer.header()).await);
    for _ in 0..12 {
        assert!(pm.send(&producer.fragment(2, 1000)).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut acks = Vec::new();
    while let Ok(a) = pm.acks.try_recv() {
        acks.push(a);
    }
    let received = acks
        .iter()
        .filter(|a| a.event_type == AckEventType::Received)
        .count();
    assert!(
        received <= 3,
        "{received} fragments taken while the disk stalls"
    );
    stalled.store(false, Ordering::SeqCst);
    pm.finish().await;
    while persisted(&acks).len() < 12 {
        let more = pm
            .acks_until(|a| a.event_type == AckEventType::Persisted)
            .await;
        assert!(!more.is_empty(), "{acks:?}");
        acks.extend(more);
    }
    server.shutdown().await;
}

/// Fragment numbers ListFragments gives for `name`, sorted.
async fn listed(ep: &Endpoint, name: &str) -> Vec<String> {
    let mut numbers: Vec<String> = list_all_fragments(ep, name)
        .await
        .into_iter()
        .map(|f| f.fragment_number)
        .collect();
    numbers.sort();
    numbers
}

/// Disk full: a segment write fails with ENOSPC after part of the record reached the file. The
/// fragment gets the ERROR ACK the ingest uses for write failures (5001, never PERSISTED),
/// everything acknowledged before stays readable, the same stream persists new fragments once
/// space is back, and a restart recovers exactly the acknowledged fragments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_fails_the_fragment_and_the_stream_recovers() {
    use kvs_server::store::{FaultPoint, Faults};
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};
    let full = std::sync::Arc::new(AtomicBool::new(false));
    let f = full.clone();
    let dir = temp_dir("enospc");
    let mut config = config_in(&dir, fast_limits());
    config.store_faults = Some(Faults(std::sync::Arc::new(
        move |p, d: &std::path::Path| {
            if p != FaultPoint::SegmentWrite || !f.load(Ordering::SeqCst) {
                return Ok(());
            }
            // Part of the record made it to the file before the disk filled up.
            let newest = std::fs::read_dir(d)?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("seg-"))
                })
                .max();
            if let Some(seg) = newest {
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(seg)?
                    .write_all(b"KVS2\x02\x34\x00\x00\x00partial")?;
            }
            Err(std::io::Error::from_raw_os_error(28))
        },
    )));
    let server = kvs_server::Server::bind(config).await.unwrap();
    let ep = Endpoint::of(&server);
    create_stream(&ep, "full", 1).await;
    let mut acked = put_fragments(&ep, "full", 3).await;

    full.store(true, Ordering::SeqCst);
    let mut producer = Producer::new(now_ms() - 10_000, false);
    let mut pm = PutMedia::open(&ep, &absolute("full")).await;
    assert!(pm.send(&producer.header()).await);
    assert!(pm.send(&producer.fragment(3, 100)).await);
    let acks = pm.acks_until(|a| a.event_type == AckEventType::Error).await;
    let err = acks.last().unwrap();
    assert_eq!(err.event_type, AckEventType::Error, "{acks:?}");
    assert_eq!(
        err.error_id,
        Some(kvs_core::ack::ErrorId::FRAGMENT_ARCHIVAL_ERROR)
    );
    assert!(persisted(&acks).is_empty(), "{acks:?}");
    let mut expected = acked.clone();
    expected.sort();
    assert_eq!(listed(&ep, "full").await, expected);

    // Space is back: the same stream takes and persists new fragments.
    full.store(false, Ordering::SeqCst);
    acked.extend(put_fragments(&ep, "full", 2).await);
    let read = |ep: Endpoint| async move {
        let all = call_raw(
            &ep,
            &get_media("full", StartSelector::new(StartSelectorType::Earliest)),
        )
        .await;
        numbers(&decode(all.body()))
    };
    assert_eq!(read(ep.clone()).await, acked);
    let mut expected = acked.clone();
    expected.sort();
    assert_eq!(listed(&ep, "full").await, expected);
    server.shutdown().await;

    // A restart recovers exactly what was acknowledged.
    let (server, _dir) = start_in(dir, fast_limits()).await;
    let ep = Endpoint::of(&server);
    assert_eq!(listed(&ep, "full").await, expected);
    assert_eq!(read(ep.clone()).await, acked);
    server.shutdown().await;
}
