"""``/v1/renders`` and ``/v1/users/{id}/quota``: what producers and readers call.

Creating goes through ``shared.producer`` exactly as a Python producer does (same request
model, same limits, the row before the message, ``idempotency_key`` for retries), so a render
created over HTTP is indistinguishable from one created in Python.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import Response
from sqlmodel import Session, select

from shared import operations, outputs, producer, render_pages, renders, timeline
from shared.db import get_engine
from shared.models import Render, RenderStatus
from shared.render_limits import RenderLimits, Violation
from shared.render_plan import OverCapacity, chunking_for
from shared.render_request import Identifier, RenderRequest
from shared.settings import get_settings
from web.api import coalesce, schemas
from web.api.auth import Caller, produce, read
from web.api.problems import Problem, from_violations, responses
from web.api.route import ProblemRoute

router = APIRouter(route_class=ProblemRoute, tags=["renders"])

RenderId = Annotated[str, Path(min_length=1, max_length=64)]


def send(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status, headers, media_type="application/json")


def _found(render_id: str, caller: Caller) -> Render:
    render = renders.get(render_id)
    if render is None:
        raise Problem("not-found", f"no render {render_id}")
    caller.check_user(render.user_id)
    return render


def _violations(requests: list[RenderRequest], prefix: str | None) -> list[tuple[str, Violation]]:
    """Every limit each request breaks, named by its field path (``renders.3.width``)."""
    limits = RenderLimits.from_settings()
    found: list[tuple[str, Violation]] = []
    for i, request in enumerate(requests):
        at = "" if prefix is None else f"{prefix}.{i}."
        found += [(at + v.field, v) for v in limits.violations(request)]
        try:
            chunking_for(request.duration_in_frames)
        except OverCapacity as exc:
            found.append(
                (
                    at + "duration_in_frames",
                    Violation("duration_in_frames", request.duration_in_frames, str(exc)),
                )
            )
    return found


def _by_keys(idempotency_keys: list[str]) -> dict[str, Render]:
    if not idempotency_keys:
        return {}
    stmt = select(Render).where(Render.idempotency_key.in_(idempotency_keys))  # type: ignore[union-attr]  # a column here, not str | None
    with Session(get_engine()) as session:
        return {r.idempotency_key: r for r in session.exec(stmt) if r.idempotency_key}


def _foreign_key(request: RenderRequest, render: Render) -> Problem:
    return Problem(
        "conflict",
        f"idempotency key {request.idempotency_key!r} belongs to another user's render",
    )


CREATED: dict[int | str, dict[str, Any]] = {
    201: {"model": schemas.RenderOut, "description": "stored and enqueued"},
    200: {
        "model": schemas.RenderOut,
        "description": "the Idempotency-Key was used before: the render it created, unchanged "
        "(a repeat racing the first request may get 201 with the same render)",
    },
}


@router.post(
    "/renders",
    status_code=201,
    summary="Create a render",
    response_model=None,
    responses={**CREATED, **responses(401, 403, 409, 413, 422, 429, 503)},
    openapi_extra={"x-scope": "produce"},
)
def create_render(
    body: RenderRequest,
    caller: Annotated[Caller, Depends(produce)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=200,
            description="retries with the same key return the first render (stored as the "
            "request's `idempotency_key`)",
        ),
    ] = None,
) -> Response:
    """Store the render (``pending``) and enqueue its start: the row is written before the
    message, as ``shared.producer.enqueue_render`` does. Scope ``produce``."""
    caller.check_user(body.user_id)
    if idempotency_key is not None:
        if body.idempotency_key not in (None, idempotency_key):
            raise Problem(
                "validation",
                "the Idempotency-Key header and the body's idempotency_key differ",
                [
                    {
                        "field": "idempotency_key",
                        "value": body.idempotency_key,
                        "limit": "equal to the Idempotency-Key header",
                        "message": "give the key once, or the same in both",
                    }
                ],
            )
        body = body.model_copy(update={"idempotency_key": idempotency_key})
    if body.idempotency_key is not None:
        seen = _by_keys([body.idempotency_key]).get(body.idempotency_key)
        if seen is not None:
            if seen.user_id != body.user_id:
                raise _foreign_key(body, seen)
            return send(schemas.render_json(seen), 200, {"Location": f"/v1/renders/{seen.id}"})
    if found := _violations([body], None):
        raise from_violations(found)
    render = coalesce.enqueue_render(body)
    if render.user_id != body.user_id:  # the key was taken meanwhile, by another user
        raise _foreign_key(body, render)
    return send(schemas.render_json(render), 201, {"Location": f"/v1/renders/{render.id}"})


@router.post(
    "/renders:batch",
    status_code=201,
    summary="Create many renders, all or none",
    response_model=None,
    responses={
        201: {"model": schemas.BatchOut, "description": "every render stored and enqueued"},
        **responses(401, 403, 409, 413, 422, 429, 503),
    },
    openapi_extra={"x-scope": "produce"},
)
def create_renders(body: schemas.BatchIn, caller: Annotated[Caller, Depends(produce)]) -> Response:
    """``shared.producer.enqueue_renders``: every request is checked first, and one bad
    request stores nothing (``errors`` names each, e.g. ``renders.3.width``). Renders whose
    ``idempotency_key`` was used before come back as they are. Scope ``produce``."""
    items = body.renders
    most = get_settings().api_batch_max_renders
    if len(items) > most:
        raise Problem(
            "validation",
            f"a batch holds at most {most} renders",
            [
                {
                    "field": "renders",
                    "value": len(items),
                    "limit": f"at most {most} (API_BATCH_MAX_RENDERS)",
                    "message": "split the batch",
                }
            ],
        )
    for user_id in dict.fromkeys(r.user_id for r in items):
        caller.check_user(user_id)
    if found := _violations(items, "renders"):
        raise from_violations(found)
    seen = _by_keys([r.idempotency_key for r in items if r.idempotency_key])
    for request in items:
        earlier = seen.get(request.idempotency_key or "")
        if earlier is not None and earlier.user_id != request.user_id:
            raise _foreign_key(request, earlier)
    stored = producer.enqueue_renders(items)
    for request, render in zip(items, stored, strict=True):
        if render.user_id != request.user_id:  # a key taken meanwhile, by another user
            raise _foreign_key(request, render)
    return send({"renders": [schemas.render_json(r) for r in stored]}, 201)


@router.get(
    "/renders/{render_id}",
    summary="Read a render",
    response_model=None,
    responses={200: {"model": schemas.RenderOut}, **responses(401, 403, 404, 429, 503)},
    openapi_extra={"x-scope": "read"},
)
def get_render(render_id: RenderId, caller: Annotated[Caller, Depends(read)]) -> Response:
    """Scope ``read``; ``download_url`` opens a complete render's output now."""
    render = _found(render_id, caller)
    return send(schemas.render_json(render, outputs.download_url(render)))


@router.get(
    "/renders",
    summary="List renders, newest first",
    response_model=None,
    responses={200: {"model": schemas.RenderList}, **responses(400, 401, 403, 422, 429, 503)},
    openapi_extra={"x-scope": "read"},
)
def list_renders(
    caller: Annotated[Caller, Depends(read)],
    user_id: Identifier | None = None,
    generation_id: Identifier | None = None,
    status: RenderStatus | None = None,
    before: Annotated[
        str | None, Query(max_length=400, description="the `next` of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=render_pages.MAX_PAGE)] = 50,
) -> Response:
    """Pages are stable while renders are created: follow ``next`` (passed as ``before``) and
    no render that existed when the listing began is skipped or repeated. A key bound to users
    sees only their renders. Scope ``read``."""
    users: list[str] | None
    if user_id is not None:
        caller.check_user(user_id)
        users = [user_id]
    else:
        users = caller.users
    try:
        found = render_pages.page(
            user_ids=users,
            generation_id=generation_id,
            status=status,
            before=before,
            limit=limit,
        )
    except render_pages.BadCursor as exc:
        raise Problem(
            "bad-request",
            str(exc),
            [
                {
                    "field": "before",
                    "value": before,
                    "limit": "a `next` this listing returned",
                    "message": "not a cursor",
                }
            ],
        ) from None
    return send({"renders": [schemas.render_json(r) for r in found.renders], "next": found.next})


@router.post(
    "/renders/{render_id}/cancel",
    summary="Cancel a render",
    response_model=None,
    responses={
        200: {"model": schemas.RenderOut},
        **responses(401, 403, 404, 409, 413, 422, 429, 503),
    },
    openapi_extra={"x-scope": "produce"},
)
def cancel_render(
    render_id: RenderId,
    caller: Annotated[Caller, Depends(produce)],
    body: schemas.CancelIn | None = None,
) -> Response:
    """``shared.renders.cancel`` (audited): a pending render never starts, a rendering one is
    stopped on Lambda; cancelling a cancelled render returns it unchanged. 409 for a render
    that already completed or failed. Scope ``produce``."""
    _found(render_id, caller)
    reason = body.reason if body is not None else None
    return send(
        schemas.render_json(operations.cancel(render_id, actor=caller.actor, reason=reason))
    )


@router.get(
    "/renders/{render_id}/timeline",
    summary="A render's timeline",
    response_model=None,
    responses={200: {"model": schemas.Timeline}, **responses(401, 403, 404, 429, 503)},
    openapi_extra={"x-scope": "read"},
)
def render_timeline(render_id: RenderId, caller: Annotated[Caller, Depends(read)]) -> Response:
    """The steps of the render's life, oldest first (the latest 500). Scope ``read``."""
    _found(render_id, caller)
    steps = [
        {"at": schemas.iso(e.at), "kind": e.kind, "detail": e.detail}
        for e in timeline.entries(render_id)
    ]
    return send({"render_id": render_id, "steps": steps})


@router.get(
    "/users/{user_id}/quota",
    summary="A user's rate-limit quota",
    tags=["users"],
    response_model=None,
    responses={200: {"model": schemas.QuotaOut}, **responses(401, 403, 422, 429, 503)},
    openapi_extra={"x-scope": "read"},
)
def user_quota(
    user_id: Annotated[Identifier, Path()], caller: Annotated[Caller, Depends(read)]
) -> Response:
    """How many renders the user may still start in the current window, and when the next
    slot frees up (``shared.producer.quota``). Scope ``read``."""
    caller.check_user(user_id)
    q = producer.quota(user_id)
    return send(
        {
            "user_id": q.user_id,
            "rate": q.rate,
            "limit": q.limit,
            "window_s": q.window_s,
            "used": q.used,
            "remaining": q.remaining,
            "next_slot_at": schemas.iso(q.next_slot_at),
        }
    )
