"""kvs: Amazon Kinesis Video Streams for Python, in Rust.

Read MKV (files, producer streams, GetMedia bodies) frame by frame with zero-copy payloads,
write KVS producer MKV, decode frames into numpy images (with PyAV), and talk to KVS or to the
local kvs server.

    import kvs, numpy as np
    for frame in kvs.read_mkv("clip.mkv"):
        arr = np.frombuffer(frame.data, np.uint8)   # no copy
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, Union

from . import _kvs
from ._errors import *  # noqa: F403
from ._errors import (
    SERVICE_ERRORS,
    AckError,
    DecodeError,
    EncodeError,
    KvsError,
    MediaDecodeError,
    ServiceError,
    TransportError,
)
from ._kvs import Fragment, FragmentIterator, Frame, MkvReader, MkvWriter, Track

if TYPE_CHECKING:
    import numpy as np

__version__: str = _kvs.__version__

Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", IO[bytes], Iterable[bytes]]

__all__ = [
    "AckError",
    "DecodeError",
    "EncodeError",
    "Fragment",
    "FragmentIterator",
    "Frame",
    "KvsError",
    "MediaDecodeError",
    "MkvReader",
    "MkvWriter",
    "SERVICE_ERRORS",
    "ServiceError",
    "Track",
    "TransportError",
    "decode",
    "read_mkv",
    "write_mkv",
]


def read_mkv(source: Source, *, chunk_size: int = 1 << 20, strict: bool = True) -> MkvReader:
    """Opens MKV input for reading.

    ``source`` is ``bytes`` (read without a copy), any other bytes-like object (copied once), a
    path, a binary file object (read ``chunk_size`` bytes at a time) or an iterable of bytes chunks
    (such as an HTTP body). Iterate over the result for :class:`Frame` objects, or call
    ``.fragments()`` for :class:`Fragment` objects. Memory stays bounded by the chunk and fragment
    sizes. With ``strict=False`` decoding errors are collected in ``.errors`` instead of raising
    :class:`DecodeError`.
    """
    return MkvReader(source, chunk_size=chunk_size, strict=strict)


def write_mkv(
    tracks: Iterable[Track],
    frames: Iterable[Frame],
    file: IO[bytes] | None = None,
    **options: Any,
) -> bytes:
    """Encodes ``frames`` as a KVS producer MKV stream; writes it to ``file`` when given.

    ``options`` are :class:`MkvWriter`'s keyword arguments. Returns the bytes (empty when
    ``file`` is given).
    """
    writer = MkvWriter(list(tracks), **options)
    parts: list[bytes] = []
    emit = file.write if file is not None else parts.append
    emit(writer.header())
    for frame in frames:
        emit(writer.write(frame))
    emit(writer.finish())
    return b"".join(parts)


_AV_CODECS = {
    "V_MPEG4/ISO/AVC": "h264",
    "V_MPEGH/ISO/HEVC": "hevc",
    "V_MS/VFW/FOURCC": "mjpeg",
    "V_VP8": "vp8",
    "V_VP9": "vp9",
    "V_AV1": "av1",
    "V_MJPEG": "mjpeg",
}


def decode(
    frames: Iterable[Frame],
    *,
    track: int | None = None,
    format: str = "rgb24",
    codec_id: str | None = None,
    codec_private: bytes | None = None,
) -> Iterator[np.ndarray]:
    """Decodes video frames into numpy images (``height x width x 3`` for ``rgb24``) with PyAV.

    ``frames`` is any iterable of :class:`Frame` (a reader, a fragment, a list). The codec comes
    from the frames' track (``Frame.track_info``), or from ``codec_id`` / ``codec_private``.
    Only the first video track (or ``track``) is decoded. Needs ``pip install av numpy``.
    Raises :class:`MediaDecodeError` when FFmpeg rejects the data.
    """
    try:
        import av
    except ImportError as e:  # pragma: no cover - exercised only without PyAV
        raise ImportError(
            "kvs.decode needs PyAV and numpy: pip install av numpy (or pip install 'kvs[decode]')"
        ) from e

    ctx: Any = None
    for frame in frames:
        if track is None:
            info = frame.track_info
            if info is not None and info.track_type != "video":
                continue
            track = frame.track
        elif frame.track != track:
            continue
        if ctx is None:
            info = frame.track_info
            cid = codec_id or (info.codec_id if info else None)
            if cid is None:
                raise MediaDecodeError(
                    f"track {frame.track}: codec unknown (pass codec_id= and codec_private=)"
                )
            name = _AV_CODECS.get(cid)
            if name is None:
                raise MediaDecodeError(f"track {frame.track}: codec {cid!r} is not supported")
            ctx = av.CodecContext.create(name, "r")
            private = codec_private if codec_private is not None else (info.codec_private if info else b"")
            if private:
                ctx.extradata = private
        packet = av.Packet(frame.data)
        packet.pts = frame.timestamp_ns
        try:
            for image in ctx.decode(packet):
                yield image.to_ndarray(format=format)
        except av.FFmpegError as e:
            raise MediaDecodeError(f"decoding frame at {frame.timestamp_ns} ns: {e}") from e
    if ctx is not None:
        try:
            for image in ctx.decode(None):
                yield image.to_ndarray(format=format)
        except av.FFmpegError as e:
            raise MediaDecodeError(f"flushing the decoder: {e}") from e
