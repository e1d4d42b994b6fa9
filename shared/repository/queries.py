"""Reads the workers need beside the hot paths: in-flight counts, the reconciler's candidates,
claim states of budget holders, the bucket of the newest render."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlmodel import Session, col, select

from shared.db import get_engine
from shared.models import Render, RenderStatus, utcnow
from shared.repository.table import _c


def count_in_flight() -> dict[str, int]:
    """Pending and rendering counts (indexed; the big terminal groups are not counted)."""
    with Session(get_engine()) as session:
        return {
            status.value: session.exec(
                select(sa.func.count()).select_from(Render).where(Render.status == status)
            ).one()
            for status in (RenderStatus.PENDING, RenderStatus.RENDERING)
        }


def stale_pending(grace_s: float, limit: int) -> list[tuple[str, datetime | None]]:
    """(id, claim expiry) of pending renders created more than ``grace_s`` ago, oldest first:
    the reconciler's candidates (their producer is surely past sending the message). Ids
    only: with thousands waiting in line, loading whole rows every pass would be most of an
    idle worker's CPU; the few that are really lost are loaded by id."""
    cutoff = utcnow() - timedelta(seconds=grace_s)
    stmt = (
        select(Render.id, col(Render.claim_expires_at))
        .where(Render.status == RenderStatus.PENDING, col(Render.created_at) < cutoff)
        .order_by(col(Render.created_at))
        .limit(limit)
    )
    with get_engine().connect() as conn:
        return [(rid, expires) for rid, expires in conn.execute(stmt)]


class HolderState(NamedTuple):
    """What deciding whether a budget holder is stale needs to know of its render."""

    status: str
    claim_expires_at: datetime | None
    #: Set when the render ran on Lambda: a cancelled one holds its budget until it stops.
    lambda_render_id: str | None
    stopped_at: datetime | None
    completed_at: datetime | None


def holder_states(render_ids: Iterable[str]) -> dict[str, HolderState]:
    """Per render id, without loading whole rows (a missing id: the render is gone)."""
    ids = list(render_ids)
    states: dict[str, HolderState] = {}
    with get_engine().connect() as conn:
        for start in range(0, len(ids), 1000):
            stmt = sa.select(
                _c.id,
                _c.status,
                _c.claim_expires_at,
                _c.lambda_render_id,
                _c.stopped_at,
                _c.completed_at,
            ).where(_c.id.in_(ids[start : start + 1000]))
            for rid, *values in conn.execute(stmt):
                states[rid] = HolderState(str(values[0]), *values[1:])
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
