"""The API's bodies: what it accepts beyond ``RenderRequest``, and what it answers.

Answers are built as plain dicts (``render_json`` ...) and sent as they are: the models below
document them in the OpenAPI document; validating every answer against them again would cost
time on the hot path for nothing (the dicts are built from typed rows).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.models import Render
from shared.render_request import RenderRequest


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class RenderOut(Out):
    """A render as other services see it (``shared.models`` lists the public fields)."""

    id: str
    user_id: str
    generation_id: str
    status: str = Field(description="pending, rendering, complete, failed or cancelled")
    progress: float
    composition: str
    input_props: dict[str, Any]
    width: int
    height: int
    fps: int
    duration_in_frames: int
    codec: str
    idempotency_key: str | None
    notify: dict[str, Any] | None
    callback_url: str | None
    output_url: str | None
    download_url: str | None = Field(
        default=None, description="a link that opens the output now (presigned when private)"
    )
    output_size_bytes: int | None
    cost_usd: float | None
    error_code: str | None
    error_message: str | None
    error_history: list[dict[str, Any]]
    cancel_reason: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class RenderList(Out):
    renders: list[RenderOut]
    next: str | None = Field(description="pass as `before` for the next page; null at the end")


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    renders: list[RenderRequest] = Field(
        min_length=1, description="at most API_BATCH_MAX_RENDERS; all are stored, or none"
    )


class BatchOut(Out):
    renders: list[RenderOut]


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


class TimelineStep(Out):
    at: datetime
    kind: str
    detail: dict[str, Any]


class Timeline(Out):
    render_id: str
    steps: list[TimelineStep]


class QuotaOut(Out):
    user_id: str
    rate: str
    limit: int
    window_s: float
    used: int
    remaining: int
    next_slot_at: datetime


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ids: list[str] = Field(min_length=1, description="at most API_BATCH_MAX_RENDERS")
    force: bool = Field(default=False, description="replay even what replaying cannot fix")


class ReplayOut(Out):
    replayed: list[str]
    skipped: dict[str, str]
    raced: list[str]
    errors: list[str]
    not_found: list[str]


class DeadLetterOut(Out):
    queue: str
    message_id: str
    actor_name: str
    dead_at: datetime
    render_id: str | None
    reason: str | None
    args: list[Any]


class DeadLetters(Out):
    dead_letters: list[DeadLetterOut]


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=500)


class PauseOut(Out):
    user_id: str | None = Field(description="null: every start is paused")
    by: str
    at: datetime
    reason: str | None


class Pauses(Out):
    pauses: list[PauseOut]
    held: int = Field(description="renders waiting for a resume")


class Resumed(Out):
    released: int = Field(description="held renders sent on")


def iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return (at if at.tzinfo is not None else at.replace(tzinfo=UTC)).isoformat()


def render_json(render: Render, download_url: str | None = None) -> dict[str, Any]:
    return {
        "id": render.id,
        "user_id": render.user_id,
        "generation_id": render.generation_id,
        "status": str(render.status),
        "progress": render.progress,
        "composition": render.composition,
        "input_props": render.input_props,
        "width": render.width,
        "height": render.height,
        "fps": render.fps,
        "duration_in_frames": render.duration_in_frames,
        "codec": render.codec,
        "idempotency_key": render.idempotency_key,
        "notify": render.notify,
        "callback_url": render.callback_url,
        "output_url": render.output_url,
        "download_url": download_url,
        "output_size_bytes": render.output_size_bytes,
        "cost_usd": render.cost_usd,
        "error_code": render.error_code,
        "error_message": render.error_message,
        "error_history": render.error_history,
        "cancel_reason": render.cancel_reason,
        "attempts": render.attempts,
        "created_at": iso(render.created_at),
        "started_at": iso(render.started_at),
        "completed_at": iso(render.completed_at),
    }
