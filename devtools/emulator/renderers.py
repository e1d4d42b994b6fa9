"""The renderer functions a launch invokes: slots, progress messages, retries, cancellation.

Follows ``serverless/src/stream-renderer.ts`` (``renderRendererFunctionWithRetry``) and
``handlers/renderer.ts``. Each chunk is one renderer invocation that needs a concurrency
slot; without one the Invoke call fails with ``TooManyRequestsException``, which
``call-lambda-streaming.ts`` turns into "AWS Concurrency limit reached ..." and which is
not retried (``is-flaky-error.ts``), so the render fails with that as its ``stitcher``
error and no renderer entry. A renderer reports ``lambda-invoked`` once its browser is up,
frames as it renders them (every ``progressEveryNthFrame``) and ``chunk-complete`` at the
end. A failing chunk streams an ``error-occurred``: flaky errors are retried
(``retriesLeft``), with a ``retries`` entry, others end the render. With
``enableCancellation`` each renderer HEADs ``renders/<id>/cancel.json`` when it starts and
then every second (``cancellation-polling.ts``) and stops with "renderMedia() got cancelled"
when it is there. ``concurrency: 1`` renders run on the launch function itself
(``render-with-single-function.ts``).
"""

from __future__ import annotations

import math

from devtools.emulator import texts
from devtools.emulator.constants import (
    DEFAULT_FATAL_MESSAGE,
    DEFAULT_FLAKY_MESSAGE,
    NEVER_FINISH_STALL_AT,
)
from devtools.emulator.flaky import is_flaky
from devtools.emulator.launch import LaunchMixin
from devtools.emulator.render import ChunkRun, Render
from devtools.emulator.texts import RemotionError
from devtools.emulator.uploads import cancel_key

_CHUNK_SPREAD = (1.0, 0.9, 0.95, 0.8, 0.85)
"""Renderers do not all take the same time; chunk i takes this share of chunk 0's time (the
emulator's choice, deterministic), so chunks finish one after the other and the render still
takes frames / speed."""


class RenderersMixin(LaunchMixin):
    """LambdaEmulator's renderer invocations (see the module docstring)."""

    def _start_renderers(self, now: float, render: Render) -> None:
        plan = render.plan
        assert plan is not None
        if plan.direct:
            self._run_chunk(now, render, 0, 1, int(render.payload.get("maxRetries") or 0), True)
            return
        retries = int(render.payload.get("maxRetries") or 0)
        for chunk in range(plan.chunks):
            if not self._invoke_renderer(now, render, chunk, 1, retries):
                return

    def _invoke_renderer(
        self, now: float, render: Render, chunk: int, attempt: int, retries_left: int
    ) -> bool:
        if not render.launch_alive or render.fatal is not None:
            return False
        names = self.function_names
        if names is not None and render.renderer_function.name not in names:
            name = render.renderer_function.name
            arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
            stack = texts.stack_of("ResourceNotFoundException", f"Function not found: {arn}")
            self._launch_fatal(
                now, render, RemotionError(stack, "Error", texts.stack_of("Error", stack))
            )
            return False
        if not self._account.acquire("renderer"):
            self._counters.throttled_total += 1
            inner = texts.stack_of(
                "Error",
                texts.concurrency_limit_reached(),
                "callFunctionWithStreamingImplementation (/var/task/index.js)",
            )
            outer = texts.stack_of(
                "Error", inner, "renderRendererFunctionWithRetry (/var/task/index.js)"
            )
            self._launch_fatal(now, render, RemotionError(inner, "Error", outer))
            return False
        self._counters.renderer_invocations += 1
        self._run_chunk(now, render, chunk, attempt, retries_left, False)
        return True

    def _run_chunk(
        self, now: float, render: Render, chunk: int, attempt: int, retries_left: int, direct: bool
    ) -> None:
        plan, timing = render.plan, render.timing
        assert plan is not None
        frames = plan.frame_count if direct else plan.chunk_frames[chunk]
        # All renderers together render `speed` frames per second of wall time.
        per_run = plan.frame_count if direct else plan.frames_per_lambda
        spread = 1.0 if direct else _CHUNK_SPREAD[chunk % len(_CHUNK_SPREAD)]
        rate = per_run * timing.speed / plan.frame_count / spread
        started = now if direct else now + timing.renderer_start
        run = ChunkRun(
            chunk=chunk,
            frames=frames,
            attempt=attempt,
            retries_left=retries_left,
            invoked_at=now,
            started_at=started,
            rate=rate,
            report_every=max(1, math.ceil(plan.chunks / 15)),
            direct=direct,
        )
        render.runs[chunk] = run
        render.all_runs.append(run)
        duration = frames / rate
        auto = render.autonomous
        if not direct:
            self._push(started, self._ev_lambda_invoked, render, run, auto=auto)
        first_report = started + run.report_every / rate
        render.first_frame_at = min(render.first_frame_at or first_report, first_report)
        failure = self._planned_failure(render, chunk, attempt)
        directive = render.directive
        if failure is not None:
            fraction, message = failure
            run.stall_frames = math.floor(fraction * frames)
            self._push(
                started + fraction * duration,
                self._ev_chunk_failed,
                render,
                run,
                message,
                auto=auto,
            )
        elif directive.never_finish:
            run.stall_frames = math.floor(NEVER_FINISH_STALL_AT * frames)
        else:
            run.ends_at = started + duration
            self._push(run.ends_at, self._ev_chunk_done, render, run, auto=auto)
        if not direct:  # the renderer function has its own Lambda timeout
            timeout = render.renderer_function.timeout_s
            self._push(now + timeout, self._ev_run_killed, render, run, auto=auto)
        if render.cancellation_enabled and self._object_exists(
            render.bucket, cancel_key(render.render_id)
        ):
            self._push(now, self._ev_run_cancelled, render, run, auto=auto)  # the first poll

    def _planned_failure(
        self, render: Render, chunk: int, attempt: int
    ) -> tuple[float, str] | None:
        """Injected chunk failures: ``fatal_at`` (every attempt) or ``fail_chunk``."""
        directive, plan = render.directive, render.plan
        assert plan is not None
        if directive.fatal_at is not None:
            failing = min(plan.chunks - 1, math.floor(directive.fatal_at * plan.chunks))
            if chunk == failing:
                return directive.fatal_at, directive.message or DEFAULT_FATAL_MESSAGE
        if directive.fail_chunk == chunk and attempt <= (directive.fail_attempts or 1):
            return (
                0.5 if directive.fail_at is None else directive.fail_at,
                directive.fail_message or DEFAULT_FLAKY_MESSAGE,
            )
        return None

    def _stop_run(self, now: float, render: Render, run: ChunkRun, state: str) -> None:
        run.state = state
        run.stopped_at = now
        if render.cancellation_enabled:  # one HEAD at the start, then one per interval
            polls = 1 + math.floor((now - run.invoked_at) * 1000 / self._faults.cancel_poll_ms)
            self._counters.internal_s3_calls["HeadObject"] += polls
        if not run.direct:
            self._release("renderer", now)
        self._note_stopped(now, render)

    def _listening(self, render: Render, run: ChunkRun) -> bool:
        """Whether the launch still takes this renderer's messages."""
        return render.launch_alive and render.fatal is None and render.runs[run.chunk] is run

    def _ev_lambda_invoked(self, now: float, render: Render, run: ChunkRun) -> None:
        if run.state != "running" or not self._listening(render, run):
            return
        progress = render.progress
        assert progress is not None
        render.invoked_chunks.add(run.chunk)
        progress.lambdas_invoked = len(render.invoked_chunks)  # setLambdaInvoked: one flag a chunk
        self._progress_changed(now, render)

    def _ev_chunk_done(self, now: float, render: Render, run: ChunkRun) -> None:
        if run.state != "running":
            return
        self._stop_run(now, render, run, "done")
        if not self._listening(render, run):
            return
        progress, plan = render.progress, render.plan
        assert progress is not None and plan is not None
        render.chunks_done += 1
        progress.chunks.append(run.chunk)  # addChunkCompleted
        if render.chunks_done == plan.chunks:
            first = render.first_frame_at if render.first_frame_at is not None else run.started_at
            progress.time_to_render_frames = self._ms(now) - self._ms(min(first, now))
            progress.time_to_encode = progress.time_to_render_frames
        progress.timings.append(
            {"chunk": run.chunk, "start": self._ms(run.started_at), "rendered": self._ms(now)}
        )
        self._progress_changed(now, render)
        if render.chunks_done == plan.chunks:
            self._start_combine(now, render)

    def _ev_chunk_failed(self, now: float, render: Render, run: ChunkRun, message: str) -> None:
        if run.state != "running":
            return
        self._stop_run(now, render, run, "failed")
        if not self._listening(render, run):
            return
        error = RemotionError(message)
        flaky = is_flaky(error.stack)
        self._renderer_error(now, render, run, error, flaky and run.retries_left > 0)

    def _renderer_error(
        self, now: float, render: Render, run: ChunkRun, error: RemotionError, retry: bool
    ) -> None:
        """handlers/renderer.ts errorInfo + stream-renderer.ts's handling of it."""
        progress = render.progress
        assert progress is not None
        if run.direct:  # renderMedia() runs in the launch function: its error is the launch's
            self._launch_fatal(now, render, error)
            return
        progress.add_error(
            {
                "name": error.name,
                "message": error.message,
                "stack": error.stack,
                "chunk": run.chunk,
                "frame": None,
                "type": "renderer",
                "isFatal": not retry,
                "tmpDir": None,
                "attempt": run.attempt,
                "totalAttempts": run.retries_left + run.attempt,
                "willRetry": retry,
            },
            self._ms(now),
        )
        self._progress_changed(now, render)  # setFrames({index, rendered: 0, encoded: 0})
        if not retry:
            self._launch_fatal(
                now,
                render,
                RemotionError(error.stack, "Error", texts.stack_of("Error", error.stack)),
            )
            return
        progress.retries.append(
            {"attempt": run.attempt + 1, "time": self._ms(now), "chunk": run.chunk}
        )
        self._counters.renderer_retries += 1
        self._progress_changed(now, render)
        self._invoke_renderer(now, render, run.chunk, run.attempt + 1, run.retries_left - 1)

    def _ev_run_killed(self, now: float, render: Render, run: ChunkRun) -> None:
        if run.state == "running":
            self._stop_run(now, render, run, "killed")

    def _cancel_signal(self, now: float, render: Render) -> None:
        """cancel.json appeared: every polling renderer notices at its next HEAD."""
        if render.cancel_requested_at is None:
            render.cancel_requested_at = now
        if not render.cancellation_enabled:
            return
        interval = self._faults.cancel_poll_ms / 1000
        for run in render.all_runs:
            if run.state != "running":
                continue
            polls = math.ceil(max(0.0, now - run.invoked_at) / interval)
            self._push(
                run.invoked_at + polls * interval,
                self._ev_run_cancelled,
                render,
                run,
                auto=render.autonomous,
            )

    def _ev_run_cancelled(self, now: float, render: Render, run: ChunkRun) -> None:
        if run.state != "running":
            return
        self._stop_run(now, render, run, "cancelled")
        if render.cancel_requested_at is None:
            render.cancel_requested_at = now
        if not self._listening(render, run):
            return
        # renderer/src/make-cancel-signal.ts; the renderer sets cancellationRequested, so no retry.
        name = self._faults.cancel_error_name
        error = RemotionError(texts.CANCELLED_RENDER_MEDIA, name)
        self._renderer_error(now, render, run, error, False)
