"""What the emulated function answers: Lambda Invoke results and errors.

:class:`InvokeResult` is an HTTP answer kept free of any transport, so the emulator's logic
is testable without sockets. The builders produce the Invoke API's shapes: a success, the
*handled* error the real handler returns as a normal 200 result, the *unhandled* error
(``X-Amz-Function-Error``), and API errors such as throttling, which boto3 turns into its
modeled exceptions. Routines raise :class:`_HandledError` for a handled error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from devtools.emulator.constants import JSONDict


@dataclass(frozen=True, slots=True)
class InvokeResult:
    """An HTTP answer, kept transport-free so the emulator logic is testable without sockets."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = "application/json"
    padding: int = 0
    """Zero bytes sent after ``body`` (a placeholder object's content), streamed in chunks."""


_EXECUTED_VERSION: Final = (("X-Amz-Executed-Version", "$LATEST"),)


def _dumps(obj: object) -> bytes:
    # Compact separators: that is what JSON.stringify in the real function produces.
    return json.dumps(obj, separators=(",", ":")).encode()


def _success(body: JSONDict) -> InvokeResult:
    return InvokeResult(200, _dumps(body), _EXECUTED_VERSION)


def _handled_error(message: str) -> InvokeResult:
    # The real handler catches the error and returns it as a *normal* 200 result without
    # X-Amz-Function-Error; only the body says it failed.
    body = {"type": "error", "message": message, "stack": f"Error: {message}\n    at emulator"}
    return InvokeResult(200, _dumps(body), _EXECUTED_VERSION)


def _unhandled_error(message: str) -> InvokeResult:
    body = {"errorType": "Error", "errorMessage": message, "trace": []}
    return InvokeResult(
        200, _dumps(body), (*_EXECUTED_VERSION, ("X-Amz-Function-Error", "Unhandled"))
    )


def _api_error(status: int, error_type: str, body: JSONDict) -> InvokeResult:
    # botocore takes the error code from x-amzn-ErrorType, so this header is what makes
    # boto3 raise the modeled exception class (e.g. TooManyRequestsException).
    return InvokeResult(status, _dumps(body), (("x-amzn-ErrorType", error_type),))


def _throttled() -> InvokeResult:
    return _api_error(
        429,
        "TooManyRequestsException",
        {
            "Reason": "ConcurrentInvocationLimitExceeded",
            "Type": "User",
            "message": "Rate Exceeded.",
        },
    )


class _HandledError(Exception):
    """Raised inside a routine for errors the real function reports as a handled error."""
