"""The actors. The module the ``dramatiq`` CLI loads: ``dramatiq worker.actors``.

Actors are thin: they translate a message into a call of ``worker.start`` or ``worker.poller``
and turn a ``Defer`` into a delayed re-enqueue. Queue names come from settings so that starts
and polls can be served by separate worker groups (``-Q``).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import dramatiq
from dramatiq.middleware import CurrentMessage

from shared import admission, pauses
from shared.lambda_budget import get_budget
from shared.log import get_logger
from shared.messages import (
    CANCEL_RENDER,
    DELIVER_DUE,
    DELIVER_EVENTS,
    POLL_BATCH,
    POLL_TICK,
    RECONCILE,
    START_RENDER,
)
from shared.settings import get_settings
from worker import cancellation, metrics, notifications, poller, reconciler, slots, start
from worker.broker import broker  # installs the broker before the actors below
from worker.defer import Defer, defer_current
from worker.delivery import Delivery
from worker.permit import MessagePermit

log = get_logger(__name__)
_settings = get_settings()


def _user_of(message: Delivery) -> str | None:
    """The rate-limit key of a start message: its user, if the body names one plausibly."""
    payload = message.args[0] if message.args else None
    user_id = payload.get("user_id") if isinstance(payload, dict) else None
    return user_id if isinstance(user_id, str) and 0 < len(user_id) <= 128 else None


def _note_throttled(message: Delivery, until: datetime) -> None:
    start.note_throttled(message.args[0], message.message_id, until)


@dramatiq.actor(
    actor_name=START_RENDER,
    queue_name=_settings.start_queue,
    max_retries=20,
    throws=(start.PoisonMessage,),
    # Lower runs first: a worker serving both queues takes queued polls before more starts.
    priority=10,
    rate_limit_key=_user_of,
    on_throttled=_note_throttled,
)
def start_render(payload: Any) -> None:
    message = CurrentMessage.get_current_message()
    try:
        start.start_render(
            payload,
            message.message_id if message else "",
            MessagePermit(message),
            message.message_timestamp if message else None,
        )
    except Defer as exc:
        metrics.deferred(exc.counter or "other")
        defer_current(exc)


@dramatiq.actor(
    actor_name=POLL_TICK,
    queue_name=_settings.poll_queue,
    max_retries=0,
    # A tick that waited longer than a few intervals is stale: a newer one is coming.
    max_age=int(_settings.poll_interval_s * 5000),
)
def poll_tick(slot: int) -> None:
    # Older than an interval: newer ticks are queued behind it and will sweep what is due.
    if (slot + 1) * _settings.sweep_every_s < time.time() - _settings.poll_interval_s:
        log.info("stale poll tick dropped", slot=slot)
        return
    admission.dispatch_if_recovering(broker)
    for batch in poller.start_sweep(slot) or []:
        poll_batch.send(batch, slot)


# No retries: a batch that fails leaves its renders due, and the next sweep polls them.
@dramatiq.actor(actor_name=POLL_BATCH, queue_name=_settings.poll_queue, max_retries=0)
def poll_batch(render_ids: list[str], slot: int | None = None) -> None:
    result = poller.poll_batch(render_ids, slot)
    if result.next_due:
        poll_tick.send(int(time.time() // _settings.sweep_every_s))


@dramatiq.actor(
    actor_name=RECONCILE,
    queue_name=_settings.poll_queue,
    max_retries=0,
    max_age=int(_settings.reconcile_interval_s * 2000),
)
def reconcile(slot: int) -> None:
    if not slots.claim_reconcile_slot(slot):
        return
    requeued = reconciler.requeue_lost(broker)
    released = reconciler.release_stale_budget(broker)
    log.info("reconciliation pass", slot=slot, requeued=requeued, budget_released=released)


# Retried with Dramatiq's backoff: a transient S3 or Lambda error must not leave it billing.
@dramatiq.actor(actor_name=CANCEL_RENDER, queue_name=_settings.poll_queue, max_retries=12)
def cancel_render(render_id: str) -> None:
    outcome = cancellation.stop_on_lambda(render_id)
    if outcome == "never started":
        pauses.forget([render_id])
        if render_id in get_budget().parked():
            admission.release([render_id])  # its place in line goes at once
    log.info("cancel on lambda", render_id=render_id, outcome=outcome)


# Each delivery is claimed and retried on its own schedule (the outbox): no Dramatiq retries.
@dramatiq.actor(actor_name=DELIVER_EVENTS, queue_name=_settings.notify_queue, max_retries=0)
def deliver_events(event_ids: list[str]) -> None:
    counts = notifications.deliver(event_ids)
    log.info("events delivered", **counts)


@dramatiq.actor(
    actor_name=DELIVER_DUE,
    queue_name=_settings.notify_queue,
    max_retries=0,
    max_age=int(_settings.notify_sweep_interval_s * 2000),
)
def deliver_due(slot: int) -> None:
    if not slots.claim_deliver_slot(slot):
        return
    counts = notifications.sweep()
    (log.info if counts else log.debug)("event delivery sweep", slot=slot, **counts)
