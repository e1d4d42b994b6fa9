"""Section ``lifecycle_webhooks``: the lifecycle with Remotion's webhooks, and its own floor.

The same work as ``lifecycle`` (renders enqueued in bulk, an emulator that finishes them at
once, rate limit and budget out of the way) on PostgreSQL, but with ``REMOTION_WEBHOOK_URL``
set: every render's end arrives as the emulator's signed success webhook at a real ``python -m
web`` (sent as Remotion's launch function sends it, ``packages/serverless/src/
invoke-webhook.ts``), and the workers do not poll (``SAFETY_POLL_INTERVAL_S`` 60 is longer
than the run). A render then costs one Lambda invocation and one webhook request instead of
two invocations.

Its floor, measured right after on the same machine state: one bare boto3 ``start`` invoke,
one bare Dramatiq message, three committed single-row UPDATEs (the claim, ``pending ->
rendering`` and the completion, which a webhook applies alone where a poll batch shares it)
and one bare webhook POST over a new connection to an ASGI app that only reads the body
(``devtools.bench.bare_receiver``, served by uvicorn like the web process).
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

from devtools.bench.bulk import time_bulk
from devtools.bench.common import cpu_note, fmt_rate
from devtools.bench.config import UNLIMITED
from devtools.bench.context import Bench
from devtools.bench.run import Run
from devtools.devstack import free_port, wait_for

SECRET = "bench-webhook-secret-0123456789abcdef"
#: The web process's uvicorn processes: one per core of this 2-core machine (README).
WEB_WORKERS = 2


def _settings(bench: Bench) -> dict[str, str]:
    port = free_port()
    return {
        **UNLIMITED,
        "POLL_INTERVAL_S": str(bench.sizes.lifecycle_poll_interval_s),
        "WEB_PORT": str(port),
        "WEB_HOST": "127.0.0.1",
        "WEB_WORKERS": str(WEB_WORKERS),
        "REMOTION_WEBHOOK_URL": f"http://127.0.0.1:{port}/webhooks/remotion",
        "REMOTION_WEBHOOK_SECRET": SECRET,
        "SAFETY_POLL_INTERVAL_S": "60",
    }


def lifecycle_webhooks(bench: Bench) -> None:
    kind = bench.main_kind()
    n = bench.sizes.lifecycle_renders
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(bench.database(kind))
        run = stack.enter_context(
            Run(
                bench,
                "lifecycle-webhooks",
                db_url,
                settings=_settings(bench),
                emulator_args=("--speed", "1000000"),
            )
        )
        run.start_web()
        run.start_workers()
        run.start_scheduler()
        bulk = time_bulk(
            run, n, warmup=bench.sizes.lifecycle_warmup, tag="life-wh", what="webhooks"
        )
        floor = _floor(bench, run, db_url, bulk.rows) if kind == "postgresql" else None
    rate, rows, cpu = bulk.renders_per_s, bulk.rows, bulk.cpu
    figures: dict[str, Any] = {
        "renders": n,
        "renders_per_s": round(rate, 1),
        "seconds": round(bulk.seconds, 3),
        "complete": sum(1 for r in rows if r["status"] == "complete"),
        "failed": sum(1 for r in rows if r["status"] == "failed"),
        "emulator_status_calls": bulk.emulator_delta("status_calls"),
        "emulator_webhooks": bulk.emulator_delta("webhooks"),
        "ratio_to_bare": round(rate / bench.bare_rate, 4),
        **cpu,
        "warm_up": bulk.warm_up,
        "worker_and_web_cpu_ms_per_unit": round(
            cpu["worker_cpu_ms_per_unit"] + cpu["web_cpu_ms_per_unit"], 3
        ),
    }
    if floor:
        figures["floor"] = floor
        figures["ratio_to_floor"] = round(rate / floor["renders_per_s"], 4)
    bench.sections["lifecycle_webhooks"] = {
        "runs": 1,
        "settings": {
            **bench.worker_settings(),
            "database": kind,
            "renders": n,
            "emulator_speed_fps": 1e6,
            "WEB_WORKERS": WEB_WORKERS,
            "SAFETY_POLL_INTERVAL_S": 60,
            **UNLIMITED,
            "warm_up": f"{bench.sizes.lifecycle_warmup} renders through the fresh workers "
            "and web process first, not timed (devtools.bench.bulk)",
            "timing": "first enqueue_renders call -> last completed_at",
        },
        "figures": figures,
    }
    bench.row(
        f"lifecycle with webhooks ({kind})",
        fmt_rate(rate, "renders/s"),
        f"{n:,} renders, {figures['emulator_status_calls']} progress calls, "
        f"failed={figures['failed']}; "
        + cpu_note(figures, "render")
        + f", web {figures['web_cpu_ms_per_unit']:.2f} ms",
    )
    if floor:
        bench.row(
            f"lifecycle with webhooks / floor ({kind})",
            f"{figures['ratio_to_floor']:.3f}",
            f"floor {fmt_rate(floor['renders_per_s'], 'renders/s')}: 1 bare start invoke "
            f"({fmt_rate(floor['bare_invoke_calls_per_s'], 'calls/s')}) + 1 bare message + "
            f"3 bare committed UPDATEs ({fmt_rate(floor['bare_update_commits_per_s'], '/s')}) "
            f"+ 1 bare webhook POST ({fmt_rate(floor['bare_webhook_posts_per_s'], '/s')})",
        )


def _webhook_body(i: int, row: dict[str, Any]) -> bytes:
    """A success webhook of the emulator's shape and size (``devtools.emulator.finish``)."""
    url = f"https://{row['lambda_bucket']}.s3.us-east-1.amazonaws.com/renders/x/floor-{i}.mp4"
    payload = {
        "type": "success",
        "renderId": row["lambda_render_id"],
        "expectedBucketOwner": "123456789012",
        "bucketName": row["lambda_bucket"],
        "customData": {"render_id": row["id"], "attempt": 1},
        "outputUrl": url,
        "lambdaErrors": [],
        "outputFile": url,
        "separateAudio": None,
        "outputSequence": None,
        "timeToFinish": 1234,
        "costs": {
            "accruedSoFar": 0.0001,
            "displayCost": "$0.0001",
            "currency": "USD",
            "disclaimer": "Estimated cost for function invocations only. Does not include "
            "cost for other AWS services.",
            "estimatedCost": 0.0001,
            "estimatedDisplayCost": "$0.0001",
        },
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def _floor(bench: Bench, run: Run, db_url: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The parts a render through webhooks cannot do without, each alone at full speed."""
    from remotion_lambda import RemotionClient, RenderMediaParams

    from shared.settings import get_settings

    product = get_settings()
    client = RemotionClient(
        region=product.remotion_aws_region,
        serve_url=product.remotion_serve_url,
        function_name=product.remotion_lambda_function_name,
    )
    payloads = [
        client.construct_render_request(
            RenderMediaParams(
                composition="Main",
                input_props={"i": i},
                codec="h264",
                force_width=1280,
                force_height=720,
                force_fps=30,
                force_duration_in_frames=30,
                out_name=f"floor-{i}.mp4",
            ),
            render_type="video-or-audio",
        )
        for i in range(len(rows))
    ]
    p, t = bench.args.processes, bench.args.threads
    invoke = bench.helpers.bare_invoke(product.remotion_lambda_function_name, payloads, p, t)
    updates = bench.helpers.bare_updates(db_url, [r["id"] for r in rows] * 3, p, t)
    port = free_port()
    receiver = run.stack.spawn(
        "bare-receiver",
        [
            *(sys.executable, "-m", "uvicorn", "devtools.bench.bare_receiver:app"),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", str(WEB_WORKERS)),
            *("--no-access-log", "--log-level", "warning"),
        ],
    )
    try:
        url = f"http://127.0.0.1:{port}/webhooks/remotion"
        wait_for(lambda: _answers(url), timeout=30, interval=0.1, what="the bare receiver")
        bodies = [_webhook_body(i, row) for i, row in enumerate(rows)]
        posts = bench.helpers.bare_posts(url, bodies, p, t)
    finally:
        run.stack.stop(receiver)
    per_render_s = (
        1 / invoke["calls_per_s"]
        + 1 / bench.bare_rate
        + 3 / updates["commits_per_s"]
        + 1 / posts["posts_per_s"]
    )
    return {
        "renders_per_s": round(1 / per_render_s, 1),
        "bare_invoke_calls_per_s": invoke["calls_per_s"],
        "bare_invoke_errors": invoke["errors"],
        "bare_update_commits_per_s": updates["commits_per_s"],
        "bare_webhook_posts_per_s": posts["posts_per_s"],
        "bare_webhook_errors": posts["errors"],
        "bare_dramatiq_msgs_per_s": round(bench.bare_rate, 1),
        "per_render": "1 start invoke + 1 message + 3 committed UPDATEs + 1 webhook POST",
    }


def _answers(url: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(urllib.request.Request(url, b"{}"), timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False
