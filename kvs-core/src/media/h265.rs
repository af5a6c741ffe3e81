//! H.265 / HEVC: NAL unit types, SPS parsing and the hvcC record (HEVCDecoderConfigurationRecord).

use bytes::BufMut;

use super::MediaError;
use super::bits::{BitReader, ByteReader};
use super::nal::{annexb_nalus, remove_emulation_prevention};

/// BLA_W_LP, the first IRAP type.
pub const NAL_BLA_W_LP: u8 = 16;
/// IDR_W_RADL: IDR picture that may have RADL leading pictures.
pub const NAL_IDR_W_RADL: u8 = 19;
/// IDR_N_LP: IDR picture without leading pictures.
pub const NAL_IDR_N_LP: u8 = 20;
/// CRA_NUT: clean random access picture.
pub const NAL_CRA: u8 = 21;
/// Video parameter set.
pub const NAL_VPS: u8 = 32;
/// Sequence parameter set.
pub const NAL_SPS: u8 = 33;
/// Picture parameter set.
pub const NAL_PPS: u8 = 34;
/// Access unit delimiter.
pub const NAL_AUD: u8 = 35;
/// Prefix SEI.
pub const NAL_SEI_PREFIX: u8 = 39;
/// Suffix SEI.
pub const NAL_SEI_SUFFIX: u8 = 40;

/// The `nal_unit_type` (bits 1–6 of the first header byte), or `None` for an empty NAL unit.
pub fn nal_unit_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|b| (b >> 1) & 0x3F)
}

/// Whether the NAL unit is an IDR slice (types 19, 20).
pub fn is_idr(nal: &[u8]) -> bool {
    matches!(nal_unit_type(nal), Some(NAL_IDR_W_RADL | NAL_IDR_N_LP))
}

/// Whether the NAL unit is an intra random access point slice: BLA, IDR or CRA (types 16–23).
pub fn is_irap(nal: &[u8]) -> bool {
    matches!(nal_unit_type(nal), Some(16..=23))
}

/// Whether the NAL unit is a video parameter set (type 32).
pub fn is_vps(nal: &[u8]) -> bool {
    nal_unit_type(nal) == Some(NAL_VPS)
}

/// Whether the NAL unit is a sequence parameter set (type 33).
pub fn is_sps(nal: &[u8]) -> bool {
    nal_unit_type(nal) == Some(NAL_SPS)
}

/// Whether the NAL unit is a picture parameter set (type 34).
pub fn is_pps(nal: &[u8]) -> bool {
    nal_unit_type(nal) == Some(NAL_PPS)
}

/// Whether the NAL unit is a VPS, SPS or PPS.
pub fn is_parameter_set(nal: &[u8]) -> bool {
    matches!(nal_unit_type(nal), Some(NAL_VPS..=NAL_PPS))
}

/// The NAL units of an Annex-B access unit before its first IDR slice (type 19 or 20), the way
/// the official producer collects codec private data from a key frame.
///
/// # Errors
/// [`MediaError::Missing`] when there is no IDR slice or nothing before it; Annex-B errors.
pub fn parameter_sets(access_unit: &[u8]) -> Result<Vec<&[u8]>, MediaError> {
    super::nal::nalus_before_idr(
        access_unit,
        is_idr,
        "H.265 parameter sets before the first IDR slice",
        "H.265 IDR slice",
    )
}

/// The general part of `profile_tier_level()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileTierLevel {
    /// `general_profile_space` (0–3).
    pub profile_space: u8,
    /// `general_tier_flag` (false Main tier, true High tier).
    pub tier_flag: bool,
    /// `general_profile_idc` (1 Main, 2 Main 10, 3 Main Still Picture, 4 RExt, ...).
    pub profile_idc: u8,
    /// `general_profile_compatibility_flag[0..32]`, as 4 bytes.
    pub compatibility_flags: [u8; 4],
    /// The 48 bits from `general_progressive_source_flag` to `general_inbld_flag`/reserved, as 6 bytes.
    pub constraint_flags: [u8; 6],
    /// `general_level_idc` (30 × level: 93 = level 3.1).
    pub level_idc: u8,
}

/// Conformance window offsets, in chroma sample units (SubWidthC / SubHeightC luma samples).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConformanceWindow {
    /// `conf_win_left_offset`.
    pub left: u32,
    /// `conf_win_right_offset`.
    pub right: u32,
    /// `conf_win_top_offset`.
    pub top: u32,
    /// `conf_win_bottom_offset`.
    pub bottom: u32,
}

/// The fields of an H.265 sequence parameter set up to the bit depths, and the picture size.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sps {
    /// `sps_video_parameter_set_id`.
    pub vps_id: u8,
    /// `sps_max_sub_layers_minus1 + 1`.
    pub max_sub_layers: u8,
    /// `sps_temporal_id_nesting_flag`.
    pub temporal_id_nesting: bool,
    /// The general profile, tier and level.
    pub profile_tier_level: ProfileTierLevel,
    /// `sps_seq_parameter_set_id` (0–15).
    pub sps_id: u32,
    /// `chroma_format_idc`: 0 monochrome, 1 4:2:0, 2 4:2:2, 3 4:4:4.
    pub chroma_format_idc: u8,
    /// `separate_colour_plane_flag`.
    pub separate_colour_plane: bool,
    /// `pic_width_in_luma_samples` (before the conformance window).
    pub pic_width: u32,
    /// `pic_height_in_luma_samples` (before the conformance window).
    pub pic_height: u32,
    /// The conformance window, if `conformance_window_flag` is set.
    pub conformance_window: Option<ConformanceWindow>,
    /// Luma bit depth.
    pub bit_depth_luma: u8,
    /// Chroma bit depth.
    pub bit_depth_chroma: u8,
    /// Display width in luma samples, after the conformance window.
    pub width: u32,
    /// Display height in luma samples, after the conformance window.
    pub height: u32,
}

/// Largest picture side this parser accepts.
pub const MAX_DIMENSION: u32 = 65_535;

fn read_profile_tier_level(
    r: &mut BitReader<'_>,
    max_sub_layers_minus1: u8,
) -> Result<ProfileTierLevel, MediaError> {
    let profile_space = r.u8(2)?;
    let tier_flag = r.flag()?;
    let profile_idc = r.u8(5)?;
    let mut compatibility_flags = [0u8; 4];
    for b in &mut compatibility_flags {
        *b = r.u8(8)?;
    }
    let mut constraint_flags = [0u8; 6];
    for b in &mut constraint_flags {
        *b = r.u8(8)?;
    }
    let level_idc = r.u8(8)?;
    let mut present = [(false, false); 8];
    for p in present.iter_mut().take(usize::from(max_sub_layers_minus1)) {
        *p = (r.flag()?, r.flag()?);
    }
    if max_sub_layers_minus1 > 0 {
        r.skip(2 * (8 - usize::from(max_sub_layers_minus1)))?;
    }
    for &(profile_present, level_present) in present.iter().take(usize::from(max_sub_layers_minus1))
    {
        if profile_present {
            r.skip(88)?;
        }
        if level_present {
            r.skip(8)?;
        }
    }
    Ok(ProfileTierLevel {
        profile_space,
        tier_flag,
        profile_idc,
        compatibility_flags,
        constraint_flags,
        level_idc,
    })
}

impl Sps {
    /// Parse an SPS NAL unit (with its 2-byte header, emulation-prevention bytes included).
    ///
    /// # Errors
    /// [`MediaError::UnexpectedNalType`] when it is not an SPS, [`MediaError::Truncated`] when it
    /// ends early, [`MediaError::OutOfRange`] for values the specification forbids, including a
    /// picture larger than [`MAX_DIMENSION`] or a window larger than the picture.
    pub fn parse(nal: &[u8]) -> Result<Sps, MediaError> {
        let found = nal_unit_type(nal).ok_or(MediaError::EmptyNal("H.265 SPS"))?;
        if found != NAL_SPS {
            return Err(MediaError::UnexpectedNalType {
                expected: "H.265 SPS",
                found,
            });
        }
        let rbsp = remove_emulation_prevention(nal.get(2..).unwrap_or_default());
        let mut r = BitReader::new(&rbsp, "H.265 SPS");
        if nal.len() < 2 {
            return Err(MediaError::Truncated {
                what: "H.265 NAL unit header",
                bit_offset: 8,
            });
        }
        let vps_id = r.u8(4)?;
        let max_sub_layers_minus1 = r.u8(3)?;
        if max_sub_layers_minus1 > 6 {
            return Err(MediaError::OutOfRange {
                what: "H.265 sps_max_sub_layers_minus1",
                value: 7,
            });
        }
        let temporal_id_nesting = r.flag()?;
        let profile_tier_level = read_profile_tier_level(&mut r, max_sub_layers_minus1)?;
        let sps_id = r.ue_max(15, "H.265 sps_seq_parameter_set_id")?;
        let chroma_format_idc = r.ue_max(3, "H.265 chroma_format_idc")? as u8;
        let separate_colour_plane = chroma_format_idc == 3 && r.flag()?;
        let pic_width = r.ue_max(MAX_DIMENSION, "H.265 pic_width_in_luma_samples")?;
        let pic_height = r.ue_max(MAX_DIMENSION, "H.265 pic_height_in_luma_samples")?;
        if pic_width == 0 || pic_height == 0 {
            return Err(MediaError::OutOfRange {
                what: "H.265 picture size (zero)",
                value: 0,
            });
        }
        let conformance_window = if r.flag()? {
            Some(ConformanceWindow {
                left: r.ue()?,
                right: r.ue()?,
                top: r.ue()?,
                bottom: r.ue()?,
            })
        } else {
            None
        };
        let bit_depth_luma = 8 + r.ue_max(8, "H.265 bit_depth_luma_minus8")? as u8;
        let bit_depth_chroma = 8 + r.ue_max(8, "H.265 bit_depth_chroma_minus8")? as u8;

        let (sub_w, sub_h): (u64, u64) = match (chroma_format_idc, separate_colour_plane) {
            (1, _) => (2, 2),
            (2, _) => (2, 1),
            _ => (1, 1),
        };
        let w = conformance_window.unwrap_or_default();
        let crop_w = sub_w * (u64::from(w.left) + u64::from(w.right));
        let crop_h = sub_h * (u64::from(w.top) + u64::from(w.bottom));
        if crop_w >= u64::from(pic_width) {
            return Err(MediaError::OutOfRange {
                what: "H.265 horizontal conformance window",
                value: crop_w,
            });
        }
        if crop_h >= u64::from(pic_height) {
            return Err(MediaError::OutOfRange {
                what: "H.265 vertical conformance window",
                value: crop_h,
            });
        }
        Ok(Sps {
            vps_id,
            max_sub_layers: max_sub_layers_minus1 + 1,
            temporal_id_nesting,
            profile_tier_level,
            sps_id,
            chroma_format_idc,
            separate_colour_plane,
            pic_width,
            pic_height,
            conformance_window,
            bit_depth_luma,
            bit_depth_chroma,
            width: (u64::from(pic_width) - crop_w) as u32,
            height: (u64::from(pic_height) - crop_h) as u32,
        })
    }
}

/// Bytes of the fixed hvcC header before the arrays.
pub const HVCC_HEADER_LEN: usize = 23;

fn check_ps(nal: &[u8], expected: &'static str, ty: u8) -> Result<(), MediaError> {
    let found = nal_unit_type(nal).ok_or(MediaError::EmptyNal(expected))?;
    if found != ty {
        return Err(MediaError::UnexpectedNalType { expected, found });
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

/// The size of the hvcC record [`build_hvcc`] makes from these parameter sets.
pub fn hvcc_len(vps: &[u8], sps: &[u8], pps: Option<&[u8]>) -> usize {
    HVCC_HEADER_LEN + 5 + vps.len() + 5 + sps.len() + pps.map_or(0, |p| 5 + p.len())
}

/// Write the hvcC record exactly as the official producer builds it. Returns the bytes written.
///
/// The 23-byte header takes profile space, tier, profile, the 4 compatibility and 6 constraint
/// bytes and the level from the SPS, then `F0 00` (min_spatial_segmentation 0), `FC`
/// (parallelismType 0), `FC|chroma_format_idc`, `F8|bit_depth_luma−8`, `F8|bit_depth_chroma−8`,
/// avgFrameRate `00 00`, `0F` (one temporal layer, nested, 4-byte NAL lengths) and the number of
/// arrays. Then one array per parameter set in the order VPS, SPS, PPS, each `type 00 01 <u16
/// len> NALU` with array_completeness clear. The PPS array is left out when `pps` is `None`.
///
/// # Errors
/// [`MediaError::UnexpectedNalType`] / [`MediaError::EmptyNal`] for a NAL unit of the wrong type,
/// [`MediaError::TooLarge`] for one over 65535 bytes, SPS parse errors, and
/// [`MediaError::BufferTooSmall`] when `out` cannot take the record.
pub fn build_hvcc_into(
    vps: &[u8],
    sps: &[u8],
    pps: Option<&[u8]>,
    out: &mut impl BufMut,
) -> Result<usize, MediaError> {
    check_ps(vps, "H.265 VPS", NAL_VPS)?;
    check_ps(sps, "H.265 SPS", NAL_SPS)?;
    if let Some(pps) = pps {
        check_ps(pps, "H.265 PPS", NAL_PPS)?;
    }
    let parsed = Sps::parse(sps)?;
    let needed = hvcc_len(vps, sps, pps);
    if out.remaining_mut() < needed {
        return Err(MediaError::BufferTooSmall {
            needed,
            available: out.remaining_mut(),
        });
    }
    let ptl = parsed.profile_tier_level;
    out.put_u8(1);
    out.put_u8(
        (ptl.profile_space << 6) | (u8::from(ptl.tier_flag) << 5) | (ptl.profile_idc & 0x1F),
    );
    out.put_slice(&ptl.compatibility_flags);
    out.put_slice(&ptl.constraint_flags);
    out.put_u8(ptl.level_idc);
    out.put_slice(&[0xF0, 0x00, 0xFC]);
    out.put_u8(0xFC | (parsed.chroma_format_idc & 0x03));
    out.put_u8(0xF8 | ((parsed.bit_depth_luma - 8) & 0x07));
    out.put_u8(0xF8 | ((parsed.bit_depth_chroma - 8) & 0x07));
    out.put_slice(&[0x00, 0x00, 0x0F]);
    let arrays: [Option<(u8, &[u8])>; 3] = [
        Some((NAL_VPS, vps)),
        Some((NAL_SPS, sps)),
        pps.map(|p| (NAL_PPS, p)),
    ];
    out.put_u8(arrays.iter().flatten().count() as u8);
    for (ty, nal) in arrays.into_iter().flatten() {
        out.put_u8(ty);
        out.put_u16(1);
        out.put_u16(nal.len() as u16);
        out.put_slice(nal);
    }
    Ok(needed)
}

/// Build the hvcC record as a new buffer; see [`build_hvcc_into`].
///
/// # Errors
/// As [`build_hvcc_into`].
pub fn build_hvcc(vps: &[u8], sps: &[u8], pps: Option<&[u8]>) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::with_capacity(hvcc_len(vps, sps, pps));
    build_hvcc_into(vps, sps, pps, &mut out)?;
    Ok(out)
}

/// Build the hvcC record from Annex-B codec private data (the producer's `ANNEXB_CPD_NALS`
/// adaptation), using the first VPS, SPS and PPS found.
///
/// PIC takes the first three NAL units positionally and assumes they are VPS, SPS, PPS; this
/// function selects them by type instead, so SEI or AUD units in the CPD do no harm. For a CPD
/// that lists VPS, SPS, PPS in that order the bytes are the same.
///
/// # Errors
/// [`MediaError::Missing`] without a VPS or SPS; otherwise as [`build_hvcc_into`].
pub fn hvcc_from_annexb(cpd: &[u8]) -> Result<Vec<u8>, MediaError> {
    let (mut vps, mut sps, mut pps) = (None, None, None);
    for nal in annexb_nalus(cpd)? {
        match nal_unit_type(nal) {
            Some(NAL_VPS) if vps.is_none() => vps = Some(nal),
            Some(NAL_SPS) if sps.is_none() => sps = Some(nal),
            Some(NAL_PPS) if pps.is_none() => pps = Some(nal),
            _ => {}
        }
    }
    let vps = vps.ok_or(MediaError::Missing("H.265 VPS in the codec private data"))?;
    let sps = sps.ok_or(MediaError::Missing("H.265 SPS in the codec private data"))?;
    build_hvcc(vps, sps, pps)
}

/// One NAL unit array of an hvcC record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HvccArray<'a> {
    /// `array_completeness`: all NAL units of this type are in the array (none in the samples).
    pub complete: bool,
    /// `NAL_unit_type` of the units in the array.
    pub nal_type: u8,
    /// The NAL units.
    pub nalus: Vec<&'a [u8]>,
}

/// A parsed hvcC record; the NAL units borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HevcConfig<'a> {
    /// `configurationVersion` (1; files from before the standard was final may carry 0).
    pub version: u8,
    /// General profile space, tier, profile, compatibility, constraint flags and level.
    pub profile_tier_level: ProfileTierLevel,
    /// `min_spatial_segmentation_idc`.
    pub min_spatial_segmentation: u16,
    /// `parallelismType`.
    pub parallelism_type: u8,
    /// `chromaFormat` (`chroma_format_idc`).
    pub chroma_format_idc: u8,
    /// Luma bit depth.
    pub bit_depth_luma: u8,
    /// Chroma bit depth.
    pub bit_depth_chroma: u8,
    /// `avgFrameRate`, in frames per 256 seconds (0 = unspecified).
    pub avg_frame_rate: u16,
    /// `constantFrameRate` (0–2).
    pub constant_frame_rate: u8,
    /// `numTemporalLayers`.
    pub num_temporal_layers: u8,
    /// `temporalIdNested`.
    pub temporal_id_nested: bool,
    /// NAL unit length field size of the samples (`lengthSizeMinusOne + 1`): 1, 2 or 4.
    pub length_size: u8,
    /// The NAL unit arrays, in record order.
    pub arrays: Vec<HvccArray<'a>>,
}

impl<'a> HevcConfig<'a> {
    /// Parse an hvcC record (Matroska `V_MPEGH/ISO/HEVC` CodecPrivate, MP4 `hvcC` box payload).
    ///
    /// # Errors
    /// [`MediaError::Unsupported`] for a configurationVersion above 1,
    /// [`MediaError::OutOfRange`] for a length size of 3, [`MediaError::TruncatedRecord`] when a
    /// count or length runs past the end.
    pub fn parse(data: &'a [u8]) -> Result<HevcConfig<'a>, MediaError> {
        let mut r = ByteReader::new(data, "hvcC record");
        let version = r.u8()?;
        if version > 1 {
            return Err(MediaError::Unsupported {
                what: "hvcC configurationVersion",
                value: u64::from(version),
            });
        }
        let b = r.u8()?;
        let compatibility_flags = r.array::<4>()?;
        let constraint_flags = r.array::<6>()?;
        let level_idc = r.u8()?;
        let profile_tier_level = ProfileTierLevel {
            profile_space: b >> 6,
            tier_flag: b & 0x20 != 0,
            profile_idc: b & 0x1F,
            compatibility_flags,
            constraint_flags,
            level_idc,
        };
        let min_spatial_segmentation = r.u16()? & 0x0FFF;
        let parallelism_type = r.u8()? & 0x03;
        let chroma_format_idc = r.u8()? & 0x03;
        let bit_depth_luma = 8 + (r.u8()? & 0x07);
        let bit_depth_chroma = 8 + (r.u8()? & 0x07);
        let avg_frame_rate = r.u16()?;
        let b = r.u8()?;
        let length_size = (b & 0x03) + 1;
        if length_size == 3 {
            return Err(MediaError::OutOfRange {
                what: "hvcC lengthSizeMinusOne",
                value: 2,
            });
        }
        let num_arrays = r.u8()?;
        let mut arrays = Vec::new();
        for _ in 0..num_arrays {
            let head = r.u8()?;
            let count = r.u16()?;
            let mut nalus = Vec::new();
            for _ in 0..count {
                let len = r.u16()?;
                nalus.push(r.take(usize::from(len))?);
            }
            arrays.push(HvccArray {
                complete: head & 0x80 != 0,
                nal_type: head & 0x3F,
                nalus,
            });
        }
        Ok(HevcConfig {
            version,
            profile_tier_level,
            min_spatial_segmentation,
            parallelism_type,
            chroma_format_idc,
            bit_depth_luma,
            bit_depth_chroma,
            avg_frame_rate,
            constant_frame_rate: b >> 6,
            num_temporal_layers: (b >> 3) & 0x07,
            temporal_id_nested: b & 0x04 != 0,
            length_size,
            arrays,
        })
    }

    /// Every NAL unit of the given type, across all arrays, in record order.
    pub fn nalus_of_type(&self, nal_type: u8) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.arrays
            .iter()
            .filter(move |a| a.nal_type == nal_type)
            .flat_map(|a| a.nalus.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // VPS, SPS and PPS of a real libx265 Main-profile stream of 642×362 (ffmpeg testsrc):
    // picture 648×368, conformance window right 3 and bottom 3 (× 2 luma samples), level 63.
    const VPS: &[u8] = &[
        0x40, 0x01, 0x0C, 0x01, 0xFF, 0xFF, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x03, 0x00, 0x3F, 0x95, 0x98, 0x09,
    ];
    const SPS: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3F, 0xA0, 0x05, 0x12, 0x01, 0x71, 0xC9, 0x26, 0x59, 0x59, 0xA4, 0x93, 0x2B,
        0xC0, 0x5A, 0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x32, 0x10,
    ];
    const PPS: &[u8] = &[0x44, 0x01, 0xC1, 0x72, 0xB4, 0x62, 0x40];

    #[test]
    fn real_sps_fields() {
        let sps = Sps::parse(SPS).unwrap();
        let ptl = sps.profile_tier_level;
        assert_eq!(
            (
                ptl.profile_space,
                ptl.tier_flag,
                ptl.profile_idc,
                ptl.level_idc
            ),
            (0, false, 1, 63)
        );
        assert_eq!(ptl.compatibility_flags, [0x60, 0, 0, 0]);
        assert_eq!(ptl.constraint_flags, [0x90, 0, 0, 0, 0, 0]);
        assert_eq!(
            (
                sps.max_sub_layers,
                sps.temporal_id_nesting,
                sps.chroma_format_idc
            ),
            (1, true, 1)
        );
        assert_eq!((sps.pic_width, sps.pic_height), (648, 368));
        assert_eq!(
            sps.conformance_window,
            Some(ConformanceWindow {
                left: 0,
                right: 3,
                top: 0,
                bottom: 3
            })
        );
        assert_eq!(
            (
                sps.width,
                sps.height,
                sps.bit_depth_luma,
                sps.bit_depth_chroma
            ),
            (642, 362, 8, 8)
        );
    }

    #[test]
    fn hvcc_layout_matches_pic() {
        let hvcc = build_hvcc(VPS, SPS, Some(PPS)).unwrap();
        let mut expect = vec![
            0x01, 0x01, 0x60, 0x00, 0x00, 0x00, 0x90, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3F, 0xF0,
            0x00, 0xFC, 0xFD, 0xF8, 0xF8, 0x00, 0x00, 0x0F, 0x03,
        ];
        expect.extend_from_slice(&[0x20, 0x00, 0x01, 0x00, 24]);
        expect.extend_from_slice(VPS);
        expect.extend_from_slice(&[0x21, 0x00, 0x01, 0x00, 44]);
        expect.extend_from_slice(SPS);
        expect.extend_from_slice(&[0x22, 0x00, 0x01, 0x00, 7]);
        expect.extend_from_slice(PPS);
        assert_eq!(hvcc, expect);
        assert_eq!(hvcc.len(), hvcc_len(VPS, SPS, Some(PPS)));

        let cfg = HevcConfig::parse(&hvcc).unwrap();
        assert_eq!(
            cfg.profile_tier_level,
            Sps::parse(SPS).unwrap().profile_tier_level
        );
        assert_eq!(
            (
                cfg.length_size,
                cfg.num_temporal_layers,
                cfg.temporal_id_nested
            ),
            (4, 1, true)
        );
        assert_eq!(
            (cfg.chroma_format_idc, cfg.bit_depth_luma, cfg.arrays.len()),
            (1, 8, 3)
        );
        assert_eq!(cfg.nalus_of_type(NAL_PPS).collect::<Vec<_>>(), vec![PPS]);
        assert!(!cfg.arrays[0].complete);

        // Without a PPS there are two arrays; from Annex-B with an SEI in between, the same bytes.
        let two = build_hvcc(VPS, SPS, None).unwrap();
        assert_eq!(two[22], 2);
        assert_eq!(two.len(), 23 + 5 + 24 + 5 + 44);
        let mut cpd = vec![0, 0, 0, 1];
        cpd.extend_from_slice(VPS);
        cpd.extend_from_slice(&[0, 0, 1, 0x4E, 0x01, 0x05, 0x01, 0x80, 0, 0, 0, 1]);
        cpd.extend_from_slice(SPS);
        cpd.extend_from_slice(&[0, 0, 1]);
        cpd.extend_from_slice(PPS);
        assert_eq!(hvcc_from_annexb(&cpd).unwrap(), hvcc);
        assert!(matches!(
            build_hvcc(SPS, SPS, None),
            Err(MediaError::UnexpectedNalType { found: 33, .. })
        ));
        let mut small = [0u8; 10];
        let mut w: &mut [u8] = &mut small;
        assert!(matches!(
            build_hvcc_into(VPS, SPS, None, &mut w),
            Err(MediaError::BufferTooSmall { .. })
        ));
    }

    #[test]
    fn nal_types() {
        assert!(is_vps(&[0x40, 0x01]) && is_sps(&[0x42, 0x01]) && is_pps(&[0x44, 0x01]));
        assert!(is_idr(&[0x26, 0x01]) && is_idr(&[0x28, 0x01]) && !is_idr(&[0x2A, 0x01]));
        assert!(is_irap(&[0x2A, 0x01]) && !is_irap(&[0x02, 0x01]));
        assert_eq!(nal_unit_type(&[]), None);
        let au = [
            0, 0, 0, 1, 0x40, 1, 0, 0, 1, 0x42, 1, 0, 0, 1, 0x44, 1, 0, 0, 1, 0x4E, 1, 5, 0, 0, 1,
            0x26, 1, 0xAF,
        ];
        assert_eq!(parameter_sets(&au).unwrap().len(), 4);
        assert!(matches!(
            parameter_sets(&au[..20]),
            Err(MediaError::Missing("H.265 IDR slice"))
        ));
    }

    #[test]
    fn vps_is_not_an_sps() {
        assert!(matches!(
            Sps::parse(VPS),
            Err(MediaError::UnexpectedNalType { found: 32, .. })
        ));
        assert!(matches!(
            Sps::parse(&[0x42]),
            Err(MediaError::Truncated { .. })
        ));
    }

    #[test]
    fn hvcc_parse_errors() {
        assert!(matches!(
            HevcConfig::parse(&[1, 2, 3]),
            Err(MediaError::TruncatedRecord { offset: 2, .. })
        ));
        assert!(matches!(
            HevcConfig::parse(&[5]),
            Err(MediaError::Unsupported { .. })
        ));
    }
}
