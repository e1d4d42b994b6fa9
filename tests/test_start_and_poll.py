"""Start and poll logic in-process, against the emulator over HTTP and a real database."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import col

from shared import renders
from shared.models import Render
from shared.producer import message_payload
from shared.redis_client import get_redis
from shared.redis_keys import keys
from shared.render_request import RenderRequest
from shared.repository import insert_pending
from shared.settings import get_settings
from tests.support import emulator_call, get_render, make_request, wait_until
from worker import poller, slots, start
from worker.defer import Defer


def req(**overrides: object) -> RenderRequest:
    return make_request(**{"width": 1280, "height": 720, "duration_in_frames": 90, **overrides})


def pending(**overrides: object) -> tuple[str, dict]:
    rid = str(uuid.uuid4())
    request = req(**overrides)
    insert_pending(rid, request)
    return rid, message_payload(rid, request)


def stats(emulator) -> dict:
    return emulator_call(emulator.url, "/_emulator/stats")


@pytest.fixture
def db(use_db, database_url):
    return use_db(database_url)


@pytest.fixture
def sqlite_db(use_db, sqlite_url):
    return use_db(sqlite_url)


def poll_until_terminal(render_id: str, timeout: float = 10.0) -> Render:
    def step() -> Render | None:
        render = get_render(render_id)
        if render.status in ("complete", "failed"):
            return render
        poller.poll_batch([render_id])
        time.sleep(0.02)
        return None

    return wait_until(step, timeout=timeout, what=f"render {render_id} terminal")


def test_start_then_poll_to_complete(db, emulator):
    rid, payload = pending()
    start.start_render(payload, "m1")
    render = get_render(rid)
    assert render.status == "rendering"
    assert render.lambda_render_id and render.lambda_bucket is not None
    assert render.lambda_bucket.startswith("remotionlambda-")
    assert stats(emulator)["starts_by_out_name"] == {f"{rid}-1.mp4": 1}
    done = poll_until_terminal(rid)
    assert done.status == "complete"
    assert done.output_url is not None and done.output_url.endswith(f"{rid}-1.mp4")
    assert done.output_size_bytes is not None and done.cost_usd is not None
    assert done.output_size_bytes > 0 and done.cost_usd > 0 and done.progress == 1.0


def test_same_message_delivered_concurrently_starts_once(db, emulator):
    emulator_call(emulator.url, "/_emulator/faults", {"start_delay_ms": 100})
    rid, payload = pending()
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    deferred: list[Defer] = []

    def deliver() -> None:
        barrier.wait()
        try:
            start.start_render(dict(payload), "same-message")
        except Defer as exc:  # the claim is held: come back when it would expire
            deferred.append(exc)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert stats(emulator)["starts_total"] == 1
    assert deferred and all(d.counter == "claim_waits" for d in deferred)
    assert get_render(rid).status == "rendering"
    # A late redelivery after the render started does nothing either.
    start.start_render(dict(payload), "same-message")
    assert stats(emulator)["starts_total"] == 1


def test_foreign_message_without_row_creates_it_once(db, emulator):
    payload = req(generation_id="foreign").model_dump(mode="json")
    start.start_render(payload, "msg-123")
    start.start_render(payload, "msg-123")  # redelivery
    render = get_render("msg-123")
    assert render is not None and render.status == "rendering"
    assert renders.count_by_status()["rendering"] == 1
    assert stats(emulator)["starts_total"] == 1


def test_invalid_message_naming_a_render_fails_it(sqlite_db, emulator):
    rid, payload = pending()
    payload["fps"] = "thirty"
    start.start_render(payload, "m")
    render = get_render(rid)
    assert render.status == "failed" and render.error_code == "invalid_request"
    assert render.error_message is not None
    assert "fps" in render.error_message
    assert stats(emulator)["starts_total"] == 0


@pytest.mark.parametrize("payload", [None, [], "x", {"user_id": "u"}, {"render_id": 5}])
def test_invalid_message_without_a_render_is_poison(sqlite_db, emulator, payload):
    with pytest.raises(start.PoisonMessage):
        start.start_render(payload, "m")
    assert renders.count_by_status() == {
        "pending": 0,
        "rendering": 0,
        "complete": 0,
        "failed": 0,
        "cancelled": 0,
    }


def test_foreign_message_over_limits_fails_without_reaching_lambda(sqlite_db, emulator):
    payload = req(width=3840, height=2160).model_dump(mode="json")
    start.start_render(payload, "msg-4k")
    render = get_render("msg-4k")
    assert render.status == "failed" and render.error_code == "limit_exceeded"
    assert render.error_message is not None
    assert "width=3840" in render.error_message and "MAX_LONG_SIDE" in render.error_message
    assert stats(emulator)["starts_total"] == 0


def test_throttled_start_defers_and_releases_claim(sqlite_db, emulator):
    emulator_call(emulator.url, "/_emulator/faults", {"throttle_starts": 1})
    rid, payload = pending()
    with pytest.raises(Defer) as info:
        start.start_render(payload, "m")
    assert info.value.counter == "lambda_throttles"
    assert stats(emulator)["start_calls"] == 1, "botocore must not retry a start"
    render = get_render(rid)
    assert render.status == "pending" and render.claim_token is None and render.error_code is None
    start.start_render(payload, "m")  # the deferred redelivery
    assert get_render(rid).status == "rendering"


def test_crash_is_transient_then_gives_up(sqlite_db, emulator, monkeypatch):
    emulator_call(emulator.url, "/_emulator/faults", {"crash_starts": 5})
    rid, payload = pending()
    with pytest.raises(Defer) as info:
        start.start_render(payload, "m")
    assert info.value.counter == "start_errors"
    assert get_render(rid).status == "pending"
    monkeypatch.setenv("MAX_START_ATTEMPTS", "1")
    get_settings.cache_clear()
    start.start_render(payload, "m")
    render = get_render(rid)
    assert render.status == "failed" and render.error_code == "lambda_unavailable"


def test_remotion_rejection_fails_with_its_message(sqlite_db, emulator):
    """A handled start error Remotion raises before it launches anything (handlers/start.ts
    validates deleteAfter after the bucket) fails the render with Remotion's text."""
    text = "Expected deleteAfter value to be one of 1-day, 3-days, 7-days, 30-days, got {2-days}"
    rid, payload = pending(input_props={"__emulator__": {"reject_start": text}})
    start.start_render(payload, "m")
    render = get_render(rid)
    assert render.status == "failed" and render.error_code == "lambda_rejected"
    # The brace would break Remotion's own response parser; ours keeps the message.
    assert render.error_message is not None
    assert text in render.error_message


def test_an_unknown_handled_start_error_may_have_started_a_render(sqlite_db, emulator):
    """Any other handled error of start may come after launch was invoked (a failed
    progress.json write): the render is not failed, and the next attempt looks for it."""
    rid, payload = pending(input_props={"__emulator__": {"reject_start": "S3 write failed"}})
    with pytest.raises(Defer):
        start.start_render(payload, "m")
    render = get_render(rid)
    assert render.status == "pending" and render.start_requests == 1  # the start is counted


def test_fatal_render_error_fails_with_remotion_message(db, emulator):
    rid, payload = pending(input_props={"__emulator__": {"fatal_at": 0.2, "message": "Chrome OOM"}})
    start.start_render(payload, "m")
    done = poll_until_terminal(rid)
    assert done.status == "failed" and done.error_code == "render_error"
    assert done.error_message is not None
    assert "Chrome OOM" in done.error_message


def test_render_past_timeout_fails_with_timeout(sqlite_db, emulator, monkeypatch):
    monkeypatch.setenv("RENDER_TIMEOUT_S", "0.3")
    get_settings.cache_clear()
    rid, payload = pending(input_props={"__emulator__": {"never_finish": True}})
    start.start_render(payload, "m")
    done = poll_until_terminal(rid)
    assert done.status == "failed" and done.error_code == "timeout"


def test_progress_failures_are_retried_then_give_up(sqlite_db, emulator, monkeypatch):
    monkeypatch.setenv("MAX_POLL_FAILURES", "3")
    get_settings.cache_clear()
    rid, payload = pending(input_props={"__emulator__": {"never_finish": True}})
    start.start_render(payload, "m")
    emulator_call(emulator.url, "/_emulator/faults", {"throttle_status": 2})
    poller.poll_batch([rid])
    poller.poll_batch([rid])
    assert get_render(rid).poll_failures == 2
    poller.poll_batch([rid])  # succeeds: the count resets
    render = get_render(rid)
    # (progress may still be 0: Remotion reports none before launch opened the serve URL)
    assert render.status == "rendering" and render.poll_failures == 0 and render.last_polled_at
    emulator_call(emulator.url, "/_emulator/faults", {"crash_status": 3})
    for _ in range(3):
        poller.poll_batch([rid])
    render = get_render(rid)
    assert render.status == "failed" and render.error_code == "poll_failed"


def test_version_mismatch_fails_as_an_operator_problem(sqlite_db, monkeypatch, env):
    from devtools.emulator import EmulatorServer

    with EmulatorServer(port=0, remotion_version="4.0.540") as other:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", other.url)
        from devtools.process import reset_caches

        reset_caches()
        rid, payload = pending()
        start.start_render(payload, "m")
    render = get_render(rid)
    assert render.status == "failed" and render.error_code == "lambda_config"
    assert render.error_message is not None
    assert "Version mismatch" in render.error_message


def test_slot_claim_is_once_per_slot(env):
    assert slots.claim_poll_slot(42)
    assert not slots.claim_poll_slot(42)
    assert slots.claim_poll_slot(43)


def _age(render_id: str, seconds: float) -> None:
    """Move a render's start and last poll back in time, as if it had been running a while."""
    import sqlalchemy as sa

    from shared.db import get_engine
    from shared.models import utcnow

    when = utcnow() - timedelta(seconds=seconds)
    with get_engine().begin() as conn:
        conn.execute(
            sa.update(Render)
            .where(col(Render.id) == render_id)
            .values(
                started_at=when,
                last_polled_at=sa.case((col(Render.last_polled_at).is_(None), None), else_=when),
            )
        )


def test_a_sweep_polls_only_the_renders_that_are_due(sqlite_db, emulator, monkeypatch):
    from tests.conftest import _reset_caches

    # Long enough that a slow machine cannot make the fresh render due by itself.
    monkeypatch.setenv("POLL_INTERVAL_S", "60")
    _reset_caches()
    interval = get_settings().poll_interval_s
    assert interval == 60
    fresh, payload = pending(input_props={"__emulator__": {"never_finish": True}})
    start.start_render(payload, "m")
    old, payload = pending(input_props={"__emulator__": {"never_finish": True}})
    start.start_render(payload, "m")
    _age(old, interval)
    assert poller.plan_sweep() == [[old]]
    poller.poll_batch([old])
    assert poller.plan_sweep() == []  # just polled: due again an interval from now
    _age(fresh, interval)
    _age(old, interval)
    assert sorted(poller.plan_sweep()[0]) == sorted([fresh, old])


def test_sweeps_never_pile_up_and_record_their_duration(sqlite_db, emulator):
    rid, payload = pending(input_props={"__emulator__": {"never_finish": True}})
    start.start_render(payload, "m")
    _age(rid, get_settings().poll_interval_s)
    batches = poller.start_sweep(1000)
    assert batches == [[rid]]
    assert poller.start_sweep(1001) is None  # previous sweep still running: skipped
    assert poller.start_sweep(1000) is None
    next_due = poller.poll_batch(batches[0], 1000).next_due
    assert next_due  # a tick was skipped meanwhile: the next sweep starts right away
    record: dict[str, Any] | None = poller.last_sweep()
    assert record is not None
    assert record["slot"] == 1000 and record["renders"] == 1 and record["polled"] == 1
    assert record["outcomes"] == {"in_progress": 1} and record["duration_s"] >= 0
    # The sweep's own hash keeps its end, for whoever reads it after the next sweep.
    raw: dict[bytes, bytes] = get_redis().hgetall(keys().poll_sweep(1000))  # type: ignore[assignment]  # redis-py types sync and async results as one union
    own = {k.decode(): v.decode() for k, v in raw.items()}
    assert float(own["duration_s"]) == record["duration_s"]
    assert float(own["finished_at"]) == pytest.approx(record["finished_at"])
    assert own["renders"] == "1" and own["done"] == own["batches"] == "1"
    _age(rid, get_settings().poll_interval_s)
    assert poller.start_sweep(1002) == [[rid]]  # finished: the next tick sweeps again


def test_a_database_error_does_not_stop_polling(sqlite_db, emulator, monkeypatch):
    """Planning or a batch failing (database down) must not leave the sweep marked running:
    the next tick sweeps again, and the renders the batch missed are still due."""
    from sqlalchemy.exc import OperationalError

    from shared import repository

    def down(*_args: object, **_kwargs: object) -> None:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    rid, payload = pending(input_props={"__emulator__": {"never_finish": True}})
    start.start_render(payload, "m")
    _age(rid, get_settings().poll_interval_s)
    with monkeypatch.context() as patch:
        patch.setattr(repository, "rendering_ids", down)
        with pytest.raises(OperationalError):
            poller.start_sweep(2000)
    batches = poller.start_sweep(2001)
    assert batches == [[rid]]
    with monkeypatch.context() as patch:
        patch.setattr(repository, "poll_targets", down)
        outcomes = poller.poll_batch(batches[0], 2001).outcomes
    assert outcomes == {"batch_failed": 1}
    sweep = poller.last_sweep()
    assert sweep is not None and sweep["outcomes"] == {"batch_failed": 1}
    assert poller.start_sweep(2002) == [[rid]]  # not running any more, and still due
    poller.poll_batch([rid], 2002)
    assert get_render(rid).last_polled_at is not None
