"""The emulated Remotion deployment: :class:`LambdaEmulator`.

One instance is one AWS account in one region with Remotion's function deployed under one
or more names: its constructor (account, region, version, function names, concurrency,
speed and any fault knob), the control-API methods (configure, faults, reset, stats), the
Lambda Invoke entry point with the account's concurrency, and the clock plumbing. The
routines, the launch and renderer functions, webhooks and S3 come from the mixins in
:mod:`devtools.emulator.routines`, :mod:`~devtools.emulator.launch`,
:mod:`~devtools.emulator.renderers`, :mod:`~devtools.emulator.webhooks` and
:mod:`~devtools.emulator.s3_requests`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from devtools.emulator import aws
from devtools.emulator.aws import FunctionConfig
from devtools.emulator.clock import Clock
from devtools.emulator.concurrency import Account
from devtools.emulator.constants import ACCOUNT_ID, DEFAULT_REGION, REMOTION_VERSION, JSONDict
from devtools.emulator.faults import Faults, parse_faults
from devtools.emulator.renderers import RenderersMixin
from devtools.emulator.responses import (
    EXECUTED_VERSION,
    InvokeResult,
    api_error,
    throttled,
    unhandled_error,
)
from devtools.emulator.routines import RoutinesMixin
from devtools.emulator.s3_requests import S3Mixin
from devtools.emulator.state import Counters
from devtools.emulator.stats import build_stats
from devtools.emulator.texts import RemotionError, command_not_found

_SLOT_KINDS = {"start", "status", "still", "info", "compositions"}


def _function_name_from_ref(ref: str) -> str:
    """Accept a name, ``name:qualifier``, a full ARN or a partial ARN, as AWS does."""
    if "function:" in ref:
        ref = ref.split("function:", 1)[1]
    return ref.split(":", 1)[0]


class LambdaEmulator(RoutinesMixin, RenderersMixin, S3Mixin):
    """The emulated Remotion deployment (see the module docstring).

    Transport-free: ``invoke`` and ``s3`` take bytes and return an :class:`InvokeResult`, so
    the HTTP layer stays a thin shim. All state sits behind one lock; every entry point first
    runs the clock up to now.
    """

    def __init__(
        self,
        *,
        speed: float | None = None,
        region: str = DEFAULT_REGION,
        account_id: str = ACCOUNT_ID,
        function_name: str | None = None,
        function_names: Sequence[str] | None = None,
        concurrency_limit: int | None = None,
        function_timeout_s: float | None = None,
        start_delay_ms: float | None = None,
        status_delay_ms: float | None = None,
        remotion_version: str = REMOTION_VERSION,
        timeout_grace_s: float | None = None,
        default_bucket: bool = True,
        faults: Mapping[str, Any] | None = None,
    ) -> None:
        aws.validate_region(region)
        self.region = region
        self.account_id = account_id
        self.remotion_version = remotion_version
        names = list(function_names or ())
        if function_name is not None:
            names.insert(0, function_name)
        self.function_names = tuple(names) if names else None
        explicit = {
            "speed": speed,
            "concurrency_limit": concurrency_limit,
            "function_timeout_s": function_timeout_s,
            "start_delay_ms": start_delay_ms,
            "status_delay_ms": status_delay_ms,
            "timeout_grace_s": timeout_grace_s,
        }
        settings = {**(faults or {}), **{k: v for k, v in explicit.items() if v is not None}}
        self._initial = Faults(**parse_faults(settings))
        self._default_bucket = (
            f"remotionlambda-{region.replace('-', '')}-emulator" if default_bucket else None
        )
        self._lock = threading.Lock()
        self._clock = Clock(self._lock)
        self._mono0 = time.monotonic()
        self._epoch0_ms = int(time.time() * 1000)
        self._epoch = 0
        self._pool = None
        self._held = []
        self._closed = False
        self._fresh_state()

    def _fresh_state(self) -> None:
        self._faults = replace(self._initial)
        self._counters = Counters()
        self._account = Account(self._faults.concurrency_limit)
        self._renders = {}
        self._launch_queue = deque()
        self._buckets = {}
        self._outbox = []
        self._held = []
        self._clock.clear()
        self._epoch += 1
        if self._default_bucket is not None:
            self._create_bucket(self._default_bucket, self._mono0)

    # -- clock plumbing ------------------------------------------------------------------------

    def _advance(self, now: float) -> None:
        self._clock.advance(now)

    def _push(self, due: float, handler: Callable[..., None], *args: Any, auto: bool) -> None:
        self._clock.push(due, handler, *args, autonomous=auto)
        if auto and not self._closed:
            self._clock.start_thread(self._tick)

    def _tick(self, now: float) -> Callable[[], None]:
        self._advance(now)
        items = self._take_outbox()
        return lambda: self._run_outbox(items)

    def _release(self, kind: str, now: float) -> None:
        self._account.release(kind)
        queue = self._launch_queue
        while queue and self._account.free():  # launches AWS queued, oldest first
            render = queue.popleft()
            if render.launch_state == "queued" and self._account.acquire("launch"):
                self._launch_begin(now, render)

    def _function(self, name: str) -> FunctionConfig:
        return aws.function_config(name, self._faults.function_timeout_s)

    def close(self) -> None:
        """Stop the scheduler thread and the webhook pool (the server calls it on stop)."""
        self._closed = True
        self._clock.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- control API -----------------------------------------------------------------------------

    def configure(self, changes: Mapping[str, Any]) -> JSONDict:
        """Update the given fault/setting keys only; returns the full current configuration."""
        parsed = parse_faults(changes)
        with self._lock:
            self._advance(time.monotonic())
            for key, value in parsed.items():
                setattr(self._faults, key, value)
            if "concurrency_limit" in parsed:
                self._account.limit = self._faults.concurrency_limit
            return self._faults.as_json()

    def faults(self) -> JSONDict:
        """The current fault configuration, as ``configure`` accepts it."""
        with self._lock:
            return self._faults.as_json()

    def reset(self) -> None:
        """Forget every render, bucket, counter and fault; settings go back to the initial ones."""
        with self._lock:
            self._fresh_state()

    def reset_peak(self) -> JSONDict:
        """Restart peak tracking from the current level (e.g. between bench phases)."""
        with self._lock:
            self._advance(time.monotonic())
            self._account.reset_peak()
            return {"peak_concurrent_functions": self._account.peak}

    def stats(self) -> JSONDict:
        """Counters a test or benchmark asserts on (see :mod:`devtools.emulator.stats`)."""
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            return build_stats(self, now)

    # -- Invoke ------------------------------------------------------------------------------------

    def invoke(
        self, function_ref: str, body: bytes, invocation_type: str = "RequestResponse"
    ) -> InvokeResult:
        """Handle one Lambda Invoke call the way the deployed Remotion function would."""
        name = _function_name_from_ref(function_ref)
        if self.function_names is not None and name not in self.function_names:
            arn = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"
            return api_error(
                404,
                "ResourceNotFoundException",
                {"Type": "User", "Message": f"Function not found: {arn}"},
            )
        if invocation_type == "DryRun":
            return InvokeResult(204, b"", EXECUTED_VERSION)
        try:
            payload = json.loads(body) if body else {}
        except ValueError as exc:
            return api_error(
                400,
                "InvalidRequestContentException",
                {"Type": "User", "message": f"Could not parse request body into json: {exc}"},
            )
        routine = payload.get("type") if isinstance(payload, dict) else None
        kind = routine if routine in _SLOT_KINDS else "info"
        with self._lock:
            now = time.monotonic()
            self._advance(now)
            throttled_result = self._injected_throttle(routine)
            if throttled_result is not None:
                return throttled_result
            account = self._account
            if not account.acquire(str(kind)):
                self._counters.throttled_total += 1
                return throttled()
            fn = self._function(name)
        try:
            result = self._route(str(routine), fn, payload)
        finally:
            with self._lock:
                now = time.monotonic()
                self._advance(now)
                if account is self._account:
                    self._release(str(kind), now)
                else:  # a reset happened meanwhile: that account is gone
                    account.release(str(kind))
                items = self._take_outbox()
            self._run_outbox(items)
        if invocation_type == "Event" and result.status == 200:
            return InvokeResult(202, b"")
        return result

    def _injected_throttle(self, routine: object) -> InvokeResult | None:
        """Fault injection: a 429 from the Lambda service before the function runs."""
        faults = self._faults
        if routine == "start":
            self._counters.start_calls += 1
            if faults.throttle_starts:
                faults.throttle_starts -= 1
                self._counters.throttled_total += 1
                return throttled()
        elif routine == "status":
            self._counters.status_calls += 1
            if faults.throttle_status:
                faults.throttle_status -= 1
                self._counters.throttled_total += 1
                return throttled()
        return None

    def _route(self, routine: str, fn: FunctionConfig, payload: Any) -> InvokeResult:
        if routine == "start":
            return self._start(fn, payload)
        if routine == "status":
            return self._status(fn, payload)
        if routine == "still":
            return self._still(fn, payload)
        if routine == "info":
            return self._info()
        if routine == "compositions":
            return self._compositions(fn, payload)
        with self._lock:  # inner-routine.ts throws: an unhandled error
            self._counters.unhandled_errors_total += 1
        return unhandled_error(RemotionError(command_not_found(payload)))
