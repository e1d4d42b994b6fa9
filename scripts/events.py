"""Notification events: ``python -m scripts.events``.

    python -m scripts.events list --status dead         # what could not be delivered, and why
    python -m scripts.events list --render-id 3f2c...   # every event of one render
    python -m scripts.events replay --dead --yes        # deliver every dead one again
    python -m scripts.events replay --id 7a1b... --yes

A replayed delivery starts over (attempts 0) and is picked up by the next delivery sweep
(``NOTIFY_SWEEP_INTERVAL_S``). Receivers deduplicate on ``event_id``, which stays the same.
Exit status: 0 on success, 2 on bad usage (or no confirmation).
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.log import configure_logging
from shared.models import EventStatus, RenderEvent
from shared.repository import events as outbox

console = Console(stderr=False, width=None if sys.stdout.isatty() else 200)


def show(rows: list[RenderEvent]) -> None:
    table = Table(title=f"{len(rows)} event delivery(ies)")
    for column in ("id", "event", "render", "type", "channel", "status", "attempts", "last error"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(
            r.id,
            r.event_id,
            r.render_id,
            r.type,
            f"{r.channel} {escape(r.target)[:60]}",
            r.status,
            str(r.attempts),
            escape((r.last_error or "")[:120]),
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.events", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show deliveries, newest first")
    listing.add_argument("--status", choices=[s.value for s in EventStatus])
    listing.add_argument("--render-id")
    listing.add_argument("--limit", type=int, default=100)
    replaying = commands.add_parser("replay", help="deliver dead events again")
    replaying.add_argument("--id", action="append", default=[], help="a delivery id; repeatable")
    replaying.add_argument("--dead", action="store_true", help="every dead delivery")
    replaying.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)
    configure_logging()
    if args.command == "list":
        status = EventStatus(args.status) if args.status else None
        show(outbox.list_events(status=status, render_id=args.render_id, limit=args.limit))
        return 0
    ids = list(args.id)
    if args.dead:
        ids += [r.id for r in outbox.list_events(status=EventStatus.DEAD, limit=100_000)]
    if not ids:
        parser.error("replay needs --id or --dead")
    if not args.yes:
        print(f"refusing to replay {len(ids)} delivery(ies) without --yes", file=sys.stderr)
        return 2
    print(f"events: replayed={outbox.replay_dead(ids)} selected={len(ids)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
