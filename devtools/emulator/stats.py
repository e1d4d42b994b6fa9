"""``/_emulator/stats``: the counters tests and benchmarks assert on.

Calls (``start_calls``, ``starts_total``, ``starts_by_out_name`` with their times,
``status_calls``, errors, 429s), S3 requests by operation (``s3_calls``; the function's own
in ``internal_s3_calls``), the account's concurrency (``concurrent_functions``,
``peak_concurrent_functions`` and the breakdown by kind under ``concurrency``), what proves
"one running render per attempt" (``running_by_out_name``), webhooks, cancellations and one
summary per render (``renders``). Built with the emulator's lock held.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from devtools.emulator.constants import JSONDict
from devtools.emulator.render import Render
from devtools.emulator.texts import RemotionError
from devtools.emulator.validation import (
    frames_per_function,
    plan_frame_ranges,
    real_frame_range,
    select_composition,
)

if TYPE_CHECKING:
    from devtools.emulator.core import LambdaEmulator


def _plan_summary(emulator: LambdaEmulator, render: Render) -> tuple[int | None, int | None]:
    """(frames, functions): the plan, or before launch has made it, what it will find."""
    plan = render.plan
    if plan is not None:
        return plan.frame_count, plan.functions
    payload = render.payload
    try:
        comp = select_composition(emulator._faults.compositions, payload)
        first, last = real_frame_range(comp.duration_in_frames, payload.get("frameRange"))
        every_nth = payload.get("everyNthFrame") or 1
        frames = (last - first) // every_nth + 1
        ranges, _ = plan_frame_ranges(
            frames_per_function(payload, frames), (first, last), every_nth
        )
    except (RemotionError, TypeError, ValueError):
        return None, None
    direct = payload.get("concurrency") == 1 and payload.get("rendererFunctionName") is None
    return frames, (0 if direct else len(ranges)) + 1


def _seconds(emulator: LambdaEmulator, mono: float | None) -> float | None:
    return None if mono is None else emulator._ms(mono) / 1000


def build_stats(emulator: LambdaEmulator, now: float) -> JSONDict:
    counters, account = emulator._counters, emulator._account
    running: Counter[str] = Counter()
    renders: JSONDict = {}
    cancellations: JSONDict = {}
    in_flight = 0
    for render in emulator._renders.values():
        functions = render.functions_running()
        if functions or render.launch_state in ("pending", "queued"):
            in_flight += 1
        if not render.terminal:
            running[render.out_name_label] += 1
        frames, planned = _plan_summary(emulator, render)
        renders[render.render_id] = {
            "out_name": render.out_name_label,
            "composition": render.composition_id,
            "frames": frames,
            "functions": planned,
            "started_at": emulator._ms(render.started_mono) / 1000,
            "launch": render.launch_state,
            "outcome": render.outcome,
            "done": render.outcome == "done",
            "fatal": render.fatal is not None or render.outcome == "timeout",
            "finished_at": _seconds(emulator, render.finished_at),
            "done_visible_at": _seconds(emulator, render.done_visible_at),
            "webhook_sent_at": _seconds(emulator, render.webhook_sent_at),
            "failed_at": _seconds(emulator, render.failed_at),
            "functions_running": functions,
            "retries": sum(1 for run in render.all_runs if run.attempt > 1),
        }
        if render.cancel_requested_at is not None:
            stopped = render.functions_stopped_at if functions == 0 else None
            cancellations[render.render_id] = {
                "requested_at": _seconds(emulator, render.cancel_requested_at),
                "functions_stopped_at": _seconds(emulator, stopped),
                "stopped_after_ms": None
                if stopped is None
                else round((stopped - render.cancel_requested_at) * 1000, 3),
                "functions_running": functions,
            }
    webhooks = dict(counters.webhooks)
    webhooks["held"] = len(emulator._held)
    return {
        "region": emulator.region,
        "account_id": emulator.account_id,
        "starts_total": counters.starts_total,
        "start_calls": counters.start_calls,
        "starts_by_out_name": dict(counters.starts_by_out_name),
        "start_times_by_out_name": {
            k: list(v) for k, v in counters.start_times_by_out_name.items()
        },
        "running_by_out_name": dict(running),
        "status_calls": counters.status_calls,
        "still_calls": counters.still_calls,
        "throttled_total": counters.throttled_total,
        "crashes_total": counters.crashes_total,
        "handled_errors_total": counters.handled_errors_total,
        "unhandled_errors_total": counters.unhandled_errors_total,
        "s3_calls": dict(counters.s3_calls),
        "internal_s3_calls": dict(counters.internal_s3_calls),
        "concurrent_functions": account.current,
        "peak_concurrent_functions": account.peak,
        "concurrency": account.as_json(),
        "renders_in_flight": in_flight,
        "launches_queued": counters.launches_queued,
        "renderer_invocations": counters.renderer_invocations,
        "renderer_retries": counters.renderer_retries,
        "outcomes": dict(counters.outcomes),
        "webhooks": webhooks,
        "cancelled_renders": sum(1 for r in emulator._renders.values() if r.outcome == "cancelled"),
        "cancellations": cancellations,
        "events": {"processed": emulator._clock.processed, "pending": emulator._clock.pending()},
        "renders": renders,
    }
