//! `kvs put`: stream a file (MKV/WebM or raw Annex-B H.264/H.265) into a stream.

use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args as ClapArgs;
use kvs_core::client::{Client, FinishReport};
use kvs_core::media::VideoCodec;
use kvs_core::mkv::Frame;
use kvs_core::session::{AckLevel, Event};

use crate::common::{self, GlobalArgs};
use crate::media_io::{self, Media};

/// Options of `kvs put`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The stream.
    #[arg(long)]
    pub stream: String,
    /// The input file, or `-` for stdin.
    pub input: PathBuf,
    /// Frame rate of a raw Annex-B input.
    #[arg(long, default_value_t = 25.0)]
    pub fps: f64,
    /// Codec of a raw Annex-B input: h264 or h265.
    #[arg(long, default_value = "h264")]
    pub codec: String,
    /// Pace frames at their own rate (else as fast as the service takes them, with timestamps
    /// placed in the recent past so none is in the future).
    #[arg(long)]
    pub realtime: bool,
    /// Create the stream when it does not exist.
    #[arg(long)]
    pub create: bool,
    /// Retention in hours for --create.
    #[arg(long, default_value_t = 24)]
    pub retention_hours: i64,
    /// How long to wait for the last PERSISTED ACK, seconds.
    #[arg(long, default_value_t = 30)]
    pub finish_timeout: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// What a put achieved.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    /// The frames as sent (timestamps mapped to producer time).
    pub frames: Vec<Frame>,
    /// The producer's final report.
    pub report: FinishReport,
    /// Wall time.
    pub elapsed: Duration,
}

/// Loads the input named by `args`.
pub fn load(args: &Args) -> Result<Media, String> {
    let data = if args.input.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::stdin()
            .read_to_end(&mut v)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        v
    } else {
        std::fs::read(&args.input)
            .map_err(|e| format!("cannot read {}: {e}", args.input.display()))?
    };
    if media_io::is_mkv(&data) {
        media_io::read_mkv(Bytes::from(data))
    } else {
        let codec = match args.codec.to_ascii_lowercase().as_str() {
            "h264" | "avc" => VideoCodec::H264,
            "h265" | "hevc" => VideoCodec::H265,
            other => return Err(format!("unknown --codec {other:?}; use h264 or h265")),
        };
        media_io::read_annexb(&data, codec, args.fps)
    }
}

/// Streams `media` into `stream`; maps timestamps to producer (epoch) time.
pub async fn put_media(
    client: &Client,
    stream: &str,
    media: &Media,
    realtime: bool,
    finish_timeout: Duration,
    progress: bool,
) -> Result<PutOutcome, String> {
    let (first, last) = media.span();
    let now_ns = (common::now_ms() as i64) * 1_000_000;
    // Realtime: the first frame is "now" and later ones wait for their time. Otherwise the
    // whole input ends one second ago, so no timestamp lies in the future.
    let offset = if realtime {
        now_ns - first
    } else {
        now_ns - 1_000_000_000 - (last - first) - first
    };
    let mut producer = client
        .producer(stream, media.tracks.clone())
        .ack_level(AckLevel::Persisted)
        .finish_timeout(finish_timeout)
        .start()
        .map_err(|e| e.to_string())?;
    let mut events = producer.take_events();
    let bar = if progress {
        let bar = indicatif::ProgressBar::new(media.frames.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} frames  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Some(bar)
    } else {
        None
    };
    let started = Instant::now();
    let mut sent = Vec::with_capacity(media.frames.len());
    let mut persisted = 0u64;
    let mut errors: Vec<String> = Vec::new();
    let pump = |events: &mut Option<tokio::sync::mpsc::UnboundedReceiver<Event>>,
                persisted: &mut u64,
                errors: &mut Vec<String>| {
        if let Some(rx) = events.as_mut() {
            while let Ok(ev) = rx.try_recv() {
                match ev {
                    Event::Ack {
                        kind: kvs_core::ack::AckEventType::Persisted,
                        ..
                    } => *persisted += 1,
                    Event::Error(e) => errors.push(e.to_string()),
                    _ => {}
                }
            }
        }
    };
    for frame in &media.frames {
        let mut f = frame.clone();
        f.timestamp_ns = frame.timestamp_ns + offset;
        if realtime {
            let due = Duration::from_nanos((frame.timestamp_ns - first).max(0) as u64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        producer
            .put_frame(f.clone())
            .await
            .map_err(|e| e.to_string())?;
        sent.push(f);
        pump(&mut events, &mut persisted, &mut errors);
        if let Some(bar) = &bar {
            bar.inc(1);
            bar.set_message(format!("{persisted} fragments PERSISTED"));
        }
    }
    let report = producer.finish().await.map_err(|e| {
        let detail = errors
            .last()
            .map(|d| format!(" (last error: {d})"))
            .unwrap_or_default();
        format!("{e}{detail}")
    })?;
    pump(&mut events, &mut persisted, &mut errors);
    persisted = persisted.max(report.fragments_acked);
    if let Some(bar) = bar {
        bar.finish_with_message(format!("{persisted} fragments PERSISTED"));
    }
    Ok(PutOutcome {
        frames: sent,
        report,
        elapsed: started.elapsed(),
    })
}

/// Creates `stream` when it does not exist, and waits until it is ACTIVE.
pub async fn ensure_stream(
    client: &Client,
    stream: &str,
    retention_hours: i64,
) -> Result<(), String> {
    match client.describe_stream(stream).await {
        Ok(_) => {}
        Err(e) if e.is_kind(&kvs_core::api::ApiErrorKind::ResourceNotFound) => {
            client
                .create_stream(stream, retention_hours)
                .await
                .map_err(|e| e.to_string())?;
        }
        Err(e) => return Err(e.to_string()),
    }
    client
        .wait_active(stream, Duration::from_secs(30))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Runs `kvs put`.
pub fn run(global: &GlobalArgs, args: &Args) -> Result<(), String> {
    let media = load(args)?;
    let rt = common::runtime()?;
    rt.block_on(async {
        let client = global.client()?;
        if args.create {
            ensure_stream(&client, &args.stream, args.retention_hours).await?;
        } else {
            // A stream created a moment ago may still be CREATING: PutMedia needs it ACTIVE.
            client
                .wait_active(&args.stream, Duration::from_secs(30))
                .await
                .map_err(|e| {
                    if e.is_kind(&kvs_core::api::ApiErrorKind::ResourceNotFound) {
                        format!(
                            "stream {} does not exist: create it first (`kvs streams create {}`) or pass --create",
                            args.stream, args.stream
                        )
                    } else {
                        e.to_string()
                    }
                })?;
        }
        let out = put_media(
            &client,
            &args.stream,
            &media,
            args.realtime,
            Duration::from_secs(args.finish_timeout),
            !args.quiet && !args.json,
        )
        .await?;
        let m = &out.report.metrics;
        if args.json {
            println!(
                "{}",
                serde_json::json!({
                    "stream": args.stream, "frames": out.frames.len(), "bytes": m.bytes_pushed,
                    "fragments_persisted": out.report.fragments_acked,
                    "ack_latency_mean_ms": m.ack_latency_mean_ms(), "ack_latency_max_ms": m.ack_latency_max_ms,
                    "connections": m.connections, "rewinds": m.rewinds,
                    "bytes_retransmitted": m.bytes_retransmitted,
                    "seconds": out.elapsed.as_secs_f64(),
                })
            );
        } else {
            println!(
                "put {} frames ({} bytes) into {}: {} fragments PERSISTED, ACK latency mean {} ms max {} ms, {} connection(s), {:.2} s",
                out.frames.len(), m.bytes_pushed, args.stream, out.report.fragments_acked,
                m.ack_latency_mean_ms(), m.ack_latency_max_ms, m.connections, out.elapsed.as_secs_f64()
            );
        }
        Ok(())
    })
}
