"""Fairness end to end: per-user rate limits and the Lambda budget with real worker processes,
real Redis, a database and the emulator. Start times are read from the emulator, which is
where a start costs money."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from datetime import datetime

import pytest
import redis

from shared import renders
from shared.models import Render
from shared.producer import enqueue_renders
from shared.render_request import RenderRequest
from tests.support import all_terminal, emulator_call, make_request, wait_until

pytestmark = pytest.mark.e2e


def req(user: str, i: int, frames: int = 60) -> RenderRequest:
    return make_request(
        user_id=user,
        generation_id=f"{user}-{i}",
        width=1280,
        height=720,
        duration_in_frames=frames,
        input_props={},
    )


def started_at(render: Render) -> datetime:
    assert render.started_at is not None, f"render {render.id} never started"
    return render.started_at


def starts_by_user(emulator_url: str, stored: list[Render]) -> dict[str, list[float]]:
    stats = emulator_call(emulator_url, "/_emulator/stats")
    by_out = stats["start_times_by_out_name"]
    result: dict[str, list[float]] = defaultdict(list)
    for render in renders.get_many([r.id for r in stored]):
        result[render.user_id] += by_out.get(render.out_name, [])
    return {user: sorted(times) for user, times in result.items()}


def assert_no_window_exceeds(starts: dict[str, list[float]], limit: int, window_s: float) -> None:
    for user, times in starts.items():
        for i in range(len(times) - limit):
            gap = times[i + limit] - times[i]
            assert gap >= window_s, (
                f"{user}: {limit + 1} starts within {gap:.3f}s (window {window_s}s): {times}"
            )


class ThrottleWatcher:
    """Samples the database while a test runs, recording renders seen with throttled_until."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for r in renders.get_many(self.ids):
                if r.status == "pending" and r.throttled_until is not None:
                    self.seen.add(r.id)
            self._stop.wait(0.1)

    def __enter__(self) -> ThrottleWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_rate_limit_holds_for_10_users_with_3_processes(
    env, use_db, database_url, workers, emulator, monkeypatch
):
    use_db(database_url)
    extra = {"RENDER_RATE_LIMIT": "3/5s"}
    for k, v in extra.items():
        monkeypatch.setenv(k, v)
        env[k] = v
    stored = enqueue_renders([req(f"user{u}", i) for u in range(10) for i in range(8)])
    ids = [r.id for r in stored]
    workers.start_worker(processes=3, threads=8)
    workers.start_scheduler()
    with ThrottleWatcher(ids) as watcher:
        wait_until(lambda: all_terminal(ids), timeout=90, what="80 renders terminal")
    final = renders.get_many(ids)
    assert {r.status for r in final} == {"complete"}, [
        (r.status, r.error_code) for r in final if r.status != "complete"
    ]
    starts = starts_by_user(emulator.url, stored)
    assert all(len(times) == 8 for times in starts.values()), starts  # one start per render
    assert_no_window_exceeds(starts, limit=3, window_s=5.0)
    # Every render after its user's first three had to wait for the window, and was visibly
    # throttled (throttled_until set) while it waited.
    waited = set()
    for user in starts:
        mine = sorted((r for r in final if r.user_id == user), key=started_at)
        waited |= {r.id for r in mine[3:]}
    assert len(waited) == 50
    assert waited <= watcher.seen, f"{len(waited - watcher.seen)} waited without throttled_until"
    assert all(r.throttled_until is None for r in final)


def test_budget_holds_at_every_instant_even_through_429s(
    env, use_db, sqlite_url, workers, emulator, monkeypatch
):
    use_db(sqlite_url)
    settings = {
        "LAMBDA_CONCURRENCY_BUDGET": "100",
        "BUDGET_RETRY_MS": "300",
        "RENDER_RATE_LIMIT": "1000/1s",
    }
    for k, v in settings.items():
        monkeypatch.setenv(k, v)
        env[k] = v
    emulator_call(
        emulator.url,
        "/_emulator/faults",
        {"speed": 600, "concurrency_limit": 100, "throttle_starts": 6},
    )
    # 600 frames -> 1 orchestrator + 30 renderers = 31 functions: three fit in 100.
    stored = enqueue_renders([req(f"u{i % 4}", i, frames=600) for i in range(12)])
    ids = [r.id for r in stored]
    workers.start_worker(processes=2, threads=8)
    workers.start_scheduler()
    wait_until(lambda: all_terminal(ids), timeout=90, what="budgeted renders terminal")
    assert {r.status for r in renders.get_many(ids)} == {"complete"}
    stats = emulator_call(emulator.url, "/_emulator/stats")
    assert stats["starts_total"] == 12
    assert 62 <= stats["peak_concurrent_functions"] <= 100, stats["peak_concurrent_functions"]
    # Only the six injected 429s: the budget never let the emulator's own limit trip.
    assert stats["throttled_total"] == 6


def test_redis_restart_and_script_flush_while_throttling(
    env, use_db, sqlite_url, workers, emulator, monkeypatch, private_redis
):
    use_db(sqlite_url)
    settings = {"REDIS_URL": private_redis["url"], "RENDER_RATE_LIMIT": "2/3s"}
    for k, v in settings.items():
        monkeypatch.setenv(k, v)
        env[k] = v
    from tests.conftest import _reset_caches

    _reset_caches()
    stored = enqueue_renders([req(f"user{u}", i) for u in range(3) for i in range(6)])
    ids = [r.id for r in stored]
    workers.start_worker(processes=2, threads=4)
    workers.start_scheduler()
    wait_until(
        lambda: sum(r.status == "complete" for r in renders.get_many(ids)) >= 6,
        timeout=30,
        what="first window started",
    )
    redis.Redis.from_url(private_redis["url"]).script_flush()
    time.sleep(1.5)
    private_redis["restart"](down_for=2.0)
    wait_until(lambda: all_terminal(ids), timeout=120, what="all renders terminal after restart")
    assert {r.status for r in renders.get_many(ids)} == {"complete"}
    starts = starts_by_user(emulator.url, stored)
    assert all(len(t) == 6 for t in starts.values()), starts
    assert_no_window_exceeds(starts, limit=2, window_s=3.0)


def test_only_start_render_opts_in_to_the_user_rate_limit(env):
    from worker.actors import broker

    assert broker.get_actor("start_render").options["rate_limit_key"] is not None
    for name in ("poll_tick", "poll_batch"):
        assert "rate_limit_key" not in broker.get_actor(name).options
