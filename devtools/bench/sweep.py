"""Section ``poll_sweep``: one poll sweep over N renders in flight, against bare boto3.

For each size, N renders are put in flight without the queue (``start_inflight_worker`` in
spawned helper processes, not timed) against an emulator whose renders never finish and whose
progress calls take 50 ms; the scheduler's first sweep over all of them is timed from the
sweep's own record. The ceiling is the same status calls made by bare boto3 with the same
processes and POLL_CONCURRENCY threads (``devtools.bench.helpers``).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from devtools.bench.common import chunks, cpu_note, fetch_rows, fmt_rate, make_request
from devtools.bench.config import UNLIMITED
from devtools.bench.context import Bench
from devtools.bench.helpers import start_inflight_worker
from devtools.bench.run import Run
from devtools.devstack import wait_for


def poll_sweep(bench: Bench) -> None:
    """One sweep over N renders in flight whose progress calls take 50 ms, against the
    ceiling: the same calls made by bare boto3 with the same concurrency."""
    kind = bench.main_kind()
    figures = {str(n): _sweep_one(bench, kind, n) for n in bench.sizes.sweep_sizes}
    bench.sections["poll_sweep"] = {
        "runs": 1,
        "settings": {
            **bench.worker_settings(),
            "database": kind,
            "status_delay_ms": bench.sizes.sweep_status_delay_ms,
            "POLL_INTERVAL": 2.0,
            "POLL_BATCH_SIZE": "default (100)",
            "POLL_CONCURRENCY": bench.poll_concurrency,
            "RENDER_TIMEOUT": 86400,
            "in_flight_setup": "repository.insert_pending_many, then per render "
            "RenderLambda.start (real payload and outName) + repository.mark_rendering "
            f"from {bench.args.processes} helper processes x 8 threads (no queue, no "
            "claim); not timed",
            "emulator": "--speed 0.01 --function-timeout-s 86400: renders never finish",
            "sweep_timing": "poll sweep record: planned_at -> last batch finished",
            "bare": f"{bench.args.processes} processes x POLL_CONCURRENCY threads, one "
            "reused boto3 client per process, status payloads of the same renders",
        },
        "figures": figures,
    }
    for n, fig in figures.items():
        label = f"{int(n):,} in flight"
        bench.row(
            f"poll sweep ({label})",
            f"{fig['sweep_seconds']:.2f} s = {fmt_rate(fig['renders_per_s'], 'renders/s')}",
            f"{kind}, status delay {bench.sizes.sweep_status_delay_ms:g} ms, "
            f"polled once: {fig['polled_once']:,}/{int(n):,}, status calls by the sweep's "
            f"end: {fig['emulator_status_calls_at_sweep_end']:,}; " + cpu_note(fig, "poll"),
        )
        bench.row(
            f"bare boto3 invoke ({label})",
            fmt_rate(fig["bare_calls_per_s"], "calls/s"),
            f"{bench.args.processes} x {bench.poll_concurrency} threads, same emulator",
        )
        bench.row(f"poll sweep / bare ratio ({label})", f"{fig['ratio_to_bare']:.3f}", "")


def _sweep_one(bench: Bench, kind: str, n: int) -> dict[str, Any]:
    from remotion_lambda import RemotionClient

    from shared import repository
    from shared.settings import get_settings

    settings = {**UNLIMITED, "POLL_INTERVAL_S": "2", "RENDER_TIMEOUT_S": "86400"}
    emulator_args = (
        "--speed",
        "0.01",
        "--function-timeout-s",
        "86400",
        "--status-delay-ms",
        str(bench.sizes.sweep_status_delay_ms),
    )
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(bench.database(kind))
        run = stack.enter_context(
            Run(bench, f"sweep-{n}", db_url, settings=settings, emulator_args=emulator_args)
        )
        product = get_settings()
        bench.poll_concurrency = product.poll_concurrency
        ids = [str(uuid.uuid4()) for _ in range(n)]
        requests = [make_request(i, tag=f"sweep-{n}") for i in range(n)]
        setup_started = time.monotonic()
        for part in chunks(list(zip(ids, requests, strict=True)), 1_000):
            repository.insert_pending_many(part)
        p = bench.args.processes
        failed = bench.helpers.run_processes(
            start_inflight_worker, [(ids[i::p], 8) for i in range(p)], timeout=900
        )
        setup_s = time.monotonic() - setup_started
        rendering = sum(1 for r in fetch_rows() if r["status"] == "rendering")
        if rendering != n:
            raise RuntimeError(f"only {rendering}/{n} renders in flight ({sum(failed)} failed)")
        run.start_workers()
        # A render is first polled one POLL_INTERVAL after its start: wait until the last
        # one set up is due, so the first sweep finds all N due at once.
        time.sleep(max(0.0, setup_started + setup_s + 2.1 - time.monotonic()))
        cpu_before = run.cpu_snapshot()
        scheduler_at = time.time()
        run.start_scheduler()

        def finished() -> dict[str, Any] | None:
            """The first sweep over all N since the scheduler started, once it is done. Read
            from the sweeps' own hashes: ``last_sweep`` is replaced by the next sweep, which
            can finish within a second when this one took longer than the poll interval."""
            done = [r for r in _sweeps() if "duration_s" in r and int(r["renders"]) >= n]
            done = [r for r in done if float(r["planned_at"]) >= scheduler_at - 1]
            return min(done, key=lambda r: float(r["planned_at"])) if done else None

        record = wait_for(
            finished, timeout=120 + n / 20, interval=0.1, what=f"a sweep over {n} renders"
        )
        cpu_after = run.cpu_snapshot()
        # More status calls than renders by the end of the first sweep means sweeps
        # overlapped (or a render was polled twice): wasted, billed Lambda calls.
        status_calls = run.emulator_stats().get("status_calls")
        run.stop_workers()
        rows = fetch_rows()
        polled = [r["last_polled_at"] for r in rows if r["last_polled_at"] is not None]
        client = RemotionClient(
            region=product.remotion_aws_region,
            serve_url=product.remotion_serve_url,
            function_name=product.remotion_lambda_function_name,
        )
        payloads = [
            client.construct_render_progress_request(r["lambda_render_id"], r["lambda_bucket"])
            for r in rows
        ]
        bare = bench.helpers.bare_invoke(
            product.remotion_lambda_function_name, payloads, p, bench.poll_concurrency
        )
    assert record is not None  # wait_for only returns a truthy value
    sweep_s = float(record["duration_s"])
    rate = n / sweep_s
    return {
        "renders": n,
        "setup_seconds": round(setup_s, 2),
        "sweep_seconds": round(sweep_s, 3),
        "renders_per_s": round(rate, 1),
        "polled_once": len(polled),
        "emulator_status_calls_at_sweep_end": status_calls,
        "sweep_record": record,
        "bare_calls_per_s": bare["calls_per_s"],
        "bare_seconds": bare["seconds"],
        "bare_errors": bare["errors"],
        "ratio_to_bare": round(rate / bare["calls_per_s"], 4),
        **run.cpu_figures(cpu_before, cpu_after, n),
    }


def _sweeps() -> list[dict[str, Any]]:
    """Every sweep hash of this run's namespace (``<ns>:poll:sweep:<slot>``), decoded."""
    from shared.redis_client import get_redis
    from shared.redis_keys import keys

    client = get_redis()
    found = []
    for key in client.scan_iter(match=keys().poll_sweeps(), count=1000):
        raw: dict[bytes, bytes] = client.hgetall(key)  # type: ignore[assignment]  # redis-py types sync and async results as one union
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        if "planned_at" in fields and "renders" in fields:
            found.append(fields)
    return found
