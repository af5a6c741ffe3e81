//! Cost of encryption at rest: sealing and opening a fragment body (AES-256-GCM, ring) of 64 KiB
//! and 1 MiB, reported as throughput.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kvs_server::seal::{DataKey, stream_identity};

fn seal_open(c: &mut Criterion) {
    let key = DataKey::new(&[0x5a; 32], stream_identity(1_700_000_000_000, "bench")).unwrap();
    let meta = [7u8; 52];
    let mut group = c.benchmark_group("seal");
    for size in [64 * 1024usize, 1024 * 1024] {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", size), &data, |b, data| {
            b.iter(|| key.seal_fragment(&meta, data).unwrap())
        });
        let sealed = key.seal_fragment(&meta, &data).unwrap();
        group.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, sealed| {
            // Opening works in place on an owned buffer (as read from disk): the copy is setup.
            b.iter_batched(
                || sealed.clone(),
                |s| key.open_fragment(&meta, s).unwrap(),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
