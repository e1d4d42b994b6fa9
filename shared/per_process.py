"""Objects built once per process, on first use, and forgotten together when settings change.

The dramatiq CLI forks its worker processes, and a connection pool, a thread pool or a boto3
client must never cross a fork; tests and the benchmark switch settings within one process.
So every such object (engines, Redis clients, the Lambda client, the budget, the limiter, the
producer's broker) is held by a ``PerProcess``: built lazily under a lock, rebuilt in a child
after a fork, and dropped by ``reset_all()``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import ClassVar, Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    _registry: ClassVar[list[PerProcess[object]]] = []

    def __init__(self, factory: Callable[[], T], close: Callable[[T], None] | None = None) -> None:
        self._factory = factory
        self._close = close
        self._value: T | None = None
        self._pid = 0
        self._lock = threading.Lock()
        PerProcess._registry.append(self)  # type: ignore[arg-type]  # invariant T: held as object

    def get(self) -> T:
        value, pid = self._value, self._pid
        if value is not None and pid == os.getpid():
            return value
        with self._lock:
            if self._value is None or self._pid != os.getpid():
                # A value inherited across a fork belongs to the parent: do not close it here.
                self._value, self._pid = self._factory(), os.getpid()
            return self._value

    def reset(self) -> None:
        with self._lock:
            value, mine = self._value, self._pid == os.getpid()
            self._value, self._pid = None, 0
        if value is not None and mine and self._close is not None:
            self._close(value)


def reset_all() -> None:
    """Forget every per-process object (closing those this process built)."""
    for holder in list(PerProcess._registry):
        holder.reset()
