"""Section ``lifecycle``: renders/s from ``enqueue_renders`` to ``complete``, and its floor.

Run on SQLite and PostgreSQL with nothing else limiting (an emulator that finishes renders at
once, rate limit and budget out of the way, a short POLL_INTERVAL), through warm workers
(``devtools.bench.bulk``), and reported as a ratio to the bare-Dramatiq rate of the same run
(``devtools.bench.bare``). On PostgreSQL each run also measures the floor: the parts a render
cannot do without, each measured alone, which bounds the lifecycle rate from above. ``--runs
N`` repeats bare + lifecycle and keeps the run with the median ratio (``_median_run``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from devtools.bench.bare import measure_bare
from devtools.bench.bulk import BATCH, time_bulk
from devtools.bench.common import cpu_note, fmt_rate
from devtools.bench.config import UNLIMITED
from devtools.bench.context import Bench
from devtools.bench.run import Run

#: Figures kept for every run beside the median one's (name in the results: figure of a run).
_EACH_RUN = {
    "worker_cpu_ms_each_run": "worker_cpu_ms_per_unit",
    "machine_busy_each_run": "machine_busy_fraction",
    "context_switches_each_run": "machine_context_switches_per_unit",
}


def _median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median ratio (the lower middle one for an even count), with every
    run's ratio attached. PostgreSQL runs, which measure their own floor, are ordered by the
    ratio to that floor (the performance issue's figure), the others by the ratio to bare."""
    key = "ratio_to_floor" if "ratio_to_floor" in results[0] else "ratio_to_bare"
    ordered = sorted(results, key=lambda r: r[key])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    chosen["ratio_each_run"] = [r["ratio_to_bare"] for r in results]
    for each, figure in _EACH_RUN.items():
        chosen[each] = [r.get(figure) for r in results]
    if key == "ratio_to_floor":
        chosen["ratio_to_floor_each_run"] = [r["ratio_to_floor"] for r in results]
    return chosen


def lifecycle(bench: Bench) -> None:
    """Renders/s from ``enqueue_renders`` to ``complete`` with nothing else limiting: the
    emulator finishes renders at once, rate limit and budget are out of the way, and
    POLL_INTERVAL is short, so what remains is renderq's own cost per render."""
    runs = bench.args.runs
    all_runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in bench.kinds()}
    bare_rates = [bench.bare_rate]
    for i in range(runs):
        if i:
            # Each repetition re-measures its own baseline right before it: the ratio of
            # a pair taken minutes apart on a shared machine would mostly measure drift.
            bench.bare_rate = measure_bare(bench, f"bare-{i + 1}")["messages_per_s"]
            bare_rates.append(bench.bare_rate)
        for kind in bench.kinds():
            all_runs[kind].append(_lifecycle_one(bench, kind))
    figures = {kind: _median_run(results) for kind, results in all_runs.items()}
    if runs > 1:
        bench.sections["bare"]["figures"]["messages_per_s_each_run"] = bare_rates
        bench.row(
            "bare dramatiq drain (each run)",
            ", ".join(fmt_rate(rate) for rate in bare_rates),
            "the baseline of each lifecycle run, measured right before it",
        )
    interval = bench.sizes.lifecycle_poll_interval_s
    bench.sections["lifecycle"] = {
        "runs": runs,
        "settings": {
            **bench.worker_settings(),
            "renders": bench.sizes.lifecycle_renders,
            "enqueue": f"enqueue_renders in batches of {BATCH}, 20 users",
            "emulator_speed_fps": 1e6,
            "frames": 30,
            "POLL_INTERVAL": interval,
            **UNLIMITED,
            "warm_up": f"{bench.sizes.lifecycle_warmup} renders through the fresh workers "
            "first, not timed (devtools.bench.bulk)",
            "timing": "first enqueue_renders call -> last completed_at",
            "runs": f"{runs}; each run re-measures bare Dramatiq first and its floor after; "
            "the figures are those of the run with the median ratio (to the floor on "
            "PostgreSQL)",
        },
        "figures": figures,
    }
    for kind, fig in figures.items():
        bench.row(
            f"lifecycle ({kind})",
            fmt_rate(fig["renders_per_s"], "renders/s"),
            f"{fig['renders']:,} renders, POLL_INTERVAL={interval:g}s, "
            f"failed={fig['failed']}; " + cpu_note(fig, "render") + "; after "
            f"{fig['warm_up']['renders']} warm-up renders "
            f"({fig['warm_up']['worker_cpu_ms_per_render']:.2f} ms/render)",
        )
    for kind, fig in figures.items():
        ratios = fig["ratio_each_run"]
        bench.row(
            f"lifecycle / bare ratio ({kind})",
            f"{fig['ratio_to_bare']:.3f}",
            f"bare = {fmt_rate(fig['bare_msgs_per_s'], 'msg/s')} in the same run"
            if runs == 1
            else f"median of {runs} runs, each against its own bare run: "
            + ", ".join(f"{r:.3f}" for r in ratios),
        )
    for kind, fig in figures.items():
        if "floor" not in fig:
            continue
        floor = fig["floor"]
        each = fig.get("ratio_to_floor_each_run", [fig["ratio_to_floor"]])
        bench.row(
            f"lifecycle / floor ratio ({kind})",
            f"{fig['ratio_to_floor']:.3f}",
            "median of " + ", ".join(f"{r:.3f}" for r in each) if len(each) > 1 else "one run",
        )
        bench.row(
            f"lifecycle floor ({kind})",
            f"{fmt_rate(floor['renders_per_s'], 'renders/s')} = "
            f"{floor['ratio_to_bare']:.3f} x bare",
            "upper bound from parts measured alone: 2 bare boto3 invokes "
            f"({fmt_rate(floor['bare_invoke_calls_per_s'], 'calls/s')}) + 1 bare message + "
            f"2 bare committed UPDATEs ({fmt_rate(floor['bare_update_commits_per_s'], '/s')})",
        )


def _lifecycle_one(bench: Bench, kind: str) -> dict[str, Any]:
    n = bench.sizes.lifecycle_renders
    settings = {**UNLIMITED, "POLL_INTERVAL_S": str(bench.sizes.lifecycle_poll_interval_s)}
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(bench.database(kind))
        run = stack.enter_context(
            Run(
                bench,
                f"lifecycle-{kind}",
                db_url,
                settings=settings,
                emulator_args=("--speed", "1000000"),
            )
        )
        run.start_workers()
        run.start_scheduler()
        bulk = time_bulk(run, n, warmup=bench.sizes.lifecycle_warmup, tag=f"life-{kind}", what=kind)
        run.record_rss()
        # Measured in the same run right after, on the same machine state: the ratio to it is
        # what the performance issue's target is set against.
        floor = _lifecycle_floor(bench, db_url, bulk.rows) if kind == "postgresql" else None
    rate = bulk.renders_per_s
    failed = [r for r in bulk.rows if r["status"] == "failed"]
    return {
        "renders": n,
        "renders_per_s": round(rate, 1),
        "seconds": round(bulk.seconds, 3),
        "enqueue_seconds": round(bulk.enqueue_seconds, 3),
        "ratio_to_bare": round(rate / bench.bare_rate, 4),
        "bare_msgs_per_s": round(bench.bare_rate, 1),
        "failed": len(failed),
        "failed_codes": sorted({str(r["error_code"]) for r in failed}),
        "emulator_starts_total": bulk.emulator_delta("starts_total"),
        "emulator_status_calls": bulk.emulator_delta("status_calls"),
        **bulk.cpu,
        "warm_up": bulk.warm_up,
        **(
            {"floor": floor, "ratio_to_floor": round(rate / floor["renders_per_s"], 4)}
            if floor
            else {}
        ),
    }


def _lifecycle_floor(bench: Bench, db_url: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What a render cannot do without, each part measured alone at full speed on this
    machine with the same processes and threads: two Lambda invokes (a ``start`` and a
    ``status``) against the same emulator, one Dramatiq message (the bare rate), and two
    committed single-row UPDATEs (the claim and ``pending -> rendering``).

    Summing their per-unit machine time bounds the lifecycle rate from above: no rate
    limit, budget, logging, ORM, metrics or poll bookkeeping is counted. If this bound is
    under a target, no tuning of renderq's own code can meet that target here.
    """
    from remotion_lambda import RemotionClient, RenderMediaParams

    from shared.settings import get_settings

    product = get_settings()
    client = RemotionClient(
        region=product.remotion_aws_region,
        serve_url=product.remotion_serve_url,
        function_name=product.remotion_lambda_function_name,
    )
    payloads: list[str] = []
    for i, row in enumerate(rows):
        params = RenderMediaParams(
            composition="Main",
            input_props={"i": i},
            codec="h264",
            force_width=1280,
            force_height=720,
            force_fps=30,
            force_duration_in_frames=30,
            out_name=f"floor-{i}.mp4",
        )
        payloads.append(client.construct_render_request(params, render_type="video-or-audio"))
        status = (row["lambda_render_id"], row["lambda_bucket"])
        payloads.append(client.construct_render_progress_request(*status))
    p, t = bench.args.processes, bench.args.threads
    invoke = bench.helpers.bare_invoke(product.remotion_lambda_function_name, payloads, p, t)
    ids = [r["id"] for r in rows] * 2
    updates = bench.helpers.bare_updates(db_url, ids, p, t)
    per_render_s = 2 / invoke["calls_per_s"] + 1 / bench.bare_rate + 2 / updates["commits_per_s"]
    rate = 1 / per_render_s
    return {
        "renders_per_s": round(rate, 1),
        "ratio_to_bare": round(rate / bench.bare_rate, 4),
        "bare_invoke_calls_per_s": invoke["calls_per_s"],
        "bare_invoke_errors": invoke["errors"],
        "bare_update_commits_per_s": updates["commits_per_s"],
        "bare_dramatiq_msgs_per_s": round(bench.bare_rate, 1),
        "per_render": "2 invokes (start + status) + 1 message + 2 committed UPDATEs",
    }
