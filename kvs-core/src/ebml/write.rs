//! EBML writer: element IDs, sizes (fixed-width, minimal or unknown) and typed elements, written
//! into any [`bytes::BufMut`].
//!
//! Every function computes how many bytes it needs first and returns
//! [`EncodeError::BufferTooSmall`] without writing anything when the buffer cannot take them, so a
//! bounded `&mut [u8]` never panics and never receives half an element. A `Vec<u8>` or `BytesMut`
//! grows as needed.
//!
//! Sizes follow the rule of the KVS producer (PIC `mkvgenEbmlEncodeNumber`): the all-ones value of
//! each width is reserved for "unknown size", so a minimal size of 126 takes 1 byte, 127 takes 2,
//! and so on at every width.

use bytes::BufMut;

/// Largest size value a vint of `width` bytes can carry (one less than its all-ones pattern).
///
/// Returns 0 for widths outside 1..=8.
#[inline]
pub const fn max_size_for_width(width: usize) -> u64 {
    if width == 0 || width > 8 {
        0
    } else {
        (1u64 << (7 * width as u32)) - 2
    }
}

/// The largest element data size EBML can express (8-byte vint, all-ones excluded).
pub const MAX_ELEMENT_SIZE: u64 = max_size_for_width(8);

/// An EBML element could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer has less room than the bytes to write; nothing was written.
    #[error("output buffer too small: {needed} bytes needed, {available} available")]
    BufferTooSmall {
        /// Bytes the write needs.
        needed: usize,
        /// Bytes the buffer can still take (`remaining_mut()`).
        available: usize,
    },
    /// A size value does not fit in the requested vint width (the all-ones value is reserved).
    #[error("value {value} does not fit in a {width}-byte EBML size (largest is {max})")]
    ValueTooLarge {
        /// The value to encode.
        value: u64,
        /// The requested width in bytes.
        width: usize,
        /// The largest value that width can carry.
        max: u64,
    },
    /// A vint width outside 1..=8 bytes.
    #[error("invalid EBML size width {0}: widths are 1 to 8 bytes")]
    InvalidWidth(usize),
    /// An element ID that is not a valid 1–4 byte EBML ID (marker bits included).
    #[error("invalid element ID 0x{0:X}")]
    InvalidId(u32),
    /// A fixed-width numeric field narrower than its value.
    #[error("value {value} does not fit in {len} bytes of element data")]
    DataTooNarrow {
        /// The value to encode.
        value: u64,
        /// The requested data length in bytes.
        len: usize,
    },
}

/// How an element's size field is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SizeWidth {
    /// The fewest bytes that hold the value (PIC rule: all-ones avoided at each width).
    Minimal,
    /// Exactly this many bytes (1..=8), as the KVS producer writes most of its sizes.
    Fixed(u8),
}

/// Fails with [`EncodeError::BufferTooSmall`] unless `buf` can take `needed` more bytes.
#[inline]
pub fn ensure_room(buf: &impl BufMut, needed: usize) -> Result<(), EncodeError> {
    let available = buf.remaining_mut();
    if available < needed {
        Err(EncodeError::BufferTooSmall { needed, available })
    } else {
        Ok(())
    }
}

/// Length in bytes of an element ID written with its marker bits (`0x1A45DFA3` is 4 bytes).
#[inline]
pub fn id_len(id: u32) -> Result<usize, EncodeError> {
    let len = match id {
        0x81..=0xFE => 1,
        0x4001..=0x7FFE => 2,
        0x20_0001..=0x3F_FFFE => 3,
        0x1000_0001..=0x1FFF_FFFE => 4,
        _ => return Err(EncodeError::InvalidId(id)),
    };
    Ok(len)
}

/// Width of the minimal size vint for `value` (PIC rule: values up to 126 take 1 byte).
#[inline]
pub fn minimal_size_len(value: u64) -> Result<usize, EncodeError> {
    (1..=8)
        .find(|&w| value <= max_size_for_width(w))
        .ok_or(EncodeError::ValueTooLarge {
            value,
            width: 8,
            max: MAX_ELEMENT_SIZE,
        })
}

/// Width of a size field written with `width` for `value`, checking that the value fits.
#[inline]
pub fn size_len(value: u64, width: SizeWidth) -> Result<usize, EncodeError> {
    match width {
        SizeWidth::Minimal => minimal_size_len(value),
        SizeWidth::Fixed(w) => {
            let w = usize::from(w);
            if !(1..=8).contains(&w) {
                return Err(EncodeError::InvalidWidth(w));
            }
            let max = max_size_for_width(w);
            if value > max {
                return Err(EncodeError::ValueTooLarge {
                    value,
                    width: w,
                    max,
                });
            }
            Ok(w)
        }
    }
}

/// Encodes `value` as a vint of exactly `width` bytes into the low bytes of a `u64`
/// (no checks; callers validate first).
#[inline]
fn vint_bits(value: u64, width: usize) -> u64 {
    (1u64 << (7 * width as u32)) | value
}

/// Puts the low `len` bytes of `bits` big-endian.
#[inline]
fn put_be(buf: &mut impl BufMut, bits: u64, len: usize) {
    let bytes = bits.to_be_bytes();
    buf.put_slice(&bytes[8 - len..]);
}

/// Writes an element ID (marker bits included, as IDs are listed in specifications).
pub fn write_id(buf: &mut impl BufMut, id: u32) -> Result<usize, EncodeError> {
    let len = id_len(id)?;
    ensure_room(buf, len)?;
    put_be(buf, u64::from(id), len);
    Ok(len)
}

/// Writes a size vint of exactly `width` bytes (1..=8).
pub fn write_size(buf: &mut impl BufMut, value: u64, width: usize) -> Result<usize, EncodeError> {
    let w = u8::try_from(width).map_err(|_| EncodeError::InvalidWidth(width))?;
    write_size_as(buf, value, SizeWidth::Fixed(w))
}

/// Writes a size vint of the fewest bytes that hold `value`.
pub fn write_size_minimal(buf: &mut impl BufMut, value: u64) -> Result<usize, EncodeError> {
    write_size_as(buf, value, SizeWidth::Minimal)
}

/// Writes a size vint as `width` says.
pub fn write_size_as(
    buf: &mut impl BufMut,
    value: u64,
    width: SizeWidth,
) -> Result<usize, EncodeError> {
    let len = size_len(value, width)?;
    ensure_room(buf, len)?;
    put_be(buf, vint_bits(value, len), len);
    Ok(len)
}

/// Writes the reserved "unknown size" vint (all value bits set) of `width` bytes: `FF` for 1,
/// `01 FF FF FF FF FF FF FF` for 8.
pub fn write_unknown_size(buf: &mut impl BufMut, width: usize) -> Result<usize, EncodeError> {
    if !(1..=8).contains(&width) {
        return Err(EncodeError::InvalidWidth(width));
    }
    ensure_room(buf, width)?;
    let bits = (1u64 << (7 * width as u32)) | ((1u64 << (7 * width as u32)) - 1);
    put_be(buf, bits, width);
    Ok(width)
}

/// Length of an element header (ID and size field) for `data_len` bytes of data.
pub fn header_len(id: u32, data_len: u64, width: SizeWidth) -> Result<usize, EncodeError> {
    Ok(id_len(id)? + size_len(data_len, width)?)
}

/// Writes an element header: the ID, then `data_len` as a size of `width`.
///
/// Use it for master elements whose children follow, or before data written separately.
pub fn write_header(
    buf: &mut impl BufMut,
    id: u32,
    data_len: u64,
    width: SizeWidth,
) -> Result<usize, EncodeError> {
    let il = id_len(id)?;
    let sl = size_len(data_len, width)?;
    ensure_room(buf, il + sl)?;
    put_be(buf, u64::from(id), il);
    put_be(buf, vint_bits(data_len, sl), sl);
    Ok(il + sl)
}

/// Writes a master element header of unknown size (`width`-byte all-ones size), as KVS writes
/// its Segment (1 byte in the producer stream, 8 bytes in GetMedia output) and Clusters.
pub fn write_unknown_header(
    buf: &mut impl BufMut,
    id: u32,
    width: usize,
) -> Result<usize, EncodeError> {
    let il = id_len(id)?;
    if !(1..=8).contains(&width) {
        return Err(EncodeError::InvalidWidth(width));
    }
    ensure_room(buf, il + width)?;
    put_be(buf, u64::from(id), il);
    write_unknown_size(buf, width)?;
    Ok(il + width)
}

/// Writes an element with the given data bytes and a size of `width`.
pub fn write_binary_as(
    buf: &mut impl BufMut,
    id: u32,
    data: &[u8],
    width: SizeWidth,
) -> Result<usize, EncodeError> {
    let data_len = data.len();
    let hl = header_len(id, data_len as u64, width)?;
    ensure_room(buf, hl + data_len)?;
    write_header(buf, id, data_len as u64, width)?;
    buf.put_slice(data);
    Ok(hl + data_len)
}

/// Writes a binary element with a minimal size.
pub fn write_binary(buf: &mut impl BufMut, id: u32, data: &[u8]) -> Result<usize, EncodeError> {
    write_binary_as(buf, id, data, SizeWidth::Minimal)
}

/// Writes a string element (ASCII or UTF-8; no terminator) with a minimal size.
pub fn write_string(buf: &mut impl BufMut, id: u32, value: &str) -> Result<usize, EncodeError> {
    write_binary_as(buf, id, value.as_bytes(), SizeWidth::Minimal)
}

/// Writes a string element with a size of `width`.
pub fn write_string_as(
    buf: &mut impl BufMut,
    id: u32,
    value: &str,
    width: SizeWidth,
) -> Result<usize, EncodeError> {
    write_binary_as(buf, id, value.as_bytes(), width)
}

/// Bytes needed for an unsigned value without leading zero bytes (at least 1).
#[inline]
pub fn uint_len(value: u64) -> usize {
    (8 - value.leading_zeros() as usize / 8).max(1)
}

/// Bytes needed for a signed value in two's complement without redundant sign bytes (at least 1).
#[inline]
pub fn int_len(value: i64) -> usize {
    let redundant = if value < 0 {
        value.leading_ones()
    } else {
        value.leading_zeros()
    };
    // Keep one sign bit: a byte can be dropped when its 8 bits and the next byte's top bit agree.
    let droppable = (redundant.saturating_sub(1) / 8) as usize;
    (8 - droppable).max(1)
}

/// Writes an unsigned integer element with the fewest data bytes (PIC's `mkvgenBigEndianNumber`)
/// and a minimal size.
pub fn write_uint(buf: &mut impl BufMut, id: u32, value: u64) -> Result<usize, EncodeError> {
    write_uint_fixed(buf, id, value, uint_len(value))
}

/// Writes an unsigned integer element with exactly `len` data bytes (1..=8), as KVS writes its
/// 8-byte TimecodeScale, TrackUID and Cluster Timecode.
pub fn write_uint_fixed(
    buf: &mut impl BufMut,
    id: u32,
    value: u64,
    len: usize,
) -> Result<usize, EncodeError> {
    if !(1..=8).contains(&len) {
        return Err(EncodeError::InvalidWidth(len));
    }
    if len < 8 && value >> (8 * len) != 0 {
        return Err(EncodeError::DataTooNarrow { value, len });
    }
    let hl = header_len(id, len as u64, SizeWidth::Minimal)?;
    ensure_room(buf, hl + len)?;
    write_header(buf, id, len as u64, SizeWidth::Minimal)?;
    put_be(buf, value, len);
    Ok(hl + len)
}

/// Writes a signed integer element with the fewest data bytes and a minimal size.
pub fn write_int(buf: &mut impl BufMut, id: u32, value: i64) -> Result<usize, EncodeError> {
    let len = int_len(value);
    let hl = header_len(id, len as u64, SizeWidth::Minimal)?;
    ensure_room(buf, hl + len)?;
    write_header(buf, id, len as u64, SizeWidth::Minimal)?;
    put_be(buf, value as u64, len);
    Ok(hl + len)
}

/// Writes a float element as an 8-byte IEEE 754 double (as KVS writes SamplingFrequency).
pub fn write_float(buf: &mut impl BufMut, id: u32, value: f64) -> Result<usize, EncodeError> {
    write_binary_as(buf, id, &value.to_be_bytes(), SizeWidth::Minimal)
}

/// Writes a float element as a 4-byte IEEE 754 single.
pub fn write_float32(buf: &mut impl BufMut, id: u32, value: f32) -> Result<usize, EncodeError> {
    write_binary_as(buf, id, &value.to_be_bytes(), SizeWidth::Minimal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ebml::{Size, read_int, read_size};

    #[test]
    fn minimal_sizes_follow_the_pic_rule() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x80]),
            (126, &[0xFE]),
            (127, &[0x40, 0x7F]),
            (0x3FFE, &[0x7F, 0xFE]),
            (0x3FFF, &[0x20, 0x3F, 0xFF]),
            (0x1F_FFFE, &[0x3F, 0xFF, 0xFE]),
            (0x1F_FFFF, &[0x10, 0x1F, 0xFF, 0xFF]),
        ];
        for &(v, want) in cases {
            let mut out = Vec::new();
            assert_eq!(write_size_minimal(&mut out, v).unwrap(), want.len());
            assert_eq!(out, want, "value {v}");
            assert_eq!(read_size(&out).unwrap(), Some((Size::Known(v), want.len())));
        }
        assert!(matches!(
            minimal_size_len(MAX_ELEMENT_SIZE + 1),
            Err(EncodeError::ValueTooLarge { .. })
        ));
    }

    #[test]
    fn fixed_and_unknown_sizes() {
        let mut out = Vec::new();
        write_size(&mut out, 0x34, 8).unwrap();
        assert_eq!(out, [0x01, 0, 0, 0, 0, 0, 0, 0x34]);
        out.clear();
        write_size(&mut out, 0x67, 2).unwrap();
        assert_eq!(out, [0x40, 0x67]);
        out.clear();
        write_unknown_size(&mut out, 1).unwrap();
        write_unknown_size(&mut out, 8).unwrap();
        assert_eq!(out, [0xFF, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(
            write_size(&mut out, 127, 1),
            Err(EncodeError::ValueTooLarge {
                value: 127,
                width: 1,
                max: 126
            })
        );
        assert_eq!(
            write_size(&mut out, 1, 9),
            Err(EncodeError::InvalidWidth(9))
        );
        assert_eq!(
            write_size(&mut out, 1, 0),
            Err(EncodeError::InvalidWidth(0))
        );
    }

    #[test]
    fn ids_and_elements() {
        let mut out = Vec::new();
        write_id(&mut out, 0x1A45_DFA3).unwrap();
        write_id(&mut out, 0xA3).unwrap();
        assert_eq!(out, [0x1A, 0x45, 0xDF, 0xA3, 0xA3]);
        assert_eq!(write_id(&mut out, 0x7F), Err(EncodeError::InvalidId(0x7F)));
        assert_eq!(write_id(&mut out, 0xFF), Err(EncodeError::InvalidId(0xFF)));
        out.clear();
        write_uint(&mut out, 0x4286, 1).unwrap();
        write_uint_fixed(&mut out, 0x2AD7B1, 1_000_000, 8).unwrap();
        write_string(&mut out, 0x4282, "matroska").unwrap();
        assert_eq!(
            out,
            [
                0x42, 0x86, 0x81, 0x01, 0x2A, 0xD7, 0xB1, 0x88, 0, 0, 0, 0, 0, 0x0F, 0x42, 0x40,
                0x42, 0x82, 0x88, b'm', b'a', b't', b'r', b'o', b's', b'k', b'a'
            ]
        );
        assert_eq!(
            write_uint_fixed(&mut out, 0xB0, 70_000, 2),
            Err(EncodeError::DataTooNarrow {
                value: 70_000,
                len: 2
            })
        );
        out.clear();
        write_float(&mut out, 0xB5, 48_000.0).unwrap();
        assert_eq!(&out[..2], &[0xB5, 0x88]);
        assert_eq!(&out[2..], &48_000f64.to_be_bytes());
    }

    #[test]
    fn signed_values_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            32767,
            -32768,
            i64::MAX,
            i64::MIN,
        ] {
            let mut out = Vec::new();
            write_int(&mut out, 0xFB, v).unwrap();
            let len = usize::from(out[1] & 0x7F);
            assert_eq!(len, int_len(v));
            assert_eq!(read_int(&out[2..]).unwrap(), v, "value {v}");
        }
        assert_eq!(int_len(127), 1);
        assert_eq!(int_len(128), 2);
        assert_eq!(int_len(-128), 1);
        assert_eq!(int_len(-129), 2);
        assert_eq!(uint_len(0), 1);
        assert_eq!(uint_len(255), 1);
        assert_eq!(uint_len(256), 2);
    }

    #[test]
    fn bounded_buffers_get_a_typed_error_and_no_partial_write() {
        let mut storage = [0u8; 5];
        let mut slice: &mut [u8] = &mut storage;
        let err = write_string(&mut slice, 0x4282, "matroska").unwrap_err();
        assert_eq!(
            err,
            EncodeError::BufferTooSmall {
                needed: 11,
                available: 5
            }
        );
        assert_eq!(slice.len(), 5, "nothing was consumed");
        assert_eq!(storage, [0; 5]);
    }
}
