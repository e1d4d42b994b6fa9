"""Per-user rate limit for actors that opt in: delay over-limit messages, never drop them.

An actor opts in with the option ``rate_limit_key`` (message -> user id, or None to skip) and
may give ``on_throttled`` (message, until) to make the wait visible. The progress poller has no
such option and is never throttled.

Over the limit, a copy of the message is enqueued with a delay equal to the time until the
user's next permit and the original is skipped (acked): no retry is spent and nothing is
counted as a failure (Dramatiq's ``Retry`` would count against ``max_retries``).

The permit's life (take, confirm, keep, refund) is ``worker.permit``'s; this middleware takes
it before the actor runs and refunds it afterwards if it paid for no start. It fails safe: it
catches its own errors (Dramatiq would otherwise log them and run the actor unthrottled) and,
while Redis is unreachable, holds the message rather than running it or acking it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from dramatiq import Broker, Middleware
from dramatiq.middleware import SkipMessage

from shared.log import get_logger
from shared.rate_limit import Permit
from worker import metrics, permit
from worker.defer import defer_message
from worker.delivery import Delivery

log = get_logger(__name__)

_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class UserRateLimit(Middleware):
    def __init__(self, *, max_hold_s: float = 600.0, error_delay_ms: int = 30_000) -> None:
        self.max_hold_s = max_hold_s
        self.error_delay_ms = error_delay_ms

    @property
    def actor_options(self) -> set[str]:
        return {"rate_limit_key", "on_throttled"}

    def before_process_message(self, broker: Broker, message: Delivery) -> None:
        actor = broker.get_actor(message.actor_name)
        key_fn: Callable[[Delivery], str | None] | None = actor.options.get("rate_limit_key")
        if key_fn is None:
            return
        for option in permit.DELIVERY_OPTIONS:
            message.options.pop(option, None)
        try:
            user_id = key_fn(message)
        except Exception:
            log.exception("rate_limit_key failed; letting the actor reject the message")
            return
        if user_id is None:
            return
        taken = self._take(message, user_id)
        if taken.allowed:
            return
        delay = taken.wait_ms + random.randint(0, max(50, taken.wait_ms // 20))
        until = datetime.now(UTC) + timedelta(milliseconds=delay)
        on_throttled = actor.options.get("on_throttled")
        if on_throttled is not None:
            try:
                on_throttled(message, until)
            except Exception:
                log.exception("could not record throttled_until")
        metrics.deferred("throttled")
        self._defer(message, delay, f"user {user_id} over rate limit {taken.rate}")
        raise SkipMessage(f"throttled until {until.isoformat()}")

    def after_process_message(
        self,
        broker: Broker,
        message: Delivery,
        *,
        result: Any | None = None,
        exception: BaseException | None = None,
    ) -> None:
        permit.refund_unused(message)

    def _take(self, message: Delivery, user_id: str) -> Permit:
        """A permit decision; while Redis is down, wait for it (never run unthrottled)."""
        delay, waited = 0.5, 0.0
        while True:
            try:
                return permit.take(message, user_id)
            except _REDIS_DOWN as exc:
                if waited >= self.max_hold_s:
                    self._defer(message, self.error_delay_ms, f"rate limiter unavailable: {exc}")
                    raise SkipMessage("rate limiter unavailable") from exc
                log.warning("rate limiter unreachable; holding message", error=str(exc))
                time.sleep(delay)
                waited += delay
                delay = min(delay * 2, 10.0)
            except Exception as exc:
                log.exception("rate limiter failed; deferring message", user_id=user_id)
                self._defer(message, self.error_delay_ms, f"rate limiter error: {exc}")
                raise SkipMessage("rate limiter error") from exc

    def _defer(self, message: Delivery, delay_ms: int, reason: str) -> None:
        """Re-enqueue with a delay; if Redis refuses even that, keep trying (the message is
        still unacked, so a worker crash meanwhile only means redelivery)."""
        backoff = 0.5
        while True:
            try:
                defer_message(message, delay_ms, reason=reason, counter="throttled")
                return
            except _REDIS_DOWN as exc:
                log.warning("cannot re-enqueue deferred message; retrying", error=str(exc))
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
