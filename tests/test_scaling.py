"""Scaling out: separate worker groups per queue, several "machines" sharing Redis and the
database, with no duplicated work and polls that never wait behind starts."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest
import redis

from shared import renders
from shared.producer import enqueue_renders, message_payload
from shared.render_request import RenderRequest
from shared.repository import insert_pending
from tests.support import emulator_call, make_request, wait_until
from worker import start

pytestmark = pytest.mark.e2e


def req(i: int, **props: object) -> RenderRequest:
    return make_request(
        user_id=f"user{i % 50}",
        generation_id=f"scale-{i}",
        width=1280,
        height=720,
        duration_in_frames=60,
        input_props=dict(props),
    )


def test_polls_are_not_delayed_by_a_backlog_of_thousands_of_starts(
    env, use_db, sqlite_url, workers, emulator, monkeypatch, redis_url
):
    use_db(sqlite_url)
    # A budget far above the backlog: every start is sent on (none waits parked in line).
    for key, value in {"POLL_INTERVAL_S": "0.5", "LAMBDA_CONCURRENCY_BUDGET": "100000"}.items():
        monkeypatch.setenv(key, value)
        env[key] = value
    # Five renders already running, started through the real path.
    running = []
    for i in range(5):
        rid = str(uuid.uuid4())
        request = req(10_000 + i, __emulator__={"never_finish": True})
        insert_pending(rid, request)
        assert start.start_render(message_payload(rid, request), f"m{i}")
        running.append(rid)
    # A backlog of 2,000 starts, each Lambda start taking 300 ms.
    emulator_call(emulator.url, "/_emulator/faults", {"start_delay_ms": 300})
    enqueue_renders([req(i) for i in range(2_000)])
    workers.start_worker(processes=1, threads=4, queues=["renders", "renders-admitted"])
    workers.start_worker(processes=1, threads=2, queues=["render-polls"])
    workers.start_scheduler()

    wait_until(
        lambda: all(r.last_polled_at for r in renders.get_many(running)), timeout=20, what="polls"
    )
    seen: dict[str, list[float]] = {rid: [] for rid in running}
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        for r in renders.get_many(running):
            assert r.last_polled_at is not None
            stamp = r.last_polled_at.timestamp()
            if not seen[r.id] or seen[r.id][-1] != stamp:
                seen[r.id].append(stamp)
        time.sleep(0.1)
    backlog = redis.Redis.from_url(redis_url).llen(f"{env['REDIS_NAMESPACE']}:renders")
    assert backlog > 1_000, "the start backlog should still be there"
    for rid, stamps in seen.items():
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert len(stamps) >= 8, f"{rid} polled only {len(stamps)} times in 8 s"
        assert max(gaps) < 1.5, f"{rid}: a poll waited {max(gaps):.2f}s (interval 0.5 s)"


def test_several_machines_share_the_work_without_duplicates(
    env, use_db, database_url, workers, emulator
):
    """Three worker groups, each with its own environment as if on its own machine."""
    use_db(database_url)
    for machine in range(3):
        workers.start_worker(processes=1, threads=4, extra_env={"HOSTNAME": f"machine-{machine}"})
    workers.start_scheduler()
    workers.start_scheduler()
    # All three up before the work arrives (an idle worker asks Redis about once a second).
    wait_until(
        lambda: all('"lambda function checked"' in p.logs() for p in workers.processes[:3]),
        timeout=30,
        what="three worker groups up",
    )
    # Each Lambda start takes 300 ms, so the 60 starts outlast the idle second of a group
    # that has not yet asked Redis: without it two groups could take them all (seen: 23/37/0).
    emulator_call(emulator.url, "/_emulator/faults", {"start_delay_ms": 300})
    stored = enqueue_renders([req(i) for i in range(60)])
    ids = [r.id for r in stored]
    wait_until(
        lambda: all(r.status == "complete" for r in renders.get_many(ids)),
        timeout=60,
        what="60 renders complete",
    )
    stats = emulator_call(emulator.url, "/_emulator/stats")
    assert stats["starts_total"] == 60
    assert set(stats["starts_by_out_name"].values()) == {1}
    # The work really was spread: every group started some renders.
    per_group = [p.logs().count('"render started"') for p in workers.processes[:3]]
    assert all(n > 0 for n in per_group), per_group
    assert sum(per_group) == 60
