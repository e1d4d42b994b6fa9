"""Starting a render: the start claim (a lease only its holder may start under), giving it back,
``throttled_until``, and ``pending -> rendering`` guarded by the claim token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from shared import timeline
from shared.db import get_engine, single_statement
from shared.errors import IllegalTransition
from shared.models import RenderStatus, utcnow
from shared.render_request import RenderRequest
from shared.repository import driver
from shared.repository.table import _c, _now, _status_is, _table
from shared.repository.transitions import _cas, _current_status

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
        _c.notify,
        _c.callback_url,
        _c.out_name,
        _c.attempts,
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
    notify: dict[str, Any] | None
    callback_url: str | None
    out_name: str
    attempts: int
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
        lambda_pool=sa.bindparam("lambda_pool"),
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
    if driver.available():
        _, rows = driver.execute(_CLAIM_CORE, params)
        return Claim(*rows[0]) if rows else None
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
    """Show a rate-limited wait on the pending render, and on its timeline."""
    row = _cas(render_id, RenderStatus.PENDING, None, {"throttled_until": until})
    if row is not None and until is not None:
        timeline.record([(render_id, "throttled", {"until": until.isoformat()})])


_MARK_RENDERING_WITH_STEP = (
    sa.insert(timeline.table)
    .from_select(
        ["render_id", "at", "kind", "detail"],
        sa.select(
            (moved := _MARK_RENDERING.returning(_c.id).cte("moved")).c.id,
            _now,
            sa.literal("started"),
            sa.bindparam("detail", type_=sa.JSON),
        ),
    )
    .returning(timeline.table.c.render_id)
)


def mark_rendering(
    render_id: str,
    token: str,
    lambda_render_id: str,
    lambda_bucket: str,
    permit: str | None = None,
    lambda_pool: str | None = None,
    step: dict[str, Any] | None = None,
) -> None:
    """``pending -> rendering`` with the Lambda ids (and the rate-limit permit that paid for
    the start), guarded by the claim token, and its ``started`` timeline step (``step``: what
    it says). PostgreSQL does both in one statement (the UPDATE as a CTE feeding the INSERT,
    one round trip in autocommit, through ``driver``); SQLite, in-process, in one transaction."""
    detail = {"lambda_render_id": lambda_render_id, "pool": lambda_pool, **(step or {})}
    params = {
        "rid": render_id,
        "token": token,
        "lambda_render_id": lambda_render_id,
        "lambda_bucket": lambda_bucket,
        "lambda_pool": lambda_pool,
        "permit": permit,
        "now": utcnow(),
        "detail": detail,
    }
    if driver.available():
        # RETURNING says whether the guarded UPDATE moved the row (the INSERT's rowcount).
        moved = len(driver.execute(_MARK_RENDERING_WITH_STEP, params)[1])
    else:
        with get_engine().begin() as conn:
            moved = conn.execute(_MARK_RENDERING, params).rowcount
            if moved:
                timeline.append(conn, render_id, "started", **detail)
    if not moved:
        raise IllegalTransition(
            render_id, RenderStatus.PENDING, RenderStatus.RENDERING, _current_status(render_id)
        )
