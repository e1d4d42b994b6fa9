"""What other services and UIs call about renders: queries, and ``cancel``.

The queries never change state (that is ``shared.repository``). They return ``Render``
objects detached from any session, so ``render.model_dump(mode="json")`` works. ``cancel`` is
the one change a producer may ask for: it needs no AWS credentials (a worker stops the
render on Lambda).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlmodel import Session, col, func, select

from shared.db import get_engine
from shared.models import Render, RenderStatus

MAX_PAGE = 500


def get(render_id: str) -> Render | None:
    with Session(get_engine()) as session:
        return session.get(Render, render_id)


def get_by_generation(generation_id: str) -> Render | None:
    """The newest render of a generation (a generation is usually rendered once; replays
    reuse the same row, and a re-render creates a newer one)."""
    stmt = (
        select(Render)
        .where(Render.generation_id == generation_id)
        .order_by(col(Render.created_at).desc(), col(Render.id).desc())
        .limit(1)
    )
    with Session(get_engine()) as session:
        return session.exec(stmt).first()


def list_by_user(user_id: str, *, limit: int = 50, before: datetime | None = None) -> list[Render]:
    """A user's renders, newest first. Page with ``before=<created_at of the last item>``."""
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(Render).where(Render.user_id == user_id)
    if before is not None:
        stmt = stmt.where(Render.created_at < before)
    stmt = stmt.order_by(col(Render.created_at).desc(), col(Render.id).desc()).limit(limit)
    with Session(get_engine()) as session:
        return list(session.exec(stmt))


def list_by_status(
    status: RenderStatus | str, *, limit: int = 100, oldest_first: bool = True
) -> list[Render]:
    order = col(Render.created_at).asc() if oldest_first else col(Render.created_at).desc()
    stmt = select(Render).where(Render.status == RenderStatus(status)).order_by(order).limit(limit)
    with Session(get_engine()) as session:
        return list(session.exec(stmt))


def count_by_status() -> dict[str, int]:
    stmt = select(Render.status, func.count()).group_by(Render.status)
    counts = {s.value: 0 for s in RenderStatus}
    with Session(get_engine()) as session:
        for status, n in session.exec(stmt):
            counts[str(status)] = n
    return counts


def get_many(render_ids: Sequence[str]) -> list[Render]:
    if not render_ids:
        return []
    with Session(get_engine()) as session:
        return list(session.exec(select(Render).where(col(Render.id).in_(render_ids))))


def cancel(render_id: str, reason: str | None = None) -> Render:
    """Cancel a render: a pending one never starts (its message becomes a no-op), a rendering
    one is stopped on Lambda by a worker. Returns the render, now ``cancelled``; cancelling a
    cancelled render returns it unchanged. Raises ``RenderNotFound``, or ``IllegalTransition``
    for a render that is already complete or failed (exactly one terminal state wins)."""
    from shared import repository
    from shared.messages import cancel_render_message, producer_broker

    render, _ = repository.cancel(render_id, reason)
    # A rendering one is stopped on Lambda; a pending one gives up its place in line (a worker
    # owns the Lambda budget).
    producer_broker().enqueue(cancel_render_message(render_id))
    return render
