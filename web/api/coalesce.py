"""Concurrent single creates share one ``enqueue_renders`` call (group commit).

Each ``POST /v1/renders`` otherwise pays its own INSERT, budget script and message round
trips; under load those dominate a request. A request that finds no call in progress runs
one with every request waiting at that moment; requests arriving meanwhile wait for it and
the next call takes them all. Nothing waits for a timer, so a lone request is not slowed.

Each request was checked on its own first (limits, idempotency, the caller's users), so a
shared call stores exactly what separate calls would: one row and one message each, in one
statement. If the call fails (the database or Redis down), every request in it gets the error
and nothing of it was stored: ``enqueue_renders`` is all or nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from shared import producer
from shared.models import Render
from shared.render_request import RenderRequest

#: The most requests one shared call takes (the rest go in the next one).
MAX_BATCH = 200


@dataclass
class _Waiting:
    request: RenderRequest
    done: threading.Event = field(default_factory=threading.Event)
    render: Render | None = None
    error: BaseException | None = None
    #: Set instead of a result: this request's thread runs the next shared call.
    lead: bool = False


class Coalescer:
    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self._max = max_batch
        self._lock = threading.Lock()
        self._queue: list[_Waiting] = []
        self._running = False

    def enqueue(self, request: RenderRequest) -> Render:
        me = _Waiting(request)
        with self._lock:
            self._queue.append(me)
            lead = not self._running
            self._running = True
        if not lead:
            me.done.wait()
        if me.lead or lead:
            self._run()
        if me.error is not None:
            raise me.error
        assert me.render is not None
        return me.render

    def _run(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
        try:
            stored = producer.enqueue_renders([w.request for w in batch])
        except BaseException as exc:
            for w in batch:
                w.error = exc
        else:
            for w, render in zip(batch, stored, strict=True):
                w.render = render
        with self._lock:
            # Whoever waits now runs the next call; none: the next request to come runs it.
            nxt = self._queue[0] if self._queue else None
            if nxt is None:
                self._running = False
            else:
                nxt.lead = True
        for w in batch:
            w.done.set()
        if nxt is not None:
            nxt.done.set()


_coalescer = Coalescer()


def enqueue_render(request: RenderRequest) -> Render:
    """``shared.producer.enqueue_render``, sharing the call with concurrent requests."""
    return _coalescer.enqueue(request)
