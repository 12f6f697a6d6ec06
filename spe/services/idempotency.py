"""Submissions a client can safely retry: the ``Idempotency-Key`` extension of ``POST /runs``
(docs/wes-compatibility.md).

A client names a submission with a key (the ``Idempotency-Key`` header, or the tag
``spe.idempotency_key`` for clients that cannot set headers). The same key from the same
caller within the window names the same run; the same key with another request is a
conflict. The key is stored with the run, in the run's own transaction."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

from spe.domain.errors import Conflict, InvalidRequest
from spe.domain.json_limits import load_json
from spe.domain.models import SubmissionKey
from spe.services.submission import Submission

KEY_TAG = "spe.idempotency_key"
MAX_KEY = 255


def key_of(sub: Submission) -> str:
    """The submission's key ("" for none): the header's, or the tag's; both must agree."""
    header = sub.idempotency_key
    tag = _tag_value(sub.fields.get("tags", ""))
    if header and tag and header != tag:
        raise InvalidRequest("the Idempotency-Key header and the tag "
                             f"{KEY_TAG} name different keys",
                             [("/tags/" + KEY_TAG, "differs from the header")])
    key = header or tag
    if key and not (len(key) <= MAX_KEY and all(0x21 <= ord(c) <= 0x7E for c in key)):
        raise InvalidRequest(f"an idempotency key is 1 to {MAX_KEY} visible ASCII characters",
                             [("/Idempotency-Key", "not a valid key")])
    return key


def _tag_value(raw: str) -> str:
    try:
        tags = load_json(raw, "tags") if raw.strip() else {}
    except (ValueError, InvalidRequest):
        return ""  # the request parser reports a malformed tags field
    value = tags.get(KEY_TAG, "") if isinstance(tags, dict) else ""
    return value if isinstance(value, str) else ""


def fingerprint(sub: Submission) -> str:
    """A digest of what the request asks for: its fields (JSON fields compared by value,
    not by spelling) and its attachments' names and contents."""
    fields = {name: _canonical(value) for name, value in sub.fields.items()}
    files = sorted((name, hashlib.sha256(content).hexdigest())
                   for name, content in sub.attachments)
    text = json.dumps({"fields": fields, "attachments": files}, sort_keys=True)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _canonical(value: str) -> object:
    try:
        return {"json": load_json(value, "")} if value.strip()[:1] in ("{", "[") else value
    except (ValueError, InvalidRequest):  # the request parser reports it
        return value


def submission_key(owner_sub: str, sub: Submission, at: datetime,
                   window: timedelta) -> SubmissionKey | None:
    key = key_of(sub)
    return SubmissionKey(owner_sub, key, fingerprint(sub), at, window) if key else None


def same_request(key: SubmissionKey, run_id: str, request_digest: str) -> str:
    """``run_id`` when the stored key was used for this very request; else 409."""
    if request_digest != key.request_digest:
        raise Conflict(f"Idempotency-Key {key.key[:100]!r} was already used for a different "
                       f"request (run {run_id}); use a new key for a new submission")
    return run_id
