"""The command line: ``python -m devtools.emulator [options]``.

The options are :class:`~devtools.emulator.server.EmulatorServer`'s, checked by the same
validators as the control API. :func:`main` prints one "listening" line with the URL, which
harnesses wait for, and serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from devtools.emulator.constants import (
    DEFAULT_FUNCTION_TIMEOUT_S,
    DEFAULT_SPEED_FPS,
    DEFAULT_TIMEOUT_GRACE_S,
    REMOTION_VERSION,
)
from devtools.emulator.faults import _non_negative, _optional_limit, _positive
from devtools.emulator.server import EmulatorServer


def _cli_type(
    parse: Callable[[str, object], Any], name: str, cast: Callable[[str], Any]
) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(name, cast(text))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return convert


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.emulator",
        description="Remotion-Lambda-compatible emulator speaking the AWS Lambda Invoke API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--speed",
        type=_cli_type(_positive, "speed", float),
        default=DEFAULT_SPEED_FPS,
        help="rendered frames per second of wall time (default %(default)s)",
    )
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument(
        "--function-name", default=None, help="only accept this function (default: any)"
    )
    parser.add_argument(
        "--concurrency-limit",
        type=_cli_type(_optional_limit, "concurrency_limit", int),
        default=None,
        help="max functions in flight; starts beyond it get 429 (default: none)",
    )
    parser.add_argument(
        "--function-timeout-s",
        type=_cli_type(_positive, "function_timeout_s", float),
        default=DEFAULT_FUNCTION_TIMEOUT_S,
    )
    parser.add_argument(
        "--timeout-grace-s",
        type=_cli_type(_non_negative, "timeout_grace_s", float),
        default=DEFAULT_TIMEOUT_GRACE_S,
        help="delay after the function timeout before status reports TimeoutError",
    )
    parser.add_argument(
        "--start-delay-ms", type=_cli_type(_non_negative, "start_delay_ms", float), default=0.0
    )
    parser.add_argument(
        "--status-delay-ms", type=_cli_type(_non_negative, "status_delay_ms", float), default=0.0
    )
    parser.add_argument("--remotion-version", default=REMOTION_VERSION)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; prints one "listening" line that harnesses wait for."""
    args = _parse_args(argv)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    # Installed before the port is announced, so a harness's SIGTERM is never lost.
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    server = EmulatorServer(
        args.host,
        args.port,
        speed=args.speed,
        region=args.region,
        function_name=args.function_name,
        concurrency_limit=args.concurrency_limit,
        function_timeout_s=args.function_timeout_s,
        start_delay_ms=args.start_delay_ms,
        status_delay_ms=args.status_delay_ms,
        remotion_version=args.remotion_version,
        timeout_grace_s=args.timeout_grace_s,
        verbose=args.verbose,
    ).start()
    try:
        print(f"lambda-emulator listening on {server.url}", flush=True)
        while not stopping.wait(1.0):
            pass
    finally:
        server.stop()
    return 0
