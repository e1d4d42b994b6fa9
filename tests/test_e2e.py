"""End to end: real ``dramatiq`` worker processes, the scheduler, Redis, a database, and the
emulator over HTTP. These are the tests that prove the pipeline, not its parts."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import cast

import pytest
import redis

from shared import renders
from shared.messages import producer_broker, start_render_message
from shared.models import Render
from shared.producer import enqueue_render, enqueue_renders, message_payload
from shared.render_request import RenderRequest
from shared.repository import insert_pending
from tests.support import all_terminal, emulator_call, get_render, make_request, wait_until

pytestmark = pytest.mark.e2e


def req(**overrides: object) -> RenderRequest:
    return make_request(**overrides)


@pytest.fixture
def db(use_db, database_url):
    return use_db(database_url)


def test_batch_of_renders_completes(db, workers, emulator):
    workers.start_worker(processes=2, threads=4)
    workers.start_scheduler()
    stored = enqueue_renders(
        [req(user_id=f"user{u}", generation_id=f"g{u}-{i}") for u in range(3) for i in range(4)]
    )
    ids = [r.id for r in stored]
    wait_until(lambda: all_terminal(ids), timeout=60, what="all renders terminal")
    done = renders.get_many(ids)
    assert Counter(r.status for r in done) == {"complete": 12}, workers.all_logs()[-3000:]
    for render in done:
        assert render.progress == 1.0 and render.output_url and render.output_size_bytes
        assert render.started_at and render.completed_at and render.cost_usd
    stats = emulator_call(emulator.url, "/_emulator/stats")
    assert stats["starts_total"] == 12
    assert set(stats["starts_by_out_name"].values()) == {1}

    # Every line an actor wrote while starting a render names the render, user and message.
    lines = [line for p in workers.processes for line in p.json_logs()]
    started = [line for line in lines if line.get("event") == "render started"]
    assert len(started) == 12
    assert all(line["render_id"] and line["user_id"] and line["message_id"] for line in started)


def test_same_message_delivered_twice_concurrently_starts_once(db, workers, emulator):
    """The broker may deliver a message twice (at-least-once); here both copies arrive at the
    same moment in different processes, and the emulator counts starts."""
    emulator_call(emulator.url, "/_emulator/faults", {"start_delay_ms": 150})
    broker = producer_broker()
    ids = []
    for i in range(10):
        rid = str(uuid.uuid4())
        request = req(generation_id=f"dup-{i}")
        insert_pending(rid, request)
        message = start_render_message(message_payload(rid, request))
        broker.enqueue(message)
        broker.enqueue(message)  # the duplicate: same message id, same body
        ids.append(rid)
    workers.start_worker(processes=2, threads=8)
    workers.start_scheduler()
    wait_until(lambda: all_terminal(ids), timeout=60, what="all renders terminal")
    stats = emulator_call(emulator.url, "/_emulator/stats")
    assert stats["starts_total"] == 10, stats["starts_by_out_name"]
    assert {r.status for r in renders.get_many(ids)} == {"complete"}


def test_foreign_producer_message_exactly_as_documented(
    env, use_db, sqlite_url, workers, redis_url
):
    """A non-Python producer writes the envelope with one HSET and one RPUSH (README)."""
    use_db(sqlite_url)
    ns = env["REDIS_NAMESPACE"]
    message_id = str(uuid.uuid4())
    envelope = {
        "queue_name": "renders",
        "actor_name": "start_render",
        "args": [
            {
                "user_id": "node-user",
                "generation_id": "node-gen-1",
                "composition": "Main",
                "input_props": {"title": "from node"},
                "width": 1080,
                "height": 1920,
                "fps": 30,
                "duration_in_frames": 150,
            }
        ],
        "kwargs": {},
        "options": {},
        "message_id": message_id,
        "message_timestamp": int(time.time() * 1000),
    }
    client = redis.Redis.from_url(redis_url)
    client.hset(f"{ns}:renders.msgs", message_id, json.dumps(envelope))
    client.rpush(f"{ns}:renders", message_id)
    workers.start_worker(processes=1, threads=2)
    workers.start_scheduler()

    def complete() -> Render | None:
        r = renders.get(message_id)
        return r if r is not None and r.status == "complete" else None

    render = wait_until(complete, timeout=30, what="foreign render complete")
    assert render.user_id == "node-user" and render.width == 1080
    by_generation = renders.get_by_generation("node-gen-1")
    assert by_generation is not None and by_generation.id == message_id
    # Acked: nothing left in the queue's message hash.
    wait_until(lambda: client.hlen(f"{ns}:renders.msgs") == 0, timeout=10, what="message acked")
    client.close()


def test_poison_message_is_dead_lettered_and_worker_keeps_going(
    env, use_db, sqlite_url, workers, redis_url
):
    use_db(sqlite_url)
    ns = env["REDIS_NAMESPACE"]
    broker = producer_broker()
    broker.enqueue(start_render_message({"user_id": "u", "width": "huge"}))
    client = redis.Redis.from_url(redis_url)
    garbage = {
        "not-json": b"{this is not json",
        "unknown-envelope-field": json.dumps(
            {
                "queue_name": "renders",
                "actor_name": "start_render",
                "args": [],
                "kwargs": {},
                "options": {},
                "message_id": "x",
                "message_timestamp": 1,
                "surprise": True,
            }
        ).encode(),
    }
    for redis_id, raw in garbage.items():
        client.hset(f"{ns}:renders.msgs", redis_id, raw)
        client.rpush(f"{ns}:renders", redis_id)
    good = enqueue_render(req(generation_id="after-poison"))
    workers.start_worker(processes=1, threads=2)
    workers.start_scheduler()
    wait_until(
        lambda: get_render(good.id).status == "complete", timeout=30, what="good render done"
    )
    wait_until(lambda: client.zcard(f"{ns}:renders.XQ") == 3, timeout=10, what="dead letters")
    # Without scores and with bytes responses the members are bytes; redis-py's return type
    # covers every variant (scored pairs, str) in one union.
    dead = cast(list[bytes], client.zrange(f"{ns}:renders.XQ", 0, -1))
    assert {"not-json", "unknown-envelope-field"} <= {m.decode() for m in dead}
    client.close()
    logs = workers.all_logs()
    assert "dead-lettering message" in logs and "width" in logs
    assert logs.count("undecodable message dead-lettered") == 2


def test_two_schedulers_sweep_each_slot_once(db, workers, emulator):
    emulator_call(emulator.url, "/_emulator/faults", {"speed": 100})  # ~3 s renders
    worker = workers.start_worker(processes=1, threads=4)
    workers.start_scheduler()
    workers.start_scheduler()
    stored = enqueue_renders([req(generation_id=f"s{i}") for i in range(3)])
    ids = [r.id for r in stored]
    wait_until(lambda: all_terminal(ids), timeout=60, what="renders terminal")
    sweeps = [
        line["slot"]
        for line in worker.json_logs()
        if line.get("event") == "poll sweep planned" and line.get("renders")
    ]
    assert len(sweeps) >= 3
    assert len(sweeps) == len(set(sweeps)), "a slot was swept twice"
    assert {r.status for r in renders.get_many(ids)} == {"complete"}
