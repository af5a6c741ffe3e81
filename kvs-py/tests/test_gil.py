"""Heavy work runs with the GIL released: a Python thread keeps running meanwhile."""

from __future__ import annotations

import threading
import time

import kvs
from conftest import SAMPLE


def big_body(min_bytes: int) -> bytes:
    one = kvs._kvs._to_getmedia(SAMPLE.read_bytes())
    return one * (min_bytes // len(one) + 1)


def ticks_during(fn) -> tuple[int, float]:
    counter = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    time.sleep(0.05)
    before = counter[0]
    t0 = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    after = counter[0]
    stop.set()
    t.join()
    return after - before, elapsed


def test_decoding_releases_gil():
    body = big_body(60 << 20)
    ticks, elapsed = ticks_during(lambda: kvs._kvs._rust_frame_count(body, 1 << 20))
    # With the GIL held for the whole call the spinning thread could not run at all.
    assert elapsed > 0.005
    assert ticks > 1000, (ticks, elapsed)


def test_parallel_readers_scale():
    """Two threads decoding at once both make progress and agree."""
    body = big_body(8 << 20)
    results: list[int] = []

    def work() -> None:
        results.append(sum(f.size for f in kvs.read_mkv(body)))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and results[0] == results[1] > 0
