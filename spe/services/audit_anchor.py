"""The audit anchor: signed checkpoints of the chain's head (``spe.domain.audit_checkpoint``)
written to an ObjectStore outside the database, and their verification.

- ``checkpoint()`` writes one object for the head as it is now, unless the head has not
  moved since this process last wrote one. Every process that runs the reconciler calls
  it periodically, and once more when it stops.
- ``verify()`` reads every checkpoint in the store and compares each with the chain now:
  a checkpoint that does not verify (forged, edited) is a finding too, and so is a log
  with events but no checkpoint at all (they were removed, or never written)."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from spe.domain import audit_checkpoint as cp
from spe.domain.ports import ObjectStore

log = logging.getLogger(__name__)
SUFFIX = ".json"


class ChainHead(Protocol):
    """The audit chain as the anchor sees it."""

    def head(self) -> tuple[int, int, str] | None:
        """(number of events, id of the newest row, its hash); None for an empty log."""
        ...

    def hashes(self, ids: Collection[int]) -> dict[int, str]:
        """The hash of each row of ``ids`` that exists."""
        ...


@dataclass(frozen=True)
class Verification:
    checkpoints: int
    events: int
    findings: list[cp.Finding]


@dataclass
class AuditAnchor:
    chain: ChainHead
    store: ObjectStore
    key: bytes
    clock: Callable[[], datetime]
    _last: tuple[int, int, str] | None = field(default=None, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def checkpoint(self) -> cp.Checkpoint | None:
        """Write a checkpoint of the head now (None: empty log, or unchanged since the
        last one this process wrote)."""
        with self._lock:
            head = self.chain.head()
            if head is None or head == self._last:
                return None
            checkpoint = cp.make(*head, at=self.clock())
            name = f"checkpoint-{checkpoint.at.replace(':', '')}-{head[0]:012d}{SUFFIX}"
            self.store.put(name, io.BytesIO(cp.sign(checkpoint, self.key)))
            self._last = head
            log.info("audit checkpoint %s: %d events, head %s", name, head[0], head[2][:16])
            return checkpoint

    def checkpoint_quietly(self) -> None:
        """``checkpoint``, logging a failure instead of raising (at shutdown)."""
        try:
            self.checkpoint()
        except Exception:  # a store that is down must not stop the shutdown
            log.exception("the audit checkpoint at shutdown failed")

    def verify(self) -> Verification:
        head = self.chain.head()
        count = head[0] if head else 0
        read: list[tuple[str, cp.Checkpoint]] = []
        findings: list[cp.Finding] = []
        for info in self.store.list():
            if not info.key.endswith(SUFFIX):
                continue
            try:
                read.append((info.key, cp.read(b"".join(self.store.get(info.key)),
                                               self.key)))
            except cp.BadCheckpoint as exc:
                findings.append(cp.Finding(info.key, str(exc)))
        hashes = self.chain.hashes({c.head_id for _, c in read})
        for name, checkpoint in read:
            findings += cp.compare(checkpoint, name, count, hashes.get(checkpoint.head_id))
        if count and not read:
            findings.append(cp.Finding("(store)", f"the log has {count} events but no "
                                                  "checkpoint verifies"))
        return Verification(checkpoints=len(read), events=count, findings=findings)
