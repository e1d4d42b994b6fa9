"""Starting a render: validate the message, claim the render, call Lambda ``start``, record it.

The order is what makes a double delivery harmless:

1. the row is created if a foreign producer sent only a message (``INSERT .. ON CONFLICT DO
   NOTHING``, keyed by the message id, so a redelivery finds the same row);
2. a *claim* (token + lease) is taken with a compare-and-set while the render is ``pending``;
   a second delivery finds the claim held, or the render already ``rendering``, and stops;
3. only the claim holder calls Lambda, with botocore retries off;
4. ``pending -> rendering`` is written guarded by the claim token, with the Lambda ids.

A crash between 3 and 4 is the one window that cannot be closed without an idempotent
``start`` from Remotion; ``start_requests`` on the row records that it happened.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import dramatiq
import structlog
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError

from shared import admission, pauses, renders, repository, timeline
from shared.errors import IllegalTransition, RenderqError
from shared.lambda_budget import get_budget
from shared.log import get_logger
from shared.messages import cancel_render_message
from shared.models import ErrorCode, RenderStatus, utcnow
from shared.render_limits import RenderLimits
from shared.render_plan import Chunking, OverCapacity, chunking_for
from shared.render_request import RenderMessage, RenderRequest
from shared.repository import Claim
from shared.settings import get_settings
from worker import metrics
from worker.defer import Defer, backoff_ms, current_option, jittered
from worker.failpoints import failpoint
from worker.lambda_client import get_lambda
from worker.lambda_errors import (
    LambdaConfigError,
    LambdaRejected,
    LambdaThrottled,
    LambdaTransient,
)
from worker.permit import NO_PERMIT, StartPermit
from worker.start_recovery import StartedRender

log = get_logger(__name__)
#: Added to a search's "decided within": the clock of S3's LastModified and ours may differ.
_DECIDED_MARGIN_MS = 1_000


class PoisonMessage(RenderqError):
    """A message that can never be processed and names no render to fail: dead-letter it."""


class _Handled(RenderqError):
    """The message was dealt with (the render it names was failed); ack it."""


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "message"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def parse_payload(payload: Any, message_id: str) -> tuple[str, RenderRequest]:
    """Validate a message body; a bad one fails its render if it names one, else is poison."""
    try:
        message = RenderMessage.model_validate(payload)
    except ValidationError as exc:
        reason = f"invalid render message: {_describe(exc)}"
        render_id = payload.get("render_id") if isinstance(payload, dict) else None
        if isinstance(render_id, str) and _fail_named_render(render_id, reason):
            raise _Handled from exc
        log.error("dead-lettering message", reason=reason, render_id=render_id)
        raise PoisonMessage(reason) from exc
    return message.render_id or message_id, message.request()


def _fail_named_render(render_id: str, reason: str) -> bool:
    try:
        repository.fail(
            render_id, RenderStatus.PENDING, code=ErrorCode.INVALID_REQUEST, message=reason
        )
    except (IllegalTransition, LookupError):
        return False
    metrics.transition("pending", "failed", ErrorCode.INVALID_REQUEST)
    log.warning("render failed: invalid message", render_id=render_id, reason=reason)
    return True


def resolve(payload: Any, message_id: str) -> tuple[str, RenderRequest] | None:
    """Validate the body and return the render it is about with its request (creating the row
    for a foreign message), or None when the message was dealt with (its render failed).

    The producer writes the row and the message from one request (a replay writes the message
    from the row), so the message's request is the row's; only an idempotency key that matched
    an existing render makes the row, not the message, the one to follow."""
    try:
        render_id, request = parse_payload(payload, message_id)
    except _Handled:
        return None
    structlog.contextvars.bind_contextvars(render_id=render_id, user_id=request.user_id)
    if isinstance(payload, dict) and payload.get("render_id"):
        return render_id, request  # the producer wrote the row; the claim finds out if not
    render, created = repository.insert_pending(render_id, request)
    if created:
        log.info("render created from foreign message")
    elif render.id != render_id:
        structlog.contextvars.bind_contextvars(render_id=render.id)
        log.info("idempotency key matched an existing render")
        return render.id, render.as_request()
    return render.id, request


def check_request(render_id: str, request: RenderRequest) -> Chunking | None:
    """The render limits and the Lambda plan, before any room or claim is taken: a render
    that breaks a limit, or can never fit the budget, fails at once instead of waiting in
    line first."""
    violations = RenderLimits.from_settings().violations(request)
    code, message = None, ""
    if violations:
        code, message = (
            ErrorCode.LIMIT_EXCEEDED,
            "render limits exceeded: " + "; ".join(map(str, violations)),
        )
    else:
        try:
            return chunking_for(request.duration_in_frames)
        except OverCapacity as exc:
            code, message = ErrorCode.OVER_CAPACITY, str(exc)
    try:
        repository.fail(render_id, RenderStatus.PENDING, code=code, message=message)
        metrics.transition("pending", "failed", code)
        log.warning("render rejected", error_code=code, reason=message)
    except IllegalTransition as exc:
        log.info("render moved on before it could be rejected", status=exc.actual)
    except LookupError:
        log.error("dead-lettering message", reason=f"render_id {render_id!r} does not exist")
        raise PoisonMessage(f"render_id {render_id!r} does not exist") from None
    return None


def _held_by_pause(render_id: str, user_id: str, sent_ms: int) -> bool:
    """Starts of this user (or of everything) are paused: hold the render until they resume
    (``shared.pauses``). Room the budget admitted it to meanwhile goes back to the line."""
    paused = pauses.hold(render_id, user_id, sent_ms)
    if paused is None:
        return False
    if get_budget().holds(render_id):
        admission.release([render_id])
    timeline.record([(render_id, "paused", {"by": paused.by, "reason": paused.reason})])
    metrics.deferred("paused")
    log.info("render held: starts paused", pause=paused.describe())
    return True


def claim(render_id: str, token: str) -> Claim | None:
    """Take the start claim; when it fails, one read explains why (gone: poison; moved on:
    duplicate; claimed: wait for the holder)."""
    claimed = repository.claim_start(render_id, token, get_settings().claim_lease_s)
    if claimed is None:
        _explain_failed_claim(render_id)
    return claimed


def _explain_failed_claim(render_id: str) -> None:
    current = renders.get(render_id)
    if current is None:
        # Named by the producer (or a replay, or the reconciler), which always writes the row
        # first: a missing row means something else is wrong; rendering a guess would produce
        # something nobody can find.
        reason = f"render_id {render_id!r} does not exist"
        log.error("dead-lettering message", reason=reason)
        raise PoisonMessage(reason)
    if current.status != RenderStatus.PENDING:
        if current.status.terminal and current.lambda_render_id is None:
            # Room admitted for it while it was parked (it was cancelled meanwhile) goes back.
            admission.release([render_id])
        log.info("render already past pending; duplicate delivery ignored", status=current.status)
        return
    if current.claim_expires_at is None:
        log.info("render claim released meanwhile; duplicate delivery ignored")
        return
    if get_budget().holds(render_id):
        # Admitted (woken) while the delivery that parked it still gives its claim back: that
        # takes milliseconds, so do not wait out the whole lease.
        attempt = int(current_option("claim_waits", 0))
        wait_ms = min(200 * 2**attempt, int(get_settings().claim_lease_s * 1000))
        raise Defer(wait_ms, "admitted while its claim is released", counter="claim_waits")
    # Another worker holds the start claim. If it is alive it will finish and this message
    # becomes a no-op; if it died, its claim expires and this message must take over. So come
    # back just after the claim expires instead of acking.
    wait_ms = int((current.claim_expires_at - utcnow()).total_seconds() * 1000) + 1_000
    raise Defer(max(wait_ms, 1_000), "start claimed by another worker", counter="claim_waits")


def start_render(
    payload: Any,
    message_id: str,
    permit: StartPermit = NO_PERMIT,
    enqueued_ms: int | None = None,
) -> bool:
    """Run the start steps; True when this call started (or recovered) the render on Lambda.

    ``permit`` is the user's rate-limit permit held by this delivery: confirmed right before
    Lambda ``start``, kept once the render started (``worker.permit``). ``enqueued_ms`` (when
    the message was first sent) orders the render within its user's line for the budget.
    """
    failpoint("start.before_claim")
    resolved = resolve(payload, message_id)
    if resolved is None:
        return False
    render_id, request = resolved
    chunking = check_request(render_id, request)
    if chunking is None:
        return False
    sent_ms = enqueued_ms if enqueued_ms is not None else int(time.time() * 1000)
    # The budget before the claim: a render that must wait is parked without a database
    # write, so a flood of thousands parks in seconds and whoever arrives after it is in the
    # line at once. Holding room for a render another delivery claims is harmless: that one
    # starts it with the same room (admission is idempotent per render). The same script
    # answers "paused" first; the hold re-checks, and a pause lifted in between admits again.
    decision = admission.admit(render_id, request.user_id, chunking.functions, sent_ms)
    while decision.paused:
        if _held_by_pause(render_id, request.user_id, sent_ms):
            return False
        decision = admission.admit(render_id, request.user_id, chunking.functions, sent_ms)
    if decision.pool is None:
        metrics.deferred("budget_parked")
        log.info("render parked until lambda budget frees", functions=chunking.functions)
        return False
    pool = decision.pool
    settings = get_settings()
    token = uuid.uuid4().hex
    claimed = claim(render_id, token)
    if claimed is None:
        return False
    failpoint("start.after_claim")
    try:
        found = _find_previous_start(claimed, pool) if claimed.start_requests > 1 else None
        recovered = found is not None
        if found is None:
            _confirm_or_defer(claimed, token, permit)
            found = _start_on_lambda(claimed, pool, chunking)
            failpoint("start.after_lambda_start")
    except LambdaThrottled as exc:
        admission.shrink(pool, f"start throttled: {exc}")
        _give_back(claimed, token)
        attempt = int(current_option("lambda_throttles", 0))
        delay = backoff_ms(attempt, base_ms=1_000, max_ms=60_000)
        if exc.retry_after_s:
            delay = max(delay, int(exc.retry_after_s * 1000))
        raise Defer(delay, f"lambda throttled: {exc}", counter="lambda_throttles") from exc
    except LambdaTransient as exc:
        attempt = int(current_option("start_errors", 0)) + 1
        if attempt >= settings.max_start_attempts:
            admission.release([claimed.id])
            _fail_start(claimed, ErrorCode.LAMBDA_UNAVAILABLE, f"{attempt} start attempts: {exc}")
            return False
        _give_back(claimed, token, start_may_have_happened=exc.may_have_started)
        log.warning(
            "lambda start failed transiently",
            error=str(exc),
            may_have_started=exc.may_have_started,
            attempt=attempt,
        )
        delay = backoff_ms(attempt, base_ms=2_000, max_ms=300_000)
        if exc.decided_within_s is not None:
            # Past that moment the search has its answer: waiting longer only delays the start.
            delay = min(delay, int(exc.decided_within_s * 1000) + _DECIDED_MARGIN_MS)
        raise Defer(delay, f"transient lambda error: {exc}", counter="start_errors") from exc
    except (LambdaRejected, LambdaConfigError) as exc:
        _give_back(claimed, token)
        code = (
            ErrorCode.LAMBDA_REJECTED
            if isinstance(exc, LambdaRejected)
            else ErrorCode.LAMBDA_CONFIG
        )
        _fail_start(claimed, code, str(exc))
        return False
    _record_started(claimed, token, found, pool, chunking, recovered, permit.member)
    permit.started()
    return True


def _start_on_lambda(claimed: Claim, pool: str, chunking: Chunking) -> StartedRender:
    return get_lambda(pool).start(
        composition=claimed.composition,
        input_props=claimed.input_props,
        codec=claimed.codec,
        width=claimed.width,
        height=claimed.height,
        fps=claimed.fps,
        duration_in_frames=claimed.duration_in_frames,
        out_name=claimed.out_name,
        frames_per_lambda=chunking.frames_per_lambda,
        # What the webhook receiver needs to find the render and its attempt (ASCII, far
        # below Remotion's 1,024-byte customData limit: validate-webhook.ts).
        webhook_data={"render_id": claimed.id, "attempt": claimed.attempts},
    )


def _give_back(
    claimed: Claim,
    token: str,
    *,
    throttled_until: datetime | None = None,
    start_may_have_happened: bool = False,
) -> None:
    """The start did not happen (or its outcome is unknown): release the render's budget and
    give the claim back, so the next delivery can take it."""
    admission.release([claimed.id])
    repository.release_claim(
        claimed.id,
        token,
        throttled_until=throttled_until,
        start_may_have_happened=start_may_have_happened,
    )


def _confirm_or_defer(claimed: Claim, token: str, permit: StartPermit) -> None:
    """Re-check the user's permit right before the start (see ``worker.permit``)."""
    try:
        wait_ms = permit.confirm()
    except BaseException:
        _give_back(claimed, token)
        raise
    if wait_ms is None:
        return
    until = utcnow() + timedelta(milliseconds=wait_ms)
    _give_back(claimed, token, throttled_until=until)
    raise Defer(jittered(wait_ms, 0.05), "user rate limit (at start)", counter="throttled")


def _find_previous_start(claimed: Claim, pool: str) -> StartedRender | None:
    """An earlier start request for this attempt has an unknown outcome: look for the render
    it may have started, by its deterministic ``outName``, before paying for another one."""
    found = get_lambda(pool).find_render(
        claimed.out_name,
        bucket=repository.latest_bucket(),
        since=claimed.created_at - timedelta(minutes=5),
    )
    log.warning(
        "looked for a render started by an earlier attempt",
        out_name=claimed.out_name,
        start_requests=claimed.start_requests,
        found=found.render_id if found else None,
    )
    return found


def _record_started(
    claimed: Claim,
    token: str,
    started: StartedRender,
    pool: str,
    chunking: Chunking,
    recovered: bool,
    permit: str | None,
) -> None:
    """``pending -> rendering`` with the Lambda ids, retrying through a database outage.

    The render is running and paid for; losing its ids is the costly window. The claim lease
    keeps other workers off while we retry, so retry for up to the lease.
    """
    deadline = time.monotonic() + get_settings().claim_lease_s * 0.8
    delay = 0.2
    while True:
        try:
            repository.mark_rendering(
                claimed.id,
                token,
                started.render_id,
                started.bucket,
                permit,
                pool,
                step={
                    "attempt": claimed.attempts,
                    "functions": chunking.functions,
                    "frames_per_lambda": chunking.frames_per_lambda,
                    "recovered": recovered,
                },
            )
            break
        except IllegalTransition as exc:
            if exc.actual == RenderStatus.CANCELLED:
                _stop_cancelled(claimed, started, pool)
                return
            # The lease ran out and another worker took over: make it loud.
            log.error(
                "lost the start claim after Lambda started the render",
                lambda_render_id=started.render_id,
                status=exc.actual,
            )
            return
        except DBAPIError as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("database unavailable after the start; retrying", error=str(exc))
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    metrics.transition("pending", "rendering")
    log.info(
        "render recovered from an earlier start" if recovered else "render started",
        lambda_render_id=started.render_id,
        bucket=started.bucket,
        out_name=claimed.out_name,
        pool=pool,
        functions=chunking.functions,
        frames_per_lambda=chunking.frames_per_lambda,
    )


def _stop_cancelled(claimed: Claim, started: StartedRender, pool: str) -> None:
    """The render was cancelled while its start was on the way: it runs on Lambda now, so
    keep its ids on the cancelled row (its budget stays held until it stops) and stop it."""
    repository.attach_to_cancelled(claimed.id, started.render_id, started.bucket, pool)
    dramatiq.get_broker().enqueue(cancel_render_message(claimed.id))
    log.warning(
        "render cancelled while it started; stopping it on lambda",
        lambda_render_id=started.render_id,
    )


def note_throttled(payload: Any, message_id: str, until: datetime) -> None:
    """Make a rate-limited wait visible: ``throttled_until`` on the pending render.

    A foreign message may not have a row yet; create it (same validation as the actor) so the
    waiting render can be seen and queried.
    """
    try:
        resolved = resolve(payload, message_id)
    except PoisonMessage:
        return
    if resolved is not None:
        render_id = resolved[0]
        # A guarded UPDATE: a named render that does not exist is simply not touched.
        repository.set_throttled_until(render_id, until)


def _fail_start(render: Claim, code: ErrorCode, message: str) -> None:
    try:
        repository.fail(render.id, RenderStatus.PENDING, code=code, message=message)
    except IllegalTransition as exc:
        log.info("render moved on before the start failure was recorded", status=exc.actual)
        return
    metrics.transition("pending", "failed", code)
    log.warning("render failed to start", error_code=code, error_message=message)
