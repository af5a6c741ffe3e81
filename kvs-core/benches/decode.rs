//! Decoder throughput: (a) a 1080p-like video stream with 50–200 KB frames, (b) 20 ms audio frames
//! of 160 bytes, (c) a GetMedia-like stream of 2 s fragments (one MKV document each, KVS tags
//! before and after every cluster). Each input is decoded from one `Bytes` (the zero-copy path)
//! and, for (a), also pushed in 64 KiB chunks (frames spanning chunks are joined once).
//!
//! Instruction counts: `KVS_BENCH_LOOP=<case>:<iterations>` skips criterion and decodes that case
//! (`video`, `audio` or `getmedia`) that many times in `run_loop`, for
//! `valgrind --tool=callgrind --toggle-collect='*run_loop*'` (instructions / iterations / frames).

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kvs_core::mkv::reader::{Event, MkvReader};
use std::hint::black_box;

fn id_bytes(id: u32) -> Vec<u8> {
    let b = id.to_be_bytes();
    let skip = b.iter().position(|&x| x != 0).unwrap_or(3);
    b[skip..].to_vec()
}

fn el_w(id: u32, data: &[u8], width: usize) -> Vec<u8> {
    let mut out = id_bytes(id);
    let v = data.len() as u64 | (1u64 << (7 * width));
    out.extend((0..width).map(|i| (v >> (8 * (width - 1 - i))) as u8));
    out.extend_from_slice(data);
    out
}

fn el(id: u32, data: &[u8]) -> Vec<u8> {
    let w = (1..=8)
        .find(|&w| (data.len() as u64) < (1u64 << (7 * w)) - 1)
        .unwrap();
    el_w(id, data, w)
}

fn header() -> Vec<u8> {
    let mut h = el(0x4286, &[1]);
    h.extend(el(0x4282, b"matroska"));
    let mut out = el(0x1A45_DFA3, &h);
    out.extend([0x18, 0x53, 0x80, 0x67, 0xFF]); // Segment, unknown size
    out.extend(el(0x1549_A966, &el(0x2A_D7B1, &[0x0F, 0x42, 0x40])));
    let mut t = el(0xD7, &[1]);
    t.extend(el(0x83, &[1]));
    t.extend(el(0x86, b"V_MPEG4/ISO/AVC"));
    let mut a = el(0xD7, &[2]);
    a.extend(el(0x83, &[2]));
    a.extend(el(0x86, b"A_AAC"));
    let mut tracks = el_w(0xAE, &t, 4);
    tracks.extend(el_w(0xAE, &a, 4));
    out.extend(el_w(0x1654_AE6B, &tracks, 4));
    out
}

fn cluster(tc: u64, frames: &[(u8, i16, bool, usize)]) -> Vec<u8> {
    let mut c = vec![0x1F, 0x43, 0xB6, 0x75, 0xFF];
    c.extend(el_w(0xE7, &tc.to_be_bytes(), 1));
    for &(track, rel, key, len) in frames {
        let mut b = vec![0x80 | track];
        b.extend(rel.to_be_bytes());
        b.push(if key { 0x80 } else { 0 });
        b.resize(4 + len, 0xAB);
        c.extend(el_w(0xA3, &b, 8));
    }
    c
}

fn kvs_tags(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut t = Vec::new();
    for (n, v) in pairs {
        let mut s = el_w(0x45A3, n.as_bytes(), 4);
        s.extend(el_w(0x4487, v.as_bytes(), 4));
        t.extend(el_w(0x67C8, &s, 4));
    }
    el_w(0x1254_C367, &el_w(0x7373, &t, 4), 4)
}

/// (a) 30 fps video, 2 s clusters, frames cycling through 50–200 KB.
fn video_stream(seconds: u64) -> (Vec<u8>, u64) {
    let mut out = header();
    let mut n = 0;
    for s in 0..seconds / 2 {
        let frames: Vec<_> = (0..60)
            .map(|i| {
                (
                    1u8,
                    (i * 33) as i16,
                    i == 0,
                    50_000 + (i as usize * 7919) % 150_000,
                )
            })
            .collect();
        n += frames.len() as u64;
        out.extend(cluster(s * 2000, &frames));
    }
    (out, n)
}

/// (b) 20 ms audio frames of 160 bytes (G.711 at 8 kHz), 2 s clusters.
fn audio_stream(seconds: u64) -> (Vec<u8>, u64) {
    let mut out = header();
    let mut n = 0;
    for s in 0..seconds / 2 {
        let frames: Vec<_> = (0..100)
            .map(|i| (2u8, (i * 20) as i16, i == 0, 160))
            .collect();
        n += frames.len() as u64;
        out.extend(cluster(s * 2000, &frames));
    }
    (out, n)
}

/// (c) GetMedia: one document per 2 s fragment (25 fps video 5–30 KB + 50 audio frames of
/// 400 B), KVS leading and trailing tags.
fn getmedia_stream(fragments: u64) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    let mut n = 0;
    for f in 0..fragments {
        out.extend(header());
        let number = format!("9134385233318143239763374775548442646940443{f:04}");
        let ts = format!("{}.{:03}", 1_700_000_000 + f * 2, f % 1000);
        out.extend(kvs_tags(&[
            ("AWS_KINESISVIDEO_FRAGMENT_NUMBER", &number),
            ("AWS_KINESISVIDEO_SERVER_TIMESTAMP", &ts),
            ("AWS_KINESISVIDEO_PRODUCER_TIMESTAMP", &ts),
        ]));
        let mut frames = Vec::new();
        for i in 0..50 {
            frames.push((
                1u8,
                (i * 40) as i16,
                i == 0,
                5_000 + (i as usize * 4999) % 25_000,
            ));
            frames.push((2u8, (i * 40) as i16, true, 400));
        }
        n += frames.len() as u64;
        out.extend(cluster(f * 2000, &frames));
        out.extend(kvs_tags(&[
            ("AWS_KINESISVIDEO_MILLIS_BEHIND_NOW", "1234"),
            ("AWS_KINESISVIDEO_CONTINUATION_TOKEN", &number),
        ]));
    }
    (out, n)
}

fn decode(input: &Bytes, chunk: usize) -> u64 {
    let mut reader = MkvReader::new();
    let mut frames = 0u64;
    let mut start = 0;
    while start < input.len() {
        let end = (start + chunk).min(input.len());
        reader.push(input.slice(start..end)).unwrap();
        for e in reader.events() {
            if let Ok(Event::Frame(f)) = e {
                frames += 1;
                black_box(&f.data);
            }
        }
        start = end;
    }
    reader.finish();
    for e in reader.events() {
        black_box(&e);
    }
    frames
}

/// Decodes `data` `iterations` times (the measured region of the callgrind loop mode).
#[inline(never)]
fn run_loop(data: &Bytes, iterations: u64) -> u64 {
    (0..iterations).map(|_| decode(data, usize::MAX)).sum()
}

/// `KVS_BENCH_LOOP=<case>:<iterations>`: see the module docs.
fn loop_mode() -> bool {
    let Ok(spec) = std::env::var("KVS_BENCH_LOOP") else {
        return false;
    };
    let (case, n) = spec.split_once(':').unwrap_or((&spec, "100"));
    let n: u64 = n.parse().unwrap();
    let (data, frames) = match case {
        "video" => video_stream(20),
        "audio" => audio_stream(600),
        _ => getmedia_stream(50),
    };
    let data = Bytes::from(data);
    let total = run_loop(&data, n);
    assert_eq!(total, frames * n);
    eprintln!("{case}: {n} iterations x {frames} frames");
    true
}

fn bench(c: &mut Criterion) {
    if loop_mode() {
        return;
    }
    let cases = [
        ("video_1080p_like", video_stream(20)),
        ("audio_20ms_160B", audio_stream(600)),
        ("getmedia_2s_fragments", getmedia_stream(50)),
    ];
    let mut group = c.benchmark_group("decode");
    for (name, (data, frames)) in cases {
        let data = Bytes::from(data);
        assert_eq!(decode(&data, usize::MAX), frames);
        group.throughput(Throughput::Elements(frames));
        group.bench_function(format!("{name}/frames"), |b| {
            b.iter(|| decode(&data, usize::MAX))
        });
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_function(format!("{name}/bytes"), |b| {
            b.iter(|| decode(&data, usize::MAX))
        });
        if name.starts_with("video") {
            group.bench_function(format!("{name}/bytes_64KiB_chunks"), |b| {
                b.iter(|| decode(&data, 64 << 10))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
