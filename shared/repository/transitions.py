"""Moving a render between states: one guarded UPDATE per move, ``IllegalTransition`` when the
guard did not match; failing, replaying, and restarting a render as a new attempt."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from shared import events, timeline
from shared.db import get_engine, session_scope
from shared.errors import IllegalTransition, RenderNotFound
from shared.models import LEGAL_TRANSITIONS, Render, RenderStatus, utcnow
from shared.repository.inserts import out_name
from shared.repository.table import _status_is


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
    recorded: list[str] = []
    with session_scope() as session:
        row = session.execute(stmt).scalars().first()
        if row is not None and to_status is not None:
            kind, detail = _step(from_status, to_status, row)
            timeline.append(session.connection(), render_id, kind, **detail)
            if to_status.terminal:
                recorded = events.record(session.connection(), [_event_fields(row)])
    events.announce(recorded)
    return row


def _step(from_status: RenderStatus, to_status: RenderStatus, row: Render) -> tuple[str, Any]:
    """The timeline step a move writes (``shared.timeline``)."""
    if to_status == RenderStatus.PENDING:
        kind = "replayed" if from_status == RenderStatus.FAILED else "restarted"
        return kind, {"attempt": row.attempts}
    detail: dict[str, Any] = {"from": from_status.value}
    if row.error_code:
        detail.update(error_code=row.error_code, message=(row.error_message or "")[:300])
    if row.cancel_reason and to_status == RenderStatus.CANCELLED:
        detail["reason"] = row.cancel_reason
    return to_status.value, detail


def _event_fields(row: Render) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in events.RETURNING}


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


def cancel(render_id: str, reason: str | None) -> tuple[Render, bool]:
    """``pending|rendering -> cancelled``; returns the row and whether it was rendering (then
    its functions must be stopped on Lambda). Already cancelled: the row, False. Complete or
    failed: ``IllegalTransition`` (exactly one terminal state wins a race)."""
    for _ in range(3):  # the render may move pending -> rendering between the read and the write
        row = _load(render_id)
        if row.status == RenderStatus.CANCELLED:
            return row, False
        if row.status not in (RenderStatus.PENDING, RenderStatus.RENDERING):
            raise IllegalTransition(render_id, row.status, RenderStatus.CANCELLED, row.status)
        try:
            moved = transition(
                render_id,
                row.status,
                RenderStatus.CANCELLED,
                cancel_reason=(reason or "cancelled")[:500],
                completed_at=utcnow(),
                claim_token=None,
                claim_expires_at=None,
                throttled_until=None,
            )
        except IllegalTransition:
            continue
        return moved, row.status == RenderStatus.RENDERING
    raise IllegalTransition(
        render_id, row.status, RenderStatus.CANCELLED, _current_status(render_id)
    )


def attach_to_cancelled(
    render_id: str, lambda_render_id: str, lambda_bucket: str, lambda_pool: str | None = None
) -> bool:
    """A start finished after the render was cancelled: keep the Lambda ids on the cancelled
    row, so it can be stopped and its budget held until it is."""
    row = _cas(
        render_id,
        RenderStatus.CANCELLED,
        None,
        {
            "lambda_render_id": lambda_render_id,
            "lambda_bucket": lambda_bucket,
            "lambda_pool": lambda_pool,
        },
        col(Render.lambda_render_id).is_(None),
    )
    return row is not None
