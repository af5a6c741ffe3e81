//! `kvs demo`: the local server in-process, the bundled sample through the producer, read back
//! live and by time range, verified frame by frame.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args as ClapArgs;
use kvs_core::api::{
    FragmentSelector, StartSelector, StartSelectorType, Timestamp, TimestampRange,
    TimestampSelectorType,
};
use kvs_core::client::Client;
use kvs_core::credentials::Credentials;
use kvs_core::mkv::reader::Event;
use kvs_core::mkv::{Frame, TrackInfo};
use kvs_core::session::consumer::ConsumerEvent;

use crate::common;
use crate::media_io::{self, MkvOut};

/// The bundled sample (H.264 + AAC, 5 fragments of 2 s).
const SAMPLE: &[u8] = include_bytes!("../../examples/media/sample.mkv");

/// Options of `kvs demo`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Where to write the MKV of a time range (default: in the temporary directory).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Keep the temporary data directory.
    #[arg(long)]
    pub keep: bool,
}

type Key = (u64, i64, bool, Bytes);

fn key(f: &Frame) -> Key {
    (
        f.track,
        f.timestamp_ns.div_euclid(1_000_000),
        f.keyframe,
        f.data.clone(),
    )
}

fn compare(what: &str, expected: &[Frame], got: &[Frame]) -> Result<(), String> {
    if expected.len() != got.len() {
        return Err(format!(
            "{what}: expected {} frames, got {}",
            expected.len(),
            got.len()
        ));
    }
    let mut e: Vec<Key> = expected.iter().map(key).collect();
    let mut g: Vec<Key> = got.iter().map(key).collect();
    e.sort();
    g.sort();
    for (i, (a, b)) in e.iter().zip(&g).enumerate() {
        if a != b {
            return Err(format!(
                "{what}: frame {i} differs: expected track {} at {} ms ({} bytes), got track {} at {} ms ({} bytes)",
                a.0,
                a.1,
                a.3.len(),
                b.0,
                b.1,
                b.3.len()
            ));
        }
    }
    Ok(())
}

/// Runs `kvs demo`.
pub fn run(args: &Args) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!(
        "kvs-demo-{}-{}",
        std::process::id(),
        common::now_ms()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let rt = common::runtime()?;
    let result = rt.block_on(demo(&dir, args));
    if !args.keep {
        let _ = std::fs::remove_dir_all(dir.join("data"));
    }
    result
}

async fn demo(dir: &std::path::Path, args: &Args) -> Result<(), String> {
    let mut config = kvs_server::ServerConfig::new(dir.join("data"));
    config.port = 0;
    let server = kvs_server::Server::bind(config)
        .await
        .map_err(|e| format!("the local server did not start: {e}"))?;
    println!(
        "kvs demo: local server at {} (data in {})",
        server.base_url(),
        server.data_dir().display()
    );
    let creds = server.credentials();
    let client = Client::builder()
        .endpoint_url(server.base_url())
        .region(server.region())
        .credentials(Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.clone(),
        ))
        .build()
        .map_err(|e| e.to_string())?;
    let stream = "kvs-demo";
    crate::put::ensure_stream(&client, stream, 24).await?;
    println!("created stream {stream}");

    let media = media_io::read_mkv(Bytes::from_static(SAMPLE))?;
    let tracks = media.tracks.clone();
    let expected_frames = media.frames.len();

    // Live reader, started before the producer.
    let live_client = client.clone();
    let live = tokio::spawn(async move {
        let mut s = live_client.get_media(
            stream,
            StartSelector::new(StartSelectorType::Earliest),
            true,
        );
        let mut frames = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while frames.len() < expected_frames {
            let next = tokio::time::timeout_at(deadline, s.next_event()).await;
            match next {
                Ok(Some(Ok(ConsumerEvent::Frame(f)))) => frames.push(f),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return Err(format!("live GetMedia failed: {e}")),
                Ok(None) => break,
                Err(_) => {
                    return Err(format!(
                        "live GetMedia timed out with {} of {expected_frames} frames",
                        frames.len()
                    ));
                }
            }
        }
        Ok(frames)
    });

    let put = crate::put::put_media(
        &client,
        stream,
        &media,
        false,
        Duration::from_secs(30),
        false,
    )
    .await?;
    let m = &put.report.metrics;
    println!(
        "put {} frames, {} bytes in {} fragments: all PERSISTED",
        put.frames.len(),
        m.bytes_pushed,
        put.report.fragments_acked
    );
    let live_frames = live.await.map_err(|e| format!("live reader: {e}"))??;
    compare("live GetMedia", &put.frames, &live_frames)?;
    println!(
        "live GetMedia: {} frames, byte for byte equal",
        live_frames.len()
    );

    // By time range.
    let first = put.frames.iter().map(|f| f.timestamp_ns).min().unwrap_or(0);
    let last = put.frames.iter().map(|f| f.timestamp_ns).max().unwrap_or(0);
    let started = Instant::now();
    let selector = |from: i64, to: i64| FragmentSelector {
        fragment_selector_type: TimestampSelectorType::ProducerTimestamp,
        timestamp_range: TimestampRange {
            start_timestamp: Timestamp::from_millis((from / 1_000_000).max(0) as u64),
            end_timestamp: Timestamp::from_millis((to / 1_000_000).max(0) as u64 + 1),
        },
    };
    let fragments = client
        .list_all_fragments(stream, Some(selector(first, last)))
        .await
        .map_err(|e| e.to_string())?;
    if fragments.len() as u64 != put.report.fragments_acked {
        return Err(format!(
            "ListFragments found {} fragments, the producer had {} PERSISTED",
            fragments.len(),
            put.report.fragments_acked
        ));
    }
    let numbers: Vec<String> = fragments
        .iter()
        .map(|f| f.fragment_number.clone())
        .collect();
    let (_, archived) = read_list(&client, stream, numbers).await?;
    compare(
        "ListFragments + GetMediaForFragmentList",
        &put.frames,
        &archived,
    )?;
    println!(
        "ListFragments + GetMediaForFragmentList: {} fragments, {} frames, byte for byte equal",
        fragments.len(),
        archived.len()
    );

    // A playable MKV of a time range: the middle fragments.
    let mid: Vec<_> = fragments
        .iter()
        .skip(1)
        .take(fragments.len().saturating_sub(2).max(1))
        .collect();
    let range_from = mid
        .first()
        .map(|f| f.producer_timestamp)
        .unwrap_or_default();
    let range_to = mid.last().map(|f| f.producer_timestamp).unwrap_or_default();
    let (range_tracks, range_frames) = read_list(
        &client,
        stream,
        mid.iter().map(|f| f.fragment_number.clone()).collect(),
    )
    .await?;
    let path = args.output.clone().unwrap_or_else(|| dir.join("range.mkv"));
    let file = std::fs::File::create(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut mkv = MkvOut::new(std::io::BufWriter::new(file));
    for f in &range_frames {
        mkv.write(&range_tracks, f)?;
    }
    mkv.finish()?;
    let written = media_io::read_mkv(Bytes::from(
        std::fs::read(&path).map_err(|e| e.to_string())?,
    ))?;
    compare("written MKV", &range_frames, &written.frames)?;
    let range_elapsed = started.elapsed();
    println!(
        "wrote {} ({} fragments from {range_from} to {range_to}, {} frames), read back equal",
        path.display(),
        mid.len(),
        written.frames.len()
    );

    let secs = put.elapsed.as_secs_f64().max(1e-6);
    println!("report:");
    println!("  fragments      {}", put.report.fragments_acked);
    println!(
        "  frames         {} ({} tracks)",
        put.frames.len(),
        tracks.len()
    );
    println!("  bytes          {}", m.bytes_pushed);
    println!(
        "  ACK latency    mean {} ms, max {} ms (first byte sent to PERSISTED)",
        m.ack_latency_mean_ms(),
        m.ack_latency_max_ms
    );
    println!(
        "  put throughput {:.1} MB/s, {:.0} frames/s ({:.2} s)",
        m.bytes_pushed as f64 / secs / 1e6,
        put.frames.len() as f64 / secs,
        secs
    );
    println!("  range read     {:.2} s", range_elapsed.as_secs_f64());
    println!("kvs demo: OK");
    server.shutdown().await;
    Ok(())
}

async fn read_list(
    client: &Client,
    stream: &str,
    numbers: Vec<String>,
) -> Result<(Vec<TrackInfo>, Vec<Frame>), String> {
    let mut s = client
        .get_media_for_fragment_list(stream, numbers)
        .await
        .map_err(|e| e.to_string())?;
    let mut tracks: Vec<TrackInfo> = Vec::new();
    let mut frames = Vec::new();
    while let Some(ev) = s.next_event().await {
        match ev.map_err(|e| e.to_string())? {
            Event::Track(t) if !tracks.iter().any(|o| o.number == t.number) => tracks.push(*t),
            Event::Frame(f) => frames.push(f),
            _ => {}
        }
    }
    Ok((tracks, frames))
}
