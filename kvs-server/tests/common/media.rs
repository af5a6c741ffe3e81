//! Media helpers shared by the playback tests: the bundled H.264 + AAC sample, split into
//! fragments and put with PutMedia; external tools found on PATH.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::{Bytes, BytesMut};
use kvs_core::client::{Client, ClientError};
use kvs_core::credentials::Credentials;
use kvs_core::mkv::reader::{Event, decode_all};
use kvs_core::mkv::writer::{StreamConfig, StreamWriter};
use kvs_core::mkv::{Frame, TrackInfo};

use super::{Endpoint, PutMedia, absolute, create_stream, now_ms, send};

/// Whether missing external tools fail the test (`KVS_REQUIRE_TOOLS=1`).
pub fn required() -> bool {
    std::env::var("KVS_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Prints why a part is skipped; fails instead under `KVS_REQUIRE_TOOLS=1`.
pub fn skip(why: &str) {
    assert!(!required(), "{why} (KVS_REQUIRE_TOOLS=1)");
    eprintln!("skipping: {why}");
}

/// An executable on PATH.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The sample's tracks and frames, timestamps moved so the last frame is `ago_ms` ago.
pub fn sample_ending(ago_ms: u64) -> (Vec<TrackInfo>, Vec<Frame>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/media/sample.mkv");
    let data = std::fs::read(path).unwrap();
    let mut tracks = Vec::new();
    let mut frames = Vec::new();
    for e in decode_all(&data) {
        match e.unwrap() {
            Event::Track(t) => tracks.push(*t),
            Event::Frame(f) => frames.push(f),
            _ => {}
        }
    }
    let last = frames.iter().map(|f| f.timestamp_ns).max().unwrap();
    let offset = (now_ms() - ago_ms) as i64 * 1_000_000 - last;
    for f in &mut frames {
        f.timestamp_ns += offset;
    }
    (tracks, frames)
}

/// Frames grouped into fragments, a new one at each video key frame.
pub fn split_at_key_frames(frames: &[Frame]) -> Vec<Vec<Frame>> {
    let mut out: Vec<Vec<Frame>> = Vec::new();
    for f in frames {
        if out.is_empty() || (f.track == 1 && f.keyframe) {
            out.push(Vec::new());
        }
        out.last_mut().unwrap().push(f.clone());
    }
    out
}

/// A PutMedia connection that sends whole fragments and waits for each one's PERSISTED ACK.
pub struct SamplePutter {
    writer: StreamWriter,
    pm: PutMedia,
}

impl SamplePutter {
    /// Opens PutMedia (absolute timecodes) on `name` and sends the header.
    pub async fn open(ep: &Endpoint, name: &str, tracks: &[TrackInfo]) -> SamplePutter {
        let writer = StreamWriter::new(StreamConfig::new([3u8; 16]), tracks.to_vec()).unwrap();
        let mut pm = PutMedia::open(ep, &absolute(name)).await;
        assert_eq!(pm.status, 200, "{}", pm.head);
        pm.send(&writer.header().clone()).await;
        SamplePutter { writer, pm }
    }

    /// Sends one fragment; its PERSISTED fragment number.
    pub async fn put(&mut self, frames: &[Frame]) -> String {
        let mut out = BytesMut::new();
        for f in frames {
            self.writer.encode_frame(f, &mut out).unwrap();
        }
        self.writer.end_fragment(&mut out).unwrap();
        self.pm.send(&out).await;
        self.pm.persisted().await
    }

    /// Ends the upload.
    pub async fn finish(mut self) {
        self.pm.finish().await;
    }
}

/// kvs-core's client for `server`, with its first key pair.
pub fn client_of(server: &kvs_server::Server) -> Client {
    let creds = server.credentials();
    Client::builder()
        .endpoint_url(server.base_url())
        .region(server.region())
        .credentials(Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.clone(),
        ))
        .build()
        .unwrap()
}

/// PutMedia of `fragments` (absolute timecodes) into `name` over one connection; their
/// PERSISTED fragment numbers.
pub async fn put_all(
    ep: &Endpoint,
    name: &str,
    tracks: &[TrackInfo],
    fragments: &[Vec<Frame>],
) -> Vec<String> {
    let mut putter = SamplePutter::open(ep, name, tracks).await;
    let mut numbers = Vec::new();
    for f in fragments {
        numbers.push(putter.put(f).await);
    }
    putter.finish().await;
    numbers
}

/// Puts the sample (5 fragments, last frame a minute ago) into a new stream `name`: the
/// fragments' frames and their fragment numbers.
pub async fn put_sample(ep: &Endpoint, name: &str) -> (Vec<Vec<Frame>>, Vec<String>) {
    create_stream(ep, name, 1).await;
    let (tracks, frames) = sample_ending(60_000);
    let fragments = split_at_key_frames(&frames);
    assert_eq!(fragments.len(), 5);
    let numbers = put_all(ep, name, &tracks, &fragments).await;
    assert_eq!(numbers.len(), 5);
    (fragments, numbers)
}

/// How many frames of `track` the fragments hold.
pub fn count(frames: &[Vec<Frame>], track: u64) -> u64 {
    frames.iter().flatten().filter(|f| f.track == track).count() as u64
}

/// Nanoseconds to whole milliseconds.
pub fn ms(ns: i64) -> u64 {
    (ns / 1_000_000) as u64
}

/// An API error as "Kind: message" (or a note that it is not one).
pub fn api_kind(e: &ClientError) -> String {
    match e {
        ClientError::Api { error, .. } => format!("{:?}: {}", error.kind, error.message),
        other => format!("not an API error: {other}"),
    }
}

/// Asserts `e` is the API error `kind` (its "Kind: message" starts with `kind`).
#[track_caller]
pub fn assert_api_error(e: &ClientError, kind: &str) {
    assert!(api_kind(e).starts_with(kind), "{}", api_kind(e));
}

/// ffprobe's per-stream (codec, frames read) of `input` (a file or URL) in ffprobe's order,
/// asserting no error output; `None` (after `skip`) without ffprobe.
pub fn probe_frames(input: impl AsRef<OsStr>) -> Option<Vec<(String, u64)>> {
    let Some(ffprobe) = find_tool("ffprobe") else {
        skip("ffprobe not found on PATH");
        return None;
    };
    let input = input.as_ref();
    let out = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffprobe {}: {stderr}",
        input.to_string_lossy()
    );
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (c, n) = l.split_once(',').unwrap();
                (c.to_owned(), n.trim().parse().unwrap())
            })
            .collect(),
    )
}

/// ffmpeg reads `input` (a file or URL) with `extra` output options into the null muxer with no
/// error output; skipped without ffmpeg.
pub fn ffmpeg_reads_cleanly(input: impl AsRef<OsStr>, extra: &[&str]) {
    let Some(ffmpeg) = find_tool("ffmpeg") else {
        skip("ffmpeg not found on PATH");
        return;
    };
    let out = Command::new(ffmpeg)
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(input)
        .args(extra)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffmpeg {extra:?}: {stderr}"
    );
}

/// `$KVS_PYTHON` (default `python3`) if it can import `module`; otherwise `None` after `skip`.
pub fn python_with(module: &str) -> Option<String> {
    let py = std::env::var("KVS_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip(&format!("{py} cannot import {module}"));
        return None;
    }
    Some(py)
}

/// Points an AWS SDK child process at `server` with its first key pair (`KVS_ENDPOINT`,
/// `AWS_*`), with no profile or config files of the user.
pub fn aws_env<'c>(cmd: &'c mut Command, server: &kvs_server::Server) -> &'c mut Command {
    let creds = server.credentials();
    cmd.env("KVS_ENDPOINT", server.base_url())
        .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
        .env("AWS_REGION", server.region())
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
}

/// The start of a boto3 script that talks to `server`'s archived-media endpoint for the stream
/// named by `sys.argv[1]`: `kw` (credentials and region), `kv` (the control plane) and `am`
/// (archived media, at the data endpoint of `api`, e.g. `GET_HLS_STREAMING_SESSION_URL`).
pub fn archived_media_prelude(api: &str) -> String {
    format!(
        r#"
import os, sys, datetime, boto3
kw = dict(region_name=os.environ["AWS_REGION"], aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
          aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"])
kv = boto3.client("kinesisvideo", endpoint_url=os.environ["KVS_ENDPOINT"], **kw)
url = kv.get_data_endpoint(StreamName=sys.argv[1], APIName="{api}")["DataEndpoint"]
am = boto3.client("kinesis-video-archived-media", endpoint_url=url, **kw)
"#
    )
}

/// Runs the boto3 `script` with `args` against `server` and returns what it printed, trimmed;
/// `None` (the test is skipped) when Python cannot import boto3. `what` names the call in the
/// failure message.
pub fn boto3_output(
    server: &kvs_server::Server,
    script: &str,
    args: &[&str],
    what: &str,
) -> Option<String> {
    let py = python_with("boto3")?;
    let out = aws_env(Command::new(&py).args(["-c", script]).args(args), server)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boto3 {what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap().trim().to_owned())
}

/// A plain, unsigned GET of `url` (as a player makes it).
pub async fn get(ep: &Endpoint, url: &str) -> http::Response<Bytes> {
    let uri: http::Uri = url.parse().unwrap();
    let request = http::Request::get(uri.path_and_query().unwrap().as_str())
        .header("host", uri.authority().unwrap().as_str())
        .body(Bytes::new())
        .unwrap();
    send(ep, request).await
}

/// A response body as text.
pub fn text(r: &http::Response<Bytes>) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

/// A playlist's or manifest's relative URI resolved against its URL `base`.
pub fn resolve(base: &str, relative: &str) -> String {
    let dir = &base[..base[..base.find('?').unwrap()].rfind('/').unwrap() + 1];
    format!("{dir}{relative}")
}
