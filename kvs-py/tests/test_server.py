"""kvs.Server in-process: boto3 (botocore) against it with its credentials, a PyAV-made H.264
clip put through PutMedia (signed with botocore) and read back with GetMedia into kvs.read_mkv."""

from __future__ import annotations

import http.client
import time
import urllib.parse

import pytest

import kvs
from conftest import frame_key, need


@pytest.fixture()
def server():
    with kvs.Server(transition_delay_ms=0) as s:
        yield s


def boto(server, service):
    boto3 = need("boto3")
    return boto3.client(service, **server.boto3_kwargs())


def put_media(server, stream: str, body: bytes) -> list[str]:
    """PutMedia signed by botocore's SigV4 signer; returns the ACK lines."""
    botocore = need("botocore")
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = server.endpoint_url + "/putMedia"
    headers = {
        "x-amzn-stream-name": stream,
        "x-amzn-fragment-timecode-type": "ABSOLUTE",
        "x-amzn-producer-start-timestamp": f"{time.time():.3f}",
    }
    # Signed as the C producer signs PutMedia: over the SHA-256 of the empty payload.
    req = AWSRequest("POST", url, data=b"", headers=headers)
    creds = Credentials(*server.credentials[:2])
    SigV4Auth(creds, "kinesisvideo", server.region).add_auth(req)
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request("POST", u.path, body=body, headers=dict(req.headers.items()))
    resp = conn.getresponse()
    assert resp.status == 200, resp.read()
    acks = resp.read().decode().split("\n")
    conn.close()
    assert botocore
    return [a for a in acks if a.strip()]


def test_server_basics():
    with kvs.Server() as s:
        assert s.endpoint_url.startswith("http://127.0.0.1:")
        assert s.credentials.access_key_id and s.credentials.secret_access_key
        assert s.running and "kvs.Server" in repr(s)
        data_dir = s.data_dir
    assert not s.running
    import os

    assert not os.path.exists(data_dir)  # temporary data directory removed


def test_boto3_control_plane(server):
    botocore = need("botocore")
    kv = boto(server, "kinesisvideo")
    arn = kv.create_stream(StreamName="cam", DataRetentionInHours=1)["StreamARN"]
    assert ":stream/cam/" in arn
    info = kv.describe_stream(StreamName="cam")["StreamInfo"]
    assert info["StreamName"] == "cam" and info["DataRetentionInHours"] == 1
    assert [s["StreamName"] for s in kv.list_streams()["StreamInfoList"]] == ["cam"]
    ep = kv.get_data_endpoint(StreamName="cam", APIName="GET_MEDIA")["DataEndpoint"]
    assert ep == server.endpoint_url
    with pytest.raises(botocore.exceptions.ClientError) as e:
        kv.describe_stream(StreamName="missing")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_wrong_credentials_rejected(server):
    boto3 = need("boto3")
    botocore = need("botocore")
    kwargs = server.boto3_kwargs() | {"aws_secret_access_key": "wrong" * 8}
    kv = boto3.client("kinesisvideo", **kwargs)
    with pytest.raises(botocore.exceptions.ClientError):
        kv.list_streams()


def test_put_get_round_trip(server, h264_clip):
    kv = boto(server, "kinesisvideo")
    kv.create_stream(StreamName="clip", DataRetentionInHours=1)
    reader = kvs.read_mkv(h264_clip)
    frames = list(reader)
    # Re-stamp on the wall clock (absolute timecodes) and write in the KVS producer layout.
    t0 = (time.time_ns() // 1_000_000 - 10_000) * 1_000_000  # whole ms: the timecode scale
    restamped = [
        kvs.Frame(bytes(f.data), t0 + f.timestamp_ns, track=f.track, keyframe=f.keyframe)
        for f in frames
    ]
    body = kvs.write_mkv(reader.tracks, restamped)
    acks = put_media(server, "clip", body)
    keyframes = sum(f.keyframe for f in frames)
    assert keyframes == 2  # two GOPs: two fragments
    assert sum('"PERSISTED"' in a for a in acks) == keyframes, acks

    media = boto(server, "kinesis-video-media")
    out = media.get_media(StreamName="clip", StartSelector={"StartSelectorType": "EARLIEST"})
    got = kvs.read_mkv(out["Payload"].iter_chunks(4096))
    frags = list(got.fragments())
    assert [frame_key(f) for fr in frags for f in fr] == [frame_key(f) for f in restamped]
    assert all(fr.fragment_number and fr.server_timestamp for fr in frags)
    images = list(kvs.decode(f for fr in frags for f in fr))
    assert len(images) == 48 and images[0].shape == (48, 64, 3)

    archived = boto(server, "kinesis-video-archived-media")
    listed = archived.list_fragments(
        StreamName="clip",
        FragmentSelector={
            "FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": t0 / 1e9 - 1, "EndTimestamp": t0 / 1e9 + 10},
        },
    )["Fragments"]
    assert sorted(f["FragmentNumber"] for f in listed) == sorted(fr.fragment_number for fr in frags)
    # Only the second fragment lies after t0 + 1 s (the clip is 2 s at 24 fps).
    later = archived.list_fragments(
        StreamName="clip",
        FragmentSelector={
            "FragmentSelectorType": "PRODUCER_TIMESTAMP",
            "TimestampRange": {"StartTimestamp": t0 / 1e9 + 0.5, "EndTimestamp": t0 / 1e9 + 10},
        },
    )["Fragments"]
    assert [f["FragmentNumber"] for f in later] == [frags[1].fragment_number]
