"""Errors raise the right exception classes."""

from __future__ import annotations

import pytest

import kvs


def test_hierarchy():
    assert issubclass(kvs.DecodeError, kvs.KvsError) and issubclass(kvs.DecodeError, ValueError)
    assert issubclass(kvs.ResourceNotFoundException, kvs.ServiceError)
    assert issubclass(kvs.ServiceError, kvs.KvsError)
    assert issubclass(kvs.TransportError, ConnectionError)
    e = kvs.ResourceNotFoundException("gone", status=404, request_id="r1")
    assert (e.code, e.status, e.request_id) == ("ResourceNotFoundException", 404, "r1")
    assert kvs.SERVICE_ERRORS["ResourceInUseException"] is kvs.ResourceInUseException


def test_garbage_raises_decode_error():
    with pytest.raises(kvs.DecodeError, match="byte"):
        list(kvs.read_mkv(b"\x1a\x45\xdf\xa3\x88" + b"\x00" * 64))


def test_truncated_input(sample_bytes):
    cut = sample_bytes[: len(sample_bytes) - 100]
    with pytest.raises(kvs.DecodeError, match="input ended"):
        list(kvs.read_mkv(cut))
    reader = kvs.read_mkv(cut, strict=False)
    frames = list(reader)
    assert frames and reader.errors and "input ended" in reader.errors[0]
    last = list(kvs.read_mkv(cut, strict=False).fragments())[-1]
    assert last.truncated


def test_bad_sources():
    with pytest.raises(TypeError):
        kvs.read_mkv(12345)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        list(kvs.read_mkv(iter(["text"])))  # type: ignore[list-item]
    with pytest.raises(FileNotFoundError):
        kvs.read_mkv("/nonexistent/file.mkv")
    with pytest.raises(ValueError):
        kvs.MkvReader(chunk_size=0)
