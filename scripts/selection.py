"""What the operator commands that act on many renders share: choosing them, and asking.

``scripts.replay_failed`` and ``scripts.cancel`` select renders the same way (ids, a user, a
generation, a time, a limit), show them, and change nothing without ``--yes`` or a "y" typed
at a terminal; ``--dry-run`` only shows.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from shared.db import get_engine
from shared.models import Render

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str) -> datetime:
    """``2h``, ``30m``, ``1d`` ago, or an ISO 8601 timestamp (UTC if no offset is given)."""
    match = _RELATIVE.match(value.strip())
    if match:
        return datetime.now(UTC) - timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--since {value!r}: use e.g. 2h, 30m, 1d or 2026-11-26T10:00:00"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def add_selection(parser: argparse.ArgumentParser, since_help: str) -> None:
    parser.add_argument("--render-id", action="append", default=[], help="repeatable")
    parser.add_argument("--user", help="only this user's renders")
    parser.add_argument("--generation", help="only this generation's renders")
    parser.add_argument("--since", type=parse_since, help=since_help)
    parser.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    parser.add_argument("--dry-run", action="store_true", help="show, change nothing")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def check_selection(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.limit < 1:
        parser.error("--limit must be at least 1")


def select_renders(
    args: argparse.Namespace, *conditions: Any, since_column: Any, order_by: Any
) -> list[Render]:
    stmt = select(Render).where(*conditions)
    if args.render_id:
        stmt = stmt.where(col(Render.id).in_(args.render_id))
    if args.user:
        stmt = stmt.where(Render.user_id == args.user)
    if args.generation:
        stmt = stmt.where(Render.generation_id == args.generation)
    if args.since:
        stmt = stmt.where(since_column >= args.since)
    stmt = stmt.order_by(order_by, col(Render.id)).limit(args.limit)
    with Session(get_engine()) as session:
        return list(session.exec(stmt))


def confirmed(args: argparse.Namespace, question: str) -> bool:
    """``--yes``, or "y" typed at a terminal; never assumed without a terminal."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print("refusing to act without confirmation: pass --yes", file=sys.stderr)
        return False
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
