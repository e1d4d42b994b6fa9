"""Webhooks as launch.ts sends them (invoke-webhook.ts): payloads, signature, retries, faults."""

from __future__ import annotations

import json
import re
import time

import pytest
from remotion_lambda.exception import RemotionException
from remotion_lambda.models import Webhook
from remotion_lambda.webhook import validate_webhook_signature

from tests.emulator.conftest import (
    BUCKET,
    control,
    params,
    progress_when,
    s3_client,
    wait_for,
)

SUCCESS_KEYS = [
    "type",
    "renderId",
    "expectedBucketOwner",
    "bucketName",
    "customData",
    "outputUrl",
    "lambdaErrors",
    "outputFile",
    "separateAudio",
    "outputSequence",
    "timeToFinish",
    "costs",
]
STATIC_KEYS = ["type", "renderId", "expectedBucketOwner", "bucketName", "customData"]
WEBHOOK_ERROR_KEYS = [
    "type",
    "message",
    "name",
    "stack",
    "tmpDir",
    "frame",
    "chunk",
    "isFatal",
    "attempt",
    "willRetry",
    "totalAttempts",
]


def _hook(sink, secret: str | None = "s3cr3t", custom: object = None) -> Webhook:
    return Webhook(secret=secret, url=sink.url, customData=custom)


def _raw_errors(server, render_id: str) -> list:
    key = f"renders/{render_id}/progress.json"
    return json.loads(s3_client(server).get_object(Bucket=BUCKET, Key=key)["Body"].read())["errors"]


def test_success_webhook(server, client, webhook_sink) -> None:
    started = client.render_media_on_lambda(params(webhook=_hook(webhook_sink, custom={"job": 1})))
    [hit] = webhook_sink.wait(1)
    done = client.get_render_progress(started.render_id, started.bucket_name)
    assert done.done is True  # sent after postRenderData was written
    headers = {k.lower(): v for k, v in hit.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(hit.body))
    assert headers["x-remotion-mode"] == "production"
    assert headers["x-remotion-status"] == "success"
    validate_webhook_signature("s3cr3t", hit.body, headers["x-remotion-signature"])
    with pytest.raises(RemotionException, match="Signatures do not match"):
        validate_webhook_signature("other", hit.body, headers["x-remotion-signature"])
    payload = json.loads(hit.body)
    assert list(payload) == SUCCESS_KEYS
    # JSON.stringify bytes: compact, and numbers as JavaScript writes them (0.00001, not 1e-05).
    assert hit.body.startswith(f'{{"type":"success","renderId":"{started.render_id}",'.encode())
    assert re.search(rb"\d[eE]-\d", hit.body) is None
    assert payload["renderId"] == started.render_id and payload["bucketName"] == BUCKET
    assert payload["expectedBucketOwner"] == "123456789012"
    assert payload["customData"] == {"job": 1}
    assert payload["outputUrl"] == payload["outputFile"] == done.outputFile
    assert payload["separateAudio"] is None and payload["outputSequence"] is None
    assert payload["lambdaErrors"] == []
    assert list(payload["costs"]) == [
        "currency",
        "disclaimer",
        "estimatedCost",
        "estimatedDisplayCost",
    ]
    assert payload["costs"]["disclaimer"] == (
        "Estimated cost for function invocations only. Does not include cost for storage and "
        "data transfer."
    )
    assert control(server, "/_emulator/stats")["webhooks"]["delivered"] == 1


def test_no_secret_and_the_error_webhook(server, client, webhook_sink) -> None:
    started = client.render_media_on_lambda(
        params(composition="Nope", webhook=_hook(webhook_sink, secret=None))
    )
    [hit] = webhook_sink.wait(1)
    assert client.get_render_progress(started.render_id, started.bucket_name).fatalErrorEncountered
    headers = {k.lower(): v for k, v in hit.headers.items()}
    assert headers["x-remotion-signature"] == "NO_SECRET_PROVIDED"
    assert headers["x-remotion-status"] == "error"
    with pytest.raises(RemotionException, match="No webhook signature was provided"):
        validate_webhook_signature("s3cr3t", hit.body, headers["x-remotion-signature"])
    payload = json.loads(hit.body)
    assert list(payload) == [*STATIC_KEYS, "errors"]
    [error] = payload["errors"]
    assert list(error) == ["message", "name", "stack"]
    assert error["message"].startswith("Error: Could not find composition with ID Nope.")
    assert payload["customData"] is None


def test_timeout_webhook(make_server, make_client, webhook_sink) -> None:
    # Fires at max(remaining - 1000, 1000) ms: 1000 ms into a launch with a 1.5 s timeout.
    server = make_server(function_timeout_s=1.5)
    client = make_client(server)
    props = {"__emulator__": {"never_finish": True}}
    started = client.render_media_on_lambda(params(input_props=props, webhook=_hook(webhook_sink)))
    [hit] = webhook_sink.wait(1, timeout=5)
    launched = wait_for(lambda: client.get_render_progress(started.render_id, started.bucket_name))
    payload = json.loads(hit.body)
    assert list(payload) == STATIC_KEYS and payload["type"] == "timeout"
    fired_ms = time.time() * 1000 - (time.monotonic() - hit.at) * 1000
    assert 950 <= fired_ms - launched.functionLaunched <= 1400
    time.sleep(0.6)  # the launch is killed at 1.5 s: nothing else is sent
    assert len(webhook_sink.received) == 1


def test_failed_webhook_is_retried_then_recorded(make_server, make_client, webhook_sink) -> None:
    server = make_server()
    client = make_client(server)
    assert control(server, "/_emulator/faults")["webhook_backoff_ms"] == [20.0, 40.0]
    webhook_sink.statuses = [500, 500, 500]
    started = client.render_media_on_lambda(params(webhook=_hook(webhook_sink)))
    hits = webhook_sink.wait(3)
    assert [h.body for h in hits] == [hits[0].body] * 3
    assert hits[1].at - hits[0].at >= 0.02 and hits[2].at - hits[1].at >= 0.04
    entry = wait_for(
        lambda: [e for e in _raw_errors(server, started.render_id) if e["type"] == "webhook"]
    )[0]
    assert list(entry) == WEBHOOK_ERROR_KEYS
    assert entry["message"] == f"Failed to send webhook to {webhook_sink.url}, got status code 500"
    assert (entry["isFatal"], entry["frame"], entry["chunk"]) == (False, 0, 0)
    # The done answer reports postRenderData's errors, fixed before the webhook was sent.
    assert client.get_render_progress(started.render_id, started.bucket_name).errors == []
    webhooks = control(server, "/_emulator/stats")["webhooks"]
    assert (webhooks["failed"], webhooks["attempt_failures"], webhooks["sent"]) == (1, 3, 3)

    webhook_sink.received.clear()
    webhook_sink.statuses = [503]
    again = client.render_media_on_lambda(params(webhook=_hook(webhook_sink), out_name="b.mp4"))
    webhook_sink.wait(2)
    time.sleep(0.05)
    assert not [e for e in _raw_errors(server, again.render_id) if e["type"] == "webhook"]


def test_a_failed_error_webhook_records_the_render_error(server, client, webhook_sink) -> None:
    webhook_sink.statuses = [500, 500, 500]
    started = client.render_media_on_lambda(params(composition="Nope", webhook=_hook(webhook_sink)))
    webhook_sink.wait(3)
    errors = wait_for(lambda: (e := _raw_errors(server, started.render_id)) and len(e) == 2 and e)
    stitcher, webhook = errors
    assert webhook["type"] == "webhook"
    # launch.ts's catch reuses the render's error here (not the webhook's failure).
    assert (webhook["message"], webhook["name"], webhook["stack"]) == (
        stitcher["message"],
        stitcher["name"],
        stitcher["stack"],
    )


def test_webhook_faults(make_server, make_client, webhook_sink) -> None:
    server = make_server()
    client = make_client(server)
    control(server, "/_emulator/faults", {"webhook_drop": 1})
    dropped = client.render_media_on_lambda(params(webhook=_hook(webhook_sink), out_name="d.mp4"))
    progress_when(client, dropped, "done")
    time.sleep(0.1)
    assert webhook_sink.received == []

    control(server, "/_emulator/faults", {"webhook_duplicate": 1})
    client.render_media_on_lambda(params(webhook=_hook(webhook_sink), out_name="dup.mp4"))
    first, second = webhook_sink.wait(2)
    assert first.body == second.body
    webhook_sink.received.clear()

    control(server, "/_emulator/faults", {"webhook_reorder": 1})
    held = client.render_media_on_lambda(params(webhook=_hook(webhook_sink), out_name="held.mp4"))
    progress_when(client, held, "done")
    time.sleep(0.1)
    assert webhook_sink.received == []  # held back ...
    later = client.render_media_on_lambda(params(webhook=_hook(webhook_sink), out_name="next.mp4"))
    hits = webhook_sink.wait(2)
    assert [json.loads(h.body)["renderId"] for h in hits] == [later.render_id, held.render_id]
    webhook_sink.received.clear()

    control(
        server, "/_emulator/faults", {"rules": [{"composition": "Fine", "webhook_delay_ms": 300}]}
    )
    delayed = client.render_media_on_lambda(params(composition="Fine", webhook=_hook(webhook_sink)))
    progress_when(client, delayed, "done")
    done_at = time.monotonic()
    [hit] = webhook_sink.wait(1)
    assert hit.at - done_at >= 0.2
    stats = control(server, "/_emulator/stats")["webhooks"]
    assert (stats["dropped"], stats["duplicated"], stats["reordered"], stats["delayed"]) == (
        1,
        1,
        1,
        1,
    )
    assert stats["held"] == 0
