"""Several accounts and regions side by side; deployment facts from the function name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.emulator import control as call
from devtools.emulator.aws import parse_function_name, speculate_function_name
from tests.emulator.conftest import (
    FUNCTION,
    control,
    lambda_client,
    params,
    progress_when,
    s3_client,
    session,
)

ROOT = Path(__file__).resolve().parents[2]
BIG_FUNCTION = "remotion-render-4-0-539-mem3008mb-disk2048mb-900sec"


def test_two_accounts_side_by_side(make_server, make_client) -> None:
    virginia = make_server(concurrency_limit=5, function_names=[FUNCTION])
    frankfurt = make_server(region="eu-central-1", account_id="210987654321")
    for server, region, bucket in (
        (virginia, "us-east-1", "remotionlambda-useast1-emulator"),
        (frankfurt, "eu-central-1", "remotionlambda-eucentral1-emulator"),
    ):
        client = make_client(server, region=region)
        started = client.render_media_on_lambda(params(frames_per_lambda=20))
        assert started.bucket_name == bucket
        done = progress_when(client, started, "done")
        assert done.outputFile.startswith(f"https://s3.{region}.amazonaws.com/{bucket}/")
        assert done.renderMetadata["region"] == region
        location = s3_client(server, region).get_bucket_location(Bucket=bucket)[
            "LocationConstraint"
        ]
        assert location == (None if region == "us-east-1" else region)
    a, b = (control(s, "/_emulator/stats") for s in (virginia, frankfurt))
    assert (a["region"], a["account_id"], a["concurrency"]["limit"]) == (
        "us-east-1",
        "123456789012",
        5,
    )
    assert (b["region"], b["account_id"], b["concurrency"]["limit"]) == (
        "eu-central-1",
        "210987654321",
        None,
    )
    assert a["starts_total"] == b["starts_total"] == 1
    lam = lambda_client(virginia)
    with pytest.raises(lam.exceptions.ResourceNotFoundException) as excinfo:
        lam.invoke(FunctionName=BIG_FUNCTION, Payload="{}")
    assert excinfo.value.response["Error"]["Message"] == (
        f"Function not found: arn:aws:lambda:us-east-1:123456789012:function:{BIG_FUNCTION}"
    )


def test_memory_and_timeout_come_from_the_function_name(server, make_client) -> None:
    # speculate-function-name.ts writes the name parse-function-name.ts reads back.
    assert speculate_function_name("4.0.539", 3008, 2048, 900) == BIG_FUNCTION
    assert parse_function_name(BIG_FUNCTION) == ("4-0-539", 3008, 2048, 900)
    assert parse_function_name("my-own-function") is None
    client = make_client(server, function=BIG_FUNCTION)
    started = client.render_media_on_lambda(params())
    done = progress_when(client, started, "done")
    assert done.renderMetadata["memorySizeInMb"] == 3008
    assert done.renderMetadata["functionName"] == BIG_FUNCTION
    assert done.timeoutTimestamp == done.functionLaunched + 900_000
    plain = make_client(server).render_media_on_lambda(params(out_name="plain.mp4"))
    assert (
        progress_when(make_client(server), plain, "done").renderMetadata["memorySizeInMb"] == 2048
    )


def test_cli_options(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [
        sys.executable,
        "-m",
        "devtools.emulator",
        "--port",
        "0",
        "--region",
        "eu-west-1",
        "--account-id",
        "111122223333",
        "--concurrency-limit",
        "7",
        "--function-name",
        FUNCTION,
        "--fault",
        "cold_start_ms=0",
        "--fault",
        'compositions=["Only"]',
    ]
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip().removeprefix("lambda-emulator listening on ")

        stats = call(url, "/_emulator/stats")
        assert (stats["region"], stats["account_id"], stats["concurrency"]["limit"]) == (
            "eu-west-1",
            "111122223333",
            7,
        )
        faults = call(url, "/_emulator/faults")
        assert faults["cold_start_ms"] == 0
        assert [c["id"] for c in faults["compositions"]] == ["Only"]
        lam = session("eu-west-1").client("lambda", endpoint_url=url)
        info = json.loads(
            lam.invoke(FunctionName=FUNCTION, Payload='{"type":"info"}')["Payload"].read()
        )
        assert info == {"version": "4.0.539", "type": "success"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
