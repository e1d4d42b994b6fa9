"""Bind message ids to every log line an actor writes, and clear them afterwards."""

from __future__ import annotations

from typing import Any

import structlog
from dramatiq import Broker, Middleware
from dramatiq.broker import MessageProxy


class LogContext(Middleware):
    """Placed first so that the context is bound before any other middleware logs, and (since
    ``after_*`` hooks run in reverse) cleared last, after Retries has logged its decision."""

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            message_id=message.message_id,
            actor=message.actor_name,
            queue=message.queue_name,
            retries=message.options.get("retries", 0),
        )

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        structlog.contextvars.clear_contextvars()

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        structlog.contextvars.clear_contextvars()
