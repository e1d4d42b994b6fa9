"""Console logins: sessions, CSRF tokens and the login rate limit.

A session is a random 32-byte token in an HttpOnly, SameSite=Strict cookie (Secure when
``CONSOLE_HTTPS``); the database keeps only its SHA-256, so a leaked table logs nobody in.
Each session has its own CSRF token, which every state-changing form carries in a hidden
field; it is compared in constant time, and the request's Origin (or Referer) must name the
console's own host, so a page elsewhere cannot post a form here even with a stolen token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import Request
from sqlmodel import Session, col

from shared import operators, redis_keys
from shared.access_models import ConsoleSession
from shared.db import get_engine
from shared.log import get_logger
from shared.models import utcnow
from shared.redis_client import get_redis
from shared.settings import get_settings

log = get_logger(__name__)

COOKIE = "renderq_console"


@dataclass(frozen=True)
class Login:
    """The operator behind a request, and the CSRF token their forms must carry."""

    operator: str
    csrf_token: str

    @property
    def actor(self) -> str:
        return f"operator:{self.operator}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def open_session(operator: str) -> tuple[str, Login]:
    """A new session; returns the cookie's token (shown to the browser only)."""
    token = secrets.token_urlsafe(32)
    login = Login(operator, secrets.token_urlsafe(32))
    expires = utcnow() + timedelta(seconds=get_settings().console_session_ttl_s)
    with Session(get_engine()) as session:
        session.add(
            ConsoleSession(
                token_hash=_digest(token),
                operator=operator,
                csrf_token=login.csrf_token,
                expires_at=expires,
            )
        )
        # Expired rows of anyone go with each new login: the table stays as small as the
        # number of live sessions without a sweeper.
        session.execute(sa.delete(ConsoleSession).where(col(ConsoleSession.expires_at) < utcnow()))
        session.commit()
    return token, login


def current(request: Request) -> Login | None:
    """The live session of the request's cookie, or None (missing, unknown, expired, or the
    operator was disabled since)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    with Session(get_engine()) as session:
        row = session.get(ConsoleSession, _digest(token))
        if row is None or _aware(row.expires_at) <= utcnow():
            return None
        return Login(row.operator, row.csrf_token)


def close_session(request: Request) -> None:
    token = request.cookies.get(COOKIE)
    if not token:
        return
    with Session(get_engine()) as session:
        row = session.get(ConsoleSession, _digest(token))
        if row is not None:
            session.delete(row)
            session.commit()


def cookie_options() -> dict[str, object]:
    settings = get_settings()
    return {
        "key": COOKIE,
        "httponly": True,
        "samesite": "strict",
        "secure": settings.console_https,
        "path": "/console",
        "max_age": int(settings.console_session_ttl_s),
    }


def same_origin(request: Request) -> bool:
    """The form was posted by a page of this host: Origin, else Referer, names the Host."""
    host = request.headers.get("host", "")
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source or source == "null":
        return False
    return urlsplit(source).netloc == host


def csrf_ok(request: Request, login: Login, token: str | None) -> bool:
    return (
        token is not None
        and hmac.compare_digest(token.encode(), login.csrf_token.encode())
        and same_origin(request)
    )


# --- the login --------------------------------------------------------------------------------


def _minute() -> int:
    return int(time.time() // 60)


def login_blocked(name: str) -> bool:
    """Too many failed attempts for this name this minute (checked before any scrypt)."""
    key = redis_keys.keys().console_login_failures(name[:128], _minute())
    failures = get_redis().get(key)
    return failures is not None and int(failures) >= get_settings().console_login_attempts_per_min


def _count_failure(name: str) -> None:
    key = redis_keys.keys().console_login_failures(name[:128], _minute())
    pipe = get_redis().pipeline()
    pipe.incr(key)
    pipe.expire(key, 120)
    pipe.execute()


def attempt(name: str, password: str, client: str | None) -> str | None:
    """Check a login; returns the new session's token, or None. The password is never logged."""
    if operators.verify(name, password) is None:
        _count_failure(name)
        log.warning("console login failed", operator=name[:128], client=client)
        return None
    token, _ = open_session(name)
    log.info("console login", operator=name, client=client)
    return token
