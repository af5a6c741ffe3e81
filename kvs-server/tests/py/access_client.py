"""Drives a kvs server with botocore using a key scoped to some streams: allowed calls work,
denied ones raise the modelled exception classes (NotAuthorizedException for stream operations
and the data plane, AccessDeniedException for ListStreams). Prints a JSON report."""
import json
import os
import time

import botocore.session

endpoint = os.environ["KVS_ENDPOINT"]
allowed = os.environ["KVS_ALLOWED_STREAM"]
denied = os.environ["KVS_DENIED_STREAM"]
denied_arn = os.environ["KVS_DENIED_ARN"]
session = botocore.session.get_session()


def client(service):
    return session.create_client(
        service,
        endpoint_url=endpoint,
        region_name=os.environ["AWS_REGION"],
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
    )


kv = client("kinesisvideo")
media = client("kinesis-video-media")
archived = client("kinesis-video-archived-media")
report = {}


def expect(name, c, exc_name, fn, **kw):
    """Calls fn, which must raise c.exceptions.<exc_name>; records code, status, message."""
    exc = getattr(c.exceptions, exc_name)
    try:
        fn(**kw)
    except exc as e:
        report[name] = {
            "code": e.response["Error"]["Code"],
            "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            "message": e.response["Error"]["Message"],
        }
        return
    raise AssertionError(f"{name}: {fn.__name__} did not raise {exc_name}")


info = kv.describe_stream(StreamName=allowed)["StreamInfo"]
assert info["StreamName"] == allowed, info
report["allowed_describe"] = "ok"
expect("describe_by_name", kv, "NotAuthorizedException", kv.describe_stream, StreamName=denied)
expect("describe_by_arn", kv, "NotAuthorizedException", kv.describe_stream, StreamARN=denied_arn)
expect("delete", kv, "NotAuthorizedException", kv.delete_stream, StreamARN=denied_arn)
expect("list_streams", kv, "AccessDeniedException", kv.list_streams)
expect("get_media", media, "NotAuthorizedException", media.get_media, StreamName=denied,
       StartSelector={"StartSelectorType": "EARLIEST"})
expect("list_fragments", archived, "NotAuthorizedException", archived.list_fragments,
       StreamName=denied,
       FragmentSelector={"FragmentSelectorType": "SERVER_TIMESTAMP",
                         "TimestampRange": {"StartTimestamp": 0, "EndTimestamp": time.time() + 60}})
print(json.dumps(report))
