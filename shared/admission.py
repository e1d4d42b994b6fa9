"""Admission to the Lambda budget, seen from the worker: ask, wake the parked, shrink.

``shared.lambda_budget`` decides (one Lua script); this module turns its decisions into
messages. A render that does not fit is parked and its message acked, so waiting costs nothing.
Whoever frees room gets back the renders the script admitted in the same call and sends each a
start message (``wake``); that delivery finds its room held and starts at once. A wake-up lost
to a crash is found by the reconciler: an admitted render that is still ``pending`` without a
message is re-enqueued (``worker.reconciler``), and its room is still held for it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from shared import renders, timeline
from shared.lambda_budget import Admission, Grant, LineUp, get_budget
from shared.log import get_logger
from shared.messages import enqueue_many, message_payload, start_render_message
from shared.models import RenderStatus
from shared.redis_keys import keys
from shared.user_limits import plan_for

log = get_logger(__name__)

#: A shrunk budget recovers over time: look for room it made at most this often per process.
_RECOVERY_CHECK_S = 1.0
_last_recovery_check = 0.0


def admit(render_id: str, user_id: str, functions: int, created_ms: int) -> Admission:
    """Hold room for the render (its pool in ``Admission.pool``) or park it; wakes whomever
    the call admitted besides it. A render whose starts are paused gets ``paused`` and is
    neither (the caller holds it: ``shared.pauses.hold``)."""
    plan = plan_for(user_id)
    decision = get_budget().admit(
        render_id,
        user_id,
        functions,
        created_ms,
        weight=plan.weight,
        max_in_flight=plan.max_in_flight,
        priority=plan.priority,
        pauses_key=keys().pauses(),
    )
    wake(decision.dispatched)
    return decision


def line_up(
    renders_to_line_up: Sequence[tuple[str, str, int, int]], broker: dramatiq.Broker | None = None
) -> set[str]:
    """At enqueue, (render id, user id, functions, created ms) each: park the renders whose
    turn has not come, wake whom the calls admitted; returns the ids to send a start message
    now (nobody waits and they fit)."""
    if not renders_to_line_up:
        return set()
    entries = []
    for render_id, user_id, functions, created_ms in renders_to_line_up:
        plan = plan_for(user_id)
        entries.append(
            LineUp(
                render_id,
                user_id,
                functions,
                created_ms,
                plan.weight,
                plan.max_in_flight,
                plan.priority,
            )
        )
    go, grants = get_budget().line_up(entries)
    wake(grants, broker)
    return set(go)


def release(render_ids: Iterable[str], broker: dramatiq.Broker | None = None) -> None:
    """Give back these renders' room (or place in line) and wake whom it admits."""
    ids = list(render_ids)
    if ids:
        wake(get_budget().release_many(ids), broker)


def dispatch(broker: dramatiq.Broker | None = None) -> int:
    """Admit what fits now: after a shrunk budget recovered, or as the reconciler's sweep."""
    grants = get_budget().dispatch()
    wake(grants, broker)
    return len(grants)


def dispatch_if_recovering(broker: dramatiq.Broker | None = None) -> None:
    """Called every poll tick: a shrunk pool grows back without any release, so its new room
    would otherwise wait for the next completion. Checked at most once a second."""
    global _last_recovery_check
    now = time.monotonic()
    if now - _last_recovery_check < _RECOVERY_CHECK_S:
        return
    _last_recovery_check = now
    if get_budget().any_shrunk():
        dispatch(broker)


def shrink(pool: str, reason: str) -> None:
    """Throttling seen in ``pool``: halve its effective budget (AIMD), once per cooldown."""
    value = get_budget().shrink(pool)
    if value is not None:
        log.warning("lambda pool throttled: budget halved", pool=pool, to=value, why=reason)


def wake(grants: Sequence[Grant], broker: dramatiq.Broker | None = None) -> None:
    """Send a start message to each admitted render; room admitted for a render that moved on
    meanwhile (cancelled while parked) is given back at once. The log line carries how long
    the wake took (``wake_ms``): its timestamp is when the messages went out, the budget's
    decision was that much earlier (reading rows and recording the timeline under load)."""
    while grants:
        decided = time.monotonic()
        rows = {r.id: r for r in renders.get_many([g.render_id for g in grants])}
        pool_of = {g.render_id: g.pool for g in grants}
        live = [rows[g.render_id] for g in grants if g.render_id in rows]
        pending = [r for r in live if r.status == RenderStatus.PENDING]
        messages = [
            start_render_message(message_payload(r.id, r.as_request()), admitted=True)
            for r in pending
        ]
        target = broker or dramatiq.get_broker()
        if isinstance(target, RedisBroker):
            enqueue_many(target, messages)
        else:
            for message in messages:
                target.enqueue(message)
        if pending:
            timeline.record([(r.id, "admitted", {"pool": pool_of.get(r.id)}) for r in pending])
            log.info(
                "admitted parked renders",
                render_ids=[r.id for r in pending],
                wake_ms=round((time.monotonic() - decided) * 1000, 1),
            )
        moved_on = [g.render_id for g in grants if g.render_id not in {r.id for r in pending}]
        grants = get_budget().release_many(moved_on) if moved_on else []
