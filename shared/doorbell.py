"""A doorbell per queue: whoever enqueues rings it, idle consumers wait on it instead of sleeping.

Dramatiq's Redis consumer polls: after an empty fetch it sleeps (a backoff growing up to
``QUEUE_IDLE_POLL_MS``), and a message that arrives meanwhile waits for the sleep to end. At
100 starts/s over two worker processes, one gap in fifty between messages is long enough for
the backoff to reach 50-100 ms, and the message after it waits that long: it is most of the
start latency's tail on a machine with room to spare. With the doorbell the consumer spends
the same time blocked in ``BLPOP`` on the queue's token list and fetches as soon as a producer
rings, so the wait ends when the message arrives, and an idle consumer sends Redis one
command per wait instead of a fetch script per backoff step.

Polling stays what guarantees delivery: a message enqueued by something that does not ring
(a foreign producer sending the documented message, Dramatiq's requeue of a dead worker's
messages, a deployment with ``QUEUE_DOORBELL`` off) is fetched at the end of the wait, as
without the doorbell. A ring is a token, not a message: a consumer woken by a token whose
message another consumer took fetches nothing and waits again. At most ``TOKENS_KEPT`` tokens
are kept, so a burst wakes that many consumers at most, and the list expires when nobody
enqueues.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.redis_keys import RedisKeys

#: Tokens kept per queue: a burst wakes this many consumers, each of which prefetches many.
TOKENS_KEPT = 8
#: An unrung bell disappears after this long (no consumer waits longer than a few seconds).
TOKENS_TTL_MS = 60_000


def ring(pipe: Any, keys: RedisKeys, queue_names: Iterable[str]) -> None:
    """Queue one token per queue on ``pipe`` (a redis-py pipeline the caller executes with
    its enqueue, so ringing costs no round trip of its own)."""
    for queue_name in dict.fromkeys(queue_names):
        key = keys.doorbell(queue_name)
        pipe.lpush(key, 1)
        pipe.ltrim(key, 0, TOKENS_KEPT - 1)
        pipe.pexpire(key, TOKENS_TTL_MS)


def wait(client: Any, keys: RedisKeys, queue_name: str, timeout_ms: int) -> bool:
    """Block until the queue's bell rings or ``timeout_ms`` passes; whether it rang.

    ``BLPOP`` takes a fractional timeout (Redis >= 6) and treats 0 as "forever", hence the
    floor of one millisecond."""
    return client.blpop([keys.doorbell(queue_name)], max(timeout_ms, 1) / 1000) is not None
