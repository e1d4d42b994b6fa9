"""State-changing operations on renders. Internal: only workers and operator scripts call these.

Every change is one compare-and-set ``UPDATE ... WHERE id = :id AND status = :expected`` (plus
a claim token where a lease is involved). A rowcount of zero means another process moved the
render first; nothing here reads a row, decides in Python and writes it back without such a
guard, so two deliveries of one message can never both win.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from shared.db import get_engine, session_scope, single_statement
from shared.errors import IllegalTransition, RenderNotFound
from shared.models import LEGAL_TRANSITIONS, Render, RenderStatus, utcnow
from shared.render_request import CODEC_EXTENSIONS, RenderRequest

_table = Render.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation
_c = _table.c
_now: sa.BindParameter[Any] = sa.bindparam("now")


def _status_is(status: RenderStatus) -> sa.ColumnElement[bool]:
    """The status guard of a statement that already names its rows by id.

    Written so no index can serve it (``status || '' = :status``): the row is found by primary
    key and the guard is checked on that row. A plain ``status = :status`` lets PostgreSQL
    choose a ``(status, ...)`` index instead whenever its statistics say the status is rare,
    which is the normal state of this table (most rows are finished) and exactly wrong during
    a burst: each claim then scans every pending render, O(backlog) per statement
    (``tests/test_query_plans.py``).
    """
    return sa.type_coerce(_c.status, sa.String).concat("") == RenderStatus(status).value


# The hot path (claim, start, poll) uses statements built once with bind parameters: building
# a statement costs more Python time than executing a cached one.
_CLAIM_CORE = (
    sa.update(_table)
    .where(
        _c.id == sa.bindparam("rid"),
        _status_is(RenderStatus.PENDING),
        sa.or_(_c.claim_expires_at.is_(None), _c.claim_expires_at < _now),
    )
    .values(
        claim_token=sa.bindparam("token"),
        claim_expires_at=sa.bindparam("expires"),
        start_requests=_c.start_requests + 1,
        updated_at=_now,
    )
    .returning(
        _c.id,
        _c.user_id,
        _c.generation_id,
        _c.composition,
        _c.input_props,
        _c.width,
        _c.height,
        _c.fps,
        _c.duration_in_frames,
        _c.codec,
        _c.idempotency_key,
        _c.out_name,
        _c.start_requests,
        _c.created_at,
    )
)


@dataclass(frozen=True, slots=True)
class Claim:
    """What a worker needs from a render it just claimed: the request and the bookkeeping to
    start it. A plain object instead of an ORM entity: the claim is on the hot path."""

    id: str
    user_id: str
    generation_id: str
    composition: str
    input_props: dict[str, Any]
    width: int
    height: int
    fps: int
    duration_in_frames: int
    codec: str
    idempotency_key: str | None
    out_name: str
    start_requests: int
    created_at: datetime

    def as_request(self) -> RenderRequest:
        return RenderRequest.from_attributes(self)


_RELEASE_VALUES = {
    "claim_token": None,
    "claim_expires_at": None,
    "throttled_until": sa.bindparam("throttled_until"),
    "updated_at": _now,
}
_RELEASE_WHERE = (
    _c.id == sa.bindparam("rid"),
    _status_is(RenderStatus.PENDING),
    _c.claim_token == sa.bindparam("token"),
)
_RELEASE_KEEP_COUNT = sa.update(_table).where(*_RELEASE_WHERE).values(_RELEASE_VALUES)
_RELEASE = (
    sa.update(_table)
    .where(*_RELEASE_WHERE)
    .values(
        {
            **_RELEASE_VALUES,
            "start_requests": sa.case((_c.start_requests > 0, _c.start_requests - 1), else_=0),
        }
    )
)
_MARK_RENDERING = (
    sa.update(_table)
    .where(
        _c.id == sa.bindparam("rid"),
        _status_is(RenderStatus.PENDING),
        _c.claim_token == sa.bindparam("token"),
    )
    .values(
        status=RenderStatus.RENDERING,
        lambda_render_id=sa.bindparam("lambda_render_id"),
        lambda_bucket=sa.bindparam("lambda_bucket"),
        rate_permit=sa.bindparam("permit"),
        claim_token=None,
        claim_expires_at=None,
        throttled_until=None,
        started_at=_now,
        last_polled_at=None,
        poll_failures=0,
        progress=0.0,
        updated_at=_now,
    )
)
_PROGRESS = (
    sa.update(_table)
    .where(_c.id == sa.bindparam("rid"), _status_is(RenderStatus.RENDERING))
    .values(
        progress=sa.case((_c.progress < sa.bindparam("p"), sa.bindparam("p")), else_=_c.progress),
        cost_usd=sa.bindparam("cost"),
        last_polled_at=_now,
        poll_failures=0,
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
)


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


def _cas(
    render_id: str,
    from_status: RenderStatus,
    to_status: RenderStatus | None,
    values: dict[str, Any],
    *extra_conditions: Any,
) -> Render | None:
    """One guarded UPDATE; returns the updated row, or None if the guard did not match."""
    now = utcnow()
    stmt = (
        sa.update(Render)
        .where(col(Render.id) == render_id, _status_is(from_status), *extra_conditions)
        .values(updated_at=now, **values, **({"status": to_status} if to_status else {}))
        .returning(Render)
        .execution_options(synchronize_session=False)
    )
    with session_scope() as session:
        row = session.execute(stmt).scalars().first()
    return row


def _current_status(render_id: str) -> str | None:
    with Session(get_engine()) as session:
        status = session.exec(select(Render.status).where(Render.id == render_id)).first()
    return None if status is None else str(status)


def transition(
    render_id: str,
    from_status: RenderStatus,
    to_status: RenderStatus,
    *extra_conditions: Any,
    **values: Any,
) -> Render:
    """Move a render between states, atomically, or raise ``IllegalTransition``."""
    if (from_status, to_status) not in LEGAL_TRANSITIONS:
        raise IllegalTransition(render_id, from_status, to_status)
    row = _cas(render_id, from_status, to_status, values, *extra_conditions)
    if row is None:
        actual = _current_status(render_id)
        if actual is None:
            raise RenderNotFound(render_id)
        raise IllegalTransition(render_id, from_status, to_status, actual)
    return row


# --- starting ------------------------------------------------------------------------------


def out_name(render_id: str, attempt: int, codec: str) -> str:
    """Deterministic output key per render attempt.

    A repeated ``start`` for the same attempt overwrites the same object instead of producing
    a second file, and a start with an unknown outcome can be found again by this name.
    """
    return f"{render_id}-{attempt}.{CODEC_EXTENSIONS.get(codec, 'mp4')}"


def claim_start(render_id: str, token: str, lease_s: float) -> Claim | None:
    """Take the exclusive right to call Lambda ``start`` for a pending render.

    Returns None when the render is not pending or another worker holds an unexpired claim.
    The claim counts a start request up front (``start_requests``): every path that then does
    *not* reach Lambda gives the claim back with ``release_claim``, which takes the count back
    down. So a claimed render with ``start_requests > 1`` had an earlier start whose outcome is
    unknown (its worker died, or the call timed out): the caller must look for that render
    before starting another one.
    """
    now = utcnow()
    params = {
        "rid": render_id,
        "token": token,
        "expires": now + timedelta(seconds=lease_s),
        "now": now,
    }
    with single_statement() as conn:
        row = conn.execute(_CLAIM_CORE, params).first()
    return None if row is None else Claim(*row)


def release_claim(
    render_id: str,
    token: str,
    *,
    throttled_until: datetime | None = None,
    start_may_have_happened: bool = False,
) -> bool:
    """Give the claim back after a start that did not happen (budget full, throttled, a 429,
    a refused connection). Unless the request may have reached Lambda, the start request the
    claim counted is taken back."""
    stmt = _RELEASE_KEEP_COUNT if start_may_have_happened else _RELEASE
    params = {"rid": render_id, "token": token, "throttled_until": throttled_until, "now": utcnow()}
    with single_statement() as conn:
        return bool(conn.execute(stmt, params).rowcount)


def set_throttled_until(render_id: str, until: datetime | None) -> None:
    _cas(render_id, RenderStatus.PENDING, None, {"throttled_until": until})


def mark_rendering(
    render_id: str,
    token: str,
    lambda_render_id: str,
    lambda_bucket: str,
    permit: str | None = None,
) -> None:
    """``pending -> rendering`` with the Lambda ids (and the rate-limit permit that paid for
    the start), guarded by the claim token."""
    params = {
        "rid": render_id,
        "token": token,
        "lambda_render_id": lambda_render_id,
        "lambda_bucket": lambda_bucket,
        "permit": permit,
        "now": utcnow(),
    }
    with single_statement() as conn:
        moved = conn.execute(_MARK_RENDERING, params).rowcount
    if not moved:
        raise IllegalTransition(
            render_id, RenderStatus.PENDING, RenderStatus.RENDERING, _current_status(render_id)
        )


# --- progress ------------------------------------------------------------------------------


def record_progress_many(readings: Sequence[tuple[str, float, float | None]]) -> None:
    """Store a batch of (render id, progress, cost) readings in one executemany UPDATE.

    A sweep reads every render in flight; one statement per batch instead of one per render
    is what keeps the database from being the ceiling of a 10,000-render sweep.
    """
    if not readings:
        return
    now = utcnow()
    rows = [
        {"rid": rid, "p": min(max(progress, 0.0), 1.0), "cost": cost, "now": now}
        for rid, progress, cost in readings
    ]
    with single_statement() as conn:  # each reading stands alone: no transaction around them
        conn.execute(_PROGRESS, rows)


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


def finish_many(completions: Sequence[Completion], failures: Sequence[Failure]) -> set[str]:
    """``rendering -> complete`` and ``rendering -> failed`` for a poll batch, in one
    transaction; every UPDATE is still guarded by ``status = 'rendering'``. Returns the ids
    this call moved (a render another process moved first is left alone)."""
    if not completions and not failures:
        return set()
    now = utcnow()
    moved: set[str] = set()
    with get_engine().begin() as conn:
        for done in completions:
            params = {
                "rid": done.render_id,
                "url": done.output_url,
                "size": done.output_size_bytes,
                "cost": done.cost_usd,
                "now": now,
            }
            if conn.execute(_COMPLETE, params).rowcount:
                moved.add(done.render_id)
        for failed in failures:
            params = {
                "rid": failed.render_id,
                "code": failed.code,
                "message": failed.message[:4000],
                "cost": failed.cost_usd,
                "now": now,
            }
            if conn.execute(_FAIL_RENDERING, params).rowcount:
                moved.add(failed.render_id)
    return moved


def record_poll_failure(render_id: str) -> int | None:
    """Count a failed progress call; returns the new consecutive-failure count."""
    row = _cas(
        render_id,
        RenderStatus.RENDERING,
        None,
        {"poll_failures": Render.poll_failures + 1, "last_polled_at": utcnow()},
    )
    return None if row is None else row.poll_failures


def fail(
    render_id: str,
    from_status: RenderStatus,
    *,
    code: str,
    message: str,
    cost_usd: float | None = None,
) -> Render:
    values: dict[str, Any] = {
        "error_code": code,
        "error_message": message[:4000],
        "completed_at": utcnow(),
        "claim_token": None,
        "claim_expires_at": None,
        "throttled_until": None,
    }
    if cost_usd is not None:
        values["cost_usd"] = cost_usd
    return transition(render_id, from_status, RenderStatus.FAILED, **values)


def _next_attempt(
    row: Render, from_status: RenderStatus, failure: dict[str, Any], **values: Any
) -> Render:
    """``from_status -> pending`` as the render's next attempt: a new ``outName``, the Lambda
    ids and results cleared, ``failure`` appended to the history. The history is a JSON list
    rewritten in Python, so the UPDATE is guarded by the ``attempts`` value that was read: a
    concurrent move of the same render loses the race and raises instead of applying twice."""
    return transition(
        row.id,
        from_status,
        RenderStatus.PENDING,
        Render.attempts == row.attempts,
        attempts=row.attempts + 1,
        out_name=out_name(row.id, row.attempts + 1, row.codec),
        error_history=[*row.error_history, {"attempt": row.attempts, **failure}],
        error_code=None,
        error_message=None,
        progress=0.0,
        output_url=None,
        output_size_bytes=None,
        cost_usd=None,
        lambda_render_id=None,
        lambda_bucket=None,
        rate_permit=None,
        start_requests=0,
        started_at=None,
        completed_at=None,
        last_polled_at=None,
        poll_failures=0,
        **values,
    )


def _load(render_id: str) -> Render:
    with Session(get_engine()) as session:
        row = session.get(Render, render_id)
    if row is None:
        raise RenderNotFound(render_id)
    return row


def replay(render_id: str) -> Render:
    """failed -> pending for another attempt, keeping the previous error in the history."""
    row = _load(render_id)
    if row.status != RenderStatus.FAILED:
        raise IllegalTransition(render_id, RenderStatus.FAILED, RenderStatus.PENDING, row.status)
    failure = {
        "code": row.error_code,
        "message": row.error_message,
        "failed_at": row.completed_at.isoformat() if row.completed_at else None,
    }
    return _next_attempt(row, RenderStatus.FAILED, failure)


def restart_throttled(render_id: str, code: str, message: str) -> Render:
    """rendering -> pending: Lambda throttled this attempt inside the render (it had no
    concurrency for the render's functions), so it is started again as a new attempt."""
    row = _load(render_id)
    if row.status != RenderStatus.RENDERING:
        raise IllegalTransition(render_id, RenderStatus.RENDERING, RenderStatus.PENDING, row.status)
    failure = {"code": code, "message": message[:4000], "failed_at": utcnow().isoformat()}
    return _next_attempt(
        row,
        RenderStatus.RENDERING,
        failure,
        throttle_restarts=row.throttle_restarts + 1,
    )


# --- queries the workers need ---------------------------------------------------------------


def rendering_ids(due_before: datetime | None = None) -> list[str]:
    """Renders to poll, least recently polled first.

    With ``due_before``, only those last polled (or, never polled, started) at or before it:
    each sweep then polls the renders that have waited an interval, not all of them at once.
    """
    last_seen = sa.func.coalesce(col(Render.last_polled_at), col(Render.started_at))
    stmt = select(Render.id).where(Render.status == RenderStatus.RENDERING)
    if due_before is not None:
        stmt = stmt.where(sa.or_(last_seen <= due_before, last_seen.is_(None)))
    stmt = stmt.order_by(col(Render.last_polled_at).is_not(None), col(Render.last_polled_at))
    with Session(get_engine()) as session:
        return list(session.exec(stmt))


def count_in_flight() -> dict[str, int]:
    """Pending and rendering counts (indexed; the big terminal groups are not counted)."""
    with Session(get_engine()) as session:
        return {
            status.value: session.exec(
                select(sa.func.count()).select_from(Render).where(Render.status == status)
            ).one()
            for status in (RenderStatus.PENDING, RenderStatus.RENDERING)
        }


def stale_pending(grace_s: float, limit: int) -> list[Render]:
    """Pending renders created more than ``grace_s`` ago, oldest first (the reconciler's
    candidates: their producer is surely past sending the message)."""
    cutoff = utcnow() - timedelta(seconds=grace_s)
    stmt = (
        select(Render)
        .where(Render.status == RenderStatus.PENDING, col(Render.created_at) < cutoff)
        .order_by(col(Render.created_at))
        .limit(limit)
    )
    with Session(get_engine()) as session:
        return list(session.exec(stmt))


def claim_states(render_ids: Iterable[str]) -> dict[str, tuple[str, datetime | None]]:
    """(status, claim_expires_at) per render id, without loading whole rows."""
    ids = list(render_ids)
    states: dict[str, tuple[str, datetime | None]] = {}
    with get_engine().connect() as conn:
        for start in range(0, len(ids), 1000):
            stmt = sa.select(_c.id, _c.status, _c.claim_expires_at).where(
                _c.id.in_(ids[start : start + 1000])
            )
            for rid, status, expires in conn.execute(stmt):
                states[rid] = (str(status), expires)
    return states


def latest_bucket() -> str | None:
    """The bucket of the most recently started render: Remotion uses one bucket per region."""
    with Session(get_engine()) as session:
        for status in (RenderStatus.RENDERING, RenderStatus.COMPLETE):
            stmt = (
                select(Render.lambda_bucket)
                .where(Render.status == status, col(Render.lambda_bucket).is_not(None))
                .order_by(col(Render.created_at).desc())
                .limit(1)
            )
            bucket = session.exec(stmt).first()
            if bucket:
                return bucket
    return None


class PollTarget(NamedTuple):
    """What a poll needs of a render in flight (a plain row: polls are the other hot path)."""

    id: str
    user_id: str
    lambda_render_id: str | None
    lambda_bucket: str | None
    started_at: datetime | None
    throttle_restarts: int
    rate_permit: str | None


_POLL_TARGETS = sa.select(
    _c.id,
    _c.user_id,
    _c.lambda_render_id,
    _c.lambda_bucket,
    _c.started_at,
    _c.throttle_restarts,
    _c.rate_permit,
).where(_c.id.in_(sa.bindparam("ids", expanding=True)), _status_is(RenderStatus.RENDERING))


def poll_targets(render_ids: Iterable[str]) -> list[PollTarget]:
    """The renders among ``render_ids`` that are still ``rendering``."""
    ids = list(render_ids)
    if not ids:
        return []
    with get_engine().connect() as conn:
        return [PollTarget(*row) for row in conn.execute(_POLL_TARGETS, {"ids": ids})]
