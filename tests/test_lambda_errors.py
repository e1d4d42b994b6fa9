"""Every class of Remotion error, decided from the texts Remotion writes (its sources cited in
worker/lambda_errors.py)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError
from remotion_lambda.exception import RemotionInvalidArgumentException, RemotionRenderingOutputError

from worker.lambda_errors import (
    FatalKind,
    LambdaConfigError,
    LambdaRejected,
    LambdaThrottled,
    LambdaTransient,
    StartErrorKind,
    classify_fatal,
    classify_start_error,
    map_error,
)

RATE_LIMIT_TEXT = (
    "Error: AWS Concurrency limit reached (Original Error: Rate Exceeded.). See "
    "https://www.remotion.dev/docs/lambda/troubleshooting/rate-limit for tips to fix this.\n"
    "    at callFunctionWithStreamingImplementation (/var/task/index.js:1:1)"
)


@pytest.mark.parametrize(
    ("name", "message", "kind"),
    [
        # launch.ts records a renderer's throttle as a stitcher error whose message is a stack
        ("Error", RATE_LIMIT_TEXT, FatalKind.THROTTLED),
        ("TooManyRequestsException", "Rate Exceeded.", FatalKind.THROTTLED),
        ("Error", "ConcurrentInvocationLimitExceeded", FatalKind.THROTTLED),
        ("Error", "Error: renderMedia() got cancelled\n    at x", FatalKind.CANCELLED),
        ("CancelledError", "cancelRender() was called", FatalKind.CANCELLED),
        (
            "TimeoutError",
            "The main function timed out after 120000ms.\nConsider increasing the timeout",
            FatalKind.TIMEOUT,
        ),
        # A TimeoutError from a page (delayRender) is the render's own failure, not the function's.
        (
            "TimeoutError",
            "A delayRender() was called but not cleared after 28000ms",
            FatalKind.RENDER,
        ),
        (
            "Error",
            "Error: Could not find composition with ID Nope. Available compositions: Main, Intro",
            FatalKind.RENDER,
        ),
        ("Error", "Could not load image assets/missing.png", FatalKind.RENDER),
    ],
)
def test_fatal_errors_are_classified(name: str, message: str, kind: FatalKind) -> None:
    assert classify_fatal(name, message) is kind


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (
            "Version mismatch: When calling renderMediaOnLambda(), you passed fn as the function, "
            "which has the version 4.0.540, but the @remotion/lambda package you used to invoke "
            "the function has version 4.0.539.",
            StartErrorKind.CONFIG,
        ),
        (
            "You have multiple buckets (a,b) in your S3 region (us-east-1) starting with "
            '"remotionlambda-".',
            StartErrorKind.CONFIG,
        ),
        (
            "Expected deleteAfter value to be one of 1-day, 3-days, 7-days, 30-days, got 2-days",
            StartErrorKind.REJECTED,
        ),
        ("Payload is too big: 300000 bytes. Maximum size is 256 KB.", StartErrorKind.REJECTED),
        # write-file.ts gave up on progress.json after launch was invoked: may be running.
        ("We encountered an internal error. Please try again.", StartErrorKind.AMBIGUOUS),
    ],
)
def test_start_errors_say_whether_a_render_may_run(message: str, kind: StartErrorKind) -> None:
    assert classify_start_error(message) is kind


def _handled(message: str) -> RemotionRenderingOutputError:
    return RemotionRenderingOutputError(f"Remotion rendering error: {message}")


def test_start_errors_map_to_what_the_actor_does() -> None:
    version = map_error(_handled("Version mismatch: ... has version 4.0.540"), is_start=True)
    assert isinstance(version, LambdaConfigError)
    rejected = map_error(_handled("Expected deleteAfter value to be one of ..."), is_start=True)
    assert isinstance(rejected, LambdaRejected)
    ambiguous = map_error(_handled("S3 write failed after retries"), is_start=True)
    assert isinstance(ambiguous, LambdaTransient) and ambiguous.may_have_started
    # An unhandled error after a start: the function may have invoked launch before it died.
    crashed = map_error(
        RemotionRenderingOutputError("Lambda function returned an error: Runtime exited"),
        is_start=True,
    )
    assert isinstance(crashed, LambdaTransient) and crashed.may_have_started
    polled = map_error(
        RemotionRenderingOutputError("Lambda function returned an error: No render with ID"),
        is_start=False,
    )
    assert isinstance(polled, LambdaTransient) and not polled.may_have_started


def test_api_errors_map_by_code_and_status() -> None:
    def client_error(code: str, status: int) -> ClientError:
        return ClientError(
            {
                "Error": {"Code": code, "Message": "m"},
                "ResponseMetadata": {"HTTPStatusCode": status},
            },
            "Invoke",
        )

    assert isinstance(
        map_error(client_error("TooManyRequestsException", 429), is_start=True), LambdaThrottled
    )
    assert isinstance(
        map_error(client_error("ServiceException", 500), is_start=True), LambdaTransient
    )
    assert isinstance(
        map_error(client_error("ResourceNotFoundException", 404), is_start=True), LambdaConfigError
    )
    timeout = map_error(ReadTimeoutError(endpoint_url="http://x"), is_start=True)
    assert isinstance(timeout, LambdaTransient) and timeout.may_have_started


def test_a_failed_props_upload_is_decided_by_s3_not_by_the_props() -> None:
    s3_down = ClientError(
        {
            "Error": {"Code": "InternalError", "Message": "m"},
            "ResponseMetadata": {"HTTPStatusCode": 500},
        },
        "PutObject",
    )
    upload_failed = RemotionInvalidArgumentException("Failed to serialize input properties")
    upload_failed.__cause__ = s3_down
    assert isinstance(map_error(upload_failed, is_start=True), LambdaTransient)
    bad_props = RemotionInvalidArgumentException("Error serializing InputProps. Check for circular")
    assert isinstance(map_error(bad_props, is_start=True), LambdaRejected)
