"""When to look again at a render that is about to finish: a poll at its predicted end.

Polling every ``POLL_INTERVAL_S`` finds a render done up to a whole interval after it finished
(on average half of one). A progress reading says more than "not yet": a render that went from
40% to 80% in the last 2 s has about 1 s left. So when a reading predicts the end before the
render's next regular poll, the reading is stored with that time (``poll_early_at``) and the
first sweep at or after it polls the render too, in the same batches as the regular polls: no
message of its own (a delayed Dramatiq message travels through the delay queue and back, six
Redis round trips, and made a batch of one or two renders), and nothing to lose in a crash.
If the prediction was early, that reading predicts again from closer up; readings of a render
are never closer together than ``MIN_GAP_S``, the interval at which Remotion rewrites
progress.json at all (``overall-render-progress.ts``: at most every 250 ms). So a render costs
one or two progress calls more, and is marked complete within a tick (``POLL_TICK_S``) of
Remotion saying so instead of up to an interval later. A stretch without progress (stalled,
or held at 99% while Remotion combines the chunks) predicts nothing: the regular polls watch
it.

Not used while webhooks report the end and progress is not polled: the webhook is then the fast
path, and extra progress calls would only cost Lambda invocations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.settings import get_settings

#: Remotion writes progress.json at most this often: a sooner look cannot learn anything new.
MIN_GAP_S = 0.25
#: Readings this early say too little about the end (the launch phase, the first chunks).
MIN_PROGRESS = 0.05


def remaining_s(
    progress: float, previous: float, previous_at: datetime, now: datetime
) -> float | None:
    """Seconds until the render should be done at the pace of its last stretch (from the
    reading before, or from its start at 0); None when it made no progress in that stretch
    (stalled, or at 99% while Remotion combines: the regular polls watch it) or the reading
    is too early to tell."""
    elapsed = (now - previous_at).total_seconds()
    gained = progress - previous
    if not MIN_PROGRESS <= progress < 1.0 or elapsed <= 0 or gained <= 0:
        return None
    return elapsed * (1.0 - progress) / gained


@dataclass(frozen=True, slots=True)
class Reading:
    render_id: str
    progress: float
    #: The reading before this one and when it was taken (0 and the start if none).
    previous: float
    previous_at: datetime | None


def early_polls(readings: Iterable[Reading], now: datetime) -> dict[str, datetime]:
    """Readings of renders still running -> {render id: when to poll it again}, for those
    whose predicted end comes before their next regular poll."""
    settings = get_settings()
    if not settings.poll_at_predicted_end or (
        settings.webhooks_enabled and not settings.poll_progress_with_webhooks
    ):
        return {}
    regular_s = settings.effective_poll_interval_s
    early: dict[str, datetime] = {}
    for reading in readings:
        if reading.previous_at is None:
            continue
        left = remaining_s(reading.progress, reading.previous, reading.previous_at, now)
        if left is None:
            continue
        wait = max(left, MIN_GAP_S)
        if wait >= regular_s - MIN_GAP_S:
            continue  # the regular poll comes as soon
        early[reading.render_id] = now + timedelta(seconds=wait)
    return early
