"""Tolerate foreign producers that leave out Dramatiq's ``redis_message_id`` option."""

from __future__ import annotations

from typing import Any

from dramatiq import Middleware


class ForeignEnvelope(Middleware):
    """The Redis broker acks by ``options.redis_message_id``; a message without it could never
    be acked and would be redelivered forever. The documented foreign format uses the message
    id as the Redis hash field, so fall back to it."""

    def before_process_message(self, broker: Any, message: Any) -> None:
        message.options.setdefault("redis_message_id", message.message_id)
