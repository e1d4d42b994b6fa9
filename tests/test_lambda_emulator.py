"""Tests for the devtools.emulator package, driven through the real remotion_lambda client.

The point of the emulator is that the *unmodified* SDK works against it, so most tests go
through ``RemotionClient`` (pointed at the emulator with ``AWS_ENDPOINT_URL_LAMBDA``) and
only fall back to a raw boto3 client where the SDK cannot express the request (a foreign
version) or hides the detail under test (headers, speed).

Timing: renders are made short (tens of frames at hundreds or thousands of frames per
second) and every wait polls for a condition with a generous deadline instead of sleeping
a fixed amount, so the tests stay fast without depending on scheduler luck. The servers
here run without the emulator's per-render overheads (``NO_OVERHEADS``) and with Remotion's
real-time waits shortened (``FAST_REMOTION_WAITS``), so a render takes frames / speed;
``tests/emulator/`` is the fidelity suite that checks those overheads, shapes and texts.

Assertions changed when the emulator became faithful (each says so where it is): start
no longer rejects bad renders (launch fails them later, as a fatal ``stitcher`` error);
a full account no longer refuses a start (the render fails inside, "AWS Concurrency limit
reached"); status errors are unhandled; a non-flaky chunk failure reports a renderer and a
stitcher error and ``overallProgress`` uses Remotion's weights; progress.json is rewritten
as the render goes (coalesced every 250 ms, scaled); PutObject is supported; buckets must
exist before a start names them; done costs use the post-render format.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from remotion_lambda import RemotionClient, RenderMediaParams
from remotion_lambda.exception import RemotionRenderingOutputError

from devtools.emulator import FAST_REMOTION_WAITS, NO_OVERHEADS, REMOTION_VERSION, EmulatorServer

REGION = "us-east-1"
FUNCTION_NAME = "remotion-render-4-0-539-mem2048mb-disk2048mb-120sec"
SERVE_URL = "https://remotionlambda-useast1-abc.s3.us-east-1.amazonaws.com/sites/demo/index.html"
DEFAULT_BUCKET = "remotionlambda-useast1-emulator"
REPO_ROOT = Path(__file__).resolve().parents[1]
NO_RETRIES = botocore.config.Config(retries={"total_max_attempts": 1})
S3_CONFIG = botocore.config.Config(
    s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}
)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


@functools.cache
def _session() -> boto3.Session:
    # One session for the module: building a session reloads botocore's service models,
    # which would dominate the run time. The endpoint is still read per client from
    # AWS_ENDPOINT_URL_LAMBDA or endpoint_url, so sharing it does not leak servers.
    return boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)


def _raw_lambda(server: EmulatorServer) -> Any:
    return _session().client("lambda", endpoint_url=server.url, config=NO_RETRIES)


def _invoke(lam: Any, payload: dict[str, Any], function: str = FUNCTION_NAME) -> Any:
    return json.loads(
        lam.invoke(FunctionName=function, Payload=json.dumps(payload))["Payload"].read()
    )


def _start(**fields: object) -> dict[str, object]:
    """A raw ``start`` payload of the pinned version with the given fields on top."""
    return {
        "type": "start",
        "version": REMOTION_VERSION,
        "composition": "Main",
        "serveUrl": SERVE_URL,
        # What every SDK start carries; launch validates them.
        "inputProps": {"type": "payload", "payload": "{}"},
        "codec": "h264",
        "imageFormat": "jpeg",
        "privacy": "public",
        "maxRetries": 1,
        "timeoutInMilliseconds": 30000,
        **fields,
    }


def _status_payload(render_id: str, bucket_name: str) -> dict[str, Any]:
    return {
        "type": "status",
        "version": REMOTION_VERSION,
        "renderId": render_id,
        "bucketName": bucket_name,
    }


def _raw_progress_when_done(lam: Any, start_body: dict[str, Any]) -> Any:
    status = _status_payload(start_body["renderId"], start_body["bucketName"])

    def check() -> Any:
        body = _invoke(lam, status)
        return body if body["done"] else None

    return _wait_for(check)


def _control(server: EmulatorServer, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        server.url + path, data=data, method="GET" if body is None else "POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _post(server: EmulatorServer, path: str) -> Any:
    request = urllib.request.Request(server.url + path, data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _params(
    *,
    composition: str = "Main",
    frames: int = 30,
    out_name: str | None = "x.mp4",
    input_props: dict[str, Any] | None = None,
    frames_per_lambda: int | None = None,
) -> RenderMediaParams:
    return RenderMediaParams(
        composition=composition,
        force_width=640,
        force_height=360,
        force_fps=30,
        force_duration_in_frames=frames,
        frames_per_lambda=frames_per_lambda,
        out_name=out_name,
        input_props=input_props if input_props is not None else {"title": "Hello"},
    )


def _wait_for(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.01)


def _progress_when(client: RemotionClient, started: Any, flag: str) -> Any:
    """Poll a render until ``flag`` (``done`` / ``fatalErrorEncountered``) is set on it."""

    def check() -> Any:
        progress = client.get_render_progress(started.render_id, started.bucket_name)
        return progress if getattr(progress, flag) else None

    return _wait_for(check)


@pytest.fixture
def make_server() -> Iterator[Callable[..., EmulatorServer]]:
    servers: list[EmulatorServer] = []

    def factory(**options: Any) -> EmulatorServer:
        faults = {**NO_OVERHEADS, **FAST_REMOTION_WAITS, **options.pop("faults", {})}
        server = EmulatorServer(faults=faults, **options).start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., EmulatorServer]) -> EmulatorServer:
    return make_server(speed=1000)


@pytest.fixture
def make_client(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[EmulatorServer], RemotionClient]:
    def factory(target: EmulatorServer) -> RemotionClient:
        # RemotionClient has no endpoint_url argument; boto3 honours these variables.
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", target.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", target.url)
        return RemotionClient(
            REGION, SERVE_URL, FUNCTION_NAME, session=_session(), config=NO_RETRIES
        )

    return factory


@pytest.fixture
def client(
    server: EmulatorServer, make_client: Callable[[EmulatorServer], RemotionClient]
) -> RemotionClient:
    return make_client(server)


# --------------------------------------------------------------------------------------
# happy path
# --------------------------------------------------------------------------------------


def test_render_progresses_to_done_with_output(make_server, make_client) -> None:
    server = make_server(speed=100)  # 60 frames -> 0.6 s
    client = make_client(server)

    started = client.render_media_on_lambda(_params(frames=60))
    assert started is not None
    assert started.bucket_name == DEFAULT_BUCKET
    assert len(started.render_id) == 10
    assert started.render_id.isalnum()
    assert started.render_id == started.render_id.lower()

    # Changed: renderMetadata is written by launch after validation, and reaches
    # progress.json with its next upload (coalesced, 250 ms apart): wait for it.
    def with_metadata() -> Any:
        progress = client.get_render_progress(started.render_id, started.bucket_name)
        return progress.renderMetadata is not None and progress

    first = _wait_for(with_metadata)
    assert first.type == "success"
    assert first.done is False
    assert 0 <= first.overallProgress < 1
    assert first.outputFile is None
    assert first.timeToFinish is None
    assert first.fatalErrorEncountered is False
    assert first.errors == []
    meta = first.renderMetadata
    assert meta["compositionId"] == "Main"
    assert meta["codec"] == "h264"
    assert meta["dimensions"] == {"width": 640, "height": 360}
    assert meta["framesPerLambda"] == 20
    assert meta["totalChunks"] == 3
    assert meta["estimatedTotalLambdaInvokations"] == 4
    assert meta["outName"] == "x.mp4"
    assert meta["renderId"] == started.render_id
    assert meta["lambdaVersion"] == REMOTION_VERSION
    assert meta["region"] == REGION
    assert meta["inputProps"] == {"type": "payload", "payload": '{"title":"Hello"}'}
    assert first.timeoutTimestamp == meta["startedDate"] + 120_000

    time.sleep(0.3)  # progress.json is rewritten every 250 ms while renderers report
    second = client.get_render_progress(started.render_id, started.bucket_name)
    assert second.overallProgress > first.overallProgress
    # No order between the readings' costs: Remotion prices a reading with every unfinished
    # function as running since the render started (serverless/src/
    # estimate-price-from-metadata.ts, calculate-billing-duration.ts), and the finished render
    # by its chunks' own timings (create-post-render-data.ts), so a later reading, the final
    # one included, can cost less (a fresh-clone run saw 6e-05 and then 5e-05 at done). The
    # final figure's formula is checked in tests/emulator/test_status.py.

    done = _progress_when(client, started, "done")
    assert done.overallProgress == 1
    assert done.outputFile == (
        f"https://s3.{REGION}.amazonaws.com/{DEFAULT_BUCKET}/renders/{started.render_id}/x.mp4"
    )
    assert done.outKey == f"renders/{started.render_id}/x.mp4"
    assert done.outBucket == DEFAULT_BUCKET
    assert done.outputSizeInBytes > 0
    assert done.timeToFinish == 600
    assert done.framesRendered == 60
    assert done.chunks == 3
    assert done.fatalErrorEncountered is False
    assert done.costs["currency"] == "USD"
    assert done.costs["accruedSoFar"] > 0
    assert done.costs["disclaimer"]
    assert len(done.mostExpensiveFrameRanges) == 3


def test_output_size_is_deterministic_and_display_cost_format(server, client) -> None:
    sizes = []
    for _ in range(2):
        started = client.render_media_on_lambda(_params(frames=10))
        done = _progress_when(client, started, "done")
        sizes.append(done.outputSizeInBytes)
        # Changed: a done render shows postRenderData's cost, a plain decimal with at most
        # three fraction digits (create-post-render-data.ts), not "<$0.001".
        assert done.costs["accruedSoFar"] < 0.0005
        assert done.costs["displayCost"] == "$0"
    assert sizes[0] == sizes[1]


def test_big_render_costs_display_in_dollars(make_server) -> None:
    server = make_server(speed=50_000)  # 180 functions for 0.36 s: ~49 function-seconds
    lam = _raw_lambda(server)
    payload = _start(composition="Long", forceDurationInFrames=18000, framesPerLambda=100)
    body = _raw_progress_when_done(lam, _invoke(lam, payload))
    assert body["renderMetadata"]["totalChunks"] == 180
    assert body["costs"]["accruedSoFar"] >= 0.001
    shown = f"{body['costs']['accruedSoFar']:.3f}".rstrip("0").rstrip(".")
    assert body["costs"]["displayCost"] == f"${shown}"  # post-render format (see above)


def test_custom_bucket_and_out_name_object(server) -> None:
    # Changed: the buckets must exist (S3 would refuse the writes otherwise).
    for name in ("remotionlambda-useast1-mine", "my-output"):
        _s3(server).create_bucket(Bucket=name)
    lam = _raw_lambda(server)
    payload = _start(
        forceDurationInFrames=10,
        bucketName="remotionlambda-useast1-mine",
        outName={"bucketName": "my-output", "key": "videos/final.mp4"},
    )
    started = _invoke(lam, payload)
    assert started["bucketName"] == "remotionlambda-useast1-mine"
    body = _raw_progress_when_done(lam, started)
    assert body["outputFile"] == f"https://s3.{REGION}.amazonaws.com/my-output/videos/final.mp4"
    assert body["outBucket"] == "my-output"
    assert body["outKey"] == "videos/final.mp4"
    assert _control(server, "/_emulator/stats")["starts_by_out_name"] == {"videos/final.mp4": 1}


def test_invoke_response_headers_and_function_arn(server) -> None:
    lam = _raw_lambda(server)
    arn = f"arn:aws:lambda:{REGION}:123456789012:function:{FUNCTION_NAME}"
    payload = json.dumps({"type": "info", "version": REMOTION_VERSION})
    response = lam.invoke(FunctionName=arn, Qualifier="$LATEST", Payload=payload)
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in response
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["content-type"] == "application/json"
    assert len(headers["x-amzn-requestid"]) == 36
    assert json.loads(response["Payload"].read())["type"] == "success"


# --------------------------------------------------------------------------------------
# errors the real function produces
# --------------------------------------------------------------------------------------


def test_version_mismatch_is_a_handled_error(server) -> None:
    lam = _raw_lambda(server)
    payload = _start(version="4.0.100")
    response = lam.invoke(FunctionName=FUNCTION_NAME, Payload=json.dumps(payload))
    assert response["StatusCode"] == 200
    assert "FunctionError" not in response
    body = json.loads(response["Payload"].read())
    assert body["type"] == "error"
    assert body["message"].startswith(
        "Version mismatch: When calling renderMediaOnLambda(), you passed "
        f"{FUNCTION_NAME} as the function, which has the version {REMOTION_VERSION}, but the "
        "@remotion/lambda package you used to invoke the function has version 4.0.100. "
        "Deploy a new function"
    )
    assert _control(server, "/_emulator/stats")["starts_total"] == 0


def test_sdk_sees_version_mismatch_when_function_is_newer(make_server, make_client) -> None:
    client = make_client(make_server(remotion_version="4.0.540"))
    with pytest.raises(RemotionRenderingOutputError, match="Remotion rendering error: Version"):
        client.render_media_on_lambda(_params())


def test_unknown_render_id(client) -> None:
    # Changed: status errors are unhandled (lambda/src/functions/index.ts), not handled.
    with pytest.raises(RemotionRenderingOutputError) as excinfo:
        client.get_render_progress("zzzzzzzzzz", DEFAULT_BUCKET)
    assert str(excinfo.value) == (
        'Lambda function returned an error: No render with ID "zzzzzzzzzz" found in bucket '
        f"{DEFAULT_BUCKET} and region {REGION}"
    )


def test_status_in_wrong_bucket_is_unknown(client) -> None:
    # Changed: a bucket that does not exist is S3's NoSuchBucket, not "No render with ID".
    started = client.render_media_on_lambda(_params())
    with pytest.raises(RemotionRenderingOutputError, match="The specified bucket does not exist"):
        client.get_render_progress(started.render_id, "remotionlambda-useast1-other")


def test_start_validation_errors(server, client) -> None:
    # Changed: Remotion's start validates none of this; launch does, after the start has
    # returned, and reports a fatal stitcher error in progress.
    cases = [
        (_params(composition=""), "Error: Could not find composition with ID . Available"),
        # 1005 frames at 5 per function -> 201 renderer chunks, above Remotion's 200.
        (_params(frames=1005, frames_per_lambda=5), "Too many functions"),
        (_params(frames=100, frames_per_lambda=2), "at least 5"),
    ]
    for params, text in cases:
        started = client.render_media_on_lambda(params)
        progress = _progress_when(client, started, "fatalErrorEncountered")
        [error] = progress.errors
        assert error["type"] == "stitcher"
        assert text in error["message"]
    lam = _raw_lambda(server)
    assert _invoke(lam, {"type": "nope", "version": REMOTION_VERSION})["errorMessage"].startswith(
        "Command not found"
    )


def test_unknown_function_name_is_404(make_server) -> None:
    server = make_server(function_name=FUNCTION_NAME)
    lam = _raw_lambda(server)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.invoke(FunctionName="some-other-function", Payload="{}")
    assert excinfo.value.response["Error"]["Message"] == (
        f"Function not found: arn:aws:lambda:{REGION}:123456789012:function:some-other-function"
    )
    response = lam.invoke(
        FunctionName=FUNCTION_NAME, Payload=json.dumps({"type": "info", "version": "x"})
    )
    assert response["StatusCode"] == 200


# --------------------------------------------------------------------------------------
# fault injection through the control API
# --------------------------------------------------------------------------------------


def test_throttled_start_raises_too_many_requests(server, client) -> None:
    _control(server, "/_emulator/faults", {"throttle_starts": 1})
    with pytest.raises(ClientError) as excinfo:
        client.render_media_on_lambda(_params())
    error = excinfo.value
    assert error.response["Error"]["Code"] == "TooManyRequestsException"
    assert error.response["Error"]["Message"] == "Rate Exceeded."
    assert error.response["Reason"] == "ConcurrentInvocationLimitExceeded"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    # The count is consumed: the next start goes through.
    assert client.render_media_on_lambda(_params()) is not None
    stats = _control(server, "/_emulator/stats")
    assert stats["throttled_total"] == 1
    assert stats["starts_total"] == 1
    assert stats["start_calls"] == 2


def test_throttled_status_is_the_modeled_exception(server, client) -> None:
    started = client.render_media_on_lambda(_params())
    _control(server, "/_emulator/faults", {"throttle_status": 2})
    lam = _raw_lambda(server)
    status = _status_payload(started.render_id, started.bucket_name)
    for _ in range(2):
        with pytest.raises(lam.exceptions.TooManyRequestsException):
            _invoke(lam, status)
    assert _invoke(lam, status)["type"] == "success"


def test_crashes_are_unhandled_function_errors(server, client) -> None:
    _control(server, "/_emulator/faults", {"crash_starts": 1, "crash_status": 1})
    with pytest.raises(RemotionRenderingOutputError, match="Lambda function returned an error"):
        client.render_media_on_lambda(_params())
    started = client.render_media_on_lambda(_params())
    with pytest.raises(RemotionRenderingOutputError, match="Lambda function returned an error"):
        client.get_render_progress(started.render_id, started.bucket_name)
    assert client.get_render_progress(started.render_id, started.bucket_name).type == "success"
    assert _control(server, "/_emulator/stats")["crashes_total"] == 2

    _control(server, "/_emulator/faults", {"crash_status": 1})
    response = _raw_lambda(server).invoke(
        FunctionName=FUNCTION_NAME,
        Payload=json.dumps(_status_payload(started.render_id, started.bucket_name)),
    )
    assert response["FunctionError"] == "Unhandled"
    body = json.loads(response["Payload"].read())
    assert set(body) == {"errorType", "errorMessage", "trace"}


def test_fail_status_is_a_handled_error(server, client) -> None:
    started = client.render_media_on_lambda(_params())
    _control(server, "/_emulator/faults", {"fail_status": 1})
    with pytest.raises(RemotionRenderingOutputError, match=r"^Remotion rendering error: "):
        client.get_render_progress(started.render_id, started.bucket_name)
    assert client.get_render_progress(started.render_id, started.bucket_name).type == "success"


def test_faults_post_updates_only_given_keys_and_validates(server) -> None:
    after_first = _control(server, "/_emulator/faults", {"throttle_starts": 3, "speed": 50})
    assert after_first["throttle_starts"] == 3
    after_second = _control(server, "/_emulator/faults", {"crash_status": 1})
    assert after_second["throttle_starts"] == 3
    assert after_second["speed"] == 50
    assert after_second["crash_status"] == 1
    for bad in ({"throttle_starts": -1}, {"nonsense": 1}, {"rules": [{"fatal_at": 0.5}]}):
        with pytest.raises(urllib.error.HTTPError) as excinfo:
            _control(server, "/_emulator/faults", bad)
        assert excinfo.value.code == 400


def test_start_delay(server, client) -> None:
    _control(server, "/_emulator/faults", {"start_delay_ms": 150})
    began = time.monotonic()
    client.render_media_on_lambda(_params())
    assert time.monotonic() - began >= 0.15


# --------------------------------------------------------------------------------------
# per-render behaviour from input props and rules
# --------------------------------------------------------------------------------------


def _assert_fatal_renderer_error(progress: Any, message: str, chunk: int) -> None:
    # Changed: Remotion reports the renderer's error *and* the stitcher error launch adds
    # (its message is the renderer's stack), and overallProgress is a weighted sum, not
    # the fraction of the render.
    assert progress.fatalErrorEncountered is True
    assert progress.done is False
    assert progress.overallProgress < 1
    assert progress.outputFile is None
    renderer, stitcher = progress.errors
    assert renderer["isFatal"] is True
    assert renderer["willRetry"] is False
    assert renderer["name"] == "Error"
    assert renderer["type"] == "renderer"
    assert renderer["message"] == message
    assert renderer["chunk"] == chunk
    assert stitcher["type"] == "stitcher"
    assert stitcher["message"].startswith(f"Error: {message}\n")


def test_fatal_at_from_input_props(server, client) -> None:
    props = {"title": "x", "__emulator__": {"fatal_at": 0.4, "message": "Chromium crashed"}}
    started = client.render_media_on_lambda(_params(frames=100, input_props=props))

    progress = _progress_when(client, started, "fatalErrorEncountered")
    # 100 frames: 5 chunks of 20; 0.4 of the way through, chunk 2 fails.
    _assert_fatal_renderer_error(progress, "Chromium crashed", 2)
    time.sleep(0.1)  # it never recovers
    again = client.get_render_progress(started.render_id, started.bucket_name)
    _assert_fatal_renderer_error(again, "Chromium crashed", 2)
    render = _control(server, "/_emulator/stats")["renders"][started.render_id]
    assert render["fatal"] is True
    assert render["done"] is False


def test_fatal_at_from_rules_only_hits_that_composition(server, client) -> None:
    _control(
        server,
        "/_emulator/faults",
        {"rules": [{"composition": "Broken", "fatal_at": 0.5, "message": "rule says no"}]},
    )
    broken = client.render_media_on_lambda(_params(composition="Broken", frames=50))
    fine = client.render_media_on_lambda(_params(composition="Fine", frames=50))
    progress = _progress_when(client, broken, "fatalErrorEncountered")
    _assert_fatal_renderer_error(progress, "rule says no", 1)  # 50 frames: 3 chunks
    done = _progress_when(client, fine, "done")
    assert done.errors == []


def test_input_props_override_rules(server, client) -> None:
    _control(server, "/_emulator/faults", {"rules": [{"composition": "Main", "fatal_at": 0.1}]})
    props = {"__emulator__": {"fatal_at": 0.6}}
    started = client.render_media_on_lambda(_params(frames=50, input_props=props))
    progress = _progress_when(client, started, "fatalErrorEncountered")
    # Changed: which chunk failed shows the props won (0.6 of 3 chunks: chunk 1; rule: 0).
    assert progress.errors[0]["chunk"] == 1


def test_crash_and_reject_start_from_props_and_rules(server, client) -> None:
    with pytest.raises(RemotionRenderingOutputError, match="Lambda function returned an error"):
        client.render_media_on_lambda(_params(input_props={"__emulator__": {"crash_start": True}}))
    with pytest.raises(
        RemotionRenderingOutputError, match=r"^Remotion rendering error: serveUrl is down$"
    ):
        client.render_media_on_lambda(
            _params(input_props={"__emulator__": {"reject_start": "serveUrl is down"}})
        )
    _control(
        server, "/_emulator/faults", {"rules": [{"composition": "Nope", "reject_start": "no"}]}
    )
    with pytest.raises(RemotionRenderingOutputError, match=r"^Remotion rendering error: no$"):
        client.render_media_on_lambda(_params(composition="Nope"))
    with pytest.raises(RemotionRenderingOutputError, match="Invalid emulator directive"):
        client.render_media_on_lambda(_params(input_props={"__emulator__": {"fatal": 1}}))
    assert _control(server, "/_emulator/stats")["starts_total"] == 0


def test_per_render_speed(server, client) -> None:
    slow = client.render_media_on_lambda(
        _params(frames=100, input_props={"__emulator__": {"speed": 10}})
    )
    fast = client.render_media_on_lambda(_params(frames=100))
    _wait_for(lambda: client.get_render_progress(fast.render_id, fast.bucket_name).done)
    assert not client.get_render_progress(slow.render_id, slow.bucket_name).done


def test_never_finish_times_out_like_remotion(make_server, make_client) -> None:
    server = make_server(speed=1000, function_timeout_s=0.3, timeout_grace_s=0.2)
    client = make_client(server)
    props = {"__emulator__": {"never_finish": True}}
    started = client.render_media_on_lambda(_params(frames=20, input_props=props))

    def with_metadata() -> Any:  # changed: written with launch's next progress upload
        progress = client.get_render_progress(started.render_id, started.bucket_name)
        return progress.renderMetadata is not None and progress

    early = _wait_for(with_metadata)
    assert early.fatalErrorEncountered is False
    assert early.timeoutTimestamp == early.renderMetadata["startedDate"] + 300

    # Stalled but not yet declared dead: past the run time, within timeout + grace.
    time.sleep(0.05)
    stalled = client.get_render_progress(started.render_id, started.bucket_name)
    assert stalled.done is False
    assert stalled.overallProgress < 1
    assert stalled.errors == []

    progress = _progress_when(client, started, "fatalErrorEncountered")
    assert progress.done is False
    assert progress.overallProgress < 1
    [error] = progress.errors
    assert error["name"] == "TimeoutError"
    assert error["type"] == "stitcher"
    assert error["isFatal"] is True
    assert error["willRetry"] is False
    assert error["message"].startswith("The main function timed out after 300ms.")
    stats = _control(server, "/_emulator/stats")
    assert stats["concurrent_functions"] == 0


def test_render_slower_than_function_timeout_never_completes(make_server, make_client) -> None:
    # Changed numbers: with speed 100 progress.json is written every 250 ms, so a launch
    # killed after 0.1 s would never write renderMetadata and, as on AWS, never time out.
    server = make_server(speed=1000, function_timeout_s=0.1, timeout_grace_s=0.05)
    client = make_client(server)
    started = client.render_media_on_lambda(_params(frames=1000))  # needs 1 s, killed at 0.1 s
    progress = _progress_when(client, started, "fatalErrorEncountered")
    assert progress.overallProgress < 1  # changed: Remotion's weights, not the fraction
    assert progress.errors[0]["name"] == "TimeoutError"


# --------------------------------------------------------------------------------------
# concurrency and stats
# --------------------------------------------------------------------------------------


def test_concurrency_limit_throttles_and_peak_is_tracked(make_server, make_client) -> None:
    # Changed: a full account does not refuse the start (it needs one slot, for an
    # instant); the launch's renderer invocations are throttled and the render fails with
    # Remotion's "AWS Concurrency limit reached" (stream-renderer.ts, call-lambda-streaming.ts).
    server = make_server(speed=100, concurrency_limit=10)
    client = make_client(server)
    # 100 frames at 20 per function: 5 renderers + 1 launch = 6 functions, 1 s.
    first = client.render_media_on_lambda(_params(frames=100, frames_per_lambda=20))
    stats = _control(server, "/_emulator/stats")
    assert stats["concurrent_functions"] == 6
    assert stats["renders_in_flight"] == 1
    second = client.render_media_on_lambda(_params(frames=100, frames_per_lambda=20))
    failed = _progress_when(client, second, "fatalErrorEncountered")
    [error] = failed.errors  # no renderer entry: the fourth renderer never ran
    assert error["type"] == "stitcher"
    assert error["message"].startswith(
        "Error: AWS Concurrency limit reached (Original Error: Rate Exceeded.)."
    )
    # The start (still running: no cold start here), its launch and 2 renderers got
    # slots, 10 in all; the renderers keep running.
    stats = _control(server, "/_emulator/stats")
    assert stats["peak_concurrent_functions"] == 10
    assert stats["throttled_total"] == 1
    assert stats["concurrency"]["refused"] == {"renderer": 1}

    _wait_for(lambda: client.get_render_progress(first.render_id, first.bucket_name).done)
    _wait_for(lambda: _control(server, "/_emulator/stats")["concurrent_functions"] == 0)
    assert client.render_media_on_lambda(_params(frames=100, frames_per_lambda=20)) is not None
    stats = _control(server, "/_emulator/stats")
    assert stats["concurrent_functions"] == 6
    assert stats["peak_concurrent_functions"] == 10
    assert _post(server, "/_emulator/stats/reset-peak") == {"peak_concurrent_functions": 6}

    # The limit can be lifted at run time.
    _control(server, "/_emulator/faults", {"concurrency_limit": None})
    client.render_media_on_lambda(_params(frames=100, frames_per_lambda=20))
    # 6 + 6, and the start invocation that is still open when its renderers spawn.
    assert _control(server, "/_emulator/stats")["peak_concurrent_functions"] == 13


def test_fatal_render_releases_its_functions(server, client) -> None:
    props = {"__emulator__": {"fatal_at": 0.5}}
    # 10 renderers + 1 orchestrator; fails (and frees them) 0.5 s in.
    client.render_media_on_lambda(_params(frames=1000, frames_per_lambda=100, input_props=props))
    assert _control(server, "/_emulator/stats")["concurrent_functions"] == 11
    _wait_for(lambda: _control(server, "/_emulator/stats")["concurrent_functions"] == 0)


def test_stats_count_starts_per_out_name(server, client) -> None:
    client.render_media_on_lambda(_params(out_name="a.mp4"))
    client.render_media_on_lambda(_params(out_name="a.mp4"))
    started_b = client.render_media_on_lambda(_params(out_name="b.mp4", frames=40))
    client.get_render_progress(started_b.render_id, started_b.bucket_name)
    stats = _control(server, "/_emulator/stats")
    assert stats["starts_total"] == 3
    assert stats["starts_by_out_name"] == {"a.mp4": 2, "b.mp4": 1}
    assert len(stats["start_times_by_out_name"]["a.mp4"]) == 2
    assert all(abs(t - time.time()) < 60 for t in stats["start_times_by_out_name"]["a.mp4"])
    assert stats["status_calls"] == 1
    render = stats["renders"][started_b.render_id]
    assert render["out_name"] == "b.mp4"
    assert render["composition"] == "Main"
    assert render["frames"] == 40
    assert render["functions"] == 3
    assert render["fatal"] is False


def test_reset_clears_renders_counters_and_faults(make_server, make_client) -> None:
    server = make_server(speed=1000, concurrency_limit=50)
    client = make_client(server)
    started = client.render_media_on_lambda(_params())
    _control(
        server,
        "/_emulator/faults",
        {"throttle_starts": 5, "concurrency_limit": 1, "rules": [{"composition": "Main"}]},
    )
    assert _post(server, "/_emulator/reset") == {"ok": True}

    stats = _control(server, "/_emulator/stats")
    assert stats["starts_total"] == 0
    assert stats["starts_by_out_name"] == {}
    assert stats["renders"] == {}
    assert stats["peak_concurrent_functions"] == 0
    faults = _control(server, "/_emulator/faults")
    assert faults["throttle_starts"] == 0
    assert faults["concurrency_limit"] == 50  # back to the constructor's value
    assert faults["rules"] == []
    with pytest.raises(RemotionRenderingOutputError, match="No render with ID"):
        client.get_render_progress(started.render_id, started.bucket_name)
    assert client.render_media_on_lambda(_params()) is not None


# --------------------------------------------------------------------------------------
# S3: finding a render by its outName when the start response was lost
# --------------------------------------------------------------------------------------


def _s3(server: EmulatorServer) -> Any:
    return _session().client("s3", endpoint_url=server.url, config=S3_CONFIG)


def _epoch_ms(moment: datetime.datetime) -> int:
    return round(moment.timestamp() * 1000)


def _all_keys(s3: Any, bucket: str, **kwargs: Any) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, **kwargs)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _find_by_out_name(s3: Any, bucket: str, out_name: str) -> list[str]:
    """What renderq does to recover a start: list renders/, read progress.json, match."""
    found = []
    for key in _all_keys(s3, bucket, Prefix="renders/"):
        if not key.endswith("/progress.json"):
            continue
        progress = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        metadata = progress["renderMetadata"]
        if metadata is not None and metadata["outName"] == out_name:
            assert key == f"renders/{metadata['renderId']}/progress.json"
            found.append(metadata["renderId"])
    return found


def test_find_render_by_out_name_through_s3_only(make_server, make_client) -> None:
    server = make_server(speed=200)
    client = make_client(server)
    s3 = _s3(server)
    client.render_media_on_lambda(_params(out_name="other-1.mp4", frames=10))
    stuck = client.render_media_on_lambda(
        _params(out_name="stuck-1.mp4", input_props={"__emulator__": {"never_finish": True}})
    )
    started = client.render_media_on_lambda(_params(out_name="job-42-1.mp4", frames=100))

    # Changed: renderMetadata appears with launch's next progress upload, not at once.
    assert _wait_for(lambda: _find_by_out_name(s3, DEFAULT_BUCKET, "job-42-1.mp4")) == [
        started.render_id
    ]
    assert _wait_for(lambda: _find_by_out_name(s3, DEFAULT_BUCKET, "stuck-1.mp4")) == [
        stuck.render_id
    ]
    assert _find_by_out_name(s3, DEFAULT_BUCKET, "job-42-2.mp4") == []
    progress_key = f"renders/{started.render_id}/progress.json"
    output_key = f"renders/{started.render_id}/job-42-1.mp4"
    progress = json.loads(s3.get_object(Bucket=DEFAULT_BUCKET, Key=progress_key)["Body"].read())
    metadata = progress["renderMetadata"]
    assert metadata["renderId"] == started.render_id
    assert progress["functionLaunched"] == metadata["startedDate"]
    assert progress["timeoutTimestamp"] == metadata["startedDate"] + 120_000
    assert metadata == client.get_render_progress(started.render_id, DEFAULT_BUCKET).renderMetadata
    # A render that has not finished has no output object.
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=DEFAULT_BUCKET)["Contents"]}
    assert f"renders/{stuck.render_id}/progress.json" in listed
    assert f"renders/{stuck.render_id}/stuck-1.mp4" not in listed
    # Changed: progress.json is rewritten as the render goes, so it is newer than the start.
    assert _epoch_ms(listed[progress_key]["LastModified"]) >= metadata["startedDate"]
    with pytest.raises(ClientError) as excinfo:
        s3.head_object(Bucket=DEFAULT_BUCKET, Key=f"renders/{stuck.render_id}/stuck-1.mp4")
    assert excinfo.value.response["Error"]["Code"] == "404"

    # Changed: finish-render.ts uploads the output before postRenderData reaches
    # progress.json, so the object can be listed a moment before status says done.
    _wait_for(lambda: output_key in set(_all_keys(s3, DEFAULT_BUCKET)))
    done = _progress_when(client, started, "done")
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=DEFAULT_BUCKET)["Contents"]}
    output = listed[output_key]
    assert output["Size"] == done.outputSizeInBytes
    assert output["StorageClass"] == "STANDARD"
    assert _epoch_ms(output["LastModified"]) == metadata["startedDate"] + done.timeToFinish
    assert _epoch_ms(listed[progress_key]["LastModified"]) >= metadata["startedDate"]
    got = s3.get_object(Bucket=DEFAULT_BUCKET, Key=output_key)
    assert got["ContentLength"] == output["Size"] == len(got["Body"].read())
    assert got["ContentType"] == "video/mp4"
    assert got["ETag"] == output["ETag"]
    head = s3.head_object(Bucket=DEFAULT_BUCKET, Key=progress_key)
    assert head["ContentLength"] == listed[progress_key]["Size"]
    assert head["ContentType"] == "application/json"
    part = s3.get_object(Bucket=DEFAULT_BUCKET, Key=output_key, Range="bytes=10-19")
    assert part["ContentRange"] == f"bytes 10-19/{output['Size']}"
    assert part["Body"].read() == bytes(10)


def test_render_whose_start_response_was_lost_is_found(make_server, monkeypatch) -> None:
    server = make_server(speed=1000)
    _control(server, "/_emulator/faults", {"start_delay_ms": 300})
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", server.url)
    impatient = botocore.config.Config(read_timeout=0.1, retries={"total_max_attempts": 1})
    client = RemotionClient(REGION, SERVE_URL, FUNCTION_NAME, session=_session(), config=impatient)
    with pytest.raises(ReadTimeoutError):
        client.render_media_on_lambda(_params(out_name="job-7-1.mp4"))
    s3 = _s3(server)
    [render_id] = _wait_for(lambda: _find_by_out_name(s3, DEFAULT_BUCKET, "job-7-1.mp4"))
    assert list(_control(server, "/_emulator/stats")["renders"]) == [render_id]


def test_out_name_with_special_characters_round_trips(server, client) -> None:
    started = client.render_media_on_lambda(_params(out_name="a b+c&d%.mp4", frames=5))
    _progress_when(client, started, "done")
    s3 = _s3(server)
    key = f"renders/{started.render_id}/a b+c&d%.mp4"
    assert key in _all_keys(s3, DEFAULT_BUCKET)  # boto3 asks for (and decodes) url encoding
    raw = s3.list_objects_v2(Bucket=DEFAULT_BUCKET, EncodingType="url")
    assert f"renders/{started.render_id}/a%20b%2Bc%26d%25.mp4" in {
        o["Key"] for o in raw["Contents"]
    }
    assert s3.head_object(Bucket=DEFAULT_BUCKET, Key=key)["ContentLength"] > 0
    assert _find_by_out_name(s3, DEFAULT_BUCKET, "a b+c&d%.mp4") == [started.render_id]


def test_list_objects_v2_pagination_delimiter_and_start_after(server, client) -> None:
    started = [client.render_media_on_lambda(_params(frames=5)) for _ in range(5)]
    for render in started:
        _progress_when(client, render, "done")
    s3 = _s3(server)
    everything = s3.list_objects_v2(Bucket=DEFAULT_BUCKET, Prefix="renders/")
    keys = [o["Key"] for o in everything["Contents"]]
    assert len(keys) == everything["KeyCount"] == 10
    assert keys == sorted(keys)
    assert everything["IsTruncated"] is False
    assert "NextContinuationToken" not in everything

    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=DEFAULT_BUCKET, Prefix="renders/", MaxKeys=2
        )
    )
    assert [o["Key"] for page in pages for o in page["Contents"]] == keys
    assert [page["KeyCount"] for page in pages] == [2] * 5
    assert [page["IsTruncated"] for page in pages] == [True] * 4 + [False]
    assert all("NextContinuationToken" in page for page in pages[:4])
    assert pages[1]["ContinuationToken"] == pages[0]["NextContinuationToken"]

    folders = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=DEFAULT_BUCKET, Prefix="renders/", Delimiter="/", MaxKeys=2
        )
    )
    prefixes = [p["Prefix"] for page in folders for p in page.get("CommonPrefixes", [])]
    assert prefixes == sorted(f"renders/{render.render_id}/" for render in started)
    assert not any("Contents" in page for page in folders)
    assert [page["KeyCount"] for page in folders] == [2, 2, 1]
    top = s3.list_objects_v2(Bucket=DEFAULT_BUCKET, Delimiter="/")
    assert top["CommonPrefixes"] == [{"Prefix": "renders/"}]
    assert top["KeyCount"] == 1

    after = s3.list_objects_v2(Bucket=DEFAULT_BUCKET, StartAfter=keys[2])
    assert [o["Key"] for o in after["Contents"]] == keys[3:]
    one = started[0].render_id
    assert _all_keys(s3, DEFAULT_BUCKET, Prefix=f"renders/{one}/") == [
        f"renders/{one}/progress.json",
        f"renders/{one}/x.mp4",
    ]
    empty = s3.list_objects_v2(Bucket=DEFAULT_BUCKET, Prefix="nothing/")
    assert empty["KeyCount"] == 0
    assert "Contents" not in empty


def test_list_objects_v2_caps_pages_at_1000_keys(server) -> None:
    payload = json.dumps(_start(forceDurationInFrames=5, outName="o.mp4")).encode()
    for _ in range(600):  # in process: 600 starts over HTTP would dominate the run time
        assert server.emulator.invoke(FUNCTION_NAME, payload).status == 200
    s3 = _s3(server)
    _wait_for(
        lambda: all(r["done"] for r in _control(server, "/_emulator/stats")["renders"].values())
    )
    # botocore parses ~10 keys/ms, so the test reads each key once.
    pages = list(s3.get_paginator("list_objects_v2").paginate(Bucket=DEFAULT_BUCKET))
    assert [(page["KeyCount"], page["MaxKeys"], page["IsTruncated"]) for page in pages] == [
        (1000, 1000, True),
        (200, 1000, False),
    ]
    keys = [obj["Key"] for page in pages for obj in page["Contents"]]
    assert len(set(keys)) == 1200
    assert keys == sorted(keys)
    capped = s3.list_objects_v2(Bucket=DEFAULT_BUCKET, MaxKeys=5000, StartAfter=keys[-3])
    assert (capped["MaxKeys"], capped["KeyCount"]) == (1000, 2)
    raw = server.emulator.s3("GET", f"/{DEFAULT_BUCKET}", "list-type=2&max-keys=5000")
    assert raw.body.count(b"<Contents>") == 1000
    assert _control(server, "/_emulator/stats")["s3_calls"] == {"ListObjectsV2": 4}


def test_s3_errors(server, client) -> None:
    started = client.render_media_on_lambda(_params())
    s3 = _s3(server)

    def error_of(call: Callable[[], Any]) -> tuple[str, int]:
        with pytest.raises(ClientError) as excinfo:
            call()
        response = excinfo.value.response
        return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]

    assert error_of(lambda: s3.get_object(Bucket=DEFAULT_BUCKET, Key="renders/x/y")) == (
        "NoSuchKey",
        404,
    )
    assert error_of(lambda: s3.head_object(Bucket=DEFAULT_BUCKET, Key="nope")) == ("404", 404)
    missing = "remotionlambda-useast1-missing"
    for call in (
        lambda: s3.list_objects_v2(Bucket=missing),
        lambda: s3.get_object(Bucket=missing, Key=f"renders/{started.render_id}/progress.json"),
        lambda: s3.get_bucket_location(Bucket=missing),
    ):
        assert error_of(call) == ("NoSuchBucket", 404)
    assert error_of(lambda: s3.head_bucket(Bucket=missing)) == ("404", 404)
    assert error_of(
        lambda: s3.list_objects_v2(Bucket=DEFAULT_BUCKET, ContinuationToken="bogus!")
    ) == ("InvalidArgument", 400)
    # Changed: PutObject is supported now; CopyObject is not.
    copy = {"Bucket": DEFAULT_BUCKET, "Key": "k2", "CopySource": f"{DEFAULT_BUCKET}/k"}
    assert error_of(lambda: s3.copy_object(**copy)) == ("NotImplemented", 501)
    progress_key = f"renders/{started.render_id}/progress.json"
    assert error_of(
        lambda: s3.get_object(Bucket=DEFAULT_BUCKET, Key=progress_key, Range="bytes=99999-")
    ) == ("InvalidRange", 416)
    # Lambda paths are not S3, whatever the method.
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(server.url + f"/2015-03-31/functions/{FUNCTION_NAME}/invocations")
    assert excinfo.value.headers["x-amzn-ErrorType"] == "UnknownOperationException"


def test_buckets_and_locations(make_server, make_client, monkeypatch) -> None:
    server = make_server(speed=1000)
    client = make_client(server)
    s3 = _s3(server)
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [DEFAULT_BUCKET]
    assert s3.get_bucket_location(Bucket=DEFAULT_BUCKET)["LocationConstraint"] is None
    assert s3.head_bucket(Bucket=DEFAULT_BUCKET)["BucketRegion"] == REGION
    assert client._get_remotion_buckets() == [DEFAULT_BUCKET]

    lam = _raw_lambda(server)
    payload = _start(
        forceDurationInFrames=10,
        bucketName="remotionlambda-useast1-mine",
        outName={"bucketName": "my-output", "key": "videos/final.mp4"},
    )
    for name in ("remotionlambda-useast1-mine", "my-output"):  # changed: S3 needs them first
        s3.create_bucket(Bucket=name)
    started = _invoke(lam, payload)
    buckets = s3.list_buckets()["Buckets"]
    assert [b["Name"] for b in buckets] == [
        "my-output",
        DEFAULT_BUCKET,
        "remotionlambda-useast1-mine",
    ]
    assert all(b["BucketRegion"] == REGION for b in buckets)
    assert sorted(client._get_remotion_buckets()) == [
        DEFAULT_BUCKET,
        "remotionlambda-useast1-mine",
    ]
    assert _all_keys(s3, "remotionlambda-useast1-mine") == [
        f"renders/{started['renderId']}/progress.json"
    ]
    _raw_progress_when_done(lam, started)
    assert _all_keys(s3, "my-output") == ["videos/final.mp4"]
    assert _all_keys(s3, DEFAULT_BUCKET) == []

    other = make_server(speed=1000, region="eu-central-1")
    frankfurt_bucket = "remotionlambda-eucentral1-emulator"
    s3_other = _s3(other)
    assert [b["Name"] for b in s3_other.list_buckets()["Buckets"]] == [frankfurt_bucket]
    location = s3_other.get_bucket_location(Bucket=frankfurt_bucket)
    assert location["LocationConstraint"] == "eu-central-1"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", other.url)
    frankfurt = RemotionClient("eu-central-1", SERVE_URL, FUNCTION_NAME, session=_session())
    assert frankfurt._get_remotion_buckets() == [frankfurt_bucket]
    virginia = RemotionClient(REGION, SERVE_URL, FUNCTION_NAME, session=_session())
    assert virginia._get_remotion_buckets() == []


def test_progress_metadata_delay_leaves_render_metadata_null(server, client) -> None:
    s3 = _s3(server)
    # The delay is frozen per render at start: one render waits a minute, one 150 ms.
    _control(server, "/_emulator/faults", {"progress_metadata_delay_ms": 60_000})
    waiting = client.render_media_on_lambda(_params(out_name="late.mp4", frames=1000))
    _control(server, "/_emulator/faults", {"progress_metadata_delay_ms": 150})
    started = client.render_media_on_lambda(_params(out_name="soon.mp4", frames=1000))

    key = f"renders/{waiting.render_id}/progress.json"
    early = s3.get_object(Bucket=DEFAULT_BUCKET, Key=key)
    body = json.loads(early["Body"].read())
    assert body["renderMetadata"] is None
    assert body["compositionValidated"] is None
    assert _find_by_out_name(s3, DEFAULT_BUCKET, "late.mp4") == []  # not decidable yet
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=DEFAULT_BUCKET)["Contents"]}
    assert _epoch_ms(listed[key]["LastModified"]) == body["functionLaunched"]
    assert listed[key]["Size"] == early["ContentLength"]

    assert _wait_for(lambda: _find_by_out_name(s3, DEFAULT_BUCKET, "soon.mp4")) == [
        started.render_id
    ]
    key = f"renders/{started.render_id}/progress.json"
    late = json.loads(s3.get_object(Bucket=DEFAULT_BUCKET, Key=key)["Body"].read())
    launched = late["functionLaunched"]
    assert late["compositionValidated"] == launched + 150
    assert late["renderMetadata"]["startedDate"] == launched
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket=DEFAULT_BUCKET)["Contents"]}
    # Changed: rewritten again as renderers report, so at least that recent.
    assert _epoch_ms(listed[key]["LastModified"]) >= launched + 150


def test_stats_count_s3_calls_and_reset_clears_objects(server, client) -> None:
    started = client.render_media_on_lambda(_params(frames=5))
    _progress_when(client, started, "done")
    _invoke(
        _raw_lambda(server),
        _start(bucketName="remotionlambda-useast1-mine"),
    )
    s3 = _s3(server)
    s3.list_buckets()
    s3.get_bucket_location(Bucket=DEFAULT_BUCKET)
    s3.list_objects_v2(Bucket=DEFAULT_BUCKET)
    s3.list_objects_v2(Bucket=DEFAULT_BUCKET, Prefix="renders/")
    s3.get_object(Bucket=DEFAULT_BUCKET, Key=f"renders/{started.render_id}/progress.json")
    s3.head_object(Bucket=DEFAULT_BUCKET, Key=f"renders/{started.render_id}/x.mp4")
    with pytest.raises(ClientError):
        s3.get_object(Bucket=DEFAULT_BUCKET, Key="missing")
    assert _control(server, "/_emulator/stats")["s3_calls"] == {
        "ListBuckets": 1,
        "GetBucketLocation": 1,
        "ListObjectsV2": 2,
        "GetObject": 2,
        "HeadObject": 1,
    }

    _post(server, "/_emulator/reset")
    assert _control(server, "/_emulator/stats")["s3_calls"] == {}
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [DEFAULT_BUCKET]
    assert s3.list_objects_v2(Bucket=DEFAULT_BUCKET)["KeyCount"] == 0
    with pytest.raises(ClientError):
        s3.list_objects_v2(Bucket="remotionlambda-useast1-mine")


# --------------------------------------------------------------------------------------
# performance and process mode
# --------------------------------------------------------------------------------------


def test_sequential_status_calls_are_fast(server, client) -> None:
    """Catches the Nagle/delayed-ACK bug: with it, 200 keep-alive calls take ~8 s."""
    started = client.render_media_on_lambda(_params(frames=1000))
    lam = _raw_lambda(server)  # one reused client: RemotionClient builds one per call
    payload = json.dumps(_status_payload(started.render_id, started.bucket_name))
    lam.invoke(FunctionName=FUNCTION_NAME, Payload=payload)["Payload"].read()
    began = time.perf_counter()
    for _ in range(200):
        lam.invoke(FunctionName=FUNCTION_NAME, Payload=payload)["Payload"].read()
    elapsed = time.perf_counter() - began
    assert elapsed < 2.0, f"200 status calls took {elapsed:.2f} s"


def test_stop_releases_port_and_closes_keepalive_connections() -> None:
    server = EmulatorServer(speed=1000).start()
    lam = _raw_lambda(server)
    payload = json.dumps({"type": "info", "version": REMOTION_VERSION})
    lam.invoke(FunctionName="f", Payload=payload)  # leaves a pooled keep-alive connection
    port = server.port
    server.stop()
    server.stop()  # idempotent
    with pytest.raises((EndpointConnectionError, ConnectionClosedError)):
        lam.invoke(FunctionName="f", Payload=payload)
    with EmulatorServer(port=port) as again:
        assert again.port == port


def test_cli_prints_listening_line_and_exits_cleanly_on_sigterm() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.emulator", "--port", "0", "--speed", "1000"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        prefix = "lambda-emulator listening on http://127.0.0.1:"
        assert line.startswith(prefix), line
        url = line.removeprefix("lambda-emulator listening on ")
        lam = _session().client("lambda", endpoint_url=url, config=NO_RETRIES)
        payload = _start(forceDurationInFrames=10)
        assert _invoke(lam, payload)["type"] == "success"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read() == ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
