"""Put the current message back on its queue for later, without spending a retry.

Waiting for a rate-limit window, a Lambda concurrency slot or the end of a 429 burst is not a
failure; Dramatiq's ``Retry`` would count it against ``max_retries`` and eventually dead-letter
a perfectly good render. A deferral enqueues a delayed copy (same ``message_id``) and lets the
original be acked. If the process dies between the two steps the message is delivered twice,
which the claim in ``shared.repository`` makes harmless.
"""

from __future__ import annotations

import random
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from shared.errors import RenderqError
from shared.log import get_logger
from worker.delivery import Delivery
from worker.permit import DELIVERY_OPTIONS

log = get_logger(__name__)

#: Per-delivery options that must not travel with a deferred copy (a permit belongs to the
#: delivery that took it; the middleware refunds it when the original is acked).
TRANSIENT_OPTIONS = (*DELIVERY_OPTIONS, "traceback")

#: Dramatiq refuses delays of 7 days or more.
MAX_DELAY_MS = 7 * 24 * 3600 * 1000 - 1


class Defer(RenderqError):
    """Raised inside renderq code to ask the actor wrapper to defer the current message."""

    def __init__(self, delay_ms: int, reason: str, counter: str | None = None) -> None:
        super().__init__(f"deferred {delay_ms} ms: {reason}")
        self.delay_ms = delay_ms
        self.reason = reason
        self.counter = counter


def backoff_ms(attempt: int, *, base_ms: int, max_ms: int) -> int:
    """Exponential backoff with "equal jitter": never less than half the step, so a crowd of
    throttled workers spreads out without any of them retrying immediately."""
    step = min(max_ms, base_ms * (2 ** max(0, attempt)))
    return int(step / 2 + random.uniform(0, step / 2))


def jittered(delay_ms: int, spread: float = 0.25) -> int:
    """``delay_ms`` +/- ``spread``, so waiting messages do not all come back at once."""
    return int(delay_ms * random.uniform(1 - spread, 1 + spread))


def defer_message(
    message: Delivery, delay_ms: int, *, reason: str, counter: str | None = None
) -> None:
    broker = dramatiq.get_broker()
    options: dict[str, Any] = {"deferrals": int(message.options.get("deferrals", 0)) + 1}
    if counter:
        options[counter] = int(message.options.get(counter, 0)) + 1
    delay_ms = max(0, min(int(delay_ms), MAX_DELAY_MS))
    copy = message.copy(options=options)
    for key in TRANSIENT_OPTIONS:
        copy.options.pop(key, None)
    broker.enqueue(copy, delay=delay_ms)
    log.info("message deferred", delay_ms=delay_ms, reason=reason, **options)


def defer_current(exc: Defer) -> None:
    message = CurrentMessage.get_current_message()
    if message is None:  # pragma: no cover - CurrentMessage is always on the worker broker
        raise RuntimeError("defer outside a message") from exc
    defer_message(message, exc.delay_ms, reason=exc.reason, counter=exc.counter)


def current_option(name: str, default: Any = None) -> Any:
    message = CurrentMessage.get_current_message()
    return default if message is None else message.options.get(name, default)
