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
from shared.frozen_heap import build_for_pools, freeze_start_up_heap
from shared.log import get_logger
from shared.pools import Pool
from shared.settings import get_settings
from worker.lambda_client import get_lambda

log = get_logger(__name__)


def _build_lambda(pool: Pool) -> None:
    get_lambda(pool.name)
    aws.lambda_client(pool.region, pool.endpoint_url)


def warm_clients() -> None:
    build_for_pools("Lambda", _build_lambda)


class FrozenStartupHeap(Middleware):
    """Runs before the worker's threads start: process boot (``Preflight``) is over."""

    def before_worker_boot(self, broker: Broker, worker: Worker) -> None:
        if not get_settings().gc_freeze_at_start:
            return
        warm_clients()
        log.debug("start-up heap frozen", objects=freeze_start_up_heap())
