"""The per-user rate limit against real Redis: exactness under racing processes, waits,
refunds, overrides, quota, TTLs and recovery from SCRIPT FLUSH."""

from __future__ import annotations

import multiprocessing
import time
import uuid

import pytest
import redis
from pyrate_limiter import Rate

from shared import user_limits
from shared.rate_limit import UserRateLimiter
from shared.redis_exact_bucket import ExactRedisBucket, KeyedBucketFactory
from shared.settings import get_settings


def _race(redis_url: str, key: str, barrier, results, attempts: int) -> None:
    client = redis.Redis.from_url(redis_url)
    bucket = ExactRedisBucket([Rate(5, 60_000)], client, key)
    factory = KeyedBucketFactory(client, "unused", lambda _: [Rate(5, 60_000)])
    barrier.wait()
    admitted = 0
    for _ in range(attempts):
        if bucket.decide(factory.wrap_item("u")).allowed:
            admitted += 1
    results.put(admitted)
    client.close()


@pytest.mark.own_redis_keys
def test_exact_under_racing_processes(redis_url, namespace):
    """12 processes hammer one key at the same instant; over 20 trials the window never
    admits more (or fewer) than the limit. The stock RedisBucket fails this."""
    ctx = multiprocessing.get_context("fork")
    trials, procs = 20, 12
    for trial in range(trials):
        key = f"{namespace}:race:{trial}"
        barrier, results = ctx.Barrier(procs), ctx.Queue()
        workers = [
            ctx.Process(target=_race, args=(redis_url, key, barrier, results, 3))
            for _ in range(procs)
        ]
        for w in workers:
            w.start()
        total = sum(results.get(timeout=30) for _ in workers)
        for w in workers:
            w.join(10)
        assert total == 5, f"trial {trial}: {total} admitted for a limit of 5"


@pytest.fixture
def limiter(env, use_db, sqlite_url, monkeypatch):
    use_db(sqlite_url)
    monkeypatch.setenv("RENDER_RATE_LIMIT", "2/1s")
    monkeypatch.setenv("RATE_LIMIT_MARGIN_MS", "0")
    get_settings.cache_clear()
    return UserRateLimiter()


def test_wait_is_time_until_the_oldest_permit_leaves(limiter):
    assert limiter.acquire("alice").allowed
    time.sleep(0.2)
    assert limiter.acquire("alice").allowed
    denied = limiter.acquire("alice")
    assert not denied.allowed
    assert 700 <= denied.wait_ms <= 820
    assert limiter.acquire("bob").allowed  # users do not share a bucket
    time.sleep(denied.wait_ms / 1000 + 0.02)
    assert limiter.acquire("alice").allowed


def test_refund_gives_the_permit_back(limiter):
    first = limiter.acquire("alice")
    limiter.acquire("alice")
    assert not limiter.acquire("alice").allowed
    limiter.refund("alice", first.member)
    assert limiter.acquire("alice").allowed


def test_keys_expire_and_memory_follows_active_users(limiter, redis_url, namespace):
    client = redis.Redis.from_url(redis_url)
    for i in range(50):
        limiter.acquire(f"user-{i}")
    keys = list(client.scan_iter(match=f"{namespace}:ratelimit:*"))
    assert len(keys) == 50
    assert all(0 < client.pttl(k) <= 2_000 for k in keys)
    time.sleep(2.1)
    assert list(client.scan_iter(match=f"{namespace}:ratelimit:*")) == []


def test_recovers_after_script_flush(limiter, redis_url):
    assert limiter.acquire("alice").allowed
    redis.Redis.from_url(redis_url).script_flush()
    assert limiter.acquire("alice").allowed
    assert not limiter.acquire("alice").allowed


def test_per_user_override_without_deploy(limiter, monkeypatch):
    user_limits.set_user_limit("pro", "5/1s", note="pro plan")
    assert sum(limiter.acquire("pro").allowed for _ in range(7)) == 5
    assert sum(limiter.acquire("free").allowed for _ in range(7)) == 2
    with pytest.raises(ValueError, match="invalid rate"):
        user_limits.set_user_limit("pro", "lots")


def test_override_cache_expires(limiter, monkeypatch):
    monkeypatch.setenv("USER_LIMIT_CACHE_S", "0.2")
    get_settings.cache_clear()
    assert user_limits.rate_spec_for("vip") == "2/1s"
    from shared.db import session_scope
    from shared.models import UserLimit

    with session_scope() as session:  # an operator's UPDATE, bypassing the cache
        session.add(UserLimit(user_id="vip", render_rate_limit="9/hour"))
    assert user_limits.rate_spec_for("vip") == "2/1s"  # still cached
    time.sleep(0.25)
    assert user_limits.rate_spec_for("vip") == "9/hour"


def test_several_rates_all_apply(limiter, monkeypatch):
    monkeypatch.setenv("RENDER_RATE_LIMIT", "3/1s,4/10s")
    get_settings.cache_clear()
    assert sum(limiter.acquire("alice").allowed for _ in range(5)) == 3
    time.sleep(1.05)
    results = [limiter.acquire("alice") for _ in range(3)]
    assert [r.allowed for r in results] == [True, False, False]
    assert results[1].wait_ms > 8_000  # the 10 s window is the one that binds now


def test_quota_reports_remaining_and_next_slot(limiter):
    from shared.producer import quota

    q = quota("carol")
    assert (q.limit, q.remaining, q.used, q.window_s) == (2, 2, 0, 1.0)
    limiter.acquire("carol")
    limiter.acquire("carol")
    q = quota("carol")
    assert q.remaining == 0 and q.used == 2
    wait = (q.next_slot_at.timestamp() - time.time()) * 1000
    assert 0 < wait <= 1000


def test_member_names_are_unique_per_acquire(limiter):
    a = limiter.acquire("dave", "same-message")
    b = limiter.acquire("dave", "same-message")
    assert a.member != b.member


def test_margin_widens_the_window(limiter, monkeypatch):
    monkeypatch.setenv("RATE_LIMIT_MARGIN_MS", "300")
    get_settings.cache_clear()
    limiter.acquire("erin")
    limiter.acquire("erin")
    denied = limiter.acquire("erin")
    assert 1_200 <= denied.wait_ms <= 1_300


def test_unique_keys_per_namespace(limiter, redis_url, namespace):
    limiter.acquire(f"x-{uuid.uuid4().hex}")
    client = redis.Redis.from_url(redis_url)
    assert all(
        k.decode().startswith(f"{namespace}:ratelimit:")
        for k in client.scan_iter(match=f"{namespace}:*")
    )


def test_confirm_restamps_a_held_permit_and_touch_moves_it_later(limiter, redis_url, namespace):
    early = limiter.acquire("fay")
    time.sleep(0.4)
    assert limiter.confirm("fay", early.member).allowed  # moved to now: counts from here
    limiter.acquire("fay")
    time.sleep(0.7)  # 1.1 s after the first acquire, 0.7 s after the confirm
    assert not limiter.acquire("fay").allowed
    client = redis.Redis.from_url(redis_url)
    key = f"{namespace}:ratelimit:fay"
    before = client.zscore(key, f"{early.member}:1")
    assert before is not None
    limiter.touch("fay", early.member)
    after = client.zscore(key, f"{early.member}:1")
    assert after is not None and after > before


def test_confirm_fails_when_the_window_filled_meanwhile(limiter):
    held = limiter.acquire("gus")
    limiter.refund("gus", held.member)  # e.g. the permit was refunded...
    limiter.acquire("gus")
    limiter.acquire("gus")  # ...and two others took the window
    result = limiter.confirm("gus", held.member)
    assert not result.allowed and result.wait_ms > 0
