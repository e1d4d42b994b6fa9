"""The producer API other Python services call to request renders.

    from shared.producer import enqueue_render, RenderRequest
    render = enqueue_render(RenderRequest(user_id="u1", generation_id="g1", composition="Main",
        input_props={"title": "Hi"}, width=1920, height=1080, fps=30, duration_in_frames=300))

The row is written before the message is sent, so ``render.id`` can be shown to a user at
once. If the process dies between the two, the render stays ``pending`` with no message; the
worker side can recover it because the message carries the whole request. A request that breaks
a render limit raises ``RenderLimitExceeded`` here, one that can never fit the Lambda budget
``OverCapacity``, and neither reaches the queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from shared import admission, repository
from shared.messages import enqueue_many, message_payload, producer_broker, start_render_message
from shared.models import Render
from shared.rate_limit import Quota, get_limiter
from shared.render_limits import RenderLimitExceeded, RenderLimits
from shared.render_plan import OverCapacity, chunking_for
from shared.render_request import RenderRequest

__all__ = [
    "OverCapacity",
    "RenderLimitExceeded",
    "RenderRequest",
    "enqueue_render",
    "enqueue_renders",
    "message_payload",
    "quota",
]


def enqueue_renders(requests: Sequence[RenderRequest]) -> list[Render]:
    """Validate, store and enqueue many renders with one insert and two Redis round trips.

    All requests are checked against the limits before anything is stored: one bad request
    rejects the batch, so a caller never has to work out which half went through. A render
    whose turn for the Lambda budget has not come (others already wait, or nothing fits) is
    put in its user's line at once and gets no message until the budget admits it
    (``shared.admission.line_up``); the rest get their start message now. A crash after the
    insert leaves pending renders without a message, which the reconciler re-enqueues.
    """
    limits = RenderLimits.from_settings()
    functions = []
    for request in requests:
        limits.enforce(request)
        functions.append(chunking_for(request.duration_in_frames).functions)
    stored = repository.insert_pending_many([(str(uuid.uuid4()), r) for r in requests])
    created = [
        (render, request, need)
        for (render, is_new), request, need in zip(stored, requests, functions, strict=True)
        if is_new
    ]
    broker = producer_broker()
    go = admission.line_up(
        [
            (render.id, render.user_id, need, int(render.created_at.timestamp() * 1000))
            for render, _, need in created
        ],
        broker,
    )
    messages = [
        start_render_message(message_payload(render.id, request))
        for render, request, _ in created
        if render.id in go
    ]
    enqueue_many(broker, messages)
    return [render for render, _ in stored]


def enqueue_render(request: RenderRequest) -> Render:
    """Validate, store and enqueue one render; returns the stored ``pending`` render.

    With ``request.idempotency_key`` set, repeating the call returns the first render and
    enqueues nothing new.
    """
    return enqueue_renders([request])[0]


def quota(user_id: str) -> Quota:
    """How many renders ``user_id`` may still start in the current window, and when the next
    slot frees up (``next_slot_at``), so a UI can say "next render at 14:05"."""
    return get_limiter().quota(user_id)
