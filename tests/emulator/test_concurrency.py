"""One account's concurrency: launches, renderers, starts and status calls share it."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from tests.emulator.conftest import (
    FUNCTION,
    control,
    invoke,
    lambda_client,
    params,
    progress_when,
    status_payload,
    wait_for,
)

SLOW = {"__emulator__": {"speed": 30}}  # this render takes seconds


def test_a_throttled_renderer_fails_the_render(make_server, make_client) -> None:
    server = make_server(concurrency_limit=4)
    client = make_client(server)
    # 100 frames at 20 per function: 5 renderers; the launch has 1 slot, 3 renderers get one.
    started = client.render_media_on_lambda(
        params(force_duration_in_frames=100, frames_per_lambda=20)
    )
    progress = progress_when(client, started, "fatalErrorEncountered")
    [error] = progress.errors  # no renderer entry: that renderer never ran
    assert error["type"] == "stitcher" and error["name"] == "Error"
    assert error["chunk"] is None and error["frame"] is None
    assert error["isFatal"] is True and error["willRetry"] is False
    first_line, _, rest = error["message"].partition("\n")
    assert first_line == (
        "Error: AWS Concurrency limit reached (Original Error: Rate Exceeded.). See "
        "https://www.remotion.dev/docs/lambda/troubleshooting/rate-limit for tips to fix this."
    )
    assert rest.startswith("    at ")
    assert error["explanation"] is None  # inspect-error.ts finds no TooManyRequestsException
    assert error["stack"].startswith("Error: Error: AWS Concurrency limit reached")
    stats = control(server, "/_emulator/stats")
    assert stats["concurrency"]["refused"]["renderer"] == 1  # (status polls may be refused too)
    assert stats["peak_concurrent_functions"] == 4
    wait_for(lambda: control(server, "/_emulator/stats")["concurrent_functions"] == 0)


def test_start_and_status_get_429_when_the_account_is_full(make_server, make_client) -> None:
    server = make_server(concurrency_limit=3)
    client = make_client(server)
    started = client.render_media_on_lambda(
        params(force_duration_in_frames=40, frames_per_lambda=20, input_props=SLOW)
    )
    wait_for(lambda: control(server, "/_emulator/stats")["concurrent_functions"] == 3)
    lam = lambda_client(server)
    for payload in (
        {"type": "start", "version": "4.0.539"},
        status_payload(started.render_id),
    ):
        with pytest.raises(lam.exceptions.TooManyRequestsException) as excinfo:
            lam.invoke(FunctionName=FUNCTION, Payload=__import__("json").dumps(payload))
        response = excinfo.value.response
        assert response["Error"] == {
            "Code": "TooManyRequestsException",
            "Message": "Rate Exceeded.",
        }
        assert response["Reason"] == "ConcurrentInvocationLimitExceeded"
        assert response["Type"] == "User"
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == (
            "TooManyRequestsException"
        )
    with pytest.raises(ClientError):  # the Python client re-raises it unchanged
        client.get_render_progress(started.render_id, started.bucket_name)
    stats = control(server, "/_emulator/stats")
    assert stats["concurrency"]["refused"] == {"start": 1, "status": 2}
    assert stats["concurrency"]["in_use"] == {"launch": 1, "renderer": 2}
    assert stats["throttled_total"] == 3


def test_status_calls_hold_a_slot_while_they_run(make_server, make_client) -> None:
    server = make_server(concurrency_limit=2, faults={"status_delay_ms": 300})
    client = make_client(server)
    started = client.render_media_on_lambda(params(concurrency=1, input_props=SLOW))
    import threading

    thread = threading.Thread(
        target=client.get_render_progress, args=(started.render_id, started.bucket_name)
    )
    thread.start()
    wait_for(
        lambda: control(server, "/_emulator/stats")["concurrency"]["in_use"].get("status") == 1
    )
    with pytest.raises(ClientError):
        client.render_media_on_lambda(params(out_name="second.mp4"))
    thread.join()
    assert control(server, "/_emulator/stats")["concurrency"]["peak_by_kind"]["status"] == 1


def test_a_launch_without_a_slot_is_queued_by_aws(make_server, make_client) -> None:
    server = make_server(concurrency_limit=2)
    client = make_client(server)
    first = client.render_media_on_lambda(params(concurrency=1, out_name="a.mp4"))  # 1 slot
    second = client.render_media_on_lambda(params(concurrency=1, out_name="b.mp4"))
    # The start held the second slot when it invoked launch (an Event invocation): AWS
    # queued the launch and ran it when the start's slot came back.
    assert control(server, "/_emulator/stats")["launches_queued"] == 1
    for started in (first, second):
        assert progress_when(client, started, "done").outputFile is not None


def test_running_renders_and_starts_by_out_name(server, client) -> None:
    client.render_media_on_lambda(params(out_name="job-1-1.mp4", input_props=SLOW))
    client.render_media_on_lambda(params(out_name="job-1-1.mp4", input_props=SLOW))
    done = client.render_media_on_lambda(params(out_name="job-2-1.mp4"))
    progress_when(client, done, "done")
    stats = control(server, "/_emulator/stats")
    assert stats["starts_by_out_name"] == {"job-1-1.mp4": 2, "job-2-1.mp4": 1}
    assert stats["running_by_out_name"] == {"job-1-1.mp4": 2}
    assert stats["renders"][done.render_id]["outcome"] == "done"


def test_peak_can_be_reset(server, client) -> None:
    started = client.render_media_on_lambda(params())
    progress_when(client, started, "done")
    wait_for(lambda: control(server, "/_emulator/stats")["concurrent_functions"] == 0)
    assert control(server, "/_emulator/stats")["peak_concurrent_functions"] >= 4
    assert control(server, "/_emulator/stats/reset-peak", {}) == {"peak_concurrent_functions": 0}
    assert invoke(server, {"type": "info"})["type"] == "success"
    assert control(server, "/_emulator/stats")["peak_concurrent_functions"] == 1
