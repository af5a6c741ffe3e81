//! The `kvs` command: a toolkit for Amazon Kinesis Video Streams and its local twin.

mod clip;
mod common;
mod demo;
mod fragments;
mod get;
mod hls;
mod inspect;
mod media_io;
mod put;
mod serve;
mod streams;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kvs: stream, store and read back video with the Kinesis Video Streams API.
#[derive(Debug, Parser)]
#[command(name = "kvs", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: common::GlobalArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse an MKV file or a GetMedia / GetMediaForFragmentList byte stream and describe it.
    ///
    /// Prints tracks, one line per fragment (Cluster) with its KVS metadata, and a summary.
    /// Exit status 0 when the input parsed, 1 with a one-line error otherwise.
    Inspect(inspect::Args),
    /// Run a local Kinesis Video Streams compatible server.
    ///
    /// Prints a banner with a line a shell can evaluate to point AWS clients at it:
    /// `export AWS_ENDPOINT_URL=... AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_REGION=...`.
    Serve(serve::Args),
    /// Run the local server in-process, stream the bundled sample through it, read it back live
    /// and by time range, verify every frame, and print a report.
    Demo(demo::Args),
    /// Stream a file (MKV/WebM, or raw Annex-B H.264/H.265) into a stream.
    Put(put::Args),
    /// Read a stream back with GetMedia into a playable MKV (or the raw stream with --raw).
    Get(get::Args),
    /// List fragments by time range (ListFragments).
    Fragments(fragments::Args),
    /// Save a time range of a stream as an MP4 file (GetClip).
    ///
    /// The clip holds the fragments that start inside the range, whole, at most 200 fragments
    /// or 100 MB from the start (as the service caps it). H.264/H.265 video with optional AAC
    /// or G.711 audio.
    Clip(clip::Args),
    /// Print an HLS playback URL for a stream (GetHLSStreamingSessionURL).
    ///
    /// Without --start: LIVE. With --start and --end: ON_DEMAND (LIVE_REPLAY with --replay).
    /// With --start alone: LIVE_REPLAY. Open the URL with any HLS player (ffplay, VLC, Safari);
    /// it needs no AWS credentials and expires after --expires seconds.
    Hls(hls::Args),
    /// Print a DASH playback URL for a stream (GetDASHStreamingSessionURL).
    ///
    /// The options are those of `kvs hls`. Open the URL with any DASH player (ffplay, dash.js);
    /// it needs no AWS credentials and expires after --expires seconds.
    Dash(hls::Args),
    /// Manage streams: create, list, describe, delete, update-retention, tag, tags, untag.
    Streams(streams::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Put(args) => put::run(&cli.global, &args),
        Command::Get(args) => get::run(&cli.global, &args),
        Command::Fragments(args) => fragments::run(&cli.global, &args),
        Command::Clip(args) => clip::run(&cli.global, &args),
        Command::Hls(args) => hls::run(&cli.global, &args),
        Command::Dash(args) => hls::run_dash(&cli.global, &args),
        Command::Streams(args) => streams::run(&cli.global, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kvs: {message}");
            ExitCode::FAILURE
        }
    }
}
