"""Starting a render again after Lambda throttled it inside the render.

When the account runs out of Lambda concurrency, Remotion's ``start`` usually still succeeds
and the renderer invocations inside the render fail with "Rate Exceeded", which Remotion does
not retry (``packages/lambda-client/src/is-flaky-error.ts``): the render ends with a fatal
error. Nothing is wrong with the request, so the user should not see a failure: the render
goes back to ``pending`` as a new attempt (new ``outName``, the failure kept in its
``error_history``), its permit is given back, and a start message is sent after a backoff.
After ``MAX_THROTTLE_RESTARTS`` such attempts it fails with ``lambda_throttled``.

A crash between the move to ``pending`` and the send leaves a pending render without a
message; the reconciler re-enqueues it.
"""

from __future__ import annotations

from collections.abc import Sequence

from dramatiq import Broker

from shared import repository
from shared.errors import IllegalTransition
from shared.log import get_logger
from shared.messages import message_payload, start_render_message
from shared.models import ErrorCode
from shared.settings import get_settings
from worker import metrics, permit
from worker.defer import backoff_ms

log = get_logger(__name__)


def restart_throttled(
    broker: Broker, renders: Sequence[tuple[repository.PollTarget, str]]
) -> list[str]:
    """Start every (render, Remotion's message) again as a new attempt; returns the ids moved
    (a render another process moved first is left alone)."""
    settings = get_settings()
    moved = []
    for target, message in renders:
        try:
            row = repository.restart_throttled(target.id, ErrorCode.LAMBDA_THROTTLED, message)
        except IllegalTransition:
            continue
        if target.rate_permit:
            permit.refund(target.user_id, target.rate_permit)
        delay_ms = backoff_ms(
            row.throttle_restarts - 1,
            base_ms=settings.throttle_restart_backoff_ms,
            max_ms=settings.throttle_restart_backoff_max_ms,
        )
        broker.enqueue(
            start_render_message(message_payload(row.id, row.as_request())), delay=delay_ms
        )
        metrics.transition("rendering", "pending")
        log.warning(
            "render throttled inside lambda; starting it again",
            render_id=row.id,
            user_id=row.user_id,
            attempt=row.attempts,
            throttle_restarts=row.throttle_restarts,
            delay_ms=delay_ms,
            error=message,
        )
        moved.append(row.id)
    return moved
