"""Remotion's webhooks in: the fast path to a render's end.

Remotion's launch function POSTs ``success``, ``error`` or ``timeout`` once per render
(``packages/serverless/src/invoke-webhook.ts``, ``handlers/launch.ts``), signed with
``X-Remotion-Signature: sha512=<HMAC of the exact body>``. Nothing is read before the
signature is verified over the raw bytes with Remotion's own ``validate_webhook_signature``
(against the current secret and those still accepted during a rotation).

Then the body must name the render's *current* attempt: ``customData`` carries
``{render_id, attempt}`` (set at the start, ``worker/start.py``) and ``renderId`` must be the
row's Lambda render. A webhook of an attempt that a newer one replaced (a throttle restart, a
replay) is refused with 409 and changes nothing.

The payload is applied through the same outcome code as the poller (``worker/outcomes.py``),
not turned into "poll this render now": that would cost one more Lambda invocation per render
and its latency, and the payload already carries what a terminal state needs (output URL,
cost, Remotion's error), except the output's size, which one S3 HEAD provides. Duplicates and
late deliveries change nothing: every transition is guarded by the render's status. Remotion
does not re-send a webhook that failed, so polling stays as the safety net.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from remotion_lambda.exception import RemotionException
from remotion_lambda.webhook import validate_webhook_signature

from shared import aws, renders, repository
from shared.log import get_logger
from shared.messages import producer_broker
from shared.models import Render, RenderStatus
from shared.pools import pool_named
from shared.settings import get_settings
from worker import outcomes
from worker.lambda_errors import FatalKind, classify_fatal

log = get_logger(__name__)


@dataclass(frozen=True)
class Receipt:
    status: int
    detail: str


def verify(body: bytes, signature: str | None) -> bool:
    """Whether one of the accepted secrets signed exactly these bytes."""
    for secret in get_settings().webhook_secrets():
        try:
            validate_webhook_signature(secret, body, signature or "")
        except RemotionException:
            continue
        return True
    return False


def _first_lines(message: str) -> str:
    return message.split("\n    at ", 1)[0].strip()


def _output_size(bucket: str, key: str, pool: str | None) -> int | None:
    try:
        where = pool_named(pool)  # the bucket is in the render's pool's region (and account)
        head = aws.s3_client(where.region, where.endpoint_url).head_object(Bucket=bucket, Key=key)
    except Exception as exc:  # the size is nice to have; the completion is not held for it
        log.warning("could not read the output's size", key=key, error=str(exc))
        return None
    return int(head["ContentLength"])


def _outcome(
    body: dict[str, Any], bucket: str, key: str, pool: str | None
) -> outcomes.Outcome | None:
    kind = body.get("type")
    if kind == "success":
        url = body.get("outputFile") or body.get("outputUrl")
        costs = body.get("costs") if isinstance(body.get("costs"), dict) else {}
        cost = costs.get("estimatedCost") if isinstance(costs, dict) else None
        if not isinstance(url, str):
            return None
        return outcomes.Completed(
            url, _output_size(bucket, key, pool), float(cost) if cost is not None else None
        )
    if kind == "error":
        errors = body.get("errors") if isinstance(body.get("errors"), list) else []
        first = errors[0] if errors and isinstance(errors[0], dict) else {}
        message = _first_lines(str(first.get("message") or "Remotion reported an error"))
        fatal = classify_fatal(first.get("name"), message, first.get("stack"))
        return outcomes.Ended(fatal, message, None)
    if kind == "timeout":
        message = "Remotion's function timed out before the render finished (timeout webhook)"
        return outcomes.Ended(FatalKind.TIMEOUT, message, None)
    return None


def _target(render_id: str) -> repository.PollTarget | None:
    return next(iter(repository.poll_targets([render_id])), None)


def _current(
    render_id: str,
) -> tuple[repository.PollTarget | None, repository.PollTarget | Render | None]:
    """The render as a poll target if it is in flight (one read: the common path), and what
    to match the webhook against (the target, or the whole row of a render not in flight).

    A render that started between the two reads is a target by the second: read again,
    or its webhook would be answered "nothing to do" and never applied."""
    target = _target(render_id)
    if target is not None:
        return target, target
    row = renders.get(render_id)
    if row is not None and (
        row.status == RenderStatus.RENDERING
        or (row.status == RenderStatus.CANCELLED and row.stopped_at is None)
    ):
        target = _target(render_id)
    return target, target if target is not None else row


def receive(body: bytes, signature: str | None) -> Receipt:
    """Verify, match and apply one webhook; returns what to answer."""
    if not get_settings().webhooks_enabled:
        return Receipt(404, "Remotion webhooks are not configured (REMOTION_WEBHOOK_URL)")
    if not verify(body, signature):
        return Receipt(401, "missing or invalid X-Remotion-Signature")
    try:
        parsed = json.loads(body)
    except ValueError:
        return Receipt(400, "the body is not JSON")
    custom = parsed.get("customData") if isinstance(parsed, dict) else None
    if not isinstance(custom, dict) or not isinstance(custom.get("render_id"), str):
        return Receipt(400, "customData does not name a renderq render")
    render_id, attempt = custom["render_id"], custom.get("attempt")
    target, current = _current(render_id)
    if current is None:
        return Receipt(409, "no such render")
    if current.lambda_render_id != parsed.get("renderId") or current.attempts != attempt:
        log.warning(
            "webhook for another attempt ignored",
            render_id=render_id,
            webhook_attempt=attempt,
            attempt=current.attempts,
            lambda_render_id=parsed.get("renderId"),
        )
        return Receipt(409, "the webhook is not for the render's current attempt")
    if target is None:
        return Receipt(200, f"nothing to do: the render is {current.status}")
    if target.out_name is None or target.lambda_bucket is None:  # pragma: no cover - set at start
        return Receipt(200, "nothing to do")
    key = f"renders/{target.lambda_render_id}/{target.out_name}"
    outcome = _outcome(parsed, target.lambda_bucket, key, target.lambda_pool)
    if outcome is None:
        return Receipt(400, "the body is not a success, error or timeout webhook")
    counts = outcomes.apply(producer_broker(), [(target, outcome)], via="webhook")
    log.info(
        "remotion webhook applied",
        render_id=render_id,
        user_id=target.user_id,
        type=parsed.get("type"),
        cancelled=target.status == RenderStatus.CANCELLED,
        **counts,
    )
    return Receipt(200, ",".join(sorted(counts)) or "nothing changed")
