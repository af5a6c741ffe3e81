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
