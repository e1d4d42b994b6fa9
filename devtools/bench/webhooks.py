"""Section ``webhooks``: completion through Remotion's webhooks, and what polling remains.

The web process receives the emulator's webhooks (sent as Remotion's launch function sends
them, ``packages/serverless/src/invoke-webhook.ts``) and completes renders through the same
outcome code as the poller. Two runs:

* **latency**: renders of 1-5 s arrive at a steady rate; completion latency is the time from
  the moment the emulator POSTs the success webhook to ``complete`` in the database (Remotion
  itself sends it after its next progress upload, up to 250 ms after ``postRenderData``: that
  part is Remotion's, shown apart as ``remotion_delay``);
* **polls**: 20-second renders in webhook-only mode (no progress polling): progress calls per
  render (each is a billed Lambda invocation; polling every 2 s makes about ten).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from devtools.bench.common import fetch_rows, make_request, terminal_count
from devtools.bench.config import UNLIMITED
from devtools.bench.context import Bench
from devtools.bench.run import Run
from devtools.bench.support import summarize_ms
from devtools.devstack import free_port, wait_for

SECRET = "bench-webhook-secret-0123456789abcdef"


def _settings() -> dict[str, str]:
    port = free_port()
    return {
        **UNLIMITED,
        "WEB_PORT": str(port),
        "WEB_HOST": "127.0.0.1",
        "REMOTION_WEBHOOK_URL": f"http://127.0.0.1:{port}/webhooks/remotion",
        "REMOTION_WEBHOOK_SECRET": SECRET,
        "SAFETY_POLL_INTERVAL_S": "60",
    }


def _paced(run: Run, requests: list[Any], rate: float) -> list[str]:
    from shared.producer import enqueue_render

    ids = []
    begin = time.monotonic()
    for i, request in enumerate(requests):
        delay = begin + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ids.append(enqueue_render(request).id)
    return ids


def webhooks(bench: Bench) -> None:
    kind = bench.main_kind()
    rate = bench.sizes.webhook_rate
    n = int(rate * bench.sizes.webhook_seconds)
    speed = 60.0
    figures: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(bench.database(kind))
        run = stack.enter_context(
            Run(bench, "webhooks", db_url, settings=_settings(), emulator_args=("--speed", "60"))
        )
        run.start_web()
        run.start_workers()
        run.start_scheduler()
        requests = [make_request(i, tag="wh", frames=60 + (i * 97) % 241) for i in range(n)]
        ids = _paced(run, requests, rate)
        wait_for(lambda: terminal_count() >= n, timeout=120, interval=0.25, what="webhook renders")
        rows = {r["id"]: r for r in fetch_rows()}
        stats = run.emulator_stats()
    sent = {
        r["out_name"]: (r["webhook_sent_at"], r["finished_at"])
        for r in stats.get("renders", {}).values()
        if r.get("webhook_sent_at") is not None
    }
    done = [rows[rid] for rid in ids if rows[rid].get("status") == "complete"]
    latencies = [r["completed_at"] - sent[r["out_name"]][0] for r in done if r["out_name"] in sent]
    remotion = [
        sent[r["out_name"]][0] - sent[r["out_name"]][1] for r in done if r["out_name"] in sent
    ]
    figures["latency"] = {
        **summarize_ms(latencies),
        "remotion_delay": summarize_ms(remotion),
        "renders": n,
        "complete": len(latencies),
        "status_calls": stats["status_calls"],
        "webhooks": stats["webhooks"],
    }

    long_n, long_frames, long_speed = bench.sizes.webhook_long_renders, 600, 30.0  # 20 s
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(bench.database(kind))
        run = stack.enter_context(
            Run(
                bench,
                "webhook-polls",
                db_url,
                settings=_settings(),
                emulator_args=("--speed", str(long_speed)),
            )
        )
        run.start_web()
        run.start_workers()
        run.start_scheduler()
        from shared.producer import enqueue_render

        for i in range(long_n):
            enqueue_render(make_request(i, tag="whlong", frames=long_frames))
        wait_for(lambda: terminal_count() >= long_n, timeout=180, interval=0.5, what="20 s renders")
        stats = run.emulator_stats()
        statuses = {r["status"] for r in fetch_rows()}
    figures["polls"] = {
        "renders": long_n,
        "render_seconds": long_frames / long_speed,
        "status_calls": stats["status_calls"],
        "progress_calls_per_render": round(stats["status_calls"] / long_n, 2),
        "statuses": sorted(statuses),
    }
    lat = figures["latency"]
    bench.row(
        "completion latency with webhooks p50 / p99",
        f"{lat['p50_ms']:.0f} / {lat['p99_ms']:.0f} ms",
        f"{kind}, {n} renders of 1-5 s at {rate:g}/s, webhook POSTed -> complete",
    )
    bench.row(
        "progress calls per 20 s render, webhook-only",
        f"{figures['polls']['progress_calls_per_render']:g}",
        f"{long_n} renders, SAFETY_POLL_INTERVAL_S=60, no progress polling",
    )
    bench.sections["webhooks"] = {
        "runs": 1,
        "settings": {
            **bench.worker_settings(),
            "database": kind,
            "emulator_speed_fps": speed,
            "SAFETY_POLL_INTERVAL_S": 60,
            "timing": "completed_at - when the emulator POSTed the render's success webhook",
        },
        "figures": figures,
    }
