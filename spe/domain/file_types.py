"""What a file's bytes really are, whatever its name says: the magic of its head, UTF-8
text without NUL bytes over the whole stream, tables that parse, JSON that parses (and
nests no deeper than ``MAX_OUTPUT_JSON_DEPTH``), SVG documents, and PNGs walked chunk by
chunk (no text chunks, nothing after ``IEND``). The airlock's type check
(``airlock_checks.check_file_type``) and its reviewer preview use these."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath

from spe.domain.json_limits import too_deep

MAX_OUTPUT_JSON_DEPTH = 64  # deeper JSON outputs are blocked, never parsed


@dataclass(frozen=True)
class CandidateFile:
    """A requested file, read from the run's quarantine. The store refuses a key that
    leads outside it (``..``, a symlink out), so a candidate is always a file inside."""

    path: str  # relative POSIX path as requested
    size: int
    head: bytes  # the first 8 KiB
    text_rows: Callable[[], Iterator[list[str]]] | None  # csv/tsv only: a lazy row reader
    chunks: Callable[[], Iterator[bytes]] | None = None  # the whole file, streamed

    def stream(self) -> Iterator[bytes]:
        """The whole file; without a chunk reader, the head (all of a small file)."""
        return self.chunks() if self.chunks is not None else iter((self.head,))

    @property
    def whole(self) -> bool:
        """Whether ``stream`` gives every byte of the file."""
        return self.chunks is not None or self.size <= len(self.head)


def extension(path: str) -> str:
    return PurePosixPath(path).suffix.removeprefix(".").lower()


_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"%PDF-", "pdf"), (b"\x7fELF", "an ELF executable"),
          (b"PK\x03\x04", "a ZIP archive"), (b"PK\x05\x06", "a ZIP archive"),
          (b"\x1f\x8b", "gzip data"), (b"\xfd7zXZ\x00", "xz data"), (b"GIF8", "a GIF image"),
          (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"), (b"\xff\xd8\xff", "a JPEG image"))
_SVG = re.compile(r"\s*(?:<\?xml[^>]*\?>\s*)?(?:(?:<!--.*?-->|<!DOCTYPE\s+svg[^>\[]*>)\s*)*"
                  r"<svg[\s>/]", re.S)
SVG_ACTIVE = re.compile(r"<script|javascript:|<foreignObject|\son[a-z]+\s*=", re.I)


def _magic(head: bytes) -> str | None:
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)


def _text(head: bytes, truncated: bool) -> str | None:
    """The head as UTF-8 text, or None (NUL bytes, invalid UTF-8). A multi-byte character
    cut by the 8 KiB boundary of a longer file is fine."""
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not (truncated and exc.reason == "unexpected end of data"):
            return None
        text = head[:exc.start].decode("utf-8")
    return text.removeprefix("\ufeff")


def _delimited_problem(ext: str, text: str) -> str | None:
    first = text.split("\n", 1)[0]
    if ext == "tsv" and "\t" not in first and ("," in first or ";" in first):
        return "the header is not tab-separated"
    if ext == "csv" and "," not in first and ("\t" in first or ";" in first):
        return "the header is not comma-separated"
    return None


def _json_problem(text: str, complete: bool) -> str | None:
    if not text.lstrip().startswith(("{", "[")):
        return "content is not a JSON object or array"
    if too_deep(text, MAX_OUTPUT_JSON_DEPTH):
        return f"content nests deeper than {MAX_OUTPUT_JSON_DEPTH} levels of arrays and objects"
    try:
        if complete:
            json.loads(text)
    except ValueError:
        return "content does not parse as JSON"
    return None


def sniff(head: bytes) -> str:
    """The type the first bytes show: a magic's name, ``text`` (UTF-8) or ``binary``."""
    return _magic(head) or ("text" if _text(head, truncated=True) is not None else "binary")


def type_problem(f: CandidateFile, max_bytes: int = 50 * 2**20) -> str | None:
    """Why the content does not match the (allowed) extension, or None. Whole files are
    read (streamed; JSON parsed if within ``max_bytes``), else the head."""
    ext, magic = extension(f.path), _magic(f.head)
    if ext in ("png", "pdf"):
        if magic != ext:
            return f"content is {magic or 'unrecognised'}, not {ext}"
        return png_problem(f.stream()) if ext == "png" and f.whole else None
    if magic:
        return f"content is {magic}, not {ext}"
    text = _text(f.head, truncated=f.size > len(f.head))
    if text is None or (f.whole and not _all_text(f.stream())):
        return "content is not UTF-8 text (binary data or NUL bytes)"
    if ext == "json" and f.whole and f.size <= max_bytes:
        return _json_problem(whole_text(f), complete=True)
    return _text_problem(ext, text, complete=f.size <= len(f.head))


def whole_text(f: CandidateFile) -> str:
    return b"".join(f.stream()).decode("utf-8").removeprefix("\ufeff")


def _all_text(chunks: Iterator[bytes]) -> bool:
    """Every byte of the stream is UTF-8 text without NUL bytes."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for chunk in chunks:
            if b"\x00" in chunk:
                return False
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


_PNG_TEXT = frozenset({b"tEXt", b"zTXt", b"iTXt"})


class _Bytes:
    """Exact reads from a stream of chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, n: int) -> bytes:
        parts, have = [self._buffer], len(self._buffer)
        while have < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            parts.append(chunk)
            have += len(chunk)
        data = b"".join(parts)
        self._buffer = data[n:]
        return data[:n]

    def skip(self, n: int) -> bool:
        """Skip ``n`` bytes; False if the stream ended first."""
        while n > 0:
            step = min(n, 2**20)
            if len(self.read(step)) < step:
                return False
            n -= step
        return True


def png_problem(chunks: Iterator[bytes]) -> str | None:
    """Why a PNG's chunk structure may hide data, or None: text chunks (tEXt, zTXt, iTXt)
    carry free text, and bytes after the IEND chunk are not part of the picture."""
    stream = _Bytes(chunks)
    stream.read(8)  # the signature, checked by the caller
    while True:
        header = stream.read(8)
        if len(header) < 8:
            return "the PNG ends without its IEND chunk"
        length, kind = int.from_bytes(header[:4], "big"), header[4:]
        if kind in _PNG_TEXT:
            return f"the PNG holds a text chunk ({kind.decode('ascii')})"
        if not stream.skip(length + 4):  # the data and its CRC
            return "the PNG ends inside a chunk"
        if kind == b"IEND":
            break
    if stream.read(1):
        return "the PNG has data after its IEND end chunk"
    return None


def _text_problem(ext: str, text: str, complete: bool) -> str | None:
    if ext in ("csv", "tsv"):
        return _delimited_problem(ext, text)
    if ext == "json":
        return _json_problem(text, complete)
    if ext == "svg" and not _SVG.match(text):
        return "content is not an SVG document"
    return None
