//! H.264 / AVC: NAL unit types, SPS parsing and the avcC record (AVCDecoderConfigurationRecord).

use bytes::BufMut;

use super::MediaError;
use super::bits::{BitReader, ByteReader};
use super::nal::{annexb_nalus, remove_emulation_prevention};

/// Non-IDR coded slice.
pub const NAL_SLICE: u8 = 1;
/// Coded slice of an IDR picture.
pub const NAL_IDR: u8 = 5;
/// Supplemental enhancement information.
pub const NAL_SEI: u8 = 6;
/// Sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// Picture parameter set.
pub const NAL_PPS: u8 = 8;
/// Access unit delimiter.
pub const NAL_AUD: u8 = 9;

/// The `nal_unit_type` (low 5 bits of the first byte), or `None` for an empty NAL unit.
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| b & 0x1F)
}

/// Whether the NAL unit is a slice of an IDR picture (type 5).
pub fn is_idr(nal: &[u8]) -> bool {
    nal_unit_type(nal) == Some(NAL_IDR)
}

/// Whether the NAL unit is a sequence parameter set (type 7).
pub fn is_sps(nal: &[u8]) -> bool {
    nal_unit_type(nal) == Some(NAL_SPS)
}

/// Whether the NAL unit is a picture parameter set (type 8).
pub fn is_pps(nal: &[u8]) -> bool {
    nal_unit_type(nal) == Some(NAL_PPS)
}

/// Whether the NAL unit is a parameter set (SPS, PPS, or the SPS extension / subset SPS 13, 15).
pub fn is_parameter_set(nal: &[u8]) -> bool {
    matches!(nal_unit_type(nal), Some(NAL_SPS | NAL_PPS | 13 | 15))
}

/// The IDR test the producer's CPD auto-extraction uses: forbidden bit clear, `nal_ref_idc`
/// non-zero, type 5.
fn is_pic_idr(nal: &[u8]) -> bool {
    nal.first()
        .is_some_and(|&h| h & 0x80 == 0 && h & 0x60 != 0 && h & 0x1F == NAL_IDR)
}

/// The NAL units of an Annex-B access unit that come before its first IDR slice, the way the
/// official producer collects codec private data from a key frame (usually AUD, SPS, PPS, SEI).
///
/// # Errors
/// [`MediaError::Missing`] when there is no IDR slice or nothing before it; Annex-B errors.
pub fn parameter_sets(access_unit: &[u8]) -> Result<Vec<&[u8]>, MediaError> {
    super::nal::nalus_before_idr(
        access_unit,
        is_pic_idr,
        "H.264 parameter sets before the first IDR slice",
        "H.264 IDR slice",
    )
}

/// Frame cropping offsets, in units of the crop unit (luma samples × CropUnitX/Y).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Crop {
    /// `frame_crop_left_offset`.
    pub left: u32,
    /// `frame_crop_right_offset`.
    pub right: u32,
    /// `frame_crop_top_offset`.
    pub top: u32,
    /// `frame_crop_bottom_offset`.
    pub bottom: u32,
}

/// The fields of an H.264 sequence parameter set up to the frame cropping, and the picture size
/// derived from them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sps {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// The byte of `constraint_set0..5_flag` and reserved bits (avcC `profile_compatibility`).
    pub constraint_flags: u8,
    /// `level_idc` (30 = level 3.0).
    pub level_idc: u8,
    /// `seq_parameter_set_id` (0–31).
    pub sps_id: u32,
    /// `chroma_format_idc`: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4 (1 when absent).
    pub chroma_format_idc: u8,
    /// `separate_colour_plane_flag`.
    pub separate_colour_plane: bool,
    /// Luma bit depth (8 when absent).
    pub bit_depth_luma: u8,
    /// Chroma bit depth (8 when absent).
    pub bit_depth_chroma: u8,
    /// `log2_max_frame_num_minus4 + 4`.
    pub log2_max_frame_num: u8,
    /// `pic_order_cnt_type` (0–2).
    pub pic_order_cnt_type: u8,
    /// `max_num_ref_frames`.
    pub max_num_ref_frames: u32,
    /// `pic_width_in_mbs_minus1 + 1`.
    pub pic_width_in_mbs: u32,
    /// `pic_height_in_map_units_minus1 + 1`.
    pub pic_height_in_map_units: u32,
    /// `frame_mbs_only_flag` (false: interlaced coding possible, frame height is two fields).
    pub frame_mbs_only: bool,
    /// Frame cropping offsets, if `frame_cropping_flag` is set.
    pub crop: Option<Crop>,
    /// `vui_parameters_present_flag`.
    pub vui_present: bool,
    /// Display width in luma samples, after cropping.
    pub width: u32,
    /// Display height in luma samples, after cropping.
    pub height: u32,
}

/// Profiles whose SPS carries chroma format, bit depth and scaling matrices.
fn has_high_fields(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

/// Largest picture side this parser accepts (the Matroska PixelWidth/Height the producer writes
/// is 2 bytes wide).
pub const MAX_DIMENSION: u32 = 65_535;

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Result<(), MediaError> {
    let mut last: i64 = 8;
    let mut next: i64 = 8;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(MediaError::OutOfRange {
                    what: "H.264 SPS delta_scale",
                    value: delta.unsigned_abs(),
                });
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

impl Sps {
    /// Parse an SPS NAL unit (with its 1-byte header, emulation-prevention bytes included).
    ///
    /// # Errors
    /// [`MediaError::UnexpectedNalType`] when it is not an SPS, [`MediaError::Truncated`] when it
    /// ends early, [`MediaError::OutOfRange`] for values the specification forbids, and
    /// [`MediaError::TooLarge`] when the picture is larger than [`MAX_DIMENSION`].
    pub fn parse(nal: &[u8]) -> Result<Sps, MediaError> {
        let header = *nal.first().ok_or(MediaError::EmptyNal("H.264 SPS"))?;
        if header & 0x1F != NAL_SPS {
            return Err(MediaError::UnexpectedNalType {
                expected: "H.264 SPS",
                found: header & 0x1F,
            });
        }
        let rbsp = remove_emulation_prevention(nal.get(1..).unwrap_or_default());
        let mut r = BitReader::new(&rbsp, "H.264 SPS");
        let profile_idc = r.u8(8)?;
        let constraint_flags = r.u8(8)?;
        let level_idc = r.u8(8)?;
        let sps_id = r.ue_max(31, "H.264 seq_parameter_set_id")?;
        let mut chroma_format_idc = 1u8;
        let mut separate_colour_plane = false;
        let mut bit_depth_luma = 8u8;
        let mut bit_depth_chroma = 8u8;
        if has_high_fields(profile_idc) {
            chroma_format_idc = r.ue_max(3, "H.264 chroma_format_idc")? as u8;
            if chroma_format_idc == 3 {
                separate_colour_plane = r.flag()?;
            }
            bit_depth_luma = 8 + r.ue_max(6, "H.264 bit_depth_luma_minus8")? as u8;
            bit_depth_chroma = 8 + r.ue_max(6, "H.264 bit_depth_chroma_minus8")? as u8;
            let _qpprime_y_zero_transform_bypass = r.flag()?;
            if r.flag()? {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.flag()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        let log2_max_frame_num = 4 + r.ue_max(12, "H.264 log2_max_frame_num_minus4")? as u8;
        let pic_order_cnt_type = r.ue_max(2, "H.264 pic_order_cnt_type")? as u8;
        match pic_order_cnt_type {
            0 => {
                r.ue_max(12, "H.264 log2_max_pic_order_cnt_lsb_minus4")?;
            }
            1 => {
                let _delta_pic_order_always_zero = r.flag()?;
                r.se()?;
                r.se()?;
                let cycle = r.ue_max(255, "H.264 num_ref_frames_in_pic_order_cnt_cycle")?;
                for _ in 0..cycle {
                    r.se()?;
                }
            }
            _ => {}
        }
        let max_num_ref_frames = r.ue_max(32, "H.264 max_num_ref_frames")?;
        let _gaps_in_frame_num_allowed = r.flag()?;
        let pic_width_in_mbs = r.ue_max(MAX_DIMENSION / 16, "H.264 pic_width_in_mbs_minus1")? + 1;
        let pic_height_in_map_units =
            r.ue_max(MAX_DIMENSION / 16, "H.264 pic_height_in_map_units_minus1")? + 1;
        let frame_mbs_only = r.flag()?;
        if !frame_mbs_only {
            let _mb_adaptive_frame_field = r.flag()?;
        }
        let _direct_8x8_inference = r.flag()?;
        let crop = if r.flag()? {
            Some(Crop {
                left: r.ue()?,
                right: r.ue()?,
                top: r.ue()?,
                bottom: r.ue()?,
            })
        } else {
            None
        };
        let vui_present = r.flag()?;

        // Picture size (H.264 7.4.2.1.1, frame cropping semantics).
        let field_factor: u64 = if frame_mbs_only { 1 } else { 2 };
        let chroma_array_type = if separate_colour_plane {
            0
        } else {
            chroma_format_idc
        };
        let (crop_unit_x, crop_unit_y): (u64, u64) = match chroma_array_type {
            0 => (1, field_factor),
            1 => (2, 2 * field_factor),
            2 => (2, field_factor),
            _ => (1, field_factor),
        };
        let full_w = u64::from(pic_width_in_mbs) * 16;
        let full_h = field_factor * u64::from(pic_height_in_map_units) * 16;
        let c = crop.unwrap_or_default();
        let crop_w = crop_unit_x * (u64::from(c.left) + u64::from(c.right));
        let crop_h = crop_unit_y * (u64::from(c.top) + u64::from(c.bottom));
        if crop_w >= full_w {
            return Err(MediaError::OutOfRange {
                what: "H.264 horizontal frame cropping",
                value: crop_w,
            });
        }
        if crop_h >= full_h {
            return Err(MediaError::OutOfRange {
                what: "H.264 vertical frame cropping",
                value: crop_h,
            });
        }
        let width = full_w - crop_w;
        let height = full_h - crop_h;
        let max = u64::from(MAX_DIMENSION);
        if width > max {
            return Err(MediaError::TooLarge {
                what: "H.264 picture width",
                value: width,
                max,
            });
        }
        if height > max {
            return Err(MediaError::TooLarge {
                what: "H.264 picture height",
                value: height,
                max,
            });
        }
        Ok(Sps {
            profile_idc,
            constraint_flags,
            level_idc,
            sps_id,
            chroma_format_idc,
            separate_colour_plane,
            bit_depth_luma,
            bit_depth_chroma,
            log2_max_frame_num,
            pic_order_cnt_type,
            max_num_ref_frames,
            pic_width_in_mbs,
            pic_height_in_map_units,
            frame_mbs_only,
            crop,
            vui_present,
            width: width as u32,
            height: height as u32,
        })
    }
}

/// The size of the avcC record [`build_avcc`] makes from this SPS and PPS.
pub fn avcc_len(sps: &[u8], pps: &[u8]) -> usize {
    11 + sps.len() + pps.len()
}

fn check_ps(nal: &[u8], expected: &'static str, ty: u8, min: usize) -> Result<(), MediaError> {
    let found = nal_unit_type(nal).ok_or(MediaError::EmptyNal(expected))?;
    if found != ty {
        return Err(MediaError::UnexpectedNalType { expected, found });
    }
    if nal.len() < min {
        return Err(MediaError::TruncatedRecord {
            what: expected,
            offset: nal.len(),
            needed: min - nal.len(),
            available: 0,
        });
    }
    if nal.len() > usize::from(u16::MAX) {
        return Err(MediaError::TooLarge {
            what: expected,
            value: nal.len() as u64,
            max: u64::from(u16::MAX),
        });
    }
    Ok(())
}

/// Write the avcC record exactly as the official producer builds it:
/// `01 profile compat level FF E1 <u16 len> SPS 01 <u16 len> PPS` (4-byte NAL lengths, one SPS,
/// one PPS, no High-profile extension bytes). Returns the bytes written.
///
/// # Errors
/// [`MediaError::UnexpectedNalType`] / [`MediaError::EmptyNal`] when `sps` is not an SPS (at
/// least 4 bytes) or `pps` not a PPS, [`MediaError::TooLarge`] for one over 65535 bytes,
/// [`MediaError::BufferTooSmall`] when `out` cannot take the record.
pub fn build_avcc_into(sps: &[u8], pps: &[u8], out: &mut impl BufMut) -> Result<usize, MediaError> {
    check_ps(sps, "H.264 SPS", NAL_SPS, 4)?;
    check_ps(pps, "H.264 PPS", NAL_PPS, 1)?;
    let needed = avcc_len(sps, pps);
    if out.remaining_mut() < needed {
        return Err(MediaError::BufferTooSmall {
            needed,
            available: out.remaining_mut(),
        });
    }
    out.put_u8(1);
    out.put_slice(sps.get(1..4).unwrap_or_default());
    out.put_u8(0xFF);
    out.put_u8(0xE1);
    out.put_u16(sps.len() as u16);
    out.put_slice(sps);
    out.put_u8(1);
    out.put_u16(pps.len() as u16);
    out.put_slice(pps);
    Ok(needed)
}

/// Build the avcC record as a new buffer; see [`build_avcc_into`].
///
/// # Errors
/// As [`build_avcc_into`].
pub fn build_avcc(sps: &[u8], pps: &[u8]) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::with_capacity(avcc_len(sps, pps));
    build_avcc_into(sps, pps, &mut out)?;
    Ok(out)
}

/// Build the avcC record from Annex-B codec private data (the producer's `ANNEXB_CPD_NALS`
/// adaptation): the first SPS and the first PPS found are used, other NAL units are ignored.
///
/// # Errors
/// [`MediaError::Missing`] without an SPS or PPS; otherwise as [`build_avcc_into`].
pub fn avcc_from_annexb(cpd: &[u8]) -> Result<Vec<u8>, MediaError> {
    let mut sps = None;
    let mut pps = None;
    for nal in annexb_nalus(cpd)? {
        match nal_unit_type(nal) {
            Some(NAL_SPS) if sps.is_none() => sps = Some(nal),
            Some(NAL_PPS) if pps.is_none() => pps = Some(nal),
            _ => {}
        }
    }
    let sps = sps.ok_or(MediaError::Missing("H.264 SPS in the codec private data"))?;
    let pps = pps.ok_or(MediaError::Missing("H.264 PPS in the codec private data"))?;
    build_avcc(sps, pps)
}

/// A parsed avcC record; the parameter sets borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AvcConfig<'a> {
    /// `AVCProfileIndication`.
    pub profile_idc: u8,
    /// `profile_compatibility`.
    pub profile_compatibility: u8,
    /// `AVCLevelIndication`.
    pub level_idc: u8,
    /// NAL unit length field size of the samples (`lengthSizeMinusOne + 1`): 1, 2 or 4.
    pub length_size: u8,
    /// The sequence parameter sets.
    pub sps: Vec<&'a [u8]>,
    /// The picture parameter sets.
    pub pps: Vec<&'a [u8]>,
    /// Bytes after the PPS list (High-profile chroma/bit-depth/SPS-ext fields), not interpreted.
    pub extension: &'a [u8],
}

impl<'a> AvcConfig<'a> {
    /// Parse an avcC record (Matroska `V_MPEG4/ISO/AVC` CodecPrivate, MP4 `avcC` box payload).
    ///
    /// # Errors
    /// [`MediaError::Unsupported`] for a configurationVersion other than 1,
    /// [`MediaError::OutOfRange`] for a length size of 3, [`MediaError::TruncatedRecord`] when a
    /// count or length runs past the end.
    pub fn parse(data: &'a [u8]) -> Result<AvcConfig<'a>, MediaError> {
        let mut r = ByteReader::new(data, "avcC record");
        let version = r.u8()?;
        if version != 1 {
            return Err(MediaError::Unsupported {
                what: "avcC configurationVersion",
                value: u64::from(version),
            });
        }
        let profile_idc = r.u8()?;
        let profile_compatibility = r.u8()?;
        let level_idc = r.u8()?;
        let length_size = (r.u8()? & 0x03) + 1;
        if length_size == 3 {
            return Err(MediaError::OutOfRange {
                what: "avcC lengthSizeMinusOne",
                value: 2,
            });
        }
        let num_sps = r.u8()? & 0x1F;
        let mut sps = Vec::new();
        for _ in 0..num_sps {
            let len = r.u16()?;
            sps.push(r.take(usize::from(len))?);
        }
        let num_pps = r.u8()?;
        let mut pps = Vec::new();
        for _ in 0..num_pps {
            let len = r.u16()?;
            pps.push(r.take(usize::from(len))?);
        }
        Ok(AvcConfig {
            profile_idc,
            profile_compatibility,
            level_idc,
            length_size,
            sps,
            pps,
            extension: r.rest(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::nal::add_emulation_prevention;

    /// A bit writer for building test SPSs.
    struct W {
        bits: Vec<bool>,
    }
    impl W {
        fn new() -> Self {
            W { bits: Vec::new() }
        }
        fn u(&mut self, n: u32, v: u64) -> &mut Self {
            for i in (0..n).rev() {
                self.bits.push((v >> i) & 1 == 1);
            }
            self
        }
        fn ue(&mut self, v: u64) -> &mut Self {
            let x = v + 1;
            let len = 64 - x.leading_zeros();
            self.u(len - 1, 0).u(len, x)
        }
        fn se(&mut self, v: i64) -> &mut Self {
            let k = if v > 0 {
                2 * v as u64 - 1
            } else {
                (-2 * v) as u64
            };
            self.ue(k)
        }
        fn finish(&mut self) -> Vec<u8> {
            self.bits.push(true);
            while !self.bits.len().is_multiple_of(8) {
                self.bits.push(false);
            }
            self.bits
                .chunks(8)
                .map(|c| c.iter().fold(0u8, |a, &b| (a << 1) | b as u8))
                .collect()
        }
    }

    fn nal(header: u8, rbsp: &[u8]) -> Vec<u8> {
        let mut v = vec![header];
        v.extend(add_emulation_prevention(rbsp));
        v
    }

    #[test]
    fn baseline_sps_352x288() {
        // Baseline, level 3.0, 22×18 MBs, no cropping.
        let rbsp = W::new()
            .u(8, 66)
            .u(8, 0xC0)
            .u(8, 30)
            .ue(0) // profile, flags, level, sps id
            .ue(0)
            .ue(0)
            .ue(0) // log2_max_frame_num-4, poc type 0, log2_max_poc_lsb-4
            .ue(1)
            .u(1, 0) // max_num_ref_frames, gaps
            .ue(21)
            .ue(17) // 22 × 18 MBs
            .u(1, 1)
            .u(1, 1)
            .u(1, 0)
            .u(1, 0) // frame_mbs_only, direct8x8, no crop, no vui
            .finish();
        let sps = Sps::parse(&nal(0x67, &rbsp)).unwrap();
        assert_eq!((sps.width, sps.height), (352, 288));
        assert_eq!(
            (sps.profile_idc, sps.constraint_flags, sps.level_idc),
            (66, 0xC0, 30)
        );
        assert_eq!((sps.chroma_format_idc, sps.bit_depth_luma), (1, 8));
    }

    #[test]
    fn high_sps_1080p_cropping_and_scaling_lists() {
        // High 4:2:0 with a scaling matrix, 120×68 MBs cropped by 8 lines: 1920×1080.
        let mut w = W::new();
        w.u(8, 100).u(8, 0).u(8, 40).ue(0);
        w.ue(1).ue(0).ue(0).u(1, 0); // chroma 1, bit depths 8, bypass 0
        w.u(1, 1); // seq_scaling_matrix_present
        w.u(1, 1); // list 0 present: 16 entries, delta_scale 0 then −8 → next 0 (stop)
        w.se(0).se(-8);
        for _ in 1..8 {
            w.u(1, 0);
        }
        w.ue(0).ue(1).u(1, 0).se(-1).se(2).ue(2).se(1).se(-1); // poc type 1 with 2 cycle entries
        w.ue(4).u(1, 0).ue(119).ue(67);
        w.u(1, 1).u(1, 1).u(1, 1).ue(0).ue(0).ue(0).ue(4).u(1, 1);
        let sps = Sps::parse(&nal(0x67, &w.finish())).unwrap();
        assert_eq!((sps.width, sps.height), (1920, 1080));
        assert_eq!(
            sps.crop,
            Some(Crop {
                left: 0,
                right: 0,
                top: 0,
                bottom: 4
            })
        );
        assert!(sps.vui_present);
        assert_eq!(sps.pic_order_cnt_type, 1);
    }

    #[test]
    fn interlaced_and_444_crop_units() {
        // Main profile, field coding: height is 2 × map units × 16; crop unit Y = 4 in 4:2:0.
        let rbsp = W::new()
            .u(8, 77)
            .u(8, 0)
            .u(8, 30)
            .ue(0)
            .ue(0)
            .ue(2)
            .ue(1)
            .u(1, 0)
            .ue(44)
            .ue(17)
            .u(1, 0)
            .u(1, 0)
            .u(1, 1)
            .u(1, 1)
            .ue(1)
            .ue(1)
            .ue(0)
            .ue(2)
            .u(1, 0)
            .finish();
        let sps = Sps::parse(&nal(0x67, &rbsp)).unwrap();
        assert_eq!((sps.width, sps.height), (720 - 4, 576 - 8));
        assert!(!sps.frame_mbs_only);
        // High 4:4:4 Predictive (244), chroma 3, 10-bit: crop unit X = 1.
        let rbsp = W::new()
            .u(8, 244)
            .u(8, 0)
            .u(8, 31)
            .ue(0)
            .ue(3)
            .u(1, 0)
            .ue(2)
            .ue(2)
            .u(1, 0)
            .u(1, 0)
            .ue(0)
            .ue(2)
            .ue(1)
            .u(1, 0)
            .ue(39)
            .ue(22)
            .u(1, 1)
            .u(1, 1)
            .u(1, 1)
            .ue(1)
            .ue(1)
            .ue(0)
            .ue(0)
            .u(1, 0)
            .finish();
        let sps = Sps::parse(&nal(0x67, &rbsp)).unwrap();
        assert_eq!((sps.width, sps.height), (638, 368));
        assert_eq!(
            (
                sps.chroma_format_idc,
                sps.bit_depth_luma,
                sps.bit_depth_chroma
            ),
            (3, 10, 10)
        );
    }

    #[test]
    fn real_x264_sps_642x362() {
        // From ffmpeg/libx264 (High, level 3.0): 41×23 macroblocks, cropped right 7 and bottom 3
        // (× 2 luma samples); ffprobe reports 642×362.
        let nal = [
            0x67, 0x64, 0x00, 0x1E, 0xAC, 0xD9, 0x40, 0xA4, 0x2F, 0xE2, 0x24, 0xC0, 0x44, 0x00,
            0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xC8, 0x3C, 0x58, 0xB6, 0x58,
        ];
        let sps = Sps::parse(&nal).unwrap();
        assert_eq!(
            (sps.profile_idc, sps.constraint_flags, sps.level_idc),
            (100, 0, 30)
        );
        assert_eq!(
            (sps.pic_width_in_mbs, sps.pic_height_in_map_units),
            (41, 23)
        );
        assert_eq!(
            sps.crop,
            Some(Crop {
                left: 0,
                right: 7,
                top: 0,
                bottom: 3
            })
        );
        assert_eq!((sps.width, sps.height), (642, 362));
        assert!(sps.vui_present && sps.frame_mbs_only);
    }

    #[test]
    fn sps_errors() {
        assert_eq!(
            Sps::parse(&[]).unwrap_err(),
            MediaError::EmptyNal("H.264 SPS")
        );
        assert!(matches!(
            Sps::parse(&[0x68, 1]),
            Err(MediaError::UnexpectedNalType { found: 8, .. })
        ));
        assert!(matches!(
            Sps::parse(&[0x67, 66, 0, 30]),
            Err(MediaError::Truncated { .. })
        ));
        // Crop larger than the picture.
        let rbsp = W::new()
            .u(8, 66)
            .u(8, 0)
            .u(8, 30)
            .ue(0)
            .ue(0)
            .ue(2)
            .ue(1)
            .u(1, 0)
            .ue(0)
            .ue(0)
            .u(1, 1)
            .u(1, 1)
            .u(1, 1)
            .ue(8)
            .ue(0)
            .ue(0)
            .ue(0)
            .u(1, 0)
            .finish();
        assert!(matches!(
            Sps::parse(&nal(0x67, &rbsp)),
            Err(MediaError::OutOfRange { .. })
        ));
    }

    #[test]
    fn avcc_layout_and_parse() {
        let sps = [0x67, 0x64, 0x00, 0x1E, 0xAC, 0xD9];
        let pps = [0x68, 0xEB, 0xE3, 0xCB];
        let avcc = build_avcc(&sps, &pps).unwrap();
        assert_eq!(
            avcc,
            vec![
                1, 0x64, 0, 0x1E, 0xFF, 0xE1, 0, 6, 0x67, 0x64, 0, 0x1E, 0xAC, 0xD9, 1, 0, 4, 0x68,
                0xEB, 0xE3, 0xCB
            ]
        );
        let cfg = AvcConfig::parse(&avcc).unwrap();
        assert_eq!(
            (
                cfg.profile_idc,
                cfg.profile_compatibility,
                cfg.level_idc,
                cfg.length_size
            ),
            (0x64, 0, 0x1E, 4)
        );
        assert_eq!(cfg.sps, vec![&sps[..]]);
        assert_eq!(cfg.pps, vec![&pps[..]]);
        assert!(cfg.extension.is_empty());
        // Annex-B CPD with an AUD and SEI around the parameter sets.
        let mut cpd = vec![0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1];
        cpd.extend_from_slice(&sps);
        cpd.extend_from_slice(&[0, 0, 1, 0x06, 5, 0x80, 0, 0, 1]);
        cpd.extend_from_slice(&pps);
        assert_eq!(avcc_from_annexb(&cpd).unwrap(), avcc);
        assert!(matches!(
            build_avcc(&pps, &sps),
            Err(MediaError::UnexpectedNalType { .. })
        ));
        assert!(build_avcc(&sps[..3], &pps).is_err());
        let mut small = [0u8; 20];
        let mut w: &mut [u8] = &mut small;
        assert!(matches!(
            build_avcc_into(&sps, &pps, &mut w),
            Err(MediaError::BufferTooSmall { needed: 21, .. })
        ));
    }

    #[test]
    fn avcc_parse_errors() {
        assert!(matches!(
            AvcConfig::parse(&[]),
            Err(MediaError::TruncatedRecord { offset: 0, .. })
        ));
        assert!(matches!(
            AvcConfig::parse(&[2, 0, 0, 0, 0xFF]),
            Err(MediaError::Unsupported { .. })
        ));
        assert!(matches!(
            AvcConfig::parse(&[1, 0x64, 0, 0x1E, 0xFF, 0xE1, 0, 9, 0x67]),
            Err(MediaError::TruncatedRecord {
                offset: 8,
                needed: 9,
                available: 1,
                ..
            })
        ));
        assert!(matches!(
            AvcConfig::parse(&[1, 0x64, 0, 0x1E, 0xFE, 0xE0, 0]),
            Err(MediaError::OutOfRange { .. })
        ));
    }

    #[test]
    fn parameter_sets_before_idr() {
        let au = [
            0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 1, 0x67, 0x42, 0, 0x1E, 0, 0, 1, 0x68, 0xCE, 0, 0, 1,
            0x65, 0x88, 0, 0, 1, 0x65, 0x99,
        ];
        let ps = parameter_sets(&au).unwrap();
        assert_eq!(
            ps,
            vec![
                &[0x09, 0xF0][..],
                &[0x67, 0x42, 0, 0x1E][..],
                &[0x68, 0xCE][..]
            ]
        );
        assert_eq!(
            parameter_sets(&[0, 0, 1, 0x41, 0x9A]).unwrap_err(),
            MediaError::Missing("H.264 IDR slice")
        );
        assert!(matches!(
            parameter_sets(&[0, 0, 1, 0x65, 0x9A]),
            Err(MediaError::Missing(_))
        ));
        assert!(is_idr(&[0x65]) && is_sps(&[0x67]) && is_pps(&[0x68]) && !is_idr(&[]));
    }
}
