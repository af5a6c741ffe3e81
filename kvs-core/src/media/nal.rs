//! NAL unit framing: Annex-B byte streams and length-prefixed (AVCC/HVCC) samples.
//!
//! **Annex-B splitting rules** (what [`AnnexBNalus`] decides):
//! - a start code is `00 00 01`; a zero byte before it (the 4-byte form `00 00 00 01`) and any
//!   further zero bytes are *trailing zeros* of the previous NAL unit (H.264/H.265 Annex B
//!   `trailing_zero_8bits`) and are dropped, because a NAL unit never ends in `0x00`;
//! - zero bytes before the first start code (`leading_zero_8bits`) are skipped; any other byte
//!   there is [`MediaError::MissingStartCode`];
//! - trailing zero bytes at the end of the buffer are dropped too, and NAL units that are empty
//!   after that (two start codes in a row, a start code at the very end) are skipped;
//! - emulation-prevention bytes (`00 00 03`) are kept: the NAL units are passed through as they
//!   are. [`remove_emulation_prevention`] produces the RBSP when a parser needs it.
//!
//! This is more lenient than the official producer (PIC), which rejects four or more zero bytes
//! in a row and keeps zeros at the end of a frame inside the last NAL unit; on well-formed input
//! (no trailing zeros) the AVCC output is byte-identical to PIC's.
//!
//! **Length-prefixed form**: every NAL unit is preceded by its length as a big-endian integer of
//! 1, 2 or 4 bytes (4 in everything KVS producers write; avcC/hvcC `lengthSizeMinusOne` says which).
//! Conversion back to Annex-B always writes 4-byte start codes (`00 00 00 01`), like PIC.

use bytes::{BufMut, Bytes};

use super::MediaError;

/// The 4-byte Annex-B start code written by the converters.
pub const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// The length-field size KVS producers use for AVCC/HVCC samples.
pub const DEFAULT_LENGTH_SIZE: usize = 4;

/// The NAL units of an Annex-B access unit before the first one `is_idr` accepts: the codec
/// private data the official producer takes from a key frame; the two messages name what is missing.
pub(crate) fn nalus_before_idr<'a>(
    access_unit: &'a [u8],
    is_idr: fn(&[u8]) -> bool,
    missing_sets: &'static str,
    missing_idr: &'static str,
) -> Result<Vec<&'a [u8]>, MediaError> {
    let mut out = Vec::new();
    for nal in annexb_nalus(access_unit)? {
        if is_idr(nal) {
            if out.is_empty() {
                return Err(MediaError::Missing(missing_sets));
            }
            return Ok(out);
        }
        out.push(nal);
    }
    Err(MediaError::Missing(missing_idr))
}

/// Offset of the first `00 00 01` at or after `from`.
pub(crate) fn find_start_code(buf: &[u8], mut i: usize) -> Option<usize> {
    while let Some(&b) = buf.get(i + 2) {
        if b > 1 {
            i += 3;
        } else if b == 1 {
            if buf.get(i) == Some(&0) && buf.get(i + 1) == Some(&0) {
                return Some(i);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

/// Iterator over the NAL units of an Annex-B buffer, as borrowed slices (no copy).
///
/// Made by [`annexb_nalus`]; see the [module documentation](self) for the splitting rules.
#[derive(Debug, Clone)]
pub struct AnnexBNalus<'a> {
    buf: &'a [u8],
    /// Offset of the first byte after the current start code, or `None` when done.
    next: Option<usize>,
}

/// Split an Annex-B buffer into NAL units.
///
/// # Errors
/// [`MediaError::MissingStartCode`] when a non-zero byte comes before the first start code.
/// The iteration itself cannot fail.
pub fn annexb_nalus(buf: &[u8]) -> Result<AnnexBNalus<'_>, MediaError> {
    let first = find_start_code(buf, 0);
    let prefix_end = first.unwrap_or(buf.len());
    let prefix = buf.get(..prefix_end).unwrap_or_default();
    if let Some(offset) = prefix.iter().position(|&b| b != 0) {
        return Err(MediaError::MissingStartCode { offset });
    }
    Ok(AnnexBNalus {
        buf,
        next: first.map(|s| s + 3),
    })
}

impl<'a> AnnexBNalus<'a> {
    /// The next NAL unit as a byte range of the input buffer.
    pub fn next_range(&mut self) -> Option<std::ops::Range<usize>> {
        loop {
            let start = self.next?;
            let end = match find_start_code(self.buf, start) {
                Some(sc) => {
                    self.next = Some(sc + 3);
                    sc
                }
                None => {
                    self.next = None;
                    self.buf.len()
                }
            };
            let nal = self.buf.get(start..end).unwrap_or_default();
            let trimmed = nal.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            if trimmed > 0 {
                return Some(start..start + trimmed);
            }
        }
    }

    /// Turn this iterator into one over the byte ranges of the NAL units in the input.
    pub fn ranges(self) -> AnnexBRanges<'a> {
        AnnexBRanges(self)
    }
}

impl<'a> Iterator for AnnexBNalus<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let r = self.next_range()?;
        self.buf.get(r)
    }
}

impl std::iter::FusedIterator for AnnexBNalus<'_> {}

/// Iterator over the byte ranges of the NAL units of an Annex-B buffer.
#[derive(Debug, Clone)]
pub struct AnnexBRanges<'a>(AnnexBNalus<'a>);

impl Iterator for AnnexBRanges<'_> {
    type Item = std::ops::Range<usize>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_range()
    }
}

/// Split an Annex-B [`Bytes`] buffer into NAL units that share its storage (zero copy).
///
/// # Errors
/// As [`annexb_nalus`].
pub fn annexb_nalus_bytes(buf: &Bytes) -> Result<Vec<Bytes>, MediaError> {
    let ranges = annexb_nalus(buf)?.ranges();
    Ok(ranges.map(|r| buf.slice(r)).collect())
}

fn check_length_size(length_size: usize) -> Result<(), MediaError> {
    match length_size {
        1 | 2 | 4 => Ok(()),
        other => Err(MediaError::InvalidLengthSize(other)),
    }
}

/// Iterator over the NAL units of a length-prefixed (AVCC/HVCC) buffer, as borrowed slices.
///
/// Made by [`length_prefixed_nalus`]. Yields an error (once, then stops) when a length prefix is
/// cut off or declares more bytes than remain. Zero-length NAL units are yielded as empty slices.
#[derive(Debug, Clone)]
pub struct LengthPrefixedNalus<'a> {
    buf: &'a [u8],
    pos: usize,
    length_size: usize,
    failed: bool,
}

/// Iterate over the NAL units of a buffer in which each is prefixed by its big-endian length of
/// `length_size` bytes (1, 2 or 4).
///
/// # Errors
/// [`MediaError::InvalidLengthSize`] for another length size.
pub fn length_prefixed_nalus(
    buf: &[u8],
    length_size: usize,
) -> Result<LengthPrefixedNalus<'_>, MediaError> {
    check_length_size(length_size)?;
    Ok(LengthPrefixedNalus {
        buf,
        pos: 0,
        length_size,
        failed: false,
    })
}

/// Iterate over the NAL units of a sample with 4-byte length prefixes, the form KVS producers write.
pub fn avcc_nalus(buf: &[u8]) -> LengthPrefixedNalus<'_> {
    LengthPrefixedNalus {
        buf,
        pos: 0,
        length_size: DEFAULT_LENGTH_SIZE,
        failed: false,
    }
}

impl<'a> LengthPrefixedNalus<'a> {
    /// The next NAL unit as a byte range of the input buffer.
    pub fn next_range(&mut self) -> Option<Result<std::ops::Range<usize>, MediaError>> {
        if self.failed || self.pos >= self.buf.len() {
            return None;
        }
        let offset = self.pos;
        let rest = self.buf.get(offset..).unwrap_or_default();
        let Some(prefix) = rest.get(..self.length_size) else {
            self.failed = true;
            return Some(Err(MediaError::TruncatedLengthPrefix {
                offset,
                needed: self.length_size,
                available: rest.len(),
            }));
        };
        let declared = prefix
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let start = offset + self.length_size;
        let available = self.buf.len() - start;
        if declared > available as u64 {
            self.failed = true;
            return Some(Err(MediaError::NalLengthOverrun {
                offset,
                declared,
                available,
            }));
        }
        let end = start + declared as usize;
        self.pos = end;
        Some(Ok(start..end))
    }
}

impl<'a> Iterator for LengthPrefixedNalus<'a> {
    type Item = Result<&'a [u8], MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.next_range()?;
        Some(r.map(|r| self.buf.get(r).unwrap_or_default()))
    }
}

impl std::iter::FusedIterator for LengthPrefixedNalus<'_> {}

/// Offset of `inner` within `outer` (both slices of the same buffer).
fn offset_in(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// The size of [`annexb_to_avcc`]'s output for this input.
///
/// # Errors
/// As [`annexb_to_avcc`].
pub fn annexb_to_avcc_len(annexb: &[u8]) -> Result<usize, MediaError> {
    let mut total = 0usize;
    for nal in annexb_nalus(annexb)? {
        if u32::try_from(nal.len()).is_err() {
            let offset = offset_in(annexb, nal);
            return Err(MediaError::NalTooLarge {
                offset,
                len: nal.len(),
                field_size: 4,
            });
        }
        total += 4 + nal.len();
    }
    Ok(total)
}

/// Convert an Annex-B buffer to 4-byte length-prefixed (AVCC/HVCC) form, appending to `out`.
/// Returns the number of bytes written. Nothing is written when an error is returned.
///
/// # Errors
/// [`MediaError::MissingStartCode`] for data before the first start code,
/// [`MediaError::NalTooLarge`] for a NAL unit of 4 GiB or more, and
/// [`MediaError::BufferTooSmall`] when `out` cannot take the whole result (checked first).
pub fn annexb_to_avcc_into(annexb: &[u8], out: &mut impl BufMut) -> Result<usize, MediaError> {
    let needed = annexb_to_avcc_len(annexb)?;
    if out.remaining_mut() < needed {
        return Err(MediaError::BufferTooSmall {
            needed,
            available: out.remaining_mut(),
        });
    }
    for nal in annexb_nalus(annexb)? {
        out.put_u32(nal.len() as u32);
        out.put_slice(nal);
    }
    Ok(needed)
}

/// Convert an Annex-B buffer to a new 4-byte length-prefixed (AVCC/HVCC) buffer.
///
/// # Errors
/// As [`annexb_to_avcc_into`] (except `BufferTooSmall`).
pub fn annexb_to_avcc(annexb: &[u8]) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::with_capacity(annexb_to_avcc_len(annexb)?);
    annexb_to_avcc_into(annexb, &mut out)?;
    Ok(out)
}

/// The size of [`avcc_to_annexb`]'s output for this input.
///
/// # Errors
/// As [`avcc_to_annexb`].
pub fn avcc_to_annexb_len(avcc: &[u8], length_size: usize) -> Result<usize, MediaError> {
    let mut total = 0usize;
    for nal in length_prefixed_nalus(avcc, length_size)? {
        total += START_CODE.len() + nal?.len();
    }
    Ok(total)
}

/// Convert a length-prefixed buffer (`length_size` of 1, 2 or 4) to Annex-B with 4-byte start
/// codes, appending to `out`. Returns the number of bytes written. Nothing is written when an
/// error is returned.
///
/// # Errors
/// [`MediaError::InvalidLengthSize`], [`MediaError::TruncatedLengthPrefix`],
/// [`MediaError::NalLengthOverrun`], or [`MediaError::BufferTooSmall`] (checked first).
pub fn avcc_to_annexb_into(
    avcc: &[u8],
    length_size: usize,
    out: &mut impl BufMut,
) -> Result<usize, MediaError> {
    let needed = avcc_to_annexb_len(avcc, length_size)?;
    if out.remaining_mut() < needed {
        return Err(MediaError::BufferTooSmall {
            needed,
            available: out.remaining_mut(),
        });
    }
    for nal in length_prefixed_nalus(avcc, length_size)? {
        out.put_slice(&START_CODE);
        out.put_slice(nal?);
    }
    Ok(needed)
}

/// Convert a length-prefixed buffer to a new Annex-B buffer with 4-byte start codes.
///
/// # Errors
/// As [`avcc_to_annexb_into`] (except `BufferTooSmall`).
pub fn avcc_to_annexb(avcc: &[u8], length_size: usize) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::with_capacity(avcc_to_annexb_len(avcc, length_size)?);
    avcc_to_annexb_into(avcc, length_size, &mut out)?;
    Ok(out)
}

/// Convert a 4-byte length-prefixed buffer to Annex-B in place: every length becomes
/// `00 00 00 01` (what PIC's `AVCC_NALS` adaptation does). The whole buffer is validated before
/// anything is changed, so on error it is left untouched.
///
/// # Errors
/// [`MediaError::TruncatedLengthPrefix`] or [`MediaError::NalLengthOverrun`].
pub fn avcc_to_annexb_in_place(buf: &mut [u8]) -> Result<(), MediaError> {
    // Validate everything first, so an error leaves the buffer untouched.
    let mut check = avcc_nalus(buf);
    while let Some(r) = check.next_range() {
        r?;
    }
    let mut pos = 0usize;
    while let Some(prefix) = buf.get_mut(pos..pos + 4) {
        let mut len = [0u8; 4];
        len.copy_from_slice(prefix);
        prefix.copy_from_slice(&START_CODE);
        pos += 4 + u32::from_be_bytes(len) as usize;
    }
    Ok(())
}

/// Remove emulation-prevention bytes: every `03` that follows `00 00` is dropped, giving the raw
/// byte sequence payload (RBSP) that bitstream parsers read.
pub fn remove_emulation_prevention(nal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(nal.len());
    let mut zeros = 0usize;
    for &b in nal {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// Insert emulation-prevention bytes: after two zero bytes, a byte of `00`–`03` gets a `03` put
/// before it (also at the end of the payload when it ends in `00 00`), so no start code can
/// appear inside the NAL unit.
pub fn add_emulation_prevention(rbsp: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rbsp.len() + rbsp.len() / 2 + 1);
    let mut zeros = 0usize;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    if zeros >= 2 {
        out.push(3);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nals(buf: &[u8]) -> Vec<Vec<u8>> {
        annexb_nalus(buf).unwrap().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn splits_three_and_four_byte_start_codes() {
        let buf = [
            0, 0, 0, 1, 0x67, 0xAA, 0, 0, 1, 0x68, 0xBB, 0, 0, 0, 1, 0x65, 0x88, 0x00, 0x03, 0x01,
        ];
        assert_eq!(
            nals(&buf),
            vec![
                vec![0x67, 0xAA],
                vec![0x68, 0xBB],
                vec![0x65, 0x88, 0, 3, 1]
            ]
        );
        let ranges: Vec<_> = annexb_nalus(&buf).unwrap().ranges().collect();
        assert_eq!(ranges, vec![4..6, 9..11, 15..20]);
    }

    #[test]
    fn leading_and_trailing_zeros_and_empty_nals() {
        let buf = [
            0, 0, 0, 0, 0, 1, 0x09, 0xF0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0x41, 0, 0, 0,
        ];
        assert_eq!(nals(&buf), vec![vec![0x09, 0xF0], vec![0x41]]);
        assert_eq!(nals(&[]), Vec::<Vec<u8>>::new());
        assert_eq!(nals(&[0, 0, 0]), Vec::<Vec<u8>>::new());
        assert_eq!(nals(&[0, 0, 1]), Vec::<Vec<u8>>::new());
        assert_eq!(
            annexb_nalus(&[0, 0x42, 0, 0, 1, 5]).unwrap_err(),
            MediaError::MissingStartCode { offset: 1 }
        );
        assert_eq!(
            annexb_nalus(&[0x67, 1, 2]).unwrap_err(),
            MediaError::MissingStartCode { offset: 0 }
        );
    }

    #[test]
    fn annexb_to_avcc_bytes() {
        let buf = [0, 0, 0, 1, 0x67, 0xAA, 0, 0, 1, 0x68];
        assert_eq!(
            annexb_to_avcc(&buf).unwrap(),
            vec![0, 0, 0, 2, 0x67, 0xAA, 0, 0, 0, 1, 0x68]
        );
        // Into a fixed slice: too small is an error, and nothing is written.
        let mut small = [0xEEu8; 10];
        let mut w: &mut [u8] = &mut small;
        assert_eq!(
            annexb_to_avcc_into(&buf, &mut w).unwrap_err(),
            MediaError::BufferTooSmall {
                needed: 11,
                available: 10
            }
        );
        assert_eq!(small, [0xEE; 10]);
        let mut exact = [0u8; 11];
        let mut w: &mut [u8] = &mut exact;
        assert_eq!(annexb_to_avcc_into(&buf, &mut w).unwrap(), 11);
        assert_eq!(exact[3], 2);
    }

    #[test]
    fn avcc_to_annexb_bytes() {
        let avcc = [0, 0, 0, 2, 0x67, 0xAA, 0, 0, 0, 1, 0x68];
        let expect = vec![0, 0, 0, 1, 0x67, 0xAA, 0, 0, 0, 1, 0x68];
        assert_eq!(avcc_to_annexb(&avcc, 4).unwrap(), expect);
        let mut inplace = avcc;
        avcc_to_annexb_in_place(&mut inplace).unwrap();
        assert_eq!(inplace.to_vec(), expect);
        // 2-byte and 1-byte length fields.
        assert_eq!(
            avcc_to_annexb(&[0, 1, 0x68, 0, 2, 1, 2], 2).unwrap(),
            vec![0, 0, 0, 1, 0x68, 0, 0, 0, 1, 1, 2]
        );
        assert_eq!(
            avcc_to_annexb(&[1, 0x68], 1).unwrap(),
            vec![0, 0, 0, 1, 0x68]
        );
        assert_eq!(
            avcc_to_annexb(&[1, 0x68], 3).unwrap_err(),
            MediaError::InvalidLengthSize(3)
        );
    }

    #[test]
    fn avcc_errors() {
        assert_eq!(
            avcc_to_annexb(&[0, 0, 0, 5, 1, 2], 4).unwrap_err(),
            MediaError::NalLengthOverrun {
                offset: 0,
                declared: 5,
                available: 2
            }
        );
        assert_eq!(
            avcc_to_annexb(&[0, 0, 0, 1, 1, 0, 0], 4).unwrap_err(),
            MediaError::TruncatedLengthPrefix {
                offset: 5,
                needed: 4,
                available: 2
            }
        );
        let mut bad = [0, 0, 0, 1, 0x68, 0, 0, 0, 9, 1];
        let copy = bad;
        assert!(avcc_to_annexb_in_place(&mut bad).is_err());
        assert_eq!(bad, copy);
        let mut it = avcc_nalus(&[0, 0, 0, 9]);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    #[test]
    fn emulation_prevention() {
        let rbsp = [
            0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x05, 0x00, 0x00,
        ];
        let escaped = add_emulation_prevention(&rbsp);
        assert_eq!(
            escaped,
            vec![0, 0, 3, 1, 0, 0, 3, 0, 0, 3, 0, 3, 5, 0, 0, 3]
        );
        assert_eq!(remove_emulation_prevention(&escaped), rbsp.to_vec());
    }

    #[test]
    fn bytes_slices_share_storage() {
        let buf = Bytes::from_static(&[0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68]);
        let parts = annexb_nalus_bytes(&buf).unwrap();
        assert_eq!(
            parts,
            vec![
                Bytes::from_static(&[0x67, 0x42]),
                Bytes::from_static(&[0x68])
            ]
        );
        assert_eq!(parts[0].as_ptr(), buf[3..].as_ptr());
    }
}
