"""Which renderer errors Remotion retries: ``lambda-client/src/is-flaky-error.ts`` (4.0.527).

The check is on ``err.stack``. ``TooManyRequestsException``, "Rate Exceeded" and
``ConcurrentInvocationLimitExceeded`` are *not* flaky, so a throttled renderer fails the
render instead of being retried.
"""

from __future__ import annotations

from typing import Final

_ANY: Final = (
    "FATAL:zygote_communication_linux.cc",
    "error while loading shared libraries: libnss3.so",
    "but the server sent no data",
    "Compositor panicked",
    "We encountered an internal error.",
    "while trying to connect to the browser",
    "RequestTimeout: Your socket connection to the server",
    "waiting for the page to render the React component",
    "Timed out evaluating page function",
    "Timeout exceeded rendering the component",
    "Loading root component",
    "getaddrinfo",
    "ECONNRESET",
    "ERR_CONNECTION_TIMED_OUT",
    "ERR_NETWORK_CHANGED",
    "A network error occurred",
    "socket hang up",
    "Target closed",
    "Session closed",
    "SIGKILL",
    "ServiceException: We currently do not have sufficient capacity in the region you requested",
    "Page crashed!",
)


def is_flaky(stack: str) -> bool:
    if ("Format error" in stack or "audio metadata" in stack) and (
        "storage.googleapis.com" in stack
    ):
        return True
    if any(token in stack for token in _ANY):
        return True
    if "Compositor exited" in stack and "SIGSEGV" not in stack:
        return True
    return "Timed out" in stack and "while setting up the headless browser" in stack
