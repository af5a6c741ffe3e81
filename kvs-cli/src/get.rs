//! `kvs get`: read a stream back with GetMedia into a playable MKV (or the raw stream).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;
use kvs_core::api::{GetMediaRequest, StartSelector, StartSelectorType};
use kvs_core::mkv::TrackInfo;
use kvs_core::session::consumer::ConsumerEvent;

use crate::common::{self, GlobalArgs};
use crate::media_io::MkvOut;

/// Options of `kvs get`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The stream.
    #[arg(long)]
    pub stream: String,
    /// Where to start: now, earliest, or a producer timestamp (epoch seconds, RFC 3339, now-30s).
    #[arg(long, default_value = "earliest", conflicts_with = "after")]
    pub start: String,
    /// Start after this fragment number.
    #[arg(long)]
    pub after: Option<String>,
    /// Keep following the stream (until interrupted, or until --max-fragments or
    /// --idle-timeout ends it).
    #[arg(long)]
    pub follow: bool,
    /// Stop after this many complete fragments (with --raw: after this many GetMedia
    /// documents, i.e. fragments, were written).
    #[arg(long, value_name = "N")]
    pub max_fragments: Option<u64>,
    /// Stop when no data arrived for this many seconds (fractions allowed); useful with
    /// --follow. Without --raw, ending with nothing written is an error.
    #[arg(long, value_name = "SECONDS")]
    pub idle_timeout: Option<f64>,
    /// Output file, or `-` for stdout.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Write the raw GetMedia stream (one response, no resume) instead of a merged MKV.
    #[arg(long)]
    pub raw: bool,
}

fn selector(args: &Args) -> Result<StartSelector, String> {
    if let Some(after) = &args.after {
        let mut s = StartSelector::new(StartSelectorType::FragmentNumber);
        s.after_fragment_number = Some(after.clone());
        return Ok(s);
    }
    Ok(match args.start.as_str() {
        "now" => StartSelector::new(StartSelectorType::Now),
        "earliest" => StartSelector::new(StartSelectorType::Earliest),
        t => {
            let mut s = StartSelector::new(StartSelectorType::ProducerTimestamp);
            s.start_timestamp = Some(common::parse_time(t)?);
            s
        }
    })
}

/// Awaits `fut`, or gives `None` when `idle` passes first.
async fn next_within<T>(
    idle: Option<Duration>,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    match idle {
        None => Some(fut.await),
        Some(d) => tokio::time::timeout(d, fut).await.ok(),
    }
}

fn open_output(path: &PathBuf) -> Result<Box<dyn Write + Send>, String> {
    if path.as_os_str() == "-" {
        Ok(Box::new(std::io::BufWriter::new(std::io::stdout())))
    } else {
        std::fs::File::create(path)
            .map(|f| Box::new(std::io::BufWriter::new(f)) as Box<dyn Write + Send>)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))
    }
}

/// Runs `kvs get`.
pub fn run(global: &GlobalArgs, args: &Args) -> Result<(), String> {
    let start = selector(args)?;
    let idle = match args.idle_timeout {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(format!(
                "--idle-timeout {s} is out of range (0, 86400] seconds"
            ));
        }
    };
    let rt = common::runtime()?;
    rt.block_on(async {
        let client = global.client()?;
        let mut out = open_output(&args.output)?;
        if args.raw {
            let request = GetMediaRequest {
                stream_name: Some(args.stream.clone()),
                stream_arn: None,
                start_selector: start,
            };
            let mut body = client
                .get_media_raw(&request)
                .await
                .map_err(|e| e.to_string())?;
            let mut bytes = 0u64;
            // Counts complete fragments so --max-fragments can stop a followed raw stream.
            let mut reader = kvs_core::mkv::reader::MkvReader::new();
            let mut fragments = 0u64;
            loop {
                let chunk = match next_within(idle, body.chunk()).await {
                    None => break,
                    Some(c) => c.map_err(|e| e.to_string())?,
                };
                let Some(chunk) = chunk else { break };
                bytes += chunk.len() as u64;
                out.write_all(&chunk)
                    .map_err(|e| format!("write failed: {e}"))?;
                if args.max_fragments.is_some() {
                    reader
                        .push(chunk)
                        .map_err(|e| format!("the GetMedia stream is malformed: {e}"))?;
                    while let Some(ev) = reader.poll_event() {
                        if let Ok(kvs_core::mkv::reader::Event::FragmentEnd(_)) = ev {
                            fragments += 1;
                        }
                    }
                    out.flush().map_err(|e| format!("write failed: {e}"))?;
                    if args.max_fragments.is_some_and(|m| fragments >= m) {
                        break;
                    }
                }
            }
            out.flush().map_err(|e| format!("write failed: {e}"))?;
            eprintln!("wrote {bytes} bytes of the raw GetMedia stream");
            return Ok(());
        }
        let mut stream = client.get_media(&args.stream, start, args.follow);
        let mut tracks: Vec<TrackInfo> = Vec::new();
        let mut mkv = MkvOut::new(out);
        let mut fragments = 0u64;
        while let Some(Some(event)) = next_within(idle, stream.next_event()).await {
            match event.map_err(|e| e.to_string())? {
                ConsumerEvent::Track(t) => {
                    if let Some(o) = tracks.iter_mut().find(|o| o.number == t.number) {
                        *o = t;
                    } else {
                        tracks.push(t);
                    }
                }
                ConsumerEvent::Frame(f) => mkv.write(&tracks, &f)?,
                ConsumerEvent::Fragment(_) => {
                    fragments += 1;
                    // A follower shows each fragment as it completes.
                    mkv.flush()?;
                    if args.max_fragments.is_some_and(|m| fragments >= m) {
                        break;
                    }
                }
                ConsumerEvent::Error { code, id, .. } => {
                    eprintln!("kvs: in-band error from the service: code {code:?} id {id:?}")
                }
                _ => {}
            }
        }
        let frames = mkv.frames;
        let bytes = mkv.bytes;
        if frames == 0 {
            // An empty file is not a playable MKV: say so rather than leave one behind.
            drop(mkv);
            if args.output.as_os_str() != "-" {
                let _ = std::fs::remove_file(&args.output);
            }
            return Err(format!(
                "stream {} has no fragments from the requested start; nothing was written \
                 (put media first, or choose an earlier --start)",
                args.stream
            ));
        }
        mkv.finish()?;
        eprintln!("wrote {fragments} fragments, {frames} frames, {bytes} bytes");
        Ok(())
    })
}
