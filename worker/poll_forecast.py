"""When to look again at a render that is about to finish: a poll at its predicted end.

Polling every ``POLL_INTERVAL_S`` finds a render done up to a whole interval after it finished
(on average half of one). A progress reading says more than "not yet": a render that went from
40% to 80% in the last 2 s has about 1 s left. So when a reading predicts the end before the
render's next regular poll, the poller sends one more batch for it, delayed until then
(``poll_batch`` with no sweep slot). If the prediction was early, that reading predicts again
from closer up; readings of a render are never closer together than ``MIN_GAP_S``, the
interval at which Remotion rewrites progress.json at all (``overall-render-progress.ts``: at
most every 250 ms). So a render costs one or two progress calls more, and is marked complete a
fraction of a second after Remotion can say so instead of up to an interval later. A stretch
without progress (stalled, or held at 99% while Remotion combines the chunks) predicts
nothing: the regular polls watch it.

Not used while webhooks report the end and progress is not polled: the webhook is then the fast
path, and extra progress calls would only cost Lambda invocations.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from shared.settings import get_settings

#: Remotion writes progress.json at most this often: a sooner look cannot learn anything new.
MIN_GAP_S = 0.25
#: Readings this early say too little about the end (the launch phase, the first chunks).
MIN_PROGRESS = 0.05
#: Follow-up polls sent together when their times are this close (one message per group).
GROUP_S = 0.1


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


def follow_ups(readings: Iterable[Reading], now: datetime) -> dict[int, list[str]]:
    """Readings of renders still running -> {delay ms: render ids} to poll again before their
    next regular poll; empty when that would not be sooner."""
    settings = get_settings()
    if not settings.poll_at_predicted_end or (
        settings.webhooks_enabled and not settings.poll_progress_with_webhooks
    ):
        return {}
    regular_s = settings.effective_poll_interval_s
    groups: dict[int, list[str]] = defaultdict(list)
    for reading in readings:
        if reading.previous_at is None:
            continue
        left = remaining_s(reading.progress, reading.previous, reading.previous_at, now)
        if left is None:
            continue
        wait = max(left, MIN_GAP_S)
        if wait >= regular_s - MIN_GAP_S:
            continue  # the regular poll comes as soon
        # Rounded up: a look a little late finds it done; a little early costs a call.
        groups[int(math.ceil(wait / GROUP_S) * GROUP_S * 1000)].append(reading.render_id)
    return dict(groups)
