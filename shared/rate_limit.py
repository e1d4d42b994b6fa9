"""Per-user render-start rate limit: renderq's policy on top of pyrate-limiter.

The mechanism (an exact Redis bucket per user) is in ``shared.redis_exact_bucket``; this module
decides which rates apply to a user (override or ``RENDER_RATE_LIMIT``), widens every window by
``RATE_LIMIT_MARGIN_MS`` and answers the UI question "how many renders may I still start, and
when does the next slot free up?" (``quota``). Workers take a permit in the rate-limit
middleware; producers only read.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import redis
from pyrate_limiter import Rate

from shared.per_process import PerProcess
from shared.rate_spec import parse_rates
from shared.redis_client import get_redis
from shared.redis_exact_bucket import ExactRedisBucket, KeyedBucketFactory
from shared.redis_keys import keys
from shared.settings import get_settings
from shared.user_limits import rate_spec_for


@dataclass(frozen=True)
class Permit:
    allowed: bool
    #: Milliseconds until the user's next permit (0 when allowed).
    wait_ms: int
    #: Refund token: pass to ``refund`` if the render did not start after all.
    member: str
    rate: str


@dataclass(frozen=True)
class Quota:
    user_id: str
    rate: str
    limit: int
    window_s: float
    used: int
    remaining: int
    #: When the next render may start (now, when ``remaining`` > 0).
    next_slot_at: datetime


def effective_rates(user_id: str) -> list[Rate]:
    """The user's rates with the start-latency margin added to each window."""
    return _with_margin(rate_spec_for(user_id), get_settings().rate_limit_margin_ms)


@lru_cache(maxsize=256)
def _with_margin(spec: str, margin_ms: int) -> list[Rate]:
    return [Rate(r.limit, r.interval + margin_ms) for r in parse_rates(spec)]


class UserRateLimiter:
    def __init__(self, client: redis.Redis | None = None) -> None:
        self.factory = KeyedBucketFactory(
            client or get_redis(), keys().rate_limit_prefix(), effective_rates
        )

    def _bucket(self, user_id: str) -> ExactRedisBucket:
        return self.factory.get(self.factory.wrap_item(user_id))

    def acquire(self, user_id: str, member_hint: str = "") -> Permit:
        """Take one permit now, or learn how long until one frees up. Raises on Redis errors."""
        item = self.factory.wrap_item(user_id)
        bucket = self.factory.get(item)
        member = f"{member_hint}:{uuid.uuid4().hex[:12]}"
        decision = bucket.decide(item, member)
        spec = rate_spec_for(user_id)
        if decision.allowed:
            return Permit(True, 0, member, spec)
        wait = decision.retry_after_ms if decision.retry_after_ms is not None else 60_000
        return Permit(False, wait, member, spec)

    def confirm(self, user_id: str, member: str) -> Permit:
        """Re-stamp a held permit to now, right before the start it pays for (see
        ``ExactRedisBucket.restamp``). Not allowed: the permit is gone; wait ``wait_ms``."""
        decision = self._bucket(user_id).restamp(member)
        if decision.allowed:
            return Permit(True, 0, member, rate_spec_for(user_id))
        return Permit(False, decision.retry_after_ms or 1_000, member, rate_spec_for(user_id))

    def touch(self, user_id: str, member: str) -> None:
        """After the start: stamp the permit with the time the start is known to have happened."""
        self._bucket(user_id).touch(member)

    def refund(self, user_id: str, member: str) -> None:
        self._bucket(user_id).remove(member)

    def quota(self, user_id: str) -> Quota:
        bucket = self._bucket(user_id)
        decision, now_ms, count = bucket.check()
        # Report against the user-facing rate (without the margin), the tightest one failing.
        rate = decision.failing_rate or bucket.rates[0]
        margin = get_settings().rate_limit_margin_ms
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        wait_ms = 0 if decision.allowed else decision.retry_after_ms or 0
        return Quota(
            user_id,
            rate_spec_for(user_id),
            rate.limit,
            (rate.interval - margin) / 1000,
            count,
            max(0, rate.limit - count) if decision.allowed else 0,
            now + timedelta(milliseconds=wait_ms),
        )


_limiter: PerProcess[UserRateLimiter] = PerProcess(UserRateLimiter)


def get_limiter() -> UserRateLimiter:
    return _limiter.get()
