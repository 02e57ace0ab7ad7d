"""Hashing for evidence: canonical JSON digests and fast file SHA-256.

One definition of "the hash of a record" shared by manifests, the ledger and verify, so a
record hashes the same on the tablet, on the server and in an extracted bundle.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any, BinaryIO

GENESIS = "0" * 64  # the "previous hash" of the first record of a chain

# hashlib releases the GIL on blocks of 2 KiB and more; a large buffer keeps the syscall
# count low so several threads hash at disk speed (bench/verify.py measures it).
READ_BUFFER = 1 << 20


def _default(value: Any) -> str:
    # YAML may hand us datetimes for hand-edited timestamps; hash their ISO text.
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    raise TypeError(f"cannot hash a {type(value).__name__}")


def canonical(value: Any) -> bytes:
    """The one byte form of a JSON-able value: sorted keys, no spaces, UTF-8."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=_default).encode("utf-8")


def digest(value: Any) -> str:
    """SHA-256 (hex) of a value's canonical form."""
    return hashlib.sha256(canonical(value)).hexdigest()


def file_sha256(path: Path | str) -> tuple[str, int]:
    """(SHA-256 hex, size in bytes) of a file, read in large blocks."""
    with open(path, "rb", buffering=0) as handle:
        return handle_sha256(handle)


def handle_sha256(handle: BinaryIO) -> tuple[str, int]:
    """(SHA-256 hex, bytes read) of an open unbuffered binary file, from where it stands."""
    hasher = hashlib.sha256()
    buffer = bytearray(READ_BUFFER)
    view = memoryview(buffer)
    size = 0
    while n := handle.readinto(buffer):
        hasher.update(view[:n])
        size += n
    return hasher.hexdigest(), size
