"""Worker and web processes freeze their start-up heap before they serve (shared.frozen_heap).

Each case runs in a fresh interpreter: a freeze is for the whole process, and this one's heap is
pytest's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Boots a Dramatiq worker on a StubBroker with the middleware, then reports what the collector
# still walks, what is frozen, and whether garbage made afterwards is still collected.
_PROGRAM = textwrap.dedent(
    """
    import gc, json
    import dramatiq
    from dramatiq.brokers.stub import StubBroker
    from shared import aws
    from worker.middleware.frozen_heap import FrozenStartupHeap

    broker = StubBroker(middleware=[FrozenStartupHeap()])
    dramatiq.set_broker(broker)
    tracked_before = len(gc.get_objects())
    worker = dramatiq.Worker(broker, worker_threads=1)
    worker.start()
    tracked_after = len(gc.get_objects())
    frozen = gc.get_freeze_count()
    clients = sorted(service for service, _, _ in aws._clients.get())

    class Node:
        pass

    gc.disable()  # so that the count below is all of them
    for _ in range(1000):
        a, b = Node(), Node()
        a.other, b.other = b, a
    del a, b
    collected = gc.collect()
    worker.stop()
    print(json.dumps({"tracked_before": tracked_before, "tracked_after": tracked_after,
                      "frozen": frozen, "clients": clients, "collected": collected}))
    """
)


# The web app's lifespan, run by Starlette's TestClient (the lifespan uvicorn runs in each
# of its worker processes).
_WEB_PROGRAM = textwrap.dedent(
    """
    import gc, json
    from fastapi.testclient import TestClient
    from shared import aws
    from web.app import create_app

    app = create_app()
    tracked_before = len(gc.get_objects())
    with TestClient(app) as client:
        tracked_after = len(gc.get_objects())
        frozen = gc.get_freeze_count()
        clients = sorted(service for service, _, _ in aws._clients.get())
        alive = client.get("/healthz").status_code
    print(json.dumps({"tracked_before": tracked_before, "tracked_after": tracked_after,
                      "frozen": frozen, "clients": clients, "alive": alive}))
    """
)


def _run(env: dict[str, str], freeze: str, program: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=ROOT,
        env={**env, "GC_FREEZE_AT_START": freeze, "DATABASE_URL": "sqlite:///:memory:"},
    )


def _boot(env: dict[str, str], freeze: str, program: str = _PROGRAM) -> dict[str, Any]:
    done = _run(env, freeze, program)
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


@pytest.fixture
def child_env(env: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **env}


def test_boot_freezes_the_heap_with_the_clients_built(child_env: dict[str, str]) -> None:
    report = _boot(child_env, "true")
    # botocore's Lambda model alone is tens of thousands of objects.
    assert report["clients"] == ["lambda"]
    assert report["frozen"] > 50_000
    assert report["tracked_before"] > 50_000
    # What a full collection still walks is what the worker made since the freeze.
    assert report["tracked_after"] < report["tracked_before"] // 10
    # Garbage made afterwards is collected as before: 1,000 two-object cycles.
    assert report["collected"] >= 2_000


def test_a_client_that_cannot_be_built_does_not_stop_the_boot(
    child_env: dict[str, str],
) -> None:
    # botocore refuses the region when the client is built: the worker still boots and
    # freezes, and the first message that needs the client reports the error as before.
    done = _run({**child_env, "REMOTION_AWS_REGION": "not a region!"}, "true", _PROGRAM)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["clients"] == []
    assert report["frozen"] > 50_000
    assert "could not build a pool's Lambda client" in done.stdout + done.stderr


def test_the_setting_turns_it_off(child_env: dict[str, str]) -> None:
    report = _boot(child_env, "false")
    assert report["frozen"] == 0
    assert report["tracked_after"] >= report["tracked_before"]


def test_web_process_freezes_its_heap_with_the_s3_clients_built(child_env: dict[str, str]) -> None:
    report = _boot(child_env, "true", _WEB_PROGRAM)
    assert report["clients"] == ["s3"]
    assert report["frozen"] > 50_000
    assert report["tracked_after"] < report["tracked_before"] // 10
    assert report["alive"] in (200, 503)  # it serves after the freeze


def test_web_process_starts_when_a_client_cannot_be_built(child_env: dict[str, str]) -> None:
    done = _run({**child_env, "REMOTION_AWS_REGION": "not a region!"}, "true", _WEB_PROGRAM)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["clients"] == []
    assert report["frozen"] > 50_000
    assert report["alive"] in (200, 503)
    assert "could not build a pool's S3 client" in done.stdout + done.stderr


def test_web_process_without_the_freeze(child_env: dict[str, str]) -> None:
    report = _boot(child_env, "false", _WEB_PROGRAM)
    assert report["frozen"] == 0
    assert report["clients"] == []
