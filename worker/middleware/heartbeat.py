"""Worker heartbeats that operators (and ``scripts.health``) can read.

Dramatiq keeps heartbeats too, but per broker connection, producers and schedulers included,
so "a heartbeat is fresh" would not mean "a worker is alive". Each worker process writes its
own entry, ``<ns>:workers`` hash ``<host>:<pid>`` -> JSON, every few seconds.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from typing import Any

from dramatiq import Broker, Middleware, Worker
from dramatiq.common import q_name

from shared.log import get_logger
from shared.redis_client import get_redis
from shared.redis_keys import keys

log = get_logger(__name__)

INTERVAL_S = 5.0


class WorkerHeartbeat(Middleware):
    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.worker_id = ""

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        queues = sorted(getattr(worker, "consumer_whitelist", None) or broker.get_declared_queues())
        started = time.time()

        def beat() -> None:
            while not self._stop.is_set():
                entry = {
                    "worker_id": self.worker_id,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "queues": [q for q in queues if q == q_name(q)],
                    "threads": getattr(worker, "worker_threads", None),
                    "started_at": started,
                    "seen_at": time.time(),
                }
                try:
                    get_redis().hset(keys().workers(), self.worker_id, json.dumps(entry))
                except Exception as exc:
                    log.warning("could not write worker heartbeat", error=str(exc))
                self._stop.wait(INTERVAL_S)

        self._thread = threading.Thread(target=beat, name="renderq-heartbeat", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        self._stop.set()
        try:
            get_redis().hdel(keys().workers(), self.worker_id)
        except Exception:
            log.warning("could not remove worker heartbeat", exc_info=True)


def read_workers(stale_after_s: float = 3 * INTERVAL_S) -> tuple[list[dict[str, Any]], list[str]]:
    """Live worker entries, and ids of stale ones (pruned here: crashed workers leave them)."""
    client = get_redis()
    raw: dict[bytes, bytes] = client.hgetall(keys().workers())  # type: ignore[assignment]  # redis-py types sync and async results as one union
    now = time.time()
    alive, stale = [], []
    for worker_id, value in raw.items():
        entry = json.loads(value)
        if now - float(entry.get("seen_at", 0)) <= stale_after_s:
            alive.append(entry)
        else:
            stale.append(worker_id.decode())
    if stale:
        client.hdel(keys().workers(), *stale)
    return sorted(alive, key=lambda e: e["worker_id"]), stale
