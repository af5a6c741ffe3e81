//! Builds `examples/media/sample.mkv`, the bundled sample stream, from the H.264 and AAC
//! elementary streams beside it, exactly as a KVS producer would send it in PutMedia.
//!
//! `cargo run -p kvs-core --example make_sample [MEDIA_DIR]`
//!
//! The output is deterministic: fixed SegmentUID, absolute timecodes from a fixed start time.

use std::error::Error;
use std::path::PathBuf;

use bytes::Bytes;
use kvs_core::media::access_unit::split_access_units;
use kvs_core::media::adts::split_adts;
use kvs_core::media::{VideoCodec, codec_private_from_keyframe, nal};
use kvs_core::mkv::writer::{StreamConfig, StreamWriter};
use kvs_core::mkv::{AudioSettings, Frame, TrackInfo, TrackType, VideoSettings, codec};

/// 2026-01-01T00:00:00Z in ns: the producer timestamp of the first frame.
const START_NS: i64 = 1_767_225_600_000_000_000;
/// Frame interval of the bundled video (25 fps).
const VIDEO_FRAME_NS: i64 = 40_000_000;

fn main() -> Result<(), Box<dyn Error>> {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/media"));
    let h264 = std::fs::read(dir.join("sample.h264"))?;
    let aac = Bytes::from(std::fs::read(dir.join("sample.aac"))?);

    let units = split_access_units(VideoCodec::H264, &h264)?;
    let first = units.first().ok_or("sample.h264 holds no frame")?;
    let cpd = codec_private_from_keyframe(VideoCodec::H264, &first.data)?;
    let mut video = TrackInfo::new(1, 1, TrackType::Video, codec::H264);
    video.name = Some("kvs_video_track".into());
    video.codec_private = cpd.codec_private.into();
    video.video = Some(VideoSettings {
        width: cpd.width,
        height: cpd.height,
    });

    let audio_frames = split_adts(&aac)?;
    let (adts, _) = audio_frames.first().ok_or("sample.aac holds no frame")?;
    let mut audio = TrackInfo::new(2, 2, TrackType::Audio, codec::AAC);
    audio.name = Some("kvs_audio_track".into());
    audio.codec_private = Bytes::copy_from_slice(&adts.audio_specific_config()?);
    audio.audio = Some(AudioSettings {
        sampling_frequency: f64::from(adts.sample_rate),
        channels: u32::from(adts.channel_configuration),
        bit_depth: None,
    });

    let mut frames = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        let ts = START_NS + i as i64 * VIDEO_FRAME_NS;
        let payload = nal::annexb_to_avcc(&unit.data)?;
        frames.push(Frame::new(1, ts, unit.keyframe, payload));
    }
    let mut audio_ts = START_NS;
    for (header, payload) in &audio_frames {
        frames.push(Frame::new(2, audio_ts, false, payload.clone()));
        audio_ts += header.duration_ns() as i64;
    }
    // Interleave by time; at equal times video first, so key frames open the fragments.
    frames.sort_by_key(|f| (f.timestamp_ns, f.track));

    let mut writer =
        StreamWriter::new(StreamConfig::new(*b"kvs-sample-video"), vec![video, audio])?;
    let mut out = Vec::new();
    writer.write_header(&mut out)?;
    for frame in &frames {
        writer.encode_frame(frame, &mut out)?;
    }
    writer.finish(&mut out)?;
    let path = dir.join("sample.mkv");
    std::fs::write(&path, &out)?;
    println!(
        "wrote {} ({} bytes, {} video and {} audio frames, {} fragments)",
        path.display(),
        out.len(),
        units.len(),
        audio_frames.len(),
        writer.fragment_count()
    );
    Ok(())
}
