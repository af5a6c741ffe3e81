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

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// What [`Reservation::acquire`] resolves to: bytes granted, to hand to [`Reservation::absorb`]
/// (dropped instead, they return to the pool).
pub(crate) type Grant =
    Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

#[derive(Debug)]
struct Inner {
    /// One permit per byte not charged to anyone.
    sem: Arc<Semaphore>,
    max: u64,
    /// Bytes charged now.
    used: AtomicU64,
    /// Highest `used` seen.
    peak: AtomicU64,
    /// Grants being waited for.
    waiting: AtomicU64,
}

/// Counts one grant being waited for, while it lives.
struct Waiting(Arc<Inner>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Inner {
    fn release(&self, bytes: u64) {
        if bytes == 0 {
            return;
        }
        // Uncounted before the permits return, so `used` never exceeds `max`.
        self.used.fetch_sub(bytes, Ordering::SeqCst);
        self.sem
            .add_permits(usize::try_from(bytes).unwrap_or(usize::MAX));
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
    /// A pool of `max` bytes (at most what a semaphore can count).
    pub(crate) fn new(max: u64) -> Budget {
        let max = max.min(Semaphore::MAX_PERMITS as u64);
        Budget(Arc::new(Inner {
            sem: Arc::new(Semaphore::new(usize::try_from(max).unwrap_or(0))),
            max,
            used: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
        }))
    }

    /// The size of the pool.
    pub(crate) fn max(&self) -> u64 {
        self.0.max
    }

    /// Bytes charged now.
    pub(crate) fn used(&self) -> u64 {
        self.0.used.load(Ordering::SeqCst)
    }

    /// The most bytes ever charged at once.
    pub(crate) fn peak(&self) -> u64 {
        self.0.peak.load(Ordering::SeqCst)
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
        }
    }
}

/// Bytes charged to the pool, returned to it on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    inner: Arc<Inner>,
    bytes: u64,
}

impl Reservation {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
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

    /// Waits in line for `n` bytes (at most `u32::MAX` at a time): the future keeps its place in
    /// line for as long as it is kept.
    pub(crate) fn acquire(&self, n: u64) -> Grant {
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        self.inner.waiting.fetch_add(1, Ordering::SeqCst);
        let waiting = Waiting(self.inner.clone());
        let acquire = self.inner.sem.clone().acquire_many_owned(n32);
        Box::pin(async move {
            let _waiting = waiting;
            acquire.await
        })
    }

    /// Adds granted bytes.
    pub(crate) fn absorb(&mut self, permit: OwnedSemaphorePermit) {
        self.bytes += self.inner.charge(permit);
    }

    /// Returns bytes beyond `n` to the pool.
    pub(crate) fn shrink_to(&mut self, n: u64) {
        if self.bytes > n {
            self.inner.release(self.bytes - n);
            self.bytes = n;
        }
    }

    /// Moves `n` bytes (or all it holds, if fewer) into a reservation of their own.
    pub(crate) fn split(&mut self, n: u64) -> Reservation {
        let n = n.min(self.bytes);
        self.bytes -= n;
        Reservation {
            inner: self.inner.clone(),
            bytes: n,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.inner.release(self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grants_wait_in_line_and_the_gauge_stays_within_the_budget() {
        let budget = Budget::new(100);
        let mut a = budget.empty();
        assert!(a.try_grow(80));
        let mut b = budget.empty();
        assert!(!b.try_grow(30));
        let waiting = b.acquire(30);
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
