//! Hostile clients against a live server: malformed HTTP, oversized and trickled headers,
//! endless bodies, hostile JSON, invalid MKV at every layer, stream names aimed at the file
//! system, connection floods. Each gets the service's answer (or the connection is closed), and
//! well-behaved producers on other streams lose nothing meanwhile.

mod common;

use std::time::Duration;

use common::*;
use kvs_core::ack::{AckEventType, ErrorId};

/// Limits shrunk so that the timeouts fire within a test.
fn hostile_limits() -> kvs_server::Limits {
    kvs_server::Limits {
        keep_alive_timeout: Duration::from_millis(1500),
        header_read_timeout: Duration::from_millis(700),
        body_read_timeout: Duration::from_millis(1000),
        tls_handshake_timeout: Duration::from_millis(1000),
        idle_timeout: Duration::from_secs(3),
        max_fragment_bytes: 1024 * 1024,
        ..fast_limits()
    }
}

/// Sends MKV `pieces` on a PutMedia connection to `stream`; the ErrorId of the ERROR ACK (None
/// when the connection ended without one), after checking that the connection then closes.
async fn provoke(ep: &Endpoint, stream: &str, pieces: &[Vec<u8>]) -> Option<u32> {
    let mut pm = PutMedia::open(ep, &absolute(stream)).await;
    assert_eq!(pm.status, 200, "{}", pm.head);
    for p in pieces {
        if !pm.send(p).await {
            break;
        }
    }
    let acks = pm.acks_until(|a| a.event_type == AckEventType::Error).await;
    let err = acks.iter().find(|a| a.event_type == AckEventType::Error);
    let mut ended = pm.ended.clone();
    tokio::time::timeout(Duration::from_secs(10), ended.wait_for(|e| *e))
        .await
        .expect("the connection closes after an ERROR ACK")
        .unwrap();
    err.map(|e| e.error_id.unwrap().code())
}

fn ebml_el(id: &[u8], payload: &[u8]) -> Vec<u8> {
    el(id, payload)
}

const SEGMENT: [u8; 4] = [0x18, 0x53, 0x80, 0x67];
const INFO: [u8; 4] = [0x15, 0x49, 0xA9, 0x66];
const TRACKS: [u8; 4] = [0x16, 0x54, 0xAE, 0x6B];
const CLUSTER: [u8; 4] = [0x1F, 0x43, 0xB6, 0x75];
const EBML: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];

/// The start of a valid stream: EBML header and unknown-size Segment.
fn prologue() -> Vec<u8> {
    let mut v = kvs_core::mkv::writer::EBML_HEADER.to_vec();
    v.extend_from_slice(&kvs_core::mkv::writer::SEGMENT_UNKNOWN_SIZE);
    v
}

/// A SimpleBlock element with a raw block payload (track vint, timecode, flags, data).
fn simple_block(raw: &[u8]) -> Vec<u8> {
    ebml_el(&[0xA3], raw)
}

/// An unknown-size cluster head at `tc`.
fn cluster_head(tc: u64) -> Vec<u8> {
    let mut v = CLUSTER.to_vec();
    v.push(0xFF);
    v.extend(uint_el(&[0xE7], tc));
    v
}

/// Invalid producer streams, one per layer, each with the ERROR ACK it must get.
#[allow(clippy::vec_init_then_push)] // one case per push reads better than one huge literal
fn invalid_mkv_cases(now: u64) -> Vec<(&'static str, Vec<Vec<u8>>, ErrorId)> {
    use ErrorId as E;
    let h1 = header_with_tracks(1);
    let key = |payload: &[u8]| -> Vec<u8> {
        let mut b = vec![0x81, 0, 0, 0x80];
        b.extend_from_slice(payload);
        simple_block(&b)
    };
    let with_header = |rest: Vec<u8>| -> Vec<Vec<u8>> { vec![h1.clone(), rest] };
    let mut cases: Vec<(&'static str, Vec<Vec<u8>>, ErrorId)> = Vec::new();
    cases.push((
        "not EBML at all",
        vec![b"GET / HTTP/1.1\r\n\r\n".repeat(20)],
        E::INVALID_MKV_DATA,
    ));
    // EBML header layer.
    cases.push((
        "EBML header with an invalid size",
        vec![[&EBML[..], &[0x00; 12]].concat()],
        E::INVALID_MKV_DATA,
    ));
    cases.push((
        "EBML header of 2^56 bytes",
        vec![[&EBML[..], &[0x01, 0xFF, 0, 0, 0, 0, 0, 0]].concat()],
        E::INVALID_MKV_DATA,
    ));
    cases.push((
        "EBML header with a 9-byte uint",
        vec![ebml_el(&EBML, &ebml_el(&[0x42, 0x86], &[1; 9]))],
        E::INVALID_MKV_DATA,
    ));
    // Segment layer.
    let mut no_segment = kvs_core::mkv::writer::EBML_HEADER.to_vec();
    no_segment.extend(cluster_head(now));
    cases.push((
        "Cluster without a Segment",
        vec![no_segment],
        E::INVALID_MKV_DATA,
    ));
    let mut two_segments = prologue();
    two_segments.extend_from_slice(&kvs_core::mkv::writer::SEGMENT_UNKNOWN_SIZE);
    cases.push(("second Segment", vec![two_segments], E::INVALID_MKV_DATA));
    let mut seg_huge = kvs_core::mkv::writer::EBML_HEADER.to_vec();
    seg_huge.extend_from_slice(&SEGMENT);
    seg_huge.extend_from_slice(&[0x00, 0x00]);
    cases.push((
        "Segment with an invalid size",
        vec![seg_huge],
        E::INVALID_MKV_DATA,
    ));
    // Info / Tracks layer.
    let mut big_info = prologue();
    big_info.extend_from_slice(&INFO);
    big_info.extend_from_slice(&[0x01, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00]);
    cases.push(("Info of 1 GiB", vec![big_info], E::INVALID_MKV_DATA));
    let mut big_tracks = prologue();
    big_tracks.extend_from_slice(&TRACKS);
    big_tracks.extend_from_slice(&[0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]);
    cases.push(("Tracks of 4 GiB", vec![big_tracks], E::INVALID_MKV_DATA));
    let mut no_number = prologue();
    no_number.extend(ebml_el(
        &TRACKS,
        &ebml_el(&[0xAE], &ebml_el(&[0x86], b"V_MPEG4/ISO/AVC")),
    ));
    no_number.extend(cluster_head(now));
    no_number.extend(key(&[1; 10]));
    cases.push((
        "TrackEntry without TrackNumber",
        vec![no_number],
        E::INVALID_MKV_DATA,
    ));
    let mut unknown_tracks = prologue();
    unknown_tracks.extend_from_slice(&TRACKS);
    unknown_tracks.push(0xFF);
    unknown_tracks.extend(cluster_head(now));
    cases.push((
        "unknown-size Tracks",
        vec![unknown_tracks],
        E::INVALID_MKV_DATA,
    ));
    let mut tracks_in_cluster = h1.clone();
    tracks_in_cluster.extend(cluster_head(now));
    tracks_in_cluster.extend(key(&[1; 10]));
    tracks_in_cluster.extend(header_with_tracks(1).split_off(prologue().len()));
    cases.push((
        "Tracks after the first Cluster",
        vec![tracks_in_cluster],
        E::INVALID_MKV_DATA,
    ));
    // Cluster layer.
    let mut early = prologue();
    early.extend(cluster_head(now));
    early.extend(key(&[1; 10]));
    cases.push(("Cluster before Tracks", vec![early], E::INVALID_MKV_DATA));
    let mut no_tc = CLUSTER.to_vec();
    no_tc.push(0xFF);
    no_tc.extend(key(&[1; 10]));
    cases.push((
        "Cluster without Timecode",
        with_header(no_tc),
        E::INVALID_MKV_DATA,
    ));
    let mut tc9 = CLUSTER.to_vec();
    tc9.push(0xFF);
    tc9.extend(ebml_el(&[0xE7], &[1; 9]));
    cases.push((
        "Cluster Timecode of 9 bytes",
        with_header(tc9),
        E::INVALID_MKV_DATA,
    ));
    let mut ebml_in_cluster = cluster_head(now);
    ebml_in_cluster.extend(key(&[1; 10]));
    ebml_in_cluster.extend_from_slice(&kvs_core::mkv::writer::EBML_HEADER);
    cases.push((
        "EBML header inside a Cluster",
        with_header(ebml_in_cluster),
        E::INVALID_MKV_DATA,
    ));
    let mut bad_id = cluster_head(now);
    bad_id.extend_from_slice(&[0x00, 0x81, 0x00]);
    cases.push((
        "invalid element ID in a Cluster",
        with_header(bad_id),
        E::INVALID_MKV_DATA,
    ));
    let mut deep = cluster_head(now);
    for _ in 0..200 {
        deep.extend_from_slice(&[0xA0, 0xFF]);
    }
    cases.push((
        "BlockGroups nested 200 deep",
        with_header(deep),
        E::INVALID_MKV_DATA,
    ));
    // SimpleBlock layer.
    let mut wrong_track = cluster_head(now);
    wrong_track.extend(simple_block(&[0x89, 0, 0, 0x80, 1, 2, 3]));
    cases.push((
        "SimpleBlock of an undeclared track",
        with_header(wrong_track),
        E::TRACK_NUMBER_MISMATCH,
    ));
    let mut short = cluster_head(now);
    short.extend(simple_block(&[0x81, 0]));
    cases.push((
        "SimpleBlock shorter than its header",
        with_header(short),
        E::INVALID_MKV_DATA,
    ));
    let mut unknown_block = cluster_head(now);
    unknown_block.extend_from_slice(&[0xA3, 0xFF, 0x81, 0, 0, 0x80]);
    cases.push((
        "unknown-size SimpleBlock",
        with_header(unknown_block),
        E::INVALID_MKV_DATA,
    ));
    let mut xiph = cluster_head(now);
    xiph.extend(simple_block(&[
        0x81, 0, 0, 0x82, 3, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2,
    ]));
    cases.push((
        "Xiph lacing with sizes beyond the block",
        with_header(xiph),
        E::INVALID_MKV_DATA,
    ));
    let mut ebml_lace = cluster_head(now);
    ebml_lace.extend(simple_block(&[
        0x81, 0, 0, 0x86, 2, 0x40, 0x10, 0x00, 0x00, 1, 2, 3,
    ]));
    cases.push((
        "EBML lacing with sizes beyond the block",
        with_header(ebml_lace),
        E::INVALID_MKV_DATA,
    ));
    let mut fixed_lace = cluster_head(now);
    fixed_lace.extend(simple_block(&[0x81, 0, 0, 0x84, 2, 1, 2, 3, 4, 5]));
    cases.push((
        "fixed lacing that does not divide the block",
        with_header(fixed_lace),
        E::INVALID_MKV_DATA,
    ));
    let mut huge_block = cluster_head(now);
    huge_block.extend_from_slice(&[0xA3, 0x01, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00]);
    cases.push((
        "SimpleBlock of 1 GiB",
        with_header(huge_block),
        E::INVALID_MKV_DATA,
    ));
    let mut over_limit = cluster_head(now);
    over_limit.extend(key(&vec![7u8; 1100 * 1024]));
    cases.push((
        "fragment beyond max_fragment_bytes",
        with_header(over_limit),
        E::FRAGMENT_SIZE_REACHED,
    ));
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_mkv_at_every_layer_gets_its_error_ack() {
    let (server, _dir) = start(hostile_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "victim", 1).await;
    let mut wrong = Vec::new();
    for (what, pieces, expected) in invalid_mkv_cases(now_ms()) {
        let got = provoke(&ep, "victim", &pieces).await;
        eprintln!("{what}: got {got:?}, expected {}", expected.code());
        if got != Some(expected.code()) {
            wrong.push(format!("{what}: got {got:?}, expected {}", expected.code()));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    // The abused stream still takes a good producer, and another stream too.
    good_producer_round_trip(&ep, "bystander", 3).await;
    server.shutdown().await;
}

/// Requests hyper or the router must refuse; each ends with a 4xx or a closed connection.
fn malformed_requests() -> Vec<(&'static str, Vec<u8>)> {
    let long_uri = format!(
        "POST /{} HTTP/1.1\r\nhost: x\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    vec![
        ("garbage line", b"GARBAGE\r\n\r\n".to_vec()),
        ("binary", vec![0, 1, 2, 3, 0xFF, 0xFE, b'\r', b'\n', b'\r', b'\n']),
        ("HTTP/9.9", b"POST /describeStream HTTP/9.9\r\nhost: x\r\n\r\n".to_vec()),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec()),
        ("header without colon", b"POST /describeStream HTTP/1.1\r\nhost x\r\n\r\n".to_vec()),
        ("NUL in a header", b"POST /describeStream HTTP/1.1\r\nhost: a\0b\r\n\r\n".to_vec()),
        ("space before colon", b"POST /describeStream HTTP/1.1\r\nhost : x\r\n\r\n".to_vec()),
        ("negative length", b"POST /describeStream HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n".to_vec()),
        ("overflowing length", b"POST /describeStream HTTP/1.1\r\nhost: x\r\ncontent-length: 99999999999999999999999\r\n\r\n".to_vec()),
        ("two lengths", b"POST /describeStream HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}".to_vec()),
        ("length and chunked", b"POST /describeStream HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n".to_vec()),
        ("bad chunk size", b"POST /describeStream HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nZZZ\r\n{}\r\n".to_vec()),
        ("chunk size overflow", b"POST /describeStream HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n".to_vec()),
        ("declared 10 MB body", b"POST /describeStream HTTP/1.1\r\nhost: x\r\ncontent-length: 10000000\r\n\r\n{".to_vec()),
        ("64 KiB request line", long_uri.into_bytes()),
        ("unsigned GET", b"GET /describeStream HTTP/1.1\r\nhost: x\r\n\r\n".to_vec()),
        ("PutMedia without signature", b"POST /putMedia HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()),
        ("truncated head", b"POST /describeStream HTTP/1.1\r\nhost: x\r\n".to_vec()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_gets_a_4xx_or_a_closed_connection() {
    let (server, _dir) = start(hostile_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "alive", 1).await;
    let mut set = tokio::task::JoinSet::new();
    for (what, bytes) in malformed_requests() {
        let addr = ep.addr;
        set.spawn(async move {
            (
                what,
                raw_exchange(addr, &bytes, Duration::from_secs(20)).await,
            )
        });
    }
    while let Some(joined) = set.join_next().await {
        let (what, out) = joined.unwrap();
        assert!(
            out.closed,
            "{what}: the server keeps the connection open: {out:?}"
        );
        if let Some(status) = out.status {
            assert!(
                (400..500).contains(&status),
                "{what}: status {status}: {}",
                out.text
            );
        }
    }
    // The declared 10 MB body is refused before it is read, with the AWS error.
    let out = raw_exchange(
        ep.addr,
        b"POST /describeStream HTTP/1.1\r\nhost: x\r\ncontent-length: 10000000\r\n\r\n",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(out.status, Some(400), "{}", out.text);
    assert!(
        out.text.contains("InvalidArgumentException"),
        "{}",
        out.text
    );
    good_producer_round_trip(&ep, "after-malformed", 2).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431() {
    let (server, _dir) = start(hostile_limits()).await;
    let ep = Endpoint::of(&server);
    let big = format!(
        "POST /describeStream HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "v".repeat(20 * 1024)
    );
    let out = raw_exchange(ep.addr, big.as_bytes(), Duration::from_secs(20)).await;
    assert_eq!(out.status, Some(431), "{}", out.text);
    assert!(out.closed);
    let mut many = String::from("POST /describeStream HTTP/1.1\r\nhost: x\r\n");
    for i in 0..150 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let out = raw_exchange(ep.addr, many.as_bytes(), Duration::from_secs(20)).await;
    assert_eq!(out.status, Some(431), "{}", out.text);
    assert!(out.closed);
    // An endless header (no blank line ever) is cut by size too.
    let mut tcp = tokio::net::TcpStream::connect(ep.addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    let _ = tcp
        .write_all(b"POST /describeStream HTTP/1.1\r\nhost: x\r\n")
        .await;
    let line = format!("x-a: {}\r\n", "b".repeat(1000));
    for _ in 0..100 {
        if tcp.write_all(line.as_bytes()).await.is_err() {
            break;
        }
    }
    let out = read_outcome(&mut tcp, Duration::from_secs(20)).await;
    assert!(out.closed && out.status.is_none_or(|s| s == 431), "{out:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_loris_and_idle_connections_are_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, _dir) = start(hostile_limits()).await;
    let ep = Endpoint::of(&server);
    // A head trickled one byte every 50 ms: it would take minutes; the server cuts it.
    let mut tcp = tokio::net::TcpStream::connect(ep.addr).await.unwrap();
    let head = format!(
        "POST /describeStream HTTP/1.1\r\nhost: x\r\n{}",
        "x-pad: y\r\n".repeat(500)
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut cut = false;
    let mut probe = [0u8; 64];
    for b in head.as_bytes() {
        if tcp.write_all(&[*b]).await.is_err() {
            cut = true;
            break;
        }
        // A closed connection shows as EOF (or a reset) on read.
        match tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                cut = true;
                break;
            }
            _ => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the trickle was never cut"
        );
    }
    assert!(cut, "the whole trickled head was accepted");
    // A connection that never sends a byte is closed (keep-alive timeout).
    let out = raw_exchange(ep.addr, b"", Duration::from_secs(20)).await;
    assert!(out.closed && out.status.is_none(), "{out:?}");
    // A keep-alive connection idle after a complete request is closed too.
    let out = raw_exchange(
        ep.addr,
        b"POST /describeStream HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}",
        Duration::from_secs(20),
    )
    .await;
    assert!(out.closed, "{out:?}");
    assert_eq!(out.status, Some(403), "unsigned: {}", out.text);
    // Meanwhile nothing stopped normal service.
    create_stream(&ep, "fine", 1).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_bodies_on_json_calls_are_cut() {
    use tokio::io::AsyncWriteExt;
    let (server, _dir) = start(hostile_limits()).await;
    let ep = Endpoint::of(&server);
    // Fast: chunks until the size limit.
    let tcp = tokio::net::TcpStream::connect(ep.addr).await.unwrap();
    let (rd, mut wr) = tcp.into_split();
    let reader = tokio::spawn(async move {
        let mut rd = rd;
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), async {
            use tokio::io::AsyncReadExt;
            let mut tmp = [0u8; 4096];
            while let Ok(n) = rd.read(&mut tmp).await {
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&tmp[..n]);
            }
        })
        .await;
        String::from_utf8_lossy(&buf).to_string()
    });
    let _ = wr
        .write_all(b"POST /listStreams HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        .await;
    let chunk = format!("10000\r\n{}\r\n", " ".repeat(0x10000));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() && tokio::time::Instant::now() < deadline {
        if wr.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    drop(wr);
    let text = reader.await.unwrap();
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(text.contains("InvalidArgumentException"), "{text}");

    // Slow: a byte every 100 ms never reaches the size limit; the body timeout cuts it.
    let mut tcp = tokio::net::TcpStream::connect(ep.addr).await.unwrap();
    let _ = tcp
        .write_all(b"POST /listStreams HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut probe = [0u8; 4096];
    let mut got = Vec::new();
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow body was never cut"
        );
        let _ = tcp.write_all(b"1\r\n \r\n").await;
        use tokio::io::AsyncReadExt;
        match tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&probe[..n]),
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("RequestTimeoutException"), "{text}");
    good_producer_round_trip(&ep, "after-bodies", 2).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_json_gets_aws_errors_never_a_500() {
    let (server, _dir) = start(hostile_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "s", 1).await;
    let deep = format!(
        "{{\"StreamName\":{}1{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let many_fragments = format!(
        "{{\"StreamName\":\"s\",\"Fragments\":[{}]}}",
        vec!["\"91343852333181432392682062607743920146264172571\""; 5000].join(",")
    );
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("/getMedia", br#"{"StreamName": 5, "StartSelector": {"StartSelectorType": "EARLIEST"}}"#.to_vec()),
        ("/getMedia", br#"{"StreamName": "s", "StartSelector": "EARLIEST"}"#.to_vec()),
        ("/getMedia", br#"{"StreamName": "s", "StartSelector": {"StartSelectorType": "SERVER_TIMESTAMP", "StartTimestamp": 1e400}}"#.to_vec()),
        ("/getMedia", br#"{"StreamName": "s", "StartSelector": {"StartSelectorType": "SERVER_TIMESTAMP", "StartTimestamp": 1e300}}"#.to_vec()),
        ("/getMedia", br#"{"StreamName": "s", "StartSelector": {"StartSelectorType": "PRODUCER_TIMESTAMP", "StartTimestamp": -1e300}}"#.to_vec()),
        ("/getMedia", br#"{"StreamName": "s", "StartSelector": {"StartSelectorType": "FRAGMENT_NUMBER", "AfterFragmentNumber": "99999999999999999999999999999999999999999999999999999999999999"}}"#.to_vec()),
        ("/getMedia", br#"{"StreamName": "s", "StartSelector": {"StartSelectorType": "CONTINUATION_TOKEN", "ContinuationToken": "../../etc/passwd"}}"#.to_vec()),
        ("/getMedia", deep.clone().into_bytes()),
        ("/listFragments", br#"{"StreamName": "s", "MaxResults": 99999999999999999999999999}"#.to_vec()),
        ("/listFragments", br#"{"StreamName": "s", "MaxResults": -1}"#.to_vec()),
        ("/listFragments", br#"{"StreamName": "s", "MaxResults": 1.5}"#.to_vec()),
        ("/listFragments", br#"{"StreamName": "s", "NextToken": "!!!!"}"#.to_vec()),
        ("/listFragments", br#"{"StreamName": "s", "FragmentSelector": {"FragmentSelectorType": "SERVER_TIMESTAMP", "TimestampRange": {"StartTimestamp": 1e300, "EndTimestamp": -1e300}}}"#.to_vec()),
        ("/getMediaForFragmentList", many_fragments.into_bytes()),
        ("/getMediaForFragmentList", br#"{"StreamName": "s", "Fragments": []}"#.to_vec()),
        ("/createStream", br#"{"StreamName": "n1", "DataRetentionInHours": 1e20}"#.to_vec()),
        ("/createStream", br#"{"StreamName": "n2", "DataRetentionInHours": -5}"#.to_vec()),
        ("/createStream", br#"{"StreamName": "n3", "Tags": {"k": 5}}"#.to_vec()),
        ("/describeStream", b"null".to_vec()),
        ("/describeStream", b"[]".to_vec()),
        ("/describeStream", b"\"s\"".to_vec()),
        ("/describeStream", b"{\"StreamName\": \"\xff\xfe\"}".to_vec()),
        ("/describeStream", br#"{"StreamName": "s", "StreamName": "t"}"#.to_vec()),
        ("/describeStream", b"{\"StreamName\": \"s\"".to_vec()),
        ("/listStreams", br#"{"MaxResults": 0, "StreamNameCondition": {"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": 7}}"#.to_vec()),
        ("/updateDataRetention", br#"{"StreamName": "s", "CurrentVersion": "x", "Operation": "INCREASE_DATA_RETENTION", "DataRetentionChangeInHours": 9223372036854775807}"#.to_vec()),
    ];
    for (path, body) in cases {
        let response = signed_json(&ep, path, &body).await;
        let status = response.status().as_u16();
        let kind = error_type(&response);
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(120)
            .collect::<String>();
        assert!(
            (400..500).contains(&status)
                && [
                    "SerializationException",
                    "InvalidArgumentException",
                    "ResourceNotFoundException",
                    "VersionMismatchException",
                ]
                .contains(&kind.as_str()),
            "{path} {shown}: {status} {kind} {:?}",
            response.body()
        );
    }
    good_producer_round_trip(&ep, "after-json", 2).await;
    server.shutdown().await;
}

/// A signed PutMedia head whose `x-amzn-stream-name` is `name` verbatim (bytes the typed
/// request would refuse to build); the status and AWS error name of the answer, and whether
/// the head could be signed.
async fn put_media_named(ep: &Endpoint, name: &[u8]) -> (Option<u16>, String, bool) {
    use kvs_core::sigv4::{SigningCredentials, SigningParams};
    let mut head = http::Request::builder()
        .method("POST")
        .uri(format!("http://{}/putMedia", ep.addr))
        .header("host", ep.addr.to_string())
        .header("x-amzn-fragment-timecode-type", "ABSOLUTE")
        .header("transfer-encoding", "chunked")
        .header("connection", "close")
        .body(())
        .unwrap();
    head.headers_mut().insert(
        "x-amzn-stream-name",
        http::HeaderValue::from_bytes(name).unwrap(),
    );
    let creds = SigningCredentials {
        access_key_id: &ep.access_key_id,
        secret_access_key: &ep.secret,
        session_token: None,
    };
    let params =
        SigningParams::c_producer_put_media(creds, &ep.region, std::time::SystemTime::now());
    // Header values the signer cannot canonicalize go unsigned (and are refused at the door).
    let signed = match kvs_core::sigv4::sign(&head, &params) {
        Ok(out) => out.apply_to_request(&mut head).is_ok(),
        Err(_) => false,
    };
    let mut raw = b"POST /putMedia HTTP/1.1\r\n".to_vec();
    for (k, v) in head.headers() {
        raw.extend_from_slice(k.as_str().as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(v.as_bytes());
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    let out = raw_exchange(ep.addr, &raw, Duration::from_secs(20)).await;
    let kind = out
        .text
        .lines()
        .find_map(|l| l.strip_prefix("x-amzn-errortype: "))
        .and_then(|v| v.split(':').next())
        .unwrap_or_default()
        .to_owned();
    (out.status, kind, signed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_names_never_reach_the_file_system() {
    let root = temp_dir("names");
    let (server, dir) = start_in(root.clone(), hostile_limits()).await;
    let ep = Endpoint::of(&server);
    let long = "x".repeat(300);
    let bad: Vec<&str> = vec![
        "../escape",
        "../../escape",
        "a/b",
        "/abs-escape",
        "a\0b",
        "\0",
        &long,
        "",
        "caméra",
        "a\\b",
        "%2e%2e%2fescape",
        "a b",
        "a\nb",
        "..\u{2215}escape",
    ];
    for name in &bad {
        let body = serde_json::json!({ "StreamName": name, "DataRetentionInHours": 1 }).to_string();
        for path in ["/createStream", "/describeStream", "/deleteStream"] {
            let body = if path == "/deleteStream" {
                serde_json::json!({ "StreamARN": format!("arn:aws:kinesisvideo:us-east-1:000000000000:stream/{name}/1") }).to_string()
            } else {
                body.clone()
            };
            let response = signed_json(&ep, path, body.as_bytes()).await;
            let kind = error_type(&response);
            // The ARN pattern bounds only the whole ARN: a 300-character name inside one is
            // well-formed, names no stream, and is not found (as the service answers).
            let not_found = path == "/deleteStream" && name.len() > 256;
            let expected: &[(u16, &str)] = if not_found {
                &[(404, "ResourceNotFoundException")]
            } else {
                &[
                    (400, "InvalidArgumentException"),
                    (400, "InvalidResourceFormatException"),
                ]
            };
            assert!(
                expected.contains(&(response.status().as_u16(), kind.as_str())),
                "{path} {name:?}: {} {kind} {:?}",
                response.status(),
                response.body()
            );
        }
        if !name.contains(['\0', '\n']) {
            let (status, kind, signed) = put_media_named(&ep, name.as_bytes()).await;
            if signed {
                assert_eq!(status, Some(400), "PutMedia {name:?}");
                assert_eq!(kind, "InvalidArgumentException", "PutMedia {name:?}");
            } else {
                assert!(
                    status.is_some_and(|s| (400..500).contains(&s)),
                    "PutMedia {name:?}"
                );
            }
        }
    }
    // Names that are valid yet look like paths stay names: their directories are hashed.
    for name in ["..", ".", "...", "-", "_.-"] {
        create_stream(&ep, name, 1).await;
    }
    good_producer_round_trip(&ep, "....", 2).await;
    // Nothing outside data/streams but the server's own files; every stream directory is
    // `<creation ms>-<16 hex>`, and no name fragment leaked into any path.
    let top: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(top, ["data"]);
    for entry in std::fs::read_dir(dir.join("data/streams")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        let (ms, hash) = name.split_once('-').unwrap();
        assert!(ms.bytes().all(|b| b.is_ascii_digit()), "{name}");
        assert!(
            hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}"
        );
    }
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().to_string();
            assert!(
                !name.contains("escape") && !name.contains("caméra"),
                "{}",
                entry.path().display()
            );
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    assert!(!root.parent().unwrap().join("escape").exists());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_connections_are_turned_away_then_served_again() {
    let mut limits = hostile_limits();
    limits.max_connections = 4;
    limits.keep_alive_timeout = Duration::from_secs(60);
    let (server, _dir) = start(limits).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "c", 1).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(ep.addr).await.unwrap());
    }
    // Over the cap: a clean 503 ServiceUnavailable, then close (polled: the held connections
    // are accepted asynchronously).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = raw_exchange(
            ep.addr,
            b"POST /describeStream HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}",
            Duration::from_secs(20),
        )
        .await;
        if out.status == Some(503) {
            assert!(out.text.contains("ServiceUnavailable"), "{}", out.text);
            assert!(out.closed);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never turned away: {out:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A slot freed is a slot served (unsigned: the service's 403 shows it got through).
    held.clear();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = raw_exchange(
            ep.addr,
            b"POST /describeStream HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 2\r\n\r\n{}",
            Duration::from_secs(20),
        )
        .await;
        if out.status == Some(403) {
            break;
        }
        assert_eq!(out.status, Some(503), "{}", out.text);
        assert!(tokio::time::Instant::now() < deadline, "never served again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}

/// One round of every abuse, on stream `victim`; returns what each got.
async fn abuse_round(ep: &Endpoint, victim: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let now = now_ms();
    for (what, pieces, expected) in invalid_mkv_cases(now).into_iter().step_by(5) {
        let got = provoke(ep, victim, &pieces).await;
        assert_eq!(got, Some(expected.code()), "{what}");
        seen.push(what.to_owned());
    }
    let (status, _, _) = put_media_named(ep, b"../escape").await;
    assert_eq!(status, Some(400));
    let out = raw_exchange(ep.addr, b"GARBAGE\r\n\r\n", Duration::from_secs(20)).await;
    assert!(out.closed);
    let big = format!(
        "POST /x HTTP/1.1\r\nx-big: {}\r\n\r\n",
        "v".repeat(20 * 1024)
    );
    let out = raw_exchange(ep.addr, big.as_bytes(), Duration::from_secs(20)).await;
    assert_eq!(out.status, Some(431));
    // An idle connection left to the keep-alive timeout.
    let out = raw_exchange(ep.addr, b"POST /describeStream HT", Duration::from_secs(20)).await;
    assert!(out.closed);
    let response = signed_json(ep, "/getMedia", br#"{"StreamName": 5}"#).await;
    assert_eq!(response.status(), 400);
    seen.push("http".into());
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_of_one_stream_does_not_disturb_a_good_producer_on_another() {
    let (server, _dir) = start(hostile_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "victim", 1).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ep2, stop2) = (ep.clone(), stop.clone());
    let hostile = tokio::spawn(async move {
        let mut rounds = 0;
        while !stop2.load(std::sync::atomic::Ordering::SeqCst) || rounds == 0 {
            abuse_round(&ep2, "victim").await;
            rounds += 1;
        }
        rounds
    });
    good_producer_round_trip(&ep, "good", 8).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let rounds = hostile.await.unwrap();
    assert!(rounds >= 1);
    // And after all of it, another producer streams and reads back everything.
    good_producer_round_trip(&ep, "after", 3).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshakes_are_cut() {
    let dir = temp_dir("tls-stall");
    let mut config = kvs_server::ServerConfig::new(dir.join("data"));
    config.port = 0;
    config.limits = hostile_limits();
    config.limits.max_connections = 2;
    // Long enough that the two held handshakes below still hold their slots when probed.
    config.limits.tls_handshake_timeout = Duration::from_millis(2500);
    config.tls = kvs_server::TlsMode::SelfSigned;
    let server = kvs_server::Server::bind(config).await.unwrap();
    let addr = server.local_addr();
    // Nothing at all, and the first bytes of a ClientHello then silence.
    let out = raw_exchange(addr, b"", Duration::from_secs(20)).await;
    assert!(out.closed && out.text.is_empty(), "{out:?}");
    let out = raw_exchange(
        addr,
        &[0x16, 0x03, 0x01, 0x02, 0x00],
        Duration::from_secs(20),
    )
    .await;
    assert!(out.closed, "{out:?}");
    // Over the cap, a TLS connection is closed at once (no plaintext answer).
    let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = raw_exchange(addr, b"", Duration::from_millis(500)).await;
        if out.closed {
            assert!(out.text.is_empty(), "{out:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never closed");
    }
    server.shutdown().await;
}

/// Limits with a global ingest budget of `budget` bytes, 1 MiB fragments, and a wait for budget
/// bytes of `wait` before a connection gets ERROR 5000.
fn budget_limits(budget: u64, wait: Duration) -> kvs_server::Limits {
    kvs_server::Limits {
        max_ingest_bytes: budget,
        ingest_wait_timeout: wait,
        idle_timeout: Duration::from_secs(10),
        ..hostile_limits()
    }
}

/// GetMedia EARLIEST of stream `name`, decoded.
async fn read_back(ep: &Endpoint, name: &str) -> Decoded {
    let request = kvs_core::api::GetMediaRequest {
        stream_name: Some(name.into()),
        stream_arn: None,
        start_selector: kvs_core::api::StartSelector::new(
            kvs_core::api::StartSelectorType::Earliest,
        ),
    };
    let response = call_raw(ep, &request).await;
    assert_eq!(response.status(), 200);
    decode(response.body())
}

/// Polls `server.stats()` until `pred` holds (panics after 30 s: the state never came).
async fn stats_until(
    server: &kvs_server::Server,
    what: &str,
    pred: impl Fn(&kvs_server::ServerStats) -> bool,
) -> kvs_server::ServerStats {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let stats = server.stats();
        assert!(
            stats.ingest_bytes <= stats.ingest_budget_bytes,
            "accounted bytes above the budget: {stats:?}"
        );
        if pred(&stats) {
            return stats;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never {what}: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One producer under a tight budget: streams `count` fragments of `frames` × `payload` bytes to
/// `name`, and like the SDK reconnects and resends from the first fragment not PERSISTED when
/// the server gives up with a retriable ERROR. Returns (fragment number, its frames) of every
/// PERSISTED fragment, and how many connections it took.
async fn budgeted_producer(
    ep: Endpoint,
    name: String,
    count: usize,
    frames: usize,
    payload: usize,
) -> (Vec<(String, Vec<kvs_core::mkv::Frame>)>, usize) {
    let mut producer = Producer::new(now_ms() - 60_000, false);
    let header = producer.header();
    let mut fragments = Vec::new();
    for k in 0..count {
        let bytes = producer.fragment(frames, payload);
        let tc = decode(&[header.as_ref(), bytes.as_ref()].concat()).fragments[0]
            .0
            .cluster_timecode
            .unwrap();
        let sent = producer.sent_frames[k * frames..(k + 1) * frames].to_vec();
        fragments.push((bytes, tc, sent));
    }
    let mut persisted = Vec::new();
    let mut next = 0;
    let mut connections = 0;
    while next < count {
        connections += 1;
        assert!(
            connections <= 40,
            "{name}: no progress after 40 connections"
        );
        let mut pm = PutMedia::open(&ep, &absolute(&name)).await;
        assert_eq!(pm.status, 200, "{}", pm.head);
        let mut ok = pm.send(&header).await;
        for (bytes, _, _) in &fragments[next..] {
            ok = ok && pm.send(bytes).await;
        }
        if ok {
            pm.finish().await;
        }
        let acks = pm.acks_until(|a| a.event_type == AckEventType::Error).await;
        for a in &acks {
            match a.event_type {
                AckEventType::Persisted => {
                    let (_, tc, sent) = &fragments[next];
                    assert_eq!(a.fragment_timecode, Some(*tc), "{name}: {acks:?}");
                    let number = a.fragment_number.clone().unwrap().as_str().to_owned();
                    persisted.push((number, sent.clone()));
                    next += 1;
                }
                AckEventType::Error => {
                    // Only the budget's retriable give-up is expected here.
                    assert_eq!(a.error_id, Some(ErrorId::ACK_INTERNAL_ERROR), "{acks:?}");
                }
                _ => {}
            }
        }
    }
    (persisted, connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_producers_share_a_small_ingest_budget() {
    // 12 producers of ~320 KB fragments against 3 MiB: far more than fits at once. Every one
    // holds part of a fragment and needs more: the budget's reserve lets one finish at a time,
    // so nobody waits out `ingest_wait_timeout` and gets the retriable ERROR 5000.
    let budget = 3 * 1024 * 1024;
    let (server, _dir) = start(budget_limits(budget, Duration::from_secs(3))).await;
    let ep = Endpoint::of(&server);
    let names: Vec<String> = (0..12).map(|i| format!("budget-{i}")).collect();
    for name in &names {
        create_stream(&ep, name, 1).await;
    }
    let tasks: Vec<_> = names
        .iter()
        .map(|name| tokio::spawn(budgeted_producer(ep.clone(), name.clone(), 4, 8, 40_000)))
        .collect();
    let mut results = Vec::new();
    for (name, task) in names.iter().zip(tasks) {
        let (persisted, connections) = task.await.unwrap();
        results.push((name.clone(), persisted, connections));
        let stats = server.stats();
        assert!(stats.ingest_bytes <= budget, "{stats:?}");
    }
    // Every byte charged is given back once the connections are gone.
    let stats = stats_until(&server, "released", |s| s.ingest_bytes == 0).await;
    assert!(stats.ingest_peak_bytes <= budget, "{stats:?}");
    assert!(stats.ingest_peak_bytes > 0, "{stats:?}");
    // Every PERSISTED fragment reads back, frame for frame.
    for (name, persisted, _) in &results {
        assert_eq!(persisted.len(), 4, "{name}");
        let decoded = read_back(&ep, name).await;
        for (number, sent) in persisted {
            let (_, got) = decoded
                .fragments
                .iter()
                .find(|(s, _)| s.metadata.fragment_number.as_deref() == Some(number.as_str()))
                .unwrap_or_else(|| panic!("{name}: PERSISTED {number} not readable"));
            assert_eq!(got.len(), sent.len(), "{name} {number}");
            for (g, s) in got.iter().zip(sent) {
                assert_eq!((g.timestamp_ns, &g.data), (s.timestamp_ns, &s.data));
            }
        }
    }
    let connections: usize = results.iter().map(|r| r.2).sum();
    println!(
        "12 producers × 4 fragments under {budget} bytes: {connections} connections, peak {} bytes",
        stats.ingest_peak_bytes
    );
    // No producer had to retry: one connection each, no ERROR 5000.
    let retried: Vec<_> = results
        .iter()
        .filter(|r| r.2 != 1)
        .map(|r| (&r.0, r.2 - 1))
        .collect();
    assert!(retried.is_empty(), "ERROR 5000 retries: {retried:?}");
    // The server still serves.
    good_producer_round_trip(&ep, "after-budget", 2).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_stalled_by_the_budget_resumes_when_bytes_are_freed() {
    // 1.5 MiB: a held ~900 KB fragment leaves too little for a second one.
    let budget = 3 * 512 * 1024;
    let mut limits = budget_limits(budget, Duration::from_secs(600));
    // The hog stays silent while the other producer is stalled.
    limits.idle_timeout = Duration::from_secs(600);
    let (server, _dir) = start(limits).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "hog", 1).await;
    create_stream(&ep, "stalled", 1).await;
    // The hog sends a whole fragment but its end-of-fragment tags: the server holds it all.
    let mut hog = Producer::new(now_ms() - 60_000, false);
    let hog_fragment = hog.fragment(10, 90_000);
    let (body, tail) = hog_fragment.split_at(hog_fragment.len() - 84);
    let mut a = PutMedia::open(&ep, &absolute("hog")).await;
    assert!(a.send(&hog.header()).await);
    assert!(a.send(body).await);
    stats_until(&server, "holding the hog's fragment", |s| {
        s.ingest_bytes >= body.len() as u64
    })
    .await;
    // A second producer cannot get the bytes for its fragment: it stops being read.
    let mut other = Producer::new(now_ms() - 60_000, false);
    let mut b = PutMedia::open(&ep, &absolute("stalled")).await;
    assert!(b.send(&other.header()).await);
    let other_fragment = other.fragment(10, 90_000);
    let sender = tokio::spawn(async move {
        assert!(b.send(&other_fragment).await);
        b
    });
    stats_until(&server, "stalling the second producer", |s| {
        s.ingest_waiting >= 1
    })
    .await;
    // The hog completes its fragment: once persisted its bytes go back, and the stalled
    // producer goes on.
    assert!(a.send(tail).await);
    let acks = a
        .acks_until(|x| matches!(x.event_type, AckEventType::Persisted | AckEventType::Error))
        .await;
    assert_eq!(
        acks.last().unwrap().event_type,
        AckEventType::Persisted,
        "{acks:?}"
    );
    let mut b = sender.await.unwrap();
    let acks = b
        .acks_until(|x| matches!(x.event_type, AckEventType::Persisted | AckEventType::Error))
        .await;
    assert_eq!(
        acks.last().unwrap().event_type,
        AckEventType::Persisted,
        "{acks:?}"
    );
    let number = acks.last().unwrap().fragment_number.clone().unwrap();
    a.finish().await;
    b.finish().await;
    stats_until(&server, "released", |s| {
        s.ingest_bytes == 0 && s.ingest_waiting == 0
    })
    .await;
    let decoded = read_back(&ep, "stalled").await;
    assert_eq!(decoded.fragments.len(), 1);
    assert_eq!(
        decoded.fragments[0].0.metadata.fragment_number.as_deref(),
        Some(number.as_str())
    );
    assert_eq!(decoded.fragments[0].1.len(), other.sent_frames.len());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_larger_than_the_whole_budget_gets_error_4001() {
    let mut limits = budget_limits(kvs_server::MIN_INGEST_BYTES, Duration::from_secs(600));
    limits.max_fragment_bytes = 8 * 1024 * 1024;
    let (server, _dir) = start(limits).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "too-big", 1).await;
    let mut producer = Producer::new(now_ms() - 60_000, false);
    let pieces = vec![
        producer.header().to_vec(),
        producer.fragment(10, 200_000).to_vec(),
    ];
    let id = provoke(&ep, "too-big", &pieces).await;
    assert_eq!(id, Some(ErrorId::FRAGMENT_SIZE_REACHED.code()));
    stats_until(&server, "released", |s| s.ingest_bytes == 0).await;
    // And a fragment that fits still goes through.
    good_producer_round_trip(&ep, "fits", 2).await;
    server.shutdown().await;
}

/// The bytes of a buffered request as a client writes them.
fn request_bytes(request: &http::Request<bytes::Bytes>) -> Vec<u8> {
    let mut out = format!(
        "{} {} HTTP/1.1\r\n",
        request.method(),
        request.uri().path_and_query().map_or("/", |p| p.as_str())
    )
    .into_bytes();
    for (name, value) in request.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !request.headers().contains_key(http::header::CONTENT_LENGTH) {
        out.extend_from_slice(format!("content-length: {}\r\n", request.body().len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(request.body());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_reading_is_cut_and_frees_its_slot() {
    use kvs_core::api::{ApiOperation, GetMediaRequest, StartSelector, StartSelectorType};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut limits = fast_limits();
    limits.write_stall_timeout = Duration::from_millis(1500);
    limits.max_get_media_connections = 1;
    let (server, _dir) = start(limits).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "stalled", 1).await;
    // About 24 MB stored: more than the socket buffers and the body channel can absorb.
    let mut producer = Producer::new(now_ms() - 60_000, false);
    let mut pm = PutMedia::open(&ep, &absolute("stalled")).await;
    assert_eq!(pm.status, 200, "{}", pm.head);
    pm.send(&producer.header()).await;
    for _ in 0..24 {
        pm.send(&producer.fragment(8, 128 * 1024)).await;
        let acks = pm
            .acks_until(|a| a.event_type == AckEventType::Persisted)
            .await;
        assert_eq!(
            acks.last().map(|a| a.event_type),
            Some(AckEventType::Persisted)
        );
    }
    pm.finish().await;

    // A GetMedia whose client never reads what it asked for.
    let op = GetMediaRequest {
        stream_name: Some("stalled".into()),
        stream_arn: None,
        start_selector: StartSelector::new(StartSelectorType::Earliest),
    };
    let mut request = op.to_http(&ep.uri()).unwrap();
    sign_at(&ep, &mut request, std::time::SystemTime::now());
    let mut stuck = tokio::net::TcpStream::connect(ep.addr).await.unwrap();
    stuck.write_all(&request_bytes(&request)).await.unwrap();

    // While it holds the stream's only GetMedia slot, another reader is refused; once the
    // stalled connection is cut, the slot is free again and the whole stream reads back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut refused = false;
    loop {
        let r = call_raw(&ep, &op).await;
        if r.status() == 200 {
            assert!(refused, "the stalled reader never held its slot");
            assert!(r.body().len() > 24 * 1024 * 1024, "{}", r.body().len());
            break;
        }
        let e = kvs_core::api::ApiError::from_http(&r);
        assert_eq!(
            e.kind,
            kvs_core::api::ApiErrorKind::ConnectionLimitExceeded,
            "{e}"
        );
        refused = true;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled reader was never cut"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And its connection was closed: what was sent before the cut, then the end.
    let mut got = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(30), stuck.read_to_end(&mut got)).await;
    assert!(ended.is_ok(), "the stalled connection is still open");
    assert!(got.len() < 24 * 1024 * 1024, "{}", got.len());
    server.shutdown().await;
}
