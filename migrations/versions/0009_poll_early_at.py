"""a render's early poll (its predicted end), taken by the sweep instead of a delayed message

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("render", schema=None) as batch_op:
        batch_op.add_column(sa.Column("poll_early_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("render", schema=None) as batch_op:
        batch_op.drop_column("poll_early_at")
