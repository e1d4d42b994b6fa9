"""A render as the emulator tracks it: its payload, its launch function and its renderers.

:class:`Render` is everything one ``start`` set in motion; :class:`ChunkRun` is one renderer
invocation (one attempt at one chunk). Both are mutated only by the event handlers of
:mod:`devtools.emulator.launch` and :mod:`devtools.emulator.renderers`, under the
emulator's lock. Frames are not events: a running renderer renders at a fixed rate, so
how many frames it has reported at any instant is computed (:meth:`ChunkRun.reported`),
rounded down to ``progressEveryNthFrame`` as ``handlers/renderer.ts`` reports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from devtools.emulator.aws import FunctionConfig
from devtools.emulator.constants import JSONDict
from devtools.emulator.faults import Directive
from devtools.emulator.progress_file import OverallProgress
from devtools.emulator.texts import RemotionError
from devtools.emulator.validation import Plan


@dataclass(frozen=True, slots=True)
class Timing:
    """A render's overheads in seconds of wall time (already scaled by its speed)."""

    cold_start: float
    browser: float
    serve_url: float
    composition: float
    renderer_start: float
    combine: float
    finish: float
    upload_interval: float
    metadata_delay: float
    speed: float
    """Frames per second of wall time all renderers of the render produce together."""


@dataclass(slots=True, eq=False)
class ChunkRun:
    """One renderer invocation: chunk ``chunk``, attempt ``attempt``."""

    chunk: int
    frames: int
    attempt: int
    retries_left: int
    invoked_at: float
    started_at: float
    rate: float
    report_every: int
    direct: bool = False
    state: str = "running"
    """running, done, failed, cancelled, killed (function timeout) or throttled."""
    ends_at: float | None = None
    stall_frames: int | None = None
    stopped_at: float | None = None

    def rendered(self, now: float) -> int:
        if self.state == "done":
            return self.frames
        end = now if self.stopped_at is None else min(now, self.stopped_at)
        if end <= self.started_at:
            return 0
        frames = min(self.frames, math.floor((end - self.started_at) * self.rate + 1e-9))
        if self.stall_frames is not None:
            frames = min(frames, self.stall_frames)
        return frames

    def reported(self, now: float) -> int:
        """What the launch has heard: frames-rendered messages come every ``report_every``."""
        if self.state in ("failed", "cancelled"):
            return 0  # stream-renderer.ts: setFrames({rendered: 0, encoded: 0}) on an error
        frames = self.rendered(now)
        if frames == self.frames:
            return frames
        return frames - frames % self.report_every

    def running_at(self, now: float) -> bool:
        return self.state == "running" and (self.stopped_at is None or now < self.stopped_at)


@dataclass(slots=True, eq=False)
class Render:
    """Everything one start set in motion (see the module docstring)."""

    render_id: str
    bucket: str
    payload: JSONDict
    function: FunctionConfig
    renderer_function: FunctionConfig
    directive: Directive
    timing: Timing
    started_mono: float
    out_name_label: str
    composition_id: str
    webhook: JSONDict | None
    cancellation_enabled: bool
    autonomous: bool
    """Its events run even if nobody looks (it has a webhook)."""
    progress: OverallProgress | None = None
    plan: Plan | None = None
    output_key: str | None = None
    output_bucket: str | None = None
    output_size: int = 0
    launch_state: str = "pending"
    """pending (Event invocation not run yet), queued (no slot), running, ended, killed."""
    launch_slot: bool = False
    handler_started_at: float | None = None
    start_time: float | None = None
    """``startTime`` in launch.ts: after the browser is ready; timeToFinish counts from it."""
    runs: list[ChunkRun | None] = field(default_factory=list)
    all_runs: list[ChunkRun] = field(default_factory=list)
    chunks_done: int = 0
    invoked_chunks: set[int] = field(default_factory=set)
    combine_started: float | None = None
    combine_ends: float | None = None
    outcome: str | None = None
    """None while running; done, failed, timeout (killed) or cancelled."""
    fatal: RemotionError | None = None
    finished_at: float | None = None
    #: When progress.json first held postRenderData (a status call could report done).
    done_visible_at: float | None = None
    #: When the first webhook's POST went out (what a receiver can first react to).
    webhook_sent_at: float | None = None
    failed_at: float | None = None
    webhook_invoked: bool = False
    timeout_cleared: bool = False
    # The progress.json upload loop (overall-render-progress.ts runUploadLoop).
    upload_busy: bool = False
    upload_dirty: bool = False
    upload_waiters: list[Any] = field(default_factory=list)
    first_frame_at: float | None = None
    cancel_requested_at: float | None = None
    functions_stopped_at: float | None = None

    @property
    def terminal(self) -> bool:
        return self.outcome is not None

    @property
    def launch_alive(self) -> bool:
        return self.launch_state == "running"

    def frames(self, now: float) -> int:
        total = 0
        for run in self.runs:
            if run is not None:
                total += run.reported(now)
        return total

    def combined(self, now: float) -> int:
        """``setCombinedFrames`` from concatVideos' onProgress: linear over the combine."""
        if self.combine_started is None or self.plan is None:
            return 0
        count = self.plan.frame_count
        if self.combine_ends is None or now >= self.combine_ends:
            return count
        span = self.combine_ends - self.combine_started
        if span <= 0:
            return count
        return min(count, math.floor((now - self.combine_started) / span * count))

    def changing(self, now: float) -> bool:
        """Whether renderers or the combine keep making the progress dirty."""
        if self.outcome is not None or self.fatal is not None:
            return False
        if self.combine_started is not None:
            return self.combine_ends is not None and now < self.combine_ends
        return any(run is not None and run.running_at(now) for run in self.runs)

    def functions_running(self) -> int:
        return int(self.launch_slot) + sum(
            1 for run in self.all_runs if run.state == "running" and not run.direct
        )
