"""Progress polling: one sweep per tick, split into batches that any worker can take.

A tick (``poll_tick``, sent by the scheduler every ``POLL_TICK_S``) first claims its time slot
in Redis so that two schedulers, or a redelivered tick, sweep once per slot; it then splits the
``rendering`` renders that are due (not polled for ``POLL_INTERVAL_S``) into ``poll_batch``
messages. Every render is polled once per interval, and the calls are spread over the interval
rather than made in one burst; a render whose last reading predicts its end sooner is also due
at that time (``worker.poll_forecast``). Each batch polls its renders concurrently on a thread
pool, so a sweep scales with the number of worker processes, not with one thread. Every state
change is a guarded transition, so a render polled twice at once is still completed once.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import dramatiq
import structlog

from shared import repository
from shared.lambda_budget import get_budget
from shared.log import get_logger
from shared.models import ErrorCode, RenderStatus, utcnow
from shared.per_process import PerProcess
from shared.redis_client import get_redis
from shared.redis_keys import keys
from shared.settings import get_settings
from worker import metrics, outcomes, poll_forecast
from worker.failpoints import failpoint
from worker.lambda_client import RenderProgress, get_lambda
from worker.lambda_errors import FatalKind, LambdaError
from worker.slots import claim_poll_slot

log = get_logger(__name__)

#: The threads that read progress from Lambda (``POLL_CONCURRENCY`` per process).
_pool: PerProcess[ThreadPoolExecutor] = PerProcess(
    lambda: ThreadPoolExecutor(
        max_workers=get_settings().poll_concurrency, thread_name_prefix="poll"
    ),
    close=lambda pool: pool.shutdown(wait=False),
)


def plan_sweep() -> list[list[str]]:
    """The ``rendering`` renders due this sweep, in batches (least recently polled first).

    Due means polled (or started) at least ``POLL_INTERVAL_S`` ago, less half a tick: a render
    polled a moment after its tick is still due at the same tick one interval later, so its
    period stays the interval instead of drifting by a tick. Or its early poll (its predicted
    end) has come: never sooner, since a look too early finds it still running.
    """
    settings = get_settings()
    half_tick = settings.sweep_every_s / 2
    now = utcnow()
    due_before = now - timedelta(seconds=settings.effective_poll_interval_s - half_tick)
    ids = repository.rendering_ids(due_before=due_before, early_before=now)
    size = max(1, settings.poll_batch_size)
    return [ids[i : i + size] for i in range(0, len(ids), size)]


_gauges_due = 0.0


def _refresh_gauges() -> None:
    """In-flight counts and budget for the metrics, at most once per ``POLL_INTERVAL_S`` per
    process: two COUNT queries on every tick (several a second) would be wasted work."""
    global _gauges_due
    now = time.monotonic()
    if metrics.enabled() and now >= _gauges_due:
        _gauges_due = now + get_settings().poll_interval_s
        budget = get_budget()
        metrics.gauges(repository.count_in_flight(), budget.pools(), budget.waiting())


def _running_ttl_ms() -> int:
    """How long a sweep's "running" mark lasts without a finished batch renewing it: longer
    than one batch can take (its Lambda calls time out), short enough that a batch lost with
    a killed worker holds polling up only briefly (it was 60 s: a whole stall of every poll
    after a crash)."""
    s = get_settings()
    call_s = s.lambda_connect_timeout_s + s.lambda_read_timeout_s
    return int(max(3 * s.poll_interval_s, call_s + 5.0) * 1000)


def start_sweep(slot: int) -> list[list[str]] | None:
    """Plan the sweep of ``slot``, or return None to skip this tick.

    A tick is skipped when its slot was already swept (duplicate tick, second scheduler) or
    when the previous sweep has not finished: sweeps never pile up, the effective interval
    simply stretches to the sweep's duration. The "running" mark is taken atomically (SET NX)
    before anything else, every finished batch renews it, and it expires on its own, so a lost
    batch cannot stop polling for longer than ``_running_ttl_ms``.
    """
    client = get_redis()
    if not client.set(keys().poll_running(), slot, nx=True, px=_running_ttl_ms()):
        # Remember that a tick came due: the sweep that is running starts the next one as soon
        # as it finishes, instead of leaving the renders to wait for the following tick.
        client.set(keys().poll_due(), slot, px=_running_ttl_ms())
        log.info("previous poll sweep still running; tick skipped", slot=slot)
        return None
    try:
        if not claim_poll_slot(slot):
            _release_running(slot)
            log.debug("poll slot already claimed", slot=slot)
            return None
        batches = plan_sweep()
        _refresh_gauges()
    except BaseException:
        # Database down, say: without this the mark would stop every sweep until it expires.
        _release_running(slot)
        raise
    renders = sum(map(len, batches))
    if batches:
        pipe = client.pipeline()
        pipe.hset(
            keys().poll_sweep(slot),
            mapping={"planned_at": time.time(), "batches": len(batches), "renders": renders},
        )
        pipe.expire(keys().poll_sweep(slot), 3600)
        pipe.execute()
    else:
        _record_last_sweep(slot, time.time(), 0, 0, {})
        _record_next_due()
        _release_running(slot)
    # Several ticks a second: an empty sweep is not worth a log line.
    (log.info if renders else log.debug)(
        "poll sweep planned", slot=slot, batches=len(batches), renders=renders
    )
    return batches


def _record_next_due() -> None:
    """After an empty sweep: when the next one can have anything to do, for the scheduler
    (``worker.scheduler``), which sends no tick before then. One interval after the least
    recently polled render in flight (or a render's early poll, if sooner), and never later
    than one interval from now: a render that starts after this sweep is due no earlier than
    that."""
    interval = get_settings().effective_poll_interval_s
    now = time.time()
    upcoming = repository.next_poll_at(interval)
    due = now + interval if upcoming is None else min(now + interval, upcoming.timestamp())
    get_redis().set(keys().poll_next_due(), f"{due:.3f}", px=int(interval * 2000))


_RELEASE_IF_MINE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _release_running(slot: int) -> None:
    client = get_redis()
    client.eval(_RELEASE_IF_MINE, 1, keys().poll_running(), str(slot))


def finish_batch(slot: int | None, outcomes: dict[str, int], polled: int) -> bool:
    """Count a finished batch; the last one of a sweep records the sweep's duration.

    Returns True when a tick was skipped while this sweep ran: the caller should start the
    next sweep now (so the effective interval is the sweep's duration, not a multiple of
    ``POLL_INTERVAL_S``).
    """
    if slot is None:
        return False
    client = get_redis()
    key = keys().poll_sweep(slot)
    pipe = client.pipeline()
    pipe.pexpire(keys().poll_running(), _running_ttl_ms())
    pipe.hincrby(key, "done", 1)
    pipe.hincrby(key, "polled", polled)
    for outcome, count in outcomes.items():
        pipe.hincrby(key, f"outcome:{outcome}", count)
    pipe.hgetall(key)
    *_, sweep = pipe.execute()
    fields = {k.decode(): v.decode() for k, v in sweep.items()}
    if not fields.get("batches") or int(fields["done"]) != int(fields["batches"]):
        return False
    totals = {k.split(":", 1)[1]: int(v) for k, v in fields.items() if k.startswith("outcome:")}
    _record_last_sweep(
        slot, float(fields["planned_at"]), int(fields["renders"]), int(fields["polled"]), totals
    )
    _release_running(slot)
    return client.getdel(keys().poll_due()) is not None


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
    pipe = get_redis().pipeline(transaction=False)
    pipe.set(keys().last_sweep(), json.dumps(record))
    if renders:
        # The sweep's own hash keeps its end too: the next sweep soon replaces the last one.
        pipe.hset(
            keys().poll_sweep(slot), mapping={"finished_at": finished, "duration_s": duration}
        )
    pipe.execute()
    metrics.sweep(duration, polled)
    if renders:
        log.info("poll sweep finished", **record)


def last_sweep() -> dict[str, object] | None:
    raw = get_redis().get(keys().last_sweep())
    return json.loads(raw) if raw else None


class BatchResult(NamedTuple):
    outcomes: dict[str, int]
    #: A tick was skipped while this batch's sweep ran: start the next sweep now.
    next_due: bool


def poll_batch(render_ids: Sequence[str], slot: int | None = None) -> BatchResult:
    """Poll a batch: Lambda calls run concurrently on the pool, every write happens here.
    Returns the outcome counts and whether the next sweep is already due.

    The pool threads only read progress, so a batch costs one database transaction for all
    its completions and failures, one statement for all its progress readings and one Redis
    call to release the budget of finished renders, however many renders it holds.
    """
    started = time.monotonic()
    try:
        renders = repository.poll_targets(render_ids)
        context = structlog.contextvars.get_contextvars()
        results = list(_pool.get().map(lambda r: _read(r, context), renders))
        outcomes = _apply(results, poll_forecast.early_polls(_unfinished(results), utcnow()))
        polled = len(renders)
    except Exception:
        # Not retried: the renders it did not get to stay due, so the next sweep (a tick away)
        # polls them. The sweep must still be counted finished, or no sweep runs until the
        # running mark expires.
        log.exception("poll batch failed; its renders stay due", renders=len(render_ids))
        outcomes, polled = {"batch_failed": 1}, 0
    else:
        log.info(
            "poll batch done",
            renders=len(renders),
            seconds=round(time.monotonic() - started, 3),
            **outcomes,
        )
    next_due = finish_batch(slot, outcomes, polled)
    return BatchResult(outcomes, next_due)


def _unfinished(results: list[_Result]) -> list[poll_forecast.Reading]:
    """The readings of every render the batch read as still rendering, with the one before
    (a cancelled render still running on Lambda is waited for, not hurried)."""
    return [
        poll_forecast.Reading(
            r.render.id,
            r.progress.overall,
            r.render.progress if r.render.last_polled_at else 0.0,
            r.render.last_polled_at or r.render.started_at,
        )
        for r in results
        if r.progress is not None
        and not r.progress.done
        and not r.progress.fatal_error
        and r.render.status == RenderStatus.RENDERING
    ]


@dataclass
class _Result:
    render: repository.PollTarget
    progress: RenderProgress | None = None
    error: LambdaError | None = None
    timed_out: bool = False


def _read(render: repository.PollTarget, context: dict[str, object]) -> _Result:
    """Runs on a pool thread: Lambda only, no database."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        **{**context, "render_id": render.id, "user_id": render.user_id}
    )
    try:
        settings = get_settings()
        if render.started_at and utcnow() - render.started_at > timedelta(
            seconds=settings.render_timeout_s
        ):
            return _Result(render, timed_out=True)
        assert render.lambda_render_id and render.lambda_bucket
        try:
            lam = get_lambda(render.lambda_pool)
            progress = lam.progress(render.lambda_render_id, render.lambda_bucket)
        except LambdaError as exc:
            return _Result(render, error=exc)
        failpoint("poll.after_progress")
        return _Result(render, progress=progress)
    finally:
        structlog.contextvars.clear_contextvars()


def _apply(results: list[_Result], early: dict[str, datetime]) -> dict[str, int]:
    """Turn what the pool threads read into outcomes (``worker.outcomes`` acts on them);
    ``early``: when to poll a render again before its regular poll."""
    settings = get_settings()
    counts: Counter[str] = Counter()
    reports: list[tuple[repository.PollTarget, outcomes.Outcome]] = []
    for result in results:
        render, progress = result.render, result.progress
        if result.timed_out:
            message = f"not done {settings.render_timeout_s:g}s after it started (RENDER_TIMEOUT_S)"
            reports.append((render, outcomes.GaveUp(ErrorCode.TIMEOUT, message)))
        elif result.error is not None:
            count = repository.record_poll_failure(render.id)
            log.warning(
                "progress call failed",
                render_id=render.id,
                error=str(result.error),
                kind=type(result.error).__name__,
                failures=count,
            )
            if count is not None and count >= settings.max_poll_failures:
                message = f"progress unreadable for {count} polls; last error: {result.error}"
                reports.append((render, outcomes.GaveUp(ErrorCode.POLL_FAILED, message)))
            else:
                counts["poll_error"] += 1
        elif progress is None:
            continue
        elif progress.fatal_error:
            kind = progress.fatal_kind or FatalKind.RENDER
            reports.append((render, outcomes.Ended(kind, progress.fatal_error, progress.cost_usd)))
        elif progress.done and progress.output_url:
            completed = outcomes.Completed(
                progress.output_url, progress.output_size_bytes, progress.cost_usd
            )
            reports.append((render, completed))
        else:
            if progress.done:
                log.warning(
                    "render done without an output file; polling again", render_id=render.id
                )
            progressed = outcomes.Progressed(
                progress.overall, progress.cost_usd, early.get(render.id)
            )
            reports.append((render, progressed))
    counts.update(outcomes.apply(dramatiq.get_broker(), reports))
    return dict(counts)
