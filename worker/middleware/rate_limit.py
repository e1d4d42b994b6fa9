"""Per-user rate limit for actors that opt in: delay over-limit messages, never drop them.

An actor opts in with the option ``rate_limit_key`` (message -> user id, or None to skip) and
may give ``on_throttled`` (message, until) to make the wait visible. The progress poller has no
such option and is never throttled.

Over the limit, a copy of the message is enqueued with a delay equal to the time until the
user's next permit and the original is skipped (acked): no retry is spent and nothing is
counted as a failure (see field facts: ``Retry`` would count against ``max_retries``).

The permit is taken before the actor runs and refunded afterwards unless the actor marked the
message ``render_started``, so duplicates, invalid messages and renders that had to wait for
the Lambda budget do not use up a user's quota. This middleware fails safe: it catches its own
errors (Dramatiq would otherwise log them and run the actor unthrottled) and, while Redis is
unreachable, holds the message rather than running it or acking it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from dramatiq import Middleware
from dramatiq.middleware import SkipMessage

from shared.log import get_logger
from shared.rate_limit import Permit, get_limiter
from shared.settings import get_settings
from worker import metrics
from worker.defer import defer_message

log = get_logger(__name__)

PERMIT_OPTION = "rate_permit"
STARTED_OPTION = "render_started"
_REDIS_DOWN = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)


class UserRateLimit(Middleware):
    def __init__(self, *, max_hold_s: float = 600.0, error_delay_ms: int = 30_000) -> None:
        self.max_hold_s = max_hold_s
        self.error_delay_ms = error_delay_ms

    @property
    def actor_options(self) -> set[str]:
        return {"rate_limit_key", "on_throttled"}

    def before_process_message(self, broker: Any, message: Any) -> None:
        actor = broker.get_actor(message.actor_name)
        key_fn: Callable[[Any], str | None] | None = actor.options.get("rate_limit_key")
        if key_fn is None:
            return
        message.options.pop(PERMIT_OPTION, None)
        message.options.pop(STARTED_OPTION, None)
        try:
            user_id = key_fn(message)
        except Exception:
            log.exception("rate_limit_key failed; letting the actor reject the message")
            return
        if user_id is None:
            return
        permit = self._acquire(broker, message, user_id)
        if permit.allowed:
            message.options[PERMIT_OPTION] = [user_id, permit.member, time.monotonic()]
            return
        delay = permit.wait_ms + random.randint(0, max(50, permit.wait_ms // 20))
        until = datetime.now(UTC) + timedelta(milliseconds=delay)
        on_throttled = actor.options.get("on_throttled")
        if on_throttled is not None:
            try:
                on_throttled(message, until)
            except Exception:
                log.exception("could not record throttled_until")
        metrics.deferred("throttled")
        self._defer(message, delay, f"user {user_id} over rate limit {permit.rate}")
        raise SkipMessage(f"throttled until {until.isoformat()}")

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: Any = None
    ) -> None:
        permit = message.options.pop(PERMIT_OPTION, None)
        started = message.options.pop(STARTED_OPTION, False)
        if permit and not started:
            user_id, member, _ = permit
            try:
                get_limiter().refund(user_id, member)
            except Exception:
                # Keeping an unused permit only makes the limit stricter for a while.
                log.warning("could not refund rate-limit permit", user_id=user_id, exc_info=True)

    def _acquire(self, broker: Any, message: Any, user_id: str) -> Permit:
        """A permit decision; while Redis is down, wait for it (never run unthrottled)."""
        delay, waited = 0.5, 0.0
        while True:
            try:
                return get_limiter().acquire(user_id, message.message_id)
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

    def _defer(self, message: Any, delay_ms: int, reason: str) -> None:
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


def _fresh(stamped_at: float) -> bool:
    """Stamped so recently that the window margin covers the time until the start: a
    re-stamp would move the entry by less than the margin already allows for."""
    return time.monotonic() - stamped_at < get_settings().rate_limit_margin_ms / 2000


def confirm_permit(message: Any) -> int | None:
    """Right before the throttled work starts, move the message's permit to "now".

    The permit was taken when the message arrived; the start may follow after database work,
    a claim and the Lambda budget. Re-stamping makes the user's window count the start itself
    (skipped when the permit is fresh: ``RATE_LIMIT_MARGIN_MS`` covers that much delay).
    Returns None to go ahead, or the milliseconds to wait (the permit is then gone).
    Redis errors propagate: the caller must not start without a confirmed permit.
    """
    permit = message.options.get(PERMIT_OPTION) if message is not None else None
    if not permit or _fresh(permit[2]):
        return None
    user_id, member, _ = permit
    result = get_limiter().confirm(user_id, member)
    if result.allowed:
        permit[2] = time.monotonic()
        return None
    message.options.pop(PERMIT_OPTION, None)
    return result.wait_ms


def mark_started(message: Any) -> None:
    """Called by an actor once the rate-limited work really started: keep the permit, and
    stamp it with the current time (the start has happened by now) unless the stamp is fresh
    enough that the margin covers the start call."""
    message.options[STARTED_OPTION] = True
    permit = message.options.get(PERMIT_OPTION)
    if permit and not _fresh(permit[2]):
        try:
            get_limiter().touch(permit[0], permit[1])
        except Exception:
            log.warning("could not re-stamp the permit after the start", exc_info=True)
