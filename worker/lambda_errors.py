"""What an error from Remotion Lambda means for renderq.

Every failure of a Lambda call becomes one of four exceptions the actors act on: throttled and
transient (try later), rejected (Remotion refused the request: the render fails with its
message) and config (function missing, access denied, wrong version: the render fails with a
code that points at the operator). ``map_error`` does that for the exceptions botocore and
Remotion's client raise.

Remotion reports most failures as text: a fatal entry in the render's progress ``errors``, or
the message of a handled or unhandled error of ``start``. Like Remotion's own
``packages/lambda-client/src/is-flaky-error.ts``, the class is decided by substrings of the
name, message and stack; each list below names the Remotion source that produces the text.
``tests/test_lambda_errors.py`` checks every class with the texts Remotion writes.
"""

from __future__ import annotations

from enum import StrEnum

import botocore.exceptions as bexc
from remotion_lambda.exception import (
    RemotionException,
    RemotionInvalidArgumentException,
    RemotionRenderingOutputError,
)

from shared.errors import RenderqError


class LambdaError(RenderqError):
    """Base of every mapped Lambda failure."""


class LambdaThrottled(LambdaError):
    """429 from the Invoke API: the account's concurrency is used up. Try later."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class LambdaTransient(LambdaError):
    """Network trouble, 5xx, a crashed function invocation. Try later.

    ``may_have_started`` is True when a ``start`` request may have reached the function and
    launched the render: retrying could start a duplicate, so the next attempt looks for it.
    ``decided_within_s``, when known, is how long until a retry is certain to get an answer
    (a search waiting for metadata that is due): backing off beyond it only delays the start.
    """

    def __init__(
        self,
        message: str,
        *,
        may_have_started: bool = False,
        decided_within_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.may_have_started = may_have_started
        self.decided_within_s = decided_within_s


class LambdaRejected(LambdaError):
    """Remotion handled the request and refused it; nothing started."""


class LambdaConfigError(LambdaError):
    """The deployment is wrong: function missing, access denied, another Remotion version."""


class FatalKind(StrEnum):
    """What a fatal error in a render's progress means."""

    #: The account ran out of Lambda concurrency inside the render: start it again.
    THROTTLED = "throttled"
    #: The render was cancelled (``cancel.json``): renderq asked for it.
    CANCELLED = "cancelled"
    #: Remotion's synthetic timeout: the main function ran out of time.
    TIMEOUT = "timeout"
    #: Anything else: the render itself failed (bad composition, asset, code...).
    RENDER = "render"


#: ``packages/lambda-client/src/call-lambda-streaming.ts`` wraps a renderer invocation that
#: got ``TooManyRequestsException`` as "AWS Concurrency limit reached (Original Error: Rate
#: Exceeded.)"; ``is-flaky-error.ts`` does not retry it, so the render fails. The raw AWS texts
#: are matched too (older clients, the s3 transport's async invoke).
_THROTTLED = (
    "AWS Concurrency limit reached",
    "TooManyRequestsException",
    "ConcurrentInvocationLimitExceeded",
    "Rate Exceeded",
)
#: ``packages/renderer/src/make-cancel-signal.ts``: "renderMedia() got cancelled" (and
#: "renderFrames() got cancelled"); the docs name the error ``CancelledError``
#: (``docs/lambda/cancellation.mdx``), which ``cancelRender()`` in a page produces.
_CANCELLED = ("got cancelled", "CancelledError")
#: ``packages/serverless-client/src/make-timeout-error.ts`` names it ``TimeoutError`` and
#: ``make-timeout-message.ts`` starts it with "The main function timed out after".
_TIMEOUT = ("The main function timed out",)


def classify_fatal(name: str | None, message: str | None, stack: str | None = None) -> FatalKind:
    text = " ".join(part for part in (name, message, stack) if part)
    if any(marker in text for marker in _CANCELLED):
        return FatalKind.CANCELLED
    if any(marker in text for marker in _THROTTLED):
        return FatalKind.THROTTLED
    if name == "TimeoutError" and any(marker in text for marker in _TIMEOUT):
        return FatalKind.TIMEOUT
    return FatalKind.RENDER


#: Handled ``start`` errors raised before ``launch`` is invoked
#: (``packages/serverless/src/handlers/start.ts`` and what it calls): the render certainly did
#: not start. Any other handled error of ``start`` may come after the launch (a failed
#: ``progress.json`` write is retried, then reported, while the render runs on).
_BEFORE_LAUNCH = (
    # handlers/check-version-mismatch.ts
    "Version mismatch",
    # lambda-client/src/aws-provider.ts validateDeleteAfter
    "Expected life cycle value to be a string",
    "Expected deleteAfter value to be one of",
    # serverless-client/src/get-or-create-bucket.ts
    "You have multiple buckets",
    # lambda-client/src/create-bucket.ts
    "more AWS permissions are required to create an S3 bucket",
    "PARTIAL SUCCESS: The s3:PutBucketOwnershipControls",
    # lambda-client/src/convert-to-serve-url.ts
    "Remotion Lambda can only render based on a URL in the cloud",
    # lambda-client/src/call-lambda-async.ts (the launch invoke itself failed)
    "Payload is too big",
    # handlers/start.ts
    "Expected type start",
    "Expected process.env.AWS_REGION to be defined",
)
#: Of those, the ones an operator must fix (the deployment, not the request).
_CONFIG = (
    "Version mismatch",
    "You have multiple buckets",
    "more AWS permissions are required",
    "PARTIAL SUCCESS",
    "Remotion Lambda can only render based on a URL in the cloud",
    "Expected process.env.AWS_REGION",
)


class StartErrorKind(StrEnum):
    """What a handled error returned by ``start`` means."""

    #: Certainly nothing started, and the deployment is wrong: an operator must act.
    CONFIG = "config"
    #: Certainly nothing started; Remotion refused this request.
    REJECTED = "rejected"
    #: The render may be running (the error came after ``launch`` was invoked, or is unknown).
    AMBIGUOUS = "ambiguous"


def classify_start_error(message: str) -> StartErrorKind:
    if any(marker in message for marker in _CONFIG):
        return StartErrorKind.CONFIG
    if any(marker in message for marker in _BEFORE_LAUNCH):
        return StartErrorKind.REJECTED
    return StartErrorKind.AMBIGUOUS


_THROTTLE_CODES = {
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
}
_TRANSIENT_CODES = {
    "ServiceException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalServerError",
    "EC2ThrottledException",
    "ResourceNotReadyException",
    "ResourceConflictException",
}
#: ``remotion_lambda/remotionclient.py::_invoke_lambda``: a body with ``type: "error"`` (a
#: handled error) and one with ``errorMessage`` (an unhandled one, ``X-Amz-Function-Error``).
_HANDLED = "Remotion rendering error:"


def map_error(exc: BaseException, *, is_start: bool) -> LambdaError:
    """The mapped exception for what a Lambda call through Remotion's client raised."""
    if isinstance(exc, bexc.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        message = f"{code}: {error.get('Message') or exc}"
        if code in _THROTTLE_CODES or status == 429:
            retry_after = exc.response.get("retryAfterSeconds")
            return LambdaThrottled(message, float(retry_after) if retry_after else None)
        if code in _TRANSIENT_CODES or status >= 500:
            return LambdaTransient(message)
        return LambdaConfigError(message)
    if isinstance(exc, (bexc.ReadTimeoutError, bexc.ConnectionClosedError)):
        return LambdaTransient(f"{type(exc).__name__}: {exc}", may_have_started=is_start)
    if isinstance(exc, (bexc.ConnectTimeoutError, bexc.EndpointConnectionError)):
        return LambdaTransient(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (bexc.HTTPClientError, bexc.BotoCoreError)):
        if isinstance(exc, bexc.NoCredentialsError):
            return LambdaConfigError(f"no AWS credentials: {exc}")
        return LambdaTransient(f"{type(exc).__name__}: {exc}", may_have_started=is_start)
    if isinstance(exc, RemotionRenderingOutputError):
        text = str(exc)
        if text.startswith(_HANDLED):
            message = text.removeprefix(_HANDLED).strip()
            if not is_start:
                return LambdaRejected(message)
            kind = classify_start_error(message)
            if kind is StartErrorKind.CONFIG:
                return LambdaConfigError(message)
            if kind is StartErrorKind.REJECTED:
                return LambdaRejected(message)
            return LambdaTransient(message, may_have_started=True)
        # An unhandled error (the function crashed, timed out, ran out of memory) or a body
        # that could not be parsed: after a start, ``launch`` may already have been invoked.
        return LambdaTransient(text, may_have_started=is_start)
    if isinstance(exc, RemotionInvalidArgumentException):
        if isinstance(exc.__cause__, (bexc.ClientError, bexc.BotoCoreError)):
            # Uploading large input props to S3 failed: S3's error decides, not the props.
            return map_error(exc.__cause__, is_start=False)
        return LambdaRejected(str(exc))
    if isinstance(exc, RemotionException):
        return LambdaTransient(str(exc))
    raise exc
