"""Benchmark: iterate the frames of a ~100 MB GetMedia-like body from Python, counting frames
and summing their sizes, against the same loop in Rust (kvs._kvs._rust_frame_count).

    python kvs-py/bench/iterate_frames.py [--mb 100] [--repeat 7]

The body is the bundled sample (H.264 320x240 + AAC) rewritten as GetMedia documents (one
per fragment, with KVS tags) and repeated to the requested size.

Both loops use the same core reader (`kvs_core::mkv::reader::MkvReader`, fed `--chunk` bytes at a
time) and do the same counting. The runs alternate (Rust, Python, Rust, Python...) so that a
change of machine load hits both; the ratio is the median of the per-round ratios. The Python
reader decodes one batch ahead on a helper thread while Python consumes the current batch, so
its CPU time (also printed) can exceed its wall time; the Rust loop is single-threaded. The
loops here keep no frame, so the reader reuses each `Frame` object once the loop has dropped it.
The "python batches" row reads the same body with `reader.batches(--max-frames)` and counts
frames and sums sizes per batch (`len(b)`, `np.frombuffer(b.sizes, "<u4").sum()`): one Python
object per batch instead of one per frame. `--only-batches` times only Rust and that row.
The machine's load changes these numbers a lot: print `uptime` next to them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import kvs

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "media" / "sample.mkv"


def timed(fn) -> tuple[float, float, object]:
    """Wall and CPU (this process, all threads) seconds of one call, and its result."""
    w0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - w0, time.process_time() - c0, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--chunk", type=int, default=1 << 20)
    ap.add_argument("--max-frames", type=int, default=65536, help="frames per batch (batches row)")
    ap.add_argument("--only-batches", action="store_true", help="time only Rust and batches")
    args = ap.parse_args()

    one = kvs._kvs._to_getmedia(SAMPLE.read_bytes())
    body = one * ((args.mb << 20) // len(one) + 1)

    def python_loop() -> tuple[int, int]:
        n = size = 0
        for frame in kvs.read_mkv(body, chunk_size=args.chunk):
            n += 1
            size += frame.size
        return n, size

    def python_single() -> tuple[int, int]:
        n = size = 0
        for frame in kvs.read_mkv(body, chunk_size=args.chunk, read_ahead=False):
            n += 1
            size += frame.size
        return n, size

    def python_batches() -> tuple[int, int]:
        import numpy as np

        n = size = 0
        for b in kvs.read_mkv(body, chunk_size=args.chunk).batches(args.max_frames):
            n += len(b)
            size += int(np.frombuffer(b.sizes, "<u4").sum())
        return n, size

    def python_numpy() -> tuple[int, int]:
        import numpy as np

        n = size = 0
        for frame in kvs.read_mkv(body, chunk_size=args.chunk):
            n += 1
            size += np.frombuffer(frame.data, np.uint8).size
        return n, size

    rounds = []
    for _ in range(args.repeat):
        t_rust, c_rust, r_rust = timed(lambda: kvs._kvs._rust_frame_count(body, args.chunk))
        t_b, c_b, r_b = timed(python_batches)
        if args.only_batches:
            t_py, c_py, r_py, t_one, r_one = t_b, c_b, r_b, t_b, r_b
        else:
            t_py, c_py, r_py = timed(python_loop)
            t_one, _, r_one = timed(python_single)
        assert r_py == r_rust == r_one == r_b, (r_py, r_rust, r_one, r_b)
        rounds.append((t_rust, t_py, c_rust, c_py, t_one, t_b, c_b))
    med = statistics.median
    t_rust, t_py = med(r[0] for r in rounds), med(r[1] for r in rounds)
    c_rust, c_py = med(r[2] for r in rounds), med(r[3] for r in rounds)
    ratio = med(r[0] / r[1] for r in rounds)
    frames = r_rust[0]  # type: ignore[index]
    mb = len(body) / 1e6
    print(f"body: {mb:.1f} MB, {frames} frames ({len(body) / frames:.0f} B/frame avg), "
          f"medians of {args.repeat} alternating rounds")
    print(f"rust   count+size : {frames / t_rust:12,.0f} frames/s  {mb / t_rust:8.0f} MB/s"
          f"  (CPU {c_rust / t_rust:.0%} of wall)")
    t_b, c_b = med(r[5] for r in rounds), med(r[6] for r in rounds)
    print(f"python batches    : {frames / t_b:12,.0f} frames/s  {mb / t_b:8.0f} MB/s"
          f"  (CPU {c_b / t_b:.0%} of wall)  {med(r[0] / r[5] for r in rounds):.0%} of Rust"
          f"  (max_frames={args.max_frames})")
    if args.only_batches:
        return
    print(f"python count+size : {frames / t_py:12,.0f} frames/s  {mb / t_py:8.0f} MB/s"
          f"  (CPU {c_py / t_py:.0%} of wall)  {ratio:.0%} of Rust")
    print(f"python per CPU-second: {frames / c_py:10,.0f} frames/s  ({c_rust / c_py:.0%} of Rust)")
    t_one = med(r[4] for r in rounds)
    print(f"python read_ahead=False: {frames / t_one:8,.0f} frames/s  {mb / t_one:8.0f} MB/s"
          f"  {med(r[0] / r[4] for r in rounds):.0%} of Rust")
    try:
        t_np, _, r_np = timed(python_numpy)
        assert r_np == r_rust
        print(f"python np.frombuffer: {frames / t_np:10,.0f} frames/s  {mb / t_np:8.0f} MB/s"
              f"  ({t_rust / t_np:.0%} of Rust)")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
