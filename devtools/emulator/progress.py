"""The status routine's body: a render's progress as ``getRenderProgress`` reports it.

:func:`_progress` builds a GenericRenderProgress for a render at an instant from its
time-based state: the phase shares below say how far launching, invoking renderers,
rendering frames and combining have got, and from them come the frame and chunk counts,
the billed duration and cost, the output fields once done, and the fatal or timeout error.
Renders are immutable, so this runs outside the emulator's lock.
"""

from __future__ import annotations

import math
import time
from typing import Final

from devtools.emulator.constants import (
    COST_DISCLAIMER,
    MEMORY_SIZE_MB,
    PRICE_PER_GB_SECOND,
    PRICE_PER_INVOCATION,
    JSONDict,
)
from devtools.emulator.renders import _evaluate, _Render

# Share of a render's wall time spent in each phase. Only the shape matters: status
# responses should move through "launching", "invoking renderers", "rendering frames" and
# "combining" the way the real ones do, so a worker that looks at those fields sees
# realistic values.
_EVALUATED_AT: Final = 0.05
_INVOKED_AT: Final = 0.10
_FRAMES_DONE_AT: Final = 0.85
_SERVE_URL_OPENED_AT: Final = 0.02
_COMPOSITION_VALIDATED_AT: Final = 0.04


def _clamp01(value: float) -> float:
    return 0.0 if value < 0 else 1.0 if value > 1 else value


def _display_cost(cost: float) -> str:
    return "<$0.001" if cost < 0.001 else f"${cost:.3f}"


def _costs(accrued: float) -> JSONDict:
    return {
        "accruedSoFar": accrued,
        "displayCost": _display_cost(accrued),
        "currency": "USD",
        "disclaimer": COST_DISCLAIMER,
    }


def _progress(render: _Render, now_mono: float) -> JSONDict:
    """Build a GenericRenderProgress (protocol note §2.4) for ``render`` at ``now_mono``."""
    plan = render.plan
    state = _evaluate(render, now_mono)
    f = state.fraction
    run_ms = render.run_s * 1000
    started = render.started_epoch_ms

    if state.done:
        frames_rendered = combined = plan.frames
        chunks_done = lambdas_invoked = plan.chunks
    else:
        frame_share = (f - _INVOKED_AT) / (_FRAMES_DONE_AT - _INVOKED_AT)
        frames_rendered = int(plan.frames * _clamp01(frame_share))
        combined = int(plan.frames * _clamp01((f - _FRAMES_DONE_AT) / (1 - _FRAMES_DONE_AT)))
        chunks_done = (
            plan.chunks
            if frames_rendered >= plan.frames
            else frames_rendered // plan.frames_per_lambda
        )
        invoke_share = _clamp01((f - _EVALUATED_AT) / (_INVOKED_AT - _EVALUATED_AT))
        lambdas_invoked = math.ceil(plan.chunks * invoke_share)

    # Billing: the orchestrator runs the whole time, renderers during the frame phase;
    # everything stops when the render ends, fails or is killed by the timeout.
    billed_s = min(state.elapsed_s, render.release_after_s)
    renderer_s = min(
        max(0.0, billed_s - _INVOKED_AT * render.run_s),
        (_FRAMES_DONE_AT - _INVOKED_AT) * render.run_s,
    )
    billing_ms = int((billed_s + plan.chunks * renderer_s) * 1000)
    accrued = (
        billing_ms / 1000 * (MEMORY_SIZE_MB / 1024) * PRICE_PER_GB_SECOND
        + (1 + lambdas_invoked) * PRICE_PER_INVOCATION
    )

    errors: list[JSONDict] = []
    if state.timed_out:
        errors.append(_timeout_error(render, chunks_done))
    if state.fatal:
        errors.append(_fatal_error(render, f))

    def reached(share: float) -> int | None:
        return started + int(share * run_ms) if f >= share else None

    return {
        "type": "success",
        "renderId": render.render_id,
        "bucket": render.bucket,
        "overallProgress": f,
        "done": state.done,
        "chunks": chunks_done,
        "framesRendered": frames_rendered,
        "framesUploaded": None,
        "lambdasInvoked": lambdas_invoked,
        "encodingStatus": {
            "framesEncoded": frames_rendered,
            "combinedFrames": combined,
            "timeToCombine": int(0.15 * run_ms) if state.done else None,
        },
        "costs": _costs(accrued),
        "renderMetadata": render.metadata,
        "outputFile": render.output_url if state.done else None,
        "outKey": render.out_key if state.done else None,
        "outBucket": render.out_bucket if state.done else None,
        "outputSizeInBytes": render.output_size if state.done else None,
        "separateAudio": None,
        "outputSequence": None,
        "timeToFinish": int(run_ms) if state.done else None,
        "timeToFinishChunks": int(0.75 * run_ms) if state.done else None,
        "timeToRenderFrames": (
            int((_FRAMES_DONE_AT - _INVOKED_AT) * run_ms) if f >= _FRAMES_DONE_AT else None
        ),
        "timeToEncode": int(0.8 * run_ms) if state.done else None,
        "timeToCombine": int(0.15 * run_ms) if state.done else None,
        "combinedFrames": combined,
        "errors": errors,
        "fatalErrorEncountered": state.fatal_error_encountered,
        "currentTime": int(time.time() * 1000),
        "renderSize": render.output_size if state.done else 0,
        "cleanup": {
            "doneIn": int(0.02 * run_ms) if state.done else None,
            "minFilesToDelete": plan.chunks if state.done else 0,
            "filesDeleted": plan.chunks if state.done else 0,
        },
        "retriesInfo": [],
        "mostExpensiveFrameRanges": render.expensive_ranges if state.done else None,
        "estimatedBillingDurationInMilliseconds": billing_ms,
        "timeoutTimestamp": started + int(render.timeout_s * 1000),
        "functionLaunched": started,
        "serveUrlOpened": reached(_SERVE_URL_OPENED_AT),
        "compositionValidated": reached(_COMPOSITION_VALIDATED_AT),
        "artifacts": [],
    }


def _fatal_error(render: _Render, fraction: float) -> JSONDict:
    plan = render.plan
    frame = min(plan.frames - 1, int(fraction * plan.frames))
    chunk = frame // plan.frames_per_lambda
    message = render.fatal_message
    return {
        "type": "renderer",
        "message": message,
        "name": "Error",
        "stack": f"Error: {message}\n    at renderer (lambda-emulator)",
        "frame": frame,
        "chunk": chunk,
        "isFatal": True,
        "attempt": 1,
        "willRetry": False,
        "totalAttempts": 1,
        "tmpDir": None,
        "s3Location": f"renders/{render.render_id}/errors/chunk-{chunk}.txt",
        "explanation": None,
    }


def _timeout_error(render: _Render, chunks_done: int) -> JSONDict:
    # Same shape and opening as serverless-client/src/make-timeout-error.ts.
    plan = render.plan
    missing = list(range(chunks_done, plan.chunks))
    lines = [f"The main function timed out after {int(render.timeout_s * 1000)}ms."]
    if missing:
        shown = missing[:5]
        lines.append(
            f"The following chunks are missing (showing {len(shown)} out of {len(missing)}):"
        )
        for chunk in shown:
            first = plan.frame_range[0] + chunk * plan.frames_per_lambda
            last = min(first + plan.frames_per_lambda - 1, plan.frame_range[1])
            lines.append(f"Chunk {chunk} (Frames {first} - {last})")
    else:
        lines.append(
            "All chunks have been successfully rendered, but the main function has timed out."
        )
    lines += ["", "Consider increasing the timeout of your function."]
    message = "\n".join(lines)
    return {
        "type": "stitcher",
        "message": message,
        "name": "TimeoutError",
        "stack": f"TimeoutError: {message}\n    at getProgress (lambda-emulator)",
        "frame": None,
        "chunk": None,
        "isFatal": True,
        "attempt": 1,
        "willRetry": False,
        "totalAttempts": 1,
        "tmpDir": None,
        "s3Location": "",
        "explanation": None,
    }
