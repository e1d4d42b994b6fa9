"""The poller's statements: which renders to poll, progress readings, and completing or failing
a poll batch (one transaction, every UPDATE still guarded by ``status = 'rendering'``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col, select

from shared import events, timeline
from shared.db import get_autocommit_engine, get_engine, single_statement
from shared.models import Render, RenderStatus, utcnow
from shared.repository.table import _c, _now, _status_is, _table
from shared.repository.transitions import _cas

_PROGRESS = (
    sa.update(_table)
    .where(_c.id == sa.bindparam("rid"), _status_is(RenderStatus.RENDERING))
    .values(
        progress=sa.case((_c.progress < sa.bindparam("p"), sa.bindparam("p")), else_=_c.progress),
        cost_usd=sa.bindparam("cost"),
        last_polled_at=_now,
        poll_failures=0,
        poll_early_at=sa.bindparam("early", type_=sa.DateTime()),
        updated_at=_now,
    )
)
_COMPLETE = (
    sa.update(_table)
    .where(_c.id == sa.bindparam("rid"), _status_is(RenderStatus.RENDERING))
    .values(
        status=RenderStatus.COMPLETE,
        progress=1.0,
        output_url=sa.bindparam("url"),
        output_size_bytes=sa.bindparam("size"),
        cost_usd=sa.bindparam("cost"),
        completed_at=_now,
        last_polled_at=_now,
        updated_at=_now,
    )
    .returning(*events.RETURNING)
)
_FAIL_RENDERING = (
    sa.update(_table)
    .where(_c.id == sa.bindparam("rid"), _status_is(RenderStatus.RENDERING))
    .values(
        status=RenderStatus.FAILED,
        error_code=sa.bindparam("code"),
        error_message=sa.bindparam("message"),
        cost_usd=sa.func.coalesce(sa.bindparam("cost", type_=sa.Float), _c.cost_usd),
        completed_at=_now,
        last_polled_at=_now,
        updated_at=_now,
    )
    .returning(*events.RETURNING)
)


# PostgreSQL: a batch's completions in one statement, one array per column unnested into rows
# (the same text for any batch size, so it is compiled and parsed once; one UPDATE per render
# cost a round trip and SQLAlchemy's per-statement work each). Same guard as ``_COMPLETE``.
_PG_COMPLETE_MANY_SQL = """
    UPDATE render SET status = 'complete', progress = 1.0, output_url = v.url,
        output_size_bytes = v.size, cost_usd = v.cost, completed_at = :now,
        last_polled_at = :now, updated_at = :now
    FROM unnest(CAST(:ids AS text[]), CAST(:urls AS text[]), CAST(:sizes AS bigint[]),
        CAST(:costs AS double precision[])) AS v(id, url, size, cost)
    WHERE render.id = v.id AND render.status || '' = 'rendering'
    RETURNING """
_RETURNING_SQL = ", ".join(f"render.{column.name}" for column in events.RETURNING)
_PG_COMPLETE_MANY = sa.text(_PG_COMPLETE_MANY_SQL + _RETURNING_SQL).columns(*events.RETURNING)


def _complete_all(
    conn: sa.Connection, completions: Sequence[Completion], now: datetime
) -> list[Any]:
    """``rendering -> complete`` for every completion; the rows moved (``events.RETURNING``)."""
    if not completions:
        return []
    if conn.dialect.name == "postgresql":
        params = {
            "ids": [c.render_id for c in completions],
            "urls": [c.output_url for c in completions],
            "sizes": [c.output_size_bytes for c in completions],
            "costs": [c.cost_usd for c in completions],
            "now": now,
        }
        return list(conn.execute(_PG_COMPLETE_MANY, params).mappings())
    rows = []
    for done in completions:
        params = {
            "rid": done.render_id,
            "url": done.output_url,
            "size": done.output_size_bytes,
            "cost": done.cost_usd,
            "now": now,
        }
        if row := conn.execute(_COMPLETE, params).mappings().first():
            rows.append(row)
    return rows


# --- progress ------------------------------------------------------------------------------


class ProgressReading(NamedTuple):
    """A progress reading to store."""

    render_id: str
    progress: float
    cost_usd: float | None
    #: When to poll again before the regular interval (the predicted end), or None.
    poll_early_at: datetime | None = None


def record_progress_many(readings: Sequence[ProgressReading]) -> None:
    """Store a batch of progress readings in one executemany UPDATE.

    A sweep reads every render in flight; one statement per batch instead of one per render
    is what keeps the database from being the ceiling of a 10,000-render sweep.
    """
    if not readings:
        return
    now = utcnow()
    rows = [
        {
            "rid": r.render_id,
            "p": min(max(r.progress, 0.0), 1.0),
            "cost": r.cost_usd,
            "early": r.poll_early_at,
            "now": now,
        }
        for r in readings
    ]
    steps = [(r.render_id, "progress", {"progress": round(r.progress, 4)}) for r in readings]
    with single_statement() as conn:  # each reading stands alone: no transaction around them
        conn.execute(_PROGRESS, rows)
    timeline.record(steps)  # readings, not moves: a step of a render just finished is harmless


class Completion(NamedTuple):
    render_id: str
    output_url: str
    output_size_bytes: int | None
    cost_usd: float | None


class Failure(NamedTuple):
    render_id: str
    code: str
    message: str
    cost_usd: float | None


def finish_many(
    completions: Sequence[Completion], failures: Sequence[Failure], *, via: str = "poll"
) -> set[str]:
    """``rendering -> complete`` and ``rendering -> failed`` for a poll batch (or a webhook:
    ``via``), in one transaction with their notification events and timeline steps; every
    UPDATE is still guarded by ``status = 'rendering'``. Returns the ids this call moved (a
    render another process moved first is left alone)."""
    if not completions and not failures:
        return set()
    now = utcnow()
    completions_by_id = {done.render_id: done for done in completions}
    moved: set[str] = set()
    terminal: list[Any] = []
    steps: list[tuple[str, str, dict[str, Any]]] = []
    with get_engine().begin() as conn:
        for row in _complete_all(conn, completions, now):
            done = completions_by_id[row["id"]]
            moved.add(done.render_id)
            terminal.append(row)
            steps.append((done.render_id, "complete", {"via": via, "cost_usd": done.cost_usd}))
        for failed in failures:
            params = {
                "rid": failed.render_id,
                "code": failed.code,
                "message": failed.message[:4000],
                "cost": failed.cost_usd,
                "now": now,
            }
            if row := conn.execute(_FAIL_RENDERING, params).mappings().first():
                moved.add(failed.render_id)
                terminal.append(row)
                detail = {"via": via, "error_code": failed.code, "message": failed.message[:300]}
                steps.append((failed.render_id, "failed", detail))
        timeline.append_many(conn, steps)
        recorded = events.record(conn, terminal)
    events.announce(recorded)
    return moved


def record_poll_failure(render_id: str) -> int | None:
    """Count a failed progress call; returns the new consecutive-failure count."""
    row = _cas(
        render_id,
        RenderStatus.RENDERING,
        None,
        # A failed look at its predicted end is not repeated every sweep: regular polls now.
        {
            "poll_failures": Render.poll_failures + 1,
            "last_polled_at": utcnow(),
            "poll_early_at": None,
        },
    )
    return None if row is None else row.poll_failures


def rendering_ids(
    due_before: datetime | None = None, early_before: datetime | None = None
) -> list[str]:
    """Renders to poll, least recently polled first: every ``rendering`` one, and cancelled
    ones whose functions have not been seen to stop yet (their budget is held until then).

    With ``due_before``, only those last polled (or, never polled, started) at or before it:
    each sweep then polls the renders that have waited an interval, not all of them at once.
    With ``early_before`` too, also the ``rendering`` ones whose early poll (their predicted
    end) is at or before it.
    """
    last_seen = sa.func.coalesce(col(Render.last_polled_at), col(Render.started_at))
    in_flight = select(Render.id, col(Render.last_polled_at)).where(
        Render.status == RenderStatus.RENDERING
    )
    stopping = select(Render.id, col(Render.last_polled_at)).where(
        Render.status == RenderStatus.CANCELLED,
        col(Render.stopped_at).is_(None),
        col(Render.lambda_render_id).is_not(None),
    )
    if due_before is not None:
        regular_due = sa.or_(last_seen <= due_before, last_seen.is_(None))
        early_due = (
            col(Render.poll_early_at) <= early_before if early_before is not None else sa.false()
        )
        in_flight = in_flight.where(sa.or_(regular_due, early_due))
        stopping = stopping.where(regular_due)
    ids: list[tuple[str, datetime | None]] = []
    with Session(get_engine()) as session:
        for stmt in (in_flight, stopping):
            ids += [(rid, polled) for rid, polled in session.exec(stmt)]
    ids.sort(key=lambda item: (item[1] is not None, item[1] or datetime.min))
    return [rid for rid, _ in ids]


def next_poll_at(interval_s: float) -> datetime | None:
    """When the next sweep has anything to do: one interval after the least recently polled
    render in flight (or started, if never polled), or a render's early poll if sooner."""
    last_seen = sa.func.coalesce(
        col(Render.last_polled_at), col(Render.started_at), type_=sa.DateTime()
    )
    oldest = sa.func.min(last_seen, type_=sa.DateTime())
    earliest = sa.func.min(col(Render.poll_early_at), type_=sa.DateTime())
    rendering = select(oldest, earliest).where(Render.status == RenderStatus.RENDERING)
    stopping = select(oldest, sa.null()).where(
        Render.status == RenderStatus.CANCELLED,
        col(Render.stopped_at).is_(None),
        col(Render.lambda_render_id).is_not(None),
    )
    found: list[datetime] = []
    with Session(get_engine()) as session:
        for stmt in (rendering, stopping):
            seen, early = session.exec(stmt).one()
            if seen is not None:
                found.append(_aware(seen) + timedelta(seconds=interval_s))
            if early is not None:
                found.append(_aware(early))
    return min(found) if found else None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class PollTarget(NamedTuple):
    """What a poll needs of a render in flight (a plain row: polls are the other hot path)."""

    id: str
    user_id: str
    status: str
    attempts: int
    lambda_render_id: str | None
    lambda_bucket: str | None
    started_at: datetime | None
    throttle_restarts: int
    rate_permit: str | None
    lambda_pool: str | None
    #: The last reading stored, and when (None: never polled): the pace of the last stretch.
    progress: float = 0.0
    last_polled_at: datetime | None = None
    #: The output's name in the bucket (``renders/<lambda_render_id>/<out_name>``).
    out_name: str | None = None


_POLL_TARGETS = sa.select(
    _c.id,
    _c.user_id,
    _c.status,
    _c.attempts,
    _c.lambda_render_id,
    _c.lambda_bucket,
    _c.started_at,
    _c.throttle_restarts,
    _c.rate_permit,
    _c.lambda_pool,
    _c.progress,
    _c.last_polled_at,
    _c.out_name,
).where(
    _c.id.in_(sa.bindparam("ids", expanding=True)),
    sa.or_(
        _status_is(RenderStatus.RENDERING),
        sa.and_(_status_is(RenderStatus.CANCELLED), _c.stopped_at.is_(None)),
    ),
)


def poll_targets(render_ids: Iterable[str]) -> list[PollTarget]:
    """The renders among ``render_ids`` that are still ``rendering``, or cancelled and not
    seen to stop yet."""
    ids = list(render_ids)
    if not ids:
        return []
    # One read in autocommit: no BEGIN before it and no ROLLBACK after it on PostgreSQL.
    with get_autocommit_engine().connect() as conn:
        return [PollTarget._make(row) for row in conn.execute(_POLL_TARGETS, {"ids": ids})]


_STOPPED = (
    sa.update(_table)
    .where(
        _c.id.in_(sa.bindparam("ids", expanding=True)),
        _c.status.in_([RenderStatus.CANCELLED.value, RenderStatus.FAILED.value]),
        _c.stopped_at.is_(None),
    )
    .values(stopped_at=_now, last_polled_at=_now, updated_at=_now)
)
_STILL_STOPPING = (
    sa.update(_table)
    .where(_c.id.in_(sa.bindparam("ids", expanding=True)), _c.stopped_at.is_(None))
    .values(last_polled_at=_now)
)


def mark_stopped(render_ids: Sequence[str]) -> None:
    """Remotion reported that these cancelled renders' functions stopped (or renderq stopped
    waiting for that): their budget may go."""
    if render_ids:
        with single_statement() as conn:
            conn.execute(_STOPPED, {"ids": list(render_ids), "now": utcnow()})


def touch_stopping(render_ids: Sequence[str]) -> None:
    """Cancelled renders still running on Lambda were polled: due again in an interval."""
    if render_ids:
        with single_statement() as conn:
            conn.execute(_STILL_STOPPING, {"ids": list(render_ids), "now": utcnow()})
