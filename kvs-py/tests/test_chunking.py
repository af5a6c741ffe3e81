"""A GetMedia-like body fed in random chunk sizes decodes to the same frames and fragments."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

import kvs
from conftest import SAMPLE, frame_key

BODY = kvs._kvs._to_getmedia(SAMPLE.read_bytes())
EXPECTED = [frame_key(f) for f in kvs.read_mkv(BODY)]
EXPECTED_FRAGMENTS = [
    (fr.fragment_number, fr.server_timestamp_ms, fr.millis_behind_now, len(fr))
    for fr in kvs.read_mkv(BODY).fragments()
]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=40))
def test_random_chunks_same_frames(cuts):
    chunks = split(BODY, cuts)
    assert [frame_key(f) for f in kvs.read_mkv(iter(chunks))] == EXPECTED


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=0), max_size=40), st.integers(min_value=1, max_value=70000))
def test_random_chunks_same_fragments(cuts, chunk_size):
    chunks = split(BODY, cuts)
    got = [
        (fr.fragment_number, fr.server_timestamp_ms, fr.millis_behind_now, len(fr))
        for fr in kvs.read_mkv(iter(chunks), chunk_size=chunk_size).fragments()
    ]
    assert got == EXPECTED_FRAGMENTS


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=200))
def test_push_mode_any_sizes(sizes):
    reader = kvs.MkvReader()
    got, pos, i = [], 0, 0
    while pos < len(BODY):
        n = sizes[i % len(sizes)]
        reader.feed(BODY[pos : pos + n])
        pos += n
        i += 1
        got.extend(frame_key(f) for f in reader)
    reader.finish()
    got.extend(frame_key(f) for f in reader)
    assert got == EXPECTED
