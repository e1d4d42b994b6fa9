"""The queue doorbell (``shared.doorbell``): producers ring, idle consumers wake at once.

Against the real Redis: a consumer whose pauses are set to two seconds must fetch a rung
message within a fraction of that, still fetch a message nobody rang for (Dramatiq's own
broker as the producer) at the end of its wait, and poll as before with the doorbell off.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer

from devtools.process import reset_caches
from shared import doorbell
from shared.messages import RingingRedisBroker, enqueue_many, make_broker, new_message
from shared.redis_keys import RedisKeys
from worker.redis_broker import RecoveringRedisBroker

_QUEUE = "renders"
_WAIT_MS = 2_000


def test_a_ring_ends_a_wait_and_tokens_are_capped(redis_url: str, namespace: str) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = RedisKeys(namespace)
    began = time.monotonic()
    assert doorbell.wait(client, keys, _QUEUE, 50) is False
    assert time.monotonic() - began >= 0.05
    for _ in range(doorbell.TOKENS_KEPT + 5):
        pipe = client.pipeline(transaction=False)
        doorbell.ring(pipe, keys, [_QUEUE, _QUEUE])
        pipe.execute()
    key = keys.doorbell(_QUEUE)
    assert client.llen(key) == doorbell.TOKENS_KEPT
    assert 0 < client.pttl(key) <= doorbell.TOKENS_TTL_MS
    began = time.monotonic()
    assert doorbell.wait(client, keys, _QUEUE, _WAIT_MS) is True
    assert time.monotonic() - began < 0.5
    client.close()


@pytest.fixture
def slow_polls(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Consumer pauses of two seconds, so that only the doorbell can make a fetch quick."""
    for name in ("QUEUE_IDLE_POLL_MS", "QUEUE_QUIET_POLL_MS"):
        monkeypatch.setenv(name, str(_WAIT_MS))
    reset_caches()


class _Consumer:
    """A worker's consumer of ``renders`` on a thread, recording when each message arrived."""

    def __init__(self, redis_url: str, namespace: str) -> None:
        self.broker = RecoveringRedisBroker(url=redis_url, namespace=namespace, middleware=[])
        consumer = self.broker.consume(_QUEUE, prefetch=4, timeout=_WAIT_MS)
        assert isinstance(consumer, _RedisConsumer)
        self.consumer = consumer
        self.arrived: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = next(self.consumer)
            if message is not None:
                self.arrived[message.message_id] = time.monotonic()
                self.consumer.ack(message)

    def wait_for(self, message_id: str, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while message_id not in self.arrived and time.monotonic() < deadline:
            time.sleep(0.005)
        assert message_id in self.arrived, f"{message_id} not consumed in {timeout_s} s"
        return self.arrived[message_id]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.consumer.close()
        self.broker.close()


def _idle(consumer: _Consumer) -> None:
    """Long enough for the consumer's first short pauses to pass: it now waits on the bell."""
    time.sleep(0.3)
    assert consumer.consumer.misses >= 2


def _send(broker: Any, count: int = 1) -> tuple[list[str], float]:
    messages = [new_message(_QUEUE, "start_render", [i]) for i in range(count)]
    sent = time.monotonic()
    if count == 1:
        broker.enqueue(messages[0])
    else:
        enqueue_many(broker, messages)
    return [m.message_id for m in messages], sent


def test_an_idle_consumer_fetches_a_rung_message_at_once(
    slow_polls: None, redis_url: str, namespace: str
) -> None:
    producer = make_broker()
    assert isinstance(producer, RingingRedisBroker) and producer.rings
    consumer = _Consumer(redis_url, namespace)
    try:
        for count in (1, 3):  # broker.enqueue, then the pipelined bulk path
            _idle(consumer)
            ids, sent = _send(producer, count)
            for message_id in ids:
                assert consumer.wait_for(message_id, 5) - sent < 0.5
    finally:
        consumer.close()
        producer.close()


def test_an_unrung_message_is_still_fetched_when_the_wait_ends(
    slow_polls: None, redis_url: str, namespace: str
) -> None:
    foreign = RedisBroker(url=redis_url, namespace=namespace, middleware=[])
    consumer = _Consumer(redis_url, namespace)
    try:
        _idle(consumer)
        (message_id,), sent = _send(foreign)
        # Found by the fetch after the wait (up to 2 s, and Redis's 100 ms timer tick).
        assert consumer.wait_for(message_id, 5) - sent < _WAIT_MS / 1000 + 0.5
    finally:
        consumer.close()
        foreign.close()


def test_with_the_doorbell_off_nobody_rings_or_waits(
    slow_polls: None, redis_url: str, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUEUE_DOORBELL", "false")
    reset_caches()
    producer = make_broker()
    consumer = _Consumer(redis_url, namespace)
    client = redis.Redis.from_url(redis_url)
    try:
        _idle(consumer)
        (message_id,), _ = _send(producer)
        consumer.wait_for(message_id, 5)
        assert client.exists(RedisKeys(namespace).doorbell(_QUEUE)) == 0
    finally:
        consumer.close()
        producer.close()
        client.close()
