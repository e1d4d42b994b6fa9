"""Console operators: who may log in, and how a password is checked.

Passwords are stored as scrypt (``hashlib.scrypt``, a random 16-byte salt per hash), never in
clear and never logged. scrypt is slow on purpose (about 50 ms with these parameters): it makes
guessing expensive for whoever steals the table and slows every login attempt, and the console
rate-limits attempts on top of it. The comparison is constant-time (``hmac.compare_digest``).
The parameters travel inside the stored hash, so they can be raised without a migration.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlmodel import Session, col, select

from shared.access_models import Operator
from shared.db import get_engine
from shared.errors import RenderqError
from shared.models import utcnow

#: scrypt's cost parameters for new hashes: N=2^14, r=8 uses 16 MiB of memory per hash.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_DKLEN = 32
MIN_PASSWORD_LENGTH = 12
#: Verified when the operator does not exist, so a wrong name costs the same time as a wrong
#: password (no way to tell which names exist by timing the login).
_DUMMY_HASH: str | None = None


class OperatorError(RenderqError):
    """An operator command that cannot be done (unknown name, weak password, duplicate)."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=_DKLEN
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time over the digest)."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=256 * 1024 * 1024,
            dklen=len(expected) // 2,
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(digest.hex(), expected)


def _check_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise OperatorError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def _check_name(name: str) -> None:
    if not name or len(name) > 128 or not all(c.isalnum() or c in "._-@" for c in name):
        raise OperatorError("an operator name is 1-128 letters, digits or . _ - @")


def create(name: str, password: str) -> Operator:
    _check_name(name)
    _check_strength(password)
    with Session(get_engine()) as session:
        if session.get(Operator, name) is not None:
            raise OperatorError(f"operator {name!r} already exists")
        operator = Operator(name=name, password_hash=hash_password(password))
        session.add(operator)
        session.commit()
        session.refresh(operator)
        return operator


def set_password(name: str, password: str) -> None:
    _check_strength(password)
    with Session(get_engine()) as session:
        operator = session.get(Operator, name)
        if operator is None:
            raise OperatorError(f"no operator {name!r}")
        operator.password_hash = hash_password(password)
        session.add(operator)
        session.commit()


def disable(name: str) -> None:
    """The operator can no longer log in, and their sessions end now."""
    from shared.access_models import ConsoleSession

    with Session(get_engine()) as session:
        operator = session.get(Operator, name)
        if operator is None:
            raise OperatorError(f"no operator {name!r}")
        operator.disabled_at = operator.disabled_at or utcnow()
        session.add(operator)
        for row in session.exec(select(ConsoleSession).where(ConsoleSession.operator == name)):
            session.delete(row)
        session.commit()


def enable(name: str) -> None:
    with Session(get_engine()) as session:
        operator = session.get(Operator, name)
        if operator is None:
            raise OperatorError(f"no operator {name!r}")
        operator.disabled_at = None
        session.add(operator)
        session.commit()


def list_all() -> list[Operator]:
    with Session(get_engine()) as session:
        return list(session.exec(select(Operator).order_by(col(Operator.name))))


def get(name: str) -> Operator | None:
    with Session(get_engine()) as session:
        return session.get(Operator, name)


def verify(name: str, password: str) -> Operator | None:
    """The enabled operator with this name and password, else None (same cost either way)."""
    global _DUMMY_HASH
    operator = get(name) if name else None
    if operator is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password(secrets.token_hex(16))
        check_password(password, _DUMMY_HASH)
        return None
    if not check_password(password, operator.password_hash):
        return None
    return operator if operator.disabled_at is None else None
