"""index renders by status and completion time (failures per hour, replay --since)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("render", schema=None) as batch_op:
        batch_op.create_index("ix_render_status_completed", ["status", "completed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("render", schema=None) as batch_op:
        batch_op.drop_index("ix_render_status_completed")
