//! `kvs get`: read a stream back with GetMedia into a playable MKV (or the raw stream).

use std::io::Write;
use std::path::PathBuf;

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
    /// Keep following the stream (until interrupted).
    #[arg(long)]
    pub follow: bool,
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
            while let Some(chunk) = body.chunk().await.map_err(|e| e.to_string())? {
                bytes += chunk.len() as u64;
                out.write_all(&chunk)
                    .map_err(|e| format!("write failed: {e}"))?;
            }
            out.flush().map_err(|e| format!("write failed: {e}"))?;
            eprintln!("wrote {bytes} bytes of the raw GetMedia stream");
            return Ok(());
        }
        let mut stream = client.get_media(&args.stream, start, args.follow);
        let mut tracks: Vec<TrackInfo> = Vec::new();
        let mut mkv = MkvOut::new(out);
        let mut fragments = 0u64;
        while let Some(event) = stream.next_event().await {
            match event.map_err(|e| e.to_string())? {
                ConsumerEvent::Track(t) => {
                    if let Some(o) = tracks.iter_mut().find(|o| o.number == t.number) {
                        *o = t;
                    } else {
                        tracks.push(t);
                    }
                }
                ConsumerEvent::Frame(f) => mkv.write(&tracks, &f)?,
                ConsumerEvent::Fragment(_) => fragments += 1,
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
