"""The emulated Remotion function: :class:`LambdaEmulator`.

Here are its constructor (which sets the state declared in :mod:`devtools.emulator.state`),
the control-API methods (configure, faults, reset, stats), the Lambda Invoke entry point
and the start and status routines, with the concurrency bookkeeping. Render planning and
S3 requests come from mixins in :mod:`devtools.emulator.plan` and
:mod:`devtools.emulator.s3_requests`; the status body from :mod:`devtools.emulator.progress`.
"""

from __future__ import annotations

import heapq
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from devtools.emulator.constants import (
    ACCOUNT_ID,
    DEFAULT_FUNCTION_TIMEOUT_S,
    DEFAULT_SPEED_FPS,
    DEFAULT_TIMEOUT_GRACE_S,
    REMOTION_VERSION,
    JSONDict,
)
from devtools.emulator.faults import (
    _FAULT_PARSERS,
    _Faults,
    _non_negative,
    _optional_limit,
    _positive,
)
from devtools.emulator.plan import _Planning
from devtools.emulator.progress import _progress
from devtools.emulator.renders import _evaluate, _Render
from devtools.emulator.responses import (
    _EXECUTED_VERSION,
    InvokeResult,
    _api_error,
    _handled_error,
    _HandledError,
    _success,
    _throttled,
    _unhandled_error,
)
from devtools.emulator.s3 import _Bucket, _progress_key
from devtools.emulator.s3_requests import _S3Requests
from devtools.emulator.state import _Counters


def _function_name_from_ref(ref: str) -> str:
    """Accept a name, ``name:qualifier``, a full ARN or a partial ARN, as AWS does."""
    if "function:" in ref:
        ref = ref.split("function:", 1)[1]
    return ref.split(":", 1)[0]


class LambdaEmulator(_Planning, _S3Requests):
    """The emulated Remotion function: routines, render bookkeeping and fault injection.

    It is transport-free (``invoke`` takes bytes and returns an :class:`InvokeResult`) so
    that the HTTP layer stays a thin, fast shim. All shared state sits behind one lock;
    renders themselves are immutable, so status responses are built outside it.

    Its parts: the routines and the control-API methods are here, render planning is the
    :class:`~devtools.emulator.plan._Planning` mixin, S3 requests the
    :class:`~devtools.emulator.s3_requests._S3Requests` mixin, and the status body is built
    by :func:`~devtools.emulator.progress._progress`.
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
        """Counters a test or benchmark asserts on (see :mod:`devtools.emulator.control`)."""
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
        return _success(_progress(render, time.monotonic()))

    def _settle(self, now_mono: float) -> None:
        """Release the concurrency of renders that finished, failed or timed out (lock held)."""
        heap = self._in_flight_heap
        while heap and heap[0][0] <= now_mono:
            _, _, functions = heapq.heappop(heap)
            self._in_flight_functions -= functions
