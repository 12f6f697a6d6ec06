"""Opaque, tamper-proof page tokens: an HMAC-signed position bound to the listing it
came from (who asked, which filter). A token from another listing, or edited, is refused.
A position is a number (a sequence or id, ``decode``) or a text (a composite keyset such
as a release request's time and id, ``decode_text``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from spe.domain.errors import InvalidRequest

_MAC_LEN = 16


class PageTokens:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("page token secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()[:_MAC_LEN]

    def encode(self, position: int | str, scope: str) -> str:
        body = json.dumps({"p": position, "s": _scope_hash(scope)}, separators=(",", ":"))
        raw = body.encode() + self._mac(body.encode())
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, token: str, scope: str) -> int:
        """The number stored in ``token``; ``InvalidRequest`` if forged or foreign."""
        position = self._position(token, scope)
        if not isinstance(position, int):
            raise _refused("not a numeric position")
        return position

    def decode_text(self, token: str, scope: str) -> str:
        """The text stored in ``token``; ``InvalidRequest`` if forged or foreign."""
        position = self._position(token, scope)
        if not isinstance(position, str):
            raise _refused("not a text position")
        return position

    def _position(self, token: str, scope: str) -> int | str:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            body, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
            if len(raw) <= _MAC_LEN or not hmac.compare_digest(mac, self._mac(body)):
                raise ValueError("bad signature")
            data = json.loads(body)
            if data["s"] != _scope_hash(scope) or not isinstance(data["p"], (int, str)) \
                    or isinstance(data["p"], bool):
                raise ValueError("token of another listing")
            position: int | str = data["p"]
            return position
        except (ValueError, KeyError, TypeError) as exc:
            raise _refused(str(exc)) from exc


def _refused(why: str) -> InvalidRequest:
    return InvalidRequest("page_token is not valid for this listing",
                          [("/page_token", why[:100])])


def _scope_hash(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:16]
