"""Pure domain rules: states, catalog resolution and digests, params, options, names,
page tokens."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from spe.adapters.catalog import directory_digest, load_catalog, verify_catalog
from spe.domain.airlock import ReleaseCursor
from spe.domain.attachments import check_attachment_names
from spe.domain.catalog import bundle_digest, parse_manifest
from spe.domain.errors import InvalidRequest, NotOnAllowlist
from spe.domain.paging import PageTokens
from spe.domain.params import validate_engine_options, validate_params
from spe.domain.states import FINAL_STATES, TRANSITIONS, RunState, can_move

ROOT = Path(__file__).resolve().parents[2]


def test_final_states_never_change() -> None:
    for state in FINAL_STATES:
        assert TRANSITIONS[state] == frozenset()
        assert not any(can_move(state, other) for other in RunState if other != state)


def test_every_state_is_in_the_table_and_cancel_goes_through_canceling() -> None:
    assert set(TRANSITIONS) == set(RunState)
    assert can_move(RunState.RUNNING, RunState.CANCELING)
    assert not can_move(RunState.RUNNING, RunState.CANCELED)
    assert can_move(RunState.CANCELING, RunState.CANCELED)


def test_bundle_digest_is_independent_of_file_order_and_sensitive_to_names() -> None:
    a = [("Snakefile", b"rule all: pass"), ("scripts/x.py", b"print(1)")]
    assert bundle_digest(a) == bundle_digest(list(reversed(a)))
    assert bundle_digest(a) != bundle_digest([("Snakefile2", b"rule all: pass"), a[1]])
    # the length prefix keeps content from sliding into the next file's name
    assert bundle_digest([("a", b"bc"), ("d", b"")]) != bundle_digest([("a", b"b"), ("d", b"c")])


def test_shipped_manifests_pin_their_bundles() -> None:
    catalog, bundles = load_catalog(ROOT / "workflows")
    for entry in catalog.entries():
        assert directory_digest(bundles[entry.ref]) == entry.bundle_digest


def test_resolution_by_ref_id_and_digest() -> None:
    catalog, _ = load_catalog(ROOT / "workflows")
    entry = catalog.resolve("tsv-summary@1.1.0")
    assert catalog.resolve("tsv-summary") == entry  # the newest approved version
    assert catalog.resolve(entry.bundle_digest) == entry
    for bad in ("tsv-summary@0.0.1", "TSV-SUMMARY", "http://x/y", "sha256:" + "1" * 64, ""):
        with pytest.raises(NotOnAllowlist):
            catalog.resolve(bad)


def _copy_catalog(tmp_path: Path) -> Path:
    dest = tmp_path / "catalog"
    shutil.copytree(ROOT / "workflows", dest,
                    ignore=shutil.ignore_patterns("__pycache__", ".snakemake"))
    return dest


@pytest.mark.parametrize("mutation", ["edit", "add", "delete", "symlink"])
def test_catalog_verify_detects_every_kind_of_drift(tmp_path: Path, mutation: str) -> None:
    root = _copy_catalog(tmp_path)
    bundle = root / "tsv-summary/1.0.0/bundle"
    if mutation == "edit":
        snakefile = bundle / "Snakefile"
        snakefile.write_text(snakefile.read_text() + "\n# drift\n")
    elif mutation == "add":
        (bundle / "extra.py").write_text("print('hi')\n")
    elif mutation == "delete":
        next(bundle.glob("scripts/*.py")).unlink()
    else:
        (bundle / "link").symlink_to("/etc/passwd")
    problems = verify_catalog(root)
    assert problems and "tsv-summary/1.0.0" in str(problems[0])
    result = subprocess.run([sys.executable, "-m", "spe.cli.main", "catalog", "verify",
                             "--path", str(root)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 1
    assert "DRIFT" in result.stderr


def test_catalog_verify_passes_on_the_shipped_catalog() -> None:
    result = subprocess.run([sys.executable, "-m", "spe.cli.main", "catalog", "verify",
                             "--path", str(ROOT / "workflows")], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_manifest_errors_are_listed_with_pointers() -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_manifest({"id": "Bad Id", "version": "x", "workflow_type": "CWL"})
    pointers = {p for p, _ in err.value.errors}
    assert {"/id", "/version", "/workflow_type", "/bundle_digest",
            "/approval/approved_by"} <= pointers


def test_params_are_validated_with_json_pointers_and_defaults_filled() -> None:
    catalog, _ = load_catalog(ROOT / "workflows")
    entry = catalog.resolve("gsea-rank")
    filled = validate_params(entry, {})
    assert filled["permutations"] == 200
    with pytest.raises(InvalidRequest) as err:
        validate_params(entry, {"permutations": 5, "weight": "heavy"})
    assert {p for p, _ in err.value.errors} == {"/permutations", "/weight"}


def test_engine_options_are_typed_and_bounded() -> None:
    catalog, _ = load_catalog(ROOT / "workflows")
    entry = catalog.resolve("tsv-summary")
    values = validate_engine_options(entry, {"cores": "2", "keep_going": "true"})
    assert values["cores"] == 2 and values["keep_going"] is True
    for bad in ({"cores": "5"}, {"cores": "1.5"}, {"nope": "1"}, {"keep_going": "yes please"},
                {"latency_wait": "nan"}):
        with pytest.raises(InvalidRequest):
            validate_engine_options(entry, bad)


@pytest.mark.parametrize("name", ["../x", "/abs", "a\\b", "a\x00b", "a/../b", "", ".",
                                  "a//b", "x" * 300, "tab\tname"])
def test_unsafe_attachment_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidRequest):
        check_attachment_names([name])


def test_safe_attachment_names_pass_and_duplicates_do_not() -> None:
    assert check_attachment_names(["Snakefile", "scripts/a.py"]) == ["Snakefile",
                                                                      "scripts/a.py"]
    with pytest.raises(InvalidRequest):
        check_attachment_names(["a", "a"])


def test_page_tokens_round_trip_and_refuse_tampering_and_other_scopes() -> None:
    tokens = PageTokens(b"k" * 32)
    token = tokens.encode(42, "runs|alice")
    assert tokens.decode(token, "runs|alice") == 42
    with pytest.raises(InvalidRequest):
        tokens.decode(token, "runs|bob")
    with pytest.raises(InvalidRequest):
        PageTokens(b"j" * 32).decode(token, "runs|alice")
    for forged in (token[:-1], token + "A", "", "!!!", "e30"):
        with pytest.raises(InvalidRequest):
            tokens.decode(forged, "runs|alice")


def test_page_tokens_carry_text_positions_and_keep_numbers_and_texts_apart() -> None:
    tokens = PageTokens(b"k" * 32)
    cursor = ReleaseCursor(datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "ab" * 16)
    token = tokens.encode(cursor.text(), "release-requests|alice")
    assert ReleaseCursor.parse(tokens.decode_text(token, "release-requests|alice")) == cursor
    with pytest.raises(InvalidRequest):
        tokens.decode(token, "release-requests|alice")  # a text is no number
    with pytest.raises(InvalidRequest):
        tokens.decode_text(tokens.encode(7, "runs|alice"), "runs|alice")
    with pytest.raises(InvalidRequest):
        tokens.decode_text(token, "release-requests|bob")
    for text in ("2026-01-02T03:04:05|", "no time|id", "2026-01-02T03:04:05|id"):
        with pytest.raises(ValueError):
            ReleaseCursor.parse(text)  # no id, no time, no offset
