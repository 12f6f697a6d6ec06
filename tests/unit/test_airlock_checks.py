"""The airlock's automatic checks: each rule blocks or flags on its own."""

from __future__ import annotations

import csv
import io
import struct
import zlib
from collections.abc import Iterator

import pytest

from spe.domain import airlock_checks
from spe.domain.airlock_checks import (
    CHECKS,
    HARD,
    MAX_CELLS,
    PASS,
    SOFT,
    AirlockSettings,
    Finding,
    blocking,
    is_count_header,
    run_checks,
)
from spe.domain.file_types import CandidateFile, extension


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


# a whole 1x1 PNG: the type check walks its chunks to IEND
PNG = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
       + _chunk(b"IDAT", zlib.compress(b"\x00\x80")) + _chunk(b"IEND", b""))
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(32)
SETTINGS = AirlockSettings()


def cand(path: str = "results/table.csv", content: bytes = b"group,n\na,12\n", *,
         size: int | None = None) -> CandidateFile:
    """A candidate as the service builds it; tables get a lazy csv reader."""
    delimiter = "\t" if extension(path) == "tsv" else ","

    def rows() -> Iterator[list[str]]:
        return iter(csv.reader(io.StringIO(content.decode()), delimiter=delimiter))

    return CandidateFile(path=path, size=len(content) if size is None else size,
                         head=content[:8192],
                         text_rows=rows if extension(path) in ("csv", "tsv") else None)


def found(findings: list[Finding], check: str, severity: str) -> list[Finding]:
    return [f for f in findings if f.check == check and f.severity == severity]


def hard(files: list[CandidateFile], settings: AirlockSettings = SETTINGS) -> list[Finding]:
    return blocking(run_checks(files, settings))


def small_counts(content: str, *, threshold: int = 10, path: str = "t.csv") -> list[Finding]:
    settings = AirlockSettings(count_threshold=threshold)
    return found(run_checks([cand(path, content.encode())], settings), "small_counts", SOFT)


# path -----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["results/../table.csv", "../table.csv", "/etc/table.csv",
                                  "results//table.csv", "./table.csv", "results\\table.csv",
                                  "tab\nle.csv", "report\u202evsc.csv", "",
                                  "ro-crate-metadata.json"])
def test_paths_that_are_not_plain_relative_paths_are_blocked(path: str) -> None:
    assert [f.check for f in hard([cand(path)])] == ["path"]


def test_dotdot_is_blocked_even_when_it_resolves_inside() -> None:
    [finding] = hard([cand("results/../results/table.csv")])
    assert "'..'" in finding.message


def test_a_file_requested_twice_is_blocked() -> None:
    assert [f.message for f in hard([cand(), cand()])] == ["'results/table.csv' is requested twice"]


def test_content_checks_never_read_a_file_the_path_check_blocks() -> None:
    def explode() -> Iterator[list[str]]:
        raise AssertionError("read a file outside the quarantine")

    outside = CandidateFile("../t.csv", 10, b"", text_rows=explode)
    findings = run_checks([outside], SETTINGS)
    assert {f.check for f in findings} == {"path", "size", "total_size"}


# file type ------------------------------------------------------------------------------

def test_png_bytes_named_csv_are_blocked() -> None:
    findings = hard([cand("plot.csv", PNG)])
    [mismatch] = [f for f in findings if f.check == "file_type"]
    assert "content is png, not csv" in mismatch.message


@pytest.mark.parametrize(("path", "content", "kind"), [
    ("notes.txt", ELF, "ELF"), ("data.json", b"PK\x03\x04" + bytes(30), "ZIP"),
    ("report.pdf", b"\x1f\x8b\x08\x00" + bytes(10), "gzip"), ("plot.png", ELF, "ELF"),
    ("t.csv", b"PK\x05\x06" + bytes(18), "ZIP")])
def test_executables_and_archives_under_allowed_names_are_blocked(path: str, content: bytes,
                                                                   kind: str) -> None:
    [finding] = found(run_checks([cand(path, content)], SETTINGS), "file_type", HARD)
    assert kind in finding.message


@pytest.mark.parametrize("path", ["tool.exe", "model.pkl", "archive.zip", "README", ".csv"])
def test_a_type_that_is_not_allowed_is_blocked(path: str) -> None:
    [finding] = found(run_checks([cand(path, b"hello\n")], SETTINGS), "file_type", HARD)
    assert "is not allowed" in finding.message


def test_the_project_can_narrow_the_allowed_types() -> None:
    assert hard([cand("plot.png", PNG)], AirlockSettings(allowed_types=("csv",)))
    assert not hard([cand("plot.png", PNG)])


@pytest.mark.parametrize(("path", "content"), [
    ("notes.txt", b"abc\x00def"), ("notes.txt", b"caf\xe9"),
    ("data.json", b"hello"), ("data.json", b'{"a": '), ("plot.svg", b"<html></html>"),
    ("plot.pdf", b"not a pdf"), ("plot.png", b"not a png"),
    ("t.tsv", b"group,n\na,12\n"), ("t.csv", b"group\tn\na\t12\n"), ("t.csv", b"g;n\na;12\n")])
def test_text_that_does_not_match_its_name_is_blocked(path: str, content: bytes) -> None:
    assert found(run_checks([cand(path, content)], SETTINGS), "file_type", HARD)


@pytest.mark.parametrize(("path", "content"), [
    ("notes.txt", "Grüße\n".encode()), ("data.json", b'  [1, 2, {"a": null}]'),
    ("data.json", b'{"a": "' + b"x" * 9000 + b'"}'),  # only the head is seen: a prefix
    ("plot.svg", b'<?xml version="1.0" encoding="utf-8" standalone="no"?>\n'
                 b'<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN"\n'
                 b'  "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
                 b"<!-- made by matplotlib -->\n<svg xmlns='http://www.w3.org/2000/svg'/>"),
    ("plot.PNG", PNG), ("report.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"),
    ("t.tsv", b"group\tn\na\t12\n"), ("t.csv", b"\xef\xbb\xbfgroup,n\na,12\n"),
    ("long.txt", b"a" * 8191 + "é".encode())])  # a character cut at the 8 KiB boundary
def test_content_that_matches_its_name_passes(path: str, content: bytes) -> None:
    findings = run_checks([cand(path, content)], SETTINGS)
    assert [f.severity for f in findings if f.check == "file_type"] == [PASS]


def test_an_svg_with_scripts_is_flagged_for_reviewers() -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    [finding] = found(run_checks([cand("plot.svg", svg)], SETTINGS), "file_type", SOFT)
    assert "scripts" in finding.message


# sizes ----------------------------------------------------------------------------------

def test_a_file_over_the_per_file_limit_is_blocked() -> None:
    settings = AirlockSettings(max_file_bytes=100, max_total_bytes=10_000)
    [finding] = hard([cand(size=101), cand("b.csv", size=100)], settings)
    assert (finding.check, finding.path, finding.details) == (
        "size", "results/table.csv", {"size": 101, "limit": 100})


def test_a_request_over_the_total_limit_is_blocked_as_a_whole() -> None:
    settings = AirlockSettings(max_file_bytes=100, max_total_bytes=150)
    [finding] = hard([cand(size=80), cand("b.csv", size=80)], settings)
    assert (finding.check, finding.path, finding.details["total"]) == ("total_size", "", 160)


# small counts ---------------------------------------------------------------------------

def test_small_counts_are_flagged_with_their_positions_and_the_threshold() -> None:
    [finding] = small_counts("group,n,total\na,9,10\nb,100,3\nc,10,1\n")
    assert finding.details["kind"] == "counts"
    assert finding.details["threshold"] == 10
    assert finding.details["cells"] == [["row 2", "col n", 9], ["row 3", "col total", 3],
                                        ["row 4", "col total", 1]]
    assert "from 1 to 9" in finding.message


def test_the_threshold_comes_from_the_settings() -> None:
    assert not small_counts("group,n\na,9\n", threshold=5)
    [finding] = small_counts("group,n\na,4\n", threshold=5)
    assert finding.details["cells"] == [["row 2", "col n", 4]]


def test_zero_is_not_disclosive() -> None:
    assert not small_counts("group,n\na,0\nb,0\nc,25\n")


@pytest.mark.parametrize("header", ["n", "N", "Count", "freq", "frequency", "number", "cases",
                                    "total", "case_count", "deaths_n", "Case count"])
def test_count_like_headers(header: str) -> None:
    assert is_count_header(header)
    [finding] = small_counts(f"group,{header}\na,2.0\nb,x\n")
    assert finding.details["cells"] == [["row 2", f"col {header}", 2]]


def test_columns_that_are_not_counts_are_not_flagged() -> None:
    assert not is_count_header("nation")
    assert not small_counts("label,score,nation,n\nx,3.5,2,12\ny,4,DE,40\n")


def test_integer_columns_with_small_values_are_flagged_as_possible_counts() -> None:
    [finding] = small_counts("group,patients\na,3\nb,250\nc,NA\n")
    assert finding.details["kind"] == "possible_counts"
    assert finding.details["cells"] == [["row 2", "col patients", 3]]
    assert "possible counts" in finding.message


def test_tsv_files_and_headerless_tables_are_scanned() -> None:
    [finding] = small_counts("group\tn\na\t7\n", path="t.tsv")
    assert finding.details["cells"] == [["row 2", "col n", 7]]
    [headerless] = small_counts("1,200\n300,400\n")
    assert headerless.details["cells"] == [["row 1", "col 1", 1]]


def test_a_byte_order_mark_does_not_hide_a_count_column() -> None:
    [finding] = small_counts("\ufeffn,group\n3,a\n")
    assert finding.details["cells"] == [["row 2", "col n", 3]]


def test_the_listed_cells_are_capped() -> None:
    [finding] = small_counts("n\n" + "1\n" * 80)
    assert len(finding.details["cells"]) == MAX_CELLS
    assert finding.details["flagged"] == 80


def test_a_table_that_cannot_be_read_is_blocked() -> None:
    [finding] = found(run_checks([cand("t.csv", PNG)], SETTINGS), "small_counts", HARD)
    assert "could not be read" in finding.message


# passes, registry, settings ------------------------------------------------------------

def test_every_check_records_a_pass_for_a_clean_request() -> None:
    files = [cand("a/t.csv", b"group,n\na,12\n"), cand("a/plot.png", PNG)]
    findings = run_checks(files, SETTINGS)
    assert all(f.severity == PASS for f in findings)
    assert {(f.check, f.path) for f in findings} == {
        ("path", "a/t.csv"), ("path", "a/plot.png"), ("file_type", "a/t.csv"),
        ("file_type", "a/plot.png"), ("size", "a/t.csv"), ("size", "a/plot.png"),
        ("total_size", ""), ("small_counts", "a/t.csv")}
    assert blocking(findings) == []


def test_a_check_appended_to_the_registry_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    def check_no_secrets(files: list[CandidateFile], s: AirlockSettings) -> list[Finding]:
        return [Finding("secrets", f.path, SOFT, "mentions a password")
                for f in files if b"password" in f.head]

    monkeypatch.setattr(airlock_checks, "CHECKS", [*CHECKS, check_no_secrets])
    [finding] = found(run_checks([cand("n.txt", b"password=x")], SETTINGS), "secrets", SOFT)
    assert finding.path == "n.txt"


def test_a_check_that_raises_blocks_the_request(monkeypatch: pytest.MonkeyPatch) -> None:
    def check_broken(files: list[CandidateFile], s: AirlockSettings) -> list[Finding]:
        raise RuntimeError("boom")

    monkeypatch.setattr(airlock_checks, "CHECKS", [*CHECKS, check_broken])
    [finding] = hard([cand()])
    assert (finding.check, finding.message) == ("broken", "the broken check could not run "
                                                          "(RuntimeError)")


def test_settings_from_the_policy_apply_values_and_keep_defaults() -> None:
    settings = AirlockSettings.from_policy({"required_approvals": 3, "count_threshold": 5,
                                            "allowed_types": [".CSV", "png"]})
    assert settings == AirlockSettings(required_approvals=3, count_threshold=5,
                                       allowed_types=("csv", "png"))
    assert AirlockSettings.from_policy({}) == AirlockSettings.from_policy(None) == SETTINGS


@pytest.mark.parametrize(("raw", "error"), [
    ({"count_treshold": 5, "zeta": 1}, "unknown airlock setting(s): count_treshold, zeta"),
    ({"required_approvals": 0}, "required_approvals"),
    ({"max_file_bytes": True}, "max_file_bytes"), ({"count_threshold": "10"}, "count_threshold"),
    ({"allowed_types": "csv"}, "allowed_types"), ({"allowed_types": ["xlsx"]}, "xlsx")])
def test_settings_from_the_policy_reject_unknown_keys_and_bad_values(raw: dict[str, object],
                                                                     error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
        AirlockSettings.from_policy(raw)


def test_a_json_output_nested_too_deeply_is_blocked_by_the_type_check() -> None:
    """Found by the depth check itself, before ``json.loads`` would recurse (run_checks
    also turns a check that raises into a hard finding, the older safety net)."""
    deep = b"[" * 3000 + b"1" + b"]" * 3000  # whole (< 8 KiB); json.loads: RecursionError
    findings = run_checks([cand("results/qc.json", deep)], SETTINGS)
    assert any("nests deeper than" in f.message for f in found(findings, "file_type", HARD))
    assert any("nested too deeply" in f.message for f in found(findings, "small_counts", HARD))
