"""What renderq does when it learns how a render in flight is doing, however it learned it.

Two sources report on a render: the poller (a progress call) and Remotion's webhook (the web
process). Both turn what they heard into an ``Outcome`` and hand it to ``apply``, so one piece
of code decides every consequence: the guarded transition (``complete``, ``failed``), a new
attempt after throttling inside Lambda, the budget release, stopping a timed-out render on
Lambda, noticing that a cancelled render's functions stopped, and the metrics and log lines.
A report that arrives twice, or after another one already moved the render, changes nothing:
every write is guarded by the render's status.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dramatiq import Broker

from shared import admission, repository
from shared.log import get_logger
from shared.messages import cancel_render_message
from shared.models import ErrorCode, RenderStatus, utcnow
from shared.pools import configured_pools
from shared.settings import get_settings
from worker import metrics
from worker.lambda_errors import FatalKind
from worker.restarts import restart_throttled

log = get_logger(__name__)


@dataclass(frozen=True)
class Progressed:
    overall: float
    cost_usd: float | None
    #: Poll again then, before the regular interval (``worker.poll_forecast``).
    poll_early_at: datetime | None = None


@dataclass(frozen=True)
class Completed:
    output_url: str
    output_size_bytes: int | None
    cost_usd: float | None


@dataclass(frozen=True)
class Ended:
    """Remotion reported a fatal error: the render cannot finish."""

    kind: FatalKind
    message: str
    cost_usd: float | None


@dataclass(frozen=True)
class GaveUp:
    """renderq stops waiting: past ``RENDER_TIMEOUT_S`` (the render may still run on Lambda,
    so it is stopped there) or progress unreadable for ``MAX_POLL_FAILURES`` polls."""

    code: ErrorCode
    message: str


Outcome = Progressed | Completed | Ended | GaveUp


def _failure(target: repository.PollTarget, outcome: Ended) -> repository.Failure | None:
    """The failure an ``Ended`` render records, or None when it is started again instead."""
    settings = get_settings()
    if outcome.kind is FatalKind.THROTTLED:
        if target.throttle_restarts < settings.max_throttle_restarts:
            return None
        message = (
            f"throttled inside Lambda {target.throttle_restarts + 1} times "
            f"(MAX_THROTTLE_RESTARTS); last: {outcome.message}"
        )
        return repository.Failure(target.id, ErrorCode.LAMBDA_THROTTLED, message, outcome.cost_usd)
    code = ErrorCode.TIMEOUT if outcome.kind is FatalKind.TIMEOUT else ErrorCode.RENDER_ERROR
    return repository.Failure(target.id, code, outcome.message, outcome.cost_usd)


def apply(
    broker: Broker,
    reports: Sequence[tuple[repository.PollTarget, Outcome]],
    *,
    via: str = "poll",
) -> Counter[str]:
    """Act on every (render, outcome); returns counts by what happened. ``broker`` sends the
    messages that follow (a new attempt's start, a cancel on Lambda); ``via`` (``poll`` or
    ``webhook``) is what the render's timeline says told us."""
    counts: Counter[str] = Counter()
    readings: list[repository.ProgressReading] = []
    completions: list[repository.Completion] = []
    failures: list[repository.Failure] = []
    throttled: list[tuple[repository.PollTarget, str]] = []
    stopped: list[str] = []
    stopping: list[str] = []
    for target, outcome in reports:
        if target.status == RenderStatus.CANCELLED:
            # Cancelled by renderq; Lambda ends it with a "got cancelled" error (or finishes
            # first). Either way its functions have stopped: the budget may go.
            if isinstance(outcome, (Completed, Ended)):
                stopped.append(target.id)
            else:
                stopping.append(target.id)
            continue
        if isinstance(outcome, Progressed):
            readings.append(
                repository.ProgressReading(
                    target.id, outcome.overall, outcome.cost_usd, outcome.poll_early_at
                )
            )
            counts["in_progress"] += 1
        elif isinstance(outcome, Completed):
            completions.append(
                repository.Completion(
                    target.id, outcome.output_url, outcome.output_size_bytes, outcome.cost_usd
                )
            )
        elif isinstance(outcome, Ended):
            failure = _failure(target, outcome)
            if failure is None:
                throttled.append((target, outcome.message))
            else:
                failures.append(failure)
        else:
            failures.append(repository.Failure(target.id, outcome.code, outcome.message, None))
    repository.record_progress_many(readings)
    moved = repository.finish_many(completions, failures, via=via)
    by_id = {target.id: target for target, _ in reports}
    _report_completions(completions, moved, by_id, counts)
    _report_failures(broker, failures, moved, by_id, counts)
    restarted = restart_throttled(broker, throttled)
    counts["restarted"] += len(restarted)
    counts["raced"] += len(throttled) - len(restarted)
    repository.mark_stopped(stopped)
    repository.touch_stopping(stopping)
    counts["stopped"] += len(stopped)
    for pool in {target.lambda_pool for target, _ in throttled}:
        admission.shrink(pool or configured_pools()[0].name, "renders throttled inside lambda")
    admission.release([*moved, *restarted, *stopped], broker)
    return +counts


def _report_completions(
    completions: Sequence[repository.Completion],
    moved: set[str],
    by_id: dict[str, repository.PollTarget],
    counts: Counter[str],
) -> None:
    for done in completions:
        if done.render_id not in moved:
            counts["raced"] += 1
            continue
        counts["completed"] += 1
        metrics.transition("rendering", "complete")
        metrics.cost(done.cost_usd)
        target = by_id[done.render_id]
        log.info(
            "render complete",
            render_id=target.id,
            user_id=target.user_id,
            output_url=done.output_url,
            cost_usd=done.cost_usd,
            seconds=round((utcnow() - target.started_at).total_seconds(), 3)
            if target.started_at
            else None,
        )


def _report_failures(
    broker: Broker,
    failures: Sequence[repository.Failure],
    moved: set[str],
    by_id: dict[str, repository.PollTarget],
    counts: Counter[str],
) -> None:
    settings = get_settings()
    for failed in failures:
        if failed.render_id not in moved:
            counts["raced"] += 1
            continue
        timed_out = failed.code == ErrorCode.TIMEOUT
        counts["timed_out" if timed_out else "failed"] += 1
        metrics.transition("rendering", "failed", failed.code)
        metrics.cost(failed.cost_usd)
        log.warning(
            "render failed",
            render_id=failed.render_id,
            user_id=by_id[failed.render_id].user_id,
            error_code=failed.code,
            error=failed.message,
        )
        if timed_out and settings.remotion_enable_cancellation:
            # Still running (and billing) on Lambda unless Remotion itself timed it out.
            broker.enqueue(cancel_render_message(failed.render_id))
