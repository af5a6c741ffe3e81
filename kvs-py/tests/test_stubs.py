"""The hand-written stubs match the built module (mypy.stubtest)."""

from __future__ import annotations

import subprocess
import sys

from conftest import need


def test_stubtest():
    need("mypy")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "kvs._kvs", "--ignore-missing-stub"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_on_package():
    need("mypy")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "-p", "kvs", "--strict", "--ignore-missing-imports"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
