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

    ratio = fig("lifecycle", "postgresql", "ratio_to_bare")
    floor = fig("lifecycle", "postgresql", "floor", "ratio_to_bare")
    add(
        "lifecycle >= 0.10 x bare Dramatiq (postgresql)",
        ratio,
        None if ratio is None else ratio >= 0.10,
        "-"
        if ratio is None
        else f"{ratio:.3f} x" + ("" if floor is None else f" (floor {floor:.3f} x)"),
    )
    rate = bench.sizes.latency_rate
    p99 = fig("start_latency", "p99_ms")
    achieved = bench.sections.get("start_latency", {}).get("settings", {})
    add(
        f"start latency p99 <= 100 ms at {rate:g} renders/s",
        p99,
        None if p99 is None or math.isnan(p99) else p99 <= 100,
        "-"
        if p99 is None
        else f"{p99:.1f} ms (arrivals {achieved.get('achieved_rate_per_s', '?')}/s)",
    )
    p99 = fig("completion_latency", "p99_ms")
    limit = bench.poll_interval_for_target * 1000 + 500
    add(
        f"completion latency p99 <= poll interval + 500 ms ({limit:.0f} ms)",
        p99,
        None if p99 is None or math.isnan(p99) else p99 <= limit,
        "-" if p99 is None else f"{p99:.0f} ms",
    )
    largest = str(max(bench.sizes.sweep_sizes))
    ratio = fig("poll_sweep", largest, "ratio_to_bare")
    add(
        f"poll sweep >= 0.8 x bare boto3 invoke ({int(largest):,} in flight)",
        ratio,
        None if ratio is None else ratio >= 0.8,
        "-" if ratio is None else f"{ratio:.3f} x",
    )
    for kind in ("sqlite", "postgresql"):
        value = fig("enqueue", kind, "batched_renders_per_s")
        add(
            f"enqueue batched >= 1,000 renders/s ({kind})",
            value,
            None if value is None else value >= 1_000,
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
        "worker RSS <= 150 MB",
        worst,
        None if worst is None else worst <= 150,
        "-" if worst is None else f"{worst:.1f} MB",
    )
