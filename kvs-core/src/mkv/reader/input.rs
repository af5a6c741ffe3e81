//! The reader's input queue: the pushed chunks, kept as they came (zero-copy), with the few
//! operations the parser needs across chunk boundaries.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

/// Unconsumed input: a queue of pushed chunks.
#[derive(Debug, Default)]
pub(super) struct Input {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl Input {
    /// Appends a chunk (no copy).
    pub(super) fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Bytes held.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Copies up to `out.len()` leading bytes into `out`; returns how many were copied.
    #[inline]
    pub(super) fn peek(&self, out: &mut [u8]) -> usize {
        if let Some(src) = self.chunks.front().and_then(|f| f.get(..out.len())) {
            out.copy_from_slice(src);
            return out.len();
        }
        let mut filled = 0;
        for chunk in &self.chunks {
            let want = out.len() - filled;
            if want == 0 {
                break;
            }
            let n = want.min(chunk.len());
            if let (Some(dst), Some(src)) = (out.get_mut(filled..filled + n), chunk.get(..n)) {
                dst.copy_from_slice(src);
            }
            filled += n;
        }
        filled
    }

    /// The first pushed chunk still held (empty when none).
    #[inline]
    pub(super) fn front(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |c| &c[..])
    }

    /// Drops `skip` bytes, then removes and returns the next `n`, all from the first chunk (a
    /// zero-copy slice of it). The caller checks that the first chunk holds `skip + n` bytes;
    /// otherwise this falls back to [`advance`](Self::advance) and [`take`](Self::take).
    #[inline]
    pub(super) fn take_from_front(&mut self, skip: usize, n: usize) -> Bytes {
        if let Some(front) = self.chunks.front_mut()
            && front.len() >= skip + n
        {
            front.advance(skip);
            let out = front.split_to(n);
            if front.is_empty() {
                self.chunks.pop_front();
            }
            self.len -= skip + n;
            return out;
        }
        self.advance(skip);
        self.take(n)
    }

    /// Removes and returns the first `n` bytes (`n <= len`): a slice of the pushed chunk when the
    /// bytes lie in one chunk, else one copy that joins them.
    pub(super) fn take(&mut self, n: usize) -> Bytes {
        let n = n.min(self.len);
        if let Some(front) = self.chunks.front_mut()
            && front.len() >= n
        {
            let out = front.split_to(n);
            if front.is_empty() {
                self.chunks.pop_front();
            }
            self.len -= n;
            return out;
        }
        let mut joined = BytesMut::with_capacity(n);
        let mut left = n;
        while left > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let k = left.min(front.len());
            joined.extend_from_slice(front.get(..k).unwrap_or_default());
            front.advance(k);
            if front.is_empty() {
                self.chunks.pop_front();
            }
            left -= k;
        }
        self.len -= n - left;
        joined.freeze()
    }

    /// Drops the first `n` bytes (at most `len`).
    pub(super) fn advance(&mut self, n: usize) {
        let mut left = n.min(self.len);
        self.len -= left;
        while left > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.len() <= left {
                left -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(left);
                left = 0;
            }
        }
    }

    /// Position of the first occurrence of any of the 4-byte big-endian `patterns`.
    pub(super) fn find_any(&self, patterns: &[u32]) -> Option<usize> {
        let mut window: u32 = 0;
        let mut pos = 0usize;
        for chunk in &self.chunks {
            for &b in chunk.iter() {
                window = (window << 8) | u32::from(b);
                pos += 1;
                if pos >= 4 && patterns.contains(&window) {
                    return Some(pos - 4);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_within_and_across_chunks() {
        let mut input = Input::default();
        input.push(Bytes::from_static(b"abc"));
        input.push(Bytes::from_static(b"defg"));
        let mut head = [0u8; 5];
        assert_eq!(input.peek(&mut head), 5);
        assert_eq!(&head, b"abcde");
        assert_eq!(input.take(2), Bytes::from_static(b"ab"));
        assert_eq!(input.take(3), Bytes::from_static(b"cde"));
        assert_eq!(input.len(), 2);
        input.advance(1);
        assert_eq!(input.take(5), Bytes::from_static(b"g"));
        assert_eq!(input.len(), 0);
    }

    #[test]
    fn finds_patterns_across_chunks() {
        let mut input = Input::default();
        input.push(Bytes::from_static(&[0, 1, 0x1F, 0x43]));
        input.push(Bytes::from_static(&[0xB6, 0x75, 9]));
        assert_eq!(input.find_any(&[0x1F43_B675]), Some(2));
        assert_eq!(input.find_any(&[0x1A45_DFA3]), None);
    }
}
