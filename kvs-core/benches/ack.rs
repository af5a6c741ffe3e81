//! ACK parser and writer throughput (events per second).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kvs_core::ack::{AckEvent, AckParser};
use kvs_core::fragment::FragmentNumber;

/// A realistic stream: BUFFERING, RECEIVED and PERSISTED for each of `fragments` fragments.
fn stream(fragments: u64) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    for i in 0..fragments {
        let number = FragmentNumber::mint(i, 1_795_608_000_000 + i * 2000, (i * 7919) as u32);
        let tc = 1_795_608_000_000 + i * 2000;
        AckEvent::buffering(tc, number.clone()).encode(&mut out);
        AckEvent::received(tc, number.clone()).encode(&mut out);
        AckEvent::persisted(tc, number).encode(&mut out);
    }
    (out, fragments * 3)
}

fn parse(c: &mut Criterion) {
    let (bytes, events) = stream(1000);
    let mut group = c.benchmark_group("ack_parse");
    group.throughput(Throughput::Elements(events));
    for chunk in [bytes.len(), 1400, 64] {
        group.bench_function(format!("chunk_{chunk}"), |b| {
            b.iter(|| {
                let mut parser = AckParser::new();
                let mut n = 0u64;
                for piece in bytes.chunks(chunk) {
                    parser.push(black_box(piece));
                    while let Some(event) = parser.poll_event() {
                        n += u64::from(event.is_ok());
                    }
                }
                assert_eq!(n, events);
            })
        });
    }
    group.finish();

    let events: Vec<AckEvent> = (0..1000u64)
        .map(|i| AckEvent::received(i * 2000, FragmentNumber::mint(i, i, 0)))
        .collect();
    let mut group = c.benchmark_group("ack_write");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(200 * events.len());
        b.iter(|| {
            out.clear();
            for e in &events {
                e.encode(&mut out);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
