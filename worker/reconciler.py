"""Reconciliation: pending renders whose message is gone get a new one, once.

The database is the source of truth; Redis only carries messages. Messages can vanish: Redis
restarted without persistence or was flushed, a producer died between inserting the row and
sending the message, an operator purged a queue. A render in ``rendering`` needs no message (the
poller finds it in the database), but a ``pending`` one would wait forever. Every
``RECONCILE_INTERVAL`` this pass compares the pending renders (older than
``RECONCILE_GRACE_S``) with the render ids carried by every message still in Redis, ready,
delayed or held unacked by a worker, and re-enqueues the missing ones. The next pass sees the
new message, so each lost render is re-enqueued once; a duplicate would be harmless anyway.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

from dramatiq.brokers.redis import RedisBroker
from sqlmodel import Session, col, select

from shared.db import get_engine
from shared.log import get_logger
from shared.messages import START_RENDER, enqueue_many, start_render_message
from shared.models import Render, RenderStatus, utcnow
from shared.producer import message_payload
from shared.redis_client import get_redis
from shared.settings import get_settings

log = get_logger(__name__)

MAX_PER_PASS = 5_000


def _message_hashes() -> list[str]:
    settings = get_settings()
    queue = settings.start_queue
    return [settings.redis_key(f"{queue}.msgs"), settings.redis_key(f"{queue}.DQ.msgs")]


def _render_ids_in(raw_messages: Iterator[bytes]) -> Iterator[str]:
    for raw in raw_messages:
        try:
            message = json.loads(raw)
            if message.get("actor_name") != START_RENDER:
                continue
            body = message["args"][0] if message.get("args") else None
            render_id = body.get("render_id") if isinstance(body, dict) else None
            yield str(render_id or message["message_id"])
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            continue  # undecodable: the consumer dead-letters those


def render_ids_with_messages() -> set[str]:
    client = get_redis()
    found: set[str] = set()
    for key in _message_hashes():
        values = (value for _, value in client.hscan_iter(key, count=1000))
        found.update(_render_ids_in(values))
    return found


def stale_pending(limit: int = MAX_PER_PASS) -> list[Render]:
    cutoff = utcnow() - timedelta(seconds=get_settings().reconcile_grace_s)
    stmt = (
        select(Render)
        .where(Render.status == RenderStatus.PENDING, col(Render.created_at) < cutoff)
        .order_by(col(Render.created_at))
        .limit(limit)
    )
    with Session(get_engine()) as session:
        return list(session.exec(stmt))


def reconcile(broker: RedisBroker) -> int:
    """One pass; returns how many renders were re-enqueued (through ``broker``)."""
    candidates = stale_pending()
    if not candidates:
        return 0
    now = utcnow()
    live = render_ids_with_messages()
    lost = [
        r
        for r in candidates
        if r.id not in live and not (r.claim_expires_at is not None and r.claim_expires_at > now)
    ]
    if not lost:
        return 0
    enqueue_many(
        broker,
        [start_render_message(message_payload(r.id, r.as_request())) for r in lost],
    )
    for render in lost:
        log.warning(
            "re-enqueued a pending render whose message was lost",
            render_id=render.id,
            user_id=render.user_id,
            age_s=round((now - render.created_at).total_seconds(), 1),
        )
    return len(lost)
