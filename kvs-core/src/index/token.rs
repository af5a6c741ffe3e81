//! ListFragments `NextToken`: an opaque, self-contained resume point.
//!
//! Follow-up ListFragments requests carry only the stream and the token (no selector), so the
//! token holds the query (kind and range) and the sort key `(timestamp, sequence)` of the last
//! fragment returned. Resuming starts strictly after that key, so pages never repeat or skip a
//! fragment, whatever was appended or trimmed in between.
//!
//! Wire form: standard base64 with padding (the model's pattern `[a-zA-Z0-9+/]+={0,2}`) of 38
//! bytes: version 1, kind (0 producer, 1 server), start, end, last timestamp, last sequence (u64
//! little-endian each), then a CRC-32 of the preceding 34 bytes, so that an edited or truncated
//! token is refused rather than silently misread.

use super::{RangeQuery, TimestampKind};
use crate::crc32::crc32;

const VERSION: u8 = 1;
const RAW_LEN: usize = 38;
/// Length of an encoded token: 52 base64 characters.
pub const TOKEN_LEN: usize = RAW_LEN.div_ceil(3) * 4;

/// Resume point of a ListFragments query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageToken {
    query: RangeQuery,
    last: (u64, u64),
}

/// A `NextToken` that is not one this index issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Wrong length.
    #[error("NextToken has {got} characters, expected {TOKEN_LEN}")]
    Length {
        /// The length received.
        got: usize,
    },
    /// A character outside the base64 alphabet, or misplaced padding.
    #[error("NextToken is not base64: bad character at offset {offset}")]
    Base64 {
        /// Character offset in the token.
        offset: usize,
    },
    /// The checksum does not match: the token was altered.
    #[error("NextToken checksum mismatch: the token was altered or truncated")]
    Checksum,
    /// Unknown version or kind byte, or a range whose start is after its end.
    #[error("NextToken content is invalid: {0}")]
    Invalid(&'static str),
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

fn b64_char(v: u32) -> char {
    char::from(ALPHABET.get((v & 63) as usize).copied().unwrap_or(b'A'))
}

impl PageToken {
    /// A token resuming `query` strictly after the fragment with sort key `last`.
    pub fn new(query: RangeQuery, last: (u64, u64)) -> Self {
        PageToken { query, last }
    }

    /// The query the token continues.
    pub fn query(&self) -> RangeQuery {
        self.query
    }

    /// `(timestamp, sequence)` of the last fragment already returned.
    pub fn last_key(&self) -> (u64, u64) {
        self.last
    }

    /// The `NextToken` string.
    pub fn encode(&self) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[0] = VERSION;
        raw[1] = match self.query.kind {
            TimestampKind::Producer => 0,
            TimestampKind::Server => 1,
        };
        let fields = [
            self.query.start_ms,
            self.query.end_ms,
            self.last.0,
            self.last.1,
        ];
        for (chunk, v) in raw[2..34].chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        let crc = crc32(&raw[..34]);
        raw[34..].copy_from_slice(&crc.to_le_bytes());
        let mut out = String::with_capacity(TOKEN_LEN);
        for group in raw.chunks(3) {
            let b = |i: usize| u32::from(group.get(i).copied().unwrap_or(0));
            let n = (b(0) << 16) | (b(1) << 8) | b(2);
            out.push(b64_char(n >> 18));
            out.push(b64_char(n >> 12));
            out.push(if group.len() > 1 {
                b64_char(n >> 6)
            } else {
                '='
            });
            out.push(if group.len() > 2 { b64_char(n) } else { '=' });
        }
        out
    }

    /// Parses a `NextToken` string this module wrote.
    pub fn decode(text: &str) -> Result<Self, TokenError> {
        let bytes = text.as_bytes();
        if bytes.len() != TOKEN_LEN {
            return Err(TokenError::Length { got: bytes.len() });
        }
        // 38 bytes = 12 groups of 3 plus 2: exactly one '=' at the end.
        let mut acc: u128 = 0;
        let mut bits = 0u32;
        let mut raw = [0u8; RAW_LEN];
        let mut n = 0usize;
        for (offset, &c) in bytes.iter().enumerate() {
            if offset == TOKEN_LEN - 1 {
                if c != b'=' {
                    return Err(TokenError::Base64 { offset });
                }
                continue;
            }
            let v = b64_value(c).ok_or(TokenError::Base64 { offset })?;
            acc = (acc << 6) | u128::from(v);
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                if let Some(slot) = raw.get_mut(n) {
                    *slot = (acc >> bits) as u8;
                }
                n += 1;
                acc &= (1u128 << bits) - 1;
            }
        }
        if n != RAW_LEN || acc != 0 {
            return Err(TokenError::Base64 {
                offset: TOKEN_LEN - 2,
            });
        }
        let body = raw.get(..34).unwrap_or_default();
        let mut stored = [0u8; 4];
        stored.copy_from_slice(raw.get(34..38).unwrap_or(&[0; 4]));
        if crc32(body) != u32::from_le_bytes(stored) {
            return Err(TokenError::Checksum);
        }
        if body.first() != Some(&VERSION) {
            return Err(TokenError::Invalid("unknown version"));
        }
        let kind = match body.get(1) {
            Some(0) => TimestampKind::Producer,
            Some(1) => TimestampKind::Server,
            _ => return Err(TokenError::Invalid("unknown timestamp kind")),
        };
        let mut v = [0u64; 4];
        for (slot, chunk) in v
            .iter_mut()
            .zip(body.get(2..).unwrap_or_default().chunks_exact(8))
        {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *slot = u64::from_le_bytes(b);
        }
        let [start_ms, end_ms, last_ts, last_seq] = v;
        if start_ms > end_ms || last_ts < start_ms || last_ts > end_ms {
            return Err(TokenError::Invalid("range or resume point out of order"));
        }
        Ok(PageToken {
            query: RangeQuery {
                kind,
                start_ms,
                end_ms,
            },
            last: (last_ts, last_seq),
        })
    }
}
