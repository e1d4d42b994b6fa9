"""The Lambda concurrency budget: estimates, admission, oldest-first order, release."""

from __future__ import annotations

import time
import uuid

import pytest

from shared.lambda_budget import Admission, Grant, LambdaBudget
from shared.producer import message_payload
from shared.render_plan import OverCapacity, chunking_for
from shared.render_request import RenderRequest
from shared.repository import insert_pending
from shared.settings import get_settings
from tests.support import emulator_call, make_request
from worker import poller, reconciler, start
from worker.defer import Defer


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
        "framesPerLambda": chunking_for(frames, 1_000).frames_per_lambda,
    }
    client.invoke(FunctionName="f", Payload=json.dumps(payload))
    stats = emulator_call(emulator.url, "/_emulator/stats")
    [render] = stats["renders"].values()
    assert render["functions"] == chunking_for(frames, 1_000).functions


@pytest.fixture
def budget(env, monkeypatch):
    monkeypatch.setenv("LAMBDA_CONCURRENCY_BUDGET", "100")
    get_settings.cache_clear()
    return LambdaBudget()


def _ids(grants: list[Grant]) -> list[str]:
    return [g.render_id for g in grants]


def test_admits_while_it_fits_parks_the_rest_and_a_release_wakes_them(budget):
    assert budget.admit("a", "u1", 40, 1) == Admission("default", [])
    assert budget.admit("b", "u1", 40, 2).pool == "default"
    assert budget.admit("c", "u1", 40, 3) == Admission(None, [])  # parked
    assert budget.admit("a", "u1", 40, 1).pool == "default"  # idempotent for a holder
    assert budget.waiting() == 1 and budget.in_use() == 80
    assert _ids(budget.release_many(["a"])) == ["c"]  # the release admitted the parked one
    assert budget.holds("c") and budget.waiting() == 0 and budget.in_use() == 80
    assert budget.admit("c", "u1", 40, 3).pool == "default"  # its wake-up finds room held


def test_within_a_user_oldest_first_and_nothing_jumps_the_head_of_the_line(budget):
    budget.admit("big-running", "other", 90, 0)
    assert budget.admit("young", "u1", 5, 200).pool == "default"  # fits, nobody waits
    assert budget.admit("old", "u1", 30, 100).pool is None  # parked: 95 + 30 > 100
    assert budget.admit("younger", "u1", 4, 300).pool is None  # would fit, but "old" is first
    # Another user who has had nothing yet is the fair candidate, ahead of u1's line.
    assert budget.admit("small", "u2", 1, 400).pool == "default"
    assert _ids(budget.release_many(["young"])) == []  # 91 + 30 still does not fit
    assert _ids(budget.release_many(["big-running"])) == ["old", "younger"]


def test_a_new_user_goes_before_a_floods_backlog(budget):
    """Start-time fair queuing: B arrives behind 50 of A's and is next, not 51st."""
    budget.admit("a-running", "A", 100, 0)
    for i in range(50):
        budget.admit(f"a{i:02}", "A", 10, 1 + i)
    budget.admit("b0", "B", 10, 1000)
    budget.admit("b1", "B", 10, 1001)
    order = _ids(budget.release_many(["a-running"]))
    assert len(order) == 10
    assert order.index("b0") <= 1 and order.index("b1") <= 3
    assert order.count("b0") + order.count("b1") == 2


def test_weights_share_the_budget(budget):
    budget.admit("hold", "x", 100, 0)
    for i in range(40):
        budget.admit(f"h{i:02}", "heavy", 10, i, weight=3)
        budget.admit(f"l{i:02}", "light", 10, i, weight=1)
    order = _ids(budget.release_many(["hold"]))
    for _ in range(3):
        order += _ids(budget.release_many(order[-10:]))
    first = order[:40]
    heavy = sum(1 for r in first if r.startswith("h"))
    assert heavy == 30, first  # 3:1


def test_a_higher_priority_class_always_goes_first(budget):
    budget.admit("hold", "x", 100, 0)
    for i in range(20):
        budget.admit(f"flood{i:02}", "flood", 10, i)
    budget.admit("urgent", "vip", 50, 100, priority=5)
    order = _ids(budget.release_many(["hold"]))
    assert order[0] == "urgent"


def test_a_user_at_its_in_flight_cap_waits_while_others_go(budget):
    budget.admit("c1", "capped", 10, 1, max_in_flight=2)
    budget.admit("c2", "capped", 10, 2, max_in_flight=2)
    assert budget.admit("c3", "capped", 10, 3, max_in_flight=2).pool is None  # at its cap
    assert budget.admit("o1", "other", 10, 4).pool == "default"  # room, and not capped
    assert _ids(budget.release_many(["c1"])) == ["c3"]


def test_pools_fill_in_preference_order_and_release_to_their_own(budget, monkeypatch):
    monkeypatch.setenv(
        "LAMBDA_POOLS", '[{"name": "near", "budget": 20}, {"name": "far", "budget": 40}]'
    )
    get_settings.cache_clear()
    assert budget.admit("r1", "u", 15, 1).pool == "near"
    assert budget.admit("r2", "u", 15, 2).pool == "far"  # near has 5 left
    assert budget.admit("r3", "u", 5, 3).pool == "near"
    assert budget.admit("r4", "u", 30, 4).pool is None  # far has 25 left
    assert _ids(budget.release_many(["r2"])) == ["r4"]
    assert budget.pool_of("r4") == "far"
    assert {p.name: p.in_use for p in budget.pools()} == {"near": 20, "far": 30}


def test_throttling_halves_a_pools_budget_which_recovers_additively(budget, monkeypatch):
    monkeypatch.setenv("LAMBDA_BUDGET_RECOVERY_PER_S", "100")  # 1 function per 10 ms
    monkeypatch.setenv("LAMBDA_BUDGET_SHRINK_COOLDOWN_S", "60")
    monkeypatch.setenv("LAMBDA_BUDGET_FLOOR_SHARE", "0.3")
    get_settings.cache_clear()
    assert budget.shrink("default") == 50
    assert budget.shrink("default") is None  # one burst of throttling halves it once
    assert budget.admit("r1", "u", 45, 1).pool == "default"
    assert budget.admit("r2", "u", 45, 2).pool is None  # would fit 100, not the shrunk budget
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not budget.dispatch():
        time.sleep(0.05)
    assert budget.holds("r2")  # recovered to >= 90 without any release
    time.sleep(0.2)
    [pool] = budget.pools()
    assert pool.effective == 100 and not budget.any_shrunk()  # never above the configured


def test_the_floor_bounds_the_shrink(budget, monkeypatch):
    monkeypatch.setenv("LAMBDA_BUDGET_SHRINK_COOLDOWN_S", "0")
    monkeypatch.setenv("LAMBDA_BUDGET_FLOOR_SHARE", "0.25")
    monkeypatch.setenv("LAMBDA_BUDGET_RECOVERY_PER_S", "0.001")
    get_settings.cache_clear()
    values = [budget.shrink("default") for _ in range(5)]
    assert values == [50, 25, 25, 25, 25]


def test_releasing_a_parked_render_removes_it_from_the_line(budget):
    budget.admit("hold", "x", 100, 0)
    budget.admit("p1", "u", 10, 1)
    budget.admit("p2", "u", 10, 2)
    budget.release_many(["p1"])  # cancelled while parked
    assert budget.parked() == {"p2"}
    assert _ids(budget.release_many(["hold"])) == ["p2"]
    assert budget.redis.keys(f"{budget._key['parked']}*") == []


@pytest.mark.parametrize(
    ("frames", "budget_size", "functions"),
    [(600, 100, 31), (600, 10, 10), (18_000, 900, 151), (40_000, 100, 100)],
)
def test_a_render_too_big_for_the_budget_is_cut_coarser(frames, budget_size, functions, env):
    plan = chunking_for(frames, budget_size)
    assert plan.functions == functions <= budget_size
    assert plan.functions == 1 + -(-frames // plan.frames_per_lambda)


def test_a_render_that_can_never_fit_is_over_capacity(env, monkeypatch):
    monkeypatch.setenv("MAX_FRAMES_PER_LAMBDA", "100")
    get_settings.cache_clear()
    assert chunking_for(600, 7).functions == 7  # 100 frames per function
    with pytest.raises(OverCapacity, match="largest Lambda pool has a budget of 6"):
        chunking_for(600, 6)
    with pytest.raises(OverCapacity):
        chunking_for(10, 1)  # not even the orchestrator and one renderer


def req(**overrides: object) -> RenderRequest:
    defaults = {"width": 1280, "height": 720, "duration_in_frames": 600, "input_props": {}}
    return make_request(**{**defaults, **overrides})  # 600 frames: 1 + 30 functions


def pending(**overrides: object) -> tuple[str, dict]:
    rid = str(uuid.uuid4())
    request = req(**overrides)
    insert_pending(rid, request)
    return rid, message_payload(rid, request)


def test_start_parks_for_budget_and_the_poller_wakes_it(
    budget, use_db, sqlite_url, emulator, monkeypatch
):
    use_db(sqlite_url)
    monkeypatch.setenv("LAMBDA_CONCURRENCY_BUDGET", "70")  # two 31-function renders fit
    get_settings.cache_clear()
    from dramatiq import Message
    from dramatiq.brokers.stub import StubBroker

    from shared import renders

    first, p1 = pending(generation_id="a")
    second, p2 = pending(generation_id="b")
    third, p3 = pending(generation_id="c")
    assert start.start_render(p1, "m1") and start.start_render(p2, "m2")
    assert budget.in_use() == 62
    assert start.start_render(p3, "m3") is False  # parked: the message is done, no retry
    third_row = renders.get(third)
    assert third_row is not None
    assert third_row.status == "pending" and third_row.claim_token is None
    assert budget.parked() == {third}
    broker = StubBroker()
    broker.declare_queue(get_settings().admitted_queue)
    monkeypatch.setattr("dramatiq.get_broker", lambda: broker)
    deadline = time.monotonic() + 10
    while {r.status for r in renders.get_many([first, second])} != {"complete"} and (
        time.monotonic() < deadline
    ):
        poller.poll_batch([first, second])
        time.sleep(0.05)
    assert budget.in_use() == 31 and budget.holds(third)  # released, and the room went on
    [wake] = broker.queues[get_settings().admitted_queue].queue
    assert Message.decode(wake).args[0]["render_id"] == third
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


def test_reconcile_releases_what_nobody_needs_and_requeues_lost_wakeups(
    budget, use_db, sqlite_url, emulator, monkeypatch
):
    use_db(sqlite_url)
    from dramatiq.brokers.redis import RedisBroker

    from shared import renders, repository
    from shared.redis_client import get_redis

    monkeypatch.setenv("RECONCILE_GRACE_S", "0")
    get_settings.cache_clear()
    admitted, _ = pending(generation_id="admitted")
    parked, _ = pending(generation_id="parked")
    cancelled, _ = pending(generation_id="cancelled")
    budget.admit("finished-render-not-in-db", "u", 90, 0)
    assert budget.admit(admitted, "u", 10, 1).pool == "default"  # its wake-up is then lost
    budget.admit(parked, "u", 31, 2)
    budget.admit(cancelled, "u", 31, 3)
    renders.cancel(cancelled)
    broker = RedisBroker(client=get_redis(), namespace=get_settings().redis_namespace)
    assert reconciler.release_stale_budget(broker) == 2  # the unknown holder, the cancelled
    assert budget.holds(admitted) and budget.holds(parked)  # the parked one got the room
    assert reconciler.requeue_lost(broker) == 1  # the parked one was woken with a message
    assert reconciler.requeue_lost(broker) == 0
    assert repository.holder_states([admitted])[admitted].status == "pending"


def _queued(queue: str) -> list[str]:
    """Render ids of the start messages on a Redis queue of this test's namespace."""
    import json

    from shared.redis_client import get_redis
    from shared.redis_keys import keys

    client = get_redis()
    ids = client.lrange(keys().queue(queue), 0, -1)
    bodies = client.hmget(keys().queue_messages(queue), ids) if ids else []
    return [json.loads(b)["args"][0]["render_id"] for b in bodies if b]


def test_the_producer_lines_renders_up_at_enqueue(budget, use_db, sqlite_url, monkeypatch):
    """Nobody waits and it fits: a start message now. Otherwise the render is parked the
    moment it is created (no message); a later user's render is in the line at once, ahead
    of the flood's backlog, however many of the flood's messages there would have been."""
    use_db(sqlite_url)
    monkeypatch.setenv("LAMBDA_CONCURRENCY_BUDGET", "70")  # two 31-function renders fit
    get_settings.cache_clear()
    from shared.producer import enqueue_renders

    settings = get_settings()
    flood = enqueue_renders([req(user_id="flood", generation_id=f"f{i}") for i in range(6)])
    assert _queued(settings.start_queue) == [r.id for r in flood[:2]]  # fit now: go
    assert budget.parked() == {r.id for r in flood[2:]}  # the rest wait, no message
    # The first one sent on takes its room when it starts; that call's dispatch fills the rest
    # of the budget from the line (room is not reserved for a render on its way: one that
    # finds none when it starts parks then, at the head of its user's line, being older).
    assert budget.admit(flood[0].id, "flood", 31, 0).pool == "default"
    assert budget.in_use() == 62
    [late] = enqueue_renders([req(user_id="late", generation_id="l")])
    assert late.id in budget.parked()
    assert _queued(settings.start_queue) == [r.id for r in flood[:2]]
    # A finish releases the room to "late": a new user goes before the flood's backlog.
    assert [g.render_id for g in budget.release_many([flood[0].id])] == [late.id]


def test_lining_up_wakes_whom_it_admits(budget, use_db, sqlite_url, monkeypatch):
    """Room left unused behind a user at its in-flight cap: a new user's render lines up
    behind that user's parked one and is admitted in the same call; the producer sends its
    wake-up to the admitted queue."""
    use_db(sqlite_url)
    monkeypatch.setenv("MAX_RENDERS_IN_FLIGHT_PER_USER", "1")
    get_settings.cache_clear()
    from shared.producer import enqueue_renders

    budget.admit("c-running", "c", 31, 0, max_in_flight=1)  # c is at its cap
    budget.admit("big", "other", 60, 0)
    [capped] = enqueue_renders([req(user_id="c", generation_id="c2")])  # 9 free: parked
    assert budget.release_many(["big"]) == []  # 69 free, but c is capped: nobody goes
    assert budget.parked() == {capped.id}
    [other] = enqueue_renders([req(user_id="o", generation_id="o")])
    assert budget.holds(other.id) and budget.parked() == {capped.id}
    assert _queued(get_settings().admitted_queue) == [other.id]
    assert _queued(get_settings().start_queue) == []


def test_admit_answers_paused_before_anything_and_takes_no_room(budget: LambdaBudget) -> None:
    """The start path's pause check rides in the admit script: a paused user's render is
    neither admitted nor parked, even one that already holds room."""
    from shared import pauses
    from shared.redis_keys import keys

    pauses_key = keys().pauses()
    assert budget.admit("held-room", "p", 10, 1, pauses_key=pauses_key).pool == "default"
    pauses.pause("p", by="test")
    try:
        assert budget.admit("new", "p", 10, 2, pauses_key=pauses_key) == Admission(
            None, [], paused=True
        )
        assert budget.admit("held-room", "p", 10, 1, pauses_key=pauses_key).paused
        assert "new" not in budget.parked() and not budget.holds("new")
        assert budget.admit("other", "q", 10, 3, pauses_key=pauses_key).pool == "default"
        pauses.pause(None, by="test")
        assert budget.admit("other2", "q", 10, 4, pauses_key=pauses_key).paused
        assert budget.admit("other2", "q", 10, 4).pool == "default"  # no key: not checked
    finally:
        pauses.resume(None)
        pauses.resume("p")
    assert budget.admit("new", "p", 10, 2, pauses_key=pauses_key).pool == "default"
