//! Fragment selection for GetClip and HLS/DASH, with their de-duplication rules.
//!
//! When producer timestamps repeat (a producer that reconnects resends the clusters it had
//! already packaged, unchanged, so the same producer timestamps are ingested twice under new
//! fragment numbers), the two APIs resolve the duplicates in opposite ways, as the service
//! documents them:
//!
//! * **GetClip**: fragments whose start timestamp (per the selector) is in `[start, end]`;
//!   fragments with the same *producer* timestamp as an earlier-ingested selected fragment are
//!   dropped (the oldest ingested set wins). With the PRODUCER selector the clip is ordered by
//!   producer timestamp, with the SERVER selector by ingestion. At most
//!   [`CLIP_MAX_FRAGMENTS`] fragments and [`CLIP_MAX_BYTES`] bytes from the start, counted after
//!   de-duplication.
//! * **HLS/DASH**: among fragments with the same start timestamp under the selector's kind, the
//!   one with the larger (newer) fragment number is kept. ON_DEMAND lists the oldest N of the
//!   range in timestamp order; LIVE lists the newest N in ingestion order (with the PRODUCER
//!   selector the producer timestamp still decides duplicates); LIVE_REPLAY reveals the range's
//!   fragments one fragment duration at a time from its start and lists the newest N revealed.
//!
//! Partial overlaps (a fragment starting inside the previous one with a different timestamp) are
//! not dropped: they are reported as discontinuities (gap or overlap larger than
//! [`DISCONTINUITY_TOLERANCE_MS`]) under `ON_DISCONTINUITY`.
//!
//! What stays with the HLS session (the caller): remembering fragments already listed so that
//! late-arriving older fragments are never added to a LIVE playlist, the 30-second LIVE freshness
//! check, and session expiry.

use std::collections::HashSet;

use super::{Fragment, FragmentIndex, RangeQuery, TimestampKind};

/// GetClip's fragment cap.
pub const CLIP_MAX_FRAGMENTS: usize = 200;
/// GetClip's size cap: 100 MB.
pub const CLIP_MAX_BYTES: u64 = 100 * 1024 * 1024;
/// Largest `MaxMediaPlaylistFragmentResults` / `MaxManifestFragmentResults`.
pub const PLAYLIST_MAX_RESULTS: usize = 5000;
/// A gap or overlap beyond this many ms is a discontinuity (`ON_DISCONTINUITY`).
pub const DISCONTINUITY_TOLERANCE_MS: u64 = 50;

/// The fragments of a clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clip {
    /// Selected fragments, de-duplicated, in clip order.
    pub fragments: Vec<Fragment>,
    /// True when the caps cut the range short.
    pub truncated: bool,
}

/// HLS/DASH `PlaybackMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaybackMode {
    /// The newest fragments; no range.
    Live,
    /// From `start_ms`, revealing one more fragment each time one fragment duration elapses.
    LiveReplay {
        /// First start timestamp included, epoch ms.
        start_ms: u64,
        /// Last start timestamp included, when given.
        end_ms: Option<u64>,
        /// Session time elapsed since it was created, ms (an input: the index reads no clock).
        elapsed_ms: u64,
    },
    /// A fixed range, listed once.
    OnDemand {
        /// First start timestamp included, epoch ms.
        start_ms: u64,
        /// Last start timestamp included, epoch ms.
        end_ms: u64,
    },
}

/// HLS `DiscontinuityMode` (DASH behaves as `Never`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscontinuityMode {
    /// A discontinuity before every fragment.
    Always,
    /// Never.
    Never,
    /// Before a fragment whose start differs from the previous fragment's end by more than
    /// [`DISCONTINUITY_TOLERANCE_MS`] (a gap or an overlap).
    OnDiscontinuity,
}

impl DiscontinuityMode {
    /// The service default: `Always` for the SERVER selector, `Never` for PRODUCER.
    pub fn default_for(kind: TimestampKind) -> Self {
        match kind {
            TimestampKind::Server => DiscontinuityMode::Always,
            TimestampKind::Producer => DiscontinuityMode::Never,
        }
    }
}

/// What an HLS/DASH playlist request selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaylistRequest {
    /// `FragmentSelectorType`.
    pub kind: TimestampKind,
    /// `PlaybackMode` and its range.
    pub mode: PlaybackMode,
    /// `Max...FragmentResults`, clamped to 1..=[`PLAYLIST_MAX_RESULTS`].
    pub max_results: usize,
    /// `DiscontinuityMode`.
    pub discontinuity: DiscontinuityMode,
}

/// One playlist segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaylistEntry {
    /// The fragment.
    pub fragment: Fragment,
    /// Emit `#EXT-X-DISCONTINUITY` before it.
    pub discontinuity: bool,
}

/// Keeps, of each run of adjacent fragments with equal `kind` timestamps, the last one.
fn keep_newest_of_equal(
    iter: impl Iterator<Item = Fragment>,
    kind: TimestampKind,
) -> impl Iterator<Item = Fragment> {
    let mut iter = iter.peekable();
    core::iter::from_fn(move || {
        loop {
            let f = iter.next()?;
            match iter.peek() {
                Some(n) if n.timestamp(kind) == f.timestamp(kind) => continue,
                _ => return Some(f),
            }
        }
    })
}

impl FragmentIndex {
    /// GetClip fragment selection (rules in the [module documentation](self)).
    pub fn clip(&self, query: RangeQuery) -> Clip {
        let mut fragments = Vec::new();
        let mut bytes = 0u64;
        let mut truncated = false;
        let mut seen_producer = HashSet::new();
        let mut last_producer: Option<u64> = None;
        for f in self.range(query) {
            let duplicate = match query.kind {
                // Producer order: equal timestamps are adjacent, oldest ingested first.
                TimestampKind::Producer => last_producer == Some(f.producer_timestamp_ms),
                // Ingestion order: the first seen of a producer timestamp is the oldest.
                TimestampKind::Server => !seen_producer.insert(f.producer_timestamp_ms),
            };
            last_producer = Some(f.producer_timestamp_ms);
            if duplicate {
                continue;
            }
            let size = u64::from(f.size_bytes);
            if fragments.len() >= CLIP_MAX_FRAGMENTS || bytes + size > CLIP_MAX_BYTES {
                truncated = true;
                break;
            }
            bytes += size;
            fragments.push(*f);
        }
        Clip {
            fragments,
            truncated,
        }
    }

    /// HLS/DASH playlist fragment selection (rules in the [module documentation](self)).
    pub fn playlist(&self, request: PlaylistRequest) -> Vec<PlaylistEntry> {
        let kind = request.kind;
        let max = request.max_results.clamp(1, PLAYLIST_MAX_RESULTS);
        let fragments: Vec<Fragment> = match request.mode {
            PlaybackMode::OnDemand { start_ms, end_ms } => {
                let range = self.range(RangeQuery {
                    kind,
                    start_ms,
                    end_ms,
                });
                keep_newest_of_equal(range.copied(), kind)
                    .take(max)
                    .collect()
            }
            PlaybackMode::LiveReplay {
                start_ms,
                end_ms,
                elapsed_ms,
            } => {
                let range = self.range(RangeQuery {
                    kind,
                    start_ms,
                    end_ms: end_ms.unwrap_or(u64::MAX),
                });
                // Fragment i is revealed once the durations of fragments 0..i have elapsed.
                let mut shown = 0u64;
                let mut window = std::collections::VecDeque::with_capacity(max);
                for f in keep_newest_of_equal(range.copied(), kind) {
                    if shown > elapsed_ms {
                        break;
                    }
                    shown = shown.saturating_add(u64::from(f.duration_ms).max(1));
                    if window.len() == max {
                        window.pop_front();
                    }
                    window.push_back(f);
                }
                window.into_iter().collect()
            }
            PlaybackMode::Live => {
                // Newest first; the first seen of a start timestamp is the newest ingested.
                let mut seen = HashSet::new();
                let mut out: Vec<Fragment> = self
                    .iter()
                    .rev()
                    .filter(|f| seen.insert(f.timestamp(kind)))
                    .take(max)
                    .copied()
                    .collect();
                out.reverse();
                out
            }
        };
        let mut prev_end: Option<u64> = None;
        fragments
            .into_iter()
            .map(|fragment| {
                let start = fragment.timestamp(kind);
                let discontinuity = match request.discontinuity {
                    DiscontinuityMode::Always => true,
                    DiscontinuityMode::Never => false,
                    DiscontinuityMode::OnDiscontinuity => {
                        prev_end.is_some_and(|e| e.abs_diff(start) > DISCONTINUITY_TOLERANCE_MS)
                    }
                };
                prev_end = Some(fragment.end(kind));
                PlaylistEntry {
                    fragment,
                    discontinuity,
                }
            })
            .collect()
    }
}
