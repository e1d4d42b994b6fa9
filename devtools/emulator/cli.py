"""The command line: ``python -m devtools.emulator [options]``.

The options are :class:`~devtools.emulator.server.EmulatorServer`'s: the account (region,
account id, concurrency limit), the deployment (Remotion version, function names, whose
memory, disk and timeout are read from the name as ``parse-function-name.ts`` does),
speed, and ``--fault KEY=JSON`` for any control-API knob, checked by the same validators.
:func:`main` prints one "listening" line with the URL, which harnesses wait for, and
serves until SIGTERM or SIGINT. Run two, on two ports, for two accounts or regions.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from devtools.emulator.constants import ACCOUNT_ID, DEFAULT_REGION, REMOTION_VERSION
from devtools.emulator.faults import (
    FAULT_PARSERS,
    non_negative,
    optional_limit,
    optional_positive,
    positive,
)
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


def _fault(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or key not in FAULT_PARSERS:
        raise argparse.ArgumentTypeError(f"expected KEY=JSON with a fault key, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw  # a bare string
    try:
        FAULT_PARSERS[key](key, value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return key, value


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.emulator",
        description="Remotion-Lambda-compatible emulator speaking the AWS Lambda Invoke API.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--speed",
        type=_cli_type(positive, "speed", float),
        default=None,
        help="frames per second of wall time a render's renderers produce (default 100); "
        "overheads shrink in proportion",
    )
    parser.add_argument("--region", default=DEFAULT_REGION)
    parser.add_argument("--account-id", default=ACCOUNT_ID)
    parser.add_argument(
        "--function-name",
        action="append",
        default=None,
        help="accept only these functions (repeatable; default: any name)",
    )
    parser.add_argument(
        "--concurrency-limit",
        type=_cli_type(optional_limit, "concurrency_limit", int),
        default=None,
        help="the account's concurrent executions (default: unlimited)",
    )
    parser.add_argument(
        "--function-timeout-s",
        type=_cli_type(optional_positive, "function_timeout_s", float),
        default=None,
        help="override the timeout every function name encodes (e.g. -120sec)",
    )
    parser.add_argument(
        "--timeout-grace-s",
        type=_cli_type(non_negative, "timeout_grace_s", float),
        default=None,
        help="delay after the function timeout before status reports TimeoutError (20)",
    )
    parser.add_argument(
        "--start-delay-ms", type=_cli_type(non_negative, "start_delay_ms", float), default=None
    )
    parser.add_argument(
        "--status-delay-ms", type=_cli_type(non_negative, "status_delay_ms", float), default=None
    )
    parser.add_argument("--remotion-version", default=REMOTION_VERSION)
    parser.add_argument(
        "--no-default-bucket",
        action="store_true",
        help="start without remotionlambda-<region>-emulator (the first start creates one)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        type=_fault,
        default=[],
        metavar="KEY=JSON",
        help="initial value of a control-API knob, e.g. cold_start_ms=0 (repeatable)",
    )
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
        verbose=args.verbose,
        speed=args.speed,
        region=args.region,
        account_id=args.account_id,
        function_names=args.function_name,
        concurrency_limit=args.concurrency_limit,
        function_timeout_s=args.function_timeout_s,
        start_delay_ms=args.start_delay_ms,
        status_delay_ms=args.status_delay_ms,
        remotion_version=args.remotion_version,
        timeout_grace_s=args.timeout_grace_s,
        default_bucket=not args.no_default_bucket,
        faults=dict(args.fault),
    ).start()
    try:
        print(f"lambda-emulator listening on {server.url}", flush=True)
        while not stopping.wait(1.0):
            pass
    finally:
        server.stop()
    return 0
