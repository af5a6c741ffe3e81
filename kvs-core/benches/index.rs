//! FragmentIndex at 10 million fragments: first page of a range query, seeks, lookups, and the
//! rebuild from its record log.
//!
//! Instruction counts: `KVS_BENCH_LOOP=<Server|Producer>:<pages>` skips criterion and lists that
//! many first pages in `run_loop`, for `valgrind --tool=callgrind --toggle-collect='*run_loop*'`
//! (instructions / pages).

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use kvs_core::index::{
    Fragment, FragmentIndex, IndexLimits, RangeQuery, Rebuilder, StartSelector, TimestampKind,
};

const N: u64 = 10_000_000;
const T0: u64 = 1_795_608_000_000;

/// 2-second fragments; every 100 000 fragments the producer reconnects and replays 3 fragments.
fn build() -> (FragmentIndex, Vec<u8>) {
    let started = Instant::now();
    let mut ix = FragmentIndex::with_limits(IndexLimits {
        max_fragments: N as usize,
    });
    let mut log = Vec::with_capacity(N as usize * 50);
    let mut producer = T0 - 500;
    for seq in 1..=N {
        if seq % 100_000 == 0 {
            producer -= 3 * 2000;
        }
        let f = Fragment {
            sequence: seq,
            server_timestamp_ms: T0 + seq * 2000,
            producer_timestamp_ms: producer,
            location: seq * 4_000_000,
            size_bytes: 1_000_000,
            duration_ms: 2000,
            random: (seq as u32).wrapping_mul(2_654_435_761) & 0x0FFF_FFFF,
        };
        producer += 2000;
        ix.append(f).expect("append");
        f.encode_record(&mut log);
    }
    eprintln!(
        "built {N} fragments in {:?}; size_of::<Fragment>() = {} B, bytes per fragment = {} B, log = {} B",
        started.elapsed(),
        std::mem::size_of::<Fragment>(),
        FragmentIndex::BYTES_PER_FRAGMENT,
        log.len()
    );
    (ix, log)
}

/// Pseudo-random timestamps spread over the whole index (xorshift, no RNG dependency).
fn targets(count: usize, base: u64) -> Vec<u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..count)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            base + (x % N) * 2000 + (x % 1999)
        })
        .collect()
}

/// Lists the first page of 100 from each of `starts` (the measured region of the loop mode).
#[inline(never)]
fn run_loop(ix: &FragmentIndex, kind: TimestampKind, starts: &[u64]) -> usize {
    starts
        .iter()
        .map(|&start_ms| {
            let page = ix.list(
                RangeQuery {
                    kind,
                    start_ms,
                    end_ms: start_ms + 3_600_000,
                },
                100,
            );
            black_box(page.fragments.len())
        })
        .sum()
}

fn bench(c: &mut Criterion) {
    let (ix, log) = build();
    let server_t = targets(4096, T0);
    let producer_t = targets(4096, T0 - 500);
    if let Ok(spec) = std::env::var("KVS_BENCH_LOOP") {
        let (kind, n) = spec.split_once(':').unwrap_or((&spec, "4096"));
        let n: usize = n.parse().unwrap();
        let (kind, ts) = match kind {
            "Producer" => (TimestampKind::Producer, &producer_t),
            _ => (TimestampKind::Server, &server_t),
        };
        let starts: Vec<u64> = ts.iter().cycle().take(n).copied().collect();
        let total = run_loop(&ix, kind, &starts);
        eprintln!("{kind:?}: {n} pages, {total} fragments");
        return;
    }
    let mut i = 0usize;
    let mut next = |ts: &[u64]| {
        i = (i + 1) & 4095;
        ts[i]
    };

    let mut g = c.benchmark_group("index_10M");
    for kind in [TimestampKind::Server, TimestampKind::Producer] {
        let ts = if kind == TimestampKind::Server {
            &server_t
        } else {
            &producer_t
        };
        g.bench_function(format!("list_first_page_100_{kind:?}"), |b| {
            b.iter(|| {
                let start_ms = next(ts);
                let page = ix.list(
                    RangeQuery {
                        kind,
                        start_ms,
                        end_ms: start_ms + 3_600_000,
                    },
                    100,
                );
                black_box(page.fragments.len())
            })
        });
        g.bench_function(format!("seek_{kind:?}"), |b| {
            b.iter(|| {
                let t = next(ts);
                let sel = match kind {
                    TimestampKind::Server => StartSelector::ServerTimestamp(t),
                    TimestampKind::Producer => StartSelector::ProducerTimestamp(t),
                };
                black_box(ix.seek(sel).map(|f| f.location))
            })
        });
    }
    let numbers: Vec<_> = targets(256, 0)
        .iter()
        .map(|t| {
            ix.get_by_sequence(t / 2000 % N + 1)
                .expect("present")
                .number()
        })
        .collect();
    let mut j = 0usize;
    g.bench_function("get_by_number", |b| {
        b.iter(|| {
            j = (j + 1) & 255;
            black_box(ix.get_by_number(&numbers[j]).map(|f| f.location))
        })
    });
    g.bench_function("get_by_sequence", |b| {
        b.iter(|| {
            let s = next(&server_t) / 2000 % N;
            black_box(ix.get_by_sequence(s).map(|f| f.location))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("index_rebuild");
    g.sample_size(10);
    g.bench_function("rebuild_10M_from_log", |b| {
        b.iter(|| {
            let mut r = Rebuilder::new(IndexLimits {
                max_fragments: N as usize,
            });
            for chunk in log.chunks(1 << 20) {
                r.push(chunk);
            }
            let rebuilt = r.finish();
            assert_eq!(rebuilt.index.len(), N as usize);
            black_box(rebuilt.records)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
