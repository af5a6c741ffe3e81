"""kvs.Client: the Kinesis Video Streams API (control plane, PutMedia, GetMedia, archived media)
on the Rust client of kvs-core. Every network wait releases the GIL."""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, NamedTuple, Union, cast

from . import _kvs
from ._kvs import Fragment, FragmentIterator, Frame, MkvReader, Track

if TYPE_CHECKING:
    import pandas as pd

_UTC = _dt.timezone.utc
# Frame timestamps before 2000-01-01 are taken as relative to the stream start, not wall clock.
_WALL_CLOCK_NS = 946_684_800 * 1_000_000_000

MediaSource = Union[
    bytes, bytearray, memoryview, str, "os.PathLike[str]", IO[bytes], Iterable[Frame]
]


class ContinuationToken(str):
    """A GetMedia continuation token (``Fragment.continuation_token``), to pass as ``start``:
    ``client.get_media(stream, start=kvs.ContinuationToken(token))`` resumes right after the
    fragment that carried it. (A plain string of digits is taken as a fragment number.)"""

    __slots__ = ()


def _datetime_from_ms(ms: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_UTC)


def _ms(when: _dt.datetime | float | int) -> int:
    """Epoch milliseconds of a datetime (naive ones are UTC) or of epoch seconds."""
    if isinstance(when, _dt.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=_UTC)
        return round(when.timestamp() * 1000)
    if isinstance(when, bool) or not isinstance(when, (int, float)):
        raise TypeError(f"expected a datetime or epoch seconds, got {type(when).__name__}")
    return round(when * 1000)


class StreamInfo(NamedTuple):
    """A stream's description (DescribeStream, ListStreams)."""

    stream_name: str
    stream_arn: str
    status: str
    version: str
    creation_time: _dt.datetime
    data_retention_in_hours: int
    media_type: str | None
    kms_key_id: str | None
    device_name: str | None

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> StreamInfo:
        fields = {k: d[k] for k in cls._fields if k != "creation_time"}
        return cls(creation_time=_datetime_from_ms(d["creation_time_ms"]), **fields)


class FragmentInfo(NamedTuple):
    """One fragment as ListFragments describes it."""

    fragment_number: str
    size: int
    producer_timestamp: _dt.datetime
    server_timestamp: _dt.datetime
    duration_ms: int


class FragmentList(list[FragmentInfo]):
    """ListFragments' answer: a list of :class:`FragmentInfo` sorted by producer timestamp (by
    server timestamp with ``server_time=True``)."""

    def to_pandas(self) -> pd.DataFrame:
        """The fragments as a ``pandas.DataFrame``, one row per fragment (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as e:
            raise ImportError(
                "FragmentList.to_pandas needs pandas: pip install pandas "
                "(or pip install 'kvs[pandas]')"
            ) from e
        return pd.DataFrame.from_records(
            [tuple(f) for f in self], columns=list(FragmentInfo._fields)
        )


class Producer:
    """A running PutMedia producer: queue frames with :meth:`put_frame`; leaving the ``with``
    block (or :meth:`finish`) ends the stream and waits until every fragment is acknowledged
    (PERSISTED by default). On an exception inside the block the producer stops at once.

    ::

        with client.producer("cam", tracks=reader.tracks) as p:
            for frame in reader:
                p.put_frame(frame)
        print(p.report["fragments_acked"])
    """

    def __init__(self, inner: _kvs._Producer) -> None:
        self._inner = inner
        self.report: dict[str, int] | None = None
        """The final counters, once finished."""

    def put_frame(
        self,
        frame: Frame | bytes | bytearray | memoryview,
        timestamp_ns: int | None = None,
        *,
        keyframe: bool = False,
        track: int = 1,
    ) -> int:
        """Queues a :class:`Frame` (or a payload with ``timestamp_ns``, ``keyframe`` and
        ``track``). Waits, without holding the GIL, while the buffer is full. Returns the
        frame's id."""
        if not isinstance(frame, Frame):
            if timestamp_ns is None:
                raise TypeError("put_frame(payload, ...) needs timestamp_ns")
            frame = Frame(frame, timestamp_ns, track=track, keyframe=keyframe)
        return self._inner.put_frame(frame)

    def put_metadata(self, name: str, value: str, persistent: bool = False) -> None:
        """Adds a metadata tag to the next fragment (to every later one when ``persistent``)."""
        self._inner.put_metadata(name, value, persistent)

    @property
    def metrics(self) -> dict[str, int]:
        """The session's counters now (frames, fragments, ACKs by kind, bytes, connections...);
        the final counters once finished."""
        if self.report is not None:
            return dict(self.report)
        return self._inner.metrics()

    @property
    def running(self) -> bool:
        """False once finished or closed."""
        return self._inner.running

    def finish(self) -> dict[str, int]:
        """Ends the stream and waits for the last fragment's final ACK. Raises the service
        error that stopped the producer (e.g. :class:`ResourceNotFoundException` for a missing
        stream), :class:`AckError` (with ``error_id``) when an ERROR acknowledgement made it drop
        a fragment, or :class:`ProducerError` when frames were dropped for another reason."""
        self.report = self._inner.finish()
        return self.report

    def close(self) -> None:
        """Stops at once without waiting for ACKs."""
        self._inner.close()

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self.running:
            self.finish()
        else:
            self.close()


class Client:
    """A Kinesis Video Streams client.

    Settings come from the arguments, else the environment (``AWS_REGION``,
    ``AWS_ENDPOINT_URL_KINESIS_VIDEO``, ``AWS_ACCESS_KEY_ID``...) and the shared AWS files
    (``profile``). ``credentials`` is a :class:`Credentials` or an ``(access_key_id,
    secret_access_key[, session_token])`` tuple; ``ca_cert`` a PEM file to trust (a local TLS
    server's). Service errors raise the :class:`ServiceError` subclass named after the AWS
    exception (``kvs.ResourceNotFoundException``...); network failures :class:`TransportError`.
    Data-plane endpoints are discovered with GetDataEndpoint and cached. Every call releases the
    GIL while it waits.

    ::

        client = kvs.Client(region="eu-west-1")
        for fragment in client.get_media("cam", start="earliest"):
            for frame in fragment:
                ...
    """

    def __init__(
        self,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        credentials: tuple[str, str] | tuple[str, str, str | None] | None = None,
        *,
        ca_cert: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
        max_attempts: int | None = None,
    ) -> None:
        key_id = secret = token = None
        if credentials is not None:
            if len(credentials) not in (2, 3):
                raise ValueError(
                    "credentials: give (access_key_id, secret_access_key[, session_token])"
                )
            key_id, secret = credentials[0], credentials[1]
            token = credentials[2] if len(credentials) == 3 else None
        pem = None
        if ca_cert is not None:
            with open(ca_cert, "rb") as f:
                pem = f.read()
        self._inner = _kvs._Client(
            region=region,
            endpoint_url=endpoint_url,
            profile=profile,
            access_key_id=key_id,
            secret_access_key=secret,
            session_token=token,
            ca_cert_pem=pem,
            timeout_s=timeout,
            max_attempts=max_attempts,
        )

    @property
    def region(self) -> str:
        """The region requests are signed for."""
        return self._inner.region

    @property
    def endpoint_url(self) -> str:
        """The control-plane endpoint."""
        return self._inner.endpoint_url.rstrip("/")

    def __repr__(self) -> str:
        return f"<kvs.Client {self.endpoint_url} ({self.region})>"

    # ------------------------------------------------------------------ control plane

    def create_stream(
        self,
        stream: str,
        retention_hours: int = 24,
        *,
        media_type: str | None = None,
        kms_key_id: str | None = None,
        device_name: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """CreateStream; returns the stream's ARN. ``retention_hours=0`` keeps no data.
        Raises :class:`ResourceInUseException` when the stream exists."""
        return self._inner.create_stream(
            stream,
            retention_hours,
            media_type=media_type,
            kms_key_id=kms_key_id,
            device_name=device_name,
            tags=dict(tags) if tags is not None else None,
        )

    def describe_stream(self, stream: str) -> StreamInfo:
        """DescribeStream."""
        return StreamInfo._from(self._inner.describe_stream(stream))

    def wait_active(self, stream: str, timeout: float = 30.0) -> StreamInfo:
        """Waits until the stream is ACTIVE (a new stream is CREATING for a moment); raises
        :class:`ConfigError` after ``timeout`` seconds."""
        return StreamInfo._from(self._inner.wait_active(stream, timeout))

    def list_streams(self) -> list[StreamInfo]:
        """ListStreams (every page)."""
        return [StreamInfo._from(d) for d in self._inner.list_streams()]

    def delete_stream(self, stream: str) -> None:
        """DeleteStream (by name; the current version is looked up first)."""
        self._inner.delete_stream(stream)

    def update_data_retention(self, stream: str, change_hours: int) -> None:
        """UpdateDataRetention: ``change_hours > 0`` increases the retention, ``< 0``
        decreases it."""
        if change_hours == 0:
            raise ValueError("change_hours must not be 0")
        self._inner.update_data_retention(stream, change_hours)

    def tag_stream(self, stream: str, tags: Mapping[str, str]) -> None:
        """TagStream."""
        self._inner.tag_stream(stream, dict(tags))

    def untag_stream(self, stream: str, keys: Iterable[str]) -> None:
        """UntagStream."""
        self._inner.untag_stream(stream, list(keys))

    def list_tags_for_stream(self, stream: str) -> dict[str, str]:
        """ListTagsForStream."""
        return self._inner.list_tags_for_stream(stream)

    def get_data_endpoint(self, stream: str, api_name: str = "GET_MEDIA") -> str:
        """GetDataEndpoint for ``api_name`` (``PUT_MEDIA``, ``GET_MEDIA``,
        ``LIST_FRAGMENTS``, ``GET_MEDIA_FOR_FRAGMENT_LIST``, ...)."""
        return self._inner.get_data_endpoint(stream, api_name.upper())

    # ------------------------------------------------------------------ PutMedia

    def producer(
        self,
        stream: str,
        tracks: Iterable[Track],
        *,
        relative: bool = False,
        fragment_duration_ns: int | None = None,
        timecode_scale_ns: int = 1_000_000,
        ack_level: str = "PERSISTED",
        finish_timeout: float = 30.0,
        buffer_bytes: int | None = None,
    ) -> Producer:
        """A PutMedia producer for ``stream`` (a context manager; see :class:`Producer`).

        Frame timestamps are wall-clock epoch nanoseconds, or with ``relative=True`` any
        clock (the stream then starts now). A key frame opens a fragment (at most every
        ``fragment_duration_ns`` when given). ``ack_level="RECEIVED"`` suits streams with no
        retention. Reconnects, rewinds and backpressure are handled in Rust.
        """
        return Producer(
            self._inner.producer(
                stream,
                list(tracks),
                relative=relative,
                fragment_duration_ns=fragment_duration_ns,
                timecode_scale_ns=timecode_scale_ns,
                ack_level=ack_level,
                finish_timeout_s=finish_timeout,
                buffer_bytes=buffer_bytes,
            )
        )

    def put_media(
        self,
        stream: str,
        frames_or_file: MediaSource,
        *,
        tracks: Iterable[Track] | None = None,
        relative: bool | None = None,
        **producer_options: Any,
    ) -> dict[str, int]:
        """Puts a whole clip and waits until every fragment is acknowledged; returns the
        producer's final counters.

        ``frames_or_file`` is MKV (bytes, a path, a binary file) or an iterable of
        :class:`Frame`. The tracks come from the MKV, or from the first frame's
        ``track_info``; pass ``tracks`` for other frame iterables. ``relative=None`` picks
        relative timestamps when the first frame's timestamp is not wall clock (before 2000),
        so a file starting at 0 lands at the current time. Other options are
        :meth:`producer`'s.
        """
        reader: MkvReader | None = None
        frames: Iterator[Frame]
        if isinstance(frames_or_file, (bytes, bytearray, memoryview, str, os.PathLike)) or hasattr(
            frames_or_file, "read"
        ):
            reader = MkvReader(cast("bytes | str | IO[bytes]", frames_or_file))
            frames = iter(reader)
        else:
            frames = iter(frames_or_file)
        first = next(frames, None)
        if first is None:
            raise ValueError("put_media: the source holds no frames")
        if tracks is not None:
            track_list = list(tracks)
        elif reader is not None and reader.tracks:
            track_list = reader.tracks
        elif first.track_info is not None:
            track_list = [first.track_info]
        else:
            raise ValueError("put_media: the frames carry no track description; pass tracks=")
        if relative is None:
            relative = first.timestamp_ns < _WALL_CLOCK_NS
        with self.producer(stream, track_list, relative=relative, **producer_options) as p:
            p.put_frame(first)
            for frame in frames:
                p.put_frame(frame)
        assert p.report is not None
        return p.report

    # ------------------------------------------------------------------ GetMedia

    def get_media(
        self,
        stream: str,
        start: str | int | _dt.datetime | ContinuationToken | Fragment = "now",
        *,
        server_time: bool = False,
        follow: bool = False,
        timeout: float | None = None,
    ) -> _kvs._MediaIterator:
        """GetMedia as an iterator of :class:`Fragment` (each with its frames and KVS tags).

        ``start`` is ``"now"``, ``"earliest"``, a ``datetime`` (producer timestamp, or server
        timestamp with ``server_time=True``; naive is UTC), a fragment number (``int`` or a
        string of digits: the fragments after it), a :class:`ContinuationToken`, or a
        :class:`Fragment` already read (resume after it). The iterator resumes across
        reconnects without gaps or repeats. It ends once caught up, or with ``follow=True``
        waits for new fragments until ``close()`` (callable from another thread). ``timeout``
        bounds each wait for a fragment (``TimeoutError``). Waits release the GIL and Ctrl-C
        interrupts them (the iterator stays usable); memory
        stays bounded by one fragment. Service errors are raised by the first ``next()``.
        """
        value: str | None = None
        ts: int | None = None
        if isinstance(start, Fragment):
            if start.continuation_token:
                kind, value = "CONTINUATION_TOKEN", start.continuation_token
            elif start.fragment_number:
                kind, value = "FRAGMENT_NUMBER", start.fragment_number
            else:
                raise ValueError("the fragment carries no continuation token or number")
        elif isinstance(start, ContinuationToken):
            kind, value = "CONTINUATION_TOKEN", str(start)
        elif isinstance(start, _dt.datetime):
            kind = "SERVER_TIMESTAMP" if server_time else "PRODUCER_TIMESTAMP"
            ts = _ms(start)
        elif isinstance(start, int) and not isinstance(start, bool):
            kind, value = "FRAGMENT_NUMBER", str(start)
        elif isinstance(start, str) and start.lower() in ("now", "earliest"):
            kind = start.upper()
        elif isinstance(start, str) and start.isdigit():
            kind, value = "FRAGMENT_NUMBER", start
        else:
            raise ValueError(
                f"start={start!r}: expected 'now', 'earliest', a datetime, a fragment number, "
                "a kvs.ContinuationToken or a kvs.Fragment"
            )
        return self._inner.get_media(
            stream, kind, value=value, timestamp_ms=ts, follow=follow, timeout_s=timeout
        )

    # ------------------------------------------------------------------ archived media

    def list_fragments(
        self,
        stream: str,
        start: _dt.datetime | float | None = None,
        end: _dt.datetime | float | None = None,
        server_time: bool = False,
    ) -> FragmentList:
        """ListFragments (every page) between ``start`` and ``end`` (datetimes, naive ones UTC,
        or epoch seconds; ``None``: from the beginning, until a day from now), by producer
        timestamp or, with ``server_time=True``, by server timestamp. Returns a
        :class:`FragmentList` (sorted; ``.to_pandas()`` gives a DataFrame)."""
        start_ms = _ms(start) if start is not None else 0
        end_ms = _ms(end) if end is not None else round((time.time() + 86_400) * 1000)
        if start_ms > end_ms:
            raise ValueError("list_fragments: start is after end")
        rows = self._inner.list_fragments(
            stream, start_ms=start_ms, end_ms=end_ms, server_time=server_time
        )
        return FragmentList(
            FragmentInfo(n, size, _datetime_from_ms(p), _datetime_from_ms(s), length)
            for n, size, p, s, length in rows
        )

    def get_media_for_fragment_list(
        self, stream: str, fragments: Iterable[str | FragmentInfo | Fragment]
    ) -> FragmentIterator:
        """GetMediaForFragmentList: the listed fragments (numbers, :class:`FragmentInfo` or
        :class:`Fragment`), streamed and decoded as an iterator of :class:`Fragment`."""
        numbers: list[str] = []
        for f in fragments:
            if isinstance(f, FragmentInfo):
                numbers.append(f.fragment_number)
            elif isinstance(f, Fragment):
                if f.fragment_number is None:
                    raise ValueError("the fragment carries no fragment number")
                numbers.append(f.fragment_number)
            else:
                numbers.append(str(f))
        chunks = self._inner.get_media_for_fragment_list(stream, numbers)
        return MkvReader(chunks).fragments()
