//! DASH playback against a real server on loopback: the bundled H.264 + AAC sample is put with
//! PutMedia (one fragment per key frame); manifest URLs come from kvs-core's client and from
//! boto3 (`kinesis-video-archived-media` `get_dash_streaming_session_url`); ffprobe counts the
//! frames of the DASH stream and ffmpeg reads it from the URL. Tampered tokens (and HLS tokens)
//! are refused, a key without the action gets no session, and a LIVE manifest is dynamic. Peers
//! (ffprobe/ffmpeg, `$KVS_PYTHON` with boto3) are found on PATH; a missing one skips its part
//! with a message, unless `KVS_REQUIRE_TOOLS=1`.

mod common;

use std::process::Command;

use common::media::*;
use common::*;
use kvs_core::api::{
    DisplayMode, GetDashStreamingSessionUrlRequest, GetHlsStreamingSessionUrlRequest,
    OpenTimestampRange, PlaybackMode, SessionFragmentSelector, Timestamp, TimestampSelectorType,
};

fn on_demand(name: &str, start_ms: u64, end_ms: u64) -> GetDashStreamingSessionUrlRequest {
    GetDashStreamingSessionUrlRequest {
        stream_name: Some(name.into()),
        playback_mode: Some(PlaybackMode::OnDemand),
        dash_fragment_selector: Some(SessionFragmentSelector {
            fragment_selector_type: Some(TimestampSelectorType::ProducerTimestamp),
            timestamp_range: Some(OpenTimestampRange {
                start_timestamp: Some(Timestamp::from_millis(start_ms)),
                end_timestamp: Some(Timestamp::from_millis(end_ms)),
            }),
        }),
        ..Default::default()
    }
}

/// ffprobe's per-stream (codec, frames) of the DASH URL, with no error output.
fn probe(url: &str) -> Option<Vec<(String, u64)>> {
    let mut streams = probe_frames(url)?;
    streams.sort();
    streams.dedup();
    Some(streams)
}

/// The decoded frames of the first audio stream of the DASH URL, read alone.
fn audio_frames(url: &str) -> u64 {
    let ffprobe = find_tool("ffprobe").unwrap();
    let out = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            url,
        ])
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty());
    let text = String::from_utf8(out.stdout).unwrap();
    // (ffprobe may list the stream twice: under its program and on its own.)
    text.lines()
        .next()
        .unwrap_or_default()
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|_| panic!("{text}"))
}

/// The `SegmentURL` media URIs of track `track` in a manifest (XML-unescaped).
fn segment_urls(mpd: &str, track: u64) -> Vec<String> {
    mpd.split("<SegmentURL media=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].replace("&amp;", "&"))
        .filter(|u| u.contains(&format!("&TrackNumber={track}&")))
        .collect()
}

/// boto3's `get_dash_streaming_session_url` (after `get_data_endpoint`) for the stream's last
/// two minutes by server timestamps, or `None` without Python/boto3.
fn boto3_session_url(server: &kvs_server::Server, stream: &str) -> Option<String> {
    let script = archived_media_prelude("GET_DASH_STREAMING_SESSION_URL")
        + r#"
now = datetime.datetime.now(datetime.timezone.utc)
r = am.get_dash_streaming_session_url(StreamName=sys.argv[1], PlaybackMode="ON_DEMAND",
    DASHFragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
        "TimestampRange": {"StartTimestamp": now - datetime.timedelta(minutes=2),
                           "EndTimestamp": now + datetime.timedelta(seconds=1)}},
    DisplayFragmentTimestamp="ALWAYS", DisplayFragmentNumber="ALWAYS",
    MaxManifestFragmentResults=100, Expires=600)
try:
    am.get_dash_streaming_session_url(StreamName=sys.argv[1], PlaybackMode="ON_DEMAND",
        DASHFragmentSelector={"FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": datetime.datetime.fromtimestamp(1, datetime.timezone.utc),
                               "EndTimestamp": datetime.datetime.fromtimestamp(2, datetime.timezone.utc)}})
    raise SystemExit("an empty range did not fail")
except am.exceptions.ResourceNotFoundException as e:
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 404
print(r["DASHStreamingSessionURL"])
"#;
    boto3_output(server, &script, &[stream], "get_dash_streaming_session_url")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_manifests_play_in_ffmpeg_and_tokens_are_checked() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    let (fragments, numbers) = put_sample(&ep, "cam").await;
    let c = client_of(&server);

    // Producer range from fragment 1's start to fragment 3's start: fragments 1, 2 and 3.
    let start = ms(fragments[1][0].timestamp_ns);
    let end = ms(fragments[3][0].timestamp_ns);
    let mut request = on_demand("cam", start, end);
    request.display_fragment_number = Some(DisplayMode::Always);
    let url = c.get_dash_streaming_session_url(&request).await.unwrap();
    assert!(
        url.starts_with(&format!(
            "{}/dash/v1/getDASHManifest.mpd?SessionToken=",
            server.base_url()
        )),
        "{url}"
    );

    // The manifest, fetched as a player does (no signature).
    let r = get(&ep, &url).await;
    assert_eq!(r.status(), 200, "{}", text(&r));
    assert_eq!(r.headers()["content-type"], "application/dash+xml");
    let mpd = text(&r);
    for part in [
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\"",
        "type=\"static\"",
        "mediaPresentationDuration=\"PT",
        "<AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"video/mp4\"",
        "<AdaptationSet id=\"1\" contentType=\"audio\" mimeType=\"audio/mp4\"",
        "codecs=\"avc1.",
        "codecs=\"mp4a.40.2\"",
        "<Initialization sourceURL=\"getMP4InitFragment.mp4?TrackNumber=1&amp;SessionToken=",
        "<SegmentTimeline>",
    ] {
        assert!(mpd.contains(part), "{part} missing:\n{mpd}");
    }
    // DisplayFragmentNumber=ALWAYS: kvs:fn on each S (of both tracks); no kvs:ts unless asked.
    assert_eq!(mpd.matches("<S t=").count(), 6, "{mpd}");
    assert!(!mpd.contains("kvs:ts="), "{mpd}");
    assert_eq!(segment_urls(&mpd, 2).len(), 3, "{mpd}");
    let listed = segment_urls(&mpd, 1);
    assert_eq!(listed.len(), 3, "{mpd}");
    for (line, number) in listed.iter().zip(&numbers[1..=3]) {
        assert!(line.contains(number.as_str()), "{line} vs {number}");
        assert!(mpd.contains(&format!("kvs:fn=\"{number}\"")), "{mpd}");
    }
    let init = get(&ep, &resolve(&url, "getMP4InitFragment.mp4?SessionToken=x")).await;
    assert_eq!(
        init.status(),
        403,
        "a wrong token in a resolved URL is refused"
    );
    let token = url.split_once("SessionToken=").unwrap().1;
    let init = get(
        &ep,
        &resolve(
            &url,
            &format!("getMP4InitFragment.mp4?TrackNumber=1&SessionToken={token}"),
        ),
    )
    .await;
    assert_eq!(init.status(), 200);
    assert_eq!(&init.body()[4..8], b"ftyp");
    let none = get(
        &ep,
        &resolve(
            &url,
            &format!("getMP4InitFragment.mp4?TrackNumber=3&SessionToken={token}"),
        ),
    )
    .await;
    assert_eq!(none.status(), 404, "{}", text(&none));
    let segment = get(&ep, &resolve(&url, &listed[0])).await;
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
        ffmpeg_reads_cleanly(&url, &["-c", "copy"]);
    }

    // boto3, by server timestamps, with timestamps and numbers: every fragment.
    if let Some(boto_url) = boto3_session_url(&server, "cam") {
        let mpd = text(&get(&ep, &boto_url).await);
        assert_eq!(mpd.matches("kvs:ts=\"").count(), 10, "{mpd}");
        assert_eq!(mpd.matches("kvs:fn=\"").count(), 10, "{mpd}");
        if let Some(p) = probe(&boto_url) {
            // ffmpeg's DASH demuxer stops at the first track's end, so the one AAC frame that
            // starts after the last video frame is counted on its own.
            assert_eq!(p[1], ("h264".to_owned(), count(&fragments, 1)));
            assert_eq!(p[0].0, "aac");
            assert_eq!(audio_frames(&boto_url), count(&fragments, 2));
            ffmpeg_reads_cleanly(&boto_url, &["-c", "copy"]);
        }
    }

    // A tampered token is refused (403 NotAuthorizedException), whichever byte changes.
    let prefix = url.split_once("SessionToken=").unwrap().0;
    let mut bytes = token.as_bytes().to_vec();
    for at in [5, token.len() / 2, token.len() - 3] {
        let original = bytes[at];
        bytes[at] = if original == b'A' { b'B' } else { b'A' };
        let bad = format!("{prefix}SessionToken={}", String::from_utf8_lossy(&bytes));
        let r = get(&ep, &bad).await;
        assert_eq!(r.status(), 403, "{}", text(&r));
        assert_eq!(error_type(&r), "NotAuthorizedException");
        assert!(
            text(&r).contains("GetDASHStreamingSessionURL"),
            "{}",
            text(&r)
        );
        bytes[at] = original;
    }
    let r = get(&ep, prefix.trim_end_matches('?')).await;
    assert_eq!(r.status(), 403, "{}", text(&r));

    // A DASH token does not open HLS routes, nor an HLS token DASH ones.
    let hls_url = c
        .get_hls_streaming_session_url(&GetHlsStreamingSessionUrlRequest {
            stream_name: Some("cam".into()),
            playback_mode: request.playback_mode,
            hls_fragment_selector: request.dash_fragment_selector,
            ..Default::default()
        })
        .await
        .unwrap();
    let hls_token = hls_url.split_once("SessionToken=").unwrap().1;
    let r = get(&ep, &format!("{prefix}SessionToken={hls_token}")).await;
    assert_eq!(r.status(), 403, "{}", text(&r));
    let hls_prefix = hls_url.split_once("SessionToken=").unwrap().0;
    let r = get(&ep, &format!("{hls_prefix}SessionToken={token}")).await;
    assert_eq!(r.status(), 403, "{}", text(&r));

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
        .get_dash_streaming_session_url(&on_demand("cam", 1000, 2000))
        .await
        .unwrap_err();
    assert_api_error(&e, "ResourceNotFound");
    let mut live_with_range = on_demand("cam", start, end);
    live_with_range.playback_mode = Some(PlaybackMode::Live);
    let e = c
        .get_dash_streaming_session_url(&live_with_range)
        .await
        .unwrap_err();
    assert_api_error(&e, "InvalidArgument");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_manifest_is_dynamic() {
    let (server, _dir) = start(fast_limits()).await;
    let ep = Endpoint::of(&server);
    let (fragments, numbers) = put_sample(&ep, "live").await;
    let c = client_of(&server);
    let url = c
        .get_dash_streaming_session_url(&GetDashStreamingSessionUrlRequest {
            stream_name: Some("live".into()),
            max_manifest_fragment_results: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    let mpd = text(&get(&ep, &url).await);
    assert!(mpd.contains("type=\"dynamic\""), "{mpd}");
    assert!(mpd.contains("minimumUpdatePeriod=\"PT"), "{mpd}");
    assert!(!mpd.contains("mediaPresentationDuration"), "{mpd}");
    // LIVE lists the newest N fragments.
    let listed = segment_urls(&mpd, 1);
    assert_eq!(listed.len(), 2, "{mpd}");
    let n = fragments.len();
    assert!(listed[0].contains(numbers[n - 2].as_str()), "{mpd}");
    assert!(listed[1].contains(numbers[n - 1].as_str()), "{mpd}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_the_action_gets_no_session() {
    let ini = "[default]\naws_access_key_id = AKIADASHADMIN0000001\naws_secret_access_key = admin\n\
               [hls]\naws_access_key_id = AKIADASHHLS000000001\naws_secret_access_key = hls\n\
               kvs_allow = kinesisvideo:GetHLSStreamingSessionURL, kinesisvideo:GetDataEndpoint\n";
    let (server, _dir) = start_with_credentials(ini, &[]).await.unwrap();
    let admin = Endpoint::of(&server);
    let (fragments, _) = put_sample(&admin, "acl").await;
    let request = on_demand(
        "acl",
        ms(fragments[0][0].timestamp_ns),
        ms(fragments[4][0].timestamp_ns),
    );
    let hls = admin.with_keys("AKIADASHHLS000000001", "hls");
    let e = call(&hls, &request).await.unwrap_err();
    assert_eq!(e.http_status, 401);
    assert!(
        e.message
            .contains("kinesisvideo:GetDASHStreamingSessionURL"),
        "{}",
        e.message
    );
    // The admin may; the URL then plays without any key.
    let url = call(&admin, &request)
        .await
        .unwrap()
        .dash_streaming_session_url;
    assert_eq!(get(&admin, &url).await.status(), 200);
    server.shutdown().await;
}
