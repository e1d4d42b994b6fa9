"""The chaos run at a CI-friendly size: kills, a Redis wipe, Lambda faults (throttling inside
renders, unknown compositions, webhook faults), cancellations and notifications: invariants
held."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def test_chaos_run_holds_every_invariant(tmp_path, redis_url):
    out = tmp_path / "chaos.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "DATABASE_URL"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.chaos",
            "--renders",
            "40",
            "--users",
            "5",
            "--groups",
            "2",
            "--kill-every",
            "3",
            "--time-limit",
            "150",
            "--seed",
            "3",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["ok"] and figures["lost"] == 0 and figures["duplicates"] == 0
    assert figures["kills"] >= 1 and figures["redis_flushes"] == 1
    assert figures["complete"] + figures["failed"] + figures["cancelled"] == 40
    assert figures["renders_without_exactly_one_event_per_channel"] == 0
    assert figures["throttled_attempts_restarted"] >= 1  # Remotion's own failures were on
