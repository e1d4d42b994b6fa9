"""The bare-Dramatiq baseline of ``python -m devtools.bench``: ``dramatiq devtools.bench.noop``.

Every renderq throughput figure is reported as a ratio to what Dramatiq alone drains on the same
machine, with the same broker settings and the same worker processes and threads. This module is
that "Dramatiq alone": Dramatiq's ``RedisBroker`` with its default middleware, renderq's
heartbeat and maintenance settings and namespace (from the same environment variables), and one
actor that does nothing.

Loaded by the ``dramatiq`` worker processes of the ``bare`` section (``devtools.bench.bare``),
never by the benchmark process itself: importing it sets the global broker.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from devtools.bench.support import NOOP_ACTOR, NOOP_QUEUE
from shared.settings import get_settings

_settings = get_settings()
broker = RedisBroker(
    url=_settings.redis_url,
    namespace=_settings.redis_namespace,
    heartbeat_timeout=_settings.broker_heartbeat_timeout_ms,
    maintenance_chance=_settings.broker_maintenance_chance,
)
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name=NOOP_ACTOR, queue_name=NOOP_QUEUE, max_retries=0)
def bench_noop(i: int) -> None:
    """Nothing: what is left is Dramatiq's own cost per message."""
