"""Periodic slots: each tick the scheduler sends is acted on once, however often it arrives.

The scheduler stamps every tick with its slot (``floor(now / interval)``); the actor claims the
slot with one ``SET NX`` whose key outlives the slot, so two schedulers (run for availability)
or a redelivered tick still give one sweep, one reconcile pass, per slot.
"""

from __future__ import annotations

from shared.redis_client import get_redis
from shared.redis_keys import keys
from shared.settings import get_settings


def _claim(key: str, interval_s: float) -> bool:
    return bool(get_redis().set(key, "1", nx=True, px=int(interval_s * 2000)))


def claim_poll_slot(slot: int) -> bool:
    return _claim(keys().poll_slot(slot), get_settings().sweep_every_s)


def claim_reconcile_slot(slot: int) -> bool:
    return _claim(keys().reconcile_slot(slot), get_settings().reconcile_interval_s)


def claim_deliver_slot(slot: int) -> bool:
    return _claim(keys().deliver_slot(slot), get_settings().notify_sweep_interval_s)
