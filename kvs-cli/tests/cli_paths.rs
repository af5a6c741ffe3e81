//! The client and CLI paths the first end-to-end tests left out, each against a real
//! `kvs serve` process on loopback: raw Annex-B H.264/H.265 puts, `get --raw`, `get --follow`,
//! `put --realtime`, `put -` from stdin, the `streams` maintenance subcommands, the blocking
//! client and producer, the IoT credentials provider over mutual TLS (with refresh), and
//! producer backpressure against a stalled server.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use kvs_core::client::{Client, IotConfig};
use kvs_core::credentials::Credentials;
use kvs_core::media::VideoCodec;
use kvs_core::media::access_unit::split_access_units;
use kvs_core::media::nal::annexb_to_avcc;
use kvs_core::mkv::reader::{Event, MkvReader};
use kvs_core::mkv::{Frame, TrackInfo};

const KVS: &str = env!("CARGO_BIN_EXE_kvs");

fn media(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/media")
        .join(name)
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kvs-paths-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Server {
    child: Child,
    vars: Vec<(String, String)>,
}

impl Drop for Server {
    fn drop(&mut self) {
        // A test that stopped the server must not leave it stopped.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn var(&self, name: &str) -> String {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("the banner has no {name}"))
    }

    fn credentials(&self) -> Credentials {
        Credentials::new(
            self.var("AWS_ACCESS_KEY_ID"),
            self.var("AWS_SECRET_ACCESS_KEY"),
        )
    }

    fn client(&self) -> Client {
        Client::builder()
            .endpoint_url(self.var("AWS_ENDPOINT_URL"))
            .region(self.var("AWS_REGION"))
            .credentials(self.credentials())
            .build()
            .unwrap()
    }
}

fn serve(dir: &Path) -> Server {
    serve_with(dir, &[])
}

fn serve_with(dir: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(KVS)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.join("data"))
        .args(extra)
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
    std::thread::spawn(move || for _ in lines {});
    let vars = export
        .split_whitespace()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .filter(|(k, _)| k != "AWS_PROFILE")
        .collect();
    Server { child, vars }
}

/// `kvs ARGS` with a clean AWS environment plus the server's variables.
fn kvs_cmd(home: &Path, server: &Server, args: &[&str]) -> Command {
    let mut cmd = Command::new(KVS);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home)
        .envs(server.vars.iter().map(|(k, v)| (k, v)))
        .args(args);
    cmd
}

fn kvs(home: &Path, server: &Server, args: &[&str]) -> Output {
    kvs_cmd(home, server, args).output().unwrap()
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

fn json(out: &Output) -> serde_json::Value {
    let text = ok(out);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
}

/// Tracks, frames and per-fragment metadata of an MKV file or GetMedia stream.
struct Parsed {
    tracks: Vec<TrackInfo>,
    frames: Vec<Frame>,
    fragments: Vec<kvs_core::mkv::reader::FragmentSummary>,
}

fn parse(data: Vec<u8>) -> Parsed {
    let mut r = MkvReader::new();
    r.push(Bytes::from(data)).unwrap();
    r.finish();
    let mut p = Parsed {
        tracks: Vec::new(),
        frames: Vec::new(),
        fragments: Vec::new(),
    };
    while let Some(e) = r.poll_event() {
        match e.unwrap() {
            Event::Track(t) => p.tracks.push(*t),
            Event::Frame(f) => p.frames.push(f),
            Event::FragmentEnd(s) => p.fragments.push(*s),
            _ => {}
        }
    }
    p
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

fn create(home: &Path, server: &Server, stream: &str) {
    ok(&kvs(home, server, &["streams", "create", stream]));
}

/// Checks that `stream` holds exactly the access units of `annexb`, in AVCC/HVCC form.
fn assert_stream_equals_annexb(
    home: &Path,
    server: &Server,
    stream: &str,
    annexb: &[u8],
    codec: VideoCodec,
) {
    let units = split_access_units(codec, annexb).unwrap();
    assert!(
        units[0].keyframe,
        "the test input must start with a key frame"
    );
    let out = home.join(format!("{stream}.mkv"));
    ok(&kvs(
        home,
        server,
        &["get", "--stream", stream, "-o", out.to_str().unwrap()],
    ));
    let got = parse(std::fs::read(&out).unwrap());
    assert_eq!(got.tracks[0].codec_id, codec.codec_id());
    assert_eq!(got.frames.len(), units.len(), "frame count of {stream}");
    let want_keys: Vec<usize> = (0..units.len()).filter(|&i| units[i].keyframe).collect();
    let got_keys: Vec<usize> = (0..got.frames.len())
        .filter(|&i| got.frames[i].keyframe)
        .collect();
    assert_eq!(got_keys, want_keys, "key frames of {stream}");
    for (i, (f, u)) in got.frames.iter().zip(&units).enumerate() {
        assert_eq!(
            &f.data[..],
            &annexb_to_avcc(&u.data).unwrap()[..],
            "payload {i} of {stream}"
        );
    }
    // 25 fps: frames are 40 ms apart.
    let t0 = got.frames[0].timestamp_ns;
    let last = got.frames.last().unwrap().timestamp_ns;
    assert_eq!((last - t0) / 1_000_000, (units.len() as i64 - 1) * 40);
}

#[test]
fn put_raw_h264_and_h265_elementary_streams() {
    let dir = temp("annexb");
    let server = serve(&dir);
    create(&dir, &server, "h264");
    let sample = media("sample.h264");
    ok(&kvs(
        &dir,
        &server,
        &[
            "put",
            "--stream",
            "h264",
            "--fps",
            "25",
            "--quiet",
            sample.to_str().unwrap(),
        ],
    ));
    let annexb = std::fs::read(&sample).unwrap();
    assert_stream_equals_annexb(&dir, &server, "h264", &annexb, VideoCodec::H264);

    if tool_missing("ffmpeg") {
        return;
    }
    let hevc = dir.join("in.h265");
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-t",
            "2",
        ])
        .args([
            "-c:v",
            "libx265",
            "-x265-params",
            "keyint=25:log-level=error",
            "-f",
            "hevc",
        ])
        .arg(&hevc)
        .output()
        .unwrap();
    if !made.status.success() {
        let err = String::from_utf8_lossy(&made.stderr);
        assert!(
            std::env::var("KVS_REQUIRE_TOOLS").ok().as_deref() != Some("1"),
            "ffmpeg cannot encode libx265: {err}"
        );
        println!("ffmpeg cannot encode libx265 ({err}); skipping the H.265 half");
        return;
    }
    create(&dir, &server, "h265");
    ok(&kvs(
        &dir,
        &server,
        &[
            "put",
            "--stream",
            "h265",
            "--codec",
            "h265",
            "--fps",
            "25",
            "--quiet",
            hevc.to_str().unwrap(),
        ],
    ));
    let annexb = std::fs::read(&hevc).unwrap();
    assert_stream_equals_annexb(&dir, &server, "h265", &annexb, VideoCodec::H265);
}

#[test]
fn put_from_stdin() {
    let dir = temp("stdin");
    let server = serve(&dir);
    create(&dir, &server, "s");
    let sample = std::fs::read(media("sample.mkv")).unwrap();
    let mut child = kvs_cmd(&dir, &server, &["put", "--stream", "s", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&sample).unwrap();
    let report = json(&child.wait_with_output().unwrap());
    assert_eq!(report["fragments_persisted"], 5, "{report}");
    let out = dir.join("out.mkv");
    ok(&kvs(
        &dir,
        &server,
        &["get", "--stream", "s", "-o", out.to_str().unwrap()],
    ));
    let input = parse(sample);
    let output = parse(std::fs::read(&out).unwrap());
    assert_eq!(input.frames.len(), output.frames.len());
    let payloads = |p: &Parsed| {
        let mut v: Vec<_> = p.frames.iter().map(|f| (f.track, f.data.clone())).collect();
        v.sort();
        v
    };
    assert_eq!(payloads(&input), payloads(&output));
}

#[test]
fn put_realtime_takes_the_clip_duration() {
    let dir = temp("realtime");
    let server = serve(&dir);
    create(&dir, &server, "rt");
    // The first 50 access units of the sample: 2 s at 25 fps.
    let annexb = std::fs::read(media("sample.h264")).unwrap();
    let units = split_access_units(VideoCodec::H264, &annexb).unwrap();
    let clip: Vec<u8> = units[..50].iter().flat_map(|u| u.data.to_vec()).collect();
    let path = dir.join("clip.h264");
    std::fs::write(&path, &clip).unwrap();
    let started = Instant::now();
    let report = json(&kvs(
        &dir,
        &server,
        &[
            "put",
            "--stream",
            "rt",
            "--fps",
            "25",
            "--realtime",
            "--json",
            path.to_str().unwrap(),
        ],
    ));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "a 2 s clip took {took:?}"
    );
    assert!(took <= Duration::from_secs(30), "a 2 s clip took {took:?}");
    assert_eq!(report["frames"], 50, "{report}");
    assert!(report["seconds"].as_f64().unwrap() >= 1.5, "{report}");
}

#[test]
fn get_raw_and_follow() {
    let dir = temp("follow");
    let server = serve(&dir);
    create(&dir, &server, "live");
    let sample = media("sample.mkv");
    let input = parse(std::fs::read(&sample).unwrap());

    // Followers started on the empty stream, before anything is put.
    let mkv_out = dir.join("follow.mkv");
    let raw_out = dir.join("follow.raw");
    let spawn_follow = |out: &Path, raw: bool| {
        let mut args = vec![
            "get",
            "--stream",
            "live",
            "--start",
            "now",
            "--follow",
            "--max-fragments",
            "5",
            "--idle-timeout",
            "20",
            "-o",
            out.to_str().unwrap(),
        ];
        if raw {
            args.push("--raw");
        }
        kvs_cmd(&dir, &server, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut follow_mkv = spawn_follow(&mkv_out, false);
    let mut follow_raw = spawn_follow(&raw_out, true);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        follow_mkv.try_wait().unwrap().is_none(),
        "the follower quit before any put"
    );
    ok(&kvs(
        &dir,
        &server,
        &[
            "put",
            "--stream",
            "live",
            "--quiet",
            sample.to_str().unwrap(),
        ],
    ));

    let wait = |child: &mut Child, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(25);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                assert!(status.success(), "{what} failed: {err}");
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{what} did not end after 5 fragments");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait(&mut follow_mkv, "get --follow");
    wait(&mut follow_raw, "get --follow --raw");
    let live = parse(std::fs::read(&mkv_out).unwrap());
    assert_eq!(
        live.frames.len(),
        input.frames.len(),
        "the follower saw every frame live"
    );
    let raw = parse(std::fs::read(&raw_out).unwrap());
    assert_eq!(raw.fragments.len(), 5);
    assert_eq!(raw.frames.len(), input.frames.len());
    let numbers: Vec<String> = raw
        .fragments
        .iter()
        .map(|f| {
            f.metadata
                .fragment_number
                .clone()
                .expect("a fragment number")
        })
        .collect();
    let mut distinct = numbers.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "{numbers:?}");
    assert!(
        raw.fragments
            .iter()
            .all(|f| f.metadata.server_timestamp_ms.is_some())
    );
    assert_eq!(
        raw.fragments.iter().map(|f| f.document).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4],
        "one GetMedia document per fragment"
    );

    // A non-following raw read of everything also parses into GetMedia documents.
    let all = dir.join("all.raw");
    ok(&kvs(
        &dir,
        &server,
        &[
            "get",
            "--stream",
            "live",
            "--raw",
            "--start",
            "earliest",
            "--idle-timeout",
            "3",
            "-o",
            all.to_str().unwrap(),
        ],
    ));
    let all = parse(std::fs::read(&all).unwrap());
    assert_eq!(all.fragments.len(), 5);
    assert_eq!(
        all.fragments
            .iter()
            .map(|f| f.metadata.fragment_number.clone())
            .collect::<Vec<_>>(),
        raw.fragments
            .iter()
            .map(|f| f.metadata.fragment_number.clone())
            .collect::<Vec<_>>(),
    );

    // An idle follower ends by --idle-timeout.
    let started = Instant::now();
    let idle = kvs(
        &dir,
        &server,
        &[
            "get",
            "--stream",
            "live",
            "--start",
            "now",
            "--follow",
            "--idle-timeout",
            "1",
            "-o",
            dir.join("idle.mkv").to_str().unwrap(),
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        !idle.status.success(),
        "nothing was written, so that is an error"
    );
}

#[test]
fn streams_maintenance_subcommands() {
    let dir = temp("streams");
    let server = serve(&dir);
    create(&dir, &server, "m");
    let describe = |d: &Path| json(&kvs(d, &server, &["streams", "describe", "m", "--json"]));
    let before = describe(&dir)["StreamInfo"]["DataRetentionInHours"]
        .as_i64()
        .unwrap();

    let r = json(&kvs(
        &dir,
        &server,
        &["streams", "update-retention", "m", "5", "--json"],
    ));
    assert_eq!(r["DataRetentionInHours"], before + 5);
    assert_eq!(
        describe(&dir)["StreamInfo"]["DataRetentionInHours"],
        before + 5
    );
    let r = json(&kvs(
        &dir,
        &server,
        &["streams", "--json", "update-retention", "m", "-3"],
    ));
    assert_eq!(r["DataRetentionInHours"], before + 2);
    assert_eq!(
        describe(&dir)["StreamInfo"]["DataRetentionInHours"],
        before + 2
    );

    let r = json(&kvs(
        &dir,
        &server,
        &["streams", "tag", "m", "site=north", "cam=7", "--json"],
    ));
    assert_eq!(r["Tagged"]["cam"], "7");
    let tags = json(&kvs(&dir, &server, &["streams", "tags", "m", "--json"]));
    assert_eq!(
        tags["Tags"],
        serde_json::json!({"cam": "7", "site": "north"})
    );
    let text = ok(&kvs(&dir, &server, &["streams", "tags", "m"]));
    assert!(text.contains("site=north"), "{text}");
    json(&kvs(
        &dir,
        &server,
        &["streams", "untag", "m", "cam", "--json"],
    ));
    let tags = json(&kvs(&dir, &server, &["streams", "tags", "m", "--json"]));
    assert_eq!(tags["Tags"], serde_json::json!({"site": "north"}));
    let bad = kvs(&dir, &server, &["streams", "tag", "m", "novalue"]);
    assert!(!bad.status.success());

    let r = json(&kvs(&dir, &server, &["streams", "delete", "m", "--json"]));
    assert_eq!(r["Deleted"], true);
    // Deletion may be asynchronous: the stream is DELETING or gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = kvs(&dir, &server, &["streams", "describe", "m", "--json"]);
        if !d.status.success() {
            let err = String::from_utf8_lossy(&d.stderr);
            assert!(err.contains("ResourceNotFound"), "{err}");
            break;
        }
        let status = json(&d)["StreamInfo"]["Status"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(status, "DELETING");
        assert!(Instant::now() < deadline, "the stream is still DELETING");
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = ok(&kvs(&dir, &server, &["streams", "list", "--json"]));
    assert!(!list.contains("\"m\""), "{list}");
}

/// The sample's tracks and frames, timestamps moved so the clip ends one second ago.
fn sample_now() -> (Vec<TrackInfo>, Vec<Frame>) {
    let p = parse(std::fs::read(media("sample.mkv")).unwrap());
    let first = p.frames.iter().map(|f| f.timestamp_ns).min().unwrap();
    let last = p.frames.iter().map(|f| f.timestamp_ns).max().unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let offset = now - 1_000_000_000 - (last - first) - first;
    let frames = p
        .frames
        .into_iter()
        .map(|mut f| {
            f.timestamp_ns += offset;
            f
        })
        .collect();
    (p.tracks, frames)
}

fn read_back(dir: &Path, server: &Server, stream: &str) -> Parsed {
    let out = dir.join(format!("{stream}-back.mkv"));
    ok(&kvs(
        dir,
        server,
        &["get", "--stream", stream, "-o", out.to_str().unwrap()],
    ));
    parse(std::fs::read(out).unwrap())
}

fn same_frames(sent: &[Frame], got: &Parsed) {
    assert_eq!(got.frames.len(), sent.len());
    let key = |f: &Frame| {
        (
            f.track,
            f.timestamp_ns / 1_000_000,
            f.keyframe,
            f.data.clone(),
        )
    };
    let mut a: Vec<_> = sent.iter().map(key).collect();
    let mut b: Vec<_> = got.frames.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn blocking_client_and_producer() {
    let dir = temp("blocking");
    let server = serve(&dir);
    let builder = Client::builder()
        .endpoint_url(server.var("AWS_ENDPOINT_URL"))
        .region(server.var("AWS_REGION"))
        .credentials(server.credentials());
    let client = kvs_core::client::blocking::Client::new(builder).unwrap();
    client.create_stream("b", 24).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client
        .describe_stream("b")
        .unwrap()
        .stream_info
        .status
        .to_string()
        != "ACTIVE"
    {
        assert!(Instant::now() < deadline, "the stream never became ACTIVE");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        client
            .list_streams()
            .unwrap()
            .iter()
            .any(|s| s.stream_name == "b")
    );
    let (tracks, frames) = sample_now();
    let producer = client.producer("b", tracks, |_| {}).unwrap();
    for f in &frames {
        producer.put_frame(f.clone()).unwrap();
    }
    let report = producer.finish().unwrap();
    assert_eq!(report.frames_dropped, 0);
    assert_eq!(report.fragments_acked, 5);
    assert_eq!(client.list_fragments("b", None).unwrap().len(), 5);
    same_frames(&frames, &read_back(&dir, &server, "b"));
}

#[test]
fn put_frame_waits_while_the_server_is_stalled() {
    let dir = temp("backpressure");
    let server = serve(&dir);
    create(&dir, &server, "bp");
    let client = server.client();
    let (tracks, frames) = sample_now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pid = server.child.id().to_string();
    let (waits, report) = rt.block_on(async {
        let producer = client
            .producer("bp", tracks)
            .configure(|c| {
                // About one fragment: the buffer fills long before the clip is sent.
                c.buffer.max_bytes = 80_000;
            })
            .start()
            .unwrap();
        let mut waits = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            if i == frames.len() / 3 {
                assert!(
                    Command::new("kill")
                        .args(["-STOP", &pid])
                        .status()
                        .unwrap()
                        .success()
                );
                let pid = pid.clone();
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(1500));
                    Command::new("kill").args(["-CONT", &pid]).status().unwrap();
                });
            }
            let t = Instant::now();
            producer.put_frame(f.clone()).await.unwrap();
            waits.push(t.elapsed());
        }
        (waits, producer.finish().await.unwrap())
    });
    let longest = waits.iter().max().unwrap();
    assert!(
        *longest >= Duration::from_millis(700),
        "put_frame never waited for the stalled server (longest {longest:?})"
    );
    assert_eq!(report.frames_dropped, 0);
    assert_eq!(report.fragments_acked, 5);
    same_frames(&frames, &read_back(&dir, &server, "bp"));
}

// ---- IoT credentials provider over mutual TLS ------------------------------------------------

struct FakeIot {
    endpoint: String,
    requests: Arc<AtomicUsize>,
    config: IotConfig,
    _rt: tokio::runtime::Runtime,
}

/// A fake AWS IoT credentials provider: HTTPS that requires a client certificate from its CA,
/// answers `GET /role-aliases/cam-role/credentials` for thing `cam-1` with `key_id`/`secret`
/// valid for `lifetime` (session token `token`, else `token-<n>`), and counts the requests it
/// answered.
fn fake_iot(
    dir: &Path,
    key_id: &str,
    secret: &str,
    token: Option<&str>,
    lifetime: Duration,
) -> FakeIot {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        KeyUsagePurpose,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = params.signed_by(&server_key, &issuer).unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["cam-1".to_owned()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = params.signed_by(&client_key, &issuer).unwrap();

    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ca_path = write("iot-ca.pem", ca_cert.pem());
    let cert_path = write("device.pem", client_cert.pem());
    let key_path = write("device.key", client_key.serialize_pem());

    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let tls = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let (key_id, secret) = (key_id.to_owned(), secret.to_owned());
    let token = token.map(str::to_owned);
    rt.spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            let count = count.clone();
            let (key_id, secret, token) = (key_id.clone(), secret.clone(), token.clone());
            tokio::spawn(async move {
                // A handshake without a client certificate fails here.
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16_384 {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_string();
                let mut lines = head.split("\r\n");
                let request_line = lines.next().unwrap_or_default();
                let thing = lines
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.eq_ignore_ascii_case("x-amzn-iot-thingname"))
                    .map(|(_, v)| v.trim().to_owned());
                let (status, body) = if request_line != "GET /role-aliases/cam-role/credentials HTTP/1.1" {
                    ("404 Not Found", r#"{"message":"no such role alias"}"#.to_owned())
                } else if thing.as_deref() != Some("cam-1") {
                    ("403 Forbidden", r#"{"message":"thing name missing or wrong"}"#.to_owned())
                } else {
                    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                    let expiry = kvs_core::credentials::format_rfc3339(SystemTime::now() + lifetime);
                    (
                        "200 OK",
                        serde_json::json!({"credentials": {
                            "accessKeyId": key_id, "secretAccessKey": secret,
                            "sessionToken": token.unwrap_or_else(|| format!("token-{n}")), "expiration": expiry,
                        }})
                        .to_string(),
                    )
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    let endpoint = format!("127.0.0.1:{port}");
    FakeIot {
        config: IotConfig {
            endpoint: endpoint.clone(),
            role_alias: "cam-role".into(),
            thing_name: "cam-1".into(),
            cert: cert_path,
            key: key_path,
            ca: Some(ca_path),
        },
        endpoint,
        requests,
        _rt: rt,
    }
}

fn iot_client(server: &Server, iot: &FakeIot) -> Client {
    Client::builder()
        .endpoint_url(server.var("AWS_ENDPOINT_URL"))
        .region(server.var("AWS_REGION"))
        .iot(iot.config.clone())
        .build()
        .unwrap()
}

#[test]
fn iot_credentials_over_mutual_tls() {
    let dir = temp("iot");
    let iot = fake_iot(
        &dir,
        "ASIAIOTTEST",
        "iot-secret",
        None,
        Duration::from_secs(3600),
    );
    let provider = kvs_core::client::CredentialsProvider::iot(iot.config.clone()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let creds = rt.block_on(provider.credentials()).unwrap();
    assert_eq!(creds.access_key_id(), "ASIAIOTTEST");
    assert_eq!(creds.secret_access_key(), "iot-secret");
    assert_eq!(creds.session_token(), Some("token-1"));
    let left = creds
        .expiry()
        .unwrap()
        .duration_since(SystemTime::now())
        .unwrap();
    assert!(left > Duration::from_secs(3500), "{left:?}");
    // Hour-long credentials are fetched once.
    rt.block_on(provider.credentials()).unwrap();
    assert_eq!(iot.requests.load(Ordering::SeqCst), 1);

    // A file that holds no certificate is refused before any request.
    let mut no_cert = iot.config.clone();
    no_cert.cert = media("sample.h264");
    assert!(kvs_core::client::CredentialsProvider::iot(no_cert).is_err());
    if let Ok(status) = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--cacert"])
        .arg(iot.config.ca.as_ref().unwrap())
        .arg(format!(
            "https://{}/role-aliases/cam-role/credentials",
            iot.endpoint
        ))
        .status()
    {
        assert!(
            !status.success(),
            "the fake IoT endpoint accepted a client without a certificate"
        );
    }
    // A wrong thing name is refused by the provider, and the error says where it came from.
    let mut other = iot.config.clone();
    other.thing_name = "cam-2".into();
    let err = rt
        .block_on(
            kvs_core::client::CredentialsProvider::iot(other)
                .unwrap()
                .credentials(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("thing name"), "{err}");
    assert_eq!(iot.requests.load(Ordering::SeqCst), 1);
}

#[test]
fn iot_credentials_refresh_before_expiry() {
    let dir = temp("iot-refresh");
    let iot = fake_iot(
        &dir,
        "ASIAIOTTEST",
        "iot-secret",
        None,
        Duration::from_secs(6),
    );
    let provider = kvs_core::client::CredentialsProvider::iot(iot.config.clone()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let first = provider.credentials().await.unwrap();
        assert_eq!(first.session_token(), Some("token-1"));
        // Still fresh: no new request.
        provider.credentials().await.unwrap();
        provider.credentials().await.unwrap();
        assert_eq!(
            iot.requests.load(Ordering::SeqCst),
            1,
            "refetched fresh credentials"
        );
        // Past half their lifetime (6 s, whole seconds in the response) but before expiry:
        // the next use refreshes them first.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(!first.is_expired(SystemTime::now()));
        let second = provider.credentials().await.unwrap();
        assert_eq!(
            iot.requests.load(Ordering::SeqCst),
            2,
            "no refresh before expiry"
        );
        assert_eq!(second.session_token(), Some("token-2"));
        assert!(second.expiry().unwrap() > first.expiry().unwrap());
        provider.credentials().await.unwrap();
        assert_eq!(iot.requests.load(Ordering::SeqCst), 2);
    });
}

/// Calls to `kvs serve` signed with IoT-issued credentials (a session token included).
#[test]
fn iot_credentials_sign_calls_to_kvs_serve() {
    let dir = temp("iot-serve");
    let file = dir.join("server-credentials");
    std::fs::write(
        &file,
        "[default]\naws_access_key_id = ASIAIOTTEST\naws_secret_access_key = iot-secret\n\
         aws_session_token = iot-token\n",
    )
    .unwrap();
    let server = serve_with(&dir, &["--credentials", file.to_str().unwrap()]);
    let iot = fake_iot(
        &dir,
        "ASIAIOTTEST",
        "iot-secret",
        Some("iot-token"),
        Duration::from_secs(3600),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = iot_client(&server, &iot);
        client.create_stream("iot", 24).await.unwrap();
        client
            .wait_active("iot", Duration::from_secs(10))
            .await
            .unwrap();
        let (tracks, frames) = sample_now();
        let producer = client.producer("iot", tracks).start().unwrap();
        for f in &frames {
            producer.put_frame(f.clone()).await.unwrap();
        }
        assert_eq!(producer.finish().await.unwrap().fragments_acked, 5);
        assert_eq!(
            client.list_all_fragments("iot", None).await.unwrap().len(),
            5
        );
    });
    assert_eq!(iot.requests.load(Ordering::SeqCst), 1);
}
