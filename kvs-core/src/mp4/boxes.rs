//! ISO BMFF box serialization into a growable buffer.

/// A byte buffer with box nesting: [`Boxes::open`] writes a placeholder size, [`Boxes::close`]
/// patches it.
#[derive(Debug, Default)]
pub(crate) struct Boxes {
    pub(crate) buf: Vec<u8>,
}

impl Boxes {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Boxes {
            buf: Vec::with_capacity(n),
        }
    }

    /// Starts a box; returns its start for [`Boxes::close`].
    pub(crate) fn open(&mut self, fourcc: &[u8; 4]) -> usize {
        let start = self.buf.len();
        self.u32(0);
        self.buf.extend_from_slice(fourcc);
        start
    }

    /// Starts a full box (version and flags).
    pub(crate) fn open_full(&mut self, fourcc: &[u8; 4], version: u8, flags: u32) -> usize {
        let start = self.open(fourcc);
        self.u32((u32::from(version) << 24) | (flags & 0x00FF_FFFF));
        start
    }

    /// Ends the box started at `start`, writing its size (saturating: callers bound their
    /// content far below 4 GiB).
    pub(crate) fn close(&mut self, start: usize) {
        let size = u32::try_from(self.buf.len().saturating_sub(start)).unwrap_or(u32::MAX);
        self.patch_u32(start, size);
    }

    pub(crate) fn patch_u32(&mut self, at: usize, v: u32) {
        if let Some(slot) = self.buf.get_mut(at..at + 4) {
            slot.copy_from_slice(&v.to_be_bytes());
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub(crate) fn zeros(&mut self, n: usize) {
        self.buf.resize(self.buf.len() + n, 0);
    }

    /// The unity transformation matrix of mvhd/tkhd.
    pub(crate) fn matrix(&mut self) {
        for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
            self.u32(v);
        }
    }

    /// An MPEG-4 descriptor (ISO 14496-1 §8.3.3): tag, size in the 1-to-4-byte form, body.
    pub(crate) fn descriptor(&mut self, tag: u8, body: &[u8]) {
        self.u8(tag);
        let len = body.len();
        // Lengths above 2^28 never occur here (bodies are small codec configurations).
        let len = u32::try_from(len).unwrap_or(0).min(0x0FFF_FFFF);
        if len < 0x80 {
            self.u8(len as u8);
        } else {
            self.u8(0x80 | ((len >> 21) & 0x7F) as u8);
            self.u8(0x80 | ((len >> 14) & 0x7F) as u8);
            self.u8(0x80 | ((len >> 7) & 0x7F) as u8);
            self.u8((len & 0x7F) as u8);
        }
        self.bytes(body);
    }
}
