//! Throughput of the fragmented-MP4 writer (GetClip's conversion) on the bundled sample
//! (H.264 + AAC, 5 fragments), in MB/s of MKV frame payload: the zero-copy segment path and the
//! contiguous `Segment::to_bytes` path.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kvs_core::mkv::reader::{Event, decode_all};
use kvs_core::mkv::{Frame, TrackInfo};
use kvs_core::mp4::Mp4Writer;

fn sample() -> (Vec<TrackInfo>, Vec<Vec<Frame>>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/media/sample.mkv");
    let data = std::fs::read(path).unwrap();
    let mut tracks = Vec::new();
    let mut fragments: Vec<Vec<Frame>> = Vec::new();
    for e in decode_all(&data) {
        match e.unwrap() {
            Event::Track(t) => tracks.push(*t),
            Event::Frame(f) => {
                if fragments.is_empty() || (f.track == 1 && f.keyframe) {
                    fragments.push(Vec::new());
                }
                fragments.last_mut().unwrap().push(f);
            }
            _ => {}
        }
    }
    (tracks, fragments)
}

fn bench(c: &mut Criterion) {
    let (tracks, fragments) = sample();
    let bytes: u64 = fragments
        .iter()
        .flatten()
        .map(|f| f.data.len() as u64)
        .sum();
    let mut g = c.benchmark_group("mp4");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("clip_segments", |b| {
        b.iter(|| {
            let mut w = Mp4Writer::new(&tracks).unwrap();
            let mut n = w.init_segment().len();
            for f in &fragments {
                n += w.fragment(f).unwrap().map_or(0, |s| s.len());
            }
            n += w.finish().unwrap().map_or(0, |s| s.len());
            black_box(n)
        })
    });
    g.bench_function("clip_contiguous", |b| {
        b.iter(|| {
            let mut w = Mp4Writer::new(&tracks).unwrap();
            let mut out = w.init_segment().to_vec();
            for f in &fragments {
                if let Some(s) = w.fragment(f).unwrap() {
                    out.extend_from_slice(&s.to_bytes());
                }
            }
            if let Some(s) = w.finish().unwrap() {
                out.extend_from_slice(&s.to_bytes());
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
