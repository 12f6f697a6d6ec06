"""A bounded, deterministic schemathesis run against our own OpenAPI documents, on a real
server: no generated request may produce a 5xx."""

from __future__ import annotations

import pytest

from tests.helpers import ROOT, Server, assert_no_server_error


@pytest.mark.parametrize(("document", "base"), [("wes.yaml", "/ga4gh/wes/v1"),
                                                ("spe.yaml", "/spe/v1")])
def test_schemathesis_finds_no_server_error(server: Server, document: str, base: str) -> None:
    assert_no_server_error(ROOT / "spe" / "openapi" / document, server.url + base,
                           server.token("fuzzer"), server.home)
