"""Tables of the HTTP API and the console: API keys, operators, console sessions, the audit
log, and a render's timeline.

Secrets are never stored: an API key or session token is kept as its SHA-256 (both are 32
random bytes, so a fast hash is enough), an operator password as scrypt. Kept apart from
``shared.models`` (the render state machine) because nothing on the render path reads them,
except the timeline, which the worker appends to in the transactions it already runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from shared.models import utcnow


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_key"

    #: The public part of the key (``rq_<id>_<secret>``): found by it, shown in lists.
    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(max_length=200)
    #: SHA-256 hex of the whole key.
    secret_hash: str = Field(max_length=64)
    #: Any of ``produce``, ``read``, ``operate``.
    scopes: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    #: User ids the key may act for; None: any user.
    user_ids: list[str] | None = Field(default=None, sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class Operator(SQLModel, table=True):
    """A person who logs in to the console."""

    __tablename__ = "operator"

    name: str = Field(primary_key=True, max_length=128)
    #: ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>``.
    password_hash: str = Field(max_length=400)
    created_at: datetime = Field(default_factory=utcnow)
    disabled_at: datetime | None = None


class ConsoleSession(SQLModel, table=True):
    __tablename__ = "console_session"

    #: SHA-256 hex of the cookie's token.
    token_hash: str = Field(primary_key=True, max_length=64)
    operator: str = Field(max_length=128)
    #: The CSRF token every form of this session carries.
    csrf_token: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class AuditEntry(SQLModel, table=True):
    """Who did what, when: every operator action, from the console or the API."""

    __tablename__ = "audit_entry"
    __table_args__ = (
        sa.Index("ix_audit_entry_at", "at"),
        sa.Index("ix_audit_entry_target", "target", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    #: ``operator:<name>`` or ``api_key:<id>`` or ``script:<name>``.
    actor: str = Field(max_length=200)
    #: ``cancel``, ``replay``, ``dead_letter.requeue``, ``dead_letter.delete``, ``pause``,
    #: ``resume``, ``api_key.create``, ...
    action: str = Field(max_length=64)
    #: ``render:<id>``, ``user:<id>``, ``all``, ``message:<id>``.
    target: str = Field(max_length=200)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class TimelineEntry(SQLModel, table=True):
    """One step of a render's life, appended in the transaction that made the step."""

    __tablename__ = "render_timeline"
    __table_args__ = (sa.Index("ix_render_timeline_render", "render_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    render_id: str = Field(max_length=64)
    at: datetime = Field(default_factory=utcnow)
    #: ``created``, ``throttled``, ``parked``, ``admitted``, ``paused``, ``started``,
    #: ``progress``, ``webhook``, ``restarted``, ``complete``, ``failed``, ``cancelled``,
    #: ``replayed``, ``notified``.
    kind: str = Field(max_length=32)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
