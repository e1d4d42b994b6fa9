"""Replay failed renders: ``python -m scripts.replay_failed``.

Select failed renders, show them, ask, then move each one ``failed -> pending`` (one guarded
UPDATE, so two concurrent runs replay a render once) and enqueue one message for it. The
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
from shared import repository
from shared.errors import IllegalTransition
from shared.log import configure_logging, get_logger
from shared.messages import enqueue_many, producer_broker, start_render_message
from shared.models import ErrorCode, Render, RenderStatus
from shared.producer import message_payload

log = get_logger("replay_failed")
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
    if force or render.error_code is None:
        return None
    try:
        code = ErrorCode(render.error_code)
    except ValueError:
        return None
    if not code.replayable:
        return f"{code.value}: replaying the same request cannot fix it (use --force)"
    return None


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
    outcome = Outcome(selected=len(renders))
    broker = producer_broker()
    for render in renders:
        if skip_reason(render, force):
            outcome.skipped.append(render.id)
            continue
        try:
            pending = repository.replay(render.id)
        except IllegalTransition as exc:
            # Another run (or a worker) moved it first: it is replayed once, by them.
            log.info("render not replayed: it moved on", render_id=render.id, status=exc.actual)
            outcome.raced.append(render.id)
            continue
        except Exception as exc:
            log.error("replay failed", render_id=render.id, error=str(exc))
            outcome.errors.append(render.id)
            continue
        try:
            message = start_render_message(message_payload(pending.id, pending.as_request()))
            enqueue_many(broker, [message])
        except Exception as exc:
            # The render is pending without a message: the reconciler will enqueue it.
            log.error("replayed render not enqueued", render_id=render.id, error=str(exc))
            outcome.errors.append(render.id)
            continue
        log.info("render replayed", render_id=pending.id, attempts=pending.attempts)
        outcome.replayed.append(render.id)
    return outcome


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
