"""The control API, ``/_emulator/*``: the knobs tests and benchmarks turn.

``GET stats`` (see :mod:`devtools.emulator.stats`), ``POST stats/reset-peak``, ``POST
reset``, ``GET`` and ``POST faults`` (see :mod:`devtools.emulator.faults` for the keys) and
``GET health``.
:func:`handle_control` serves them for the HTTP layer; :func:`control` is the client that
tests, the demo and the benchmark call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from devtools.emulator.constants import JSONDict
from devtools.emulator.core import LambdaEmulator
from devtools.emulator.responses import InvokeResult, dumps


def _control_response(status: int, body: JSONDict) -> InvokeResult:
    return InvokeResult(status, dumps(body))


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
    if route == ("POST", "/_emulator/s3/seed"):
        try:
            spec = json.loads(body) if body else {}
            count = emulator.seed_finished_renders(
                str(spec["bucket"]),
                int(spec["renders"]),
                float(spec.get("age_s", 86_400)),
                spec.get("delete_after", "30-days"),
            )
        except (ValueError, KeyError, TypeError) as exc:
            return _control_response(400, {"error": f"seed needs bucket and renders: {exc}"})
        return _control_response(200, {"seeded": count})
    return _control_response(404, {"error": f"no control endpoint {method} {path}"})


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
