"""Operator actions (``shared.operations``) on the real start path, in-process: pause and
resume, replay, dead letters, cancel; each one audited."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from dramatiq import Message

from devtools.process import reset_caches
from shared import audit, operations, pauses, renders, repository, timeline
from shared.messages import start_render_message
from shared.models import ErrorCode, RenderStatus
from shared.producer import message_payload
from shared.redis_client import get_redis
from shared.redis_keys import keys
from shared.settings import get_settings
from tests.inprocess.conftest import StubWorld
from tests.support import make_request
from worker import reconciler

OP = "operator:ada"


def _pending(user_id: str) -> tuple[str, dict[str, Any]]:
    request = make_request(user_id=user_id, generation_id=f"g-{uuid.uuid4().hex[:6]}")
    render_id = str(uuid.uuid4())
    repository.insert_pending(render_id, request)
    return render_id, message_payload(render_id, request)


def _status(render_id: str) -> str:
    render = renders.get(render_id)
    assert render is not None
    return render.status.value


def test_a_paused_user_waits_others_start_and_resume_starts_it(stub_world: StubWorld) -> None:
    operations.pause("sleepy", actor=OP, reason="billing check")
    held, held_payload = _pending("sleepy")
    other, other_payload = _pending("awake")
    stub_world.actors["start_render"].send(held_payload)
    stub_world.actors["start_render"].send(other_payload)
    stub_world.join()

    assert _status(other) == "rendering"
    assert _status(held) == "pending"  # waiting, not lost
    assert pauses.is_held(held)
    found = pauses.pause_for("sleepy")
    assert found is not None and found.by == OP and found.reason == "billing check"
    assert "paused by operator:ada" in found.describe()
    assert [e.kind for e in timeline.entries(held)] == ["paused"]
    # Held renders have no message on purpose: the reconciler does not send them again.
    assert held in pauses.held()

    # A second delivery of the held render (a lost-message repair, say) is held again, once.
    stub_world.actors["start_render"].send(held_payload)
    stub_world.join()
    assert pauses.held_count() == 1

    assert operations.resume("sleepy", actor=OP, broker=stub_world.broker) == 1
    stub_world.join()
    assert _status(held) == "rendering"
    assert not pauses.is_held(held) and pauses.active() == []
    assert [e.kind for e in timeline.entries(held)][-2:] == ["resumed", "started"]
    actions = [(e.action, e.target) for e in audit.recent()]
    assert actions[:2] == [("resume", "user:sleepy"), ("pause", "user:sleepy")]


def test_pausing_everything_holds_every_user_until_the_last_pause_lifts(
    stub_world: StubWorld,
) -> None:
    operations.pause(None, actor=OP)
    operations.pause("u2", actor=OP)
    a, a_payload = _pending("u1")
    b, b_payload = _pending("u2")
    for payload in (a_payload, b_payload):
        stub_world.actors["start_render"].send(payload)
    stub_world.join()
    assert (_status(a), _status(b)) == ("pending", "pending")
    assert [p.user_id for p in pauses.active()] == [None, "u2"]

    # Everything resumes, but u2 is still paused on its own: only u1's render goes.
    assert operations.resume(None, actor=OP, broker=stub_world.broker) == 1
    stub_world.join()
    assert (_status(a), _status(b)) == ("rendering", "pending")
    assert operations.resume("u2", actor=OP, broker=stub_world.broker) == 1
    stub_world.join()
    assert _status(b) == "rendering"


def test_a_held_render_cancelled_while_paused_is_not_started_by_resume(
    stub_world: StubWorld,
) -> None:
    operations.pause("c", actor=OP)
    rid, payload = _pending("c")
    stub_world.actors["start_render"].send(payload)
    stub_world.join()
    operations.cancel(rid, actor=OP, reason="not wanted")
    assert operations.resume("c", actor=OP, broker=stub_world.broker) == 0
    assert _status(rid) == "cancelled"
    entry = audit.recent(target=f"render:{rid}")[0]
    assert (entry.actor, entry.action, entry.detail) == (OP, "cancel", {"reason": "not wanted"})


def test_the_reconciler_leaves_held_renders_alone(stub_world: StubWorld, monkeypatch) -> None:
    operations.pause("r", actor=OP)
    rid, payload = _pending("r")
    stub_world.actors["start_render"].send(payload)
    stub_world.join()
    monkeypatch.setenv("RECONCILE_GRACE_S", "0")
    reset_caches()
    sent: list[Message[Any]] = []
    monkeypatch.setattr(reconciler, "enqueue_many", lambda _b, messages: sent.extend(messages))
    assert reconciler.requeue_lost(stub_world.broker) == 0  # type: ignore[arg-type]  # only enqueue_many sees it
    assert sent == []
    pauses.forget([rid])  # the hold lost (a Redis flush): now it is a lost render
    assert reconciler.requeue_lost(stub_world.broker) == 1  # type: ignore[arg-type]  # as above
    assert [m.args[0]["render_id"] for m in sent] == [rid]


def test_replay_replays_failed_skips_what_cannot_be_fixed_and_audits(
    stub_world: StubWorld,
) -> None:
    fixable, _ = _pending("rp")
    repository.fail(fixable, RenderStatus.PENDING, code=ErrorCode.RENDER_ERROR, message="boom")
    rejected, _ = _pending("rp")
    repository.fail(rejected, RenderStatus.PENDING, code=ErrorCode.LIMIT_EXCEEDED, message="big")
    running, running_payload = _pending("rp")
    stub_world.actors["start_render"].send(running_payload)
    stub_world.join()

    outcome = operations.replay(
        [fixable, rejected, running, "missing", fixable], actor=OP, broker=stub_world.broker
    )
    stub_world.join()
    assert outcome.replayed == [fixable]
    assert set(outcome.skipped) == {rejected, running}
    assert "limit_exceeded" in outcome.skipped[rejected]
    assert outcome.not_found == ["missing"]
    replayed = renders.get(fixable)
    assert replayed is not None and replayed.status == "rendering" and replayed.attempts == 2
    assert replayed.error_history[0]["code"] == "render_error"
    entry = audit.recent(target=f"render:{fixable}")[0]
    assert entry.action == "replay" and entry.detail["attempt"] == 2

    forced = operations.replay([rejected], actor=OP, force=True, broker=stub_world.broker)
    assert forced.replayed == [rejected]
    # Replaying again finds nothing failed: a second operator's click is a no-op.
    again = operations.replay([fixable], actor=OP, broker=stub_world.broker)
    assert again.replayed == [] and fixable in again.skipped


def _dead_letter(queue: str, message: Message[Any], traceback: str) -> None:
    """What Dramatiq's Redis broker leaves for a message out of retries: its id in
    ``<queue>.XQ`` by time, the message (with its traceback option) in ``<queue>.XQ.msgs``."""
    doc = json.loads(message.encode())
    doc["options"] = {**doc.get("options", {}), "traceback": traceback, "retries": 3}
    client, k = get_redis(), keys()
    client.zadd(k.dead_letters(queue), {message.message_id: int(time.time() * 1000)})
    client.hset(k.dead_letter_messages(queue), message.message_id, json.dumps(doc))


def test_dead_letters_list_requeue_and_delete(stub_world: StubWorld) -> None:
    queue = get_settings().start_queue
    rid, payload = _pending("dl")
    first = start_render_message(payload)
    _dead_letter(queue, first, "Traceback ...\nLambdaTransient: the network was down")
    second = start_render_message({"junk": True})
    _dead_letter(queue, second, "Traceback ...\nPoisonMessage: invalid render message")

    letters = {d.message_id: d for d in operations.dead_letters()}
    assert set(letters) == {first.message_id, second.message_id}
    assert letters[first.message_id].render_id == rid
    assert letters[first.message_id].reason == "LambdaTransient: the network was down"
    assert letters[first.message_id].actor_name == "start_render"
    assert operations.dead_letter_count() == 2

    assert operations.requeue_dead_letter(
        queue, first.message_id, actor=OP, broker=stub_world.broker
    )
    stub_world.join()
    assert _status(rid) == "rendering"  # sent again, started once
    assert not operations.requeue_dead_letter(queue, first.message_id, actor=OP)  # gone now
    assert operations.delete_dead_letter(queue, second.message_id, actor=OP)
    assert not operations.delete_dead_letter(queue, second.message_id, actor=OP)
    assert not operations.delete_dead_letter("no-such-queue", second.message_id, actor=OP)
    assert operations.dead_letters() == []
    actions = [e.action for e in audit.recent()]
    assert actions[:2] == ["dead_letter.delete", "dead_letter.requeue"]
