"""``python -m scripts.status``: one known state of the system, read back field by field.

The script runs as a subprocess, as operators run it, so the test covers settings from the
environment, logging staying off stdout, and the exit codes, not just ``collect_status``.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlmodel import col

from devtools.devstack import free_port
from shared import repository
from shared.db import session_scope
from shared.lambda_budget import get_budget
from shared.messages import (
    POLL_TICK,
    enqueue_many,
    new_message,
    producer_broker,
    start_render_message,
)
from shared.models import ErrorCode, Render, RenderStatus, utcnow
from shared.producer import message_payload
from shared.render_request import RenderRequest
from shared.settings import get_settings
from tests.support import make_request, run_module
from worker import poller

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 20


def req(**overrides: object) -> RenderRequest:
    return make_request(**{"generation_id": f"g-{uuid.uuid4().hex[:8]}", **overrides})


def run_status(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_module("scripts.status", env, *args, timeout=60)


def status_json(env: dict[str, str], *args: str) -> dict[str, Any]:
    proc = run_status(env, "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def backdate(render_id: str, **values: datetime) -> None:
    """Put timestamps in the past: the repository only ever writes "now"."""
    with session_scope() as session:
        session.execute(sa.update(Render).where(col(Render.id) == render_id).values(**values))


def start_rendering(user_id: str, composition: str = "Main") -> str:
    render, _ = repository.insert_pending(
        str(uuid.uuid4()), req(user_id=user_id, composition=composition)
    )
    token = uuid.uuid4().hex
    assert repository.claim_start(render.id, token, 60)
    repository.mark_rendering(render.id, token, f"lambda-{render.id[:8]}", "bucket")
    return render.id


def iso(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None and parsed.utcoffset() == timedelta(0), value
    return parsed


@pytest.fixture
def db(use_db, database_url, env, monkeypatch):
    env["LAMBDA_CONCURRENCY_BUDGET"] = str(BUDGET)
    monkeypatch.setenv("LAMBDA_CONCURRENCY_BUDGET", str(BUDGET))
    return use_db(database_url)


@pytest.fixture
def known_state(db, env, namespace, redis_url) -> dict[str, Any]:
    """Renders in every state, messages in every queue state, budget, a sweep, workers."""
    now = utcnow()
    client = redis.Redis.from_url(redis_url)

    # pending: five renders with five ready start messages (the row, then the message, as a
    # producer whose renders the budget has room for), one old.
    stored = repository.insert_pending_many(
        [(str(uuid.uuid4()), req(user_id=u)) for u in ("u1", "alice", "alice", "bob", "carol")]
    )
    plain, a1, a2, b1, c1 = (render for render, _ in stored)
    enqueue_many(
        producer_broker(),
        [start_render_message(message_payload(r.id, r.as_request())) for r, _ in stored],
    )
    backdate(plain.id, created_at=now - timedelta(seconds=120))
    repository.set_throttled_until(a1.id, now + timedelta(seconds=60))
    repository.set_throttled_until(a2.id, now + timedelta(seconds=30))
    repository.set_throttled_until(b1.id, now + timedelta(seconds=10))
    repository.set_throttled_until(c1.id, now - timedelta(seconds=10))  # already free

    # rendering: two, the older one with progress.
    older = start_rendering("u1", "Intro")
    backdate(older, started_at=now - timedelta(seconds=90))
    repository.record_progress_many([repository.ProgressReading(older, 0.25, 0.01)])
    newer = start_rendering("u2", "Recap")

    # complete: one.
    done = start_rendering("u3")
    repository.finish_many([repository.Completion(done, "https://x/out.mp4", 10, 0.1)], [])

    # failed: two render errors and a limit violation this hour, a timeout two hours ago.
    for _ in range(2):
        repository.fail(
            start_rendering("u4"), RenderStatus.RENDERING, code=ErrorCode.RENDER_ERROR, message="x"
        )
    over, _ = repository.insert_pending(str(uuid.uuid4()), req(user_id="u5"))
    repository.fail(over.id, RenderStatus.PENDING, code=ErrorCode.LIMIT_EXCEEDED, message="x")
    timed_out = start_rendering("u6")
    repository.fail(timed_out, RenderStatus.RENDERING, code=ErrorCode.TIMEOUT, message="x")
    backdate(timed_out, completed_at=now - timedelta(hours=2))

    # queues: renders has 5 ready; a worker fetches one (unacked), one delayed, one dead
    # letter; render-polls has one tick.
    ns = namespace
    fetched = client.lpop(f"{ns}:renders")
    assert isinstance(fetched, bytes)
    client.sadd(f"{ns}:__acks__.some-worker.renders", fetched)
    delayed = start_render_message(message_payload(plain.id, req()))
    producer_broker().enqueue(delayed, delay=60_000)
    dead = start_render_message({"garbage": True})
    client.zadd(f"{ns}:renders.XQ", {dead.message_id: int(time.time() * 1000)})
    client.hset(f"{ns}:renders.XQ.msgs", dead.message_id, dead.encode())
    producer_broker().enqueue(new_message(get_settings().poll_queue, POLL_TICK, [1]))

    # Lambda budget: one holder of 12 functions, one render waiting for room.
    budget = get_budget()
    assert budget.admit(older, "u1", 12, 1).pool == "default"
    assert budget.admit(newer, "u1", 12, 2).pool is None

    # The last sweep, recorded the way the poller does.
    poller._record_last_sweep(41, time.time() - 0.5, 2, 2, {"in_progress": 2})

    # One live worker and one that stopped beating a minute ago.
    live: dict[str, Any] = {
        "worker_id": "host-a:101",
        "host": "host-a",
        "pid": 101,
        "queues": ["render-polls", "renders"],
        "threads": 8,
        "started_at": time.time() - 300,
        "seen_at": time.time(),
    }
    stale = {**live, "worker_id": "host-b:202", "pid": 202, "seen_at": time.time() - 60}
    client.hset(f"{ns}:workers", live["worker_id"], json.dumps(live))
    client.hset(f"{ns}:workers", stale["worker_id"], json.dumps(stale))
    client.close()
    return {
        "rendering": [older, newer],
        "live_worker": live,
        "throttled": {"alice": a2.id, "bob": b1.id},
        "now": now,
    }


def test_json_reports_every_field(known_state, env, namespace, redis_url):
    doc = status_json(env)
    assert list(doc) == [
        "generated_at",
        "namespace",
        "counts",
        "in_flight",
        "pending",
        "throttled_users",
        "queues",
        "lambda_budget",
        "pauses",
        "last_sweep",
        "workers",
        "failures_last_hour",
        "completed_last_hour",
        "events",
    ]
    assert doc["completed_last_hour"] == 1  # the one completed render, just now
    assert doc["events"] == {"pending": 0, "delivered": 0, "dead": 0}
    assert doc["pauses"] == {"active": [], "held": 0}
    now = known_state["now"]
    assert timedelta(0) <= iso(doc["generated_at"]) - now < timedelta(seconds=30)
    assert doc["namespace"] == namespace
    assert doc["counts"] == {
        "pending": 5,
        "rendering": 2,
        "complete": 1,
        "failed": 4,
        "cancelled": 0,
    }

    older, newer = known_state["rendering"]
    assert [r["id"] for r in doc["in_flight"]] == [older, newer]
    first, second = doc["in_flight"]
    assert set(first) == {
        "id",
        "user_id",
        "composition",
        "progress",
        "started_at",
        "age_s",
        "last_polled_at",
    }
    assert (first["user_id"], first["composition"], first["progress"]) == ("u1", "Intro", 0.25)
    assert 90 <= first["age_s"] < 120
    assert first["last_polled_at"] is not None and iso(first["last_polled_at"])
    assert iso(first["started_at"]) < iso(second["started_at"])
    assert (second["user_id"], second["composition"], second["progress"]) == ("u2", "Recap", 0.0)
    assert second["last_polled_at"] is None and 0 <= second["age_s"] < 30

    assert doc["pending"]["count"] == 5 and doc["pending"]["throttled"] == 3
    assert 120 <= doc["pending"]["oldest_age_s"] < 150

    bob, alice = doc["throttled_users"]
    assert (bob["user_id"], bob["waiting"]) == ("bob", 1)
    assert (alice["user_id"], alice["waiting"]) == ("alice", 2)
    assert abs(iso(bob["next_start_at"]) - (now + timedelta(seconds=10))) < timedelta(seconds=1)
    # alice's earliest throttled_until, not her latest
    assert abs(iso(alice["next_start_at"]) - (now + timedelta(seconds=30))) < timedelta(seconds=1)

    assert doc["queues"] == {
        "renders": {"ready": 4, "delayed": 1, "unacked": 1, "dead": 1},
        "renders-admitted": {"ready": 0, "delayed": 0, "unacked": 0, "dead": 0},
        "render-polls": {"ready": 1, "delayed": 0, "unacked": 0, "dead": 0},
        "render-events": {"ready": 0, "delayed": 0, "unacked": 0, "dead": 0},
    }
    assert doc["lambda_budget"] == {
        "in_use": 12,
        "budget": BUDGET,
        "waiting": 1,
        "waiting_by_user": {"u1": 1},
        "pools": [{"name": "default", "in_use": 12, "effective": BUDGET, "configured": BUDGET}],
    }

    sweep = doc["last_sweep"]
    assert (sweep["slot"], sweep["renders"], sweep["polled"]) == (41, 2, 2)
    assert sweep["outcomes"] == {"in_progress": 2}
    assert 0.4 <= sweep["duration_s"] < 5
    assert set(sweep) == {
        "slot",
        "planned_at",
        "finished_at",
        "duration_s",
        "renders",
        "polled",
        "outcomes",
    }

    assert doc["workers"] == [known_state["live_worker"]]
    assert doc["failures_last_hour"] == {"render_error": 2, "limit_exceeded": 1}


def test_limit_keeps_the_oldest_in_flight(known_state, env):
    doc = status_json(env, "--limit", "1")
    assert [r["id"] for r in doc["in_flight"]] == known_state["rendering"][:1]
    assert doc["counts"]["rendering"] == 2


def test_dashboard_shows_the_same_numbers(env, known_state):
    proc = run_status(env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for text in (
        "pending 5",
        "rendering 2",
        "complete 1",
        "failed 4",
        "3 throttled",
        *known_state["rendering"],
        "25%",
        "alice",
        "bob",
        "render-polls",
        f"12/{BUDGET}",
        "1 waiting for room",
        "2 renders (2 polled)",
        "host-a:101",
        "render_error 2",
        "limit_exceeded 1",
    ):
        assert text in out, f"{text!r} missing from:\n{out}"
    assert "host-b:202" not in out  # stale heartbeat
    queue_row = next(line for line in out.splitlines() if line.startswith("│ renders "))
    assert [cell.strip() for cell in queue_row.split("│")[1:-1]] == ["renders", "4", "1", "1", "1"]


def test_empty_database(db, env):
    doc = status_json(env)
    assert abs(iso(doc["generated_at"]) - datetime.now(UTC)) < timedelta(seconds=30)
    assert doc["counts"] == {
        "pending": 0,
        "rendering": 0,
        "complete": 0,
        "failed": 0,
        "cancelled": 0,
    }
    assert doc["in_flight"] == [] and doc["throttled_users"] == []
    assert doc["pending"] == {"count": 0, "oldest_age_s": None, "throttled": 0}
    assert doc["last_sweep"] is None and doc["workers"] == []
    assert doc["failures_last_hour"] == {}
    assert doc["lambda_budget"]["in_use"] == 0 and doc["lambda_budget"]["waiting"] == 0
    assert all(
        q == {"ready": 0, "delayed": 0, "unacked": 0, "dead": 0} for q in doc["queues"].values()
    )
    proc = run_status(env)
    assert proc.returncode == 0 and "pending 0" in proc.stdout, proc.stderr


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for text in expected:
        assert text in lines[0], lines[0]


def test_unreachable_redis_exits_2_with_one_line(sqlite_url, use_db, env):
    use_db(sqlite_url)
    port = free_port()
    proc = run_status({**env, "REDIS_URL": f"redis://127.0.0.1:{port}/0"}, "--json")
    assert_one_line_error(proc, "Redis", str(port))


def test_unreachable_database_exits_2_without_leaking_the_password(use_db, env):
    port = free_port()
    use_db(f"postgresql://renderq:hunter2-secret@127.0.0.1:{port}/renderq")
    proc = run_status(env, "--json")
    assert_one_line_error(proc, "database", str(port))
    assert "hunter2-secret" not in proc.stderr


def test_missing_sqlite_file_is_reported_not_created(use_db, env, tmp_path):
    path = tmp_path / "nope.db"
    use_db(f"sqlite:///{path}")
    assert_one_line_error(run_status(env, "--json"), str(path))
    assert not path.exists()
