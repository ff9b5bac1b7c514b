"""pending_updates.claimed_by / lease_until: which bot replica answers an update, and until when, so several
replicas can share one inbox and a dead replica's update passes to another

Revision ID: 0004_update_leases
Revises: 0003_update_inbox
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_update_leases'
down_revision = '0003_update_inbox'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('pending_updates', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('pending_updates', schema=None) as batch_op:
        batch_op.drop_column('lease_until')
        batch_op.drop_column('claimed_by')
