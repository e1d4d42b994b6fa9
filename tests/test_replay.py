"""scripts.replay_failed: selection, dry run, confirmation, force, concurrency, summary."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from shared import renders, repository
from shared.models import RenderStatus
from tests.support import get_render, make_request

ROOT = Path(__file__).resolve().parent.parent


def failed(user: str, code: str, generation: str | None = None) -> str:
    rid = str(uuid.uuid4())
    repository.insert_pending(
        rid,
        make_request(
            user_id=user,
            generation_id=generation or f"gen-{rid[:8]}",
            width=1280,
            height=720,
            duration_in_frames=60,
            input_props={},
        ),
    )
    repository.fail(rid, RenderStatus.PENDING, code=code, message=f"{code} happened")
    return rid


def seed(
    use_db: Callable[[str], str], url: str, env: dict[str, str], redis_url: str
) -> tuple[dict[str, str], Callable[[], list[str]]]:
    use_db(url)
    ids = {
        "a_timeout": failed("alice", "timeout", "gen-a1"),
        "a_render": failed("alice", "render_error"),
        "b_timeout": failed("bob", "timeout"),
        "b_invalid": failed("bob", "limit_exceeded"),
    }
    client = redis.Redis.from_url(redis_url)
    ns = env["REDIS_NAMESPACE"]

    def queued() -> list[str]:
        msg_ids = client.lrange(f"{ns}:renders", 0, -1)
        raw = client.hmget(f"{ns}:renders.msgs", msg_ids) if msg_ids else []
        found = []
        for m in raw:
            assert m is not None, "a queued message id has no message"
            found.append(json.loads(m)["args"][0]["render_id"])
        return found

    return ids, queued


@pytest.fixture
def setup(env, use_db, sqlite_url, redis_url):
    return seed(use_db, sqlite_url, env, redis_url)


def run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scripts.replay_failed", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_dry_run_shows_selection_and_changes_nothing(setup, env):
    ids, queued = setup
    result = run(env, "--error-code", "timeout", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert ids["a_timeout"] in result.stdout and ids["b_timeout"] in result.stdout
    assert ids["a_render"] not in result.stdout
    assert (
        last_line(result) == "replay_failed: selected=2 would_replay=2 skipped=0 raced=0 errors=0"
    )
    assert get_render(ids["a_timeout"]).status == "failed" and queued() == []


def test_refuses_without_confirmation_when_not_interactive(setup, env):
    ids, queued = setup
    result = run(env, "--user", "alice")
    assert result.returncode == 2 and "--yes" in result.stderr
    assert queued() == [] and get_render(ids["a_timeout"]).status == "failed"


def test_replays_selection_once_and_keeps_history(setup, env):
    ids, queued = setup
    result = run(env, "--user", "alice", "--yes")
    assert result.returncode == 0, result.stderr
    assert last_line(result) == "replay_failed: selected=2 replayed=2 skipped=0 raced=0 errors=0"
    again = get_render(ids["a_timeout"])
    assert again.status == "pending" and again.attempts == 2
    assert again.error_history[0]["code"] == "timeout" and again.error_code is None
    assert sorted(queued()) == sorted([ids["a_timeout"], ids["a_render"]])
    assert get_render(ids["b_timeout"]).status == "failed"


def test_filters_render_id_generation_since_limit(setup, env):
    ids, queued = setup
    result = run(env, "--render-id", ids["b_timeout"], "--render-id", ids["a_render"], "--yes")
    assert "replayed=2" in last_line(result)
    result = run(env, "--generation", "gen-a1", "--since", "1h", "--yes")
    assert "replayed=1" in last_line(result)
    result = run(env, "--since", "2099-01-01T00:00:00", "--yes")
    assert "selected=0" in last_line(result)
    assert sorted(queued()) == sorted([ids["b_timeout"], ids["a_render"], ids["a_timeout"]])


def test_validation_failures_are_skipped_unless_forced(setup, env):
    ids, _ = setup
    result = run(env, "--user", "bob", "--yes")
    assert last_line(result) == "replay_failed: selected=2 replayed=1 skipped=1 raced=0 errors=0"
    assert "limit_exceeded" in result.stdout and "--force" in result.stdout
    assert get_render(ids["b_invalid"]).status == "failed"
    result = run(env, "--user", "bob", "--force", "--yes")
    assert "replayed=1" in last_line(result)
    assert get_render(ids["b_invalid"]).status == "pending"


def test_concurrent_runs_replay_each_render_once(env, use_db, database_url, redis_url):
    ids, queued = seed(use_db, database_url, env, redis_url)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "scripts.replay_failed",
                "--error-code",
                "timeout",
                "--error-code",
                "render_error",
                "--yes",
            ],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    replayed = sum(
        int(o.strip().splitlines()[-1].split("replayed=")[1].split()[0]) for o in outputs
    )
    assert replayed == 3
    assert sorted(queued()) == sorted([ids["a_timeout"], ids["a_render"], ids["b_timeout"]])
    assert {
        get_render(i).attempts for i in (ids["a_timeout"], ids["a_render"], ids["b_timeout"])
    } == {2}


def test_bad_usage_exits_2(env):
    result = run(env, "--since", "yesterday-ish", "--dry-run")
    assert result.returncode == 2 and "--since" in result.stderr


@pytest.mark.e2e
def test_replayed_renders_obey_the_rate_limit(
    env, use_db, sqlite_url, workers, emulator, monkeypatch
):
    use_db(sqlite_url)
    for key, value in {"RENDER_RATE_LIMIT": "1/2s"}.items():
        monkeypatch.setenv(key, value)
        env[key] = value
    ids = [failed("carol", "timeout") for _ in range(3)]
    result = run(env, "--user", "carol", "--yes")
    assert "replayed=3" in last_line(result)
    workers.start_worker(processes=1, threads=4)
    workers.start_scheduler()
    from tests.support import emulator_call, wait_until

    wait_until(
        lambda: all(r.status == "complete" for r in renders.get_many(ids)), timeout=60, what="done"
    )
    by_out = emulator_call(emulator.url, "/_emulator/stats")["start_times_by_out_name"]
    starts = sorted(t for r in renders.get_many(ids) for t in by_out[r.out_name])
    assert len(starts) == 3
    assert all(b - a >= 2.0 for a, b in itertools.pairwise(starts))
    assert {
        r.out_name is not None and r.out_name.endswith("-2.mp4") for r in renders.get_many(ids)
    } == {True}
