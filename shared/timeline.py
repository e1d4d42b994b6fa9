"""A render's timeline: the steps of its life, for the console's render page and the API.

Steps are appended by whoever makes them, in the transaction that makes them (``append`` with
the caller's session), so the timeline never claims a step that was rolled back. Reads are by
render, oldest first (index ``ix_render_timeline_render``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from shared.access_models import TimelineEntry
from shared.db import get_engine, single_statement
from shared.models import utcnow

table: sa.Table = TimelineEntry.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation

#: The most steps shown for one render (a render polled for hours has many progress steps).
MAX_ENTRIES = 500


def append(session: Session | sa.Connection, render_id: str, kind: str, **detail: Any) -> None:
    """One step, inside the caller's transaction."""
    append_many(session, [(render_id, kind, detail)])


def append_many(
    session: Session | sa.Connection, steps: Iterable[tuple[str, str, dict[str, Any]]]
) -> None:
    """Several steps in one INSERT (the poller writes a sweep's progress this way)."""
    now = utcnow()
    rows = [
        {"render_id": rid, "kind": kind, "detail": detail, "at": now} for rid, kind, detail in steps
    ]
    if rows:
        session.execute(sa.insert(table), rows)


def record(steps: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
    """Steps that go with no database change of their own (a render admitted to the Lambda
    budget, which lives in Redis), in one INSERT."""
    steps = list(steps)
    if steps:
        with single_statement() as conn:
            append_many(conn, steps)


def entries(render_id: str, *, limit: int = MAX_ENTRIES) -> list[TimelineEntry]:
    """Oldest first: the latest ``limit`` steps."""
    stmt = select(TimelineEntry).where(TimelineEntry.render_id == render_id)
    with Session(get_engine()) as session:
        newest = list(session.exec(stmt.order_by(col(TimelineEntry.id).desc()).limit(limit)))
    return newest[::-1]
