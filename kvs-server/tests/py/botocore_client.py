"""Drives a kvs server with boto3 (or bare botocore): every control-plane call, the service
errors as botocore exception classes, GetDataEndpoint then the data plane on that endpoint.
Writes GetMedia / GetMediaForFragmentList payloads and a JSON report into OUT_DIR."""
import json
import os
import sys
import time

import botocore.session

endpoint = os.environ["KVS_ENDPOINT"]
out_dir = os.environ["KVS_OUT_DIR"]
media_stream = os.environ["KVS_MEDIA_STREAM"]
session = botocore.session.get_session()
try:
    import boto3  # noqa: F401

    have_boto3 = True
except ImportError:
    have_boto3 = False


def client(service, url=endpoint):
    return session.create_client(
        service,
        endpoint_url=url,
        region_name=os.environ["AWS_REGION"],
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    )


kv = client("kinesisvideo")
report = {"boto3": have_boto3}


def expect(exc_name, fn, **kw):
    exc = getattr(kv.exceptions, exc_name)
    try:
        fn(**kw)
    except exc as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{fn.__name__} did not raise {exc_name}")


def wait_active(name):
    for _ in range(100):
        info = kv.describe_stream(StreamName=name)["StreamInfo"]
        if info["Status"] == "ACTIVE":
            return info
        time.sleep(0.05)
    raise AssertionError("stream never became ACTIVE")


# Control plane.
arn = kv.create_stream(StreamName="py-a", DataRetentionInHours=1, MediaType="video/h264",
                       Tags={"team": "kvs"})["StreamARN"]
assert arn.startswith("arn:aws:kinesisvideo:") and "/py-a/" in arn, arn
assert expect("ResourceInUseException", kv.create_stream, StreamName="py-a") == 400
info = wait_active("py-a")
assert info["StreamARN"] == arn and info["DataRetentionInHours"] == 1
assert kv.describe_stream(StreamARN=arn)["StreamInfo"]["StreamName"] == "py-a"
assert expect("ResourceNotFoundException", kv.describe_stream, StreamName="py-missing") == 404
for i in range(3):
    kv.create_stream(StreamName=f"py-b{i}")
names = []
for page in kv.get_paginator("list_streams").paginate(
        StreamNameCondition={"ComparisonOperator": "BEGINS_WITH", "ComparisonValue": "py-b"},
        PaginationConfig={"PageSize": 2}):
    names += [s["StreamName"] for s in page["StreamInfoList"]]
assert names == ["py-b0", "py-b1", "py-b2"], names
v1 = info["Version"]
kv.update_stream(StreamName="py-a", CurrentVersion=v1, DeviceName="cam-1")
assert expect("VersionMismatchException", kv.update_stream, StreamName="py-a",
              CurrentVersion=v1, DeviceName="x") == 400
info = wait_active("py-a")
assert info["DeviceName"] == "cam-1" and info["Version"] != v1
kv.update_data_retention(StreamName="py-a", CurrentVersion=info["Version"],
                         Operation="INCREASE_DATA_RETENTION", DataRetentionChangeInHours=5)
info = wait_active("py-a")
assert info["DataRetentionInHours"] == 6
kv.tag_stream(StreamName="py-a", Tags={"a": "1", "b": "2"})
kv.untag_stream(StreamARN=arn, TagKeyList=["b"])
assert kv.list_tags_for_stream(StreamName="py-a")["Tags"] == {"team": "kvs", "a": "1"}
kv.tag_resource(ResourceARN=arn, Tags=[{"Key": "c", "Value": "3"}])
kv.untag_resource(ResourceARN=arn, TagKeyList=["a"])
assert kv.list_tags_for_resource(ResourceARN=arn)["Tags"] == {"team": "kvs", "c": "3"}
kv.tag_stream(StreamName="py-a", Tags={f"k{i}": "v" for i in range(45)})
assert expect("TagsPerResourceExceededLimitException", kv.tag_stream, StreamName="py-a",
              Tags={f"x{i}": "v" for i in range(10)}) == 400
kv.untag_stream(StreamName="py-a", TagKeyList=[f"k{i}" for i in range(45)])
sc = kv.describe_stream_storage_configuration(StreamName="py-a")
assert sc["StreamStorageConfiguration"]["DefaultStorageTier"] == "HOT"
kv.update_stream_storage_configuration(StreamName="py-a", CurrentVersion=info["Version"],
                                       StreamStorageConfiguration={"DefaultStorageTier": "WARM"})
wait_active("py-a")
sc = kv.describe_stream_storage_configuration(StreamARN=arn)
assert sc["StreamStorageConfiguration"]["DefaultStorageTier"] == "WARM"
assert expect("InvalidArgumentException", kv.create_stream, StreamName="bad name!") == 400
info = wait_active("py-a")
assert expect("VersionMismatchException", kv.delete_stream, StreamARN=arn,
              CurrentVersion="stale") == 400
kv.delete_stream(StreamARN=arn, CurrentVersion=info["Version"])
try:
    status = kv.describe_stream(StreamName="py-a")["StreamInfo"]["Status"]
    assert status == "DELETING", status
except kv.exceptions.ResourceNotFoundException:
    pass
assert expect("ResourceNotFoundException", kv.get_data_endpoint, StreamName="py-a",
              APIName="GET_MEDIA") == 404
report["control_plane"] = "ok"

# Data plane through GetDataEndpoint.
for api in ["PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
            "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP",
            "GET_IMAGES"]:
    ep = kv.get_data_endpoint(StreamName=media_stream, APIName=api)["DataEndpoint"]
    assert ep == endpoint, (ep, endpoint)
ep = kv.get_data_endpoint(StreamName=media_stream, APIName="GET_MEDIA")["DataEndpoint"]
media = client("kinesis-video-media", ep)
r = media.get_media(StreamName=media_stream, StartSelector={"StartSelectorType": "EARLIEST"})
assert r["ContentType"] == "video/webm", r["ContentType"]
with open(os.path.join(out_dir, "getmedia.mkv"), "wb") as f:
    f.write(r["Payload"].read())
archived = client("kinesis-video-archived-media", ep)
numbers = []
now = time.time()
for page in archived.get_paginator("list_fragments").paginate(
        StreamName=media_stream,
        FragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                          "TimestampRange": {"StartTimestamp": now - 3600,
                                             "EndTimestamp": now + 60}},
        PaginationConfig={"PageSize": 2}):
    numbers += [f["FragmentNumber"] for f in page["Fragments"]]
report["list_fragments"] = numbers
r = archived.get_media_for_fragment_list(StreamName=media_stream, Fragments=numbers)
with open(os.path.join(out_dir, "gmffl.mkv"), "wb") as f:
    f.write(r["Payload"].read())
try:
    media.get_media(StreamName="py-none", StartSelector={"StartSelectorType": "NOW"})
    raise AssertionError("GetMedia on a missing stream succeeded")
except media.exceptions.ResourceNotFoundException:
    pass
try:
    archived.list_fragments(StreamName=media_stream)
    raise AssertionError("ListFragments without selector succeeded")
except archived.exceptions.InvalidArgumentException:
    pass
json.dump(report, sys.stdout)
