"""Section ``memory``: peak RSS of the ``dramatiq`` worker processes of the runs above.

Nothing is run here: every ``Run`` records its workers' VmHWM just before they stop
(``devtools.bench.run.Run.record_rss``), and this section reports the largest, with the bare
baseline's workers apart. ``--only memory`` therefore also runs ``lifecycle``.
"""

from __future__ import annotations

from typing import Any

from devtools.bench.context import Bench


def memory(bench: Bench) -> None:
    """Peak RSS of the worker processes of every run above (the bare baseline apart)."""
    bare = [r for r in bench.rss.values() if r["run"].split("-")[0] == "bare"]
    renderq = [r for r in bench.rss.values() if r not in bare]

    def peak(records: list[dict[str, Any]]) -> float | None:
        values = [v for r in records for v in r["workers_mb"].values()]
        return max(values) if values else None

    worst = peak(renderq)
    bench.sections["memory"] = {
        "runs": len(renderq),
        "settings": {
            **bench.worker_settings(),
            "measured": "VmHWM of every forked dramatiq worker process, read just before "
            "each run's workers are stopped (MB = 10^6 bytes)",
        },
        "figures": {
            "worker_peak_mb": worst,
            "bare_worker_peak_mb": peak(bare),
            "by_run": list(bench.rss.values()),
        },
    }
    per_run = ", ".join(
        f"{r['run']}={max(r['workers_mb'].values()):.0f}" for r in renderq if r["workers_mb"]
    )
    bench.row(
        "worker peak RSS (max)",
        "-" if worst is None else f"{worst:.1f} MB",
        per_run or "no renderq worker run",
    )
    if peak(bare) is not None:
        bench.row("bare dramatiq worker peak RSS", f"{peak(bare):.1f} MB", "no-op actor")
