"""Benchmark: iterate the frames of a ~100 MB GetMedia-like body from Python, counting frames
and summing their sizes, against the same loop in Rust (kvs._kvs._rust_frame_count).

    python kvs-py/bench/iterate_frames.py [--mb 100] [--repeat 3]

The body is the bundled sample (H.264 320x240 + AAC) rewritten as GetMedia documents (one
per fragment, with KVS tags) and repeated to the requested size.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import kvs

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "media" / "sample.mkv"


def best(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=1 << 20)
    args = ap.parse_args()

    one = kvs._kvs._to_getmedia(SAMPLE.read_bytes())
    body = one * ((args.mb << 20) // len(one) + 1)

    def python_loop() -> tuple[int, int]:
        n = size = 0
        for frame in kvs.read_mkv(body, chunk_size=args.chunk):
            n += 1
            size += frame.size
        return n, size

    def python_numpy() -> tuple[int, int]:
        import numpy as np

        n = size = 0
        for frame in kvs.read_mkv(body, chunk_size=args.chunk):
            n += 1
            size += np.frombuffer(frame.data, np.uint8).size
        return n, size

    t_rust, r_rust = best(lambda: kvs._kvs._rust_frame_count(body, args.chunk), args.repeat)
    t_py, r_py = best(python_loop, args.repeat)
    assert r_py == r_rust, (r_py, r_rust)
    frames = r_rust[0]  # type: ignore[index]
    mb = len(body) / 1e6
    print(f"body: {mb:.1f} MB, {frames} frames ({len(body) / frames:.0f} B/frame avg)")
    print(f"rust   count+size : {frames / t_rust:12,.0f} frames/s  {mb / t_rust:8.0f} MB/s")
    print(f"python count+size : {frames / t_py:12,.0f} frames/s  {mb / t_py:8.0f} MB/s"
          f"  ({t_rust / t_py:.0%} of Rust)")
    try:
        t_np, r_np = best(python_numpy, args.repeat)
        assert r_np == r_rust
        print(f"python np.frombuffer: {frames / t_np:10,.0f} frames/s  {mb / t_np:8.0f} MB/s"
              f"  ({t_rust / t_np:.0%} of Rust)")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
