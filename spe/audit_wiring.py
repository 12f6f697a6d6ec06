"""Wires the audit anchor (``spe.services.audit_anchor``) from the settings: the checkpoint
store (a directory or s3:// location, opened through the store factory), the signing key
file, and the SQL chain head."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from spe.adapters.db.audit_chain import SqlChainHead
from spe.adapters.keyfile import load_or_create_key
from spe.config import Settings
from spe.domain.ports import ObjectStore
from spe.services.audit_anchor import AuditAnchor

CHECKPOINT_DIR = "audit-checkpoints"
CHECKPOINT_KEY = "audit-checkpoint.key"


def checkpoint_location(settings: Settings) -> str:
    return settings.audit_checkpoint_location or str(settings.home / CHECKPOINT_DIR)


def checkpoint_key_file(settings: Settings) -> Path:
    return settings.audit_checkpoint_key_file or settings.home / CHECKPOINT_KEY


def audit_anchor(settings: Settings, stores: Callable[[str], ObjectStore],
                 sessions: sessionmaker[Session]) -> AuditAnchor:
    location = checkpoint_location(settings)
    if "://" not in location:  # a directory: made private on first use
        Path(location).mkdir(mode=0o700, parents=True, exist_ok=True)
    key = load_or_create_key(checkpoint_key_file(settings))
    return AuditAnchor(SqlChainHead(sessions), stores(location), key,
                       clock=lambda: datetime.now(UTC))
