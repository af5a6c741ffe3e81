//! `kvs-load`: a load generator for kvs-server.
//!
//! Runs N concurrent PutMedia producers (kvs-core's `PutMediaSession`, driven over loopback
//! HTTP) at a given bitrate, frame rate and fragment duration, plus one live GetMedia reader per
//! stream, for a bounded time. Reports ingest MB/s, PERSISTED-ACK latency (from the moment the
//! fragment's last byte was written to the socket to its PERSISTED ACK) p50/p99/max, and the
//! server's resident memory.
//!
//! By default the server runs in a child process (this binary re-executed with `--server-only`)
//! so that its RSS is its own; `--in-process` runs it in this process instead.
//!
//! ```text
//! kvs-load --streams 16 --kbps 2000 --fps 25 --fragment-ms 2000 --seconds 12
//! ```

use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kvs_core::ack::AckEventType;
use kvs_core::api::{
    ApiOperation, CreateStreamRequest, GetMediaRequest, StartSelector, StartSelectorType, Timestamp,
};
use kvs_core::mkv::writer::StreamConfig;
use kvs_core::mkv::{Frame, TrackInfo, TrackType, codec};
use kvs_core::session::{Event, SessionConfig};
use kvs_core::sigv4::{PayloadSigning, SigningCredentials, SigningParams};
use kvs_server::producer::{Report, Target};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

struct Options {
    streams: usize,
    kbps: u64,
    fps: u64,
    fragment_ms: u64,
    seconds: u64,
    readers: bool,
    in_process: bool,
    data_dir: Option<PathBuf>,
}

const USAGE: &str = "usage: kvs-load [--streams N] [--kbps K] [--fps F] [--fragment-ms MS] \
[--seconds S] [--no-readers] [--in-process] [--data-dir DIR]";

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        streams: 4,
        kbps: 2000,
        fps: 25,
        fragment_ms: 2000,
        seconds: 12,
        readers: true,
        in_process: false,
        data_dir: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> Result<String, String> {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let num = |v: String, name: &str| -> Result<u64, String> {
            v.parse::<u64>()
                .map_err(|_| format!("{name}: {v} is not a number"))
        };
        match a.as_str() {
            "--streams" => o.streams = num(value(&a)?, &a)? as usize,
            "--kbps" => o.kbps = num(value(&a)?, &a)?,
            "--fps" => o.fps = num(value(&a)?, &a)?.max(1),
            "--fragment-ms" => o.fragment_ms = num(value(&a)?, &a)?.max(1),
            "--seconds" => o.seconds = num(value(&a)?, &a)?,
            "--no-readers" => o.readers = false,
            "--in-process" => o.in_process = true,
            "--data-dir" => o.data_dir = Some(PathBuf::from(value(&a)?)),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(o)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Resident and peak resident memory of a process, in MiB (from /proc).
fn rss_mib(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// File the child server writes its sealing statistics to (in its data directory).
const SEAL_STATS_FILE: &str = "seal-stats";

/// CPU time (user + system) of a process, ns, from /proc (clock ticks assumed 100 Hz).
fn cpu_ns(pid: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is field 3; utime 14, stime 15.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|w| w.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    ticks * 10_000_000
}

fn temp_data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("kvs-load-{}-{}", std::process::id(), now_ms()))
}

/// `--server-only DIR`: run a server on a free port, print its export line, serve until killed.
fn server_only(dir: PathBuf) -> Result<(), String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let mut config = kvs_server::ServerConfig::new(dir);
        config.port = 0;
        let mut server = kvs_server::Server::bind(config)
            .await
            .map_err(|e| e.to_string())?;
        println!("{}", server.export_line());
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // Every half second: the time spent sealing/opening and this process's CPU time, for
        // the parent's report of the sealing share (read from one snapshot).
        let stats_path = server.data_dir().join(SEAL_STATS_FILE);
        kvs_server::seal::set_thread_cpu_accounting(true);
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let s = kvs_server::seal::stats();
                let text = format!(
                    "{} {} {} {}\n",
                    s.seal_ns,
                    s.open_ns,
                    s.sealed_bytes,
                    cpu_ns("self")
                );
                let _ = std::fs::write(&stats_path, text);
            }
        });
        server.wait().await;
        Ok(())
    })
}

struct Spawned {
    child: std::process::Child,
    target: Target,
}

fn spawn_server(dir: &std::path::Path) -> Result<Spawned, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = std::process::Command::new(exe)
        .arg("--server-only")
        .arg(dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start the server: {e}"))?;
    let stdout = child.stdout.take().ok_or("no server stdout")?;
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let get = |key: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .ok_or_else(|| format!("server banner lacks {key}: {line}"))
    };
    let url = get("AWS_ENDPOINT_URL")?;
    let addr: SocketAddr = url
        .trim_start_matches("http://")
        .parse()
        .map_err(|e| format!("bad endpoint {url}: {e}"))?;
    Ok(Spawned {
        target: Target {
            addr,
            access_key_id: get("AWS_ACCESS_KEY_ID")?,
            secret_access_key: get("AWS_SECRET_ACCESS_KEY")?,
            region: get("AWS_REGION")?,
        },
        child,
    })
}

/// Sends one signed request and returns the response with a streaming body.
async fn send(
    target: &Target,
    mut request: http::Request<Bytes>,
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let body = request.body().clone();
    let creds = SigningCredentials {
        access_key_id: &target.access_key_id,
        secret_access_key: &target.secret_access_key,
        session_token: None,
    };
    let params = SigningParams::new(
        creds,
        &target.region,
        SystemTime::now(),
        PayloadSigning::Body(&body),
    );
    kvs_core::sigv4::sign(&request, &params)
        .and_then(|out| out.apply_to_request(&mut request))
        .map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(target.addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    sender
        .send_request(request.map(Full::new))
        .await
        .map_err(|e| e.to_string())
}

fn uri(target: &Target) -> http::Uri {
    format!("http://{}", target.addr)
        .parse()
        .unwrap_or_else(|_| http::Uri::from_static("http://127.0.0.1"))
}

async fn create_stream(target: &Target, name: &str) -> Result<(), String> {
    let req = CreateStreamRequest {
        device_name: None,
        stream_name: name.into(),
        media_type: Some("video/h264".into()),
        kms_key_id: None,
        data_retention_in_hours: Some(1),
        tags: None,
        stream_storage_configuration: None,
    };
    let http = req.to_http(&uri(target)).map_err(|e| e.to_string())?;
    let resp = send(target, http).await?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    if !status.is_success() {
        return Err(format!("CreateStream {name}: HTTP {status}"));
    }
    // Wait until ACTIVE (the default transition delay is 200 ms).
    tokio::time::sleep(Duration::from_millis(400)).await;
    Ok(())
}

/// A live GetMedia (NOW) reader; counts bytes until `stop`.
async fn reader(target: Target, name: String, bytes: Arc<AtomicU64>, stop: Instant) {
    let req = GetMediaRequest {
        stream_name: Some(name),
        stream_arn: None,
        start_selector: StartSelector::new(StartSelectorType::Now),
    };
    let Ok(http) = req.to_http(&uri(&target)) else {
        return;
    };
    let Ok(resp) = send(&target, http).await else {
        return;
    };
    let mut body = resp.into_body();
    while Instant::now() < stop {
        match tokio::time::timeout_at(stop.into(), body.frame()).await {
            Ok(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    bytes.fetch_add(d.len() as u64, Ordering::Relaxed);
                }
            }
            _ => break,
        }
    }
}

#[derive(Default)]
struct ProducerStats {
    sent_bytes: u64,
    latencies_ms: Vec<f64>,
    persisted: usize,
    errors: usize,
    dropped: usize,
    refused: usize,
}

/// One producer: paced frames into a session, ACK latencies out.
async fn producer(target: Target, name: String, o: Arc<Options>, stop: Instant) -> ProducerStats {
    let start_ms = now_ms();
    let tracks = vec![TrackInfo::new(1, 1, TrackType::Video, codec::H264)];
    let mut uid = [9u8; 16];
    uid[..8].copy_from_slice(&(name.len() as u64 ^ start_ms).to_le_bytes());
    let config = SessionConfig::new(
        &name,
        StreamConfig::new(uid),
        tracks,
        Timestamp::from_millis(start_ms),
    );
    let (frame_tx, frame_rx) = mpsc::channel(64);
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let driver = tokio::spawn(kvs_server::producer::run(
        target, config, frame_rx, report_tx,
    ));
    let frame_bytes = (o.kbps * 1000 / 8 / o.fps).max(1) as usize;
    let frame_ms = 1000 / o.fps;
    let gop = (o.fragment_ms / frame_ms).max(1);
    let pacer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(frame_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let payload = Bytes::from(vec![0x5Au8; frame_bytes]);
        let mut i = 0u64;
        while Instant::now() < stop {
            tick.tick().await;
            let ts = (start_ms + i * frame_ms) as i64 * 1_000_000;
            let f = Frame::new(1, ts, i.is_multiple_of(gop), payload.clone());
            if frame_tx.send(f).await.is_err() {
                break;
            }
            i += 1;
        }
    });
    let mut stats = ProducerStats::default();
    // Key frame timestamp (ms) -> when it was written: the previous fragment's last byte.
    let mut key_written: BTreeMap<u64, Instant> = BTreeMap::new();
    let mut done = Box::pin(async {
        let _ = pacer.await;
        driver.await
    });
    let mut drained = false;
    loop {
        tokio::select! {
            r = reports.recv() => match r {
                Some(Report::Sent { data, .. }) => stats.sent_bytes += data.len() as u64,
                Some(Report::FrameWritten { timestamp_ns, key: true, at }) => {
                    key_written.insert((timestamp_ns / 1_000_000) as u64, at);
                }
                Some(Report::Session(Event::Ack { kind: AckEventType::Persisted, fragment_timecode, .. }, at)) => {
                    stats.persisted += 1;
                    if let Some((_, sent)) = key_written.range(fragment_timecode + 1..).next() {
                        stats.latencies_ms.push(at.saturating_duration_since(*sent).as_secs_f64() * 1000.0);
                    }
                }
                Some(Report::Session(Event::Error(_), _)) => stats.errors += 1,
                Some(Report::Session(Event::Dropped(_), _)) => stats.dropped += 1,
                Some(Report::Refused { .. }) => stats.refused += 1,
                Some(_) => {}
                None => break,
            },
            _ = &mut done, if !drained => drained = true,
            _ = tokio::time::sleep_until((stop + Duration::from_secs(10)).into()) => break,
        }
    }
    stats
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--server-only") {
        let dir = args.get(2).map_or_else(temp_data_dir, PathBuf::from);
        if let Err(e) = server_only(dir) {
            eprintln!("kvs-load server: {e}");
            std::process::exit(1);
        }
        return;
    }
    let o = match parse_args() {
        Ok(o) => Arc::new(o),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = load(o) {
        eprintln!("kvs-load: {e}");
        std::process::exit(1);
    }
}

fn load(o: Arc<Options>) -> Result<(), String> {
    let dir = o.data_dir.clone().unwrap_or_else(temp_data_dir);
    kvs_server::seal::set_thread_cpu_accounting(true);
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let (mut spawned, mut in_process) = (None, None);
    let target = if o.in_process {
        let mut config = kvs_server::ServerConfig::new(dir.clone());
        config.port = 0;
        let server = rt
            .block_on(kvs_server::Server::bind(config))
            .map_err(|e| e.to_string())?;
        let t = Target::of(&server);
        in_process = Some(server);
        t
    } else {
        let s = spawn_server(&dir)?;
        let t = s.target.clone();
        spawned = Some(s);
        t
    };
    let server_pid = spawned
        .as_ref()
        .map_or(std::process::id(), |s| s.child.id());
    let result = rt.block_on(async {
        for i in 0..o.streams {
            create_stream(&target, &format!("load-{i}")).await?;
        }
        let started = Instant::now();
        let stop = started + Duration::from_secs(o.seconds);
        let read_bytes = Arc::new(AtomicU64::new(0));
        let mut readers = Vec::new();
        if o.readers {
            for i in 0..o.streams {
                readers.push(tokio::spawn(reader(
                    target.clone(),
                    format!("load-{i}"),
                    read_bytes.clone(),
                    stop + Duration::from_secs(2),
                )));
            }
        }
        let mut producers = Vec::new();
        for i in 0..o.streams {
            producers.push(tokio::spawn(producer(
                target.clone(),
                format!("load-{i}"),
                o.clone(),
                stop,
            )));
        }
        let mut all = ProducerStats::default();
        for p in producers {
            if let Ok(s) = p.await {
                all.sent_bytes += s.sent_bytes;
                all.latencies_ms.extend(s.latencies_ms);
                all.persisted += s.persisted;
                all.errors += s.errors;
                all.dropped += s.dropped;
                all.refused += s.refused;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let (rss, hwm) = rss_mib(server_pid);
        for r in readers {
            let _ = r.await;
        }
        all.latencies_ms.sort_by(f64::total_cmp);
        let l = &all.latencies_ms;
        println!(
            "streams={} kbps={} fps={} fragment_ms={} seconds={:.1} readers={} server={}",
            o.streams,
            o.kbps,
            o.fps,
            o.fragment_ms,
            elapsed,
            o.readers,
            if o.in_process { "in-process" } else { "child" }
        );
        println!(
            "ingest_MBps={:.2} read_MBps={:.2} fragments_persisted={} errors={} dropped={} refused={}",
            all.sent_bytes as f64 / elapsed / 1e6,
            read_bytes.load(Ordering::Relaxed) as f64 / elapsed / 1e6,
            all.persisted,
            all.errors,
            all.dropped,
            all.refused
        );
        println!(
            "persisted_latency_ms p50={:.1} p99={:.1} max={:.1} (n={})",
            percentile(l, 0.5),
            percentile(l, 0.99),
            l.last().copied().unwrap_or(f64::NAN),
            l.len()
        );
        println!("server_rss_MiB={rss:.1} server_peak_rss_MiB={hwm:.1}");
        // Encryption at rest: time in AES-GCM seal/open against the server's CPU time.
        let (seal_ns, open_ns, sealed, cpu) = if o.in_process {
            let s = kvs_server::seal::stats();
            (s.seal_ns, s.open_ns, s.sealed_bytes, cpu_ns("self"))
        } else {
            let text = std::fs::read_to_string(dir.join(SEAL_STATS_FILE)).unwrap_or_default();
            let v: Vec<u64> = text
                .split_whitespace()
                .map(|w| w.parse().unwrap_or(0))
                .collect();
            let at = |i: usize| v.get(i).copied().unwrap_or(0);
            (at(0), at(1), at(2), at(3))
        };
        println!(
            "sealing_ms={:.1} opening_ms={:.1} sealed_MB={:.1} server_cpu_ms={:.0} sealing_share={:.2}%{}",
            seal_ns as f64 / 1e6,
            open_ns as f64 / 1e6,
            sealed as f64 / 1e6,
            cpu as f64 / 1e6,
            (seal_ns + open_ns) as f64 * 100.0 / (cpu.max(1) as f64),
            if o.in_process { " (of the whole process: server and load)" } else { "" }
        );
        Ok::<(), String>(())
    });
    if let Some(server) = in_process {
        rt.block_on(server.shutdown());
    }
    if let Some(mut s) = spawned {
        let _ = s.child.kill();
        let _ = s.child.wait();
    }
    if o.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}
