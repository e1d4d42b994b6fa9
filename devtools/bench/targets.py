"""The targets table: each section's headline figure against the performance issue's target.

Read after every section has run, from the figures in ``Bench.sections``; a section that did
not run (``--only``) or failed shows as "not measured". With ``--quick`` every target is
marked as measured at the smaller sizes.
"""

from __future__ import annotations

import math
from typing import Any

from devtools.bench.common import fmt_rate
from devtools.bench.context import Bench


def evaluate_targets(bench: Bench) -> None:
    quick = " (--quick sizes)" if bench.args.quick else ""

    def add(target: str, measured: Any, ok: bool | None, shown: str) -> None:
        status = "not measured" if ok is None else ("met" if ok else "NOT met")
        bench.targets.append(
            {"target": target + quick, "measured": measured, "shown": shown, "status": status}
        )

    def fig(section: str, *path: str) -> Any:
        value: Any = bench.sections.get(section, {}).get("figures")
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    ratio = fig("lifecycle", "postgresql", "ratio_to_floor")
    each = fig("lifecycle", "postgresql", "ratio_to_floor_each_run")
    add(
        "lifecycle >= 0.6 x its floor (postgresql, median of the runs)",
        ratio,
        None if ratio is None else ratio >= 0.6,
        "-"
        if ratio is None
        else f"{ratio:.3f} x" + (f" (runs {', '.join(f'{r:.3f}' for r in each)})" if each else ""),
    )
    cpu = fig("lifecycle", "postgresql", "worker_cpu_ms_per_unit")
    add(
        "worker CPU <= 5 ms per render (postgresql lifecycle)",
        cpu,
        None if cpu is None else cpu <= 5,
        "-" if cpu is None else f"{cpu:.2f} ms",
    )
    settings = bench.sections.get("start_latency", {}).get("settings", {})
    p99 = fig("start_latency", "p99_ms")
    add(
        f"start latency p99 <= 100 ms at {settings.get('paced_rate', 'a paced rate')}",
        p99,
        None if p99 is None or math.isnan(p99) else p99 <= 100,
        "-"
        if p99 is None
        else f"{p99:.1f} ms (paced {settings.get('paced_rate_per_s', '?')}/s, "
        f"achieved {settings.get('achieved_rate_per_s', '?')}/s)",
    )
    p99 = fig("completion_latency", "p99_ms")
    readable = fig("completion_latency", "from_done_readable", "p99_ms")
    limit = bench.poll_interval_for_target * 1000 + 250
    add(
        f"completion latency p99 <= poll interval + 250 ms ({limit:.0f} ms)",
        p99,
        None if p99 is None or math.isnan(p99) else p99 <= limit,
        "-"
        if p99 is None
        else f"{p99:.0f} ms"
        + ("" if readable is None else f" ({readable:.0f} ms from done readable)"),
    )
    largest = str(max(bench.sizes.sweep_sizes))
    ratio = fig("poll_sweep", largest, "ratio_to_bare")
    add(
        f"poll sweep >= 0.9 x bare boto3 invoke ({int(largest):,} in flight)",
        ratio,
        None if ratio is None else ratio >= 0.9,
        "-" if ratio is None else f"{ratio:.3f} x",
    )
    value = fig("enqueue", "postgresql", "batched_renders_per_s")
    add(
        "enqueue batched >= 3,000 renders/s (postgresql)",
        value,
        None if value is None else value >= 3_000,
        fmt_rate(value, "renders/s"),
    )
    p99 = fig("throttle", "hooks", "p99_ms")
    add(
        "throttle overhead p99 <= 2 ms (middleware hooks)",
        p99,
        None if p99 is None else p99 <= 2,
        "-" if p99 is None else f"{p99:.3f} ms",
    )
    worst = fig("memory", "worker_peak_mb")
    add(
        "worker RSS <= 120 MB",
        worst,
        None if worst is None else worst <= 120,
        "-" if worst is None else f"{worst:.1f} MB",
    )
