"""The Lambda concurrency budget: start a render only while its functions fit.

AWS caps concurrent Lambda executions per region (1,000 by default, as low as 10 on new
accounts) and each Remotion render occupies 1 + ceil(frames / framesPerLambda) of them.
Starting more than fits only yields TooManyRequests errors inside renders. So a render is
admitted to ``rendering`` only while the estimated functions of every render in flight stay
within ``LAMBDA_CONCURRENCY_BUDGET``; otherwise it waits ``pending``, oldest first across users.

State lives in Redis (so all workers share it) and every change is one Lua script:

* ``<ns>:budget:inflight`` hash render id -> functions held;
* ``<ns>:budget:admitted`` hash render id -> when it was admitted (ms, Redis clock);
* ``<ns>:budget:waiting`` zset render id -> created_at (ms): renders waiting for room;
* ``<ns>:budget:seen`` hash render id -> last time a waiting render asked (ms);
* ``<ns>:budget:used`` the running total of ``inflight`` (so admission is O(1)).

The budget is released when a render completes, fails or times out (the poller), when its start
fails, and by ``reconcile`` for renders whose worker died holding it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import redis

from shared.per_process import PerProcess
from shared.redis_client import get_redis
from shared.redis_keys import BUDGET_PARTS, keys
from shared.settings import get_settings

MAX_FUNCTIONS_PER_RENDER = 200
MIN_FRAMES_PER_LAMBDA = 5


def default_frames_per_lambda(frames: int) -> int:
    """Remotion's own default: 75..150 renderer functions over 0..18,000 frames, >= 20 frames
    each (``lambda-client`` ``best-frames-per-lambda``). We pass the result explicitly so the
    estimate below is exactly what Lambda runs."""
    concurrency = 75 + 75 * min(frames, 18_000) / 18_000
    per_function = max(frames / concurrency, 20)
    functions = math.ceil(frames / per_function)
    return max(math.ceil(frames / functions), min(MIN_FRAMES_PER_LAMBDA, frames))


def frames_per_lambda(frames: int) -> int:
    configured = get_settings().frames_per_lambda
    return configured if configured else default_frames_per_lambda(frames)


def estimate_functions(frames: int) -> int:
    """1 orchestrator + one renderer per chunk (Remotion caps chunks at 200)."""
    return 1 + min(MAX_FUNCTIONS_PER_RENDER, math.ceil(frames / frames_per_lambda(frames)))


# KEYS: inflight, admitted, waiting, seen, used.
# ARGV: render id, functions, created_ms, budget, stale_ms.
# Returns {1 admitted | 0 waiting, functions in use after the call}.
_ADMIT = """
local inflight, admitted, waiting, seen, used_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id, need, created = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local budget, stale = tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local used = tonumber(redis.call('GET', used_key) or '0')
if redis.call('HEXISTS', inflight, id) == 1 then return {1, used} end

-- Forget waiters that stopped asking (their render started elsewhere, failed or was lost),
-- so they cannot hold the head of the line forever.
local heads = redis.call('ZRANGE', waiting, 0, 20)
for _, w in ipairs(heads) do
  local last = tonumber(redis.call('HGET', seen, w) or '0')
  if last < now - stale then
    redis.call('ZREM', waiting, w)
    redis.call('HDEL', seen, w)
  end
end

local fits = used + need <= budget
if fits then
  -- Oldest first: an older waiting render goes before this one.
  local head = redis.call('ZRANGE', waiting, 0, 0, 'WITHSCORES')
  if head[1] and head[1] ~= id and tonumber(head[2]) < created then fits = false end
end
if fits then
  redis.call('HSET', inflight, id, need)
  redis.call('HSET', admitted, id, now)
  redis.call('INCRBY', used_key, need)
  redis.call('ZREM', waiting, id)
  redis.call('HDEL', seen, id)
  return {1, used + need}
end
redis.call('ZADD', waiting, 'NX', created, id)
redis.call('HSET', seen, id, now)
return {0, used}
"""

# KEYS as above; ARGV: render ids. The running total moves with the holders, atomically.
_RELEASE = """
local released = 0
for _, id in ipairs(ARGV) do
  local held = redis.call('HGET', KEYS[1], id)
  if held then
    redis.call('HDEL', KEYS[1], id)
    redis.call('DECRBY', KEYS[5], tonumber(held))
    released = released + 1
  end
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('HDEL', KEYS[4], id)
end
return released
"""


class LambdaBudget:
    def __init__(self, client: redis.Redis | None = None) -> None:
        self.redis = client or get_redis()
        self.keys = [keys().budget(part) for part in BUDGET_PARTS]
        self._admit = self.redis.register_script(_ADMIT)
        self._release = self.redis.register_script(_RELEASE)

    def admit(self, render_id: str, functions: int, created_ms: int) -> tuple[bool, int]:
        """Hold ``functions`` for this render if they fit and no older render waits first."""
        settings = get_settings()
        stale_ms = max(10_000, 5 * settings.budget_retry_ms)
        ok, used = self._admit(
            keys=self.keys,
            args=[render_id, functions, created_ms, settings.lambda_concurrency_budget, stale_ms],
        )
        return bool(ok), int(used)

    def release(self, render_id: str) -> None:
        self.release_many([render_id])

    def release_many(self, render_ids: Iterable[str]) -> None:
        ids = list(render_ids)
        for start in range(0, len(ids), 500):
            self._release(keys=self.keys, args=ids[start : start + 500])

    def in_use(self) -> int:
        return int(self.redis.get(self.keys[4]) or 0)

    def holders(self) -> dict[str, int]:
        raw: dict[bytes, bytes] = self.redis.hgetall(self.keys[0])  # type: ignore[assignment]  # redis-py types sync and async results as one union
        return {k.decode(): int(v) for k, v in raw.items()}

    def waiting(self) -> int:
        return int(self.redis.zcard(self.keys[2]))

    def admitted_at_ms(self, render_ids: Iterable[str]) -> dict[str, int]:
        ids = list(render_ids)
        if not ids:
            return {}
        values = self.redis.hmget(self.keys[1], ids)
        return {rid: int(v) for rid, v in zip(ids, values, strict=True) if v is not None}

    def redis_now_ms(self) -> int:
        seconds, micros = self.redis.time()
        return int(seconds) * 1000 + int(micros) // 1000


_budget: PerProcess[LambdaBudget] = PerProcess(LambdaBudget)


def get_budget() -> LambdaBudget:
    return _budget.get()
