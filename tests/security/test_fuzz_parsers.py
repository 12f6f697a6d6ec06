"""A bounded, seeded fuzz run (hypothesis) of the parsers that read what operators and
researchers send: catalog manifests, the policy file, a run's params and engine options,
the multipart request, data references and attachment names. Whatever the input, each
parser answers with a result or the domain's own error (which the API turns into a 4xx
and the CLI into a one-line message), never with another exception."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spe.adapters.catalog import load_catalog
from spe.adapters.policy import dev_policy
from spe.domain.attachments import check_attachment_names
from spe.domain.catalog import parse_manifest
from spe.domain.data_refs import parse_refs
from spe.domain.errors import DomainError
from spe.domain.params import validate_engine_options, validate_params
from spe.domain.policy_file import parse_policy
from spe.services.submission import Submission, parse_request
from tests.helpers import ROOT

FUZZ = settings(max_examples=300, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
ENTRIES = load_catalog(ROOT / "workflows")[0].entries()
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | \
    st.text(max_size=20) | st.dates()
json_like: st.SearchStrategy[Any] = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=25)
MANIFEST_KEYS = ["id", "version", "name", "description", "workflow_type",
                 "workflow_type_version", "workflow_engine", "entrypoint", "bundle_digest",
                 "params_schema", "engine_options", "outputs", "examples", "approval",
                 "resources"]
POLICY_KEYS = ["projects", "roles", "datasets", "trusted_authorities", "visa_issuers",
               "visa_max_age_seconds", "posix_accounts"]


def _only_domain_errors(parse: Any, *args: Any) -> None:
    with contextlib.suppress(DomainError):  # any other exception fails the test
        parse(*args)


@FUZZ
@given(st.dictionaries(st.sampled_from(MANIFEST_KEYS), json_like, max_size=len(MANIFEST_KEYS)))
def test_manifest_parser_raises_only_domain_errors(data: dict[str, Any]) -> None:
    _only_domain_errors(parse_manifest, data)


@FUZZ
@given(json_like | st.dictionaries(st.sampled_from(POLICY_KEYS), json_like))
def test_policy_parser_raises_only_domain_errors(data: Any) -> None:
    _only_domain_errors(parse_policy, data)


@FUZZ
@given(st.sampled_from(ENTRIES), st.dictionaries(st.text(max_size=12), json_like,
                                                 max_size=5))
def test_params_and_engine_options_raise_only_domain_errors(entry: Any,
                                                             raw: dict[str, Any]) -> None:
    _only_domain_errors(validate_params, entry, raw)
    _only_domain_errors(validate_engine_options, entry, raw)


@FUZZ
@given(st.sampled_from(ENTRIES), st.dictionaries(st.text(max_size=12), json_like,
                                                 max_size=5))
def test_data_references_raise_only_domain_errors(entry: Any, params: dict[str, Any]) -> None:
    _only_domain_errors(parse_refs, entry.params_schema, params, dev_policy().datasets)


@FUZZ
@given(st.dictionaries(st.sampled_from(["workflow_url", "workflow_type",
                                        "workflow_type_version", "workflow_params", "tags",
                                        "workflow_engine_parameters", "workflow_engine"]),
                       st.text(max_size=60) | json_like.map(repr)))
def test_the_run_request_parser_raises_only_domain_errors(fields: dict[str, str]) -> None:
    _only_domain_errors(parse_request, Submission(fields=fields))


@FUZZ
@given(st.lists(st.text(max_size=40), max_size=6))
def test_attachment_names_raise_only_domain_errors(names: list[str]) -> None:
    _only_domain_errors(check_attachment_names, names)
