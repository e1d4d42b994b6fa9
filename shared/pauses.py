"""Pausing starts, for one user or for everything, without losing a render.

A paused render stays ``pending``; nothing about it is dropped. The Lambda budget's admit
script reads the pause hash first (read only: this module is the one that writes it), so the
start path learns of a pause without a round trip of its own; the worker then asks ``hold``,
which re-checks atomically: while its user (or everything) is paused, the render id goes into
a Redis zset of held renders (oldest first) and its message is acked, so a paused backlog
costs nothing while it waits, as parked renders do. ``resume`` lifts the pause and, in
the same script, takes out every held render no pause still covers; the caller sends each a
start message. A crash between the two leaves pending renders with no message and no hold,
which the reconciler re-enqueues (it skips held renders, as it skips parked ones).

Pauses live in Redis beside the queues they gate (a start checks them in one round trip);
who paused what, and when, is also in the audit log (``shared.operations``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.models import utcnow
from shared.redis_client import get_redis
from shared.redis_keys import keys

#: The hash field of a pause of everything; a user's is ``user:<id>``.
ALL = "all"

_HOLD = """
local field = 'all'
local pause = redis.call('HGET', KEYS[1], field)
if not pause then
  field = 'user:' .. ARGV[2]
  pause = redis.call('HGET', KEYS[1], field)
end
if not pause then return false end
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return {field, pause}
"""

_RESUME = """
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HEXISTS', KEYS[1], 'all') == 1 then return {} end
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
local out = {}
for _, rid in ipairs(ids) do
  local user = redis.call('HGET', KEYS[3], rid)
  if not user or redis.call('HEXISTS', KEYS[1], 'user:' .. user) == 0 then
    redis.call('ZREM', KEYS[2], rid)
    redis.call('HDEL', KEYS[3], rid)
    table.insert(out, rid)
  end
end
return out
"""


@dataclass(frozen=True)
class Pause:
    """An active pause: ``user_id`` None pauses every start."""

    user_id: str | None
    by: str
    at: datetime
    reason: str | None

    @property
    def scope(self) -> str:
        return ALL if self.user_id is None else f"user:{self.user_id}"

    def describe(self) -> str:
        what = "all starts" if self.user_id is None else f"starts of user {self.user_id}"
        why = f": {self.reason}" if self.reason else ""
        return f"{what} paused by {self.by} at {self.at:%Y-%m-%d %H:%M:%S} UTC{why}"


def _field(user_id: str | None) -> str:
    return ALL if user_id is None else f"user:{user_id}"


def _parse(field: str, raw: bytes | str) -> Pause:
    doc: dict[str, Any] = json.loads(raw)
    user_id = None if field == ALL else field.removeprefix("user:")
    return Pause(user_id, doc["by"], datetime.fromisoformat(doc["at"]), doc.get("reason"))


def _keys() -> list[str]:
    k = keys()
    return [k.pauses(), k.paused_renders(), k.paused_render_users()]


def pause(user_id: str | None, *, by: str, reason: str | None = None) -> Pause:
    """Pause starts of ``user_id`` (None: of everything). Pausing again keeps the first one's
    time and author (the pause is one fact, not a counter)."""
    doc = {"by": by, "at": utcnow().isoformat(), "reason": reason}
    get_redis().hsetnx(keys().pauses(), _field(user_id), json.dumps(doc))
    found = pause_for_scope(user_id)
    assert found is not None  # just written, or written before
    return found


def resume(user_id: str | None) -> list[str]:
    """Lift the pause of ``user_id`` (None: of everything); returns the held renders it
    released, oldest first, which the caller must send start messages for."""
    script = get_redis().register_script(_RESUME)
    released = script(keys=_keys(), args=[_field(user_id)])
    return [r.decode() if isinstance(r, bytes) else str(r) for r in released]


def hold(render_id: str, user_id: str, enqueued_ms: int) -> Pause | None:
    """Hold ``render_id`` if its user (or everything) is paused; returns that pause, or None
    when the render may go on."""
    script = get_redis().register_script(_HOLD)
    found = script(keys=_keys(), args=[render_id, user_id, enqueued_ms])
    if not found:
        return None
    field, raw = found
    return _parse(field.decode() if isinstance(field, bytes) else field, raw)


def pause_for_scope(user_id: str | None) -> Pause | None:
    raw = get_redis().hget(keys().pauses(), _field(user_id))
    return None if raw is None else _parse(_field(user_id), raw)


def pause_for(user_id: str) -> Pause | None:
    """The pause that stops ``user_id``'s renders from starting (everything's first)."""
    return pause_for_scope(None) or pause_for_scope(user_id)


def active() -> list[Pause]:
    """Every active pause, everything's first, then users by name."""
    raw: dict[bytes, bytes] = get_redis().hgetall(keys().pauses())  # type: ignore[assignment]  # redis-py types sync and async results as one union
    found = [_parse(f.decode(), v) for f, v in raw.items()]
    return sorted(found, key=lambda p: (p.user_id is not None, p.user_id or ""))


def held() -> set[str]:
    """Ids of every render held by a pause (the reconciler leaves them alone)."""
    return {r.decode() for r in get_redis().zrange(keys().paused_renders(), 0, -1)}  # type: ignore[union-attr]  # redis-py types sync and async results as one union


def held_count() -> int:
    return int(get_redis().zcard(keys().paused_renders()))


def is_held(render_id: str) -> bool:
    return get_redis().zscore(keys().paused_renders(), render_id) is not None


def forget(render_ids: Iterable[str]) -> None:
    """Drop holds of renders that will not start (cancelled, gone)."""
    ids = list(render_ids)
    if ids:
        pipe = get_redis().pipeline(transaction=True)
        pipe.zrem(keys().paused_renders(), *ids)
        pipe.hdel(keys().paused_render_users(), *ids)
        pipe.execute()
