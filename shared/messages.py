"""The queue contract: queue and actor names, and how a message is put on Redis.

Producers need only this module (and a Redis connection) to enqueue; they never import the
worker's actors or middleware. Foreign (non-Python) producers follow the same contract, which
the README spells out: the Dramatiq message envelope, stored with one HSET and one RPUSH.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker
from redis.exceptions import NoScriptError

from shared import doorbell
from shared.per_process import PerProcess
from shared.redis_keys import RedisKeys
from shared.render_request import RenderRequest
from shared.settings import Settings, get_settings

START_RENDER = "start_render"
POLL_TICK = "poll_tick"
POLL_BATCH = "poll_batch"
RECONCILE = "reconcile"
CANCEL_RENDER = "cancel_render"
DELIVER_EVENTS = "deliver_events"
DELIVER_DUE = "deliver_due"


def new_message(
    queue_name: str, actor_name: str, args: Sequence[Any], options: dict[str, Any] | None = None
) -> Message[Any]:
    return Message(
        queue_name=queue_name,
        actor_name=actor_name,
        args=tuple(args),
        kwargs={},
        options=dict(options or {}),
        message_id=str(uuid.uuid4()),
        message_timestamp=int(time.time() * 1000),
    )


def message_payload(render_id: str, request: RenderRequest) -> dict[str, object]:
    """The JSON body of the ``start_render`` message for a stored render.

    The request was validated when it was built; dumping it is enough (no second validation
    per render on the bulk-enqueue path).
    """
    body = request.model_dump(mode="json", exclude_none=True)
    return {**body, "schema_version": 1, "render_id": render_id}


def start_render_message(
    payload: dict[str, Any], settings: Settings | None = None, *, admitted: bool = False
) -> Message[Any]:
    """A start; ``admitted`` (room already held for it) goes to its own queue, which no
    backlog of new renders stands in front of."""
    settings = settings or get_settings()
    queue = settings.admitted_queue if admitted else settings.start_queue
    return new_message(queue, START_RENDER, [payload])


def cancel_render_message(render_id: str, settings: Settings | None = None) -> Message[Any]:
    """Stop a cancelled (or timed-out) render on Lambda. On the poll queue: its workers have
    Lambda access and it never waits behind a backlog of starts."""
    settings = settings or get_settings()
    return new_message(settings.poll_queue, CANCEL_RENDER, [render_id])


def deliver_events_message(event_ids: list[str], settings: Settings | None = None) -> Message[Any]:
    settings = settings or get_settings()
    return new_message(settings.notify_queue, DELIVER_EVENTS, [event_ids])


class RingingRedisBroker(RedisBroker):
    """Dramatiq's Redis broker that rings the queue's doorbell (``shared.doorbell``) in the
    same round trip as every enqueue, so idle consumers fetch at once instead of at the end of
    their backoff. With ``doorbell=False`` it is Dramatiq's broker."""

    def __init__(self, *, doorbell: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rings = doorbell
        self.keys = RedisKeys(self.namespace)

    def do_enqueue(self, queue_name: str, redis_id: str, encoded: bytes) -> None:
        """What ``RedisBroker.enqueue`` calls to store a message: Dramatiq's dispatch script,
        pipelined with the ring."""
        if not self.rings:
            self._dispatch("enqueue")(queue_name, redis_id, encoded)
            return
        call = _enqueue_args(
            self,
            queue_name,
            redis_id,
            encoded,
            int(time.time() * 1000),
            self._should_do_maintenance("enqueue"),
        )
        _run_enqueues(self, [call], [queue_name])


def make_broker(
    settings: Settings | None = None,
    *,
    middleware: list[Any] | None = None,
    broker_class: type[RedisBroker] = RingingRedisBroker,
) -> RedisBroker:
    """A Redis broker on the deployment's Redis and namespace.

    Producers pass no middleware (they only enqueue); the worker builds its own with the full
    middleware stack in ``worker.broker``.
    """
    settings = settings or get_settings()
    extra: dict[str, Any] = {}
    if issubclass(broker_class, RingingRedisBroker):
        extra["doorbell"] = settings.queue_doorbell
    return broker_class(
        url=settings.redis_url,
        namespace=settings.redis_namespace,
        heartbeat_timeout=settings.broker_heartbeat_timeout_ms,
        maintenance_chance=settings.broker_maintenance_chance,
        middleware=[] if middleware is None else middleware,
        **extra,
    )


_producer_broker: PerProcess[RedisBroker] = PerProcess(
    make_broker, close=lambda broker: broker.client.connection_pool.disconnect()
)


def producer_broker() -> RedisBroker:
    """The producers' broker: no middleware, one per process."""
    return _producer_broker.get()


def enqueue_many(broker: RedisBroker, messages: Sequence[Message[Any]]) -> None:
    """Enqueue several messages in one Redis round trip.

    Same effect as ``broker.enqueue`` per message (the same dispatch script runs for each),
    pipelined, because bulk producers are limited by round trips, not by Redis; a ringing
    broker rings each queue's doorbell once, in the same round trip.
    """
    if not messages:
        return
    if len(messages) == 1:
        broker.enqueue(messages[0])
        return
    now = int(time.time() * 1000)
    calls = []
    for message in messages:
        broker.declare_queue(message.queue_name)
        redis_id = str(uuid.uuid4())
        encoded = message.copy(options={"redis_message_id": redis_id}).encode()
        calls.append(_enqueue_args(broker, message.queue_name, redis_id, encoded, now, 0))
    _run_enqueues(broker, calls, [m.queue_name for m in messages])


def _enqueue_args(
    broker: RedisBroker,
    queue_name: str,
    redis_id: str,
    encoded: bytes,
    now_ms: int,
    maintenance: int,
) -> tuple[Any, ...]:
    """The keys and arguments of Dramatiq's dispatch script's ``enqueue``, as
    ``RedisBroker._dispatch`` passes them (``dramatiq/brokers/redis.py``)."""
    return (
        broker.namespace,
        "enqueue",
        now_ms,
        queue_name,
        broker.broker_id,
        broker.heartbeat_timeout,
        broker.dead_message_ttl,
        maintenance,
        broker._max_unpack_size(),
        redis_id,
        encoded,
    )


def _run_enqueues(broker: RedisBroker, calls: list[tuple[Any, ...]], queues: list[str]) -> None:
    """Run the dispatch script once per call, and ring the doorbell of each of ``queues`` when
    the broker rings, in one round trip.

    ``EVALSHA`` straight on the pipeline rather than through the broker's redis-py ``Script``:
    a ``Script`` run on a pipeline makes every ``execute`` ask ``SCRIPT EXISTS`` first, a round
    trip of its own on every enqueue. The script is loaded when Redis does not know it (a
    restarted or flushed Redis) and only the calls that failed for that reason run again: the
    others stored their message, and a second ring only wakes a consumer that finds nothing.
    """
    script = broker.scripts["dispatch"]
    unknown = _pipelined(broker, script.sha, calls, queues)
    if unknown:
        script.sha = broker.client.script_load(script.script)
        if _pipelined(broker, script.sha, unknown, queues):
            raise NoScriptError("Redis does not keep Dramatiq's dispatch script after SCRIPT LOAD")


def _pipelined(
    broker: RedisBroker, sha: str, calls: list[tuple[Any, ...]], queues: list[str]
) -> list[tuple[Any, ...]]:
    """One pipeline of the calls and the rings; returns the calls Redis had no script for
    and raises any other error."""
    pipe = broker.client.pipeline(transaction=False)
    for call in calls:
        pipe.evalsha(sha, 1, *call)
    if isinstance(broker, RingingRedisBroker) and broker.rings:
        doorbell.ring(pipe, broker.keys, queues)
    results = pipe.execute(raise_on_error=False)
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, NoScriptError):
            raise result
    return [c for c, r in zip(calls, results, strict=False) if isinstance(r, NoScriptError)]
