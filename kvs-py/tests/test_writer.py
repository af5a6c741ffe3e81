"""MkvWriter produces KVS-layout MKV that kvs and FFmpeg (PyAV) read back."""

from __future__ import annotations

import io

import pytest

import kvs
from conftest import frame_key, need


def test_round_trip(sample_bytes):
    reader = kvs.read_mkv(sample_bytes)
    frames = list(reader)
    tracks = reader.tracks
    data = kvs.write_mkv(tracks, frames)
    back = kvs.read_mkv(data)
    assert [frame_key(f) for f in back] == [frame_key(f) for f in frames]
    assert [(t.codec_id, t.codec_private, t.width) for t in back.tracks] == [
        (t.codec_id, t.codec_private, t.width) for t in tracks
    ]
    # One fragment per video key frame (the producer's default fragmentation).
    frags = list(kvs.read_mkv(data).fragments())
    assert len(frags) == sum(1 for f in frames if f.keyframe and f.track == 1)


def test_writer_api_and_metadata():
    w = kvs.MkvWriter([kvs.Track("V_MJPEG", number=1, width=8, height=8)], segment_uid=bytes(16))
    out = [w.header()]
    w.put_metadata("camera", "front")
    out.append(w.write_frame(b"\x00" * 10, 0, keyframe=False))
    assert out[-1] == b""  # non-key frame before the first key frame is dropped
    out.append(w.write(kvs.Frame(b"abc", 1_000_000, keyframe=True)))
    out.append(w.write_frame(b"defg", 2_000_000))
    out.append(w.end_fragment())
    out.append(w.write_frame(b"hij", 3_000_000, keyframe=True))
    out.append(w.finish())
    assert w.fragment_count == 2
    frags = list(kvs.read_mkv(b"".join(out)).fragments())
    assert [[bytes(f.data) for f in fr] for fr in frags] == [[b"abc", b"defg"], [b"hij"]]
    assert frags[0].tags == {"camera": "front"}
    assert frags[0].frames[1].timestamp_ns == 2_000_000


def test_ffmpeg_reads_writer_output(sample_bytes):
    av = need("av")
    reader = kvs.read_mkv(sample_bytes)
    frames = [f for f in reader if f.track == 1]
    data = kvs.write_mkv([reader.tracks[0]], frames)
    with av.open(io.BytesIO(data)) as c:
        decoded = sum(1 for _ in c.decode(video=0))
    assert decoded == len(frames)


def test_write_to_file(tmp_path, sample_bytes):
    reader = kvs.read_mkv(sample_bytes)
    frames = list(reader)
    path = tmp_path / "out.mkv"
    with open(path, "wb") as fh:
        assert kvs.write_mkv(reader.tracks, frames, fh) == b""
    assert sum(1 for _ in kvs.read_mkv(path)) == len(frames)


def test_bad_tracks_and_frames():
    with pytest.raises(kvs.EncodeError):
        kvs.MkvWriter([])
    w = kvs.MkvWriter([kvs.Track("V_MJPEG")])
    with pytest.raises(kvs.EncodeError, match="unknown track 7"):
        w.write_frame(b"x", 0, track=7, keyframe=True)
    with pytest.raises(kvs.EncodeError, match="reserved"):
        w.put_metadata("AWS_X", "y")
    with pytest.raises(ValueError):
        kvs.Track("V_MJPEG", track_type="hologram")
