"""audit hash chain: prev_hash and hash on every audit event

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:40:00

Existing rows are chained in id order (the first row's prev_hash is 64 zeros), with the
same hash function the service writes and ``spe audit verify`` checks.
"""
import sqlalchemy as sa
from alembic import op

from spe.adapters.db.audit_chain import GENESIS, chain_hash

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_events = sa.table(
    'audit_events',
    sa.column('id', sa.Integer()), sa.column('at', sa.DateTime(timezone=True)),
    sa.column('action', sa.String()), sa.column('actor', sa.String()),
    sa.column('outcome', sa.String()), sa.column('target', sa.String()),
    sa.column('details', sa.JSON()), sa.column('prev_hash', sa.String()),
    sa.column('hash', sa.String()),
)


def _backfill() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(_events.c.id, _events.c.at, _events.c.action,
                                  _events.c.actor, _events.c.outcome, _events.c.target,
                                  _events.c.details).order_by(_events.c.id)).all()
    prev = GENESIS
    for row in rows:
        digest = chain_hash(prev, id=row.id, at=row.at, action=row.action, actor=row.actor,
                            outcome=row.outcome, target=row.target, details=row.details)
        conn.execute(_events.update().where(_events.c.id == row.id)
                     .values(prev_hash=prev, hash=digest))
        prev = digest


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
    _backfill()
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index('ix_audit_events_hash', ['hash'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_hash')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
