//! `kvs hls`: an HLS playback URL for a stream (GetHLSStreamingSessionURL).

use clap::Args as ClapArgs;
use kvs_core::api::{
    GetHlsStreamingSessionUrlRequest, OpenTimestampRange, PlaybackMode, SessionFragmentSelector,
    TimestampSelectorType,
};

use crate::common::{self, GlobalArgs};

/// Options of `kvs hls`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The stream.
    #[arg(long)]
    pub stream: String,
    /// LIVE playback: the newest fragments, refreshed as they arrive (the default without
    /// --start).
    #[arg(long, conflicts_with_all = ["start", "end", "replay"])]
    pub live: bool,
    /// Range start (epoch seconds, RFC 3339, now, now-10m). With --end: ON_DEMAND playback of
    /// the range; without: LIVE_REPLAY from the start.
    #[arg(long, visible_alias = "from")]
    pub start: Option<String>,
    /// Range end (within 24 hours of the start).
    #[arg(long, visible_alias = "to", requires = "start")]
    pub end: Option<String>,
    /// LIVE_REPLAY even with --end (the playlist grows as if live until the end is reached).
    #[arg(long, requires = "start")]
    pub replay: bool,
    /// Select by producer timestamps instead of server (ingestion) timestamps.
    #[arg(long)]
    pub producer_time: bool,
    /// Session lifetime in seconds (300 to 43200; the service's default is 300).
    #[arg(long)]
    pub expires: Option<i64>,
    /// Most fragments per media playlist (1 to 5000; default 5 live, 1000 on demand).
    #[arg(long)]
    pub max_fragments: Option<i64>,
    /// Print `{"HLSStreamingSessionURL": ...}` instead of the bare URL.
    #[arg(long)]
    pub json: bool,
}

/// The request `args` describe.
pub fn request(args: &Args) -> Result<GetHlsStreamingSessionUrlRequest, String> {
    let (mode, range) = match &args.start {
        None => (PlaybackMode::Live, None),
        Some(start) => {
            let end = args.end.as_deref().map(common::parse_time).transpose()?;
            let mode = if end.is_some() && !args.replay {
                PlaybackMode::OnDemand
            } else {
                PlaybackMode::LiveReplay
            };
            let range = OpenTimestampRange {
                start_timestamp: Some(common::parse_time(start)?),
                end_timestamp: end,
            };
            (mode, Some(range))
        }
    };
    Ok(GetHlsStreamingSessionUrlRequest {
        stream_name: Some(args.stream.clone()),
        playback_mode: Some(mode),
        hls_fragment_selector: Some(SessionFragmentSelector {
            fragment_selector_type: Some(if args.producer_time {
                TimestampSelectorType::ProducerTimestamp
            } else {
                TimestampSelectorType::ServerTimestamp
            }),
            timestamp_range: range,
        }),
        expires: args.expires,
        max_media_playlist_fragment_results: args.max_fragments,
        ..Default::default()
    })
}

/// Runs `kvs hls`.
pub fn run(global: &GlobalArgs, args: &Args) -> Result<(), String> {
    let request = request(args)?;
    let rt = common::runtime()?;
    let url = rt.block_on(async {
        let client = global.client()?;
        client
            .get_hls_streaming_session_url(&request)
            .await
            .map_err(|e| e.to_string())
    })?;
    if args.json {
        println!("{}", serde_json::json!({ "HLSStreamingSessionURL": url }));
    } else {
        println!("{url}");
    }
    Ok(())
}
