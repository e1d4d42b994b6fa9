"""What the emulated function answers: Lambda Invoke results and errors.

:class:`InvokeResult` is an HTTP answer kept free of any transport, so the emulator's logic
is testable without sockets. The builders produce the Invoke API's shapes: a success, the
*handled* error Remotion's handler writes as a normal 200 result
(``serverless/src/inner-routine.ts``: ``{type: 'error', message, stack}``), the
*unhandled* error a thrown exception becomes (``X-Amz-Function-Error: Unhandled`` and
``{errorType, errorMessage, trace}``, as the Node.js runtime writes it), and API errors
such as throttling, which boto3 turns into its modeled exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from devtools.emulator import jsjson
from devtools.emulator.constants import JSONDict
from devtools.emulator.texts import RemotionError


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """An HTTP answer, kept transport-free so the emulator logic is testable without sockets."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"
    padding: int = 0
    """Zero bytes sent after ``body`` (a placeholder object's content), streamed in chunks."""


EXECUTED_VERSION: Final = (("X-Amz-Executed-Version", "$LATEST"),)


def dumps(obj: object) -> bytes:
    """``JSON.stringify``: what the real function writes to its response stream."""
    return jsjson.dumps_bytes(obj)


def success(body: JSONDict) -> InvokeResult:
    return InvokeResult(200, dumps(body), EXECUTED_VERSION)


def handled_error(error: RemotionError) -> InvokeResult:
    body = {"type": "error", "message": error.message, "stack": error.stack}
    return InvokeResult(200, dumps(body), EXECUTED_VERSION)


def unhandled_error(error: RemotionError) -> InvokeResult:
    # The Node.js runtime's shape for a rejected handler: trace is err.stack split by lines.
    body = {
        "errorType": error.name,
        "errorMessage": error.message,
        "trace": error.stack.split("\n"),
    }
    return InvokeResult(
        200, dumps(body), (*EXECUTED_VERSION, ("X-Amz-Function-Error", "Unhandled"))
    )


def api_error(status: int, error_type: str, body: JSONDict) -> InvokeResult:
    # botocore takes the error code from x-amzn-ErrorType, so this header is what makes
    # boto3 raise the modeled exception class (e.g. TooManyRequestsException).
    return InvokeResult(status, dumps(body), (("x-amzn-ErrorType", error_type),))


def throttled() -> InvokeResult:
    return api_error(
        429,
        "TooManyRequestsException",
        {
            "Reason": "ConcurrentInvocationLimitExceeded",
            "Type": "User",
            "message": "Rate Exceeded.",
        },
    )
