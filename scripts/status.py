"""``python -m scripts.status``: what renderq is doing right now, for operators.

The questions during an incident are always the same: is work piling up (pending, queue
depths, dead letters), is it moving (in-flight progress, the last poll sweep, live workers),
and if not, why (users waiting on their rate limit, a full Lambda budget, a burst of one
error code). This answers all of them from one snapshot.

``collect_status`` is the only place that reads anything; the JSON output and the dashboard
are two renderings of its result, so a script and an operator can never see different numbers.
It is read-only except for ``read_workers()``, which prunes heartbeats of crashed workers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import sqlalchemy as sa
from pydantic import ValidationError
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from sqlalchemy.orm import load_only
from sqlmodel import Session, col, func, select

from scripts.health import describe_error, redact_url, settings_error, sqlite_path
from shared import pauses, redis_keys
from shared.db import get_engine
from shared.errors import RenderqError
from shared.lambda_budget import get_budget
from shared.log import configure_logging
from shared.models import Render, RenderStatus, utcnow
from shared.redis_client import get_redis
from shared.redis_keys import RedisKeys
from shared.renders import count_by_status
from shared.repository import events as outbox
from shared.settings import get_settings
from worker.middleware.heartbeat import read_workers
from worker.poller import last_sweep

EXIT_UNREACHABLE = 2
FAILURE_WINDOW = timedelta(hours=1)


class Unreachable(RenderqError):
    """Redis or the database could not be read; the message is meant for the operator."""


def _aware(value: datetime | None) -> datetime | None:
    # Rows come back aware from both databases today; a naive one would make the arithmetic
    # below raise, so treat it as the UTC it was written in rather than crash the dashboard.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _iso(value: datetime | None) -> str | None:
    value = _aware(value)
    return value.isoformat() if value else None


def _age_s(now: datetime, then: datetime | None) -> float | None:
    then = _aware(then)
    return None if then is None else round((now - then).total_seconds(), 1)


# --- database queries -----------------------------------------------------------------------


#: Only what the in-flight table shows: a row's ``input_props`` alone may be 64 KiB. (Typed as
#: Any because SQLModel's field types are not the ``QueryableAttribute`` ``load_only`` expects.)
_IN_FLIGHT_COLUMNS: tuple[Any, ...] = (
    Render.id,
    Render.user_id,
    Render.composition,
    Render.progress,
    Render.started_at,
    Render.last_polled_at,
)


def in_flight(session: Session, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Oldest first: the render closest to ``RENDER_TIMEOUT_S`` is the one to look at."""
    stmt = (
        select(Render)
        .options(load_only(*_IN_FLIGHT_COLUMNS))
        .where(Render.status == RenderStatus.RENDERING)
        .order_by(col(Render.started_at).asc(), col(Render.id).asc())
        .limit(max(0, limit))
    )
    return [
        {
            "id": r.id,
            "user_id": r.user_id,
            "composition": r.composition,
            "progress": round(float(r.progress), 4),
            "started_at": _iso(r.started_at),
            "age_s": _age_s(now, r.started_at),
            "last_polled_at": _iso(r.last_polled_at),
        }
        for r in session.exec(stmt)
    ]


def oldest_pending_created_at(session: Session) -> datetime | None:
    # ORDER BY .. LIMIT 1 reads one entry of the (status, created_at) index.
    stmt = (
        select(Render.created_at)
        .where(Render.status == RenderStatus.PENDING)
        .order_by(col(Render.created_at).asc())
        .limit(1)
    )
    return _aware(session.exec(stmt).first())


def throttled_users(session: Session, now: datetime) -> list[dict[str, Any]]:
    """Users whose pending renders wait for their rate limit, soonest to free up first."""
    next_start = func.min(Render.throttled_until)
    stmt = (
        select(Render.user_id, func.count(), next_start)
        .where(Render.status == RenderStatus.PENDING, col(Render.throttled_until) > now)
        .group_by(Render.user_id)
        .order_by(next_start, col(Render.user_id))
    )
    return [
        {"user_id": user_id, "waiting": int(waiting), "next_start_at": _iso(until)}
        for user_id, waiting, until in session.exec(stmt)
    ]


def failures_since(session: Session, since: datetime) -> dict[str, int]:
    """Failed renders by error code, most frequent first: a burst of one code is the clue.

    One range of the ``(status, completed_at)`` index (migration 0003): the last hour's
    failures only, however many failed renders the table holds.
    """
    stmt = (
        select(Render.error_code, func.count())
        .where(Render.status == RenderStatus.FAILED, col(Render.completed_at) >= since)
        .group_by(Render.error_code)
    )
    counts: dict[str, int] = {}
    for code, n in session.exec(stmt):
        key = code or "unknown"
        counts[key] = counts.get(key, 0) + int(n)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def completed_since(session: Session, since: datetime) -> int:
    """Renders completed since ``since`` (the throughput); one range of the
    ``(status, completed_at)`` index."""
    stmt = select(func.count()).where(
        Render.status == RenderStatus.COMPLETE, col(Render.completed_at) >= since
    )
    return int(session.exec(stmt).one())


# --- Redis ------------------------------------------------------------------------------------


def queue_depths(client: redis.Redis, keys: RedisKeys, queues: list[str]) -> dict[str, Any]:
    """Depths straight from Dramatiq's keys (see docs/architecture.md, "Redis keys").

    A fetched message stays in ``<q>.msgs`` until it is acked, so what is in the hash but not
    in the ready list is held by some worker. The reads run in one MULTI so the numbers belong
    to one instant; the difference is still clamped, because the list may hold ids whose
    message is gone (a foreign producer's RPUSH without its HSET), which is not "negative
    unacked".
    """
    pipe = client.pipeline(transaction=True)
    for q in queues:
        pipe.llen(keys.queue(q))
        pipe.hlen(keys.delayed_messages(q))
        pipe.hlen(keys.queue_messages(q))
        pipe.zcard(keys.dead_letters(q))
    values = [int(v) for v in pipe.execute()]
    depths = {}
    for i, q in enumerate(queues):
        ready, delayed, stored, dead = values[4 * i : 4 * i + 4]
        depths[q] = {
            "ready": ready,
            "delayed": delayed,
            "unacked": max(0, stored - ready),
            "dead": dead,
        }
    return depths


# --- the snapshot -----------------------------------------------------------------------------


def collect_status(limit: int = 20) -> dict[str, Any]:
    """One JSON-ready snapshot of renderq; raises ``Unreachable`` if Redis or the DB is down."""
    settings = get_settings()
    now = utcnow()
    try:
        counts = count_by_status()
        with Session(get_engine()) as session:
            flying = in_flight(session, now, limit)
            oldest = oldest_pending_created_at(session)
            waiting_users = throttled_users(session, now)
            failures = failures_since(session, now - FAILURE_WINDOW)
            completed = completed_since(session, now - FAILURE_WINDOW)
        events = outbox.event_counts()
    except sa.exc.SQLAlchemyError as exc:
        raise Unreachable(
            f"cannot read the database ({redact_url(settings.database_url)}): "
            f"{describe_error(exc, settings)}"
        ) from None
    try:
        queues = queue_depths(
            get_redis(),
            redis_keys.keys(),
            [
                settings.start_queue,
                settings.admitted_queue,
                settings.poll_queue,
                settings.notify_queue,
            ],
        )
        budget = get_budget()
        pools = budget.pools()
        lambda_budget = {
            "in_use": sum(p.in_use for p in pools),
            "budget": sum(p.configured for p in pools),
            "waiting": budget.waiting(),
            "waiting_by_user": budget.waiting_by_user(),
            "pools": [
                {
                    "name": p.name,
                    "in_use": p.in_use,
                    "effective": p.effective,
                    "configured": p.configured,
                }
                for p in pools
            ],
        }
        sweep = last_sweep()
        workers = read_workers()[0]
        paused = {
            "active": [
                {"user_id": p.user_id, "by": p.by, "at": p.at.isoformat(), "reason": p.reason}
                for p in pauses.active()
            ],
            "held": pauses.held_count(),
        }
    except redis.RedisError as exc:
        raise Unreachable(
            f"cannot reach Redis ({redact_url(settings.redis_url)}): "
            f"{describe_error(exc, settings)}"
        ) from None
    return {
        "generated_at": now.isoformat(),
        "namespace": settings.redis_namespace,
        "counts": counts,
        "in_flight": flying,
        "pending": {
            # The same number as counts.pending, so the document never contradicts itself.
            "count": counts.get(RenderStatus.PENDING.value, 0),
            "oldest_age_s": _age_s(now, oldest),
            "throttled": sum(u["waiting"] for u in waiting_users),
        },
        "throttled_users": waiting_users,
        "queues": queues,
        "lambda_budget": lambda_budget,
        "pauses": paused,
        "last_sweep": sweep,
        "workers": workers,
        "failures_last_hour": failures,
        "completed_last_hour": completed,
        "events": events,
    }


# --- the dashboard ----------------------------------------------------------------------------


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _since(now: datetime, iso: str | None) -> float | None:
    return None if iso is None else (now - datetime.fromisoformat(iso)).total_seconds()


def _clock(iso: str | None) -> str:
    return "-" if iso is None else datetime.fromisoformat(iso).strftime("%H:%M:%S")


def render_dashboard(doc: dict[str, Any], error: str | None = None) -> RenderableType:
    """Draw a ``collect_status`` document; nothing here reads Redis or the database."""
    now = datetime.fromisoformat(doc["generated_at"])
    parts: list[RenderableType] = []
    header = Text.assemble(
        ("renderq", "bold"),
        f"  namespace {doc['namespace']}  ",
        (f"{now:%Y-%m-%d %H:%M:%S} UTC", "dim"),
    )
    parts.append(header)
    if error:
        parts.append(Text(f"refresh failed, showing the last snapshot: {error}", style="bold red"))

    counts = doc["counts"]
    styles = {"pending": "yellow", "rendering": "cyan", "complete": "green", "failed": "red"}
    parts.append(
        Text.assemble(
            "renders  ",
            *(
                part
                for status in ("pending", "rendering", "complete", "failed")
                for part in (
                    (f"{status} ", styles[status]),
                    (f"{counts.get(status, 0)}   ", "bold"),
                )
            ),
        )
    )
    pending = doc["pending"]
    parts.append(
        Text(
            f"pending  {pending['count']} waiting, oldest {fmt_duration(pending['oldest_age_s'])}"
            f", {pending['throttled']} throttled by rate limit"
        )
    )
    paused = doc.get("pauses") or {"active": [], "held": 0}
    for p in paused["active"]:
        who = "everything" if p["user_id"] is None else f"user {p['user_id']}"
        parts.append(
            Text(
                f"paused   {who} by {p['by']}" + (f": {p['reason']}" if p["reason"] else ""),
                style="yellow",
            )
        )
    if paused["active"] or paused["held"]:
        parts.append(Text(f"paused   {paused['held']} render(s) held until resumed"))

    flying = Table(title=f"in flight (oldest first, {len(doc['in_flight'])} shown)", expand=False)
    for column in ("render", "user", "composition", "progress", "", "age", "polled"):
        flying.add_column(column, justify="right" if column in ("", "age", "polled") else "left")
    for r in doc["in_flight"]:
        flying.add_row(
            r["id"],
            escape(r["user_id"]),
            escape(r["composition"]),
            ProgressBar(total=1.0, completed=r["progress"], width=20),
            f"{r['progress'] * 100:.0f}%",
            fmt_duration(r["age_s"]),
            "never"
            if r["last_polled_at"] is None
            else f"{fmt_duration(_since(now, r['last_polled_at']))} ago",
        )
    hidden = counts.get("rendering", 0) - len(doc["in_flight"])
    if hidden > 0:
        flying.caption = f"... and {hidden} more rendering"
    elif not doc["in_flight"]:
        flying.caption = "nothing rendering"
    parts.append(flying)

    if doc["throttled_users"]:
        users = Table(title="throttled users (rate limit)", expand=False)
        for column in ("user", "waiting", "next start", "in"):
            users.add_column(column)
        for u in doc["throttled_users"]:
            users.add_row(
                escape(u["user_id"]),
                str(u["waiting"]),
                _clock(u["next_start_at"]) + " UTC",
                fmt_duration(-(_since(now, u["next_start_at"]) or 0.0)),
            )
        parts.append(users)

    queues = Table(title="queues", expand=False)
    for column in ("queue", "ready", "delayed", "unacked", "dead"):
        queues.add_column(column, justify="left" if column == "queue" else "right")
    for name, q in doc["queues"].items():
        queues.add_row(
            name,
            str(q["ready"]),
            str(q["delayed"]),
            str(q["unacked"]),
            Text(str(q["dead"]), style="bold red" if q["dead"] else ""),
        )
    parts.append(queues)

    budget = doc["lambda_budget"]
    parts.append(
        Text.assemble(
            "lambda budget  ",
            (f"{budget['in_use']}/{budget['budget']}", "bold"),
            f" functions in use, {budget['waiting']} waiting for room",
        )
    )
    pools = budget.get("pools", [])
    for pool in pools:
        shrunk = pool["effective"] < pool["configured"]
        if len(pools) > 1 or shrunk:
            parts.append(
                Text.assemble(
                    f"  pool {pool['name']}  {pool['in_use']}/{pool['effective']}",
                    (f" (throttled: {pool['configured']} configured)", "yellow") if shrunk else "",
                )
            )

    sweep = doc["last_sweep"]
    if sweep:
        finished = datetime.fromtimestamp(float(sweep["finished_at"]), UTC)
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(sweep.get("outcomes", {}).items()))
        parts.append(
            Text(
                f"last sweep  {sweep['duration_s']}s for {sweep['renders']} renders "
                f"({sweep['polled']} polled), {fmt_duration((now - finished).total_seconds())} ago"
                + (f"; {outcomes}" if outcomes else "")
            )
        )
    else:
        parts.append(Text("last sweep  none recorded (is the scheduler running?)", style="yellow"))

    workers = Table(title=f"live workers ({len(doc['workers'])})", expand=False)
    for column in ("worker", "queues", "threads", "up", "seen"):
        workers.add_column(column)
    for w in doc["workers"]:
        workers.add_row(
            escape(str(w.get("worker_id"))),
            escape(", ".join(w.get("queues") or [])),
            str(w.get("threads") or "-"),
            fmt_duration(now.timestamp() - float(w.get("started_at", now.timestamp()))),
            f"{fmt_duration(now.timestamp() - float(w.get('seen_at', now.timestamp())))} ago",
        )
    if not doc["workers"]:
        workers.caption = "no live worker heartbeat"
    parts.append(workers)

    failures = doc["failures_last_hour"]
    if failures:
        listed = ", ".join(f"{code} {n}" for code, n in failures.items())
        parts.append(Text(f"failures in the last hour  {listed}", style="red"))
    else:
        parts.append(Text("failures in the last hour  none"))
    events = doc.get("events", {})
    line = f"notification events  pending {events.get('pending', 0)}  dead {events.get('dead', 0)}"
    dead = events.get("dead", 0)
    parts.append(
        Text(
            line + ("  (python -m scripts.events list --status dead)" if dead else ""),
            style="red" if dead else "",
        )
    )
    return Group(*parts)


def watch(console: Console, limit: int, interval: float, first: dict[str, Any]) -> None:
    """Refresh until Ctrl-C. A failed refresh keeps the last snapshot on screen with the error:
    an operator watching an incident should not lose the picture when Redis blips."""
    doc, error = first, None
    if not console.is_terminal:
        # Live only redraws on a terminal; piped, print one snapshot per interval instead.
        while True:
            console.print(render_dashboard(doc, error))
            time.sleep(interval)
            try:
                doc, error = collect_status(limit), None
            except Unreachable as exc:
                error = str(exc)
    with Live(render_dashboard(doc), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(interval)
            try:
                doc, error = collect_status(limit), None
            except Unreachable as exc:
                error = str(exc)
            live.update(render_dashboard(doc, error), refresh=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.status", description="Show what renderq is doing right now."
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="print one JSON document and exit")
    mode.add_argument("--watch", action="store_true", help="refresh in place until Ctrl-C")
    parser.add_argument(
        "--interval", type=float, default=2.0, metavar="S", help="seconds between refreshes"
    )
    parser.add_argument(
        "--limit", type=int, default=20, metavar="N", help="in-flight renders to list"
    )
    args = parser.parse_args(argv)
    if args.interval <= 0 or args.limit < 0:
        parser.error("--interval must be > 0 and --limit >= 0")

    # libpq would wait for a silent PostgreSQL host as long as TCP does.
    os.environ.setdefault("PGCONNECT_TIMEOUT", "5")
    try:
        settings = get_settings()
    except ValidationError as exc:
        print(f"status: {settings_error(exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    configure_logging(settings)  # any log line goes to stderr, never into the JSON
    path = sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        # Opening it would create an empty database and report a missing table instead.
        print(f"status: database file {path} does not exist", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        doc = collect_status(args.limit)
    except Unreachable as exc:
        print(f"status: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE

    if args.json:
        print(json.dumps(doc, indent=2))
        return 0
    console = Console(width=None if sys.stdout.isatty() else 160)
    if not args.watch:
        console.print(render_dashboard(doc))
        return 0
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a watch ends
        watch(console, args.limit, args.interval, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
