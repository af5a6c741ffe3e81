//! `kvs hls` and `kvs dash`: an HLS or DASH playback URL for a stream
//! (GetHLSStreamingSessionURL, GetDASHStreamingSessionURL; same options).

use clap::Args as ClapArgs;
use kvs_core::api::{
    GetDashStreamingSessionUrlRequest, GetHlsStreamingSessionUrlRequest, OpenTimestampRange,
    PlaybackMode, SessionFragmentSelector, TimestampSelectorType,
};

use crate::common::{self, GlobalArgs};

/// Options of `kvs hls` and `kvs dash`.
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
    /// Most fragments per media playlist or manifest (1 to 5000; default 5 live, 1000 on
    /// demand).
    #[arg(long)]
    pub max_fragments: Option<i64>,
    /// Print `{"HLSStreamingSessionURL": ...}` (`DASHStreamingSessionURL` for dash) instead of
    /// the bare URL.
    #[arg(long)]
    pub json: bool,
}

/// The playback mode and fragment selector `args` describe.
fn selection(args: &Args) -> Result<(PlaybackMode, SessionFragmentSelector), String> {
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
    let selector = SessionFragmentSelector {
        fragment_selector_type: Some(if args.producer_time {
            TimestampSelectorType::ProducerTimestamp
        } else {
            TimestampSelectorType::ServerTimestamp
        }),
        timestamp_range: range,
    };
    Ok((mode, selector))
}

/// The HLS request `args` describe.
pub fn request(args: &Args) -> Result<GetHlsStreamingSessionUrlRequest, String> {
    let (mode, selector) = selection(args)?;
    Ok(GetHlsStreamingSessionUrlRequest {
        stream_name: Some(args.stream.clone()),
        playback_mode: Some(mode),
        hls_fragment_selector: Some(selector),
        expires: args.expires,
        max_media_playlist_fragment_results: args.max_fragments,
        ..Default::default()
    })
}

/// The DASH request `args` describe.
pub fn dash_request(args: &Args) -> Result<GetDashStreamingSessionUrlRequest, String> {
    let (mode, selector) = selection(args)?;
    Ok(GetDashStreamingSessionUrlRequest {
        stream_name: Some(args.stream.clone()),
        playback_mode: Some(mode),
        dash_fragment_selector: Some(selector),
        expires: args.expires,
        max_manifest_fragment_results: args.max_fragments,
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
    print_url(args, "HLSStreamingSessionURL", &url);
    Ok(())
}

/// Runs `kvs dash`.
pub fn run_dash(global: &GlobalArgs, args: &Args) -> Result<(), String> {
    let request = dash_request(args)?;
    let rt = common::runtime()?;
    let url = rt.block_on(async {
        let client = global.client()?;
        client
            .get_dash_streaming_session_url(&request)
            .await
            .map_err(|e| e.to_string())
    })?;
    print_url(args, "DASHStreamingSessionURL", &url);
    Ok(())
}

fn print_url(args: &Args, key: &str, url: &str) {
    if args.json {
        println!("{}", serde_json::json!({ key: url }));
    } else {
        println!("{url}");
    }
}
