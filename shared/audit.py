"""The audit log: who did what to which render, user or message, and when.

Every operator action (console, API or script) goes through ``shared.operations``, which writes
one entry per action here, in the same transaction as the change where the change is in the
database. Details never hold secrets (an API key appears by its public id only).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from shared.access_models import AuditEntry
from shared.db import get_engine


def record(
    actor: str,
    action: str,
    target: str,
    detail: dict[str, Any] | None = None,
    *,
    session: Session | None = None,
) -> None:
    """Append one entry; inside ``session`` when given (the caller commits), else on its own."""
    entry = AuditEntry(actor=actor, action=action, target=target, detail=detail or {})
    if session is not None:
        session.add(entry)
        return
    with Session(get_engine()) as own:
        own.add(entry)
        own.commit()


def recent(*, limit: int = 100, target: str | None = None) -> list[AuditEntry]:
    """Newest first; ``target`` (``render:<id>``, ``user:<id>``, ``all``) narrows it."""
    stmt = select(AuditEntry)
    if target is not None:
        stmt = stmt.where(AuditEntry.target == target)
    stmt = stmt.order_by(col(AuditEntry.id).desc()).limit(max(1, min(limit, 1000)))
    with Session(get_engine()) as session:
        return list(session.exec(stmt))
