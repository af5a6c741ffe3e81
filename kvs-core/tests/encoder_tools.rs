//! Third-party readers accept what the encoder writes: an H.264 stream made by ffmpeg is encoded
//! with `StreamWriter` (and as a GetMedia document) and checked with mkvinfo, mkvmerge, ffprobe,
//! GStreamer and PyAV.
//!
//! Tools are found through `PATH` (Python through `KVS_PYTHON`, default `python3`). A missing
//! tool skips its check with a message, unless `KVS_REQUIRE_TOOLS=1`, which makes it a failure.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use kvs_core::fragment::FragmentNumber;
use kvs_core::mkv::getmedia::{FragmentDocument, ProducerHeader, Trailer};
use kvs_core::mkv::writer::{StreamConfig, StreamWriter, TimecodeMode};
use kvs_core::mkv::{Frame, TrackInfo, TrackType, VideoSettings, codec};
use support::{run_text, temp_dir, tool};

const FPS_MS: i64 = 40;
const BASE_MS: i64 = 1_700_000_000_000;

/// Splits an Annex-B byte stream into NAL units (start codes removed).
fn nal_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
        while end > s && data[end - 1] == 0 {
            end -= 1; // trailing zero of a 4-byte start code
        }
        nals.push(&data[s..end]);
    }
    nals
}

struct AccessUnit {
    key: bool,
    avcc: Vec<u8>,
}

/// Groups NAL units into access units (a new one starts at a non-VCL unit after a slice, or at
/// a slice with first_mb_in_slice = 0) and converts each to 4-byte length prefixes.
fn access_units(nals: &[&[u8]]) -> (Vec<AccessUnit>, Vec<u8>, Vec<u8>) {
    let (mut sps, mut pps) = (Vec::new(), Vec::new());
    let mut aus: Vec<AccessUnit> = Vec::new();
    let mut cur = AccessUnit {
        key: false,
        avcc: Vec::new(),
    };
    let mut has_vcl = false;
    for nal in nals {
        let kind = nal[0] & 0x1F;
        let vcl = kind == 1 || kind == 5;
        let first_slice = vcl && nal.len() > 1 && nal[1] & 0x80 != 0;
        if has_vcl && (!vcl || first_slice) {
            aus.push(std::mem::replace(
                &mut cur,
                AccessUnit {
                    key: false,
                    avcc: Vec::new(),
                },
            ));
            has_vcl = false;
        }
        match kind {
            7 if sps.is_empty() => sps = nal.to_vec(),
            8 if pps.is_empty() => pps = nal.to_vec(),
            5 => cur.key = true,
            _ => {}
        }
        has_vcl |= vcl;
        cur.avcc
            .extend_from_slice(&(nal.len() as u32).to_be_bytes());
        cur.avcc.extend_from_slice(nal);
    }
    if has_vcl {
        aus.push(cur);
    }
    (aus, sps, pps)
}

/// avcC as the producer builds it: one SPS, one PPS, 4-byte lengths.
fn avcc(sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let mut v = vec![1, sps[1], sps[2], sps[3], 0xFF, 0xE1];
    v.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    v.extend_from_slice(sps);
    v.push(1);
    v.extend_from_slice(&(pps.len() as u16).to_be_bytes());
    v.extend_from_slice(pps);
    v
}

struct Encoded {
    dir: PathBuf,
    mkv: PathBuf,
    frames: Vec<(i64, bool)>,
    header: Bytes,
    first_cluster: Bytes,
    first_cluster_frames: usize,
}

/// Makes the H.264 input with ffmpeg and encodes it; `None` when ffmpeg is missing.
fn encode_sample() -> Option<Encoded> {
    let ffmpeg = tool("ffmpeg")?;
    let dir = temp_dir("h264");
    let h264 = dir.join("out.h264");
    run_text(
        Command::new(ffmpeg)
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .args([
                "testsrc=size=320x240:rate=25",
                "-t",
                "4",
                "-pix_fmt",
                "yuv420p",
                "-c:v",
                "libx264",
                "-g",
                "25",
                "-bsf:v",
                "h264_mp4toannexb",
                "-f",
                "h264",
            ])
            .arg(&h264),
    );
    let data = std::fs::read(&h264).unwrap();
    let nals = nal_units(&data);
    let (aus, sps, pps) = access_units(&nals);
    assert_eq!(aus.len(), 100, "4 s at 25 fps");
    assert!(aus[0].key);

    let mut track = TrackInfo::new(1, 1, TrackType::Video, codec::H264);
    track.name = Some("kvs_video_track".into());
    track.video = Some(VideoSettings {
        width: 320,
        height: 240,
    });
    track.codec_private = Bytes::from(avcc(&sps, &pps));
    let mut config = StreamConfig::new(*b"0123456789abcdef");
    config.timecode_mode = TimecodeMode::Relative;
    let mut w = StreamWriter::new(config, vec![track]).unwrap();
    w.put_metadata("camera", "testsrc", true).unwrap();

    let mut out = Vec::new();
    w.write_header(&mut out).unwrap();
    let header = Bytes::copy_from_slice(&out);
    let mut frames = Vec::new();
    let mut cluster_starts = Vec::new();
    for (i, au) in aus.iter().enumerate() {
        let pts_ms = i as i64 * FPS_MS;
        let f = Frame::new(1, (BASE_MS + pts_ms) * 1_000_000, au.key, au.avcc.clone());
        // Alternate both output paths.
        let before = out.len();
        let outcome = if i % 2 == 0 {
            w.encode_frame(&f, &mut out).unwrap()
        } else {
            let o = w.encode_frame_header(&f, &mut out).unwrap();
            out.extend_from_slice(&f.data);
            o
        };
        let b = *outcome.written().unwrap();
        if let Some(start) = b.fragment {
            assert_eq!(start.cluster_timecode as i64, pts_ms);
            // The cluster starts after the metadata tags.
            cluster_starts.push(before + b.header_len - 18 - 13);
        }
        frames.push((pts_ms, au.key));
    }
    w.finish(&mut out).unwrap();
    assert_eq!(cluster_starts.len(), 4);
    let first_cluster = Bytes::copy_from_slice(&out[cluster_starts[0]..cluster_starts[1]]);
    let mkv = dir.join("stream.mkv");
    std::fs::write(&mkv, &out).unwrap();
    Some(Encoded {
        dir,
        mkv,
        frames,
        header,
        first_cluster,
        first_cluster_frames: 25,
    })
}

/// `(pts, keyframe)` of every video packet, as ffprobe reads them.
fn ffprobe_packets(ffprobe: &Path, file: &Path) -> Vec<(i64, bool)> {
    let text = run_text(
        Command::new(ffprobe)
            .args([
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_entries",
                "packet=pts,flags",
                "-of",
                "csv=p=0",
            ])
            .arg(file),
    );
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (pts, flags) = l.split_once(',').unwrap();
            (pts.trim().parse().unwrap(), flags.starts_with('K'))
        })
        .collect()
}

#[test]
fn third_party_readers_accept_the_producer_stream() {
    let Some(e) = encode_sample() else { return };

    if let Some(mkvinfo) = tool("mkvinfo") {
        let text = run_text(Command::new(mkvinfo).arg("-v").arg(&e.mkv));
        assert!(text.contains("V_MPEG4/ISO/AVC"), "{text}");
        assert!(text.contains("Kinesis Video SDK 1.1.0"), "{text}");
    }

    if let Some(mkvmerge) = tool("mkvmerge") {
        let text = run_text(Command::new(mkvmerge).arg("-J").arg(&e.mkv));
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let tracks = json["tracks"].as_array().unwrap();
        assert_eq!(tracks.len(), 1);
        assert_eq!(tracks[0]["type"], "video");
        assert_eq!(tracks[0]["properties"]["codec_id"], "V_MPEG4/ISO/AVC");
        assert_eq!(tracks[0]["properties"]["pixel_dimensions"], "320x240");
        assert_eq!(tracks[0]["properties"]["track_name"], "kvs_video_track");
    }

    if let Some(ffprobe) = tool("ffprobe") {
        let packets = ffprobe_packets(&ffprobe, &e.mkv);
        assert_eq!(packets, e.frames, "pts and key flags read back as written");
        assert_eq!(packets.iter().filter(|p| p.1).count(), 4);
    }

    if let Some(gst) = tool("gst-launch-1.0") {
        // h264parse lives in plugins-bad; avdec_h264 takes the avc stream from matroskademux
        // directly when it is missing.
        let has_parse = Command::new("gst-inspect-1.0")
            .arg("h264parse")
            .output()
            .is_ok_and(|o| o.status.success());
        let mut cmd = Command::new(gst);
        cmd.arg("filesrc")
            .arg(format!("location={}", e.mkv.display()))
            .args(["!", "matroskademux", "!"]);
        if has_parse {
            cmd.args(["h264parse", "!"]);
        } else {
            println!("note: GStreamer h264parse missing; decoding without it");
        }
        cmd.args(["avdec_h264", "!", "fakesink", "silent=false", "-v"]);
        let text = run_text(&mut cmd);
        let decoded: Vec<&str> = text.lines().filter(|l| l.contains("chain   *")).collect();
        assert_eq!(decoded.len(), 100, "GStreamer decoded every frame");
        // 320x240 I420 frames.
        assert!(decoded.iter().all(|l| l.contains("(115200 bytes")));
    }

    let python = std::env::var("KVS_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = "import av,sys\nc=av.open(sys.argv[1])\nn=0\nfor f in c.decode(video=0):\n    assert (f.width,f.height)==(320,240)\n    n+=1\nprint(n)\n";
    match Command::new(&python).args(["-c", "import av"]).output() {
        Ok(o) if o.status.success() => {
            let n = run_text(Command::new(&python).args(["-c", script]).arg(&e.mkv));
            assert_eq!(n.trim(), "100");
        }
        _ => {
            assert!(
                !support::required(),
                "{python} with PyAV is required (KVS_REQUIRE_TOOLS=1)"
            );
            println!("skipping: {python} has no PyAV (`av`)");
        }
    }
    let _ = std::fs::remove_dir_all(&e.dir);
}

#[test]
fn third_party_readers_accept_a_getmedia_document() {
    let Some(e) = encode_sample() else { return };
    let header = ProducerHeader::parse(e.header.clone()).unwrap();
    let number = FragmentNumber::mint(1, 1_700_000_001_234, 42);
    let trailer = Trailer {
        millis_behind_now: 1_500,
        continuation_token: number.to_string(),
    };
    let doc = FragmentDocument {
        header: &header,
        fragment_number: number.as_str(),
        server_timestamp_ms: 1_700_000_001_234,
        producer_timestamp_ms: BASE_MS as u64,
        cluster: &e.first_cluster,
        trailer: Some(&trailer),
    };
    let mut out = Vec::new();
    doc.write(&mut out).unwrap();
    let path = e.dir.join("getmedia.mkv");
    std::fs::write(&path, &out).unwrap();

    if let Some(mkvinfo) = tool("mkvinfo") {
        let text = run_text(Command::new(mkvinfo).arg("-v").arg(&path));
        assert!(text.contains("AWS_KINESISVIDEO_FRAGMENT_NUMBER"), "{text}");
        assert!(text.contains("1700000001.234"), "{text}");
        assert!(
            text.contains("AWS_KINESISVIDEO_CONTINUATION_TOKEN"),
            "{text}"
        );
    }
    if let Some(ffprobe) = tool("ffprobe") {
        let packets = ffprobe_packets(&ffprobe, &path);
        assert_eq!(packets.len(), e.first_cluster_frames);
        assert_eq!(packets[..], e.frames[..e.first_cluster_frames]);
    }
    let _ = std::fs::remove_dir_all(&e.dir);
}
