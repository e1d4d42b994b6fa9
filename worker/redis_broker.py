"""Dramatiq's Redis broker with three holes closed, for workers.

1. **Messages stranded by a connection error.** When a consumer loses Redis, Dramatiq drops the
   messages it had prefetched (including every delayed message it was holding in memory) and
   starts a new consumer. Those messages are still listed as unacked *by this live worker* in
   Redis, so maintenance never redelivers them: they are stuck until the process restarts.
   Throttled renders wait as delayed messages, so one Redis restart would strand all of them.
   Here, a consumer that is re-created for a queue first requeues this worker's unacked
   messages of that queue. Messages still being processed may then run twice, which every
   renderq actor tolerates (see the claim in ``shared.repository``).
2. **Slow wake-up after a pause, or busy idling.** An idle consumer backs off exponentially up
   to the worker timeout (1 s by default), so the next message after a pause waits up to a
   second; capped at 100 ms instead, an idle deployment polls Redis hundreds of times a second
   (six consumers per process, each fetch a Lua call of three commands). So the cap follows
   the queue: ``QUEUE_IDLE_POLL_MS`` while it had a message in the last
   ``QUEUE_QUIET_AFTER_S``, ``QUEUE_QUIET_POLL_MS`` once it has been quiet longer. With
   ``QUEUE_DOORBELL`` (the default) a consumer whose fetches came back empty twice spends
   that time waiting on the queue's doorbell (``shared.doorbell``) instead of sleeping, and
   fetches again as soon as a producer rings.
3. **Undecodable messages.** A message that is not valid JSON, or whose envelope has unknown
   fields, raises in the consumer, which then restarts and (with 1.) would fetch it again
   forever. Here it is logged and moved to the dead-letter queue, and consumption goes on.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import redis
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.redis import _RedisConsumer
from dramatiq.errors import ConnectionClosed, DecodeError

from shared import doorbell
from shared.log import get_logger
from shared.messages import RingingRedisBroker
from shared.redis_keys import RedisKeys
from shared.settings import get_settings

log = get_logger(__name__)

_CHUNK = 500
#: Empty fetches a consumer answers with Dramatiq's short sleeps before it waits on the doorbell.
_MISSES_BEFORE_BELL = 2


class RecoveringRedisBroker(RingingRedisBroker):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._consumed: set[str] = set()
        self._consumed_lock = threading.Lock()

    @property
    def consumer_class(self) -> type[_RedisConsumer]:
        return _SafeConsumer

    def acks_key(self, queue_name: str) -> str:
        return RedisKeys(self.namespace).acks(self.broker_id, queue_name)

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        with self._consumed_lock:
            restarted = queue_name in self._consumed
            self._consumed.add(queue_name)
        if restarted:
            try:
                self.requeue_unacked(queue_name)
            except redis.ConnectionError as exc:
                raise ConnectionClosed(exc) from None
        return super().consume(queue_name, prefetch, timeout)

    def requeue_unacked(self, queue_name: str) -> int:
        """Put back every message this worker holds unacked on ``queue_name``."""
        ids = [i.decode() for i in self.client.smembers(self.acks_key(queue_name))]  # type: ignore[union-attr]  # redis-py types sync and async results as one union
        for start in range(0, len(ids), _CHUNK):
            self.do_requeue(queue_name, *ids[start : start + _CHUNK])
        if ids:
            log.warning(
                "requeued messages stranded by a lost connection", queue=queue_name, count=len(ids)
            )
        return len(ids)

    def _held(self, queue_name: str) -> list[tuple[str, bytes | None]]:
        """(redis id, raw message) of every message this worker holds unacked on the queue."""
        ids = list(self.client.smembers(self.acks_key(queue_name)))
        if not ids:
            return []
        values = self.client.hmget(RedisKeys(self.namespace).queue_messages(queue_name), ids)
        return [(i.decode(), v) for i, v in zip(ids, values, strict=True)]

    def dead_letter_raw(self, queue_name: str, data: bytes, reason: str) -> bool:
        """Move an undecodable message, identified by its raw bytes, to the dead-letter queue."""
        for redis_id, value in self._held(queue_name):
            if value == data:
                self.do_nack(queue_name, redis_id)
                return True
        return False

    def redis_id_of(self, queue_name: str, message_id: str) -> str | None:
        """The Redis id of a held message that does not carry ``redis_message_id`` (a foreign
        producer's); without it the message could never be acked."""
        for redis_id, value in self._held(queue_name):
            if redis_id == message_id:
                return redis_id
            try:
                if value is not None and json.loads(value).get("message_id") == message_id:
                    return redis_id
            except (ValueError, AttributeError):
                continue
        return None


class _SafeConsumer(_RedisConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = get_settings()
        self._busy_ms = min(self.timeout, settings.queue_idle_poll_ms)
        self._quiet_ms = max(self._busy_ms, settings.queue_quiet_poll_ms)
        self._quiet_after_s = settings.queue_quiet_after_s
        self._last_message = time.monotonic()
        self._doorbell = settings.queue_doorbell

    def __next__(self) -> MessageProxy | None:
        quiet = time.monotonic() - self._last_message > self._quiet_after_s
        wait_ms = self._quiet_ms if quiet else self._busy_ms
        # On the doorbell once Dramatiq's own first pauses (5-10 and 10-20 ms) found nothing:
        # Redis ends a blocking wait that no ring ends only at its next timer tick (every
        # 100 ms at the default ``hz`` 10), too coarse for them, and after them the consumer
        # also handles its acks and due delayed messages soon after a message. Only when this
        # call asks Redis (nothing cached, room to prefetch): otherwise the wait is for worker
        # threads to finish, which no doorbell announces.
        bell = (
            self._doorbell
            and self.misses >= _MISSES_BEFORE_BELL
            and not self.message_cache
            and self.outstanding_message_count < self.prefetch
        )
        # Dramatiq sleeps after an empty fetch for up to ``timeout``: not at all when the wait
        # happens on the doorbell instead.
        self.timeout = 0 if bell else wait_ms
        message = self._next_valid()
        if message is not None:
            self._last_message = time.monotonic()
            return message
        if bell:
            try:
                doorbell.wait(self.broker.client, self.broker.keys, self.queue_name, wait_ms)
            except redis.ConnectionError as exc:
                raise ConnectionClosed(exc) from None
        return None

    def _next_valid(self) -> MessageProxy | None:
        while True:
            try:
                message = super().__next__()
            except DecodeError as exc:
                data = exc.data if isinstance(exc.data, bytes) else bytes(exc.data or b"")
                reason = f"{type(exc.error).__name__}: {exc.error}"
                moved = self.broker.dead_letter_raw(self.queue_name, data, reason)
                log.error(
                    "undecodable message dead-lettered" if moved else "undecodable message dropped",
                    queue=self.queue_name,
                    reason=reason[:500],
                    size=len(data),
                    preview=data[:200].decode("utf-8", "replace"),
                )
                continue
            if message is not None and not self._has_redis_id(message):
                continue
            return message

    def _has_redis_id(self, message: MessageProxy) -> bool:
        """Make sure the message can be acked; a malformed envelope is dead-lettered."""
        options = message.options
        if isinstance(options, dict) and "redis_message_id" in options:
            return True
        redis_id = self.broker.redis_id_of(self.queue_name, str(message.message_id))
        if redis_id is None:
            log.error("message without a findable redis id dropped", message_id=message.message_id)
            return False
        if not isinstance(options, dict):
            self.broker.do_nack(self.queue_name, redis_id)
            log.error("message with malformed options dead-lettered", message_id=message.message_id)
            return False
        options["redis_message_id"] = redis_id
        return True
