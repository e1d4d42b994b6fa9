"""Fault configuration: what the control API (and a render's own input props) can change.

:class:`_Directive` is one render's misbehaviour, from a control-API rule (matched by
composition) or from ``__emulator__`` in the input props; :class:`_Faults` is the run-time
configuration (counted faults, delays, limits, speed, rules) that ``/_emulator/faults``
reads and updates and that a reset restores. The validators here parse both, with the
error messages the control API returns, and also check the CLI's arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Final

from devtools.emulator.constants import JSONDict


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
