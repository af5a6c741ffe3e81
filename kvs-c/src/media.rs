//! Codec-private helpers: Annex-B → AVCC framing, avcC / hvcC records from parameter sets or
//! from a key frame.

use kvs_core::media::{self, MediaError, VideoCodec, h264, h265, nal};

use crate::{Fail, Res, boundary, check_out, copy_out, kvs_result, try_slice, write_out};

/// Video codecs of the codec-private helpers.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum kvs_video_codec {
    /// H.264 / AVC (avcC).
    H264 = 1,
    /// H.265 / HEVC (hvcC).
    H265 = 2,
}

fn media_fail(e: MediaError) -> Fail {
    Fail::new(kvs_result::Media, e.to_string())
}

/// The frame shared by the record builders: checks `out_n`, runs `build` and copies the record
/// it returns into `buf`.
///
/// # Safety
/// `buf` has `buf_len` writable bytes; `out_n` is writable.
unsafe fn record_out(
    buf: *mut u8,
    buf_len: usize,
    out_n: *mut usize,
    build: impl FnOnce() -> Res<Vec<u8>>,
) -> kvs_result {
    boundary(|| {
        check_out(out_n, "out_n")?;
        let out = build()?;
        // SAFETY: per the contract above.
        unsafe { copy_out(&out, buf, buf_len, out_n) }
    })
}

/// The body shared by the Annex-B converters: reads `(annexb, len)`, runs `convert` and copies
/// its output into `buf`.
///
/// # Safety
/// `annexb` has `len` readable bytes; `buf` has `buf_len` writable bytes; `out_n` is writable.
unsafe fn convert_annexb(
    annexb: *const u8,
    len: usize,
    buf: *mut u8,
    buf_len: usize,
    out_n: *mut usize,
    convert: fn(&[u8]) -> Result<Vec<u8>, MediaError>,
) -> kvs_result {
    let build = || {
        // SAFETY: per the contract above.
        let input = unsafe { try_slice(annexb, len, "annexb") }?;
        convert(input).map_err(media_fail)
    };
    // SAFETY: per the contract above.
    unsafe { record_out(buf, buf_len, out_n, build) }
}

fn codec(value: u32) -> Res<VideoCodec> {
    match value {
        1 => Ok(VideoCodec::H264),
        2 => Ok(VideoCodec::H265),
        other => Err(Fail::new(
            kvs_result::InvalidParameter,
            format!("codec {other} is not a kvs_video_codec"),
        )),
    }
}

/// Converts an Annex-B access unit (start codes) into 4-byte length-prefixed NAL units (the
/// AVCC/HVCC framing MKV frames carry). The output is as long as the input plus at most one byte
/// per 3-byte start code.
///
/// # Safety
/// `annexb` has `len` readable bytes; `buf` has `buf_len` writable bytes; `out_n` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_annexb_to_avcc(
    annexb: *const u8,
    len: usize,
    buf: *mut u8,
    buf_len: usize,
    out_n: *mut usize,
) -> kvs_result {
    // SAFETY: per the contract above.
    unsafe { convert_annexb(annexb, len, buf, buf_len, out_n, nal::annexb_to_avcc) }
}

/// Builds the H.264 avcC record from Annex-B codec private data (the first SPS and PPS found).
///
/// # Safety
/// `annexb` has `len` readable bytes; `buf` has `buf_len` writable bytes; `out_n` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_avcc_from_annexb(
    annexb: *const u8,
    len: usize,
    buf: *mut u8,
    buf_len: usize,
    out_n: *mut usize,
) -> kvs_result {
    // SAFETY: per the contract above.
    unsafe { convert_annexb(annexb, len, buf, buf_len, out_n, h264::avcc_from_annexb) }
}

/// Builds the H.265 hvcC record from Annex-B codec private data (the first VPS, SPS and PPS).
///
/// # Safety
/// `annexb` has `len` readable bytes; `buf` has `buf_len` writable bytes; `out_n` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_hvcc_from_annexb(
    annexb: *const u8,
    len: usize,
    buf: *mut u8,
    buf_len: usize,
    out_n: *mut usize,
) -> kvs_result {
    // SAFETY: per the contract above.
    unsafe { convert_annexb(annexb, len, buf, buf_len, out_n, h265::hvcc_from_annexb) }
}

/// Builds the H.264 avcC record from one SPS and one PPS NAL unit (without start codes).
///
/// # Safety
/// `sps`/`pps` have their lengths readable; `buf` has `buf_len` writable bytes; `out_n` is
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_avcc_from_parameter_sets(
    sps: *const u8,
    sps_len: usize,
    pps: *const u8,
    pps_len: usize,
    buf: *mut u8,
    buf_len: usize,
    out_n: *mut usize,
) -> kvs_result {
    let build = || {
        // SAFETY: per the contract above.
        let sps = unsafe { try_slice(sps, sps_len, "sps") }?;
        // SAFETY: per the contract above.
        let pps = unsafe { try_slice(pps, pps_len, "pps") }?;
        h264::build_avcc(sps, pps).map_err(media_fail)
    };
    // SAFETY: per the contract above.
    unsafe { record_out(buf, buf_len, out_n, build) }
}

/// Builds the H.265 hvcC record from a VPS, an SPS and an optional PPS (NULL, 0) NAL unit.
///
/// # Safety
/// The NAL buffers have their lengths readable; `buf` has `buf_len` writable bytes; `out_n` is
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_hvcc_from_parameter_sets(
    vps: *const u8,
    vps_len: usize,
    sps: *const u8,
    sps_len: usize,
    pps: *const u8,
    pps_len: usize,
    buf: *mut u8,
    buf_len: usize,
    out_n: *mut usize,
) -> kvs_result {
    let build = || {
        // SAFETY: per the contract above.
        let vps = unsafe { try_slice(vps, vps_len, "vps") }?;
        // SAFETY: per the contract above.
        let sps = unsafe { try_slice(sps, sps_len, "sps") }?;
        // SAFETY: per the contract above.
        let pps = unsafe { try_slice(pps, pps_len, "pps") }?;
        let pps = (!pps.is_empty()).then_some(pps);
        h265::build_hvcc(vps, sps, pps).map_err(media_fail)
    };
    // SAFETY: per the contract above.
    unsafe { record_out(buf, buf_len, out_n, build) }
}

/// From an Annex-B key frame (parameter sets then an IDR slice), as the official producer's
/// codec-private auto-extraction does: the avcC/hvcC record into `buf`, and the picture size.
///
/// # Safety
/// `access_unit` has `len` readable bytes; `buf` has `buf_len` writable bytes; the outputs are
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kvs_codec_private_from_keyframe(
    codec: u32,
    access_unit: *const u8,
    len: usize,
    buf: *mut u8,
    buf_len: usize,
    out_n: *mut usize,
    width_out: *mut u32,
    height_out: *mut u32,
) -> kvs_result {
    boundary(|| {
        check_out(out_n, "out_n")?;
        check_out(width_out, "width_out")?;
        check_out(height_out, "height_out")?;
        let codec = codec_value(codec)?;
        // SAFETY: per the contract above.
        let input = unsafe { try_slice(access_unit, len, "access_unit") }?;
        let cpd = media::codec_private_from_keyframe(codec, input).map_err(media_fail)?;
        // SAFETY: per the contract above.
        unsafe { copy_out(&cpd.codec_private, buf, buf_len, out_n) }?;
        // SAFETY: checked non-NULL.
        unsafe {
            write_out(width_out, cpd.width);
            write_out(height_out, cpd.height);
        }
        Ok(())
    })
}

fn codec_value(value: u32) -> Res<VideoCodec> {
    codec(value)
}
