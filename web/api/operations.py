"""Operator endpoints (scope ``operate``): replay, dead letters, pauses.

Each calls ``shared.operations``, as the console and the scripts do, so an action means the
same wherever it comes from and is audited under ``api_key:<id>``. Acting on everything (dead
letters, a pause of every start) needs a key bound to no user; a bound key may replay, pause
and resume only its users.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from shared import operations, pauses, renders
from shared.render_request import Identifier
from shared.settings import get_settings
from web.api import schemas
from web.api.auth import Caller, operate
from web.api.problems import Problem, responses
from web.api.renders import RenderId, send
from web.api.route import ProblemRoute

router = APIRouter(route_class=ProblemRoute, tags=["operations"])
SCOPE = {"x-scope": "operate"}
Queue = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]
MessageId = Annotated[str, Path(min_length=1, max_length=128)]


def _outcome(outcome: operations.ReplayOutcome) -> dict[str, object]:
    return {
        "replayed": outcome.replayed,
        "skipped": outcome.skipped,
        "raced": outcome.raced,
        "errors": outcome.errors,
        "not_found": outcome.not_found,
    }


@router.post(
    "/renders/{render_id}/replay",
    summary="Replay a failed render",
    response_model=None,
    responses={200: {"model": schemas.RenderOut}, **responses(401, 403, 404, 409, 429, 503)},
    openapi_extra=SCOPE,
)
def replay_render(
    render_id: RenderId,
    caller: Annotated[Caller, Depends(operate)],
    force: Annotated[bool, Query(description="replay even what replaying cannot fix")] = False,
) -> Response:
    """``failed -> pending`` and a new start; 409 when the render is not failed, or failed in
    a way replaying cannot fix (unless ``force``), or someone replayed it first."""
    render = renders.get(render_id)
    if render is None:
        raise Problem("not-found", f"no render {render_id}")
    caller.check_user(render.user_id)
    outcome = operations.replay([render_id], actor=caller.actor, force=force)
    if outcome.not_found:
        raise Problem("not-found", f"no render {render_id}")
    if render_id in outcome.skipped:
        raise Problem("conflict", f"not replayed: {outcome.skipped[render_id]}")
    if outcome.raced:
        raise Problem("conflict", "not replayed: it moved on meanwhile (replayed by someone else?)")
    if outcome.errors:
        raise Problem(
            "unavailable", "the replay failed; it was logged", headers={"Retry-After": "1"}
        )
    replayed = renders.get(render_id)
    assert replayed is not None
    return send(schemas.render_json(replayed))


@router.post(
    "/renders:replay",
    summary="Replay many failed renders",
    response_model=None,
    responses={200: {"model": schemas.ReplayOut}, **responses(401, 403, 413, 422, 429, 503)},
    openapi_extra=SCOPE,
)
def replay_renders(body: schemas.ReplayIn, caller: Annotated[Caller, Depends(operate)]) -> Response:
    """Each render is replayed at most once however many operators replay it at once; the
    answer says, per render, what happened (ids unknown to renderq in ``not_found``)."""
    most = get_settings().api_batch_max_renders
    if len(body.ids) > most:
        raise Problem(
            "validation",
            f"at most {most} renders at once",
            [
                {
                    "field": "ids",
                    "value": len(body.ids),
                    "limit": f"at most {most} (API_BATCH_MAX_RENDERS)",
                    "message": "split the list",
                }
            ],
        )
    if caller.users is not None:
        for render in renders.get_many(body.ids):
            caller.check_user(render.user_id)
    outcome = operations.replay(body.ids, actor=caller.actor, force=body.force)
    return send(_outcome(outcome))


@router.get(
    "/dead-letters",
    summary="Dead-lettered messages, newest first",
    response_model=None,
    responses={200: {"model": schemas.DeadLetters}, **responses(401, 403, 404, 422, 429, 503)},
    openapi_extra=SCOPE,
)
def dead_letters(
    caller: Annotated[Caller, Depends(operate)],
    queue: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    caller.check_unbound("reading dead letters")
    if queue is not None and queue not in operations.queues():
        raise Problem(
            "not-found", f"no queue {queue}; renderq's are {', '.join(operations.queues())}"
        )
    letters = [
        {
            "queue": d.queue,
            "message_id": d.message_id,
            "actor_name": d.actor_name,
            "dead_at": schemas.iso(d.dead_at),
            "render_id": d.render_id,
            "reason": d.reason,
            "args": d.args,
        }
        for d in operations.dead_letters(queue, limit)
    ]
    return send({"dead_letters": letters})


@router.post(
    "/dead-letters/{queue}/{message_id}/requeue",
    summary="Send a dead letter again",
    response_model=None,
    responses={
        200: {"description": "sent again (same message id, retries reset)"},
        **responses(401, 403, 404, 429, 503),
    },
    openapi_extra=SCOPE,
)
def requeue_dead_letter(
    queue: Queue, message_id: MessageId, caller: Annotated[Caller, Depends(operate)]
) -> Response:
    caller.check_unbound("requeueing dead letters")
    if not operations.requeue_dead_letter(queue, message_id, actor=caller.actor):
        raise Problem("not-found", f"no dead letter {message_id} in {queue}")
    return send({"requeued": message_id})


@router.delete(
    "/dead-letters/{queue}/{message_id}",
    summary="Drop a dead letter for good",
    status_code=204,
    response_model=None,
    responses=responses(401, 403, 404, 429, 503),
    openapi_extra=SCOPE,
)
def delete_dead_letter(
    queue: Queue, message_id: MessageId, caller: Annotated[Caller, Depends(operate)]
) -> Response:
    caller.check_unbound("deleting dead letters")
    if not operations.delete_dead_letter(queue, message_id, actor=caller.actor):
        raise Problem("not-found", f"no dead letter {message_id} in {queue}")
    return Response(status_code=204)


def _pause_json(pause: pauses.Pause) -> dict[str, object]:
    return {
        "user_id": pause.user_id,
        "by": pause.by,
        "at": schemas.iso(pause.at),
        "reason": pause.reason,
    }


@router.get(
    "/pauses",
    summary="Active pauses of starts",
    response_model=None,
    responses={200: {"model": schemas.Pauses}, **responses(401, 403, 429, 503)},
    openapi_extra=SCOPE,
)
def list_pauses(caller: Annotated[Caller, Depends(operate)]) -> Response:
    """Every pause (a bound key sees the pause of everything and its users')."""
    found = [p for p in pauses.active() if p.user_id is None or caller.may_act_for(p.user_id)]
    return send({"pauses": [_pause_json(p) for p in found], "held": pauses.held_count()})


def _pause(user_id: str | None, caller: Caller, body: schemas.PauseIn | None) -> Response:
    if user_id is None:
        caller.check_unbound("pausing every start")
    else:
        caller.check_user(user_id)
    reason = body.reason if body is not None else None
    return send(_pause_json(operations.pause(user_id, actor=caller.actor, reason=reason)))


def _resume(user_id: str | None, caller: Caller) -> Response:
    if user_id is None:
        caller.check_unbound("resuming every start")
    else:
        caller.check_user(user_id)
    return send({"released": operations.resume(user_id, actor=caller.actor)})


PAUSED = {200: {"model": schemas.PauseOut}, **responses(401, 403, 413, 422, 429, 503)}
RESUMED = {200: {"model": schemas.Resumed}, **responses(401, 403, 422, 429, 503)}


@router.put(
    "/pauses/all",
    summary="Pause every start",
    response_model=None,
    responses=PAUSED,
    openapi_extra=SCOPE,
)
def pause_all(
    caller: Annotated[Caller, Depends(operate)], body: schemas.PauseIn | None = None
) -> Response:
    """Renders already rendering go on; pending ones wait, held, until resumed. Pausing again
    keeps the first pause's time and author."""
    return _pause(None, caller, body)


@router.put(
    "/pauses/users/{user_id}",
    summary="Pause a user's starts",
    response_model=None,
    responses=PAUSED,
    openapi_extra=SCOPE,
)
def pause_user(
    user_id: Annotated[Identifier, Path()],
    caller: Annotated[Caller, Depends(operate)],
    body: schemas.PauseIn | None = None,
) -> Response:
    return _pause(user_id, caller, body)


@router.delete(
    "/pauses/all",
    summary="Resume every start",
    response_model=None,
    responses=RESUMED,
    openapi_extra=SCOPE,
)
def resume_all(caller: Annotated[Caller, Depends(operate)]) -> Response:
    """Held renders no other pause covers are sent on; ``released`` says how many."""
    return _resume(None, caller)


@router.delete(
    "/pauses/users/{user_id}",
    summary="Resume a user's starts",
    response_model=None,
    responses=RESUMED,
    openapi_extra=SCOPE,
)
def resume_user(
    user_id: Annotated[Identifier, Path()], caller: Annotated[Caller, Depends(operate)]
) -> Response:
    return _resume(user_id, caller)
