"""Exceptions raised by kvs.

Every exception is a :class:`KvsError`. Service errors (what AWS, or the local server, answered)
are :class:`ServiceError` subclasses named after the AWS exception, e.g.
``kvs.ResourceNotFoundException``, so ``except kvs.ResourceNotFoundException`` works as with
botocore's ``client.exceptions``.
"""

from __future__ import annotations


class KvsError(Exception):
    """Base class of every kvs exception."""


class DecodeError(KvsError, ValueError):
    """Malformed MKV input (the message gives the byte offset)."""


class MediaDecodeError(DecodeError):
    """A frame could not be decoded into an image (PyAV / FFmpeg refused it)."""


class EncodeError(KvsError, ValueError):
    """The MKV writer refused a track, frame or metadata item."""


class TransportError(KvsError, ConnectionError):
    """The request did not reach the service, or its connection broke."""


class ConfigError(KvsError, ValueError):
    """No usable region, endpoint, credentials or shared AWS file, or a bad client setting."""


class ProducerError(KvsError):
    """The producer failed or was closed (frames dropped, finish timed out...). A producer
    stopped by a service error raises that error's class instead (``ResourceNotFoundException``
    for a missing stream...), and one that dropped frames because of an ERROR acknowledgement
    raises :class:`AckError`, which is also a ``ProducerError``."""


class ServiceError(KvsError):
    """An error the service answered with.

    Attributes: ``code`` (the AWS exception name), ``status`` (HTTP status, when known),
    ``request_id`` (``x-amzn-RequestId``, when known).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code if code is not None else type(self).__name__
        self.status = status
        self.request_id = request_id


class AckError(ServiceError, ProducerError):
    """The service failed a fragment with an ERROR acknowledgement, so the producer dropped its
    frames (raised by ``Producer.finish`` and ``Client.put_media``).

    Attributes: ``error_id`` (the ErrorId number, e.g. 4011), ``code`` (its name as the official
    producer spells it, e.g. ``"FRAMES_MISSING_FOR_TRACK"``); ``status`` and ``request_id`` are
    ``None``. Also a :class:`ProducerError`, so ``except kvs.ProducerError`` catches it.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        request_id: str | None = None,
        error_id: int | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, request_id=request_id)
        self.error_id = error_id


def _service(name: str, doc: str) -> type[ServiceError]:
    return type(name, (ServiceError,), {"__doc__": doc, "__module__": __name__})


InvalidArgumentException = _service("InvalidArgumentException", "A parameter failed validation.")
ClientLimitExceededException = _service("ClientLimitExceededException", "Throttled.")
AccountStreamLimitExceededException = _service(
    "AccountStreamLimitExceededException", "The account has too many streams."
)
ResourceInUseException = _service(
    "ResourceInUseException", "The stream exists already, or is not ACTIVE."
)
VersionMismatchException = _service("VersionMismatchException", "Stale CurrentVersion.")
TagsPerResourceExceededLimitException = _service(
    "TagsPerResourceExceededLimitException", "More than 50 tags."
)
InvalidResourceFormatException = _service("InvalidResourceFormatException", "Malformed ARN.")
NoDataRetentionException = _service(
    "NoDataRetentionException", "The stream keeps no data but the operation needs it."
)
NotAuthorizedException = _service("NotAuthorizedException", "The caller may not do this.")
AccessDeniedException = _service("AccessDeniedException", "The caller may not do this.")
ResourceNotFoundException = _service(
    "ResourceNotFoundException", "The stream does not exist or is not active."
)
InvalidEndpointException = _service(
    "InvalidEndpointException", "The request went to the wrong data endpoint."
)
ConnectionLimitExceededException = _service(
    "ConnectionLimitExceededException", "Too many concurrent connections for the stream."
)
UnsupportedStreamMediaTypeException = _service(
    "UnsupportedStreamMediaTypeException", "The media type cannot be packaged."
)
MissingCodecPrivateDataException = _service(
    "MissingCodecPrivateDataException", "A track lacks codec private data."
)
InvalidCodecPrivateDataException = _service(
    "InvalidCodecPrivateDataException", "Codec private data could not be parsed."
)
InvalidMediaFrameException = _service("InvalidMediaFrameException", "A frame could not be parsed.")
InvalidSignatureException = _service(
    "InvalidSignatureException", "The signature is wrong or expired."
)
IncompleteSignature = _service("IncompleteSignature", "The Authorization header is malformed.")
InvalidClientTokenId = _service("InvalidClientTokenId", "Unknown access key id.")
UnrecognizedClientException = _service("UnrecognizedClientException", "Unknown access key id.")
MissingAuthenticationToken = _service(
    "MissingAuthenticationToken", "The request was not signed."
)
SerializationException = _service("SerializationException", "The request body is malformed.")
UnknownOperationException = _service("UnknownOperationException", "No such operation.")
ThrottlingException = _service("ThrottlingException", "Throttled.")
InternalFailure = _service("InternalFailure", "The service failed.")

SERVICE_ERRORS: dict[str, type[ServiceError]] = {
    cls.__name__: cls
    for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, ServiceError) and cls not in (ServiceError, AckError)
}
