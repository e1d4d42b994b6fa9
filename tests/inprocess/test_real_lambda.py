"""How renderq handles what real Remotion Lambda does, in-process (``StubBroker``).

A render Lambda throttles inside the render (its renderers found no concurrency) is started
again as a new attempt, invisibly, with its permit given back; past ``MAX_THROTTLE_RESTARTS``
it fails with ``lambda_throttled``. A worker whose function runs another Remotion version
refuses to start.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from devtools.emulator import EmulatorServer
from devtools.process import reset_caches
from shared import renders, repository
from shared.producer import message_payload
from shared.rate_limit import get_limiter
from tests.inprocess.conftest import StubWorld
from tests.support import get_render, make_request, wait_until
from worker import preflight

#: What launch.ts records when a renderer invocation gets TooManyRequestsException
#: (call-lambda-streaming.ts wraps it; stream-renderer.ts passes the stack on).
THROTTLED_INSIDE = (
    "AWS Concurrency limit reached (Original Error: Rate Exceeded.). See "
    "https://www.remotion.dev/docs/lambda/troubleshooting/rate-limit for tips to fix this."
)


def _pending(**overrides: Any) -> tuple[str, dict[str, Any]]:
    request = make_request(generation_id=f"g-{uuid.uuid4().hex[:6]}", **overrides)
    render_id = str(uuid.uuid4())
    repository.insert_pending(render_id, request)
    return render_id, message_payload(render_id, request)


def _poll_until(world: StubWorld, render_id: str, predicate: Any, what: str) -> Any:
    def polled() -> Any:
        world.actors["poll_batch"].send([render_id])
        world.join()
        render = renders.get(render_id)
        return render if render is not None and predicate(render) else None

    return wait_until(polled, timeout=30, interval=0.3, what=what)


def test_a_render_throttled_inside_lambda_starts_again_then_fails_at_the_limit(
    stub_world: StubWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_THROTTLE_RESTARTS", "1")
    monkeypatch.setenv("THROTTLE_RESTART_BACKOFF_MS", "200")
    reset_caches()
    props = {"__emulator__": {"fatal_at": 0.0, "message": THROTTLED_INSIDE}}
    rid, payload = _pending(user_id="crowded", input_props=props)
    stub_world.actors["start_render"].send(payload)
    stub_world.join()
    first = renders.get(rid)
    assert first is not None and first.status == "rendering" and first.rate_permit

    restarted = _poll_until(stub_world, rid, lambda r: r.attempts == 2, "a second attempt")
    assert restarted.throttle_restarts == 1 and restarted.error_code is None
    assert restarted.out_name.endswith("-2.mp4")
    assert restarted.error_history[-1]["code"] == "lambda_throttled"
    assert "Rate Exceeded" in restarted.error_history[-1]["message"]
    # Started again after THROTTLE_RESTART_BACKOFF_MS (100-200 ms), not the default 2.5-5 s.
    moved_at = time.monotonic()
    wait_until(lambda: get_render(rid).status == "rendering", timeout=20, what="restarted")
    assert time.monotonic() - moved_at < 2.0
    # The first attempt's permit was given back: the user paid for one start, not two.
    assert get_limiter().quota("crowded").used == 1

    failed = _poll_until(stub_world, rid, lambda r: r.status == "failed", "failed at the limit")
    assert failed.error_code == "lambda_throttled" and failed.attempts == 2
    assert "MAX_THROTTLE_RESTARTS" in (failed.error_message or "")
    assert "AWS Concurrency limit reached" in (failed.error_message or "")


def test_other_fatal_errors_fail_the_render_with_remotions_message(stub_world: StubWorld) -> None:
    props = {"__emulator__": {"fatal_at": 0.0, "message": "Could not load image a.png"}}
    rid, payload = _pending(input_props=props)
    stub_world.actors["start_render"].send(payload)
    stub_world.join()
    failed = _poll_until(stub_world, rid, lambda r: r.status == "failed", "failed")
    assert failed.error_code == "render_error" and failed.attempts == 1
    assert failed.error_message == "Could not load image a.png"


def test_preflight_names_the_function_and_both_versions(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert preflight.check_function() == "4.0.539"
    with EmulatorServer(port=0, remotion_version="4.0.540") as other:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", other.url)
        reset_caches()
        with pytest.raises(preflight.FunctionUnusable) as caught:
            preflight.check_function()
    message = str(caught.value)
    assert "remotion-render-4-0-539-mem2048mb-disk2048mb-120sec" in message
    assert "4.0.540" in message and "4.0.539" in message


def test_preflight_reads_the_version_in_a_conventional_name(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "REMOTION_LAMBDA_FUNCTION_NAME", "remotion-render-4-0-512-mem3009mb-disk10240mb-900sec"
    )
    reset_caches()
    with pytest.raises(preflight.FunctionUnusable, match=r"named for Remotion 4\.0\.512"):
        preflight.check_function()
    assert preflight.version_in_name("my-own-function") is None
