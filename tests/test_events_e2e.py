"""Events end to end: the web process, workers, the scheduler and the emulator over HTTP.

Remotion's webhooks (sent by the emulator exactly as launch.ts sends them) complete renders;
a dropped one is caught by the safety poll; cancellation stops renders on Lambda, also after
RENDER_TIMEOUT_S; notifications survive the sender being SIGKILLed mid-delivery.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from devtools.devstack import free_port
from devtools.emulator import EmulatorServer
from shared import renders
from shared.models import EventStatus
from shared.producer import enqueue_render, enqueue_renders
from shared.repository import events as outbox
from tests.inprocess.test_remotion_webhooks import remotion_body, sign
from tests.support import (
    WorkerGroup,
    all_terminal,
    emulator_call,
    get_render,
    make_request,
    wait_until,
)

pytestmark = pytest.mark.e2e

SECRET = "e2e-webhook-secret-0123456789abcdef"
SIGNING = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def db(use_db, database_url):
    return use_db(database_url)


@pytest.fixture
def webhooks(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Webhooks on, and the settings every process of the test shares."""
    port = free_port()
    values = {
        "REMOTION_WEBHOOK_URL": f"http://127.0.0.1:{port}/webhooks/remotion",
        "REMOTION_WEBHOOK_SECRET": SECRET,
        "SAFETY_POLL_INTERVAL_S": "60",  # polling will not be what ends these renders
        "WEB_PORT": str(port),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
        env[key] = value
    return values


def _start_all(workers: WorkerGroup, webhooks: dict[str, str]) -> None:
    workers.start_web(int(webhooks["WEB_PORT"]))
    workers.start_worker(processes=1, threads=8)
    workers.start_scheduler()


def test_webhooks_complete_renders_without_polling(
    db: str, workers: WorkerGroup, emulator: EmulatorServer, webhooks: dict[str, str]
) -> None:
    emulator_call(emulator.url, "/_emulator/faults", {"webhook_duplicate": 3})
    _start_all(workers, webhooks)
    stored = enqueue_renders([make_request(generation_id=f"wh-{i}") for i in range(6)])
    ids = [r.id for r in stored]
    wait_until(lambda: all_terminal(ids), timeout=60, what="renders terminal")
    done = renders.get_many(ids)
    assert {r.status for r in done} == {"complete"}, workers.all_logs()[-3000:]
    assert all(r.output_url and r.output_size_bytes and r.cost_usd for r in done)
    stats = emulator_call(emulator.url, "/_emulator/stats")
    assert stats["webhooks"]["sent"] >= 6
    # No progress call was needed: the first poll is a safety interval away.
    assert stats["status_calls"] == 0


def test_a_dropped_webhook_is_caught_by_the_safety_poll(
    db: str,
    workers: WorkerGroup,
    emulator: EmulatorServer,
    webhooks: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
) -> None:
    monkeypatch.setenv("SAFETY_POLL_INTERVAL_S", "1")
    env["SAFETY_POLL_INTERVAL_S"] = "1"
    emulator_call(emulator.url, "/_emulator/faults", {"webhook_drop": 100})
    _start_all(workers, webhooks)
    render = enqueue_render(make_request(generation_id="dropped"))
    wait_until(lambda: all_terminal([render.id]), timeout=60, what="render terminal")
    assert get_render(render.id).status == "complete"
    stats = emulator_call(emulator.url, "/_emulator/stats")
    assert stats["webhooks"]["dropped"] >= 1 and stats["status_calls"] >= 1


def test_cancel_a_pending_render_and_a_rendering_one(
    db: str, workers: WorkerGroup, emulator: EmulatorServer, webhooks: dict[str, str]
) -> None:
    waiting = enqueue_render(make_request(generation_id="cancel-pending"))
    assert renders.cancel(waiting.id, "changed my mind").status == "cancelled"
    long = enqueue_render(
        make_request(
            generation_id="cancel-rendering", input_props={"__emulator__": {"never_finish": True}}
        )
    )
    _start_all(workers, webhooks)
    wait_until(lambda: get_render(long.id).status == "rendering", timeout=30, what="rendering")
    cancelled = renders.cancel(long.id, "too slow")
    assert cancelled.status == "cancelled" and cancelled.cancel_reason == "too slow"

    def stopped() -> bool:
        stats = emulator_call(emulator.url, "/_emulator/stats")
        return bool(stats["cancelled_renders"])

    wait_until(stopped, timeout=30, what="the render stopped on lambda")
    wait_until(lambda: get_render(long.id).stopped_at is not None, timeout=30, what="stop seen")

    def functions_stopped() -> bool:
        # Remotion reports the cancel from the main function; its renderer functions may
        # still be winding down for a moment on a loaded machine.
        [stop] = emulator_call(emulator.url, "/_emulator/stats")["cancellations"].values()
        return stop["stopped_after_ms"] is not None

    wait_until(functions_stopped, timeout=30, what="every function of the render stopped")
    stats = emulator_call(emulator.url, "/_emulator/stats")
    [stop] = stats["cancellations"].values()
    assert stop["stopped_after_ms"] < 5_000
    assert get_render(waiting.id).status == "cancelled"
    assert stats["starts_total"] == 1  # the pending one never started
    budget = emulator_call(emulator.url, "/_emulator/stats")["concurrent_functions"]
    assert budget == 0


def test_render_timeout_stops_the_render_on_lambda(
    db: str,
    workers: WorkerGroup,
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
) -> None:
    monkeypatch.setenv("RENDER_TIMEOUT_S", "1.5")
    env["RENDER_TIMEOUT_S"] = "1.5"
    workers.start_worker(processes=1, threads=8)
    workers.start_scheduler()
    render = enqueue_render(
        make_request(generation_id="slow", input_props={"__emulator__": {"never_finish": True}})
    )
    wait_until(lambda: all_terminal([render.id]), timeout=60, what="render terminal")
    assert get_render(render.id).error_code == "timeout"
    wait_until(
        lambda: emulator_call(emulator.url, "/_emulator/stats")["cancelled_renders"],
        timeout=30,
        what="the timed-out render stopped on lambda",
    )


class _Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/renderq"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    yield server
    server.server.shutdown()


def test_a_notification_survives_a_sigkill_of_its_sender(
    db: str,
    workers: WorkerGroup,
    emulator: EmulatorServer,
    receiver: _Receiver,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
) -> None:
    """The notifier dies after sending, before recording the delivery: the event is sent again
    when its lease ends (at least once), with the same event id, and recorded once."""
    settings = {
        "CALLBACK_ALLOWED_HOSTS": "127.0.0.1",
        "NOTIFY_SIGNING_SECRET": SIGNING,
        "NOTIFY_TIMEOUT_S": "1",  # a lease of 12 s
        "NOTIFY_SWEEP_INTERVAL_S": "1",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
        env[key] = value
    workers.start_worker(
        processes=1, threads=4, queues=["renders", "renders-admitted", "render-polls"]
    )
    workers.start_scheduler()
    notifier = workers.start_worker(
        processes=1,
        threads=4,
        queues=["render-events"],
        extra_env={"FAILPOINTS": "notify.after_send"},
    )
    render = enqueue_render(make_request(generation_id="notify", callback_url=receiver.url))
    wait_until(lambda: all_terminal([render.id]), timeout=60, what="render terminal")
    assert notifier.proc.wait(30) != 0  # killed at the failpoint, after the POST went out
    workers.start_worker(processes=1, threads=4, queues=["render-events"])  # the supervisor
    wait_until(
        lambda: (
            {e.status for e in outbox.list_events(render_id=render.id)} == {EventStatus.DELIVERED}
        ),
        timeout=60,
        what="event delivered",
    )
    assert len(receiver.received) >= 2
    ids = {headers["webhook-id"] for headers, _ in receiver.received}
    assert len(ids) == 1  # one event, sent twice: receivers deduplicate on it
    headers, body = receiver.received[-1]
    event = Webhook(SIGNING).verify(body, headers)
    assert event["type"] == "render.complete" and event["render"]["id"] == render.id


def test_forged_and_replayed_webhooks_over_http_change_nothing(
    db: str, workers: WorkerGroup, emulator: EmulatorServer, webhooks: dict[str, str]
) -> None:
    """1,000 forged webhooks at the real web process while a render runs: every one 401, the
    row untouched; a valid webhook replayed after the render completed changes nothing."""
    _start_all(workers, webhooks)
    running = enqueue_render(
        make_request(generation_id="forged", input_props={"__emulator__": {"never_finish": True}})
    )
    finished = enqueue_render(make_request(generation_id="replayed"))
    wait_until(lambda: get_render(running.id).status == "rendering", timeout=30, what="rendering")
    wait_until(lambda: all_terminal([finished.id]), timeout=60, what="render terminal")
    row = get_render(running.id)
    assert row.lambda_render_id
    body = remotion_body("success", running.id, row.attempts, row.lambda_render_id)
    rng = random.Random(13)
    answers: list[int] = []
    url = webhooks["REMOTION_WEBHOOK_URL"]
    with httpx.Client(timeout=10) as client:
        for i in range(1_000):
            headers = {"content-type": "application/json"}
            sent = body
            if i % 4 == 1:
                headers["x-remotion-signature"] = sign(body, f"guess-{i}")
            elif i % 4 == 2:
                sent = body.replace(b"0.0123", str(rng.random()).encode())
                headers["x-remotion-signature"] = sign(body, SECRET)
            elif i % 4 == 3:
                headers["x-remotion-signature"] = f"sha512={rng.getrandbits(512):0128x}"
            answers.append(client.post(url, content=sent, headers=headers).status_code)
        done = get_render(finished.id)
        replay = remotion_body("success", done.id, done.attempts, done.lambda_render_id or "")
        again = client.post(
            url, content=replay, headers={"x-remotion-signature": sign(replay, SECRET)}
        )
    assert answers == [401] * 1_000
    assert again.status_code == 200, again.text
    after = get_render(running.id)
    assert (after.status, after.completed_at, after.output_url) == ("rendering", None, None)
    replayed = get_render(finished.id)
    assert (replayed.completed_at, replayed.cost_usd) == (done.completed_at, done.cost_usd)
    assert renders.cancel(running.id, "test over").status == "cancelled"
