"""Reconciliation: what a crash or a lost message left behind, found and repaired.

The database is the source of truth; Redis carries messages and the Lambda budget. Every
``RECONCILE_INTERVAL_S`` one pass (its slot claimed once, ``worker.slots``) repairs two things:

* **Lost messages.** Redis restarted without persistence or was flushed, a producer died
  between inserting the row and sending the message, an operator purged a queue. A render in
  ``rendering`` needs no message (the poller finds it in the database), but a ``pending`` one
  would wait forever. Pending renders older than ``RECONCILE_GRACE_S`` whose id no message in
  Redis carries (ready, delayed or held unacked) and whose claim is not live get a new
  message. The next pass sees it, so each lost render is re-enqueued once; a duplicate would be
  harmless anyway.
  Renders parked for the Lambda budget (``shared.lambda_budget``) or held by a pause
  (``shared.pauses``) have no message on purpose and are left alone. An admitted render still
  ``pending`` without a message (its wake-up, or the worker that was starting it, was lost) is
  re-enqueued the same way; its room stays held for it.
* **Stale budget.** The poller releases a render's Lambda functions when it sees it finish;
  this catches the rest: a release lost to a crash, a render moved by an operator, a parked
  render that was cancelled or deleted (every holder each pass; ``PARKED_SAMPLE`` parked ones
  at random, so a long line is covered over a few passes at a bounded cost). Then one
  dispatch, for room nobody released (a budget raised by a deploy).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from dramatiq.brokers.redis import RedisBroker

from shared import admission, pauses, renders, repository
from shared.lambda_budget import get_budget
from shared.log import get_logger
from shared.messages import START_RENDER, enqueue_many, message_payload, start_render_message
from shared.models import RenderStatus, utcnow
from shared.redis_client import get_redis
from shared.redis_keys import keys
from shared.settings import get_settings

log = get_logger(__name__)

MAX_PER_PASS = 5_000
#: Parked renders checked for staleness per pass, at random.
PARKED_SAMPLE = 500


def _message_hashes() -> list[str]:
    settings = get_settings()
    queues = (settings.start_queue, settings.admitted_queue)
    return [h for q in queues for h in (keys().queue_messages(q), keys().delayed_messages(q))]


def _render_ids_in(raw_messages: Iterator[bytes]) -> Iterator[str]:
    for raw in raw_messages:
        try:
            message = json.loads(raw)
            if message.get("actor_name") != START_RENDER:
                continue
            body = message["args"][0] if message.get("args") else None
            render_id = body.get("render_id") if isinstance(body, dict) else None
            yield str(render_id or message["message_id"])
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            continue  # undecodable: the consumer dead-letters those


def render_ids_with_messages() -> set[str]:
    client = get_redis()
    found: set[str] = set()
    for key in _message_hashes():
        values = (value for _, value in client.hscan_iter(key, count=1000))
        found.update(_render_ids_in(values))
    return found


def requeue_lost(broker: RedisBroker) -> int:
    """Re-enqueue (through ``broker``) pending renders whose message is gone; returns how many."""
    candidates = repository.stale_pending(get_settings().reconcile_grace_s, MAX_PER_PASS)
    if not candidates:
        return 0
    now = utcnow()
    live = render_ids_with_messages() | get_budget().parked() | pauses.held()
    lost_ids = [
        rid
        for rid, expires in candidates
        if rid not in live and not (expires is not None and _aware(expires) > now)
    ]
    if not lost_ids:
        return 0
    lost = [r for r in renders.get_many(lost_ids) if r.status == RenderStatus.PENDING]
    enqueue_many(
        broker,
        [start_render_message(message_payload(r.id, r.as_request())) for r in lost],
    )
    for render in lost:
        log.warning(
            "re-enqueued a pending render whose message was lost",
            render_id=render.id,
            user_id=render.user_id,
            age_s=round((now - render.created_at).total_seconds(), 1),
        )
    return len(lost)


def _aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes for what was stored as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _stale(state: repository.HolderState | None) -> bool:
    """Whether a budget holder (or a parked render) no longer needs its place."""
    if state is None:
        return True  # the render is gone
    now = utcnow()
    status = RenderStatus(state.status)
    if status == RenderStatus.CANCELLED and state.lambda_render_id and state.stopped_at is None:
        # Its functions run until they see cancel.json; the poller releases the budget when
        # Remotion reports them stopped, this pass at the latest after CANCEL_STOP_BOUND_S.
        bound = timedelta(seconds=get_settings().cancel_stop_bound_s)
        return state.completed_at is None or now - state.completed_at > bound
    # A pending holder is on its way to Lambda, or its message is re-enqueued above.
    return status.terminal


def release_stale_budget(broker: RedisBroker | None = None) -> int:
    """Give back room and places held for renders no longer waiting or in flight, then admit
    what fits; returns how many were given back."""
    budget = get_budget()
    # Every holder (at most a budget's worth), and a sample of the line: a parked render that
    # moved on is normally taken out at once (cancel, the wake-up that finds it gone), so this
    # is a safety net, and reading 10,000 parked rows every pass was an idle worker's main cost.
    ids = [*budget.holders(), *budget.sample_parked(PARKED_SAMPLE)]
    states = repository.holder_states(ids)
    stale = [rid for rid in ids if _stale(states.get(rid))]
    if stale:
        repository.mark_stopped(stale)  # cancelled ones stop being waited for
        admission.release(stale, broker)
        log.info("released stale lambda budget", released=len(stale))
    admission.dispatch(broker)
    return len(stale)
