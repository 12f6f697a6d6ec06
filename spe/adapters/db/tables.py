"""SQLAlchemy 2 table definitions. Alembic migrations in ``migrations/`` create them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String
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

    __table_args__ = (
        Index("ix_runs_owner_seq", "owner_sub", "seq"),
        Index("ix_runs_state", "state"),
        Index("ix_runs_project_seq", "project", "seq"),
    )


class RunTagRow(Base):
    __tablename__ = "run_tags"

    run_seq: Mapped[int] = mapped_column(ForeignKey("runs.seq", ondelete="CASCADE"),
                                         primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256), nullable=False)

    __table_args__ = (Index("ix_run_tags_key_value", "key", "value"),)


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

    __table_args__ = (Index("ix_audit_action_at", "action", "at"),)
