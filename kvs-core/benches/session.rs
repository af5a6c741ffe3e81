//! `push_frame` + `poll_transmit` per frame on a connected session (payloads are shared `Bytes`,
//! never copied), with ACKs releasing fragments so the buffer stays bounded.
//!
//! Instruction counts: `KVS_BENCH_LOOP=<frames>` skips criterion and pushes that many frames in
//! `run_loop`, for `valgrind --tool=callgrind --toggle-collect='*run_loop*'`
//! (instructions / frames).

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kvs_core::ack::AckEvent;
use kvs_core::api::Timestamp;
use kvs_core::fragment::FragmentNumber;
use kvs_core::mkv::writer::StreamConfig;
use kvs_core::mkv::{Frame, TrackInfo, TrackType, codec};
use kvs_core::session::{AckLevel, ConnectionId, Event, Millis, PutMediaSession, SessionConfig};

/// A connected session fed 30 fps video with a key frame every 30 frames.
struct Feeder {
    s: PutMediaSession,
    payload: Bytes,
    i: i64,
    conn: Option<ConnectionId>,
    number: FragmentNumber,
}

impl Feeder {
    fn new() -> Self {
        let track = TrackInfo::new(1, 1, TrackType::Video, codec::H264);
        let mut cfg = SessionConfig::new(
            "bench",
            StreamConfig::new([1; 16]),
            vec![track],
            Timestamp(1_700_000_000_000),
        );
        cfg.ack_level = AckLevel::Received;
        Feeder {
            s: PutMediaSession::new(cfg, Millis(0)).unwrap(),
            payload: Bytes::from(vec![0u8; 1000]),
            i: 0,
            conn: None,
            number: FragmentNumber::mint(1, 1, 1),
        }
    }

    /// Pushes one frame and drains the session; returns the bytes transmitted.
    fn step(&mut self) -> usize {
        let s = &mut self.s;
        let i = self.i;
        let pts = 1_700_000_000_000_000_000 + i * 33_000_000;
        let key = i % 30 == 0;
        self.i += 1;
        s.push_frame(Millis(0), Frame::new(1, pts, key, self.payload.clone()))
            .unwrap();
        while let Some(e) = s.poll_event() {
            if let Event::Connect { connection, .. } = e {
                self.conn = Some(connection);
                s.handle_connected(Millis(0), connection, 200);
            }
        }
        let mut n = 0;
        while let Some(t) = s.poll_transmit() {
            n += t.data.len();
        }
        // Release the previous fragment once a new one opens (one RECEIVED per 30 frames).
        if key && self.i > 1 {
            let tc = (pts / 1_000_000) as u64 - 990;
            if let Some(id) = self.conn {
                let ack = AckEvent::received(tc, self.number.clone()).to_vec();
                s.handle_ack_bytes(Millis(0), id, &ack);
                while s.poll_event().is_some() {}
            }
        }
        n
    }
}

/// Pushes `frames` frames (the measured region of the callgrind loop mode).
#[inline(never)]
fn run_loop(f: &mut Feeder, frames: u64) -> usize {
    (0..frames).map(|_| f.step()).sum()
}

fn bench(c: &mut Criterion) {
    let mut f = Feeder::new();
    if let Ok(n) = std::env::var("KVS_BENCH_LOOP") {
        // Warm up past the connection setup, then measure.
        for _ in 0..60 {
            f.step();
        }
        let n: u64 = n.parse().unwrap();
        std::hint::black_box(run_loop(&mut f, n));
        eprintln!("{n} frames");
        return;
    }
    let mut g = c.benchmark_group("session");
    g.throughput(Throughput::Elements(1));
    g.bench_function("push_frame+poll_transmit", |b| b.iter(|| f.step()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
