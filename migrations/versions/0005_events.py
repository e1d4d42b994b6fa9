"""events: the cancelled status, notification targets on renders, the render_event outbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # ``cancelled`` needs no DDL: the status column is a VARCHAR(16) without a constraint.
    with op.batch_alter_table("render", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notify", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("callback_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("cancel_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "render_event",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("render_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("event_id", "channel", name="uq_render_event_channel"),
    )
    op.create_index("ix_render_event_due", "render_event", ["status", "next_attempt_at"])
    op.create_index("ix_render_event_render", "render_event", ["render_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_render_event_render", table_name="render_event")
    op.drop_index("ix_render_event_due", table_name="render_event")
    op.drop_table("render_event")
    with op.batch_alter_table("render", schema=None) as batch_op:
        batch_op.drop_column("stopped_at")
        batch_op.drop_column("cancel_reason")
        batch_op.drop_column("callback_url")
        batch_op.drop_column("notify")
