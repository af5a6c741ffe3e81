//! `kvs fragments`: ListFragments by time range, as a table or JSON.

use clap::Args as ClapArgs;
use kvs_core::api::{FragmentSelector, TimestampRange, TimestampSelectorType};

use crate::common::{self, GlobalArgs};

/// Options of `kvs fragments`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The stream.
    #[arg(long)]
    pub stream: String,
    /// Range start (epoch seconds, RFC 3339, now, now-10m).
    #[arg(long, default_value = "now-1h")]
    pub from: String,
    /// Range end.
    #[arg(long, default_value = "now")]
    pub to: String,
    /// Select by server (ingestion) timestamps instead of producer timestamps.
    #[arg(long)]
    pub server_time: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// Runs `kvs fragments`.
pub fn run(global: &GlobalArgs, args: &Args) -> Result<(), String> {
    let selector = FragmentSelector {
        fragment_selector_type: if args.server_time {
            TimestampSelectorType::ServerTimestamp
        } else {
            TimestampSelectorType::ProducerTimestamp
        },
        timestamp_range: TimestampRange {
            start_timestamp: common::parse_time(&args.from)?,
            end_timestamp: common::parse_time(&args.to)?,
        },
    };
    let rt = common::runtime()?;
    let fragments = rt.block_on(async {
        let client = global.client()?;
        client
            .list_all_fragments(&args.stream, Some(selector))
            .await
            .map_err(|e| e.to_string())
    })?;
    if args.json {
        for f in &fragments {
            println!("{}", serde_json::to_string(f).map_err(|e| e.to_string())?);
        }
        return Ok(());
    }
    println!(
        "{:<48} {:>17} {:>17} {:>9} {:>10}",
        "FRAGMENT NUMBER", "PRODUCER TIME", "SERVER TIME", "MS", "BYTES"
    );
    for f in &fragments {
        println!(
            "{:<48} {:>17} {:>17} {:>9} {:>10}",
            f.fragment_number,
            f.producer_timestamp.to_string(),
            f.server_timestamp.to_string(),
            f.fragment_length_in_milliseconds,
            f.fragment_size_in_bytes
        );
    }
    eprintln!("{} fragments", fragments.len());
    Ok(())
}
