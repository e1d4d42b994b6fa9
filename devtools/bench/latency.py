"""Sections ``start_latency`` and ``completion_latency``: one paced run gives both.

Renders are enqueued one by one at a fixed arrival rate (``enqueue_render`` from a pool of
producer threads, like many web requests) with the default 2 s poll interval. Start latency
is the time from the producer call to the render's ``start`` at the emulator; completion
latency, from the moment the emulator finishes a render to ``complete`` in the database. The
two sections share this module because they share the run: splitting it would measure two
different runs.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

from devtools.bench.common import fetch_rows, make_request, terminal_count
from devtools.bench.config import UNLIMITED
from devtools.bench.context import Bench
from devtools.bench.run import Run
from devtools.bench.support import busy_fraction, percentile, summarize_ms
from devtools.devstack import wait_for


def _paced_rate(bench: Bench) -> tuple[float, str]:
    """Half the lifecycle rate of this run (the performance issue's load point: latency at
    a load the workers can carry with room to spare), or ``latency_rate`` when lifecycle did
    not run."""
    measured = (
        bench.sections.get("lifecycle", {})
        .get("figures", {})
        .get(bench.main_kind(), {})
        .get("renders_per_s")
    )
    if measured:
        return round(measured / 2, 1), "half the lifecycle rate of this run"
    return bench.sizes.latency_rate, "latency_rate (lifecycle did not run)"


def latency(bench: Bench) -> None:
    """Start and completion latency from one paced run (the default 2 s poll interval)."""
    from shared.producer import enqueue_render

    kind = bench.main_kind()
    (rate, rate_source), seconds = _paced_rate(bench), bench.sizes.latency_seconds
    n_warm = int(rate * bench.sizes.latency_warmup_s)
    n = int(rate * seconds)
    speed, poll_interval = 60.0, 2.0

    # Render lengths spread over 1-5 s (60-300 frames at 60 fps), so that renders finish at
    # every point of their poll period, as real ones do; equal lengths would all finish at
    # the same point and make the figure depend on that coincidence.
    def frames_of(i: int) -> int:
        return 60 + (i * 97) % 241

    settings = {**UNLIMITED, "POLL_INTERVAL_S": str(poll_interval)}
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(bench.database(kind))
        run = stack.enter_context(
            Run(
                bench,
                "latency",
                db_url,
                settings=settings,
                emulator_args=("--speed", str(speed)),
            )
        )
        run.start_workers()
        run.start_scheduler()
        requests = [make_request(i, tag="lat", frames=frames_of(i)) for i in range(n_warm + n)]
        # (index, render id, scheduled, called, returned), epoch seconds.
        calls: list[tuple[int, str, float, float, float]] = []

        def produce(i: int, scheduled: float) -> None:
            called = time.time()
            render = enqueue_render(requests[i])
            calls.append((i, render.id, scheduled, called, time.time()))

        # A pool, so that one slow producer call does not delay the next ones: the
        # arrival rate stays what was asked for, like many web requests would.
        cpu_begin = run.cpu_snapshot()
        with ThreadPoolExecutor(16, thread_name_prefix="producer") as pool:
            begin, begin_epoch = time.monotonic(), time.time()
            futures = []
            for i in range(len(requests)):
                delay = begin + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(produce, i, begin_epoch + i / rate))
            for future in futures:
                future.result()
        produced_s = time.monotonic() - begin
        cpu_paced = run.cpu_snapshot()
        calls.sort()
        late = sum(1 for c in calls if c[3] - c[2] > 0.05)
        wait_for(
            lambda: terminal_count() >= len(requests),
            # Generous: when starts cannot keep up with the pace, the backlog drains late.
            timeout=120 + len(requests) / 10,
            interval=0.25,
            what="paced renders to finish",
        )
        cpu_done = run.cpu_snapshot()
        rows = {r["id"]: r for r in fetch_rows()}
        stats = run.emulator_stats()
        run.record_rss()
    starts = stats.get("start_times_by_out_name", {})
    # When the emulated launch wrote postRenderData (its overheads and combine included).
    finished = {
        r["out_name"]: r["finished_at"]
        for r in stats.get("renders", {}).values()
        if r.get("finished_at") is not None
    }
    # Remotion writes progress.json at most every 250 ms (overall-render-progress.ts; the
    # emulator scales it with its speed), so "done" is readable a little after postRenderData.
    visible = {
        r["out_name"]: r["done_visible_at"]
        for r in stats.get("renders", {}).values()
        if r.get("done_visible_at") is not None
    }
    start_lat: list[float] = []
    done_lat: list[float] = []
    readable_lat: list[float] = []
    missing = 0
    for _i, render_id, _scheduled, called, _returned in calls[n_warm:]:
        row = rows.get(render_id, {})
        out_name = row.get("out_name") or f"{render_id}-1.mp4"
        times = starts.get(out_name)
        if not times:
            missing += 1
            continue
        start_lat.append(times[0] - called)
        if row.get("status") == "complete" and row.get("completed_at") and out_name in finished:
            done_lat.append(row["completed_at"] - finished[out_name])
            if out_name in visible:
                readable_lat.append(row["completed_at"] - visible[out_name])
    producer_ms = [(ret - called) for *_, called, ret in calls[n_warm:]]
    common = {
        **bench.worker_settings(),
        "database": kind,
        "paced_rate_per_s": rate,
        "paced_rate": rate_source,
        "measured_seconds": seconds,
        "warmup_renders_excluded": n_warm,
        "producer": "16 threads; each enqueue_render call starts at its scheduled time "
        "if a thread is free",
        "achieved_rate_per_s": round(len(requests) / produced_s, 1),
        "producer_calls_started_over_50ms_late": late,
        **UNLIMITED,
    }
    first_starts = sorted(times[0] for times in starts.values() if times)
    start_fig = {
        **summarize_ms(start_lat),
        "renders": n,
        "not_started": missing,
        "producer_call_p50_ms": round(percentile(producer_ms, 50) * 1000, 3),
        # What this workload costs (start, 1-3 polls, a poll at the predicted end) against the
        # lifecycle's one poll per render, and how busy the machine was while paced.
        "worker_cpu_ms_per_render": Run.cpu_figures(cpu_begin, cpu_done, len(requests))[
            "worker_cpu_ms_per_unit"
        ],
        "machine_busy_while_paced": busy_fraction(cpu_begin["machine"], cpu_paced["machine"]),
        # Below the arrival rate, a backlog builds and latency grows with the run's length.
        "starts_per_s": round((len(first_starts) - 1) / (first_starts[-1] - first_starts[0]), 1)
        if len(first_starts) > 1
        else None,
    }
    bench.sections["start_latency"] = {
        "runs": 1,
        "settings": {
            **common,
            "POLL_INTERVAL": poll_interval,
            "timing": "time.time() before enqueue_render -> emulator start time of the "
            "render's outName",
        },
        "figures": start_fig,
    }
    readable = summarize_ms(readable_lat)
    done_fig: dict[str, object] = {
        **summarize_ms(done_lat),
        "renders": len(done_lat),
        "from_done_readable": readable,
    }
    bench.sections["completion_latency"] = {
        "runs": 1,
        "settings": {
            **common,
            "POLL_INTERVAL": poll_interval,
            "emulator_speed_fps": speed,
            "frames": "60-300 (1-5 s), spread evenly",
            "timing": "completed_at - the emulator's postRenderData time of the render "
            "(from_done_readable: - the time progress.json first said so)",
        },
        "figures": done_fig,
    }
    bench.poll_interval_for_target = poll_interval
    bench.row(
        "start latency p50 / p95 / p99",
        f"{start_fig['p50_ms']:.1f} / {start_fig['p95_ms']:.1f} / {start_fig['p99_ms']:.1f} ms",
        f"{kind}, paced {rate:g}/s for {seconds:g}s ({n:,} renders), achieved "
        f"{common['achieved_rate_per_s']:g}/s; starts ran at {start_fig['starts_per_s']}/s; "
        f"worker CPU {start_fig['worker_cpu_ms_per_render']:.2f} ms/render, machine busy "
        f"{start_fig['machine_busy_while_paced']:.0%} while paced",
    )
    bench.row(
        "completion latency p50 / p99",
        f"{done_fig['p50_ms']:.0f} / {done_fig['p99_ms']:.0f} ms",
        f"{kind}, POLL_INTERVAL={poll_interval:g}s, renders of 60-300 frames at {speed:g} fps; "
        "from postRenderData",
    )
    bench.row(
        "completion latency p50 / p99, from done readable",
        f"{readable['p50_ms']:.0f} / {readable['p99_ms']:.0f} ms",
        "from the progress.json write that says done (Remotion uploads it at most every "
        f"250 ms; {250 * 100 / speed:.0f} ms at this emulator speed)",
    )
