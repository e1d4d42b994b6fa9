"""Cancel renders: ``python -m scripts.cancel``.

Select pending and rendering renders, show them, ask, then cancel each one (one guarded
UPDATE, so a render that completes meanwhile stays complete). A pending render never starts;
a rendering one is stopped on Lambda by a worker (``worker/cancellation.py``).

    python -m scripts.cancel --user u1 --dry-run
    python -m scripts.cancel --render-id 3f2c... --reason "customer asked" --yes
    python -m scripts.cancel --status pending --since 1h --limit 500 --yes

Exit status: 0 when every selected render was cancelled (or had moved on), 1 when a cancel
failed, 2 on bad usage (or no confirmation). The last line is a summary for cron logs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlmodel import col

from scripts.selection import add_selection, check_selection, confirmed, select_renders
from shared import renders
from shared.errors import IllegalTransition
from shared.log import configure_logging, get_logger
from shared.models import Render, RenderStatus

log = get_logger("cancel")
console = Console(stderr=False, width=None if sys.stdout.isatty() else 200)
CANCELLABLE = (RenderStatus.PENDING, RenderStatus.RENDERING)


@dataclass
class Outcome:
    selected: int = 0
    cancelled: list[str] = field(default_factory=list)
    raced: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self, dry_run: bool) -> str:
        verb = "would_cancel" if dry_run else "cancelled"
        return (
            f"cancel: selected={self.selected} {verb}={len(self.cancelled)} "
            f"raced={len(self.raced)} errors={len(self.errors)}"
        )


def select_cancellable(args: argparse.Namespace) -> list[Render]:
    statuses = [RenderStatus(s) for s in args.status] if args.status else list(CANCELLABLE)
    return select_renders(
        args,
        col(Render.status).in_(statuses),
        since_column=col(Render.created_at),
        order_by=col(Render.created_at),
    )


def show(selected: list[Render]) -> None:
    table = Table(title=f"{len(selected)} render(s) selected")
    for column in ("render", "user", "generation", "status", "created at", "progress"):
        table.add_column(column, overflow="fold")
    for r in selected:
        table.add_row(
            r.id,
            escape(r.user_id),
            escape(r.generation_id),
            r.status,
            f"{r.created_at:%Y-%m-%d %H:%M:%S}",
            f"{r.progress:.0%}",
        )
    console.print(table)


def cancel(selected: list[Render], reason: str) -> Outcome:
    outcome = Outcome(selected=len(selected))
    for render in selected:
        try:
            renders.cancel(render.id, reason)
        except IllegalTransition as exc:
            log.info("render not cancelled: it moved on", render_id=render.id, status=exc.actual)
            outcome.raced.append(render.id)
            continue
        except Exception as exc:
            log.error("cancel failed", render_id=render.id, error=str(exc))
            outcome.errors.append(render.id)
            continue
        log.info("render cancelled", render_id=render.id, reason=reason)
        outcome.cancelled.append(render.id)
    return outcome


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.cancel",
        description="Cancel pending and rendering renders (stopped on Lambda by a worker).",
    )
    add_selection(parser, since_help="created since: 2h, 1d, or ISO time")
    parser.add_argument(
        "--status",
        action="append",
        choices=[s.value for s in CANCELLABLE],
        help="only renders in this state (repeatable; default both)",
    )
    parser.add_argument("--reason", default="cancelled by an operator", help="kept on the render")
    args = parser.parse_args(argv)
    check_selection(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    selected = select_cancellable(args)
    show(selected)
    if args.dry_run:
        print(Outcome(selected=len(selected), cancelled=[r.id for r in selected]).summary(True))
        return 0
    if selected and not confirmed(args, f"Cancel {len(selected)} render(s)?"):
        print(Outcome(selected=len(selected)).summary(dry_run=False))
        return 2
    outcome = cancel(selected, args.reason)
    print(outcome.summary(dry_run=False))
    return 1 if outcome.errors else 0


if __name__ == "__main__":
    sys.exit(main())
