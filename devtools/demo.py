"""``make demo``: the whole pipeline on one machine, in well under two minutes.

Starts (or reuses) Redis, migrates a fresh SQLite database, starts the Lambda emulator, a
``dramatiq`` worker and the scheduler, enqueues a realistic batch through the producer API,
shows live progress and prints a final table. Everything it started is stopped on exit; the
worker and scheduler logs (JSON lines) stay in ``var/demo/`` for a look afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table

from devtools.devstack import ROOT, Stack, drop_namespace, free_port

if TYPE_CHECKING:
    from shared.models import Render

# Wide enough for URLs when piped (CI logs), the terminal's own width otherwise.
console = Console(width=None if sys.stdout.isatty() else 220)

# (user, composition, width, height, fps, frames, props): what a small product might send.
BATCH: list[tuple[str, str, int, int, int, int, dict[str, Any]]] = [
    ("alice", "Intro", 1920, 1080, 30, 300, {"title": "Welcome, Alice"}),
    ("alice", "Recap", 1280, 720, 30, 450, {"title": "Your week"}),
    ("alice", "Story", 1080, 1920, 30, 600, {"title": "Vertical story"}),
    # Alice's fourth render is over the demo's rate limit (3 per 8 s): it waits, visibly.
    ("alice", "Teaser", 1280, 720, 30, 150, {"title": "One more"}),
    ("bob", "Intro", 1920, 1080, 60, 600, {"title": "Welcome, Bob"}),
    ("bob", "Teaser", 1080, 1080, 30, 240, {"title": "Square teaser"}),
    ("carol", "Recap", 1920, 1080, 25, 500, {"title": "Monthly recap"}),
    ("carol", "Intro", 1280, 720, 30, 150, {"title": "Hello Carol"}),
    ("carol", "Story", 1080, 1920, 30, 360, {"title": "Behind the scenes"}),
    ("dave", "Teaser", 1920, 1080, 30, 300, {"title": "Launch teaser"}),
    # One render the (emulated) function fails half way, to show a failure with its reason.
    (
        "dave",
        "Broken",
        1920,
        1080,
        30,
        300,
        {
            "title": "Broken asset",
            "__emulator__": {"fatal_at": 0.5, "message": "Could not load image assets/missing.png"},
        },
    ),
]


def fmt_seconds(start: datetime | None, end: datetime | None) -> str:
    if not start or not end:
        return "-"
    return f"{(end - start).total_seconds():.1f}s"


def progress_view(rows: Sequence[Render]) -> Group:
    table = Table(title="renders", expand=False)
    for column in ("render", "user", "composition", "status", "progress"):
        table.add_column(column)
    for r in rows:
        bar = ProgressBar(total=1.0, completed=r.progress, width=24)
        table.add_row(
            r.id[:8],
            r.user_id,
            r.composition,
            r.status,
            bar,
        )
    return Group(table)


def final_table(rows: Sequence[Render]) -> Table:
    table = Table(title="final state of every render")
    for column in (
        "render",
        "user",
        "size",
        "status",
        "progress",
        "queued",
        "rendered",
        "cost $",
        "output / error",
    ):
        table.add_column(column, overflow="fold")
    for r in rows:
        detail = escape(
            (r.output_url or "")
            if r.status == "complete"
            else f"[{r.error_code}] {r.error_message}"
        )
        table.add_row(
            r.id[:8],
            r.user_id,
            f"{r.width}x{r.height} {r.duration_in_frames / r.fps:.0f}s",
            r.status,
            f"{r.progress:.0%}",
            fmt_seconds(r.created_at, r.started_at),
            fmt_seconds(r.started_at, r.completed_at),
            f"{r.cost_usd or 0:.4f}",
            detail,
        )
    return table


def summary_line(rows: Sequence[Render], elapsed: float) -> str:
    counts = {s: 0 for s in ("pending", "rendering", "complete", "failed")}
    throttled = 0
    for r in rows:
        counts[r.status] += 1
        throttled += bool(r.status == "pending" and r.throttled_until)
    mean = sum(r.progress for r in rows) / max(1, len(rows))
    parts = ", ".join(f"{k} {v}" for k, v in counts.items())
    return f"{elapsed:5.1f}s  {parts}  (throttled {throttled})  mean progress {mean:.0%}"


def watch(
    get_many: Callable[[Sequence[str]], list[Render]],
    ids: list[str],
    deadline: float,
    started: float,
) -> None:
    """Live table on a terminal; a progress line every second when piped (CI logs).
    ``get_many`` is ``shared.renders.get_many`` (imported once the environment is set)."""

    def rows() -> list[Render]:
        return sorted(get_many(ids), key=lambda r: r.created_at)

    def done(current: list[Render]) -> bool:
        return all(r.status in ("complete", "failed") for r in current)

    if console.is_terminal:
        with Live(console=console, refresh_per_second=4) as live:
            while not done(current := rows()) and time.monotonic() < deadline:
                live.update(progress_view(current))
                time.sleep(0.25)
            live.update(progress_view(rows()))
    else:
        last = 0.0
        while not done(current := rows()) and time.monotonic() < deadline:
            if time.monotonic() - last >= 1.0:
                last = time.monotonic()
                console.print(summary_line(current, last - started))
            time.sleep(0.25)
        console.print(summary_line(rows(), time.monotonic() - started))
    if time.monotonic() >= deadline:
        console.print("[red]timed out waiting for renders[/]")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for renders")
    parser.add_argument("--speed", type=float, default=80.0, help="emulated frames per second")
    args = parser.parse_args()

    run_dir = ROOT / "var" / "demo"
    run_dir.mkdir(parents=True, exist_ok=True)
    for old in run_dir.glob("*.log"):
        old.unlink()
    stack = Stack(log_dir=run_dir)
    namespace = f"renderq-demo-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    try:
        redis_url = stack.ensure_redis(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
        db_path = run_dir / "demo.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db_path}{suffix}").unlink(missing_ok=True)
        database_url = os.environ.get("DEMO_DATABASE_URL", f"sqlite:///{db_path}")
        emulator_url = stack.start_emulator("--speed", str(args.speed))
        stack.env.update(
            {
                "REDIS_URL": redis_url,
                "REDIS_NAMESPACE": namespace,
                "DATABASE_URL": database_url,
                "AWS_ENDPOINT_URL_LAMBDA": emulator_url,
                "AWS_ENDPOINT_URL_S3": emulator_url,
                "REMOTION_AWS_ACCESS_KEY_ID": "AKIADEMODEMODEMODEMO",
                "REMOTION_AWS_SECRET_ACCESS_KEY": "demo-secret-not-a-real-key-000000000000",
                "LOG_FORMAT": "json",
                # Tighter than the 5/hour default so the demo shows a throttled render.
                "RENDER_RATE_LIMIT": os.environ.get("DEMO_RENDER_RATE_LIMIT", "3/8s"),
                "METRICS_PORT": str(free_port()),
                "METRICS_DIR": str(run_dir / "metrics"),
            }
        )
        os.environ.update(stack.env)
        console.print(f"[bold]renderq demo[/]  redis={redis_url} namespace={namespace}")
        console.print(f"database={database_url}  lambda emulator={emulator_url}")
        console.print(f"per-user rate limit for the demo: {stack.env['RENDER_RATE_LIMIT']}")

        from devtools.migrate import upgrade_head

        upgrade_head(database_url)
        stack.start_worker(processes=2, threads=8)
        stack.start_scheduler()

        from shared import renders
        from shared.producer import (
            RenderLimitExceeded,
            RenderRequest,
            enqueue_render,
            enqueue_renders,
        )

        requests = [
            RenderRequest(
                user_id=user,
                generation_id=f"gen-{user}-{i}",
                composition=comp,
                input_props=props,
                width=w,
                height=h,
                fps=fps,
                duration_in_frames=frames,
            )
            for i, (user, comp, w, h, fps, frames, props) in enumerate(BATCH)
        ]
        stored = enqueue_renders(requests)
        console.print(
            f"enqueued {len(stored)} renders for {len({r.user_id for r in stored})} users"
        )
        try:
            enqueue_render(
                RenderRequest(
                    user_id="erin",
                    generation_id="gen-erin-4k",
                    composition="Intro",
                    width=3840,
                    height=2160,
                    fps=30,
                    duration_in_frames=900,
                )
            )
        except RenderLimitExceeded as exc:
            console.print(f"[yellow]rejected at the producer, as it should be:[/] {exc}")

        ids = [r.id for r in stored]
        deadline = time.monotonic() + args.timeout
        watch(renders.get_many, ids, deadline, started)

        rows = sorted(renders.get_many(ids), key=lambda r: r.created_at)
        console.print(final_table(rows))
        save_metrics(int(stack.env["METRICS_PORT"]), run_dir / "metrics.txt")
        counts = renders.count_by_status()
        console.print(
            f"counts: {counts}   wall time: {time.monotonic() - started:.1f}s   "
            f"logs: {run_dir.relative_to(ROOT)}/"
        )
        expected_failures = sum(1 for *_, props in BATCH if "__emulator__" in props)
        ok = (
            counts["complete"] == len(BATCH) - expected_failures
            and counts["failed"] == expected_failures
        )
        if not ok:
            console.print("[red]demo finished with unexpected results[/]")
        return 0 if ok else 1
    finally:
        stack.close()
        _drop_namespace(namespace)


def save_metrics(port: int, path: Path) -> None:
    """Keep one Prometheus scrape of the demo's worker next to its logs."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            path.write_bytes(response.read())
        console.print(
            f"metrics scraped from http://127.0.0.1:{port}/metrics -> {path.relative_to(ROOT)}"
        )
    except OSError as exc:
        console.print(f"[yellow]could not scrape metrics: {exc}[/]")


def _drop_namespace(namespace: str) -> None:
    from shared.settings import get_settings

    try:
        drop_namespace(get_settings().redis_url, namespace)
    except Exception as exc:  # the private Redis is already gone; nothing to clean
        print(f"(namespace cleanup skipped: {exc})", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
