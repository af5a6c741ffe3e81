//! Block and SimpleBlock bodies: the track / timecode / flags header and the three lacing modes.

use crate::ebml::{read_signed_vint, read_vint};

/// The fixed part of a Block or SimpleBlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BlockHeader {
    /// Track number.
    pub track: u64,
    /// Timecode relative to the cluster, in TimecodeScale units.
    pub rel_timecode: i16,
    /// The flags byte.
    pub flags: u8,
    /// Bytes taken by track number, timecode and flags.
    pub len: usize,
}

/// Lacing modes (flag bits 0x06).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lacing {
    /// No lacing: one frame.
    None,
    /// Xiph lacing (0x02).
    Xiph,
    /// Fixed-size lacing (0x04).
    Fixed,
    /// EBML lacing (0x06).
    Ebml,
}

impl BlockHeader {
    /// The lacing mode its flags select.
    pub(super) fn lacing(&self) -> Lacing {
        match self.flags & 0x06 {
            0x02 => Lacing::Xiph,
            0x04 => Lacing::Fixed,
            0x06 => Lacing::Ebml,
            _ => Lacing::None,
        }
    }
}

/// Parses the block header at the start of `data`.
pub(super) fn parse_header(data: &[u8]) -> Result<BlockHeader, &'static str> {
    let (track, n) = match read_vint(data) {
        Ok(Some(v)) => v,
        Ok(None) => return Err("block ends inside its track number"),
        Err(_) => return Err("block track number is not a valid variable-length integer"),
    };
    let Some(&[t0, t1, flags]) = data.get(n..n + 3) else {
        return Err("block is shorter than its 4-byte header");
    };
    Ok(BlockHeader {
        track,
        rel_timecode: i16::from_be_bytes([t0, t1]),
        flags,
        len: n + 3,
    })
}

/// Largest number of frames a lace can hold (the count byte plus one).
pub(super) const MAX_LACED: usize = 256;

/// Splits a laced payload (`data` starts right after the block header) into frame sizes.
///
/// Writes the sizes into `sizes` and returns `(frame count, bytes taken by the lace header)`.
pub(super) fn lace_sizes(
    data: &[u8],
    lacing: Lacing,
    sizes: &mut [usize; MAX_LACED],
) -> Result<(usize, usize), &'static str> {
    if lacing == Lacing::None {
        sizes[0] = data.len();
        return Ok((1, 0));
    }
    let Some(&count_minus_one) = data.first() else {
        return Err("laced block has no frame count");
    };
    let count = usize::from(count_minus_one) + 1;
    let mut pos = 1usize;
    let mut total = 0usize;
    match lacing {
        Lacing::None => {}
        Lacing::Fixed => {
            let body = data.len() - pos;
            if !body.is_multiple_of(count) {
                return Err("fixed-size lacing: payload does not divide evenly into the frames");
            }
            for s in sizes.iter_mut().take(count) {
                *s = body / count;
            }
            return Ok((count, pos));
        }
        Lacing::Xiph => {
            for s in sizes.iter_mut().take(count - 1) {
                let mut size = 0usize;
                loop {
                    let Some(&b) = data.get(pos) else {
                        return Err("Xiph lacing: lace header runs past the block");
                    };
                    pos += 1;
                    size += usize::from(b);
                    if b != 0xFF {
                        break;
                    }
                }
                *s = size;
                total += size;
            }
        }
        Lacing::Ebml => {
            if count > 1 {
                let (first, n) = match read_vint(data.get(pos..).unwrap_or_default()) {
                    Ok(Some(v)) => v,
                    _ => return Err("EBML lacing: bad first frame size"),
                };
                pos += n;
                let mut prev = usize::try_from(first).map_err(|_| "EBML lacing: size too large")?;
                sizes[0] = prev;
                total = prev;
                for s in sizes.iter_mut().take(count - 1).skip(1) {
                    let (diff, n) = match read_signed_vint(data.get(pos..).unwrap_or_default()) {
                        Ok(Some(v)) => v,
                        _ => return Err("EBML lacing: bad frame size difference"),
                    };
                    pos += n;
                    let next = i64::try_from(prev)
                        .ok()
                        .and_then(|p| p.checked_add(diff))
                        .filter(|&v| v >= 0)
                        .ok_or("EBML lacing: negative frame size")?;
                    prev = usize::try_from(next).map_err(|_| "EBML lacing: size too large")?;
                    *s = prev;
                    total = total
                        .checked_add(prev)
                        .ok_or("EBML lacing: size overflow")?;
                }
            }
        }
    }
    let body = data
        .len()
        .checked_sub(pos)
        .ok_or("lace header runs past the block")?;
    let last = body
        .checked_sub(total)
        .ok_or("laced frame sizes exceed the block")?;
    sizes[count - 1] = last;
    Ok((count, pos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header() {
        let h = parse_header(&[0x81, 0xFF, 0xFE, 0x86, 1, 2]).unwrap();
        assert_eq!(h.track, 1);
        assert_eq!(h.rel_timecode, -2);
        assert_eq!(h.len, 4);
        assert_eq!(h.lacing(), Lacing::Ebml);
        assert!(parse_header(&[0x81, 0]).is_err());
        assert!(parse_header(&[0x00, 0, 0, 0]).is_err());
        let h = parse_header(&[0x40, 0x02, 0, 5, 0x80]).unwrap();
        assert_eq!((h.track, h.rel_timecode, h.len), (2, 5, 5));
    }

    #[test]
    fn lacing_modes() {
        let mut sizes = [0usize; MAX_LACED];
        // Xiph: 3 frames of 300, 2, rest.
        let mut data = vec![2u8, 0xFF, 0x2D, 0x02];
        data.extend(std::iter::repeat_n(0u8, 300 + 2 + 7));
        assert_eq!(lace_sizes(&data, Lacing::Xiph, &mut sizes), Ok((3, 4)));
        assert_eq!(&sizes[..3], &[300, 2, 7]);
        // Fixed: 4 frames of 3.
        let data = [3u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(lace_sizes(&data, Lacing::Fixed, &mut sizes), Ok((4, 1)));
        assert_eq!(&sizes[..4], &[3, 3, 3, 3]);
        assert!(lace_sizes(&data[..12], Lacing::Fixed, &mut sizes).is_err());
        // EBML: 3 frames: 10, 10 + (-2) = 8, rest 5.
        let mut data = vec![2u8, 0x8A, 0xBD];
        data.extend(std::iter::repeat_n(0u8, 23));
        assert_eq!(lace_sizes(&data, Lacing::Ebml, &mut sizes), Ok((3, 3)));
        assert_eq!(&sizes[..3], &[10, 8, 5]);
        // Sizes larger than the block are rejected.
        assert!(lace_sizes(&[1u8, 0x90, 0], Lacing::Ebml, &mut sizes).is_err());
        assert!(lace_sizes(&[1u8, 0x05], Lacing::Xiph, &mut sizes).is_err());
        assert!(lace_sizes(&[], Lacing::Xiph, &mut sizes).is_err());
    }
}
