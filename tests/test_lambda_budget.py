"""The Lambda concurrency budget: estimates, admission, oldest-first order, release."""

from __future__ import annotations

import time
import uuid

import pytest

from shared.producer import message_payload
from shared.render_request import RenderRequest
from shared.repository import insert_pending
from shared.settings import get_settings
from tests.support import emulator_call, make_request
from worker import poller, reconciler, start
from worker.defer import Defer
from worker.lambda_budget import LambdaBudget, default_frames_per_lambda, estimate_functions


@pytest.mark.parametrize("frames", [1, 5, 20, 21, 90, 300, 600, 1200, 1800, 18_000, 40_000])
def test_estimate_matches_what_the_emulated_function_runs(frames, env, emulator):
    """The emulator mirrors Remotion's own framesPerLambda rules; our estimate must agree."""
    import boto3

    client = boto3.client(
        "lambda",
        endpoint_url=emulator.url,
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )
    import json

    payload = {
        "type": "start",
        "version": "4.0.539",
        "composition": "Main",
        "serveUrl": "https://x",
        "inputProps": {"type": "payload", "payload": "{}"},
        "codec": "h264",
        "outName": f"est-{frames}.mp4",
        "forceDurationInFrames": frames,
        "framesPerLambda": default_frames_per_lambda(frames),
    }
    client.invoke(FunctionName="f", Payload=json.dumps(payload))
    stats = emulator_call(emulator.url, "/_emulator/stats")
    [render] = stats["renders"].values()
    assert render["functions"] == estimate_functions(frames)


@pytest.fixture
def budget(env, monkeypatch):
    monkeypatch.setenv("LAMBDA_CONCURRENCY_BUDGET", "100")
    monkeypatch.setenv("BUDGET_RETRY_MS", "2000")
    get_settings.cache_clear()
    return LambdaBudget()


def test_admits_while_it_fits(budget):
    assert budget.admit("a", 40, 1) == (True, 40)
    assert budget.admit("b", 40, 2) == (True, 80)
    assert budget.admit("c", 40, 3) == (False, 80)
    assert budget.admit("a", 40, 1) == (True, 80)  # idempotent for a holder
    budget.release("a")
    assert budget.admit("c", 40, 3) == (True, 80)
    assert budget.in_use() == 80


def test_oldest_waiting_render_goes_first(budget):
    budget.admit("big-running", 90, 0)
    assert budget.admit("old", 30, 100) == (False, 90)  # waits: 90 + 30 > 100
    assert budget.admit("young", 5, 200)[0] is False  # would fit, but "old" waits first
    budget.release("big-running")
    assert budget.admit("young", 5, 200)[0] is False
    assert budget.admit("old", 30, 100)[0] is True
    assert budget.admit("young", 5, 200)[0] is True
    assert budget.waiting() == 0


def test_a_waiter_that_stops_asking_does_not_block_the_line(budget, monkeypatch):
    budget.admit("running", 90, 0)
    budget.admit("gone", 30, 100)  # waits, then its message is lost
    budget.release("running")
    monkeypatch.setenv("BUDGET_RETRY_MS", "10")  # stale after max(10 s, 5 x retry)
    get_settings.cache_clear()
    assert budget.admit("young", 5, 200)[0] is False
    # Age "gone" past the stale limit by rewriting its last-seen time.
    budget.redis.hset(budget.keys[3], "gone", budget.redis_now_ms() - 11_000)
    assert budget.admit("young", 5, 200)[0] is True


def req(**overrides: object) -> RenderRequest:
    defaults = {"width": 1280, "height": 720, "duration_in_frames": 600, "input_props": {}}
    return make_request(**{**defaults, **overrides})  # 600 frames: 1 + 30 functions


def pending(**overrides: object) -> tuple[str, dict]:
    rid = str(uuid.uuid4())
    request = req(**overrides)
    insert_pending(rid, request)
    return rid, message_payload(rid, request)


def test_start_waits_for_budget_and_poller_releases_it(
    budget, use_db, sqlite_url, emulator, monkeypatch
):
    use_db(sqlite_url)
    monkeypatch.setenv("LAMBDA_CONCURRENCY_BUDGET", "70")  # two 31-function renders fit
    get_settings.cache_clear()
    from shared import renders

    first, p1 = pending(generation_id="a")
    second, p2 = pending(generation_id="b")
    third, p3 = pending(generation_id="c")
    assert start.start_render(p1, "m1") and start.start_render(p2, "m2")
    assert budget.in_use() == 62
    with pytest.raises(Defer) as info:
        start.start_render(p3, "m3")
    assert info.value.counter == "budget_waits"
    third_row = renders.get(third)
    assert third_row is not None
    assert third_row.status == "pending" and third_row.claim_token is None
    deadline = time.monotonic() + 10
    while {r.status for r in renders.get_many([first, second])} != {"complete"} and (
        time.monotonic() < deadline
    ):
        poller.poll_batch([first, second])
        time.sleep(0.05)
    assert budget.in_use() == 0  # both completed and released
    assert start.start_render(p3, "m3")


def test_lambda_errors_release_the_budget(budget, use_db, sqlite_url, emulator):
    use_db(sqlite_url)
    emulator_call(emulator.url, "/_emulator/faults", {"throttle_starts": 1})
    _, payload = pending()
    with pytest.raises(Defer):
        start.start_render(payload, "m")
    assert budget.in_use() == 0
    _, rejected = pending(
        generation_id="r",
        input_props={"__emulator__": {"reject_start": "Payload is too big: 300000 bytes."}},
    )
    assert not start.start_render(rejected, "m2")
    assert budget.in_use() == 0


def test_reconcile_releases_budget_of_dead_workers(budget, use_db, sqlite_url, emulator):
    use_db(sqlite_url)
    from shared import repository

    rid, _ = pending()
    # A worker admitted the render, then died before starting it; its claim has expired.
    assert repository.claim_start(rid, "dead-worker", 0.001)
    budget.admit(rid, 31, 1)
    budget.redis.hset(budget.keys[1], rid, budget.redis_now_ms() - 6_000)
    budget.admit("finished-render-not-in-db", 10, 2)
    time.sleep(0.01)
    assert reconciler.release_stale_budget() == 2
    assert budget.in_use() == 0
