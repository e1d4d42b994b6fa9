"""What operators do to renders and queues, one function per action, each audited.

The console, the HTTP API's operator endpoints and the scripts call these, so an action means
the same wherever it comes from: the same rules (a replay skips what replaying cannot fix),
the same race handling (a guarded UPDATE decides, the loser is told), and one audit entry per
thing acted on (``shared.audit``), naming the actor: ``operator:<name>``, ``api_key:<id>`` or
``script:<name>``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dramatiq import Broker, Message

from shared import audit, pauses, renders, repository, timeline
from shared.errors import IllegalTransition
from shared.log import get_logger
from shared.messages import enqueue_many, message_payload, producer_broker, start_render_message
from shared.models import ErrorCode, Render, RenderStatus
from shared.redis_client import get_redis
from shared.redis_keys import keys
from shared.settings import get_settings

log = get_logger(__name__)


def _send(messages: Sequence[Message[Any]], broker: Broker | None) -> None:
    """Through ``broker`` (tests pass a StubBroker), else the producers' Redis broker in one
    round trip."""
    if broker is None:
        enqueue_many(producer_broker(), messages)
        return
    for message in messages:
        broker.enqueue(message)


# --- cancel ----------------------------------------------------------------------------------


def cancel(render_id: str, *, actor: str, reason: str | None = None) -> Render:
    """``shared.renders.cancel``, audited. Raises ``RenderNotFound``, or ``IllegalTransition``
    for a render that already completed or failed."""
    render = renders.cancel(render_id, reason or f"cancelled by {actor}")
    audit.record(actor, "cancel", f"render:{render_id}", {"reason": reason})
    return render


# --- replay ----------------------------------------------------------------------------------


#: How a caller forces a replay; each caller names its own way (the script: ``--force``).
FORCE_HINT = "replay with force to try anyway"


def skip_reason(render: Render, force: bool = False) -> str | None:
    """Why a failed render is not replayed (None: replay it). Replaying the same request
    cannot fix what the schema or the limits rejected, unless forced."""
    if render.status != RenderStatus.FAILED:
        return f"it is {render.status}, not failed"
    if force or render.error_code is None:
        return None
    try:
        code = ErrorCode(render.error_code)
    except ValueError:
        return None
    if not code.replayable:
        return f"{code.value}: replaying the same request cannot fix it ({FORCE_HINT})"
    return None


@dataclass
class ReplayOutcome:
    replayed: list[str] = field(default_factory=list)
    #: render id -> why it was not replayed
    skipped: dict[str, str] = field(default_factory=dict)
    #: moved on (replayed by someone else) between the read and the write
    raced: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)


def replay(
    render_ids: Sequence[str], *, actor: str, force: bool = False, broker: Broker | None = None
) -> ReplayOutcome:
    """``failed -> pending`` for each render (one guarded UPDATE each, so two operators
    replaying at once replay a render once), then one start message per replayed render.

    A crash between the UPDATE and the message leaves a pending render without a message: the
    reconciler enqueues it."""
    outcome = ReplayOutcome()
    found = {r.id: r for r in renders.get_many(list(dict.fromkeys(render_ids)))}
    messages: list[Message[Any]] = []
    for render_id in dict.fromkeys(render_ids):
        render = found.get(render_id)
        if render is None:
            outcome.not_found.append(render_id)
            continue
        if reason := skip_reason(render, force):
            outcome.skipped[render_id] = reason
            continue
        try:
            pending = repository.replay(render_id)
        except IllegalTransition as exc:
            log.info("render not replayed: it moved on", render_id=render_id, status=exc.actual)
            outcome.raced.append(render_id)
            continue
        except Exception as exc:
            log.error("replay failed", render_id=render_id, error=str(exc))
            outcome.errors.append(render_id)
            continue
        messages.append(start_render_message(message_payload(pending.id, pending.as_request())))
        audit.record(
            actor,
            "replay",
            f"render:{render_id}",
            {"attempt": pending.attempts, "error_code": render.error_code, "forced": force},
        )
        log.info("render replayed", render_id=pending.id, attempts=pending.attempts, by=actor)
        outcome.replayed.append(render_id)
    try:
        _send(messages, broker)
    except Exception as exc:
        # The renders are pending without a message: the reconciler will enqueue them.
        log.error("replayed renders not enqueued", count=len(messages), error=str(exc))
    return outcome


# --- dead letters ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    """A message Dramatiq gave up on (``<queue>.XQ``): poison, or out of retries."""

    queue: str
    message_id: str
    actor_name: str
    dead_at: datetime
    render_id: str | None
    #: Why, as Dramatiq or renderq recorded it (the traceback's last line).
    reason: str | None
    args: list[Any]


def queues() -> list[str]:
    """Every queue renderq's actors consume."""
    s = get_settings()
    return list(dict.fromkeys([s.start_queue, s.admitted_queue, s.poll_queue, s.notify_queue]))


def _decode(queue: str, message_id: str, raw: bytes | None, score: float) -> DeadLetter:
    doc: dict[str, Any] = {}
    if raw is not None:
        try:
            doc = json.loads(raw)
        except ValueError:
            doc = {}
    args = doc.get("args") if isinstance(doc.get("args"), list) else []
    assert isinstance(args, list)
    first = args[0] if args else None
    render_id = None
    if isinstance(first, dict) and isinstance(first.get("render_id"), str):
        render_id = first["render_id"]
    elif isinstance(first, str) and doc.get("actor_name") == "cancel_render":
        render_id = first
    options = doc.get("options") if isinstance(doc.get("options"), dict) else {}
    assert isinstance(options, dict)
    trace = options.get("traceback") or options.get("dead_letter_reason")
    reason = str(trace).strip().splitlines()[-1][:500] if trace else None
    return DeadLetter(
        queue=queue,
        message_id=message_id,
        actor_name=str(doc.get("actor_name") or "?"),
        dead_at=datetime.fromtimestamp(score / 1000, UTC),
        render_id=render_id,
        reason=reason if raw is not None else "the message body is gone",
        args=args,
    )


def dead_letters(queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
    """Newest first, across every queue (or one)."""
    client, k = get_redis(), keys()
    found: list[DeadLetter] = []
    for name in [queue] if queue else queues():
        entries: list[tuple[bytes, float]] = client.zrevrange(  # type: ignore[assignment]  # redis-py types sync and async results as one union
            k.dead_letters(name), 0, limit - 1, withscores=True
        )
        ids = [m for m, _ in entries]
        bodies: list[bytes | None] = (
            client.hmget(k.dead_letter_messages(name), ids)  # type: ignore[assignment]  # as above
            if ids
            else []
        )
        for (mid, score), raw in zip(entries, bodies, strict=True):
            found.append(_decode(name, mid.decode(), raw, float(score)))
    found.sort(key=lambda d: d.dead_at, reverse=True)
    return found[:limit]


def dead_letter_count() -> int:
    client, k = get_redis(), keys()
    return sum(int(client.zcard(k.dead_letters(q))) for q in queues())


def _take_dead_letter(queue: str, message_id: str) -> bytes | None:
    """Remove one dead letter atomically; its body, or None if it was not there (another
    operator took it first)."""
    client, k = get_redis(), keys()
    pipe = client.pipeline(transaction=True)
    pipe.hget(k.dead_letter_messages(queue), message_id)
    pipe.zrem(k.dead_letters(queue), message_id)
    pipe.hdel(k.dead_letter_messages(queue), message_id)
    raw, removed, _ = pipe.execute()
    return raw if removed else None


def requeue_dead_letter(
    queue: str, message_id: str, *, actor: str, broker: Broker | None = None
) -> bool:
    """Send a dead letter again, as a fresh delivery of the same message (same id, retries
    reset); False when there is no such dead letter. The message is taken out before it is
    sent: a crash between the two loses the dead letter, which for a render is repaired by
    the reconciler (the render is pending without a message), never a double start."""
    if queue not in queues():
        return False
    raw = _take_dead_letter(queue, message_id)
    if raw is None:
        return False
    doc = json.loads(raw)
    options = {
        k: v for k, v in (doc.get("options") or {}).items() if k not in ("retries", "traceback")
    }
    message: Message[Any] = Message(
        queue_name=queue,
        actor_name=doc["actor_name"],
        args=tuple(doc.get("args") or ()),
        kwargs=doc.get("kwargs") or {},
        options=options,
        message_id=doc.get("message_id") or message_id,
        message_timestamp=int(doc.get("message_timestamp") or 0),
    )
    _send([message], broker)
    detail = {"queue": queue, "actor": message.actor_name}
    audit.record(actor, "dead_letter.requeue", f"message:{message_id}", detail)
    log.info("dead letter requeued", message_id=message_id, queue=queue, by=actor)
    return True


def delete_dead_letter(queue: str, message_id: str, *, actor: str) -> bool:
    """Drop a dead letter for good; False when there is no such dead letter."""
    if queue not in queues():
        return False
    raw = _take_dead_letter(queue, message_id)
    if raw is None:
        return False
    letter = _decode(queue, message_id, raw, 0)
    detail = {"queue": queue, "actor": letter.actor_name, "render_id": letter.render_id}
    audit.record(actor, "dead_letter.delete", f"message:{message_id}", detail)
    log.info("dead letter deleted", message_id=message_id, queue=queue, by=actor)
    return True


# --- pause and resume ------------------------------------------------------------------------


def pause(user_id: str | None, *, actor: str, reason: str | None = None) -> pauses.Pause:
    """Stop starts of ``user_id`` (None: of everything). Renders already rendering go on;
    pending ones wait, held, until ``resume``."""
    found = pauses.pause(user_id, by=actor, reason=reason)
    audit.record(
        actor, "pause", "all" if user_id is None else f"user:{user_id}", {"reason": reason}
    )
    log.info("starts paused", user_id=user_id, by=actor, reason=reason)
    return found


def resume(user_id: str | None, *, actor: str, broker: Broker | None = None) -> int:
    """Lift a pause; every held render no other pause covers gets its start message again.
    Returns how many renders were sent on."""
    released = pauses.resume(user_id)
    rows = [r for r in renders.get_many(released) if r.status == RenderStatus.PENDING]
    order = {rid: i for i, rid in enumerate(released)}
    rows.sort(key=lambda r: order[r.id])
    _send([start_render_message(message_payload(r.id, r.as_request())) for r in rows], broker)
    timeline.record([(r.id, "resumed", {"by": actor}) for r in rows])
    target = "all" if user_id is None else f"user:{user_id}"
    audit.record(actor, "resume", target, {"renders_released": len(rows)})
    log.info("starts resumed", user_id=user_id, by=actor, released=len(rows))
    return len(rows)
