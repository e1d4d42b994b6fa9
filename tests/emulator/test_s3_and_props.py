"""The S3 subset, and large input props through the unmodified client (compress-props.ts)."""

from __future__ import annotations

import hashlib
import json

import pytest
from botocore.exceptions import ClientError

from tests.emulator.conftest import (
    BUCKET,
    control,
    invoke,
    params,
    progress_when,
    raw_progress,
    s3_client,
    status_payload,
    wait_for,
)

BIG = {"blob": "x" * 200_000}  # over the 193,976 bytes the client sends inline


def _props_key(props: dict) -> str:
    payload = json.dumps(props, separators=(",", ":"))
    return f"input-props/{hashlib.sha256(payload.encode()).hexdigest()}.json"


def test_large_input_props_go_through_s3(server, client) -> None:
    s3 = s3_client(server)
    started = client.render_media_on_lambda(params(input_props=BIG))
    key = _props_key(BIG)
    assert s3.head_object(Bucket=BUCKET, Key=key)["ContentType"] == "application/json"
    calls = control(server, "/_emulator/stats")["s3_calls"]
    assert calls["ListBuckets"] == 1 and calls["GetBucketLocation"] == 1 and calls["PutObject"] == 1
    done = progress_when(client, started, "done")
    assert done.renderMetadata["inputProps"] == {
        "type": "bucket-url",
        "hash": key.removeprefix("input-props/").removesuffix(".json"),
        "bucketName": BUCKET,
    }
    # finish-render.ts cleans the props up after a successful render.
    wait_for(lambda: _missing(s3, key))


def _missing(s3, key: str) -> bool:
    try:
        s3.head_object(Bucket=BUCKET, Key=key)
    except ClientError:
        return True
    return False


def test_props_stay_behind_when_the_render_fails(server, client) -> None:
    started = client.render_media_on_lambda(params(composition="Nope", input_props=BIG))
    progress_when(client, started, "fatalErrorEncountered")
    # launch.ts's runCleanupTasks never runs the tasks (remotion-dev/remotion#4006).
    assert not _missing(s3_client(server), _props_key(BIG))


def test_missing_props_are_a_launch_error(make_server, make_client) -> None:
    server = make_server(faults={"cold_start_ms": 3000})
    client = make_client(server)
    started = client.render_media_on_lambda(params(input_props=BIG))
    s3_client(server).delete_object(Bucket=BUCKET, Key=_props_key(BIG))
    failed = progress_when(client, started, "fatalErrorEncountered")
    [error] = failed.errors
    assert error["message"].startswith(
        "Failed to parse input props that were serialized: NoSuchKey: The specified key does "
        "not exist.\n    at "
    )
    assert failed.serveUrlOpened is None  # before the browser opened the serve URL


def test_a_bucket_name_with_large_props_reads_the_wrong_bucket(server, client) -> None:
    # remotion_lambda uploads to the bucket it discovers; the function reads the render bucket.
    s3_client(server).create_bucket(Bucket="my-renders")
    started = client.render_media_on_lambda(params(input_props=BIG, bucket_name="my-renders"))
    failed = progress_when(client, started, "fatalErrorEncountered")
    assert failed.errors[0]["message"].startswith(
        "Failed to parse input props that were serialized: NoSuchKey"
    )


def test_bucket_calls_and_objects(server) -> None:
    s3 = s3_client(server)
    with pytest.raises(ClientError) as excinfo:
        s3.create_bucket(Bucket="b2", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    assert excinfo.value.response["Error"]["Code"] == "IllegalLocationConstraintException"
    s3.create_bucket(Bucket="remotionlambda-useast1-setup0000")
    name = "remotionlambda-useast1-setup0000"
    # What lambda-client/src/create-bucket.ts does after CreateBucket: accepted, no effect.
    s3.delete_bucket_ownership_controls(Bucket=name)
    s3.delete_public_access_block(Bucket=name)
    s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": []}))
    s3.put_bucket_acl(Bucket=name, ACL="private")
    s3.put_bucket_lifecycle_configuration(
        Bucket=name,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "delete-after-1-day",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "renders/1-day"},
                    "Expiration": {"Days": 1},
                }
            ]
        },
    )
    s3.put_object(Bucket=name, Key="a/b.txt", Body=b"hello", ContentType="text/plain")
    got = s3.get_object(Bucket=name, Key="a/b.txt")
    assert (got["Body"].read(), got["ContentType"]) == (b"hello", "text/plain")
    with pytest.raises(ClientError) as excinfo:
        s3.delete_bucket(Bucket=name)
    assert excinfo.value.response["Error"]["Code"] == "BucketNotEmpty"
    s3.delete_object(Bucket=name, Key="a/b.txt")
    s3.delete_bucket(Bucket=name)
    calls = control(server, "/_emulator/stats")["s3_calls"]
    for operation in (
        "CreateBucket",
        "DeleteBucketOwnershipControls",
        "DeletePublicAccessBlock",
        "PutBucketPolicy",
        "PutBucketAcl",
        "PutBucketLifecycleConfiguration",
        "PutObject",
        "GetObject",
        "DeleteObject",
        "DeleteBucket",
    ):
        assert calls[operation] >= 1, operation


def test_status_reads_whatever_progress_json_holds(server) -> None:
    s3 = s3_client(server)
    body = {
        "chunks": [],
        "framesRendered": 0,
        "lambdasInvoked": 0,
        "renderMetadata": None,
        "errors": [],
        "timeoutTimestamp": 1,
        "functionLaunched": 1,
        "serveUrlOpened": None,
        "compositionValidated": None,
        "receivedArtifact": [],
        "combinedFrames": 0,
        "framesEncoded": 0,
        "timeToCombine": None,
        "timeToEncode": None,
        "timeToRenderFrames": None,
        "retries": [],
        "postRenderData": None,
    }
    s3.put_object(Bucket=BUCKET, Key="renders/handmade00/progress.json", Body=json.dumps(body))
    progress = raw_progress(server, "handmade00")
    assert progress["renderMetadata"] is None and progress["done"] is False
    s3.put_object(Bucket=BUCKET, Key="renders/broken0000/progress.json", Body=b"{not json")
    error = invoke(server, status_payload("broken0000"))
    assert error["errorType"] == "SyntaxError"
