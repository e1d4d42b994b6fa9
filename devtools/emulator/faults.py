"""Fault and timing configuration: what the control API (and a render's input props) can change.

:class:`Directive` is one render's misbehaviour, from a control-API rule (matched by
composition) or from ``__emulator__`` in the input props; :class:`Faults` is the run-time
configuration (counted faults, delays, limits, overheads, speed, rules) that
``/_emulator/faults`` reads and updates and that a reset restores. The validators here
parse both, with the error messages the control API returns, and also check CLI arguments.

Two kinds of knob live here. Most model something real (account concurrency, cold starts,
webhook retries, the site's compositions). A few are *fault injections* the real system
never does on its own: ``throttle_starts``/``crash_starts``/``fail_status``/... and the
``crash_start``/``reject_start`` directives (Remotion's start never rejects a render for
its composition: that is found out later, in ``launch``). They stay for tests that need a
failure on demand.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Final

from devtools.emulator.constants import (
    CANCEL_POLL_MS,
    DEFAULT_SPEED_FPS,
    DEFAULT_TIMEOUT_GRACE_S,
    NO_RENDER_RETRY_MS,
    PROGRESS_UPLOAD_INTERVAL_MS,
    WEBHOOK_BACKOFF_MS,
    WEBHOOK_TIMEOUT_MS,
    JSONDict,
)
from devtools.emulator.site import DEFAULT_COMPOSITIONS, Composition, parse_compositions


@dataclass(frozen=True, slots=True)
class Directive:
    """Per-render misbehaviour; ``None`` means "not specified here", so layers overlay."""

    fatal_at: float | None = None
    message: str | None = None
    never_finish: bool | None = None
    crash_start: str | None = None
    reject_start: str | None = None
    speed: float | None = None
    fail_chunk: int | None = None
    fail_attempts: int | None = None
    fail_message: str | None = None
    fail_at: float | None = None
    webhook_drop: bool | None = None
    webhook_duplicate: bool | None = None
    webhook_reorder: bool | None = None
    webhook_delay_ms: float | None = None

    def overlay(self, other: Directive) -> Directive:
        """Return self with every value that ``other`` specifies taking precedence."""
        changes = {k: v for k, v in asdict(other).items() if v is not None}
        return replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Rule:
    composition: str
    directive: Directive

    def as_json(self) -> JSONDict:
        raw = {k: v for k, v in asdict(self.directive).items() if v is not None}
        return {"composition": self.composition, **raw}


@dataclass(slots=True)
class Faults:
    """Everything the control API can change at run time; reset restores the initial values."""

    speed: float = DEFAULT_SPEED_FPS
    concurrency_limit: int | None = None
    function_timeout_s: float | None = None
    timeout_grace_s: float = DEFAULT_TIMEOUT_GRACE_S
    start_delay_ms: float = 0.0
    status_delay_ms: float = 0.0
    throttle_starts: int = 0
    throttle_status: int = 0
    crash_starts: int = 0
    crash_status: int = 0
    fail_status: int = 0
    progress_metadata_delay_ms: float = 0.0
    # Overheads of a render (ms at the reference speed, scaled like the render itself).
    cold_start_ms: float = 300.0
    browser_ms: float = 300.0
    serve_url_ms: float = 200.0
    composition_ms: float = 200.0
    renderer_start_ms: float = 400.0
    combine_ms: float = 300.0
    finish_ms: float = 100.0
    still_ms: float = 500.0
    upload_interval_ms: float = PROGRESS_UPLOAD_INTERVAL_MS
    # Remotion's own waits (real milliseconds, not scaled).
    no_render_retry_ms: float = NO_RENDER_RETRY_MS
    missing_progress_mode: str = "not-found"
    #: Fault injection: for this long after a start, status does not find progress.json (a
    #: read that misses), so it answers as Remotion does for a missing render.
    unreadable_progress_for_ms: float = 0.0
    cancel_poll_ms: float = CANCEL_POLL_MS
    cancel_error_name: str = "Error"
    webhook_timeout_ms: float = WEBHOOK_TIMEOUT_MS
    webhook_backoff_ms: tuple[float, ...] = WEBHOOK_BACKOFF_MS
    webhook_drop: int = 0
    webhook_duplicate: int = 0
    webhook_reorder: int = 0
    webhook_delay_ms: float = 0.0
    compositions: tuple[Composition, ...] = DEFAULT_COMPOSITIONS
    rules: tuple[Rule, ...] = ()

    def as_json(self) -> JSONDict:
        out: JSONDict = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "rules":
                value = [rule.as_json() for rule in self.rules]
            elif item.name == "compositions":
                value = [c.as_json() for c in self.compositions]
            elif isinstance(value, tuple):
                value = list(value)
            out[item.name] = value
        return out


def _number(key: str, value: object, requirement: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{key} must be {requirement}, got {value!r}")
    return float(value)


def count(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
    return value


def non_negative(key: str, value: object) -> float:
    requirement = "a non-negative number"
    number = _number(key, value, requirement)
    if number < 0:
        raise ValueError(f"{key} must be {requirement}, got {value!r}")
    return number


def positive(key: str, value: object) -> float:
    requirement = "a positive number"
    number = _number(key, value, requirement)
    if number <= 0:
        raise ValueError(f"{key} must be {requirement}, got {value!r}")
    return number


def optional_positive(key: str, value: object) -> float | None:
    return None if value is None else positive(key, value)


def optional_limit(key: str, value: object) -> int | None:
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


def _choice(*options: str) -> Callable[[str, object], str]:
    def parse(key: str, value: object) -> str:
        if value not in options:
            raise ValueError(f"{key} must be one of {list(options)}, got {value!r}")
        return str(value)

    return parse


def _backoff(key: str, value: object) -> tuple[float, ...]:
    if not isinstance(value, list) or not all(isinstance(v, int | float) for v in value):
        raise ValueError(f"{key} must be a list of milliseconds, got {value!r}")
    return tuple(non_negative(key, v) for v in value)


def _flag_or_message(key: str, value: object, default_message: str) -> str | None:
    """Accept ``true`` (use a default message), a message string, or ``false``/``null``."""
    if value is None or value is False:
        return None
    if value is True:
        return default_message
    if isinstance(value, str) and value:
        return value
    raise ValueError(f"{key} must be a boolean or a non-empty string, got {value!r}")


def _optional(parse: Callable[[str, object], Any]) -> Callable[[str, object], Any]:
    def wrapped(key: str, value: object) -> Any:
        return None if value is None else parse(key, value)

    return wrapped


def _boolean(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be a boolean, got {value!r}")
    return value


def _text(key: str, value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string, got {value!r}")
    return value


_DIRECTIVE_PARSERS: Final[Mapping[str, Callable[[str, object], Any]]] = {
    "fatal_at": _optional(_fraction),
    "message": _optional(_text),
    "never_finish": _optional(_boolean),
    "crash_start": lambda k, v: _flag_or_message(k, v, "Emulated unhandled crash in start"),
    "reject_start": lambda k, v: _flag_or_message(k, v, "Emulated start rejection"),
    "speed": _optional(positive),
    "fail_chunk": _optional(count),
    "fail_attempts": _optional(count),
    "fail_message": _optional(_text),
    "fail_at": _optional(_fraction),
    "webhook_drop": _optional(_boolean),
    "webhook_duplicate": _optional(_boolean),
    "webhook_reorder": _optional(_boolean),
    "webhook_delay_ms": _optional(non_negative),
}


def parse_directive(raw: Mapping[str, Any], where: str) -> Directive:
    unknown = set(raw) - set(_DIRECTIVE_PARSERS)
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    try:
        values = {key: _DIRECTIVE_PARSERS[key](key, value) for key, value in raw.items()}
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    return Directive(**values)


def _parse_rules(key: str, value: object) -> tuple[Rule, ...]:
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
        rules.append(Rule(composition, parse_directive(directive_raw, where)))
    return tuple(rules)


FAULT_PARSERS: Final[Mapping[str, Callable[[str, object], Any]]] = {
    "throttle_starts": count,
    "throttle_status": count,
    "crash_starts": count,
    "crash_status": count,
    "fail_status": count,
    "start_delay_ms": non_negative,
    "status_delay_ms": non_negative,
    "concurrency_limit": optional_limit,
    "speed": positive,
    "function_timeout_s": optional_positive,
    "timeout_grace_s": non_negative,
    "progress_metadata_delay_ms": non_negative,
    "cold_start_ms": non_negative,
    "browser_ms": non_negative,
    "serve_url_ms": non_negative,
    "composition_ms": non_negative,
    "renderer_start_ms": non_negative,
    "combine_ms": non_negative,
    "finish_ms": non_negative,
    "still_ms": non_negative,
    "upload_interval_ms": non_negative,
    "no_render_retry_ms": non_negative,
    "missing_progress_mode": _choice("not-found", "no-such-key"),
    "unreadable_progress_for_ms": non_negative,
    "cancel_poll_ms": positive,
    "cancel_error_name": _choice("Error", "CancelledError"),
    "webhook_timeout_ms": positive,
    "webhook_backoff_ms": _backoff,
    "webhook_drop": count,
    "webhook_duplicate": count,
    "webhook_reorder": count,
    "webhook_delay_ms": non_negative,
    "compositions": parse_compositions,
    "rules": _parse_rules,
}

OVERHEAD_KEYS: Final = (
    "cold_start_ms",
    "browser_ms",
    "serve_url_ms",
    "composition_ms",
    "renderer_start_ms",
    "combine_ms",
    "finish_ms",
    "still_ms",
)
NO_OVERHEADS: Final[Mapping[str, float]] = dict.fromkeys(OVERHEAD_KEYS, 0.0)
"""Every overhead zero: a render's time is its frames / speed only (handy in tests)."""

FAST_REMOTION_WAITS: Final[Mapping[str, Any]] = {
    "no_render_retry_ms": 10.0,
    "webhook_backoff_ms": [20.0, 40.0],
    "webhook_timeout_ms": 2000.0,
    "cancel_poll_ms": 50.0,
}
"""Remotion's real-time waits shortened, for tests that would otherwise wait seconds."""


def parse_faults(changes: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(changes) - set(FAULT_PARSERS)
    if unknown:
        raise ValueError(f"unknown fault keys {sorted(unknown)}")
    return {key: FAULT_PARSERS[key](key, value) for key, value in changes.items()}
