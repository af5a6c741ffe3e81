//! Real-peer tests of `kvs_core::media` against ffmpeg/ffprobe (libx264, libx265, aac, pcm_alaw).
//!
//! Each test encodes a short clip with ffmpeg, then checks that the picture size we parse from
//! the SPS equals ffprobe's, and that the avcC/hvcC/ASC/WAVEFORMATEX we build agrees with the
//! CodecPrivate ffmpeg's Matroska muxer wrote. Without ffmpeg/ffprobe on `PATH` the tests print
//! a note and pass, unless `KVS_REQUIRE_TOOLS=1`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use kvs_core::ebml::{Size, read_id, read_size};
use kvs_core::media::aac::{AudioSpecificConfig, build_asc};
use kvs_core::media::g711::{G711Law, WaveFormatEx, build_waveformatex};
use kvs_core::media::h264::{self, AvcConfig};
use kvs_core::media::h265::{self, HevcConfig};
use kvs_core::media::nal::{annexb_nalus, annexb_to_avcc, avcc_nalus, avcc_to_annexb};
use kvs_core::media::{VideoCodec, codec_private_from_keyframe};
use support::{find_tool, run, skip, temp_dir};

/// The ffmpeg and ffprobe paths, or `None` (test skipped) when missing and not required.
fn tools() -> Option<(PathBuf, PathBuf)> {
    match (find_tool("ffmpeg"), find_tool("ffprobe")) {
        (Some(a), Some(b)) => Some((a, b)),
        _ => {
            skip("ffmpeg/ffprobe not found on PATH");
            None
        }
    }
}

fn has_encoder(ffmpeg: &Path, encoder: &str) -> bool {
    let out = Command::new(ffmpeg)
        .args(["-hide_banner", "-encoders"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let found = text
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(encoder));
    if !found {
        skip(&format!("ffmpeg has no {encoder} encoder"));
    }
    found
}

/// ffprobe's width and height of the first video stream.
fn probe_size(ffprobe: &Path, file: &Path) -> (u32, u32) {
    let out = run(Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(file));
    let text = String::from_utf8(out).unwrap();
    let mut it = text.trim().split(',').map(|v| v.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

/// The CodecPrivate of the first track of a Matroska file (walking Segment → Tracks → TrackEntry).
fn mkv_codec_private(file: &Path) -> Vec<u8> {
    let data = std::fs::read(file).unwrap();
    let mut pos = 0;
    while pos < data.len() {
        let (id, id_len) = read_id(&data[pos..]).unwrap().unwrap();
        let (size, size_len) = read_size(&data[pos + id_len..]).unwrap().unwrap();
        let body = pos + id_len + size_len;
        match id {
            0x1853_8067 | 0x1654_AE6B | 0xAE => pos = body, // Segment, Tracks, TrackEntry: descend
            0x63A2 => {
                let Size::Known(n) = size else {
                    panic!("unknown-size CodecPrivate")
                };
                return data[body..body + n as usize].to_vec();
            }
            _ => {
                let Size::Known(n) = size else {
                    panic!("unknown-size element {id:X}")
                };
                pos = body + n as usize;
            }
        }
    }
    panic!("no CodecPrivate in {}", file.display());
}

struct Clip {
    mkv: PathBuf,
    annexb: Vec<u8>,
}

/// Encode a few frames of testsrc at `size` with `encoder` and `extra` args into MKV, and
/// convert the same packets to an Annex-B elementary stream with ffmpeg's bitstream filter.
fn encode_video(
    ffmpeg: &Path,
    dir: &Path,
    name: &str,
    size: &str,
    encoder: &str,
    extra: &[&str],
) -> Clip {
    let mkv = dir.join(format!("{name}.mkv"));
    let es = dir.join(format!("{name}.es"));
    let (bsf, fmt) = if encoder == "libx265" {
        ("hevc_mp4toannexb", "hevc")
    } else {
        ("h264_mp4toannexb", "h264")
    };
    run(Command::new(ffmpeg)
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
        ])
        .arg(format!("testsrc=size={size}:rate=25"))
        .args(["-frames:v", "3", "-c:v", encoder])
        .args(extra)
        .arg(&mkv));
    run(Command::new(ffmpeg)
        .args(["-hide_banner", "-loglevel", "error", "-y", "-i"])
        .arg(&mkv)
        .args(["-c", "copy", "-bsf:v", bsf, "-f", fmt])
        .arg(&es));
    Clip {
        mkv,
        annexb: std::fs::read(&es).unwrap(),
    }
}

/// Annex-B → AVCC → Annex-B keeps every NAL unit of a real stream, and AVCC framing is exact.
fn check_framing(annexb: &[u8]) {
    let nals: Vec<&[u8]> = annexb_nalus(annexb).unwrap().collect();
    assert!(nals.len() >= 4);
    let avcc = annexb_to_avcc(annexb).unwrap();
    let back: Vec<&[u8]> = avcc_nalus(&avcc).map(Result::unwrap).collect();
    assert_eq!(nals, back);
    let annexb2 = avcc_to_annexb(&avcc, 4).unwrap();
    assert_eq!(annexb_nalus(&annexb2).unwrap().collect::<Vec<_>>(), nals);
}

#[test]
fn h264_sizes_and_avcc_match_ffmpeg() {
    let Some((ffmpeg, ffprobe)) = tools() else {
        return;
    };
    if !has_encoder(&ffmpeg, "libx264") {
        return;
    }
    let dir = temp_dir("h264");
    let cases: &[(&str, &[&str], u8, u8, u8)] = &[
        // size, extra args, expected profile_idc, chroma_format_idc, luma bit depth
        (
            "352x288",
            &["-pix_fmt", "yuv420p", "-profile:v", "high"],
            100,
            1,
            8,
        ),
        (
            "1920x1080",
            &["-pix_fmt", "yuv420p", "-profile:v", "high"],
            100,
            1,
            8,
        ),
        (
            "642x362",
            &["-pix_fmt", "yuv420p", "-profile:v", "high"],
            100,
            1,
            8,
        ),
        (
            "176x144",
            &["-pix_fmt", "yuv420p", "-profile:v", "baseline"],
            66,
            1,
            8,
        ),
        (
            "642x362",
            &["-pix_fmt", "yuv420p", "-profile:v", "main"],
            77,
            1,
            8,
        ),
        (
            "642x362",
            &["-pix_fmt", "yuv420p10le", "-profile:v", "high10"],
            110,
            1,
            10,
        ),
        (
            "642x362",
            &["-pix_fmt", "yuv422p", "-profile:v", "high422"],
            122,
            2,
            8,
        ),
        (
            "641x361",
            &["-pix_fmt", "yuv444p", "-profile:v", "high444"],
            244,
            3,
            8,
        ),
        // Interlaced (field) coding: frame_mbs_only_flag = 0, crop unit Y = 4.
        (
            "722x484",
            &[
                "-pix_fmt",
                "yuv420p",
                "-flags",
                "+ildct+ilme",
                "-x264-params",
                "interlaced=1",
            ],
            100,
            1,
            8,
        ),
        // Custom quantisation matrices (x264 signals them in the PPS; SPS scaling lists are
        // covered by the unit tests in media::h264).
        (
            "642x362",
            &[
                "-pix_fmt",
                "yuv420p",
                "-profile:v",
                "high",
                "-x264-params",
                "cqm=jvt",
            ],
            100,
            1,
            8,
        ),
    ];
    for (i, &(size, extra, profile, chroma, depth)) in cases.iter().enumerate() {
        let clip = encode_video(&ffmpeg, &dir, &format!("c{i}"), size, "libx264", extra);
        let probed = probe_size(&ffprobe, &clip.mkv);
        let ctx = format!("case {i} {size} {extra:?}");

        let extracted = codec_private_from_keyframe(VideoCodec::H264, &clip.annexb).unwrap();
        assert_eq!((extracted.width, extracted.height), probed, "{ctx}");

        let ps = h264::parameter_sets(&clip.annexb).unwrap();
        let sps_nal = ps.iter().copied().find(|n| h264::is_sps(n)).unwrap();
        let sps = h264::Sps::parse(sps_nal).unwrap();
        assert_eq!(
            (sps.profile_idc, sps.chroma_format_idc, sps.bit_depth_luma),
            (profile, chroma, depth),
            "{ctx}"
        );
        assert_eq!(
            sps.frame_mbs_only,
            !extra.contains(&"interlaced=1"),
            "{ctx}"
        );

        // ffmpeg's avcC = PIC's layout + (for High profiles) extension bytes after the PPS.
        let theirs = mkv_codec_private(&clip.mkv);
        let cfg = AvcConfig::parse(&theirs).unwrap();
        let ours = &extracted.codec_private;
        assert!(
            theirs.starts_with(ours),
            "{ctx}: ours {ours:02X?} theirs {theirs:02X?}"
        );
        let ours_cfg = AvcConfig::parse(ours).unwrap();
        assert_eq!(
            (ours_cfg.sps.clone(), ours_cfg.pps.clone()),
            (cfg.sps.clone(), cfg.pps.clone()),
            "{ctx}"
        );
        assert_eq!(
            (
                cfg.profile_idc,
                cfg.profile_compatibility,
                cfg.level_idc,
                cfg.length_size
            ),
            (sps.profile_idc, sps.constraint_flags, sps.level_idc, 4),
            "{ctx}"
        );
        assert_eq!(
            &h264::avcc_from_annexb(&clip.annexb).unwrap(),
            ours,
            "{ctx}"
        );
        check_framing(&clip.annexb);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn h265_sizes_and_hvcc_match_ffmpeg() {
    let Some((ffmpeg, ffprobe)) = tools() else {
        return;
    };
    if !has_encoder(&ffmpeg, "libx265") {
        return;
    }
    let dir = temp_dir("h265");
    let cases: &[(&str, &str, &str, u8, u8, u8)] = &[
        // size, pix_fmt, x265 params, expected general_profile_idc, chroma_format_idc, luma depth
        ("352x288", "yuv420p", "", 1, 1, 8),
        ("1920x1080", "yuv420p", "", 1, 1, 8),
        ("642x362", "yuv420p", "", 1, 1, 8),
        ("641x361", "yuv444p", "", 4, 3, 8),
        ("642x362", "yuv420p10le", "", 2, 1, 10),
        ("642x362", "yuv422p", "", 4, 2, 8),
        // Temporal sub-layers: profile_tier_level carries sub-layer flags.
        ("642x362", "yuv420p", ":temporal-layers=1", 1, 1, 8),
    ];
    for (i, &(size, pix_fmt, params, profile, chroma, depth)) in cases.iter().enumerate() {
        let x265 = format!("log-level=error{params}");
        let extra = [
            "-pix_fmt",
            pix_fmt,
            "-preset",
            "ultrafast",
            "-x265-params",
            &x265,
        ];
        let clip = encode_video(&ffmpeg, &dir, &format!("c{i}"), size, "libx265", &extra);
        let probed = probe_size(&ffprobe, &clip.mkv);
        let ctx = format!("case {i} {size} {pix_fmt} {params}");

        let extracted = codec_private_from_keyframe(VideoCodec::H265, &clip.annexb).unwrap();
        assert_eq!((extracted.width, extracted.height), probed, "{ctx}");

        let ours = HevcConfig::parse(&extracted.codec_private).unwrap();
        let theirs_bytes = mkv_codec_private(&clip.mkv);
        let theirs = HevcConfig::parse(&theirs_bytes).unwrap();
        // The fields PIC fills from the SPS agree with ffmpeg's record.
        assert_eq!(ours.profile_tier_level, theirs.profile_tier_level, "{ctx}");
        assert_eq!(ours.profile_tier_level.profile_idc, profile, "{ctx}");
        assert_eq!(
            (
                ours.chroma_format_idc,
                ours.bit_depth_luma,
                ours.bit_depth_chroma
            ),
            (
                theirs.chroma_format_idc,
                theirs.bit_depth_luma,
                theirs.bit_depth_chroma
            ),
            "{ctx}"
        );
        assert_eq!(
            (ours.chroma_format_idc, ours.bit_depth_luma),
            (chroma, depth),
            "{ctx}"
        );
        assert_eq!(ours.length_size, theirs.length_size, "{ctx}");
        // Same VPS, SPS and PPS NAL units, one of each, in PIC's fixed order.
        for ty in [h265::NAL_VPS, h265::NAL_SPS, h265::NAL_PPS] {
            let a: Vec<_> = ours.nalus_of_type(ty).collect();
            let b: Vec<_> = theirs.nalus_of_type(ty).collect();
            assert_eq!(a, b, "{ctx} type {ty}");
            assert_eq!(a.len(), 1, "{ctx}");
        }
        let types: Vec<u8> = ours.arrays.iter().map(|a| a.nal_type).collect();
        assert_eq!(types, vec![32, 33, 34]);
        // PIC's fixed header bytes.
        let b = &extracted.codec_private;
        assert_eq!(
            (b[13], b[14], b[15], b[19], b[20], b[21], b[22]),
            (0xF0, 0x00, 0xFC, 0x00, 0x00, 0x0F, 3),
            "{ctx}"
        );
        // An SPS-level cross-check of the size against the raw SPS.
        let sps_nal = ours.nalus_of_type(h265::NAL_SPS).next().unwrap();
        let sps = h265::Sps::parse(sps_nal).unwrap();
        assert_eq!((sps.width, sps.height), probed, "{ctx}");
        assert_eq!(sps.max_sub_layers > 1, !params.is_empty(), "{ctx}");
        check_framing(&clip.annexb);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn aac_asc_matches_ffmpeg() {
    let Some((ffmpeg, _)) = tools() else { return };
    if !has_encoder(&ffmpeg, "aac") {
        return;
    }
    let dir = temp_dir("aac");
    for (rate, channels) in [(44_100u32, 2u8), (16_000, 1), (48_000, 2), (8_000, 1)] {
        let mkv = dir.join(format!("a{rate}_{channels}.mkv"));
        run(Command::new(&ffmpeg)
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg(format!("sine=frequency=440:sample_rate={rate}"))
            .args(["-t", "0.2", "-ac", &channels.to_string(), "-c:a", "aac"])
            .arg(&mkv));
        let theirs = mkv_codec_private(&mkv);
        let ours = build_asc(2, rate, channels).unwrap();
        assert_eq!(
            &theirs[..2],
            &ours,
            "{rate} Hz × {channels}: theirs {theirs:02X?}"
        );
        let parsed = AudioSpecificConfig::parse(&theirs).unwrap();
        assert_eq!(
            (parsed.object_type, parsed.sample_rate, parsed.channels()),
            (2, rate, Some(channels))
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn g711_waveformatex_against_ffmpeg() {
    let Some((ffmpeg, ffprobe)) = tools() else {
        return;
    };
    let dir = temp_dir("g711");
    for (law, codec, rate, channels) in [
        (G711Law::ALaw, "pcm_alaw", 8_000u32, 1u16),
        (G711Law::MuLaw, "pcm_mulaw", 16_000, 2),
    ] {
        // ffmpeg's own A_MS/ACM CodecPrivate parses to the same format, rate and channels.
        let mkv = dir.join(format!("{codec}.mkv"));
        run(Command::new(&ffmpeg)
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
            ])
            .arg(format!("sine=frequency=440:sample_rate={rate}"))
            .args(["-t", "0.2", "-ac", &channels.to_string(), "-c:a", codec])
            .arg(&mkv));
        let theirs_bytes = mkv_codec_private(&mkv);
        let theirs = WaveFormatEx::parse(&theirs_bytes).unwrap();
        let ours_bytes = build_waveformatex(law, rate, channels).unwrap();
        let ours = WaveFormatEx::parse(&ours_bytes).unwrap();
        assert_eq!(
            (
                ours.format_tag,
                ours.channels,
                ours.sample_rate,
                ours.block_align
            ),
            (
                theirs.format_tag,
                theirs.channels,
                theirs.sample_rate,
                theirs.block_align
            )
        );
        assert_eq!(theirs.g711_law(), Some(law));
        // The producer's quirk: avgBytesPerSec is a bit rate / 64, not ffmpeg's byte rate.
        assert_eq!(theirs.avg_bytes_per_sec, rate * u32::from(channels));
        assert_eq!(ours.avg_bytes_per_sec, rate * u32::from(channels) / 8);

        // ffprobe reads a WAV whose fmt chunk is our 18-byte WAVEFORMATEX.
        let samples = vec![0xD5u8; (rate as usize / 10) * usize::from(channels)];
        let mut wav = b"RIFF".to_vec();
        wav.extend_from_slice(&(4 + 8 + 18 + 8 + samples.len() as u32).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&18u32.to_le_bytes());
        wav.extend_from_slice(&ours_bytes);
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&(samples.len() as u32).to_le_bytes());
        wav.extend_from_slice(&samples);
        let wav_path = dir.join(format!("{codec}.wav"));
        std::fs::write(&wav_path, &wav).unwrap();
        let out = run(Command::new(&ffprobe)
            .args([
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name,sample_rate,channels",
                "-of",
                "csv=p=0",
            ])
            .arg(&wav_path));
        assert_eq!(
            String::from_utf8(out).unwrap().trim(),
            format!("{codec},{rate},{channels}")
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
