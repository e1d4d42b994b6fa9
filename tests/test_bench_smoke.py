"""The benchmark still runs: ``python -m devtools.bench --quick`` on two cheap sections.

Not a timed test (the machine is shared and small): it only proves that the script starts,
measures, writes the JSON its readers rely on, exits 0 and leaves no Redis keys or databases
behind. The figures themselves come from a full run (``python -m devtools.bench``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa

from shared.db import normalize_url
from tests.conftest import DEFAULT_PG_URL, ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(90)
def test_quick_bench_writes_results_and_cleans_up(redis_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    pg_url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_PG_URL)
    env = {**os.environ, "REDIS_URL": redis_url}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.bench",
            "--quick",
            "--only",
            "enqueue,throttle",
            "--out",
            str(out),
            "--postgres-url",
            pg_url,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "throttle overhead p50 / p99" in proc.stdout  # the printed table
    results = json.loads(out.read_text())

    assert {"machine", "options", "sections", "table", "targets", "errors"} <= results.keys()
    assert results["errors"] == {}
    assert results["machine"]["cores"] >= 1 and results["machine"]["cpu_model"]
    assert results["options"]["quick"] is True
    assert set(results["sections"]) == {"enqueue", "throttle"}

    enqueue = results["sections"]["enqueue"]
    assert enqueue["runs"] == 1 and enqueue["settings"]
    for figures in enqueue["figures"].values():
        assert figures["single_renders_per_s"] > 0 and figures["batched_renders_per_s"] > 0
    assert "sqlite" in enqueue["figures"]

    throttle = results["sections"]["throttle"]["figures"]
    for path in ("hooks", "full_start_path"):
        assert 0 < throttle[path]["p50_ms"] <= throttle[path]["p99_ms"]

    figures = {row["figure"] for row in results["table"]}
    assert {"enqueue batched (sqlite)", "throttle overhead p50 / p99"} <= figures
    statuses = {t["target"].split(" (--quick")[0]: t["status"] for t in results["targets"]}
    assert statuses["throttle overhead p99 <= 2 ms (middleware hooks)"] in ("met", "NOT met")
    assert statuses["lifecycle >= 0.6 x its floor (postgresql, median of the runs)"] == (
        "not measured"
    )

    # Nothing left behind: the namespaces and databases are named after the bench's pid.
    client = redis.Redis.from_url(redis_url)
    leftovers = list(client.scan_iter(match=f"renderq-bench-{proc_pid(results)}-*", count=1000))
    client.close()
    assert leftovers == []
    if results.get("postgres_skipped") is None:
        engine = sa.create_engine(normalize_url(pg_url))
        with engine.connect() as conn:
            names = conn.execute(
                sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                {"p": f"renderq_bench_{proc_pid(results)}_%"},
            ).all()
        engine.dispose()
        assert names == []


def proc_pid(results: dict[str, object]) -> int:
    pid = results["pid"]
    assert isinstance(pid, int)
    return pid


@pytest.mark.timeout(240)
def test_quick_lifecycle_reports_the_ratio_and_its_floor(redis_url: str, tmp_path: Path) -> None:
    """Bare Dramatiq, the lifecycle on both databases and the floor (bare boto3 invokes and
    bare UPDATEs against the same emulator and database), twice, each lifecycle run paired
    with a bare run of its own; then the lifecycle through webhooks and its own floor."""
    out = tmp_path / "bench.json"
    pg_url = os.environ.get("TEST_POSTGRES_URL", DEFAULT_PG_URL)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "devtools.bench", "--quick"),
            *("--only", "lifecycle,lifecycle_webhooks"),
            *("--runs", "2", "--out", str(out), "--postgres-url", pg_url),
        ],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=230,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "lifecycle / bare ratio (postgresql)" in proc.stdout
    assert "median of 2 runs" in proc.stdout
    assert "lifecycle / floor ratio (postgresql)" in proc.stdout
    results = json.loads(out.read_text())
    assert set(results["sections"]) == {"bare", "lifecycle", "lifecycle_webhooks"}
    life = results["sections"]["lifecycle"]["figures"]
    assert results["sections"]["lifecycle"]["runs"] == 2
    assert len(results["sections"]["bare"]["figures"]["messages_per_s_each_run"]) == 2
    for kind in ("sqlite", "postgresql"):
        assert life[kind]["failed"] == 0 and life[kind]["renders_per_s"] > 0
        # The warm-up's renders went first and are counted apart from the timed ones.
        assert life[kind]["emulator_starts_total"] == life[kind]["renders"]
        assert life[kind]["warm_up"]["renders"] == 20
        assert life[kind]["warm_up"]["worker_cpu_ms_per_render"] > 0
        ratios = life[kind]["ratio_each_run"]
        assert len(ratios) == 2 and life[kind]["ratio_to_bare"] in ratios
    assert life["sqlite"]["ratio_to_bare"] == min(life["sqlite"]["ratio_each_run"])
    # PostgreSQL runs each measure their floor; the median is taken of the ratio to it.
    to_floor = life["postgresql"]["ratio_to_floor_each_run"]
    assert len(to_floor) == 2 and life["postgresql"]["ratio_to_floor"] == min(to_floor)
    floor = life["postgresql"]["floor"]
    assert life["postgresql"]["ratio_to_floor"] == pytest.approx(
        life["postgresql"]["renders_per_s"] / floor["renders_per_s"], rel=0.01
    )
    # Through webhooks: every render ended by its webhook at the web process, none by a poll.
    hooks = results["sections"]["lifecycle_webhooks"]["figures"]
    assert hooks["complete"] == hooks["renders"] and hooks["failed"] == 0
    assert hooks["emulator_webhooks"]["delivered"] == hooks["renders"]
    assert hooks["emulator_status_calls"] == 0
    assert hooks["web_cpu_ms_per_unit"] > 0
    hook_floor = hooks["floor"]
    assert hook_floor["bare_webhook_posts_per_s"] > 0 and hook_floor["bare_webhook_errors"] == 0
    assert hooks["ratio_to_floor"] == pytest.approx(
        hooks["renders_per_s"] / hook_floor["renders_per_s"], rel=0.01
    )
    assert floor["bare_invoke_errors"] == 0
    assert floor["bare_invoke_calls_per_s"] > 0 and floor["bare_update_commits_per_s"] > 0
    # The floor leaves out everything but the unavoidable parts, so it is above the lifecycle.
    assert floor["renders_per_s"] > life["postgresql"]["renders_per_s"]


def test_median_run_picks_the_middle_ratio() -> None:
    from devtools.bench.lifecycle import _median_run

    runs: list[dict[str, Any]] = [
        {"ratio_to_bare": 0.05, "renders_per_s": 150},
        {"ratio_to_bare": 0.03, "renders_per_s": 100},
        {"ratio_to_bare": 0.04, "renders_per_s": 130},
    ]
    chosen = _median_run(runs)
    assert chosen["renders_per_s"] == 130 and chosen["ratio_to_bare"] == 0.04
    assert chosen["ratio_each_run"] == [0.05, 0.03, 0.04]
    assert _median_run(runs[:2])["ratio_to_bare"] == 0.03  # even count: the lower middle
    assert "ratio_each_run" not in runs[2]  # inputs untouched


def test_median_run_of_postgresql_orders_by_the_ratio_to_each_runs_floor() -> None:
    from devtools.bench.lifecycle import _median_run

    runs: list[dict[str, Any]] = [
        {"ratio_to_bare": 0.05, "ratio_to_floor": 0.40, "floor": {"renders_per_s": 400}},
        {"ratio_to_bare": 0.03, "ratio_to_floor": 0.55, "floor": {"renders_per_s": 200}},
        {"ratio_to_bare": 0.04, "ratio_to_floor": 0.50, "floor": {"renders_per_s": 300}},
    ]
    chosen = _median_run(runs)
    assert chosen["ratio_to_floor"] == 0.50 and chosen["floor"] == {"renders_per_s": 300}
    assert chosen["ratio_to_floor_each_run"] == [0.40, 0.55, 0.50]
