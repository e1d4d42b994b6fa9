"""The worker's broker: Redis, tuned for fast crash recovery, with renderq's middleware.

Importing this module configures logging and installs the broker as Dramatiq's global broker,
so it must be imported before any actor module (``worker.actors`` does that first). Middleware
order matters: ``before_*`` hooks run in list order, ``after_*`` in reverse.
"""

from __future__ import annotations

import dramatiq
from dramatiq import Middleware
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import (
    AgeLimit,
    CurrentMessage,
    Retries,
    ShutdownNotifications,
    TimeLimit,
)

from shared.log import configure_logging
from shared.messages import make_broker
from shared.settings import Settings, get_settings
from worker import failpoints
from worker.malloc_arenas import limit_arenas
from worker.metrics import RenderqPrometheus
from worker.middleware.frozen_heap import FrozenStartupHeap
from worker.middleware.heartbeat import WorkerHeartbeat
from worker.middleware.log_context import LogContext
from worker.middleware.rate_limit import UserRateLimit
from worker.preflight import Preflight
from worker.redis_broker import RecoveringRedisBroker


def build_middleware(settings: Settings) -> list[Middleware]:
    """renderq's middleware stack, in order (the in-process tests put it on a StubBroker)."""
    middleware: list[Middleware] = [
        LogContext(),
        # Before anything consumes: a worker that cannot render refuses to start.
        Preflight(),
        # After Preflight has built the Lambda client, before the worker's threads start.
        FrozenStartupHeap(),
        AgeLimit(),
        TimeLimit(time_limit=settings.actor_time_limit_ms),
        ShutdownNotifications(),
        CurrentMessage(),
        # Renderq handles Lambda throttling and transient errors itself (without counting them
        # as retries); Retries is for the unexpected: a database outage, a bug.
        Retries(max_retries=20, min_backoff=1_000, max_backoff=300_000),
        # After Retries in the list, so its after-hook (refund an unused permit) runs first.
        UserRateLimit(),
        WorkerHeartbeat(),
    ]
    if settings.metrics_port:
        middleware.append(RenderqPrometheus())
    return middleware


def build_broker(settings: Settings | None = None) -> RedisBroker:
    settings = settings or get_settings()
    built = make_broker(
        settings, middleware=build_middleware(settings), broker_class=RecoveringRedisBroker
    )
    # No actor is declared on it (start_render's queue is START_QUEUE), so declare it: a worker
    # started without --queues consumes it too.
    built.declare_queue(settings.admitted_queue)
    return built


limit_arenas(get_settings().worker_malloc_arenas)  # before any worker thread starts
configure_logging()
failpoints.armed()  # refuse to boot with a mistyped FAILPOINTS
broker = build_broker()
dramatiq.set_broker(broker)
