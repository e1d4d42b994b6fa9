"""The render request: what a producer asks for, and the message body workers receive.

This is the one schema both the Python producer and foreign producers are held to; the JSON
Schema in ``schemas/render-message.schema.json`` is generated from ``RenderMessage`` (see
``devtools/export_schema.py``) so the two cannot drift. Types are strict: a foreign producer that
sends ``"width": "1920"`` gets an error naming ``width``, not a silent coercion.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

Codec = Literal["h264", "h265", "vp8", "vp9", "prores", "gif", "mp3", "aac", "wav"]

#: File extension Remotion writes for each codec; used for the deterministic ``outName``.
CODEC_EXTENSIONS: dict[str, str] = {
    "h264": "mp4",
    "h265": "mp4",
    "vp8": "webm",
    "vp9": "webm",
    "prores": "mov",
    "gif": "gif",
    "mp3": "mp3",
    "aac": "aac",
    "wav": "wav",
}

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")
]
# Remotion's own rule for composition ids: letters, digits, CJK characters and "-".
CompositionId = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9\-\u4e00-\u9fff]+$")
]
PositiveInt = Annotated[StrictInt, Field(gt=0)]
#: Dramatiq queue and actor names: what ``dramatiq.Actor`` accepts for either.
DramatiqName = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
]


class NotifyActor(BaseModel):
    """A Dramatiq actor that receives the render's terminal event (``docs/events.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_name: DramatiqName
    actor_name: DramatiqName


class RenderRequest(BaseModel):
    """A request to render one video. Structural rules live here; the configurable limits
    (resolution, duration, fps, props size) are checked by ``shared.render_limits`` so they can
    change per deployment without changing the message schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_id: Identifier
    generation_id: Identifier
    composition: CompositionId
    input_props: dict[str, Any] = Field(default_factory=dict)
    width: PositiveInt
    height: PositiveInt
    fps: PositiveInt
    duration_in_frames: PositiveInt
    codec: Codec = "h264"
    #: Repeating a request with the same key returns the first render and enqueues nothing.
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    #: Send the terminal event (complete, failed, cancelled) to this Dramatiq actor.
    notify: NotifyActor | None = None
    #: POST the terminal event here, signed per Standard Webhooks. https, or http only to the
    #: hosts ``CALLBACK_ALLOWED_HOSTS`` names; never an internal address unless allowed.
    callback_url: Annotated[str, StringConstraints(min_length=8, max_length=2000)] | None = None

    @classmethod
    def from_attributes(cls, source: object) -> RenderRequest:
        """The request held by an object that was validated before (a stored row, a claim, a
        parsed message): copied without validating it again."""
        values = {name: getattr(source, name) for name in cls.model_fields}
        if isinstance(values.get("notify"), dict):  # stored as JSON on the row
            values["notify"] = NotifyActor.model_construct(**values["notify"])
        return cls.model_construct(**values)


class RenderMessage(RenderRequest):
    """The body of a ``start_render`` message (its single positional argument).

    ``render_id`` is set by the Python producer, which creates the row first. A foreign producer
    may leave it out: the worker then creates the row itself, using the Dramatiq ``message_id``
    as the render id so that a redelivered message finds the same row.
    """

    schema_version: Literal[1] = 1
    render_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None

    def request(self) -> RenderRequest:
        return RenderRequest.from_attributes(self)
