"""``python -m devtools.console_perf``: the console's server time with 100,000 renders.

Seeds a PostgreSQL database of its own (dropped afterwards) with ``--renders`` rows spread
over 30 days like a busy deployment (mostly complete, some failed and cancelled, a few hundred
rendering, a pending backlog, a share of it throttled), then times, in process through the
ASGI app (so the figure is server time: routing, session check, queries, Redis, rendering,
JSON), the overview feed, the overview page, the searches and a render page. The target is
200 ms for the overview (``docs/performance.md``, "Web console").

    python -m devtools.console_perf --pg postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from devtools.devstack import drop_namespace, scratch_database
from devtools.migrate import upgrade_head
from devtools.process import reset_caches
from shared.db import normalize_url

PASSWORD = "console perf password"
TERMINAL = ("complete", "failed", "cancelled")


def seed(url: str, total: int, seed_value: int = 7) -> None:
    from shared.models import Render, utcnow

    rng = random.Random(seed_value)
    now = utcnow()
    table = Render.__table__  # type: ignore[attr-defined]  # SQLModel sets it at class creation
    engine = sa.create_engine(normalize_url(url))
    rows: list[dict[str, Any]] = []
    statuses = ["complete"] * 900 + ["failed"] * 50 + ["cancelled"] * 20 + ["pending"] * 25
    codes = ["render_error", "timeout", "lambda_throttled", "limit_exceeded", "poll_failed"]
    with engine.begin() as conn:
        for i in range(total):
            status = "rendering" if i < 300 else rng.choice(statuses)
            created = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
            if status in ("pending", "rendering"):
                created = now - timedelta(seconds=rng.uniform(0, 900))
            ended = created + timedelta(seconds=rng.uniform(5, 120))
            rows.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128))),
                    "user_id": f"user-{rng.randrange(2000)}",
                    "generation_id": f"gen-{i}",
                    "status": status,
                    "progress": 1.0 if status == "complete" else rng.random() * 0.9,
                    "composition": "Main",
                    "input_props": {"title": f"video {i}", "scenes": list(range(20))},
                    "width": 1920,
                    "height": 1080,
                    "fps": 30,
                    "duration_in_frames": 300,
                    "codec": "h264",
                    "error_code": rng.choice(codes) if status == "failed" else None,
                    "error_message": "it broke" if status == "failed" else None,
                    "error_history": [],
                    "attempts": 1,
                    "start_requests": 1,
                    "poll_failures": 0,
                    "throttle_restarts": 0,
                    "throttled_until": (
                        now + timedelta(seconds=rng.uniform(1, 600))
                        if status == "pending" and rng.random() < 0.3
                        else None
                    ),
                    "created_at": created,
                    "updated_at": ended,
                    "started_at": created + timedelta(seconds=1) if status != "pending" else None,
                    "completed_at": ended
                    if status in ("complete", "failed", "cancelled")
                    else None,
                }
            )
            if len(rows) == 5000:
                conn.execute(sa.insert(table), rows)
                rows = []
        if rows:
            conn.execute(sa.insert(table), rows)
        conn.exec_driver_sql("ANALYZE render")
    engine.dispose()


def _time(client: Any, path: str, runs: int) -> dict[str, float]:
    """Server time (the route's ``Server-Timing``) and the in-process client's round trip."""
    client.get(path)  # warm: plans cached, connections open
    server, total = [], []
    for _ in range(runs):
        started = time.perf_counter()
        answer = client.get(path)
        total.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, (path, answer.status_code)
        server.append(float(answer.headers["server-timing"].split("dur=")[1]))
    server.sort()
    return {
        "median_ms": round(statistics.median(server), 1),
        "p95_ms": round(server[int(len(server) * 0.95) - 1], 1),
        "max_ms": round(server[-1], 1),
        "round_trip_median_ms": round(statistics.median(total), 1),
    }


def measure(url: str, redis_url: str, runs: int) -> dict[str, dict[str, float]]:
    from fastapi.testclient import TestClient

    from shared import operators
    from web.app import create_app

    namespace = f"renderq-console-perf-{uuid.uuid4().hex[:8]}"
    os.environ.update({"DATABASE_URL": url, "REDIS_URL": redis_url, "REDIS_NAMESPACE": namespace})
    reset_caches()
    try:
        operators.create("perf", PASSWORD)
        with TestClient(create_app(), follow_redirects=False) as client:
            login = {"name": "perf", "password": PASSWORD}
            answer = client.post(
                "/console/login", data=login, headers={"origin": "http://testserver"}
            )
            assert answer.status_code == 303
            engine = sa.create_engine(normalize_url(url))
            with engine.connect() as conn:
                query = sa.text("SELECT id FROM render WHERE status = 'failed' LIMIT 1")
                some_id = conn.execute(query).scalar_one()
            engine.dispose()
            paths = {
                "overview feed (JSON)": "/console/feed/overview",
                "overview page": "/console",
                "search: newest, no filter": "/console/renders",
                "search: one user": "/console/renders?user_id=user-7",
                "search: failed, one code": "/console/renders?status=failed&error_code=timeout",
                "search: error code only": "/console/renders?error_code=poll_failed",
                "render page": f"/console/renders/{some_id}",
            }
            return {name: _time(client, path, runs) for name, path in paths.items()}
    finally:
        drop_namespace(redis_url, namespace)
        reset_caches()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.console_perf")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--renders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args(argv)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    with scratch_database(args.pg, "renderq_console_perf") as url:
        upgrade_head(url)
        started = time.perf_counter()
        seed(url, args.renders)
        print(f"seeded {args.renders} renders in {time.perf_counter() - started:.1f} s")
        results = measure(url, args.redis, args.runs)
        from shared.db import dispose_engines

        dispose_engines()
    print(f"server time, ms, {args.runs} runs each; load average {os.getloadavg()[0]:.1f}")
    print(f"{'endpoint':34} {'median':>7} {'p95':>7} {'max':>7} {'round trip':>11}")
    for name, figures in results.items():
        print(
            f"{name:34} {figures['median_ms']:7.1f} {figures['p95_ms']:7.1f} "
            f"{figures['max_ms']:7.1f} {figures['round_trip_median_ms']:11.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
