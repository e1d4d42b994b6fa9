"""Nothing lost, nothing rendered twice: real workers killed, Redis wiped, the database cut off,
Lambda misbehaving. Each test ends by checking that every render is terminal and counting the
starts the emulator received per render (outName)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import redis

from shared import renders
from shared.models import RenderStatus
from shared.producer import enqueue_renders
from shared.render_request import RenderRequest
from tests.support import (
    ManagedProcess,
    WorkerGroup,
    all_terminal,
    database_outage_under_load,
    emulator_call,
    make_request,
    wait_until,
)

pytestmark = pytest.mark.e2e

T = TypeVar("T")

FAST_RECOVERY = {
    # Short Lambda timeouts make a short claim lease (1 + 2 + 2 s), so a claim left by a killed
    # worker expires quickly; heartbeat/maintenance settings make redelivery take seconds.
    "LAMBDA_CONNECT_TIMEOUT_S": "1",
    "LAMBDA_READ_TIMEOUT_S": "2",
    "CLAIM_MARGIN_S": "2",
    "BROKER_HEARTBEAT_TIMEOUT_MS": "3000",
    "BROKER_MAINTENANCE_CHANCE": "200000",
    "RECONCILE_INTERVAL_S": "1",
    "RECONCILE_GRACE_S": "2",
}


def req(i: int, frames: int = 90, **props: object) -> RenderRequest:
    return make_request(
        user_id=f"user{i % 3}",
        generation_id=f"gen-{i}",
        width=1280,
        height=720,
        duration_in_frames=frames,
        input_props=dict(props),
    )


def configure(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for key, value in {**FAST_RECOVERY, **values}.items():
        monkeypatch.setenv(key, value)
        env[key] = value
    from tests.conftest import _reset_caches

    _reset_caches()


def starts_per_render(emulator_url: str, ids: list[str]) -> dict[str, int]:
    by_out = emulator_call(emulator_url, "/_emulator/stats")["starts_by_out_name"]
    return {r.id: by_out.get(r.out_name or "", 0) for r in renders.get_many(ids)}


class Supervisor:
    """What systemd/compose do in production: restart the dramatiq master when it exits."""

    def __init__(self, workers: WorkerGroup, **worker_args: Any) -> None:
        """``worker_args`` are ``WorkerGroup.start_worker``'s, for every (re)start."""
        self.workers = workers
        self.worker_args = worker_args
        self.current: ManagedProcess = workers.start_worker(**worker_args)
        self.exits: list[int] = []

    def check(self) -> None:
        code = self.current.proc.poll()
        if code is not None:
            self.exits.append(code)
            self.current = self.workers.start_worker(**self.worker_args)

    def wait_for(self, predicate: Callable[[], T | None], timeout: float, what: str) -> T:
        def step() -> T | None:
            self.check()
            return predicate()

        return wait_until(step, timeout=timeout, interval=0.2, what=what)


@pytest.mark.parametrize(
    "point",
    ["start.before_claim", "start.after_claim", "start.after_lambda_start", "poll.after_progress"],
)
def test_sigkill_at_every_step(
    point, env, use_db, sqlite_url, workers, emulator, monkeypatch, redis_url
):
    use_db(sqlite_url)
    configure(env, monkeypatch, FAILPOINTS=point)
    emulator_call(emulator.url, "/_emulator/faults", {"speed": 300})
    stored = enqueue_renders([req(i) for i in range(4)])
    ids = [r.id for r in stored]
    supervisor = Supervisor(workers, processes=1, threads=2)
    workers.start_scheduler()
    killed_at = None

    def done() -> bool:
        nonlocal killed_at
        if killed_at is None and supervisor.exits:
            killed_at = time.monotonic()
        return all_terminal(ids)

    supervisor.wait_for(done, timeout=90, what=f"renders terminal after a kill at {point}")
    final = renders.get_many(ids)
    assert {r.status for r in final} == {"complete"}, [(r.status, r.error_message) for r in final]
    # The failpoint fired (once), the dramatiq master went down with its child, and the
    # supervisor's restart finished the work.
    client = redis.Redis.from_url(redis_url)
    assert client.exists(f"{env['REDIS_NAMESPACE']}:failpoint:{point}")
    assert supervisor.exits and supervisor.exits[0] != 0
    # No render was started twice, including after a kill between Lambda accepting the start
    # and the ids being saved: the next attempt found the render by its outName.
    assert set(starts_per_render(emulator.url, ids).values()) == {1}
    if point == "start.after_lambda_start":
        logs = workers.all_logs()
        assert "render recovered from an earlier start" in logs


def test_redis_loses_everything_while_renders_wait_and_run(
    env, use_db, sqlite_url, workers, emulator, monkeypatch, private_redis
):
    use_db(sqlite_url)
    configure(env, monkeypatch, REDIS_URL=private_redis["url"], RENDER_RATE_LIMIT="2/4s")
    emulator_call(emulator.url, "/_emulator/faults", {"speed": 60})  # 90 frames: 1.5 s
    stored = enqueue_renders([req(i) for i in range(9)])
    ids = [r.id for r in stored]
    first = workers.start_worker(processes=1, threads=4)
    workers.start_scheduler()
    wait_until(
        lambda: any(r.status == "rendering" for r in renders.get_many(ids)),
        timeout=30,
        what="renders rendering",
    )
    statuses = Counter(r.status for r in renders.get_many(ids))
    assert statuses[RenderStatus.PENDING] > 0  # some wait (throttled) in Redis when it is wiped
    # The worker dies with the wipe (as on a full restart), so the only copies of the waiting
    # renders' messages are gone: only the reconciler can bring them back.
    workers.stop(first, signal.SIGKILL)
    redis.Redis.from_url(private_redis["url"]).flushall()
    workers.start_worker(processes=1, threads=4)
    wait_until(lambda: all_terminal(ids), timeout=90, what="all renders terminal after FLUSHALL")
    assert {r.status for r in renders.get_many(ids)} == {"complete"}
    assert set(starts_per_render(emulator.url, ids).values()) == {1}
    assert "re-enqueued a pending render whose message was lost" in workers.all_logs()


def test_database_unreachable_for_a_while(
    env, use_db, pg_database_url, workers, emulator, monkeypatch
):
    import sqlalchemy as sa

    from shared.db import normalize_url

    engine = sa.create_engine(normalize_url(pg_database_url))
    with engine.begin() as conn:
        conn.exec_driver_sql("TRUNCATE TABLE render, user_limits, render_event")
    engine.dispose()
    use_db(pg_database_url)
    configure(env, monkeypatch)
    emulator_call(emulator.url, "/_emulator/faults", {"speed": 90})  # 90 frames: 1 s
    stored = enqueue_renders([req(i) for i in range(12)])  # through the direct URL
    ids = [r.id for r in stored]
    database_outage_under_load(workers, pg_database_url, ids, down_s=6)
    assert {r.status for r in renders.get_many(ids)} == {"complete"}
    assert set(starts_per_render(emulator.url, ids).values()) == {1}


def test_lambda_faults_are_retried_or_reported(
    env, use_db, sqlite_url, workers, emulator, monkeypatch
):
    use_db(sqlite_url)
    configure(env, monkeypatch, RENDER_TIMEOUT_S="4", MAX_POLL_FAILURES="1000")
    emulator_call(
        emulator.url,
        "/_emulator/faults",
        {
            "speed": 300,
            "throttle_starts": 4,
            "crash_starts": 2,
            "throttle_status": 10,
            "crash_status": 5,
        },
    )
    normal = enqueue_renders([req(i) for i in range(6)])
    fatal = enqueue_renders(
        [req(10, __emulator__={"fatal_at": 0.3, "message": "Font {Inter} missing"})]
    )
    stuck = enqueue_renders([req(11, __emulator__={"never_finish": True})])
    ids = [r.id for r in normal + fatal + stuck]
    workers.start_worker(processes=1, threads=4)
    workers.start_scheduler()
    wait_until(lambda: all_terminal(ids), timeout=60, what="faulty renders terminal")
    assert {r.status for r in renders.get_many([r.id for r in normal])} == {"complete"}
    [f] = renders.get_many([fatal[0].id])
    assert (f.status, f.error_code) == ("failed", "render_error")
    assert f.error_message is not None
    assert "Font {Inter} missing" in f.error_message
    [s] = renders.get_many([stuck[0].id])
    assert (s.status, s.error_code) == ("failed", "timeout")
    assert set(starts_per_render(emulator.url, ids).values()) == {1}
    stats = emulator_call(emulator.url, "/_emulator/stats")
    assert stats["throttled_total"] >= 4 and stats["crashes_total"] >= 2


def test_start_call_timing_out_after_lambda_accepted_it_is_not_repeated(
    env, use_db, sqlite_url, workers, emulator, monkeypatch
):
    """The worst ambiguous case: Lambda accepts the start but the answer never arrives in time.
    The next attempt must find that render instead of paying for a second one."""
    use_db(sqlite_url)
    configure(env, monkeypatch)
    emulator_call(emulator.url, "/_emulator/faults", {"speed": 300, "start_delay_ms": 3000})
    stored = enqueue_renders([req(i) for i in range(2)])
    ids = [r.id for r in stored]
    workers.start_worker(processes=1, threads=2)
    workers.start_scheduler()
    wait_until(
        lambda: emulator_call(emulator.url, "/_emulator/stats")["starts_total"] >= 2,
        timeout=30,
        what="starts reached the emulator",
    )
    emulator_call(emulator.url, "/_emulator/faults", {"start_delay_ms": 0})
    wait_until(lambda: all_terminal(ids), timeout=60, what="renders terminal")
    assert {r.status for r in renders.get_many(ids)} == {"complete"}
    assert set(starts_per_render(emulator.url, ids).values()) == {1}
    assert "render recovered from an earlier start" in workers.all_logs()


def test_sigterm_is_graceful(env, use_db, sqlite_url, workers, emulator, monkeypatch):
    use_db(sqlite_url)
    configure(env, monkeypatch)
    emulator_call(emulator.url, "/_emulator/faults", {"speed": 300, "start_delay_ms": 800})
    stored = enqueue_renders([req(i) for i in range(10)])
    ids = [r.id for r in stored]
    first = workers.start_worker(processes=1, threads=4)
    workers.start_scheduler()
    wait_until(
        lambda: emulator_call(emulator.url, "/_emulator/stats")["start_calls"] >= 1,
        timeout=30,
        what="a start in flight",
    )
    # As a supervisor does: SIGTERM to the dramatiq master, which stops its children. (A
    # second SIGTERM sent straight to a child means "stop now" to Dramatiq.)
    os.kill(first.proc.pid, signal.SIGTERM)
    assert first.proc.wait(30) == 0  # in-flight starts finished, then a clean exit
    # Every start the emulator received was recorded: nothing half-done was left behind.
    started = emulator_call(emulator.url, "/_emulator/stats")["starts_total"]
    assert sum(r.status != "pending" for r in renders.get_many(ids)) == started
    workers.start_worker(processes=1, threads=4)
    wait_until(lambda: all_terminal(ids), timeout=60, what="renders terminal after restart")
    assert {r.status for r in renders.get_many(ids)} == {"complete"}
    assert set(starts_per_render(emulator.url, ids).values()) == {1}


def test_a_dying_worker_process_takes_the_master_down(env, use_db, sqlite_url, workers):
    """Documented operator requirement: the dramatiq master exits when a child dies, so it
    must run under a supervisor. This pins the behaviour the README relies on."""
    use_db(sqlite_url)
    worker = workers.start_worker(processes=2, threads=1)
    wait_until(
        lambda: worker.logs().count("Worker process is ready") == 2,
        timeout=30,
        what="both worker processes ready",
    )
    os.kill(_children(worker.proc.pid)[0], signal.SIGKILL)
    assert worker.proc.wait(30) != 0
    assert "exited unexpectedly" in worker.logs()


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    return pids if len(pids) >= 2 else []
