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
from shared.pools import Pool
from worker.lambda_client import get_lambda


def _build_lambda(pool: Pool) -> None:
    get_lambda(pool.name)
    aws.lambda_client(pool.region, pool.endpoint_url)


class FrozenStartupHeap(Middleware):
    """Runs before the worker's threads start: process boot (``Preflight``) is over."""

    def before_worker_boot(self, broker: Broker, worker: Worker) -> None:
        freeze_start_up_heap("Lambda", _build_lambda)
