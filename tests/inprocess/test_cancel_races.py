"""A cancel racing a completion: exactly one terminal state wins, in either order, and the
render's one event says which."""

from __future__ import annotations

import uuid

import pytest

from shared import renders, repository
from shared.errors import IllegalTransition
from shared.producer import message_payload
from shared.repository import events as outbox
from tests.inprocess.conftest import StubWorld
from tests.support import get_render, make_request
from worker import outcomes


def _rendering(world: StubWorld) -> str:
    request = make_request(
        generation_id=f"race-{uuid.uuid4().hex[:6]}",
        notify={"queue_name": "app-events", "actor_name": "done"},
    )
    render_id = str(uuid.uuid4())
    repository.insert_pending(render_id, request)
    world.actors["start_render"].send(message_payload(render_id, request))
    world.join()
    assert get_render(render_id).status == "rendering"
    return render_id


def _complete(world: StubWorld, render_id: str) -> None:
    """What a poll batch does when Lambda says done; a batch that reads the render after
    another thread completed it (or saw it stop) finds nothing to poll, as a late one would."""
    done = outcomes.Completed("https://s3/b/renders/x/out.mp4", 10, 0.01)
    targets = repository.poll_targets([render_id])
    outcomes.apply(world.broker, [(target, done) for target in targets])


def test_completion_first_then_cancel(stub_world: StubWorld) -> None:
    rid = _rendering(stub_world)
    _complete(stub_world, rid)
    with pytest.raises(IllegalTransition) as caught:
        renders.cancel(rid, "too late")
    assert caught.value.actual == "complete"
    assert get_render(rid).status == "complete"
    assert [e.type for e in outbox.list_events(render_id=rid)] == ["render.complete"]


def test_cancel_first_then_completion(stub_world: StubWorld) -> None:
    rid = _rendering(stub_world)
    assert renders.cancel(rid, "first").status == "cancelled"
    _complete(stub_world, rid)  # the render finished on Lambda before it saw cancel.json
    row = get_render(rid)
    assert row.status == "cancelled" and row.output_url is None
    assert row.stopped_at is not None  # Lambda is done with it: its budget is released
    assert [e.type for e in outbox.list_events(render_id=rid)] == ["render.cancelled"]


@pytest.mark.own_redis_keys  # the producer's queue, app-events
def test_concurrent_cancels_and_completions_leave_one_terminal_state(
    stub_world: StubWorld,
) -> None:
    import threading

    rid = _rendering(stub_world)
    errors: list[BaseException] = []

    def cancel() -> None:
        try:
            renders.cancel(rid, "race")
        except IllegalTransition:
            pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=cancel) for _ in range(4)]
    threads += [threading.Thread(target=_complete, args=(stub_world, rid)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    row = get_render(rid)
    assert row.status in ("complete", "cancelled")
    events = outbox.list_events(render_id=rid)
    assert len(events) == 1 and events[0].type == f"render.{row.status}"
