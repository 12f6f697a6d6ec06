"""Listing indexes: a tag's runs newest first, and a caller's runs (or tasks) newest first

``run_tags (key, value, run_seq)`` lets a listing filtered by a tag walk that tag's runs in
``seq`` order (it replaces ``(key, value)``, its prefix). ``runs (owner_sub, kind, seq)``
and ``runs (owner_sub, kind, state, seq)`` let a listing of a caller's WES runs or TES
tasks, of any state or of one, walk exactly those in ``seq`` order.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 20:00:00
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_run_tags_key_value_seq", "run_tags", ["key", "value", "run_seq"])
    op.drop_index("ix_run_tags_key_value", table_name="run_tags")
    op.create_index("ix_runs_owner_kind_seq", "runs", ["owner_sub", "kind", "seq"])
    op.create_index("ix_runs_owner_kind_state_seq", "runs",
                    ["owner_sub", "kind", "state", "seq"])


def downgrade() -> None:
    op.drop_index("ix_runs_owner_kind_state_seq", table_name="runs")
    op.drop_index("ix_runs_owner_kind_seq", table_name="runs")
    op.create_index("ix_run_tags_key_value", "run_tags", ["key", "value"])
    op.drop_index("ix_run_tags_key_value_seq", table_name="run_tags")
