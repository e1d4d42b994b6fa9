"""Progress polling: one sweep per tick, split into batches that any worker can take.

A tick (``poll_tick``, sent by the scheduler) first claims its time slot in Redis so that two
schedulers, or a redelivered tick, sweep once per interval; it then splits the ``rendering``
renders into ``poll_batch`` messages. Each batch polls its renders concurrently on a thread pool,
so a sweep scales with the number of worker processes, not with one thread. Every state change
is a guarded transition, so a render polled twice at once is still completed once.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import redis
import structlog

from shared import repository
from shared.errors import IllegalTransition
from shared.failpoints import failpoint
from shared.lambda_budget import get_budget
from shared.lambda_client import LambdaError, get_lambda
from shared.log import get_logger
from shared.models import ErrorCode, Render, RenderStatus, utcnow
from shared.redis_client import get_redis
from shared.settings import get_settings
from worker import metrics

log = get_logger(__name__)

#: A progress reading to store: (render id, overall progress, cost so far).
Reading = tuple[str, float, float | None]

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(
                    max_workers=get_settings().poll_concurrency, thread_name_prefix="poll"
                )
    return _pool


def claim_slot(redis_client: redis.Redis, slot: int, kind: str = "poll-slot") -> bool:
    """True for the first tick of a slot; later ticks for the same slot (a second scheduler,
    a redelivery) get False. The key outlives the slot, so a late duplicate is caught too."""
    settings = get_settings()
    interval = settings.poll_interval if kind == "poll-slot" else settings.reconcile_interval
    key = settings.redis_key(kind, str(slot))
    return bool(redis_client.set(key, "1", nx=True, px=int(interval * 2000)))


TERMINAL_OUTCOMES = frozenset({"completed", "failed", "timed_out"})


def reconcile_budget() -> int:
    """Give back budget held for renders that are no longer in flight.

    The poller releases a render's functions when it sees it finish; this catches the rest: a
    worker that died between admission and ``rendering``, a release lost to a crash, a render
    moved by an operator. Returns how many holders were released.
    """
    budget = get_budget()
    holders = budget.holders()
    if not holders:
        return 0
    rows = {r.id: r for r in repository.load_many(holders)}
    admitted = budget.admitted_at_ms(holders)
    now_ms = budget.redis_now_ms()
    now = utcnow()
    released = 0
    for render_id in holders:
        render = rows.get(render_id)
        if render is None or render.status in (RenderStatus.COMPLETE, RenderStatus.FAILED):
            stale = True
        elif render.status == RenderStatus.PENDING:
            claim_live = render.claim_expires_at is not None and render.claim_expires_at > now
            stale = not claim_live and now_ms - admitted.get(render_id, 0) > 5_000
        else:
            stale = False
        if stale:
            budget.release(render_id)
            released += 1
    if released:
        log.info("released stale lambda budget", released=released)
    return released


def plan_sweep() -> list[list[str]]:
    """The ``rendering`` renders to poll this sweep, in batches (least recently polled first)."""
    settings = get_settings()
    ids = repository.rendering_ids()
    size = max(1, settings.poll_batch_size)
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _sweep_key(slot: int) -> str:
    return get_settings().redis_key("poll", "sweep", str(slot))


def start_sweep(slot: int) -> list[list[str]] | None:
    """Plan the sweep of ``slot``, or return None to skip this tick.

    A tick is skipped when its slot was already swept (duplicate tick, second scheduler) or
    when the previous sweep has not finished: sweeps never pile up, the effective interval
    simply stretches to the sweep's duration. The "running" mark expires on its own, so a lost
    batch cannot stop polling for more than ``10 x POLL_INTERVAL`` (at least 60 s).
    """
    settings = get_settings()
    client = get_redis()
    running_key = settings.redis_key("poll", "running")
    running = client.get(running_key)
    if running is not None:
        log.info("previous poll sweep still running; tick skipped", slot=slot, running=running)
        return None
    if not claim_slot(client, slot):
        log.debug("poll slot already claimed", slot=slot)
        return None
    reconcile_budget()
    batches = plan_sweep()
    renders = sum(map(len, batches))
    if metrics.enabled():
        metrics.gauges(repository.count_in_flight(), get_budget().in_use())
    if batches:
        ttl_ms = int(max(10 * settings.poll_interval, 60) * 1000)
        pipe = client.pipeline()
        pipe.set(running_key, slot, px=ttl_ms)
        pipe.hset(
            _sweep_key(slot),
            mapping={"planned_at": time.time(), "batches": len(batches), "renders": renders},
        )
        pipe.expire(_sweep_key(slot), 3600)
        pipe.execute()
    else:
        _record_last_sweep(slot, time.time(), 0, 0, {})
    log.info("poll sweep planned", slot=slot, batches=len(batches), renders=renders)
    return batches


def finish_batch(slot: int | None, outcomes: dict[str, int], polled: int) -> None:
    """Count a finished batch; the last one of a sweep records the sweep's duration."""
    if slot is None:
        return
    client = get_redis()
    key = _sweep_key(slot)
    pipe = client.pipeline()
    pipe.hincrby(key, "done", 1)
    pipe.hincrby(key, "polled", polled)
    for outcome, count in outcomes.items():
        pipe.hincrby(key, f"outcome:{outcome}", count)
    pipe.hgetall(key)
    *_, sweep = pipe.execute()
    fields = {k.decode(): v.decode() for k, v in sweep.items()}
    if not fields.get("batches") or int(fields["done"]) != int(fields["batches"]):
        return
    totals = {k.split(":", 1)[1]: int(v) for k, v in fields.items() if k.startswith("outcome:")}
    _record_last_sweep(
        slot, float(fields["planned_at"]), int(fields["renders"]), int(fields["polled"]), totals
    )
    client.delete(get_settings().redis_key("poll", "running"))


def _record_last_sweep(
    slot: int, planned_at: float, renders: int, polled: int, outcomes: dict[str, int]
) -> None:
    finished = time.time()
    duration = round(finished - planned_at, 3)
    record = {
        "slot": slot,
        "planned_at": planned_at,
        "finished_at": finished,
        "duration_s": duration,
        "renders": renders,
        "polled": polled,
        "outcomes": outcomes,
    }
    get_redis().set(get_settings().redis_key("poll", "last-sweep"), json.dumps(record))
    metrics.sweep(duration, polled)
    if renders:
        log.info("poll sweep finished", **record)


def last_sweep() -> dict[str, object] | None:
    raw = get_redis().get(get_settings().redis_key("poll", "last-sweep"))
    return json.loads(raw) if raw else None


def poll_batch(render_ids: Sequence[str], slot: int | None = None) -> dict[str, int]:
    """Poll a batch concurrently; returns counts of outcomes (for logs and metrics).

    Terminal outcomes are written as they come (guarded transitions); plain progress readings
    are collected and written with one statement for the whole batch.
    """
    renders = [r for r in repository.load_many(render_ids) if r.status == RenderStatus.RENDERING]
    outcomes: dict[str, int] = {}
    readings: list[Reading] = []
    context = structlog.contextvars.get_contextvars()
    started = time.monotonic()
    for outcome, reading in _executor().map(lambda r: _poll_one(r, context), renders):
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if reading is not None:
            readings.append(reading)
    repository.record_progress_many(readings)
    log.info(
        "poll batch done",
        renders=len(renders),
        seconds=round(time.monotonic() - started, 3),
        **outcomes,
    )
    finish_batch(slot, outcomes, len(renders))
    return outcomes


def _poll_one(render: Render, context: dict[str, object]) -> tuple[str, Reading | None]:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        **{**context, "render_id": render.id, "user_id": render.user_id}
    )
    try:
        outcome, reading = poll_render(render)
        if outcome in TERMINAL_OUTCOMES:
            get_budget().release(render.id)
        return outcome, reading
    except IllegalTransition as exc:
        # Someone else (a duplicate tick, a replay) moved it first; that is fine.
        log.info("render moved on while being polled", status=exc.actual)
        return "raced", None
    except Exception:
        log.exception("unexpected error while polling")
        return "error", None
    finally:
        structlog.contextvars.clear_contextvars()


def poll_render(render: Render) -> tuple[str, Reading | None]:
    """One render's poll; a plain progress reading is returned for the batch to write."""
    settings = get_settings()
    assert render.lambda_render_id and render.lambda_bucket
    if render.started_at and utcnow() - render.started_at > timedelta(
        seconds=settings.render_timeout
    ):
        repository.fail(
            render.id,
            RenderStatus.RENDERING,
            code=ErrorCode.TIMEOUT,
            message=f"not done {settings.render_timeout:g}s after it started (RENDER_TIMEOUT)",
        )
        metrics.transition("rendering", "failed", ErrorCode.TIMEOUT)
        log.warning("render timed out", error_code=ErrorCode.TIMEOUT)
        return "timed_out", None
    try:
        progress = get_lambda().progress(render.lambda_render_id, render.lambda_bucket)
        failpoint("poll.after_progress")
    except LambdaError as exc:
        failures = repository.record_poll_failure(render.id)
        log.warning(
            "progress call failed", error=str(exc), kind=type(exc).__name__, failures=failures
        )
        if failures is not None and failures >= settings.max_poll_failures:
            repository.fail(
                render.id,
                RenderStatus.RENDERING,
                code=ErrorCode.POLL_FAILED,
                message=f"progress unreadable for {failures} polls; last error: {exc}",
            )
            metrics.transition("rendering", "failed", ErrorCode.POLL_FAILED)
            return "failed", None
        return "poll_error", None
    if progress.fatal_error:
        repository.fail(
            render.id,
            RenderStatus.RENDERING,
            code=ErrorCode.RENDER_ERROR,
            message=progress.fatal_error,
            cost_usd=progress.cost_usd,
        )
        metrics.transition("rendering", "failed", ErrorCode.RENDER_ERROR)
        metrics.cost(progress.cost_usd)
        log.warning("render failed", error_code=ErrorCode.RENDER_ERROR, error=progress.fatal_error)
        return "failed", None
    if progress.done:
        if not progress.output_url:
            log.warning("render reported done without an output file; polling again")
            return "in_progress", (render.id, progress.overall, progress.cost_usd)
        done = repository.complete(
            render.id,
            output_url=progress.output_url,
            output_size_bytes=progress.output_size_bytes,
            cost_usd=progress.cost_usd,
        )
        metrics.transition("rendering", "complete")
        metrics.cost(done.cost_usd)
        log.info(
            "render complete",
            output_url=done.output_url,
            cost_usd=done.cost_usd,
            seconds=(done.completed_at - done.started_at).total_seconds()
            if done.completed_at and done.started_at
            else None,
        )
        return "completed", None
    return "in_progress", (render.id, progress.overall, progress.cost_usd)
