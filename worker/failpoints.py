"""Failpoints: named places where a test can make a worker die, to prove crash safety.

``FAILPOINTS=start.after_claim`` (comma-separated names) makes the first process that reaches
``failpoint("start.after_claim")`` kill itself with SIGKILL, exactly as a crash or the kernel's
OOM killer would. "First" is decided in Redis (``SET NX``), so the restarted worker passes the
same point and recovers. With ``FAILPOINTS`` unset (production), ``failpoint`` is one attribute
read. The names are listed in ``NAMES`` and in docs/architecture.md.
"""

from __future__ import annotations

import os
import signal

from shared.settings import get_settings

NAMES = frozenset(
    {
        "start.before_claim",  # message taken, nothing written yet
        "start.after_claim",  # claim held, Lambda not called
        "start.after_lambda_start",  # Lambda accepted the start, ids not saved
        "poll.after_progress",  # progress read from Lambda, not saved
        "notify.after_send",  # an event sent, its delivery not recorded
    }
)


def armed() -> frozenset[str]:
    """The failpoints ``FAILPOINTS`` arms. An unknown name is an error, checked when a worker
    boots: a typo would otherwise silently never fire and a crash test would prove nothing."""
    names = frozenset(n.strip() for n in get_settings().failpoints.split(",") if n.strip())
    unknown = names - NAMES
    if unknown:
        raise ValueError(
            f"FAILPOINTS names unknown failpoints {sorted(unknown)}; known: {sorted(NAMES)}"
        )
    return names


def failpoint(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"failpoint {name!r} is not listed in NAMES")
    if not get_settings().failpoints or name not in armed():
        return
    from shared.redis_client import get_redis
    from shared.redis_keys import keys

    if get_redis().set(keys().failpoint(name), os.getpid(), nx=True):
        os.kill(os.getpid(), signal.SIGKILL)
