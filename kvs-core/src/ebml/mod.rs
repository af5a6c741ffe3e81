//! EBML (RFC 8794): variable-length integers, element IDs and sizes, and typed value readers.
//!
//! Everything here works on byte slices and never allocates. "Not enough bytes yet" is `Ok(None)`,
//! so the push decoder in [`crate::mkv`] can wait for the next chunk; malformed bytes are a
//! [`VintError`]. The writer lives in [`write`](self::write).

pub mod id;
pub mod write;

/// Longest element ID Matroska allows (`EBMLMaxIDLength`), in bytes.
pub const MAX_ID_LEN: usize = 4;
/// Longest element data size Matroska allows (`EBMLMaxSizeLength`), in bytes.
pub const MAX_SIZE_LEN: usize = 8;

/// An element's data size as written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// A known number of bytes.
    Known(u64),
    /// The reserved all-ones value: the element runs until something that cannot be its child.
    Unknown,
}

impl Size {
    /// The size in bytes, or `None` when it is unknown.
    pub fn known(self) -> Option<u64> {
        match self {
            Size::Known(n) => Some(n),
            Size::Unknown => None,
        }
    }
}

/// A malformed variable-length integer or element value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VintError {
    /// The first byte is zero: no length marker in the first 8 bits.
    #[error("invalid variable-length integer: first byte is 0x00 (no length marker)")]
    NoMarker,
    /// An element ID longer than [`MAX_ID_LEN`] bytes.
    #[error("element ID is {0} bytes long; at most 4 are allowed")]
    IdTooLong(usize),
    /// An element ID whose value bits are all ones or all zeros (reserved).
    #[error("element ID 0x{0:X} is reserved")]
    ReservedId(u32),
    /// A numeric element whose data is longer than its type allows.
    #[error("{kind} element has {len} bytes of data; at most {max} are allowed")]
    ValueTooLong {
        /// The value type ("uint", "int", "float", "date").
        kind: &'static str,
        /// The data length found.
        len: usize,
        /// The largest length allowed.
        max: usize,
    },
    /// A float element whose data is neither 0, 4 nor 8 bytes.
    #[error("float element has {0} bytes of data; 0, 4 or 8 are allowed")]
    BadFloatLength(usize),
    /// A string element that is not valid UTF-8.
    #[error("string element is not valid UTF-8")]
    BadUtf8,
    /// An ASCII string element holding a byte outside printable ASCII.
    #[error("ASCII string element holds byte 0x{0:02X} outside 0x20..=0x7E")]
    BadAscii(u8),
}

/// Width in bytes of the variable-length integer that starts with `first`, from its marker bit.
#[inline]
pub fn vint_width(first: u8) -> Option<usize> {
    if first == 0 {
        None
    } else {
        Some(first.leading_zeros() as usize + 1)
    }
}

/// Reads an element ID (marker bits kept, as IDs are written in specifications: `0x1A45DFA3`).
///
/// Returns `Ok(None)` when `buf` holds fewer bytes than the ID needs, and the ID with its length
/// otherwise. Non-minimal IDs (such as `0x200286` for `0x4286`) are returned as written; it is up to
/// the caller to treat them as unknown elements.
#[inline]
pub fn read_id(buf: &[u8]) -> Result<Option<(u32, usize)>, VintError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let width = vint_width(first).ok_or(VintError::NoMarker)?;
    if width > MAX_ID_LEN {
        return Err(VintError::IdTooLong(width));
    }
    let Some(bytes) = buf.get(..width) else {
        return Ok(None);
    };
    let id = bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
    let value_bits = 7 * width as u32;
    let value = id & ((1u32 << value_bits) - 1);
    if value == 0 || value == (1u32 << value_bits) - 1 {
        return Err(VintError::ReservedId(id));
    }
    Ok(Some((id, width)))
}

/// Reads an element data size. All value bits set means [`Size::Unknown`], at any width.
///
/// Returns `Ok(None)` when `buf` holds fewer bytes than the size field needs.
#[inline]
pub fn read_size(buf: &[u8]) -> Result<Option<(Size, usize)>, VintError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let width = vint_width(first).ok_or(VintError::NoMarker)?;
    let Some(bytes) = buf.get(..width) else {
        return Ok(None);
    };
    let marker_mask = if width == 8 { 0 } else { 0xFFu8 >> width };
    let mut value = u64::from(first & marker_mask);
    for &b in &bytes[1..] {
        value = (value << 8) | u64::from(b);
    }
    let all_ones = (1u64 << (7 * width as u32)) - 1;
    let size = if value == all_ones {
        Size::Unknown
    } else {
        Size::Known(value)
    };
    Ok(Some((size, width)))
}

/// Reads a plain variable-length integer (marker bit removed, all-ones kept as a value), as used
/// for block track numbers and EBML lace sizes.
///
/// Returns `Ok(None)` when `buf` holds fewer bytes than the integer needs.
#[inline]
pub fn read_vint(buf: &[u8]) -> Result<Option<(u64, usize)>, VintError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let width = vint_width(first).ok_or(VintError::NoMarker)?;
    let Some(bytes) = buf.get(1..width) else {
        return Ok(None);
    };
    let marker_mask = if width == 8 { 0 } else { 0xFFu8 >> width };
    let value = bytes
        .iter()
        .fold(u64::from(first & marker_mask), |acc, &b| {
            (acc << 8) | u64::from(b)
        });
    Ok(Some((value, width)))
}

/// Reads a signed variable-length integer as EBML lacing writes size differences: the unsigned
/// value minus `2^(7·width − 1) − 1`.
#[inline]
pub fn read_signed_vint(buf: &[u8]) -> Result<Option<(i64, usize)>, VintError> {
    let Some((value, width)) = read_vint(buf)? else {
        return Ok(None);
    };
    let bias = (1i64 << (7 * width as u32 - 1)) - 1;
    Ok(Some((value as i64 - bias, width)))
}

/// True when `id` (marker bits kept) could have been written in fewer bytes: such IDs are not
/// the same element as their short form and are treated as unknown elements.
pub fn id_is_non_minimal(id: u32, width: usize) -> bool {
    if width <= 1 {
        return false;
    }
    let value_bits = 7 * width as u32;
    let value = id & ((1u32 << value_bits) - 1);
    let shorter_bits = 7 * (width as u32 - 1);
    // The shorter width can hold values up to 2^bits - 2 (all ones is reserved).
    u64::from(value) < (1u64 << shorter_bits) - 1
}

/// Reads an unsigned integer element's data (0 to 8 bytes, big-endian; empty means 0).
pub fn read_uint(data: &[u8]) -> Result<u64, VintError> {
    if data.len() > 8 {
        return Err(VintError::ValueTooLong {
            kind: "uint",
            len: data.len(),
            max: 8,
        });
    }
    Ok(data.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// Reads a signed integer element's data (0 to 8 bytes, big-endian two's complement).
pub fn read_int(data: &[u8]) -> Result<i64, VintError> {
    if data.len() > 8 {
        return Err(VintError::ValueTooLong {
            kind: "int",
            len: data.len(),
            max: 8,
        });
    }
    let Some(&first) = data.first() else {
        return Ok(0);
    };
    let start: i64 = if first & 0x80 != 0 { -1 } else { 0 };
    Ok(data.iter().fold(start, |acc, &b| (acc << 8) | i64::from(b)))
}

/// Reads a float element's data (0, 4 or 8 bytes, IEEE 754 big-endian; empty means 0.0).
pub fn read_float(data: &[u8]) -> Result<f64, VintError> {
    match data.len() {
        0 => Ok(0.0),
        4 => {
            let mut b = [0u8; 4];
            b.copy_from_slice(data);
            Ok(f64::from(f32::from_be_bytes(b)))
        }
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(data);
            Ok(f64::from_be_bytes(b))
        }
        n => Err(VintError::BadFloatLength(n)),
    }
}

/// Reads a date element: signed nanoseconds since 2001-01-01T00:00:00 UTC (0 or 8 bytes).
pub fn read_date(data: &[u8]) -> Result<i64, VintError> {
    if !data.is_empty() && data.len() != 8 {
        return Err(VintError::ValueTooLong {
            kind: "date",
            len: data.len(),
            max: 8,
        });
    }
    read_int(data)
}

/// Seconds between the Unix epoch and the EBML date epoch (2001-01-01T00:00:00 UTC).
pub const EBML_EPOCH_UNIX_SECONDS: i64 = 978_307_200;

/// Strips the zero padding EBML allows at the end of string values.
#[inline]
fn trim_nul(data: &[u8]) -> &[u8] {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    &data[..end]
}

/// Reads an ASCII string element (printable ASCII, trailing NUL padding removed).
pub fn read_ascii(data: &[u8]) -> Result<&str, VintError> {
    let data = trim_nul(data);
    if let Some(&bad) = data.iter().find(|&&b| !(0x20..=0x7E).contains(&b)) {
        return Err(VintError::BadAscii(bad));
    }
    core::str::from_utf8(data).map_err(|_| VintError::BadUtf8)
}

/// Reads a UTF-8 string element (trailing NUL padding removed).
pub fn read_utf8(data: &[u8]) -> Result<&str, VintError> {
    core::str::from_utf8(trim_nul(data)).map_err(|_| VintError::BadUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_keep_their_marker_bits() {
        assert_eq!(
            read_id(&[0x1A, 0x45, 0xDF, 0xA3]),
            Ok(Some((0x1A45_DFA3, 4)))
        );
        assert_eq!(read_id(&[0xA3]), Ok(Some((0xA3, 1))));
        assert_eq!(read_id(&[0x1A, 0x45]), Ok(None));
        assert_eq!(read_id(&[0x00]), Err(VintError::NoMarker));
        assert_eq!(read_id(&[0x08, 0, 0, 0, 1]), Err(VintError::IdTooLong(5)));
        assert_eq!(read_id(&[0xFF]), Err(VintError::ReservedId(0xFF)));
        assert_eq!(read_id(&[0x80]), Err(VintError::ReservedId(0x80)));
        // Non-minimal IDs are returned as written.
        assert_eq!(read_id(&[0x20, 0x02, 0x86]), Ok(Some((0x20_0286, 3))));
    }

    #[test]
    fn sizes_in_every_width_and_unknown() {
        assert_eq!(read_size(&[0x81]), Ok(Some((Size::Known(1), 1))));
        assert_eq!(read_size(&[0x40, 0x67]), Ok(Some((Size::Known(0x67), 2))));
        assert_eq!(
            read_size(&[0x10, 0, 0, 0x23]),
            Ok(Some((Size::Known(0x23), 4)))
        );
        assert_eq!(
            read_size(&[0x01, 0, 0, 0, 0, 0, 0, 0x34]),
            Ok(Some((Size::Known(0x34), 8)))
        );
        assert_eq!(read_size(&[0xFF]), Ok(Some((Size::Unknown, 1))));
        assert_eq!(
            read_size(&[0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            Ok(Some((Size::Unknown, 8)))
        );
        assert_eq!(read_size(&[0x01, 0xFF]), Ok(None));
        assert_eq!(read_size(&[0x00]), Err(VintError::NoMarker));
    }

    #[test]
    fn plain_and_signed_vints() {
        assert_eq!(read_vint(&[0x81]), Ok(Some((1, 1))));
        assert_eq!(read_vint(&[0xFF]), Ok(Some((127, 1))));
        assert_eq!(read_vint(&[0x40, 0x02]), Ok(Some((2, 2))));
        assert_eq!(read_vint(&[0x40]), Ok(None));
        assert_eq!(read_vint(&[0x00]), Err(VintError::NoMarker));
        // Signed: 1-byte bias is 63, 2-byte bias 8191.
        assert_eq!(read_signed_vint(&[0xBF]), Ok(Some((0, 1))));
        assert_eq!(read_signed_vint(&[0x80]), Ok(Some((-63, 1))));
        assert_eq!(read_signed_vint(&[0x5F, 0xFF]), Ok(Some((0, 2))));
        assert_eq!(read_signed_vint(&[0x60, 0x00]), Ok(Some((1, 2))));
    }

    #[test]
    fn non_minimal_ids() {
        assert!(id_is_non_minimal(0x20_0286, 3));
        assert!(!id_is_non_minimal(0x4286, 2));
        assert!(!id_is_non_minimal(0x1A45_DFA3, 4));
        assert!(!id_is_non_minimal(0xA3, 1));
    }

    #[test]
    fn typed_values() {
        assert_eq!(read_uint(&[]), Ok(0));
        assert_eq!(read_uint(&[0x0F, 0x42, 0x40]), Ok(1_000_000));
        assert!(read_uint(&[0; 9]).is_err());
        assert_eq!(read_int(&[0xFF, 0xFE]), Ok(-2));
        assert_eq!(read_int(&[0x7F]), Ok(127));
        assert_eq!(read_float(&48_000f64.to_be_bytes()), Ok(48_000.0));
        assert_eq!(read_float(&8_000f32.to_be_bytes()), Ok(8_000.0));
        assert_eq!(read_float(&[1, 2, 3]), Err(VintError::BadFloatLength(3)));
        assert_eq!(read_ascii(b"matroska\0"), Ok("matroska"));
        assert_eq!(read_ascii(&[0x19, b'e']), Err(VintError::BadAscii(0x19)));
        assert_eq!(read_utf8("caméra\0\0".as_bytes()), Ok("caméra"));
        assert_eq!(read_date(&[0; 8]), Ok(0));
    }
}
