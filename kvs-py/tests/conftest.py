from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "media" / "sample.mkv"
REQUIRE = os.environ.get("KVS_REQUIRE_TOOLS") == "1"


def need(module: str):
    """Imports an optional test dependency; skips without it unless KVS_REQUIRE_TOOLS=1."""
    try:
        return __import__(module)
    except ImportError:
        if REQUIRE:
            raise
        pytest.skip(f"{module} is not installed")


@pytest.fixture(scope="session")
def sample_bytes() -> bytes:
    return SAMPLE.read_bytes()


@pytest.fixture(scope="session")
def sample_path() -> Path:
    return SAMPLE


def frame_key(f) -> tuple:
    return (f.track, f.timestamp_ns, f.keyframe, bytes(f.data))


@pytest.fixture(scope="session")
def h264_clip() -> bytes:
    """A 48-frame 64x48 H.264 clip in MKV, made with PyAV (libx264), 2 GOPs."""
    av = need("av")
    np = need("numpy")
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"g": "24", "bf": "0", "tune": "zerolatency", "sc_threshold": "0"}
        for i in range(48):
            img = np.full((48, 64, 3), (i * 5) % 256, dtype=np.uint8)
            img[: i % 48, :, 1] = 200
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()
