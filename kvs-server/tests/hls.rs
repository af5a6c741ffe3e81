//! HLS playback against a real server on loopback: the bundled H.264 + AAC sample is put with
//! PutMedia (one fragment per key frame); session URLs come from kvs-core's client and from
//! boto3 (`kinesis-video-archived-media` `get_hls_streaming_session_url`); ffprobe counts the
//! frames of the HLS stream and ffmpeg decodes it from the URL. Tampered and expired tokens are
//! refused, a key without the action gets no session, and a LIVE playlist grows as fragments
//! arrive. Peers (ffprobe/ffmpeg, `$KVS_PYTHON` with boto3) are found on PATH; a missing one
//! skips its part with a message, unless `KVS_REQUIRE_TOOLS=1`.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::media::*;
use common::*;
use kvs_core::api::{
    GetHlsStreamingSessionUrlRequest, OpenTimestampRange, PlaybackMode, SessionFragmentSelector,
    Timestamp, TimestampSelectorType,
};

fn on_demand(
    name: &str,
    kind: TimestampSelectorType,
    start_ms: u64,
    end_ms: u64,
) -> GetHlsStreamingSessionUrlRequest {
    GetHlsStreamingSessionUrlRequest {
        stream_name: Some(name.into()),
        playback_mode: Some(PlaybackMode::OnDemand),
        hls_fragment_selector: Some(SessionFragmentSelector {
            fragment_selector_type: Some(kind),
            timestamp_range: Some(OpenTimestampRange {
                start_timestamp: Some(Timestamp::from_millis(start_ms)),
                end_timestamp: Some(Timestamp::from_millis(end_ms)),
            }),
        }),
        ..Default::default()
    }
}

/// ffprobe's per-stream (codec, frames) of the HLS URL, with no error output.
fn probe(url: &str) -> Option<Vec<(String, u64)>> {
    let mut streams = probe_frames(url)?;
    // ffprobe lists an HLS variant's streams twice (under the program and on their own).
    streams.sort();
    streams.dedup();
    Some(streams)
}

/// The video packets' decode times (seconds) ffprobe reads from the HLS URL.
fn video_dts(url: &str) -> Option<Vec<f64>> {
    let ffprobe = find_tool("ffprobe")?;
    let out = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=dts_time",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
            .collect(),
    )
}

/// ffmpeg reads (stream copy) and decodes the HLS URL with no error output.
fn plays_cleanly(url: &str) {
    ffmpeg_reads_cleanly(url, &["-c", "copy"]);
    ffmpeg_reads_cleanly(url, &[]);
}

/// boto3's `get_hls_streaming_session_url` (after `get_data_endpoint`), or `None` without
/// Python/boto3. `args`: stream, selector type, start ms, end ms.
fn boto3_session_url(server: &kvs_server::Server, args: &[&str]) -> Option<String> {
    let script = archived_media_prelude("GET_HLS_STREAMING_SESSION_URL")
        + r#"
ts = lambda ms: datetime.datetime.fromtimestamp(int(ms) / 1000, datetime.timezone.utc)
r = am.get_hls_streaming_session_url(StreamName=sys.argv[1], PlaybackMode="ON_DEMAND",
    HLSFragmentSelector={"FragmentSelectorType": sys.argv[2],
        "TimestampRange": {"StartTimestamp": ts(sys.argv[3]), "EndTimestamp": ts(sys.argv[4])}},
    DisplayFragmentTimestamp="ALWAYS", Expires=600)
try:
    am.get_hls_streaming_session_url(StreamName=sys.argv[1], PlaybackMode="ON_DEMAND",
        HLSFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": ts(1000), "EndTimestamp": ts(2000)}})
    raise SystemExit("an empty range did not fail")
except am.exceptions.ResourceNotFoundException as e:
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
try:
    am.get_hls_streaming_session_url(StreamName=sys.argv[1], ContainerFormat="MPEG_TS")
    raise SystemExit("MPEG_TS did not fail")
except am.exceptions.InvalidArgumentException:
    pass
print(r["HLSStreamingSessionURL"])
"#;
    boto3_output(server, &script, args, "get_hls_streaming_session_url")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_sessions_play_in_ffmpeg_and_tokens_are_checked() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    let (fragments, numbers) = put_sample(&ep, "cam").await;
    let c = client_of(&server);

    // Producer range from fragment 1's start to fragment 3's start: fragments 1, 2 and 3.
    let start = ms(fragments[1][0].timestamp_ns);
    let end = ms(fragments[3][0].timestamp_ns);
    let url = c
        .get_hls_streaming_session_url(&on_demand(
            "cam",
            TimestampSelectorType::ProducerTimestamp,
            start,
            end,
        ))
        .await
        .unwrap();
    assert!(
        url.starts_with(&format!(
            "{}/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=",
            server.base_url()
        )),
        "{url}"
    );

    // The playlists, fetched as a player does (no signature).
    let master = get(&ep, &url).await;
    assert_eq!(master.status(), 200, "{}", text(&master));
    let master = text(&master);
    assert!(master.starts_with("#EXTM3U\n"), "{master}");
    assert!(master.contains("CODECS=\"avc1."), "{master}");
    assert!(master.contains("mp4a.40.2"), "{master}");
    let media_line = master.lines().find(|l| !l.starts_with('#')).unwrap();
    let media = get(&ep, &resolve(&url, media_line)).await;
    assert_eq!(media.status(), 200);
    let media = text(&media);
    for tag in [
        "#EXT-X-VERSION:7",
        "#EXT-X-TARGETDURATION:",
        "#EXT-X-MEDIA-SEQUENCE:1",
        "#EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken=",
        "#EXT-X-ENDLIST",
    ] {
        assert!(media.contains(tag), "{tag} missing:\n{media}");
    }
    // PRODUCER selector: no discontinuities by default; no date-times unless asked.
    assert!(!media.contains("#EXT-X-DISCONTINUITY\n"), "{media}");
    assert!(!media.contains("PROGRAM-DATE-TIME"), "{media}");
    let listed: Vec<&str> = media
        .lines()
        .filter(|l| l.starts_with("getMP4MediaFragment.mp4?FragmentNumber="))
        .collect();
    assert_eq!(listed.len(), 3, "{media}");
    for (line, number) in listed.iter().zip(&numbers[1..=3]) {
        assert!(line.contains(number.as_str()), "{line} vs {number}");
    }
    // A media fragment is one moof + mdat.
    let segment = get(&ep, &resolve(&url, listed[0])).await;
    assert_eq!(segment.status(), 200);
    assert_eq!(&segment.body()[4..8], b"moof");

    let picked = &fragments[1..=3];
    if let Some(p) = probe(&url) {
        assert_eq!(
            p,
            vec![
                ("aac".to_owned(), count(picked, 2)),
                ("h264".to_owned(), count(picked, 1)),
            ]
        );
        plays_cleanly(&url);
        // Decode times run on across fragments: strictly increasing, spanning the three
        // fragments' frames (25 fps) without jumps.
        let dts = video_dts(&url).unwrap();
        assert_eq!(dts.len() as u64, count(picked, 1));
        assert!(
            dts.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] < 0.1),
            "{dts:?}"
        );
    }

    // boto3, by server timestamps (DiscontinuityMode ALWAYS by default) and with date-times:
    // every fragment.
    // (botocore sends whole seconds: the end is rounded up past the last ingestion.)
    let now = now_ms() + 1000;
    if let Some(boto_url) = boto3_session_url(
        &server,
        &[
            "cam",
            "SERVER_TIMESTAMP",
            &(now - 120_000).to_string(),
            &now.to_string(),
        ],
    ) {
        let master = text(&get(&ep, &boto_url).await);
        let media_line = master.lines().find(|l| !l.starts_with('#')).unwrap();
        let media = text(&get(&ep, &resolve(&boto_url, media_line)).await);
        assert_eq!(
            media.matches("#EXT-X-DISCONTINUITY\n").count(),
            5,
            "{media}"
        );
        assert_eq!(
            media.matches("#EXT-X-PROGRAM-DATE-TIME:").count(),
            5,
            "{media}"
        );
        if let Some(p) = probe(&boto_url) {
            assert_eq!(
                p,
                vec![
                    ("aac".to_owned(), count(&fragments, 2)),
                    ("h264".to_owned(), count(&fragments, 1)),
                ]
            );
            plays_cleanly(&boto_url);
        }
    }

    // A tampered token is refused (403 NotAuthorizedException), whichever byte changes.
    let (prefix, token) = url.split_once("SessionToken=").unwrap();
    let mut bytes = token.as_bytes().to_vec();
    for at in [5, token.len() / 2, token.len() - 3] {
        let original = bytes[at];
        bytes[at] = if original == b'A' { b'B' } else { b'A' };
        let bad = format!("{prefix}SessionToken={}", String::from_utf8_lossy(&bytes));
        let r = get(&ep, &bad).await;
        assert_eq!(r.status(), 403, "{}", text(&r));
        assert_eq!(error_type(&r), "NotAuthorizedException");
        bytes[at] = original;
    }
    for bad in [
        format!("{prefix}SessionToken="),
        prefix.trim_end_matches('?').to_owned(),
        format!("{prefix}SessionToken={}", token.split('.').next().unwrap()),
    ] {
        let r = get(&ep, &bad).await;
        assert_eq!(r.status(), 403, "{bad}: {}", text(&r));
    }
    // A fragment outside the session's range is not served by it.
    let outside = resolve(
        &url,
        &format!(
            "getMP4MediaFragment.mp4?FragmentNumber={}&SessionToken={token}",
            numbers[0]
        ),
    );
    assert_eq!(get(&ep, &outside).await.status(), 404);

    // Service errors of the session call.
    let e = c
        .get_hls_streaming_session_url(&on_demand(
            "cam",
            TimestampSelectorType::ProducerTimestamp,
            1000,
            2000,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        api_kind(&e),
        "ResourceNotFound: No fragments found in the stream for the streaming request."
    );
    let mut ts = on_demand("cam", TimestampSelectorType::ProducerTimestamp, start, end);
    ts.container_format = Some(kvs_core::api::ContainerFormat::MpegTs);
    let e = c.get_hls_streaming_session_url(&ts).await.unwrap_err();
    assert_api_error(&e, "InvalidArgument");
    let mut live_with_range =
        on_demand("cam", TimestampSelectorType::ProducerTimestamp, start, end);
    live_with_range.playback_mode = Some(PlaybackMode::Live);
    let e = c
        .get_hls_streaming_session_url(&live_with_range)
        .await
        .unwrap_err();
    assert_api_error(&e, "InvalidArgument");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_expires() {
    let clock = Arc::new(kvs_server::ManualClock::new(now_ms()));
    let (server, _dir) =
        start_in_with_clock(temp_dir("hls-exp"), fast_limits(), clock.clone()).await;
    let ep = Endpoint::of(&server);
    let (fragments, _) = put_sample(&ep, "exp").await;
    let c = client_of(&server);
    let mut request = on_demand(
        "exp",
        TimestampSelectorType::ProducerTimestamp,
        ms(fragments[0][0].timestamp_ns),
        ms(fragments[4][0].timestamp_ns),
    );
    request.expires = Some(300);
    let url = c.get_hls_streaming_session_url(&request).await.unwrap();
    assert_eq!(get(&ep, &url).await.status(), 200);
    clock.advance(Duration::from_secs(299));
    assert_eq!(get(&ep, &url).await.status(), 200);
    clock.advance(Duration::from_secs(1));
    let r = get(&ep, &url).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_type(&r), "NotAuthorizedException");
    assert!(
        text(&r).contains("Streaming session token is expired"),
        "{}",
        text(&r)
    );
    // Expires outside 300..43200 is refused.
    request.expires = Some(299);
    let e = c.get_hls_streaming_session_url(&request).await.unwrap_err();
    assert_api_error(&e, "InvalidArgument");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_the_action_gets_no_session() {
    let ini = "[default]\naws_access_key_id = AKIAHLSADMIN00000001\naws_secret_access_key = admin\n\
               [clips]\naws_access_key_id = AKIAHLSCLIPS00000001\naws_secret_access_key = clips\n\
               kvs_allow = kinesisvideo:GetClip, kinesisvideo:GetDataEndpoint\n";
    let (server, _dir) = start_with_credentials(ini, &[]).await.unwrap();
    let admin = Endpoint::of(&server);
    let (fragments, _) = put_sample(&admin, "acl").await;
    let request = on_demand(
        "acl",
        TimestampSelectorType::ProducerTimestamp,
        ms(fragments[0][0].timestamp_ns),
        ms(fragments[4][0].timestamp_ns),
    );
    let clips = admin.with_keys("AKIAHLSCLIPS00000001", "clips");
    let e = call(&clips, &request).await.unwrap_err();
    assert_eq!(e.http_status, 401);
    assert!(
        e.message.contains("kinesisvideo:GetHLSStreamingSessionURL"),
        "{}",
        e.message
    );
    // The admin may; the URL then plays without any key.
    let url = call(&admin, &request)
        .await
        .unwrap()
        .hls_streaming_session_url;
    assert_eq!(get(&admin, &url).await.status(), 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_playlist_grows_as_fragments_arrive() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    create_stream(&ep, "live", 1).await;
    let (tracks, frames) = sample_ending(1_000);
    let fragments = split_at_key_frames(&frames);
    let mut putter = SamplePutter::open(&ep, "live", &tracks).await;
    let c = client_of(&server);
    let live = GetHlsStreamingSessionUrlRequest {
        stream_name: Some("live".into()),
        max_media_playlist_fragment_results: Some(3),
        ..Default::default()
    };
    // Nothing ingested yet: no LIVE session.
    let e = c.get_hls_streaming_session_url(&live).await.unwrap_err();
    assert_api_error(&e, "ResourceNotFound");

    let first = putter.put(&fragments[0]).await;
    let url = c.get_hls_streaming_session_url(&live).await.unwrap();
    let master = text(&get(&ep, &url).await);
    let media_url = resolve(&url, master.lines().find(|l| !l.starts_with('#')).unwrap());
    let media = text(&get(&ep, &media_url).await);
    assert!(media.contains(&first), "{media}");
    assert!(!media.contains("#EXT-X-ENDLIST"), "{media}");
    let mut numbers = vec![first];
    for f in &fragments[1..] {
        numbers.push(putter.put(f).await);
        let newest = numbers.last().unwrap().clone();
        // Poll until the playlist lists the new fragment.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let media = loop {
            let media = text(&get(&ep, &media_url).await);
            if media.contains(&newest) {
                break media;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never listed:\n{media}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // The window holds the newest three at most.
        let listed = media.matches("getMP4MediaFragment.mp4").count();
        assert_eq!(listed, numbers.len().min(3), "{media}");
        assert!(
            !media.contains(&numbers[0]) || numbers.len() <= 3,
            "{media}"
        );
    }
    putter.finish().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_fragment_that_does_not_open_is_never_served() {
    // No cache: every read goes to the sealed records on disk.
    let limits = kvs_server::Limits {
        cache_bytes: 0,
        ..fast_limits()
    };
    let (server, dir) = start(limits).await;
    let ep = Endpoint::of(&server);
    let (fragments, numbers) = put_sample(&ep, "sealed").await;
    let c = client_of(&server);
    let url = c
        .get_hls_streaming_session_url(&on_demand(
            "sealed",
            TimestampSelectorType::ProducerTimestamp,
            ms(fragments[0][0].timestamp_ns),
            ms(fragments[4][0].timestamp_ns),
        ))
        .await
        .unwrap();
    let segment_url = |n: &str| {
        let token = url.split_once("SessionToken=").unwrap().1;
        resolve(
            &url,
            &format!("getMP4MediaFragment.mp4?FragmentNumber={n}&SessionToken={token}"),
        )
    };
    assert_eq!(get(&ep, &segment_url(&numbers[4])).await.status(), 200);
    // One byte of the last fragment's sealed body changes on disk.
    let seg = only_segment(&dir, "sealed");
    let (_, last) = segment_records(&seg).last().unwrap().clone();
    flip(&seg, last.start + 100);
    let r = get(&ep, &segment_url(&numbers[4])).await;
    assert_eq!(r.status(), 500, "{}", text(&r));
    assert_eq!(error_type(&r), "InternalFailure");
    assert!(!r.body().windows(4).any(|w| w == b"moof"));
    // The others still play.
    assert_eq!(get(&ep, &segment_url(&numbers[3])).await.status(), 200);
    server.shutdown().await;
}
