"""index renders by creation time and by error code (the console's render search)

The search lists renders newest first with no filter or with only an error code; without
these, PostgreSQL sorts the whole table for each page (275 ms median at 100,000 renders,
docs/performance.md, "Web console").

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("render", schema=None) as batch_op:
        batch_op.create_index("ix_render_created", ["created_at", "id"], unique=False)
        batch_op.create_index("ix_render_error_created", ["error_code", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("render", schema=None) as batch_op:
        batch_op.drop_index("ix_render_error_created")
        batch_op.drop_index("ix_render_created")
