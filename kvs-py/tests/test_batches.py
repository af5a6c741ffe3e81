"""MkvReader.batches(): the columnar API gives exactly the frames of the per-frame iterator."""

from __future__ import annotations

import io
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kvs
from conftest import SAMPLE, frame_key, need
from test_chunking import split
from test_gil import big_body, ticks_during

BODY = kvs._kvs._to_getmedia(SAMPLE.read_bytes())
EXPECTED = [frame_key(f) for f in kvs.read_mkv(BODY)]


def column_keys(batches) -> list[tuple]:
    """(track, timestamp_ns, keyframe, payload) of every frame, from the columns alone."""
    out = []
    for b in batches:
        v = b.views()
        for i in range(len(b)):
            chunk = b.chunks[v["chunk"][i]]
            off, size = v["offset"][i], v["size"][i]
            out.append((v["track"][i], v["timestamp_ns"][i], v["keyframe"][i], bytes(chunk[off : off + size])))
    return out


def frame_keys(batches) -> list[tuple]:
    """The same, from the lazily made Frame objects."""
    return [frame_key(f) for b in batches for f in b]


@pytest.mark.parametrize("max_frames", [1, 7, 100, 65536])
def test_sources_give_the_same_frames(max_frames, sample_path):
    sources = [
        lambda: BODY,
        lambda: io.BytesIO(BODY),
        lambda: iter(split(BODY, [1000, 5000, 77777, 123456])),
        lambda: bytearray(BODY),
    ]
    for make in sources:
        batches = list(kvs.read_mkv(make(), chunk_size=4096).batches(max_frames))
        assert column_keys(batches) == EXPECTED
        assert frame_keys(batches) == EXPECTED
        assert all(len(b) == max_frames for b in batches[:-1])
        assert 0 < len(batches[-1]) <= max_frames
    expected_file = [frame_key(f) for f in kvs.read_mkv(sample_path)]
    with kvs.read_mkv(sample_path) as reader:
        assert frame_keys(reader.batches(max_frames)) == expected_file


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=0), max_size=40),
    st.integers(min_value=1, max_value=70000),
    st.integers(min_value=1, max_value=500),
    st.booleans(),
)
def test_random_chunks_same_frames(cuts, chunk_size, max_frames, mixed):
    reader = kvs.read_mkv(iter(split(BODY, cuts)), chunk_size=chunk_size)
    got = []
    if mixed:
        # Some frames one by one first (the reader may have decoded ahead): each frame comes once.
        for f in reader:
            got.append(frame_key(f))
            if len(got) == 13:
                break
    batches = list(reader.batches(max_frames))
    assert all(len(b) <= max_frames for b in batches)
    assert got + column_keys(batches) == EXPECTED
    assert got + frame_keys(batches) == EXPECTED


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=100))
def test_push_mode(sizes):
    reader = kvs.MkvReader()
    got, pos, i = [], 0, 0
    while pos < len(BODY):
        n = sizes[i % len(sizes)]
        reader.feed(BODY[pos : pos + n])
        pos += n
        i += 1
        got.extend(frame_keys(reader.batches(50)))
    reader.finish()
    got.extend(frame_keys(reader.batches(50)))
    assert got == EXPECTED


def test_numpy_columns_are_zero_copy():
    np = need("numpy")
    b = next(kvs.read_mkv(BODY).batches())
    cols = b.to_numpy()
    assert {k: str(v.dtype) for k, v in cols.items()} == {
        "track": "uint64",
        "timestamp_ns": "int64",
        "keyframe": "bool",
        "size": "uint32",
        "offset": "uint64",
        "chunk": "uint32",
    }
    for name, attr in [("track", "tracks"), ("timestamp_ns", "timestamps_ns"), ("keyframe", "keyframes"),
                       ("size", "sizes"), ("offset", "offsets"), ("chunk", "chunk_ids")]:
        arr = cols[name]
        assert len(arr) == len(b) and not arr.flags.owndata and not arr.flags.writeable
        assert arr.base is getattr(b, attr)  # a view of the column bytes, not a copy
    sizes = np.frombuffer(b.sizes, "<u4")
    assert np.shares_memory(sizes, cols["size"])
    assert int(sizes.sum()) == sum(len(k[3]) for k in EXPECTED[: len(b)])
    # Payloads: the batch's chunk is the caller's bytes object itself.
    assert b.chunks[0] is BODY
    f = b.frame(5)
    assert f.data.obj is BODY
    assert np.shares_memory(np.frombuffer(f.data, np.uint8), np.frombuffer(BODY, np.uint8))


def test_views_are_typed():
    b = next(kvs.read_mkv(BODY).batches(64))
    v = b.views()
    assert {k: m.format for k, m in v.items()} == {
        "track": "Q", "timestamp_ns": "q", "keyframe": "?", "size": "I", "offset": "Q", "chunk": "I",
    }
    if sys.byteorder == "little":
        assert v["size"].tolist() == [len(k[3]) for k in EXPECTED[:64]]
        assert v["timestamp_ns"].tolist() == [k[1] for k in EXPECTED[:64]]
        assert v["size"].obj is b.sizes


def test_frames_of_a_batch():
    b = next(kvs.read_mkv(BODY).batches(64))
    assert len(b) == 64 and repr(b) == "FrameBatch(frames=64, chunks=1)"
    assert frame_key(b.frame(-1)) == frame_key(b[63]) == EXPECTED[63]
    with pytest.raises(IndexError):
        b.frame(64)
    with pytest.raises(IndexError):
        b[-65]
    f = b.frame(0)
    assert f.track_info is not None and f.track_info.codec_id == "V_MPEG4/ISO/AVC"
    assert f.timestamp.tzinfo is not None
    assert [frame_key(x) for x in b] == EXPECTED[:64]
    # The same as a frame from the iterator in everything it exposes.
    g = next(iter(kvs.read_mkv(BODY)))
    for attr in ("track", "timestamp_ns", "keyframe", "invisible", "discardable", "duration_ns", "size"):
        assert getattr(f, attr) == getattr(g, attr), attr


def test_to_pandas():
    pd = need("pandas")
    b = next(kvs.read_mkv(BODY).batches(100))
    df = b.to_pandas()
    assert list(df.columns) == ["track", "timestamp_ns", "timestamp", "keyframe", "size", "offset", "chunk"]
    assert {c: str(t) for c, t in df.dtypes.items()} == {
        "track": "uint64",
        "timestamp_ns": "int64",
        "timestamp": "datetime64[ns, UTC]",
        "keyframe": "bool",
        "size": "uint32",
        "offset": "uint64",
        "chunk": "uint32",
    }
    assert len(df) == 100
    assert df["size"].tolist() == [len(k[3]) for k in EXPECTED[:100]]
    assert df["track"].tolist() == [k[0] for k in EXPECTED[:100]]
    assert df["keyframe"].tolist() == [k[2] for k in EXPECTED[:100]]
    assert df["timestamp"].iloc[0] == pd.Timestamp(EXPECTED[0][1], unit="ns", tz="UTC")


def test_max_frames_validated():
    with pytest.raises(ValueError, match="max_frames"):
        kvs.read_mkv(BODY).batches(0)


def test_truncated_input_raises_like_frames(sample_bytes):
    cut = sample_bytes[: len(sample_bytes) - 100]
    expected = []
    with pytest.raises(kvs.DecodeError, match="input ended") as frame_err:
        for f in kvs.read_mkv(cut):
            expected.append(frame_key(f))
    got = []
    with pytest.raises(kvs.DecodeError, match="input ended") as batch_err:
        for b in kvs.read_mkv(cut).batches(100):
            got.extend(frame_keys([b]))
    assert type(batch_err.value) is type(frame_err.value)
    assert got == expected and got  # every frame before the error came first
    # Non-strict: the same frames and the error recorded.
    reader = kvs.read_mkv(cut, strict=False)
    assert frame_keys(reader.batches(100)) == [frame_key(f) for f in kvs.read_mkv(cut, strict=False)]
    assert reader.errors and "input ended" in reader.errors[0]


def test_garbage_raises_decode_error():
    with pytest.raises(kvs.DecodeError):
        list(kvs.read_mkv(b"\x1a\x45\xdf\xa3\x88" + b"\x00" * 64).batches())


def test_bad_chunk_raises_type_error_after_the_frames_before_it():
    chunks = [BODY[:20000], "text"]
    with pytest.raises(TypeError):
        list(kvs.read_mkv(iter(chunks)))  # type: ignore[arg-type]
    got = []
    with pytest.raises(TypeError):
        for b in kvs.read_mkv(iter(chunks)).batches():  # type: ignore[arg-type]
            got.extend(frame_keys([b]))
    assert got and got == EXPECTED[: len(got)]


def test_batches_release_the_gil():
    body = big_body(40 << 20)

    def run() -> None:
        assert sum(len(b) for b in kvs.read_mkv(body).batches()) > 0

    ticks, elapsed = ticks_during(run)
    assert elapsed > 0.005
    assert ticks > 1000, (ticks, elapsed)


@pytest.mark.parametrize("read_ahead", [True, False])
def test_frames_after_a_batch(read_ahead):
    body = BODY * 20  # long enough for the reader to decode ahead
    expected = [frame_key(f) for f in kvs.read_mkv(body)]
    reader = kvs.read_mkv(body, read_ahead=read_ahead)
    got = [frame_key(f) for f in next(reader.batches(50))]
    got += [frame_key(f) for f in reader]  # then frame by frame: each frame once, in order
    assert got == expected
    reader = kvs.read_mkv(body, read_ahead=read_ahead)
    got = [frame_key(next(reader)) for _ in range(700)]  # past one read-ahead batch
    got += frame_keys(reader.batches(1000))
    assert got == expected
