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
from devtools.bench.run import PROCFILE_GROUPS_NOTE, Run
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


class _Paced:
    """What one paced run measured."""

    def __init__(self) -> None:
        self.start_lat: list[float] = []
        self.done_lat: list[float] = []
        self.readable_lat: list[float] = []
        self.missing = 0
        self.producer_ms: list[float] = []
        self.late = 0
        self.requests = 0
        self.produced_s = 0.0
        self.first_starts: list[float] = []
        self.worker_cpu_ms_per_render = 0.0
        self.emulator_cpu_ms_per_render = 0.0
        self.progress_calls_per_render = 0.0
        self.machine_busy_while_paced = 0.0

    def start_figures(self, n: int) -> dict[str, object]:
        starts = self.first_starts
        return {
            **summarize_ms(self.start_lat),
            "renders": n,
            "not_started": self.missing,
            "producer_call_p50_ms": round(percentile(self.producer_ms, 50) * 1000, 3),
            # What this workload costs (start, 3-4 polls, one of them at the predicted end) against
            # the lifecycle's one poll per render, and how busy the machine was while paced.
            "worker_cpu_ms_per_render": self.worker_cpu_ms_per_render,
            # The emulator runs on the same cores (AWS's, in production).
            "emulator_cpu_ms_per_render": self.emulator_cpu_ms_per_render,
            "progress_calls_per_render": self.progress_calls_per_render,
            "machine_busy_while_paced": self.machine_busy_while_paced,
            # Below the arrival rate, a backlog builds and latency grows with the run's length.
            "starts_per_s": round((len(starts) - 1) / (starts[-1] - starts[0]), 1)
            if len(starts) > 1
            else None,
        }


# Render lengths spread over 1-5 s of frames (60-300 at 60 fps; 4-8 s from start to done with
# the emulated launch and combine, so ~3.8 progress calls each), so that renders finish at every
# point of their poll period, as real ones do; equal lengths would all finish at the same point
# and make the figure depend on that coincidence.
_SPEED, _POLL_INTERVAL_S = 60.0, 2.0


def _frames_of(i: int) -> int:
    return 60 + (i * 97) % 241


def _paced_run(bench: Bench, kind: str, rate: float, n_warm: int, n: int, *, split: bool) -> _Paced:
    """Renders enqueued one by one at ``rate`` against one worker group serving every queue
    (the benchmark's ``-p``/``-t``), or, with ``split``, against the Procfile's groups."""
    from shared.producer import enqueue_render

    settings = {**UNLIMITED, "POLL_INTERVAL_S": str(_POLL_INTERVAL_S)}
    out = _Paced()
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(bench.database(kind))
        run = stack.enter_context(
            Run(
                bench,
                "latency-procfile" if split else "latency",
                db_url,
                settings=settings,
                emulator_args=("--speed", str(_SPEED)),
            )
        )
        run.start_workers(procfile_groups=split)
        run.start_scheduler()
        requests = [make_request(i, tag="lat", frames=_frames_of(i)) for i in range(n_warm + n)]
        # (index, render id, scheduled, called, returned), epoch seconds.
        calls: list[tuple[int, str, float, float, float]] = []

        def produce(i: int, scheduled: float) -> None:
            called = time.time()
            render = enqueue_render(requests[i])
            calls.append((i, render.id, scheduled, called, time.time()))

        cpu_begin = run.cpu_snapshot()
        # A pool, so that one slow producer call does not delay the next ones: the
        # arrival rate stays what was asked for, like many web requests would.
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
        out.produced_s = time.monotonic() - begin
        cpu_paced = run.cpu_snapshot()
        calls.sort()
        out.late = sum(1 for c in calls if c[3] - c[2] > 0.05)
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
        out.progress_calls_per_render = round(stats["status_calls"] / len(requests), 2)
        run.record_rss()
    out.requests = len(requests)
    cpu = Run.cpu_figures(cpu_begin, cpu_done, len(requests))
    out.worker_cpu_ms_per_render = cpu["worker_cpu_ms_per_unit"]
    out.emulator_cpu_ms_per_render = cpu["emulator_cpu_ms_per_unit"]
    out.machine_busy_while_paced = busy_fraction(cpu_begin["machine"], cpu_paced["machine"])
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
    for _i, render_id, _scheduled, called, _returned in calls[n_warm:]:
        row = rows.get(render_id, {})
        out_name = row.get("out_name") or f"{render_id}-1.mp4"
        times = starts.get(out_name)
        if not times:
            out.missing += 1
            continue
        out.start_lat.append(times[0] - called)
        if row.get("status") == "complete" and row.get("completed_at") and out_name in finished:
            out.done_lat.append(row["completed_at"] - finished[out_name])
            if out_name in visible:
                out.readable_lat.append(row["completed_at"] - visible[out_name])
    out.producer_ms = [(ret - called) for *_, called, ret in calls[n_warm:]]
    out.first_starts = sorted(times[0] for times in starts.values() if times)
    return out


def latency(bench: Bench) -> None:
    """Start and completion latency from one paced run (the default 2 s poll interval); start
    latency again with the Procfile's worker groups (starts and polls in processes of their
    own) at the same rate."""
    kind = bench.main_kind()
    (rate, rate_source), seconds = _paced_rate(bench), bench.sizes.latency_seconds
    n_warm = int(rate * bench.sizes.latency_warmup_s)
    n = int(rate * seconds)
    speed, poll_interval = _SPEED, _POLL_INTERVAL_S
    paced = _paced_run(bench, kind, rate, n_warm, n, split=False)
    split = _paced_run(bench, kind, rate, n_warm, n, split=True)
    common = {
        **bench.worker_settings(),
        "database": kind,
        "paced_rate_per_s": rate,
        "paced_rate": rate_source,
        "measured_seconds": seconds,
        "warmup_renders_excluded": n_warm,
        "producer": "16 threads; each enqueue_render call starts at its scheduled time "
        "if a thread is free",
        "achieved_rate_per_s": round(paced.requests / paced.produced_s, 1),
        "producer_calls_started_over_50ms_late": paced.late,
        **UNLIMITED,
    }
    start_fig = {
        **paced.start_figures(n),
        "procfile_groups": {
            **split.start_figures(n),
            "groups": PROCFILE_GROUPS_NOTE,
            "achieved_rate_per_s": round(split.requests / split.produced_s, 1),
        },
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
    readable = summarize_ms(paced.readable_lat)
    done_fig: dict[str, object] = {
        **summarize_ms(paced.done_lat),
        "renders": len(paced.done_lat),
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
        f"worker CPU {start_fig['worker_cpu_ms_per_render']:.2f} ms/render (emulator "
        f"{start_fig['emulator_cpu_ms_per_render']:.2f}; "
        f"{start_fig['progress_calls_per_render']:.2f} progress calls), machine busy "
        f"{start_fig['machine_busy_while_paced']:.0%} while paced",
    )
    grouped = start_fig["procfile_groups"]
    assert isinstance(grouped, dict)
    bench.row(
        "start latency p50 / p95 / p99, Procfile groups",
        f"{grouped['p50_ms']:.1f} / {grouped['p95_ms']:.1f} / {grouped['p99_ms']:.1f} ms",
        f"same rate, {PROCFILE_GROUPS_NOTE}; worker CPU "
        f"{grouped['worker_cpu_ms_per_render']:.2f} ms/render, machine busy "
        f"{grouped['machine_busy_while_paced']:.0%} while paced",
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
