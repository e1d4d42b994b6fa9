"""Time: a heap of due events, advanced lazily, plus one scheduler thread for webhooks.

Nothing runs per render. A render is a handful of events (launch steps, chunk ends, upload
ticks) on one heap; every request first runs the events that are due (``advance``), so
whoever looks sees exactly what would have happened by then, in time order, stamped with
the time it happened rather than the time it was noticed. Events that must happen even if
nobody looks (those of renders with a webhook) are also *autonomous*: the single scheduler
thread sleeps until the next of them and then advances the heap itself.

Everything here runs under the emulator's lock, which the :class:`Clock` shares (its
condition variable wakes the scheduler thread when an earlier autonomous event arrives).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

Handler = Callable[..., None]


class Clock:
    """The event heap; ``advance(until)`` runs every event due by ``until`` (lock held)."""

    def __init__(self, lock: threading.Lock) -> None:
        self._events: list[tuple[float, int, Handler, tuple[Any, ...]]] = []
        self._autonomous: list[float] = []
        self._seq = itertools.count()
        self._wakeup = threading.Condition(lock)
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.processed = 0

    def push(self, due: float, handler: Handler, *args: Any, autonomous: bool = False) -> None:
        """Run ``handler(due, *args)`` once the clock reaches ``due`` (lock held)."""
        heapq.heappush(self._events, (due, next(self._seq), handler, args))
        if autonomous:
            if not self._autonomous or due < self._autonomous[0]:
                self._wakeup.notify()
            heapq.heappush(self._autonomous, due)

    def advance(self, until: float) -> None:
        events = self._events
        while events and events[0][0] <= until:
            due, _, handler, args = heapq.heappop(events)
            self.processed += 1
            handler(due, *args)

    def clear(self) -> None:
        self._events.clear()
        self._autonomous.clear()

    def pending(self) -> int:
        return len(self._events)

    # -- the scheduler thread ------------------------------------------------------------

    def start_thread(self, tick: Callable[[float], Callable[[], None]]) -> None:
        """Start the scheduler thread (once, lock held). ``tick(now)`` runs with the lock held
        whenever an autonomous event is due; what it returns runs after the lock is released
        (sending webhooks)."""
        if self._thread is not None or self._stopping:
            return
        self._thread = threading.Thread(
            target=self._run, args=(tick,), name="emulator-scheduler", daemon=True
        )
        self._thread.start()

    def _run(self, tick: Callable[[float], Callable[[], None]]) -> None:
        while True:
            with self._wakeup:
                if self._stopping:
                    return
                now = time.monotonic()
                due = self._autonomous[0] if self._autonomous else None
                if due is None or due > now:
                    self._wakeup.wait(None if due is None else due - now)
                    continue
                while self._autonomous and self._autonomous[0] <= now:
                    heapq.heappop(self._autonomous)
                after = tick(now)
            after()

    def stop(self) -> None:
        """Stop the scheduler thread (call without the lock)."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
