"""renders restarted after throttling inside Lambda: restart count and the spent permit

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("render", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("throttle_restarts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("rate_permit", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("render", schema=None) as batch_op:
        batch_op.drop_column("rate_permit")
        batch_op.drop_column("throttle_restarts")
