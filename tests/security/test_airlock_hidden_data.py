"""Data hidden in outputs that look harmless: bytes after a PNG's end chunk, text chunks in
a PNG, small counts in JSON, binary data past the first 8 KiB of a text file. The checks
read whole files (streamed) and block or flag them."""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator

from spe.domain.airlock_checks import (
    HARD,
    PASS,
    SOFT,
    AirlockSettings,
    Finding,
    run_checks,
)
from spe.domain.file_types import CandidateFile

SETTINGS = AirlockSettings()


def chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png(*extra: bytes) -> bytes:
    """A 1x1 grey PNG with ``extra`` chunks before its image data."""
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    image = chunk(b"IDAT", zlib.compress(b"\x00\x80"))
    return b"\x89PNG\r\n\x1a\n" + header + b"".join(extra) + image + chunk(b"IEND", b"")


def candidate(path: str, content: bytes, step: int = 4096) -> CandidateFile:
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(content), step):
            yield content[i:i + step]

    return CandidateFile(path=path, size=len(content), head=content[:8192], text_rows=None,
                         chunks=chunks)


def type_findings(path: str, content: bytes) -> list[Finding]:
    return [f for f in run_checks([candidate(path, content)], SETTINGS)
            if f.check == "file_type"]


def test_a_clean_png_passes() -> None:
    assert [f.severity for f in type_findings("results/plot.png", png())] == [PASS]


def test_png_with_data_after_iend_is_blocked() -> None:
    hidden = png() + b"sample_id,diagnosis\nCA0001,HIV\n" * 2000  # well past 8 KiB
    [finding] = type_findings("results/plot.png", hidden)
    assert finding.severity == HARD and "after its IEND" in finding.message
    assert "CA0001" not in finding.message


def test_png_with_text_chunk_is_blocked() -> None:
    for kind in (b"tEXt", b"zTXt", b"iTXt"):
        hidden = png(chunk(kind, b"Comment\x00CA0001 HIV positive"))
        [finding] = type_findings("results/plot.png", hidden)
        assert finding.severity == HARD and kind.decode() in finding.message
        assert "CA0001" not in finding.message


def test_binary_data_after_the_first_8_kib_of_a_text_file_is_blocked() -> None:
    text = b"all fine here\n" * 1000 + b"\x00\x01secret"
    [finding] = type_findings("results/notes.txt", text)
    assert finding.severity == HARD


def test_small_count_in_json_output_is_found_by_the_checks() -> None:
    qc = {"rows_in": 15, "groups": {"Glasgow": 12, "Oban": 3},
          "dropped_by_column": {"bmi": 0}, "sites": [{"site": "Oban", "n": 4}],
          "padding": "x" * 9000}  # the counts lie past the first 8 KiB
    content = json.dumps({"padding": qc.pop("padding"), **qc}).encode()
    found = [f for f in run_checks([candidate("results/qc.json", content)], SETTINGS)
             if f.check == "small_counts"]
    cells = {tuple(c) for f in found if f.severity == SOFT for c in f.details["cells"]}
    assert cells == {("/groups/Oban", 3), ("/sites/0/n", 4)}
    assert all("3" not in f.message.replace("1 to 9", "") for f in found)


def test_json_without_small_counts_passes() -> None:
    content = json.dumps({"groups": {"Glasgow": 12, "Oban": 30}, "passed": True}).encode()
    found = [f for f in run_checks([candidate("results/qc.json", content)], SETTINGS)
             if f.check == "small_counts"]
    assert [f.severity for f in found] == [PASS]
