"""Stopping a render on Lambda: a cancelled render, or one renderq gave up on (timeout).

The database already says what the user sees (``cancelled``, or ``failed`` with ``timeout``);
this is about the money. Every render starts with ``enableCancellation`` (setting
``REMOTION_ENABLE_CANCELLATION``), so Remotion's client can write ``renders/<id>/cancel.json``,
which each renderer checks once a second before it stops (``docs/lambda/cancellation.mdx``,
``packages/serverless/src/cancellation-polling.ts``). The cancelled render's Lambda budget is
released when Remotion reports it stopped (``worker.outcomes``), or by the reconciler after
``CANCEL_STOP_BOUND_S``.
"""

from __future__ import annotations

from shared import renders
from shared.log import get_logger
from shared.models import ErrorCode, RenderStatus
from worker.lambda_client import get_lambda
from worker.lambda_errors import LambdaConfigError, LambdaRejected

log = get_logger(__name__)


def stop_on_lambda(render_id: str) -> str:
    """Signal the render's functions to stop; returns what happened. Transient Lambda/S3
    errors propagate, so the actor's retries try again."""
    render = renders.get(render_id)
    if render is None:
        return "gone"
    stoppable = render.status == RenderStatus.CANCELLED or (
        render.status == RenderStatus.FAILED and render.error_code == ErrorCode.TIMEOUT
    )
    if not stoppable or render.stopped_at is not None:
        return "nothing to stop"
    if not render.lambda_render_id or not render.lambda_bucket:
        return "never started"
    try:
        get_lambda(render.lambda_pool).cancel(render.lambda_render_id, render.lambda_bucket)
    except (LambdaRejected, LambdaConfigError) as exc:
        # Started without enableCancellation (or no access to the bucket): it runs to its end.
        log.warning("render cannot be stopped on lambda", render_id=render_id, error=str(exc))
        return "not cancellable"
    log.info(
        "asked lambda to stop the render",
        render_id=render_id,
        user_id=render.user_id,
        lambda_render_id=render.lambda_render_id,
        status=render.status,
    )
    return "signalled"
