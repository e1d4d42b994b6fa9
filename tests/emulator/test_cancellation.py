"""Cancellation (4.0.515+): cancel.json, renderers polling it, what a cancelled render shows."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError
from remotion_lambda.exception import RemotionInvalidArgumentException

from tests.emulator.conftest import BUCKET, control, params, progress_when, s3_client, wait_for

LONG = 3000  # frames: one second at speed 3000


def test_cancel_stops_the_renderers(server, client) -> None:
    started = client.render_media_on_lambda(
        params(enable_cancellation=True, force_duration_in_frames=LONG)
    )
    key = f"renders/{started.render_id}/progress.json"
    raw = json.loads(s3_client(server).get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert raw["cancellationEnabled"] is True
    progress_when(client, started, "lambdasInvoked")
    before = control(server, "/_emulator/stats")["s3_calls"]
    client.cancel_render_on_lambda(started.render_id, started.bucket_name)
    after = control(server, "/_emulator/stats")["s3_calls"]
    # The Python client reads progress.json and PUTs cancel.json: S3 only, no Lambda call.
    assert after["GetObject"] == before.get("GetObject", 0) + 1
    assert after["PutObject"] == before.get("PutObject", 0) + 1
    failed = progress_when(client, started, "fatalErrorEncountered")
    assert failed.done is False and failed.outputFile is None
    assert "cancelled" not in failed.__dict__
    renderer = failed.errors[0]
    assert renderer["type"] == "renderer" and renderer["name"] == "Error"
    assert renderer["message"] == "renderMedia() got cancelled"
    assert (renderer["isFatal"], renderer["willRetry"]) == (True, False)
    stitcher = failed.errors[-1]
    assert stitcher["type"] == "stitcher"
    assert stitcher["message"].startswith("Error: renderMedia() got cancelled\n")
    stats = wait_for(
        lambda: (s := control(server, "/_emulator/stats"))["concurrent_functions"] == 0 and s
    )
    assert stats["cancelled_renders"] == 1
    cancellation = stats["cancellations"][started.render_id]
    assert cancellation["functions_running"] == 0
    # Renderers stop at their next poll (50 ms apart here); the launch once it has uploaded
    # the error (the upload loop idles one 250 ms interval, 8 ms at this speed, later).
    assert 0 <= cancellation["stopped_after_ms"] <= 50 + 2 * 8.4 + 30
    with pytest.raises(ClientError):
        s3_client(server).head_object(Bucket=BUCKET, Key=f"renders/{started.render_id}/out-1.mp4")
    body = s3_client(server).get_object(
        Bucket=BUCKET, Key=f"renders/{started.render_id}/cancel.json"
    )
    assert list(json.loads(body["Body"].read())) == ["cancelledAt"]


def test_renderers_started_after_the_signal_stop_at_their_first_poll(
    make_server, make_client
) -> None:
    server = make_server(faults={"composition_ms": 3000})  # 100 ms of validation at speed 3000
    client = make_client(server)
    started = client.render_media_on_lambda(params(enable_cancellation=True))
    client.cancel_render_on_lambda(started.render_id, started.bucket_name)  # before any renderer
    failed = progress_when(client, started, "fatalErrorEncountered")
    assert failed.renderMetadata is not None  # launch itself never polls: it went on
    assert failed.errors[0]["message"] == "renderMedia() got cancelled"
    stats = wait_for(
        lambda: (s := control(server, "/_emulator/stats"))["concurrent_functions"] == 0 and s
    )
    assert stats["outcomes"] == {"cancelled": 1}


def test_cancelling_without_the_flag_raises(server, client) -> None:
    started = client.render_media_on_lambda(params(force_duration_in_frames=LONG))
    with pytest.raises(RemotionInvalidArgumentException) as excinfo:
        client.cancel_render_on_lambda(started.render_id, started.bucket_name)
    assert str(excinfo.value) == (
        f"Cannot cancel render {started.render_id}: The render was not started with "
        "enableCancellation: true."
    )
    assert control(server, "/_emulator/stats")["s3_calls"].get("PutObject") is None


def test_cancelled_error_name_switch(make_server, make_client) -> None:
    server = make_server(faults={"cancel_error_name": "CancelledError"})
    client = make_client(server)
    started = client.render_media_on_lambda(
        params(enable_cancellation=True, force_duration_in_frames=LONG)
    )
    progress_when(client, started, "lambdasInvoked")
    client.cancel_render_on_lambda(started.render_id, started.bucket_name)
    failed = progress_when(client, started, "fatalErrorEncountered")
    assert failed.errors[0]["name"] == "CancelledError"
