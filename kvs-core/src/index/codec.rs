//! The append-only record log of a [`FragmentIndex`], and its crash-tolerant rebuild.
//!
//! # Record framing
//!
//! ```text
//! offset  size  field
//! 0       1     record type: 0xA1 fragment, 0xA2 trim
//! 1       1     payload length L (44 for a fragment, 8 for a trim)
//! 2       L     payload, little-endian integers
//! 2+L     4     CRC-32 (IEEE 802.3, as zlib) of bytes 0..2+L, little-endian
//! ```
//!
//! Fragment payload: sequence u64, server timestamp u64, producer timestamp u64, location u64,
//! size u32, duration u32, random u32 (50 bytes per record in all). Trim payload: the cutoff u64
//! given to [`FragmentIndex::trim_before`].
//!
//! # Rebuild
//!
//! [`Rebuilder`] takes the log in chunks of any size (the caller reads the file) and applies
//! records until the first one that is incomplete, fails its checksum, has an unknown type or
//! length, or is rejected by the index (for example a sequence that does not increase). That
//! record and everything after it are discarded and reported as a [`TailDefect`]: after a crash
//! the log ends in a torn write, and rebuilding yields exactly the complete records before it.
//! A caller that wants to keep appending should first truncate its file to
//! [`Rebuilt::valid_bytes`].

use bytes::BufMut;

use super::{Fragment, FragmentIndex, IndexError, IndexLimits};
use crate::crc32::crc32;

/// Record type of a fragment record.
pub const RECORD_FRAGMENT: u8 = 0xA1;
/// Record type of a trim record.
pub const RECORD_TRIM: u8 = 0xA2;
/// Payload length of a fragment record.
pub const FRAGMENT_PAYLOAD_LEN: u8 = 44;
/// Payload length of a trim record.
pub const TRIM_PAYLOAD_LEN: u8 = 8;
/// Total bytes of a fragment record.
pub const FRAGMENT_RECORD_LEN: usize = 2 + FRAGMENT_PAYLOAD_LEN as usize + 4;
/// Largest record of any type.
const MAX_RECORD_LEN: usize = FRAGMENT_RECORD_LEN;

impl Fragment {
    /// Writes this fragment as one log record (50 bytes).
    pub fn encode_record(&self, buf: &mut impl BufMut) {
        let mut rec = [0u8; FRAGMENT_RECORD_LEN];
        let mut w = &mut rec[..];
        w.put_u8(RECORD_FRAGMENT);
        w.put_u8(FRAGMENT_PAYLOAD_LEN);
        w.put_u64_le(self.sequence);
        w.put_u64_le(self.server_timestamp_ms);
        w.put_u64_le(self.producer_timestamp_ms);
        w.put_u64_le(self.location);
        w.put_u32_le(self.size_bytes);
        w.put_u32_le(self.duration_ms);
        w.put_u32_le(self.random);
        let body = FRAGMENT_RECORD_LEN - 4;
        let crc = crc32(rec.get(..body).unwrap_or_default());
        if let Some(tail) = rec.get_mut(body..) {
            tail.copy_from_slice(&crc.to_le_bytes());
        }
        buf.put_slice(&rec);
    }
}

/// Writes a trim record: replaying it calls [`FragmentIndex::trim_before`]`(cutoff_ms)`.
pub fn encode_trim(cutoff_ms: u64, buf: &mut impl BufMut) {
    let mut rec = [0u8; 14];
    rec[0] = RECORD_TRIM;
    rec[1] = TRIM_PAYLOAD_LEN;
    rec[2..10].copy_from_slice(&cutoff_ms.to_le_bytes());
    let crc = crc32(&rec[..10]);
    rec[10..].copy_from_slice(&crc.to_le_bytes());
    buf.put_slice(&rec);
}

/// A decoded log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// [`FragmentIndex::append`] of this fragment.
    Fragment(Fragment),
    /// [`FragmentIndex::trim_before`] with this cutoff.
    Trim(u64),
}

/// Why the rebuild stopped before the end of the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TailReason {
    /// The log ended inside a record (a torn or truncated write).
    #[error("the log ends inside a record")]
    Truncated,
    /// The record's CRC-32 does not match its bytes.
    #[error("record checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// CRC stored in the record.
        stored: u32,
        /// CRC of the record's bytes.
        computed: u32,
    },
    /// The record type byte is not one this version writes.
    #[error("unknown record type {0:#04x}")]
    UnknownType(u8),
    /// The payload length does not match the record type.
    #[error("record type {kind:#04x} with payload length {len}, expected {expected}")]
    BadLength {
        /// The record type.
        kind: u8,
        /// The stored payload length.
        len: u8,
        /// The length this type has.
        expected: u8,
    },
    /// The record decoded but the index refused it.
    #[error("record rejected by the index: {0}")]
    Rejected(IndexError),
}

/// Where and why the rebuild stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("index log defect at byte {offset} ({discarded_bytes} bytes discarded): {reason}")]
pub struct TailDefect {
    /// Byte offset of the first discarded record.
    pub offset: u64,
    /// Bytes from `offset` to the end of the log.
    pub discarded_bytes: u64,
    /// What was wrong with the record at `offset`.
    pub reason: TailReason,
}

/// The result of a rebuild.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    /// The index as of the last complete, valid record.
    pub index: FragmentIndex,
    /// Complete valid records applied.
    pub records: u64,
    /// Length of the valid prefix of the log.
    pub valid_bytes: u64,
    /// Set when bytes after the valid prefix were discarded.
    pub defect: Option<TailDefect>,
}

/// Outcome of decoding one record from the front of a slice.
enum Decoded {
    /// A whole record of this many bytes.
    Record(Record, usize),
    /// More bytes are needed.
    Incomplete,
    /// The record is invalid.
    Bad(TailReason),
}

fn u64_at(p: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    if let Some(s) = p.get(at..at + 8) {
        b.copy_from_slice(s);
    }
    u64::from_le_bytes(b)
}

fn u32_at(p: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = p.get(at..at + 4) {
        b.copy_from_slice(s);
    }
    u32::from_le_bytes(b)
}

/// Decodes the record at the front of `data`.
fn decode(data: &[u8]) -> Decoded {
    let (Some(&kind), Some(&len)) = (data.first(), data.get(1)) else {
        if let Some(&kind) = data.first()
            && kind != RECORD_FRAGMENT
            && kind != RECORD_TRIM
        {
            return Decoded::Bad(TailReason::UnknownType(kind));
        }
        return Decoded::Incomplete;
    };
    let expected = match kind {
        RECORD_FRAGMENT => FRAGMENT_PAYLOAD_LEN,
        RECORD_TRIM => TRIM_PAYLOAD_LEN,
        other => return Decoded::Bad(TailReason::UnknownType(other)),
    };
    if len != expected {
        return Decoded::Bad(TailReason::BadLength {
            kind,
            len,
            expected,
        });
    }
    let body_len = 2 + usize::from(len);
    let total = body_len + 4;
    let (Some(body), Some(stored)) = (data.get(..body_len), data.get(body_len..total)) else {
        return Decoded::Incomplete;
    };
    let stored = u32_at(stored, 0);
    let computed = crc32(body);
    if stored != computed {
        return Decoded::Bad(TailReason::ChecksumMismatch { stored, computed });
    }
    let p = body.get(2..).unwrap_or_default();
    let record = if kind == RECORD_FRAGMENT {
        Record::Fragment(Fragment {
            sequence: u64_at(p, 0),
            server_timestamp_ms: u64_at(p, 8),
            producer_timestamp_ms: u64_at(p, 16),
            location: u64_at(p, 24),
            size_bytes: u32_at(p, 32),
            duration_ms: u32_at(p, 36),
            random: u32_at(p, 40),
        })
    } else {
        Record::Trim(u64_at(p, 0))
    };
    Decoded::Record(record, total)
}

/// Decodes every record of a whole log held in memory, stopping at the first defect: the records
/// and, when the log does not end cleanly, the defect.
pub fn decode_records(log: &[u8]) -> (Vec<Record>, Option<TailDefect>) {
    let mut out = Vec::new();
    let mut rest = log;
    while !rest.is_empty() {
        let offset = (log.len() - rest.len()) as u64;
        let reason = match decode(rest) {
            Decoded::Record(r, n) => {
                out.push(r);
                rest = rest.get(n..).unwrap_or_default();
                continue;
            }
            Decoded::Incomplete => TailReason::Truncated,
            Decoded::Bad(reason) => reason,
        };
        let defect = TailDefect {
            offset,
            discarded_bytes: rest.len() as u64,
            reason,
        };
        return (out, Some(defect));
    }
    (out, None)
}

/// Push-based rebuild of a [`FragmentIndex`] from its log, read in chunks by the caller.
///
/// Memory is bounded: besides the index (itself bounded by [`IndexLimits`]), at most one partial
/// record (50 bytes) is buffered between chunks.
#[derive(Debug, Clone)]
pub struct Rebuilder {
    index: FragmentIndex,
    pending: [u8; MAX_RECORD_LEN],
    pending_len: usize,
    /// Bytes consumed so far, valid or not.
    offset: u64,
    /// Length of the valid prefix.
    valid: u64,
    records: u64,
    /// Set at the first defect; later bytes are only counted.
    stopped: Option<(u64, TailReason)>,
}

impl Default for Rebuilder {
    fn default() -> Self {
        Self::new(IndexLimits::default())
    }
}

impl Rebuilder {
    /// Starts a rebuild into an empty index with these limits.
    pub fn new(limits: IndexLimits) -> Self {
        Rebuilder {
            index: FragmentIndex::with_limits(limits),
            pending: [0; MAX_RECORD_LEN],
            pending_len: 0,
            offset: 0,
            valid: 0,
            records: 0,
            stopped: None,
        }
    }

    /// Applies a record at the valid end of the log; returns false (and stops) when refused.
    fn apply(&mut self, record: Record, len: usize) -> bool {
        let result = match record {
            Record::Fragment(f) => self.index.append(f),
            Record::Trim(cutoff) => {
                self.index.trim_before(cutoff);
                Ok(())
            }
        };
        match result {
            Ok(()) => {
                self.valid += len as u64;
                self.records += 1;
                true
            }
            Err(e) => {
                self.stopped = Some((self.valid, TailReason::Rejected(e)));
                false
            }
        }
    }

    /// Feeds the next chunk of the log.
    pub fn push(&mut self, chunk: &[u8]) {
        self.offset += chunk.len() as u64;
        if self.stopped.is_some() {
            return;
        }
        let mut data = chunk;
        if self.pending_len > 0 {
            // Complete the buffered partial record, at most one record's worth of bytes.
            let room = MAX_RECORD_LEN - self.pending_len;
            let take = room.min(data.len());
            let (head, _) = data.split_at(take);
            if let Some(dst) = self
                .pending
                .get_mut(self.pending_len..self.pending_len + take)
            {
                dst.copy_from_slice(head);
            }
            let have = self.pending_len + take;
            let buffered = self.pending.get(..have).unwrap_or_default();
            match decode(buffered) {
                Decoded::Record(record, n) => {
                    // `n` covers the old pending bytes plus part of this chunk.
                    let used = n - self.pending_len;
                    self.pending_len = 0;
                    data = data.get(used..).unwrap_or_default();
                    if !self.apply(record, n) {
                        return;
                    }
                }
                Decoded::Incomplete => {
                    // The chunk was smaller than the rest of the record.
                    self.pending_len = have;
                    return;
                }
                Decoded::Bad(reason) => {
                    self.stopped = Some((self.valid, reason));
                    return;
                }
            }
        }
        loop {
            match decode(data) {
                Decoded::Record(record, n) => {
                    data = data.get(n..).unwrap_or_default();
                    if !self.apply(record, n) {
                        return;
                    }
                }
                Decoded::Incomplete => {
                    if let Some(dst) = self.pending.get_mut(..data.len()) {
                        dst.copy_from_slice(data);
                        self.pending_len = data.len();
                    }
                    return;
                }
                Decoded::Bad(reason) => {
                    self.stopped = Some((self.valid, reason));
                    return;
                }
            }
        }
    }

    /// Ends the log: returns the index of every complete valid record and reports what was
    /// discarded after them.
    pub fn finish(self) -> Rebuilt {
        let defect = match self.stopped {
            Some((offset, reason)) => Some((offset, reason)),
            None if self.pending_len > 0 => Some((self.valid, TailReason::Truncated)),
            None => None,
        };
        Rebuilt {
            index: self.index,
            records: self.records,
            valid_bytes: self.valid,
            defect: defect.map(|(offset, reason)| TailDefect {
                offset,
                discarded_bytes: self.offset - offset,
                reason,
            }),
        }
    }

    /// Rebuilds from a whole log in memory.
    pub fn rebuild(log: &[u8], limits: IndexLimits) -> Rebuilt {
        let mut r = Rebuilder::new(limits);
        r.push(log);
        r.finish()
    }
}
