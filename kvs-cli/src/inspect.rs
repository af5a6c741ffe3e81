//! `kvs inspect FILE|-`: what is in an MKV file or a GetMedia byte stream.
//!
//! The `--json` output is a contract other tools rely on (see `design.md`): JSON Lines with one
//! `track` record per track, one `fragment` record per fragment and a final `summary`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use bytes::BytesMut;
use kvs_core::mkv::TrackInfo;
use kvs_core::mkv::reader::{Event, FragmentSummary, MkvReader};
use serde_json::{Value, json};

/// Arguments of `kvs inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The MKV file or captured GetMedia output to read; `-` reads standard input.
    input: PathBuf,
    /// Print JSON Lines (track, fragment and summary records) instead of text.
    #[arg(long)]
    json: bool,
}

/// Bytes read from the input at a time.
const CHUNK: usize = 256 * 1024;

/// Runs the command; the error is the one line printed before exiting with status 1.
pub fn run(args: &Args) -> Result<(), String> {
    let source: Box<dyn Read> = if args.input.as_os_str() == "-" {
        Box::new(io::stdin().lock())
    } else {
        let file = File::open(&args.input)
            .map_err(|e| format!("cannot open {}: {e}", args.input.display()))?;
        Box::new(file)
    };
    let stdout = io::stdout().lock();
    let mut report = Report::new(BufWriter::new(stdout), args.json);
    let outcome = inspect(source, &mut report);
    report
        .finish()
        .map_err(|e| format!("cannot write output: {e}"))?;
    outcome
}

/// Reads everything from `source`, feeding the decoder and the report as events arrive.
fn inspect<W: Write>(mut source: impl Read, report: &mut Report<W>) -> Result<(), String> {
    let mut reader = MkvReader::new();
    let mut buf = BytesMut::new();
    loop {
        buf.resize(CHUNK, 0);
        let n = match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read input: {e}")),
        };
        buf.truncate(n);
        reader
            .push(buf.split().freeze())
            .map_err(|e| e.to_string())?;
        drain(&mut reader, report)?;
    }
    reader.finish();
    drain(&mut reader, report)?;
    if report.bytes_seen == 0 {
        report.errors.push("the input is empty".to_owned());
    }
    match report.errors.first() {
        None => Ok(()),
        Some(first) if report.errors.len() == 1 => Err(first.clone()),
        Some(first) => Err(format!(
            "{first} (and {} more errors)",
            report.errors.len() - 1
        )),
    }
}

fn drain<W: Write>(reader: &mut MkvReader, report: &mut Report<W>) -> Result<(), String> {
    report.bytes_seen = reader.offset() + reader.buffered() as u64;
    while let Some(event) = reader.poll_event() {
        match event {
            Ok(event) => report.event(event),
            Err(error) => {
                report.errors.push(error.to_string());
                Ok(())
            }
        }
        .map_err(|e| format!("cannot write output: {e}"))?;
    }
    Ok(())
}

/// Accumulates totals and prints records as they come.
struct Report<W: Write> {
    out: W,
    json: bool,
    /// The last description printed per track number, to print repeated tracks only once.
    tracks: BTreeMap<u64, TrackInfo>,
    documents: u64,
    fragments: u64,
    frames: u64,
    keyframes: u64,
    frames_per_track: BTreeMap<u64, u64>,
    errors: Vec<String>,
    warnings: u64,
    bytes_seen: u64,
}

impl<W: Write> Report<W> {
    fn new(out: W, json: bool) -> Self {
        Report {
            out,
            json,
            tracks: BTreeMap::new(),
            documents: 0,
            fragments: 0,
            frames: 0,
            keyframes: 0,
            frames_per_track: BTreeMap::new(),
            errors: Vec::new(),
            warnings: 0,
            bytes_seen: 0,
        }
    }

    fn event(&mut self, event: Event) -> io::Result<()> {
        match event {
            Event::EbmlHeader(_) => self.documents += 1,
            // GetMedia repeats the tracks in every document: print each one once.
            Event::Track(track) if self.tracks.get(&track.number) != Some(&*track) => {
                self.track(&track)?;
                self.tracks.insert(track.number, *track);
            }
            Event::FragmentEnd(summary) => self.fragment(&summary)?,
            Event::Warning(warning) => {
                self.warnings += 1;
                if !self.json {
                    writeln!(self.out, "warning: {warning}")?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn track(&mut self, t: &TrackInfo) -> io::Result<()> {
        if self.json {
            let record = json!({
                "type": "track",
                "number": t.number,
                "uid": t.uid,
                "codec_id": t.codec_id,
                "name": t.name,
                "width": t.video.map(|v| v.width),
                "height": t.video.map(|v| v.height),
                "sampling_frequency": t.audio.map(|a| a.sampling_frequency),
                "channels": t.audio.map(|a| a.channels),
                "codec_private_len": t.codec_private.len(),
            });
            return writeln!(self.out, "{record}");
        }
        let mut line = format!("track {}: {} (uid {})", t.number, t.codec_id, t.uid);
        if let Some(name) = &t.name {
            line.push_str(&format!(" {name:?}"));
        }
        if let Some(v) = t.video {
            line.push_str(&format!(", {}x{}", v.width, v.height));
        }
        if let Some(a) = t.audio {
            line.push_str(&format!(", {} Hz, {} ch", a.sampling_frequency, a.channels));
        }
        line.push_str(&format!(", codec private {} bytes", t.codec_private.len()));
        writeln!(self.out, "{line}")
    }

    fn fragment(&mut self, f: &FragmentSummary) -> io::Result<()> {
        self.fragments += 1;
        self.frames += f.frames;
        self.keyframes += f.keyframes;
        for &(track, n) in &f.frames_per_track {
            *self.frames_per_track.entry(track).or_default() += n;
        }
        let m = &f.metadata;
        if self.json {
            let record = json!({
                "type": "fragment",
                "index": f.index,
                "fragment_number": m.fragment_number,
                "server_timestamp": m.server_timestamp_ms.map(seconds),
                "producer_timestamp": m.producer_timestamp_ms.map(seconds),
                "millis_behind_now": m.millis_behind_now,
                "continuation_token": m.continuation_token,
                "error_code": m.error_code,
                "error_id": m.error_id,
                "cluster_timecode": f.cluster_timecode,
                "frames": f.frames,
                "keyframes": f.keyframes,
                "frames_per_track": per_track(f.frames_per_track.iter().copied()),
                "tags": f.tags.iter().map(|(k, v)| (k.clone(), Value::from(v.clone()))).collect::<serde_json::Map<_, _>>(),
                "bytes": f.bytes,
            });
            return writeln!(self.out, "{record}");
        }
        let mut line = format!("fragment {}", f.index);
        if let Some(tc) = f.cluster_timecode {
            line.push_str(&format!(" @ {tc}"));
        }
        line.push_str(&format!(
            ": {} frames ({} key), {} bytes",
            f.frames, f.keyframes, f.bytes
        ));
        if let Some(n) = &m.fragment_number {
            line.push_str(&format!(", number {n}"));
        }
        if let Some(ms) = m.producer_timestamp_ms {
            line.push_str(&format!(
                ", producer {}",
                kvs_core::fragment::format_seconds_millis(ms)
            ));
        }
        if let Some(ms) = m.server_timestamp_ms {
            line.push_str(&format!(
                ", server {}",
                kvs_core::fragment::format_seconds_millis(ms)
            ));
        }
        if let Some(ms) = m.millis_behind_now {
            line.push_str(&format!(", {ms} ms behind now"));
        }
        if m.is_error() {
            line.push_str(&format!(
                ", ERROR {} {}",
                m.error_id.map(|id| id.to_string()).unwrap_or_default(),
                m.error_code.as_deref().unwrap_or("")
            ));
        }
        if f.truncated {
            line.push_str(", TRUNCATED");
        }
        for (k, v) in &f.tags {
            line.push_str(&format!(", {k}={v:?}"));
        }
        writeln!(self.out, "{line}")
    }

    fn finish(mut self) -> io::Result<()> {
        if self.json {
            let record = json!({
                "type": "summary",
                "documents": self.documents,
                "fragments": self.fragments,
                "frames": self.frames,
                "keyframes": self.keyframes,
                "frames_per_track": per_track(self.frames_per_track.iter().map(|(k, v)| (*k, *v))),
                "errors": self.errors,
            });
            writeln!(self.out, "{record}")?;
        } else {
            writeln!(
                self.out,
                "{} documents, {} fragments, {} frames ({} key), {} warnings, {} errors",
                self.documents,
                self.fragments,
                self.frames,
                self.keyframes,
                self.warnings,
                self.errors.len()
            )?;
            for error in &self.errors {
                writeln!(self.out, "error: {error}")?;
            }
        }
        self.out.flush()
    }
}

/// Epoch milliseconds as the seconds number KVS writes (millisecond precision).
fn seconds(ms: u64) -> Value {
    // Print through the exact decimal text so no binary-float noise appears.
    let text = kvs_core::fragment::format_seconds_millis(ms);
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn per_track(counts: impl Iterator<Item = (u64, u64)>) -> Value {
    Value::Object(
        counts
            .map(|(track, n)| (track.to_string(), Value::from(n)))
            .collect(),
    )
}
