"""kvs.Client against kvs.Server in-process: control plane, PutMedia (put_media and the producer
context manager) of a PyAV-made H.264 clip, GetMedia back with equal frames, ListFragments
ranges, GetMediaForFragmentList, the exception classes, and GIL release during a long wait."""

from __future__ import annotations

import datetime as dt
import socket
import sys
import threading
import time

import pytest

import kvs
from conftest import frame_key


@pytest.fixture()
def server():
    # Short idle end: a caught-up GetMedia with no producer ends after 200 ms, not 3 s.
    with kvs.Server(transition_delay_ms=0, get_media_idle_end_ms=200) as s:
        yield s


@pytest.fixture()
def client(server):
    return server.client()


def payload_key(f) -> tuple:
    return (f.track, f.keyframe, bytes(f.data))


def test_control_plane(client, server):
    assert client.region == server.region and client.endpoint_url == server.endpoint_url
    arn = client.create_stream("cam", 2, media_type="video/h264", tags={"team": "cv"})
    assert ":stream/cam/" in arn
    info = client.wait_active("cam")
    assert (info.stream_name, info.stream_arn, info.status) == ("cam", arn, "ACTIVE")
    assert info.data_retention_in_hours == 2 and info.media_type == "video/h264"
    assert abs(info.creation_time - dt.datetime.now(dt.timezone.utc)) < dt.timedelta(minutes=1)
    client.create_stream("other", 0)
    assert sorted(s.stream_name for s in client.list_streams()) == ["cam", "other"]

    client.tag_stream("cam", {"site": "lab", "x": "1"})
    client.untag_stream("cam", ["x"])
    assert client.list_tags_for_stream("cam") == {"team": "cv", "site": "lab"}

    client.update_data_retention("cam", 3)
    client.wait_active("cam")
    assert client.describe_stream("cam").data_retention_in_hours == 5
    client.update_data_retention("cam", -4)
    client.wait_active("cam")
    assert client.describe_stream("cam").data_retention_in_hours == 1

    for api in ("GET_MEDIA", "put_media", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST"):
        assert client.get_data_endpoint("cam", api) == server.endpoint_url
    with pytest.raises(kvs.ConfigError):
        client.get_data_endpoint("cam", "NO_SUCH_API")

    client.delete_stream("other")
    deadline = time.time() + 10
    while "other" in [s.stream_name for s in client.list_streams()] and time.time() < deadline:
        time.sleep(0.05)
    assert [s.stream_name for s in client.list_streams()] == ["cam"]


def test_service_errors(client):
    with pytest.raises(kvs.ResourceNotFoundException) as e:
        client.describe_stream("missing")
    assert e.value.code == "ResourceNotFoundException" and e.value.status == 404
    assert e.value.request_id and "missing" not in type(e.value).__name__
    assert isinstance(e.value, kvs.ServiceError) and isinstance(e.value, kvs.KvsError)

    client.create_stream("dup", 1)
    with pytest.raises(kvs.ResourceInUseException) as e2:
        client.create_stream("dup", 1)
    assert e2.value.status == 400 and "dup" in str(e2.value)

    # GetMedia raises on the first next(); ListFragments and tags at once.
    it = client.get_media("missing", "earliest")
    with pytest.raises(kvs.ResourceNotFoundException):
        next(it)
    with pytest.raises(kvs.ResourceNotFoundException):
        client.list_fragments("missing")
    with pytest.raises(kvs.ResourceNotFoundException):
        client.list_tags_for_stream("missing")
    with pytest.raises(kvs.InvalidArgumentException):
        client.create_stream("bad name!", 1)


def test_put_media_to_missing_stream(client, h264_clip):
    # The producer stops on PutMedia's 404 and reports the service error's class, built from
    # the typed error the Rust producer carries (not from its message).
    with pytest.raises(kvs.ResourceNotFoundException) as e:
        client.put_media("missing", h264_clip, finish_timeout=5)
    assert e.value.code == "ResourceNotFoundException" and e.value.status == 404
    assert not isinstance(e.value, kvs.AckError)


def test_producer_error_ack(client, h264_clip):
    # A declared audio track without frames: the server fails the fragment with ERROR ACK 4011
    # (FRAMES_MISSING_FOR_TRACK), the producer drops its frames and finish raises AckError.
    client.create_stream("acks", 1)
    reader = kvs.read_mkv(h264_clip)
    frames = list(reader)
    audio = kvs.Track("A_AAC", b"\x12\x10", number=2, sampling_frequency=48000.0, channels=2)
    with pytest.raises(kvs.AckError) as e:
        client.put_media("acks", frames, tracks=[*reader.tracks, audio], finish_timeout=5)
    assert e.value.error_id == 4011 and e.value.code == "FRAMES_MISSING_FOR_TRACK"
    assert isinstance(e.value, kvs.ProducerError) and isinstance(e.value, kvs.ServiceError)
    assert e.value.status is None and "4011" in str(e.value)

    # Producer timestamps a day ahead of the server's clock: ERROR ACK 4007.
    ahead = time.time_ns() + 86_400 * 10**9
    with pytest.raises(kvs.AckError) as e2:
        with client.producer("acks", tracks=reader.tracks, finish_timeout=5) as p:
            for f in frames:
                p.put_frame(kvs.Frame(f.data, ahead + f.timestamp_ns, keyframe=f.keyframe))
    assert e2.value.error_id == 4007 and e2.value.code == "INVALID_PRODUCER_TIMESTAMP"

    # What the local encoder refuses (a timecode before its fragment's start) is no ERROR ACK.
    with pytest.raises(kvs.ProducerError) as e3:
        with client.producer("acks", tracks=reader.tracks, finish_timeout=5) as p:
            p.put_frame(kvs.Frame(frames[0].data, 10**18 + 10**10, keyframe=True))
            p.put_frame(kvs.Frame(frames[1].data, 10**18, keyframe=False))
    assert not isinstance(e3.value, kvs.ServiceError)


def test_wrong_credentials(server):
    bad = kvs.Client(
        region=server.region,
        endpoint_url=server.endpoint_url,
        credentials=(server.credentials.access_key_id, "wrong" * 8),
        max_attempts=1,
    )
    with pytest.raises(kvs.ServiceError) as e:
        bad.list_streams()
    assert e.value.code in ("InvalidSignatureException", "UnrecognizedClientException")
    assert type(e.value) is kvs.SERVICE_ERRORS[e.value.code]


def test_transport_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    c = kvs.Client(
        region="us-east-1",
        endpoint_url=f"http://127.0.0.1:{port}",
        credentials=("AKIDEXAMPLE", "secret"),
        max_attempts=1,
    )
    with pytest.raises(kvs.TransportError) as e:
        c.list_streams()
    assert isinstance(e.value, ConnectionError) and str(port) in str(e.value)
    with pytest.raises(kvs.ConfigError):
        kvs.Client(region="us-east-1", endpoint_url="not a url", credentials=("a", "b"))


def test_put_media_get_media_round_trip(client, h264_clip):
    client.create_stream("clip", 1)
    report = client.put_media("clip", h264_clip)  # starts at 0: relative timestamps
    assert report["fragments_acked"] == 2 and report["frames_dropped"] == 0
    assert report["acks_persisted"] == 2 and report["frames_pushed"] == 48

    source = list(kvs.read_mkv(h264_clip))
    frags = list(client.get_media("clip", "earliest"))
    assert len(frags) == 2 and all(len(f) == 24 for f in frags)
    got = [f for fr in frags for f in fr]
    assert [frame_key(f) for f in got] == [frame_key(f) for f in source]
    assert all(fr.fragment_number and fr.continuation_token for fr in frags)
    assert frags[0].tracks[0].codec_id == "V_MPEG4/ISO/AVC"
    images = list(kvs.decode(got))
    assert len(images) == 48 and images[0].shape == (48, 64, 3)

    # Resuming after the first fragment (by Fragment, token or number) gives the second.
    for start in (
        frags[0],
        kvs.ContinuationToken(frags[0].continuation_token),
        frags[0].fragment_number,
        int(frags[0].fragment_number),
    ):
        again = list(client.get_media("clip", start))
        assert [fr.fragment_number for fr in again] == [frags[1].fragment_number], start
    # Producer-timestamp start: the fragment holding it onwards.
    second_start = frags[1].producer_timestamp
    assert [fr.fragment_number for fr in client.get_media("clip", second_start)] == [
        frags[1].fragment_number
    ]
    # "now" on a stream nobody writes to: nothing, quickly.
    t0 = time.perf_counter()
    assert list(client.get_media("clip", "now")) == []
    assert time.perf_counter() - t0 < 5

    # GetMediaForFragmentList of the listed fragments: the same frames.
    listed = client.list_fragments("clip")
    fl = list(client.get_media_for_fragment_list("clip", listed))
    assert [frame_key(f) for fr in fl for f in fr] == [frame_key(f) for f in source]
    with pytest.raises(ValueError):
        client.get_media("clip", "yesterday")


def test_producer_context_manager(client, h264_clip):
    client.create_stream("live", 1)
    reader = kvs.read_mkv(h264_clip)
    source = list(reader)
    t0 = (time.time_ns() // 1_000_000 - 5_000) * 1_000_000  # wall clock, whole ms
    with client.producer("live", tracks=reader.tracks) as p:
        p.put_metadata("camera", "front", persistent=True)
        for f in source:
            p.put_frame(kvs.Frame(f.data, t0 + f.timestamp_ns, keyframe=f.keyframe))
        assert p.running and p.metrics["frames_pushed"] > 0  # updated as the driver runs
    # Leaving the block waited for every PERSISTED ACK.
    assert not p.running
    assert p.report is not None and p.report["fragments_acked"] == 2
    assert p.metrics["acks_persisted"] == 2 and p.metrics["frames_pushed"] == 48

    frags = list(client.get_media("live", "earliest"))
    got = [f for fr in frags for f in fr]
    assert [(f.timestamp_ns, *payload_key(f)) for f in got] == [
        (t0 + f.timestamp_ns, *payload_key(f)) for f in source
    ]
    # The first fragment's metadata leads its document. (As on KVS, the metadata the producer
    # writes before a later fragment reaches GetMedia after the previous fragment's Cluster.)
    assert frags[0].tags.get("camera") == "front"
    assert frags[0].producer_timestamp_ms == t0 // 1_000_000

    # An exception inside the block stops the producer without waiting.
    with pytest.raises(RuntimeError):
        with client.producer("live", tracks=reader.tracks) as q:
            q.put_frame(source[0].data, t0 + 10**10, keyframe=True)
            raise RuntimeError("boom")
    assert not q.running
    with pytest.raises(kvs.ProducerError):
        q.put_frame(source[0])


def test_list_fragments_ranges(client, h264_clip):
    client.create_stream("ranges", 1)
    reader = kvs.read_mkv(h264_clip)
    t0 = (time.time_ns() // 1_000_000 - 10_000) * 1_000_000
    frames = [kvs.Frame(f.data, t0 + f.timestamp_ns, keyframe=f.keyframe) for f in reader]
    client.put_media("ranges", frames, tracks=reader.tracks)

    start = dt.datetime.fromtimestamp(t0 / 1e9, dt.timezone.utc)
    every = client.list_fragments("ranges", start - dt.timedelta(seconds=1), start + dt.timedelta(seconds=10))
    assert isinstance(every, kvs.FragmentList) and len(every) == 2
    assert [f.producer_timestamp for f in every] == [start, start + dt.timedelta(seconds=1)]
    assert all(f.size > 0 and f.duration_ms > 0 for f in every)
    assert every == client.list_fragments("ranges")  # the default range holds everything
    # Only the second fragment starts after t0 + 0.5 s; nothing before t0.
    later = client.list_fragments("ranges", t0 / 1e9 + 0.5, t0 / 1e9 + 10)
    assert [f.fragment_number for f in later] == [every[1].fragment_number]
    assert client.list_fragments("ranges", t0 / 1e9 - 100, t0 / 1e9 - 50) == []
    # Server timestamps: both arrived within the last minute.
    now = time.time()
    by_server = client.list_fragments("ranges", now - 60, now + 1, server_time=True)
    assert sorted(f.fragment_number for f in by_server) == sorted(f.fragment_number for f in every)
    with pytest.raises(ValueError):
        client.list_fragments("ranges", t0 / 1e9 + 10, t0 / 1e9)

    try:
        import pandas  # noqa: F401
    except ImportError:
        pandas = None
    if pandas is not None:
        df = every.to_pandas()
        assert list(df.columns) == list(kvs.FragmentInfo._fields) and len(df) == 2
        assert list(df["fragment_number"]) == [f.fragment_number for f in every]


def test_to_pandas_without_pandas(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(ImportError, match="pip install pandas"):
        kvs.FragmentList().to_pandas()


def test_get_media_wait_releases_gil(client, h264_clip):
    """A GetMedia follower blocks in next() for a live fragment while the main thread keeps
    running Python (and even produces that fragment)."""
    client.create_stream("gil", 1)
    # timeout: were the GIL held, the main thread would stall until this fires and the test fail.
    media = client.get_media("gil", "now", follow=True, timeout=5)
    got: list[kvs.Fragment] = []
    errors: list[BaseException] = []

    def follow() -> None:
        try:
            for fragment in media:
                got.append(fragment)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=follow)
    t.start()
    time.sleep(0.1)
    spins = 0
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:
        spins += 1
    assert t.is_alive() and not got  # still waiting for a fragment
    assert spins > 10_000, spins  # the waiting thread did not hold the GIL

    reader = kvs.read_mkv(h264_clip)
    client.put_media("gil", reader, relative=True)
    deadline = time.time() + 10
    while len(got) < 2 and time.time() < deadline:
        time.sleep(0.02)
    media.close()  # from another thread: the follower's next() ends
    t.join(5)
    assert not t.is_alive() and not errors
    assert [len(f) for f in got] == [24, 24]


def test_get_media_timeout(client):
    client.create_stream("quiet", 1)
    media = client.get_media("quiet", "now", follow=True, timeout=0.3)
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError):
        next(media)
    assert 0.25 < time.perf_counter() - t0 < 3
    media.close()
    assert list(media) == []


def test_get_media_wait_is_interruptible(client):
    """Ctrl-C (KeyboardInterrupt) ends a follow wait promptly; the iterator stays usable."""
    import _thread

    client.create_stream("ctrl-c", 1)
    media = client.get_media("ctrl-c", "now", follow=True, timeout=10)
    timer = threading.Timer(0.3, _thread.interrupt_main)
    timer.start()
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        next(media)
    assert time.perf_counter() - t0 < 2
    timer.join()
    media.close()
    assert list(media) == [] and media.last_fragment_number is None
