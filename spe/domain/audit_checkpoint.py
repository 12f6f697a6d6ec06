"""Signed checkpoints of the audit chain's head, kept outside the database.

The hash chain (``spe.adapters.db.audit_chain``) shows an edited, deleted or reordered row,
but not the newest rows cut off, nor the whole table rolled back to an older copy: what is
left is still a valid chain. A checkpoint records the head as it was (``count`` events,
the ``head_id`` row with ``head_hash``, at ``at``) and is signed with a key the database
does not hold (HMAC-SHA256 over the canonical JSON of those fields), so whoever can write
the database cannot forge one. ``compare`` then finds

- truncation: the chain has no row ``head_id`` any more (fewer events than checkpointed);
- rollback or rewrite: row ``head_id`` is there but its hash differs from ``head_hash``
  (each hash covers every row before it, so any change up to the head shows here).

A checkpoint is JSON: ``{"format": "spe-audit-checkpoint/1", "count", "head_id",
"head_hash", "at", "mac"}``; ``mac`` is the hex HMAC-SHA256, with the key, of the canonical
JSON (sorted keys, no spaces) of every other field."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

FORMAT = "spe-audit-checkpoint/1"
MIN_KEY_BYTES = 32
_HASH = re.compile(r"[0-9a-f]{64}")


class BadCheckpoint(ValueError):
    """A checkpoint that does not parse, or whose signature does not verify."""


@dataclass(frozen=True)
class Checkpoint:
    count: int
    head_id: int
    head_hash: str
    at: str  # ISO 8601 UTC, as written

    def body(self) -> dict[str, Any]:
        return {"format": FORMAT, "count": self.count, "head_id": self.head_id,
                "head_hash": self.head_hash, "at": self.at}


@dataclass(frozen=True)
class Finding:
    """What one checkpoint says about the chain now; ``name`` is where it was read."""

    name: str
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


def _mac(body: dict[str, Any], key: bytes) -> str:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"a checkpoint key has at least {MIN_KEY_BYTES} bytes")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def make(count: int, head_id: int, head_hash: str, at: datetime) -> Checkpoint:
    return Checkpoint(count=count, head_id=head_id, head_hash=head_hash,
                      at=at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def sign(checkpoint: Checkpoint, key: bytes) -> bytes:
    """The checkpoint as stored: JSON with its ``mac``."""
    body = checkpoint.body()
    return json.dumps({**body, "mac": _mac(body, key)}, sort_keys=True).encode() + b"\n"


def read(data: bytes, key: bytes) -> Checkpoint:
    """The checkpoint in ``data`` if it parses and its signature verifies with ``key``."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadCheckpoint("not JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BadCheckpoint(f"not a {FORMAT} document")
    mac = doc.pop("mac", None)
    if not isinstance(mac, str) or not hmac.compare_digest(mac, _mac(doc, key)):
        raise BadCheckpoint("signature does not verify (forged, edited, or another key)")
    count, head_id, head_hash, at = (doc.get(k) for k in ("count", "head_id", "head_hash",
                                                           "at"))
    if not (isinstance(count, int) and isinstance(head_id, int) and count >= 1
            and head_id >= 1 and isinstance(head_hash, str) and _HASH.fullmatch(head_hash)
            and isinstance(at, str)):
        raise BadCheckpoint("fields of the wrong type")
    return Checkpoint(count=count, head_id=head_id, head_hash=head_hash, at=at)


def compare(checkpoint: Checkpoint, name: str, count_now: int,
            hash_at_head: str | None) -> list[Finding]:
    """What ``checkpoint`` finds, given the number of events now and the hash the chain
    holds now at ``checkpoint.head_id`` (None: no such row)."""
    if hash_at_head is None or count_now < checkpoint.count:
        return [Finding(name, f"truncated: the checkpoint of {checkpoint.at} saw "
                              f"{checkpoint.count} events (head row {checkpoint.head_id}), "
                              f"the log has {count_now} now")]
    if hash_at_head != checkpoint.head_hash:
        return [Finding(name, f"rolled back or rewritten: row {checkpoint.head_id} hashes "
                              f"to {hash_at_head[:16]}..., the checkpoint of "
                              f"{checkpoint.at} saw {checkpoint.head_hash[:16]}...")]
    return []
