"""The fast tier: renderq's middleware and actors on Dramatiq's ``StubBroker``, in this process.

The same middleware stack the worker's broker has (``worker.broker.build_middleware``) and the
real actors (``worker.actors``), rebound to a ``StubBroker`` and served by an in-process
``dramatiq.Worker``; Redis (rate limits, budget), SQLite and the emulator are real. A change to
the middleware or an actor is checked here in seconds; the end-to-end tests beside this folder
still prove the same paths with real ``dramatiq`` processes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dramatiq
import pytest
from dramatiq import Actor, Broker, Middleware, Worker
from dramatiq.brokers.stub import StubBroker

from shared.settings import get_settings


class EnqueueLog(Middleware):
    """Records every enqueue with its delay: a delayed copy leaves the broker's queues as soon
    as the in-process worker prefetches it, so the log is where a test sees it."""

    def __init__(self) -> None:
        self.entries: list[tuple[dramatiq.Message[Any], int]] = []

    def after_enqueue(self, broker: Broker, message: dramatiq.Message[Any], delay: int) -> None:
        self.entries.append((message, delay))


@dataclass
class StubWorld:
    broker: StubBroker
    worker: Worker
    actors: dict[str, Actor[Any, Any]]
    enqueues: EnqueueLog

    def join(self, timeout_ms: int = 10_000) -> None:
        """Wait until every queue, delayed ones included, is empty and every message done."""
        for queue in list(self.broker.queues):
            self.broker.join(queue, timeout=timeout_ms)
        self.worker.join()

    def deferred_copies(self, message_id: str) -> list[tuple[dramatiq.Message[Any], int]]:
        """Copies of a message enqueued with a delay (deferrals), with their delays."""
        return [(m, d) for m, d in self.enqueues.entries if m.message_id == message_id and d]


@pytest.fixture
def stub_world(
    env: dict[str, str],
    use_db: Callable[[str], str],
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[StubWorld]:
    """A StubBroker with renderq's middleware, the real actors bound to it, and a worker.

    The actors module is imported here (not at collection time) so that it picks up this
    test's settings; its own Redis broker is left alone and restored afterwards. The heap
    freeze is off: it is for the whole process, and this one is pytest's
    (``tests/test_frozen_heap.py`` boots it in a process of its own).
    """
    monkeypatch.setenv("GC_FREEZE_AT_START", "false")
    use_db(sqlite_url)
    from worker import actors
    from worker.broker import build_middleware

    enqueues = EnqueueLog()
    broker = StubBroker(middleware=[*build_middleware(get_settings()), enqueues])
    broker.declare_queue(get_settings().admitted_queue)  # as worker.broker does
    broker.emit_after("process_boot")
    bound = {
        name: actor
        for name in ("start_render", "poll_tick", "poll_batch", "reconcile")
        if isinstance(actor := getattr(actors, name), Actor)
    }
    previous = dramatiq.get_broker()
    originals = {name: actor.broker for name, actor in bound.items()}
    dramatiq.set_broker(broker)
    for actor in bound.values():
        actor.broker = broker
        broker.declare_actor(actor)
    worker = Worker(broker, worker_timeout=50, worker_threads=4)
    worker.start()
    try:
        yield StubWorld(broker, worker, bound, enqueues)
    finally:
        worker.stop()
        broker.close()
        for name, actor in bound.items():
            actor.broker = originals[name]
        dramatiq.set_broker(previous)
