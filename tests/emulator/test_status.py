"""``status`` (handlers/progress.ts + serverless-client/src/progress.ts), ``info``, ``still``."""

from __future__ import annotations

import json
import time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from remotion_lambda import RenderStillParams
from remotion_lambda.exception import RemotionRenderingOutputError

from tests.emulator.conftest import (
    BUCKET,
    FUNCTION,
    invoke,
    invoke_raw,
    lambda_client,
    params,
    raw_progress,
    s3_client,
    status_payload,
    wait_for,
)

# progress.ts, the renderMetadata === null branch; the in-progress branch has the same order
EARLY_KEYS = [
    "framesRendered",
    "chunks",
    "done",
    "encodingStatus",
    "timeToRenderFrames",
    "costs",
    "renderId",
    "renderMetadata",
    "bucket",
    "outputFile",
    "separateAudio",
    "timeToFinish",
    "errors",
    "fatalErrorEncountered",
    "currentTime",
    "renderSize",
    "lambdasInvoked",
    "cleanup",
    "timeToFinishChunks",
    "overallProgress",
    "retriesInfo",
    "outKey",
    "outBucket",
    "mostExpensiveFrameRanges",
    "timeToEncode",
    "outputSizeInBytes",
    "estimatedBillingDurationInMilliseconds",
    "combinedFrames",
    "timeToCombine",
    "timeoutTimestamp",
    "type",
    "compositionValidated",
    "functionLaunched",
    "serveUrlOpened",
    "artifacts",
]
# progress.ts, the postRenderData branch
DONE_KEYS = [
    "framesRendered",
    "bucket",
    "renderSize",
    "chunks",
    "cleanup",
    "costs",
    "currentTime",
    "done",
    "encodingStatus",
    "errors",
    "fatalErrorEncountered",
    "lambdasInvoked",
    "outputFile",
    "separateAudio",
    "renderId",
    "timeToFinish",
    "timeToFinishChunks",
    "timeToRenderFrames",
    "overallProgress",
    "retriesInfo",
    "outKey",
    "outBucket",
    "mostExpensiveFrameRanges",
    "timeToEncode",
    "outputSizeInBytes",
    "type",
    "estimatedBillingDurationInMilliseconds",
    "timeToCombine",
    "combinedFrames",
    "renderMetadata",
    "timeoutTimestamp",
    "compositionValidated",
    "functionLaunched",
    "serveUrlOpened",
    "artifacts",
]
TIMEOUT_ERROR_KEYS = [
    "attempt",
    "chunk",
    "explanation",
    "frame",
    "isFatal",
    "s3Location",
    "stack",
    "tmpDir",
    "totalAttempts",
    "type",
    "willRetry",
    "message",
    "name",
]
# lambda-client/src/price-per-1s.ts: Requests, Duration-ARM, Storage-Duration-ARM
PRICES = {
    "us-east-1": (0.0000002, 0.0000133334, 0.0000000309),
    "eu-central-2": (0.00000022, 0.0000146667, 0.0000000441),
    "cn-north-1": (0.00000136, 0.0000908, 0.0000002303),
}


def _estimate_price(region: str, ms: float, memory: int, invocations: int) -> float:
    """estimate-price.ts with the 10240 MB disk every price calculation uses."""
    requests, duration, storage = PRICES[region]
    total = (
        duration * ((memory * ms) / 1000 / 1024)
        + (10240 - 512) * storage * (ms / 1000 / 1024)
        + requests * invocations
    )
    return float(Decimal(total).quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP))


def _progress_json(server, render_id: str) -> dict:
    key = f"renders/{render_id}/progress.json"
    return json.loads(s3_client(server).get_object(Bucket=BUCKET, Key=key)["Body"].read())


def test_three_shapes_and_their_key_orders(make_server) -> None:
    server = make_server(faults={"cold_start_ms": 6000})  # 200 ms at speed 3000
    started = invoke(server, _start(forceDurationInFrames=1500))  # 75 chunks, 0.5 s
    rid = started["renderId"]
    early = raw_progress(server, rid)  # launch has not run yet: start's progress.json
    assert list(early) == EARLY_KEYS
    assert early["renderMetadata"] is None and early["overallProgress"] == 0
    assert early["costs"] == {
        "accruedSoFar": 0,
        "displayCost": "<$0.001",
        "currency": "USD",
        "disclaimer": "Estimated cost only. Does not include charges for other AWS services.",
    }
    assert early["estimatedBillingDurationInMilliseconds"] is None
    running = wait_for(lambda: (p := raw_progress(server, rid))["framesRendered"] > 0 and p)
    assert list(running) == EARLY_KEYS
    assert running["renderMetadata"]["renderId"] == rid and running["done"] is False
    # get-overall-progress.ts weights, from the fields of the same answer
    frame_count = 1500
    evaluating = (
        bool(running["lambdasInvoked"])
        + bool(running["serveUrlOpened"])
        + bool(running["compositionValidated"])
    ) / 3
    invoking = (
        running["lambdasInvoked"] / running["renderMetadata"]["estimatedRenderLambdaInvokations"]
    )
    assert running["overallProgress"] == (
        evaluating * 0.1
        + running["encodingStatus"]["framesEncoded"] / frame_count * 0.1
        + invoking * 0.1
        + running["framesRendered"] / frame_count * 0.6
        + running["combinedFrames"] / frame_count * 0.1
    )
    done = wait_for(
        lambda: (
            (p := raw_progress(server, rid))["done"] and p["cleanup"]["doneIn"] is not None and p
        )
    )
    assert list(done) == DONE_KEYS
    assert done["overallProgress"] == 1 and done["fatalErrorEncountered"] is False


def test_costs_follow_memory_and_region(make_server) -> None:
    for region, function in (
        ("us-east-1", FUNCTION),
        ("us-east-1", "remotion-render-4-0-539-mem4096mb-disk2048mb-120sec"),
        ("eu-central-2", FUNCTION),
        ("cn-north-1", FUNCTION),
    ):
        server = make_server(region=region)
        bucket = f"remotionlambda-{region.replace('-', '')}-emulator"
        started = invoke(server, _start(forceDurationInFrames=90), function=function)

        def finished(server=server, started=started, bucket=bucket, function=function) -> Any:
            body = invoke(server, status_payload(started["renderId"], bucket), function=function)
            return body["done"] and body["mostExpensiveFrameRanges"] is not None and body

        done = wait_for(finished)
        timings = _progress_json_at(server, bucket, started["renderId"])
        memory = 4096 if "mem4096" in function else 2048
        billing = sum(max(0, t["rendered"] - t["start"]) + 100 for t in timings)
        expected = _estimate_price(
            region, billing, memory, done["renderMetadata"]["estimatedTotalLambdaInvokations"]
        )
        assert done["costs"]["accruedSoFar"] == expected
        assert done["estimatedBillingDurationInMilliseconds"] == billing
        currency = "CNY" if region.startswith("cn-") else "USD"
        assert done["costs"]["currency"] == currency
        assert done["costs"]["displayCost"][0] == ("¥" if currency == "CNY" else "$")


def _progress_json_at(server, bucket: str, render_id: str) -> list:
    key = f"renders/{render_id}/progress.json"
    body = json.loads(s3_client(server).get_object(Bucket=bucket, Key=key)["Body"].read())
    return body["timings"]


def test_timeout_error_after_timeout_plus_grace(make_server) -> None:
    server = make_server(function_timeout_s=0.2, timeout_grace_s=0.05)
    props = {"type": "payload", "payload": json.dumps({"__emulator__": {"never_finish": True}})}
    started = invoke(server, _start(forceDurationInFrames=60, inputProps=props))
    rid = started["renderId"]
    body = wait_for(lambda: (p := raw_progress(server, rid))["fatalErrorEncountered"] and p)
    [error] = body["errors"]
    assert list(error) == TIMEOUT_ERROR_KEYS
    assert error["name"] == "TimeoutError" and error["type"] == "stitcher"
    base = (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#logsV2:"
        f"log-groups/log-group/$252Faws$252Flambda$252F{FUNCTION}/log-events$3FfilterPattern$3D"
    )

    def chunk(ch: int, first: int, last: int) -> str:
        query = f"$2522method$253Drenderer$252CrenderId$253D{rid}$252Cchunk$253D{ch}$252C$2522"
        return f"Chunk {ch} (Frames {first} - {last})\n▸ Logs for chunk {ch}: {base}{query}"

    assert error["message"] == "\n".join(
        [
            "The main function timed out after 200ms.",
            "The following chunks are missing (showing 3 out of 3):",
            chunk(0, 0, 19),
            chunk(1, 20, 39),
            chunk(2, 40, 59),
            "",
            "Consider increasing the timeout of your function.",
            '▸ You can use the "--timeout" parameter when deploying a function via CLI, or the '
            '"timeoutInSeconds" parameter when using the deployFunction() API.',
            "https://remotion.dev/docs/lambda/cli/functions/deploy",
            "",
            "▸ Visit the logs for the main function:",
            f"{base}$2522method$253Dlaunch$252CrenderId$253D{rid}$2522",
            "▸ Visit the logs for the renderer functions:",
            f"{base}$2522method$253Drenderer$252CrenderId$253D{rid}$2522",
            "",
            "▸ Get help on debugging this error:",
            "https://remotion.dev/docs/lambda/troubleshooting/debug",
        ]
    )
    assert error["stack"].startswith("Error: The main function timed out after 200ms.\n")
    assert time.time() * 1000 > body["renderMetadata"]["startedDate"] + 200 + 50


def test_status_errors_are_unhandled(server, client) -> None:
    started = client.render_media_on_lambda(params())
    response, body = invoke_raw(server, status_payload(started.render_id, version="4.0.100"))
    assert response["StatusCode"] == 200
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(body)
    assert list(error) == ["errorType", "errorMessage", "trace"]
    assert error["errorType"] == "Error"
    assert error["errorMessage"] == (
        f"Version mismatch: When calling getRenderProgress(), you passed {FUNCTION} as the "
        "function, which has the version 4.0.539, but the @remotion/lambda package you used "
        "to invoke the function has version 4.0.100. Deploy a new function and use it to call "
        "getRenderProgress(). See: https://www.remotion.dev/docs/lambda/upgrading"
    )
    assert error["trace"][0] == f"Error: {error['errorMessage']}"


def test_no_render_with_id_is_retried_then_unhandled(make_server, make_client) -> None:
    server = make_server(faults={"no_render_retry_ms": 100})
    client = make_client(server)
    began = time.monotonic()
    with pytest.raises(RemotionRenderingOutputError) as excinfo:
        client.get_render_progress("zzzzzzzzzz", BUCKET)
    elapsed = time.monotonic() - began
    assert str(excinfo.value) == (
        'Lambda function returned an error: No render with ID "zzzzzzzzzz" found in bucket '
        f"{BUCKET} and region us-east-1"
    )
    assert 0.2 <= elapsed < 1.0  # three attempts, 100 ms apart
    response, body = invoke_raw(server, status_payload("zzzzzzzzzz"))
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(body)["errorType"] == "TypeError"


def test_missing_progress_as_no_such_key(make_server) -> None:
    server = make_server(
        faults={"missing_progress_mode": "no-such-key", "no_render_retry_ms": 1000}
    )
    began = time.monotonic()
    response, body = invoke_raw(server, status_payload("zzzzzzzzzz"))
    assert time.monotonic() - began < 0.5  # no retries for NoSuchKey
    error = json.loads(body)
    assert response["FunctionError"] == "Unhandled"
    assert (error["errorType"], error["errorMessage"]) == (
        "NoSuchKey",
        "The specified key does not exist.",
    )
    missing = invoke(server, status_payload("zzzzzzzzzz", bucket="remotionlambda-useast1-gone"))
    assert (missing["errorType"], missing["errorMessage"]) == (
        "NoSuchBucket",
        "The specified bucket does not exist",
    )


def test_info_routine(server) -> None:
    response, body = invoke_raw(server, {"type": "info"})  # no version needed
    assert "FunctionError" not in response
    assert body == b'{"version":"4.0.539","type":"success"}'


def test_still_routine(server, client) -> None:
    still = client.render_still_on_lambda(
        RenderStillParams(composition="Main", force_width=320, force_height=180)
    )
    assert still.url == f"https://s3.us-east-1.amazonaws.com/{BUCKET}/{still.outKey}"
    assert still.outKey == f"renders/{still.render_id}/out.jpeg"
    assert still.size_in_bytes > 0 and still.bucket_name == BUCKET
    assert still.estimated_price.display_cost == "<$0.001"
    assert still.estimated_price.disclaimer == (
        "Estimated cost only. Does not include charges for other AWS services."
    )
    head = s3_client(server).head_object(Bucket=BUCKET, Key=still.outKey)
    assert head["ContentType"] == "image/jpeg" and head["ContentLength"] == still.size_in_bytes
    body = _progress_json(server, still.render_id)
    assert body["renderMetadata"]["type"] == "still"
    assert body["timeoutTimestamp"] == 120_000  # handlers/still.ts passes the ms, not a time
    with pytest.raises(RemotionRenderingOutputError) as excinfo:
        client.get_render_progress(still.render_id, BUCKET)
    assert str(excinfo.value) == (
        "Lambda function returned an error: You don't need to call getRenderProgress() on a "
        "still render. Once you have obtained the `renderId`, the render is already done! 😉"
    )
    with pytest.raises(
        RemotionRenderingOutputError, match=r"^Remotion rendering error: Error: Could not find"
    ):
        client.render_still_on_lambda(RenderStillParams(composition="Nope"))
    raw = lambda_client(server).invoke(
        FunctionName=FUNCTION,
        Payload=client.construct_render_request(RenderStillParams(composition="Main"), "still"),
    )
    assert list(json.loads(raw["Payload"].read())) == [
        "type",
        "output",
        "size",
        "sizeInBytes",
        "bucketName",
        "estimatedPrice",
        "renderId",
        "outKey",
        "receivedArtifacts",
    ]


def test_status_calls_stay_cheap(server, client) -> None:
    started = client.render_media_on_lambda(params(force_duration_in_frames=3000))
    lam = lambda_client(server)
    payload = json.dumps(status_payload(started.render_id))
    lam.invoke(FunctionName=FUNCTION, Payload=payload)["Payload"].read()
    began = time.perf_counter()
    for _ in range(300):
        lam.invoke(FunctionName=FUNCTION, Payload=payload)["Payload"].read()
    assert time.perf_counter() - began < 3.0


def _start(**fields: object) -> dict[str, object]:
    return {
        "type": "start",
        "version": "4.0.539",
        "composition": "Main",
        "serveUrl": "https://example.com/sites/x/index.html",
        "inputProps": {"type": "payload", "payload": "{}"},
        "codec": "h264",
        "imageFormat": "jpeg",
        "privacy": "public",
        "timeoutInMilliseconds": 30000,
        "maxRetries": 1,
        "bucketName": None,
        "outName": "o.mp4",
        **fields,
    }
