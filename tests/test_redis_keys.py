"""Every Redis key has one home: ``shared/redis_keys.py``.

The dynamic half of this check is in ``tests/conftest.py``: after every test, each key its
processes wrote must have a shape listed in ``redis_keys.PATTERNS``. This file checks the
static half: no other module of the product or the dev tools builds a key string itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared import redis_keys
from shared.redis_keys import RedisKeys

ROOT = Path(__file__).resolve().parent.parent
#: What building a key by hand looks like: an f-string joining the namespace with ":", the old
#: settings helper, or one of Dramatiq's key suffixes in a string literal.
_HAND_MADE = re.compile(
    r"""namespace\}:|redis_key\(|["'][^"'\n]*(?:\.msgs|\.DQ|\.XQ|__acks__|__heartbeats__)"""
)


def _sources() -> list[Path]:
    files = []
    for package in ("shared", "worker", "scripts", "devtools"):
        files += sorted((ROOT / package).rglob("*.py"))
    return [f for f in files if f != ROOT / "shared" / "redis_keys.py"]


def test_no_module_builds_a_redis_key_by_hand():
    offenders = []
    for path in _sources():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _HAND_MADE.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "build keys with shared.redis_keys:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    ("key", "known"),
    [
        ("ns:renders", True),
        ("ns:renders.DQ.msgs", True),
        ("ns:__acks__.b1.render-polls.DQ", True),
        ("ns:budget:used", True),
        ("ns:budget:other", False),
        ("ns:ratelimit:u1", True),
        ("ns:poll:sweep:12", True),
        ("ns:something-new", False),
        ("other:renders", False),
    ],
)
def test_known_shapes(key, known):
    assert redis_keys.is_known(key, "ns", ("renders", "render-polls")) is known


def test_every_builder_makes_a_known_key():
    k = RedisKeys("ns")
    queues = ("renders", "render-polls")
    built = [
        k.queue("renders"),
        k.queue_messages("renders"),
        k.delayed("renders"),
        k.delayed_messages("renders"),
        k.dead_letters("renders"),
        k.dead_letter_messages("renders"),
        k.acks("broker-1", "renders"),
        k.broker_heartbeats(),
        k.rate_limit_prefix() + ":u1",
        k.api_rate_limit_prefix() + ":0123456789abcdef",
        *(k.budget(part) for part in redis_keys.BUDGET_PARTS),
        k.poll_slot(1),
        k.reconcile_slot(1),
        k.poll_running(),
        k.poll_due(),
        k.poll_sweep(1),
        k.last_sweep(),
        k.workers(),
        k.failpoint("start.after_claim"),
    ]
    assert all(redis_keys.is_known(key, "ns", queues) for key in built), built
