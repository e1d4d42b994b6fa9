"""``python -m scripts.health``: the container probe, run as the orchestrator runs it."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from devtools.devstack import free_port
from tests.support import run_module


def run_health(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_module("scripts.health", env, *args, timeout=30)


def lines(proc: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """{check name: its line}, and every line is a check line (no tracebacks, no logs)."""
    by_name = {}
    for line in proc.stdout.strip().splitlines():
        status, rest = line.split(" ", 1)
        assert status in ("ok", "FAIL"), proc.stdout
        by_name[rest.split(" ", 1)[0].rstrip(":")] = line
    assert "Traceback" not in proc.stderr, proc.stderr
    return by_name


def beat(redis_url: str, namespace: str, seen_ago_s: float = 0.0) -> None:
    """A heartbeat entry as ``worker.middleware.heartbeat`` writes it."""
    entry: dict[str, Any] = {
        "worker_id": "host-a:101",
        "host": "host-a",
        "pid": 101,
        "queues": ["render-polls", "renders"],
        "threads": 8,
        "started_at": time.time() - 60,
        "seen_at": time.time() - seen_ago_s,
    }
    client = redis.Redis.from_url(redis_url)
    client.hset(f"{namespace}:workers", entry["worker_id"], json.dumps(entry))
    client.close()


@pytest.fixture
def db(use_db, sqlite_url):
    return use_db(sqlite_url)


def test_passes_with_a_fresh_worker_heartbeat(db, env, redis_url, namespace):
    beat(redis_url, namespace)
    proc = run_health(env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = lines(proc)
    assert list(checks) == ["redis", "database", "workers", "lambda"]
    assert "runs Remotion 4.0.539" in checks["lambda"]
    assert all(line.startswith(f"ok {name}") for name, line in checks.items())
    assert "1 live" in checks["workers"]


def test_json_output(db, env, redis_url, namespace):
    beat(redis_url, namespace)
    proc = run_health(env, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True
    assert set(doc["checks"]) == {"redis", "database", "workers", "lambda"}
    assert all(c["ok"] and isinstance(c["ms"], int) for c in doc["checks"].values())


def test_fails_without_a_worker_unless_not_required(db, env, redis_url, namespace):
    proc = run_health(env)
    assert proc.returncode == 1
    checks = lines(proc)
    assert checks["workers"].startswith("FAIL workers: no worker heartbeat")
    assert checks["redis"].startswith("ok") and checks["database"].startswith("ok")

    beat(redis_url, namespace, seen_ago_s=60)  # a crashed worker's last entry is not alive
    assert run_health(env).returncode == 1

    proc = run_health(env, "--no-require-worker")
    assert proc.returncode == 0, proc.stdout
    assert list(lines(proc)) == ["redis", "database"]


def test_fails_when_redis_is_unreachable(db, env):
    port = free_port()
    proc = run_health({**env, "REDIS_URL": f"redis://:redis-pw-123@127.0.0.1:{port}/0"})
    assert proc.returncode == 1
    checks = lines(proc)
    assert checks["redis"].startswith("FAIL redis:") and str(port) in checks["redis"]
    assert checks["database"].startswith("ok")
    assert "redis-pw-123" not in proc.stdout + proc.stderr


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never answers: a hung server, not a dead one."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


def test_a_hung_redis_fails_fast(db, env, silent_server):
    started = time.monotonic()
    proc = run_health({**env, "REDIS_URL": f"redis://127.0.0.1:{silent_server}/0"}, "--json")
    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False
    assert not doc["checks"]["redis"]["ok"] and not doc["checks"]["workers"]["ok"]
    assert doc["checks"]["database"]["ok"]
    assert elapsed < 8, f"health took {elapsed:.1f}s"


def test_fails_when_postgresql_is_unreachable(use_db, env, redis_url, namespace):
    beat(redis_url, namespace)
    port = free_port()
    use_db(f"postgresql://renderq:db-pw-456@127.0.0.1:{port}/renderq")
    proc = run_health(env)
    assert proc.returncode == 1
    checks = lines(proc)
    assert checks["database"].startswith("FAIL database:"), checks
    assert checks["redis"].startswith("ok") and checks["workers"].startswith("ok")
    assert "db-pw-456" not in proc.stdout + proc.stderr
    # The AWS secret from the environment is never printed either.
    assert env["REMOTION_AWS_SECRET_ACCESS_KEY"] not in proc.stdout + proc.stderr


def test_fails_when_the_sqlite_directory_is_missing(use_db, env, tmp_path):
    path = tmp_path / "missing-dir" / "renderq.db"
    use_db(f"sqlite:///{path}")
    proc = run_health(env, "--no-require-worker")
    assert proc.returncode == 1
    assert lines(proc)["database"].startswith("FAIL database:")
    assert not path.parent.exists()


def test_fails_when_the_render_table_is_missing(use_db, env, tmp_path):
    path = tmp_path / "unmigrated.db"
    use_db(f"sqlite:///{path}")
    proc = run_health(env, "--no-require-worker")
    assert proc.returncode == 1
    # A mistyped path must not leave an empty database behind.
    assert "unable to open" in lines(proc)["database"] and not path.exists()

    path.touch()  # an empty database: reachable, not migrated
    proc = run_health(env, "--no-require-worker")
    assert proc.returncode == 1
    assert "'render' table" in lines(proc)["database"]


@pytest.mark.e2e
def test_a_real_worker_makes_health_pass(use_db, sqlite_url, workers):
    env = workers.env
    use_db(sqlite_url)
    assert run_health(env).returncode == 1
    workers.start_worker(processes=1, threads=1)
    deadline = time.monotonic() + 10
    proc = run_health(env)
    while proc.returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        proc = run_health(env)
    assert proc.returncode == 0, proc.stdout + workers.all_logs()[-3000:]
    assert "ok workers (1 live" in proc.stdout


def test_fails_when_the_function_runs_another_remotion_version(db, env, redis_url, namespace):
    from devtools.emulator import EmulatorServer

    beat(redis_url, namespace)
    with EmulatorServer(port=0, remotion_version="4.0.540") as other:
        proc = run_health({**env, "AWS_ENDPOINT_URL_LAMBDA": other.url})
    assert proc.returncode == 1
    line = lines(proc)["lambda"]
    assert line.startswith("FAIL lambda:") and "4.0.540" in line and "4.0.539" in line
    skipped = run_health(
        {**env, "AWS_ENDPOINT_URL_LAMBDA": "http://127.0.0.1:9"}, "--no-check-lambda"
    )
    assert skipped.returncode == 0 and "lambda" not in lines(skipped)
