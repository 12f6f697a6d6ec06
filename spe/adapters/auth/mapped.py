"""A TokenVerifier made of two parts: something that returns a token's validated claims
(``OidcVerifier.claims``) and a mapper from claims to a Principal (``ClaimsMapper``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from spe.domain.models import Principal


class MappedVerifier:
    def __init__(self, claims: Callable[[str], dict[str, Any]],
                 mapper: Callable[[dict[str, Any]], Principal]) -> None:
        self._claims = claims
        self._mapper = mapper

    def verify(self, token: str) -> Principal:
        return self._mapper(self._claims(token))
