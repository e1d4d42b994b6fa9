"""Poison messages, generated: every one ends as a dead letter or a failed render with a reason,
and nothing else breaks. Bodies go through the real start path; raw bytes go through the
worker's real Redis consumer."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis
from dramatiq.errors import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import renders
from worker import start
from worker.redis_broker import RecoveringRedisBroker

VALID: dict[str, Any] = {
    "user_id": "u1",
    "generation_id": "g1",
    "composition": "Main",
    "input_props": {"title": "Hi"},
    "width": 1280,
    "height": 720,
    "fps": 30,
    "duration_in_frames": 60,
}
KEYS = sorted(VALID)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in VALID.items() if k != key}


def _with(key: str, value: Any) -> dict[str, Any]:
    return {**VALID, key: value}


bodies = st.one_of(
    json_values,  # not even an object, or an object of anything
    st.builds(_without, st.sampled_from(KEYS)),  # a required field missing
    st.builds(_with, st.sampled_from(KEYS), json_values),  # wrong types and values
    st.builds(
        _with, st.text(min_size=1, max_size=20).filter(lambda k: k not in VALID), json_values
    ),
    st.builds(lambda n: _with("input_props", {"blob": "x" * n}), st.integers(60_000, 2_000_000)),
    st.builds(lambda rid: _with("render_id", rid), st.uuids().map(str)),  # names no render
    st.builds(
        lambda w, h: {**VALID, "width": w, "height": h}, st.integers(1, 5000), st.integers(1, 5000)
    ),
)


@pytest.fixture
def db(env, use_db, sqlite_url):
    return use_db(sqlite_url)


@given(body=bodies)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_body_is_rendered_failed_with_a_reason_or_dead_lettered(db, emulator, body):
    message_id = str(uuid.uuid4())
    try:
        start.start_render(body, message_id)
    except start.PoisonMessage as exc:
        reason = str(exc)  # logged with the dead letter
        assert reason
        return
    render_id = body.get("render_id") if isinstance(body, dict) else None
    render = renders.get(render_id or message_id)
    assert render is not None, "a message was accepted without a render to show for it"
    if render.status == "failed":
        assert render.error_code in ("invalid_request", "limit_exceeded")
        assert render.error_message
    else:
        assert render.status == "rendering"  # a valid request: it really started


def _envelope(**changes: Any) -> bytes:
    envelope: dict[str, Any] = {
        "queue_name": "renders",
        "actor_name": "start_render",
        "args": [VALID],
        "kwargs": {},
        "options": {},
        "message_id": str(uuid.uuid4()),
        "message_timestamp": 1,
    }
    envelope.update(changes)
    return json.dumps(envelope).encode()


raw_messages = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.builds(lambda k, v: _envelope(**{k: v}), st.text(min_size=1, max_size=10), json_values),
    st.builds(lambda v: _envelope(args=v), json_values),
    st.just(_envelope()),
)


@given(raw=raw_messages)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_consumer_survives_any_bytes(redis_url, namespace, raw):
    broker = RecoveringRedisBroker(url=redis_url, namespace=namespace, middleware=[])
    client = redis.Redis.from_url(redis_url)
    redis_id = str(uuid.uuid4())
    client.hset(f"{namespace}:renders.msgs", redis_id, raw)
    client.rpush(f"{namespace}:renders", redis_id)
    dead_before = client.zcard(f"{namespace}:renders.XQ")
    consumer = broker.consume("renders", prefetch=4, timeout=50)
    try:
        message = next(consumer)
    except DecodeError:  # pragma: no cover - the point of the test
        pytest.fail("an undecodable message escaped the consumer")
    if message is None:
        # Undecodable: it must have gone to the dead-letter queue.
        assert client.zcard(f"{namespace}:renders.XQ") == dead_before + 1
        assert client.zscore(f"{namespace}:renders.XQ", redis_id) is not None
    else:
        consumer.ack(message)
    assert client.llen(f"{namespace}:renders") == 0
    broker.close()
    client.close()
