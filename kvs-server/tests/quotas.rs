//! Opt-in per-stream control-plane TPS quotas: beyond 5 calls per second per stream and operation
//! the server answers ClientLimitExceededException; without the option it never throttles.

mod common;

use std::time::Duration;

use common::*;
use kvs_core::api::{ApiErrorKind, DescribeStreamRequest};

fn describe(name: &str) -> DescribeStreamRequest {
    DescribeStreamRequest {
        stream_name: Some(name.into()),
        stream_arn: None,
    }
}

async fn burst(ep: &Endpoint, name: &str, n: usize) -> (usize, usize) {
    let (mut ok, mut throttled) = (0, 0);
    for _ in 0..n {
        match call(ep, &describe(name)).await {
            Ok(_) => ok += 1,
            Err(e) if e.kind == ApiErrorKind::ClientLimitExceeded => {
                assert_eq!(e.http_status, 400);
                throttled += 1;
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    (ok, throttled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_plane_tps_is_enforced_only_when_asked() {
    // Default: no throttling.
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "q", 1).await;
    assert_eq!(burst(&ep, "q", 20).await, (20, 0));
    server.shutdown().await;

    // --enforce-quotas: a burst of 20 gets about 5 through (plus what refills meanwhile).
    let dir = temp_dir("quotas");
    let mut config = kvs_server::ServerConfig::new(dir.join("data"));
    config.port = 0;
    config.limits = fast_limits();
    config.enforce_quotas = true;
    let server = kvs_server::Server::bind(config).await.unwrap();
    let ep = Endpoint::of(&server);
    create_stream(&ep, "q", 1).await;
    create_stream(&ep, "other", 1).await;
    let (ok, throttled) = burst(&ep, "q", 20).await;
    assert!(throttled > 0 && ok >= 5, "ok {ok}, throttled {throttled}");
    // Per stream: another stream has its own budget.
    assert_eq!(burst(&ep, "other", 5).await.1, 0);
    // The bucket refills.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(burst(&ep, "q", 5).await, (5, 0));
    server.shutdown().await;
}

/// Starts a server with `--enforce-quotas`.
async fn enforcing() -> kvs_server::Server {
    let dir = temp_dir("quotas-media");
    let mut config = kvs_server::ServerConfig::new(dir.join("data"));
    config.port = 0;
    config.limits = fast_limits();
    config.enforce_quotas = true;
    kvs_server::Server::bind(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_media_one_connection_per_stream_and_get_media_tps_when_enforced() {
    use kvs_core::api::{GetMediaRequest, StartSelector, StartSelectorType};
    let server = enforcing().await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "cam", 1).await;
    create_stream(&ep, "other", 1).await;

    // PutMedia: while one connection streams, the next ones are refused (1 per stream), and a
    // burst runs out of its 5 calls per second.
    let mut first = PutMedia::open(&ep, &absolute("cam")).await;
    assert_eq!(first.status, 200, "{}", first.head);
    let mut kinds = Vec::new();
    for _ in 0..8 {
        let second = PutMedia::open(&ep, &absolute("cam")).await;
        assert_eq!(second.status, 400, "{}", second.head);
        let head = second.head.to_ascii_lowercase();
        let kind = head
            .lines()
            .find_map(|l| l.strip_prefix("x-amzn-errortype: "))
            .and_then(|v| v.split(':').next())
            .unwrap()
            .to_owned();
        kinds.push(kind);
    }
    assert!(
        kinds.contains(&"connectionlimitexceededexception".to_owned())
            && kinds.contains(&"clientlimitexceededexception".to_owned()),
        "{kinds:?}"
    );
    // Another stream has its own connection.
    let other = PutMedia::open(&ep, &absolute("other")).await;
    assert_eq!(other.status, 200, "{}", other.head);
    // Once the first connection is over, the stream takes a new one.
    first.finish().await;
    let mut ended = first.ended.clone();
    tokio::time::timeout(Duration::from_secs(20), ended.wait_for(|e| *e))
        .await
        .unwrap()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let next = PutMedia::open(&ep, &absolute("cam")).await;
        if next.status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{}", next.head);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // GetMedia: 5 calls per second per stream (metered before the stream is looked up, as
    // the service's front door does).
    let get = GetMediaRequest {
        stream_name: Some("ghost".into()),
        stream_arn: None,
        start_selector: StartSelector::new(StartSelectorType::Earliest),
    };
    let mut throttled = 0;
    for _ in 0..10 {
        let response = call_raw(&ep, &get).await;
        let kind = response
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if kind.starts_with("ClientLimitExceededException") {
            throttled += 1;
        } else {
            assert_eq!(response.status(), 404, "{kind}");
        }
    }
    assert!(throttled > 0, "GetMedia was never throttled");
    server.shutdown().await;
}
