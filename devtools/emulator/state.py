"""The state a LambdaEmulator keeps, declared once for the mixins it is built from.

:class:`~devtools.emulator.core.LambdaEmulator` combines the routines, launch, renderer,
webhook and S3 mixins. All of them read and update the attributes ``LambdaEmulator.__init__``
sets, declared (with their types) in :class:`EmulatorState`, which also has the few helpers
every part uses: wall-clock conversion, scheduling an event, releasing a concurrency slot.
Everything here is used with ``_lock`` held. :class:`Counters` is what ``stats`` reports.
"""

from __future__ import annotations

import math
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devtools.emulator.aws import FunctionConfig
from devtools.emulator.clock import Clock
from devtools.emulator.concurrency import Account
from devtools.emulator.faults import Faults
from devtools.emulator.render import Render
from devtools.emulator.s3 import Bucket
from devtools.emulator.texts import RemotionError


@dataclass(slots=True)
class Counters:
    start_calls: int = 0
    starts_total: int = 0
    status_calls: int = 0
    still_calls: int = 0
    throttled_total: int = 0
    crashes_total: int = 0
    handled_errors_total: int = 0
    unhandled_errors_total: int = 0
    launches_queued: int = 0
    renderer_invocations: int = 0
    renderer_retries: int = 0
    starts_by_out_name: dict[str, int] = field(default_factory=dict)
    start_times_by_out_name: dict[str, list[float]] = field(default_factory=dict)
    s3_calls: dict[str, int] = field(default_factory=dict)
    internal_s3_calls: Counter[str] = field(default_factory=Counter)
    webhooks: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)


class EmulatorState:
    """Attributes of a LambdaEmulator, all set by its ``__init__``; used with ``_lock`` held."""

    region: str
    account_id: str
    remotion_version: str
    function_names: tuple[str, ...] | None
    _initial: Faults
    _faults: Faults
    _default_bucket: str | None
    _lock: threading.Lock
    _clock: Clock
    _account: Account
    _buckets: dict[str, Bucket]
    _renders: dict[str, Render]
    _launch_queue: deque[Render]
    _counters: Counters
    _outbox: list[Callable[[], None]]
    _epoch: int
    _mono0: float
    _epoch0_ms: int

    def _ms(self, mono: float) -> int:
        """The epoch milliseconds (``Date.now()``) of a monotonic instant."""
        return self._epoch0_ms + math.floor((mono - self._mono0) * 1000)

    def _push(self, due: float, handler: Callable[..., None], *args: Any, auto: bool) -> None:
        self._clock.push(due, handler, *args, autonomous=auto)

    # -- implemented by the mixins; declared here so each part can call the others --------

    def _advance(self, now: float) -> None:
        """Run every event due by ``now`` (core)."""
        raise NotImplementedError

    def _function(self, name: str) -> FunctionConfig:
        """The configuration of the function called ``name`` (core)."""
        raise NotImplementedError

    def _release(self, kind: str, now: float) -> None:
        """Give a slot back and start a launch AWS had queued for want of one (core)."""
        raise NotImplementedError

    def _put_object(self, now: float, bucket: str, key: str, obj: object, op: str) -> bool:
        """The function writes an object; False if the bucket is missing (s3_requests)."""
        raise NotImplementedError

    def _get_object_internal(self, bucket: str, key: str) -> tuple[bool, bytes | None]:
        """(bucket exists, body or None) for a read by the function (s3_requests)."""
        raise NotImplementedError

    def _delete_object_internal(self, bucket: str, key: str) -> None:
        raise NotImplementedError

    def _object_exists(self, bucket: str, key: str) -> bool:
        raise NotImplementedError

    def _create_bucket(self, name: str, now: float) -> Bucket:
        raise NotImplementedError

    def _send_webhook(
        self,
        now: float,
        render: Render,
        payload: dict[str, Any],
        on_done: Callable[[float, RemotionError | None], None],
    ) -> None:
        """POST a webhook with Remotion's retries; ``on_done`` gets the final error (webhooks)."""
        raise NotImplementedError

    def _take_outbox(self) -> list[Callable[[], None]]:
        raise NotImplementedError

    def _run_outbox(self, items: list[Callable[[], None]]) -> None:
        raise NotImplementedError

    def _start_renderers(self, now: float, render: Render) -> None:
        raise NotImplementedError

    def _cancel_signal(self, now: float, render: Render) -> None:
        """cancel.json was written for ``render`` (renderers)."""
        raise NotImplementedError

    def _is_cancel_key(self, key: str) -> str | None:
        raise NotImplementedError

    def _ev_launch_invoke(self, now: float, render: Render) -> None:
        raise NotImplementedError
