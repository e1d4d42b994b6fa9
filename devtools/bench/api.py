"""Section ``api``: renders created over the HTTP API, one per request and in batches.

A real web process (``python -m web``, ``WEB_WORKERS`` uvicorn processes, PostgreSQL when
reachable), no workers running; the load comes from ``devtools/bench/api_client.py`` in a
process of its own (httpx, asyncio, ``connections`` kept-alive connections). Figures: renders
stored and enqueued per second, and each request's latency (send -> answer) p50/p99. Every
request goes the whole way: key check (cached), the per-key rate limit in Redis, the row, the
message. Afterwards every render must have its row and its message.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from typing import Any

from devtools.bench.common import fmt_rate
from devtools.bench.config import UNLIMITED
from devtools.bench.context import Bench
from devtools.bench.run import Run
from devtools.bench.support import summarize_ms
from devtools.devstack import ROOT, free_port

WEB_WORKERS = 2


def _load(url: str, key: str, renders: int, batch: int, connections: int, tag: str) -> Any:
    argv = [sys.executable, "-m", "devtools.bench.api_client", "--url", url]
    argv += ["--renders", str(renders), "--batch", str(batch), "--connections", str(connections)]
    argv += ["--tag", tag]
    env = {**os.environ, "RENDERQ_BENCH_API_KEY": key}
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"api client failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _stored_and_sent() -> tuple[int, int]:
    import sqlalchemy as sa

    from shared.db import get_engine
    from shared.redis_client import get_redis
    from shared.redis_keys import keys
    from shared.settings import get_settings

    with get_engine().connect() as conn:
        rows = int(conn.execute(sa.text("SELECT count(*) FROM render")).scalar_one())
    return rows, int(get_redis().hlen(keys().queue_messages(get_settings().start_queue)))


def api(bench: Bench) -> None:
    kind = bench.main_kind()
    single_n, batched_n = bench.sizes.api_single, bench.sizes.api_batched
    batch, connections, batch_connections = bench.sizes.api_batch, 64, 8
    port = free_port()
    settings = {
        **UNLIMITED,
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(port),
        "WEB_WORKERS": str(WEB_WORKERS),
        "API_REQUEST_RATE_LIMIT": "1000000/1s",
    }
    figures: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        db_url = stack.enter_context(bench.database(kind))
        run = stack.enter_context(Run(bench, "api", db_url, settings=settings))
        run.start_web()
        from shared import api_keys

        _, key = api_keys.create("bench", ["produce", "read"])
        url = f"http://127.0.0.1:{port}"
        for name, n, size, conns in (
            ("single", single_n, 1, connections),
            ("batched", batched_n, batch, batch_connections),
        ):
            before = _stored_and_sent()
            result = _load(url, key, n, size, conns, f"api-{name}")
            after = _stored_and_sent()
            figures[name] = {
                "renders": n,
                "batch": size,
                "connections": conns,
                "renders_per_s": round(n / result["elapsed_s"], 1),
                "requests_per_s": round(len(result["latencies_s"]) / result["elapsed_s"], 1),
                "latency": summarize_ms(result["latencies_s"]),
                "statuses": result["statuses"],
                "rows_stored": after[0] - before[0],
                "messages_sent": after[1] - before[1],
            }
    for name, target in (("single", 500), ("batched", 2_000)):
        f = figures[name]
        lat = f["latency"]
        bench.row(
            f"API enqueue {name} ({kind})",
            fmt_rate(f["renders_per_s"], "renders/s"),
            f"target >= {target:,}/s; p50 / p99 {lat['p50_ms']:.1f} / {lat['p99_ms']:.1f} ms; "
            f"{f['renders']:,} renders, batch {f['batch']}, {f['connections']} connections, "
            f"{WEB_WORKERS} uvicorn workers",
        )
    bench.sections["api"] = {
        "runs": 1,
        "settings": {
            "database": kind,
            "web_workers": WEB_WORKERS,
            "client": "devtools/bench/api_client.py: httpx AsyncClient, one process",
            "timing": "first request sent -> last answer; latency per request send -> answer",
        },
        "figures": figures,
    }
