"""A bounded map of JSON documents that expire, keyed by a token's SHA-256: the caches of
verified tokens (``OidcVerifier``), introspection answers and userinfo (``LsLoginVerifier``).
The token itself is never stored."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable

from spe.domain.models import JSON

__all__ = ["TtlCache", "token_hash"]


def token_hash(token: str) -> str:
    """The cache key of a token: its SHA-256, hex. The token itself is never stored."""
    return hashlib.sha256(token.encode()).hexdigest()


class TtlCache:
    """A thread-safe map of JSON documents that expire; at most ``max_entries`` are kept
    (expired ones go first, then the oldest)."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be positive")
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[float, JSON]] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def get(self, key: str) -> JSON | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] <= self._clock():
                del self._items[key]
                return None
            return dict(item[1])

    def put(self, key: str, value: JSON, expires_at: float) -> None:
        now = self._clock()
        if expires_at <= now:
            return
        with self._lock:
            self._items.pop(key, None)
            if len(self._items) >= self._max:
                for stale in [k for k, (exp, _) in self._items.items() if exp <= now]:
                    del self._items[stale]
            while len(self._items) >= self._max:
                self._items.popitem(last=False)
            self._items[key] = (expires_at, dict(value))
