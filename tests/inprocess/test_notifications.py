"""Terminal events: recorded with the transition, delivered at least once, signed, retried,
dead-lettered, and never sent to an address a producer should not reach."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis
from standardwebhooks.webhooks import Webhook

from devtools.process import reset_caches
from shared import callbacks, repository
from shared.models import EventStatus, RenderStatus
from shared.producer import RenderLimitExceeded, enqueue_render
from shared.redis_keys import RedisKeys
from shared.repository import events as outbox
from shared.settings import Settings
from tests.support import make_request
from worker import notifications

SIGNING = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # base64 of 24 bytes


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/renders", True),
        ("https://hooks.example.com:8443/r?x=1", True),
        ("http://hooks.example.com/renders", False),
        ("https://user:pw@hooks.example.com/", False),
        ("https://127.0.0.1/", False),
        ("https://10.1.2.3/", False),
        ("https://169.254.169.254/latest/meta-data/", False),
        ("https://[::1]/", False),
        ("https://localhost/", False),
        ("https://metadata.google.internal/", False),
        ("ftp://hooks.example.com/", False),
    ],
)
def test_callback_urls_a_producer_may_name(url: str, allowed: bool) -> None:
    assert (callbacks.check_syntax(url, Settings()) is None) is allowed


def test_an_allowed_host_may_be_http_and_internal() -> None:
    settings = Settings(callback_allowed_hosts="127.0.0.1, hooks.internal")
    assert callbacks.check_syntax("http://127.0.0.1:9000/x", settings) is None
    assert callbacks.check_syntax("http://hooks.internal/x", settings) is None
    assert callbacks.check_syntax("http://10.0.0.1/x", settings) is not None


def test_a_name_resolving_to_an_internal_address_is_refused_before_sending() -> None:
    """This machine's own name passes the syntax check but resolves to an internal address
    (loopback or the sandbox's private network): refused at send time."""
    name = socket.gethostname()
    address = ipaddress.ip_address(socket.getaddrinfo(name, 443)[0][4][0])
    if address.is_global:
        pytest.skip(f"{name} resolves to a public address here")
    assert callbacks.check_syntax(f"https://{name}/hook", Settings()) is None
    with pytest.raises(callbacks.CallbackRefused, match="internal address"):
        callbacks.resolve_public(f"https://{name}/hook", Settings())


def test_the_producer_rejects_an_internal_callback(env: dict[str, str], sqlite_url: str) -> None:
    with pytest.raises(RenderLimitExceeded, match="callback_url"):
        enqueue_render(make_request(callback_url="http://169.254.169.254/latest"))


class _Receiver:
    """A callback endpoint: records what it got, answers with the next status in ``codes``."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.codes: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.codes.pop(0) if receiver.codes else 200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/renderq"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(
    env: dict[str, str], use_db: Any, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[_Receiver]:
    use_db(sqlite_url)
    monkeypatch.setenv("CALLBACK_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("NOTIFY_SIGNING_SECRET", SIGNING)
    monkeypatch.setenv("NOTIFY_MAX_ATTEMPTS", "3")
    reset_caches()
    server = _Receiver()
    yield server
    server.server.shutdown()


def _render_with_targets(url: str) -> str:
    request = make_request(
        generation_id=f"g-{uuid.uuid4().hex[:6]}",
        notify={"queue_name": "app-events", "actor_name": "render_done"},
        callback_url=url,
    )
    render_id = str(uuid.uuid4())
    repository.insert_pending(render_id, request)
    return render_id


def test_a_terminal_transition_records_one_event_per_channel(receiver: _Receiver) -> None:
    rid = _render_with_targets(receiver.url)
    repository.fail(rid, RenderStatus.PENDING, code="limit_exceeded", message="too big")
    rows = outbox.list_events(render_id=rid)
    assert sorted(r.channel for r in rows) == ["dramatiq", "http"]
    assert len({r.event_id for r in rows}) == 1
    event = rows[0].payload
    assert event["type"] == "render.failed" and event["render"]["error_code"] == "limit_exceeded"
    assert "callback_url" not in event["render"] and "notify" not in event["render"]
    # A render that asked for nothing records nothing.
    plain = str(uuid.uuid4())
    repository.insert_pending(plain, make_request(generation_id="plain"))
    repository.fail(plain, RenderStatus.PENDING, code="limit_exceeded", message="x")
    assert outbox.list_events(render_id=plain) == []


@pytest.mark.own_redis_keys  # the producer's own queue, app-events
def test_both_channels_deliver_signed_events_once(
    receiver: _Receiver, redis_url: str, namespace: str
) -> None:
    rid = _render_with_targets(receiver.url)
    repository.cancel(rid, "user asked")
    rows = {r.channel: r for r in outbox.list_events(render_id=rid)}
    assert notifications.deliver([r.id for r in rows.values()]) == {"delivered": 2}
    assert notifications.deliver([r.id for r in rows.values()]) == {"not_due": 2}

    headers, body = receiver.received[0]
    verified = Webhook(SIGNING).verify(body, headers)
    assert verified["event_id"] == rows["http"].event_id == headers["webhook-id"]
    assert verified["type"] == "render.cancelled"
    assert verified["render"]["cancel_reason"] == "user asked"

    client = redis.Redis.from_url(redis_url)
    stored = client.hvals(RedisKeys(namespace).queue_messages("app-events"))
    [message] = [json.loads(raw) for raw in stored]
    assert message["message_id"] == rows["dramatiq"].id
    assert message["actor_name"] == "render_done" and message["args"][0] == verified
    assert {r.status for r in outbox.list_events(render_id=rid)} == {EventStatus.DELIVERED}


def test_a_failing_callback_is_retried_then_dead_lettered_then_replayed(
    receiver: _Receiver,
) -> None:
    rid = _render_with_targets(receiver.url)
    repository.fail(rid, RenderStatus.PENDING, code="invalid_request", message="x")
    [http] = [r for r in outbox.list_events(render_id=rid) if r.channel == "http"]
    receiver.codes = [500, 502, 503]
    assert notifications.deliver([http.id]) == {"retry": 1}
    retried = next(r for r in outbox.list_events(render_id=rid) if r.id == http.id)
    assert retried.status == EventStatus.PENDING and retried.attempts == 1
    assert "500" in (retried.last_error or "")
    for _ in range(2):  # due again without waiting for the backoff
        with outbox.single_statement() as conn:
            conn.exec_driver_sql(
                "UPDATE render_event SET next_attempt_at = '2000-01-01' WHERE id = ?",
                (http.id,),
            )
        notifications.deliver([http.id])
    dead = next(r for r in outbox.list_events(render_id=rid) if r.id == http.id)
    assert dead.status == EventStatus.DEAD and dead.attempts == 3
    assert outbox.replay_dead([http.id]) == 1
    assert notifications.deliver([http.id]) == {"delivered": 1}
    assert len(receiver.received) == 4


def test_two_senders_never_send_one_event_at_once(receiver: _Receiver) -> None:
    rid = _render_with_targets(receiver.url)
    repository.fail(rid, RenderStatus.PENDING, code="invalid_request", message="x")
    [http] = [r for r in outbox.list_events(render_id=rid) if r.channel == "http"]
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(notifications.deliver_one(http.id)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["delivered"] + ["not_due"] * 7
    assert len(receiver.received) == 1
