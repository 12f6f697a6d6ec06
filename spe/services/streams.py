"""Small stream helpers of the airlock: chunk iterators as files, digests, content types."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from typing import Any


class Chunks(io.RawIOBase):
    """A read-only binary file over an iterator of chunks (streams, bounded memory)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def digest(chunks: Iterator[bytes]) -> tuple[int, str]:
    h, size = hashlib.sha256(), 0
    for chunk in chunks:
        h.update(chunk)
        size += len(chunk)
    return size, h.hexdigest()


def json_bytes(value: dict[str, Any]) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode()


def content_type(path: str, data: bytes) -> str:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    try:
        data[:65536].decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return "text/csv" if path.lower().endswith((".csv", ".tsv")) else "text/plain"
