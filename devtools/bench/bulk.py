"""Renders enqueued in bulk through a warm worker group, timed: the shape both lifecycle
sections share (``lifecycle``, ``lifecycle_webhooks``).

A fresh worker group's first renders cost two to four times the CPU of later ones (measured,
cause not pinned down: its one-off costs such as the first compiles and connections are a few
ms). Production workers are long-lived and the floor's bare parts are warm too (their
connections opened first), so ``time_bulk`` first puts ``warmup`` renders through the fresh
workers, untimed, and reports their CPU per render beside the timed ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from devtools.bench.common import chunks, fetch_rows, make_request, terminal_count
from devtools.devstack import wait_for

if TYPE_CHECKING:
    from devtools.bench.run import Run

#: Renders per ``enqueue_renders`` call, as a bulk producer sends them.
BATCH = 500


@dataclass
class Bulk:
    """What one timed bulk run measured: the timed renders' rows and what surrounds them."""

    renders: int
    t0: float
    enqueue_seconds: float
    rows: list[dict[str, Any]]
    cpu: dict[str, Any]
    stats_before: dict[str, Any]
    stats_after: dict[str, Any]
    warm_up: dict[str, Any]

    @property
    def seconds(self) -> float:
        """From the first ``enqueue_renders`` call to the last ``completed_at``."""
        return max(r["completed_at"] for r in self.rows if r["completed_at"] is not None) - self.t0

    @property
    def renders_per_s(self) -> float:
        return self.renders / self.seconds

    def emulator_delta(self, name: str) -> Any:
        """An emulator counter over the timed renders only (a number, or a dict of them)."""
        after, before = self.stats_after[name], self.stats_before[name]
        if isinstance(after, dict):
            return {k: v - before.get(k, 0) for k, v in after.items()}
        return after - before


def _warm_up(run: Run, count: int, tag: str, what: str) -> tuple[set[str], dict[str, Any]]:
    from shared.producer import enqueue_renders

    before = run.cpu_snapshot()
    stored = enqueue_renders([make_request(i, tag=f"warm-{tag}") for i in range(count)])
    wait_for(
        lambda: terminal_count() >= count,
        timeout=60 + count / 5,
        interval=0.05,
        what=f"{count} warm-up renders ({what})",
    )
    after = run.cpu_snapshot()
    cpu_ms = 1000 * (after["worker"] - before["worker"]) / count if count else 0.0
    return {r.id for r in stored}, {"renders": count, "worker_cpu_ms_per_render": round(cpu_ms, 3)}


def time_bulk(run: Run, n: int, *, warmup: int, tag: str, what: str) -> Bulk:
    """Warm the run's workers with ``warmup`` renders, then enqueue ``n`` in batches of
    ``BATCH`` and wait until all are terminal; CPU and emulator counters cover the ``n`` only."""
    from shared.producer import enqueue_renders

    warm_ids, warm = _warm_up(run, warmup, tag, what)
    requests = [make_request(i, tag=tag) for i in range(n)]
    stats_before = run.emulator_stats()
    cpu_before = run.cpu_snapshot()
    t0 = time.time()
    for part in chunks(requests, BATCH):
        enqueue_renders(part)
    enqueued_s = time.time() - t0
    wait_for(
        lambda: terminal_count() >= warmup + n,
        timeout=120 + n / 5,
        interval=0.2,
        what=f"{n} renders to finish ({what})",
    )
    cpu_after = run.cpu_snapshot()
    rows = [r for r in fetch_rows() if r["id"] not in warm_ids]
    return Bulk(
        renders=n,
        t0=t0,
        enqueue_seconds=enqueued_s,
        rows=rows,
        cpu=run.cpu_figures(cpu_before, cpu_after, n),
        stats_before=stats_before,
        stats_after=run.emulator_stats(),
        warm_up=warm,
    )
