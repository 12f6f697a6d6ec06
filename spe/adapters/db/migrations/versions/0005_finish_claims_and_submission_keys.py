"""finish claims on runs, and submission idempotency keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05 14:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("finish_claim", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("finish_claim_until", sa.DateTime(timezone=True),
                                      nullable=True))
    op.create_table(
        "submission_keys",
        sa.Column("owner_sub", sa.String(length=255), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_digest", sa.String(length=80), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("owner_sub", "key"),
    )
    op.create_index("ix_submission_keys_created_at", "submission_keys", ["created_at"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_submission_keys_created_at", table_name="submission_keys")
    op.drop_table("submission_keys")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("finish_claim_until")
        batch_op.drop_column("finish_claim")
