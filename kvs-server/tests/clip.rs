//! GetClip against a real server on loopback: the bundled H.264 + AAC sample is put with
//! PutMedia (one fragment per key frame), then clipped by producer and server timestamps with
//! kvs-core's client and with botocore (`kinesis-video-archived-media` `get_clip`). ffprobe
//! counts the clip's frames, ffmpeg decodes it; the service's limits and errors are checked.
//! Peers (ffprobe/ffmpeg, `$KVS_PYTHON` with botocore) are found on PATH; a missing one skips
//! its part with a message, unless `KVS_REQUIRE_TOOLS=1`.

mod common;

use std::process::Command;

use common::media::*;
use common::*;
use kvs_core::api::{FragmentSelector, Timestamp, TimestampRange, TimestampSelectorType};
use kvs_core::client::{Client, ClientError};
use kvs_core::mkv::Frame;

fn selector(kind: TimestampSelectorType, start_ms: u64, end_ms: u64) -> FragmentSelector {
    FragmentSelector {
        fragment_selector_type: kind,
        timestamp_range: TimestampRange {
            start_timestamp: Timestamp::from_millis(start_ms),
            end_timestamp: Timestamp::from_millis(end_ms),
        },
    }
}

async fn get_clip(c: &Client, name: &str, sel: FragmentSelector) -> Result<Vec<u8>, ClientError> {
    let mut body = c.get_clip(name, sel).await?;
    let mut out = Vec::new();
    while let Some(chunk) = body.chunk().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// botocore's `get_clip`: (ContentType, payload), or `None` without Python/botocore.
fn botocore_clip(
    server: &kvs_server::Server,
    stream: &str,
    start_ms: u64,
    end_ms: u64,
) -> Option<(String, Vec<u8>)> {
    let py = python_with("botocore")?;
    let script = r#"
import os, sys, datetime, botocore.session
s = botocore.session.get_session()
kw = dict(region_name=os.environ["AWS_REGION"], aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
          aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])
kv = s.create_client("kinesisvideo", endpoint_url=os.environ["KVS_ENDPOINT"], **kw)
url = kv.get_data_endpoint(StreamName=sys.argv[1], APIName="GET_CLIP")["DataEndpoint"]
am = s.create_client("kinesis-video-archived-media", endpoint_url=url, **kw)
ts = lambda ms: datetime.datetime.fromtimestamp(int(ms) / 1000, datetime.timezone.utc)
r = am.get_clip(StreamName=sys.argv[1], ClipFragmentSelector={
    "FragmentSelectorType": "PRODUCER_TIMESTAMP",
    "TimestampRange": {"StartTimestamp": ts(sys.argv[2]), "EndTimestamp": ts(sys.argv[3])}})
open(sys.argv[4], "wb").write(r["Payload"].read())
try:
    am.get_clip(StreamName=sys.argv[1], ClipFragmentSelector={
        "FragmentSelectorType": "PRODUCER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": ts(1000), "EndTimestamp": ts(2000)}})
    raise SystemExit("an empty range did not fail")
except am.exceptions.ResourceNotFoundException as e:
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
print(r["ContentType"])
"#;
    let out_file = std::env::temp_dir().join(format!("kvs-clip-boto-{}.mp4", std::process::id()));
    let mut cmd = Command::new(&py);
    cmd.args([
        "-c",
        script,
        stream,
        &start_ms.to_string(),
        &end_ms.to_string(),
    ])
    .arg(&out_file);
    let out = aws_env(&mut cmd, server).output().unwrap();
    assert!(
        out.status.success(),
        "botocore get_clip failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = std::fs::read(&out_file).unwrap();
    std::fs::remove_file(&out_file).ok();
    Some((
        String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        body,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clips_of_the_sample_by_producer_and_server_time() {
    let (server, dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    let (fragments, _) = put_sample(&ep, "clip").await;
    let c = client_of(&server);

    // Producer range from the start of fragment 1 to the start of fragment 3 (inclusive, and
    // fragment 3 comes whole): fragments 1, 2 and 3.
    let start = ms(fragments[1][0].timestamp_ns);
    let end = ms(fragments[3][0].timestamp_ns);
    let mp4 = get_clip(
        &c,
        "clip",
        selector(TimestampSelectorType::ProducerTimestamp, start, end),
    )
    .await
    .unwrap();
    assert_eq!(&mp4[4..8], b"ftyp");
    let file = dir.join("clip.mp4");
    std::fs::write(&file, &mp4).unwrap();
    let picked = &fragments[1..=3];
    if let Some(p) = probe_frames(&file) {
        assert_eq!(
            p,
            vec![
                ("h264".to_owned(), count(picked, 1)),
                ("aac".to_owned(), count(picked, 2))
            ]
        );
        ffmpeg_reads_cleanly(&file, &[]);
    }

    // One millisecond later the range starts after fragment 1: it is left out.
    let later = get_clip(
        &c,
        "clip",
        selector(TimestampSelectorType::ProducerTimestamp, start + 1, end),
    )
    .await
    .unwrap();
    let file2 = dir.join("later.mp4");
    std::fs::write(&file2, &later).unwrap();
    if let Some(p) = probe_frames(&file2) {
        assert_eq!(p[0], ("h264".to_owned(), count(&fragments[2..=3], 1)));
    }

    // By server timestamps: everything ingested in the last minute.
    let now = now_ms();
    let all = get_clip(
        &c,
        "clip",
        selector(TimestampSelectorType::ServerTimestamp, now - 60_000, now),
    )
    .await
    .unwrap();
    let file3 = dir.join("all.mp4");
    std::fs::write(&file3, &all).unwrap();
    if let Some(p) = probe_frames(&file3) {
        assert_eq!(p[0], ("h264".to_owned(), count(&fragments, 1)));
        assert_eq!(p[1], ("aac".to_owned(), count(&fragments, 2)));
    }

    // botocore reads the same bytes, as video/mp4.
    if let Some((content_type, body)) = botocore_clip(&server, "clip", start, end) {
        assert_eq!(content_type, "video/mp4");
        assert_eq!(body, mp4);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_errors_and_the_fragment_cap() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    let c = client_of(&server);
    let now = now_ms();
    let producer = TimestampSelectorType::ProducerTimestamp;

    // Retention 0: NoDataRetention.
    create_stream(&ep, "zero", 0).await;
    let e = get_clip(&c, "zero", selector(producer, now - 1000, now))
        .await
        .unwrap_err();
    assert_api_error(&e, "NoDataRetention");

    // Longer than 24 hours: InvalidArgument.
    create_stream(&ep, "cap", 1).await;
    let e = get_clip(&c, "cap", selector(producer, now - 25 * 3_600_000, now))
        .await
        .unwrap_err();
    assert_api_error(&e, "InvalidArgument");

    // Nothing in the range: ResourceNotFound with the service's message.
    let e = get_clip(&c, "cap", selector(producer, now - 1000, now))
        .await
        .unwrap_err();
    assert_eq!(
        api_kind(&e),
        "ResourceNotFound: No fragments found in the stream for the streaming request."
    );

    // 205 one-frame fragments (the sample's first IDR frame each): the clip holds the first 200.
    let (tracks, frames) = sample_ending(60_000);
    let idr = frames
        .iter()
        .find(|f| f.track == 1 && f.keyframe)
        .unwrap()
        .clone();
    let base = (now as i64 - 30_000) * 1_000_000;
    let fragments: Vec<Vec<Frame>> = (0..205)
        .map(|i| {
            let mut f = idr.clone();
            f.timestamp_ns = base + i * 40_000_000;
            vec![f]
        })
        .collect();
    put_all(&ep, "cap", &tracks[..1], &fragments).await;
    let mp4 = get_clip(&c, "cap", selector(producer, now - 60_000, now))
        .await
        .unwrap();
    let moofs = top_level_boxes(&mp4)
        .iter()
        .filter(|b| b == &b"moof")
        .count();
    // One-sample fragments: each moof carries the sample kept back from the fragment before
    // (its duration known only then), and the last one comes with the writer's finish.
    assert_eq!(moofs, 200);
    let file = _dir.join("cap.mp4");
    std::fs::write(&file, &mp4).unwrap();
    if let Some(p) = probe_frames(&file) {
        assert_eq!(p, vec![("h264".to_owned(), 200)]);
    }

    // A stream whose track has no codec private data: MissingCodecPrivateData.
    create_stream(&ep, "nocpd", 1).await;
    put_fragments(&ep, "nocpd", 1).await;
    let e = get_clip(&c, "nocpd", selector(producer, now - 60_000, now_ms()))
        .await
        .unwrap_err();
    assert_api_error(&e, "MissingCodecPrivateData");
    server.shutdown().await;
}

/// The four-character types of an MP4's top-level boxes.
fn top_level_boxes(mp4: &[u8]) -> Vec<[u8; 4]> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= mp4.len() {
        let size = u32::from_be_bytes(mp4[pos..pos + 4].try_into().unwrap()) as usize;
        out.push(mp4[pos + 4..pos + 8].try_into().unwrap());
        assert!(size >= 8);
        pos += size;
    }
    assert_eq!(pos, mp4.len(), "boxes must tile the file");
    out
}
