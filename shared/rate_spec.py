"""Parse rate-limit specs such as ``5/hour``, ``100/day`` or ``2/10s,20/hour``.

Operators write these in ``RENDER_RATE_LIMIT`` and in the ``user_limits`` table; a typo must
fail loudly at start-up (settings validation) or when the override is saved, never at the first
render.
"""

from __future__ import annotations

import re
from functools import lru_cache

from pyrate_limiter import Rate

_UNITS_MS = {
    "ms": 1,
    "s": 1000,
    "sec": 1000,
    "second": 1000,
    "m": 60_000,
    "min": 60_000,
    "minute": 60_000,
    "h": 3_600_000,
    "hr": 3_600_000,
    "hour": 3_600_000,
    "d": 86_400_000,
    "day": 86_400_000,
    "w": 604_800_000,
    "week": 604_800_000,
}
_PART = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$", re.IGNORECASE)


@lru_cache(maxsize=256)
def parse_rates(spec: str) -> list[Rate]:
    """``"5/hour"`` -> ``[Rate(5, 3_600_000)]``; several comma-separated rates all apply.

    Cached: workers parse the same few specs for every message. Callers must not mutate the
    returned list.
    """
    rates: list[Rate] = []
    for part in spec.split(","):
        match = _PART.match(part)
        if not match:
            raise ValueError(
                f"invalid rate {part.strip()!r}: expected <count>/<duration>, e.g. 5/hour, "
                "100/day, 2/10s"
            )
        count, amount, unit = int(match[1]), float(match[2] or 1), match[3].lower()
        if unit not in _UNITS_MS and unit.endswith("s"):
            unit = unit[:-1]  # plurals: hours, days, secs
        if unit not in _UNITS_MS:
            raise ValueError(f"invalid rate {part.strip()!r}: unknown unit {unit!r}")
        interval = int(amount * _UNITS_MS[unit])
        if count < 1 or interval < 1:
            raise ValueError(f"invalid rate {part.strip()!r}: count and duration must be > 0")
        rates.append(Rate(count, interval))
    if not rates:
        raise ValueError("empty rate spec")
    return sorted(rates, key=lambda r: r.interval)
