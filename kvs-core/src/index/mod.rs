//! The fragment timestamp index of one stream: which fragments exist, in which order, and where
//! the storage layer keeps them.
//!
//! [`FragmentIndex`] answers every read-side question the KVS API asks about fragments:
//!
//! * **ListFragments**: inclusive ranges by producer or server timestamp, a page at a time, with
//!   an opaque [`PageToken`] that resumes exactly after the last returned fragment
//!   ([`FragmentIndex::list`], [`FragmentIndex::list_next`]);
//! * **GetMedia** start selectors: EARLIEST, NOW, FRAGMENT_NUMBER / CONTINUATION_TOKEN and the two
//!   timestamp selectors ([`FragmentIndex::seek`]), then fragments in fragment-number order
//!   ([`FragmentIndex::iter_from_sequence`]);
//! * **GetMediaForFragmentList**: lookup by number ([`FragmentIndex::get_by_number`]);
//! * **GetClip** and **HLS/DASH** fragment selection with their de-duplication rules
//!   ([`FragmentIndex::clip`], [`FragmentIndex::playlist`], see [`select`]);
//! * retention ([`FragmentIndex::trim_before`]: the cutoff is an input, the index reads no clock).
//!
//! # Layout and costs
//!
//! Fragments arrive with strictly increasing sequence numbers and non-decreasing server
//! timestamps (the ingest mints both; [`FragmentIndex::append`] rejects anything else), so the
//! primary store is a deque in append order, which is at once sequence order and server-timestamp
//! order. Producer timestamps are *not* monotonic: a producer that reconnects replays clusters it
//! already sent, and a producer clock may step back. Ingest does not (and must not) reject those,
//! so the index keeps a secondary deque of positions sorted by `(producer timestamp, sequence)`.
//!
//! Per fragment that is one [`Fragment`] (48 bytes) plus one 12-byte secondary element (the
//! producer timestamp, so that producer searches read only the secondary deque, and the position
//! modulo 2^32): 60 bytes ([`FragmentIndex::BYTES_PER_FRAGMENT`]), plus the deques' spare
//! capacity and a copy of every 64th server timestamp (8 bytes per 64 fragments, where
//! server-timestamp searches take their first steps in cache). An index holds at most `u32::MAX` fragments. The 47-digit fragment number is never stored; it is rendered
//! on demand from `(sequence, server timestamp, random28)`.
//!
//! * queries (range pages, seeks, lookups): `O(log n)` plus the size of the answer;
//! * appends: `O(1)` when the producer timestamp is not older than the newest one (the normal
//!   case); an out-of-order producer timestamp is inserted into the secondary deque, which moves
//!   the elements between the insertion point and the nearer end: replays land near the end, so
//!   this is cheap in practice, `O(n)` in the worst case;
//! * trims: `O(trimmed)` plus, for each trimmed fragment whose producer timestamp sorts after a
//!   surviving one (only after replays), one `O(log n)` search and a short shift near the front.
//!
//! # Persistence
//!
//! The index never touches files. [`codec`] defines an append-only record log: the caller writes
//! [`Fragment::encode_record`] (and [`codec::encode_trim`]) bytes after each change, and after a
//! crash feeds the log back through [`codec::Rebuilder`], which tolerates and reports a torn tail.

pub mod codec;
pub mod select;
pub mod token;

use std::collections::VecDeque;

use crate::fragment::FragmentNumber;

pub use codec::{Rebuilder, Rebuilt, TailDefect, TailReason};
pub use select::{Clip, DiscontinuityMode, PlaybackMode, PlaylistEntry, PlaylistRequest};
pub use token::{PageToken, TokenError};

/// Largest page ListFragments may ask for (`MaxResults` is 1..1000).
pub const MAX_LIST_RESULTS: usize = 1000;

/// Largest random part of a fragment number: 28 bits.
pub const RANDOM_MASK: u32 = 0x0FFF_FFFF;

/// One indexed fragment: everything ListFragments returns, plus where the storage layer keeps it.
///
/// 48 bytes. The fragment number is `(sequence, server_timestamp_ms, random)`, rendered by
/// [`Fragment::number`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// The sequence counter of the fragment number (bits 92..156); strictly increasing per stream.
    pub sequence: u64,
    /// Ingestion time, epoch ms (bits 28..92 of the fragment number); non-decreasing per stream.
    pub server_timestamp_ms: u64,
    /// Producer time of the fragment's start, epoch ms; any order.
    pub producer_timestamp_ms: u64,
    /// Opaque storage location the storage layer chose (file offset, record id, ...).
    pub location: u64,
    /// `FragmentSizeInBytes`: the whole stored fragment.
    pub size_bytes: u32,
    /// `FragmentLengthInMilliseconds`: the fragment's duration.
    pub duration_ms: u32,
    /// The low 28 bits of the fragment number (at most [`RANDOM_MASK`]).
    pub random: u32,
}

impl Fragment {
    /// The fragment's 47-digit number, rendered from its fields.
    pub fn number(&self) -> FragmentNumber {
        FragmentNumber::mint(self.sequence, self.server_timestamp_ms, self.random)
    }

    /// The fragment's start time under `kind`.
    pub fn timestamp(&self, kind: TimestampKind) -> u64 {
        match kind {
            TimestampKind::Producer => self.producer_timestamp_ms,
            TimestampKind::Server => self.server_timestamp_ms,
        }
    }

    /// End of the fragment under `kind`: start plus duration (saturating).
    pub fn end(&self, kind: TimestampKind) -> u64 {
        self.timestamp(kind)
            .saturating_add(u64::from(self.duration_ms))
    }

    /// Sort key under `kind`: `(start timestamp, sequence)`. Every ordering the index produces is
    /// ascending in this key.
    pub fn key(&self, kind: TimestampKind) -> (u64, u64) {
        (self.timestamp(kind), self.sequence)
    }
}

/// Which of a fragment's two timestamps a query uses (`FragmentSelectorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimestampKind {
    /// `PRODUCER_TIMESTAMP`: the producer's time of the fragment start.
    Producer,
    /// `SERVER_TIMESTAMP`: the ingestion time.
    Server,
}

/// An inclusive timestamp range (`TimestampRange`): fragments whose *start* timestamp is
/// `>= start_ms` and `<= end_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RangeQuery {
    /// Which timestamp the range applies to.
    pub kind: TimestampKind,
    /// First start timestamp included, epoch ms.
    pub start_ms: u64,
    /// Last start timestamp included, epoch ms.
    pub end_ms: u64,
}

/// One page of a ListFragments answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The fragments, ascending by [`Fragment::key`] of the query's kind.
    pub fragments: Vec<Fragment>,
    /// Present when more fragments matched at the time of the call; resumes exactly after the
    /// last fragment of this page.
    pub next_token: Option<PageToken>,
}

/// Where a GetMedia session starts (`StartSelector`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartSelector<'a> {
    /// `EARLIEST`: the oldest retained fragment.
    Earliest,
    /// `NOW`: the newest fragment.
    Now,
    /// `FRAGMENT_NUMBER` (and `CONTINUATION_TOKEN`, which equals a fragment number): the fragment
    /// right after this one in fragment-number order. `None` when the number is not indexed.
    AfterFragmentNumber(&'a FragmentNumber),
    /// The first fragment with a sequence greater than this one (lenient resume: works even if the
    /// fragment itself was trimmed).
    AfterSequence(u64),
    /// `PRODUCER_TIMESTAMP`: the fragment containing this producer time, else the first starting
    /// at or after it (see [`FragmentIndex::containing`]).
    ProducerTimestamp(u64),
    /// `SERVER_TIMESTAMP`: the fragment containing this server time, else the first starting at or
    /// after it.
    ServerTimestamp(u64),
}

/// Sizing limits of one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexLimits {
    /// Most fragments held at once; [`FragmentIndex::append`] fails beyond it.
    pub max_fragments: usize,
}

impl Default for IndexLimits {
    /// 100 million fragments (about 6 GB of index): more than a year of 1-second fragments.
    fn default() -> Self {
        IndexLimits {
            max_fragments: 100_000_000,
        }
    }
}

/// Why a fragment was not added to the index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// Sequence numbers must strictly increase.
    #[error("fragment sequence {got} is not after the last indexed sequence {last}")]
    SequenceNotIncreasing {
        /// The rejected sequence.
        got: u64,
        /// The newest indexed sequence.
        last: u64,
    },
    /// Server timestamps must not decrease (the ingest clamps its clock).
    #[error(
        "fragment sequence {sequence}: server timestamp {got} ms is before the last indexed server timestamp {last} ms"
    )]
    ServerTimestampDecreasing {
        /// The rejected fragment's sequence.
        sequence: u64,
        /// Its server timestamp.
        got: u64,
        /// The newest indexed server timestamp.
        last: u64,
    },
    /// The random part of a fragment number has 28 bits.
    #[error("fragment sequence {sequence}: random part {random:#x} does not fit in 28 bits")]
    RandomTooWide {
        /// The rejected fragment's sequence.
        sequence: u64,
        /// The rejected random value.
        random: u32,
    },
    /// The index holds [`IndexLimits::max_fragments`] fragments already.
    #[error("fragment index is full: it already holds its limit of {limit} fragments")]
    Full {
        /// The limit.
        limit: usize,
    },
}

/// The fragment index of one stream. See the [module documentation](self).
#[derive(Debug, Clone, Default)]
pub struct FragmentIndex {
    /// Fragments in append order (= sequence order = server-timestamp order).
    entries: VecDeque<Fragment>,
    /// Every fragment once, sorted by `(producer timestamp, sequence)`.
    by_producer: VecDeque<ProducerSlot>,
    /// Absolute position of `entries[0]`: how many fragments were ever trimmed.
    base: u64,
    limits: IndexLimits,
    /// Server timestamps of the fragments whose absolute position is a multiple of
    /// [`SAMPLE_EVERY`], oldest first: a small copy of `entries` (8 bytes per 64 fragments) that
    /// server-timestamp searches run their first steps in, so that they stay in cache and touch
    /// the large deque only inside one 64-fragment window.
    server_samples: VecDeque<u64>,
}

/// One fragment in this many (by absolute position) has its server timestamp sampled.
const SAMPLE_EVERY: u64 = 64;

/// Number of multiples of [`SAMPLE_EVERY`] in the absolute positions `[base, end)`.
fn samples_between(base: u64, end: u64) -> usize {
    (end.div_ceil(SAMPLE_EVERY) - base.div_ceil(SAMPLE_EVERY)) as usize
}

/// First index in `lo..hi` of `d` where `pred` turns false (`pred` must be true, then false, over
/// the range); `hi` when it never does.
fn partition_range<T>(
    d: &VecDeque<T>,
    mut lo: usize,
    mut hi: usize,
    pred: impl Fn(&T) -> bool,
) -> usize {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if d.get(mid).is_some_and(&pred) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Secondary-order element: the producer timestamp (so that searches read no entry) and the
/// fragment's absolute position modulo 2^32 (12 bytes, alignment 4). The index holds fewer than
/// 2^32 fragments, so `pos - base` modulo 2^32 recovers the slot in `entries`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProducerSlot {
    hi: u32,
    lo: u32,
    pos: u32,
}

impl ProducerSlot {
    fn new(producer_ms: u64, pos: u64) -> Self {
        ProducerSlot {
            hi: (producer_ms >> 32) as u32,
            lo: producer_ms as u32,
            pos: pos as u32,
        }
    }

    fn producer(self) -> u64 {
        (u64::from(self.hi) << 32) | u64::from(self.lo)
    }
}

/// Iterator over a range of fragments in one kind's order, ascending by key; see
/// [`FragmentIndex::range`].
#[derive(Debug, Clone)]
pub struct RangeIter<'a> {
    index: &'a FragmentIndex,
    kind: TimestampKind,
    slot: usize,
    end_ms: u64,
}

impl<'a> Iterator for RangeIter<'a> {
    type Item = &'a Fragment;

    fn next(&mut self) -> Option<&'a Fragment> {
        let f = self.index.at_slot(self.kind, self.slot)?;
        if f.timestamp(self.kind) > self.end_ms {
            return None;
        }
        self.slot += 1;
        Some(f)
    }
}

impl FragmentIndex {
    /// An empty index with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty index with the given limits (`max_fragments` is capped at `u32::MAX`).
    pub fn with_limits(limits: IndexLimits) -> Self {
        FragmentIndex {
            limits: IndexLimits {
                max_fragments: limits.max_fragments.min(u32::MAX as usize),
            },
            ..Self::default()
        }
    }

    /// The limits this index enforces.
    pub fn limits(&self) -> IndexLimits {
        self.limits
    }

    /// Number of indexed fragments.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no fragment is indexed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// All fragments in sequence order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Fragment> + ExactSizeIterator {
        self.entries.iter()
    }

    /// The oldest retained fragment (`EARLIEST`).
    pub fn first(&self) -> Option<&Fragment> {
        self.entries.front()
    }

    /// The newest fragment (`NOW`).
    pub fn last(&self) -> Option<&Fragment> {
        self.entries.back()
    }

    /// Slot in `entries` of a secondary-order element.
    fn entry_slot(&self, s: ProducerSlot) -> usize {
        s.pos.wrapping_sub(self.base as u32) as usize
    }

    /// The fragment at `slot` of `kind` order.
    fn at_slot(&self, kind: TimestampKind, slot: usize) -> Option<&Fragment> {
        match kind {
            TimestampKind::Server => self.entries.get(slot),
            TimestampKind::Producer => {
                let s = *self.by_producer.get(slot)?;
                self.entries.get(self.entry_slot(s))
            }
        }
    }

    /// `s`'s key is less than `key` (`(producer, sequence)`); reads the entry only on a tie.
    fn producer_less(&self, s: ProducerSlot, key: (u64, u64)) -> bool {
        let p = s.producer();
        p < key.0
            || (p == key.0
                && self
                    .entries
                    .get(self.entry_slot(s))
                    .is_some_and(|f| f.sequence < key.1))
    }

    /// First slot of `kind` order whose key is `>= key`.
    fn lower_bound(&self, kind: TimestampKind, key: (u64, u64)) -> usize {
        match kind {
            TimestampKind::Server => self.server_lower_bound(key),
            TimestampKind::Producer => self
                .by_producer
                .partition_point(|&s| self.producer_less(s, key)),
        }
    }

    /// First slot of `entries` whose `(server timestamp, sequence)` is `>= key`: the same answer
    /// as a binary search of `entries`, found through `server_samples` first.
    fn server_lower_bound(&self, key: (u64, u64)) -> usize {
        let less = |f: &Fragment| f.key(TimestampKind::Server) < key;
        // Slot of sample 0; sample `j` is at `first + j * SAMPLE_EVERY`.
        let first = (self.base.div_ceil(SAMPLE_EVERY) * SAMPLE_EVERY - self.base) as usize;
        let step = SAMPLE_EVERY as usize;
        let slot = |j: usize| first + j * step;
        let samples = &self.server_samples;
        // Samples before `j` start before `key.0`, so their keys are below `key`.
        let j = samples.partition_point(|&ts| ts < key.0);
        let lo = match j.checked_sub(1) {
            Some(prev) => slot(prev) + 1,
            None => 0,
        };
        // The first sample starting after `key.0` has a key above `key`.
        let after = match samples.get(j) {
            Some(&ts) if ts > key.0 => j,
            Some(_) => partition_range(samples, j + 1, samples.len(), |&ts| ts <= key.0),
            None => samples.len(),
        };
        let hi = if after < samples.len() {
            slot(after).min(self.entries.len())
        } else {
            self.entries.len()
        };
        partition_range(&self.entries, lo.min(hi), hi, less)
    }

    /// Start timestamp at `slot` of `kind` order.
    fn ts_at(&self, kind: TimestampKind, slot: usize) -> Option<u64> {
        match kind {
            TimestampKind::Server => self.entries.get(slot).map(|f| f.server_timestamp_ms),
            TimestampKind::Producer => self.by_producer.get(slot).map(|s| s.producer()),
        }
    }

    /// First slot of the run of equal start timestamps that contains `slot`.
    fn first_of_ties(&self, kind: TimestampKind, slot: usize) -> usize {
        let Some(ts) = self.ts_at(kind, slot) else {
            return slot;
        };
        let mut j = slot;
        for _ in 0..8 {
            match j.checked_sub(1) {
                Some(prev) if self.ts_at(kind, prev) == Some(ts) => j = prev,
                Some(_) | None => return j,
            }
        }
        // A long run of equal timestamps: search instead.
        self.lower_bound(kind, (ts, 0))
    }

    /// Adds a fragment. Its sequence must be greater, and its server timestamp not smaller, than
    /// those of the newest indexed fragment (also across trims); its random part must fit 28 bits.
    pub fn append(&mut self, fragment: Fragment) -> Result<(), IndexError> {
        if fragment.random > RANDOM_MASK {
            return Err(IndexError::RandomTooWide {
                sequence: fragment.sequence,
                random: fragment.random,
            });
        }
        if let Some(last) = self.entries.back() {
            if fragment.sequence <= last.sequence {
                return Err(IndexError::SequenceNotIncreasing {
                    got: fragment.sequence,
                    last: last.sequence,
                });
            }
            if fragment.server_timestamp_ms < last.server_timestamp_ms {
                return Err(IndexError::ServerTimestampDecreasing {
                    sequence: fragment.sequence,
                    got: fragment.server_timestamp_ms,
                    last: last.server_timestamp_ms,
                });
            }
        }
        if self.entries.len() >= self.limits.max_fragments {
            return Err(IndexError::Full {
                limit: self.limits.max_fragments,
            });
        }
        let pos = self.base + self.entries.len() as u64;
        let slot = ProducerSlot::new(fragment.producer_timestamp_ms, pos);
        // The new fragment has the greatest sequence: it goes after every equal timestamp.
        let in_order = self
            .by_producer
            .back()
            .is_none_or(|b| b.producer() <= fragment.producer_timestamp_ms);
        if in_order {
            self.by_producer.push_back(slot);
        } else {
            let p = fragment.producer_timestamp_ms;
            let at = self.by_producer.partition_point(|s| s.producer() <= p);
            self.by_producer.insert(at, slot);
        }
        if pos.is_multiple_of(SAMPLE_EVERY) {
            self.server_samples.push_back(fragment.server_timestamp_ms);
        }
        self.entries.push_back(fragment);
        Ok(())
    }

    /// Drops every fragment whose server timestamp is older than `cutoff_ms` (retention; the
    /// caller computes the cutoff from its clock). Returns how many were dropped.
    pub fn trim_before(&mut self, cutoff_ms: u64) -> usize {
        let dead = self
            .entries
            .partition_point(|f| f.server_timestamp_ms < cutoff_ms);
        if dead == 0 {
            return 0;
        }
        let mut popped = 0usize;
        while let Some(&s) = self.by_producer.front() {
            if self.entry_slot(s) >= dead {
                break;
            }
            self.by_producer.pop_front();
            popped += 1;
        }
        if popped < dead
            && let Some(&front) = self.by_producer.front()
        {
            // Some dead fragments sort after a surviving one in producer order (a replayed or
            // late fragment survives with an older producer timestamp). Find each by search.
            let front_key = self
                .entries
                .get(self.entry_slot(front))
                .map_or((0, 0), |f| f.key(TimestampKind::Producer));
            for i in 0..dead {
                let Some(key) = self.entries.get(i).map(|f| f.key(TimestampKind::Producer)) else {
                    break;
                };
                if key <= front_key {
                    continue; // sorted before the first survivor: already popped
                }
                let at = self.lower_bound(TimestampKind::Producer, key);
                if let Some(&s) = self.by_producer.get(at)
                    && self.entry_slot(s) == i
                {
                    self.by_producer.remove(at);
                }
            }
        }
        let end = self.base + self.entries.len() as u64;
        self.entries.drain(..dead);
        self.base += dead as u64;
        let keep = samples_between(self.base, end);
        let drop = self.server_samples.len().saturating_sub(keep);
        self.server_samples.drain(..drop);
        dead
    }

    /// Fragments in `kind` order (ascending [`Fragment::key`]) whose key is `>= key`.
    pub fn iter_from_key(&self, kind: TimestampKind, key: (u64, u64)) -> RangeIter<'_> {
        RangeIter {
            index: self,
            kind,
            slot: self.lower_bound(kind, key),
            end_ms: u64::MAX,
        }
    }

    /// Fragments in `kind` order whose start timestamp lies in `[start_ms, end_ms]`.
    pub fn range(&self, query: RangeQuery) -> RangeIter<'_> {
        self.range_after(query, None)
    }

    fn range_after(&self, query: RangeQuery, after: Option<(u64, u64)>) -> RangeIter<'_> {
        let from = match after {
            // Strictly after `after`; (ts, u64::MAX) cannot be exceeded, so step the timestamp.
            Some((ts, seq)) => match seq.checked_add(1) {
                Some(next) => (ts, next),
                None => (ts.saturating_add(1), 0),
            },
            None => (query.start_ms, 0),
        };
        let from = from.max((query.start_ms, 0));
        if query.start_ms > query.end_ms {
            return RangeIter {
                index: self,
                kind: query.kind,
                slot: usize::MAX,
                end_ms: 0,
            };
        }
        RangeIter {
            end_ms: query.end_ms,
            ..self.iter_from_key(query.kind, from)
        }
    }

    /// ListFragments, first page: at most `max_results` (clamped to 1..=[`MAX_LIST_RESULTS`])
    /// fragments of `query`, ascending by `(timestamp, sequence)`, and a token when more matched.
    pub fn list(&self, query: RangeQuery, max_results: usize) -> Page {
        self.page(query, None, max_results)
    }

    /// ListFragments, a follow-up page: resumes exactly after the last fragment of the page that
    /// produced `token`, with the token's own range and kind. Fragments appended since are
    /// included when they sort after that point; trims never cause duplicates or skips of
    /// surviving fragments.
    pub fn list_next(&self, token: &PageToken, max_results: usize) -> Page {
        self.page(token.query(), Some(token.last_key()), max_results)
    }

    fn page(&self, query: RangeQuery, after: Option<(u64, u64)>, max_results: usize) -> Page {
        let max = max_results.clamp(1, MAX_LIST_RESULTS);
        let it = self.range_after(query, after);
        // Collect one more than a page to learn whether more remain.
        let mut fragments = Vec::with_capacity(max + 1);
        match query.kind {
            TimestampKind::Server => {
                // Contiguous copies: the answer is a run of the primary deque.
                let (a, b) = self.entries.as_slices();
                let (a, b) = match it.slot.checked_sub(a.len()) {
                    None => (a.get(it.slot..).unwrap_or_default(), b),
                    Some(in_b) => (&[][..], b.get(in_b..).unwrap_or_default()),
                };
                for part in [a, b] {
                    let want = max + 1 - fragments.len();
                    let part = part.get(..want.min(part.len())).unwrap_or_default();
                    // Server timestamps never decrease along `entries`: the end of the range
                    // is found by a short search (7 probes for a page of 100), not a scan.
                    let n = part.partition_point(|f| f.server_timestamp_ms <= it.end_ms);
                    fragments.extend_from_slice(part.get(..n).unwrap_or_default());
                    if n < part.len() {
                        break;
                    }
                }
            }
            TimestampKind::Producer => fragments.extend(it.take(max + 1).copied()),
        }
        let more = fragments.len() > max;
        fragments.truncate(max);
        let next_token = match (more, fragments.last()) {
            (true, Some(last)) => Some(PageToken::new(query, last.key(query.kind))),
            _ => None,
        };
        Page {
            fragments,
            next_token,
        }
    }

    /// The fragment with this sequence number.
    pub fn get_by_sequence(&self, sequence: u64) -> Option<&Fragment> {
        let i = self
            .entries
            .binary_search_by_key(&sequence, |f| f.sequence)
            .ok()?;
        self.entries.get(i)
    }

    /// The fragment with exactly this number (GetMediaForFragmentList). `None` for numbers this
    /// index never held, was trimmed of, or that belong to another stream (random part differs).
    pub fn get_by_number(&self, number: &FragmentNumber) -> Option<&Fragment> {
        if number.as_str().len() != 47 {
            return None;
        }
        let f = self.get_by_sequence(number.sequence()?)?;
        (f.number() == *number).then_some(f)
    }

    /// The first fragment in sequence order whose sequence is greater than `sequence`.
    pub fn after_sequence(&self, sequence: u64) -> Option<&Fragment> {
        let i = self.entries.partition_point(|f| f.sequence <= sequence);
        self.entries.get(i)
    }

    /// Fragments in sequence order starting at the first whose sequence is `>= sequence`: what a
    /// GetMedia session sends after [`seek`](Self::seek) found its start.
    pub fn iter_from_sequence(&self, sequence: u64) -> impl Iterator<Item = &Fragment> + '_ {
        let i = self.entries.partition_point(|f| f.sequence < sequence);
        self.entries.range(i..)
    }

    /// One search for both seeks: `(containing, first at or after)` slots of `kind` order.
    fn locate(&self, kind: TimestampKind, t_ms: u64) -> (Option<usize>, usize) {
        // Every slot before `i` starts at or before t; slot `i` starts after t.
        let i = match t_ms.checked_add(1) {
            Some(next) => self.lower_bound(kind, (next, 0)),
            None => self.entries.len(),
        };
        let Some(last) = i.checked_sub(1) else {
            return (None, i);
        };
        let j = self.first_of_ties(kind, last);
        let Some(oldest) = self.at_slot(kind, j) else {
            return (None, i);
        };
        let containing = (t_ms < oldest.end(kind)).then_some(j);
        let at_or_after = if oldest.timestamp(kind) == t_ms { j } else { i };
        (containing, at_or_after)
    }

    /// The first fragment (ascending key) whose start timestamp under `kind` is `>= t_ms`; among
    /// fragments starting at the same time, the oldest ingested.
    pub fn first_at_or_after(&self, kind: TimestampKind, t_ms: u64) -> Option<&Fragment> {
        self.at_slot(kind, self.locate(kind, t_ms).1)
    }

    /// The fragment containing `t_ms` under `kind`: the latest-starting fragment whose start is
    /// `<= t_ms`, provided `t_ms` is before its end (start + duration). When several fragments
    /// start at that same time (a replay), the oldest ingested is chosen. Overlaps between
    /// fragments with *different* starts resolve to the later start.
    pub fn containing(&self, kind: TimestampKind, t_ms: u64) -> Option<&Fragment> {
        self.at_slot(kind, self.locate(kind, t_ms).0?)
    }

    /// Where a GetMedia session starts. The session then streams
    /// [`iter_from_sequence`](Self::iter_from_sequence) of the returned fragment's sequence.
    /// Timestamp selectors pick [`containing`](Self::containing), else
    /// [`first_at_or_after`](Self::first_at_or_after); `None` means nothing to send yet.
    pub fn seek(&self, selector: StartSelector<'_>) -> Option<&Fragment> {
        let by_time = |kind, t| {
            let (containing, at_or_after) = self.locate(kind, t);
            self.at_slot(kind, containing.unwrap_or(at_or_after))
        };
        match selector {
            StartSelector::Earliest => self.first(),
            StartSelector::Now => self.last(),
            StartSelector::AfterFragmentNumber(n) => {
                let f = self.get_by_number(n)?;
                self.after_sequence(f.sequence)
            }
            StartSelector::AfterSequence(s) => self.after_sequence(s),
            StartSelector::ProducerTimestamp(t) => by_time(TimestampKind::Producer, t),
            StartSelector::ServerTimestamp(t) => by_time(TimestampKind::Server, t),
        }
    }

    /// Writes every indexed fragment as log records: a compacted log that rebuilds this index.
    pub fn encode_snapshot(&self, buf: &mut impl bytes::BufMut) {
        for f in &self.entries {
            f.encode_record(buf);
        }
    }

    /// Heap bytes per fragment of the two structures, excluding spare capacity (and the server
    /// timestamp samples: 8 bytes per 64 fragments).
    pub const BYTES_PER_FRAGMENT: usize =
        core::mem::size_of::<Fragment>() + core::mem::size_of::<ProducerSlot>();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragment(sequence: u64, server: u64) -> Fragment {
        Fragment {
            sequence,
            server_timestamp_ms: server,
            producer_timestamp_ms: server,
            location: 0,
            size_bytes: 1,
            duration_ms: 1,
            random: 0,
        }
    }

    /// The sampled search gives the plain binary search's answer for every key, with runs of
    /// equal timestamps shorter and longer than the sample step, before and after trims.
    #[test]
    fn sampled_server_search_matches_a_plain_binary_search() {
        let mut ix = FragmentIndex::new();
        let (mut ts, mut x) = (1_000u64, 0x9E37_79B9_7F4A_7C15u64);
        for seq in 1..=2_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if !(700..900).contains(&seq) {
                ts += x % 3;
            }
            ix.append(fragment(seq * 2, ts)).unwrap();
        }
        let last = ts;
        for cutoff in [0, 1_001, 1_050, 1_100, 1_400, 1_700, last, last + 1] {
            ix.trim_before(cutoff);
            let end = ix.base + ix.entries.len() as u64;
            assert_eq!(ix.server_samples.len(), samples_between(ix.base, end));
            for t in 990..=last + 2 {
                for s in [0, 1, 1_401, 1_402, 2_000, 4_001, u64::MAX] {
                    let key = (t, s);
                    let plain = ix
                        .entries
                        .partition_point(|f| f.key(TimestampKind::Server) < key);
                    assert_eq!(ix.server_lower_bound(key), plain, "key {key:?}");
                }
            }
        }
    }
}
