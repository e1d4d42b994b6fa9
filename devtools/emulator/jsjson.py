"""JavaScript's number and JSON formatting, so the emulator writes the bytes Node writes.

Remotion's function serialises everything with ``JSON.stringify`` (status bodies,
progress.json, webhook bodies, whose signature is over the exact bytes). Python's ``json``
differs on numbers: ``1e-05`` where JavaScript writes ``0.00001`` and ``2.0`` where it
writes ``2``. :func:`dumps` uses the C encoder and, only when its output contains such a
number, rewrites those numbers in one regular-expression pass that skips string literals,
so the hot path (status calls) stays fast.

Also here: ``Number.prototype.toFixed`` / ``toPrecision`` and the two ``Intl.NumberFormat``
formats Remotion uses for costs, all rounding the exact binary value half away from zero as
ECMA-262 / ECMA-402 specify.
"""

from __future__ import annotations

import json
import math
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

_PYTHON_ONLY_NUMBER: Final = re.compile(r"\de[-+]\d|\d\.0(?=[,\]}]|$)")


def js_number(value: float) -> str:
    """``String(value)`` in JavaScript (ECMA-262 Number::toString)."""
    if math.isnan(value) or math.isinf(value):
        return "null"  # what JSON.stringify writes for them
    if value == 0:
        return "0"
    if value < 0:
        return "-" + js_number(-value)
    _, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    k = len(digits)
    n = exponent + k  # value = 0.d1..dk * 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return f"{digits[:n]}.{digits[n:]}"
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits if k == 1 else f"{digits[0]}.{digits[1:]}"
    return f"{mantissa}e{'+' if e >= 0 else '-'}{abs(e)}"


# Possessive quantifiers and look-behinds keep both scans linear (no backtracking into a
# long run of digits at every position).
_STRING: Final = re.compile(r'("[^"\\]*+(?:\\.[^"\\]*+)*+")')
_NUMBER: Final = re.compile(
    r"(?<![\d.])-?\d++(?:\.\d++)?[eE][-+]?\d++|(?<![\d.])-?\d++\.0(?![\d.eE])"
)


_NUMBER_CHARS: Final = frozenset("0123456789.eE+-")


def _js_token(match: re.Match[str]) -> str:
    return js_number(float(match.group(0)))


def dumps(value: Any) -> str:
    """``JSON.stringify(value)``: compact, insertion order, raw non-ASCII, JS numbers."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    hits = list(_PYTHON_ONLY_NUMBER.finditer(text))
    if not hits:
        return text
    if "\\" in text:
        # Rewrite those numbers outside the string literals: the text between strings,
        # joined with NUL (which JSON text never contains raw), in one pass.
        parts = _STRING.split(text)
        parts[0::2] = _NUMBER.sub(_js_token, "\0".join(parts[0::2])).split("\0")
        return "".join(parts)
    # No escapes: a position is inside a string iff an odd number of quotes precede it.
    out: list[str] = []
    last = 0
    for hit in hits:
        if text.count('"', 0, hit.start()) % 2:
            continue
        start, end = hit.start(), hit.end()
        while start > 0 and text[start - 1] in _NUMBER_CHARS:
            start -= 1
        while end < len(text) and text[end] in _NUMBER_CHARS:
            end += 1
        if start < last:
            continue
        out += (text[last:start], js_number(float(text[start:end])))
        last = end
    out.append(text[last:])
    return "".join(out)


def dumps_bytes(value: Any) -> bytes:
    return dumps(value).encode("utf-8", "surrogatepass")


def num(value: float) -> int | float:
    """A float that holds an integer as an int, which is how JavaScript prints it."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def to_fixed(value: float, digits: int) -> float:
    """``Number(value.toFixed(digits))``: the exact value rounded half away from zero."""
    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP))


def to_precision(value: float, precision: int) -> float:
    """``Number(value.toPrecision(precision))``."""
    if value == 0:
        return 0.0
    exact = Decimal(value)
    quantum = Decimal(1).scaleb(exact.adjusted() - precision + 1)
    return float(exact.quantize(quantum, rounding=ROUND_HALF_UP))


def format_fixed_grouped(value: float, fraction_digits: int) -> str:
    """``Intl.NumberFormat('en-US', {minimumFractionDigits: d, maximumFractionDigits: d})``."""
    quantum = Decimal(1).scaleb(-fraction_digits)
    return f"{Decimal(value).quantize(quantum, rounding=ROUND_HALF_UP):,.{fraction_digits}f}"


def format_decimal(value: float) -> str:
    """``new Intl.NumberFormat('en-US', {currency}).format(value)``: decimal style, at most
    three fraction digits, grouping, no trailing zeros."""
    text = format_fixed_grouped(value, 3)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
