"""plans (budget weight, in-flight cap, priority class) and the Lambda pool of each render

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("user_limits", schema=None) as batch_op:
        batch_op.alter_column(
            "render_rate_limit", existing_type=sa.String(length=200), nullable=True
        )
        batch_op.add_column(sa.Column("weight", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("max_in_flight", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=True))
    with op.batch_alter_table("render", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lambda_pool", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("render", schema=None) as batch_op:
        batch_op.drop_column("lambda_pool")
    op.execute("DELETE FROM user_limits WHERE render_rate_limit IS NULL")
    with op.batch_alter_table("user_limits", schema=None) as batch_op:
        batch_op.drop_column("priority")
        batch_op.drop_column("max_in_flight")
        batch_op.drop_column("weight")
        batch_op.alter_column(
            "render_rate_limit", existing_type=sa.String(length=200), nullable=False
        )
