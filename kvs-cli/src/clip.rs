//! `kvs clip`: a time range of a stream as an MP4 file (GetClip).

use std::io::Write;
use std::path::PathBuf;

use clap::Args as ClapArgs;
use kvs_core::api::{FragmentSelector, TimestampRange, TimestampSelectorType};

use crate::common::{self, GlobalArgs};

/// Options of `kvs clip`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The stream.
    #[arg(long)]
    pub stream: String,
    /// Range start (epoch seconds, RFC 3339, now, now-10m). Fragments that start at or after it
    /// are included.
    #[arg(long, visible_alias = "from")]
    pub start: String,
    /// Range end (inclusive, within 24 hours of the start). Fragments that start before it are
    /// included whole.
    #[arg(long, visible_alias = "to", default_value = "now")]
    pub end: String,
    /// Select by server (ingestion) timestamps instead of producer timestamps.
    #[arg(long)]
    pub server_time: bool,
    /// Output MP4 file, or `-` for stdout.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Runs `kvs clip`.
pub fn run(global: &GlobalArgs, args: &Args) -> Result<(), String> {
    let selector = FragmentSelector {
        fragment_selector_type: if args.server_time {
            TimestampSelectorType::ServerTimestamp
        } else {
            TimestampSelectorType::ProducerTimestamp
        },
        timestamp_range: TimestampRange {
            start_timestamp: common::parse_time(&args.start)?,
            end_timestamp: common::parse_time(&args.end)?,
        },
    };
    let rt = common::runtime()?;
    rt.block_on(async {
        let client = global.client()?;
        let mut body = client
            .get_clip(&args.stream, selector)
            .await
            .map_err(|e| e.to_string())?;
        let mut out: Box<dyn Write> = if args.output.as_os_str() == "-" {
            Box::new(std::io::BufWriter::new(std::io::stdout()))
        } else {
            let f = std::fs::File::create(&args.output)
                .map_err(|e| format!("cannot create {}: {e}", args.output.display()))?;
            Box::new(std::io::BufWriter::new(f))
        };
        let mut bytes = 0u64;
        while let Some(chunk) = body.chunk().await.map_err(|e| e.to_string())? {
            bytes += chunk.len() as u64;
            out.write_all(&chunk)
                .map_err(|e| format!("write failed: {e}"))?;
        }
        out.flush().map_err(|e| format!("write failed: {e}"))?;
        eprintln!("wrote a {bytes}-byte MP4 clip");
        Ok(())
    })
}
