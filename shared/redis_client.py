"""One Redis client per process for renderq's own keys (rate limits, budget, poll slots)."""

from __future__ import annotations

import os
import threading

import redis

from shared.settings import get_settings

_clients: dict[tuple[int, str], redis.Redis] = {}
_lock = threading.Lock()


def get_redis() -> redis.Redis:
    url = get_settings().redis_url
    key = (os.getpid(), url)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = redis.Redis.from_url(
                    url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
                )
    return client


def reset_redis() -> None:
    with _lock:
        for client in _clients.values():
            client.connection_pool.disconnect()
        _clients.clear()
