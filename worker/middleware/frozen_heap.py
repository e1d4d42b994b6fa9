"""Freezes a worker process's start-up heap before its threads start (``shared.frozen_heap``).

Before the freeze it builds what the process would otherwise build on its first messages:
each pool's Remotion client and Lambda client (botocore loads the Lambda service model). No
network: a client connects on its first call. S3 clients are left to the rare paths that need
them (start recovery, bucket discovery): building one per pool would cost memory in every
worker for objects most never use.
"""

from __future__ import annotations

from dramatiq import Broker, Middleware, Worker

from shared import aws
from shared.frozen_heap import freeze_start_up_heap
from shared.log import get_logger
from shared.pools import PoolConfigError, configured_pools
from shared.settings import get_settings
from worker.lambda_client import get_lambda

log = get_logger(__name__)


def warm_clients() -> None:
    try:
        pools = configured_pools()
    except PoolConfigError:
        pools = ()  # Preflight reports a bad pool configuration; nothing to build here
    for pool in pools:
        try:
            get_lambda(pool.name)
            aws.lambda_client(pool.region, pool.endpoint_url)
        except Exception as exc:  # the first message that needs the client reports it
            log.warning("could not build a pool's Lambda client", pool=pool.name, error=str(exc))


class FrozenStartupHeap(Middleware):
    """Runs before the worker's threads start: process boot (``Preflight``) is over."""

    def before_worker_boot(self, broker: Broker, worker: Worker) -> None:
        if not get_settings().gc_freeze_at_start:
            return
        warm_clients()
        log.debug("start-up heap frozen", objects=freeze_start_up_heap())
