"""SQLAlchemy 2 table definitions. Alembic migrations in ``migrations/`` create them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "runs"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    owner_sub: Mapped[str] = mapped_column(String(255), nullable=False)
    owner_name: Mapped[str] = mapped_column(String(255), nullable=False)
    project: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    workflow_id: Mapped[str] = mapped_column(String(64), nullable=False)
    workflow_version: Mapped[str] = mapped_column(String(64), nullable=False)
    bundle_digest: Mapped[str] = mapped_column(String(80), nullable=False)
    engine: Mapped[str] = mapped_column(String(32), nullable=False)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    engine_options: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    handle: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    cmd: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    system_logs: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    outputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    purged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # who is finishing the run (copying its outputs), and until when that claim holds
    finish_claim: Mapped[str | None] = mapped_column(String(64))
    finish_claim_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # a WES run or a TES task (whose TES document is in ``request``), and a task's name
    kind: Mapped[str] = mapped_column(String(8), nullable=False, default="run",
                                      server_default="run")
    name: Mapped[str] = mapped_column(String(255), nullable=False, default="",
                                      server_default="")

    __table_args__ = (
        Index("ix_runs_owner_seq", "owner_sub", "seq"),
        # a caller's runs (or tasks), of one state or any, newest first (listings)
        Index("ix_runs_owner_kind_seq", "owner_sub", "kind", "seq"),
        Index("ix_runs_owner_kind_state_seq", "owner_sub", "kind", "state", "seq"),
        Index("ix_runs_kind_seq", "kind", "seq"),
        Index("ix_runs_state", "state"),
        Index("ix_runs_project_seq", "project", "seq"),
    )


class SubmissionKeyRow(Base):
    """An ``Idempotency-Key`` of a submission: the run it made and a digest of the request,
    per caller; written in the run's own transaction."""

    __tablename__ = "submission_keys"

    owner_sub: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_digest: Mapped[str] = mapped_column(String(80), nullable=False)
    run_id: Mapped[str] = mapped_column(String(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (Index("ix_submission_keys_created_at", "created_at"),)


class RunTagRow(Base):
    __tablename__ = "run_tags"

    run_seq: Mapped[int] = mapped_column(ForeignKey("runs.seq", ondelete="CASCADE"),
                                         primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256), nullable=False)

    __table_args__ = (Index("ix_run_tags_key_value_seq", "key", "value", "run_seq"),)


class TaskRow(Base):
    __tablename__ = "task_logs"

    run_seq: Mapped[int] = mapped_column(ForeignKey("runs.seq", ondelete="CASCADE"),
                                         primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[str] = mapped_column(String(128), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    cmd: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    system_logs: Mapped[list[str]] = mapped_column(JSON, nullable=False, default=list)

    __table_args__ = (Index("ix_task_logs_run_task", "run_seq", "task_id", unique=True),)


class AuditRow(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    actor: Mapped[str] = mapped_column(String(255), nullable=False)
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    target: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False, default=dict)
    # the hash chain (spe.adapters.db.audit_chain): the previous row's hash, and this row's
    prev_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    hash: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (
        Index("ix_audit_action_at", "action", "at"),
        Index("ix_audit_events_hash", "hash", unique=True),
    )


class ReleaseRequestRow(Base):
    __tablename__ = "release_requests"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32), nullable=False)
    project: Mapped[str] = mapped_column(String(128), nullable=False)
    requester_sub: Mapped[str] = mapped_column(String(255), nullable=False)
    requester_name: Mapped[str] = mapped_column(String(255), nullable=False)
    justification: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False)
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False)
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON, nullable=False, default=list)
    round: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    crate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # who is doing the service's step (checks, release), and until when that claim holds
    work_claim: Mapped[str | None] = mapped_column(String(64))
    work_claim_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_release_requests_project_state", "project", "state"),
        Index("ix_release_requests_requester", "requester_sub"),
        Index("ix_release_requests_state", "state"),
        Index("ix_release_requests_created_id", "created_at", "id"),
    )


class ReleaseVoteRow(Base):
    __tablename__ = "release_votes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("release_requests.id",
                                                       ondelete="CASCADE"), nullable=False)
    round: Mapped[int] = mapped_column(Integer, nullable=False)
    reviewer_sub: Mapped[str] = mapped_column(String(255), nullable=False)
    reviewer_name: Mapped[str] = mapped_column(String(255), nullable=False)
    path: Mapped[str] = mapped_column(String(1024), nullable=False)
    decision: Mapped[str] = mapped_column(String(20), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    __table_args__ = (
        Index("ux_release_votes_once", "request_id", "round", "reviewer_sub", "path",
              unique=True),
    )
