"""Replay failed renders: ``python -m scripts.replay_failed``.

Select failed renders, show them, ask, then move each one ``failed -> pending`` (one guarded
UPDATE, so two concurrent runs replay a render once) and enqueue one message for it
(``shared.operations.replay``, which the console and the HTTP API use too; each replay is in
the audit log as ``script:replay_failed``). The
previous error is kept in ``error_history`` and ``attempts`` goes up. Replayed renders go
through the same queue and the same per-user rate limit as new ones. If this process dies
between the UPDATE and the enqueue, the reconciler re-enqueues the render.

    python -m scripts.replay_failed --error-code timeout --since 2h --dry-run
    python -m scripts.replay_failed --user u1 --limit 20 --yes
    python -m scripts.replay_failed --render-id 3f2c... --render-id 9a1b... --yes

Exit status: 0 when every selected render was replayed or skipped for a reason, 1 when a
replay failed, 2 on bad usage (or no confirmation). The last line is a summary for cron logs.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlmodel import col

from scripts.selection import add_selection, check_selection, confirmed, select_renders
from shared import operations
from shared.log import configure_logging
from shared.models import Render, RenderStatus

console = Console(stderr=False, width=None if sys.stdout.isatty() else 200)


def select_failed(args: argparse.Namespace) -> list[Render]:
    conditions: list[Any] = [Render.status == RenderStatus.FAILED]
    if args.error_code:
        conditions.append(col(Render.error_code).in_(args.error_code))
    return select_renders(
        args,
        *conditions,
        since_column=col(Render.completed_at),
        order_by=col(Render.completed_at),
    )


def skip_reason(render: Render, force: bool) -> str | None:
    reason = operations.skip_reason(render, force)
    return None if reason is None else reason.replace(operations.FORCE_HINT, "use --force")


@dataclass
class Outcome:
    selected: int = 0
    replayed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    raced: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self, dry_run: bool) -> str:
        verb = "would_replay" if dry_run else "replayed"
        return (
            f"replay_failed: selected={self.selected} {verb}={len(self.replayed)} "
            f"skipped={len(self.skipped)} raced={len(self.raced)} errors={len(self.errors)}"
        )


def show(renders: list[Render], force: bool) -> None:
    table = Table(title=f"{len(renders)} failed render(s) selected")
    for column in ("render", "user", "generation", "error", "failed at", "attempts", "action"):
        table.add_column(column, overflow="fold")
    for r in renders:
        reason = skip_reason(r, force)
        table.add_row(
            r.id,
            r.user_id,
            r.generation_id,
            escape(f"[{r.error_code}] {(r.error_message or '')[:120]}"),
            f"{r.completed_at:%Y-%m-%d %H:%M:%S}" if r.completed_at else "-",
            str(r.attempts),
            escape(f"skip ({reason})") if reason else "replay",
        )
    console.print(table)


def replay(renders: list[Render], force: bool) -> Outcome:
    """``shared.operations.replay`` (the same rules as the console's and the API's replay),
    audited as this script."""
    done = operations.replay([r.id for r in renders], actor="script:replay_failed", force=force)
    return Outcome(
        selected=len(renders),
        replayed=done.replayed,
        skipped=list(done.skipped),
        raced=done.raced + done.not_found,
        errors=done.errors,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.replay_failed",
        description="Replay failed renders (failed -> pending, enqueued once).",
    )
    add_selection(parser, since_help="failed since: 2h, 1d, or ISO time")
    parser.add_argument("--error-code", action="append", default=[], help="repeatable")
    parser.add_argument(
        "--force", action="store_true", help="also replay failures a replay cannot fix"
    )
    args = parser.parse_args(argv)
    check_selection(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging()
    selected = select_failed(args)
    show(selected, args.force)
    if args.dry_run:
        outcome = Outcome(selected=len(selected))
        for r in selected:
            (outcome.skipped if skip_reason(r, args.force) else outcome.replayed).append(r.id)
        print(outcome.summary(dry_run=True))
        return 0
    to_replay = [r for r in selected if not skip_reason(r, args.force)]
    if to_replay and not confirmed(args, f"Replay {len(to_replay)} render(s)?"):
        print(Outcome(selected=len(selected)).summary(dry_run=False))
        return 2
    outcome = replay(selected, args.force)
    print(outcome.summary(dry_run=False))
    return 1 if outcome.errors else 0


if __name__ == "__main__":
    sys.exit(main())
