"""The pipelined enqueue (``shared.messages``): one round trip per enqueue, against real Redis.

A redis-py ``Script`` run on a pipeline makes each ``execute`` ask ``SCRIPT EXISTS`` first;
the enqueue path sends ``EVALSHA`` itself instead. These tests check that it still stores each
message exactly once when Redis does not know the script (a restarted Redis: simulated with a
sha Redis never saw, since ``SCRIPT FLUSH`` would hit every test sharing the server), and that
an error other than an unknown script still raises.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from dramatiq import Message
from redis.client import Pipeline

from shared.messages import RingingRedisBroker, enqueue_many
from shared.redis_keys import RedisKeys

_QUEUE = "renders"


def _message() -> Message[Any]:
    return Message(
        queue_name=_QUEUE, actor_name="start_render", args=({"n": 1},), kwargs={}, options={}
    )


@pytest.fixture
def broker(redis_url: str, namespace: str) -> RingingRedisBroker:
    return RingingRedisBroker(url=redis_url, namespace=namespace, middleware=[])


def _stored(broker: RingingRedisBroker) -> tuple[int, int]:
    """(messages listed in the queue, message bodies stored)."""
    client = broker.client
    return client.llen(f"{broker.namespace}:{_QUEUE}"), client.hlen(
        f"{broker.namespace}:{_QUEUE}.msgs"
    )


def test_enqueue_asks_redis_nothing_before_its_pipeline(
    broker: RingingRedisBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker.enqueue(_message())  # the script is loaded from here on
    immediate: list[tuple[Any, ...]] = []
    real = Pipeline.immediate_execute_command

    def spy(self: Pipeline, *args: Any, **options: Any) -> Any:
        immediate.append(args)
        return real(self, *args, **options)

    monkeypatch.setattr(Pipeline, "immediate_execute_command", spy)
    broker.enqueue(_message())
    enqueue_many(broker, [_message(), _message(), _message()])
    assert immediate == []
    assert _stored(broker) == (5, 5)
    # Each of the three calls rang the bell once, in the same pipeline.
    assert broker.client.llen(RedisKeys(broker.namespace).doorbell(_QUEUE)) == 3


@pytest.mark.parametrize("batch", [1, 4])
def test_an_unknown_script_is_loaded_and_each_message_stored_once(
    broker: RingingRedisBroker, batch: int
) -> None:
    script = broker.scripts["dispatch"]
    real_sha = script.sha
    script.sha = "0" * 40  # a sha Redis never saw: what every enqueue meets after a restart
    messages = [_message() for _ in range(batch)]
    if batch == 1:
        broker.enqueue(messages[0])
    else:
        enqueue_many(broker, messages)
    assert script.sha == real_sha
    assert _stored(broker) == (batch, batch)
    listed = broker.client.lrange(f"{broker.namespace}:{_QUEUE}", 0, -1)
    assert len(set(listed)) == batch


def test_another_error_raises(broker: RingingRedisBroker) -> None:
    broker.client.set(f"{broker.namespace}:{_QUEUE}", "not a list")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        broker.enqueue(_message())
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        enqueue_many(broker, [_message(), _message()])
    broker.client.delete(f"{broker.namespace}:{_QUEUE}")
