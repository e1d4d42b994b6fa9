"""The life of a rate-limit permit, from the middleware that takes it to the start it pays for.

Every Lambda start spends one permit of its user's rate limit (``shared.rate_limit``). The
permit belongs to one delivery of a ``start_render`` message and travels in that delivery's
options (never in a deferred copy, see ``DELIVERY_OPTIONS``):

1. **take** (``take``, by ``UserRateLimit`` before the actor runs): one permit now, or the time
   until the user's next one;
2. **confirm** (``StartPermit.confirm``, by the start path right before Lambda ``start``):
   re-stamp the permit to now and re-check the window, because the claim, the database work and
   the budget may have taken a while. Skipped while the permit is younger than half of
   ``RATE_LIMIT_MARGIN_MS``, which already covers that much delay;
3. **keep** (``StartPermit.started``, after the start): mark it spent and stamp it once more
   (every entry is then no earlier than its start), again unless fresh;
4. **refund** (``refund_unused``, by ``UserRateLimit`` after the message): a permit that paid
   for no start (duplicate, invalid, budget wait, Lambda 429...) is given back. The permit of a
   start stays on the render row (``rate_permit``); if Lambda then throttles that attempt inside
   the render, the poller gives it back too (``refund``) before the render starts again, so a
   user never pays for renderq's lack of capacity.

A crash between 1 and 4 keeps a permit that paid for nothing: the limit is briefly stricter,
never looser.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from shared.log import get_logger
from shared.rate_limit import Permit, get_limiter
from shared.settings import get_settings
from worker.delivery import Delivery

log = get_logger(__name__)

PERMIT_OPTION = "rate_permit"
STARTED_OPTION = "render_started"
#: Options that belong to one delivery and must not travel with a deferred copy: the permit is
#: refunded (or kept) when the original delivery is acked.
DELIVERY_OPTIONS = (PERMIT_OPTION, STARTED_OPTION)


def take(message: Delivery, user_id: str) -> Permit:
    """Take a permit for this delivery (kept in its options when allowed). Redis errors
    propagate: the caller decides how to hold the message meanwhile."""
    for option in DELIVERY_OPTIONS:
        message.options.pop(option, None)
    permit = get_limiter().acquire(user_id, message.message_id)
    if permit.allowed:
        message.options[PERMIT_OPTION] = [user_id, permit.member, time.monotonic()]
    return permit


def refund_unused(message: Delivery) -> None:
    """After the delivery: give back a permit that paid for no start."""
    held = message.options.pop(PERMIT_OPTION, None)
    started = message.options.pop(STARTED_OPTION, False)
    if not held or started:
        return
    user_id, member, _ = held
    try:
        get_limiter().refund(user_id, member)
    except Exception:
        # Keeping an unused permit only makes the limit stricter for a while.
        log.warning("could not refund rate-limit permit", user_id=user_id, exc_info=True)


def refund(user_id: str, member: str) -> None:
    """Give back a kept permit whose start produced nothing (Lambda throttled the render)."""
    try:
        get_limiter().refund(user_id, member)
    except Exception:
        log.warning("could not refund rate-limit permit", user_id=user_id, exc_info=True)


def _fresh(stamped_at: float) -> bool:
    """Stamped so recently that the window margin covers the time until the start: a
    re-stamp would move the entry by less than the margin already allows for."""
    return time.monotonic() - stamped_at < get_settings().rate_limit_margin_ms / 2000


class StartPermit(Protocol):
    """What the start path needs of a permit."""

    @property
    def member(self) -> str | None:
        """The permit's name in the user's window (stored on the render it paid for)."""

    def confirm(self) -> int | None:
        """None to go ahead with the start, or the milliseconds until the user's next permit
        (this one is then gone). Redis errors propagate: never start unconfirmed."""

    def started(self) -> None:
        """The start happened: keep the permit."""


class MessagePermit:
    """The permit held by one delivery of a start message (if the middleware took one)."""

    def __init__(self, message: Delivery | None) -> None:
        self._message = message

    @property
    def member(self) -> str | None:
        held = self._held()
        return str(held[1]) if held else None

    def _held(self) -> list[Any] | None:
        if self._message is None:
            return None
        held: list[Any] | None = self._message.options.get(PERMIT_OPTION)
        return held

    def confirm(self) -> int | None:
        held = self._held()
        if not held or _fresh(held[2]):
            return None
        user_id, member, _ = held
        result = get_limiter().confirm(user_id, member)
        if result.allowed:
            held[2] = time.monotonic()
            return None
        assert self._message is not None  # held implies a message
        self._message.options.pop(PERMIT_OPTION, None)
        return result.wait_ms

    def started(self) -> None:
        if self._message is None:
            return
        self._message.options[STARTED_OPTION] = True
        held = self._held()
        if held and not _fresh(held[2]):
            try:
                get_limiter().touch(held[0], held[1])
            except Exception:
                log.warning("could not re-stamp the permit after the start", exc_info=True)


class _NoPermit:
    """For starts outside a throttled delivery (in-process callers: tests, the benchmark)."""

    member = None

    def confirm(self) -> int | None:
        return None

    def started(self) -> None:
        return None


NO_PERMIT: StartPermit = _NoPermit()
