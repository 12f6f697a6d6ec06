"""A bounded, deterministic schemathesis run on TES: our own document, and the official TES
1.1 document (when the tests can find it; tests/ga4gh_specs.py). Every generated request,
valid create bodies included, must get anything but a 5xx.

Known mismatches of the official document, which is why only ``not_a_server_error`` is
checked there (not response conformance):
- it documents only 200 responses, while every error here is a GA4GH ErrorResponse 4xx;
- its ``tesTask`` requires ``executors``, while the MINIMAL view it defines is {id, state}
  (tests/wes_schema.py ``assert_valid_tes`` checks MINIMAL bodies for exactly those keys
  and validates every other response against it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ga4gh_specs import TES_DOCUMENT, find, missing_reason
from tests.helpers import ROOT, Server, assert_no_server_error
from tests.tes.conftest import TES, as_user


def schemathesis(server: Server, document: Path) -> None:
    assert_no_server_error(document, server.url + TES, as_user(server, "alice").token,
                           server.home)


def test_our_tes_document_finds_no_server_error(tes_server: Server) -> None:
    schemathesis(tes_server, ROOT / "spe" / "openapi" / "tes.yaml")


def test_the_official_tes_document_finds_no_server_error(tes_server: Server) -> None:
    document = find(TES_DOCUMENT)
    if document is None:
        pytest.skip(missing_reason(TES_DOCUMENT))
    schemathesis(tes_server, document)
