"""The scheduler sends a poll tick only when its sweep can have work."""

from __future__ import annotations

import threading
import time

import pytest

from shared.redis_client import get_redis
from shared.redis_keys import keys
from shared.settings import get_settings
from worker import poller
from worker.scheduler import Scheduler


def _poll_ticks_in(seconds: float) -> int:
    scheduler = Scheduler()
    thread = threading.Thread(target=scheduler.run, daemon=True)
    thread.start()
    time.sleep(seconds)
    scheduler.stop()
    thread.join(5)
    return int(get_redis().llen(keys().queue(get_settings().poll_queue)))


@pytest.fixture
def fast_ticks(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POLL_TICK_S", "0.05")
    monkeypatch.setenv("POLL_INTERVAL_S", "0.6")
    monkeypatch.setenv("RECONCILE_INTERVAL_S", "3600")
    monkeypatch.setenv("NOTIFY_SWEEP_INTERVAL_S", "3600")
    get_settings.cache_clear()


def test_without_a_next_due_record_every_tick_is_sent(fast_ticks: None) -> None:
    assert _poll_ticks_in(1.0) >= 15


def test_no_tick_before_the_next_render_comes_due(
    fast_ticks: None, use_db, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An interval long beside the windows below, so a loaded machine's late wake-ups cannot
    # carry the quiet window past the due time (seen with 0.6 s).
    monkeypatch.setenv("POLL_INTERVAL_S", "2.0")
    get_settings.cache_clear()
    use_db(sqlite_url)
    recorded_at = time.time()
    poller._record_next_due()  # nothing in flight: nothing due for an interval
    due = float(get_redis().get(keys().poll_next_due()) or 0)
    assert 1.9 < due - recorded_at <= 2.1
    assert _poll_ticks_in(0.8) <= 1  # nothing can be due yet (1: the reconcile tick, same queue)
    time.sleep(max(0.0, due - time.time()) + 0.05)
    assert _poll_ticks_in(0.5) >= 5  # due: ticks again until a sweep records the next time
