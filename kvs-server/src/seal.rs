//! Sealing of stored records: AES-256-GCM (ring) with a random 96-bit nonce per record.
//!
//! A sealed body is `nonce (12) || ciphertext || tag (16)`. The additional authenticated data
//! (AAD) binds every record to its stream (creation time and name), its kind and its position
//! (producer header id, or the fragment's clear metadata, which holds its sequence number), so a
//! record moved to another stream, kind or position, or replayed, fails to open.
//!
//! Nonces are drawn from the OS for every record, never from a counter: a sequence number can be
//! written twice after a crash (an unacknowledged fragment is rewritten), and a counter would then
//! reuse a nonce under the same key.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN as RING_NONCE_LEN, Nonce, UnboundKey};

/// Length of the random nonce in front of a sealed body.
pub const NONCE_LEN: usize = RING_NONCE_LEN;
/// Length of the GCM tag at the end of a sealed body.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed body has beyond its plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Length of a key (AES-256).
pub const KEY_LEN: usize = 32;

const DOMAIN_RECORD: &[u8] = b"kvs-record-v1\0";

/// Kind byte of a sealed producer header (the same value as in the store's record framing).
pub const KIND_HEADER: u8 = 1;
/// Kind byte of a sealed fragment body.
pub const KIND_FRAGMENT: u8 = 2;

/// Why sealing or opening failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The record does not open: it was altered, moved, or sealed under another key.
    #[error(
        "the record failed authentication: it was altered, moved from another stream or position, or sealed under another key"
    )]
    Integrity,
    /// The OS random source failed, so no nonce or key could be drawn.
    #[error("the OS random source failed: {0}")]
    Random(String),
    /// The key bytes are not a 256-bit key.
    #[error("a key must be {KEY_LEN} bytes")]
    BadKey,
}

/// CPU time spent sealing and opening, process-wide (for the load test's cost share).
static SEAL_NS: AtomicU64 = AtomicU64::new(0);
static OPEN_NS: AtomicU64 = AtomicU64::new(0);
static SEALED_BYTES: AtomicU64 = AtomicU64::new(0);
static OPENED_BYTES: AtomicU64 = AtomicU64::new(0);

/// Totals of sealing and opening in this process since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SealStats {
    /// Nanoseconds spent in [`SealKey::seal`].
    pub seal_ns: u64,
    /// Nanoseconds spent in [`SealKey::open`].
    pub open_ns: u64,
    /// Plaintext bytes sealed.
    pub sealed_bytes: u64,
    /// Plaintext bytes opened.
    pub opened_bytes: u64,
}

/// The process-wide [`SealStats`].
pub fn stats() -> SealStats {
    SealStats {
        seal_ns: SEAL_NS.load(Ordering::Relaxed),
        open_ns: OPEN_NS.load(Ordering::Relaxed),
        sealed_bytes: SEALED_BYTES.load(Ordering::Relaxed),
        opened_bytes: OPENED_BYTES.load(Ordering::Relaxed),
    }
}

static THREAD_CPU: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes [`stats`] count the calling thread's CPU time (from `/proc/thread-self/schedstat`, two
/// reads per call) instead of wall time, which a loaded machine inflates with preemption. For
/// measurements (`kvs-load`); off by default.
pub fn set_thread_cpu_accounting(on: bool) {
    THREAD_CPU.store(on, Ordering::Relaxed);
}

/// A point to measure from: wall clock, or the thread's CPU time when accounting is on.
#[derive(Clone, Copy)]
enum Mark {
    Wall(Instant),
    Cpu(u64),
}

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn mark() -> Mark {
    if THREAD_CPU.load(Ordering::Relaxed) {
        Mark::Cpu(thread_cpu_ns())
    } else {
        Mark::Wall(Instant::now())
    }
}

fn elapsed_ns(m: Mark) -> u64 {
    match m {
        Mark::Wall(t) => u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX),
        Mark::Cpu(start) => thread_cpu_ns().saturating_sub(start),
    }
}

/// Fills `buf` from the OS random source (secrets and nonces: no fallback).
pub fn os_random(buf: &mut [u8]) -> Result<(), SealError> {
    getrandom::fill(buf).map_err(|e| SealError::Random(e.to_string()))
}

/// An AES-256-GCM key.
pub struct SealKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

impl SealKey {
    /// A key from its 32 bytes.
    pub fn new(bytes: &[u8]) -> Result<SealKey, SealError> {
        if bytes.len() != KEY_LEN {
            return Err(SealError::BadKey);
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::BadKey)?;
        Ok(SealKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Seals `plaintext` with `aad`: `nonce || ciphertext || tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let t = mark();
        let mut nonce = [0u8; NONCE_LEN];
        os_random(&mut nonce)?;
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let body = out.get_mut(NONCE_LEN..).ok_or(SealError::Integrity)?;
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
            .map_err(|_| SealError::Integrity)?;
        out.extend_from_slice(tag.as_ref());
        SEAL_NS.fetch_add(elapsed_ns(t), Ordering::Relaxed);
        SEALED_BYTES.fetch_add(plaintext.len() as u64, Ordering::Relaxed);
        Ok(out)
    }

    /// Opens a sealed body in place and returns the plaintext (the buffer, shortened).
    pub fn open(&self, aad: &[u8], mut sealed: Vec<u8>) -> Result<Vec<u8>, SealError> {
        let t = mark();
        if sealed.len() < OVERHEAD {
            return Err(SealError::Integrity);
        }
        let nonce: [u8; NONCE_LEN] = sealed
            .get(..NONCE_LEN)
            .and_then(|n| n.try_into().ok())
            .ok_or(SealError::Integrity)?;
        let len = self
            .key
            .open_within(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut sealed,
                NONCE_LEN..,
            )
            .map_err(|_| SealError::Integrity)?
            .len();
        sealed.truncate(len);
        OPEN_NS.fetch_add(elapsed_ns(t), Ordering::Relaxed);
        OPENED_BYTES.fetch_add(len as u64, Ordering::Relaxed);
        Ok(sealed)
    }
}

/// What identifies a stream in authenticated data: its creation time and name (a stream deleted
/// and created again under the same name is another stream).
pub fn stream_identity(creation_ms: u64, name: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(12 + name.len());
    v.extend_from_slice(&creation_ms.to_le_bytes());
    v.extend_from_slice(&(name.len() as u32).to_le_bytes());
    v.extend_from_slice(name.as_bytes());
    v
}

/// The AAD of a record: domain, kind, stream identity, and the record's clear part (header id,
/// or fragment metadata with its sequence number).
pub fn record_aad(identity: &[u8], kind: u8, clear: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(DOMAIN_RECORD.len() + 1 + identity.len() + clear.len());
    v.extend_from_slice(DOMAIN_RECORD);
    v.push(kind);
    v.extend_from_slice(identity);
    v.extend_from_slice(clear);
    v
}

/// A stream's data key with the stream identity it is bound to.
#[derive(Debug)]
pub struct DataKey {
    key: SealKey,
    identity: Vec<u8>,
}

impl DataKey {
    /// A data key of the stream with `identity` (see [`stream_identity`]).
    pub fn new(bytes: &[u8], identity: Vec<u8>) -> Result<DataKey, SealError> {
        Ok(DataKey {
            key: SealKey::new(bytes)?,
            identity,
        })
    }

    /// Seals producer header `id`.
    pub fn seal_header(&self, id: u64, bytes: &[u8]) -> Result<Vec<u8>, SealError> {
        self.key.seal(
            &record_aad(&self.identity, KIND_HEADER, &id.to_le_bytes()),
            bytes,
        )
    }

    /// Opens producer header `id`.
    pub fn open_header(&self, id: u64, sealed: Vec<u8>) -> Result<Vec<u8>, SealError> {
        self.key.open(
            &record_aad(&self.identity, KIND_HEADER, &id.to_le_bytes()),
            sealed,
        )
    }

    /// Seals a fragment body; `meta` is its clear metadata as stored in the record.
    pub fn seal_fragment(&self, meta: &[u8], data: &[u8]) -> Result<Vec<u8>, SealError> {
        self.key
            .seal(&record_aad(&self.identity, KIND_FRAGMENT, meta), data)
    }

    /// Opens a fragment body stored with clear metadata `meta`.
    pub fn open_fragment(&self, meta: &[u8], sealed: Vec<u8>) -> Result<Vec<u8>, SealError> {
        self.key
            .open(&record_aad(&self.identity, KIND_FRAGMENT, meta), sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let a = DataKey::new(&[7u8; 32], stream_identity(1, "a")).unwrap();
        let b = DataKey::new(&[7u8; 32], stream_identity(2, "a")).unwrap();
        let s = a.seal_fragment(b"meta", b"hello world").unwrap();
        assert_eq!(s.len(), 11 + OVERHEAD);
        assert_eq!(a.open_fragment(b"meta", s.clone()).unwrap(), b"hello world");
        // Another stream, other metadata, another kind: all refused.
        assert_eq!(
            b.open_fragment(b"meta", s.clone()),
            Err(SealError::Integrity)
        );
        assert_eq!(
            a.open_fragment(b"metb", s.clone()),
            Err(SealError::Integrity)
        );
        assert!(a.open_header(0, s.clone()).is_err());
        let mut flipped = s.clone();
        flipped[20] ^= 1;
        assert!(a.open_fragment(b"meta", flipped).is_err());
        assert!(a.open_fragment(b"meta", vec![0; 5]).is_err());
        // Two seals of the same bytes differ (random nonces).
        assert_ne!(a.seal_fragment(b"meta", b"hello world").unwrap(), s);
    }
}
