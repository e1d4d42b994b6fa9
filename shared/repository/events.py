"""The outbox's statements: which events are due, and a delivery's claim, success or retry.

A delivery is claimed with one guarded UPDATE that pushes ``next_attempt_at`` a lease into the
future and counts the attempt: two workers (the fast path and the sweep) cannot send the same
event at once, and a worker that dies mid-send leaves it due again when the lease ends, so it
is sent again (at least once; receivers deduplicate on ``event_id``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from shared.db import get_engine, single_statement
from shared.models import EventStatus, RenderEvent, utcnow

_table = RenderEvent.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation
_c = _table.c

_CLAIM = (
    sa.update(_table)
    .where(
        _c.id == sa.bindparam("eid"),
        _c.status == EventStatus.PENDING.value,
        _c.next_attempt_at <= sa.bindparam("now"),
    )
    .values(next_attempt_at=sa.bindparam("lease_until"), attempts=_c.attempts + 1)
    .returning(*_c)
)


def due_event_ids(limit: int = 500) -> list[str]:
    """Pending deliveries whose time has come, oldest first."""
    stmt = (
        select(RenderEvent.id)
        .where(RenderEvent.status == EventStatus.PENDING, RenderEvent.next_attempt_at <= utcnow())
        .order_by(col(RenderEvent.next_attempt_at))
        .limit(limit)
    )
    with Session(get_engine()) as session:
        return list(session.exec(stmt))


def claim_delivery(event_row_id: str, lease_s: float) -> dict[str, Any] | None:
    """The event, if it is due and now ours to send for ``lease_s``; else None."""
    now = utcnow()
    params = {"eid": event_row_id, "now": now, "lease_until": now + timedelta(seconds=lease_s)}
    with single_statement() as conn:
        row = conn.execute(_CLAIM, params).mappings().first()
    return dict(row) if row is not None else None


def _settle(event_row_id: str, attempts: int, **values: Any) -> bool:
    """Record a delivery's result, guarded by the attempt that claimed it."""
    stmt = (
        sa.update(_table)
        .where(
            _c.id == event_row_id,
            _c.attempts == attempts,
            _c.status == EventStatus.PENDING.value,
        )
        .values(**values)
    )
    with single_statement() as conn:
        return bool(conn.execute(stmt).rowcount)


def mark_delivered(event_row_id: str, attempts: int) -> bool:
    return _settle(
        event_row_id,
        attempts,
        status=EventStatus.DELIVERED.value,
        delivered_at=utcnow(),
        last_error=None,
    )


def schedule_retry(event_row_id: str, attempts: int, at: datetime, error: str) -> bool:
    return _settle(event_row_id, attempts, next_attempt_at=at, last_error=error[:4000])


def mark_dead(event_row_id: str, attempts: int, error: str) -> bool:
    return _settle(event_row_id, attempts, status=EventStatus.DEAD.value, last_error=error[:4000])


def replay_dead(event_row_ids: Sequence[str]) -> int:
    """Dead deliveries become due again, with a fresh attempt count; returns how many."""
    if not event_row_ids:
        return 0
    stmt = (
        sa.update(_table)
        .where(_c.id.in_(list(event_row_ids)), _c.status == EventStatus.DEAD.value)
        .values(status=EventStatus.PENDING.value, attempts=0, next_attempt_at=utcnow())
    )
    with single_statement() as conn:
        return int(conn.execute(stmt).rowcount)


def event_counts() -> dict[str, int]:
    counts = {status.value: 0 for status in EventStatus}
    stmt = select(RenderEvent.status, func.count()).group_by(RenderEvent.status)
    with Session(get_engine()) as session:
        for status, n in session.exec(stmt):
            counts[str(status)] = n
    return counts


def list_events(
    *, status: EventStatus | None = None, render_id: str | None = None, limit: int = 100
) -> list[RenderEvent]:
    stmt = select(RenderEvent)
    if status is not None:
        stmt = stmt.where(RenderEvent.status == status)
    if render_id is not None:
        stmt = stmt.where(RenderEvent.render_id == render_id)
    stmt = stmt.order_by(col(RenderEvent.created_at).desc()).limit(limit)
    with Session(get_engine()) as session:
        return list(session.exec(stmt))
