"""Per-user rate-limit overrides (plan tiers), read through one briefly cached function.

An operator changes a user's limit with ``set_user_limit`` (or an UPDATE on ``user_limits``);
every worker picks it up within ``USER_LIMIT_CACHE_S`` seconds, without a deploy.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from sqlmodel import Session

from shared.db import get_engine, session_scope
from shared.models import UserLimit, utcnow
from shared.rate_spec import parse_rates
from shared.settings import get_settings

_MAX_CACHED = 10_000
_cache: OrderedDict[str, tuple[float, str | None]] = OrderedDict()
_lock = threading.Lock()


def rate_spec_for(user_id: str) -> str:
    """The rate-limit spec that applies to this user: the override, else RENDER_RATE_LIMIT."""
    settings = get_settings()
    now = time.monotonic()
    with _lock:
        hit = _cache.get(user_id)
        if hit is not None and hit[0] > now:
            _cache.move_to_end(user_id)
            return hit[1] or settings.render_rate_limit
    with Session(get_engine()) as session:
        row = session.get(UserLimit, user_id)
    spec = row.render_rate_limit if row is not None else None
    with _lock:
        _cache[user_id] = (now + settings.user_limit_cache_s, spec)
        _cache.move_to_end(user_id)
        while len(_cache) > _MAX_CACHED:
            _cache.popitem(last=False)
    return spec or settings.render_rate_limit


def set_user_limit(user_id: str, spec: str | None, note: str | None = None) -> None:
    """Set (or with ``spec=None`` remove) a user's override. Validates the spec first."""
    with session_scope() as session:
        row = session.get(UserLimit, user_id)
        if spec is None:
            if row is not None:
                session.delete(row)
        else:
            parse_rates(spec)
            if row is None:
                row = UserLimit(user_id=user_id, render_rate_limit=spec, note=note)
            else:
                row.render_rate_limit, row.note, row.updated_at = spec, note, utcnow()
            session.add(row)
    clear_cache(user_id)


def clear_cache(user_id: str | None = None) -> None:
    with _lock:
        if user_id is None:
            _cache.clear()
        else:
            _cache.pop(user_id, None)
