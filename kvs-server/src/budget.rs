//! The global ingest byte budget: one pool of bytes shared by every PutMedia connection.
//!
//! Each connection bounds what it buffers (a fragment of at most `max_fragment_bytes`, at most
//! `max_pending_fragments` waiting for the disk), but 512 connections at those bounds would hold
//! tens of gigabytes. So every byte a connection holds is charged here first:
//!
//! - the bytes it has received and not yet cut into a fragment (its ingest buffer and the MKV
//!   reader's buffer), plus a read window for the next chunk of the request body;
//! - each complete fragment until it is persisted (or, at retention 0, until it moves into the
//!   stream's in-memory buffer, bounded per stream by `buffer_bytes`).
//!
//! The pool is a fair (FIFO) semaphore of bytes: a connection that cannot get what it needs stops
//! reading its socket (TCP backpressure) and waits in line; bytes freed by any connection go to
//! the oldest waiter first. The bytes granted are counted in a gauge that never exceeds the
//! budget ([`Budget::used`], read by tests through [`crate::Server::stats`]).
//!
//! A fragment still arriving cannot give its bytes back, so if every connection held part of a
//! fragment and all needed more, none could finish. Part of the budget is therefore kept as a
//! *reserve* that only one connection at a time, the *finisher*, may draw from: the oldest
//! waiter takes the finisher token ([`Budget::finisher`], a FIFO semaphore of one permit) and
//! holds it until its current fragment is complete. The reserve bytes it took leave with that
//! fragment and come back when it is persisted, so the next finisher can always finish too:
//! progress is guaranteed as long as one connection's need fits the reserve plus what it holds.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// Bytes granted from the main pool or (`reserve`) from the reserve.
#[derive(Debug)]
pub(crate) struct Granted {
    permit: OwnedSemaphorePermit,
    reserve: bool,
}

/// What [`Reservation::acquire`] resolves to: bytes granted, to hand to [`Reservation::absorb`]
/// (dropped instead, they return to the pool).
pub(crate) type Grant = Pin<Box<dyn Future<Output = Result<Granted, AcquireError>> + Send>>;

/// What [`Budget::finisher`] resolves to: the finisher token, returned on drop.
pub(crate) type Token =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

#[derive(Debug)]
struct Inner {
    /// One permit per byte of the main pool (the budget less the reserve) not charged to anyone.
    sem: Arc<Semaphore>,
    /// One permit per byte of the reserve not charged to anyone.
    reserve: Arc<Semaphore>,
    /// One permit: the right to draw from the reserve.
    finisher: Arc<Semaphore>,
    max: u64,
    /// Bytes of `max` set aside as the reserve.
    reserve_max: u64,
    /// Bytes charged now.
    used: AtomicU64,
    /// Highest `used` seen.
    peak: AtomicU64,
    /// Grants being waited for.
    waiting: AtomicU64,
    /// Times bytes were given back (tells a stalled pool from a slow one).
    releases: AtomicU64,
}

/// Counts one grant being waited for, while it lives.
struct Waiting(Arc<Inner>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Inner {
    fn release(&self, bytes: u64, reserve: bool) {
        if bytes == 0 {
            return;
        }
        // Uncounted before the permits return, so `used` never exceeds `max`.
        self.used.fetch_sub(bytes, Ordering::SeqCst);
        self.releases.fetch_add(1, Ordering::SeqCst);
        let sem = if reserve { &self.reserve } else { &self.sem };
        sem.add_permits(usize::try_from(bytes).unwrap_or(usize::MAX));
    }

    fn charge(&self, permit: OwnedSemaphorePermit) -> u64 {
        let bytes = permit.num_permits() as u64;
        permit.forget();
        let now = self.used.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.peak.fetch_max(now, Ordering::SeqCst);
        bytes
    }
}

/// The shared pool (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Budget(Arc<Inner>);

impl Budget {
    /// A pool of `max` bytes (at most what a semaphore can count), `reserve` of them (at most
    /// half) kept for the finisher.
    pub(crate) fn new(max: u64, reserve: u64) -> Budget {
        let max = max.min(Semaphore::MAX_PERMITS as u64);
        let reserve_max = reserve.min(max / 2);
        let permits = |n: u64| usize::try_from(n).unwrap_or(0);
        Budget(Arc::new(Inner {
            sem: Arc::new(Semaphore::new(permits(max - reserve_max))),
            reserve: Arc::new(Semaphore::new(permits(reserve_max))),
            finisher: Arc::new(Semaphore::new(1)),
            max,
            reserve_max,
            used: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            releases: AtomicU64::new(0),
        }))
    }

    /// The size of the pool.
    pub(crate) fn max(&self) -> u64 {
        self.0.max
    }

    /// The size of the reserve (part of [`Budget::max`]).
    pub(crate) fn reserve(&self) -> u64 {
        self.0.reserve_max
    }

    /// Waits in line (FIFO) for the finisher token: its holder may draw from the reserve.
    pub(crate) fn finisher(&self) -> Token {
        Box::pin(self.0.finisher.clone().acquire_owned())
    }

    /// Bytes charged now.
    pub(crate) fn used(&self) -> u64 {
        self.0.used.load(Ordering::SeqCst)
    }

    /// The most bytes ever charged at once.
    pub(crate) fn peak(&self) -> u64 {
        self.0.peak.load(Ordering::SeqCst)
    }

    /// How many times bytes were given back so far: a waiter that sees it unchanged for a while
    /// knows the whole pool is stalled, not just busy.
    pub(crate) fn releases(&self) -> u64 {
        self.0.releases.load(Ordering::SeqCst)
    }

    /// Connections waiting for bytes now.
    pub(crate) fn waiting(&self) -> u64 {
        self.0.waiting.load(Ordering::SeqCst)
    }

    /// A reservation of no bytes, to grow.
    pub(crate) fn empty(&self) -> Reservation {
        Reservation {
            inner: self.0.clone(),
            bytes: 0,
            extra: 0,
        }
    }
}

/// Bytes charged to the pool, returned to it on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    inner: Arc<Inner>,
    /// Bytes of the main pool.
    bytes: u64,
    /// Bytes of the reserve.
    extra: u64,
}

impl Reservation {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes + self.extra
    }

    /// Bytes of the reserve held.
    pub(crate) fn reserve_bytes(&self) -> u64 {
        self.extra
    }

    /// Grows by `n` bytes if they are free now (and nobody waits ahead for them).
    pub(crate) fn try_grow(&mut self, n: u64) -> bool {
        if n == 0 {
            return true;
        }
        let Ok(n32) = u32::try_from(n) else {
            return false;
        };
        match self.inner.sem.clone().try_acquire_many_owned(n32) {
            Ok(permit) => {
                self.bytes += self.inner.charge(permit);
                true
            }
            Err(_) => false,
        }
    }

    /// Waits in line for `n` bytes (at most `u32::MAX` at a time) of the main pool or, with
    /// `reserve` (only for the holder of the finisher token), of the reserve: the future keeps
    /// its place in line for as long as it is kept.
    pub(crate) fn acquire(&self, n: u64, reserve: bool) -> Grant {
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        self.inner.waiting.fetch_add(1, Ordering::SeqCst);
        let waiting = Waiting(self.inner.clone());
        let sem = if reserve {
            &self.inner.reserve
        } else {
            &self.inner.sem
        };
        let acquire = sem.clone().acquire_many_owned(n32);
        Box::pin(async move {
            let _waiting = waiting;
            let permit = acquire.await?;
            Ok(Granted { permit, reserve })
        })
    }

    /// Adds granted bytes.
    pub(crate) fn absorb(&mut self, granted: Granted) {
        let n = self.inner.charge(granted.permit);
        if granted.reserve {
            self.extra += n;
        } else {
            self.bytes += n;
        }
    }

    /// Returns bytes beyond `n` to the pool (those of the reserve first).
    pub(crate) fn shrink_to(&mut self, n: u64) {
        let mut excess = self.bytes().saturating_sub(n);
        let from_reserve = excess.min(self.extra);
        self.inner.release(from_reserve, true);
        self.extra -= from_reserve;
        excess -= from_reserve;
        self.inner.release(excess, false);
        self.bytes -= excess;
    }

    /// Moves `n` bytes (or all it holds, if fewer) into a reservation of their own, those of the
    /// reserve first (they come back to the reserve when that reservation is dropped).
    pub(crate) fn split(&mut self, n: u64) -> Reservation {
        let extra = n.min(self.extra);
        self.extra -= extra;
        let bytes = (n - extra).min(self.bytes);
        self.bytes -= bytes;
        Reservation {
            inner: self.inner.clone(),
            bytes,
            extra,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inner.release(self.bytes, false);
        self.inner.release(self.extra, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grants_wait_in_line_and_the_gauge_stays_within_the_budget() {
        let budget = Budget::new(100, 0);
        let mut a = budget.empty();
        assert!(a.try_grow(80));
        let mut b = budget.empty();
        assert!(!b.try_grow(30));
        let waiting = b.acquire(30, false);
        assert_eq!(budget.waiting(), 1);
        let part = a.split(50);
        assert_eq!((a.bytes(), part.bytes(), budget.used()), (30, 50, 80));
        drop(part);
        b.absorb(waiting.await.unwrap());
        assert_eq!(budget.waiting(), 0);
        assert_eq!((b.bytes(), budget.used()), (30, 60));
        b.shrink_to(10);
        drop(a);
        assert_eq!(budget.used(), 10);
        drop(b);
        assert_eq!((budget.used(), budget.peak()), (0, 80));
    }
}
