//! Real-peer tests of `kvs_core::mp4`: MP4 clips written from MKV media are read by ffprobe
//! (codecs, frame counts, durations), decoded by ffmpeg without a single error, and demuxed by
//! GStreamer's qtdemux and PyAV when present.
//!
//! Inputs: the bundled `examples/media/sample.mkv` (H.264 320×240 25 fps + AAC 16 kHz mono, as
//! the KVS producer writes it) and clips ffmpeg encodes (H.265, H.264 with B-frames, G.711).
//! Without ffmpeg/ffprobe on `PATH` the tests print a note and pass, unless
//! `KVS_REQUIRE_TOOLS=1`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use kvs_core::mkv::reader::{Event, decode_all};
use kvs_core::mkv::{Frame, TrackInfo, TrackType};
use kvs_core::mp4::{Mp4Error, Mp4Writer};
use support::{find_tool, python, run, run_text, skip, temp_dir};

fn tools() -> Option<(PathBuf, PathBuf)> {
    match (find_tool("ffmpeg"), find_tool("ffprobe")) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => {
            skip("ffmpeg/ffprobe not found on PATH");
            None
        }
    }
}

fn sample_mkv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/media/sample.mkv")
}

/// Tracks and frames of an MKV file.
fn read_mkv(path: &Path) -> (Vec<TrackInfo>, Vec<Frame>) {
    let data = std::fs::read(path).unwrap();
    let mut tracks = Vec::new();
    let mut frames = Vec::new();
    for e in decode_all(&data) {
        match e.unwrap() {
            Event::Track(t) => tracks.push(*t),
            Event::Frame(f) => frames.push(f),
            _ => {}
        }
    }
    (tracks, frames)
}

/// Splits frames into KVS-like fragments: a new one at every video key frame.
fn fragments(frames: &[Frame], video_track: u64) -> Vec<Vec<Frame>> {
    let mut out: Vec<Vec<Frame>> = Vec::new();
    for f in frames {
        if out.is_empty() || (f.track == video_track && f.keyframe) {
            out.push(Vec::new());
        }
        out.last_mut().unwrap().push(f.clone());
    }
    out
}

/// Writes the MP4 of `tracks` from `frames`, fragment by fragment, and returns the file.
fn write_mp4(dir: &Path, name: &str, tracks: &[TrackInfo], frames: &[Frame]) -> PathBuf {
    let mut w = Mp4Writer::new(tracks).unwrap();
    let mut out = w.init_segment().to_vec();
    let keep: Vec<u64> = tracks.iter().map(|t| t.number).collect();
    let frames: Vec<Frame> = frames
        .iter()
        .filter(|f| keep.contains(&f.track))
        .cloned()
        .collect();
    for frag in fragments(&frames, tracks[0].number) {
        if let Some(s) = w.fragment(&frag).unwrap() {
            out.extend_from_slice(&s.to_bytes());
        }
    }
    if let Some(s) = w.finish().unwrap() {
        out.extend_from_slice(&s.to_bytes());
    }
    let path = dir.join(format!("{name}.mp4"));
    std::fs::write(&path, out).unwrap();
    path
}

#[derive(Debug)]
struct Probed {
    codec: String,
    frames: u64,
    duration: f64,
}

/// ffprobe `-v error -count_frames`: per stream codec, decoded frame count and duration. Fails
/// on any ffprobe error output.
fn probe(ffprobe: &Path, file: &Path) -> Vec<Probed> {
    let out = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,nb_read_frames,duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffprobe: {stderr}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            Probed {
                codec: v[0].to_owned(),
                duration: v[1].parse().unwrap(),
                frames: v[2].parse().unwrap(),
            }
        })
        .collect()
}

/// ffmpeg decodes every frame with nothing on stderr at `-v error`.
fn decodes_cleanly(ffmpeg: &Path, file: &Path) {
    let out = Command::new(ffmpeg)
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffmpeg decode of {file:?}: {stderr}"
    );
}

/// Duration of a track's frames in the MKV (last − first + the last frame's length).
fn span(frames: &[Frame], track: u64, last_len_s: f64) -> (u64, f64) {
    let ts: Vec<i64> = frames
        .iter()
        .filter(|f| f.track == track)
        .map(|f| f.timestamp_ns)
        .collect();
    let first = *ts.iter().min().unwrap();
    let last = *ts.iter().max().unwrap();
    (ts.len() as u64, (last - first) as f64 / 1e9 + last_len_s)
}

#[test]
fn h264_and_aac_from_the_sample_play_in_ffmpeg() {
    let Some((ffmpeg, ffprobe)) = tools() else {
        return;
    };
    let dir = temp_dir("mp4-sample");
    let (tracks, frames) = read_mkv(&sample_mkv());
    assert_eq!(tracks.len(), 2);
    let (vn, vdur) = span(&frames, 1, 0.040);
    let (an, adur) = span(&frames, 2, 1024.0 / 16_000.0);

    // Video only.
    let v = write_mp4(&dir, "video", &tracks[..1], &frames);
    let p = probe(&ffprobe, &v);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].codec, "h264");
    assert_eq!(p[0].frames, vn);
    assert!((p[0].duration - vdur).abs() <= 0.040, "{p:?} vs {vdur}");
    decodes_cleanly(&ffmpeg, &v);

    // Video + audio.
    let av = write_mp4(&dir, "av", &tracks, &frames);
    let p = probe(&ffprobe, &av);
    assert_eq!(p.len(), 2);
    assert_eq!((p[0].codec.as_str(), p[0].frames), ("h264", vn));
    assert_eq!((p[1].codec.as_str(), p[1].frames), ("aac", an));
    assert!((p[0].duration - vdur).abs() <= 0.040, "{p:?} vs {vdur}");
    assert!((p[1].duration - adur).abs() <= 0.064, "{p:?} vs {adur}");
    decodes_cleanly(&ffmpeg, &av);

    gstreamer_reads(&av);
    pyav_reads(&av, vn, an);
    std::fs::remove_dir_all(&dir).ok();
}

/// GStreamer's qtdemux finds both streams and the pipeline reaches EOS without error.
fn gstreamer_reads(file: &Path) {
    let Some(gst) = find_tool("gst-launch-1.0") else {
        skip("gst-launch-1.0 not found on PATH");
        return;
    };
    run(Command::new(gst).args([
        "-q",
        "filesrc",
        &format!("location={}", file.display()),
        "!",
        "qtdemux",
        "name=d",
        "d.video_0",
        "!",
        "queue",
        "!",
        "fakesink",
        "d.audio_0",
        "!",
        "queue",
        "!",
        "fakesink",
    ]));
}

/// PyAV (libavformat through Python) counts the same packets.
fn pyav_reads(file: &Path, video: u64, audio: u64) {
    let py = python();
    let has_av = Command::new(&py)
        .args(["-c", "import av"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_av {
        skip(&format!("{py} has no PyAV (av)"));
        return;
    }
    let script = "import av,sys\n\
        c=av.open(sys.argv[1])\n\
        n={s.index:0 for s in c.streams}\n\
        for p in c.demux():\n    n[p.stream.index]+= p.size>0\n\
        print(n[0],n[1])";
    let text = run_text(Command::new(&py).args(["-c", script]).arg(file));
    assert_eq!(text.trim(), format!("{video} {audio}"));
}

/// Encodes a short lavfi clip to MKV with ffmpeg.
fn encode(ffmpeg: &Path, dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let mkv = dir.join(format!("{name}.mkv"));
    run(Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&mkv));
    mkv
}

fn has_encoder(ffmpeg: &Path, encoder: &str) -> bool {
    let text = run_text(Command::new(ffmpeg).args(["-hide_banner", "-encoders"]));
    let found = text
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(encoder));
    if !found {
        skip(&format!("ffmpeg has no {encoder} encoder"));
    }
    found
}

#[test]
fn h265_b_frames_and_g711_from_ffmpeg() {
    let Some((ffmpeg, ffprobe)) = tools() else {
        return;
    };
    let dir = temp_dir("mp4-ffmpeg");
    let mut cases: Vec<(&str, Vec<&str>, &str, &str)> = vec![(
        "h264b",
        vec![
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=25:duration=2.4",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=8000:duration=2.4",
            "-c:v",
            "libx264",
            "-bf",
            "2",
            "-g",
            "25",
            "-c:a",
            "pcm_alaw",
        ],
        "h264",
        "pcm_alaw",
    )];
    if has_encoder(&ffmpeg, "libx265") {
        cases.push((
            "h265",
            vec![
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=160x120:rate=25:duration=2",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=16000:duration=2",
                "-c:v",
                "libx265",
                "-x265-params",
                "log-level=error:keyint=25:bframes=0",
                "-ac",
                "2",
                "-c:a",
                "pcm_mulaw",
            ],
            "hevc",
            "pcm_mulaw",
        ));
    }
    for (name, args, vcodec, acodec) in cases {
        let mkv = encode(&ffmpeg, &dir, name, &args);
        let (tracks, frames) = read_mkv(&mkv);
        let mp4 = write_mp4(&dir, name, &tracks, &frames);
        let p = probe(&ffprobe, &mp4);
        let count = |t: u64| frames.iter().filter(|f| f.track == t).count() as u64;
        assert_eq!(p.len(), 2, "{name}: {p:?}");
        assert_eq!(
            (p[0].codec.as_str(), p[0].frames),
            (vcodec, count(1)),
            "{name}"
        );
        assert_eq!(p[1].codec, acodec, "{name}");
        decodes_cleanly(&ffmpeg, &mp4);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn unsupported_tracks_are_refused_with_typed_errors() {
    let mut vp8 = TrackInfo::new(1, 1, TrackType::Video, "V_VP8");
    vp8.codec_private = Bytes::from_static(&[0]);
    assert!(matches!(
        Mp4Writer::new(&[vp8]),
        Err(Mp4Error::UnsupportedCodec { .. })
    ));
    let (mut tracks, _) = read_mkv(&sample_mkv());
    tracks[1].codec_private = Bytes::new();
    assert!(matches!(
        Mp4Writer::new(&tracks),
        Err(Mp4Error::MissingCodecPrivate { track: 2, .. })
    ));
    tracks[1].codec_private = Bytes::from_static(&[0xFF, 0xFF]);
    assert!(matches!(
        Mp4Writer::new(&tracks),
        Err(Mp4Error::InvalidCodecPrivate { track: 2, .. })
    ));
}
