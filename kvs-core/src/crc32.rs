//! CRC-32 (IEEE 802.3 polynomial, reflected; the checksum of zlib, PNG and EBML's CRC-32 element),
//! one home for every checksum in kvs: EBML CRC-32 elements and the index's log records.

/// CRC-32 (IEEE 802.3 polynomial, reflected, as zlib and PNG) lookup tables for slicing-by-8.
const CRC_TABLES: [[u32; 256]; 8] = crc_tables();

const fn crc_tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut i = 0;
    while i < 256 {
        let mut s = 1;
        while s < 8 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xFF) as usize];
            s += 1;
        }
        i += 1;
    }
    t
}

/// CRC-32 (IEEE) of `data`: `crc32(b"123456789") == 0xCBF4_3926`.
pub fn crc32(data: &[u8]) -> u32 {
    let mut hasher = Crc32::new();
    hasher.update(data);
    hasher.finalize()
}

/// An incremental CRC-32, for data that arrives in pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crc32 {
    state: u32,
}

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// A checksum of nothing yet.
    pub fn new() -> Self {
        Crc32 { state: !0 }
    }

    /// Takes in the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        let t = &CRC_TABLES;
        let mut crc = self.state;
        let mut chunks = data.chunks_exact(8);
        for c in &mut chunks {
            let lo = u32::from_le_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
            crc = t[7][(lo & 0xFF) as usize]
                ^ t[6][((lo >> 8) & 0xFF) as usize]
                ^ t[5][((lo >> 16) & 0xFF) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][c[4] as usize]
                ^ t[2][c[5] as usize]
                ^ t[1][c[6] as usize]
                ^ t[0][c[7] as usize];
        }
        for &b in chunks.remainder() {
            crc = (crc >> 8) ^ t[0][((crc ^ u32::from(b)) & 0xFF) as usize];
        }
        self.state = crc;
    }

    /// The checksum of everything taken in.
    pub fn finalize(self) -> u32 {
        !self.state
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn check_values() {
        assert_eq!(super::crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(super::crc32(b""), 0);
        // Slicing-by-8 and the byte-wise tail agree at every length.
        let data: Vec<u8> = (0..100u8).collect();
        let bytewise = |d: &[u8]| {
            let mut c = !0u32;
            for &b in d {
                c = (c >> 8) ^ super::CRC_TABLES[0][((c ^ u32::from(b)) & 0xFF) as usize];
            }
            !c
        };
        for n in 0..data.len() {
            assert_eq!(super::crc32(&data[..n]), bytewise(&data[..n]));
            let mut pieces = super::Crc32::new();
            pieces.update(&data[..n / 3]);
            pieces.update(&data[n / 3..n]);
            assert_eq!(pieces.finalize(), bytewise(&data[..n]));
        }
    }
}
