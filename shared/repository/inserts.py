"""Creating ``pending`` rows (one statement for a whole batch) and naming each attempt's output."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from shared.db import get_engine, single_statement
from shared.errors import RenderNotFound
from shared.models import Render, RenderStatus, utcnow
from shared.render_request import CODEC_EXTENSIONS, RenderRequest

_INSERT = {
    # Executed with a list of rows: SQLAlchemy batches them ("insertmanyvalues") with a cached
    # statement, where .values(rows) would compile a new giant statement for every batch.
    name: module.insert(Render).on_conflict_do_nothing().returning(Render)
    for name, module in (("postgresql", postgresql), ("sqlite", sqlite))
}


def _row_values(render_id: str, request: RenderRequest, now: datetime) -> dict[str, Any]:
    return {
        "id": render_id,
        "user_id": request.user_id,
        "generation_id": request.generation_id,
        "status": RenderStatus.PENDING,
        "progress": 0.0,
        "composition": request.composition,
        "input_props": request.input_props,
        "width": request.width,
        "height": request.height,
        "fps": request.fps,
        "duration_in_frames": request.duration_in_frames,
        "codec": request.codec,
        "idempotency_key": request.idempotency_key,
        "notify": request.notify.model_dump() if request.notify else None,
        "callback_url": request.callback_url,
        "error_history": [],
        "attempts": 1,
        "out_name": out_name(render_id, 1, request.codec),
        "start_requests": 0,
        "poll_failures": 0,
        "throttle_restarts": 0,
        "created_at": now,
        "updated_at": now,
    }


def insert_pending_many(
    items: Sequence[tuple[str, RenderRequest]],
) -> list[tuple[Render, bool]]:
    """Create ``pending`` rows; return each stored render and whether this call created it.

    Conflicts (same id, or same idempotency key) are not errors: the existing row is returned
    with ``created=False``. That makes a redelivered message and a repeated producer call
    both harmless.
    """
    if not items:
        return []
    now = utcnow()
    rows = [_row_values(rid, req, now) for rid, req in items]
    engine = get_engine()
    # The created rows come back whole, so only conflicts are read afterwards: the common case
    # costs one round trip (autocommit on PostgreSQL). A batch bigger than SQLAlchemy sends in
    # one INSERT is several statements, which must share a transaction: all rows or none.
    one_statement = len(rows) <= engine.dialect.insertmanyvalues_page_size
    scope = single_statement() if one_statement else engine.begin()
    with scope as conn, Session(bind=conn) as session:
        inserted = session.scalars(_INSERT[engine.dialect.name], rows)
        created = {render.id: render for render in inserted}
    conflicts = [(rid, req) for rid, req in items if rid not in created]
    by_id: dict[str, Render] = {}
    by_key: dict[str, Render] = {}
    if conflicts:
        ids = [rid for rid, _ in conflicts]
        keys = [req.idempotency_key for _, req in conflicts if req.idempotency_key]
        condition: sa.ColumnElement[bool] = col(Render.id).in_(ids)
        if keys:
            condition = sa.or_(condition, col(Render.idempotency_key).in_(keys))
        with Session(engine) as session:
            stored = list(session.exec(select(Render).where(condition)))
        by_id = {r.id: r for r in stored}
        by_key = {r.idempotency_key: r for r in stored if r.idempotency_key}
    results: list[tuple[Render, bool]] = []
    for rid, req in items:
        if rid in created:
            results.append((created[rid], True))
            continue
        row = (by_key.get(req.idempotency_key) if req.idempotency_key else None) or by_id.get(rid)
        if row is None:
            raise RenderNotFound(rid)
        results.append((row, False))
    return results


def insert_pending(render_id: str, request: RenderRequest) -> tuple[Render, bool]:
    return insert_pending_many([(render_id, request)])[0]


def out_name(render_id: str, attempt: int, codec: str) -> str:
    """Deterministic output key per render attempt.

    A repeated ``start`` for the same attempt overwrites the same object instead of producing
    a second file, and a start with an unknown outcome can be found again by this name.
    """
    return f"{render_id}-{attempt}.{CODEC_EXTENSIONS.get(codec, 'mp4')}"
