"""Moves a worker process's start-up objects out of the garbage collector's sight.

A worker process holds some 160,000 objects from start-up that live as long as it does:
botocore's service models, SQLAlchemy's and pydantic's machinery, Remotion's client. CPython's
full (generation 2) collection walks every one of them while holding the GIL, and no thread of
the process runs meanwhile: 100-350 ms on the benchmark's 2-core machine, one such pause per
worker process within seconds of its start and more as it lives, each one a stall of every
render the process was starting (``docs/performance.md``). ``gc.freeze()`` puts what exists
at that moment in the permanent generation, which collections skip; objects made afterwards
are collected as before. Done before the worker's threads start, after the clients that
would otherwise load their models on the first message are built, and after a collection,
so that nothing frozen is garbage already. Reference counting still frees a frozen object
that stops being used; only a frozen reference cycle would outlive its use, and start-up
objects are not thrown away.
"""

from __future__ import annotations

import gc

from dramatiq import Broker, Middleware, Worker
from sqlalchemy.orm import configure_mappers

from shared import aws
from shared.log import get_logger
from shared.pools import PoolConfigError, configured_pools
from shared.settings import get_settings
from worker.lambda_client import get_lambda

log = get_logger(__name__)


def warm_clients() -> None:
    """Build what a worker otherwise builds on its first messages: each pool's Remotion
    client with its Lambda and S3 clients (botocore loads a service model per client) and
    SQLAlchemy's mappers. No network: a client connects on its first call, the database on
    its first statement."""
    try:
        pools = configured_pools()
    except PoolConfigError:
        pools = ()  # Preflight reports a bad pool configuration; nothing to build here
    for pool in pools:
        get_lambda(pool.name)
        aws.lambda_client(pool.region, pool.endpoint_url)
        aws.s3_client(pool.region, pool.endpoint_url)
    configure_mappers()


def freeze_heap() -> int:
    """Collect, then freeze every object tracked now; returns how many are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class FrozenStartupHeap(Middleware):
    """Freezes the start-up heap once per worker process, before its threads start."""

    def before_worker_boot(self, broker: Broker, worker: Worker) -> None:
        if not get_settings().worker_gc_freeze:
            return
        warm_clients()
        log.debug("start-up heap frozen", objects=freeze_heap())
