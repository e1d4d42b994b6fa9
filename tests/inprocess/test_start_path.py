"""The start path through renderq's middleware and actors, in-process (``StubBroker``).

Each test runs the real ``start_render`` / ``poll_batch`` actors behind the real middleware
stack; what is checked is what the middleware decides: who pays a permit, what is deferred
(with which counter), what is refunded, what is dead-lettered.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import structlog
from dramatiq import Message
from dramatiq.broker import MessageProxy

from devtools.process import reset_caches
from shared import admission, renders, repository
from shared.lambda_budget import get_budget
from shared.producer import message_payload
from shared.rate_limit import get_limiter
from shared.render_plan import chunking_for
from shared.settings import get_settings
from tests.inprocess.conftest import StubWorld
from tests.support import make_request, wait_until
from worker.middleware.log_context import LogContext


def _pending(**overrides: object) -> tuple[str, dict[str, Any]]:
    request = make_request(generation_id=f"g-{uuid.uuid4().hex[:6]}", **overrides)
    render_id = str(uuid.uuid4())
    repository.insert_pending(render_id, request)
    return render_id, message_payload(render_id, request)


def _used(user_id: str) -> int:
    return get_limiter().quota(user_id).used


def test_a_started_render_keeps_its_permit_and_completes(stub_world: StubWorld) -> None:
    rid, payload = _pending(user_id="keeper")
    stub_world.actors["start_render"].send(payload)
    stub_world.join()
    render = renders.get(rid)
    assert render is not None and render.status == "rendering"
    assert _used("keeper") == 1

    def polled_complete() -> bool:
        stub_world.actors["poll_batch"].send([rid])
        stub_world.join()
        done = renders.get(rid)
        return done is not None and done.status == "complete"

    wait_until(polled_complete, timeout=20, interval=0.2, what="render complete")


def test_a_duplicate_delivery_refunds_its_permit(stub_world: StubWorld) -> None:
    rid, payload = _pending(user_id="dup")
    message = stub_world.actors["start_render"].message(payload)
    stub_world.broker.enqueue(message)
    stub_world.join()
    stub_world.broker.enqueue(message)  # the same message again: a no-op
    stub_world.join()
    assert _used("dup") == 1  # the first delivery's permit only
    render = renders.get(rid)
    assert render is not None and render.status == "rendering" and render.start_requests == 1


def test_over_the_rate_limit_a_start_is_deferred_not_failed(
    stub_world: StubWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RENDER_RATE_LIMIT", "1/30s")
    reset_caches()
    first, first_payload = _pending(user_id="busy")
    second, second_payload = _pending(user_id="busy")
    stub_world.actors["start_render"].send(first_payload)
    stub_world.join()
    message = stub_world.actors["start_render"].send(second_payload)

    copies = wait_until(
        lambda: stub_world.deferred_copies(message.message_id), timeout=10, what="a delayed copy"
    )
    copy, delay_ms = copies[0]
    assert copy.options["throttled"] == 1 and copy.options["deferrals"] == 1
    assert 25_000 < delay_ms < 40_000  # until the user's next permit, plus jitter
    assert "rate_permit" not in copy.options  # a permit never travels with a copy
    waiting = renders.get(second)
    assert waiting is not None and waiting.status == "pending" and waiting.throttled_until
    assert _used("busy") == 1
    assert not stub_world.broker.dead_letters
    started = renders.get(first)
    assert started is not None and started.status == "rendering"


def test_waiting_for_the_budget_parks_the_render_and_refunds_the_permit(
    stub_world: StubWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAMBDA_CONCURRENCY_BUDGET", "40")
    reset_caches()
    budget = get_budget()
    budget.admit("someone-elses", "other", 40, 0)  # the budget is full
    rid, payload = _pending(user_id="patient")
    message = stub_world.actors["start_render"].send(payload)
    stub_world.join()
    assert not stub_world.deferred_copies(message.message_id)  # no re-delivery while waiting
    assert budget.parked() == {rid}
    assert _used("patient") == 0
    render = renders.get(rid)
    assert render is not None and render.status == "pending" and render.start_requests == 0
    admission.release(["someone-elses"], stub_world.broker)  # room frees: the render is woken
    wait_until(lambda: renders.get(rid).status == "rendering", timeout=10, what="started")  # type: ignore[union-attr]  # the row exists
    assert _used("patient") == 1


def test_a_render_admitted_while_its_parking_delivery_holds_the_claim_starts_soon(
    stub_world: StubWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The release that admits a parked render can run before the delivery that parked it has
    given its claim back; the wake-up must not wait out the whole claim lease."""
    monkeypatch.setenv("LAMBDA_CONCURRENCY_BUDGET", "40")
    reset_caches()
    budget = get_budget()
    budget.admit("someone-elses", "other", 40, 0)
    rid, _ = _pending(user_id="patient")
    assert budget.admit(rid, "patient", 1, 1).pool is None  # the budget is full
    frames = make_request(user_id="patient").duration_in_frames
    budget.admit(rid, "patient", chunking_for(frames).functions, 1)  # parked
    assert repository.claim_start(rid, "parking-delivery", 30)
    began = time.monotonic()
    admission.release(["someone-elses"], stub_world.broker)  # woken while still claimed
    time.sleep(0.3)
    repository.release_claim(rid, "parking-delivery")
    wait_until(lambda: renders.get(rid).status == "rendering", timeout=10, what="started")  # type: ignore[union-attr]  # the row exists
    assert time.monotonic() - began < 5


def test_a_body_naming_no_render_is_dead_lettered(stub_world: StubWorld) -> None:
    stub_world.actors["start_render"].send({"not": "a render"})
    wait_until(lambda: stub_world.broker.dead_letters, timeout=10, what="a dead letter")
    assert not any(m.options.get("retries") for m in stub_world.broker.dead_letters)


def test_a_bad_body_naming_its_render_fails_that_render(stub_world: StubWorld) -> None:
    rid, payload = _pending()
    stub_world.actors["start_render"].send({**payload, "width": "1920"})
    stub_world.join()
    render = renders.get(rid)
    assert render is not None and render.status == "failed"
    assert render.error_code == "invalid_request" and "width" in (render.error_message or "")


def test_log_context_binds_the_message_and_clears_after() -> None:
    middleware = LogContext()
    message = MessageProxy(Message("renders", "start_render", (), {}, {"retries": 2}))
    structlog.contextvars.bind_contextvars(render_id="left-over")
    middleware.before_process_message(None, message)  # type: ignore[arg-type]  # unused broker
    bound = structlog.contextvars.get_contextvars()
    assert bound == {
        "message_id": message.message_id,
        "actor": "start_render",
        "queue": "renders",
        "retries": 2,
    }
    middleware.after_process_message(None, message)  # type: ignore[arg-type]  # unused broker
    assert structlog.contextvars.get_contextvars() == {}


def test_a_pause_lifted_between_the_budget_and_the_hold_starts_the_render(
    stub_world: StubWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admit script saw the pause; by the time the hold re-checks, it was resumed: the
    render is admitted again and starts, instead of being held with nobody left to wake it."""
    from shared import pauses

    pauses.pause("racer", by="test")
    real_hold = pauses.hold

    def resumed_first(*args: Any) -> Any:
        pauses.resume("racer")
        return real_hold(*args)

    monkeypatch.setattr(pauses, "hold", resumed_first)
    rid, payload = _pending(user_id="racer")
    stub_world.actors["start_render"].send(payload)
    stub_world.join()
    render = renders.get(rid)
    assert render is not None and render.status == "rendering"
    assert not pauses.is_held(rid)


def test_a_reading_that_predicts_the_end_polls_again_then_instead_of_an_interval_later(
    stub_world: StubWorld, monkeypatch: pytest.MonkeyPatch, emulator: Any
) -> None:
    """POLL_AT_PREDICTED_END: one manual poll mid-render stores its predicted end; the sweeps
    (ticks every POLL_TICK_S) poll it then and complete it long before the 30 s interval, when
    no regular poll is due."""
    from tests.support import emulator_call

    monkeypatch.setenv("POLL_INTERVAL_S", "30")
    reset_caches()
    emulator_call(emulator.url, "/_emulator/faults", {"speed": 150})  # 300 frames: ~2 s
    rid, payload = _pending(user_id="forecast")
    stub_world.actors["start_render"].send(payload)
    stub_world.join()
    began = time.monotonic()

    def read_mid_render() -> bool:
        stub_world.actors["poll_batch"].send([rid])
        stub_world.join()
        render = renders.get(rid)
        assert render is not None
        return render.progress >= 0.1 or render.status == "complete"

    wait_until(read_mid_render, timeout=10, interval=0.1, what="a reading mid-render")
    render = renders.get(rid)
    assert render is not None and render.status == "rendering"
    assert render.poll_early_at is not None  # its predicted end

    def swept_to_the_end() -> bool:
        tick_s = get_settings().sweep_every_s
        stub_world.actors["poll_tick"].send(int(time.time() // tick_s))
        stub_world.join()
        return renders.get(rid).status == "complete"  # type: ignore[union-attr]  # the row exists

    wait_until(swept_to_the_end, timeout=10, interval=0.2, what="completed by the early poll")
    assert time.monotonic() - began < 8  # not the 30 s interval
    status_calls = emulator_call(emulator.url, "/_emulator/stats")["status_calls"]
    assert status_calls <= 20  # a few early polls, never a storm (>= 250 ms apart)
