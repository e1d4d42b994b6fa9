"""A render's timeline is written by the moves themselves, in their transactions."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

import pytest

from shared import repository, timeline
from shared.errors import IllegalTransition
from shared.models import ErrorCode, RenderStatus, utcnow
from tests.support import make_request


@pytest.fixture
def db(use_db, database_url):
    return use_db(database_url)


def _kinds(render_id: str) -> list[str]:
    return [entry.kind for entry in timeline.entries(render_id)]


def _started(render_id: str) -> None:
    token = uuid.uuid4().hex
    assert repository.claim_start(render_id, token, 60) is not None
    repository.mark_rendering(render_id, token, "lr-1", "bucket", None, "default", step={"n": 1})


def test_a_life_from_throttled_to_replayed_and_complete(db):
    render, _ = repository.insert_pending(str(uuid.uuid4()), make_request())
    repository.set_throttled_until(render.id, utcnow() + timedelta(seconds=5))
    _started(render.id)
    repository.record_progress_many([repository.ProgressReading(render.id, 0.25, 0.001)])
    failure = repository.Failure(render.id, ErrorCode.RENDER_ERROR, "boom", 0.01)
    assert repository.finish_many([], [failure]) == {render.id}
    repository.replay(render.id)
    _started(render.id)
    done = repository.Completion(render.id, "https://x/out.mp4", 10, 0.02)
    assert repository.finish_many([done], [], via="webhook") == {render.id}

    steps = timeline.entries(render.id)
    assert [s.kind for s in steps] == [
        "throttled",
        "started",
        "progress",
        "failed",
        "replayed",
        "started",
        "complete",
    ]
    assert steps[1].detail == {"lambda_render_id": "lr-1", "pool": "default", "n": 1}
    assert steps[2].detail == {"progress": 0.25}
    assert steps[3].detail["error_code"] == "render_error"
    assert steps[4].detail == {"attempt": 2}
    assert steps[6].detail["via"] == "webhook"
    assert all(a.at <= b.at for a, b in itertools.pairwise(steps))


def test_a_move_that_loses_its_race_writes_no_step(db):
    render, _ = repository.insert_pending(str(uuid.uuid4()), make_request())
    assert repository.claim_start(render.id, "a", 60) is not None
    with pytest.raises(IllegalTransition):
        repository.mark_rendering(render.id, "b", "lr", "bucket")
    repository.cancel(render.id, "not needed")
    with pytest.raises(IllegalTransition):
        repository.fail(render.id, RenderStatus.PENDING, code="x", message="late")
    assert _kinds(render.id) == ["cancelled"]
    assert timeline.entries(render.id)[0].detail["reason"] == "not needed"
