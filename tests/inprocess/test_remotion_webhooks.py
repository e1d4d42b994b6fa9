"""Remotion's webhooks into the web app (FastAPI's TestClient, in-process), signed exactly as
``packages/serverless/src/invoke-webhook.ts`` signs them: HMAC-SHA512 over the raw bytes.

A verified webhook of the render's current attempt ends the render through the same outcome
code as the poller; anything forged, unsigned, oversized, stale or repeated changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from devtools.process import reset_caches
from shared import renders, repository
from shared.producer import message_payload
from tests.inprocess.conftest import StubWorld
from tests.support import get_render, make_request, wait_until
from web.app import create_app
from worker import restarts

SECRET = "webhook-secret-for-tests-0123456789"


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha512=" + hmac.new(secret.encode(), body, hashlib.sha512).hexdigest()


def remotion_body(kind: str, render_id: str, attempt: int, lambda_render_id: str) -> bytes:
    """A webhook body in launch.ts's field order (compact JSON, as JSON.stringify writes)."""
    common: dict[str, Any] = {
        "type": kind,
        "renderId": lambda_render_id,
        "expectedBucketOwner": "123456789012",
        "bucketName": "remotionlambda-useast1-emulator",
        "customData": {"render_id": render_id, "attempt": attempt},
    }
    if kind == "success":
        url = f"https://s3.us-east-1.amazonaws.com/b/renders/{lambda_render_id}/out.mp4"
        common |= {
            "outputUrl": url,
            "lambdaErrors": [],
            "outputFile": url,
            "timeToFinish": 1234,
            "costs": {
                "currency": "USD",
                "disclaimer": "Estimated cost for function invocations only.",
                "estimatedCost": 0.0123,
                "estimatedDisplayCost": "$0.012",
            },
        }
    elif kind == "error":
        common["errors"] = [{"message": "Could not load image a.png", "name": "Error", "stack": ""}]
    return json.dumps(common, separators=(",", ":")).encode()


@pytest.fixture
def client(stub_world: StubWorld, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("REMOTION_WEBHOOK_URL", "http://127.0.0.1:8000/webhooks/remotion")
    monkeypatch.setenv("REMOTION_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("REMOTION_WEBHOOK_PREVIOUS_SECRETS", "old-secret-still-accepted")
    reset_caches()
    with TestClient(create_app()) as test_client:
        yield test_client


def _rendering(world: StubWorld) -> tuple[str, int, str]:
    request = make_request(generation_id=f"g-{uuid.uuid4().hex[:6]}")
    render_id = str(uuid.uuid4())
    repository.insert_pending(render_id, request)
    world.actors["start_render"].send(message_payload(render_id, request))
    world.join()
    row = get_render(render_id)
    assert row.status == "rendering" and row.lambda_render_id
    return render_id, row.attempts, row.lambda_render_id


def _post(client: TestClient, body: bytes, signature: str | bytes | None) -> Any:
    headers: dict[str, str | bytes] = {"content-type": "application/json"}
    if signature is not None:
        headers["x-remotion-signature"] = signature
    return client.post("/webhooks/remotion", content=body, headers=headers)


def test_a_success_webhook_completes_the_render_once(
    client: TestClient, stub_world: StubWorld
) -> None:
    rid, attempt, lambda_id = _rendering(stub_world)
    body = remotion_body("success", rid, attempt, lambda_id)
    first = _post(client, body, sign(body))
    assert first.status_code == 200, first.text
    done = get_render(rid)
    assert done.status == "complete" and done.cost_usd == 0.0123
    assert done.output_url and done.output_url.endswith("/out.mp4")
    # Remotion retries, and has sent duplicates: the same body again changes nothing.
    again = _post(client, body, sign(body))
    assert again.status_code == 200 and again.json()["detail"] == (
        "nothing to do: the render is complete"
    )
    assert get_render(rid).completed_at == done.completed_at
    # An ended render is matched like one in flight: another attempt's webhook is refused.
    stale = remotion_body("error", rid, attempt + 1, lambda_id)
    assert _post(client, stale, sign(stale)).status_code == 409
    unknown = remotion_body("success", "no-such-render", 1, lambda_id)
    answer = _post(client, unknown, sign(unknown))
    assert answer.status_code == 409 and answer.json()["detail"] == "no such render"


def test_a_webhook_racing_the_start_commit_is_still_applied(
    client: TestClient, stub_world: StubWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first read saw the render before the worker committed ``pending -> rendering``
    (played here by hiding it from that read only); the second read finds it started."""
    rid, attempt, lambda_id = _rendering(stub_world)
    real = repository.poll_targets
    reads: list[int] = []

    def before_the_commit_once(ids: Any) -> Any:
        reads.append(1)
        return [] if len(reads) == 1 else real(ids)

    monkeypatch.setattr(repository, "poll_targets", before_the_commit_once)
    body = remotion_body("success", rid, attempt, lambda_id)
    answer = _post(client, body, sign(body))
    assert answer.status_code == 200, answer.text
    assert get_render(rid).status == "complete" and len(reads) == 2


def test_an_error_webhook_fails_the_render_with_remotions_message(
    client: TestClient, stub_world: StubWorld
) -> None:
    rid, attempt, lambda_id = _rendering(stub_world)
    body = remotion_body("error", rid, attempt, lambda_id)
    assert _post(client, body, sign(body)).status_code == 200
    failed = get_render(rid)
    assert failed.status == "failed" and failed.error_code == "render_error"
    assert failed.error_message == "Could not load image a.png"


def test_a_timeout_webhook_fails_the_render_timeout(
    client: TestClient, stub_world: StubWorld
) -> None:
    rid, attempt, lambda_id = _rendering(stub_world)
    body = remotion_body("timeout", rid, attempt, lambda_id)
    assert _post(client, body, sign(body, "old-secret-still-accepted")).status_code == 200
    assert get_render(rid).error_code == "timeout"


def test_forged_unsigned_oversized_and_stale_webhooks_change_nothing(
    client: TestClient, stub_world: StubWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid, attempt, lambda_id = _rendering(stub_world)
    body = remotion_body("success", rid, attempt, lambda_id)
    rng = random.Random(7)
    answers = []
    for i in range(1_000):
        kind = i % 4
        if kind == 0:  # unsigned
            answers.append(_post(client, body, None).status_code)
        elif kind == 1:  # signed with another secret
            answers.append(_post(client, body, sign(body, f"guess-{i}")).status_code)
        elif kind == 2:  # a valid signature over other bytes
            tampered = body.replace(b"0.0123", str(rng.random()).encode())
            answers.append(_post(client, tampered, sign(body)).status_code)
        else:  # random garbage signatures, including non-ASCII
            junk = "sha512=" + "".join(rng.choice("0123456789abcdefé") for _ in range(128))
            answers.append(_post(client, body, junk.encode("latin-1")).status_code)
    assert set(answers) == {401}
    stale = remotion_body("success", rid, attempt + 1, lambda_id)
    assert _post(client, stale, sign(stale)).status_code == 409
    other_render = remotion_body("error", rid, attempt, "someotherid")
    assert _post(client, other_render, sign(other_render)).status_code == 409
    monkeypatch.setenv("WEBHOOK_MAX_BODY_BYTES", "512")
    reset_caches()
    big = remotion_body("success", rid, attempt, lambda_id) + b" " * 600
    assert _post(client, big, sign(big)).status_code == 413
    row = get_render(rid)
    assert row.status == "rendering" and row.completed_at is None


def test_a_webhook_for_a_replaced_attempt_cannot_move_the_new_one(
    client: TestClient, stub_world: StubWorld
) -> None:
    """Attempt 1 was throttled inside Lambda and restarted; its late error webhook must not
    fail attempt 2."""
    rid, attempt, lambda_id = _rendering(stub_world)
    [target] = repository.poll_targets([rid])
    assert restarts.restart_throttled(stub_world.broker, [(target, "Rate Exceeded")]) == [rid]
    wait_until(lambda: get_render(rid).status == "rendering", timeout=20, what="restarted")
    late = remotion_body("error", rid, attempt, lambda_id)
    assert _post(client, late, sign(late)).status_code == 409
    row = renders.get(rid)
    assert row is not None and row.status == "rendering" and row.attempts == attempt + 1


def test_health_endpoint(client: TestClient) -> None:
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json()["checks"] == {
        "redis": "ok",
        "database": "ok",
    }
