"""The producer API: validation, the stored row, the message on Redis, idempotency."""

from __future__ import annotations

import json

import pytest
import redis
from pydantic import ValidationError

from shared import renders
from shared.producer import RenderLimitExceeded, RenderRequest, enqueue_render, enqueue_renders
from shared.render_request import RenderMessage
from tests.support import get_render, make_request


def req(**overrides: object) -> RenderRequest:
    return make_request(**overrides)


@pytest.fixture
def queued(env, use_db, sqlite_url, redis_url):
    use_db(sqlite_url)
    client = redis.Redis.from_url(redis_url)
    ns = env["REDIS_NAMESPACE"]

    def messages() -> list[dict]:
        ids = client.lrange(f"{ns}:renders", 0, -1)
        raw = client.hmget(f"{ns}:renders.msgs", ids) if ids else []
        found = []
        for m in raw:
            assert m is not None, "a queued message id has no message"
            found.append(json.loads(m))
        return found

    yield messages
    client.close()


def test_enqueue_render_stores_row_and_sends_message(queued):
    render = enqueue_render(req())
    assert render.status == "pending" and render.id
    assert get_render(render.id).composition == "Main"
    [message] = queued()
    assert message["actor_name"] == "start_render"
    assert message["queue_name"] == "renders"
    body = RenderMessage.model_validate(message["args"][0])
    assert body.render_id == render.id
    assert body.input_props == {"title": "Hi"}
    assert message["options"]["redis_message_id"]


def test_idempotency_key_returns_same_render_and_enqueues_once(queued):
    first = enqueue_render(req(idempotency_key="abc"))
    second = enqueue_render(req(idempotency_key="abc"))
    assert first.id == second.id
    assert len(queued()) == 1


def test_limit_violation_is_rejected_before_anything_is_stored(queued):
    with pytest.raises(RenderLimitExceeded, match=r"width=3840 exceeds the maximum long side"):
        enqueue_render(req(width=3840, height=2160))
    assert queued() == []
    assert renders.count_by_status()["pending"] == 0


def test_structural_error_names_field():
    with pytest.raises(ValidationError, match="fps"):
        req(fps="30")


def test_batch_enqueue(queued):
    stored = enqueue_renders([req(generation_id=f"g{i}") for i in range(50)])
    assert len({r.id for r in stored}) == 50
    messages = queued()
    assert len(messages) == 50
    assert {m["args"][0]["render_id"] for m in messages} == {r.id for r in stored}


def test_one_bad_request_rejects_the_batch(queued):
    with pytest.raises(RenderLimitExceeded):
        enqueue_renders([req(), req(duration_in_frames=10_000)])
    assert queued() == []
