"""``start`` as serverless/src/handlers/start.ts runs it: checks little, launches, returns."""

from __future__ import annotations

import json
import re

import pytest
from remotion_lambda.exception import RemotionRenderingOutputError

from devtools.emulator import REMOTION_VERSION
from tests.emulator.conftest import (
    BUCKET,
    FUNCTION,
    SERVE_URL,
    control,
    invoke,
    invoke_raw,
    params,
    progress_when,
    s3_client,
    wait_for,
)

# overall-render-progress.ts makeInitialOverallRenderProgress, >= 4.0.535 key order
INITIAL_PROGRESS_KEYS = [
    "cancellationEnabled",
    "chunks",
    "framesRendered",
    "framesEncoded",
    "framesUploaded",
    "uploadedSizeInBytes",
    "combinedFrames",
    "timeToCombine",
    "timeToEncode",
    "lambdasInvoked",
    "retries",
    "postRenderData",
    "separateAudio",
    "timings",
    "renderMetadata",
    "errors",
    "fatalErrorTimestamp",
    "timeToRenderFrames",
    "timeoutTimestamp",
    "functionLaunched",
    "serveUrlOpened",
    "compositionValidated",
    "receivedArtifact",
]


def _start(**fields: object) -> dict[str, object]:
    return {
        "type": "start",
        "version": REMOTION_VERSION,
        "composition": "Main",
        "serveUrl": SERVE_URL,
        "inputProps": {"type": "payload", "payload": "{}"},
        "codec": "h264",
        "imageFormat": "jpeg",
        "privacy": "public",
        "timeoutInMilliseconds": 30000,
        "maxRetries": 1,
        "bucketName": None,
        **fields,
    }


def test_response_bytes_and_render_id(server, client) -> None:
    response, body = invoke_raw(server, _start())
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    render_id = json.loads(body)["renderId"]
    assert re.fullmatch(r"[a-z0-9]{10}", render_id)
    assert body == (
        f'{{"type":"success","bucketName":"{BUCKET}","renderId":"{render_id}"}}'.encode()
    )
    started = client.render_media_on_lambda(params(delete_after="3-days"))
    assert re.fullmatch(r"3-days-[a-z0-9]{10}", started.render_id)


def test_version_mismatch_is_handled_with_remotions_text(make_server, make_client) -> None:
    server = make_server()
    response, body = invoke_raw(server, _start(version="4.0.100"))
    assert "FunctionError" not in response
    error = json.loads(body)
    assert list(error) == ["type", "message", "stack"]
    assert error["message"] == (
        f"Version mismatch: When calling renderMediaOnLambda(), you passed {FUNCTION} as the "
        "function, which has the version 4.0.539, but the @remotion/lambda package you used "
        "to invoke the function has version 4.0.100. Deploy a new function and use it to call "
        "getRenderProgress(). See: https://www.remotion.dev/docs/lambda/upgrading"
    )
    assert error["stack"].startswith("Error: Version mismatch")
    payload = _start()
    del payload["version"]
    missing = invoke(server, payload)["message"]
    assert missing.startswith(
        f"Version mismatch: When calling renderMediaOnLambda(), you called the function "
        f"{FUNCTION} which has the version 4.0.539 but the @remotion/lambda package sent an "
        'incompatible payload: {"type":"start","composition":"Main",'
    )
    assert missing.endswith(". Expected it to contain {version: 4.0.539}")
    assert control(server, "/_emulator/stats")["starts_total"] == 0

    newer = make_client(make_server(remotion_version="4.0.540"))
    with pytest.raises(RemotionRenderingOutputError, match=r"^Remotion rendering error: Version"):
        newer.render_media_on_lambda(params())


def test_delete_after_is_validated_after_the_bucket(make_server) -> None:
    server = make_server(default_bucket=False)
    error = invoke(server, _start(deleteAfter="foo"))
    assert error["type"] == "error"
    assert error["message"] == (
        "Expected deleteAfter value to be one of 1-day, 3-days, 7-days, 30-days, got foo"
    )
    assert error["stack"].startswith("TypeError: Expected deleteAfter")
    # get-or-create ran first: the bucket exists although the start failed.
    [bucket] = s3_client(server).list_buckets()["Buckets"]
    assert re.fullmatch(r"remotionlambda-useast1-[a-z0-9]{10}", bucket["Name"])
    assert invoke(server, _start(deleteAfter=5))["message"] == (
        "Expected life cycle value to be a string, got 5"
    )


def test_bucket_get_or_create(make_server, make_client) -> None:
    server = make_server(default_bucket=False)
    s3 = s3_client(server)
    s3.create_bucket(Bucket="remotionlambda-eucentral1-abcdefghij")  # another region's name
    first = invoke(server, _start())
    created = first["bucketName"]
    assert re.fullmatch(r"remotionlambda-useast1-[a-z0-9]{10}", created)
    assert invoke(server, _start())["bucketName"] == created  # found, not created again
    s3.create_bucket(Bucket="remotionlambda-useast1-zzzzzzzzzz")
    error = invoke(server, _start())
    assert error["message"] == (
        f"You have multiple buckets ({created},remotionlambda-useast1-zzzzzzzzzz) in your S3 "
        'region (us-east-1) starting with "remotionlambda-". Please see '
        "https://remotion.dev/docs/lambda/multiple-buckets."
    )
    assert invoke(server, _start(bucketName=created))["type"] == "success"  # named: no lookup
    calls = control(server, "/_emulator/stats")["internal_s3_calls"]
    assert calls["ListBuckets"] == 3 and calls["CreateBucket"] == 1
    client = make_client(server)
    with pytest.raises(RemotionRenderingOutputError, match="You have multiple buckets"):
        client.render_media_on_lambda(params())


def test_initial_progress_json_before_launch_runs(make_server) -> None:
    # A long cold start keeps the launch from replacing start's progress.json.
    server = make_server(faults={"cold_start_ms": 600_000})
    started = invoke(server, _start(enableCancellation=True))
    key = f"renders/{started['renderId']}/progress.json"
    got = s3_client(server).get_object(Bucket=BUCKET, Key=key)
    assert got["ContentType"] == "application/json"
    body = json.loads(got["Body"].read())
    assert list(body) == INITIAL_PROGRESS_KEYS
    assert body["renderMetadata"] is None
    assert body["cancellationEnabled"] is True
    assert body["timeoutTimestamp"] == body["functionLaunched"] + 120_000
    assert body["serveUrlOpened"] is None and body["chunks"] == [] and body["errors"] == []
    assert (
        s3_client(server).get_object_acl(Bucket=BUCKET, Key=key)["Grants"][0]["Permission"]
        == "FULL_CONTROL"
    )


def test_start_never_rejects_a_composition(server, client) -> None:
    started = client.render_media_on_lambda(params(composition="Nope"))  # fine at start
    progress = progress_when(client, started, "fatalErrorEncountered")
    assert progress.errors[0]["message"].startswith(
        "Error: Could not find composition with ID Nope. Available compositions: Main, Intro"
    )


def test_serve_url_forms(server) -> None:
    started = invoke(server, _start(serveUrl="my-site"))
    body = wait_for(lambda: (p := invoke(server, _status(started))).get("renderMetadata") and p)
    assert body["renderMetadata"]["siteId"] == (
        f"https://{BUCKET}.s3.us-east-1.amazonaws.com/sites/my-site/index.html"
    )
    error = invoke(server, _start(serveUrl="src/index.ts"))
    assert error["message"] == (
        "Remotion Lambda can only render based on a URL in the cloud. It seems like you passed "
        "a local file: src/index.ts. Read the setup guide for Remotion Lambda "
        "https://remotion.dev/docs/lambda/setup"
    )


def _status(started: dict[str, object]) -> dict[str, object]:
    return {
        "type": "status",
        "version": REMOTION_VERSION,
        "renderId": started["renderId"],
        "bucketName": started["bucketName"],
    }
