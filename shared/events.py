"""Terminal events for the services that asked: what is recorded, in which transaction.

A render that names a ``notify`` actor or a ``callback_url`` gets one event when it reaches a
terminal state (``render.complete``, ``render.failed``, ``render.cancelled``). The event is
written to the ``render_event`` outbox by ``record`` *inside the transaction of the terminal
transition* (the repository calls it with the connection of its UPDATE), one row per channel,
all sharing one ``event_id``. So a terminal state without its event, or an event without its
state, cannot exist, whatever crashes when. ``announce`` then asks a worker to deliver them at
once; if that message is lost, the delivery sweep (``worker/notifications.py``) finds the
rows anyway. Delivery is at least once: receivers deduplicate on ``event_id``.

The payload (documented in docs/events.md) carries the render's public fields and no secret.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shared.log import get_logger
from shared.models import EventStatus, Render, RenderEvent, RenderStatus, utcnow

log = get_logger(__name__)

_render = Render.__table__.c  # type: ignore[attr-defined]  # SQLModel sets it at class creation
_event_table = RenderEvent.__table__  # type: ignore[attr-defined]  # as above

TYPES = {
    RenderStatus.COMPLETE: "render.complete",
    RenderStatus.FAILED: "render.failed",
    RenderStatus.CANCELLED: "render.cancelled",
}

#: The public fields an event carries, in the order of the documented payload.
PUBLIC_FIELDS = (
    "id",
    "user_id",
    "generation_id",
    "status",
    "output_url",
    "output_size_bytes",
    "cost_usd",
    "error_code",
    "error_message",
    "cancel_reason",
    "attempts",
    "idempotency_key",
    "created_at",
    "started_at",
    "completed_at",
)
#: What a terminal UPDATE returns so that ``record`` can write the outbox in its transaction.
RETURNING = tuple(_render[name] for name in (*PUBLIC_FIELDS, "notify", "callback_url"))


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value.value if isinstance(value, RenderStatus) else value


def payload(event_id: str, row: Mapping[str, Any], occurred_at: datetime) -> dict[str, Any]:
    status = RenderStatus(row["status"])
    return {
        "event_id": event_id,
        "type": TYPES[status],
        "occurred_at": occurred_at.isoformat(),
        "render": {name: _json(row[name]) for name in PUBLIC_FIELDS},
    }


def _targets(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    targets = []
    notify = row.get("notify")
    if isinstance(notify, dict) and notify.get("queue_name") and notify.get("actor_name"):
        targets.append(("dramatiq", f"{notify['queue_name']}:{notify['actor_name']}"))
    if row.get("callback_url"):
        targets.append(("http", str(row["callback_url"])))
    return targets


def record(conn: sa.Connection, rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Write the outbox rows for renders that just became terminal (``rows`` are what the
    terminal UPDATEs returned, ``RETURNING``); returns their ids. Call it on the connection of
    the transition, before its transaction commits."""
    now = utcnow()
    events = []
    for row in rows:
        targets = _targets(row)
        if not targets or RenderStatus(row["status"]) not in TYPES:
            continue
        event_id = str(uuid.uuid4())
        body = payload(event_id, row, now)
        for channel, target in targets:
            events.append(
                {
                    "id": str(uuid.uuid4()),
                    "event_id": event_id,
                    "render_id": row["id"],
                    "type": body["type"],
                    "channel": channel,
                    "target": target,
                    "payload": body,
                    "status": EventStatus.PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
    if events:
        conn.execute(sa.insert(_event_table), events)
    return [event["id"] for event in events]


def announce(event_ids: Sequence[str]) -> None:
    """Ask a worker to deliver these events now (best effort: the sweep finds them anyway)."""
    if not event_ids:
        return
    from shared.messages import deliver_events_message, producer_broker

    try:
        producer_broker().enqueue(deliver_events_message(list(event_ids)))
    except Exception as exc:  # Redis down: the sweep delivers them a little later
        log.warning("could not announce events; the sweep will deliver them", error=str(exc))
