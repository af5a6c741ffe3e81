//! `push_frame` + `poll_transmit` per frame on a connected session (payloads are shared `Bytes`,
//! never copied), with ACKs releasing fragments so the buffer stays bounded.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kvs_core::ack::AckEvent;
use kvs_core::api::Timestamp;
use kvs_core::fragment::FragmentNumber;
use kvs_core::mkv::writer::StreamConfig;
use kvs_core::mkv::{Frame, TrackInfo, TrackType, codec};
use kvs_core::session::{AckLevel, Event, Millis, PutMediaSession, SessionConfig};

fn bench(c: &mut Criterion) {
    let track = TrackInfo::new(1, 1, TrackType::Video, codec::H264);
    let mut cfg = SessionConfig::new(
        "bench",
        StreamConfig::new([1; 16]),
        vec![track],
        Timestamp(1_700_000_000_000),
    );
    cfg.ack_level = AckLevel::Received;
    let mut s = PutMediaSession::new(cfg, Millis(0)).unwrap();
    let payload = Bytes::from(vec![0u8; 1000]);
    let mut i: i64 = 0;
    let mut conn = None;
    let number = FragmentNumber::mint(1, 1, 1);
    let mut g = c.benchmark_group("session");
    g.throughput(Throughput::Elements(1));
    g.bench_function("push_frame+poll_transmit", |b| {
        b.iter(|| {
            let pts = 1_700_000_000_000_000_000 + i * 33_000_000;
            let key = i % 30 == 0;
            i += 1;
            s.push_frame(Millis(0), Frame::new(1, pts, key, payload.clone()))
                .unwrap();
            while let Some(e) = s.poll_event() {
                if let Event::Connect { connection, .. } = e {
                    conn = Some(connection);
                    s.handle_connected(Millis(0), connection, 200);
                }
            }
            let mut n = 0;
            while let Some(t) = s.poll_transmit() {
                n += t.data.len();
            }
            // Release the previous fragment once a new one opens (one RECEIVED per 30 frames).
            if key && i > 1 {
                let tc = (pts / 1_000_000) as u64 - 990;
                if let Some(id) = conn {
                    let ack = AckEvent::received(tc, number.clone()).to_vec();
                    s.handle_ack_bytes(Millis(0), id, &ack);
                    while s.poll_event().is_some() {}
                }
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
