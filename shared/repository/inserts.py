"""Creating ``pending`` rows (one statement for a whole batch) and naming each attempt's output."""

from __future__ import annotations

import json
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
    # .values(rows) would compile a new giant statement for every batch.
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


# PostgreSQL: the whole batch as one array per column, unnested into rows. The statement text
# and its 16 parameters are the same for any batch size, so psycopg parses it once (it only
# caches statements under 4,096 bytes and 50 parameters: SQLAlchemy's multi-row VALUES for a
# 200-render batch has 4,800 and was parsed again for every batch), and any batch is one
# statement, one round trip in autocommit.
_TABLE: sa.Table = Render.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation
_PG_INSERT_SQL = """
    INSERT INTO render (id, user_id, generation_id, status, progress, composition, input_props,
        width, height, fps, duration_in_frames, codec, idempotency_key, notify, callback_url,
        error_history, attempts, out_name, start_requests, poll_failures, throttle_restarts,
        created_at, updated_at)
    SELECT u.id, u.user_id, u.generation_id, 'pending', 0, u.composition, u.input_props::json,
        u.width, u.height, u.fps, u.duration_in_frames, u.codec, u.idempotency_key,
        u.notify::json, u.callback_url, '[]'::json, 1, u.out_name, 0, 0, 0, :now, :now
    FROM unnest(CAST(:ids AS text[]), CAST(:user_ids AS text[]), CAST(:generation_ids AS text[]),
        CAST(:compositions AS text[]), CAST(:input_props AS text[]), CAST(:widths AS int[]),
        CAST(:heights AS int[]), CAST(:fpss AS int[]), CAST(:durations AS int[]),
        CAST(:codecs AS text[]), CAST(:idempotency_keys AS text[]), CAST(:notifies AS text[]),
        CAST(:callback_urls AS text[]), CAST(:out_names AS text[]))
        AS u(id, user_id, generation_id, composition, input_props, width, height, fps,
             duration_in_frames, codec, idempotency_key, notify, callback_url, out_name)
    ON CONFLICT DO NOTHING
    RETURNING """
# Named in the model's order: a textual statement's columns are matched by position.
_RETURNING = ", ".join(c.name for c in _TABLE.columns)
_PG_INSERT = sa.text(_PG_INSERT_SQL + _RETURNING).columns(*_TABLE.columns)


def _pg_params(items: Sequence[tuple[str, RenderRequest]], now: datetime) -> dict[str, Any]:
    reqs = [req for _, req in items]
    return {
        "now": now,
        "ids": [rid for rid, _ in items],
        "user_ids": [r.user_id for r in reqs],
        "generation_ids": [r.generation_id for r in reqs],
        "compositions": [r.composition for r in reqs],
        "input_props": [json.dumps(r.input_props) for r in reqs],
        "widths": [r.width for r in reqs],
        "heights": [r.height for r in reqs],
        "fpss": [r.fps for r in reqs],
        "durations": [r.duration_in_frames for r in reqs],
        "codecs": [r.codec for r in reqs],
        "idempotency_keys": [r.idempotency_key for r in reqs],
        "notifies": [json.dumps(r.notify.model_dump()) if r.notify else None for r in reqs],
        "callback_urls": [r.callback_url for r in reqs],
        "out_names": [out_name(rid, 1, req.codec) for rid, req in items],
    }


def _insert(items: Sequence[tuple[str, RenderRequest]], now: datetime) -> dict[str, Render]:
    """Insert what does not conflict; the created renders by id."""
    engine = get_engine()
    if engine.dialect.name == "postgresql":
        with single_statement() as conn, Session(bind=conn) as session:
            stmt = select(Render).from_statement(_PG_INSERT)
            inserted = session.scalars(stmt, _pg_params(items, now))
            return {render.id: render for render in inserted}
    rows = [_row_values(rid, req, now) for rid, req in items]
    # Executed with a list of rows: SQLAlchemy batches them ("insertmanyvalues") with a cached
    # statement. A batch bigger than it sends in one INSERT is several statements, which must
    # share a transaction: all rows or none.
    one_statement = len(rows) <= engine.dialect.insertmanyvalues_page_size
    scope = single_statement() if one_statement else engine.begin()
    with scope as conn, Session(bind=conn) as session:
        return {render.id: render for render in session.scalars(_INSERT[engine.dialect.name], rows)}


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
    # The created rows come back whole, so only conflicts are read afterwards: the common case
    # costs one round trip (autocommit on PostgreSQL).
    created = _insert(items, utcnow())
    engine = get_engine()
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
