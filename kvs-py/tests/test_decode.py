"""kvs.decode turns frames into numpy images through PyAV."""

from __future__ import annotations

import pytest

import kvs
from conftest import need


def test_decode_sample_shapes(sample_bytes):
    need("av")
    np = need("numpy")
    reader = kvs.read_mkv(sample_bytes)
    images = list(kvs.decode(reader))
    n_video = sum(1 for f in kvs.read_mkv(sample_bytes) if f.track == 1)
    assert len(images) == n_video
    assert all(isinstance(i, np.ndarray) and i.shape == (240, 320, 3) and i.dtype == np.uint8 for i in images)
    gray = next(kvs.decode(kvs.read_mkv(sample_bytes), format="gray"))
    assert gray.shape == (240, 320)


def test_decode_pyav_clip(h264_clip):
    np = need("numpy")
    images = list(kvs.decode(kvs.read_mkv(h264_clip)))
    assert len(images) == 48 and images[0].shape == (48, 64, 3)
    # The clip's first frame is uniform gray 0 in RGB: decoded pixels stay near it.
    assert abs(int(np.median(images[0])) - 0) < 8


def test_decode_errors(sample_bytes):
    need("av")
    junk = [kvs.Frame(b"\x00\x00\x00\x01\x65" + b"\xff" * 50, 0, keyframe=True)]
    with pytest.raises(kvs.MediaDecodeError):
        list(kvs.decode(junk, codec_id="V_UNKNOWN/CODEC"))
    with pytest.raises(kvs.MediaDecodeError, match="codec unknown"):
        list(kvs.decode(junk))
    assert issubclass(kvs.MediaDecodeError, kvs.DecodeError)
