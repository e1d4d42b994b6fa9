"""The ``render`` table and the vocabulary of its state machine.

Field names here are a public contract: other services read ``id``, ``user_id``,
``generation_id``, ``status`` (``pending``, ``rendering``, ``complete``, ``failed``,
``cancelled``), ``progress``, ``output_url``, ``output_size_bytes``, ``cost_usd``,
``error_code``, ``error_message``, ``cancel_reason``, ``attempts``, ``created_at``,
``started_at`` and ``completed_at`` (set on every terminal state). Columns after those are
worker bookkeeping. ``render_event`` is the outbox of notifications (``shared/events.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from shared.render_request import RenderRequest


def utcnow() -> datetime:
    return datetime.now(UTC)


class RenderStatus(StrEnum):
    PENDING = "pending"
    RENDERING = "rendering"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RenderStatus.COMPLETE, RenderStatus.FAILED, RenderStatus.CANCELLED)


#: Every legal move. Anything else is a bug and raises ``IllegalTransition``.
LEGAL_TRANSITIONS: frozenset[tuple[RenderStatus, RenderStatus]] = frozenset(
    {
        (RenderStatus.PENDING, RenderStatus.RENDERING),
        (RenderStatus.RENDERING, RenderStatus.COMPLETE),
        (RenderStatus.RENDERING, RenderStatus.FAILED),
        (RenderStatus.PENDING, RenderStatus.FAILED),  # bad input, or gave up starting
        (RenderStatus.FAILED, RenderStatus.PENDING),  # replay
        (RenderStatus.RENDERING, RenderStatus.PENDING),  # throttled inside Lambda: new attempt
        (RenderStatus.PENDING, RenderStatus.CANCELLED),  # never starts
        (RenderStatus.RENDERING, RenderStatus.CANCELLED),  # stopped on Lambda (cancel.json)
    }
)


class ErrorCode(StrEnum):
    """Machine-readable reasons a render failed. Stable: clients switch on these."""

    INVALID_REQUEST = "invalid_request"  # the message did not match the schema
    LIMIT_EXCEEDED = "limit_exceeded"  # resolution, duration, fps or props size over a limit
    LAMBDA_REJECTED = "lambda_rejected"  # Remotion refused to start the render
    LAMBDA_CONFIG = "lambda_config"  # function missing, access denied: an operator problem
    LAMBDA_UNAVAILABLE = "lambda_unavailable"  # transient start errors never cleared
    RENDER_ERROR = "render_error"  # Remotion reported a fatal error while rendering
    #: Lambda had no concurrency for the render's functions, MAX_THROTTLE_RESTARTS times over
    LAMBDA_THROTTLED = "lambda_throttled"
    TIMEOUT = "timeout"  # not done within RENDER_TIMEOUT_S, or Remotion's function timed out
    POLL_FAILED = "poll_failed"  # progress could not be read for MAX_POLL_FAILURES sweeps
    #: more Lambda functions than the largest pool's budget, even cut as coarsely as allowed
    OVER_CAPACITY = "over_capacity"

    @property
    def replayable(self) -> bool:
        """Replaying the same request cannot fix a request the schema or limits reject."""
        return self not in (ErrorCode.INVALID_REQUEST, ErrorCode.LIMIT_EXCEEDED)


class Render(SQLModel, table=True):
    __tablename__ = "render"
    __table_args__ = (
        sa.Index("ix_render_user_created", "user_id", "created_at"),
        sa.Index("ix_render_generation_created", "generation_id", "created_at"),
        sa.Index("ix_render_status_polled", "status", "last_polled_at"),
        sa.Index("ix_render_status_created", "status", "created_at"),
        sa.Index("ix_render_status_completed", "status", "completed_at"),
        # The console's search, newest first: unfiltered, and by error code (migration 0008).
        sa.Index("ix_render_created", "created_at", "id"),
        sa.Index("ix_render_error_created", "error_code", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=128)
    generation_id: str = Field(max_length=128)
    status: RenderStatus = Field(
        default=RenderStatus.PENDING,
        sa_type=sa.Enum(
            RenderStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
            validate_strings=True,
        ),
    )
    progress: float = 0.0

    # The request, as validated.
    composition: str = Field(max_length=256)
    input_props: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    width: int
    height: int
    fps: int
    duration_in_frames: int
    codec: str = Field(default="h264", max_length=16)
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    #: Where the terminal event goes: ``{"queue_name", "actor_name"}`` of a Dramatiq actor.
    notify: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    callback_url: str | None = Field(default=None, sa_type=sa.Text)

    # Results.
    output_url: str | None = Field(default=None, sa_type=sa.Text)
    output_size_bytes: int | None = Field(default=None, sa_type=sa.BigInteger)
    cost_usd: float | None = None
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = Field(default=None, sa_type=sa.Text)
    #: Why the render was cancelled (given by whoever cancelled it).
    cancel_reason: str | None = Field(default=None, max_length=500)
    #: Earlier failures, oldest first, kept when a render is replayed: [{code, message, at}].
    error_history: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    #: Lifecycles of this render: 1 when created, +1 per replay.
    attempts: int = 1

    # Lambda bookkeeping.
    lambda_render_id: str | None = Field(default=None, max_length=64)
    lambda_bucket: str | None = Field(default=None, max_length=128)
    #: The Lambda pool (``LAMBDA_POOLS``) the render runs in; progress and cancel go there.
    lambda_pool: str | None = Field(default=None, max_length=40)
    out_name: str | None = Field(default=None, max_length=256)
    #: A worker's lease on starting this render (while still ``pending``): only the holder of
    #: an unexpired token may call Lambda ``start``.
    claim_token: str | None = Field(default=None, max_length=64)
    claim_expires_at: datetime | None = None
    #: Lambda ``start`` calls made for this render (including ones that failed or timed out);
    #: more than one per attempt means a start may have been duplicated.
    start_requests: int = 0
    poll_failures: int = 0
    #: Times this render was started again because Lambda throttled it inside the render.
    throttle_restarts: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    #: The rate-limit permit that paid for the running attempt (``<message id>:<random>``), so
    #: that an attempt Lambda throttled can give it back.
    rate_permit: str | None = Field(default=None, max_length=200)
    #: When Remotion reported that a cancelled (or timed-out) render's functions stopped, or
    #: the bound after which renderq stops waiting for that (its budget is released then).
    stopped_at: datetime | None = None
    #: When the per-user rate limit lets this render start (shown while it waits).
    throttled_until: datetime | None = None

    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    last_polled_at: datetime | None = None
    #: A poll sooner than the regular one: when the last reading predicts the render's end
    #: (worker/poll_forecast.py); the first sweep at or after it polls the render.
    poll_early_at: datetime | None = None

    def as_request(self) -> RenderRequest:
        """The stored request. Once a row exists it, not any message, is the source of truth."""
        return RenderRequest.from_attributes(self)


class UserLimit(SQLModel, table=True):
    """A user's plan: overrides of the rate limit, budget weight, in-flight cap and priority
    class (None: the setting's default), changed without a deploy."""

    __tablename__ = "user_limits"

    user_id: str = Field(primary_key=True, max_length=128)
    #: Same syntax as RENDER_RATE_LIMIT, e.g. ``100/day`` or ``10/hour,50/day``.
    render_rate_limit: str | None = Field(default=None, max_length=200)
    #: Share of the Lambda budget relative to other waiting users (DEFAULT_USER_WEIGHT).
    weight: float | None = None
    #: Renders in flight at once (MAX_RENDERS_IN_FLIGHT_PER_USER; 0: no cap).
    max_in_flight: int | None = None
    #: Priority class 0..9: a higher class always starts before a lower one (DEFAULT_PRIORITY).
    priority: int | None = None
    note: str | None = Field(default=None, max_length=500)
    updated_at: datetime = Field(default_factory=utcnow)


class EventStatus(StrEnum):
    PENDING = "pending"  # to be delivered (now, or at next_attempt_at)
    DELIVERED = "delivered"
    DEAD = "dead"  # gave up after NOTIFY_MAX_ATTEMPTS; an operator can replay it


class RenderEvent(SQLModel, table=True):
    """The outbox: one row per terminal event and channel, written in the same transaction as
    the terminal transition, so a crash between the two cannot lose an event."""

    __tablename__ = "render_event"
    __table_args__ = (
        sa.Index("ix_render_event_due", "status", "next_attempt_at"),
        sa.Index("ix_render_event_render", "render_id", "created_at"),
        sa.UniqueConstraint("event_id", "channel", name="uq_render_event_channel"),
    )

    id: str = Field(primary_key=True, max_length=64)
    #: Stable across channels and deliveries: receivers deduplicate on it.
    event_id: str = Field(max_length=64)
    render_id: str = Field(max_length=64)
    #: ``render.complete``, ``render.failed`` or ``render.cancelled``.
    type: str = Field(max_length=32)
    #: ``dramatiq`` (a message to the render's ``notify`` actor) or ``http`` (``callback_url``).
    channel: str = Field(max_length=16)
    #: ``<queue>:<actor>`` or the callback URL.
    target: str = Field(sa_type=sa.Text)
    payload: dict[str, Any] = Field(sa_type=sa.JSON)
    status: EventStatus = Field(
        default=EventStatus.PENDING,
        sa_type=sa.Enum(
            EventStatus,
            native_enum=False,
            length=16,
            values_callable=lambda e: [m.value for m in e],
            validate_strings=True,
        ),
    )
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = Field(default_factory=utcnow)
    delivered_at: datetime | None = None
