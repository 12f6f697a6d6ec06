"""TES tasks beside runs: a job's kind and a task's name (``GET /tasks?name_prefix=``)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 17:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=8), nullable=False,
                                      server_default="run"))
        batch_op.add_column(sa.Column("name", sa.String(length=255), nullable=False,
                                      server_default=""))
    op.create_index("ix_runs_kind_seq", "runs", ["kind", "seq"])


def downgrade() -> None:
    op.drop_index("ix_runs_kind_seq", table_name="runs")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("name")
        batch_op.drop_column("kind")
