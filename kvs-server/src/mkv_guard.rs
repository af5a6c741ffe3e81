//! Early checks of a PutMedia body that the streaming MKV reader cannot make by itself.
//!
//! The reader enters master elements (Segment, Tracks) without buffering them, so a producer
//! header declaring a Tracks element of gigabytes would only be noticed once that many bytes had
//! arrived (or never, if the client then stalls). Ingest holds the whole producer header in
//! memory and bounds it, so any header element declared to end beyond that bound is invalid at
//! once.

use kvs_core::ebml::{Size, id, read_id, read_size};

/// True when an element of the producer header in `buf` (the body from its first byte: EBML
/// header, Segment, level-1 elements up to the first Cluster) is declared to end beyond `limit`
/// bytes from the start. Elements not yet complete in `buf` are judged by their declared size;
/// bytes that do not parse are left to the reader.
pub(crate) fn header_overflows(buf: &[u8], limit: u64) -> bool {
    let mut pos: u64 = 0;
    loop {
        let Some(rest) = usize::try_from(pos).ok().and_then(|p| buf.get(p..)) else {
            return false;
        };
        let Ok(Some((element, id_len))) = read_id(rest) else {
            return false;
        };
        let Ok(Some((size, size_len))) = read_size(rest.get(id_len..).unwrap_or_default()) else {
            return false;
        };
        let data_start = pos.saturating_add((id_len + size_len) as u64);
        match (element, size) {
            (id::CLUSTER, _) => return false,
            // Entered: its children are the level-1 elements.
            (id::SEGMENT, _) => pos = data_start,
            (_, Size::Known(n)) => {
                let end = data_start.saturating_add(n);
                if end > limit {
                    return true;
                }
                pos = end;
            }
            (_, Size::Unknown) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_header_elements_are_caught_before_their_bytes_arrive() {
        let mut v = kvs_core::mkv::writer::EBML_HEADER.to_vec();
        v.extend_from_slice(&kvs_core::mkv::writer::SEGMENT_UNKNOWN_SIZE);
        assert!(!header_overflows(&v, 1 << 20));
        let mut big = v.clone();
        big.extend_from_slice(&[0x16, 0x54, 0xAE, 0x6B, 0x01, 0, 0, 0x01, 0, 0, 0, 0]);
        assert!(header_overflows(&big, 1 << 20));
        let mut small = v.clone();
        small.extend_from_slice(&[0x16, 0x54, 0xAE, 0x6B, 0x84, 0xAE, 0x82, 0xD7, 0x81]);
        assert!(!header_overflows(&small, 1 << 20));
        assert!(!header_overflows(&[], 10));
        assert!(!header_overflows(&[0x00, 0x00], 10));
    }
}
