"""One Redis client per process for renderq's own keys (rate limits, budget, poll slots)."""

from __future__ import annotations

import redis

from shared.per_process import PerProcess
from shared.settings import get_settings


def _connect() -> redis.Redis:
    return redis.Redis.from_url(
        get_settings().redis_url,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
    )


_client: PerProcess[redis.Redis] = PerProcess(
    _connect, close=lambda client: client.connection_pool.disconnect()
)


def get_redis() -> redis.Redis:
    return _client.get()
