//! Reading producer input (MKV/WebM files, raw Annex-B H.264/H.265) and writing playable MKV.

use std::io::Write;

use bytes::Bytes;
use kvs_core::media::access_unit::AccessUnitSplitter;
use kvs_core::media::{VideoCodec, codec_private_from_keyframe, nal};
use kvs_core::mkv::reader::{Event, MkvReader};
use kvs_core::mkv::writer::{StreamConfig, StreamWriter};
use kvs_core::mkv::{Frame, TrackInfo, TrackType, VideoSettings};

/// Frames and tracks of an input, in file order, timestamps as in the file.
#[derive(Debug, Clone)]
pub struct Media {
    /// The tracks.
    pub tracks: Vec<TrackInfo>,
    /// The frames.
    pub frames: Vec<Frame>,
}

impl Media {
    /// First and last timestamps (ns).
    pub fn span(&self) -> (i64, i64) {
        let first = self
            .frames
            .iter()
            .map(|f| f.timestamp_ns)
            .min()
            .unwrap_or(0);
        let last = self
            .frames
            .iter()
            .map(|f| f.timestamp_ns)
            .max()
            .unwrap_or(0);
        (first, last)
    }
}

/// Whether `data` starts with the EBML magic (MKV/WebM).
pub fn is_mkv(data: &[u8]) -> bool {
    data.starts_with(&[0x1A, 0x45, 0xDF, 0xA3])
}

/// Decodes a whole MKV/WebM file.
pub fn read_mkv(data: Bytes) -> Result<Media, String> {
    let mut reader = MkvReader::new();
    reader
        .push(data)
        .map_err(|e| format!("the MKV input cannot be read: {e}"))?;
    reader.finish();
    let mut tracks: Vec<TrackInfo> = Vec::new();
    let mut frames = Vec::new();
    while let Some(event) = reader.poll_event() {
        match event {
            Ok(Event::Track(t)) => {
                if !tracks.iter().any(|o| o.number == t.number) {
                    tracks.push(*t);
                }
            }
            Ok(Event::Frame(f)) => frames.push(f),
            Ok(_) => {}
            Err(e) => return Err(format!("the MKV input is malformed: {e}")),
        }
    }
    if tracks.is_empty() || frames.is_empty() {
        return Err("the MKV input has no tracks or no frames".into());
    }
    Ok(Media { tracks, frames })
}

/// Splits a raw Annex-B elementary stream into access units at `fps`, with the codec private
/// data taken from the first key frame; frames are converted to AVCC/HVCC length prefixes.
pub fn read_annexb(data: &[u8], codec: VideoCodec, fps: f64) -> Result<Media, String> {
    if !(fps > 0.0 && fps <= 1000.0) {
        return Err(format!("--fps {fps} is out of range (0, 1000]"));
    }
    let mut splitter = AccessUnitSplitter::new(codec);
    splitter
        .push(data)
        .map_err(|e| format!("the Annex-B input cannot be split: {e}"))?;
    splitter.finish();
    let mut frames = Vec::new();
    let mut track: Option<TrackInfo> = None;
    let step = 1e9 / fps;
    let mut index = 0u64;
    while let Some(au) = splitter
        .next_access_unit()
        .map_err(|e| format!("the Annex-B input is malformed: {e}"))?
    {
        if track.is_none() {
            if !au.keyframe {
                continue;
            }
            let cpd = codec_private_from_keyframe(codec, &au.data).map_err(|e| {
                format!("cannot build the codec private data from the first key frame: {e}")
            })?;
            let mut t = TrackInfo::new(1, 1, TrackType::Video, codec.codec_id());
            t.name = Some("kvs video".into());
            t.codec_private = Bytes::from(cpd.codec_private);
            t.video = Some(VideoSettings {
                width: cpd.width,
                height: cpd.height,
            });
            track = Some(t);
        }
        let avcc = nal::annexb_to_avcc(&au.data)
            .map_err(|e| format!("access unit {index} cannot be converted: {e}"))?;
        let ts = (index as f64 * step) as i64;
        let mut f = Frame::new(1, ts, au.keyframe, avcc);
        f.duration_ns = Some(step as u64);
        frames.push(f);
        index += 1;
    }
    let track = track.ok_or("the Annex-B input has no key frame (IDR/IRAP)")?;
    Ok(Media {
        tracks: vec![track],
        frames,
    })
}

/// Writes frames into one MKV segment (a cluster per key frame), as a playable file.
pub struct MkvOut<W: Write> {
    out: W,
    writer: Option<StreamWriter>,
    /// Frames written.
    pub frames: u64,
    /// Bytes written.
    pub bytes: u64,
}

impl<W: Write> MkvOut<W> {
    /// A writer to `out`; the header goes out with the first frame.
    pub fn new(out: W) -> Self {
        MkvOut {
            out,
            writer: None,
            frames: 0,
            bytes: 0,
        }
    }

    /// Writes a frame; `tracks` must describe its track.
    pub fn write(&mut self, tracks: &[TrackInfo], frame: &Frame) -> Result<(), String> {
        if self.writer.is_none() {
            let mut uid = [0u8; 16];
            uid[..8].copy_from_slice(&crate::common::now_ms().to_le_bytes());
            let w = StreamWriter::new(StreamConfig::new(uid), tracks.to_vec())
                .map_err(|e| format!("cannot write these tracks: {e}"))?;
            self.emit(&w.header().clone())?;
            self.writer = Some(w);
        }
        let mut buf = Vec::with_capacity(frame.data.len() + 64);
        if let Some(w) = self.writer.as_mut() {
            w.encode_frame(frame, &mut buf)
                .map_err(|e| format!("cannot write a frame: {e}"))?;
        }
        self.frames += 1;
        self.emit(&buf)
    }

    fn emit(&mut self, data: &[u8]) -> Result<(), String> {
        self.bytes += data.len() as u64;
        self.out
            .write_all(data)
            .map_err(|e| format!("write failed: {e}"))
    }

    /// Flushes what was written so far (a follower's file grows fragment by fragment).
    pub fn flush(&mut self) -> Result<(), String> {
        self.out.flush().map_err(|e| format!("write failed: {e}"))
    }

    /// Ends the stream and flushes.
    pub fn finish(mut self) -> Result<W, String> {
        if let Some(w) = self.writer.as_mut() {
            let mut buf = Vec::new();
            w.finish(&mut buf)
                .map_err(|e| format!("cannot end the stream: {e}"))?;
            self.emit(&buf)?;
        }
        self.out.flush().map_err(|e| format!("write failed: {e}"))?;
        Ok(self.out)
    }
}
