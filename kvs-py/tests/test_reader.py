"""MkvReader against the bundled sample and against PyAV's demuxer (an independent parser)."""

from __future__ import annotations

import io

import pytest

import kvs
from conftest import frame_key, need


def test_sample_tracks_and_frames(sample_path):
    reader = kvs.read_mkv(sample_path)
    frames = list(reader)
    assert [t.codec_id for t in reader.tracks] == ["V_MPEG4/ISO/AVC", "A_AAC"]
    video = reader.tracks[0]
    assert (video.width, video.height, video.track_type) == (320, 240, "video")
    assert video.codec_private[:1] == b"\x01"  # avcC
    assert {f.track for f in frames} == {1, 2}
    assert frames[0].keyframe and frames[0].track == 1
    assert all(b.timestamp_ns >= a.timestamp_ns for a, b in zip(frames, frames[1:]) if a.track == b.track)


def test_frames_match_pyav_demuxer(sample_path):
    av = need("av")
    ours = {1: [], 2: []}
    for f in kvs.read_mkv(sample_path):
        ours[f.track].append(bytes(f.data))
    theirs = {1: [], 2: []}
    with av.open(str(sample_path)) as container:
        for packet in container.demux():
            if packet.size:
                theirs[packet.stream.index + 1].append(bytes(packet))
    assert len(ours[1]) == len(theirs[1]) > 0
    assert ours == theirs


def test_all_sources_agree(sample_path, sample_bytes):
    expected = [frame_key(f) for f in kvs.read_mkv(sample_bytes)]
    sources = [
        str(sample_path),
        sample_path,
        bytearray(sample_bytes),
        memoryview(sample_bytes),
        io.BytesIO(sample_bytes),
        iter([sample_bytes[i : i + 1000] for i in range(0, len(sample_bytes), 1000)]),
    ]
    for source in sources:
        assert [frame_key(f) for f in kvs.read_mkv(source, chunk_size=4096)] == expected


def test_zero_copy_views(sample_bytes):
    np = need("numpy")
    frames = list(kvs.read_mkv(sample_bytes))
    f = frames[3]
    view = f.data
    assert isinstance(view, memoryview) and view.readonly
    assert view.obj is sample_bytes  # a view of the caller's bytes, not a copy
    arr = np.frombuffer(f.data, np.uint8)
    assert not arr.flags.owndata and arr.size == f.size == len(f)
    assert np.shares_memory(arr, np.frombuffer(sample_bytes, np.uint8))
    assert bytes(f) == arr.tobytes()


def test_frame_timestamps_and_track_info(sample_bytes):
    f = next(iter(kvs.read_mkv(sample_bytes)))
    assert f.timestamp.tzinfo is not None
    assert int(f.timestamp.timestamp() * 1e6) == f.timestamp_ns // 1000
    assert f.track_info is not None and f.track_info.codec_id == "V_MPEG4/ISO/AVC"


def test_fragments(sample_bytes):
    frags = list(kvs.read_mkv(sample_bytes).fragments())
    frames = list(kvs.read_mkv(sample_bytes))
    assert sum(len(fr) for fr in frags) == len(frames)
    assert [frame_key(f) for fr in frags for f in fr] == [frame_key(f) for f in frames]
    for fr in frags:
        assert fr.frames[0].keyframe and fr.cluster_timecode is not None
        assert not fr.truncated


def test_getmedia_stream_metadata(sample_bytes):
    body = kvs._kvs._to_getmedia(sample_bytes, server_timestamp_ms=1_700_000_000_000)
    frags = list(kvs.read_mkv(body).fragments())
    direct = list(kvs.read_mkv(sample_bytes).fragments())
    assert len(frags) == len(direct)
    numbers = [fr.fragment_number for fr in frags]
    assert all(n is not None and len(n) == 47 for n in numbers)
    assert numbers == sorted(numbers)
    assert [fr.continuation_token for fr in frags] == numbers
    assert frags[0].server_timestamp_ms == 1_700_000_000_000
    assert frags[0].server_timestamp.year == 2023
    assert frags[-1].millis_behind_now == 0
    assert frags[0].producer_timestamp_ms == direct[0].cluster_timecode
    assert [fr.document for fr in frags] == list(range(len(frags)))


def test_push_mode(sample_bytes):
    reader = kvs.MkvReader()
    got = []
    for i in range(0, len(sample_bytes), 777):
        reader.feed(sample_bytes[i : i + 777])
        got.extend(frame_key(f) for f in reader)
    reader.finish()
    got.extend(frame_key(f) for f in reader)
    assert got == [frame_key(f) for f in kvs.read_mkv(sample_bytes)]
    with pytest.raises(ValueError):
        reader.feed(b"more")


def test_bounded_chunks_from_file(tmp_path, sample_bytes):
    """A file is read chunk by chunk: the reader never asks for more than chunk_size bytes."""
    sizes = []

    class Spy(io.BytesIO):
        def read(self, n=-1):  # type: ignore[override]
            sizes.append(n)
            return super().read(n)

    n = sum(1 for _ in kvs.read_mkv(Spy(sample_bytes), chunk_size=5000))
    assert n > 0 and set(sizes) == {5000} and len(sizes) > len(sample_bytes) // 5000


def test_long_input_read_ahead(sample_bytes):
    """An input of many batches is decoded one batch ahead on a helper thread: frames, their
    zero-copy views, fragments, fed input and file input come out exactly as without it."""
    one = kvs._kvs._to_getmedia(sample_bytes)
    ref = [frame_key(f) for f in kvs.read_mkv(one)]
    copies = 8
    body = one * copies
    assert len(ref) * copies > 4 * 512  # several decoding batches
    expected = ref * copies
    pieces = [body[i : i + 7777] for i in range(0, len(body), 7777)]
    for source, chunk in [
        (body, 1 << 20),
        (body, 10_000),
        (io.BytesIO(body), 65_536),
        (iter(pieces), 4096),
    ]:
        assert [frame_key(f) for f in kvs.read_mkv(source, chunk_size=chunk)] == expected
    assert [frame_key(f) for f in kvs.read_mkv(body, read_ahead=False)] == expected

    reader = kvs.read_mkv(body, chunk_size=100_000)
    frames = list(reader)
    # Views of the caller's bytes, except a frame cut by a chunk boundary (joined once).
    views = sum(f.data.obj is body for f in frames)
    assert views >= len(frames) - (len(body) // 100_000 + 1)
    assert reader.offset == len(body) and not reader.errors

    frags = list(kvs.read_mkv(body).fragments())
    assert [frame_key(f) for fr in frags for f in fr] == expected

    fed = kvs.MkvReader()
    got = []
    for i in range(0, len(body), 50_000):
        fed.feed(body[i : i + 50_000])
        got.extend(frame_key(f) for f in fed)
    fed.finish()
    got.extend(frame_key(f) for f in fed)
    assert got == expected

    # A truncated long input still raises at its end, after every whole frame.
    cut = kvs.read_mkv(body[:-100])
    seen = 0
    with pytest.raises(kvs.DecodeError, match="input ended"):
        for _ in cut:
            seen += 1
    assert seen >= len(expected) - 40


def full_key(f) -> tuple:
    return (f.track, f.timestamp_ns, f.keyframe, f.duration_ns, f.invisible, f.discardable,
            f.size, len(f), bytes(f), bytes(f.data), f.track_info.number if f.track_info else None)


def test_frame_object_reuse_is_safe(sample_bytes):
    """Iterating reuses a Frame object once Python dropped it: frames kept in a list, and views
    (memoryview, numpy) of frames that were dropped, keep their own fields and bytes, equal to a
    decode that keeps every frame (no reuse possible) and to one through fragments()."""
    np = need("numpy")
    one = kvs._kvs._to_getmedia(sample_bytes)
    body = one * 6
    kept_all = list(kvs.read_mkv(body, read_ahead=False))  # every frame referenced: no reuse
    expected = [full_key(f) for f in kept_all]
    assert [full_key(f) for fr in kvs.read_mkv(body).fragments() for f in fr] == expected
    assert len({id(f) for f in kept_all}) == len(kept_all)
    del kept_all
    pieces = [body[i : i + 9973] for i in range(0, len(body), 9973)]
    for source, chunk, ahead in [
        (body, 1 << 20, True),
        (body, 1 << 20, False),
        (body, 4096, True),
        (iter(pieces), 1 << 20, True),  # many chunks; frames cut by a chunk boundary are joined
    ]:
        kept, views, arrays, seen = [], [], [], []
        for i, f in enumerate(kvs.read_mkv(source, chunk_size=chunk, read_ahead=ahead)):
            seen.append(full_key(f))
            if i % 7 == 0:
                kept.append((i, f))
            if i % 5 == 0:
                views.append((i, f.data))
            if i % 11 == 0:
                arrays.append((i, np.frombuffer(f.data, np.uint8)))
        assert seen == expected
        assert kept and views and arrays
        for i, f in kept:
            assert full_key(f) == expected[i], i
        for i, view in views:
            assert bytes(view) == expected[i][8], i
        for i, arr in arrays:
            assert arr.tobytes() == expected[i][8], i

    # By hand: a frame dropped between next() calls may come back as the next frame, while a
    # view taken from it keeps the old bytes and a frame still held keeps its fields.
    reader = kvs.read_mkv(body, read_ahead=False)
    f0 = next(reader)
    v0 = f0.data
    f1 = next(reader)
    del f0
    held = [next(reader) for _ in range(3)]
    assert bytes(v0) == expected[0][8]
    assert full_key(f1) == expected[1]
    assert [full_key(f) for f in held] == expected[2:5]
    rest = [full_key(f) for f in reader]
    assert rest == expected[5:]
