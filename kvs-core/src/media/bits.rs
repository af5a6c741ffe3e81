//! A big-endian bit reader over an RBSP (emulation-prevention bytes already removed), with the
//! Exp-Golomb codes of H.264/H.265. Reads past the end return [`MediaError::Truncated`].

use super::MediaError;

/// Reads bits most-significant first.
pub(crate) struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits from the start of `data`.
    pos: usize,
    /// The structure being parsed, for error messages.
    what: &'static str,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `data`; `what` names the structure in errors.
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    fn truncated(&self) -> MediaError {
        MediaError::Truncated {
            what: self.what,
            bit_offset: self.pos,
        }
    }

    /// One bit.
    pub(crate) fn bit(&mut self) -> Result<bool, MediaError> {
        let byte = self
            .data
            .get(self.pos / 8)
            .ok_or_else(|| self.truncated())?;
        let bit = (byte >> (7 - (self.pos % 8))) & 1;
        self.pos += 1;
        Ok(bit == 1)
    }

    /// One bit as a flag.
    pub(crate) fn flag(&mut self) -> Result<bool, MediaError> {
        self.bit()
    }

    /// `n` bits (at most 32) as an unsigned integer.
    pub(crate) fn bits(&mut self, n: u32) -> Result<u32, MediaError> {
        let n = n.min(32);
        if self.remaining() < n as usize {
            let err = MediaError::Truncated {
                what: self.what,
                bit_offset: self.data.len() * 8,
            };
            return Err(err);
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            v = (v << 1) | u64::from(self.bit()?);
        }
        Ok(v as u32)
    }

    /// `n` bits (at most 8) as a byte.
    pub(crate) fn u8(&mut self, n: u32) -> Result<u8, MediaError> {
        Ok((self.bits(n.min(8))? & 0xFF) as u8)
    }

    /// Skip `n` bits.
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), MediaError> {
        if self.remaining() < n {
            let err = MediaError::Truncated {
                what: self.what,
                bit_offset: self.data.len() * 8,
            };
            return Err(err);
        }
        self.pos += n;
        Ok(())
    }

    /// Bits left.
    pub(crate) fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    /// An unsigned Exp-Golomb code, `ue(v)`, with at most 31 leading zeros (values up to 2^32 − 2).
    pub(crate) fn ue(&mut self) -> Result<u32, MediaError> {
        let start = self.pos;
        let mut zeros = 0u32;
        while !self.bit()? {
            zeros += 1;
            if zeros > 31 {
                return Err(MediaError::ExpGolombTooLong {
                    what: self.what,
                    bit_offset: start,
                });
            }
        }
        if zeros == 0 {
            return Ok(0);
        }
        let rest = self.bits(zeros)?;
        // 2^zeros − 1 + rest; with zeros ≤ 31 this is at most 2^32 − 2.
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// An unsigned Exp-Golomb code that must not exceed `max`.
    pub(crate) fn ue_max(&mut self, max: u32, field: &'static str) -> Result<u32, MediaError> {
        let v = self.ue()?;
        if v > max {
            return Err(MediaError::OutOfRange {
                what: field,
                value: u64::from(v),
            });
        }
        Ok(v)
    }

    /// A signed Exp-Golomb code, `se(v)`.
    pub(crate) fn se(&mut self) -> Result<i64, MediaError> {
        let k = i64::from(self.ue()?);
        Ok(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// Reads bytes and big-endian integers from a record; reads past the end return
/// [`MediaError::TruncatedRecord`].
pub(crate) struct ByteReader<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> ByteReader<'a> {
    /// A reader at the first byte of `data`; `what` names the record in errors.
    pub(crate) fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], MediaError> {
        let rest = self.rest();
        let out = rest.get(..n).ok_or(MediaError::TruncatedRecord {
            what: self.what,
            offset: self.pos,
            needed: n,
            available: rest.len(),
        })?;
        self.pos += n;
        Ok(out)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], MediaError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Result<u8, MediaError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    /// A big-endian u16.
    pub(crate) fn u16(&mut self) -> Result<u16, MediaError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_golomb_values() {
        // 1 | 010 | 011 | 00100 | 00101 → ue 0,1,2,3,4
        // bits: 1 010 011 00100 00101 = 1010 0110 0100 0010 1 (pad with 1s)
        let data = [0b1010_0110, 0b0100_0010, 0b1111_1111];
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.ue().unwrap(), 0);
        assert_eq!(r.ue().unwrap(), 1);
        assert_eq!(r.ue().unwrap(), 2);
        assert_eq!(r.ue().unwrap(), 3);
        assert_eq!(r.ue().unwrap(), 4);
        // se: codes 1,2,3,4 → +1, −1, +2, −2
        let data = [0b0100_1100, 0b1000_0101];
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.se().unwrap(), 1);
        assert_eq!(r.se().unwrap(), -1);
        assert_eq!(r.se().unwrap(), 2);
        assert_eq!(r.se().unwrap(), -2);
    }

    #[test]
    fn exp_golomb_limits() {
        // 31 zeros then 1 then 31 ones = 2^32 − 2
        let mut data = vec![0u8; 3];
        data.extend_from_slice(&[0b0000_0001, 0xFF, 0xFF, 0xFF, 0xFE]);
        let mut r = BitReader::new(&data, "t");
        assert_eq!(r.ue().unwrap(), u32::MAX - 1);
        let data = [0u8; 5];
        let mut r = BitReader::new(&data, "t");
        assert!(matches!(
            r.ue(),
            Err(MediaError::ExpGolombTooLong { bit_offset: 0, .. })
        ));
        let data = [0u8, 0x01];
        let mut r = BitReader::new(&data, "t");
        assert!(matches!(r.ue(), Err(MediaError::Truncated { .. })));
    }

    #[test]
    fn bits_and_truncation() {
        let data = [0xA5, 0x0F];
        let mut r = BitReader::new(&data, "t");
        assert_eq!(r.bits(4).unwrap(), 0xA);
        assert_eq!(r.bits(8).unwrap(), 0x50);
        assert_eq!(r.remaining(), 4);
        assert!(r.bits(5).is_err());
        assert_eq!(r.bits(4).unwrap(), 0xF);
        assert!(r.bit().is_err());
    }
}
