"""work claims on release requests (the reconciler carries on checks and releases), and
indexes for the paged listing

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("release_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("work_claim", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("work_claim_until", sa.DateTime(timezone=True),
                                      nullable=True))
    op.create_index("ix_release_requests_state", "release_requests", ["state"])
    op.create_index("ix_release_requests_created_id", "release_requests",
                    ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_release_requests_created_id", table_name="release_requests")
    op.drop_index("ix_release_requests_state", table_name="release_requests")
    with op.batch_alter_table("release_requests", schema=None) as batch_op:
        batch_op.drop_column("work_claim_until")
        batch_op.drop_column("work_claim")
