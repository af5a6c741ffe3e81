//! The decoder against files third-party writers produce: ffmpeg (H.264 via libx264 with AAC,
//! and with Opus), mkvmerge (MP3 with lacing, verified to be laced), GStreamer matroskamux (x264enc when
//! installed, else vp8enc, with Vorbis; plain and streamable). Frame counts, track numbers, sizes,
//! key-frame flags and timestamps must equal `ffprobe -show_packets`.
//!
//! Each test needs its tools on PATH; without them it prints why and passes, unless
//! `KVS_REQUIRE_TOOLS=1`, where a missing tool fails the test.

mod support;

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use kvs_core::mkv::Frame;
use kvs_core::mkv::reader::{DecodeError, Event, MkvReader};
use support::{have_tool, run, temp_dir};

/// Decodes a file pushed in 1500-byte chunks (as a network would deliver it).
fn decode_file(path: &Path) -> (Vec<Frame>, Vec<Result<Event, DecodeError>>) {
    let data = Bytes::from(std::fs::read(path).unwrap());
    let mut reader = MkvReader::new();
    let mut events = Vec::new();
    for start in (0..data.len()).step_by(1500) {
        reader
            .push(data.slice(start..(start + 1500).min(data.len())))
            .unwrap();
        events.extend(reader.events());
    }
    reader.finish();
    events.extend(reader.events());
    let errors: Vec<_> = events.iter().filter_map(|e| e.as_ref().err()).collect();
    assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    let frames = events
        .iter()
        .filter_map(|e| match e {
            Ok(Event::Frame(f)) => Some(f.clone()),
            _ => None,
        })
        .collect();
    (frames, events)
}

/// Checks the frames against ffprobe's packets: same order, stream, size, key flag and pts
/// (within 1 ms: ffmpeg rounds laced frame durations down to whole ticks). The reader gives the
/// timestamps as written; ffmpeg shifts Opus by its CodecDelay (6.5 ms), so a constant per-track
/// shift of at most 10 ms is allowed for `A_OPUS`.
fn compare_with_ffprobe(path: &Path, frames: &[Frame]) {
    compare_with_ffprobe_shifted(path, frames, &[]);
}

fn compare_with_ffprobe_shifted(path: &Path, frames: &[Frame], shifted_tracks: &[u64]) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_packets", "-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let packets = json["packets"].as_array().unwrap();
    assert_eq!(
        frames.len(),
        packets.len(),
        "{}: frame count",
        path.display()
    );
    let mut shifts: Vec<(u64, f64)> = Vec::new();
    for (i, (f, p)) in frames.iter().zip(packets).enumerate() {
        let what = format!("{} frame {i}", path.display());
        assert_eq!(
            f.track - 1,
            p["stream_index"].as_u64().unwrap(),
            "{what}: track"
        );
        let size: usize = p["size"].as_str().unwrap().parse().unwrap();
        assert_eq!(f.data.len(), size, "{what}: size");
        let key = p["flags"].as_str().unwrap().starts_with('K');
        assert_eq!(f.keyframe, key, "{what}: key flag");
        let pts_ms: f64 = p["pts_time"].as_str().unwrap().parse::<f64>().unwrap() * 1000.0;
        let mut ours_ms = f.timestamp_ns as f64 / 1e6;
        if shifted_tracks.contains(&f.track) {
            let shift = match shifts.iter().find(|(t, _)| *t == f.track) {
                Some(&(_, s)) => s,
                None => {
                    let s = pts_ms - ours_ms;
                    assert!(s.abs() <= 10.0, "{what}: codec delay shift {s} ms");
                    shifts.push((f.track, s));
                    s
                }
            };
            ours_ms += shift;
        }
        assert!(
            (ours_ms - pts_ms).abs() <= 1.0,
            "{what}: pts {ours_ms} ms vs ffprobe {pts_ms} ms"
        );
    }
}

fn fragments(events: &[Result<Event, DecodeError>]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Ok(Event::FragmentEnd(_))))
        .count()
}

#[test]
fn ffmpeg_h264_with_aac_and_opus() {
    if !have_tool("ffmpeg") || !have_tool("ffprobe") {
        return;
    }
    let dir = temp_dir("ffmpeg");
    for (audio, codec) in [("aac", "A_AAC"), ("libopus", "A_OPUS")] {
        let path = dir.join(format!("av-{audio}.mkv"));
        run(Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(["-t", "3", "-c:v", "libx264", "-g", "25", "-bf", "2"])
            .args(["-c:a", audio, "-cluster_time_limit", "1000"])
            .arg(&path));
        let (frames, events) = decode_file(&path);
        assert!(frames.len() > 75 + 100, "{}", frames.len());
        let tracks: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Ok(Event::Track(t)) => Some(t),
                _ => None,
            })
            .collect();
        assert_eq!(tracks[0].codec_id, "V_MPEG4/ISO/AVC");
        assert_eq!(tracks[0].video.unwrap().width, 320);
        assert!(!tracks[0].codec_private.is_empty(), "avcC");
        assert_eq!(tracks[1].codec_id, codec);
        assert_eq!(tracks[1].audio.unwrap().sampling_frequency, 48_000.0);
        assert!(fragments(&events) >= 3);
        let shifted: &[u64] = if codec == "A_OPUS" { &[2] } else { &[] };
        compare_with_ffprobe_shifted(&path, &frames, shifted);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn mkvmerge_laced_mp3() {
    if !have_tool("ffmpeg") || !have_tool("ffprobe") || !have_tool("mkvmerge") {
        return;
    }
    if !have_tool("mkvinfo") {
        return;
    }
    let dir = temp_dir("mkvmerge");
    let mp3 = dir.join("tone.mp3");
    let mkv = dir.join("laced.mkv");
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", "4", "-c:a", "libmp3lame", "-b:a", "64k"])
        .arg(&mp3));
    // mkvmerge laces MP3 by default (8 frames a block); the count below makes sure it did.
    run(Command::new("mkvmerge")
        .args(["-q", "-o"])
        .arg(&mkv)
        .arg(&mp3));
    // Verify the file really holds laced blocks.
    let info = Command::new("mkvinfo")
        .args(["-v"])
        .arg(&mkv)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    let laced_blocks = info
        .lines()
        .filter(|l| l.contains("lacing") || l.contains(" frame(s)"))
        .filter(|l| {
            l.split(", ")
                .find_map(|part| part.strip_suffix(" frame(s)"))
                .and_then(|n| n.trim().parse::<u32>().ok())
                .is_some_and(|n| n > 1)
        })
        .count();
    assert!(
        laced_blocks > 5,
        "mkvmerge wrote {laced_blocks} laced blocks"
    );
    let (frames, _) = decode_file(&mkv);
    assert!(frames.len() > 140, "{}", frames.len());
    assert!(frames.iter().all(|f| f.duration_ns.is_some()));
    compare_with_ffprobe(&mkv, &frames);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn gstreamer_matroskamux() {
    if !have_tool("gst-launch-1.0") || !have_tool("ffprobe") {
        return;
    }
    let has_x264 = Command::new("gst-inspect-1.0")
        .arg("x264enc")
        .output()
        .is_ok_and(|o| o.status.success());
    let video = if has_x264 {
        "x264enc key-int-max=10"
    } else {
        eprintln!("x264enc not installed: using vp8enc");
        "vp8enc keyframe-max-dist=10"
    };
    let dir = temp_dir("gst");
    for streamable in [false, true] {
        let path = dir.join(format!("gst-{streamable}.mkv"));
        let pipeline = format!(
            "videotestsrc num-buffers=50 ! video/x-raw,width=320,height=240,framerate=25/1 ! \
             {video} ! matroskamux name=mux streamable={streamable} ! filesink location={} \
             audiotestsrc num-buffers=50 ! audioconvert ! vorbisenc ! mux.",
            path.display()
        );
        run(Command::new("gst-launch-1.0")
            .arg("-q")
            .args(pipeline.split_whitespace()));
        let (frames, events) = decode_file(&path);
        assert_eq!(frames.iter().filter(|f| f.track == 1).count(), 50);
        if streamable {
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Ok(Event::SegmentStart { size: None, .. })))
            );
        }
        compare_with_ffprobe(&path, &frames);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// PyAV (libav's muxer driven from Python, the way data scientists write MKV) writes H.264 with
/// numpy-made pictures; the decoder must agree with ffprobe on every packet.
#[test]
fn pyav_written_mkv() {
    if !have_tool("ffprobe") {
        return;
    }
    let python = support::python();
    let has_av = Command::new(&python)
        .args(["-c", "import av, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_av {
        support::skip(&format!("{python} lacks PyAV or numpy"));
        return;
    }
    let dir = temp_dir("pyav");
    let path = dir.join("pyav.mkv");
    let script = r#"
import sys, av, numpy as np
out = av.open(sys.argv[1], "w", format="matroska")
video = out.add_stream("libx264", rate=25)
video.width, video.height, video.pix_fmt = 176, 144, "yuv420p"
video.options = {"g": "25", "bf": "0"}
for i in range(60):
    img = np.zeros((144, 176, 3), dtype=np.uint8)
    img[:, :, 0] = (i * 4) % 256
    img[i % 144, :, 1] = 255
    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
    for packet in video.encode(frame):
        out.mux(packet)
for packet in video.encode():
    out.mux(packet)
out.close()
"#;
    run(Command::new(&python).args(["-c", script]).arg(&path));
    let (frames, events) = decode_file(&path);
    assert_eq!(frames.len(), 60);
    assert!(fragments(&events) >= 1);
    assert!(frames[0].keyframe);
    compare_with_ffprobe(&path, &frames);
}
