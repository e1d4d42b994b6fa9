"""What a render is, and where it is at a given instant.

A :class:`_Plan` is everything that follows from the start payload; a :class:`_Render` is
the frozen record ``start`` makes of it (when it started, how fast it goes, when and how it
fails or stalls). There is no background clock: :func:`_evaluate` derives a render's
:class:`_State` at any instant from that record, for status calls, S3 reads and the stats.
"""

from __future__ import annotations

from dataclasses import dataclass

from devtools.emulator.constants import JSONDict
from devtools.emulator.faults import _Directive


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything about a render that follows from the start payload alone."""

    composition: str
    codec: str
    frames: int
    fps: int
    width: int
    height: int
    frame_range: tuple[int, int]
    frames_per_lambda: int
    chunks: int
    out_name: object
    bucket: str
    directive: _Directive

    @property
    def functions(self) -> int:
        # One orchestrator ("launch") plus one renderer per chunk.
        return 1 + self.chunks


@dataclass(frozen=True, slots=True)
class _Render:
    render_id: str
    bucket: str
    plan: _Plan
    out_name_label: str
    out_key: str
    out_bucket: str
    output_url: str
    output_size: int
    started_epoch_ms: int
    started_mono: float
    run_s: float
    timeout_s: float
    grace_s: float
    fatal_fraction: float | None
    fatal_message: str
    stall_fraction: float | None
    release_after_s: float
    metadata: JSONDict
    expensive_ranges: list[JSONDict]
    metadata_delay_s: float
    """progress.json has ``renderMetadata: null`` for this long, as before launch validates."""
    cancellation_enabled: bool


@dataclass(frozen=True, slots=True)
class _State:
    elapsed_s: float
    fraction: float
    done: bool
    fatal: bool
    timed_out: bool

    @property
    def fatal_error_encountered(self) -> bool:
        return self.fatal or self.timed_out


def _evaluate(render: _Render, now_mono: float) -> _State:
    """Derive where a render is at ``now_mono`` from its frozen timing parameters."""
    elapsed = max(0.0, now_mono - render.started_mono)
    raw = elapsed / render.run_s
    done = fatal = False
    if render.fatal_fraction is not None and raw >= render.fatal_fraction:
        fraction, fatal = render.fatal_fraction, True
    elif render.stall_fraction is not None:
        fraction = min(raw, render.stall_fraction)
    elif raw >= 1:
        fraction, done = 1.0, True
    else:
        fraction = raw
    timed_out = not done and elapsed > render.timeout_s + render.grace_s
    return _State(elapsed, fraction, done, fatal, timed_out)
