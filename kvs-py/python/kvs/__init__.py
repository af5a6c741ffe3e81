"""kvs: Amazon Kinesis Video Streams for Python, in Rust.

Read MKV (files, producer streams, GetMedia bodies) frame by frame with zero-copy payloads,
write KVS producer MKV, decode frames into numpy images (with PyAV), and talk to KVS or to the
local kvs server.

    import kvs, numpy as np
    for frame in kvs.read_mkv("clip.mkv"):
        arr = np.frombuffer(frame.data, np.uint8)   # no copy

    for batch in kvs.read_mkv("clip.mkv").batches():  # columns of up to 65536 frames
        sizes = batch.to_numpy()["size"]            # no copy; batch.to_pandas() too
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Union, cast

from . import _kvs
from ._errors import *  # noqa: F403
from ._errors import (
    SERVICE_ERRORS,
    AckError,
    ConfigError,
    DecodeError,
    EncodeError,
    KvsError,
    MediaDecodeError,
    ProducerError,
    ServiceError,
    TransportError,
)
from ._client import (
    Client,
    ContinuationToken,
    FragmentInfo,
    FragmentList,
    Producer,
    StreamInfo,
)
from ._kvs import (
    BatchIterator,
    Fragment,
    FragmentIterator,
    Frame,
    FrameBatch,
    MkvReader,
    MkvWriter,
    Track,
)

if TYPE_CHECKING:
    import numpy as np

__version__: str = _kvs.__version__

Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", IO[bytes], Iterable[bytes]]

__all__ = [
    "AckError",
    "BatchIterator",
    "Client",
    "ConfigError",
    "ContinuationToken",
    "FragmentInfo",
    "FragmentList",
    "Producer",
    "ProducerError",
    "StreamInfo",
    "DecodeError",
    "EncodeError",
    "Fragment",
    "FragmentIterator",
    "Frame",
    "FrameBatch",
    "KvsError",
    "MediaDecodeError",
    "MkvReader",
    "MkvWriter",
    "Credentials",
    "Server",
    "SERVICE_ERRORS",
    "ServiceError",
    "Track",
    "TransportError",
    "decode",
    "read_mkv",
    "write_mkv",
]


def read_mkv(
    source: Source, *, chunk_size: int = 1 << 20, strict: bool = True, read_ahead: bool = True
) -> MkvReader:
    """Opens MKV input for reading.

    ``source`` is ``bytes`` (read without a copy), any other bytes-like object (copied once), a
    path, a binary file object (read ``chunk_size`` bytes at a time) or an iterable of bytes chunks
    (such as an HTTP body). Iterate over the result for :class:`Frame` objects, or call
    ``.fragments()`` for :class:`Fragment` objects, or ``.batches(max_frames=65536)`` for
    :class:`FrameBatch` objects: up to ``max_frames`` frames as columns (``tracks``,
    ``timestamps_ns``, ``keyframes``, ``sizes``, ``offsets``, ``chunk_ids`` as little-endian packed
    ``bytes``; ``to_numpy()``, ``views()`` and ``to_pandas()``), the fast way to scan a long
    stream from Python. Memory stays bounded by the chunk and fragment
    sizes. With ``strict=False`` decoding errors are collected in ``.errors`` instead of raising
    :class:`DecodeError`.

    An input longer than one batch of frames is decoded one batch ahead on a helper thread,
    without the GIL, while Python consumes the current batch; ``read_ahead=False`` decodes
    everything on the calling thread (with the GIL released) instead.
    """
    return MkvReader(source, chunk_size=chunk_size, strict=strict, read_ahead=read_ahead)


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
        packet = av.Packet(cast(Any, frame.data))  # PyAV copies the buffer
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


class Credentials(NamedTuple):
    """An AWS key pair (and session token, for temporary credentials)."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


class Server:
    """The local KVS-compatible server, running in this process on background threads.

    ``data_dir=None`` uses a temporary directory removed by :meth:`close`; ``port=0`` picks a free
    port; ``tls=True`` serves HTTPS with a self-signed certificate (``ca_cert``).
    ``get_media_idle_end_ms`` is how long a caught-up GetMedia with no producer stays open
    (3 s by default; tests shorten it). Use it as a
    context manager::

        with kvs.Server() as server:
            client = server.client()
            boto = boto3.client("kinesisvideo", **server.boto3_kwargs())
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        port: int = 0,
        tls: bool = False,
        *,
        host: str = "127.0.0.1",
        region: str = "us-east-1",
        transition_delay_ms: int | None = None,
        get_media_idle_end_ms: int | None = None,
    ) -> None:
        self._tmp: str | None = None
        if data_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="kvs-server-")
            data_dir = self._tmp
        try:
            self._inner = _kvs._Server(
                os.fspath(data_dir),
                port=port,
                tls=tls,
                host=host,
                region=region,
                transition_delay_ms=transition_delay_ms,
                get_media_idle_end_ms=get_media_idle_end_ms,
            )
        except BaseException:
            self._remove_tmp()
            raise

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` under TLS)."""
        return self._inner.endpoint_url

    @property
    def credentials(self) -> Credentials:
        """The development key pair the server accepts."""
        return Credentials(self._inner.access_key_id, self._inner.secret_access_key)

    @property
    def region(self) -> str:
        """The server's region."""
        return self._inner.region

    @property
    def data_dir(self) -> str:
        """Where the server keeps streams and fragments."""
        return self._inner.data_dir

    @property
    def ca_cert(self) -> str | None:
        """Under TLS: the self-signed certificate (PEM) to trust."""
        return self._inner.ca_cert

    @property
    def running(self) -> bool:
        """True until :meth:`close`."""
        return self._inner.running

    def client(self, **options: Any) -> Client:
        """A :class:`Client` for this server (its endpoint, region, credentials and, under
        TLS, certificate); ``options`` are :class:`Client`'s keyword arguments."""
        return Client(
            region=self.region,
            endpoint_url=self.endpoint_url,
            credentials=(self.credentials.access_key_id, self.credentials.secret_access_key),
            ca_cert=self.ca_cert,
            **options,
        )

    def boto3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments pointing ``boto3.client("kinesisvideo", ...)`` at this server."""
        kwargs: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": self.credentials.access_key_id,
            "aws_secret_access_key": self.credentials.secret_access_key,
        }
        if self.ca_cert:
            kwargs["verify"] = self.ca_cert
        return kwargs

    def close(self) -> None:
        """Stops the server; removes its temporary data directory, if it made one."""
        self._inner.close()
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "closed"
        return f"<kvs.Server {self.endpoint_url} ({state})>"
