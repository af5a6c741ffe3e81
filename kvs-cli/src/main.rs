//! The `kvs` command: a toolkit for Amazon Kinesis Video Streams and its local twin.

mod inspect;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// kvs: stream, store and read back video with the Kinesis Video Streams API.
#[derive(Debug, Parser)]
#[command(name = "kvs", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => inspect::run(&args),
        Command::Serve(args) => serve::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kvs: {message}");
            ExitCode::FAILURE
        }
    }
}
