"""API keys of the HTTP API: created, listed, revoked, and checked on every request.

A key reads ``rq_<id>_<secret>``: the id is public (lists, audit entries, the rate-limit key),
the secret is 32 random bytes (URL-safe base64). Only the SHA-256 of the whole key is stored
(``ApiKey.secret_hash``): 256 random bits need no slow hash, and the database never holds
anything that opens the API. The plaintext is returned once, by ``create``, and never logged.

``authenticate`` runs on every API request, so a key verified once is trusted for
``API_KEY_CACHE_S`` seconds by this process (a revocation takes effect within that long on
every replica); the presented key is still hashed and compared on each request, so a wrong
secret for a cached id is refused. ``last_used_at`` is written when the key is read from the
database, i.e. at most once per ``API_KEY_CACHE_S`` per process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from shared import audit
from shared.access_models import ApiKey
from shared.db import get_engine, single_statement
from shared.errors import RenderqError
from shared.models import utcnow
from shared.per_process import PerProcess
from shared.settings import get_settings

#: produce: create and cancel renders; read: renders, timelines, quotas; operate: replay,
#: dead letters, pauses.
SCOPES = ("produce", "read", "operate")
PREFIX = "rq"
_KEY = re.compile(r"^rq_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_USER = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")
_CACHE_MAX = 10_000

_table = ApiKey.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation


class InvalidApiKeySpec(RenderqError, ValueError):
    """A key asked for with an unknown scope, no scope, or a malformed user id."""


@dataclass(frozen=True)
class _Cached:
    key: ApiKey
    until: float


_cache: PerProcess[dict[str, _Cached]] = PerProcess(dict)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def key_id(plaintext: str) -> str | None:
    """The public id of a well-formed key (None for anything else)."""
    match = _KEY.match(plaintext)
    return match[1] if match else None


def _detached(key: ApiKey) -> ApiKey:
    return ApiKey.model_validate(key.model_dump())


def create(
    name: str,
    scopes: Sequence[str],
    user_ids: Sequence[str] | None = None,
    *,
    actor: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key; returns its row and the plaintext, which exists only in this return value.
    ``user_ids`` binds the key to those users (None: any user). With ``actor`` the creation
    is audited in the same transaction."""
    wanted = list(dict.fromkeys(scopes))
    unknown = [s for s in wanted if s not in SCOPES]
    if not wanted or unknown:
        raise InvalidApiKeySpec(f"scopes must be some of {', '.join(SCOPES)}; got {wanted}")
    if not name.strip() or len(name) > 200:
        raise InvalidApiKeySpec("a key needs a name of 1..200 characters")
    users = None if user_ids is None else list(dict.fromkeys(user_ids))
    if users is not None and (not users or any(not _USER.match(u) for u in users)):
        raise InvalidApiKeySpec(f"user ids must be 1..128 of A-Z a-z 0-9 _ . : @ -; got {users}")
    ident = secrets.token_hex(8)
    plaintext = f"{PREFIX}_{ident}_{secrets.token_urlsafe(32)}"
    row = ApiKey(
        id=ident, name=name, secret_hash=hash_key(plaintext), scopes=wanted, user_ids=users
    )
    with Session(get_engine(), expire_on_commit=False) as session:
        session.add(row)
        if actor is not None:
            detail = {"name": name, "scopes": wanted, "user_ids": users}
            audit.record(actor, "api_key.create", f"api_key:{ident}", detail, session=session)
        session.commit()
        return _detached(row), plaintext


def revoke(ident: str, *, actor: str | None = None) -> bool:
    """Refuse the key from now on (within ``API_KEY_CACHE_S`` on other processes). False when
    there is no such key, or it was revoked already."""
    stmt = (
        sa.update(_table)
        .where(_table.c.id == ident, _table.c.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    with Session(get_engine()) as session:
        revoked = session.execute(stmt).rowcount == 1  # type: ignore[attr-defined]  # a CursorResult for an UPDATE
        if revoked and actor is not None:
            audit.record(actor, "api_key.revoke", f"api_key:{ident}", session=session)
        session.commit()
    _cache.get().pop(ident, None)
    return revoked


def list_keys(*, include_revoked: bool = True) -> list[ApiKey]:
    """Oldest first."""
    stmt = select(ApiKey).order_by(col(ApiKey.created_at), col(ApiKey.id))
    if not include_revoked:
        stmt = stmt.where(col(ApiKey.revoked_at).is_(None))
    with Session(get_engine()) as session:
        return [_detached(k) for k in session.exec(stmt)]


def get(ident: str) -> ApiKey | None:
    with Session(get_engine()) as session:
        found = session.get(ApiKey, ident)
        return None if found is None else _detached(found)


def authenticate(plaintext: str) -> ApiKey | None:
    """The active key this plaintext is, or None (malformed, unknown, wrong secret, revoked)."""
    ident = key_id(plaintext)
    if ident is None:
        return None
    presented = hash_key(plaintext)
    cache, now = _cache.get(), time.monotonic()
    hit = cache.get(ident)
    if hit is not None and hit.until > now:
        return hit.key if hmac.compare_digest(presented, hit.key.secret_hash) else None
    found = get(ident)
    if (
        found is None
        or found.revoked_at is not None
        or not hmac.compare_digest(presented, found.secret_hash)
    ):
        cache.pop(ident, None)
        return None
    found.last_used_at = utcnow()
    with single_statement() as conn:
        conn.execute(
            sa.update(_table).where(_table.c.id == ident).values(last_used_at=found.last_used_at)
        )
    ttl = get_settings().api_key_cache_s
    if ttl > 0:
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[ident] = _Cached(found, now + ttl)
    return found


def clear_cache() -> None:
    """Forget every verified key (tests; revocation in this process is immediate anyway)."""
    _cache.get().clear()
