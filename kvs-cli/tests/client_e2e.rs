//! The client and the `kvs` CLI against a real `kvs serve` process on loopback: put a file and
//! get it back (frames equal, also through ffprobe), TLS with --tls-self-signed, credentials
//! from a profile file and from the environment, the wrong-secret error, `kvs demo`, and a
//! producer that survives the server being killed and restarted mid-stream.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use bytes::Bytes;
use kvs_core::mkv::Frame;
use kvs_core::mkv::reader::{Event, MkvReader};

const KVS: &str = env!("CARGO_BIN_EXE_kvs");

fn sample_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/media/sample.mkv")
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvs-client-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Server {
    child: Child,
    vars: Vec<(String, String)>,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path, port: u16, tls: bool) -> Server {
    let mut cmd = Command::new(KVS);
    cmd.args(["serve", "--port", &port.to_string(), "--data-dir"])
        .arg(data);
    if tls {
        cmd.arg("--tls-self-signed");
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let export = loop {
        let line = lines.next().expect("banner").unwrap();
        if let Some(rest) = line.strip_prefix("export ") {
            break rest.to_owned();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let vars: Vec<(String, String)> = export
        .split_whitespace()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect();
    let url = &vars
        .iter()
        .find(|(k, _)| k == "AWS_ENDPOINT_URL")
        .unwrap()
        .1;
    let port = url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    Server { child, vars, port }
}

fn var<'a>(s: &'a Server, name: &str) -> &'a str {
    &s.vars.iter().find(|(k, _)| k == name).unwrap().1
}

/// `kvs ARGS` with a clean AWS environment (HOME in `home`) plus `vars`.
fn kvs(home: &Path, vars: &[(String, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new(KVS);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .args(args);
    cmd.output().unwrap()
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "kvs failed: {}\nstdout: {stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn frames_of(data: Vec<u8>) -> Vec<Frame> {
    let mut r = MkvReader::new();
    r.push(Bytes::from(data)).unwrap();
    r.finish();
    let mut frames = Vec::new();
    while let Some(e) = r.poll_event() {
        if let Event::Frame(f) = e.unwrap() {
            frames.push(f);
        }
    }
    frames
}

/// Frames as (track, ms relative to the first frame, keyframe, payload), sorted.
fn normalized(frames: &[Frame]) -> Vec<(u64, i64, bool, Bytes)> {
    let first = frames.iter().map(|f| f.timestamp_ns).min().unwrap_or(0);
    let mut v: Vec<_> = frames
        .iter()
        .map(|f| {
            (
                f.track,
                (f.timestamp_ns - first) / 1_000_000,
                f.keyframe,
                f.data.clone(),
            )
        })
        .collect();
    v.sort();
    v
}

fn tool_missing(tool: &str) -> bool {
    let found = Command::new(tool).arg("-version").output().is_ok();
    if !found {
        assert!(
            std::env::var("KVS_REQUIRE_TOOLS").ok().as_deref() != Some("1"),
            "{tool} is required (KVS_REQUIRE_TOOLS=1) but not on PATH"
        );
        println!("{tool} not found on PATH; skipping that check");
    }
    !found
}

fn put_get(tls: bool) {
    let dir = temp(if tls { "tls" } else { "plain" });
    let server = serve(&dir.join("data"), 0, tls);
    let mut vars = server.vars.clone();
    let ca = dir.join("data/tls/cert.pem");
    let mut global: Vec<String> = Vec::new();
    if tls {
        assert!(var(&server, "AWS_ENDPOINT_URL").starts_with("https://"));
        global = vec!["--ca-cert".into(), ca.to_string_lossy().into_owned()];
    }
    vars.retain(|(k, _)| k != "AWS_PROFILE");
    let g: Vec<&str> = global.iter().map(String::as_str).collect();
    let sample = sample_path();
    let mut args = g.clone();
    args.extend([
        "put",
        "--stream",
        "cam",
        "--create",
        "--quiet",
        "--json",
        sample.to_str().unwrap(),
    ]);
    let report: serde_json::Value =
        serde_json::from_str(ok(&kvs(&dir, &vars, &args)).trim()).unwrap();
    assert_eq!(report["fragments_persisted"], 5, "{report}");
    let out = dir.join("out.mkv");
    let mut args = g.clone();
    args.extend([
        "get",
        "--stream",
        "cam",
        "--start",
        "earliest",
        "-o",
        out.to_str().unwrap(),
    ]);
    ok(&kvs(&dir, &vars, &args));
    let input = frames_of(std::fs::read(&sample).unwrap());
    let output = frames_of(std::fs::read(&out).unwrap());
    assert_eq!(input.len(), output.len());
    assert_eq!(normalized(&input), normalized(&output));

    // fragments table and JSON
    let mut args = g.clone();
    args.extend([
        "fragments",
        "--stream",
        "cam",
        "--from",
        "now-1h",
        "--to",
        "now",
        "--json",
    ]);
    assert_eq!(ok(&kvs(&dir, &vars, &args)).lines().count(), 5);

    // `kvs hls`: an ON_DEMAND HLS URL of everything put (needs no credentials to play).
    let mut args = g.clone();
    args.extend([
        "hls", "--stream", "cam", "--start", "now-1h", "--end", "now", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(ok(&kvs(&dir, &vars, &args)).trim()).unwrap();
    let hls_url = v["HLSStreamingSessionURL"].as_str().unwrap().to_owned();
    assert!(
        hls_url.contains("/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken="),
        "{hls_url}"
    );
    // `kvs dash`: the same, as a DASH manifest URL.
    let mut args = g.clone();
    args.extend([
        "dash", "--stream", "cam", "--start", "now-1h", "--end", "now", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(ok(&kvs(&dir, &vars, &args)).trim()).unwrap();
    let dash_url = v["DASHStreamingSessionURL"].as_str().unwrap().to_owned();
    assert!(
        dash_url.contains("/dash/v1/getDASHManifest.mpd?SessionToken="),
        "{dash_url}"
    );

    if !tool_missing("ffprobe") {
        let probe = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-show_entries",
                "stream=codec_name,nb_read_frames",
                "-of",
                "json",
            ])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            probe.status.success(),
            "{}",
            String::from_utf8_lossy(&probe.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
        let streams = v["streams"].as_array().unwrap();
        let count = |codec: &str| {
            streams
                .iter()
                .find(|s| s["codec_name"] == codec)
                .and_then(|s| s["nb_read_frames"].as_str())
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap()
        };
        let per_track = |t: u64| input.iter().filter(|f| f.track == t).count();
        assert_eq!(count("h264"), per_track(1));
        assert_eq!(count("aac"), per_track(2));

        // ffprobe plays the HLS and DASH URLs (plain HTTP only: it would not trust the self-signed cert).
        for url in [&hls_url, &dash_url].into_iter().filter(|_| !tls) {
            let probe = Command::new("ffprobe")
                .args([
                    "-v",
                    "error",
                    "-count_frames",
                    "-select_streams",
                    "v:0",
                    "-show_entries",
                    "stream=codec_name,nb_read_frames",
                    "-of",
                    "csv=p=0",
                    url,
                ])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&probe.stderr);
            assert!(
                probe.status.success() && stderr.trim().is_empty(),
                "{stderr}"
            );
            let out = String::from_utf8_lossy(&probe.stdout);
            let first = out.lines().next().unwrap_or_default().trim().to_owned();
            assert_eq!(first, format!("h264,{}", per_track(1)), "{out}");
        }
    }
}

#[test]
fn cli_put_get_roundtrip_with_ffprobe() {
    put_get(false);
}

#[test]
fn cli_put_get_over_tls_self_signed() {
    put_get(true);
}

#[test]
fn credentials_from_profile_file_and_wrong_secret() {
    let dir = temp("creds");
    let server = serve(&dir.join("data"), 0, false);
    let key = var(&server, "AWS_ACCESS_KEY_ID").to_owned();
    let secret = var(&server, "AWS_SECRET_ACCESS_KEY").to_owned();
    let endpoint = var(&server, "AWS_ENDPOINT_URL").to_owned();
    std::fs::create_dir_all(dir.join(".aws")).unwrap();
    std::fs::write(
        dir.join(".aws/credentials"),
        format!("[local]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join(".aws/config"),
        "[profile local]\nregion = us-east-1\n",
    )
    .unwrap();
    let base = vec![("AWS_ENDPOINT_URL".to_owned(), endpoint.clone())];
    ok(&kvs(
        &dir,
        &base,
        &["--profile", "local", "streams", "create", "from-profile"],
    ));
    let listed = ok(&kvs(
        &dir,
        &base,
        &["--profile", "local", "streams", "list"],
    ));
    assert!(listed.contains("from-profile"), "{listed}");

    // Environment variables (and they win over nothing else configured).
    let env = vec![
        ("AWS_ENDPOINT_URL".to_owned(), endpoint.clone()),
        ("AWS_ACCESS_KEY_ID".to_owned(), key.clone()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), secret),
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
    ];
    let described = ok(&kvs(
        &dir,
        &env,
        &["streams", "describe", "from-profile", "--json"],
    ));
    assert!(described.contains("\"from-profile\""), "{described}");

    // A wrong secret: a clear error naming the key id and the fix.
    let mut wrong = env.clone();
    wrong[2].1 = "not-the-secret".into();
    let out = kvs(&dir, &wrong, &["streams", "list"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&key), "{err}");
    assert!(err.contains("AWS_SECRET_ACCESS_KEY"), "{err}");
    assert!(err.contains("InvalidSignature"), "{err}");

    // A missing profile says so.
    let out = kvs(&dir, &base, &["--profile", "nope", "streams", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope"));
}

#[test]
fn demo_exits_zero_with_report() {
    let dir = temp("demo");
    let out = kvs(&dir, &[], &["demo"]);
    let stdout = ok(&out);
    assert!(stdout.contains("report:"), "{stdout}");
    assert!(stdout.contains("kvs demo: OK"), "{stdout}");
    assert!(stdout.contains("ACK latency"), "{stdout}");
}

#[test]
fn producer_survives_server_restart() {
    use kvs_core::api::{StartSelector, StartSelectorType};
    use kvs_core::client::Client;
    use kvs_core::credentials::Credentials;
    use kvs_core::session::consumer::ConsumerEvent;

    let dir = temp("restart");
    let data = dir.join("data");
    let mut server = serve(&data, 0, false);
    let port = server.port;
    let endpoint = var(&server, "AWS_ENDPOINT_URL").to_owned();
    let creds = Credentials::new(
        var(&server, "AWS_ACCESS_KEY_ID"),
        var(&server, "AWS_SECRET_ACCESS_KEY"),
    );
    let input = frames_of(std::fs::read(sample_path()).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = Client::builder()
        .endpoint_url(&endpoint)
        .region("us-east-1")
        .credentials(creds)
        .build()
        .unwrap();
    rt.block_on(async {
        client.create_stream("restart", 24).await.unwrap();
        client
            .wait_active("restart", Duration::from_secs(10))
            .await
            .unwrap();
    });
    // Two passes of the sample, shifted into the recent past; the server dies after the first.
    let now_ns = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64)
        * 1_000_000;
    let span = 10_000_000_000i64;
    let first = input.iter().map(|f| f.timestamp_ns).min().unwrap();
    let mut frames = Vec::new();
    for pass in 0..2i64 {
        for f in &input {
            let mut g = f.clone();
            g.timestamp_ns =
                now_ns - 2 * span - 1_000_000_000 + pass * span + (f.timestamp_ns - first);
            frames.push(g);
        }
    }
    let half = input.len();
    let mut producer = rt.block_on(async {
        client
            .producer("restart", {
                let mut r = MkvReader::new();
                r.push(Bytes::from(std::fs::read(sample_path()).unwrap()))
                    .unwrap();
                r.finish();
                let mut t = Vec::new();
                while let Some(e) = r.poll_event() {
                    if let Ok(Event::Track(x)) = e
                        && !t
                            .iter()
                            .any(|o: &kvs_core::mkv::TrackInfo| o.number == x.number)
                    {
                        t.push(*x);
                    }
                }
                t
            })
            .finish_timeout(Duration::from_secs(40))
            .start()
            .unwrap()
    });
    let mut events = producer.take_events().unwrap();
    std::thread::spawn(move || {
        while let Some(e) = events.blocking_recv() {
            if std::env::var("KVS_DEBUG").is_ok() {
                eprintln!("event: {e:?}");
            }
        }
    });
    rt.block_on(async {
        for f in &frames[..half] {
            producer.put_frame(f.clone()).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    // Kill the server and restart it on the same port and data directory.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    rt.block_on(async {
        for f in &frames[half..half + 50] {
            producer.put_frame(f.clone()).await.unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(700));
    let _server2 = serve(&data, port, false);
    let report = rt.block_on(async {
        for f in &frames[half + 50..] {
            producer.put_frame(f.clone()).await.unwrap();
        }
        producer.finish().await.unwrap()
    });
    assert!(report.metrics.connections >= 2, "{:?}", report.metrics);
    assert_eq!(report.frames_dropped, 0);
    // Read everything back: every frame once, no fragment twice.
    let got = rt.block_on(async {
        let mut s = client.get_media(
            "restart",
            StartSelector::new(StartSelectorType::Earliest),
            false,
        );
        let mut got = Vec::new();
        let mut numbers = Vec::new();
        while let Some(e) = s.next_event().await {
            match e.unwrap() {
                ConsumerEvent::Frame(f) => got.push(f),
                ConsumerEvent::Fragment(sum) => numbers.push(sum.metadata.fragment_number.clone()),
                _ => {}
            }
        }
        let mut unique = numbers.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), numbers.len(), "a fragment came twice");
        got
    });
    assert_eq!(normalized(&frames), normalized(&got));
}

/// The README's CLI quick start: `streams create` returns once the stream is ACTIVE, so a `put`
/// without `--create` right after it works; a missing stream and an empty read fail with a
/// message that says what to do, and leave no empty output file behind.
#[test]
fn quick_start_flow_and_its_errors() {
    let dir = temp("quickstart");
    let server = serve(&dir.join("data"), 0, false);
    let vars = server.vars.clone();
    let sample = sample_path();
    let out = dir.join("out.mkv");
    let out_arg = out.to_str().unwrap();

    ok(&kvs(&dir, &vars, &["streams", "create", "cam"]));
    let described = ok(&kvs(&dir, &vars, &["streams", "describe", "cam", "--json"]));
    assert!(described.contains("ACTIVE"), "{described}");

    let empty = kvs(
        &dir,
        &vars,
        &[
            "get", "--stream", "cam", "--start", "earliest", "-o", out_arg,
        ],
    );
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no fragments"));
    assert!(!out.exists(), "no empty MKV is left behind");

    let missing = kvs(
        &dir,
        &vars,
        &["put", "--stream", "nope", sample.to_str().unwrap()],
    );
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("does not exist") && stderr.contains("--create"),
        "{stderr}"
    );

    ok(&kvs(
        &dir,
        &vars,
        &[
            "put",
            "--stream",
            "cam",
            "--quiet",
            sample.to_str().unwrap(),
        ],
    ));
    ok(&kvs(
        &dir,
        &vars,
        &[
            "get", "--stream", "cam", "--start", "earliest", "-o", out_arg,
        ],
    ));
    let input = frames_of(std::fs::read(&sample).unwrap());
    let output = frames_of(std::fs::read(&out).unwrap());
    assert_eq!(normalized(&input), normalized(&output));
}

/// The tracks a recording declares (first TrackEntry of each number).
fn tracks_of(data: Vec<u8>) -> Vec<kvs_core::mkv::TrackInfo> {
    let mut r = MkvReader::new();
    r.push(Bytes::from(data)).unwrap();
    r.finish();
    let mut tracks: Vec<kvs_core::mkv::TrackInfo> = Vec::new();
    while let Some(e) = r.poll_event() {
        if let Ok(Event::Track(t)) = e
            && !tracks.iter().any(|o| o.number == t.number)
        {
            tracks.push(*t);
        }
    }
    tracks
}

/// A producer stopped by the service carries the typed cause in `ClientError::Producer`: the
/// `ApiError` of a PutMedia the server refused (a missing stream), or the `ErrorId` of the ERROR
/// ACK that made it drop a fragment (a declared track without frames: 4011), never only text.
#[test]
fn producer_errors_carry_the_service_cause() {
    use kvs_core::ack::ErrorId;
    use kvs_core::api::ApiErrorKind;
    use kvs_core::client::{Client, ClientError, FinishReport};
    use kvs_core::credentials::Credentials;

    let dir = temp("producer-errors");
    let server = serve(&dir.join("data"), 0, false);
    let client = Client::builder()
        .endpoint_url(var(&server, "AWS_ENDPOINT_URL"))
        .region("us-east-1")
        .credentials(Credentials::new(
            var(&server, "AWS_ACCESS_KEY_ID"),
            var(&server, "AWS_SECRET_ACCESS_KEY"),
        ))
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = std::fs::read(sample_path()).unwrap();
    let tracks = tracks_of(data.clone());
    assert_eq!(tracks.len(), 2, "the sample has a video and an audio track");
    // Video frames only, moved into the recent past.
    let now_ns = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64)
        * 1_000_000;
    let frames = frames_of(data);
    let first = frames.iter().map(|f| f.timestamp_ns).min().unwrap();
    let video: Vec<Frame> = frames
        .into_iter()
        .filter(|f| f.track == tracks[0].number)
        .map(|mut f| {
            f.timestamp_ns += now_ns - 60_000_000_000 - first;
            f
        })
        .collect();
    let put = |stream: &'static str, tracks: Vec<kvs_core::mkv::TrackInfo>| {
        rt.block_on(async {
            let producer = client
                .producer(stream, tracks)
                .finish_timeout(Duration::from_secs(10))
                .start()?;
            for f in &video {
                producer.put_frame(f.clone()).await?;
            }
            producer.finish().await
        })
    };
    let outcome = |r: Result<FinishReport, ClientError>| r.expect_err("the producer must fail");

    // No such stream: the server's 404, typed.
    let missing = outcome(put("missing", tracks[..1].to_vec()));
    match &missing {
        ClientError::Producer {
            api: Some(api),
            ack: None,
            ..
        } => {
            assert_eq!(api.kind, ApiErrorKind::ResourceNotFound, "{missing}");
            assert_eq!(api.http_status, 404);
        }
        other => panic!("expected a producer error with the service's refusal, got {other:?}"),
    }
    assert!(missing.is_kind(&ApiErrorKind::ResourceNotFound));
    assert_eq!(missing.ack_error_id(), None);

    // Both tracks declared, only video sent: every fragment fails with ERROR ACK 4011.
    rt.block_on(async {
        client.create_stream("acks", 1).await.unwrap();
        client
            .wait_active("acks", Duration::from_secs(10))
            .await
            .unwrap();
    });
    let failed = outcome(put("acks", tracks.clone()));
    match &failed {
        ClientError::Producer {
            api: None,
            ack: Some(id),
            message,
        } => {
            assert_eq!(*id, ErrorId::FRAMES_MISSING_FOR_TRACK);
            assert!(message.contains("4011"), "{message}");
        }
        other => panic!("expected a producer error with the ERROR ACK's id, got {other:?}"),
    }
    assert_eq!(
        failed.ack_error_id(),
        Some(ErrorId::FRAMES_MISSING_FOR_TRACK)
    );
    assert!(failed.api_error().is_none() && !failed.is_retryable());
}
