"""pending_updates: platform updates taken in but not yet answered, so the poller can acknowledge them at once

Revision ID: 0003_update_inbox
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_update_inbox'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pending_updates',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('update_id', sa.BigInteger(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('platform', 'update_id')
    )


def downgrade() -> None:
    op.drop_table('pending_updates')
