//! Per-frame cost of the producer stream encoder: the zero-copy path (headers only, payload left
//! to a vectored write), the chunk-queue path and the single-buffer path (one copy).

use std::collections::VecDeque;
use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kvs_core::mkv::writer::{StreamConfig, StreamWriter};
use kvs_core::mkv::{AudioSettings, Frame, TrackInfo, TrackType, VideoSettings, codec};

fn writer() -> StreamWriter {
    let mut v = TrackInfo::new(1, 1, TrackType::Video, codec::H264);
    v.video = Some(VideoSettings {
        width: 1920,
        height: 1080,
    });
    let mut a = TrackInfo::new(2, 2, TrackType::Audio, codec::MS_ACM);
    a.audio = Some(AudioSettings {
        sampling_frequency: 8000.0,
        channels: 1,
        bit_depth: None,
    });
    StreamWriter::new(StreamConfig::new([7; 16]), vec![v, a]).unwrap()
}

/// 1080p-like frames: a 200 KB key frame every 30 frames, 50–120 KB otherwise, at 30 fps; and
/// 160-byte G.711 frames every 20 ms.
fn frames() -> (Vec<Frame>, Vec<Frame>) {
    let key = Bytes::from(vec![0x5A; 200_000]);
    let delta = Bytes::from(vec![0x3C; 120_000]);
    let video = (0..300)
        .map(|i| {
            let data = if i % 30 == 0 {
                key.clone()
            } else {
                delta.slice(..50_000 + (i % 7) * 10_000)
            };
            Frame::new(1, i as i64 * 33_333_333, i % 30 == 0, data)
        })
        .collect();
    let pcm = Bytes::from(vec![0xD5; 160]);
    let audio = (0..500)
        .map(|i| Frame::new(2, i as i64 * 20_000_000, false, pcm.clone()))
        .collect();
    (video, audio)
}

fn bench(c: &mut Criterion) {
    let (video, audio) = frames();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));

    // Zero copy: header bytes into a reused buffer; the payload goes out by itself.
    for (name, list) in [("zero_copy/video", &video), ("zero_copy/audio", &audio)] {
        g.bench_function(name, |b| {
            let mut w = writer();
            let mut hdr = Vec::with_capacity(64);
            let mut i = 0usize;
            let n = list.len();
            b.iter(|| {
                let mut f = list[i % n].clone();
                // Keep timestamps increasing across laps.
                f.timestamp_ns += (i / n) as i64 * 10_000_000_000;
                if f.track == 2 && i.is_multiple_of(n) {
                    f.keyframe = true; // audio-only run: open a fragment per lap
                }
                hdr.clear();
                let out = w.encode_frame_header(&f, &mut hdr).unwrap();
                black_box((&hdr, &f.data, out));
                i += 1;
            });
        });
    }

    g.bench_function("chunks/video", |b| {
        let mut w = writer();
        let mut scratch = BytesMut::with_capacity(4096);
        let mut chunks = VecDeque::with_capacity(8);
        let mut i = 0usize;
        let n = video.len();
        b.iter(|| {
            let mut f = video[i % n].clone();
            f.timestamp_ns += (i / n) as i64 * 10_000_000_000;
            let out = w
                .encode_frame_chunks(&f, &mut scratch, &mut chunks)
                .unwrap();
            black_box(out);
            chunks.clear();
            i += 1;
        });
    });

    // Single buffer: headers and payload copied into one reused buffer.
    for (name, list) in [
        ("single_buffer/video", &video),
        ("single_buffer/audio", &audio),
    ] {
        g.bench_function(name, |b| {
            let mut w = writer();
            let mut buf = Vec::with_capacity(256 * 1024);
            let mut i = 0usize;
            let n = list.len();
            b.iter(|| {
                let mut f = list[i % n].clone();
                f.timestamp_ns += (i / n) as i64 * 10_000_000_000;
                if f.track == 2 && i.is_multiple_of(n) {
                    f.keyframe = true;
                }
                buf.clear();
                let out = w.encode_frame(&f, &mut buf).unwrap();
                black_box((&buf, out));
                i += 1;
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
