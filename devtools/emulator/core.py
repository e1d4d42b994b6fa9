"""A Remotion-Lambda-compatible emulator that speaks the real AWS Lambda Invoke API.

Why this exists: renderq's workers talk to Remotion Lambda only through the unmodified
``remotion_lambda`` client, which calls ``lambda.invoke`` and parses the body. To test and
benchmark them without AWS we need something on the other end of that HTTP call that
behaves like the deployed function -- including the unpleasant parts (throttling, crashes,
fatal render errors, renders that never finish) -- on demand and deterministically. moto
cannot do this (it does not run Lambda code without Docker), so this module implements the
wire contract documented in ``shared/notes/remotion-lambda-protocol.md`` directly.

Point any boto3 client at it with ``endpoint_url`` or ``AWS_ENDPOINT_URL_LAMBDA``. The
product code never imports this module; tests, the demo and docker-compose do.

The same port also serves the read-only slice of the S3 REST API (path-style) that lets a
client find renders the way it would in Remotion's real bucket: ListBuckets,
GetBucketLocation, HeadBucket, ListObjectsV2, GetObject and HeadObject over
``renders/<renderId>/progress.json`` (from the moment of ``start``) and the output object
(once the render is done). Reach it with ``AWS_ENDPOINT_URL_S3`` or ``endpoint_url``; request
signatures are not checked. Every other path is S3 except ``/2015-03-31/functions/...``
(Lambda) and ``/_emulator/...`` (control API). progress.json has the shape Remotion writes
(``renderMetadata`` holds ``renderId``, ``outName`` and ``startedDate``; there is no top-level
``renderId``); the ``progress_metadata_delay_ms`` fault keeps its ``renderMetadata`` null for
a while after start, as on AWS until the launch function has validated the composition.
``/_emulator/stats`` counts S3 requests by operation in ``s3_calls``.

Renders are not simulated by a background clock: a render is a frozen record of when it
started and how fast it goes, and every status call derives the progress from the elapsed
time. That keeps per-call work tiny (the emulator is used for benchmarks) and avoids any
timer thread that could drift or race with the test that is observing it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import bisect
import contextlib
import email.utils
import hashlib
import heapq
import json
import math
import secrets
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Final, Self
from urllib.parse import parse_qsl, quote, unquote
from xml.sax.saxutils import escape as _xml_escape

__all__ = [
    "REMOTION_VERSION",
    "EmulatorServer",
    "InvokeResult",
    "LambdaEmulator",
    "control",
    "main",
]

REMOTION_VERSION: Final = "4.0.539"
"""The Remotion version the emulated function was "deployed" with (must equal the SDK's)."""

ACCOUNT_ID: Final = "123456789012"
DEFAULT_SPEED_FPS: Final = 100.0
DEFAULT_FUNCTION_TIMEOUT_S: Final = 120.0
DEFAULT_TIMEOUT_GRACE_S: Final = 20.0
"""Remotion only declares a render timed out 20 s after the function timeout (AWS clock skew)."""

MAX_FUNCTIONS_PER_RENDER: Final = 200
MINIMUM_FRAMES_PER_FUNCTION: Final = 5
DEFAULT_DURATION_IN_FRAMES: Final = 300
DEFAULT_FPS: Final = 30
DEFAULT_WIDTH: Final = 1920
DEFAULT_HEIGHT: Final = 1080
MEMORY_SIZE_MB: Final = 2048
PRICE_PER_GB_SECOND: Final = 0.0000133334
"""arm64 Lambda price in us-east-1; Remotion deploys arm64 functions."""
PRICE_PER_INVOCATION: Final = 0.0000002
COST_DISCLAIMER: Final = "Estimated cost only. Does not include charges for other AWS services."
NEVER_FINISH_STALL_AT: Final = 0.99
DEFAULT_FATAL_MESSAGE: Final = "Emulated fatal render error"

# Share of a render's wall time spent in each phase. Only the shape matters: status
# responses should move through "launching", "invoking renderers", "rendering frames" and
# "combining" the way the real ones do, so a worker that looks at those fields sees
# realistic values.
_EVALUATED_AT: Final = 0.05
_INVOKED_AT: Final = 0.10
_FRAMES_DONE_AT: Final = 0.85
_SERVE_URL_OPENED_AT: Final = 0.02
_COMPOSITION_VALIDATED_AT: Final = 0.04

_INVOKE_PREFIX: Final = "/2015-03-31/functions/"
_INVOKE_SUFFIX: Final = "/invocations"
_CONTROL_PREFIX: Final = "/_emulator/"

_CODEC_EXTENSIONS: Final[Mapping[str, str]] = {
    "h264": "mp4",
    "h265": "mp4",
    "vp8": "webm",
    "vp9": "webm",
    "prores": "mov",
    "gif": "gif",
    "mp3": "mp3",
    "aac": "aac",
    "wav": "wav",
    "h264-mkv": "mkv",
    "h264-ts": "ts",
}

JSONDict = dict[str, Any]


# --------------------------------------------------------------------------------------
# Invoke results
# --------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------
# Fault configuration
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Directive:
    """Per-render misbehaviour, from a control-API rule or the render's own input props.

    ``None`` means "not specified here", so rules and props can be layered.
    """

    fatal_at: float | None = None
    message: str | None = None
    never_finish: bool | None = None
    crash_start: str | None = None
    reject_start: str | None = None
    speed: float | None = None

    def overlay(self, other: _Directive) -> _Directive:
        """Return self with every value that ``other`` specifies taking precedence."""
        changes = {k: v for k, v in asdict(other).items() if v is not None}
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class _Rule:
    composition: str
    directive: _Directive

    def as_json(self) -> JSONDict:
        raw = {k: v for k, v in asdict(self.directive).items() if v is not None}
        return {"composition": self.composition, **raw}


@dataclass(slots=True)
class _Faults:
    """Everything the control API can change at run time; reset restores the CLI values."""

    speed: float
    concurrency_limit: int | None
    function_timeout_s: float
    timeout_grace_s: float
    start_delay_ms: float
    status_delay_ms: float
    throttle_starts: int = 0
    throttle_status: int = 0
    crash_starts: int = 0
    crash_status: int = 0
    fail_status: int = 0
    progress_metadata_delay_ms: float = 0.0
    rules: tuple[_Rule, ...] = ()

    def as_json(self) -> JSONDict:
        out: JSONDict = {k: getattr(self, k) for k in _FAULT_PARSERS if k != "rules"}
        out["rules"] = [rule.as_json() for rule in self.rules]
        return out


def _number(key: str, value: object, requirement: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be {requirement}, got {value!r}")
    return float(value)


def _count(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
    return value


def _non_negative(key: str, value: object) -> float:
    requirement = "a non-negative number"
    number = _number(key, value, requirement)
    if number < 0:
        raise ValueError(f"{key} must be {requirement}, got {value!r}")
    return number


def _positive(key: str, value: object) -> float:
    requirement = "a positive number"
    number = _number(key, value, requirement)
    if number <= 0:
        raise ValueError(f"{key} must be {requirement}, got {value!r}")
    return number


def _optional_limit(key: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key} must be a positive integer or null, got {value!r}")
    return value


def _fraction(key: str, value: object) -> float:
    requirement = "a number between 0 and 1"
    number = _number(key, value, requirement)
    if not 0 <= number <= 1:
        raise ValueError(f"{key} must be {requirement}, got {value!r}")
    return number


def _flag_or_message(key: str, value: object, default_message: str) -> str | None:
    """Accept ``true`` (use a default message), a message string, or ``false``/``null``."""
    if value is None or value is False:
        return None
    if value is True:
        return default_message
    if isinstance(value, str) and value:
        return value
    raise ValueError(f"{key} must be a boolean or a non-empty string, got {value!r}")


_DIRECTIVE_KEYS: Final = frozenset(
    {"fatal_at", "message", "never_finish", "crash_start", "reject_start", "speed"}
)


def _parse_directive(raw: Mapping[str, Any], where: str) -> _Directive:
    unknown = set(raw) - _DIRECTIVE_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    message = raw.get("message")
    if message is not None and not isinstance(message, str):
        raise ValueError(f"{where}: message must be a string")
    never_finish = raw.get("never_finish")
    if never_finish is not None and not isinstance(never_finish, bool):
        raise ValueError(f"{where}: never_finish must be a boolean")
    return _Directive(
        fatal_at=None if raw.get("fatal_at") is None else _fraction("fatal_at", raw["fatal_at"]),
        message=message,
        never_finish=never_finish,
        crash_start=_flag_or_message(
            "crash_start", raw.get("crash_start"), "Emulated unhandled crash in start"
        ),
        reject_start=_flag_or_message(
            "reject_start", raw.get("reject_start"), "Emulated start rejection"
        ),
        speed=None if raw.get("speed") is None else _positive("speed", raw["speed"]),
    )


def _parse_rules(key: str, value: object) -> tuple[_Rule, ...]:
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list")
    rules = []
    for index, raw in enumerate(value):
        where = f"rules[{index}]"
        if not isinstance(raw, dict):
            raise ValueError(f"{where} must be an object")
        composition = raw.get("composition")
        if not isinstance(composition, str) or not composition:
            raise ValueError(f"{where}: composition must be a non-empty string")
        directive_raw = {k: v for k, v in raw.items() if k != "composition"}
        rules.append(_Rule(composition, _parse_directive(directive_raw, where)))
    return tuple(rules)


_FAULT_PARSERS: Final[Mapping[str, Callable[[str, object], Any]]] = {
    "throttle_starts": _count,
    "throttle_status": _count,
    "crash_starts": _count,
    "crash_status": _count,
    "fail_status": _count,
    "start_delay_ms": _non_negative,
    "status_delay_ms": _non_negative,
    "concurrency_limit": _optional_limit,
    "speed": _positive,
    "function_timeout_s": _positive,
    "timeout_grace_s": _non_negative,
    "progress_metadata_delay_ms": _non_negative,
    "rules": _parse_rules,
}


# --------------------------------------------------------------------------------------
# Renders
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything about a render that follows from the start payload alone."""

    composition: str
    codec: str
    frames: int
    fps: int
    width: int
    height: int
    frame_range: tuple[int, int]
    frames_per_lambda: int
    chunks: int
    out_name: object
    bucket: str
    directive: _Directive

    @property
    def functions(self) -> int:
        # One orchestrator ("launch") plus one renderer per chunk.
        return 1 + self.chunks


@dataclass(frozen=True, slots=True)
class _Render:
    render_id: str
    bucket: str
    plan: _Plan
    out_name_label: str
    out_key: str
    out_bucket: str
    output_url: str
    output_size: int
    started_epoch_ms: int
    started_mono: float
    run_s: float
    timeout_s: float
    grace_s: float
    fatal_fraction: float | None
    fatal_message: str
    stall_fraction: float | None
    release_after_s: float
    metadata: JSONDict
    expensive_ranges: list[JSONDict]
    metadata_delay_s: float
    """progress.json has ``renderMetadata: null`` for this long, as before launch validates."""
    cancellation_enabled: bool


@dataclass(frozen=True, slots=True)
class _State:
    elapsed_s: float
    fraction: float
    done: bool
    fatal: bool
    timed_out: bool

    @property
    def fatal_error_encountered(self) -> bool:
        return self.fatal or self.timed_out


def _clamp01(value: float) -> float:
    return 0.0 if value < 0 else 1.0 if value > 1 else value


def _evaluate(render: _Render, now_mono: float) -> _State:
    """Derive where a render is at ``now_mono`` from its frozen timing parameters."""
    elapsed = max(0.0, now_mono - render.started_mono)
    raw = elapsed / render.run_s
    done = fatal = False
    if render.fatal_fraction is not None and raw >= render.fatal_fraction:
        fraction, fatal = render.fatal_fraction, True
    elif render.stall_fraction is not None:
        fraction = min(raw, render.stall_fraction)
    elif raw >= 1:
        fraction, done = 1.0, True
    else:
        fraction = raw
    timed_out = not done and elapsed > render.timeout_s + render.grace_s
    return _State(elapsed, fraction, done, fatal, timed_out)


def _best_frames_per_lambda(frame_count: int) -> int:
    """Remotion's default: 75..150 functions across 0..18000 frames, >= 20 frames each."""
    concurrency = 75 + 75 * min(frame_count, 18000) / 18000
    frames_per_function = max(frame_count / concurrency, 20)
    functions_needed = math.ceil(frame_count / frames_per_function)
    return math.ceil(frame_count / functions_needed)


def _resolve_frames_per_lambda(payload: Mapping[str, Any], frame_count: int) -> int:
    # Mirrors serverless-client/src/validate-frames-per-function.ts, messages included.
    frames_per_lambda = payload.get("framesPerLambda")
    concurrency = payload.get("concurrency")
    minimum = min(MINIMUM_FRAMES_PER_FUNCTION, frame_count)
    if concurrency is not None and frames_per_lambda is not None:
        raise _HandledError(
            "Both 'framesPerLambda' and 'concurrency' were set. Please use only one of them."
        )
    if concurrency is not None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency <= 0:
            raise _HandledError(
                f"'concurrency' needs to be a positive integer, passed {concurrency}"
            )
        if concurrency > MAX_FUNCTIONS_PER_RENDER:
            raise _HandledError(
                f"'concurrency' cannot exceed {MAX_FUNCTIONS_PER_RENDER}, passed {concurrency}"
            )
        return max(math.ceil(frame_count / concurrency), minimum)
    if frames_per_lambda is None:
        return max(_best_frames_per_lambda(frame_count), minimum)
    if isinstance(frames_per_lambda, bool) or not isinstance(frames_per_lambda, int):
        raise _HandledError(
            f"'framesPerLambda' needs to be an integer, passed {json.dumps(frames_per_lambda)}"
        )
    if frames_per_lambda < minimum:
        raise _HandledError(
            f"The framesPerLambda needs to be at least {minimum}, but is {frames_per_lambda}"
        )
    return frames_per_lambda


def _positive_int_or(payload: Mapping[str, Any], key: str, default: int) -> int:
    value = payload.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _HandledError(f"'{key}' must be a positive integer, but got {json.dumps(value)}")
    return value


def _frame_range(payload: Mapping[str, Any], duration: int) -> tuple[int, int]:
    raw = payload.get("frameRange")
    if raw is None:
        return 0, duration - 1
    if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < duration:
        return raw, raw
    if (
        isinstance(raw, list)
        and len(raw) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
        and 0 <= raw[0] <= raw[1] < duration
    ):
        return raw[0], raw[1]
    raise _HandledError(
        f"frameRange {json.dumps(raw)} is not valid for a composition of {duration} frames"
    )


def _decode_input_props(serialized: object) -> object:
    """Return the render's input props, or None when they live in S3 or do not parse."""
    if not isinstance(serialized, dict) or serialized.get("type") != "payload":
        return None
    payload = serialized.get("payload")
    if not isinstance(payload, str):
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return None


def _out_name_label(out_name: object, extension: str) -> str:
    if isinstance(out_name, str) and out_name:
        return out_name
    if isinstance(out_name, dict) and isinstance(out_name.get("key"), str):
        return str(out_name["key"])
    return f"out.{extension}"


def _site_id(serve_url: str) -> str | None:
    marker = "/sites/"
    if marker not in serve_url:
        return None
    return serve_url.split(marker, 1)[1].split("/", 1)[0] or None


def _output_size(plan: _Plan) -> int:
    # Roughly 6 Mbit/s for 1080p30: plausible, and the same for the same render every time.
    return plan.width * plan.height * plan.frames // 80 + 4096


def _most_expensive_frame_ranges(plan: _Plan, run_s: float) -> list[JSONDict]:
    """Top-5 chunks by (made-up but deterministic) render time, as the done status lists."""
    base_ms = plan.frames_per_lambda / plan.frames * run_s * 1000
    costs = sorted(
        ((int(base_ms * (1 + (chunk * 37 % 11) / 20)), chunk) for chunk in range(plan.chunks)),
        key=lambda item: (-item[0], item[1]),
    )
    ranges = []
    for cost_ms, chunk in costs[:5]:
        first = plan.frame_range[0] + chunk * plan.frames_per_lambda
        last = min(first + plan.frames_per_lambda - 1, plan.frame_range[1])
        ranges.append({"chunk": chunk, "timeInMilliseconds": cost_ms, "frameRange": [first, last]})
    return ranges


def _display_cost(cost: float) -> str:
    return "<$0.001" if cost < 0.001 else f"${cost:.3f}"


def _costs(accrued: float) -> JSONDict:
    return {
        "accruedSoFar": accrued,
        "displayCost": _display_cost(accrued),
        "currency": "USD",
        "disclaimer": COST_DISCLAIMER,
    }


def _function_name_from_ref(ref: str) -> str:
    """Accept a name, ``name:qualifier``, a full ARN or a partial ARN, as AWS does."""
    if "function:" in ref:
        ref = ref.split("function:", 1)[1]
    return ref.split(":", 1)[0]


# --------------------------------------------------------------------------------------
# S3 object model
# --------------------------------------------------------------------------------------

S3_MAX_KEYS: Final = 1000
_S3_XMLNS: Final = "http://s3.amazonaws.com/doc/2006-03-01/"
_XML_DECLARATION: Final = '<?xml version="1.0" encoding="UTF-8"?>\n'
_S3_OWNER_ID: Final = hashlib.sha256(ACCOUNT_ID.encode()).hexdigest()
_ZEROS: Final = bytes(1 << 20)
_MEDIA_TYPES: Final[Mapping[str, str]] = {
    "mp4": "video/mp4",
    "webm": "video/webm",
    "mov": "video/quicktime",
    "mkv": "video/x-matroska",
    "ts": "video/mp2t",
    "gif": "image/gif",
    "mp3": "audio/mpeg",
    "aac": "audio/aac",
    "wav": "audio/wav",
    "json": "application/json",
}


@dataclass(frozen=True, slots=True)
class _S3Object:
    """One object as a read sees it at a given instant; its content is ``body`` + zeros."""

    key: str
    body: bytes
    padding: int
    etag: str
    last_modified_ms: int
    content_type: str

    @property
    def size(self) -> int:
        return len(self.body) + self.padding


@dataclass(slots=True)
class _Bucket:
    """The keys renders will ever write to one bucket; what is visible is decided per read.

    ``start`` only appends (O(1) on the hot path); a listing sorts lazily, which timsort
    does in about linear time since all but the newest keys are already in order.
    """

    created_ms: int
    keys: list[str] = field(default_factory=list)
    is_sorted: bool = True
    progress: dict[str, _Render] = field(default_factory=dict)
    outputs: dict[str, list[_Render]] = field(default_factory=dict)

    def add_progress(self, key: str, render: _Render) -> None:
        self._add_key(key)
        self.progress[key] = render

    def add_output(self, key: str, render: _Render) -> None:
        self._add_key(key)
        self.outputs.setdefault(key, []).append(render)

    def _add_key(self, key: str) -> None:
        if key in self.progress or key in self.outputs:
            return
        if self.keys and key < self.keys[-1]:
            self.is_sorted = False
        self.keys.append(key)

    def sorted_keys(self) -> list[str]:
        if not self.is_sorted:
            self.keys.sort()
            self.is_sorted = True
        return self.keys


def _progress_key(render_id: str) -> str:
    return f"renders/{render_id}/progress.json"


def _quoted_md5(data: bytes) -> str:
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def _progress_document(render: _Render, with_metadata: bool) -> bytes:
    """``renders/<id>/progress.json`` as Remotion's start and launch write it.

    Same keys and order as ``makeInitialOverallRenderProgress`` (serverless/src/
    overall-render-progress.ts). The real start handler writes ``renderMetadata: null``; the
    launch function fills it in once the composition is validated. There is no top-level
    ``renderId`` or ``startedDate``: they live in ``renderMetadata``, and the id is in the key.
    """
    started = render.started_epoch_ms
    validated = started + int(render.metadata_delay_s * 1000) if with_metadata else None
    return _dumps(
        {
            "cancellationEnabled": render.cancellation_enabled,
            "chunks": [],
            "framesRendered": 0,
            "framesEncoded": 0,
            "combinedFrames": 0,
            "timeToCombine": None,
            "timeToEncode": None,
            "lambdasInvoked": 0,
            "retries": [],
            "postRenderData": None,
            "timings": [],
            "renderMetadata": render.metadata if with_metadata else None,
            "errors": [],
            "fatalErrorTimestamp": None,
            "timeToRenderFrames": None,
            "timeoutTimestamp": started + int(render.timeout_s * 1000),
            "functionLaunched": started,
            "serveUrlOpened": validated,
            "compositionValidated": validated,
            "receivedArtifact": [],
        }
    )


def _output_object(key: str, writers: Sequence[_Render], now_mono: float) -> _S3Object | None:
    """The output at ``key``: written by the render that finished last, if any has."""
    latest: _Render | None = None
    latest_done_at = -math.inf
    for render in writers:
        done_at = render.started_mono + render.run_s
        if done_at >= latest_done_at and _evaluate(render, now_mono).done:
            latest, latest_done_at = render, done_at
    if latest is None:
        return None
    extension = key.rsplit(".", 1)[-1].lower() if "." in key else ""
    identity = f"{latest.render_id}/{key}/{latest.output_size}".encode()
    return _S3Object(
        key=key,
        body=b"",
        padding=latest.output_size,
        etag=_quoted_md5(identity),
        last_modified_ms=latest.started_epoch_ms + int(latest.run_s * 1000),
        content_type=_MEDIA_TYPES.get(extension, "application/octet-stream"),
    )


def _iso_ms(epoch_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_ms // 1000)) + (
        f".{epoch_ms % 1000:03d}Z"
    )


def _http_date(epoch_ms: int) -> str:
    return email.utils.formatdate(epoch_ms // 1000, usegmt=True)


def _successor(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < sys.maxunicode:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


def _encode_token(kind: str, marker: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}{marker}".encode()).decode()


def _decode_token(token: str) -> tuple[str, str] | None:
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii")).decode()
    except (ValueError, binascii.Error, UnicodeError):
        return None
    if not raw or raw[0] not in "kp":
        return None
    return raw[0], raw[1:]


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """Parse a single ``bytes=a-b`` / ``a-`` / ``-n`` range; ValueError if unsatisfiable."""
    spec = header.strip()
    if not spec.startswith("bytes=") or "," in spec:
        return None
    first, sep, last = spec[len("bytes=") :].partition("-")
    if not sep or not (first.isdigit() or last.isdigit()):
        return None
    if not first.isdigit():
        length = int(last)
        if length == 0 or size == 0:
            raise ValueError(header)
        return max(0, size - length), size - 1
    start = int(first)
    end = int(last) if last.isdigit() else size - 1
    if start >= size:
        raise ValueError(header)
    if end < start:
        return None
    return start, min(end, size - 1)


def _s3_result(
    status: int,
    body: bytes,
    *,
    content_type: str = "application/xml",
    headers: tuple[tuple[str, str], ...] = (),
    padding: int = 0,
) -> InvokeResult:
    request_id = secrets.token_hex(8).upper()
    return InvokeResult(
        status,
        body,
        (("x-amz-request-id", request_id), *headers),
        content_type,
        padding,
    )


def _s3_error(status: int, code: str, message: str, **details: str) -> InvokeResult:
    extra = "".join(f"<{name}>{_xml_escape(value)}</{name}>" for name, value in details.items())
    body = (
        f"{_XML_DECLARATION}<Error><Code>{code}</Code><Message>{_xml_escape(message)}</Message>"
        f"{extra}<HostId>lambda-emulator</HostId></Error>"
    )
    return _s3_result(status, body.encode())


def _no_such_bucket(bucket: str) -> InvokeResult:
    return _s3_error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)


def _s3_invalid_argument(message: str, name: str, value: str) -> InvokeResult:
    return _s3_error(400, "InvalidArgument", message, ArgumentName=name, ArgumentValue=value)


# --------------------------------------------------------------------------------------
# The emulated function
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Counters:
    start_calls: int = 0
    starts_total: int = 0
    status_calls: int = 0
    throttled_total: int = 0
    crashes_total: int = 0
    handled_errors_total: int = 0
    starts_by_out_name: dict[str, int] = field(default_factory=dict)
    start_times_by_out_name: dict[str, list[float]] = field(default_factory=dict)
    s3_calls: dict[str, int] = field(default_factory=dict)


class LambdaEmulator:
    """The emulated Remotion function: routines, render bookkeeping and fault injection.

    It is transport-free (``invoke`` takes bytes and returns an :class:`InvokeResult`) so
    that the HTTP layer stays a thin, fast shim. All shared state sits behind one lock;
    renders themselves are immutable, so status responses are built outside it.
    """

    def __init__(
        self,
        *,
        speed: float = DEFAULT_SPEED_FPS,
        region: str = "us-east-1",
        function_name: str | None = None,
        concurrency_limit: int | None = None,
        function_timeout_s: float = DEFAULT_FUNCTION_TIMEOUT_S,
        start_delay_ms: float = 0.0,
        status_delay_ms: float = 0.0,
        remotion_version: str = REMOTION_VERSION,
        timeout_grace_s: float = DEFAULT_TIMEOUT_GRACE_S,
    ) -> None:
        self.region = region
        self.function_name = function_name
        self.remotion_version = remotion_version
        self._initial = _Faults(
            speed=_positive("speed", speed),
            concurrency_limit=_optional_limit("concurrency_limit", concurrency_limit),
            function_timeout_s=_positive("function_timeout_s", function_timeout_s),
            timeout_grace_s=_non_negative("timeout_grace_s", timeout_grace_s),
            start_delay_ms=_non_negative("start_delay_ms", start_delay_ms),
            status_delay_ms=_non_negative("status_delay_ms", status_delay_ms),
        )
        self._default_bucket = f"remotionlambda-{region.replace('-', '')}-emulator"
        self._created_ms = int(time.time() * 1000)
        self._lock = threading.Lock()
        self._buckets = {self._default_bucket: _Bucket(self._created_ms)}
        # progress.json bodies (and ETags), built on first read rather than on every start.
        self._progress_bodies: dict[tuple[str, bool], tuple[bytes, str]] = {}
        self._faults = replace(self._initial)
        self._counters = _Counters()
        self._renders: dict[str, _Render] = {}
        # Min-heap of (release time, render id, functions) for renders still holding
        # concurrency; lets a start settle finished renders in O(log n).
        self._in_flight_heap: list[tuple[float, str, int]] = []
        self._in_flight_functions = 0
        self._peak_functions = 0

    # -- control API -------------------------------------------------------------------

    def configure(self, changes: Mapping[str, Any]) -> JSONDict:
        """Update the given fault/setting keys only; returns the full current configuration."""
        unknown = set(changes) - set(_FAULT_PARSERS)
        if unknown:
            raise ValueError(f"unknown fault keys {sorted(unknown)}")
        parsed = {key: _FAULT_PARSERS[key](key, value) for key, value in changes.items()}
        with self._lock:
            for key, value in parsed.items():
                setattr(self._faults, key, value)
            return self._faults.as_json()

    def faults(self) -> JSONDict:
        """The current fault configuration, as ``configure`` accepts it."""
        with self._lock:
            return self._faults.as_json()

    def reset(self) -> None:
        """Forget every render, counter and fault; settings go back to the constructor's."""
        with self._lock:
            self._faults = replace(self._initial)
            self._counters = _Counters()
            self._renders.clear()
            self._buckets = {self._default_bucket: _Bucket(self._created_ms)}
            self._progress_bodies.clear()
            self._in_flight_heap.clear()
            self._in_flight_functions = 0
            self._peak_functions = 0

    def reset_peak(self) -> JSONDict:
        """Restart peak tracking from the current in-flight level (e.g. between bench phases)."""
        with self._lock:
            self._settle(time.monotonic())
            self._peak_functions = self._in_flight_functions
            return {"peak_concurrent_functions": self._peak_functions}

    def stats(self) -> JSONDict:
        """Counters a test or benchmark asserts on (see the module's control API)."""
        now = time.monotonic()
        with self._lock:
            self._settle(now)
            counters = self._counters
            out: JSONDict = {
                "starts_total": counters.starts_total,
                "start_calls": counters.start_calls,
                "starts_by_out_name": dict(counters.starts_by_out_name),
                "start_times_by_out_name": {
                    k: list(v) for k, v in counters.start_times_by_out_name.items()
                },
                "status_calls": counters.status_calls,
                "throttled_total": counters.throttled_total,
                "crashes_total": counters.crashes_total,
                "handled_errors_total": counters.handled_errors_total,
                "s3_calls": dict(counters.s3_calls),
                "concurrent_functions": self._in_flight_functions,
                "peak_concurrent_functions": self._peak_functions,
                "renders_in_flight": len(self._in_flight_heap),
            }
            renders = list(self._renders.values())
        summary: JSONDict = {}
        for render in renders:
            state = _evaluate(render, now)
            summary[render.render_id] = {
                "out_name": render.out_name_label,
                "composition": render.plan.composition,
                "frames": render.plan.frames,
                "functions": render.plan.functions,
                "started_at": render.started_epoch_ms / 1000,
                "done": state.done,
                "fatal": state.fatal_error_encountered,
            }
        out["renders"] = summary
        return out

    # -- Invoke ------------------------------------------------------------------------

    def invoke(
        self, function_ref: str, body: bytes, invocation_type: str = "RequestResponse"
    ) -> InvokeResult:
        """Handle one Lambda Invoke call the way the deployed Remotion function would."""
        name = _function_name_from_ref(function_ref)
        if self.function_name is not None and name != self.function_name:
            arn = f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{name}"
            return _api_error(
                404,
                "ResourceNotFoundException",
                {"Type": "User", "Message": f"Function not found: {arn}"},
            )
        if invocation_type == "DryRun":
            return InvokeResult(204, b"", _EXECUTED_VERSION)
        try:
            payload = json.loads(body) if body else {}
        except ValueError as exc:
            return _api_error(
                400,
                "InvalidRequestContentException",
                {"Type": "User", "message": f"Could not parse request body into json: {exc}"},
            )
        if not isinstance(payload, dict):
            return self._count_handled(_handled_error("Expected the payload to be an object"))
        routine = payload.get("type")
        if routine == "start":
            result = self._start(name, payload)
        elif routine == "status":
            result = self._status(name, payload)
        elif routine == "info":
            result = _success({"type": "success", "version": self.remotion_version})
        else:
            result = self._count_handled(
                _handled_error(f"The lambda emulator does not support the routine {routine!r}")
            )
        if invocation_type == "Event" and result.status == 200:
            return InvokeResult(202, b"")
        return result

    # -- routines ----------------------------------------------------------------------

    def _check_version(self, function_name: str, payload: Mapping[str, Any], api: str) -> None:
        # Same wording as serverless/src/handlers/check-version-mismatch.ts.
        version = payload.get("version")
        if version == self.remotion_version:
            return
        if not version:
            raise _HandledError(
                f"Version mismatch: When calling {api}, you called the function "
                f"{function_name} which has the version {self.remotion_version} but the "
                "@remotion/lambda package is an older version. Deploy a new function and use "
                f"it to call {api}. See: https://www.remotion.dev/docs/lambda/upgrading"
            )
        raise _HandledError(
            f"Version mismatch: When calling {api}, you passed {function_name} as the "
            f"function, which has the version {self.remotion_version}, but the "
            f"@remotion/lambda package you used to invoke the function has version {version}. "
            f"Deploy a new function and use it to call {api}. "
            "See: https://www.remotion.dev/docs/lambda/upgrading"
        )

    def _count_handled(self, result: InvokeResult) -> InvokeResult:
        with self._lock:
            self._counters.handled_errors_total += 1
        return result

    def _start(self, function_name: str, payload: JSONDict) -> InvokeResult:
        with self._lock:
            self._counters.start_calls += 1
            delay_ms = self._faults.start_delay_ms
        if delay_ms:
            time.sleep(delay_ms / 1000)
        with self._lock:
            faults = self._faults
            # Throttling happens in the Lambda service, before the function runs.
            if faults.throttle_starts:
                faults.throttle_starts -= 1
                self._counters.throttled_total += 1
                return _throttled()
            if faults.crash_starts:
                faults.crash_starts -= 1
                self._counters.crashes_total += 1
                return _unhandled_error("Emulated unhandled crash in start (crash_starts)")
            settings = replace(faults)
        try:
            self._check_version(function_name, payload, "renderMediaOnLambda()")
            plan = self._plan(payload, settings.rules)
        except _HandledError as exc:
            return self._count_handled(_handled_error(str(exc)))
        if plan.directive.crash_start:
            with self._lock:
                self._counters.crashes_total += 1
            return _unhandled_error(plan.directive.crash_start)
        if plan.directive.reject_start:
            return self._count_handled(_handled_error(plan.directive.reject_start))

        speed = plan.directive.speed or settings.speed
        with self._lock:
            now = time.monotonic()
            self._settle(now)
            # Checked against the *current* limit, which a concurrent configure may change.
            limit = self._faults.concurrency_limit
            if limit is not None and self._in_flight_functions + plan.functions > limit:
                self._counters.throttled_total += 1
                return _throttled()
            render = self._materialize(
                function_name, payload, plan, speed, settings, now, self._new_render_id(payload)
            )
            self._renders[render.render_id] = render
            self._bucket(render.bucket, render.started_epoch_ms).add_progress(
                _progress_key(render.render_id), render
            )
            self._bucket(render.out_bucket, render.started_epoch_ms).add_output(
                render.out_key, render
            )
            heapq.heappush(
                self._in_flight_heap,
                (now + render.release_after_s, render.render_id, plan.functions),
            )
            self._in_flight_functions += plan.functions
            self._peak_functions = max(self._peak_functions, self._in_flight_functions)
            counters = self._counters
            counters.starts_total += 1
            label = render.out_name_label
            counters.starts_by_out_name[label] = counters.starts_by_out_name.get(label, 0) + 1
            counters.start_times_by_out_name.setdefault(label, []).append(
                render.started_epoch_ms / 1000
            )
        return _success(
            {"type": "success", "bucketName": render.bucket, "renderId": render.render_id}
        )

    def _status(self, function_name: str, payload: JSONDict) -> InvokeResult:
        with self._lock:
            self._counters.status_calls += 1
            delay_ms = self._faults.status_delay_ms
        if delay_ms:
            time.sleep(delay_ms / 1000)
        render_id = payload.get("renderId")
        bucket = payload.get("bucketName")
        with self._lock:
            faults = self._faults
            if faults.throttle_status:
                faults.throttle_status -= 1
                self._counters.throttled_total += 1
                return _throttled()
            if faults.crash_status:
                faults.crash_status -= 1
                self._counters.crashes_total += 1
                return _unhandled_error("Emulated unhandled crash in status (crash_status)")
            if faults.fail_status:
                faults.fail_status -= 1
                self._counters.handled_errors_total += 1
                return _handled_error("Emulated handled error in status (fail_status)")
            render = self._renders.get(render_id) if isinstance(render_id, str) else None
        try:
            self._check_version(function_name, payload, "getRenderProgress()")
        except _HandledError as exc:
            return self._count_handled(_handled_error(str(exc)))
        if render is None or render.bucket != bucket:
            return self._count_handled(
                _handled_error(
                    f'No render with ID "{render_id}" found in bucket {bucket} '
                    f"and region {self.region}"
                )
            )
        return _success(self._progress(render, time.monotonic()))

    # -- render planning ---------------------------------------------------------------

    def _plan(self, payload: Mapping[str, Any], rules: Sequence[_Rule]) -> _Plan:
        composition = payload.get("composition")
        if not isinstance(composition, str) or not composition:
            raise _HandledError(
                f"'composition' must be a non-empty string, but got {json.dumps(composition)}"
            )
        serve_url = payload.get("serveUrl")
        if not isinstance(serve_url, str) or not serve_url:
            raise _HandledError(
                f"'serveUrl' must be a non-empty string, but got {json.dumps(serve_url)}"
            )
        bucket = payload.get("bucketName") or self._default_bucket
        if not isinstance(bucket, str):
            raise _HandledError(f"'bucketName' must be a string, but got {json.dumps(bucket)}")
        duration = _positive_int_or(payload, "forceDurationInFrames", DEFAULT_DURATION_IN_FRAMES)
        first, last = _frame_range(payload, duration)
        every_nth = _positive_int_or(payload, "everyNthFrame", 1)
        frames = math.ceil((last - first + 1) / every_nth)
        frames_per_lambda = _resolve_frames_per_lambda(payload, frames)
        chunks = math.ceil(frames / frames_per_lambda)
        if chunks > MAX_FUNCTIONS_PER_RENDER:
            raise _HandledError(
                f"Too many functions: This render would cause {chunks} functions to spawn. "
                f"We limit this amount to {MAX_FUNCTIONS_PER_RENDER} functions as more would "
                f"result in diminishing returns. Values set: frameCount = {frames}, "
                f"framesPerLambda={frames_per_lambda}. See "
                "https://www.remotion.dev/docs/lambda/concurrency#too-many-functions for help."
            )
        directive = _Directive()
        for rule in rules:
            if rule.composition == composition:
                directive = directive.overlay(rule.directive)
        props = _decode_input_props(payload.get("inputProps"))
        if isinstance(props, dict) and "__emulator__" in props:
            raw = props["__emulator__"]
            try:
                if not isinstance(raw, dict):
                    raise ValueError("__emulator__ must be an object")
                directive = directive.overlay(_parse_directive(raw, "__emulator__"))
            except ValueError as exc:
                raise _HandledError(f"Invalid emulator directive in inputProps: {exc}") from exc
        codec = payload.get("codec")
        return _Plan(
            composition=composition,
            codec=codec if isinstance(codec, str) else "h264",
            frames=frames,
            fps=_positive_int_or(payload, "forceFps", DEFAULT_FPS),
            width=_positive_int_or(payload, "forceWidth", DEFAULT_WIDTH),
            height=_positive_int_or(payload, "forceHeight", DEFAULT_HEIGHT),
            frame_range=(first, last),
            frames_per_lambda=frames_per_lambda,
            chunks=chunks,
            out_name=payload.get("outName"),
            bucket=bucket,
            directive=directive,
        )

    def _new_render_id(self, payload: Mapping[str, Any]) -> str:
        # Remotion: [deleteAfter, randomHash()].filter(truthy).join('-').
        alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
        delete_after = payload.get("deleteAfter")
        while True:
            random_hash = "".join(secrets.choice(alphabet) for _ in range(10))
            render_id = f"{delete_after}-{random_hash}" if delete_after else random_hash
            if render_id not in self._renders:
                return render_id

    def _materialize(
        self,
        function_name: str,
        payload: Mapping[str, Any],
        plan: _Plan,
        speed: float,
        settings: _Faults,
        now_mono: float,
        render_id: str,
    ) -> _Render:
        run_s = plan.frames / speed
        timeout_s = settings.function_timeout_s
        directive = plan.directive
        # A render whose orchestrator is killed by the function timeout never completes,
        # exactly like the real thing; never_finish forces that regardless of speed.
        fatal_fraction = (
            directive.fatal_at
            if directive.fatal_at is not None and directive.fatal_at * run_s <= timeout_s
            else None
        )
        stall_fraction: float | None = None
        if directive.never_finish:
            stall_fraction = min(NEVER_FINISH_STALL_AT, timeout_s / run_s)
        elif run_s > timeout_s:
            stall_fraction = timeout_s / run_s
        if fatal_fraction is not None:
            release_after_s = fatal_fraction * run_s
        elif stall_fraction is None:
            release_after_s = run_s
        else:
            release_after_s = timeout_s

        extension = _CODEC_EXTENSIONS.get(plan.codec, "mp4")
        out_name = plan.out_name
        out_bucket = plan.bucket
        if isinstance(out_name, dict) and isinstance(out_name.get("key"), str):
            out_key = str(out_name["key"])
            if isinstance(out_name.get("bucketName"), str):
                out_bucket = str(out_name["bucketName"])
        else:
            out_key = f"renders/{render_id}/{_out_name_label(out_name, extension)}"
        started_epoch_ms = int(time.time() * 1000)
        serve_url = str(payload.get("serveUrl"))
        metadata: JSONDict = {
            "type": "video",
            "siteId": _site_id(serve_url),
            "startedDate": started_epoch_ms,
            "totalChunks": plan.chunks,
            "estimatedTotalLambdaInvokations": plan.functions,
            "estimatedRenderLambdaInvokations": plan.chunks,
            "compositionId": plan.composition,
            "codec": plan.codec,
            "audioCodec": payload.get("audioCodec"),
            "imageFormat": payload.get("imageFormat", "jpeg"),
            "inputProps": payload.get("inputProps"),
            "framesPerLambda": plan.frames_per_lambda,
            "memorySizeInMb": MEMORY_SIZE_MB,
            "functionName": function_name,
            "rendererFunctionName": payload.get("rendererFunctionName") or function_name,
            "lambdaVersion": self.remotion_version,
            "region": self.region,
            "renderId": render_id,
            "outName": out_name,
            "privacy": payload.get("privacy", "public"),
            "deleteAfter": payload.get("deleteAfter"),
            "numberOfGifLoops": payload.get("numberOfGifLoops"),
            "audioBitrate": payload.get("audioBitrate"),
            "downloadBehavior": payload.get("downloadBehavior"),
            "metadata": payload.get("metadata"),
            "dimensions": {"width": plan.width, "height": plan.height},
            "scale": payload.get("scale", 1),
            "muted": bool(payload.get("muted", False)),
            "frameRange": list(plan.frame_range),
            "everyNthFrame": payload.get("everyNthFrame") or 1,
        }
        return _Render(
            render_id=render_id,
            bucket=plan.bucket,
            plan=plan,
            out_name_label=_out_name_label(out_name, extension),
            out_key=out_key,
            out_bucket=out_bucket,
            output_url=f"https://s3.{self.region}.amazonaws.com/{out_bucket}/{out_key}",
            output_size=_output_size(plan),
            started_epoch_ms=started_epoch_ms,
            started_mono=now_mono,
            run_s=run_s,
            timeout_s=timeout_s,
            grace_s=settings.timeout_grace_s,
            fatal_fraction=fatal_fraction,
            fatal_message=directive.message or DEFAULT_FATAL_MESSAGE,
            stall_fraction=stall_fraction,
            release_after_s=release_after_s,
            metadata=metadata,
            expensive_ranges=_most_expensive_frame_ranges(plan, run_s),
            metadata_delay_s=settings.progress_metadata_delay_ms / 1000,
            cancellation_enabled=payload.get("enableCancellation") is True,
        )

    def _settle(self, now_mono: float) -> None:
        """Release the concurrency of renders that finished, failed or timed out (lock held)."""
        heap = self._in_flight_heap
        while heap and heap[0][0] <= now_mono:
            _, _, functions = heapq.heappop(heap)
            self._in_flight_functions -= functions

    # -- S3 ----------------------------------------------------------------------------

    def _bucket(self, name: str, created_ms: int) -> _Bucket:
        """The bucket called ``name``, created on first use (lock held)."""
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket(created_ms)
        return bucket

    def _s3_object(self, bucket: _Bucket, key: str, now_mono: float) -> _S3Object | None:
        """What a read of ``key`` sees at ``now_mono`` (lock held)."""
        render = bucket.progress.get(key)
        if render is not None:
            with_metadata = now_mono - render.started_mono >= render.metadata_delay_s
            cached = self._progress_bodies.get((render.render_id, with_metadata))
            if cached is None:
                body = _progress_document(render, with_metadata)
                cached = self._progress_bodies[(render.render_id, with_metadata)] = (
                    body,
                    _quoted_md5(body),
                )
            written_ms = render.started_epoch_ms
            if with_metadata:
                written_ms += int(render.metadata_delay_s * 1000)
            return _S3Object(key, cached[0], 0, cached[1], written_ms, "application/json")
        writers = bucket.outputs.get(key)
        return None if writers is None else _output_object(key, writers, now_mono)

    def s3(
        self, method: str, path: str, query: str = "", range_header: str | None = None
    ) -> InvokeResult:
        """Serve one path-style S3 request (the read-only subset described in the module)."""
        bucket_name, _, raw_key = path[1:].partition("/")
        bucket_name, key = unquote(bucket_name), unquote(raw_key)
        params = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        if method not in ("GET", "HEAD"):
            operation = "Unsupported"
        elif not bucket_name:
            operation = "ListBuckets"
        elif key:
            operation = "GetObject" if method == "GET" else "HeadObject"
        elif "location" in params:
            operation = "GetBucketLocation"
        elif method == "HEAD":
            operation = "HeadBucket"
        elif params.get("list-type") == "2":
            operation = "ListObjectsV2"
        else:
            operation = "Unsupported"
        with self._lock:
            calls = self._counters.s3_calls
            calls[operation] = calls.get(operation, 0) + 1
        if operation == "ListBuckets":
            return self._list_buckets()
        if operation in ("GetObject", "HeadObject"):
            return self._get_object(bucket_name, key, range_header if method == "GET" else None)
        if operation == "ListObjectsV2":
            return self._list_objects_v2(bucket_name, params)
        with self._lock:
            known = bucket_name in self._buckets
        if operation == "Unsupported":
            return _s3_error(
                501,
                "NotImplemented",
                f"The lambda emulator does not implement {method} {path}"
                + (f"?{query}" if query else ""),
            )
        if not known:
            return _no_such_bucket(bucket_name)
        if operation == "HeadBucket":
            return _s3_result(200, b"", headers=(("x-amz-bucket-region", self.region),))
        location = "" if self.region == "us-east-1" else self.region
        return _s3_result(
            200,
            f'{_XML_DECLARATION}<LocationConstraint xmlns="{_S3_XMLNS}">{location}'
            "</LocationConstraint>".encode(),
        )

    def _list_buckets(self) -> InvokeResult:
        with self._lock:
            buckets = sorted((name, bucket.created_ms) for name, bucket in self._buckets.items())
        entries = "".join(
            f"<Bucket><Name>{_xml_escape(name)}</Name><CreationDate>{_iso_ms(created)}"
            f"</CreationDate><BucketRegion>{self.region}</BucketRegion></Bucket>"
            for name, created in buckets
        )
        body = (
            f'{_XML_DECLARATION}<ListAllMyBucketsResult xmlns="{_S3_XMLNS}"><Owner>'
            f"<ID>{_S3_OWNER_ID}</ID><DisplayName>emulator</DisplayName></Owner>"
            f"<Buckets>{entries}</Buckets></ListAllMyBucketsResult>"
        )
        return _s3_result(200, body.encode())

    def _get_object(self, bucket_name: str, key: str, range_header: str | None) -> InvokeResult:
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(bucket_name)
            found = None if bucket is None else self._s3_object(bucket, key, now)
        if bucket is None:
            return _no_such_bucket(bucket_name)
        if found is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
        headers: tuple[tuple[str, str], ...] = (
            ("ETag", found.etag),
            ("Last-Modified", _http_date(found.last_modified_ms)),
            ("Accept-Ranges", "bytes"),
        )
        body, padding, status = found.body, found.padding, 200
        if range_header:
            try:
                span = _byte_range(range_header, found.size)
            except ValueError:
                return _s3_error(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable",
                    RangeRequested=range_header,
                    ActualObjectSize=str(found.size),
                )
            if span is not None:
                first, last = span
                status = 206
                body = found.body[first : last + 1]
                padding = last + 1 - max(first, len(found.body)) if padding else 0
                headers += (("Content-Range", f"bytes {first}-{last}/{found.size}"),)
        return _s3_result(
            status, body, content_type=found.content_type, headers=headers, padding=padding
        )

    def _list_objects_v2(self, bucket_name: str, params: Mapping[str, str]) -> InvokeResult:
        prefix = params.get("prefix", "")
        delimiter = params.get("delimiter", "")
        start_after = params.get("start-after", "")
        token = params.get("continuation-token")
        url_encode = params.get("encoding-type") == "url"
        raw_max_keys = params.get("max-keys", str(S3_MAX_KEYS))
        try:
            max_keys = int(raw_max_keys)
            if max_keys < 0:
                raise ValueError(raw_max_keys)
        except ValueError:
            return _s3_invalid_argument(
                "Provided max-keys not an integer or within integer range",
                "max-keys",
                raw_max_keys,
            )
        max_keys = min(max_keys, S3_MAX_KEYS)
        resume = None
        if token is not None:
            resume = _decode_token(token)
            if resume is None:
                return _s3_invalid_argument(
                    "The continuation token provided is incorrect", "continuation-token", token
                )

        contents: list[_S3Object] = []
        common_prefixes: list[str] = []
        last: tuple[str, str] | None = None
        truncated = False
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(bucket_name)
            if bucket is not None:
                keys = bucket.sorted_keys()
                if resume is not None and resume[0] == "p":
                    bound = _successor(resume[1])
                    index = len(keys) if bound is None else bisect.bisect_left(keys, bound)
                elif resume is not None:
                    index = bisect.bisect_right(keys, resume[1])
                else:
                    index = bisect.bisect_right(keys, start_after) if start_after else 0
                index = max(index, bisect.bisect_left(keys, prefix))
                while index < len(keys):
                    key = keys[index]
                    if not key.startswith(prefix):
                        break
                    found = self._s3_object(bucket, key, now)
                    if found is None:
                        index += 1
                        continue
                    if len(contents) + len(common_prefixes) >= max_keys:
                        truncated = max_keys > 0
                        break
                    cut = key.find(delimiter, len(prefix)) if delimiter else -1
                    if cut < 0:
                        contents.append(found)
                        last = ("k", key)
                        index += 1
                        continue
                    common = key[: cut + len(delimiter)]
                    common_prefixes.append(common)
                    last = ("p", common)
                    bound = _successor(common)
                    index = len(keys) if bound is None else bisect.bisect_left(keys, bound, index)
        if bucket is None:
            return _no_such_bucket(bucket_name)

        def text(value: str) -> str:
            return quote(value, safe="/") if url_encode else _xml_escape(value)

        parts = [
            f'{_XML_DECLARATION}<ListBucketResult xmlns="{_S3_XMLNS}">',
            f"<Name>{_xml_escape(bucket_name)}</Name><Prefix>{text(prefix)}</Prefix>",
        ]
        if token is not None:
            parts.append(f"<ContinuationToken>{_xml_escape(token)}</ContinuationToken>")
        if truncated and last is not None:
            parts.append(f"<NextContinuationToken>{_encode_token(*last)}</NextContinuationToken>")
        parts.append(
            f"<KeyCount>{len(contents) + len(common_prefixes)}</KeyCount>"
            f"<MaxKeys>{max_keys}</MaxKeys>"
        )
        if delimiter:
            parts.append(f"<Delimiter>{text(delimiter)}</Delimiter>")
        parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
        if start_after:
            parts.append(f"<StartAfter>{text(start_after)}</StartAfter>")
        parts.extend(
            f"<Contents><Key>{text(found.key)}</Key>"
            f"<LastModified>{_iso_ms(found.last_modified_ms)}</LastModified>"
            f"<ETag>{_xml_escape(found.etag)}</ETag><Size>{found.size}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
            for found in contents
        )
        parts.extend(
            f"<CommonPrefixes><Prefix>{text(common)}</Prefix></CommonPrefixes>"
            for common in common_prefixes
        )
        if url_encode:
            parts.append("<EncodingType>url</EncodingType>")
        parts.append("</ListBucketResult>")
        return _s3_result(200, "".join(parts).encode())

    # -- status body -------------------------------------------------------------------

    def _progress(self, render: _Render, now_mono: float) -> JSONDict:
        """Build a GenericRenderProgress (protocol note §2.4) for ``render`` at ``now_mono``."""
        plan = render.plan
        state = _evaluate(render, now_mono)
        f = state.fraction
        run_ms = render.run_s * 1000
        started = render.started_epoch_ms

        if state.done:
            frames_rendered = combined = plan.frames
            chunks_done = lambdas_invoked = plan.chunks
        else:
            frame_share = (f - _INVOKED_AT) / (_FRAMES_DONE_AT - _INVOKED_AT)
            frames_rendered = int(plan.frames * _clamp01(frame_share))
            combined = int(plan.frames * _clamp01((f - _FRAMES_DONE_AT) / (1 - _FRAMES_DONE_AT)))
            chunks_done = (
                plan.chunks
                if frames_rendered >= plan.frames
                else frames_rendered // plan.frames_per_lambda
            )
            invoke_share = _clamp01((f - _EVALUATED_AT) / (_INVOKED_AT - _EVALUATED_AT))
            lambdas_invoked = math.ceil(plan.chunks * invoke_share)

        # Billing: the orchestrator runs the whole time, renderers during the frame phase;
        # everything stops when the render ends, fails or is killed by the timeout.
        billed_s = min(state.elapsed_s, render.release_after_s)
        renderer_s = min(
            max(0.0, billed_s - _INVOKED_AT * render.run_s),
            (_FRAMES_DONE_AT - _INVOKED_AT) * render.run_s,
        )
        billing_ms = int((billed_s + plan.chunks * renderer_s) * 1000)
        accrued = (
            billing_ms / 1000 * (MEMORY_SIZE_MB / 1024) * PRICE_PER_GB_SECOND
            + (1 + lambdas_invoked) * PRICE_PER_INVOCATION
        )

        errors: list[JSONDict] = []
        if state.timed_out:
            errors.append(self._timeout_error(render, chunks_done))
        if state.fatal:
            errors.append(self._fatal_error(render, f))

        def reached(share: float) -> int | None:
            return started + int(share * run_ms) if f >= share else None

        return {
            "type": "success",
            "renderId": render.render_id,
            "bucket": render.bucket,
            "overallProgress": f,
            "done": state.done,
            "chunks": chunks_done,
            "framesRendered": frames_rendered,
            "framesUploaded": None,
            "lambdasInvoked": lambdas_invoked,
            "encodingStatus": {
                "framesEncoded": frames_rendered,
                "combinedFrames": combined,
                "timeToCombine": int(0.15 * run_ms) if state.done else None,
            },
            "costs": _costs(accrued),
            "renderMetadata": render.metadata,
            "outputFile": render.output_url if state.done else None,
            "outKey": render.out_key if state.done else None,
            "outBucket": render.out_bucket if state.done else None,
            "outputSizeInBytes": render.output_size if state.done else None,
            "separateAudio": None,
            "outputSequence": None,
            "timeToFinish": int(run_ms) if state.done else None,
            "timeToFinishChunks": int(0.75 * run_ms) if state.done else None,
            "timeToRenderFrames": (
                int((_FRAMES_DONE_AT - _INVOKED_AT) * run_ms) if f >= _FRAMES_DONE_AT else None
            ),
            "timeToEncode": int(0.8 * run_ms) if state.done else None,
            "timeToCombine": int(0.15 * run_ms) if state.done else None,
            "combinedFrames": combined,
            "errors": errors,
            "fatalErrorEncountered": state.fatal_error_encountered,
            "currentTime": int(time.time() * 1000),
            "renderSize": render.output_size if state.done else 0,
            "cleanup": {
                "doneIn": int(0.02 * run_ms) if state.done else None,
                "minFilesToDelete": plan.chunks if state.done else 0,
                "filesDeleted": plan.chunks if state.done else 0,
            },
            "retriesInfo": [],
            "mostExpensiveFrameRanges": render.expensive_ranges if state.done else None,
            "estimatedBillingDurationInMilliseconds": billing_ms,
            "timeoutTimestamp": started + int(render.timeout_s * 1000),
            "functionLaunched": started,
            "serveUrlOpened": reached(_SERVE_URL_OPENED_AT),
            "compositionValidated": reached(_COMPOSITION_VALIDATED_AT),
            "artifacts": [],
        }

    def _fatal_error(self, render: _Render, fraction: float) -> JSONDict:
        plan = render.plan
        frame = min(plan.frames - 1, int(fraction * plan.frames))
        chunk = frame // plan.frames_per_lambda
        message = render.fatal_message
        return {
            "type": "renderer",
            "message": message,
            "name": "Error",
            "stack": f"Error: {message}\n    at renderer (lambda-emulator)",
            "frame": frame,
            "chunk": chunk,
            "isFatal": True,
            "attempt": 1,
            "willRetry": False,
            "totalAttempts": 1,
            "tmpDir": None,
            "s3Location": f"renders/{render.render_id}/errors/chunk-{chunk}.txt",
            "explanation": None,
        }

    def _timeout_error(self, render: _Render, chunks_done: int) -> JSONDict:
        # Same shape and opening as serverless-client/src/make-timeout-error.ts.
        plan = render.plan
        missing = list(range(chunks_done, plan.chunks))
        lines = [f"The main function timed out after {int(render.timeout_s * 1000)}ms."]
        if missing:
            shown = missing[:5]
            lines.append(
                f"The following chunks are missing (showing {len(shown)} out of {len(missing)}):"
            )
            for chunk in shown:
                first = plan.frame_range[0] + chunk * plan.frames_per_lambda
                last = min(first + plan.frames_per_lambda - 1, plan.frame_range[1])
                lines.append(f"Chunk {chunk} (Frames {first} - {last})")
        else:
            lines.append(
                "All chunks have been successfully rendered, but the main function has timed out."
            )
        lines += ["", "Consider increasing the timeout of your function."]
        message = "\n".join(lines)
        return {
            "type": "stitcher",
            "message": message,
            "name": "TimeoutError",
            "stack": f"TimeoutError: {message}\n    at getProgress (lambda-emulator)",
            "frame": None,
            "chunk": None,
            "isFatal": True,
            "attempt": 1,
            "willRetry": False,
            "totalAttempts": 1,
            "tmpDir": None,
            "s3Location": "",
            "explanation": None,
        }


# --------------------------------------------------------------------------------------
# Control API
# --------------------------------------------------------------------------------------


def _control_response(status: int, body: JSONDict) -> InvokeResult:
    return InvokeResult(status, _dumps(body))


def handle_control(emulator: LambdaEmulator, method: str, path: str, body: bytes) -> InvokeResult:
    """Serve ``/_emulator/*``: the knobs tests and benchmarks turn (see module docs)."""
    route = (method, path.rstrip("/"))
    if route == ("GET", "/_emulator/stats"):
        return _control_response(200, emulator.stats())
    if route == ("POST", "/_emulator/stats/reset-peak"):
        return _control_response(200, emulator.reset_peak())
    if route == ("POST", "/_emulator/reset"):
        emulator.reset()
        return _control_response(200, {"ok": True})
    if route == ("GET", "/_emulator/faults"):
        return _control_response(200, emulator.faults())
    if route == ("GET", "/_emulator/health"):
        return _control_response(200, {"ok": True})
    if route == ("POST", "/_emulator/faults"):
        try:
            changes = json.loads(body) if body else {}
            if not isinstance(changes, dict):
                raise ValueError("body must be a JSON object")
            return _control_response(200, emulator.configure(changes))
        except ValueError as exc:
            return _control_response(400, {"error": str(exc)})
    return _control_response(404, {"error": f"no control endpoint {method} {path}"})


# --------------------------------------------------------------------------------------
# HTTP transport
# --------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler that writes each response with a single send.

    http.server's usual send_response/end_headers/write sequence sends headers and body
    separately; with Nagle and delayed ACKs every keep-alive request then stalls ~40 ms.
    Building one buffer (and TCP_NODELAY as a belt and braces) keeps a call ~1 ms.
    """

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        emulator = self.server.emulator
        try:
            body = self._read_body()
            path, _, query = self.path.partition("?")
            if path.startswith(_INVOKE_PREFIX):
                if method == "POST" and path.endswith(_INVOKE_SUFFIX):
                    function_ref = unquote(path[len(_INVOKE_PREFIX) : -len(_INVOKE_SUFFIX)])
                    invocation_type = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
                    result = emulator.invoke(function_ref, body, invocation_type)
                else:
                    result = _api_error(
                        404,
                        "UnknownOperationException",
                        {"Type": "User", "message": "Unknown path"},
                    )
            elif path.startswith(_CONTROL_PREFIX):
                result = handle_control(emulator, method, path, body)
            else:
                result = emulator.s3(method, path, query, self.headers.get("Range"))
        except Exception as exc:  # a server must answer rather than drop the connection
            self.close_connection = True
            result = _api_error(500, "ServiceException", {"Type": "Service", "Message": repr(exc)})
        self._send(result, with_body=method != "HEAD")
        if self.server.verbose:
            self.log_message('"%s %s" %d', method, self.path, result.status)

    def _send(self, result: InvokeResult, *, with_body: bool = True) -> None:
        lines = [
            f"HTTP/1.1 {result.status} {HTTPStatus(result.status).phrase}",
            f"Content-Type: {result.content_type}",
            f"Content-Length: {len(result.body) + result.padding}",
            f"x-amzn-RequestId: {uuid.uuid4()}",
        ]
        lines += [f"{name}: {value}" for name, value in result.headers]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if not with_body:  # HEAD: the headers describe the body that GET would send
            self.wfile.write(head)
            return
        self.wfile.write(head + result.body)
        remaining = result.padding
        while remaining:
            chunk = min(remaining, len(_ZEROS))
            self.wfile.write(memoryview(_ZEROS)[:chunk])
            remaining -= chunk

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], emulator: LambdaEmulator, verbose: bool) -> None:
        self.emulator = emulator
        self.verbose = verbose
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        """Hang up idle keep-alive connections, whose threads would otherwise outlive stop()."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-request are routine (benchmarks, killed workers).
        if isinstance(sys.exc_info()[1], ConnectionError) and not self.verbose:
            return
        super().handle_error(request, client_address)


def control(base_url: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
    """Call the emulator's control API (``/_emulator/...``): GET without a body, POST with one.

    For tests, the demo and the benchmark, which drive faults and read counters.
    """
    import urllib.request

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base_url.rstrip("/") + path, data=data, method="GET" if body is None else "POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        raw = response.read()
    return json.loads(raw) if raw else None


class EmulatorServer:
    """Run the emulator on a real socket, in a daemon thread, for in-process tests.

    Keyword options are those of :class:`LambdaEmulator` (and of the CLI). ``port=0`` picks
    a free port; read it back from :attr:`url` after :meth:`start`.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        speed: float = DEFAULT_SPEED_FPS,
        region: str = "us-east-1",
        function_name: str | None = None,
        concurrency_limit: int | None = None,
        function_timeout_s: float = DEFAULT_FUNCTION_TIMEOUT_S,
        start_delay_ms: float = 0.0,
        status_delay_ms: float = 0.0,
        remotion_version: str = REMOTION_VERSION,
        timeout_grace_s: float = DEFAULT_TIMEOUT_GRACE_S,
        verbose: bool = False,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.verbose = verbose
        self.emulator = LambdaEmulator(
            speed=speed,
            region=region,
            function_name=function_name,
            concurrency_limit=concurrency_limit,
            function_timeout_s=function_timeout_s,
            start_delay_ms=start_delay_ms,
            status_delay_ms=status_delay_ms,
            remotion_version=remotion_version,
            timeout_grace_s=timeout_grace_s,
        )
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        if self._httpd is None:
            raise RuntimeError("EmulatorServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL for ``endpoint_url`` / ``AWS_ENDPOINT_URL_LAMBDA``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Bind and serve in a daemon thread; returns self so it can be chained."""
        if self._httpd is not None:
            raise RuntimeError("EmulatorServer is already started")
        self._httpd = _Server((self.host, self._requested_port), self.emulator, self.verbose)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="lambda-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting, hang up open connections and release the port. Idempotent."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._httpd = self._thread = None
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


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


if __name__ == "__main__":
    sys.exit(main())
