//! Test helpers: an in-process server, signed JSON calls, a raw full-duplex PutMedia client and
//! hand-made MKV pieces for the error rules.
#![allow(dead_code)]

pub mod media;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kvs_core::ack::{AckEvent, AckParser};
use kvs_core::api::{ApiError, ApiOperation, ApiResponse, PutMediaRequest, Timestamp};
use kvs_core::mkv::reader::{Event, FragmentSummary, MkvReader};
use kvs_core::mkv::writer::{StreamConfig, StreamWriter};
use kvs_core::mkv::{Frame, TrackInfo, TrackType, codec};
use kvs_core::sigv4::{PayloadSigning, SigningCredentials, SigningParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A unique temp directory.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let d = std::env::temp_dir().join(format!("kvs-{tag}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Where to reach a server and with which keys.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: std::net::SocketAddr,
    pub access_key_id: String,
    pub secret: String,
    pub region: String,
}

impl Endpoint {
    pub fn of(server: &kvs_server::Server) -> Self {
        Endpoint {
            addr: server.local_addr(),
            access_key_id: server.credentials().access_key_id.clone(),
            secret: server.credentials().secret_access_key.clone(),
            region: server.region().to_owned(),
        }
    }

    /// The same server with another key pair.
    pub fn with_keys(&self, access_key_id: &str, secret: &str) -> Self {
        Endpoint {
            access_key_id: access_key_id.into(),
            secret: secret.into(),
            ..self.clone()
        }
    }

    pub fn uri(&self) -> http::Uri {
        format!("http://{}", self.addr).parse().unwrap()
    }

    fn creds(&self) -> SigningCredentials<'_> {
        SigningCredentials {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret,
            session_token: None,
        }
    }
}

/// Starts a server on a free port with a fresh data dir.
pub async fn start(limits: kvs_server::Limits) -> (kvs_server::Server, PathBuf) {
    let dir = temp_dir("srv");
    start_in(dir, limits).await
}

pub async fn start_in(dir: PathBuf, limits: kvs_server::Limits) -> (kvs_server::Server, PathBuf) {
    start_in_with_clock(dir, limits, std::sync::Arc::new(kvs_server::SystemClock)).await
}

/// Starts a server in `dir` with an injected clock.
pub async fn start_in_with_clock(
    dir: PathBuf,
    limits: kvs_server::Limits,
    clock: std::sync::Arc<dyn kvs_server::Clock>,
) -> (kvs_server::Server, PathBuf) {
    let mut config = config_in(&dir, limits);
    config.clock = clock;
    let server = kvs_server::Server::bind(config).await.unwrap();
    (server, dir)
}

/// Starts a server (fast limits) accepting the key pairs of the credentials file `ini`, written
/// with the `(name, text)` side `files` (policy documents) into a fresh temp dir. The error is
/// the server's start-up error.
pub async fn start_with_credentials(
    ini: &str,
    files: &[(&str, &str)],
) -> Result<(kvs_server::Server, PathBuf), kvs_server::ServerError> {
    let dir = temp_dir("acl");
    let path = dir.join("credentials");
    std::fs::write(&path, ini).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mut config = config_in(&dir, fast_limits());
    config.credentials_file = Some(path);
    let server = kvs_server::Server::bind(config).await?;
    Ok((server, dir))
}

/// Streams `n` fragments into the existing stream `name` over one PutMedia connection and
/// returns their PERSISTED fragment numbers.
pub async fn put_fragments(ep: &Endpoint, name: &str, n: usize) -> Vec<String> {
    let mut producer = Producer::new(now_ms() - 20_000, false);
    let mut pm = PutMedia::open(ep, &absolute(name)).await;
    assert_eq!(pm.status, 200, "{}", pm.head);
    pm.send(&producer.header()).await;
    let mut numbers = Vec::new();
    for _ in 0..n {
        let f = producer.fragment(6, 200);
        pm.send(&f).await;
        numbers.push(pm.persisted().await);
    }
    pm.finish().await;
    numbers
}

/// The configuration `start_in` uses: data in `dir/data`, a free port, `limits`.
pub fn config_in(dir: &std::path::Path, limits: kvs_server::Limits) -> kvs_server::ServerConfig {
    let mut config = kvs_server::ServerConfig::new(dir.join("data"));
    config.port = 0;
    config.limits = limits;
    config
}

/// Fast limits for tests.
pub fn fast_limits() -> kvs_server::Limits {
    kvs_server::Limits {
        transition_delay: Duration::ZERO,
        get_media_idle_end: Duration::from_millis(500),
        ..kvs_server::Limits::default()
    }
}

/// The data directory of stream `name` (the newest `<creation ms>-<hash of name>` directory).
pub fn stream_dir(dir: &std::path::Path, name: &str) -> PathBuf {
    let p = stream_dir_path(dir, name).expect("stream directory");
    assert!(p.is_dir(), "stream directory {}", p.display());
    p
}

/// Where stream `name`'s directory is, if it has one: the stream catalog is sealed, so it is
/// found by its name's hash (`<creation ms>-<sha256(name)[..16]>`, the newest creation wins).
pub fn stream_dir_path(dir: &std::path::Path, name: &str) -> Option<PathBuf> {
    let hash = kvs_core::sigv4::canonical::sha256_hex(name.as_bytes());
    let suffix = format!("-{}", &hash[..16]);
    std::fs::read_dir(dir.join("data/streams"))
        .ok()?
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            let ms = n.strip_suffix(&suffix)?.parse::<u64>().ok()?;
            Some((ms, e.path()))
        })
        .max()
        .map(|(_, p)| p)
}

/// Names of the segment files in a stream directory.
pub fn segment_files(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with("seg-"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The only segment file of stream `name` (asserting there is exactly one).
pub fn only_segment(dir: &std::path::Path, name: &str) -> PathBuf {
    let sdir = stream_dir(dir, name);
    let segs = segment_files(&sdir);
    assert_eq!(segs.len(), 1, "{segs:?}");
    sdir.join(&segs[0])
}

/// The sealed records of a segment file: (record start, body range).
pub fn segment_records(path: &std::path::Path) -> Vec<(usize, std::ops::Range<usize>)> {
    let b = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 21 <= b.len() {
        assert_eq!(&b[pos..pos + 4], b"KVS2");
        let word = |i: usize| u32::from_le_bytes(b[pos + i..pos + i + 4].try_into().unwrap());
        let (clear, body) = (word(5) as usize, word(9) as usize);
        let start = pos + 21 + clear;
        out.push((pos, start..start + body));
        pos = start + body;
    }
    out
}

/// Flips one bit of the byte at `at` of the file at `path`.
pub fn flip(path: &std::path::Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

/// Sends a raw request and returns status, headers and the whole body.
pub async fn send(ep: &Endpoint, request: http::Request<Bytes>) -> http::Response<Bytes> {
    let tcp = TcpStream::connect(ep.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let response = sender.send_request(request.map(Full::new)).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    http::Response::from_parts(parts, body)
}

/// Signs a buffered request as botocore does, at `time`.
pub fn sign_at(ep: &Endpoint, request: &mut http::Request<Bytes>, time: SystemTime) {
    let body = request.body().clone();
    let params = SigningParams::new(ep.creds(), &ep.region, time, PayloadSigning::Body(&body));
    let out = kvs_core::sigv4::sign(request, &params).unwrap();
    out.apply_to_request(request).unwrap();
}

/// A signed JSON operation; the typed response or the service error.
pub async fn call<Op: ApiOperation>(ep: &Endpoint, op: &Op) -> Result<Op::Response, ApiError> {
    let mut request = op.to_http(&ep.uri())?;
    sign_at(ep, &mut request, SystemTime::now());
    let response = send(ep, request).await;
    Op::Response::from_http(&response)
}

/// A signed streaming operation (GetMedia, GetMediaForFragmentList): status and whole body.
pub async fn call_raw<Op: ApiOperation>(ep: &Endpoint, op: &Op) -> http::Response<Bytes> {
    let mut request = op.to_http(&ep.uri()).unwrap();
    sign_at(ep, &mut request, SystemTime::now());
    send(ep, request).await
}

/// Every fragment ListFragments gives for `name` by server timestamps, from epoch 0 to 100 days
/// ahead (far enough for tests that move a manual clock), in the service's order.
pub async fn list_all_fragments(ep: &Endpoint, name: &str) -> Vec<kvs_core::api::Fragment> {
    use kvs_core::api::{
        FragmentSelector, ListFragmentsRequest, Timestamp, TimestampRange, TimestampSelectorType,
    };
    let req = ListFragmentsRequest {
        stream_name: Some(name.into()),
        stream_arn: None,
        max_results: None,
        next_token: None,
        fragment_selector: Some(FragmentSelector {
            fragment_selector_type: TimestampSelectorType::ServerTimestamp,
            timestamp_range: TimestampRange {
                start_timestamp: Timestamp::from_millis(0),
                end_timestamp: Timestamp::from_millis(now_ms() + 100 * 24 * 3_600_000),
            },
        }),
    };
    call(ep, &req).await.unwrap().fragments
}

/// Creates a stream with `retention` hours.
pub async fn create_stream(ep: &Endpoint, name: &str, retention: i64) {
    let req = kvs_core::api::CreateStreamRequest {
        device_name: None,
        stream_name: name.into(),
        media_type: Some("video/h264".into()),
        kms_key_id: None,
        data_retention_in_hours: Some(retention),
        tags: None,
        stream_storage_configuration: None,
    };
    call(ep, &req).await.unwrap();
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A full-duplex PutMedia connection over a raw socket.
pub struct PutMedia {
    pub status: u16,
    pub head: String,
    writer: tokio::net::tcp::OwnedWriteHalf,
    pub acks: mpsc::UnboundedReceiver<AckEvent>,
    /// Set when the response ended (connection closed or last chunk).
    pub ended: tokio::sync::watch::Receiver<bool>,
}

impl PutMedia {
    /// Opens PutMedia with the C producer's signing convention.
    pub async fn open(ep: &Endpoint, req: &PutMediaRequest) -> PutMedia {
        Self::open_with(ep, req, SystemTime::now(), |_| {}).await
    }

    /// Opens PutMedia, letting `tamper` change the signed head before it is sent.
    pub async fn open_with(
        ep: &Endpoint,
        req: &PutMediaRequest,
        time: SystemTime,
        tamper: impl FnOnce(&mut http::HeaderMap),
    ) -> PutMedia {
        let mut head = req.to_http(&ep.uri()).unwrap();
        head.headers_mut().insert(
            "user-agent",
            http::HeaderValue::from_static("kvs-test-producer"),
        );
        head.headers_mut()
            .insert("connection", http::HeaderValue::from_static("keep-alive"));
        let params = SigningParams::c_producer_put_media(ep.creds(), &ep.region, time);
        let out = kvs_core::sigv4::sign(&head, &params).unwrap();
        out.apply_to_request(&mut head).unwrap();
        tamper(head.headers_mut());
        let mut text = format!("POST {} HTTP/1.1\r\n", head.uri().path());
        for (k, v) in head.headers() {
            text.push_str(&format!("{}: {}\r\n", k, v.to_str().unwrap()));
        }
        text.push_str("\r\n");
        let tcp = TcpStream::connect(ep.addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let (mut rd, mut wr) = tcp.into_split();
        wr.write_all(text.as_bytes()).await.unwrap();
        // Read the response head.
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        let head_end = loop {
            if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            let n = rd.read(&mut tmp).await.unwrap();
            assert!(n > 0, "connection closed before the response head");
            buf.extend_from_slice(&tmp[..n]);
        };
        let head_text = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let status: u16 = head_text[9..12].parse().unwrap();
        let rest = buf[head_end..].to_vec();
        let chunked = head_text
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let (tx, acks) = mpsc::unbounded_channel();
        let (end_tx, ended) = tokio::sync::watch::channel(false);
        let body_tx = tx.clone();
        tokio::spawn(async move {
            let mut dechunk = Dechunk::default();
            let mut parser = AckParser::new();
            let feed = |data: &[u8], parser: &mut AckParser, dechunk: &mut Dechunk| {
                let out = if chunked {
                    dechunk.push(data)
                } else {
                    data.to_vec()
                };
                parser.push(&out);
                while let Some(ev) = parser.poll_event() {
                    if let Ok(ev) = ev {
                        let _ = body_tx.send(ev);
                    }
                }
            };
            feed(&rest, &mut parser, &mut dechunk);
            let mut tmp = [0u8; 4096];
            loop {
                match rd.read(&mut tmp).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => feed(&tmp[..n], &mut parser, &mut dechunk),
                }
                if dechunk.done {
                    break;
                }
            }
            let _ = end_tx.send(true);
        });
        drop(tx);
        PutMedia {
            status,
            head: head_text,
            writer: wr,
            acks,
            ended,
        }
    }

    /// Sends one HTTP chunk (ignoring a closed connection).
    pub async fn send(&mut self, data: &[u8]) -> bool {
        if data.is_empty() {
            return true;
        }
        let mut c = format!("{:x}\r\n", data.len()).into_bytes();
        c.extend_from_slice(data);
        c.extend_from_slice(b"\r\n");
        self.writer.write_all(&c).await.is_ok()
    }

    /// Ends the body.
    pub async fn finish(&mut self) {
        let _ = self.writer.write_all(b"0\r\n\r\n").await;
    }

    /// Next ACK within `secs`.
    pub async fn next_ack(&mut self, secs: u64) -> Option<AckEvent> {
        tokio::time::timeout(Duration::from_secs(secs), self.acks.recv())
            .await
            .ok()
            .flatten()
    }

    /// ACKs until one of `kind` (skipping IDLE) or the end; returns all seen.
    pub async fn acks_until(&mut self, pred: impl Fn(&AckEvent) -> bool) -> Vec<AckEvent> {
        let mut seen = Vec::new();
        while let Some(a) = self.next_ack(20).await {
            let stop = pred(&a);
            seen.push(a);
            if stop {
                break;
            }
        }
        seen
    }

    /// Waits for the PERSISTED ACK of the fragment just sent (failing on any other last ACK);
    /// its fragment number.
    pub async fn persisted(&mut self) -> String {
        let acks = self
            .acks_until(|a| a.event_type == kvs_core::ack::AckEventType::Persisted)
            .await;
        let last = acks.last().expect("an ACK");
        assert_eq!(last.event_type, kvs_core::ack::AckEventType::Persisted);
        last.fragment_number.clone().unwrap().as_str().to_owned()
    }
}

/// Chunked transfer decoding.
#[derive(Default)]
struct Dechunk {
    buf: Vec<u8>,
    remaining: usize,
    in_data: bool,
    done: bool,
}

impl Dechunk {
    fn push(&mut self, data: &[u8]) -> Vec<u8> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if self.in_data {
                if self.remaining > 0 {
                    let n = self.remaining.min(self.buf.len());
                    out.extend_from_slice(&self.buf[..n]);
                    self.buf.drain(..n);
                    self.remaining -= n;
                    if self.remaining > 0 {
                        return out;
                    }
                }
                if self.buf.len() < 2 {
                    return out;
                }
                self.buf.drain(..2);
                self.in_data = false;
            }
            let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                return out;
            };
            let line = String::from_utf8_lossy(&self.buf[..p]).to_string();
            self.buf.drain(..p + 2);
            let size =
                usize::from_str_radix(line.split(';').next().unwrap().trim(), 16).unwrap_or(0);
            if size == 0 {
                self.done = true;
                return out;
            }
            self.remaining = size;
            self.in_data = true;
        }
    }
}

/// A producer: the writer, its header, and the frames it wrote (for comparison).
pub struct Producer {
    pub writer: StreamWriter,
    pub next_ts_ns: i64,
    pub frame_ns: i64,
    pub sent_frames: Vec<Frame>,
    pub body: BytesMut,
    pub counter: u32,
}

impl Producer {
    /// One H.264-labelled video track (and an audio track when `audio`), absolute timecodes
    /// starting at `start_ms`.
    pub fn new(start_ms: u64, audio: bool) -> Producer {
        let mut tracks = vec![TrackInfo::new(1, 1, TrackType::Video, codec::H264)];
        if audio {
            tracks.push(TrackInfo::new(2, 2, TrackType::Audio, codec::AAC));
        }
        let config = StreamConfig::new([7u8; 16]);
        let writer = StreamWriter::new(config, tracks).unwrap();
        Producer {
            writer,
            next_ts_ns: start_ms as i64 * 1_000_000,
            frame_ns: 33_000_000,
            sent_frames: Vec::new(),
            body: BytesMut::new(),
            counter: 0,
        }
    }

    pub fn header(&self) -> Bytes {
        self.writer.header().clone()
    }

    /// Encodes one fragment of `frames` frames (first is a key frame) and returns its bytes.
    pub fn fragment(&mut self, frames: usize, payload: usize) -> Bytes {
        let mut out = BytesMut::new();
        for i in 0..frames {
            self.counter += 1;
            let data: Vec<u8> = (0..payload)
                .map(|j| (self.counter as usize * 31 + j) as u8)
                .collect();
            let f = Frame::new(1, self.next_ts_ns, i == 0, data);
            self.writer.encode_frame(&f, &mut out).unwrap();
            self.sent_frames.push(f);
            self.next_ts_ns += self.frame_ns;
        }
        self.writer.end_fragment(&mut out).unwrap();
        out.freeze()
    }
}

/// Decoded GetMedia output: per fragment, its summary and its frames.
pub struct Decoded {
    pub fragments: Vec<(FragmentSummary, Vec<Frame>)>,
}

pub fn decode(bytes: &[u8]) -> Decoded {
    let mut reader = MkvReader::new();
    reader.push(Bytes::copy_from_slice(bytes)).unwrap();
    reader.finish();
    let mut fragments = Vec::new();
    let mut frames = Vec::new();
    for ev in reader.events() {
        match ev.unwrap() {
            Event::Frame(f) => frames.push(f),
            Event::FragmentEnd(s) => fragments.push((*s, std::mem::take(&mut frames))),
            _ => {}
        }
    }
    Decoded { fragments }
}

/// An EBML element with an 8-byte size.
pub fn el(id: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut v = id.to_vec();
    v.push(0x01);
    v.extend_from_slice(&(payload.len() as u64).to_be_bytes()[1..]);
    v.extend_from_slice(payload);
    v
}

/// An unsigned-integer element.
pub fn uint_el(id: &[u8], value: u64) -> Vec<u8> {
    el(id, &value.to_be_bytes())
}

/// A level-1 Tags element with the given SimpleTags.
pub fn tags_el(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut simple = Vec::new();
    for (n, v) in pairs {
        let mut st = el(&[0x45, 0xA3], n.as_bytes());
        st.extend(el(&[0x44, 0x87], v.as_bytes()));
        simple.extend(el(&[0x67, 0xC8], &st));
    }
    el(&[0x12, 0x54, 0xC3, 0x67], &el(&[0x73, 0x73], &simple))
}

/// A producer header (EBML + unknown Segment + Info + Tracks) with `n` video tracks.
pub fn header_with_tracks(n: u64) -> Vec<u8> {
    let mut v = kvs_core::mkv::writer::EBML_HEADER.to_vec();
    v.extend_from_slice(&kvs_core::mkv::writer::SEGMENT_UNKNOWN_SIZE);
    v.extend(el(
        &[0x15, 0x49, 0xA9, 0x66],
        &uint_el(&[0x2A, 0xD7, 0xB1], 1_000_000),
    ));
    let mut entries = Vec::new();
    for i in 1..=n {
        let mut e = uint_el(&[0xD7], i);
        e.extend(uint_el(&[0x73, 0xC5], i));
        e.extend(uint_el(&[0x83], 1));
        e.extend(el(&[0x86], codec::H264.as_bytes()));
        entries.extend(el(&[0xAE], &e));
    }
    v.extend(el(&[0x16, 0x54, 0xAE, 0x6B], &entries));
    v
}

/// An unknown-size cluster at `tc` with SimpleBlocks `(track, delta, key, payload)`.
pub fn cluster(tc: u64, blocks: &[(u8, i16, bool, &[u8])]) -> Vec<u8> {
    let mut v = vec![0x1F, 0x43, 0xB6, 0x75, 0xFF];
    v.extend(uint_el(&[0xE7], tc));
    for (track, delta, key, payload) in blocks {
        let mut b = vec![0x80 | track];
        b.extend_from_slice(&delta.to_be_bytes());
        b.push(if *key { 0x80 } else { 0 });
        b.extend_from_slice(payload);
        v.extend(el(&[0xA3], &b));
    }
    v
}

/// Absolute-timecode PutMedia request for `name`.
pub fn absolute(name: &str) -> PutMediaRequest {
    let mut r = PutMediaRequest::relative(name, Timestamp::from_millis(now_ms()));
    r.fragment_timecode_type = kvs_core::api::FragmentTimecodeType::Absolute;
    r
}

pub fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_slice(b);
}

/// What a raw exchange on a fresh connection produced.
#[derive(Debug)]
pub struct RawOutcome {
    /// The status of the first response, when one arrived.
    pub status: Option<u16>,
    /// Everything read (lossy text).
    pub text: String,
    /// The server closed the connection (EOF or reset) before `deadline`.
    pub closed: bool,
}

/// Sends `bytes` on a fresh connection, then reads until the server closes it or `deadline`
/// passes. Write errors (the server closed early) are not failures.
pub async fn raw_exchange(
    addr: std::net::SocketAddr,
    bytes: &[u8],
    deadline: Duration,
) -> RawOutcome {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let _ = tcp.write_all(bytes).await;
    read_outcome(&mut tcp, deadline).await
}

/// Reads from `tcp` until it closes or `deadline` passes.
pub async fn read_outcome(tcp: &mut TcpStream, deadline: Duration) -> RawOutcome {
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(deadline, async {
        let mut tmp = [0u8; 4096];
        loop {
            match tcp.read(&mut tmp).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
    })
    .await
    .is_ok();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|s| s.parse().ok());
    RawOutcome {
        status,
        text,
        closed,
    }
}

/// A signed `POST path` with a raw JSON `body` (for bodies the typed requests cannot express).
pub async fn signed_json(ep: &Endpoint, path: &str, body: &[u8]) -> http::Response<Bytes> {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("http://{}{path}", ep.addr))
        .header("host", ep.addr.to_string())
        .header("content-type", "application/json")
        .body(Bytes::copy_from_slice(body))
        .unwrap();
    sign_at(ep, &mut request, SystemTime::now());
    send(ep, request).await
}

/// The AWS error name of a response (`x-amzn-ErrorType` before its `:`).
pub fn error_type(response: &http::Response<Bytes>) -> String {
    response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(':').next())
        .unwrap_or_default()
        .to_owned()
}

/// A well-behaved producer on a new stream `name` (retention 1 h): streams `fragments`
/// fragments, waits for every PERSISTED, then reads the stream back with GetMedia EARLIEST and
/// checks every frame byte for byte and every acknowledged fragment number.
pub async fn good_producer_round_trip(ep: &Endpoint, name: &str, fragments: usize) {
    use kvs_core::ack::AckEventType;
    create_stream(ep, name, 1).await;
    let mut producer = Producer::new(now_ms() - 60_000, false);
    let mut pm = PutMedia::open(ep, &absolute(name)).await;
    assert_eq!(pm.status, 200, "{}", pm.head);
    assert!(pm.send(&producer.header()).await);
    let mut persisted = Vec::new();
    for _ in 0..fragments {
        assert!(pm.send(&producer.fragment(5, 400)).await);
        let acks = pm
            .acks_until(|a| matches!(a.event_type, AckEventType::Persisted | AckEventType::Error))
            .await;
        let last = acks.last().expect("an ACK");
        assert_eq!(last.event_type, AckEventType::Persisted, "{acks:?}");
        persisted.push(last.fragment_number.clone().unwrap().as_str().to_owned());
    }
    pm.finish().await;
    let mut ended = pm.ended.clone();
    tokio::time::timeout(Duration::from_secs(20), ended.wait_for(|e| *e))
        .await
        .expect("PutMedia response ends after the body")
        .unwrap();
    let request = kvs_core::api::GetMediaRequest {
        stream_name: Some(name.into()),
        stream_arn: None,
        start_selector: kvs_core::api::StartSelector::new(
            kvs_core::api::StartSelectorType::Earliest,
        ),
    };
    let response = call_raw(ep, &request).await;
    assert_eq!(response.status(), 200);
    let decoded = decode(response.body());
    let numbers: Vec<String> = decoded
        .fragments
        .iter()
        .map(|(s, _)| s.metadata.fragment_number.clone().unwrap())
        .collect();
    assert_eq!(
        numbers, persisted,
        "every acknowledged fragment is readable"
    );
    let frames: Vec<_> = decoded
        .fragments
        .iter()
        .flat_map(|(_, f)| f.clone())
        .collect();
    assert_eq!(frames.len(), producer.sent_frames.len());
    for (got, sent) in frames.iter().zip(&producer.sent_frames) {
        assert_eq!(got.data, sent.data);
        assert_eq!(got.timestamp_ns, sent.timestamp_ns);
    }
}
