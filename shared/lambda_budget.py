"""The Lambda concurrency budget: who starts next, and in which pool, when room is short.

AWS caps concurrent Lambda executions per region and account (1,000 by default, as low as 10
on new accounts); each Remotion render occupies 1 + its renderer chunks of them
(``shared.render_plan``). Starting more than fits only yields "Rate Exceeded" inside renders.
So a render starts only while its functions fit in a pool's *effective* budget, and when
several wait, the next one is chosen fairly, not by global age:

* **Parked, not re-delivered.** A render that does not fit is parked here and its message is
  acked: waiting costs no queue traffic. Whoever frees room (a release: completion, failure,
  cancel, a failed start, the reconciler) runs the dispatch in the same script and gets back
  the renders it admitted; ``shared.admission`` sends each a start message.
* **Priority classes** 0..9 (higher first, from the user's plan) strictly before lower ones.
* **Start-time fair queuing across users** within a class: each user with parked renders sits
  in ``users:<class>`` scored by its start tag ``max(vtime, finish[user])``; admitting one of
  its renders (oldest first) charges ``functions / weight`` to its finish tag. Users' shares of
  budget-seconds converge on their weights whatever their backlog; a newly arrived user starts
  at the current virtual time, so it goes next, not after a flood's backlog.
* **In-flight cap** per user: a user at its cap leaves the candidate set until one of its
  renders releases.
* **Strict head of line**: if the fair candidate fits no pool, nothing behind it jumps ahead
  (a large render would otherwise starve), so it starts as soon as enough room frees.
* **Pools** in preference order (``LAMBDA_POOLS``): the first with room wins.
* **AIMD**: a throttled start or a render throttled inside Lambda ``shrink``\\ s that pool's
  effective budget by half (never below ``LAMBDA_BUDGET_FLOOR_SHARE`` of it, at most once per
  cooldown); it recovers by ``LAMBDA_BUDGET_RECOVERY_PER_S`` functions a second, computed
  lazily from when it was shrunk, so no timer is needed and it never exceeds the configured
  budget.

Every operation is one Lua script over the namespace's ``budget:*`` keys (``shared.redis_keys``,
which also names the per-user and per-class key prefixes passed in): atomic across every worker
and O(log n) in the number parked. The per-user and per-class keys are built inside the script,
which a single Redis (what Dramatiq's broker needs anyway) allows and Redis Cluster would not.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from shared.per_process import PerProcess
from shared.pools import Pool, configured_pools
from shared.redis_client import get_redis
from shared.redis_keys import BUDGET_PARTS, keys
from shared.settings import get_settings

#: Renders one call may admit; the rest are admitted by the next release or sweep.
MAX_DISPATCH = 200

# KEYS: BUDGET_PARTS in order.
# ARGV[1] op, [2] queue prefix, [3] users prefix, [4] floor share, [5] cooldown ms,
# [6] recovery per s, [7] pool count n, then n x (name, budget), then the op's arguments.
_SCRIPT = """
local K = {}
for i, name in ipairs({'inflight', 'held_by', 'used', 'parked', 'user_inflight',
                       'finish', 'vtime', 'aimd'}) do K[name] = KEYS[i] end
local op, qprefix, uprefix = ARGV[1], ARGV[2], ARGV[3]
local floor_share, cooldown, recovery = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local npools = tonumber(ARGV[7])
local pools = {}
for i = 1, npools do
  pools[i] = {name = ARGV[6 + 2 * i], budget = tonumber(ARGV[7 + 2 * i])}
end
local argi = 8 + 2 * npools
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local function effective(pool)
  local e0 = redis.call('HGET', K.aimd, pool.name .. ':e0')
  if not e0 then return pool.budget end
  local t0 = tonumber(redis.call('HGET', K.aimd, pool.name .. ':t0') or now)
  local e = tonumber(e0) + recovery * (now - t0) / 1000
  if e >= pool.budget then
    redis.call('HDEL', K.aimd, pool.name .. ':e0', pool.name .. ':t0', pool.name .. ':shrunk')
    return pool.budget
  end
  return math.floor(e)
end

local function used(name) return tonumber(redis.call('HGET', K.used, name) or '0') end

local function enlist(user)
  -- A user with parked renders and room under its cap becomes a candidate at its start tag.
  local head = redis.call('ZRANGE', qprefix .. ':' .. user, 0, 0)[1]
  if not head then return end
  local entry = cjson.decode(redis.call('HGET', K.parked, head))
  if entry.cap > 0 and tonumber(redis.call('HGET', K.user_inflight, user) or '0') >= entry.cap then
    return
  end
  local key = uprefix .. ':' .. entry.p
  if redis.call('ZSCORE', key, user) then return end
  local vtime = tonumber(redis.call('GET', K.vtime) or '0')
  local finish = tonumber(redis.call('HGET', K.finish, user) or '0')
  redis.call('ZADD', key, math.max(vtime, finish), user)
end

local function unlist(user, p)
  redis.call('ZREM', uprefix .. ':' .. p, user)
end

local function grant(rid, need, user, pool)
  redis.call('HSET', K.inflight, rid, need)
  redis.call('HSET', K.held_by, rid, pool .. '\\t' .. user)
  redis.call('HINCRBY', K.used, pool, need)
  redis.call('HINCRBY', K.user_inflight, user, 1)
end

local function dispatch(limit, reserved)
  -- ``reserved``: room per pool promised to renders sent on in this call (``line_up``).
  reserved = reserved or {}
  local out = {}
  while #out < limit do
    local key, user, start = nil, nil, nil
    for p = 9, 0, -1 do
      local top = redis.call('ZRANGE', uprefix .. ':' .. p, 0, 0, 'WITHSCORES')
      if top[1] then key, user, start = uprefix .. ':' .. p, top[1], tonumber(top[2]); break end
    end
    if not user then break end
    local queue = qprefix .. ':' .. user
    local rid = redis.call('ZRANGE', queue, 0, 0)[1]
    if not rid then redis.call('ZREM', key, user) else
      local entry = cjson.decode(redis.call('HGET', K.parked, rid))
      local chosen = nil
      for _, pool in ipairs(pools) do
        if used(pool.name) + (reserved[pool.name] or 0) + entry.f <= effective(pool) then
          chosen = pool.name; break
        end
      end
      if not chosen then break end  -- strict head of line: nothing jumps the fair candidate
      grant(rid, entry.f, user, chosen)
      redis.call('ZREM', queue, rid)
      redis.call('HDEL', K.parked, rid)
      local finish = start + entry.f / entry.w
      redis.call('HSET', K.finish, user, finish)
      redis.call('SET', K.vtime, start)
      redis.call('ZREM', key, user)
      enlist(user)
      out[#out + 1] = rid
      out[#out + 1] = chosen
    end
  end
  return out
end

local function forget(rid)
  -- Drop a parked render (cancelled, failed, gone) from its user's line.
  local raw = redis.call('HGET', K.parked, rid)
  if not raw then return end
  local entry = cjson.decode(raw)
  local queue = qprefix .. ':' .. entry.u
  redis.call('HDEL', K.parked, rid)
  redis.call('ZREM', queue, rid)
  unlist(entry.u, entry.p)
  enlist(entry.u)
end

local function release(rid)
  local need = redis.call('HGET', K.inflight, rid)
  if not need then forget(rid); return 0 end
  local held = redis.call('HGET', K.held_by, rid) or ''
  local tab = string.find(held, '\\t', 1, true)
  local pool, user = held, ''
  if tab then pool, user = string.sub(held, 1, tab - 1), string.sub(held, tab + 1) end
  redis.call('HDEL', K.inflight, rid)
  redis.call('HDEL', K.held_by, rid)
  if redis.call('HINCRBY', K.used, pool, -tonumber(need)) <= 0 then
    redis.call('HDEL', K.used, pool)
  end
  if user ~= '' then
    if redis.call('HINCRBY', K.user_inflight, user, -1) <= 0 then
      redis.call('HDEL', K.user_inflight, user)
      if redis.call('EXISTS', qprefix .. ':' .. user) == 0 then
        redis.call('HDEL', K.finish, user)  -- idle: it restarts at the virtual time
      end
    end
    enlist(user)
  end
  return 1
end

local function park(rid, user, need, created, weight, cap, prio)
  local queue = qprefix .. ':' .. user
  -- The user's plan is read from its oldest parked render: bring that one up to date (the
  -- plan may have changed since it parked), leaving the class it was listed in if it moved.
  local oldhead = redis.call('ZRANGE', queue, 0, 0)[1]
  if oldhead then
    local entry = cjson.decode(redis.call('HGET', K.parked, oldhead))
    if entry.p ~= prio then unlist(user, entry.p) end
  end
  local again = redis.call('HGET', K.parked, rid)
  if again then created = cjson.decode(again).c end  -- a second message keeps its place
  redis.call('HSET', K.parked, rid, cjson.encode({u = user, f = need, w = weight, cap = cap,
                                                  p = prio, c = created}))
  redis.call('ZADD', queue, 'NX', created, rid)
  local head = redis.call('ZRANGE', queue, 0, 0)[1]
  if head ~= rid then
    local entry = cjson.decode(redis.call('HGET', K.parked, head))
    entry.w, entry.cap, entry.p = weight, cap, prio
    redis.call('HSET', K.parked, head, cjson.encode(entry))
  end
  enlist(user)
end

if op == 'line_up' then
  -- Many renders at enqueue: ARGV[argi] dispatch limit, then 7 values per render.
  local go, transit, parked = {}, {}, 0
  for i = argi + 1, #ARGV, 7 do
    local rid, user, need = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
    local sent = false
    if redis.call('HLEN', K.parked) == 0 then
      -- Nobody waits and it fits (with what this call already sent on): the producer sends
      -- it a start message; its start takes the room.
      for _, pool in ipairs(pools) do
        local t = transit[pool.name] or 0
        if used(pool.name) + t + need <= effective(pool) then
          transit[pool.name] = t + need
          go[#go + 1] = rid
          sent = true
          break
        end
      end
    end
    if not sent then
      park(rid, user, need, tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]),
           tonumber(ARGV[i + 5]), tonumber(ARGV[i + 6]))
      parked = parked + 1
    end
  end
  local out = {}
  if parked > 0 then out = dispatch(tonumber(ARGV[argi]), transit) end
  return {#go, go, out}
elseif op == 'admit' then
  local rid, user, need, created = ARGV[argi], ARGV[argi + 1], tonumber(ARGV[argi + 2]),
    tonumber(ARGV[argi + 3])
  local weight, cap, prio = tonumber(ARGV[argi + 4]), tonumber(ARGV[argi + 5]),
    tonumber(ARGV[argi + 6])
  -- Starts paused (shared.pauses owns that hash; read here, never written): no room, no
  -- place in line. The caller holds the render there, in the same round trip's stead.
  local pauses = ARGV[argi + 8]
  if pauses ~= '' and (redis.call('HEXISTS', pauses, 'all') == 1
                       or redis.call('HEXISTS', pauses, 'user:' .. user) == 1) then
    return {2, '', {}}
  end
  local held = redis.call('HGET', K.held_by, rid)
  if held then
    return {1, string.sub(held, 1, (string.find(held, '\\t', 1, true) or 0) - 1), {}}
  end
  park(rid, user, need, created, weight, cap, prio)
  local out = dispatch(tonumber(ARGV[argi + 7]))
  local mine = nil
  for i = 1, #out, 2 do if out[i] == rid then mine = out[i + 1] end end
  if mine then return {1, mine, out} end
  return {0, '', out}
elseif op == 'release' then
  local released = 0
  for i = argi + 1, #ARGV do released = released + release(ARGV[i]) end
  return {released, '', dispatch(tonumber(ARGV[argi]))}
elseif op == 'dispatch' then
  if redis.call('HLEN', K.parked) == 0 then return {0, '', {}} end
  return {0, '', dispatch(tonumber(ARGV[argi]))}
elseif op == 'shrink' then
  local name = ARGV[argi]
  for _, pool in ipairs(pools) do
    if pool.name == name then
      local last = tonumber(redis.call('HGET', K.aimd, name .. ':shrunk') or '0')
      local e = effective(pool)
      if now - last < cooldown then return {0, tostring(e), {}} end
      local low = math.max(1, math.ceil(pool.budget * floor_share))
      local new = math.max(low, math.floor(e / 2))
      redis.call('HSET', K.aimd, name .. ':e0', new, name .. ':t0', now, name .. ':shrunk', now)
      return {1, tostring(new), {}}
    end
  end
  return {0, '', {}}
elseif op == 'effective' then
  local out = {}
  for _, pool in ipairs(pools) do
    out[#out + 1] = pool.name
    out[#out + 1] = tostring(effective(pool))
    out[#out + 1] = tostring(used(pool.name))
  end
  return {0, '', out}
end
return redis.error_reply('unknown budget op ' .. tostring(op))
"""


@dataclass(frozen=True, slots=True)
class Grant:
    """A render the budget admitted: it holds ``functions`` in ``pool`` until released."""

    render_id: str
    pool: str


@dataclass(frozen=True, slots=True)
class Admission:
    """What ``admit`` decided for the render that asked, and whom else it let in."""

    pool: str | None  # None: parked (a release will dispatch it), or paused
    dispatched: list[Grant]
    #: Starts of its user (or all) are paused: it was neither admitted nor parked.
    paused: bool = False


@dataclass(frozen=True, slots=True)
class LineUp:
    """A render to line up at enqueue, with its user's plan."""

    render_id: str
    user_id: str
    functions: int
    created_ms: int
    weight: float = 1.0
    max_in_flight: int = 0
    priority: int = 0


@dataclass(frozen=True, slots=True)
class PoolUse:
    name: str
    configured: int
    effective: int
    in_use: int


def _grants(flat: Sequence[bytes | str]) -> list[Grant]:
    items = [v.decode() if isinstance(v, bytes) else str(v) for v in flat]
    return [Grant(items[i], items[i + 1]) for i in range(0, len(items), 2)]


class LambdaBudget:
    """The one owner of the budget's Redis state; callers go through ``shared.admission``."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self.redis = client or get_redis()
        self.keys = [keys().budget(part) for part in BUDGET_PARTS]
        self._key = dict(zip(BUDGET_PARTS, self.keys, strict=True))
        self._script = self.redis.register_script(_SCRIPT)

    def _header(self, op: str, pools: Sequence[Pool] | None = None) -> list[Any]:
        settings = get_settings()
        chosen = configured_pools() if pools is None else pools
        header: list[Any] = [
            op,
            keys().budget_queue_prefix(),
            keys().budget_users_prefix(),
            settings.lambda_budget_floor_share,
            int(settings.lambda_budget_shrink_cooldown_s * 1000),
            settings.lambda_budget_recovery_per_s,
            len(chosen),
        ]
        for pool in chosen:
            header += [pool.name, pool.budget]
        return header

    def _run(self, op: str, *args: Any, pools: Sequence[Pool] | None = None) -> list[Any]:
        result = self._script(keys=self.keys, args=[*self._header(op, pools), *args])
        return list(result)

    def admit(
        self,
        render_id: str,
        user_id: str,
        functions: int,
        created_ms: int,
        *,
        weight: float = 1.0,
        max_in_flight: int = 0,
        priority: int = 0,
        pauses_key: str = "",
    ) -> Admission:
        """Hold room for this render now, or park it in its user's line (idempotent: a render
        that already holds room gets its pool back). With ``pauses_key`` (the hash of
        ``shared.pauses``), a render whose starts are paused is answered ``paused`` first,
        so the start path checks pauses without a round trip of its own."""
        admitted, pool, dispatched = self._run(
            "admit",
            render_id,
            user_id,
            functions,
            created_ms,
            weight,
            max_in_flight,
            priority,
            MAX_DISPATCH,
            pauses_key,
        )
        if admitted == 2:
            return Admission(None, [], paused=True)
        name = pool.decode() if isinstance(pool, bytes) else str(pool)
        grants = [g for g in _grants(dispatched) if g.render_id != render_id]
        return Admission(name if admitted else None, grants)

    def line_up(self, entries: Sequence[LineUp]) -> tuple[list[str], list[Grant]]:
        """At enqueue: park each render whose turn has not come (someone already waits, or
        no pool has room for it besides those this call sends on), in one script per 500;
        returns the renders to send a start message now, and the renders the call admitted
        (the caller wakes them, as after a release). Parking at enqueue puts a render in its
        user's line the moment it is created, not when its message is consumed behind a
        flood's backlog. A render sent on that finds no room when it starts parks then."""
        go: list[str] = []
        granted: list[Grant] = []
        for start in range(0, len(entries), 500):
            args: list[Any] = [MAX_DISPATCH]
            for e in entries[start : start + 500]:
                args += [e.render_id, e.user_id, e.functions, e.created_ms, e.weight]
                args += [e.max_in_flight, e.priority]
            _, sent, dispatched = self._run("line_up", *args)
            go += [v.decode() if isinstance(v, bytes) else str(v) for v in sent]
            granted += _grants(dispatched)
        return go, granted

    def release_many(self, render_ids: Iterable[str]) -> list[Grant]:
        """Give back the room (or the place in line) of these renders; returns whom the freed
        room admitted."""
        ids = list(render_ids)
        granted: list[Grant] = []
        for start in range(0, max(len(ids), 1), 500):
            _, _, dispatched = self._run("release", MAX_DISPATCH, *ids[start : start + 500])
            granted += _grants(dispatched)
        return granted

    def dispatch(self) -> list[Grant]:
        """Admit what fits now (after a budget recovered or was raised: the safety sweep)."""
        _, _, dispatched = self._run("dispatch", MAX_DISPATCH)
        return _grants(dispatched)

    def shrink(self, pool: str) -> int | None:
        """Halve ``pool``'s effective budget after throttling; None if within the cooldown."""
        shrunk, value, _ = self._run("shrink", pool)
        return int(value) if shrunk else None

    def pools(self) -> list[PoolUse]:
        _, _, flat = self._run("effective")
        items = [v.decode() if isinstance(v, bytes) else str(v) for v in flat]
        budgets = {p.name: p.budget for p in configured_pools()}
        return [
            PoolUse(items[i], budgets[items[i]], int(items[i + 1]), int(items[i + 2]))
            for i in range(0, len(items), 3)
        ]

    def any_shrunk(self) -> bool:
        return bool(self.redis.exists(self._key["aimd"]))

    def in_use(self) -> int:
        raw: dict[bytes, bytes] = self.redis.hgetall(self._key["used"])  # type: ignore[assignment]  # redis-py types sync and async results as one union
        return sum(int(v) for v in raw.values())

    def holds(self, render_id: str) -> bool:
        return bool(self.redis.hexists(self._key["inflight"], render_id))

    def holders(self) -> dict[str, int]:
        raw: dict[bytes, bytes] = self.redis.hgetall(self._key["inflight"])  # type: ignore[assignment]  # redis-py types sync and async results as one union
        return {k.decode(): int(v) for k, v in raw.items()}

    def parked(self) -> set[str]:
        return {k.decode() for k in self.redis.hkeys(self._key["parked"])}  # type: ignore[union-attr]  # redis-py types sync and async results as one union

    def sample_parked(self, count: int) -> set[str]:
        """Up to ``count`` parked render ids at random (the reconciler's safety check: every
        one of them over a few passes, without reading thousands each time)."""
        sample = self.redis.hrandfield(self._key["parked"], count)
        return {k.decode() for k in sample or []}  # type: ignore[union-attr]  # redis-py types sync and async results as one union

    def waiting(self) -> int:
        return int(self.redis.hlen(self._key["parked"]))

    def waiting_by_user(self, limit: int = 10) -> dict[str, int]:
        """Parked renders per user (the ``limit`` users with most), for status."""
        counts: dict[str, int] = {}
        for raw in self.redis.hvals(self._key["parked"]):
            user = json.loads(raw)["u"]
            counts[user] = counts.get(user, 0) + 1
        top = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
        return dict(top)

    def pool_of(self, render_id: str) -> str | None:
        held = self.redis.hget(self._key["held_by"], render_id)
        return held.decode().split("\t", 1)[0] if isinstance(held, bytes) else None


_budget: PerProcess[LambdaBudget] = PerProcess(LambdaBudget)


def get_budget() -> LambdaBudget:
    return _budget.get()
