"""PassportVerifier against real visa issuers over HTTP on 127.0.0.1 (no mocks of requests)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from spe.adapters.auth.passports import PassportVerifier
from spe.domain.identity import Visa
from tests.visa_issuer import DAC, DATASET, VisaIssuer

SUB = "alice@lifescience-ri.eu"
OTHER_ISS = "https://other-visas.example.org/"


class FakeClock:
    """Drives the verifier's cache timers and visa validity; starts at the real time
    because PyJWT checks ``exp``/``iat`` against the system clock."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def issuer() -> Iterator[VisaIssuer]:
    with VisaIssuer() as visas:
        yield visas


@pytest.fixture
def other() -> Iterator[VisaIssuer]:
    with VisaIssuer(iss=OTHER_ISS) as visas:
        yield visas


def make_verifier(clock: FakeClock, trusted: dict[str, tuple[str, ...]],
                  **options: Any) -> PassportVerifier:
    return PassportVerifier(trusted, clock=clock, http_timeout=2.0, **options)


@pytest.fixture
def verifier(issuer: VisaIssuer, clock: FakeClock) -> PassportVerifier:
    return make_verifier(clock, {issuer.iss: (issuer.jku,)})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(obj: dict[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def rejected(verifier: PassportVerifier, visa: str, subject: str = SUB) -> str:
    """The one reason ``visa`` is rejected for; the reason never contains the visa."""
    visas, reasons = verifier.verify([visa], subject)
    assert visas == []
    assert len(reasons) == 1
    assert not any(part in reasons[0] for part in visa.split(".") if len(part) >= 16)
    return reasons[0]


def accepted(verifier: PassportVerifier, visa: str) -> Visa:
    visas, reasons = verifier.verify([visa], SUB)
    assert reasons == []
    assert len(visas) == 1
    return visas[0]


def closed_port_url() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/jwks.json"


# -- accepted visas --------------------------------------------------------------------------


def test_valid_rs256_visa_passes(issuer: VisaIssuer, verifier: PassportVerifier) -> None:
    payload = issuer.claims(SUB)
    visa = accepted(verifier, issuer.sign(payload))
    assert visa == Visa(type="ControlledAccessGrants", value=DATASET, source=DAC, by="dac",
                        asserted=payload["ga4gh_visa_v1"]["asserted"],
                        valid_until=payload["exp"], issuer=issuer.iss)


def test_valid_es256_visa_passes(issuer: VisaIssuer, verifier: PassportVerifier) -> None:
    visa = accepted(verifier, issuer.visa(SUB, alg="ES256", type="AffiliationAndRole",
                                          value="faculty@example.org", by="so"))
    assert (visa.type, visa.value, visa.by) == ("AffiliationAndRole", "faculty@example.org", "so")


def test_valid_until_is_asserted_plus_max_age_when_earlier(issuer: VisaIssuer,
                                                           clock: FakeClock) -> None:
    verifier = make_verifier(clock, {issuer.iss: (issuer.jku,)}, max_age_seconds=1000)
    asserted = int(clock.now) - 100
    visa = accepted(verifier, issuer.visa(SUB, asserted=asserted))
    assert visa.valid_until == asserted + 1000


def test_visa_without_by_is_returned_with_empty_by(issuer: VisaIssuer,
                                                    verifier: PassportVerifier) -> None:
    assert accepted(verifier, issuer.visa(SUB, by=None)).by == ""


def test_empty_conditions_are_accepted(issuer: VisaIssuer, verifier: PassportVerifier) -> None:
    accepted(verifier, issuer.visa(SUB, conditions=[]))


def test_each_visa_is_judged_alone(issuer: VisaIssuer, verifier: PassportVerifier) -> None:
    good, bad = issuer.visa(SUB), issuer.visa("mallory@lifescience-ri.eu")
    visas, reasons = verifier.verify([bad, good, "garbage"], SUB)
    assert len(visas) == 1
    assert reasons == ["visa subject mismatch", "malformed visa"]


# -- trust in the jku, before any request ----------------------------------------------------


def test_untrusted_jku_is_rejected_without_any_request(
        issuer: VisaIssuer, other: VisaIssuer, verifier: PassportVerifier) -> None:
    assert rejected(verifier, issuer.visa(SUB, jku=other.jku)) == "untrusted jku"
    assert rejected(verifier, other.visa(SUB)) == "untrusted jku"
    assert (issuer.requests, other.requests) == (0, 0)


def test_jku_trusted_for_another_issuer_is_rejected(
        issuer: VisaIssuer, other: VisaIssuer, clock: FakeClock) -> None:
    verifier = make_verifier(clock, {issuer.iss: (issuer.jku,), other.iss: (other.jku,)})
    forged = other.visa(SUB, iss=issuer.iss)  # other's key, claiming to be issuer
    assert rejected(verifier, forged) == "untrusted jku"
    assert other.requests == 0
    accepted(verifier, other.visa(SUB))  # the same key is fine for its own iss


def test_visa_without_jku_is_rejected(issuer: VisaIssuer, verifier: PassportVerifier) -> None:
    visa = issuer.visa(SUB, extra_header={"jku": None})
    assert "jku" not in jwt.get_unverified_header(visa)
    assert rejected(verifier, visa) == "visa has no jku"
    assert issuer.requests == 0


# -- algorithms and signatures ---------------------------------------------------------------


def test_hs256_visa_signed_with_the_public_key_is_rejected(
        issuer: VisaIssuer, verifier: PassportVerifier) -> None:
    header = {"alg": "HS256", "typ": "JWT", "jku": issuer.jku, "kid": issuer.rsa_kid}
    signing_input = f"{b64json(header)}.{b64json(issuer.claims(SUB))}"
    mac = hmac.new(issuer.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    assert rejected(verifier, f"{signing_input}.{b64url(mac)}") == "algorithm not allowed"
    assert issuer.requests == 0


def test_alg_none_is_rejected(issuer: VisaIssuer, verifier: PassportVerifier) -> None:
    header = {"alg": "none", "typ": "JWT", "jku": issuer.jku, "kid": issuer.rsa_kid}
    visa = f"{b64json(header)}.{b64json(issuer.claims(SUB))}."
    assert rejected(verifier, visa) == "algorithm not allowed"


def test_algorithm_outside_the_configured_list_is_rejected(issuer: VisaIssuer,
                                                           clock: FakeClock) -> None:
    verifier = make_verifier(clock, {issuer.iss: (issuer.jku,)}, algorithms=("RS256",))
    assert rejected(verifier, issuer.visa(SUB, alg="ES256")) == "algorithm not allowed"


def test_only_rs256_and_es256_can_be_configured() -> None:
    with pytest.raises(ValueError, match="HS256"):
        PassportVerifier({}, algorithms=("RS256", "HS256"))


def test_tampered_payload_is_rejected(issuer: VisaIssuer, verifier: PassportVerifier) -> None:
    header, _, signature = issuer.visa(SUB).split(".")
    payload = issuer.claims(SUB, value="https://datasets.example.org/EGAD99999999999")
    assert rejected(verifier, f"{header}.{b64json(payload)}.{signature}") == \
        "visa signature invalid"


def test_kid_of_a_key_of_another_type_is_rejected(issuer: VisaIssuer,
                                                  verifier: PassportVerifier) -> None:
    visa = issuer.visa(SUB, alg="ES256", kid=issuer.rsa_kid)
    assert rejected(verifier, visa) == "signing key does not match algorithm"


@pytest.mark.parametrize("visa", ["", "not-a-jwt", "a.b.c", "x" * 20_000])
def test_malformed_visa_is_rejected(verifier: PassportVerifier, visa: str) -> None:
    _, reasons = verifier.verify([visa], SUB)
    assert reasons == ["malformed visa"]


# -- claims ----------------------------------------------------------------------------------


def test_visa_for_another_subject_is_rejected(issuer: VisaIssuer,
                                              verifier: PassportVerifier) -> None:
    visa = issuer.visa("mallory@lifescience-ri.eu")
    assert rejected(verifier, visa) == "visa subject mismatch"


def test_visa_without_exp_is_rejected(issuer: VisaIssuer, verifier: PassportVerifier) -> None:
    payload = issuer.claims(SUB)
    del payload["exp"]
    assert rejected(verifier, issuer.sign(payload)) == "visa missing claim exp"


def test_visa_issued_in_the_future_is_rejected(issuer: VisaIssuer,
                                               verifier: PassportVerifier) -> None:
    payload = {**issuer.claims(SUB), "iat": int(time.time()) + 600}
    assert rejected(verifier, issuer.sign(payload)) == "visa not yet valid"


@pytest.mark.parametrize("missing", ["type", "value", "source", "asserted"])
def test_visa_missing_a_field_is_rejected(issuer: VisaIssuer, verifier: PassportVerifier,
                                          missing: str) -> None:
    payload = issuer.claims(SUB)
    del payload["ga4gh_visa_v1"][missing]
    assert rejected(verifier, issuer.sign(payload)) == f"visa missing ga4gh_visa_v1.{missing}"


def test_visa_with_conditions_is_ignored(issuer: VisaIssuer, verifier: PassportVerifier) -> None:
    conditions = [[{"type": "AffiliationAndRole", "value": "const:faculty@example.org",
                    "source": "const:https://example.org", "by": "const:so"}]]
    visa = issuer.visa(SUB, conditions=conditions)
    assert rejected(verifier, visa) == "conditions not evaluable"


# -- validity --------------------------------------------------------------------------------


def test_visa_past_exp_is_rejected(issuer: VisaIssuer, verifier: PassportVerifier) -> None:
    visa = issuer.visa(SUB, exp=int(time.time()) - 120)
    assert rejected(verifier, visa) == "expired"


def test_validity_uses_the_injected_clock(issuer: VisaIssuer, verifier: PassportVerifier,
                                          clock: FakeClock) -> None:
    visa = issuer.visa(SUB, exp=int(clock.now) + 600)
    accepted(verifier, visa)
    clock.advance(601)
    assert rejected(verifier, visa) == "expired"


def test_visa_past_asserted_plus_max_age_is_rejected_before_exp(issuer: VisaIssuer,
                                                                clock: FakeClock) -> None:
    verifier = make_verifier(clock, {issuer.iss: (issuer.jku,)}, max_age_seconds=1000)
    visa = issuer.visa(SUB, asserted=int(clock.now) - 1001, exp=int(clock.now) + 3600)
    assert rejected(verifier, visa) == "expired"


# -- keys: caching, refetching, unreachable issuers ------------------------------------------


def test_keys_are_cached_for_jwks_ttl(issuer: VisaIssuer, clock: FakeClock) -> None:
    verifier = make_verifier(clock, {issuer.iss: (issuer.jku,)}, jwks_ttl=600)
    verifier.verify([issuer.visa(SUB), issuer.visa(SUB, alg="ES256")], SUB)
    accepted(verifier, issuer.visa(SUB))
    assert issuer.requests == 1
    clock.advance(601)
    accepted(verifier, issuer.visa(SUB))
    assert issuer.requests == 2


def test_unknown_kid_refetches_once_then_is_rejected(issuer: VisaIssuer,
                                                     verifier: PassportVerifier,
                                                     clock: FakeClock) -> None:
    accepted(verifier, issuer.visa(SUB))
    clock.advance(31)
    assert rejected(verifier, issuer.visa(SUB, kid="rsa-unknown")) == "unknown signing key"
    assert issuer.requests == 2
    assert rejected(verifier, issuer.visa(SUB, kid="rsa-unknown-2")) == "unknown signing key"
    assert issuer.requests == 2


def test_rotated_key_is_picked_up_by_a_refetch(issuer: VisaIssuer, verifier: PassportVerifier,
                                               clock: FakeClock) -> None:
    accepted(verifier, issuer.visa(SUB))
    issuer.add_rsa_key(replace=True)
    visa = issuer.visa(SUB)
    assert rejected(verifier, visa) == "unknown signing key"  # fetched < 30 s ago
    assert issuer.requests == 1
    clock.advance(31)
    accepted(verifier, visa)
    assert issuer.requests == 2


def test_unreachable_issuer_rejects_the_visa_without_raising(issuer: VisaIssuer,
                                                             clock: FakeClock) -> None:
    jku = closed_port_url()
    verifier = make_verifier(clock, {issuer.iss: (jku,)})
    assert rejected(verifier, issuer.visa(SUB, jku=jku)) == "visa issuer unreachable"


def test_failing_issuer_is_not_hammered(issuer: VisaIssuer, verifier: PassportVerifier,
                                        clock: FakeClock) -> None:
    issuer.status = 503
    visas, reasons = verifier.verify([issuer.visa(SUB), issuer.visa(SUB)], SUB)
    assert (visas, reasons) == ([], ["visa issuer unreachable"] * 2)
    assert issuer.requests == 1
    issuer.status = 200
    clock.advance(31)
    accepted(verifier, issuer.visa(SUB))
    assert issuer.requests == 2
