"""Per-user plans (plan tiers), read through one briefly cached function.

A plan overrides, for one user, any of: the rate limit (``RENDER_RATE_LIMIT``), the share of
the Lambda budget (``DEFAULT_USER_WEIGHT``), the renders in flight at once
(``MAX_RENDERS_IN_FLIGHT_PER_USER``) and the priority class (``DEFAULT_PRIORITY``). An
operator changes one with ``set_user_plan`` (or an UPDATE on ``user_limits``); every worker
picks it up within ``USER_LIMIT_CACHE_S`` seconds, without a deploy.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlmodel import Session

from shared.db import get_engine, session_scope
from shared.models import UserLimit, utcnow
from shared.rate_spec import parse_rates
from shared.settings import get_settings

_MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class Plan:
    """What applies to one user, defaults filled in."""

    rate_limit: str
    weight: float
    max_in_flight: int  # 0: no cap
    priority: int


_cache: OrderedDict[str, tuple[float, UserLimit | None]] = OrderedDict()
_lock = threading.Lock()


def _override(user_id: str) -> UserLimit | None:
    now = time.monotonic()
    with _lock:
        hit = _cache.get(user_id)
        if hit is not None and hit[0] > now:
            _cache.move_to_end(user_id)
            return hit[1]
    with Session(get_engine(), expire_on_commit=False) as session:
        row = session.get(UserLimit, user_id)
        if row is not None:
            session.expunge(row)
    with _lock:
        _cache[user_id] = (now + get_settings().user_limit_cache_s, row)
        _cache.move_to_end(user_id)
        while len(_cache) > _MAX_CACHED:
            _cache.popitem(last=False)
    return row


def plan_for(user_id: str) -> Plan:
    settings = get_settings()
    row = _override(user_id)

    if row is None:
        return Plan(
            settings.render_rate_limit,
            settings.default_user_weight,
            settings.max_renders_in_flight_per_user,
            settings.default_priority,
        )
    return Plan(
        row.render_rate_limit or settings.render_rate_limit,
        settings.default_user_weight if row.weight is None else row.weight,
        settings.max_renders_in_flight_per_user if row.max_in_flight is None else row.max_in_flight,
        settings.default_priority if row.priority is None else row.priority,
    )


def rate_spec_for(user_id: str) -> str:
    """The rate-limit spec that applies to this user: the override, else RENDER_RATE_LIMIT."""
    return plan_for(user_id).rate_limit


_UNSET = object()


def set_user_plan(
    user_id: str,
    *,
    rate_limit: str | object | None = _UNSET,
    weight: float | object | None = _UNSET,
    max_in_flight: int | object | None = _UNSET,
    priority: int | object | None = _UNSET,
    note: str | None = None,
) -> None:
    """Change the given parts of a user's plan (None: back to the default); the row goes
    away when nothing is overridden. Validates every value first."""
    changes: dict[str, object] = {}
    if rate_limit is not _UNSET:
        if rate_limit is not None:
            parse_rates(str(rate_limit))
        changes["render_rate_limit"] = rate_limit
    if weight is not _UNSET:
        if weight is not None and not float(weight) > 0:  # type: ignore[arg-type]  # checked by the sentinel above
            raise ValueError(f"weight must be > 0, not {weight!r}")
        changes["weight"] = weight
    if max_in_flight is not _UNSET:
        if max_in_flight is not None and int(max_in_flight) < 0:  # type: ignore[call-overload]  # checked by the sentinel above
            raise ValueError(f"max_in_flight must be >= 0, not {max_in_flight!r}")
        changes["max_in_flight"] = max_in_flight
    if priority is not _UNSET:
        if priority is not None and not 0 <= int(priority) <= 9:  # type: ignore[call-overload]  # checked by the sentinel above
            raise ValueError(f"priority must be 0..9, not {priority!r}")
        changes["priority"] = priority
    with session_scope() as session:
        row = session.get(UserLimit, user_id) or UserLimit(user_id=user_id)
        for field, value in changes.items():
            setattr(row, field, value)
        row.note, row.updated_at = note or row.note, utcnow()
        overridden = (row.render_rate_limit, row.weight, row.max_in_flight, row.priority)
        if all(v is None for v in overridden):
            if session.get(UserLimit, user_id) is not None:
                session.delete(row)
        else:
            session.add(row)
    clear_cache(user_id)


def set_user_limit(user_id: str, spec: str | None, note: str | None = None) -> None:
    """Set (or with ``spec=None`` remove) a user's rate-limit override."""
    set_user_plan(user_id, rate_limit=spec, note=note)


def clear_cache(user_id: str | None = None) -> None:
    with _lock:
        if user_id is None:
            _cache.clear()
        else:
            _cache.pop(user_id, None)
