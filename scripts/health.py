"""``python -m scripts.health``: the container probe for workers and the scheduler.

A probe that hangs is as bad as one that lies: orchestrators run it every few seconds and
kill the container when it does not answer in time, so every check runs in its own thread
under a hard deadline (the shared Redis client waits up to 5 s per call, libpq forever on a
blackholed host). Checks run side by side, so a probe takes as long as its slowest check, not
their sum. Only the exit code matters to an orchestrator; the lines are for the operator
reading ``docker inspect`` or ``kubectl describe`` afterwards.

Worker freshness comes from renderq's own heartbeats (``worker.middleware.heartbeat``), not
Dramatiq's: Dramatiq also counts producers and schedulers as alive. The scheduler has no
heartbeat of its own and must not fail because workers are down, hence ``--no-require-worker``.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

from shared.db import normalize_url
from shared.errors import RenderqError
from shared.settings import Settings, get_settings
from worker.middleware.heartbeat import INTERVAL_S, read_workers

#: Seconds one check may take before it counts as failed.
DEFAULT_TIMEOUT_S = 3.0
#: Below the check deadline, so a slow server yields the driver's own error, which says more
#: than "timed out".
_IO_TIMEOUT_S = 2

RENDER_TABLE = "render"


class CheckFailed(RenderqError):
    """A check ran and found the service unfit (as opposed to crashing on the way)."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    ms: int


# --- helpers shared with scripts.status ---------------------------------------------------------


def redact_url(url: str) -> str:
    """Operators paste these messages into tickets; a URL's password must not go with them."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _secrets(settings: Settings) -> list[str]:
    values = []
    for url in (settings.redis_url, settings.database_url):
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            values.append(password)
    for secret in (settings.remotion_aws_access_key_id, settings.remotion_aws_secret_access_key):
        if secret is not None and secret.get_secret_value():
            values.append(secret.get_secret_value())
    return values


def describe_error(exc: BaseException, settings: Settings | None = None) -> str:
    """One short line: a probe's output is one line per check, and drivers' messages are not.

    SQLAlchemy wraps the driver's error with the statement and a link to its docs; only the
    driver's message tells the operator anything. Known passwords are masked in case a driver
    echoes its connection string.
    """
    inner = getattr(exc, "orig", None) if isinstance(exc, sa.exc.DBAPIError) else None
    text = str(inner or exc) or type(exc).__name__
    text = re.sub(r"\s+", " ", text).strip()
    for secret in _secrets(settings or get_settings()):
        text = text.replace(secret, "***")
    return text if len(text) <= 300 else text[:297] + "..."


def settings_error(exc: ValidationError) -> str:
    """Name the malformed settings without their values, which may be secrets."""
    fields = sorted({".".join(map(str, e["loc"])).upper() for e in exc.errors()})
    return f"invalid setting(s) {', '.join(fields)}"


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for other databases and in-memory SQLite."""
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def probe_engine(url: str, timeout_s: int = _IO_TIMEOUT_S) -> Engine:
    """An engine that fails fast and never creates anything.

    The application's engine would create an empty SQLite file at a mistyped path (and the
    probe would then report a missing table, hiding the real mistake), and libpq waits for a
    silent PostgreSQL host as long as TCP does. No pool: the probe connects once.
    """
    path = sqlite_path(url)
    if path is not None:
        uri = f"{path.absolute().as_uri()}?mode=rw"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, timeout=timeout_s, check_same_thread=False)

        return sa.create_engine("sqlite://", creator=connect, poolclass=NullPool)
    normalized = normalize_url(url)
    connect_args: dict[str, Any] = {}
    if make_url(normalized).get_backend_name() == "postgresql":
        connect_args = {
            "connect_timeout": max(2, timeout_s),
            "options": f"-c statement_timeout={timeout_s * 1000}",
        }
    return sa.create_engine(normalized, poolclass=NullPool, connect_args=connect_args)


# --- the checks ---------------------------------------------------------------------------------


def check_redis(settings: Settings) -> str:
    # A client of its own: the shared one waits 5 s per attempt and keeps its pool.
    client = redis.Redis.from_url(
        settings.redis_url, socket_timeout=_IO_TIMEOUT_S, socket_connect_timeout=_IO_TIMEOUT_S
    )
    try:
        client.ping()
    finally:
        client.close()
    return "PONG"


def check_database(settings: Settings) -> str:
    engine = probe_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
            if not sa.inspect(conn).has_table(RENDER_TABLE):
                raise CheckFailed(
                    f"no {RENDER_TABLE!r} table: run the migrations (alembic upgrade head)"
                )
    finally:
        engine.dispose()
    return make_url(normalize_url(settings.database_url)).get_backend_name()


def check_workers(settings: Settings) -> str:
    alive, _stale = read_workers()
    if not alive:
        raise CheckFailed(
            f"no worker heartbeat fresher than {3 * INTERVAL_S:g}s "
            f"in namespace {settings.redis_namespace!r}"
        )
    return f"{len(alive)} live"


Check = Callable[[Settings], str]


def check_lambda(settings: Settings) -> str:
    """The configured function exists and runs renderq's Remotion version (one ``info``
    invocation; ``worker.preflight``)."""
    from worker.preflight import check_function

    return f"{settings.remotion_lambda_function_name} runs Remotion {check_function(settings)}"


def select_checks(require_worker: bool, check_function: bool = True) -> list[tuple[str, Check]]:
    checks: list[tuple[str, Check]] = [("redis", check_redis), ("database", check_database)]
    if require_worker:
        checks.append(("workers", check_workers))
        if check_function:
            checks.append(("lambda", check_lambda))
    return checks


def run_checks(
    checks: Iterable[tuple[str, Check]],
    settings: Settings | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[CheckResult]:
    """Run every check at once, each under ``timeout_s``.

    Daemon threads rather than an executor: a check stuck in a socket read cannot be
    cancelled, and an executor's threads would be joined at exit, i.e. the probe would hang
    exactly when it must not.
    """
    settings = settings or get_settings()
    started = time.monotonic()
    outcomes: dict[str, tuple[bool, str, int]] = {}

    def run(name: str, check: Check) -> None:
        t0 = time.monotonic()
        try:
            detail = check(settings)
            ok = True
        except Exception as exc:
            detail, ok = describe_error(exc, settings), False
        outcomes[name] = (ok, detail, int((time.monotonic() - t0) * 1000))

    threads = []
    names = []
    for name, check in checks:
        thread = threading.Thread(target=run, args=(name, check), name=f"health-{name}")
        thread.daemon = True
        thread.start()
        threads.append(thread)
        names.append(name)
    results = []
    for name, thread in zip(names, threads, strict=True):
        thread.join(max(0.0, started + timeout_s - time.monotonic()))
        if name in outcomes:
            ok, detail, ms = outcomes[name]
            results.append(CheckResult(name, ok, detail, ms))
        else:
            results.append(
                CheckResult(name, False, f"timed out after {timeout_s:g}s", int(timeout_s * 1000))
            )
    return results


def report_lines(results: list[CheckResult]) -> list[str]:
    return [
        f"ok {r.name} ({r.detail}, {r.ms} ms)" if r.ok else f"FAIL {r.name}: {r.detail}"
        for r in results
    ]


def report_json(results: list[CheckResult]) -> dict[str, Any]:
    return {
        "ok": all(r.ok for r in results),
        "checks": {r.name: {"ok": r.ok, "detail": r.detail, "ms": r.ms} for r in results},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.health",
        description=(
            "Probe Redis, the database, worker heartbeats and the Lambda function; "
            "exit 0 if all pass."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--no-require-worker",
        dest="require_worker",
        action="store_false",
        help="skip the live-worker check (for the scheduler's own probe)",
    )
    parser.add_argument(
        "--no-check-lambda",
        dest="check_lambda",
        action="store_false",
        help="skip the Lambda function check (one `info` invocation; on by default for workers)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"seconds each check may take (default {DEFAULT_TIMEOUT_S:g})",
    )
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"FAIL settings: {settings_error(exc)}")
        return 1
    results = run_checks(
        select_checks(args.require_worker, args.check_lambda), settings, args.timeout
    )
    if args.json:
        print(json.dumps(report_json(results)))
    else:
        print("\n".join(report_lines(results)))
    sys.stdout.flush()
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
