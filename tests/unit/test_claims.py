"""ClaimsMapper: Life Science Login claims -> Principal (entitlements and verified visas)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from spe.adapters.auth.claims import ClaimsMapper
from spe.adapters.auth.passports import PassportVerifier
from spe.domain.errors import Unauthenticated
from spe.domain.identity import Entitlement
from tests.visa_issuer import DATASET, VisaIssuer

ISSUER = "https://login.aai.lifescience-ri.eu/oidc/"
AUTHORITY = "perun.aai.lifescience-ri.eu"
SUB = "alice@lifescience-ri.eu"
NS = "urn:geant:lifescience-ri.eu"
PROJECT_A = f"{NS}:group:spe:project-a:role=member#{AUTHORITY}"
PROJECT_B = f"{NS}:group:spe:project-b#{AUTHORITY}"
UNTRUSTED = f"{NS}:group:spe:project-c:role=admin#evil.example.org"


@pytest.fixture
def issuer() -> Iterator[VisaIssuer]:
    with VisaIssuer() as visas:
        yield visas


@pytest.fixture
def passports(issuer: VisaIssuer) -> PassportVerifier:
    return PassportVerifier({issuer.iss: (issuer.jku,)}, http_timeout=2.0)


def mapper(passports: PassportVerifier | None = None) -> ClaimsMapper:
    return ClaimsMapper(ISSUER, frozenset({AUTHORITY}), passports)


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": SUB, "preferred_username": "alice", "email": "alice@example.org", **extra}


# -- identity --------------------------------------------------------------------------------


def test_identity_claims_are_mapped() -> None:
    principal = mapper().principal(claims())
    assert (principal.sub, principal.username, principal.email, principal.issuer) == \
        (SUB, "alice", "alice@example.org", ISSUER)
    assert (principal.entitlements, principal.visas) == ((), ())


def test_username_falls_back_to_sub() -> None:
    principal = mapper().principal({"sub": SUB})
    assert (principal.username, principal.email) == (SUB, "")


@pytest.mark.parametrize("sub", [None, "", 42])
def test_missing_sub_is_unauthenticated(sub: Any) -> None:
    raw = claims() if sub is None else claims(sub=sub)
    if sub is None:
        del raw["sub"]
    with pytest.raises(Unauthenticated, match="token missing claim sub"):
        mapper().principal(raw)


# -- entitlements ----------------------------------------------------------------------------


def test_trusted_entitlements_are_kept_and_parsed() -> None:
    principal = mapper().principal(claims(eduperson_entitlement=[PROJECT_A, PROJECT_B]))
    assert principal.entitlements == (
        Entitlement(namespace=NS, groups=("spe", "project-a"), role="member",
                    authority=AUTHORITY),
        Entitlement(namespace=NS, groups=("spe", "project-b"), role="", authority=AUTHORITY),
    )
    assert principal.entitlements[0].group == "spe:project-a"


def test_untrusted_authority_is_dropped_and_only_counted_in_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="spe.adapters.auth.claims"):
        principal = mapper().principal(claims(eduperson_entitlement=[UNTRUSTED, PROJECT_A]))
    assert [e.group for e in principal.entitlements] == ["spe:project-a"]
    assert "dropped 1 of 2 entitlements" in caplog.text
    assert "evil.example.org" not in caplog.text and "project-c" not in caplog.text


@pytest.mark.parametrize("malformed", [
    "not an entitlement",
    f"{NS}:group:spe:project-a",  # no authority
    f"{NS}:group::project-a#{AUTHORITY}",  # empty group
    f"{NS}:group:spe:role=member:x#{AUTHORITY}",  # role in the group path
    f"urn:mace:example.org:group:spe#{AUTHORITY}",  # not a geant namespace
    f"{NS}:res:dataset#{AUTHORITY}",  # not a group
    42,
    None,
])
def test_malformed_entitlements_are_dropped(malformed: Any) -> None:
    principal = mapper().principal(claims(eduperson_entitlement=[malformed, PROJECT_B]))
    assert [e.group for e in principal.entitlements] == ["spe:project-b"]


def test_single_string_entitlement_is_handled() -> None:
    principal = mapper().principal(claims(eduperson_entitlement=PROJECT_A))
    assert [str(e) for e in principal.entitlements] == [PROJECT_A]


def test_entitlement_claim_of_another_type_is_ignored() -> None:
    principal = mapper().principal(claims(eduperson_entitlement={"group": PROJECT_A}))
    assert principal.entitlements == ()


def test_duplicate_entitlements_are_kept_once() -> None:
    principal = mapper().principal(claims(eduperson_entitlement=[PROJECT_A, PROJECT_A]))
    assert len(principal.entitlements) == 1


# -- visas -----------------------------------------------------------------------------------


def test_verified_visas_are_kept_and_rejections_logged_without_the_visa(
        issuer: VisaIssuer, passports: PassportVerifier,
        caplog: pytest.LogCaptureFixture) -> None:
    good, foreign = issuer.visa(SUB), issuer.visa("mallory@lifescience-ri.eu")
    with caplog.at_level(logging.INFO, logger="spe.adapters.auth.claims"):
        principal = mapper(passports).principal(claims(ga4gh_passport_v1=[good, foreign]))
    assert [(v.value, v.issuer) for v in principal.visas] == [(DATASET, issuer.iss)]
    assert "rejected 1 of 2 visas: visa subject mismatch" in caplog.text
    assert foreign.split(".")[2] not in caplog.text


def test_without_a_passport_verifier_visas_are_ignored(issuer: VisaIssuer) -> None:
    principal = mapper(None).principal(claims(ga4gh_passport_v1=[issuer.visa(SUB)]))
    assert principal.visas == ()
    assert issuer.requests == 0


def test_passport_claim_that_is_not_a_list_is_ignored(issuer: VisaIssuer,
                                                      passports: PassportVerifier) -> None:
    principal = mapper(passports).principal(claims(ga4gh_passport_v1=issuer.visa(SUB)))
    assert principal.visas == ()
    assert issuer.requests == 0


def test_visas_are_verified_for_the_tokens_sub(issuer: VisaIssuer,
                                               passports: PassportVerifier) -> None:
    raw = claims(sub="bob@lifescience-ri.eu", ga4gh_passport_v1=[issuer.visa(SUB)])
    assert mapper(passports).principal(raw).visas == ()
