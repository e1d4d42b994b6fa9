"""The state a LambdaEmulator keeps, declared once for the classes it is built from.

:class:`~devtools.emulator.core.LambdaEmulator` combines its own routines with the
:class:`~devtools.emulator.plan._Planning` and
:class:`~devtools.emulator.s3_requests._S3Requests` mixins. All of them read and update the
same attributes, which ``LambdaEmulator.__init__`` sets; :class:`_EmulatorState` declares
them (with their types) for the mixins, and :class:`_Counters` is what ``stats`` reports.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from devtools.emulator.faults import _Faults
from devtools.emulator.renders import _Render
from devtools.emulator.s3 import _Bucket


@dataclass(slots=True)
class _Counters:
    start_calls: int = 0
    starts_total: int = 0
    status_calls: int = 0
    throttled_total: int = 0
    crashes_total: int = 0
    handled_errors_total: int = 0
    starts_by_out_name: dict[str, int] = field(default_factory=dict)
    start_times_by_out_name: dict[str, list[float]] = field(default_factory=dict)
    s3_calls: dict[str, int] = field(default_factory=dict)


class _EmulatorState:
    """Attributes of a LambdaEmulator, all set by its ``__init__``; shared state needs ``_lock``."""

    region: str
    function_name: str | None
    remotion_version: str
    _initial: _Faults
    _default_bucket: str
    _created_ms: int
    _lock: threading.Lock
    _buckets: dict[str, _Bucket]
    _progress_bodies: dict[tuple[str, bool], tuple[bytes, str]]
    _faults: _Faults
    _counters: _Counters
    _renders: dict[str, _Render]
    _in_flight_heap: list[tuple[float, str, int]]
    _in_flight_functions: int
    _peak_functions: int
