//! FragmentIndex: unit cases and property tests against a naive model (a Vec scanned linearly).

use kvs_core::crc32::crc32;
use kvs_core::fragment::FragmentNumber;
use kvs_core::index::codec::{self, Rebuilder, Record, TailReason, decode_records};
use kvs_core::index::select::{CLIP_MAX_FRAGMENTS, DISCONTINUITY_TOLERANCE_MS};
use kvs_core::index::{
    DiscontinuityMode, Fragment, FragmentIndex, IndexError, IndexLimits, MAX_LIST_RESULTS,
    PageToken, PlaybackMode, PlaylistRequest, RangeQuery, StartSelector, TimestampKind, TokenError,
};
use proptest::prelude::*;

const KINDS: [TimestampKind; 2] = [TimestampKind::Producer, TimestampKind::Server];

fn frag(sequence: u64, server: u64, producer: u64, duration: u32) -> Fragment {
    Fragment {
        sequence,
        server_timestamp_ms: server,
        producer_timestamp_ms: producer,
        location: sequence * 1000,
        size_bytes: 100 + sequence as u32,
        duration_ms: duration,
        random: (sequence as u32).wrapping_mul(2_654_435_761) & 0x0FFF_FFFF,
    }
}

/// The naive model: fragments in append order.
#[derive(Default, Clone)]
struct Model(Vec<Fragment>);

impl Model {
    fn range(&self, kind: TimestampKind, start: u64, end: u64) -> Vec<Fragment> {
        let mut v: Vec<Fragment> = self
            .0
            .iter()
            .filter(|f| f.timestamp(kind) >= start && f.timestamp(kind) <= end)
            .copied()
            .collect();
        v.sort_by_key(|f| f.key(kind));
        v
    }
    fn first_at_or_after(&self, kind: TimestampKind, t: u64) -> Option<Fragment> {
        self.0
            .iter()
            .filter(|f| f.timestamp(kind) >= t)
            .min_by_key(|f| f.key(kind))
            .copied()
    }
    fn containing(&self, kind: TimestampKind, t: u64) -> Option<Fragment> {
        let start = self
            .0
            .iter()
            .map(|f| f.timestamp(kind))
            .filter(|&s| s <= t)
            .max()?;
        let oldest = self
            .0
            .iter()
            .filter(|f| f.timestamp(kind) == start)
            .min_by_key(|f| f.sequence)?;
        (t < oldest.end(kind)).then_some(*oldest)
    }
    fn trim(&mut self, cutoff: u64) -> usize {
        let before = self.0.len();
        self.0.retain(|f| f.server_timestamp_ms >= cutoff);
        before - self.0.len()
    }
}

fn all_pages(index: &FragmentIndex, q: RangeQuery, page: usize) -> Vec<Fragment> {
    let mut out = Vec::new();
    let mut p = index.list(q, page);
    loop {
        assert!(p.fragments.len() <= page.clamp(1, MAX_LIST_RESULTS));
        out.extend(p.fragments.iter().copied());
        let Some(token) = p.next_token else { break };
        // Through the wire form, as a client would send it.
        let token = PageToken::decode(&token.encode()).unwrap();
        p = index.list_next(&token, page);
    }
    out
}

#[test]
fn crc32_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    assert_eq!(crc32(b""), 0);
    assert_eq!(
        crc32(b"The quick brown fox jumps over the lazy dog"),
        0x414F_A339
    );
}

#[test]
fn entry_is_compact() {
    assert_eq!(std::mem::size_of::<Fragment>(), 48);
    assert_eq!(FragmentIndex::BYTES_PER_FRAGMENT, 60);
}

#[test]
fn append_rules() {
    let mut ix = FragmentIndex::new();
    ix.append(frag(5, 100, 10, 2)).unwrap();
    assert_eq!(
        ix.append(frag(5, 100, 10, 2)),
        Err(IndexError::SequenceNotIncreasing { got: 5, last: 5 })
    );
    assert!(matches!(
        ix.append(frag(6, 99, 10, 2)),
        Err(IndexError::ServerTimestampDecreasing { .. })
    ));
    let mut wide = frag(6, 100, 10, 2);
    wide.random = 0x1000_0000;
    assert!(matches!(
        ix.append(wide),
        Err(IndexError::RandomTooWide { .. })
    ));
    let mut small = FragmentIndex::with_limits(IndexLimits { max_fragments: 1 });
    small.append(frag(1, 1, 1, 1)).unwrap();
    assert_eq!(
        small.append(frag(2, 1, 1, 1)),
        Err(IndexError::Full { limit: 1 })
    );
    let msg = IndexError::Full { limit: 1 }.to_string();
    assert!(msg.contains("limit of 1"), "{msg}");
}

#[test]
fn numbers_are_rendered_and_looked_up() {
    let mut ix = FragmentIndex::new();
    for i in 1..=10 {
        ix.append(frag(
            i,
            1_700_000_000_000 + i * 2000,
            1_699_999_000_000 + i * 2000,
            2000,
        ))
        .unwrap();
    }
    let f = *ix.get_by_sequence(4).unwrap();
    let n = f.number();
    assert_eq!(n.as_str().len(), 47);
    assert_eq!(n.sequence(), Some(4));
    assert_eq!(n.server_timestamp_ms(), Some(f.server_timestamp_ms));
    assert_eq!(ix.get_by_number(&n), Some(&f));
    // Same sequence and server time, other random part: another stream's number.
    let foreign = FragmentNumber::mint(4, f.server_timestamp_ms, f.random ^ 1);
    assert_eq!(ix.get_by_number(&foreign), None);
    assert_eq!(ix.get_by_number(&"12345".parse().unwrap()), None);
    // FRAGMENT_NUMBER selector: the one after.
    assert_eq!(
        ix.seek(StartSelector::AfterFragmentNumber(&n))
            .map(|f| f.sequence),
        Some(5)
    );
    let last = ix.last().unwrap().number();
    assert_eq!(ix.seek(StartSelector::AfterFragmentNumber(&last)), None);
    assert_eq!(
        ix.seek(StartSelector::Earliest).map(|f| f.sequence),
        Some(1)
    );
    assert_eq!(ix.seek(StartSelector::Now).map(|f| f.sequence), Some(10));
    let seqs: Vec<u64> = ix.iter_from_sequence(8).map(|f| f.sequence).collect();
    assert_eq!(seqs, [8, 9, 10]);
}

#[test]
fn timestamp_seeks_follow_the_reference() {
    // Fragments of 2 s at producer 0, 2, 4, then a gap, then 10.
    let mut ix = FragmentIndex::new();
    for (i, p) in [0u64, 2000, 4000, 10_000].into_iter().enumerate() {
        ix.append(frag(i as u64 + 1, 50_000 + p, p, 2000)).unwrap();
    }
    let seek = |t| {
        ix.seek(StartSelector::ProducerTimestamp(t))
            .map(|f| f.sequence)
    };
    assert_eq!(seek(0), Some(1));
    assert_eq!(seek(2999), Some(2)); // inside the second fragment
    assert_eq!(seek(7000), Some(4)); // in the gap: the next fragment
    assert_eq!(seek(11_999), Some(4));
    assert_eq!(seek(12_000), None); // after the end: nothing yet
    assert_eq!(
        ix.seek(StartSelector::ServerTimestamp(52_500))
            .map(|f| f.sequence),
        Some(2)
    );
}

#[test]
fn list_fragments_example_from_the_docs() {
    // Range 1..4 s returns fragments starting at 2 and 4 (both ends inclusive).
    let mut ix = FragmentIndex::new();
    for (i, p) in [0u64, 2000, 4000, 6000].into_iter().enumerate() {
        ix.append(frag(i as u64 + 1, 10_000 + p, p, 2000)).unwrap();
    }
    let q = RangeQuery {
        kind: TimestampKind::Producer,
        start_ms: 1000,
        end_ms: 4000,
    };
    let page = ix.list(q, 1);
    assert_eq!(page.fragments[0].producer_timestamp_ms, 2000);
    let token = page.next_token.unwrap();
    let next = ix.list_next(&token, 1);
    assert_eq!(next.fragments[0].producer_timestamp_ms, 4000);
    assert_eq!(next.next_token, None);
    // An empty or inverted range.
    let inverted = RangeQuery {
        start_ms: 5000,
        end_ms: 4000,
        ..q
    };
    assert!(ix.list(inverted, 10).fragments.is_empty());
}

#[test]
fn tokens_are_opaque_and_checked() {
    let q = RangeQuery {
        kind: TimestampKind::Server,
        start_ms: 1,
        end_ms: u64::MAX,
    };
    let t = PageToken::new(q, (7, 9));
    let s = t.encode();
    assert_eq!(s.len(), 52);
    assert!(
        s.trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    );
    assert_eq!(PageToken::decode(&s), Ok(t));
    assert!(matches!(
        PageToken::decode("abc"),
        Err(TokenError::Length { got: 3 })
    ));
    let mut altered = s.clone().into_bytes();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        PageToken::decode(std::str::from_utf8(&altered).unwrap()),
        Err(TokenError::Checksum)
    );
    let mut bad = s.into_bytes();
    bad[3] = b'*';
    assert!(matches!(
        PageToken::decode(std::str::from_utf8(&bad).unwrap()),
        Err(TokenError::Base64 { offset: 3 })
    ));
}

#[test]
fn replay_dedup_for_clip_and_hls() {
    // Original 1..=4 at producer 0, 2, 4, 6 s; the producer reconnects and replays 4 and 6 s
    // (fragments 5 and 6), then continues at 8 s (fragment 7).
    let mut ix = FragmentIndex::new();
    let producer = [0u64, 2000, 4000, 6000, 4000, 6000, 8000];
    for (i, p) in producer.into_iter().enumerate() {
        ix.append(frag(i as u64 + 1, 100_000 + i as u64 * 1000, p, 2000))
            .unwrap();
    }
    let q = RangeQuery {
        kind: TimestampKind::Producer,
        start_ms: 0,
        end_ms: 10_000,
    };
    // ListFragments lists every fragment, duplicates included, in (producer, sequence) order.
    let listed: Vec<u64> = ix
        .list(q, 100)
        .fragments
        .iter()
        .map(|f| f.sequence)
        .collect();
    assert_eq!(listed, [1, 2, 3, 5, 4, 6, 7]);
    // GetClip: the oldest ingested of each duplicate wins.
    let clip: Vec<u64> = ix.clip(q).fragments.iter().map(|f| f.sequence).collect();
    assert_eq!(clip, [1, 2, 3, 4, 7]);
    let server_clip = ix.clip(RangeQuery {
        kind: TimestampKind::Server,
        start_ms: 0,
        end_ms: u64::MAX,
    });
    let server_clip: Vec<u64> = server_clip.fragments.iter().map(|f| f.sequence).collect();
    assert_eq!(server_clip, [1, 2, 3, 4, 7]);
    // HLS: the newest fragment number wins.
    let hls = ix.playlist(PlaylistRequest {
        kind: TimestampKind::Producer,
        mode: PlaybackMode::OnDemand {
            start_ms: 0,
            end_ms: 10_000,
        },
        max_results: 1000,
        discontinuity: DiscontinuityMode::OnDiscontinuity,
    });
    let seqs: Vec<u64> = hls.iter().map(|e| e.fragment.sequence).collect();
    assert_eq!(seqs, [1, 2, 5, 6, 7]);
    assert!(hls.iter().all(|e| !e.discontinuity));
    let live = ix.playlist(PlaylistRequest {
        kind: TimestampKind::Producer,
        mode: PlaybackMode::Live,
        max_results: 3,
        discontinuity: DiscontinuityMode::Always,
    });
    let seqs: Vec<u64> = live.iter().map(|e| e.fragment.sequence).collect();
    assert_eq!(seqs, [5, 6, 7]);
    assert!(live.iter().all(|e| e.discontinuity));
}

#[test]
fn hls_discontinuities_and_live_replay() {
    let mut ix = FragmentIndex::new();
    // 0, 2000 (contiguous), 4100 (gap of 100 ms), 6100 - 30 (overlap of 30 ms: tolerated).
    for (i, p) in [0u64, 2000, 4100, 6070].into_iter().enumerate() {
        ix.append(frag(i as u64 + 1, 1000 + p, p, 2000)).unwrap();
    }
    let req = |mode, discontinuity| PlaylistRequest {
        kind: TimestampKind::Producer,
        mode,
        max_results: 10,
        discontinuity,
    };
    let flags: Vec<bool> = ix
        .playlist(req(
            PlaybackMode::OnDemand {
                start_ms: 0,
                end_ms: 10_000,
            },
            DiscontinuityMode::OnDiscontinuity,
        ))
        .iter()
        .map(|e| e.discontinuity)
        .collect();
    assert_eq!(flags, [false, false, true, false]);
    assert_eq!(DISCONTINUITY_TOLERANCE_MS, 50);
    let replay = |elapsed_ms| {
        ix.playlist(req(
            PlaybackMode::LiveReplay {
                start_ms: 0,
                end_ms: None,
                elapsed_ms,
            },
            DiscontinuityMode::Never,
        ))
        .len()
    };
    assert_eq!(replay(0), 1);
    assert_eq!(replay(1999), 1);
    assert_eq!(replay(2000), 2);
    assert_eq!(replay(60_000), 4);
}

#[test]
fn clip_caps() {
    let mut ix = FragmentIndex::new();
    for i in 0..300u64 {
        ix.append(frag(i + 1, i * 1000, i * 1000, 1000)).unwrap();
    }
    let clip = ix.clip(RangeQuery {
        kind: TimestampKind::Producer,
        start_ms: 0,
        end_ms: u64::MAX,
    });
    assert_eq!(clip.fragments.len(), CLIP_MAX_FRAGMENTS);
    assert!(clip.truncated);
    let mut big = FragmentIndex::new();
    for i in 0..10u64 {
        let mut f = frag(i + 1, i, i, 1);
        f.size_bytes = 30 * 1024 * 1024;
        big.append(f).unwrap();
    }
    let clip = big.clip(RangeQuery {
        kind: TimestampKind::Server,
        start_ms: 0,
        end_ms: 100,
    });
    assert_eq!(clip.fragments.len(), 3);
    assert!(clip.truncated);
}

#[test]
fn log_roundtrip_and_torn_tail() {
    let mut log = Vec::new();
    let mut ix = FragmentIndex::new();
    for i in 1..=5u64 {
        let f = frag(i, i * 10, 100 - i, 5);
        ix.append(f).unwrap();
        f.encode_record(&mut log);
    }
    codec::encode_trim(25, &mut log);
    ix.trim_before(25);
    let whole = log.len() as u64;
    let rebuilt = Rebuilder::rebuild(&log, IndexLimits::default());
    assert_eq!(rebuilt.defect, None);
    assert_eq!(rebuilt.records, 6);
    assert_eq!(rebuilt.valid_bytes, whole);
    assert!(rebuilt.index.iter().eq(ix.iter()));
    // Torn: the last fragment record cut in half.
    let mut torn = log.clone();
    frag(6, 60, 1, 5).encode_record(&mut torn);
    torn.truncate(torn.len() - 20);
    let rebuilt = Rebuilder::rebuild(&torn, IndexLimits::default());
    let defect = rebuilt.defect.unwrap();
    assert_eq!(defect.offset, whole);
    assert_eq!(defect.discarded_bytes, 30);
    assert_eq!(defect.reason, TailReason::Truncated);
    assert!(defect.to_string().contains(&format!("at byte {whole}")));
    assert!(rebuilt.index.iter().eq(ix.iter()));
    // A flipped bit in the third record: the first two survive.
    let mut flipped = log.clone();
    flipped[2 * 50 + 7] ^= 0x10;
    let rebuilt = Rebuilder::rebuild(&flipped, IndexLimits::default());
    assert_eq!(rebuilt.records, 2);
    assert!(matches!(
        rebuilt.defect.unwrap().reason,
        TailReason::ChecksumMismatch { .. }
    ));
    // A record the index refuses (a repeated sequence) stops the rebuild too.
    let mut repeated = Vec::new();
    frag(1, 1, 1, 1).encode_record(&mut repeated);
    frag(1, 1, 1, 1).encode_record(&mut repeated);
    let rebuilt = Rebuilder::rebuild(&repeated, IndexLimits::default());
    assert_eq!(rebuilt.records, 1);
    assert!(matches!(
        rebuilt.defect.unwrap().reason,
        TailReason::Rejected(IndexError::SequenceNotIncreasing { .. })
    ));
    // Snapshot = compacted log.
    let mut snap = Vec::new();
    ix.encode_snapshot(&mut snap);
    let rebuilt = Rebuilder::rebuild(&snap, IndexLimits::default());
    assert!(rebuilt.index.iter().eq(ix.iter()));
}

// ---------------------------------------------------------------------------------------------
// Property tests.

#[derive(Debug, Clone)]
enum Op {
    /// Append with these gaps; `back` > 0 moves the producer clock back (a replay).
    Append {
        seq_gap: u64,
        server_gap: u64,
        producer_step: u64,
        back: u64,
        duration: u32,
    },
    Trim {
        advance: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (1u64..3, 0u64..3, 0u64..4, prop_oneof![4 => Just(0u64), 1 => 1u64..20], 0u32..5)
            .prop_map(|(seq_gap, server_gap, producer_step, back, duration)| Op::Append {
                seq_gap, server_gap, producer_step, back, duration
            }),
        1 => (0u64..15).prop_map(|advance| Op::Trim { advance }),
    ]
}

/// Applies `ops` to an index, a model and a log; returns them.
fn build(ops: &[Op]) -> (FragmentIndex, Model, Vec<u8>) {
    let mut ix = FragmentIndex::new();
    let mut model = Model::default();
    let mut log = Vec::new();
    let (mut seq, mut server, mut producer) = (0u64, 100u64, 1000u64);
    let mut cutoff = 100u64;
    for op in ops {
        match *op {
            Op::Append {
                seq_gap,
                server_gap,
                producer_step,
                back,
                duration,
            } => {
                seq += seq_gap;
                server += server_gap;
                producer = producer.saturating_sub(back) + producer_step;
                let f = frag(seq, server, producer, duration);
                ix.append(f).unwrap();
                model.0.push(f);
                f.encode_record(&mut log);
            }
            Op::Trim { advance } => {
                cutoff += advance;
                assert_eq!(ix.trim_before(cutoff), model.trim(cutoff));
                codec::encode_trim(cutoff, &mut log);
            }
        }
    }
    (ix, model, log)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pages_concatenate_to_the_model_answer(
        ops in prop::collection::vec(op(), 0..120),
        a in 0u64..1300, b in 0u64..1300, page in 1usize..12,
    ) {
        let (ix, model, _) = build(&ops);
        prop_assert!(ix.iter().eq(model.0.iter()));
        for kind in KINDS {
            let (lo, hi) = match kind {
                TimestampKind::Producer => (900 + a.min(b) / 2, 900 + a.max(b) / 2),
                TimestampKind::Server => (a.min(b) / 4, a.max(b) / 4),
            };
            let q = RangeQuery { kind, start_ms: lo, end_ms: hi };
            let got = all_pages(&ix, q, page);
            prop_assert_eq!(&got, &model.range(kind, lo, hi));
            let streamed: Vec<Fragment> = ix.range(q).copied().collect();
            prop_assert_eq!(&streamed, &got);
        }
    }

    #[test]
    fn pages_stay_consistent_under_appends(
        ops in prop::collection::vec(op(), 1..80),
        more in prop::collection::vec(op(), 1..40),
        page in 1usize..6,
    ) {
        let (mut ix, _, _) = build(&ops);
        let last = ix.last().copied();
        let q = RangeQuery { kind: TimestampKind::Producer, start_ms: 0, end_ms: u64::MAX };
        let before: Vec<Fragment> = ix.range(q).copied().collect();
        // Interleave: one page, then one append (continuing the same generator state).
        let (mut seq, mut server, mut producer) = last.map_or((0, 100, 1000), |f| {
            (f.sequence, f.server_timestamp_ms, f.producer_timestamp_ms)
        });
        let mut got = Vec::new();
        let mut p = ix.list(q, page);
        let mut extra = more.iter();
        loop {
            got.extend(p.fragments.iter().copied());
            let Some(token) = p.next_token else { break };
            if let Some(Op::Append { seq_gap, server_gap, producer_step, back, duration }) = extra.next() {
                seq += seq_gap;
                server += server_gap;
                producer = producer.saturating_sub(*back) + producer_step;
                ix.append(frag(seq, server, producer, *duration)).unwrap();
            }
            p = ix.list_next(&token, page);
        }
        // Strictly increasing keys: no duplicates; every fragment present at the start is there.
        prop_assert!(got.windows(2).all(|w| w[0].key(q.kind) < w[1].key(q.kind)));
        for f in &before {
            prop_assert!(got.contains(f), "missing {:?}", f);
        }
    }

    #[test]
    fn seeks_and_lookups_match_the_model(
        ops in prop::collection::vec(op(), 0..120),
        ts in prop::collection::vec(0u64..1300, 1..20),
    ) {
        let (ix, model, _) = build(&ops);
        for &t in &ts {
            for kind in KINDS {
                let t = match kind { TimestampKind::Producer => 900 + t / 2, TimestampKind::Server => t / 4 };
                prop_assert_eq!(ix.first_at_or_after(kind, t).copied(), model.first_at_or_after(kind, t));
                prop_assert_eq!(ix.containing(kind, t).copied(), model.containing(kind, t));
                let sel = match kind {
                    TimestampKind::Producer => StartSelector::ProducerTimestamp(t),
                    TimestampKind::Server => StartSelector::ServerTimestamp(t),
                };
                let want = model.containing(kind, t).or_else(|| model.first_at_or_after(kind, t));
                prop_assert_eq!(ix.seek(sel).copied(), want);
            }
            let s = t / 4;
            let want = model.0.iter().find(|f| f.sequence == s).copied();
            prop_assert_eq!(ix.get_by_sequence(s).copied(), want);
            prop_assert_eq!(
                ix.seek(StartSelector::AfterSequence(s)).copied(),
                model.0.iter().find(|f| f.sequence > s).copied()
            );
        }
        for f in &model.0 {
            prop_assert_eq!(ix.get_by_number(&f.number()), Some(f));
        }
        prop_assert_eq!(ix.seek(StartSelector::Earliest), model.0.first());
        prop_assert_eq!(ix.seek(StartSelector::Now), model.0.last());
    }

    #[test]
    fn clip_and_hls_match_the_model(
        ops in prop::collection::vec(op(), 0..120),
        a in 0u64..1300, b in 0u64..1300, max in 1usize..30,
    ) {
        let (ix, model, _) = build(&ops);
        let (lo, hi) = (900 + a.min(b) / 2, 900 + a.max(b) / 2);
        // Clip (producer): oldest sequence per producer timestamp, producer order.
        let mut want: Vec<Fragment> = Vec::new();
        for f in model.range(TimestampKind::Producer, lo, hi) {
            if want.last().is_none_or(|l| l.producer_timestamp_ms != f.producer_timestamp_ms) {
                want.push(f);
            }
        }
        want.truncate(CLIP_MAX_FRAGMENTS);
        let q = RangeQuery { kind: TimestampKind::Producer, start_ms: lo, end_ms: hi };
        prop_assert_eq!(ix.clip(q).fragments, want);
        // HLS ON_DEMAND (producer): newest sequence per producer timestamp, oldest N.
        let mut want: Vec<Fragment> = Vec::new();
        for f in model.range(TimestampKind::Producer, lo, hi) {
            match want.last_mut() {
                Some(l) if l.producer_timestamp_ms == f.producer_timestamp_ms => *l = f,
                _ => want.push(f),
            }
        }
        want.truncate(max);
        let got: Vec<Fragment> = ix.playlist(PlaylistRequest {
            kind: TimestampKind::Producer,
            mode: PlaybackMode::OnDemand { start_ms: lo, end_ms: hi },
            max_results: max,
            discontinuity: DiscontinuityMode::Never,
        }).into_iter().map(|e| e.fragment).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn crash_truncated_log_rebuilds_the_complete_prefix(
        ops in prop::collection::vec(op(), 0..100),
        cut in any::<prop::sample::Index>(),
        chunk in 1usize..80,
    ) {
        let (ix, _, log) = build(&ops);
        // The whole log rebuilds the index, whatever the chunking.
        let mut r = Rebuilder::new(IndexLimits::default());
        for c in log.chunks(chunk) { r.push(c); }
        let whole = r.finish();
        prop_assert_eq!(whole.defect, None);
        prop_assert!(whole.index.iter().eq(ix.iter()));

        let cut = cut.index(log.len() + 1);
        let (records, _) = decode_records(&log);
        // Replay only the records that end at or before the cut.
        let mut expect = FragmentIndex::new();
        let mut end = 0usize;
        let mut complete = 0u64;
        for rec in records {
            let len = match rec { Record::Fragment(_) => 50, Record::Trim(_) => 14 };
            if end + len > cut { break; }
            end += len;
            complete += 1;
            match rec {
                Record::Fragment(f) => expect.append(f).unwrap(),
                Record::Trim(c) => { expect.trim_before(c); }
            }
        }
        let mut r = Rebuilder::new(IndexLimits::default());
        for c in log[..cut].chunks(chunk) { r.push(c); }
        let got = r.finish();
        prop_assert_eq!(got.records, complete);
        prop_assert_eq!(got.valid_bytes, end as u64);
        prop_assert!(got.index.iter().eq(expect.iter()));
        match got.defect {
            None => prop_assert_eq!(end, cut),
            Some(d) => {
                prop_assert_eq!(d.reason, TailReason::Truncated);
                prop_assert_eq!(d.offset, end as u64);
                prop_assert_eq!(d.discarded_bytes, (cut - end) as u64);
            }
        }
        // Queries on the rebuilt index agree with the expected one.
        for kind in KINDS {
            let q = RangeQuery { kind, start_ms: 0, end_ms: u64::MAX };
            prop_assert_eq!(all_pages(&got.index, q, 7), expect.range(q).copied().collect::<Vec<_>>());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_rebuild(data in prop::collection::vec(any::<u8>(), 0..400), chunk in 1usize..64) {
        let mut r = Rebuilder::new(IndexLimits { max_fragments: 8 });
        for c in data.chunks(chunk) { r.push(c); }
        let got = r.finish();
        prop_assert!(got.valid_bytes <= data.len() as u64);
        prop_assert_eq!(got.index.len() <= 8, true);
        let whole = Rebuilder::rebuild(&data, IndexLimits { max_fragments: 8 });
        prop_assert_eq!(&got.defect, &whole.defect);
        prop_assert!(got.index.iter().eq(whole.index.iter()));
        // The applied records re-encode to exactly the valid prefix.
        let (records, _) = decode_records(&data);
        let mut again = Vec::new();
        for rec in records.iter().take(whole.records as usize) {
            match rec {
                Record::Fragment(f) => f.encode_record(&mut again),
                Record::Trim(c) => codec::encode_trim(*c, &mut again),
            }
        }
        prop_assert_eq!(&again[..], &data[..whole.valid_bytes as usize]);
        let _ = PageToken::decode(&String::from_utf8_lossy(&data));
    }
}

#[test]
fn long_runs_of_equal_timestamps_seek_to_the_oldest() {
    let mut ix = FragmentIndex::new();
    ix.append(frag(1, 10, 500, 10)).unwrap();
    for i in 2..=30 {
        ix.append(frag(i, 10 + i, 1000, 10)).unwrap();
    }
    for kind in KINDS {
        let t = match kind {
            TimestampKind::Producer => 1005,
            TimestampKind::Server => 12,
        };
        assert_eq!(ix.containing(kind, t).map(|f| f.sequence), Some(2));
    }
    assert_eq!(
        ix.first_at_or_after(TimestampKind::Producer, 1000)
            .map(|f| f.sequence),
        Some(2)
    );
    assert_eq!(ix.trim_before(20), 9);
    assert_eq!(
        ix.first_at_or_after(TimestampKind::Producer, 0)
            .map(|f| f.sequence),
        Some(10)
    );
}
