"""The state machine and the read queries, against SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy.exc import DBAPIError

from shared import renders, repository
from shared.errors import IllegalTransition, RenderNotFound
from shared.models import LEGAL_TRANSITIONS, Render, RenderStatus, utcnow
from shared.render_request import RenderRequest
from tests.support import get_render, make_request


def request(**overrides: object) -> RenderRequest:
    return make_request(**overrides)


@pytest.fixture
def db(use_db, database_url):
    return use_db(database_url)


def new_render(**overrides: object) -> Render:
    render, created = repository.insert_pending(str(uuid.uuid4()), request(**overrides))
    assert created
    return render


def started(render_id: str) -> Render:
    token = uuid.uuid4().hex
    assert repository.claim_start(render_id, token, 60) is not None
    repository.mark_rendering(render_id, token, "lambda123", "bucket")
    return get_render(render_id)


def test_insert_is_idempotent_by_id_and_key(db):
    rid = str(uuid.uuid4())
    first, created = repository.insert_pending(rid, request(idempotency_key="k1"))
    assert created and first.status == RenderStatus.PENDING and first.attempts == 1
    again, created_again = repository.insert_pending(rid, request(idempotency_key="k1"))
    assert not created_again and again.id == rid
    other, created_other = repository.insert_pending(
        str(uuid.uuid4()), request(idempotency_key="k1")
    )
    assert not created_other and other.id == rid


def test_full_lifecycle_and_timestamps(db):
    render = new_render()
    rendering = started(render.id)
    assert rendering.status == RenderStatus.RENDERING
    assert rendering.started_at is not None and rendering.lambda_render_id == "lambda123"
    repository.record_progress_many([repository.ProgressReading(render.id, 0.5, 0.001)])
    repository.record_progress_many(
        [repository.ProgressReading(render.id, 0.3, 0.002)]
    )  # never moves backwards
    assert get_render(render.id).progress == pytest.approx(0.5)
    moved = repository.finish_many(
        [repository.Completion(render.id, "https://x/out.mp4", 123, 0.01)], []
    )
    assert moved == {render.id}
    done = get_render(render.id)
    assert done.status == RenderStatus.COMPLETE and done.progress == 1.0
    assert done.completed_at is not None and done.started_at is not None
    assert done.completed_at >= done.started_at >= done.created_at
    assert done.model_dump(mode="json")["status"] == "complete"


def test_finish_many_moves_a_mixed_batch_and_skips_raced_renders(db):
    done_ids = [started(new_render().id).id for _ in range(3)]
    failed_ids = [started(new_render().id).id for _ in range(2)]
    raced = started(new_render().id).id
    repository.transition(raced, RenderStatus.RENDERING, RenderStatus.FAILED)
    repository.record_progress_many([repository.ProgressReading(failed_ids[0], 0.4, 0.05)])
    moved = repository.finish_many(
        [
            repository.Completion(done_ids[0], "https://x/0.mp4", 10, 0.01),
            # Lambda may not report a size or a cost: NULLs must keep their column types.
            repository.Completion(done_ids[1], "https://x/1.mp4", None, None),
            repository.Completion(done_ids[2], "https://x/2.mp4", 2**40, 0.02),
            repository.Completion(raced, "https://x/raced.mp4", 1, 0.01),
        ],
        [
            repository.Failure(failed_ids[0], "RENDER_ERROR", "x" * 5000, None),
            repository.Failure(failed_ids[1], "RENDER_ERROR", "boom", 0.03),
        ],
    )
    assert moved == {*done_ids, *failed_ids}
    rows = {r.id: r for r in renders.get_many([*done_ids, *failed_ids, raced])}
    assert rows[done_ids[0]].output_url == "https://x/0.mp4"
    assert rows[done_ids[1]].output_size_bytes is None and rows[done_ids[1]].cost_usd is None
    assert rows[done_ids[2]].output_size_bytes == 2**40
    assert all(rows[i].status == RenderStatus.COMPLETE for i in done_ids)
    assert all(rows[i].completed_at is not None for i in [*done_ids, *failed_ids])
    first, second = rows[failed_ids[0]], rows[failed_ids[1]]
    assert first.status == second.status == RenderStatus.FAILED
    assert first.cost_usd == pytest.approx(0.05)  # no cost reported: the last one stays
    assert first.error_message is not None and len(first.error_message) == 4000
    assert second.cost_usd == pytest.approx(0.03) and second.error_message == "boom"
    assert rows[raced].status == RenderStatus.FAILED and rows[raced].output_url is None
    assert repository.finish_many([], []) == set()


@pytest.mark.parametrize("to", list(RenderStatus))
@pytest.mark.parametrize("frm", list(RenderStatus))
def test_illegal_moves_raise(db, frm, to):
    if (frm, to) in LEGAL_TRANSITIONS:
        return
    render = new_render()
    with pytest.raises(IllegalTransition):
        repository.transition(render.id, frm, to)


def test_transition_from_wrong_state_reports_actual(db):
    render = new_render()
    with pytest.raises(IllegalTransition) as info:
        repository.transition(render.id, RenderStatus.RENDERING, RenderStatus.COMPLETE)
    assert info.value.actual == "pending"
    # A poll result for a render that is not rendering moves nothing.
    assert repository.finish_many([repository.Completion(render.id, "u", 1, 0)], []) == set()
    with pytest.raises(RenderNotFound):
        repository.transition("nope", RenderStatus.PENDING, RenderStatus.FAILED)


def test_claim_is_exclusive_until_it_expires(db):
    render = new_render()
    assert repository.claim_start(render.id, "a", 60) is not None
    assert repository.claim_start(render.id, "b", 60) is None
    with pytest.raises(IllegalTransition):
        repository.mark_rendering(render.id, "b", "x", "y")
    assert repository.release_claim(render.id, "a")
    claimed = repository.claim_start(render.id, "b", 0.001)
    # Each claim counts a start request; releasing a claim that sent nothing takes it back.
    assert claimed is not None and claimed.start_requests == 1
    assert claimed.out_name == f"{render.id}-1.mp4"
    # An expired claim can be taken over (the holder died).
    import time

    time.sleep(0.01)
    assert repository.claim_start(render.id, "c", 60) is not None


def test_concurrent_claims_have_one_winner(db):
    render = new_render()
    winners: list[str] = []
    barrier = threading.Barrier(8)

    def claim(token: str) -> None:
        barrier.wait()
        if repository.claim_start(render.id, token, 60):
            winners.append(token)

    threads = [threading.Thread(target=claim, args=(f"t{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


def test_replay_keeps_history_and_only_one_concurrent_replay_wins(db):
    render = new_render()
    rendering = started(render.id)
    repository.fail(rendering.id, RenderStatus.RENDERING, code="render_error", message="boom")
    results: list[object] = []
    barrier = threading.Barrier(4)

    def replay() -> None:
        barrier.wait()
        try:
            results.append(repository.replay(render.id))
        except IllegalTransition as exc:
            results.append(exc)

    threads = [threading.Thread(target=replay) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    replayed = [r for r in results if not isinstance(r, Exception)]
    assert len(replayed) == 1
    again = get_render(render.id)
    assert again.status == RenderStatus.PENDING and again.attempts == 2
    assert again.error_code is None
    assert again.error_history[0]["code"] == "render_error"
    assert again.error_history[0]["message"] == "boom"
    claimed = repository.claim_start(render.id, "t", 60)
    assert claimed is not None
    assert claimed.out_name == f"{render.id}-2.mp4"  # a new attempt writes a new object


def test_queries(db):
    a = new_render(user_id="alice", generation_id="gen-a")
    b = new_render(user_id="alice", generation_id="gen-b")
    new_render(user_id="bob", generation_id="gen-c")
    by_id = renders.get(a.id)
    assert by_id is not None and by_id.id == a.id
    assert renders.get("missing") is None
    by_generation = renders.get_by_generation("gen-b")
    assert by_generation is not None and by_generation.id == b.id
    page = renders.list_by_user("alice", limit=1)
    assert [r.id for r in page] == [b.id]
    older = renders.list_by_user("alice", limit=10, before=page[0].created_at)
    assert [r.id for r in older] == [a.id]
    assert renders.count_by_status()["pending"] == 3
    assert len(renders.list_by_status("pending")) == 3
    assert renders.list_by_user("alice", before=utcnow() - timedelta(days=1)) == []


def test_poll_failures_count_and_reset(db):
    render = new_render()
    started(render.id)
    assert repository.record_poll_failure(render.id) == 1
    assert repository.record_poll_failure(render.id) == 2
    repository.record_progress_many([repository.ProgressReading(render.id, 0.1, None)])
    assert get_render(render.id).poll_failures == 0
    assert repository.rendering_ids() == [render.id]


def test_rendering_ids_due_before_an_interval(db):
    """A render is due once its last poll, or its start if never polled, is old enough."""
    fresh, polled, never = new_render(), new_render(), new_render()
    for render in (fresh, polled, never):
        started(render.id)
    repository.record_progress_many([repository.ProgressReading(polled.id, 0.5, None)])
    later = utcnow() + timedelta(seconds=1)
    assert repository.rendering_ids(due_before=utcnow() - timedelta(seconds=1)) == []
    assert set(repository.rendering_ids(due_before=later)) == {fresh.id, polled.id, never.id}
    # Never polled first, then least recently polled.
    assert repository.rendering_ids(due_before=later)[-1] == polled.id


def test_an_early_poll_makes_a_render_due_before_its_interval_until_it_is_read(db):
    """A reading that predicts the end stores when to look again; sweeps take the render from
    then (not before), the scheduler learns it is the next thing due, and the next reading (or
    a failed call) replaces it."""
    soon, regular = new_render(), new_render()
    for render in (soon, regular):
        started(render.id)
    early_at = utcnow() + timedelta(seconds=0.5)
    repository.record_progress_many(
        [
            repository.ProgressReading(soon.id, 0.6, None, early_at),
            repository.ProgressReading(regular.id, 0.2, None),
        ]
    )
    interval_ago = utcnow() - timedelta(seconds=30)
    assert repository.rendering_ids(due_before=interval_ago, early_before=utcnow()) == []
    at_end = early_at + timedelta(milliseconds=1)
    assert repository.rendering_ids(due_before=interval_ago, early_before=at_end) == [soon.id]
    upcoming = repository.next_poll_at(30.0)
    assert upcoming is not None and abs((upcoming - early_at).total_seconds()) < 0.01

    repository.record_poll_failure(soon.id)  # a failed look: back to regular polls
    assert repository.rendering_ids(due_before=interval_ago, early_before=at_end) == []
    upcoming = repository.next_poll_at(30.0)
    assert upcoming is not None and upcoming > utcnow() + timedelta(seconds=25)


def test_progress_readings_are_written_in_one_batch(db):
    a, b, c = new_render(), new_render(), new_render()
    started(a.id)
    started(b.id)
    repository.record_progress_many([repository.ProgressReading(a.id, 0.6, None)])
    # c is still pending: a reading for it must not touch it.
    repository.record_progress_many(
        [
            repository.ProgressReading(a.id, 0.4, 0.01),
            repository.ProgressReading(b.id, 0.5, 0.02),
            repository.ProgressReading(c.id, 0.9, 0.03),
        ]
    )
    ra, rb, rc = get_render(a.id), get_render(b.id), get_render(c.id)
    assert ra.progress == pytest.approx(0.6) and ra.cost_usd == pytest.approx(0.01)
    assert rb.progress == pytest.approx(0.5) and rb.last_polled_at is not None
    assert rc.progress == 0 and rc.cost_usd is None and rc.status == "pending"


def test_a_batch_larger_than_one_insert_is_all_or_nothing(db):
    """Past SQLAlchemy's page size an insert is several statements: they share a transaction,
    so a failure in a later page leaves no earlier rows behind."""
    if db.startswith("sqlite"):
        pytest.skip("SQLite does not enforce VARCHAR lengths: no way to fail one row")
    from shared.db import get_engine

    size = get_engine().dialect.insertmanyvalues_page_size + 1
    items = [(f"batch-{i}", request(user_id=f"u{i % 7}")) for i in range(size)]
    # Bypasses validation: a user id too long for its column fails in the last page only.
    items[-1] = (
        "batch-last",
        RenderRequest.model_construct(**{**dict(request()), "user_id": "x" * 300}),
    )
    with pytest.raises(DBAPIError):
        repository.insert_pending_many(items)
    assert renders.get_many([rid for rid, _ in items]) == []
    created = repository.insert_pending_many(items[:-1])
    assert len(created) == size - 1 and all(was_created for _, was_created in created)
