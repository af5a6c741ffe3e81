//! The producer's fragment buffer: encoded fragments kept until acknowledged.
//!
//! Each fragment is the list of zero-copy chunks the encoder produced for it (headers and frame
//! payloads alternate), so a replay sends the very same bytes again. Fragments are ordered by a
//! session-local sequence number; the transmit cursor names a fragment by that number, so
//! fragments removed ahead of it (acknowledged, failed, dropped) never shift it.

use std::collections::VecDeque;

use bytes::Bytes;

use super::{ConnectionId, Millis};

/// ACK flag: BUFFERING seen on the current transmission.
pub const ACK_BUFFERING: u8 = 1;
/// ACK flag: RECEIVED seen on the current transmission.
pub const ACK_RECEIVED: u8 = 2;
/// ACK flag: PERSISTED seen.
pub const ACK_PERSISTED: u8 = 4;

/// One buffered fragment.
#[derive(Debug, Clone)]
pub struct BufferedFragment {
    /// Session-local sequence number (0, 1, 2, … in creation order).
    pub seq: u64,
    /// The Cluster timecode as written: what ACKs carry as `FragmentTimecode`.
    pub timecode: u64,
    /// PTS of its first frame, ns.
    pub start_pts_ns: i64,
    /// Largest PTS of its frames, ns.
    pub end_pts_ns: i64,
    /// Encoded chunks, in order: a header and a payload per frame, then maybe a tail. A
    /// frame header's first transmission moves it out (leaving an empty `Bytes`); later
    /// transmissions rebuild it from [`headers`](Self::headers). Use
    /// [`chunk_to_send`](Self::chunk_to_send) to read a chunk.
    pub chunks: Vec<Bytes>,
    /// Copy of every frame header, back to back (what replays send).
    pub headers: Vec<u8>,
    /// End offset in `headers` of each frame's header, one per frame.
    pub header_ends: Vec<usize>,
    /// Sum of the chunk lengths.
    pub len: usize,
    /// Id of its first frame.
    pub first_frame: u64,
    /// Number of frames.
    pub frames: u64,
    /// No more frames will be added (the next fragment started, or the stream ended).
    pub closed: bool,
    /// The connection its bytes last went out on (cleared by a rewind).
    pub sent_on: Option<ConnectionId>,
    /// When its first byte went out on `sent_on`.
    pub first_sent_at: Option<Millis>,
    /// Highest number of chunks ever sent (on any connection): bytes below it are retransmits.
    pub chunks_ever_sent: usize,
    /// ACK flags (`ACK_*`).
    pub acks: u8,
    /// Its chunks end with an end-of-fragment / end-of-stream Tags chain.
    pub ends_with_marker: bool,
}

impl BufferedFragment {
    /// The bytes of chunk `index` for transmission. A frame header never sent before is moved
    /// out of `chunks` (the session keeps its copy in `headers`), so a first transmission costs
    /// no reference count update; a payload or tail is a shared clone.
    pub fn chunk_to_send(&mut self, index: usize) -> Option<Bytes> {
        let first = index >= self.chunks_ever_sent;
        let chunk = self.chunks.get_mut(index)?;
        let frame = index / 2;
        if index.is_multiple_of(2) && frame < self.header_ends.len() {
            if first {
                return Some(std::mem::take(chunk));
            }
            let start = match frame.checked_sub(1) {
                Some(prev) => self.header_ends.get(prev).copied().unwrap_or(0),
                None => 0,
            };
            let end = self.header_ends.get(frame).copied().unwrap_or(start);
            return Some(Bytes::copy_from_slice(
                self.headers.get(start..end).unwrap_or_default(),
            ));
        }
        Some(chunk.clone())
    }

    /// Whether every chunk has been sent on `sent_on` given the cursor position.
    pub fn has(&self, flag: u8) -> bool {
        self.acks & flag != 0
    }
}

/// Ordered fragments plus their byte total.
#[derive(Debug, Clone, Default)]
pub struct FragmentBuffer {
    fragments: VecDeque<BufferedFragment>,
    bytes: usize,
    next_seq: u64,
}

impl FragmentBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Buffered bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of fragments.
    pub fn len(&self) -> usize {
        self.fragments.len()
    }

    /// No fragment buffered.
    pub fn is_empty(&self) -> bool {
        self.fragments.is_empty()
    }

    /// Fragments, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &BufferedFragment> {
        self.fragments.iter()
    }

    /// Fragments, oldest first, mutably.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut BufferedFragment> {
        self.fragments.iter_mut()
    }

    /// The oldest fragment.
    pub fn front(&self) -> Option<&BufferedFragment> {
        self.fragments.front()
    }

    /// The newest fragment.
    pub fn back(&self) -> Option<&BufferedFragment> {
        self.fragments.back()
    }

    /// Media duration from the oldest fragment's start to `pts_ns`, in ns (0 when empty).
    pub fn duration_to(&self, pts_ns: i64) -> u64 {
        self.fragments.front().map_or(0, |f| {
            u64::try_from(pts_ns.saturating_sub(f.start_pts_ns)).unwrap_or(0)
        })
    }

    /// Media duration currently held, in ns.
    pub fn duration(&self) -> u64 {
        self.fragments
            .back()
            .map_or(0, |b| self.duration_to(b.end_pts_ns))
    }

    /// Opens a new fragment (closing the previous one) and returns its sequence number.
    pub fn open(&mut self, timecode: u64, pts_ns: i64, first_frame: u64) -> u64 {
        // Fragments of a stream tend to have the same number of chunks: sizing the list like the
        // previous one saves its growth steps.
        let (mut chunks_hint, mut frames_hint, mut headers_hint) = (0, 0, 0);
        if let Some(back) = self.fragments.back_mut() {
            back.closed = true;
            chunks_hint = back.chunks.len() + 2;
            frames_hint = back.header_ends.len() + 1;
            headers_hint = back.headers.len() + back.headers.len() / 8;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.fragments.push_back(BufferedFragment {
            seq,
            timecode,
            start_pts_ns: pts_ns,
            end_pts_ns: pts_ns,
            chunks: Vec::with_capacity(chunks_hint),
            headers: Vec::with_capacity(headers_hint),
            header_ends: Vec::with_capacity(frames_hint),
            len: 0,
            first_frame,
            frames: 0,
            closed: false,
            sent_on: None,
            first_sent_at: None,
            chunks_ever_sent: 0,
            acks: 0,
            ends_with_marker: false,
        });
        seq
    }

    /// Appends one frame's chunks to the open (newest) fragment. Returns false (and adds
    /// nothing) when no fragment is open.
    pub fn append_frame(&mut self, header: Bytes, payload: Bytes, pts_ns: i64) -> bool {
        let Some(back) = self.fragments.back_mut().filter(|b| !b.closed) else {
            return false;
        };
        let n = header.len() + payload.len();
        back.headers.extend_from_slice(&header);
        back.header_ends.push(back.headers.len());
        back.chunks.push(header);
        back.chunks.push(payload);
        back.len += n;
        back.frames += 1;
        back.end_pts_ns = back.end_pts_ns.max(pts_ns);
        self.bytes += n;
        true
    }

    /// Appends a trailing chunk (end-of-stream tags) to the open fragment and closes it.
    pub fn close_with(&mut self, tail: Bytes) {
        if let Some(back) = self.fragments.back_mut().filter(|b| !b.closed) {
            self.bytes += tail.len();
            back.len += tail.len();
            if !tail.is_empty() {
                back.chunks.push(tail);
                back.ends_with_marker = true;
            }
            back.closed = true;
        }
    }

    /// Index of the first fragment whose sequence number is `>= seq`.
    pub fn index_from(&self, seq: u64) -> usize {
        // The transmit cursor is almost always on the newest fragment (or past it).
        match self.fragments.back() {
            Some(b) if b.seq == seq => return self.fragments.len() - 1,
            Some(b) if b.seq < seq => return self.fragments.len(),
            None => return 0,
            _ => {}
        }
        self.fragments.partition_point(|f| f.seq < seq)
    }

    /// The fragment at `index`.
    pub fn get(&self, index: usize) -> Option<&BufferedFragment> {
        self.fragments.get(index)
    }

    /// The fragment at `index`, mutably.
    pub fn get_mut(&mut self, index: usize) -> Option<&mut BufferedFragment> {
        self.fragments.get_mut(index)
    }

    /// Index of a fragment by sequence number.
    pub fn position(&self, seq: u64) -> Option<usize> {
        let i = self.index_from(seq);
        self.fragments.get(i).filter(|f| f.seq == seq).map(|_| i)
    }

    /// Removes the fragment at `index`.
    pub fn remove(&mut self, index: usize) -> Option<BufferedFragment> {
        let f = self.fragments.remove(index)?;
        self.bytes -= f.len;
        Some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_replay_identically_after_their_first_send_moved_them_out() {
        let mut b = FragmentBuffer::new();
        b.open(7, 0, 0);
        let frames = [(&b"H0"[..], &b"payload0"[..]), (b"HDR1", b"p1")];
        for (i, (h, p)) in frames.iter().enumerate() {
            assert!(b.append_frame(
                Bytes::copy_from_slice(h),
                Bytes::copy_from_slice(p),
                i as i64
            ));
        }
        b.close_with(Bytes::from_static(b"TAIL"));
        let f = b.get_mut(0).unwrap();
        let expect: Vec<&[u8]> = vec![b"H0", b"payload0", b"HDR1", b"p1", b"TAIL"];
        // First transmission.
        for (i, want) in expect.iter().enumerate() {
            assert_eq!(&f.chunk_to_send(i).unwrap()[..], *want);
            f.chunks_ever_sent = i + 1;
        }
        // The headers were moved out; a replay rebuilds them.
        assert!(f.chunks[0].is_empty() && f.chunks[2].is_empty());
        for (i, want) in expect.iter().enumerate() {
            assert_eq!(&f.chunk_to_send(i).unwrap()[..], *want);
        }
        assert!(f.chunk_to_send(5).is_none());
        assert_eq!(b.bytes(), 2 + 8 + 4 + 2 + 4);
    }
}
