"""Pages of renders, newest first, that stay stable while renders are being created.

A page ends at a cursor naming its last render's ``(created_at, id)``; the next page is what
sorts strictly after it (keyset pagination). Renders created meanwhile sort before the cursor,
so they never shift later pages: no render that existed when the listing began is skipped or
shown twice (an offset would do both). The cursor is opaque to clients (URL-safe base64 of
the two values) and checked when read back.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from shared.db import get_engine
from shared.errors import RenderqError
from shared.models import Render, RenderStatus

MAX_PAGE = 500


class BadCursor(RenderqError, ValueError):
    """A cursor that is not one this module wrote."""


@dataclass(frozen=True)
class Page:
    renders: list[Render]
    #: The cursor of the next page; None on the last one.
    next: str | None


def encode_cursor(render: Render) -> str:
    created = render.created_at
    if created.tzinfo is None:  # SQLite hands datetimes back naive; they are UTC
        created = created.replace(tzinfo=UTC)
    raw = json.dumps([created.isoformat(), render.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, render_id = json.loads(raw)
        at = datetime.fromisoformat(created)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadCursor(f"not a cursor of this listing: {cursor[:40]!r}") from exc
    if not isinstance(render_id, str) or at.tzinfo is None:
        raise BadCursor(f"not a cursor of this listing: {cursor[:40]!r}")
    return at, render_id


def page(
    *,
    user_ids: Sequence[str] | None = None,
    generation_id: str | None = None,
    status: RenderStatus | None = None,
    before: str | None = None,
    limit: int = 50,
) -> Page:
    """Renders matching every filter given, newest first; ``user_ids`` None means any user
    (an empty list matches nothing)."""
    limit = max(1, min(limit, MAX_PAGE))
    stmt = select(Render)
    if user_ids is not None:
        ids = list(user_ids)
        stmt = (
            stmt.where(Render.user_id == ids[0])
            if len(ids) == 1
            else stmt.where(col(Render.user_id).in_(ids))
        )
    if generation_id is not None:
        stmt = stmt.where(Render.generation_id == generation_id)
    if status is not None:
        stmt = stmt.where(Render.status == status)
    if before is not None:
        at, render_id = decode_cursor(before)
        created = col(Render.created_at)
        stmt = stmt.where(sa.or_(created < at, sa.and_(created == at, col(Render.id) < render_id)))
    stmt = stmt.order_by(col(Render.created_at).desc(), col(Render.id).desc()).limit(limit + 1)
    with Session(get_engine()) as session:
        found = list(session.exec(stmt))
    more = len(found) > limit
    found = found[:limit]
    return Page(found, encode_cursor(found[-1]) if more and found else None)
